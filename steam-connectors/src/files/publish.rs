//! Files written together into a directory and published together.

use std::path::{Path, PathBuf};

use steam_core::{Error, Result};

/// Files written together and published together into a directory, as `PostgresLoad` is for the
/// tables of one PostgreSQL schema: everything is written into
/// a hidden staging directory inside the target (`.staging-PID-NANOS`, which readers that skip
/// names starting with `.` never see), and [`DirTransaction::commit`] moves every file into place
/// (subdirectories kept), each with an atomic rename. Dropped without a commit (the run failed),
/// the transaction removes its staging directory and the target keeps its previous files.
///
/// [`DirTransaction::begin`] also removes staging directories that killed runs left behind (those
/// whose process no longer runs, where `/proc` tells; elsewhere, those a day old).
///
/// ```
/// use steam_connectors::files::{DirTransaction, ParquetDirSink};
///
/// # fn main() -> steam_core::Result<()> {
/// let out = tempfile::tempdir().unwrap();
/// let tx = DirTransaction::begin(out.path())?;
/// let sink = ParquetDirSink::new(tx.dir()); // write tables with it…
/// std::fs::write(tx.dir().join("notes.txt"), "ok").unwrap();
/// tx.commit()?; // …and they appear in `out` together
/// assert!(out.path().join("notes.txt").is_file());
/// # let _ = sink;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DirTransaction {
    out: PathBuf,
    staging: PathBuf,
    done: bool,
}

const STAGING: &str = ".staging-";

impl DirTransaction {
    /// Starts writing into `out` (created when missing).
    pub fn begin(out: impl Into<PathBuf>) -> Result<Self> {
        let out = out.into();
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        remove_stale_staging(&out)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let staging = out.join(format!("{STAGING}{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(DirTransaction {
            out,
            staging,
            done: false,
        })
    }

    /// Where to write: the staging directory.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Moves every file written into place, keeping subdirectories, and removes the staging
    /// directory.
    pub fn commit(mut self) -> Result<()> {
        publish(&self.staging, &self.out)?;
        self.done = true;
        std::fs::remove_dir_all(&self.staging).map_err(|e| Error::io(&self.staging, e))
    }
}

impl Drop for DirTransaction {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Moves every file under `from` to the same place under `to`.
fn publish(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            publish(&entry.path(), &target)?;
        } else {
            std::fs::rename(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

/// Removes the staging directories in `out` of runs that no longer run.
fn remove_stale_staging(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let age = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok());
        if crate::process::gone(pid, age, std::time::Duration::from_secs(86_400)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_appear_together_on_commit_and_never_without_it() {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("a.parquet"), "old a").unwrap();
        // A run that fails: nothing changes, nothing is left.
        {
            let tx = DirTransaction::begin(out.path()).unwrap();
            std::fs::write(tx.dir().join("a.parquet"), "new a").unwrap();
        }
        assert_eq!(names(out.path()), ["a.parquet"]);
        assert_eq!(
            std::fs::read_to_string(out.path().join("a.parquet")).unwrap(),
            "old a"
        );
        // A run that commits, with a subdirectory.
        let tx = DirTransaction::begin(out.path()).unwrap();
        std::fs::write(tx.dir().join("a.parquet"), "new a").unwrap();
        std::fs::create_dir_all(tx.dir().join("_rejected")).unwrap();
        std::fs::write(tx.dir().join("_rejected/x.csv"), "ledger").unwrap();
        tx.commit().unwrap();
        assert_eq!(names(out.path()), ["_rejected", "a.parquet"]);
        assert_eq!(
            std::fs::read_to_string(out.path().join("a.parquet")).unwrap(),
            "new a"
        );
        assert!(out.path().join("_rejected/x.csv").is_file());
    }

    #[test]
    fn a_killed_runs_staging_is_removed_and_a_running_ones_kept() {
        let out = tempfile::tempdir().unwrap();
        let dead = out.path().join(".staging-4000000000-1");
        let live = out
            .path()
            .join(format!(".staging-{}-1", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d).unwrap();
        }
        let tx = DirTransaction::begin(out.path()).unwrap();
        assert!(!dead.exists() && live.exists());
        drop(tx);
    }
}
