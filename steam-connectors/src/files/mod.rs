//! Local files: the scraper's raw CSVs, Parquet files, and the rejects ledger.
//!
//! - [`RawCsvReader`] / [`RawCsvSource`]: a raw file as batches in the layout of
//!   [`steam_core::raw`]: each record's starting line, a marker for malformed records, the needed
//!   columns as strings. Streamed in batches of a fixed number of records.
//! - [`ParquetDirSink`]: each table as `<dir>/<table>.parquet`, replaced atomically.
//! - [`ParquetFileSource`]: a Parquet file as a stream of batches.
//! - [`RejectLedger`]: `<dir>/_rejected/<raw file>.csv`, one row per record set aside.
//! - [`DirTransaction`]: files written together into a directory and published together.

mod ledger;
mod parquet;
mod publish;
mod raw_csv;

pub use self::ledger::RejectLedger;
#[cfg(feature = "lake")]
pub(crate) use self::parquet::{check_table_name, writer_properties};
pub use self::parquet::{ParquetDirSink, ParquetFileSource};
pub use self::publish::DirTransaction;
pub use self::raw_csv::{RawCsvReader, RawCsvSource};

use std::path::{Path, PathBuf};

/// A temporary path beside `path`, for writing before an atomic rename into place.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
