//! Whether the writer of something left behind still runs.

use std::time::Duration;

/// Whether the process `pid` that wrote something is gone: where `/proc` tells, by the process;
/// elsewhere (or without a pid), when what it wrote is older than `stale`. This process is never
/// gone.
pub(crate) fn gone(pid: Option<u32>, age: Option<Duration>, stale: Duration) -> bool {
    if let Some(pid) = pid {
        if pid == std::process::id() {
            return false;
        }
        if std::path::Path::new("/proc/self").exists() {
            return !std::path::Path::new(&format!("/proc/{pid}")).exists();
        }
    }
    age.is_some_and(|a| a > stale)
}
