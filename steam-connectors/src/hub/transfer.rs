//! One file's transfer: resumed, verified against the listing, renamed into place.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use reqwest::header::{HeaderMap, CONTENT_RANGE, RANGE};
use reqwest::{Client, StatusCode, Url};
use sha2::{Digest, Sha256};
use steam_core::{Error, Result};
use tokio::io::AsyncWriteExt;

use super::endpoint::{authorized, shown};
use super::listing::RemoteFile;
use super::retry::{status_failure, transport, with_retries, Failure};
use super::{DownloadOptions, FileDownload, Progress, BACKEND};

const WRITE_BUFFER: usize = 1 << 20;

/// Fetches one file into `options.out`, or skips it if it is already there.
pub(super) async fn fetch_file(
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
    .map_err(|e| {
        Error::backend(BACKEND, path.display().to_string(), e).doing("computing the SHA-256")
    })?
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
    fn range_headers_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&headers), Some(100));
        headers.insert(CONTENT_RANGE, "bytes */200".parse().unwrap());
        assert_eq!(content_range_start(&headers), None);
    }
}
