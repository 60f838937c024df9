//! Item-kNN as the `implicit` library has it (`CosineRecommender`, `BM25Recommender`): each game's
//! K most similar games by the dot product of weighted game vectors, a user's score for a game
//! the sum of its similarities to the games the user reviewed.

use std::fmt;

use rayon::prelude::*;
use steam_core::{Error, Result};

use crate::ratings::Ratings;
use crate::recommend::top_k;
use crate::sparse::{Csr, Profiles, Weighting};

/// How game vectors (one weight per user) are weighted before their dot products.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Similarity {
    /// Each game's vector scaled to unit length: the cosine of two games' sets of users.
    Cosine,
    /// BM25 (`implicit.nearest_neighbours.bm25_weight`): a user weighs
    /// (K1 + 1)·x / (K1·(1 − B + B·|game| / mean |game|) + x) · idf(user), idf = ln(games) −
    /// ln(1 + games the user reviewed).
    Bm25 {
        /// K1 (the library's default 1.2).
        k1: f32,
        /// B (the library's default 0.75).
        b: f32,
    },
}

impl fmt::Display for Similarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Similarity::Cosine => f.write_str("cosine"),
            Similarity::Bm25 { k1, b } => write!(f, "bm25 (K1 {k1}, B {b})"),
        }
    }
}

/// Parameters of [`ItemKnn::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct KnnParams {
    /// K: the neighbours kept per game (the game itself is never one).
    pub neighbours: usize,
    /// The weighting.
    pub similarity: Similarity,
}

impl Default for KnnParams {
    /// 20 neighbours, cosine (the library's defaults).
    fn default() -> Self {
        KnnParams {
            neighbours: 20,
            similarity: Similarity::Cosine,
        }
    }
}

impl fmt::Display for KnnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item-knn {}, K {}", self.similarity, self.neighbours)
    }
}

/// A fitted item-kNN model: each game's neighbours, and each training user's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemKnn {
    pub(crate) params: KnnParams,
    pub(crate) profiles: Profiles,
    /// Row j: game j's neighbours (dense indices), most similar first, and their similarities.
    pub(crate) neighbours: Csr,
}

impl ItemKnn {
    /// Fits the neighbours on every review of `train` (each a 1 in the user × game matrix).
    pub fn fit(train: &Ratings, params: &KnnParams) -> Result<ItemKnn> {
        if params.neighbours == 0 {
            return Err(Error::Config {
                key: "item-knn".into(),
                reason: "K must be at least 1".into(),
            });
        }
        let profiles = Profiles::new(train, Weighting::Binary);
        let n = profiles.items.len();
        let by_item = profiles.by_user.transpose(n);
        let weighted = weigh(&by_item, &profiles.by_user, params.similarity);
        let by_user = weighted.transpose(profiles.users.len());
        let lists: Vec<Vec<(usize, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0f32; n],
                |acc, i| {
                    let (users, wi) = weighted.row(i);
                    for (u, a) in users.iter().zip(wi) {
                        let (games, wj) = by_user.row(*u as usize);
                        for (j, b) in games.iter().zip(wj) {
                            acc[*j as usize] += a * b;
                        }
                    }
                    acc[i] = 0.0;
                    let mut best = top_k(acc, params.neighbours, &[]);
                    best.retain(|(_, s)| *s > 0.0);
                    acc.fill(0.0);
                    best
                },
            )
            .collect();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for l in &lists {
            offsets.push(offsets.last().copied().unwrap_or(0) + l.len());
        }
        let neighbours = Csr {
            offsets,
            cols: lists.iter().flatten().map(|(j, _)| *j as u32).collect(),
            vals: lists.iter().flatten().map(|(_, s)| *s).collect(),
        };
        Ok(ItemKnn {
            params: params.clone(),
            profiles,
            neighbours,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &KnnParams {
        &self.params
    }

    /// The neighbours of game id `game`, most similar first, with their similarities; `None` for a
    /// game not in the training data.
    pub fn neighbours(&self, game: i32) -> Option<Vec<(i32, f32)>> {
        let j = self.profiles.items.get(game)?;
        let (cols, vals) = self.neighbours.row(j);
        Some(
            cols.iter()
                .zip(vals)
                .map(|(c, v)| (self.profiles.items.ids[*c as usize], *v))
                .collect(),
        )
    }

    /// The scores of user id `user` over the catalog (0 for a game no reviewed game neighbours),
    /// or `false` for a user without training reviews.
    pub(crate) fn scores(&self, user: i32, out: &mut [f32]) -> bool {
        let Some((games, weights)) = self.profiles.of(user) else {
            return false;
        };
        out.fill(0.0);
        for (j, w) in games.iter().zip(weights) {
            let (cols, vals) = self.neighbours.row(*j as usize);
            for (c, s) in cols.iter().zip(vals) {
                out[*c as usize] += w * s;
            }
        }
        true
    }

    /// Game `item`'s (dense index) similarities over the catalog: its neighbours', −∞ elsewhere.
    pub(crate) fn item_row(&self, item: usize, out: &mut [f32]) {
        out.fill(f32::NEG_INFINITY);
        let (cols, vals) = self.neighbours.row(item);
        for (c, s) in cols.iter().zip(vals) {
            out[*c as usize] = *s;
        }
    }
}

/// The game × user matrix `by_item` weighted by `similarity` (`by_user`: the same matrix by
/// user).
fn weigh(by_item: &Csr, by_user: &Csr, similarity: Similarity) -> Csr {
    match similarity {
        Similarity::Cosine => {
            let norms: Vec<f32> = (0..by_item.rows())
                .map(|i| by_item.row(i).1.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect();
            by_item.map(|i, _, v| if norms[i] > 0.0 { v / norms[i] } else { 0.0 })
        }
        Similarity::Bm25 { k1, b } => {
            let games = by_item.rows() as f32;
            let idf: Vec<f32> = (0..by_user.rows())
                .map(|u| games.ln() - (by_user.row(u).0.len() as f32).ln_1p())
                .collect();
            let lengths: Vec<f32> = (0..by_item.rows())
                .map(|i| by_item.row(i).1.iter().sum::<f32>())
                .collect();
            let mean = lengths.iter().sum::<f32>() / lengths.len().max(1) as f32;
            by_item.map(|i, u, x| {
                let norm = (1.0 - b) + b * lengths[i] / mean;
                x * (k1 + 1.0) / (k1 * norm + x) * idf[u as usize]
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense brute force: the weighted game × user matrix, all dot products, top K by row.
    fn brute_force(r: &Ratings, similarity: Similarity, k: usize) -> Vec<Vec<(i32, f32)>> {
        let mut users: Vec<i32> = r.users().to_vec();
        users.sort_unstable();
        users.dedup();
        let mut games: Vec<i32> = r.items().to_vec();
        games.sort_unstable();
        games.dedup();
        let (nu, ng) = (users.len(), games.len());
        let mut x = vec![vec![0f32; nu]; ng];
        for (u, i) in r.users().iter().zip(r.items()) {
            let u = users.binary_search(u).unwrap();
            let i = games.binary_search(i).unwrap();
            x[i][u] = 1.0;
        }
        let w: Vec<Vec<f32>> = match similarity {
            Similarity::Cosine => x
                .iter()
                .map(|row| {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                    row.iter().map(|v| v / norm).collect()
                })
                .collect(),
            Similarity::Bm25 { k1, b } => {
                let lengths: Vec<f32> = x.iter().map(|row| row.iter().sum()).collect();
                let mean = lengths.iter().sum::<f32>() / ng as f32;
                let idf: Vec<f32> = (0..nu)
                    .map(|u| {
                        let count = (0..ng).filter(|i| x[*i][u] > 0.0).count() as f32;
                        (ng as f32).ln() - (1.0 + count).ln()
                    })
                    .collect();
                (0..ng)
                    .map(|i| {
                        (0..nu)
                            .map(|u| {
                                let v = x[i][u];
                                let norm = 1.0 - b + b * lengths[i] / mean;
                                v * (k1 + 1.0) / (k1 * norm + v) * idf[u]
                            })
                            .collect()
                    })
                    .collect()
            }
        };
        (0..ng)
            .map(|i| {
                let mut sims: Vec<(i32, f32)> = (0..ng)
                    .filter(|j| *j != i)
                    .map(|j| (games[j], (0..nu).map(|u| w[i][u] * w[j][u]).sum::<f32>()))
                    .filter(|(_, s)| *s > 0.0)
                    .collect();
                sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                sims.truncate(k);
                sims
            })
            .collect()
    }

    #[test]
    fn similarities_match_brute_force() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut r = Ratings::new();
        for _ in 0..600 {
            // Two taste groups and some noise, so that similarities differ.
            let u = rng.i32(0..120);
            let g = if rng.u8(0..4) == 0 {
                rng.i32(0..30)
            } else {
                (u % 2) * 15 + rng.i32(0..15)
            };
            r.push(u, g * 7, rng.u8(0..2) as f32);
        }
        for similarity in [Similarity::Cosine, Similarity::Bm25 { k1: 1.2, b: 0.75 }] {
            let params = KnnParams {
                neighbours: 5,
                similarity,
            };
            let model = ItemKnn::fit(&r, &params).unwrap();
            let expected = brute_force(&r, similarity, 5);
            for (g, want) in (0..30).map(|g| g * 7).zip(expected) {
                let got = model.neighbours(g).unwrap();
                assert_eq!(got.len(), want.len(), "{similarity} game {g}");
                for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                    assert!(
                        (gs - ws).abs() < 1e-4 * ws.abs().max(1.0),
                        "{gi} {gs} {wi} {ws}"
                    );
                    // Equal similarities may be ordered differently by rounding: another game
                    // is fine if the brute force gives it the same similarity.
                    let listed = want.iter().find(|w| w.0 == *gi).map_or(-1.0, |w| w.1);
                    assert!(gi == wi || (gs - listed).abs() < 1e-4, "{gi} {wi}");
                }
            }
        }
        assert!(ItemKnn::fit(
            &r,
            &KnnParams {
                neighbours: 0,
                ..KnnParams::default()
            }
        )
        .is_err());
    }

    #[test]
    fn cosine_neighbours_are_symmetric() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut r = Ratings::new();
        for _ in 0..400 {
            r.push(rng.i32(0..80), rng.i32(0..20), 1.0);
        }
        let model = ItemKnn::fit(
            &r,
            &KnnParams {
                neighbours: 19,
                similarity: Similarity::Cosine,
            },
        )
        .unwrap();
        for a in 0..20 {
            for (b, s) in model.neighbours(a).unwrap() {
                let back = model.neighbours(b).unwrap();
                let (_, t) = back.iter().find(|(g, _)| *g == a).unwrap();
                assert!((s - t).abs() < 1e-6, "{a} {b}");
            }
        }
    }
}
