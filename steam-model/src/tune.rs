//! Holding reviews out ([`Split`]) and choosing a model, family and parameters, on a validation
//! split ([`tune`] over [`auto_grid`]).

use std::fmt;
use std::time::Instant;

use steam_core::{Error, Result};

use crate::als::{AlsModel, AlsParams, Confidence, Feedback};
use crate::ease::{EaseParams, EASE_MAX_ITEMS};
use crate::eval::{Holdout, RankingMetrics};
use crate::knn::{KnnParams, Similarity};
use crate::models::{BlendParams, Family, Model, ModelParams};
use crate::ratings::Ratings;
use crate::sparse::Weighting;

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

/// The grid `--model auto` searches: popularity; item-kNN (cosine and BM25, K 20 and 100);
/// EASE at λ 50, 300 and 1500, binary, and at λ 1500 weighted by hours played (α 0.3; the
/// same as binary where no review has hours), each on at most [`EASE_MAX_ITEMS`] games, the most
/// reviewed;
/// ALS ([`default_grid`] around `base`, by successive halving); and blends of the best personal
/// candidate with popularity at weights 0.1, 0.3 and 1.
pub fn auto_grid(base: &AlsParams) -> Vec<ModelParams> {
    let mut grid = vec![ModelParams::Popularity];
    for similarity in [Similarity::Cosine, Similarity::Bm25 { k1: 1.2, b: 0.75 }] {
        for neighbours in [20, 100] {
            grid.push(ModelParams::ItemKnn(KnnParams {
                neighbours,
                similarity,
            }));
        }
    }
    for lambda in [50.0, 300.0, 1500.0] {
        grid.push(ModelParams::Ease(EaseParams {
            lambda,
            weighting: Weighting::Binary,
            max_items: EASE_MAX_ITEMS,
        }));
    }
    grid.push(ModelParams::Ease(EaseParams {
        lambda: 1500.0,
        weighting: Weighting::Hours { alpha: 0.3 },
        max_items: EASE_MAX_ITEMS,
    }));
    grid.extend(default_grid(base).into_iter().map(ModelParams::Als));
    for weight in [0.1, 0.3, 1.0] {
        grid.push(ModelParams::Blend(BlendParams {
            personal: None,
            weight,
        }));
    }
    grid
}

/// One point of the grid and how it did on the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The parameters (a blend's personal model resolved).
    pub params: ModelParams,
    /// Its metrics on the validation reviews.
    pub metrics: RankingMetrics,
    /// Seconds to fit it.
    pub fit_seconds: f64,
    /// How far it was taken: empty for a full fit; for an ALS candidate that successive halving
    /// stopped, the iterations it ran (its metrics are those of that shorter fit).
    pub note: String,
}

/// What [`tune`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Every candidate, in grid order.
    pub candidates: Vec<Candidate>,
    /// The index of the chosen one: the simplest ([`ModelParams::complexity`], then the earlier)
    /// of those within [`TIE`] of the best NDCG@k.
    pub best: usize,
    /// Reviews fitted on, and held out for validation.
    pub fit_reviews: usize,
    /// Reviews held out for validation.
    pub validation_reviews: usize,
    /// Users the candidates were evaluated on.
    pub validation_users: usize,
}

/// NDCG within this fraction of the best counts as a tie in [`tune`], which the simpler model
/// wins: differences that small do not survive another split.
pub const TIE: f64 = 0.01;

impl Tuning {
    /// The chosen candidate.
    pub fn chosen(&self) -> &Candidate {
        &self.candidates[self.best]
    }
}

/// [`tune`] ranks candidates on at most this many validation users, drawn at random: at 50,000 the
/// standard error of an NDCG@10 near 0.15 is under 1% of it (and smaller still for the difference
/// of two candidates on the same users), while every further user costs every candidate a
/// top-10 list.
pub const MAX_VALIDATION_USERS: usize = 50_000;

/// The seed of the draw of [`MAX_VALIDATION_USERS`].
const VALIDATION_SEED: u64 = 0x5eed;

/// ALS candidates above this many are tuned by successive halving.
const HALVING_FROM: usize = 4;

/// Chooses among `grid` on a validation split of `train` (by `split`, never touching any test
/// data): each candidate is fitted on the rest and ranked by NDCG@`k` on the validation reviews
/// (of at most [`MAX_VALIDATION_USERS`] users); within [`TIE`] of the best, the simplest wins.
///
/// With more than three ALS candidates, they go through successive halving: all run a third of
/// their iterations, the best third of them (by NDCG, rounded down, at least one) continue from
/// their factors to their full iterations. A blend without its personal model
/// ([`BlendParams::personal`] `None`) blends the best personal candidate, reusing its fit. Where
/// no review has hours played, an EASE candidate weighted by hours is the binary one of the same
/// λ: it takes that one's metrics (fit seconds 0) instead of a second fit. An empty grid, or a
/// split leaving no user to evaluate, is an error.
pub fn tune(train: &Ratings, grid: &[ModelParams], split: &Split, k: usize) -> Result<Tuning> {
    if grid.is_empty() {
        return Err(Error::Config {
            key: "grid".into(),
            reason: "no candidate parameters".into(),
        });
    }
    let (fit, validation) = split.apply(train)?;
    let holdout = Holdout::new(&fit, &validation).sample(MAX_VALIDATION_USERS, VALIDATION_SEED);
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
    let mut candidates: Vec<Option<Candidate>> = vec![None; grid.len()];
    // The best personal candidate's fitted model, for the blends.
    let mut best_personal: Option<(f64, Model)> = None;
    let keep = |ndcg: f64, model: Model, best: &mut Option<(f64, Model)>| {
        if best.as_ref().is_none_or(|(b, _)| ndcg > *b) {
            *best = Some((ndcg, model));
        }
    };
    let als: Vec<usize> = (0..grid.len())
        .filter(|n| grid[*n].als().is_some())
        .collect();
    // Without hours played, a model weighted by hours is its binary twin: not fitted twice.
    let no_hours = fit.hours().iter().all(|h| *h == 0.0);
    for (n, params) in grid.iter().enumerate() {
        if matches!(params, ModelParams::Als(_) | ModelParams::Blend(_)) {
            continue;
        }
        let twin = match params {
            ModelParams::Ease(e) if no_hours && e.weighting != Weighting::Binary => {
                let binary = ModelParams::Ease(EaseParams {
                    weighting: Weighting::Binary,
                    ..e.clone()
                });
                grid[..n].iter().position(|p| *p == binary)
            }
            _ => None,
        };
        if let Some(done) = twin.and_then(|t| candidates[t].clone()) {
            candidates[n] = Some(Candidate {
                params: params.clone(),
                fit_seconds: 0.0,
                ..done
            });
            continue;
        }
        let t = Instant::now();
        let model = Model::fit(&fit, params)?;
        let fit_seconds = t.elapsed().as_secs_f64();
        let metrics = holdout.evaluate(&model, k);
        if params.family() != Family::Popularity {
            keep(metrics.ndcg, model, &mut best_personal);
        }
        candidates[n] = Some(Candidate {
            params: params.clone(),
            metrics,
            fit_seconds,
            note: String::new(),
        });
    }
    // ALS: successive halving over a third of the iterations when there are many candidates.
    let halving = als.len() >= HALVING_FROM;
    let mut round: Vec<(usize, AlsModel, f64, RankingMetrics)> = Vec::new();
    for n in &als {
        let params = grid[*n].als().cloned().unwrap_or_default();
        let first = if halving {
            AlsParams {
                iterations: params.iterations.div_ceil(3).max(1),
                ..params.clone()
            }
        } else {
            params.clone()
        };
        let t = Instant::now();
        let model = AlsModel::fit(&fit, &first)?;
        let seconds = t.elapsed().as_secs_f64();
        let metrics = holdout.evaluate(&model, k);
        round.push((*n, model, seconds, metrics));
    }
    if halving {
        round.sort_by(|a, b| b.3.ndcg.total_cmp(&a.3.ndcg).then(a.0.cmp(&b.0)));
        let survivors = (round.len() / 3).max(1);
        for (rank, (n, model, seconds, metrics)) in round.into_iter().enumerate() {
            let params = grid[n].als().cloned().unwrap_or_default();
            let first = params.iterations.div_ceil(3).max(1);
            if rank >= survivors || first >= params.iterations {
                candidates[n] = Some(Candidate {
                    params: ModelParams::Als(params.clone()),
                    metrics,
                    fit_seconds: seconds,
                    note: if first < params.iterations {
                        format!(
                            "stopped by successive halving after {first} of {} iterations",
                            params.iterations
                        )
                    } else {
                        String::new()
                    },
                });
                if first >= params.iterations {
                    keep(metrics.ndcg, Model::Als(model), &mut best_personal);
                }
                continue;
            }
            let rest = AlsParams {
                iterations: params.iterations - first,
                ..params.clone()
            };
            let t = Instant::now();
            let full = AlsModel::fit_warm(&fit, &rest, &model)?.with_params(params.clone());
            let metrics = holdout.evaluate(&full, k);
            keep(metrics.ndcg, Model::Als(full), &mut best_personal);
            candidates[n] = Some(Candidate {
                params: ModelParams::Als(params),
                metrics,
                fit_seconds: seconds + t.elapsed().as_secs_f64(),
                note: String::new(),
            });
        }
    } else {
        for (n, model, seconds, metrics) in round {
            keep(metrics.ndcg, Model::Als(model), &mut best_personal);
            candidates[n] = Some(Candidate {
                params: grid[n].clone(),
                metrics,
                fit_seconds: seconds,
                note: String::new(),
            });
        }
    }
    // Blends.
    let mut personal = best_personal.map(|(_, m)| m);
    for (n, params) in grid.iter().enumerate() {
        let ModelParams::Blend(b) = params else {
            continue;
        };
        let t = Instant::now();
        let base = match &b.personal {
            Some(p) => Model::fit(&fit, p)?,
            None => match personal.take() {
                Some(m) => m,
                None => continue, // no personal candidate: nothing to blend
            },
        };
        let blended = Model::blend(&fit, base, b.weight);
        let fit_seconds = t.elapsed().as_secs_f64();
        let metrics = holdout.evaluate(&blended, k);
        candidates[n] = Some(Candidate {
            params: blended.params(),
            metrics,
            fit_seconds,
            note: String::new(),
        });
        if b.personal.is_none() {
            if let Model::Blend(b) = blended {
                personal = Some(*b.personal);
            }
        }
    }
    let candidates: Vec<Candidate> = candidates.into_iter().flatten().collect();
    let top = candidates
        .iter()
        .map(|c| c.metrics.ndcg)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let mut best = 0;
    for (n, c) in candidates.iter().enumerate() {
        let tied = |c: &Candidate| c.metrics.ndcg >= top * (1.0 - TIE);
        let chosen = &candidates[best];
        if tied(c) && (!tied(chosen) || c.params.complexity() < chosen.params.complexity()) {
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
        let grid: Vec<ModelParams> = vec![
            starved.into(),
            AlsParams::spark_explicit().into(),
            small.into(),
        ];
        let tuning = tune(&r, &grid, &Split::Latest, 5).unwrap();
        assert_eq!(tuning.candidates.len(), 3);
        assert_ne!(tuning.best, 0, "{tuning:?}");
        let top = tuning
            .candidates
            .iter()
            .map(|c| c.metrics.ndcg)
            .fold(0.0, f64::max);
        assert!(
            tuning.chosen().metrics.ndcg >= top * (1.0 - TIE),
            "{tuning:?}"
        );
        assert!(tuning.validation_users > 300, "{tuning:?}");
        assert_eq!(tuning.fit_reviews + tuning.validation_reviews, r.len());
        // The same validation split and fit, evaluated again, give the same figures.
        let (fit, validation) = Split::Latest.apply(&r).unwrap();
        let model = AlsModel::fit(&fit, tuning.chosen().params.als().unwrap()).unwrap();
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

    /// Reviews of `users` users, six each, drawn from a skewed popularity over 40 games; with
    /// `groups` > 1, each user draws only among the games of its group (40 / groups of them).
    fn reviews(users: i32, groups: i32, seed: u64) -> Ratings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut r = Ratings::new();
        let per = 40 / groups;
        for u in 0..users {
            let g = u % groups;
            let mut seen = Vec::new();
            while seen.len() < 6 {
                // Game rank by a skewed draw: low ranks are much more likely.
                let rank = ((rng.f64().powi(3)) * per as f64) as i32;
                let game = g * per + rank;
                if !seen.contains(&game) {
                    seen.push(game);
                    r.push_review(u, game, 1.0, 0.0, None);
                }
            }
        }
        r
    }

    #[test]
    fn auto_tuning_picks_popularity_without_personal_signal_and_a_personal_model_with_it() {
        let base = AlsParams {
            iterations: 6,
            ..AlsParams::default()
        };
        let split = Split::Random {
            holdout: 0.2,
            seed: 5,
        };
        // No personal signal: every user draws from the same popularity.
        let flat = tune(&reviews(1500, 1, 1), &auto_grid(&base), &split, 5).unwrap();
        assert_eq!(
            flat.chosen().params,
            ModelParams::Popularity,
            "{:#?}",
            flat.candidates
        );
        // Four taste groups: a personal model (or a blend) wins, clearly above popularity.
        let grouped = tune(&reviews(1500, 4, 2), &auto_grid(&base), &split, 5).unwrap();
        let chosen = grouped.chosen();
        assert_ne!(chosen.params.family(), Family::Popularity);
        let popularity = grouped
            .candidates
            .iter()
            .find(|c| c.params == ModelParams::Popularity)
            .unwrap();
        assert!(
            chosen.metrics.ndcg > 1.3 * popularity.metrics.ndcg,
            "{grouped:#?}"
        );
        // Every candidate of the grid is listed; the blends name their personal model.
        assert_eq!(grouped.candidates.len(), auto_grid(&base).len());
        for c in &grouped.candidates {
            if let ModelParams::Blend(b) = &c.params {
                assert!(b.personal.is_some(), "{c:?}");
            }
        }
        let halved = grouped
            .candidates
            .iter()
            .filter(|c| !c.note.is_empty())
            .count();
        assert_eq!(halved, 10 - 10 / 3, "{grouped:#?}");
    }

    #[test]
    fn without_hours_an_hours_weighted_ease_is_its_binary_twin() {
        let ease = |weighting| {
            ModelParams::Ease(EaseParams {
                lambda: 1500.0,
                weighting,
                max_items: EASE_MAX_ITEMS,
            })
        };
        let grid = [
            ease(Weighting::Binary),
            ease(Weighting::Hours { alpha: 0.3 }),
        ];
        let split = Split::Random {
            holdout: 0.2,
            seed: 5,
        };
        let t = tune(&reviews(600, 4, 2), &grid, &split, 5).unwrap();
        let (binary, hours) = (&t.candidates[0], &t.candidates[1]);
        assert_eq!(hours.params, grid[1]);
        assert_eq!(hours.metrics, binary.metrics);
        assert_eq!(hours.fit_seconds, 0.0);
        // The same model fitted again gives the same metrics: the reuse loses nothing.
        let again = tune(&reviews(600, 4, 2), &grid[..1], &split, 5).unwrap();
        assert_eq!(again.candidates[0].metrics, hours.metrics);
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
