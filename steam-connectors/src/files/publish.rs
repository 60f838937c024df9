//! Files written together into a directory and published together.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use steam_core::{Error, ErrorKind, Result};

use super::staging::{has_live_area, is_staging_name, remove_dead, StagingArea};
use super::unblock;

/// Files written together and published together into a directory, as `PostgresLoad` is for the
/// tables of one PostgreSQL schema: everything is written into a staging area (see below) and
/// [`DirTransaction::commit`] publishes it whole. Dropped without a commit (the run failed), the
/// transaction removes its staging area and the target keeps its previous files.
///
/// **Staging.** The staging area is a hidden directory `.staging-ID` beside the target directory
/// (in its parent), with a lock file `.staging-ID.lock` that the transaction holds locked for its
/// whole life. [`DirTransaction::begin`] first removes the staging areas that dead writers left
/// there (and in the target): those whose lock it can take, since the operating system releases a
/// writer's lock when its process ends. Areas of writers at work are kept, even when those run in
/// another container or, on a file system with shared locks, on another host.
///
/// **Commit, on Linux.** The staging directory is made the target's complete new content: the
/// target's files that the transaction did not write are hard-linked into it (nothing is copied;
/// subdirectories are merged), and it takes the target directory's permissions. Then the two
/// directories are exchanged with one `renameat2(RENAME_EXCHANGE)`, and the old tree (now under the
/// staging name) is removed. Readers see the whole publish or none of it: a reader that lists the
/// target, or opens it and reads files relative to it, finds the old files or the new, never a mix,
/// and a commit that fails or dies before the exchange leaves the target exactly as it was. (A
/// reader opening files by path one after the other may still read them from two publishes, as with
/// any replacement.) The target directory is replaced by a new one: a process holding the old one
/// open (as its working directory, say) keeps the old content, and the new directory is owned by
/// the committer. Of two transactions committing into one directory at the same moment, the later
/// exchange wins whole.
///
/// **Commit, elsewhere.** Where the exchange is not possible (not Linux; a file system without
/// `RENAME_EXCHANGE` or hard links; a target that is a mount point, or whose parent cannot be
/// written, in which cases the staging area is inside the target), commit moves every file into
/// place with its own atomic rename, subdirectories kept: each file is whole, but a commit that
/// dies midway leaves some files new and the others old.
///
/// The methods are blocking; from async code use [`DirTransaction::begin_async`] and
/// [`DirTransaction::commit_async`], which run them on a blocking thread. Dropped inside a Tokio
/// runtime, a transaction's staging area is removed on a blocking thread.
///
/// ```
/// use steam_connectors::files::{DirTransaction, ParquetDirSink};
///
/// # fn main() -> steam_core::Result<()> {
/// let out = tempfile::tempdir().unwrap();
/// let out = out.path().join("processed");
/// let tx = DirTransaction::begin(&out)?;
/// let sink = ParquetDirSink::new(tx.dir()); // write tables with it…
/// std::fs::write(tx.dir().join("notes.txt"), "ok").unwrap();
/// tx.commit()?; // …and they appear in `out` together
/// assert!(out.join("notes.txt").is_file());
/// # let _ = sink;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DirTransaction {
    /// The target directory as given, for messages.
    out: PathBuf,
    /// The target directory, resolved (no symbolic links, no `..`).
    target: PathBuf,
    area: StagingArea,
    /// The staging area is beside the target, so the two can be exchanged (else it is inside).
    beside: bool,
    #[cfg(test)]
    hooks: tests::Hooks,
}

impl DirTransaction {
    /// Starts writing into `out` (created when missing), after removing the staging areas that
    /// dead writers left beside it and in it.
    pub fn begin(out: impl Into<PathBuf>) -> Result<Self> {
        let out = out.into();
        fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let target = fs::canonicalize(&out).map_err(|e| Error::io(&out, e))?;
        remove_dead(&target)?;
        let parent = target
            .parent()
            .filter(|parent| same_device(parent, &target))
            .map(Path::to_path_buf);
        let (area, beside) = match parent {
            Some(parent) => match StagingArea::create(&parent) {
                Ok(area) => (area, true),
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    (StagingArea::create(&target)?, false)
                }
                Err(e) => return Err(e),
            },
            None => (StagingArea::create(&target)?, false),
        };
        Ok(DirTransaction {
            out,
            target,
            area,
            beside,
            #[cfg(test)]
            hooks: tests::Hooks::default(),
        })
    }

    /// [`DirTransaction::begin`] on a blocking thread, for async code.
    pub async fn begin_async(out: impl Into<PathBuf>) -> Result<Self> {
        let out = out.into();
        unblock("beginning a directory transaction", move || {
            Self::begin(out)
        })
        .await
    }

    /// Where to write: the staging directory.
    pub fn dir(&self) -> &Path {
        self.area.path()
    }

    /// Publishes everything written, keeping subdirectories, and removes the staging area: on
    /// Linux all at once by a directory exchange, elsewhere file by file (see [`DirTransaction`]).
    pub fn commit(self) -> Result<()> {
        if !(self.beside && self.exchange()?) {
            publish_each(self.area.path(), &self.target)?;
        }
        self.area.remove();
        Ok(())
    }

    /// [`DirTransaction::commit`] on a blocking thread, for async code.
    pub async fn commit_async(self) -> Result<()> {
        let what = format!("publishing into {}", self.out.display());
        unblock(&what, move || self.commit()).await
    }

    /// Makes the staging directory the target's whole new content and exchanges the two
    /// directories. `Ok(false)` when this file system cannot (nothing was published).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn exchange(&self) -> Result<bool> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;

        #[cfg(test)]
        if self.hooks.no_exchange {
            return Ok(false);
        }
        let staging = self.area.path();
        // Another writer at work inside the target (a sink's or an upload's staging area) would
        // lose its area with the old tree: then files move one by one instead.
        if has_live_area(&self.target) {
            return Ok(false);
        }
        match link_missing(&self.target, staging) {
            Ok(()) => {}
            Err((_, e)) if no_links(&e) => return Ok(false),
            Err((path, e)) => return Err(Error::io(path, e)),
        }
        #[cfg(test)]
        if self.hooks.fail_before_exchange {
            return Err(Error::io(&self.out, io::Error::other("injected failure")));
        }
        match renameat_with(CWD, staging, CWD, &self.target, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(true),
            // Not on this file system (EINVAL), this kernel (ENOSYS) or under this sandbox.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM) => Ok(false),
            Err(e) => Err(Error::io(&self.out, e.into())),
        }
    }

    /// No directory exchange here: `Ok(false)`, commit moves file by file.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn exchange(&self) -> Result<bool> {
        Ok(false)
    }
}

/// Whether a hard link failed because this file system or directory does not allow it (then the
/// commit falls back to moving file by file).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn no_links(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported | io::ErrorKind::TooManyLinks
    )
}

/// Completes `into` (the staging directory) with what `from` (the target) has and it does not:
/// files hard-linked, directories made (with their permissions) and merged; what `into` has wins.
/// Finally `into` takes `from`'s permissions. On an error, the path it concerns.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn link_missing(from: &Path, into: &Path) -> std::result::Result<(), (PathBuf, io::Error)> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    for entry in fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        // Staging areas are their writers' (dead ones here: live ones made the commit fall back).
        if is_staging_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let source = entry.path();
        let dest = into.join(entry.file_name());
        let kind = entry.file_type().map_err(at(&source))?;
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() && kind.is_dir() => link_missing(&source, &dest)?,
            Ok(_) => {} // replaced by the transaction
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if kind.is_dir() {
                    fs::create_dir(&dest).map_err(at(&dest))?;
                    link_missing(&source, &dest)?;
                } else {
                    // A symbolic link is linked itself, not what it points to.
                    fs::hard_link(&source, &dest).map_err(at(&dest))?;
                }
            }
            Err(e) => return Err((dest, e)),
        }
    }
    let permissions = fs::metadata(from).map_err(at(from))?.permissions();
    fs::set_permissions(into, permissions).map_err(at(into))
}

/// Whether `a` and `b` are on the same file system (a rename between them is possible).
#[cfg(unix)]
fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

/// Whether `a` and `b` are on the same file system (assumed here; a rename tells).
#[cfg(not(unix))]
fn same_device(_a: &Path, _b: &Path) -> bool {
    true
}

/// Moves every file under `from` to the same place under `to`, each with its own rename.
fn publish_each(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            publish_each(&entry.path(), &target)?;
        } else {
            fs::rename(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::files::names_in as names;
    use std::fs::File;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Test-only ways to steer a commit.
    #[derive(Debug, Default)]
    pub(in crate::files) struct Hooks {
        /// Fail after the staging directory is complete, just before the exchange.
        pub fail_before_exchange: bool,
        /// Act as if the file system had no directory exchange.
        pub no_exchange: bool,
    }

    /// Every file under `dir` with its content, by relative path.
    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                for (sub, content) in tree(&entry.path()) {
                    out.push((format!("{name}/{sub}"), content));
                }
            } else {
                out.push((name, fs::read_to_string(entry.path()).unwrap()));
            }
        }
        out.sort();
        out
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// A target `processed` with old files, one of them in a subdirectory.
    fn old_target() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("processed");
        fs::create_dir_all(out.join("_rejected")).unwrap();
        fs::write(out.join("a.parquet"), "old a").unwrap();
        fs::write(out.join("b.parquet"), "old b").unwrap();
        fs::write(out.join("kept.txt"), "kept").unwrap();
        fs::write(out.join("_rejected/x.csv"), "old x").unwrap();
        (root, out)
    }

    fn write_new(tx: &DirTransaction) {
        fs::write(tx.dir().join("a.parquet"), "new a").unwrap();
        fs::write(tx.dir().join("b.parquet"), "new b").unwrap();
        fs::create_dir_all(tx.dir().join("_rejected")).unwrap();
        fs::write(tx.dir().join("_rejected/y.csv"), "new y").unwrap();
    }

    fn committed() -> Vec<(String, String)> {
        pairs(&[
            ("_rejected/x.csv", "old x"),
            ("_rejected/y.csv", "new y"),
            ("a.parquet", "new a"),
            ("b.parquet", "new b"),
            ("kept.txt", "kept"),
        ])
    }

    #[test]
    fn files_appear_together_on_commit_and_never_without_it() {
        let (root, out) = old_target();
        let before = tree(&out);
        // A run that fails: nothing changes, nothing is left.
        {
            let tx = DirTransaction::begin(&out).unwrap();
            write_new(&tx);
        }
        assert_eq!(tree(&out), before);
        assert_eq!(names(root.path()), ["processed"]);
        // A run that commits: its files replace theirs, the others stay.
        let tx = DirTransaction::begin(&out).unwrap();
        assert!(tx.beside);
        write_new(&tx);
        tx.commit().unwrap();
        assert_eq!(tree(&out), committed());
        assert_eq!(names(root.path()), ["processed"], "no staging area left");
    }

    /// Another writer at work inside the target (its staging area locked) keeps its area and what
    /// it wrote there: the commit moves files one by one rather than exchange the directory.
    #[test]
    fn a_live_writers_area_inside_the_target_survives_a_commit() {
        let (_root, out) = old_target();
        let other = StagingArea::create(&out).unwrap();
        std::fs::write(other.path().join("half-written.parquet"), "part").unwrap();
        let tx = DirTransaction::begin(&out).unwrap();
        write_new(&tx);
        tx.commit().unwrap();
        assert!(other.path().join("half-written.parquet").is_file());
        other
            .publish("half-written.parquet", &out.join("late.parquet"))
            .unwrap();
        assert!(out.join("late.parquet").is_file());
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_commit_failing_before_the_exchange_leaves_the_target_as_it_was() {
        let (root, out) = old_target();
        let before = tree(&out);
        let mut tx = DirTransaction::begin(&out).unwrap();
        write_new(&tx);
        tx.hooks.fail_before_exchange = true;
        let e = tx.commit().unwrap_err();
        assert!(
            steam_core::error_chain(&e).contains("injected failure"),
            "{e}"
        );
        assert_eq!(tree(&out), before);
        assert_eq!(names(root.path()), ["processed"]);
        // The old files were linked, not moved or copied: still one file each.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(out.join("kept.txt")).unwrap().nlink(), 1);
    }

    #[test]
    fn without_the_exchange_files_are_moved_one_by_one() {
        let (root, out) = old_target();
        let mut tx = DirTransaction::begin(&out).unwrap();
        write_new(&tx);
        tx.hooks.no_exchange = true;
        tx.commit().unwrap();
        assert_eq!(tree(&out), committed());
        assert_eq!(names(root.path()), ["processed"]);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_target_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let (_root, out) = old_target();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o750)).unwrap();
        let tx = DirTransaction::begin(&out).unwrap();
        write_new(&tx);
        tx.commit().unwrap();
        let mode = fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn a_dead_writers_staging_area_is_removed_and_a_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("processed");
        fs::create_dir_all(&out).unwrap();
        // Both carry a pid no process has: only their locks tell them apart.
        for id in ["dead-4000000000", "live-4000000000"] {
            fs::create_dir(root.path().join(format!(".staging-{id}"))).unwrap();
        }
        File::create(root.path().join(".staging-dead-4000000000.lock")).unwrap();
        let live = File::create(root.path().join(".staging-live-4000000000.lock")).unwrap();
        live.lock().unwrap(); // a writer at work in another container
        let tx = DirTransaction::begin(&out).unwrap();
        let left = names(root.path());
        assert!(!left.iter().any(|n| n.contains("dead")), "{left:?}");
        assert!(left.contains(&".staging-live-4000000000".to_owned()));
        assert!(left.contains(&".staging-live-4000000000.lock".to_owned()));
        drop(tx);
        drop(live);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_reader_of_the_directory_never_sees_two_commits_mixed() {
        use rustix::fs::{open, openat, Mode, OFlags};
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("processed");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("a"), "0").unwrap();
        fs::write(out.join("b"), "0").unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (out, done) = (out.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut seen, mut mixed) = (0, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    // A reader of one state of the directory: opened once, files read in it.
                    let Ok(dir) = open(&out, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                    else {
                        continue;
                    };
                    let read = |name: &str| {
                        openat(&dir, name, OFlags::RDONLY, Mode::empty())
                            .ok()
                            .and_then(|fd| std::io::read_to_string(File::from(fd)).ok())
                    };
                    // The old tree, removed after an exchange, may lose its files: no sample.
                    if let (Some(a), Some(b)) = (read("a"), read("b")) {
                        seen += 1;
                        if a != b {
                            mixed.push((a, b));
                        }
                    }
                }
                (seen, mixed)
            })
        };
        for i in 1..=300 {
            let tx = DirTransaction::begin(&out).unwrap();
            fs::write(tx.dir().join("a"), i.to_string()).unwrap();
            fs::write(tx.dir().join("b"), i.to_string()).unwrap();
            tx.commit().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let (seen, mixed) = reader.join().unwrap();
        assert!(seen > 0);
        let some: Vec<_> = mixed.iter().take(5).collect();
        assert!(
            mixed.is_empty(),
            "{} of {seen} reads mixed: {some:?}…",
            mixed.len()
        );
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "300");
        assert_eq!(names(root.path()), ["processed"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn async_callers_begin_and_commit_off_the_worker_threads() {
        let (_root, out) = old_target();
        let tx = DirTransaction::begin_async(&out).await.unwrap();
        write_new(&tx);
        tx.commit_async().await.unwrap();
        assert_eq!(tree(&out), committed());
    }
}
