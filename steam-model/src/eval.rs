//! Evaluation: RMSE on ratings (Spark's RegressionEvaluator after a cold-start drop) and
//! precision@k on held-out ratings.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::als::AlsModel;
use crate::ratings::Ratings;
use crate::recommend::top_k;

/// Root-mean-square error of a model's predictions on some ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rmse {
    /// The RMSE over the ratings predicted, `NaN` if there were none.
    pub rmse: f64,
    /// Ratings predicted.
    pub predicted: usize,
    /// Ratings left out because their user or item was not in training (cold start).
    pub dropped: usize,
}

/// Precision@k on held-out ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionAtK {
    /// k.
    pub k: usize,
    /// Mean over the users evaluated of (relevant items in the top k) / k, `NaN` if no user was
    /// evaluated.
    pub precision: f64,
    /// Users evaluated: known to the model, with at least one relevant held-out item.
    pub users: usize,
}

impl AlsModel {
    /// The RMSE of the model's predictions on `ratings`, dropping ratings of users or items the
    /// model has not seen (Spark's `coldStartStrategy = "drop"`).
    pub fn rmse(&self, ratings: &Ratings) -> Rmse {
        const CHUNK: usize = 1 << 16;
        let n = ratings.len();
        let partial: Vec<(f64, usize)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let (mut sum, mut count) = (0f64, 0usize);
                for k in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    if let Some(p) = self.predict(ratings.users()[k], ratings.items()[k]) {
                        let d = f64::from(p) - f64::from(ratings.values()[k]);
                        sum += d * d;
                        count += 1;
                    }
                }
                (sum, count)
            })
            .collect();
        let (sum, predicted) = partial
            .iter()
            .fold((0f64, 0usize), |(s, c), (ps, pc)| (s + ps, c + pc));
        Rmse {
            rmse: if predicted == 0 {
                f64::NAN
            } else {
                (sum / predicted as f64).sqrt()
            },
            predicted,
            dropped: n - predicted,
        }
    }

    /// Precision@k: for each user of `held_out` known to the model with at least one rating ≥
    /// `relevant` there, the share of its top `k` items that are such ratings, where the top k
    /// leaves out the items the user rated in `train` (they cannot be held-out hits).
    pub fn precision_at_k(
        &self,
        train: &Ratings,
        held_out: &Ratings,
        k: usize,
        relevant: f32,
    ) -> PrecisionAtK {
        let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
        for ((u, i), r) in held_out
            .users()
            .iter()
            .zip(held_out.items())
            .zip(held_out.values())
        {
            if *r >= relevant {
                if let (Some(u), Some(i)) = (self.users.get(*u), self.items.get(*i)) {
                    wanted.entry(u).or_default().push(i);
                }
            }
        }
        let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
        for (u, i) in train.users().iter().zip(train.items()) {
            if let Some(u) = self.users.get(*u) {
                if wanted.contains_key(&u) {
                    if let Some(i) = self.items.get(*i) {
                        seen.entry(u).or_default().push(i);
                    }
                }
            }
        }
        let mut users: Vec<(usize, Vec<usize>)> = wanted.into_iter().collect();
        users.sort_unstable_by_key(|(u, _)| *u);
        let items = self.item_rows();
        let hits: Vec<f64> = users
            .par_iter()
            .map(|(u, relevant_items)| {
                let scores = self.scores(&items, *u..*u + 1);
                let scores = scores.as_slice();
                let mut skip = seen.get(u).cloned().unwrap_or_default();
                skip.sort_unstable();
                skip.dedup();
                let top = top_k(scores, k, &skip);
                let hit = top
                    .iter()
                    .filter(|(i, _)| relevant_items.contains(i))
                    .count();
                hit as f64 / k.max(1) as f64
            })
            .collect();
        PrecisionAtK {
            k,
            precision: if hits.is_empty() {
                f64::NAN
            } else {
                hits.iter().sum::<f64>() / hits.len() as f64
            },
            users: hits.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlsParams;

    #[test]
    fn rmse_drops_cold_start_and_is_small_on_a_fit() {
        let mut r = Ratings::new();
        for u in 0..50 {
            for i in 0..10 {
                r.push(u, i, ((u + i) % 2) as f32);
            }
        }
        let model = AlsModel::fit(&r, &AlsParams::default()).unwrap();
        let train = model.rmse(&r);
        assert_eq!(train.predicted, 500);
        assert_eq!(train.dropped, 0);
        assert!(train.rmse < 0.15, "{train:?}");

        let mut cold = Ratings::new();
        cold.push(1000, 1, 1.0);
        cold.push(1, 1000, 1.0);
        cold.push(1, 2, 0.0);
        let e = model.rmse(&cold);
        assert_eq!((e.predicted, e.dropped), (1, 2));
        assert!(model.rmse(&Ratings::new()).rmse.is_nan());
    }

    #[test]
    fn precision_finds_planted_held_out_items() {
        // Users like the items of their own group (same parity); they rated a few of them.
        let mut train = Ratings::new();
        let mut held = Ratings::new();
        let mut rng = fastrand::Rng::with_seed(9);
        for u in 0..300 {
            for _ in 0..15 {
                let i = rng.i32(0..40);
                train.push(u, i, if u % 2 == i % 2 { 1.0 } else { 0.0 });
            }
            held.push(u, rng.i32(0..20) * 2 + u % 2, 1.0);
        }
        let model = AlsModel::fit(&train, &AlsParams::default()).unwrap();
        let p = model.precision_at_k(&train, &held, 10, 1.0);
        assert!(p.users > 250, "{p:?}");
        // A random top 10 of the ~27 unrated items scores ≈ 0.024; the planted structure puts a
        // held-out item the user has not rated among its ~13 unrated liked ones (≈ 0.05).
        assert!(p.precision > 0.035, "{p:?}");
        let none = model.precision_at_k(&train, &Ratings::new(), 10, 1.0);
        assert_eq!(none.users, 0);
    }
}
