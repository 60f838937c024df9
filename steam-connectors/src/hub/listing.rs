//! The repository's tree listing, page by page, and the raw files picked from it.

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Client, Url};
use serde::Deserialize;
use steam_core::raw::RawFile;
use steam_core::{Error, Result};

use super::endpoint::{authorized, shown};
use super::retry::{status_failure, transport, with_retries, Failure};
use super::{DownloadOptions, BACKEND};

const MAX_LISTING_PAGES: usize = 1000;

/// One raw file as the listing gives it.
#[derive(Debug, Clone)]
pub(super) struct RemoteFile {
    pub(super) name: &'static str,
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TreeEntry {
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

/// Every entry of the repository's tree, following the pagination links.
pub(super) async fn list(
    client: &Client,
    options: &DownloadOptions,
    first: Url,
) -> Result<Vec<TreeEntry>> {
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
        Failure::Fatal(Error::backend(BACKEND, target, e).doing(format!(
            "the listing from {shown_url} is not the expected JSON array of entries"
        )))
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
pub(super) fn select(entries: &[TreeEntry], options: &DownloadOptions) -> Result<Vec<RemoteFile>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_are_parsed() {
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
