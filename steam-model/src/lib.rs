//! Offline training of steam-recsys: alternating least squares for implicit feedback (the default:
//! every review an interaction, confidence from hours played) and for explicit feedback (Spark
//! ML's `ALS`, the reference's model), ranking evaluation against baselines, and the top-k
//! recommendations serving reads. Pure computation on Arrow batches: no I/O, no async.
//!
//! - [`Ratings`]: reviews read from batches (games_reviews' `user_id`, `game_id`,
//!   `recommendation` as 1/0, `hours_played`, `date`), split at random or by each user's latest
//!   review.
//! - [`AlsModel::fit`]: rank-k factors by alternating least squares, [`AlsParams`] choosing the
//!   [`Feedback`]. Implicit: each entity's exact least-squares solution over every game through
//!   the YᵀY precomputation (Hu, Koren and Volinsky 2008), confidence 1 + α·ln(1 + hours),
//!   [`Confidence`] saying how a negative review counts. Explicit: Spark's normal equations with
//!   λ·(number of ratings). Both in f64, solved by Cholesky (nalgebra; implicit users with few
//!   interactions through the Woodbury identity), entities in parallel
//!   (rayon), items then users each iteration; deterministic for a seed whatever the number of
//!   threads.
//! - [`AlsModel::fit_warm`]: the same training from a previous model's factors (new users and
//!   games starting at zero), [`WARM_ITERATIONS`] iterations for a day of new reviews;
//!   [`AlsModel::factor_batches`] and [`AlsModel::from_factor_batches`] keep the factors between
//!   runs as Arrow batches ([`AlsModel::factors_schema`]).
//! - [`Holdout::evaluate`]: precision, recall, NDCG and MAP at k and catalog coverage of any
//!   [`Recommender`]: the model, the [`Popularity`] and [`RandomItems`] baselines, or [`Lists`]
//!   computed elsewhere. [`AlsModel::rmse`]: Spark's RMSE after the cold-start drop.
//! - [`tune`]: a small grid ([`default_grid`]) ranked by NDCG@k on a validation [`Split`] of
//!   the training data.
//! - [`AlsModel::recommend_unseen`] (games the user has not reviewed) and
//!   [`AlsModel::recommend_for_all_users`] (Spark's `recommendForAllUsers(k)`): Arrow batches of
//!   [`steam_core::recommendations_schema`].
//!
//! ```
//! use steam_model::{AlsModel, AlsParams, Holdout, Ratings};
//!
//! // Four taste groups of six games; each user played the games of its group but one, held out.
//! let mut train = Ratings::new();
//! let mut test = Ratings::new();
//! for user in 0..40 {
//!     let group = user % 4;
//!     for game in group * 6..group * 6 + 6 {
//!         let held_out = game == group * 6 + (user / 4) % 6;
//!         let into = if held_out { &mut test } else { &mut train };
//!         into.push_review(user, game, 1.0, 20.0, None);
//!     }
//! }
//! // λ for a small data set (the default's suits about a million reviews).
//! let params = AlsParams { reg_param: 0.1, ..AlsParams::default() };
//! let model = AlsModel::fit(&train, &params)?;
//! let holdout = Holdout::new(&train, &test);
//! let ours = holdout.evaluate(&model, 1);
//! assert_eq!(ours.precision, 1.0);
//! let batch = model.recommend_unseen(&train, 3, 1024).next().unwrap()?;
//! assert_eq!(batch.num_rows(), 40);
//! # Ok::<(), steam_core::Error>(())
//! ```
#![warn(missing_docs)]

/// `Display` and `FromStr` for an enum of unit variants by their names; `$key` names the setting
/// in parse errors.
macro_rules! named_enum {
    ($ty:ident, $key:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $name,)+
                })
            }
        }

        impl std::str::FromStr for $ty {
            type Err = steam_core::Error;
            fn from_str(s: &str) -> steam_core::Result<Self> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(steam_core::Error::Config {
                        key: $key.into(),
                        reason: format!("{other:?} is not {}", [$($name),+].join(" or ")),
                    }),
                }
            }
        }
    };
}

mod als;
mod ease;
mod eval;
mod knn;
mod models;
mod ratings;
mod recommend;
mod sparse;
mod tune;

pub use als::{AlsModel, AlsParams, Confidence, Feedback, Solver, WARM_ITERATIONS};
pub use ease::{EaseModel, EaseParams, EASE_MAX_ITEMS};
pub use eval::{Holdout, Lists, Popularity, RandomItems, RankingMetrics, Recommender, Rmse};
pub use knn::{ItemKnn, KnnParams, Similarity};
pub use models::{Blend, BlendParams, Family, Model, ModelParams, PopularityModel};
pub use ratings::{RatingColumns, Ratings};
pub use sparse::Weighting;
pub use steam_core::recommendations_schema;
pub use tune::{
    auto_grid, default_grid, tune, Candidate, Split, SplitKind, Tuning, MAX_VALIDATION_USERS, TIE,
};
