//! Offline training of steam-recsys: explicit-feedback alternating least squares as Spark ML's
//! `ALS` runs it, its evaluation, and the top-k recommendations serving reads. Pure computation on
//! Arrow batches: no I/O, no async.
//!
//! - [`Ratings`]: (user, item, rating) triples read from batches (games_reviews' `user_id`,
//!   `game_id`, `recommendation` as 1/0 by default), and their random split.
//! - [`AlsModel::fit`]: rank-k factors by alternating least squares — each entity's normal
//!   equations in f64 with Spark's regularization λ·(its number of ratings), solved by Cholesky
//!   (nalgebra), entities solved in parallel (rayon); items first, then users, each iteration.
//!   Deterministic for a seed, whatever the number of threads.
//! - [`AlsModel::rmse`] and [`AlsModel::precision_at_k`]: evaluation, with Spark's cold-start
//!   drop.
//! - [`AlsModel::recommend_for_all_users`]: Spark's `recommendForAllUsers(k)` as Arrow batches of
//!   [`steam_core::recommendations_schema`].
//!
//! ```
//! use steam_model::{AlsModel, AlsParams, Ratings};
//!
//! let mut ratings = Ratings::new();
//! for user in 0..20 {
//!     for game in 0..6 {
//!         ratings.push(user, game, ((user + game) % 2) as f32);
//!     }
//! }
//! let model = AlsModel::fit(&ratings, &AlsParams::default())?;
//! assert!(model.rmse(&ratings).rmse < 0.2);
//! let batch = model.recommend_for_all_users(3, 1024).next().unwrap()?;
//! assert_eq!(batch.num_rows(), 20);
//! # Ok::<(), steam_core::Error>(())
//! ```
#![warn(missing_docs)]

mod als;
mod eval;
mod ratings;
mod recommend;

pub use als::{AlsModel, AlsParams};
pub use eval::{PrecisionAtK, Rmse};
pub use ratings::{RatingColumns, Ratings};
pub use steam_core::recommendations_schema;
