//! Typed access to the batches of a raw reader.

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, UInt64Type};
use steam_core::raw::{RawFile, LINE};
use steam_core::{Error, Reject, Result};

/// A raw batch checked against [`RawFile::schema`]: line numbers, malformed-record markers and the
/// file's columns as strings.
#[derive(Debug)]
pub struct RawBatch<'a> {
    lines: &'a UInt64Array,
    errors: &'a StringArray,
    columns: Vec<&'a StringArray>,
}

impl<'a> RawBatch<'a> {
    /// Checks that `batch` has the layout of a raw reader's batches for `file`.
    pub fn new(file: RawFile, batch: &'a RecordBatch) -> Result<Self> {
        let schema = batch.schema();
        let mismatch = |reason: String| Error::Schema {
            target: file.file_name().to_owned(),
            reason,
        };
        let expected = file.schema();
        if schema.fields().len() != expected.fields().len() {
            return Err(mismatch(format!(
                "expected {} columns ({}), got {}",
                expected.fields().len(),
                expected
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                schema.fields().len()
            )));
        }
        for (got, want) in schema.fields().iter().zip(expected.fields()) {
            if got.name() != want.name() || got.data_type() != want.data_type() {
                return Err(mismatch(format!(
                    "expected column {} {}, got {} {}",
                    want.name(),
                    want.data_type(),
                    got.name(),
                    got.data_type()
                )));
            }
        }
        let lines = batch.column(0).as_primitive::<UInt64Type>();
        if lines.null_count() > 0 {
            return Err(mismatch(format!("{LINE} has nulls")));
        }
        let errors = batch.column(1).as_string::<i32>();
        let columns = batch.columns()[2..]
            .iter()
            .map(|c| {
                debug_assert_eq!(c.data_type(), &DataType::Utf8);
                c.as_string::<i32>()
            })
            .collect();
        Ok(RawBatch {
            lines,
            errors,
            columns,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The line on which record `i` starts.
    pub fn line(&self, i: usize) -> u64 {
        self.lines.value(i)
    }

    /// Why record `i` is malformed, as a reject, or `None` when it is well formed.
    pub fn malformed(&self, i: usize) -> Option<Reject> {
        self.errors
            .is_valid(i)
            .then(|| Reject::record(self.line(i), self.errors.value(i)))
    }

    /// Column `c` (an index into [`RawFile::columns`]).
    pub fn column(&self, c: usize) -> &'a StringArray {
        self.columns[c]
    }

    /// The value of column `c` in record `i`; null reads as empty.
    pub fn value(&self, c: usize, i: usize) -> &'a str {
        let col = self.columns[c];
        if col.is_valid(i) {
            col.value(i)
        } else {
            ""
        }
    }
}
