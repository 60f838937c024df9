//! The steam-recsys pipelines, each a short composition of sources, transforms and sinks, and the
//! `steam-recsys` command line.
//!
//! | pipeline | function | CLI |
//! |---|---|---|
//! | generate raw data | [`generate::generate`] | `steam-recsys generate` |
//! | raw → eleven processed tables | [`process::process`] | `steam-recsys process` |
#![warn(missing_docs)]

pub mod cli;
pub mod generate;
pub mod process;

pub use generate::{generate, GenerateOptions, Generated};
pub use process::{process, ProcessOptions};
