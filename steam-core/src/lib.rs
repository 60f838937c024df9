//! Contracts shared by every steam-recsys crate.
//!
//! - [`Source`] and [`Sink`]: an Arrow schema plus a stream of [`RecordBatch`]es in, a
//!   [`WriteSummary`] out. Every connector implements them; sources and sinks never know each other.
//! - [`catalog`]: the eleven processed tables and their Arrow schemas, the contract every connector
//!   shares, and the schemas of the training step's output ([`recommendations_schema`], [`similar_games_schema`]) and of
//!   what serving keeps of it ([`served_schema`]).
//! - [`raw`]: the three raw files scraped from Steam and the columns each must have.
//! - [`Error`]: one error type whose messages name the backend, table, file, line and column.
//! - [`Reject`], [`FileSummary`], [`RunSummary`]: what a run loaded, what it set aside and why.
//! - [`Secret`]: a string that never shows itself in `Debug` or `Display`.
//! - [`channel`]: producers on tasks or blocking threads as [`BatchStream`]s that end cleanly only
//!   on the producer's word ([`spawn_blocking_stream`], [`batch_channel`]), and [`tee`], one stream
//!   into two.
//!
//! This crate has no backend dependencies: only Arrow's core crates, futures and tokio's
//! channels and task spawning.
#![warn(missing_docs)]

pub mod catalog;
pub mod channel;
mod config;
mod error;
pub mod raw;
mod reject;
mod stream;
mod summary;

pub use arrow::array::RecordBatch;
pub use arrow::datatypes::SchemaRef;
pub use catalog::{recommendations_schema, served_schema, similar_games_schema, Table};
pub use channel::{
    batch_channel, spawn_blocking_stream, spawn_stream, tee, BatchSender, Completion,
};
pub use config::Secret;
pub use error::{causes, error_chain, redact_url, Cause, Error, ErrorKind, Result};
pub use reject::Reject;
pub use stream::{batch_stream, check_columns, BatchStream, Sink, Source, TableRef, WriteMode};
pub use summary::{run_id, run_id_after, FileSummary, RunSummary, StageSummary, WriteSummary};
