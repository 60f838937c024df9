//! steam-recsys: typed, streaming data pipelines for a Steam game recommender.
//!
//! This crate re-exports the workspace's members:
//! - [`core`] (`steam-core`): the `Source`/`Sink` contracts, the table catalog, errors, summaries;
//! - [`transforms`] (`steam-transforms`): pure Arrow cleaning and conforming;
//! - [`connectors`] (`steam-connectors`): one module per backend, behind cargo features;
//! - [`model`] (`steam-model`): ALS training, evaluation and top-k recommendations;
//! - [`pipelines`] (`steam-pipelines`): the documented pipelines and the CLI.
#![warn(missing_docs)]

pub use steam_connectors as connectors;
pub use steam_core as core;
#[cfg(feature = "model")]
pub use steam_model as model;
#[cfg(feature = "pipelines")]
pub use steam_pipelines as pipelines;
#[cfg(feature = "transforms")]
pub use steam_transforms as transforms;
