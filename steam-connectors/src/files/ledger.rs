//! The rejects ledger: one CSV per raw file listing every record set aside.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use steam_core::{Error, Reject, Result};

use super::staging::StagingArea;

/// `<dir>/_rejected/<raw file name>.csv`: one row per record set aside, with the columns `file`,
/// `line`, `column`, `value`, `reason`.
///
/// Written in a staging area of `_rejected` (a hidden, locked directory: see
/// [`DirTransaction`](super::DirTransaction)) and renamed into place by [`RejectLedger::finish`],
/// so a ledger on disk is always complete; dropped unfinished, the ledger leaves nothing. A ledger
/// with only its header means nothing was set aside.
#[derive(Debug)]
pub struct RejectLedger {
    file: String,
    path: PathBuf,
    tmp: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    count: u64,
    area: StagingArea,
}

impl RejectLedger {
    /// The name of the ledger directory inside an output directory.
    pub const DIR: &'static str = "_rejected";

    /// Starts the ledger of raw file `file` (a file name such as `steam_game_reviews.csv`) in `dir`.
    pub fn create(dir: impl AsRef<Path>, file: &str) -> Result<Self> {
        let ledger_dir = dir.as_ref().join(Self::DIR);
        std::fs::create_dir_all(&ledger_dir).map_err(|e| Error::io(&ledger_dir, e))?;
        let path = ledger_dir.join(file);
        let area = StagingArea::create(&ledger_dir)?;
        let tmp = area.path().join(file);
        let handle = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(handle));
        writer
            .write_record(["file", "line", "column", "value", "reason"])
            .map_err(|e| ledger_error(&tmp, e))?;
        Ok(RejectLedger {
            file: file.to_owned(),
            path,
            tmp,
            writer,
            count: 0,
            area,
        })
    }

    /// Appends rejects.
    pub fn write(&mut self, rejects: &[Reject]) -> Result<()> {
        for r in rejects {
            self.writer
                .write_record([
                    self.file.as_str(),
                    &r.line.to_string(),
                    r.column.as_deref().unwrap_or(""),
                    r.value.as_deref().unwrap_or(""),
                    &r.reason,
                ])
                .map_err(|e| ledger_error(&self.tmp, e))?;
        }
        self.count += rejects.len() as u64;
        Ok(())
    }

    /// Rejects written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes the ledger and moves it into place; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.writer.flush().map_err(|e| Error::io(&self.tmp, e))?;
        self.area.publish(&self.file, &self.path)?;
        self.area.remove();
        Ok(self.path)
    }
}

fn ledger_error(path: &Path, e: csv::Error) -> Error {
    Error::backend("files", path.display().to_string(), e).doing("rejects ledger")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rejects_with_file_line_column_value_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = RejectLedger::create(dir.path(), "r.csv").unwrap();
        l.write(&[
            Reject::value(7, "hours_played", "a,b\"c", "not a number"),
            Reject::record(9, "9 fields, expected 8"),
        ])
        .unwrap();
        assert_eq!(l.count(), 2);
        assert!(
            !dir.path().join("_rejected/r.csv").exists(),
            "not visible before finish"
        );
        let p = l.finish().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("_rejected"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["r.csv"], "nothing but the ledger");
        let text = std::fs::read_to_string(p).unwrap();
        assert_eq!(
            text,
            "file,line,column,value,reason\nr.csv,7,hours_played,\"a,b\"\"c\",not a number\nr.csv,9,,,\"9 fields, expected 8\"\n"
        );
    }

    #[test]
    fn a_ledger_dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = RejectLedger::create(dir.path(), "r.csv").unwrap();
        l.write(&[Reject::record(9, "9 fields, expected 8")])
            .unwrap();
        drop(l);
        let left = std::fs::read_dir(dir.path().join("_rejected"))
            .unwrap()
            .count();
        assert_eq!(left, 0);
    }
}
