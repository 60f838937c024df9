//! Where requests go: the endpoint, the repository's path segments, URLs as they may be shown,
//! and the token on a request.

use reqwest::header::AUTHORIZATION;
use reqwest::{RequestBuilder, Url};
use steam_core::{Error, Result};

use super::{DownloadOptions, DEFAULT_REPO};

/// The endpoint as a URL, checked to be http(s).
pub(super) fn endpoint_url(endpoint: &str) -> Result<Url> {
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
pub(super) fn repo_segments(repo: &str) -> Result<Vec<&str>> {
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
pub(super) fn join<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Result<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    extend(&mut url, segments)?;
    Ok(url)
}

pub(super) fn extend<'a>(url: &mut Url, segments: impl IntoIterator<Item = &'a str>) -> Result<()> {
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
pub(super) fn shown(url: &Url) -> String {
    steam_core::redact_url(url.as_str())
}

pub(super) fn authorized(request: RequestBuilder, options: &DownloadOptions) -> RequestBuilder {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
