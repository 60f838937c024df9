//! Connectors of steam-recsys: one module per backend, each behind a cargo feature of the same
//! name, each implementing [`steam_core::Source`] and [`steam_core::Sink`].
//!
//! | feature | module | what |
//! |---|---|---|
//! | `files` | [`files`] | raw scraper CSVs (streamed, with line numbers), Parquet files, the rejects ledger |
//! | `postgres` | [`postgres`] | PostgreSQL tables and queries, binary COPY both ways, atomic replace |
//! | `mongodb` | [`mod@mongodb`] | MongoDB collections: insert, upsert, replace (a collection swap), refresh; reads as Arrow |
//! | `redis` | [`mod@redis`] | Redis as the serving store: tables as hashes swapped in whole; lookups by key; reads as Arrow |
//! | `hub` | [`hub`] | the HuggingFace Hub: a dataset's files downloaded, resumed and verified |
//! | `lake` | [`lake`] | object stores by URL (S3, GCS, Azure, local, memory): CSV and Hive-partitioned Parquet layers, DataFusion reads and SQL |
//! | `cluster` | [`cluster`] | the lake's SQL on an Apache DataFusion Ballista cluster; its scheduler and executors with the lakes' stores |
#![warn(missing_docs)]

#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "hub")]
pub mod hub;
#[cfg(feature = "lake")]
pub mod lake;
#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub use steam_core::channel::{
    batch_channel, spawn_blocking_stream, spawn_stream, BatchSender, Completion,
};
