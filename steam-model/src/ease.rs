//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the closed-form
//! item-item model B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹, a user's scores x·B.

use std::fmt;

use faer::linalg::solvers::DenseSolveCore;
use rayon::prelude::*;
use steam_core::{Error, Result};

use crate::ratings::Ratings;
use crate::sparse::{Profiles, Weighting};

/// The most games EASE fits by default ([`EaseParams::max_items`]): the dense matrices take
/// about 12 bytes per pair of games at the peak of a fit (XᵀX + λI, its Cholesky factor, then
/// its inverse and B, in f32), 1.7 GB at 12,000 games.
pub const EASE_MAX_ITEMS: usize = 12_000;

/// Parameters of [`EaseModel::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct EaseParams {
    /// The L2 regularization λ added to the diagonal of XᵀX.
    pub lambda: f64,
    /// How a review weighs in X.
    pub weighting: Weighting,
    /// The most games fitted: with more in the training data, the model is fitted on the
    /// `max_items` most reviewed and never recommends the others (the memory of a fit grows with
    /// the square of the games fitted, see [`EASE_MAX_ITEMS`]).
    pub max_items: usize,
}

impl Default for EaseParams {
    /// λ 500, binary, at most [`EASE_MAX_ITEMS`] games.
    fn default() -> Self {
        EaseParams {
            lambda: 500.0,
            weighting: Weighting::Binary,
            max_items: EASE_MAX_ITEMS,
        }
    }
}

impl fmt::Display for EaseParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ease λ {}, {}", self.lambda, self.weighting)
    }
}

/// A fitted EASE model: B over the games fitted, and each training user's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct EaseModel {
    pub(crate) params: EaseParams,
    pub(crate) profiles: Profiles,
    /// The catalog index of each game fitted (sorted).
    pub(crate) fitted: Vec<u32>,
    /// The fitted index of each catalog game, `u32::MAX` for a game left out.
    pub(crate) fitted_of: Vec<u32>,
    /// B, row-major over the fitted games: row j holds what game j adds to every game's score.
    pub(crate) b: Vec<f32>,
}

impl EaseModel {
    /// Fits B on every review of `train` (see [`EaseParams`]). λ must be positive.
    pub fn fit(train: &Ratings, params: &EaseParams) -> Result<EaseModel> {
        if !(params.lambda > 0.0 && params.lambda.is_finite()) || params.max_items == 0 {
            return Err(Error::Config {
                key: "ease".into(),
                reason: format!(
                    "λ must be positive and at least one game fitted (λ {}, max_items {})",
                    params.lambda, params.max_items
                ),
            });
        }
        let profiles = Profiles::new(train, params.weighting);
        let n = profiles.items.len();
        let counts = profiles.item_counts();
        let mut fitted: Vec<u32> = (0..n as u32).collect();
        if n > params.max_items {
            fitted.sort_by(|a, b| counts[*b as usize].cmp(&counts[*a as usize]).then(a.cmp(b)));
            fitted.truncate(params.max_items);
            fitted.sort_unstable();
        }
        let m = fitted.len();
        let mut fitted_of = vec![u32::MAX; n];
        for (k, i) in fitted.iter().enumerate() {
            fitted_of[*i as usize] = k as u32;
        }
        // X over the fitted games, by user, then by game.
        let x = &profiles.by_user;
        let x = crate::sparse::Csr {
            offsets: {
                let mut offsets = vec![0usize; x.rows() + 1];
                for r in 0..x.rows() {
                    let kept = x
                        .row(r)
                        .0
                        .iter()
                        .filter(|c| fitted_of[**c as usize] != u32::MAX);
                    offsets[r + 1] = offsets[r] + kept.count();
                }
                offsets
            },
            cols: x
                .cols
                .iter()
                .filter(|c| fitted_of[**c as usize] != u32::MAX)
                .map(|c| fitted_of[*c as usize])
                .collect(),
            vals: x
                .cols
                .iter()
                .zip(&x.vals)
                .filter(|(c, _)| fitted_of[**c as usize] != u32::MAX)
                .map(|(_, v)| *v)
                .collect(),
        };
        let by_item = x.transpose(m);
        // G = XᵀX + λI, one row per game in parallel (symmetric: rows are columns).
        let mut g = vec![0f32; m * m];
        g.par_chunks_mut(m.max(1)).enumerate().for_each(|(i, row)| {
            let (users, weights) = by_item.row(i);
            for (u, wi) in users.iter().zip(weights) {
                let (games, wj) = x.row(*u as usize);
                for (j, w) in games.iter().zip(wj) {
                    row[*j as usize] += wi * w;
                }
            }
            row[i] += params.lambda as f32;
        });
        let b = if m == 0 {
            Vec::new()
        } else {
            let llt = faer::MatRef::from_column_major_slice(&g, m, m)
                .llt(faer::Side::Lower)
                .map_err(|e| Error::Internal {
                    what: "EASE".into(),
                    message: format!("XᵀX + λI is not positive definite: {e}"),
                })?;
            drop(g);
            let p = llt.inverse();
            drop(llt);
            // B[j][i] = −P[j][i] / P[i][i] = −P[i][j] / P[i][i]: row j of B is column j of P
            // scaled by −1/P[i][i]; B[j][j] = 0.
            let scale: Vec<f32> = (0..m).map(|i| -1.0 / p[(i, i)]).collect();
            let mut b = vec![0f32; m * m];
            b.par_chunks_mut(m).enumerate().for_each(|(j, row)| {
                let col = p.col_as_slice(j);
                for i in 0..m {
                    row[i] = col[i] * scale[i];
                }
                row[j] = 0.0;
            });
            b
        };
        Ok(EaseModel {
            params: params.clone(),
            profiles,
            fitted,
            fitted_of,
            b,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &EaseParams {
        &self.params
    }

    /// Games fitted (the others are never recommended).
    pub fn num_fitted(&self) -> usize {
        self.fitted.len()
    }

    /// B\[from\]\[to\]: what game `from` adds to game `to`'s score, `None` for a game not fitted.
    pub fn weight(&self, from: i32, to: i32) -> Option<f32> {
        let f = |id: i32| {
            let k = *self.fitted_of.get(self.profiles.items.get(id)?)?;
            (k != u32::MAX).then_some(k as usize)
        };
        Some(self.b[f(from)? * self.fitted.len() + f(to)?])
    }

    /// The scores of user id `user` over the catalog (by dense index; −∞ for a game not
    /// fitted), or `None` for a user without training reviews.
    pub(crate) fn scores(&self, user: i32, out: &mut [f32]) -> bool {
        let Some((games, weights)) = self.profiles.of(user) else {
            return false;
        };
        let m = self.fitted.len();
        let mut acc = vec![0f32; m];
        for (j, w) in games.iter().zip(weights) {
            let k = self.fitted_of[*j as usize];
            if k == u32::MAX {
                continue;
            }
            let row = &self.b[k as usize * m..(k as usize + 1) * m];
            for (a, b) in acc.iter_mut().zip(row) {
                *a += w * b;
            }
        }
        out.fill(f32::NEG_INFINITY);
        for (k, i) in self.fitted.iter().enumerate() {
            out[*i as usize] = acc[k];
        }
        true
    }

    /// The games most similar to catalog game `item` (dense index): row `item` of B.
    pub(crate) fn item_row(&self, item: usize, out: &mut [f32]) {
        out.fill(f32::NEG_INFINITY);
        let k = self.fitted_of[item];
        if k == u32::MAX {
            return;
        }
        let m = self.fitted.len();
        let row = &self.b[k as usize * m..(k as usize + 1) * m];
        for (kk, i) in self.fitted.iter().enumerate() {
            out[*i as usize] = row[kk];
        }
        out[item] = f32::NEG_INFINITY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratings(pairs: &[(i32, i32)]) -> Ratings {
        let mut r = Ratings::new();
        for (u, i) in pairs {
            r.push(*u, *i, 1.0);
        }
        r
    }

    #[test]
    fn two_games_match_the_closed_form() {
        // X: user 1 {10, 20}, user 2 {10}, user 3 {10, 20}, user 4 {20}.
        // XᵀX = [[3, 2], [2, 3]]. With two games, B[0][1] = G01 / (G00 + λ).
        let r = ratings(&[
            (1, 10),
            (1, 20),
            (2, 10),
            (3, 10),
            (3, 20),
            (4, 20),
            (5, 20),
        ]);
        // Game 20 has 4 reviews: G = [[3, 2], [2, 4]].
        let lambda = 2.0;
        let model = EaseModel::fit(
            &r,
            &EaseParams {
                lambda,
                ..EaseParams::default()
            },
        )
        .unwrap();
        let b01 = model.weight(10, 20).unwrap();
        let b10 = model.weight(20, 10).unwrap();
        assert!((b01 - 2.0 / (3.0 + 2.0)).abs() < 1e-6, "{b01}");
        assert!((b10 - 2.0 / (4.0 + 2.0)).abs() < 1e-6, "{b10}");
        assert_eq!(model.weight(10, 10), Some(0.0));
        assert_eq!(model.weight(10, 99), None);
    }

    #[test]
    fn three_games_match_a_hand_computed_inverse() {
        // X (users × games 1, 2, 3): [1 1 0], [0 1 1], [1 1 1]; G = XᵀX + I =
        // [[3, 2, 1], [2, 4, 2], [1, 2, 3]], det 16, P = adj(G)/16 with
        // adj = [[8, -4, 0], [-4, 8, -4], [0, -4, 8]].
        let r = ratings(&[(1, 1), (1, 2), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]);
        let model = EaseModel::fit(
            &r,
            &EaseParams {
                lambda: 1.0,
                ..EaseParams::default()
            },
        )
        .unwrap();
        let p = [[8.0, -4.0, 0.0], [-4.0, 8.0, -4.0], [0.0, -4.0, 8.0f32]];
        for (j, row) in p.iter().enumerate() {
            for (i, pji) in row.iter().enumerate() {
                let expected = if i == j { 0.0 } else { -pji / p[i][i] };
                let got = model.weight(j as i32 + 1, i as i32 + 1).unwrap();
                assert!(
                    (got - expected).abs() < 1e-5,
                    "B[{j}][{i}] {got} != {expected}"
                );
            }
        }
        // User 1 {1, 2}: scores x·B; game 3 gets B[1][3] + B[2][3] = 0 + 0.5.
        let mut out = vec![0f32; 3];
        assert!(model.scores(1, &mut out));
        assert!((out[2] - 0.5).abs() < 1e-5, "{out:?}");
        assert!(!model.scores(9, &mut out));
    }

    #[test]
    fn a_catalog_above_the_bound_fits_the_most_reviewed_games() {
        let mut r = Ratings::new();
        for u in 0..20 {
            r.push(u, 1, 1.0);
            r.push(u, 2, 1.0);
            if u < 5 {
                r.push(u, 3, 1.0);
            }
        }
        r.push(30, 4, 1.0);
        let params = EaseParams {
            max_items: 3,
            ..EaseParams::default()
        };
        let model = EaseModel::fit(&r, &params).unwrap();
        assert_eq!(model.num_fitted(), 3);
        assert_eq!(model.weight(4, 1), None);
        let mut out = vec![0f32; 4];
        assert!(model.scores(30, &mut out));
        assert!(out[3] == f32::NEG_INFINITY && out[0] == 0.0, "{out:?}");
        assert!(EaseModel::fit(
            &r,
            &EaseParams {
                lambda: 0.0,
                ..params
            }
        )
        .is_err());
    }
}
