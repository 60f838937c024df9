//! The user × game matrix the item-item models share: every review an interaction, weighted as
//! [`Weighting`] says, in compressed rows by user and by game.

use std::fmt;

use rayon::prelude::*;

use crate::als::IdIndex;
use crate::ratings::Ratings;

/// How a review weighs in the user × game matrix of the item-item models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// Every review 1, whatever it says: the user played the game.
    Binary,
    /// 1 + α·ln(1 + hours played), the implicit ALS confidence.
    Hours {
        /// The scale α.
        alpha: f32,
    },
}

impl Weighting {
    fn weight(&self, hours: f32) -> f32 {
        match self {
            Weighting::Binary => 1.0,
            Weighting::Hours { alpha } => 1.0 + alpha * hours.ln_1p(),
        }
    }
}

impl fmt::Display for Weighting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weighting::Binary => f.write_str("binary"),
            Weighting::Hours { alpha } => write!(f, "hours (α {alpha})"),
        }
    }
}

/// A sparse matrix in compressed rows: row `r`'s entries are `offsets[r]..offsets[r + 1]` of
/// `cols` (sorted within a row) and `vals`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Csr {
    pub(crate) offsets: Vec<usize>,
    pub(crate) cols: Vec<u32>,
    pub(crate) vals: Vec<f32>,
}

impl Csr {
    /// Rows.
    pub(crate) fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `r`: its columns and values.
    pub(crate) fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let range = self.offsets[r]..self.offsets[r + 1];
        (&self.cols[range.clone()], &self.vals[range])
    }

    /// The same matrix with `cols` columns, in compressed rows by column (columns sorted within
    /// each row, since rows are visited in order).
    pub(crate) fn transpose(&self, cols: usize) -> Csr {
        let mut offsets = vec![0usize; cols + 1];
        for c in &self.cols {
            offsets[*c as usize + 1] += 1;
        }
        for c in 0..cols {
            offsets[c + 1] += offsets[c];
        }
        let mut next = offsets.clone();
        let mut t_cols = vec![0u32; self.cols.len()];
        let mut t_vals = vec![0f32; self.vals.len()];
        for r in 0..self.rows() {
            let (cs, vs) = self.row(r);
            for (c, v) in cs.iter().zip(vs) {
                let at = &mut next[*c as usize];
                t_cols[*at] = r as u32;
                t_vals[*at] = *v;
                *at += 1;
            }
        }
        Csr {
            offsets,
            cols: t_cols,
            vals: t_vals,
        }
    }

    /// The same matrix with each value replaced by `f(row, col, value)`.
    pub(crate) fn map(&self, f: impl Fn(usize, u32, f32) -> f32 + Sync) -> Csr {
        let mut vals = self.vals.clone();
        for r in 0..self.rows() {
            let range = self.offsets[r]..self.offsets[r + 1];
            for k in range {
                vals[k] = f(r, self.cols[k], self.vals[k]);
            }
        }
        Csr {
            offsets: self.offsets.clone(),
            cols: self.cols.clone(),
            vals,
        }
    }
}

/// The training reviews as a user × game matrix: the users and games by dense index, and each
/// user's games (its profile) with their weights. A (user, game) pair reviewed twice counts once,
/// with the larger weight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profiles {
    pub(crate) users: IdIndex,
    pub(crate) items: IdIndex,
    pub(crate) by_user: Csr,
}

impl Profiles {
    pub(crate) fn new(ratings: &Ratings, weighting: Weighting) -> Profiles {
        let users = IdIndex::new(ratings.users());
        let items = IdIndex::new(ratings.items());
        let mut triples: Vec<(u32, u32, f32)> = ratings
            .users()
            .par_iter()
            .zip(ratings.items())
            .zip(ratings.hours())
            .map(|((u, i), h)| {
                (
                    users.get(*u).unwrap_or_default() as u32,
                    items.get(*i).unwrap_or_default() as u32,
                    weighting.weight(*h),
                )
            })
            .collect();
        triples.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(b.2.total_cmp(&a.2)));
        triples.dedup_by_key(|t| (t.0, t.1));
        let mut offsets = vec![0usize; users.len() + 1];
        for t in &triples {
            offsets[t.0 as usize + 1] += 1;
        }
        for u in 0..users.len() {
            offsets[u + 1] += offsets[u];
        }
        Profiles {
            users,
            items,
            by_user: Csr {
                offsets,
                cols: triples.iter().map(|t| t.1).collect(),
                vals: triples.iter().map(|t| t.2).collect(),
            },
        }
    }

    /// The profile of user id `user`: dense game indices and weights, or `None` for a user the
    /// training data does not have.
    pub(crate) fn of(&self, user: i32) -> Option<(&[u32], &[f32])> {
        self.users.get(user).map(|u| self.by_user.row(u))
    }

    /// The games' review counts, by dense index.
    pub(crate) fn item_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.items.len()];
        for c in &self.by_user.cols {
            counts[*c as usize] += 1;
        }
        counts
    }
}
