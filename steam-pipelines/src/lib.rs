//! The steam-recsys pipelines, each a short composition of sources, transforms and sinks, and the
//! `steam-recsys` command line.
//!
//! | pipeline | function | CLI |
//! |---|---|---|
//! | fetch the real raw files from HuggingFace | [`download::download`] | `steam-recsys download` |
//! | generate raw data | [`generate::generate`] | `steam-recsys generate` |
//! | raw → eleven processed tables | [`process::process`] | `steam-recsys process` |
//! | tables → PostgreSQL (postgres_initialization) | [`postgres_init::postgres_init`] | `steam-recsys postgres-init` |
//! | lake → MongoDB and Redis (gcs_to_mongodb) | [`serving::lake_to_serving`] | `steam-recsys lake-to-mongodb` |
//! | the recommendations HTTP API (Redis, then MongoDB) | [`serve::serve`] | `steam-recsys serve` |
//! | check every backend (connection_testing) | [`serving::connection_test`] | `steam-recsys connection-test` |
//! | PostgreSQL → lake, raw CSV + conformed Parquet (source_to_gcs_*) | [`source_to_lake::source_to_lake`] | `steam-recsys source-to-lake` |
//! | the whole loop, generate (or given raw files) → … → MongoDB | [`run_all::run_all`] | `steam-recsys run all` |
//! | per-game and per-user statistics of the conformed reviews → game_stats, user_stats | [`stats::stats`] | `steam-recsys stats` (`--cluster`: on Ballista) |
//! | ALS training → user_recommendations (the reference's Spark notebook) | [`train::train`] | `steam-recsys train` |
//!
//! | the lake's SQL, here or on a Ballista cluster | [`cluster::lake_sql`] | `steam-recsys sql`, `steam-recsys cluster scheduler\|executor` |
//!
//! Connection settings can come from a configuration file of named profiles: see [`config`].
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "lake")]
pub mod cluster;
#[cfg(feature = "cli")]
pub mod config;
#[cfg(feature = "lake")]
pub mod evaluate;
/// Fetching the real raw files: the hub connector ([`steam_connectors::hub`]).
#[cfg(feature = "hub")]
pub use steam_connectors::hub as download;
pub mod generate;
#[cfg(feature = "postgres")]
pub mod postgres_init;
#[cfg(feature = "files")]
pub mod process;
#[cfg(feature = "cli")]
pub mod run_all;
#[cfg(feature = "cli")]
pub mod runs;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(all(
    feature = "postgres",
    feature = "lake",
    feature = "mongodb",
    feature = "redis"
))]
pub mod serving;
#[cfg(all(feature = "postgres", feature = "lake"))]
pub mod source_to_lake;
#[cfg(feature = "lake")]
pub mod stats;
#[cfg(feature = "lake")]
pub mod train;

#[cfg(feature = "lake")]
pub use cluster::{lake_sql, lake_tables};
#[cfg(feature = "cli")]
pub use config::{
    load_dotenv, read_dotenv, ConfigFile, LakeProfile, MongoProfile, PostgresProfile, Profile,
};
#[cfg(feature = "hub")]
pub use download::{download, DownloadOptions, DownloadSummary, FileDownload};
#[cfg(feature = "lake")]
pub use evaluate::{
    evaluate, tune_reviews, EvaluateOptions, EvaluateReport, EvaluateRow, TuneOptions, TuneReport,
};
pub use generate::{generate, GenerateOptions, Generated};
#[cfg(feature = "postgres")]
pub use postgres_init::{postgres_init, postgres_load, prior_from_postgres, InitInput};
#[cfg(feature = "files")]
pub use process::{prior_from_dir, process, ProcessOptions};
#[cfg(feature = "cli")]
pub use run_all::{run_all, RawInput, RunAllOptions, RunAllReport};
#[cfg(feature = "cli")]
pub use runs::{RunKind, RunLog, RunRecord};
#[cfg(feature = "serve")]
pub use serve::{serve, serve_until, ServeOptions};
#[cfg(all(
    feature = "postgres",
    feature = "lake",
    feature = "mongodb",
    feature = "redis"
))]
pub use serving::{
    connection_test, lake_to_mongodb, lake_to_mongodb_with, lake_to_serving, Check, ServingLoad,
    ServingTables,
};
#[cfg(all(feature = "postgres", feature = "lake"))]
pub use source_to_lake::{source_to_lake, SourceToLakeOptions, TableGroup};
#[cfg(feature = "lake")]
pub use stats::{stats, StatsOptions};
#[cfg(feature = "lake")]
pub use train::{train, TrainOptions, TrainReport};
