//! Local files: the scraper's raw CSVs, Parquet files, and the rejects ledger.
//!
//! - [`RawCsvReader`] / [`RawCsvSource`]: a raw file as batches in the layout of
//!   [`steam_core::raw`]: each record's starting line, a marker for malformed records, the needed
//!   columns as strings. Streamed in batches of a fixed number of records.
//! - [`ParquetDirSink`]: each table as `<dir>/<table>.parquet`, replaced atomically.
//! - [`ParquetFileSource`]: a Parquet file as a stream of batches.
//! - [`RejectLedger`]: `<dir>/_rejected/<raw file>.csv`, one row per record set aside.
//! - [`DirTransaction`]: files written together into a directory and published together.
//!
//! Every file is written in a staging area — a hidden directory `.staging-ID` beside where it is
//! published, with a lock file `.staging-ID.lock` its writer holds locked — and published with a
//! rename (a whole directory, by [`DirTransaction`], with a directory exchange on Linux). What a
//! killed writer leaves is removed by the next writer into the same directory, which tells a dead
//! writer's area from a live one's by whether it can take the area's lock: not by process ids,
//! which mean nothing across hosts and containers sharing a directory. Local-directory lakes
//! (feature `lake`) stage their uploads the same way.

mod ledger;
mod parquet;
mod publish;
mod raw_csv;
pub(crate) mod staging;

pub use self::ledger::RejectLedger;
#[cfg(feature = "lake")]
pub(crate) use self::parquet::{check_table_name, writer_properties};
pub use self::parquet::{ParquetDirSink, ParquetFileSource};
pub use self::publish::DirTransaction;
pub use self::raw_csv::{RawCsvReader, RawCsvSource};

use steam_core::{Error, Result};

/// Runs blocking file-system work `f` (`what`, for the error if it panics) on a blocking thread,
/// off the runtime's worker threads.
pub(crate) async fn unblock<T, F>(what: &str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::from_join(what, e))?
}

/// The names in `dir`, sorted (for tests).
#[cfg(test)]
pub(crate) fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
