//! A raw record that was set aside, and why.

use std::fmt;

/// One raw record that did not land in a table: where it was and why it was set aside.
///
/// Rejects are written to the rejects ledger (`_rejected/<raw file>.csv`) so that every raw record
/// is accounted for: loaded + rejected = raw records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The 1-based line on which the record starts in its file (the header is line 1).
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// The value at fault, as read, when one is.
    pub value: Option<String>,
    /// Why the record was set aside, such as `unknown game` or `not a number`.
    pub reason: String,
}

impl Reject {
    /// A reject for the whole record.
    pub fn record(line: u64, reason: impl Into<String>) -> Self {
        Reject {
            line,
            column: None,
            value: None,
            reason: reason.into(),
        }
    }

    /// A reject for one value of a column.
    pub fn value(
        line: u64,
        column: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Reject {
            line,
            column: Some(column.into()),
            value: Some(value.into()),
            reason: reason.into(),
        }
    }

    /// The reject as a strict-mode error for `file`.
    pub fn into_error(self, file: &str) -> crate::Error {
        crate::Error::BadInput {
            file: file.to_owned(),
            line: self.line,
            column: self.column.unwrap_or_else(|| "(record)".to_owned()),
            value: self.value.unwrap_or_default(),
            reason: self.reason,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(v) = &self.value {
            write!(f, " (value: {v:?})")?;
        }
        Ok(())
    }
}
