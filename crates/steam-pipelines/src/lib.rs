//! The steam-recsys pipelines, each a short composition of sources, transforms and sinks, and the
//! `steam-recsys` command line.
//!
//! | pipeline | function | CLI |
//! |---|---|---|
//! | generate raw data | [`generate::generate`] | `steam-recsys generate` |
//! | raw → eleven processed tables | [`process::process`] | `steam-recsys process` |
//! | tables → PostgreSQL (postgres_initialization) | [`postgres_init::postgres_init`] | `steam-recsys postgres-init` |
#![warn(missing_docs)]

pub mod cli;
pub mod generate;
pub mod postgres_init;
pub mod process;

pub use generate::{generate, GenerateOptions, Generated};
pub use postgres_init::{postgres_init, InitInput};
pub use process::{process, ProcessOptions};
