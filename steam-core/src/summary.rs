//! What a run did: rows, rejects, bytes, seconds.

use std::fmt;
use std::time::Duration;

/// What one [`crate::Sink::write`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSummary {
    /// The table written.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// Bytes written to the target (encoded size where the backend says it, else Arrow's size).
    pub bytes: u64,
    /// Wall time of the write.
    pub seconds: f64,
}

impl WriteSummary {
    /// A summary for `table` with a duration.
    pub fn new(table: impl Into<String>, rows: u64, bytes: u64, elapsed: Duration) -> Self {
        WriteSummary {
            table: table.into(),
            rows,
            bytes,
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// How many records of one raw file were loaded, how many an earlier run had loaded already, and
/// how many were set aside.
///
/// `loaded + known + rejected == raw` always holds for a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// The raw file's name.
    pub file: String,
    /// Records read (excluding the header).
    pub raw: u64,
    /// Records that landed in a table.
    pub loaded: u64,
    /// Records set aside in the rejects ledger.
    pub rejected: u64,
    /// Records an earlier run loaded already (the same review again): not loaded twice.
    pub known: u64,
}

impl FileSummary {
    /// Whether every record is accounted for.
    pub fn balanced(&self) -> bool {
        self.loaded + self.known + self.rejected == self.raw
    }
}

/// One stage of a run (a pipeline step) and what it did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageSummary {
    /// The stage's name.
    pub stage: String,
    /// The stage's wall time.
    pub seconds: f64,
}

impl StageSummary {
    /// A stage named `stage` that took `seconds`.
    pub fn new(stage: impl Into<String>, seconds: f64) -> Self {
        StageSummary {
            stage: stage.into(),
            seconds,
        }
    }

    /// A stage named `stage` that started at `started` and ends now.
    pub fn since(stage: impl Into<String>, started: std::time::Instant) -> Self {
        Self::new(stage, started.elapsed().as_secs_f64())
    }
}

/// What a whole run did: raw files read, tables written, stages timed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Per raw file: records read, loaded and rejected.
    pub files: Vec<FileSummary>,
    /// Per table written.
    pub tables: Vec<WriteSummary>,
    /// Per stage.
    pub stages: Vec<StageSummary>,
}

impl RunSummary {
    /// The write summary of `table`, if it was written.
    pub fn table(&self, table: &str) -> Option<&WriteSummary> {
        self.tables.iter().find(|t| t.table == table)
    }

    /// The summary of raw file `file`, if it was read.
    pub fn file(&self, file: &str) -> Option<&FileSummary> {
        self.files.iter().find(|f| f.file == file)
    }

    /// Total rejected records over all files.
    pub fn rejected(&self) -> u64 {
        self.files.iter().map(|f| f.rejected).sum()
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.files.is_empty() {
            writeln!(
                f,
                "{:<28} {:>12} {:>12} {:>12}",
                "raw file", "records", "loaded", "rejected"
            )?;
            for s in &self.files {
                writeln!(
                    f,
                    "{:<28} {:>12} {:>12} {:>12}",
                    s.file, s.raw, s.loaded, s.rejected
                )?;
            }
        }
        if !self.tables.is_empty() {
            if !self.files.is_empty() {
                writeln!(f)?;
            }
            writeln!(
                f,
                "{:<28} {:>12} {:>12} {:>9}",
                "table", "rows", "bytes", "seconds"
            )?;
            for t in &self.tables {
                writeln!(
                    f,
                    "{:<28} {:>12} {:>12} {:>9.3}",
                    t.table, t.rows, t.bytes, t.seconds
                )?;
            }
        }
        if !self.stages.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:<28} {:>9}", "stage", "seconds")?;
            for s in &self.stages {
                writeln!(f, "{:<28} {:>9.3}", s.stage, s.seconds)?;
            }
        }
        Ok(())
    }
}

/// A new id for one run of a write (a load): the time in nanoseconds since 1970, zero-padded so
/// that ids sort as the runs started, and the process id, so that runs started in the same
/// nanosecond differ, such as `01764489600123456789-0000004242`. Sinks mark what a run wrote with
/// it, and readers show it to say which run they answer from.
pub fn run_id() -> String {
    run_id_after(None)
}

/// [`run_id`], but sorting after `latest` (an id of this form) even if the clock is behind it (a
/// clock set back, another host's): then it is one nanosecond past `latest`.
pub fn run_id_after(latest: Option<&str>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let after = latest
        .and_then(|id| id.split('-').next())
        .and_then(|n| n.parse::<u128>().ok())
        .map_or(0, |n| n + 1);
    format!("{:020}-{:010}", now.max(after), std::process::id())
}
