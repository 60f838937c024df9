//! Holding reviews out ([`Split`]) and choosing a model by a small grid on a validation split
//! ([`tune`]).

use std::fmt;
use std::time::Instant;

use steam_core::{Error, Result};

use crate::als::{AlsModel, AlsParams, Confidence, Feedback};
use crate::eval::{Holdout, RankingMetrics};
use crate::ratings::Ratings;

/// How reviews are held out for evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// Each review independently, with probability `holdout` (Spark's `randomSplit`).
    Random {
        /// The expected fraction held out, in [0, 1).
        holdout: f64,
        /// The seed of the draw.
        seed: u64,
    },
    /// Each user's most recent review (users with one review keep it): train on the past,
    /// predict the next, as production would.
    Latest,
}

impl Split {
    /// Splits `ratings` into (kept, held out).
    pub fn apply(&self, ratings: &Ratings) -> Result<(Ratings, Ratings)> {
        match self {
            Split::Random { holdout, seed } => ratings.split(*holdout, *seed),
            Split::Latest => Ok(ratings.split_latest()),
        }
    }

    /// The split's name: `random` or `latest`.
    pub fn name(&self) -> &'static str {
        match self {
            Split::Random { .. } => "random",
            Split::Latest => "latest",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Split::Random { holdout, seed } => {
                write!(f, "random ({:.0}% held out, seed {seed})", holdout * 100.0)
            }
            Split::Latest => f.write_str("latest (each user's most recent review held out)"),
        }
    }
}

/// The kind of split by name, `random` or `latest`, before its parameters are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitKind {
    /// [`Split::Random`].
    #[default]
    Random,
    /// [`Split::Latest`].
    Latest,
}

impl SplitKind {
    /// The split, with `holdout` and `seed` for a random one.
    pub fn with(self, holdout: f64, seed: u64) -> Split {
        match self {
            SplitKind::Random => Split::Random { holdout, seed },
            SplitKind::Latest => Split::Latest,
        }
    }

    /// The split of training reviews that tuning validates on, beside an evaluation split of
    /// this kind with `holdout` and `seed`: the same kind, a fifth held out if random and the
    /// evaluation holds out nothing, the next seed (so validation and evaluation draws differ).
    pub fn validation(self, holdout: f64, seed: u64) -> Split {
        let holdout = if holdout > 0.0 { holdout } else { 0.2 };
        self.with(holdout, seed.wrapping_add(1))
    }
}

named_enum!(SplitKind, "split", { Random => "random", Latest => "latest" });

/// The small grid [`tune`] searches by default, around `base` (its rank, iterations and seed):
/// the implicit model with signed confidence at λ 0.1, 10, 100 and 300 and α 0.3 and 1; the
/// implicit model with hours-only confidence at λ 100, α 1; and the reference's explicit model.
/// (The implicit λ is not scaled by counts, so the best one grows with the number of users: on
/// generated data, 100 to 300 at a million reviews.)
pub fn default_grid(base: &AlsParams) -> Vec<AlsParams> {
    let mut grid = Vec::new();
    for reg_param in [0.1, 10.0, 100.0, 300.0] {
        for alpha in [0.3, 1.0] {
            grid.push(AlsParams {
                feedback: Feedback::Implicit,
                reg_param,
                alpha,
                confidence: Confidence::Signed,
                ..base.clone()
            });
        }
    }
    grid.push(AlsParams {
        feedback: Feedback::Implicit,
        reg_param: 100.0,
        alpha: 1.0,
        confidence: Confidence::Hours,
        ..base.clone()
    });
    grid.push(AlsParams {
        iterations: base.iterations,
        seed: base.seed,
        ..AlsParams::spark_explicit()
    });
    grid
}

/// One point of the grid and how it did on the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The parameters.
    pub params: AlsParams,
    /// Its metrics on the validation reviews.
    pub metrics: RankingMetrics,
    /// Seconds to fit it.
    pub fit_seconds: f64,
}

/// What [`tune`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Every candidate, in grid order.
    pub candidates: Vec<Candidate>,
    /// The index of the best one: highest NDCG@k, then precision@k, then the earlier.
    pub best: usize,
    /// Reviews fitted on, and held out for validation.
    pub fit_reviews: usize,
    /// Reviews held out for validation.
    pub validation_reviews: usize,
    /// Users the candidates were evaluated on.
    pub validation_users: usize,
}

impl Tuning {
    /// The chosen candidate.
    pub fn chosen(&self) -> &Candidate {
        &self.candidates[self.best]
    }
}

/// Chooses among `grid` on a validation split of `train` (by `split`, never touching any test
/// data): each candidate is fitted on the rest and ranked by NDCG@`k` on the validation reviews.
/// An empty grid, or a split leaving no user to evaluate, is an error.
pub fn tune(train: &Ratings, grid: &[AlsParams], split: &Split, k: usize) -> Result<Tuning> {
    if grid.is_empty() {
        return Err(Error::Config {
            key: "grid".into(),
            reason: "no candidate parameters".into(),
        });
    }
    let (fit, validation) = split.apply(train)?;
    let holdout = Holdout::new(&fit, &validation);
    if holdout.users() == 0 {
        return Err(Error::Config {
            key: "split".into(),
            reason: format!(
                "the {} validation split of {} reviews leaves no user with a held-out \
                 recommendation to evaluate",
                split.name(),
                train.len()
            ),
        });
    }
    let mut candidates = Vec::with_capacity(grid.len());
    for params in grid {
        let t = Instant::now();
        let model = AlsModel::fit(&fit, params)?;
        let fit_seconds = t.elapsed().as_secs_f64();
        candidates.push(Candidate {
            params: params.clone(),
            metrics: holdout.evaluate(&model, k),
            fit_seconds,
        });
    }
    let better = |a: &RankingMetrics, b: &RankingMetrics| {
        a.ndcg > b.ndcg || (a.ndcg == b.ndcg && a.precision > b.precision)
    };
    let mut best = 0;
    for (n, c) in candidates.iter().enumerate() {
        if better(&c.metrics, &candidates[best].metrics) {
            best = n;
        }
    }
    Ok(Tuning {
        best,
        fit_reviews: fit.len(),
        validation_reviews: validation.len(),
        validation_users: holdout.users(),
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_picks_the_best_ndcg_on_a_validation_split_of_the_training_data() {
        // Planted groups: users play the games of their group, and recommend them.
        let mut rng = fastrand::Rng::with_seed(3);
        let mut r = Ratings::new();
        for u in 0..400 {
            for _ in 0..6 {
                let game = (u % 4) * 8 + rng.i32(0..8);
                r.push_review(u, game, 1.0, rng.f32() * 30.0, Some(rng.i32(0..100)));
            }
        }
        // A starved model (rank 1, heavy regularization) cannot separate four groups.
        let starved = AlsParams {
            rank: 1,
            reg_param: 1000.0,
            ..AlsParams::default()
        };
        let small = AlsParams {
            reg_param: 0.1,
            ..AlsParams::default()
        };
        let grid = vec![starved, AlsParams::spark_explicit(), small];
        let tuning = tune(&r, &grid, &Split::Latest, 5).unwrap();
        assert_eq!(tuning.candidates.len(), 3);
        assert_ne!(tuning.best, 0, "{tuning:?}");
        for c in &tuning.candidates {
            assert!(tuning.chosen().metrics.ndcg >= c.metrics.ndcg, "{tuning:?}");
        }
        assert!(tuning.validation_users > 300, "{tuning:?}");
        assert_eq!(tuning.fit_reviews + tuning.validation_reviews, r.len());
        // The same validation split and fit, evaluated again, give the same figures.
        let (fit, validation) = Split::Latest.apply(&r).unwrap();
        let model = AlsModel::fit(&fit, &tuning.chosen().params).unwrap();
        let again = Holdout::new(&fit, &validation).evaluate(&model, 5);
        assert_eq!(again, tuning.chosen().metrics);
        let e = tune(&r, &[], &Split::Latest, 5).unwrap_err().to_string();
        assert!(e.contains("no candidate"), "{e}");
        let mut single = Ratings::new();
        single.push(1, 1, 1.0);
        let e = tune(&single, &grid, &Split::Latest, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no user"), "{e}");
    }

    #[test]
    fn the_default_grid_holds_both_models() {
        let grid = default_grid(&AlsParams::default());
        assert_eq!(grid.len(), 10);
        assert!(grid.iter().any(|p| p.feedback == Feedback::Explicit));
        assert!(grid.contains(&AlsParams::default()));
        assert_eq!("latest".parse::<SplitKind>().unwrap(), SplitKind::Latest);
        assert!("time".parse::<SplitKind>().is_err());
    }
}
