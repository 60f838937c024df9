//! Staging areas: where files are written before they are published with a rename, and the one
//! cleaner of what dead writers left behind.
//!
//! A staging area is a hidden directory `.staging-ID` beside the place its content is published
//! to, with a lock file `.staging-ID.lock` next to it. Its writer holds an exclusive lock on the
//! lock file ([`File::try_lock`]) from before the directory exists until after it is removed, and
//! the operating system releases that lock when the writer's process ends, however it ends
//! (`SIGKILL`, a crash, a lost container). A cleaner removes an area only when it can take the
//! lock itself. The judgement needs no process id and no clock, so it holds wherever the directory
//! is shared: between containers (other process-id namespaces) and, on file systems whose locks
//! reach across hosts (NFS with its lock manager, SMB), between hosts.
//!
//! In order, a writer: creates the lock file (a new name, `create_new`), locks it, checks that the
//! name still refers to the file it locked (a cleaner may have removed a lock file in the instant
//! before it was locked: then it takes another name), and only then creates the directory; at the
//! end it removes the directory, then the lock file, then releases the lock. A cleaner that takes a
//! lock removes the directory, then the lock file, so an area whose removal was cut short is still
//! found by its lock file and finished by the next cleaner. On a file system without locks a writer
//! works unlocked and cleaners keep every area, as they cannot tell.
//!
//! Table readers (pyarrow, Spark, DataFusion, Hive) skip names starting with `.`, so they never
//! see an area or what is in it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use steam_core::{Error, Result};

/// What every staging area's name starts with (its lock file's too).
const PREFIX: &str = ".staging-";
/// What a lock file's name has after its area's.
const LOCK: &str = ".lock";
/// Names tried before giving up on making an area.
const ATTEMPTS: usize = 100;

/// Whether `name` is a staging area's or its lock file's.
pub(crate) fn is_staging_name(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// A staging area of this process: a hidden directory, locked for as long as the value lives.
/// Dropped, it removes the directory with what is left in it and its lock file (on a blocking
/// thread when dropped inside a Tokio runtime; see [`StagingArea::remove`] to do it at once).
#[derive(Debug)]
pub(crate) struct StagingArea {
    dir: PathBuf,
    lock_path: PathBuf,
    /// The lock file, locked (where the file system has locks); `None` once removed.
    lock: Option<File>,
    /// Areas of dead writers removed before this one was made.
    #[cfg_attr(not(feature = "lake"), allow(dead_code))]
    removed: usize,
}

impl StagingArea {
    /// Makes a new staging area in `parent` (created when missing), after removing the areas
    /// there whose writers are gone (see [`remove_dead`]).
    pub(crate) fn create(parent: &Path) -> Result<Self> {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let removed = remove_dead(parent)?;
        for _ in 0..ATTEMPTS {
            let id = new_id();
            let dir = parent.join(format!("{PREFIX}{id}"));
            let lock_path = parent.join(format!("{PREFIX}{id}{LOCK}"));
            let lock = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&lock_path, e)),
            };
            match lock.try_lock() {
                Ok(()) => {}
                // A cleaner took the new file's lock first and removes it: another name.
                Err(TryLockError::WouldBlock) => continue,
                // No locks on this file system: unlocked, and cleaners keep it.
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
                Err(TryLockError::Error(e)) => {
                    let _ = fs::remove_file(&lock_path);
                    return Err(Error::io(&lock_path, e));
                }
            }
            if !is_at(&lock, &lock_path) {
                continue; // a cleaner removed it before it was locked
            }
            match fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(StagingArea {
                        dir,
                        lock_path,
                        lock: Some(lock),
                        removed,
                    })
                }
                Err(e) => {
                    let _ = fs::remove_file(&lock_path);
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(Error::io(&dir, e));
                    }
                }
            }
        }
        Err(Error::io(
            parent,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("no free staging-area name after {ATTEMPTS} tries"),
            ),
        ))
    }

    /// The area's directory, where files are written.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// How many areas of dead writers were removed before this one was made.
    #[cfg_attr(not(feature = "lake"), allow(dead_code))]
    pub(crate) fn leftovers_removed(&self) -> usize {
        self.removed
    }

    /// Moves `name` (a file in the area) to `target` with one rename: readers of `target` see
    /// what was there before or the new file, whole.
    pub(crate) fn publish(&self, name: impl AsRef<Path>, target: &Path) -> Result<()> {
        fs::rename(self.dir.join(name), target).map_err(|e| Error::io(target, e))
    }

    /// Removes the area now, with what is left in it, and releases its lock. What cannot be
    /// removed (its lock file is then kept) is left to a later cleaner.
    pub(crate) fn remove(mut self) {
        if let Some(lock) = self.lock.take() {
            remove_area(&self.dir, &self.lock_path);
            drop(lock);
        }
    }
}

impl Drop for StagingArea {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        let dir = std::mem::take(&mut self.dir);
        let lock_path = std::mem::take(&mut self.lock_path);
        let remove = move || {
            remove_area(&dir, &lock_path);
            drop(lock);
        };
        // Not on a runtime's worker thread. If the runtime shuts down before this runs, the lock
        // is released all the same and a later cleaner removes the area.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Removes an area's directory, then (only if that succeeded) its lock file.
fn remove_area(dir: &Path, lock_path: &Path) -> bool {
    let gone =
        |r: io::Result<()>| r.is_ok() || r.is_err_and(|e| e.kind() == io::ErrorKind::NotFound);
    gone(fs::remove_dir_all(dir)) && gone(fs::remove_file(lock_path))
}

/// Removes the staging areas in `dir` whose writers are gone: those whose lock file this process
/// can lock. Areas whose lock is held (their writer is at work, here or on another host or
/// container) are kept, whatever their names or ages, and so is any area that cannot be judged or
/// removed (it is tried again next time). Returns how many were removed.
pub(crate) fn remove_dead(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(area) = name
            .to_str()
            .filter(|n| is_staging_name(n))
            .and_then(|n| n.strip_suffix(LOCK))
        else {
            continue;
        };
        let lock_path = entry.path();
        // Held by a writer at work, gone already, or not ours to open: skipped.
        let Some(_lock) = take_lock(&lock_path) else {
            continue;
        };
        if remove_area(&dir.join(area), &lock_path) {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The lock of the area whose lock file is `lock_path`, taken, or `None` when its writer holds
/// it (or the file cannot be opened: gone already, not ours, no locks here).
fn take_lock(lock_path: &Path) -> Option<File> {
    let lock = File::open(lock_path).ok()?;
    lock.try_lock().ok()?;
    Some(lock)
}

/// Whether `dir` or a directory under it holds a staging area whose writer is at work (its lock
/// is held): a directory exchange over `dir` would take that area away from its writer.
pub(crate) fn has_live_area(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_staging_name(&name) {
            if name.ends_with(LOCK) && take_lock(&entry.path()).is_none() {
                return true;
            }
        } else if is_dir && has_live_area(&entry.path()) {
            return true;
        }
    }
    false
}

/// Whether `path` names the file `file` is open on.
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Whether `path` names the file `file` is open on (here: whether it exists; a file open here
/// cannot be removed by another process).
#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// A new area's id: the time, the process and a counter (unique on this host; names made
/// elsewhere at the same instant are told apart by `create_new`).
fn new_id() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::names_in as names;
    use crate::files::unblock;
    use std::time::{Duration, SystemTime};

    /// A staging area as another writer left it: `.staging-ID` with a file in it and its lock
    /// file, dated a year back; the lock file is returned open, unlocked.
    fn area_of_another_writer(dir: &Path, id: &str) -> File {
        let area = dir.join(format!("{PREFIX}{id}"));
        fs::create_dir(&area).unwrap();
        fs::write(area.join("t.parquet#1"), "part").unwrap();
        let lock = File::create(dir.join(format!("{PREFIX}{id}{LOCK}"))).unwrap();
        let year_ago = SystemTime::now() - Duration::from_secs(365 * 86_400);
        lock.set_modified(year_ago).unwrap();
        File::open(&area).unwrap().set_modified(year_ago).unwrap();
        lock
    }

    #[test]
    fn an_area_is_removed_only_when_its_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        // Both carry a pid no process has and are a year old: only the lock decides.
        let dead = area_of_another_writer(dir.path(), "1-ee6b2800-0");
        drop(dead);
        let live = area_of_another_writer(dir.path(), "2-ee6b2800-0");
        live.lock().unwrap(); // a writer at work, in another container for all we know
        fs::write(dir.path().join("t.parquet"), "data").unwrap();
        assert_eq!(remove_dead(dir.path()).unwrap(), 1);
        assert_eq!(
            names(dir.path()),
            [
                ".staging-2-ee6b2800-0",
                ".staging-2-ee6b2800-0.lock",
                "t.parquet"
            ]
        );
        // Its writer gone (the lock released), the next cleaner removes it.
        drop(live);
        let area = StagingArea::create(dir.path()).unwrap();
        assert_eq!(area.leftovers_removed(), 1);
        area.remove();
        assert_eq!(names(dir.path()), ["t.parquet"]);
    }

    #[test]
    fn an_area_is_locked_while_it_lives_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let area = StagingArea::create(dir.path()).unwrap();
        fs::write(area.path().join("t.csv"), "new").unwrap();
        // Another cleaner (another process, as far as locks go) keeps it.
        assert_eq!(remove_dead(dir.path()).unwrap(), 0);
        let lock = dir.path().join(format!(
            "{}{LOCK}",
            area.path().file_name().unwrap().to_string_lossy()
        ));
        assert!(matches!(
            File::open(&lock).unwrap().try_lock(),
            Err(TryLockError::WouldBlock)
        ));
        area.publish("t.csv", &dir.path().join("t.csv")).unwrap();
        drop(area); // no runtime here: removed at once
        assert_eq!(names(dir.path()), ["t.csv"]);
        assert_eq!(fs::read_to_string(dir.path().join("t.csv")).unwrap(), "new");
    }

    #[test]
    fn a_lock_file_removed_before_it_was_locked_is_not_used() {
        // The race a writer guards against: its new lock file removed by a cleaner before it
        // locked it. A file locked but no longer at its name is not the area's lock.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".staging-x.lock");
        let file = File::create(&path).unwrap();
        assert!(is_at(&file, &path));
        fs::remove_file(&path).unwrap();
        assert!(!is_at(&file, &path));
        File::create(&path).unwrap();
        assert!(!is_at(&file, &path), "another file at the same name");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn dropped_in_a_runtime_the_area_is_removed_off_the_worker_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let area = unblock("test", move || StagingArea::create(&path))
            .await
            .unwrap();
        drop(area);
        for _ in 0..500 {
            if names(dir.path()).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("left: {:?}", names(dir.path()));
    }
}
