//! The trained model, [`AlsModel`], and its training loop: items then users (or users then
//! items by conjugate gradient), each iteration.

use rayon::prelude::*;
use steam_core::{Error, Result};

use super::cg::solve_side_cg;
use super::explicit::solve_side;
use super::implicit::solve_side_implicit;
use super::layout::{initial_factors, uniform_factors, Grouped, IdIndex};
use super::params::{AlsParams, Confidence, Feedback, Solver};
use crate::ratings::Ratings;

/// A trained model: one factor vector per user and per item seen in training.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    pub(crate) params: AlsParams,
    pub(crate) rank: usize,
    pub(crate) users: IdIndex,
    pub(crate) items: IdIndex,
    pub(crate) user_factors: Vec<f32>,
    pub(crate) item_factors: Vec<f32>,
}

impl AlsModel {
    /// Trains on `ratings`: factors initialized at random (deterministic for the seed), then
    /// `iterations` rounds of solving all items, then all users, in parallel. The implicit model
    /// reads each rating's hours played and sign as [`AlsParams::confidence`] says; the explicit
    /// model fits the ratings. An empty input is an error.
    pub fn fit(ratings: &Ratings, params: &AlsParams) -> Result<AlsModel> {
        train(ratings, params, None)
    }

    /// The parameters the model was trained with.
    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    /// The same factors under `params` (as the parameters they were fitted with).
    pub(crate) fn with_params(mut self, params: AlsParams) -> Self {
        self.params = params;
        self
    }

    /// The number of latent factors.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of users with factors.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// The number of items with factors.
    pub fn num_items(&self) -> usize {
        self.items.len()
    }

    /// The user ids, ascending.
    pub fn user_ids(&self) -> &[i32] {
        &self.users.ids
    }

    /// The item ids, ascending.
    pub fn item_ids(&self) -> &[i32] {
        &self.items.ids
    }

    /// The factors of a user, if the user was in the training data.
    pub fn user_factors(&self, user: i32) -> Option<&[f32]> {
        let u = self.users.get(user)?;
        Some(&self.user_factors[u * self.rank..(u + 1) * self.rank])
    }

    /// The factors of an item, if the item was in the training data.
    pub fn item_factors(&self, item: i32) -> Option<&[f32]> {
        let i = self.items.get(item)?;
        Some(&self.item_factors[i * self.rank..(i + 1) * self.rank])
    }

    /// The predicted rating or preference (the dot product of the factors, in f32 as Spark
    /// computes it), or
    /// `None` for a user or item not seen in training (Spark's cold start).
    pub fn predict(&self, user: i32, item: i32) -> Option<f32> {
        let u = self.user_factors(user)?;
        let i = self.item_factors(item)?;
        Some(dot(u, i))
    }
}

/// [`AlsModel::fit`], or [`AlsModel::fit_warm`] with `previous`: the initial factors of the users
/// and items `previous` knows are its factors (the caller checked its rank), the others zero.
pub(super) fn train(
    ratings: &Ratings,
    params: &AlsParams,
    previous: Option<&AlsModel>,
) -> Result<AlsModel> {
    params.check()?;
    if ratings.is_empty() {
        return Err(Error::Config {
            key: "ratings".into(),
            reason: "no ratings to train on".into(),
        });
    }
    let rank = params.rank;
    let users = IdIndex::new(ratings.users());
    let items = IdIndex::new(ratings.items());
    let dense = |index: &IdIndex, ids: &[i32]| -> Vec<u32> {
        ids.par_iter()
            .map(|id| index.get(*id).unwrap_or_default() as u32)
            .collect()
    };
    let u = dense(&users, ratings.users());
    let i = dense(&items, ratings.items());
    let by_user = match params.feedback {
        Feedback::Explicit => Grouped::new(users.len(), &u, &i, ratings.values()),
        Feedback::Implicit => {
            let alpha = params.alpha as f32;
            let signed: Vec<f32> = ratings
                .values()
                .par_iter()
                .zip(ratings.hours())
                .map(|(r, h)| {
                    let c = 1.0 + alpha * h.ln_1p();
                    match params.confidence {
                        Confidence::Signed if *r <= 0.0 => -c,
                        _ => c,
                    }
                })
                .collect();
            Grouped::merged(users.len(), &u, &i, &signed)
        }
    };
    drop((u, i));
    // Grouped from the user groups, so each item's users come in ascending order and the
    // item solves read the users' factors front to back instead of at random.
    let owners: Vec<u32> = (0..users.len())
        .flat_map(|e| std::iter::repeat_n(e as u32, by_user.offsets[e + 1] - by_user.offsets[e]))
        .collect();
    let by_item = Grouped::new(items.len(), &by_user.others, &owners, &by_user.values);
    drop(owners);

    // The `implicit` library's initialization for conjugate gradient, Spark's otherwise.
    let init = match (params.feedback, params.solver) {
        (Feedback::Implicit, Solver::ConjugateGradient { .. }) => uniform_factors,
        _ => initial_factors,
    };
    // Warm: what the previous model does not know starts at zero, so the first solves rest on the
    // known factors alone (random factors of many new users would pull every item's first solve
    // away from its known place) and each new id is solved from them.
    let (mut user_factors, mut item_factors) = match previous {
        Some(_) => (vec![0.0; users.len() * rank], vec![0.0; items.len() * rank]),
        None => (
            init(users.len(), rank, params.seed, 1),
            init(items.len(), rank, params.seed, 2),
        ),
    };
    if let Some(previous) = previous {
        carry_over(
            &mut user_factors,
            &users,
            &previous.users,
            &previous.user_factors,
            rank,
        );
        carry_over(
            &mut item_factors,
            &items,
            &previous.items,
            &previous.item_factors,
            rank,
        );
    }

    let reg = params.reg_param;
    match (params.feedback, params.solver) {
        (Feedback::Implicit, Solver::ConjugateGradient { steps }) => {
            // The `implicit` library's order: users first, then items.
            for _ in 0..params.iterations {
                solve_side_cg(&mut user_factors, &by_user, &item_factors, rank, reg, steps);
                solve_side_cg(&mut item_factors, &by_item, &user_factors, rank, reg, steps);
            }
        }
        (feedback, _) => {
            let solve = match feedback {
                Feedback::Explicit => solve_side,
                Feedback::Implicit => solve_side_implicit,
            };
            for _ in 0..params.iterations {
                solve(&mut item_factors, &by_item, &user_factors, rank, reg)?;
                solve(&mut user_factors, &by_user, &item_factors, rank, reg)?;
            }
        }
    }
    Ok(AlsModel {
        params: params.clone(),
        rank,
        users,
        items,
        user_factors,
        item_factors,
    })
}

/// Overwrites the factors (`rank` each, in the order of `index`) of every id `from` knows with
/// its factors `from_factors`.
fn carry_over(
    factors: &mut [f32],
    index: &IdIndex,
    from: &IdIndex,
    from_factors: &[f32],
    rank: usize,
) {
    factors
        .par_chunks_mut(rank)
        .zip(index.ids.par_iter())
        .for_each(|(out, id)| {
            if let Some(e) = from.get(*id) {
                out.copy_from_slice(&from_factors[e * rank..(e + 1) * rank]);
            }
        });
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The implicit model with the regularization of a small data set.
    fn small() -> AlsParams {
        AlsParams {
            reg_param: 0.1,
            ..AlsParams::default()
        }
    }

    /// Ratings from a planted rank-2 structure: two taste groups of users and of items, a user
    /// likes (1.0) the items of its group and not (0.0) the others.
    fn planted(users: i32, items: i32, per_user: usize, seed: u64) -> Ratings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut r = Ratings::new();
        for u in 0..users {
            for _ in 0..per_user {
                let i = rng.i32(0..items);
                let like = (u % 2) == (i % 2);
                r.push(u, i, if like { 1.0 } else { 0.0 });
            }
        }
        r
    }

    #[test]
    fn recovers_a_planted_structure() {
        let all = planted(400, 60, 12, 1);
        let (train, test) = all.split(0.2, 3).unwrap();
        let model = AlsModel::fit(&train, &AlsParams::spark_explicit()).unwrap();
        let (mut hits, mut n) = (0, 0);
        for k in 0..test.len() {
            let (u, i, r) = (test.users()[k], test.items()[k], test.values()[k]);
            if let Some(p) = model.predict(u, i) {
                n += 1;
                if (p > 0.5) == (r > 0.5) {
                    hits += 1;
                }
            }
        }
        assert!(n > 800, "{n} predictions");
        let accuracy = hits as f64 / n as f64;
        assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let r = planted(100, 20, 8, 2);
        let a = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        let b = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        assert_eq!(a, b);
        let c = AlsModel::fit(
            &r,
            &AlsParams {
                seed: 43,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap();
        assert_ne!(a.user_factors, c.user_factors);
    }

    #[test]
    fn regularization_scales_with_rating_count() {
        // One user, one item, rating 1, rank 1: with factor y for the item, the user's solution is
        // x = y / (y² + λ·1); with λ·n the fixed point of the two solves satisfies
        // x·y = 1 - λ, i.e. prediction 0.9 for λ = 0.1.
        let mut r = Ratings::new();
        r.push(1, 1, 1.0);
        let params = AlsParams {
            rank: 1,
            iterations: 50,
            ..AlsParams::spark_explicit()
        };
        let model = AlsModel::fit(&r, &params).unwrap();
        let p = model.predict(1, 1).unwrap();
        assert!((p - 0.9).abs() < 1e-3, "{p}");
        // Three copies of the rating: λ·3 against three equal terms, the same fixed point.
        r.push(1, 1, 1.0);
        r.push(1, 1, 1.0);
        let p3 = AlsModel::fit(&r, &params).unwrap().predict(1, 1).unwrap();
        assert!((p3 - 0.9).abs() < 1e-3, "{p3}");
        assert_eq!(model.predict(2, 1), None);
    }
    #[test]
    fn bad_parameters_and_empty_input_are_errors() {
        let r = planted(10, 5, 3, 4);
        let e = AlsModel::fit(
            &r,
            &AlsParams {
                rank: 0,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("rank"), "{e}");
        let e = AlsModel::fit(
            &r,
            &AlsParams {
                reg_param: f64::NAN,
                ..AlsParams::spark_explicit()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("reg-param"), "{e}");
        let e = AlsModel::fit(&Ratings::new(), &AlsParams::spark_explicit()).unwrap_err();
        assert!(e.to_string().contains("no ratings"), "{e}");
    }

    /// Implicit interactions from planted taste groups: a user of group g plays up to 6 distinct
    /// games, of group g 9 times in 10 (another game otherwise), with hours drawn at random.
    fn planted_plays(users: i32, groups: i32, per_group: i32, seed: u64) -> Ratings {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut r = Ratings::new();
        for u in 0..users {
            let g = u % groups;
            let mut played = Vec::new();
            for _ in 0..6 {
                let game = if rng.u8(..10) < 9 {
                    g * per_group + rng.i32(0..per_group)
                } else {
                    rng.i32(0..groups * per_group)
                };
                if !played.contains(&game) {
                    played.push(game);
                    r.push_review(u, game, 1.0, rng.f32() * 50.0, None);
                }
            }
        }
        r
    }

    #[test]
    fn implicit_recovers_planted_taste_groups() {
        use crate::{Holdout, Popularity, RandomItems};
        let all = planted_plays(600, 4, 10, 5);
        let (train, test) = all.split(0.2, 1).unwrap();
        let model = AlsModel::fit(&train, &small()).unwrap();
        let holdout = Holdout::new(&train, &test);
        assert!(holdout.users() > 350, "{}", holdout.users());
        let ours = holdout.evaluate(&model, 5);
        let popular = holdout.evaluate(&Popularity::fit(&train), 5);
        let random = holdout.evaluate(&RandomItems::fit(&train, 1), 5);
        // A user's held-out game is one of the ~5 unplayed games of its group 9 times in 10:
        // the top 5 of a model that found the groups holds it most of the time; popularity and
        // random do not know the groups (1 in 7 of the unplayed games is the right group's).
        assert!(ours.recall > 0.6, "{ours:?}");
        assert!(ours.recall > 2.5 * popular.recall, "{ours:?} {popular:?}");
        assert!(ours.recall > 2.5 * random.recall, "{ours:?} {random:?}");
        assert!(ours.ndcg > 2.5 * popular.ndcg, "{ours:?} {popular:?}");
    }

    #[test]
    fn implicit_user_factors_minimize_the_weighted_loss() {
        // After the last half-iteration each user's factors minimize, given the item factors,
        // Σ over every item of c·(p − xᵀy)² + λ‖x‖², c = 1 + α·ln(1 + hours) on played items
        // (duplicates adding up) and 1 elsewhere, p = 1 on recommended plays, 0 elsewhere. Its
        // gradient, computed densely here, vanishes.
        let mut r = planted_plays(40, 2, 6, 9);
        r.push_review(0, 7, 0.0, 3.0, None); // a negative review
        r.push_review(0, 7, 1.0, 2.0, None); // the same game again, recommended
        r.push_review(1, 1, 0.0, 10.0, None);
        let params = AlsParams {
            rank: 4,
            reg_param: 0.3,
            alpha: 2.0,
            ..small()
        };
        let model = AlsModel::fit(&r, &params).unwrap();
        let mut conf: std::collections::HashMap<(i32, i32), (f64, bool)> = Default::default();
        for k in 0..r.len() {
            let e = conf.entry((r.users()[k], r.items()[k])).or_default();
            e.0 += 1.0 + params.alpha * f64::from(r.hours()[k]).ln_1p();
            e.1 |= r.values()[k] > 0.0;
        }
        for &user in model.user_ids() {
            let x = model.user_factors(user).unwrap();
            let mut grad = vec![0f64; params.rank];
            for &item in model.item_ids() {
                let y = model.item_factors(item).unwrap();
                let (c, p) = match conf.get(&(user, item)) {
                    Some((c, liked)) => (*c, if *liked { 1.0 } else { 0.0 }),
                    None => (1.0, 0.0),
                };
                let pred: f64 = x
                    .iter()
                    .zip(y)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                for d in 0..params.rank {
                    grad[d] += c * (pred - p) * f64::from(y[d]);
                }
            }
            for d in 0..params.rank {
                grad[d] += params.reg_param * f64::from(x[d]);
                assert!(grad[d].abs() < 1e-4, "user {user}: gradient {grad:?}");
            }
        }
    }

    #[test]
    fn a_negative_review_counts_against_the_game_with_signed_confidence() {
        let mut r = planted_plays(200, 2, 8, 4);
        // User 0 (group 0) reviewed a game of its group it had not played badly, after many hours.
        let game = (0..8)
            .find(|g| !(0..r.len()).any(|k| r.users()[k] == 0 && r.items()[k] == *g))
            .unwrap();
        r.push_review(0, game, 0.0, 500.0, None);
        let signed = AlsModel::fit(&r, &small()).unwrap();
        let hours = AlsModel::fit(
            &r,
            &AlsParams {
                confidence: Confidence::Hours,
                ..small()
            },
        )
        .unwrap();
        let s = signed.predict(0, game).unwrap();
        let h = hours.predict(0, game).unwrap();
        assert!(h > 0.5, "played a lot, read as liked: {h}");
        assert!(s < 0.3 && s < h - 0.4, "signed {s}, hours {h}");
    }

    #[test]
    fn the_same_model_on_any_number_of_threads() {
        let r = planted_plays(500, 3, 7, 6);
        let fit = |threads: usize, params: &AlsParams| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| AlsModel::fit(&r, params).unwrap())
        };
        let cg = AlsParams {
            solver: Solver::ConjugateGradient { steps: 3 },
            ..small()
        };
        for params in [small(), AlsParams::spark_explicit(), cg] {
            let one = fit(1, &params);
            assert_eq!(one, fit(2, &params), "{params}");
            assert_eq!(one, fit(3, &params), "{params}");
        }
    }

    #[test]
    fn model_and_confidence_names_parse_and_print() {
        for f in [Feedback::Implicit, Feedback::Explicit] {
            assert_eq!(f.to_string().parse::<Feedback>().unwrap(), f);
        }
        for c in [Confidence::Hours, Confidence::Signed] {
            assert_eq!(c.to_string().parse::<Confidence>().unwrap(), c);
        }
        let e = "als".parse::<Feedback>().unwrap_err().to_string();
        assert!(e.contains("als"), "{e}");
        let e = AlsModel::fit(
            &planted_plays(4, 2, 2, 1),
            &AlsParams {
                alpha: -1.0,
                ..small()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("alpha"), "{e}");
    }
}
