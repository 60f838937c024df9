//! Fetching the real dataset's three raw files from the HuggingFace Hub.
//!
//! [`download`] lists the dataset repository with the Hub's tree API, picks the entries named
//! `games_description.csv`, `games_ranking.csv` and `steam_game_reviews.csv` (wherever they sit in
//! the repository) and fetches each through its `resolve` URL, following the Hub's redirects to its
//! CDN. Each body is streamed to `DIR/.<name>.part`, never held in memory; an interrupted transfer
//! (in this run or an earlier one) is resumed with an HTTP `Range` request. A finished file is
//! checked against the listing (its size, and its SHA-256 when the file is stored with LFS) before
//! it is renamed to `DIR/<name>`, so a file under its final name is always complete. A file already
//! present with the listed size and hash is skipped.
//!
//! Network errors and server errors (5xx, 408, 429) are retried with exponential backoff, resuming
//! each time from what is already on disk; other client errors (401, 403, 404…) fail at once. The
//! token (`HF_TOKEN`) is sent as `Authorization: Bearer` and never shown: not in `Debug`, not in
//! errors, not in logs.

mod endpoint;
mod listing;
mod retry;
mod transfer;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Client;
use steam_core::{Error, Result};

use endpoint::{endpoint_url, extend, join, repo_segments, shown};
use listing::{list, select};
use transfer::fetch_file;

/// The HuggingFace Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The dataset repository holding the scraped raw files.
pub const DEFAULT_REPO: &str = "HangenYuu/Steam_Games_Review";
/// The revision (branch, tag or commit) fetched by default.
pub const DEFAULT_REVISION: &str = "main";

const BACKEND: &str = "huggingface";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to fetch the raw files from, where to put them, and how hard to try.
///
/// The token is never shown: the `Debug` output replaces it with `***`, and no error or log line
/// contains it.
#[derive(Clone)]
pub struct DownloadOptions {
    /// The directory the three files are written to (created when missing).
    pub out: PathBuf,
    /// The Hub's base URL, such as `https://huggingface.co` (the `HF_ENDPOINT` variable in
    /// [`DownloadOptions::from_env`]).
    pub endpoint: String,
    /// The dataset repository, `owner/name`.
    pub repo: String,
    /// The branch, tag or commit to fetch.
    pub revision: String,
    /// An access token for private or gated repositories (the `HF_TOKEN` variable in
    /// [`DownloadOptions::from_env`]), sent as `Authorization: Bearer`.
    pub token: Option<steam_core::Secret>,
    /// How many times a failed request (network error, 5xx, 408, 429, a body cut short) is tried
    /// again; each retry of a file resumes from the bytes already on disk.
    pub retries: usize,
    /// The wait before the first retry; it doubles (with jitter) at each retry, up to 30 seconds.
    pub min_delay: Duration,
    /// How long a response may stay silent (no bytes read) before the request fails and is
    /// retried.
    pub read_timeout: Duration,
    /// Told how each file's transfer goes, for a caller that shows it (the CLI draws progress
    /// bars); none by default.
    pub progress: Option<std::sync::Arc<dyn Progress>>,
}

/// How a download goes, file by file, for a caller that shows it. Called from the download's
/// task: keep each call short.
pub trait Progress: Send + Sync {
    /// `file`'s transfer starts, or resumes after a retry, at byte `at` of `total`.
    fn started(&self, file: &str, at: u64, total: u64);
    /// `bytes` more bytes of `file` arrived.
    fn advanced(&self, file: &str, bytes: u64);
    /// `file` is complete (`ok`) or given up.
    fn finished(&self, file: &str, ok: bool);
}

impl DownloadOptions {
    /// The dataset [`DEFAULT_REPO`] at [`DEFAULT_REVISION`] from [`DEFAULT_ENDPOINT`], without a
    /// token, into `out`; 5 retries from 1 second; a 60-second read timeout.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        DownloadOptions {
            out: out.into(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            repo: DEFAULT_REPO.to_owned(),
            revision: DEFAULT_REVISION.to_owned(),
            token: None,
            retries: 5,
            min_delay: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
            progress: None,
        }
    }

    /// [`DownloadOptions::new`], with the endpoint from `HF_ENDPOINT` and the token from `HF_TOKEN`
    /// when they are set and not empty.
    pub fn from_env(out: impl Into<PathBuf>) -> Self {
        let mut options = DownloadOptions::new(out);
        if let Some(endpoint) = non_empty_env("HF_ENDPOINT") {
            options.endpoint = endpoint;
        }
        options.token = non_empty_env("HF_TOKEN").map(steam_core::Secret::new);
        options
    }
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("out", &self.out)
            .field("endpoint", &steam_core::redact_url(&self.endpoint))
            .field("repo", &self.repo)
            .field("revision", &self.revision)
            .field("token", &self.token)
            .field("retries", &self.retries)
            .field("min_delay", &self.min_delay)
            .field("read_timeout", &self.read_timeout)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// What [`download`] did with one raw file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDownload {
    /// The raw file's name, such as `games_ranking.csv`: the name it has in the output directory.
    pub file: String,
    /// Its path in the repository.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Bytes received over the network in this run (0 when skipped; less than `bytes` when
    /// resumed).
    pub received: u64,
    /// Whether the transfer continued a partial file (from an earlier run or an interrupted
    /// attempt) instead of starting from the first byte.
    pub resumed: bool,
    /// Whether the file was already there, complete and verified, so nothing was fetched.
    pub skipped: bool,
    /// Wall time spent on the file.
    pub seconds: f64,
}

impl FileDownload {
    /// `skipped`, `resumed` or `downloaded`.
    pub fn status(&self) -> &'static str {
        if self.skipped {
            "skipped"
        } else if self.resumed {
            "resumed"
        } else {
            "downloaded"
        }
    }
}

/// What [`download`] did: one entry per raw file, in the order of
/// [`RawFile::ALL`](steam_core::raw::RawFile::ALL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DownloadSummary {
    /// Per raw file.
    pub files: Vec<FileDownload>,
}

impl DownloadSummary {
    /// The entry of raw file `file` (such as `games_ranking.csv`), if it was handled.
    pub fn file(&self, file: &str) -> Option<&FileDownload> {
        self.files.iter().find(|f| f.file == file)
    }

    /// Total bytes received over the network.
    pub fn received(&self) -> u64 {
        self.files.iter().map(|f| f.received).sum()
    }
}

impl fmt::Display for DownloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:>14} {:>14} {:>10} {:>9}",
            "raw file", "bytes", "received", "status", "seconds"
        )?;
        for d in &self.files {
            writeln!(
                f,
                "{:<28} {:>14} {:>14} {:>10} {:>9.3}",
                d.file,
                d.bytes,
                d.received,
                d.status(),
                d.seconds
            )?;
        }
        Ok(())
    }
}

/// Fetches the three raw files of `options.repo` at `options.revision` into `options.out`.
///
/// Files already present with the listed size (and SHA-256, for LFS files) are skipped; partial
/// files are resumed. Fails, naming the file and the URL, when a raw file is not in the listing,
/// when the server refuses a request (401, 403, 404…), when retries are exhausted, or when a
/// finished file does not match the listing (its partial file is then deleted and any earlier file
/// under the final name is left as it was).
pub async fn download(options: &DownloadOptions) -> Result<DownloadSummary> {
    let base = endpoint_url(&options.endpoint)?;
    let repo = repo_segments(&options.repo)?;
    if options.revision.is_empty() {
        return Err(Error::Config {
            key: "revision".into(),
            reason: "must not be empty".into(),
        });
    }
    tokio::fs::create_dir_all(&options.out)
        .await
        .map_err(|e| Error::io(&options.out, e))?;
    let client = Client::builder()
        .user_agent(concat!("steam-recsys/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(options.read_timeout)
        .build()
        .map_err(|e| {
            Error::backend(BACKEND, shown(&base), e.without_url()).doing("building the HTTP client")
        })?;

    let mut tree = join(&base, ["api", "datasets"])?;
    extend(
        &mut tree,
        repo.iter().copied().chain(["tree", &options.revision]),
    )?;
    tree.set_query(Some("recursive=true"));
    let entries = list(&client, options, tree).await?;
    let files = select(&entries, options)?;

    let mut summary = DownloadSummary::default();
    for file in &files {
        let mut url = join(&base, ["datasets"])?;
        extend(
            &mut url,
            repo.iter()
                .copied()
                .chain(["resolve", &options.revision])
                .chain(file.path.split('/')),
        )?;
        summary
            .files
            .push(fetch_file(&client, options, &url, file).await?);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token_and_endpoint_credentials() {
        let mut options = DownloadOptions::new("out");
        options.token = Some("hf_secret_value".into());
        options.endpoint = "https://user:pass@example.org".into();
        let debug = format!("{options:?}");
        assert!(!debug.contains("hf_secret_value"), "{debug}");
        assert!(!debug.contains("pass"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
}
