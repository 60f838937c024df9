//! Failed attempts, retried or not: transport errors, error statuses, the backoff.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Response;
use steam_core::{Error, ErrorKind, Result};

use super::{DownloadOptions, BACKEND};

const MAX_DELAY: Duration = Duration::from_secs(30);

/// An underlying error, kept as the source of the error built from it.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// A failed attempt: worth retrying (network, 5xx, a short body) or not.
#[derive(Debug)]
pub(super) enum Failure {
    /// `message` says what was being done (never the source's text); `source`, if any, why it
    /// failed.
    Retry {
        target: String,
        message: String,
        source: Option<Source>,
    },
    Fatal(Error),
}

impl Failure {
    pub(super) fn retry(target: &str, message: impl Into<String>) -> Self {
        Failure::Retry {
            target: target.to_owned(),
            message: message.into(),
            source: None,
        }
    }

    pub(super) fn fatal(target: &str, message: impl Into<String>) -> Self {
        Failure::Fatal(Error::backend_msg(BACKEND, target, message))
    }

    fn is_retryable(&self) -> bool {
        matches!(self, Failure::Retry { .. })
    }

    fn into_error(self, attempts: usize) -> Error {
        match self {
            Failure::Fatal(e) => e,
            Failure::Retry {
                target,
                message,
                source,
            } => Error::Backend {
                kind: ErrorKind::Transient,
                backend: BACKEND,
                target,
                message: if attempts > 1 {
                    format!("{message} (gave up after {attempts} attempts)")
                } else {
                    message
                },
                source,
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry {
                target,
                message,
                source,
            } => {
                write!(f, "{target}: {message}")?;
                match source {
                    Some(source) => write!(f, ": {}", steam_core::error_chain(&**source)),
                    None => Ok(()),
                }
            }
            Failure::Fatal(e) => e.fmt(f),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has been retried `options.retries` times.
pub(super) async fn with_retries<T, F, Fut>(options: &DownloadOptions, mut attempt: F) -> Result<T>
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

/// A transport error: retried unless the request itself is wrong or redirects loop.
///
/// The message says what was being done with `url`; the error is kept as the source, without its
/// own URL (a redirect's target may be a signed CDN URL).
pub(super) fn transport(target: &str, url: &str, doing: &str, e: reqwest::Error) -> Failure {
    let fatal = e.is_builder() || e.is_redirect();
    let e = e.without_url();
    let message = format!("{doing} {url}");
    if fatal {
        Failure::Fatal(Error::backend(BACKEND, target, e).doing(format!("{message} (not retried)")))
    } else {
        Failure::Retry {
            target: target.to_owned(),
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// The failure for a non-success status.
pub(super) async fn status_failure(
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
                ErrorKind::Unauthenticated
            } else {
                ErrorKind::PermissionDenied
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
            .with_kind(ErrorKind::NotFound),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_keep_their_source_without_the_url() {
        // A request with a token in its query to a port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{address}/f.csv?X-Amz-Signature=hf_secret");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let e = client.get(&url).send().await.expect_err("nothing listens");
        // reqwest shows the URL, query and all: the hub must not.
        assert!(e.to_string().contains("hf_secret"), "{e}");

        let shown = steam_core::redact_url(&url);
        let failure = transport("f.csv", &shown, "fetching", e);
        let logged = failure.to_string();
        let error = failure.into_error(4);
        assert_eq!(error.kind(), ErrorKind::Transient);
        let Error::Backend {
            message, source, ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            message,
            &format!("fetching {shown} (gave up after 4 attempts)")
        );
        let source = source.as_ref().expect("the reqwest error is the source");
        assert_eq!(source.to_string(), "error sending request");
        let chain = steam_core::error_chain(&error);
        assert!(
            chain.starts_with(&format!(
                "huggingface f.csv: {message}: error sending request: "
            )),
            "{chain}"
        );
        assert!(
            logged.starts_with(&format!("f.csv: fetching {shown}: error sending request: ")),
            "{logged}"
        );
        for text in [&chain, &format!("{error:?}"), &logged] {
            assert!(!text.contains("hf_secret"), "{text}");
        }
    }
}
