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

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_RANGE, LINK, RANGE};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use steam_core::raw::RawFile;
use steam_core::{Error, Result};
use tokio::io::AsyncWriteExt;

/// The HuggingFace Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The dataset repository holding the scraped raw files.
pub const DEFAULT_REPO: &str = "HangenYuu/Steam_Games_Review";
/// The revision (branch, tag or commit) fetched by default.
pub const DEFAULT_REVISION: &str = "main";

const BACKEND: &str = "huggingface";
const MAX_DELAY: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_LISTING_PAGES: usize = 1000;
const WRITE_BUFFER: usize = 1 << 20;

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

/// What [`download`] did: one entry per raw file, in the order of [`RawFile::ALL`].
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
        .map_err(|e| Error::backend(BACKEND, shown(&base), e))?;

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

/// One raw file as the listing gives it.
#[derive(Debug, Clone)]
struct RemoteFile {
    name: &'static str,
    path: String,
    size: u64,
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
struct LfsInfo {
    oid: String,
    size: u64,
}

/// A failed attempt: worth retrying (network, 5xx, a short body) or not.
#[derive(Debug)]
enum Failure {
    Retry { target: String, message: String },
    Fatal(Error),
}

impl Failure {
    fn retry(target: &str, message: impl Into<String>) -> Self {
        Failure::Retry {
            target: target.to_owned(),
            message: message.into(),
        }
    }

    fn fatal(target: &str, message: impl Into<String>) -> Self {
        Failure::Fatal(Error::backend_msg(BACKEND, target, message))
    }

    fn is_retryable(&self) -> bool {
        matches!(self, Failure::Retry { .. })
    }

    fn into_error(self, attempts: usize) -> Error {
        match self {
            Failure::Fatal(e) => e,
            Failure::Retry { target, message } => Error::Backend {
                kind: steam_core::ErrorKind::Transient,
                backend: BACKEND,
                target,
                message: if attempts > 1 {
                    format!("{message} (gave up after {attempts} attempts)")
                } else {
                    message
                },
                source: None,
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry { target, message } => write!(f, "{target}: {message}"),
            Failure::Fatal(e) => e.fmt(f),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has been retried `options.retries` times.
async fn with_retries<T, F, Fut>(options: &DownloadOptions, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let attempts = AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(options.min_delay)
        .with_max_delay(MAX_DELAY.max(options.min_delay))
        .with_max_times(options.retries)
        .with_jitter();
    let counted = || {
        attempts.fetch_add(1, Ordering::Relaxed);
        attempt()
    };
    counted
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(Failure::is_retryable)
        .notify(|e, wait| tracing::warn!("{e}; retrying in {wait:.1?}"))
        .await
        .map_err(|e| e.into_error(attempts.load(Ordering::Relaxed)))
}

/// The endpoint as a URL, checked to be http(s).
fn endpoint_url(endpoint: &str) -> Result<Url> {
    let invalid = |reason: String| Error::Config {
        key: "endpoint (HF_ENDPOINT)".into(),
        reason,
    };
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        invalid(format!(
            "{:?} is not a URL: {e}",
            steam_core::redact_url(endpoint)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid(format!(
            "{:?} is not an http or https URL",
            shown(&url)
        )));
    }
    Ok(url)
}

/// The repository's path segments (`owner`, `name`), none empty.
fn repo_segments(repo: &str) -> Result<Vec<&str>> {
    let segments: Vec<&str> = repo.trim_matches('/').split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(Error::Config {
            key: "repo".into(),
            reason: format!("{repo:?} is not a repository name such as {DEFAULT_REPO}"),
        });
    }
    Ok(segments)
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment.
fn join<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    extend(&mut url, segments)?;
    Ok(url)
}

fn extend<'a>(url: &mut Url, segments: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let shown_url = shown(url);
    let mut path = url.path_segments_mut().map_err(|()| Error::Config {
        key: "endpoint (HF_ENDPOINT)".into(),
        reason: format!("{shown_url} cannot take a path"),
    })?;
    path.pop_if_empty().extend(segments);
    Ok(())
}

/// A URL as it may be shown: without user name or password.
/// A URL for messages: no password, no query (a CDN's signed URLs carry tokens there).
fn shown(url: &Url) -> String {
    steam_core::redact_url(url.as_str())
}

fn authorized(request: RequestBuilder, options: &DownloadOptions) -> RequestBuilder {
    match options
        .token
        .as_ref()
        .map(|t| t.expose())
        .filter(|t| !t.is_empty())
    {
        Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
}

/// A transport error: retried unless the request itself is wrong or redirects loop.
///
/// The message carries the whole chain of causes, without URLs other than `url` (a redirect's
/// target may be a signed CDN URL).
fn transport(target: &str, url: &str, doing: &str, e: reqwest::Error) -> Failure {
    let fatal = e.is_builder() || e.is_redirect();
    let e = e.without_url();
    let mut message = format!("{doing} {url}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if fatal {
        message.push_str(" (not retried)");
        Failure::fatal(target, message)
    } else {
        Failure::retry(target, message)
    }
}

/// The failure for a non-success status.
async fn status_failure(
    response: Response,
    target: &str,
    url: &str,
    options: &DownloadOptions,
) -> Failure {
    let status = response.status();
    let detail = error_detail(response).await;
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    let message = format!("{url} answered {status}{detail}");
    match status.as_u16() {
        401 | 403 => {
            let hint = if options.token.is_some() {
                "the token in HF_TOKEN is not accepted for this repository: check that it can \
                 read it (and that its terms are accepted, for a gated dataset)"
            } else {
                "the repository may be private or gated, or may not exist: set HF_TOKEN to an \
                 access token that can read it"
            };
            let kind = if status.as_u16() == 401 {
                steam_core::ErrorKind::Unauthenticated
            } else {
                steam_core::ErrorKind::PermissionDenied
            };
            Failure::Fatal(
                Error::backend_msg(BACKEND, target, format!("{message}: {hint}")).with_kind(kind),
            )
        }
        404 => Failure::Fatal(
            Error::backend_msg(
                BACKEND,
                target,
                format!(
                    "{message}: not found (check the repository {:?} and the revision {:?})",
                    options.repo, options.revision
                ),
            )
            .with_kind(steam_core::ErrorKind::NotFound),
        ),
        408 | 429 | 500..=599 => Failure::retry(target, message),
        _ => Failure::fatal(target, message),
    }
}

/// The Hub's error message from an error response (`{"error": "..."}`), shortened; empty if none.
async fn error_detail(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < 4096 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let message: String = message.chars().filter(|c| !c.is_control()).collect();
    if message.chars().count() > 200 {
        let cut: String = message.chars().take(200).collect();
        format!("{cut}…")
    } else {
        message
    }
}

/// Every entry of the repository's tree, following the pagination links.
async fn list(client: &Client, options: &DownloadOptions, first: Url) -> Result<Vec<TreeEntry>> {
    let target = format!("dataset {}", options.repo);
    let mut entries = Vec::new();
    let mut url = first;
    for _ in 0..MAX_LISTING_PAGES {
        let (page, next) =
            with_retries(options, || list_page(client, options, &target, &url)).await?;
        entries.extend(page);
        match next {
            Some(next) if next != url => url = next,
            _ => return Ok(entries),
        }
    }
    Err(Error::backend_msg(
        BACKEND,
        target,
        format!("the listing has more than {MAX_LISTING_PAGES} pages"),
    ))
}

async fn list_page(
    client: &Client,
    options: &DownloadOptions,
    target: &str,
    url: &Url,
) -> std::result::Result<(Vec<TreeEntry>, Option<Url>), Failure> {
    let shown_url = shown(url);
    let response = authorized(client.get(url.clone()), options)
        .send()
        .await
        .map_err(|e| transport(target, &shown_url, "listing", e))?;
    if !response.status().is_success() {
        return Err(status_failure(response, target, &shown_url, options).await);
    }
    let next = next_link(response.headers(), response.url());
    let body = response
        .bytes()
        .await
        .map_err(|e| transport(target, &shown_url, "listing", e))?;
    let entries: Vec<TreeEntry> = serde_json::from_slice(&body).map_err(|e| {
        Failure::fatal(
            target,
            format!("the listing from {shown_url} is not the expected JSON array of entries: {e}"),
        )
    })?;
    Ok((entries, next))
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            if is_next {
                base.join(target).ok()
            } else {
                None
            }
        })
}

/// The three raw files in the listing; an error naming the first one missing.
fn select(entries: &[TreeEntry], options: &DownloadOptions) -> Result<Vec<RemoteFile>> {
    let target = format!("dataset {}", options.repo);
    let mut files = Vec::with_capacity(RawFile::ALL.len());
    for raw in RawFile::ALL {
        let name = raw.file_name();
        let mut found: Vec<&TreeEntry> = entries
            .iter()
            .filter(|e| e.kind == "file" && e.path.rsplit('/').next() == Some(name))
            .collect();
        found.sort_by(|a, b| {
            (a.path.matches('/').count(), &a.path).cmp(&(b.path.matches('/').count(), &b.path))
        });
        let Some(entry) = found.first() else {
            let listed: Vec<&str> = entries
                .iter()
                .filter(|e| e.kind == "file")
                .map(|e| e.path.as_str())
                .take(20)
                .collect();
            return Err(Error::backend_msg(
                BACKEND,
                target,
                format!(
                    "{name} is not in the repository at revision {:?} (files: {})",
                    options.revision,
                    if listed.is_empty() {
                        "none".to_owned()
                    } else {
                        listed.join(", ")
                    }
                ),
            ));
        };
        if found.len() > 1 {
            tracing::warn!(
                "{} holds {} files named {name}; fetching {}",
                options.repo,
                found.len(),
                entry.path
            );
        }
        let size = match (&entry.lfs, entry.size) {
            (Some(lfs), _) => lfs.size,
            (None, Some(size)) => size,
            (None, None) => {
                return Err(Error::backend_msg(
                    BACKEND,
                    target,
                    format!("the listing gives no size for {}", entry.path),
                ))
            }
        };
        let sha256 = match &entry.lfs {
            Some(lfs) => Some(sha256_hex(&lfs.oid).ok_or_else(|| {
                Error::backend_msg(
                    BACKEND,
                    &target,
                    format!(
                        "the listing gives {} an LFS oid that is not a SHA-256: {:?}",
                        entry.path, lfs.oid
                    ),
                )
            })?),
            None => None,
        };
        files.push(RemoteFile {
            name,
            path: entry.path.clone(),
            size,
            sha256,
        });
    }
    Ok(files)
}

/// A SHA-256 as 64 lowercase hex digits (accepting a `sha256:` prefix), if `oid` is one.
fn sha256_hex(oid: &str) -> Option<String> {
    let hex = oid
        .strip_prefix("sha256:")
        .unwrap_or(oid)
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Fetches one file into `options.out`, or skips it if it is already there.
async fn fetch_file(
    client: &Client,
    options: &DownloadOptions,
    url: &Url,
    file: &RemoteFile,
) -> Result<FileDownload> {
    let started = Instant::now();
    let final_path = options.out.join(file.name);
    let part_path = options.out.join(format!(".{}.part", file.name));
    let done = |received: u64, resumed: bool, skipped: bool| FileDownload {
        file: file.name.to_owned(),
        path: file.path.clone(),
        bytes: file.size,
        received,
        resumed,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    };

    if matches(&final_path, file).await? {
        remove_if_exists(&part_path).await?;
        tracing::info!("{} is already there and complete", final_path.display());
        return Ok(done(0, false, true));
    }

    let shown_url = shown(url);
    let progress = options.progress.as_deref();
    let received = AtomicU64::new(0);
    let resumed = AtomicBool::new(false);
    let transfer = Transfer {
        client,
        options,
        url,
        shown_url: &shown_url,
        file,
        part_path: &part_path,
        progress,
        received: &received,
        resumed: &resumed,
    };
    let transferred = with_retries(options, || transfer.attempt()).await;
    if let Some(p) = progress {
        p.finished(file.name, transferred.is_ok());
    }
    transferred?;

    let actual = tokio::fs::metadata(&part_path)
        .await
        .map_err(|e| Error::io(&part_path, e))?
        .len();
    if actual != file.size {
        remove_if_exists(&part_path).await?;
        return Err(Error::backend_msg(
            BACKEND,
            file.name,
            format!(
                "size mismatch for {} from {shown_url}: expected {} bytes, got {actual}",
                file.name, file.size
            ),
        ));
    }
    if let Some(expected) = &file.sha256 {
        let actual = sha256_file(&part_path).await?;
        if &actual != expected {
            remove_if_exists(&part_path).await?;
            return Err(Error::backend_msg(
                BACKEND,
                file.name,
                format!(
                    "checksum mismatch for {} from {shown_url}: expected sha256 {expected}, got \
                     {actual}; the partial file was deleted",
                    file.name
                ),
            ));
        }
    }
    tokio::fs::rename(&part_path, &final_path)
        .await
        .map_err(|e| Error::io(&final_path, e))?;
    Ok(done(
        received.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
        false,
    ))
}

/// Whether `path` exists with the listed size (and SHA-256, when known).
async fn matches(path: &Path, file: &RemoteFile) -> Result<bool> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() && m.len() == file.size => match &file.sha256 {
            Some(expected) => Ok(&sha256_file(path).await? == expected),
            None => Ok(true),
        },
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

async fn remove_if_exists(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// The SHA-256 of a file as 64 lowercase hex digits, read in 1 MiB blocks.
async fn sha256_file(path: &Path) -> Result<String> {
    let owned = path.to_owned();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(hasher.finalize())
    })
    .await
    .map_err(|e| Error::backend(BACKEND, path.display().to_string(), e))?
    .map_err(|e| Error::io(path, e))?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// One file's transfer: each attempt resumes from the partial file on disk.
struct Transfer<'a> {
    client: &'a Client,
    options: &'a DownloadOptions,
    url: &'a Url,
    shown_url: &'a str,
    file: &'a RemoteFile,
    part_path: &'a Path,
    progress: Option<&'a dyn Progress>,
    received: &'a AtomicU64,
    resumed: &'a AtomicBool,
}

impl Transfer<'_> {
    fn io(&self, e: std::io::Error) -> Failure {
        Failure::Fatal(Error::io(self.part_path, e))
    }

    async fn discard_part(&self) -> std::result::Result<(), Failure> {
        remove_if_exists(self.part_path)
            .await
            .map_err(Failure::Fatal)
    }

    /// One request: fills the partial file up to the listed size, or fails.
    async fn attempt(&self) -> std::result::Result<(), Failure> {
        let name = self.file.name;
        let mut offset = match tokio::fs::metadata(self.part_path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(self.io(e)),
        };
        if offset > self.file.size {
            self.discard_part().await?;
            offset = 0;
        }
        if offset == self.file.size && offset > 0 {
            return Ok(());
        }

        let mut request = authorized(self.client.get(self.url.clone()), self.options);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| transport(name, self.shown_url, "fetching", e))?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT => {
                if content_range_start(response.headers()) != Some(offset) {
                    self.discard_part().await?;
                    return Err(Failure::retry(
                        name,
                        format!(
                            "{} answered a request for bytes {offset}- with another range; \
                             starting over",
                            self.shown_url
                        ),
                    ));
                }
                offset > 0
            }
            StatusCode::OK => false,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                self.discard_part().await?;
                return Err(Failure::retry(
                    name,
                    format!(
                        "{} cannot serve bytes {offset}- (416); starting over",
                        self.shown_url
                    ),
                ));
            }
            s if s.is_success() => {
                return Err(Failure::fatal(
                    name,
                    format!("{} answered {s} instead of the file", self.shown_url),
                ))
            }
            _ => return Err(status_failure(response, name, self.shown_url, self.options).await),
        };
        if offset > 0 && !append {
            tracing::info!("{} does not resume {name}: starting over", self.shown_url);
        }
        let offset = if append { offset } else { 0 };
        if let Some(length) = response.content_length() {
            if offset.saturating_add(length) != self.file.size {
                self.discard_part().await?;
                return Err(Failure::fatal(
                    name,
                    format!(
                        "size mismatch for {name} from {}: expected {} bytes, the server sends {}",
                        self.shown_url,
                        self.file.size,
                        offset.saturating_add(length)
                    ),
                ));
            }
        }
        if append {
            self.resumed.store(true, Ordering::Relaxed);
        }

        let handle = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(self.part_path)
            .await
            .map_err(|e| self.io(e))?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, handle);
        if let Some(p) = self.progress {
            p.started(self.file.name, offset, self.file.size);
        }

        let mut written = offset;
        let body = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let len = chunk.len() as u64;
                    if written + len > self.file.size {
                        break Err(Failure::fatal(
                            name,
                            format!(
                                "size mismatch for {name} from {}: expected {} bytes, got more",
                                self.shown_url, self.file.size
                            ),
                        ));
                    }
                    if let Err(e) = out.write_all(&chunk).await {
                        break Err(self.io(e));
                    }
                    written += len;
                    self.received.fetch_add(len, Ordering::Relaxed);
                    if let Some(p) = self.progress {
                        p.advanced(self.file.name, len);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(transport(name, self.shown_url, "reading", e)),
            }
        };
        // What arrived is kept for the next attempt, even when this one failed.
        out.flush().await.map_err(|e| self.io(e))?;
        out.get_ref().sync_all().await.map_err(|e| self.io(e))?;
        drop(out);
        match body {
            Err(Failure::Fatal(e)) => {
                self.discard_part().await?;
                Err(Failure::Fatal(e))
            }
            Err(retry) => Err(retry),
            Ok(()) if written < self.file.size => Err(Failure::retry(
                name,
                format!(
                    "the body from {} ended after {written} of {} bytes",
                    self.shown_url, self.file.size
                ),
            )),
            Ok(()) => Ok(()),
        }
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    let (first, _) = range.split_once('-')?;
    first.trim().parse().ok()
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

    #[test]
    fn urls_encode_each_segment() {
        let base = endpoint_url("https://hub.example/mirror/").unwrap();
        let url = join(
            &base,
            ["datasets", "o", "n", "resolve", "refs/pr/1", "a b.csv"],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://hub.example/mirror/datasets/o/n/resolve/refs%2Fpr%2F1/a%20b.csv"
        );
        assert!(endpoint_url("ftp://x").is_err());
        assert!(repo_segments("a//b").is_err());
    }

    #[test]
    fn link_and_range_headers_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            "<https://h/api?cursor=x>; rel=\"next\"".parse().unwrap(),
        );
        let base = Url::parse("https://h/api").unwrap();
        assert_eq!(
            next_link(&headers, &base).map(|u| u.to_string()),
            Some("https://h/api?cursor=x".to_owned())
        );
        headers.insert(CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&headers), Some(100));
        headers.insert(CONTENT_RANGE, "bytes */200".parse().unwrap());
        assert_eq!(content_range_start(&headers), None);
    }

    #[test]
    fn lfs_oids_are_normalised() {
        let hex = "A".repeat(64);
        assert_eq!(sha256_hex(&hex), Some("a".repeat(64)));
        assert_eq!(
            sha256_hex(&format!("sha256:{}", "b".repeat(64))),
            Some("b".repeat(64))
        );
        assert_eq!(sha256_hex("abc"), None);
    }
}
