//! The one error type of steam-recsys.

use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in steam-recsys, each variant carrying where it went wrong.
///
/// Messages name the backend, table, file, line and column where they apply, and never contain a
/// secret: connectors redact credentials before they build one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value in an input file that cannot be used (raised in strict mode, or for values that make
    /// a whole file unusable).
    #[error("{file}: line {line}, column {column}: {reason} (value: {value:?})")]
    BadInput {
        /// The file the value came from.
        file: String,
        /// The 1-based line on which the record starts (the header is line 1).
        line: u64,
        /// The column's name.
        column: String,
        /// The offending value, as read.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input file lacks a column it must have.
    #[error("{file}: missing column {column:?} (found: {found})")]
    MissingColumn {
        /// The file.
        file: String,
        /// The column that is missing.
        column: String,
        /// The columns the file has, comma-separated.
        found: String,
    },
    /// An input file that does not exist.
    #[error("missing file: {}", path.display())]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A local file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend (files, postgres, lake, mongodb…) failed on a target (a table, object, collection).
    ///
    /// Shown as `{backend} {target}: {message}`; the underlying error, if any, is the
    /// [`source`](std::error::Error::source) and is not repeated in the message: print the whole
    /// chain with [`error_chain`].
    #[error("{backend} {target}{}{message}", if message.is_empty() { "" } else { ": " })]
    Backend {
        /// What kind of failure it is, for callers that react to it (see [`Error::kind`]).
        kind: ErrorKind,
        /// The backend's name, such as `postgres` or `parquet`.
        backend: &'static str,
        /// What was being read or written: a table, a path, a collection.
        target: String,
        /// What was being done, or what went wrong when there is no underlying error; never the
        /// underlying error's own text (that is the source). Without secrets; may be empty.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Batches that do not match what a table or step expects.
    #[error("schema mismatch for {target}: {reason}")]
    Schema {
        /// The table or step.
        target: String,
        /// What differs.
        reason: String,
    },
    /// A configuration value that is missing or invalid.
    #[error("configuration {key}: {reason}")]
    Config {
        /// The configuration key, flag or environment variable.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operation a backend does not support, such as upserting into a Parquet file.
    #[error("{backend}: {operation} is not supported")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: String,
    },
    /// Work stopped before its end because something else asked it to: a consumer that went away,
    /// a sibling output whose writer failed, a producer task that was dropped.
    #[error("{what}: cancelled: {reason}")]
    Cancelled {
        /// What was stopped (a stream, a stage).
        what: String,
        /// Why.
        reason: String,
    },
    /// A bug rather than a failure of the input or a backend: a panic, a worker thread that died.
    #[error("{what}: internal error: {message}")]
    Internal {
        /// Where it happened.
        what: String,
        /// The panic's or the thread's message.
        message: String,
    },
    /// A producer shared by several consumers failed: each consumer gets this, with the
    /// producer's own error (shared) as its source and its kind.
    #[error("{what}: the producer failed")]
    Producer {
        /// The shared stream.
        what: String,
        /// The producer's error.
        #[source]
        source: std::sync::Arc<Error>,
    },
    /// An Arrow compute or construction error, with what was being done.
    #[error("{context}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// What kind of failure an [`Error`] is, in the manner of `object_store::Error`'s variants: what a
/// caller can match on to decide what to do (retry, ask for credentials, create the missing
/// thing), whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// What was asked for does not exist: a file, an object, a table, a database, a collection.
    NotFound,
    /// What was to be created exists already (a unique key, an object written only if absent).
    AlreadyExists,
    /// The backend did not accept the credentials, or none were given.
    Unauthenticated,
    /// The credentials were accepted but do not allow the operation.
    PermissionDenied,
    /// A failure that may pass: the network, a server restarting or overloaded, a deadlock or
    /// serialization conflict. Retrying later may succeed.
    Transient,
    /// The input or the configuration is wrong: retrying will fail the same way.
    InvalidInput,
    /// The work was stopped on purpose (see [`Error::Cancelled`]).
    Cancelled,
    /// Anything else, bugs included.
    Other,
}

impl ErrorKind {
    /// The kind of an I/O error.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::AddrNotAvailable
            | Io::BrokenPipe
            | Io::TimedOut
            | Io::Interrupted
            | Io::UnexpectedEof
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::WouldBlock => ErrorKind::Transient,
            Io::InvalidInput | Io::InvalidData => ErrorKind::InvalidInput,
            _ => ErrorKind::Other,
        }
    }
}

impl Error {
    /// What kind of failure this is: a backend's as its connector classified it, a missing file
    /// [`ErrorKind::NotFound`], bad input, schemas and configuration
    /// [`ErrorKind::InvalidInput`], an I/O error by its own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Backend { kind, .. } => *kind,
            Error::MissingFile { .. } => ErrorKind::NotFound,
            Error::Io { source, .. } => ErrorKind::of_io(source),
            Error::BadInput { .. }
            | Error::MissingColumn { .. }
            | Error::Schema { .. }
            | Error::Config { .. }
            | Error::Unsupported { .. } => ErrorKind::InvalidInput,
            Error::Producer { source, .. } => source.kind(),
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Arrow { .. } | Error::Internal { .. } => ErrorKind::Other,
        }
    }

    /// Whether retrying may succeed ([`ErrorKind::Transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// The same error with another kind (for a [`Error::Backend`]; other variants have theirs).
    pub fn with_kind(mut self, new: ErrorKind) -> Self {
        if let Error::Backend { kind, .. } = &mut self {
            *kind = new;
        }
        self
    }

    /// A [`Error::Backend`] with an underlying error (its text is shown once, as the source).
    pub fn backend(
        backend: &'static str,
        target: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            kind: ErrorKind::Other,
            backend,
            target: target.into(),
            message: String::new(),
            source: Some(Box::new(source)),
        }
    }

    /// The same error with `source` as its underlying error (for a [`Error::Backend`]; other
    /// variants are returned as they are). Its text is not copied into the message.
    pub fn with_source(mut self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        if let Error::Backend { source, .. } = &mut self {
            *source = Some(e.into());
        }
        self
    }

    /// The same error with `message` saying what was being done (for a [`Error::Backend`]; other
    /// variants are returned as they are).
    pub fn doing(mut self, what: impl Into<String>) -> Self {
        if let Error::Backend { message, .. } = &mut self {
            *message = what.into();
        }
        self
    }

    /// A [`Error::Backend`] with a message only.
    pub fn backend_msg(
        backend: &'static str,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Backend {
            kind: ErrorKind::Other,
            backend,
            target: target.into(),
            message: message.into(),
            source: None,
        }
    }

    /// The error of a task or blocking thread `what` that did not return: [`Error::Cancelled`]
    /// when it was cancelled, else [`Error::Internal`] with its panic's message.
    pub fn from_join(what: impl Into<String>, e: tokio::task::JoinError) -> Self {
        let what = what.into();
        if e.is_cancelled() {
            return Error::Cancelled {
                what,
                reason: "its task was cancelled".into(),
            };
        }
        Error::Internal {
            what,
            message: format!("panicked: {}", panic_message(e.into_panic().as_ref())),
        }
    }

    /// A [`Error::Io`] for a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`Error::Arrow`] with context.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }
}

/// The message a panic carried (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// An underlying error shown by a text of the connector's choosing: its secrets cut out, or made
/// readable (a database error with its detail and hint). The original is kept for callers that
/// want the driver's own error ([`Cause::downcast_ref`]); its text is never shown, so a `Cause`
/// ends the chain.
pub struct Cause {
    text: String,
    inner: Box<dyn std::error::Error + Send + Sync>,
}

impl Cause {
    /// `inner`, shown as `text`.
    pub fn new(
        text: impl Into<String>,
        inner: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            text: text.into(),
            inner: Box::new(inner),
        }
    }

    /// `inner` shown by its own text, its chain folded into it: for errors whose `Display`
    /// already repeats their sources (object_store's, DataFusion's, parquet's), so that the chain
    /// says each message once.
    pub fn folded(inner: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause::new(inner.to_string(), inner)
    }

    /// The original error (its own `Display` may show what the text left out).
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.inner.as_ref()
    }

    /// The original error as a `T`, if it is one.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.inner.downcast_ref::<T>()
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cause").field(&self.text).finish()
    }
}

impl std::error::Error for Cause {}

/// The causes of `error`, outermost first, not counting `error` itself.
pub fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |e| e.source())
}

/// `error` and its causes in one line: `outer: inner: innermost`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    for cause in causes(error) {
        line.push_str(": ");
        line.push_str(&cause.to_string());
    }
    line
}

/// A URL without its password and query: `scheme://user:***@host:port/path?***`; `***` when it
/// is not a URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    // The last `@` ends the credentials, even if they hold an unencoded `/` or `?`.
    let (user, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (
            Some(userinfo.split([':', '/', '?', '#']).next().unwrap_or("")),
            rest,
        ),
        None => (None, rest),
    };
    let (before_query, query) = match rest.split_once(['?', '#']) {
        Some((before, _)) => (before, "?***"),
        None => (rest, ""),
    };
    match user {
        Some(user) => format!("{scheme}://{user}:***@{before_query}{query}"),
        None => format!("{scheme}://{before_query}{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bad_input_names_file_line_column_and_value() {
        let e = Error::BadInput {
            file: "steam_game_reviews.csv".into(),
            line: 42,
            column: "hours_played".into(),
            value: "abc".into(),
            reason: "not a number".into(),
        };
        let msg = e.to_string();
        for part in [
            "steam_game_reviews.csv",
            "line 42",
            "hours_played",
            "\"abc\"",
            "not a number",
        ] {
            assert!(msg.contains(part), "{msg} lacks {part}");
        }
    }

    #[test]
    fn missing_column_lists_what_was_found() {
        let e = Error::MissingColumn {
            file: "games_ranking.csv".into(),
            column: "rank".into(),
            found: "game_name, genre".into(),
        };
        assert_eq!(
            e.to_string(),
            "games_ranking.csv: missing column \"rank\" (found: game_name, genre)"
        );
    }

    #[test]
    fn a_chain_reads_outer_to_inner() {
        let io = std::io::Error::other("connection reset");
        let e = Error::backend("postgres", "recsys.t", io);
        assert_eq!(causes(&e).count(), 1);
        assert_eq!(e.to_string(), "postgres recsys.t");
        assert_eq!(error_chain(&e), "postgres recsys.t: connection reset");
        let e =
            Error::backend("postgres", "recsys.t", std::io::Error::other("reset")).doing("COPY");
        assert_eq!(error_chain(&e), "postgres recsys.t: COPY: reset");
    }

    #[test]
    fn a_cause_shows_its_text_and_keeps_the_original() {
        let io = std::io::Error::other("password=hunter2 refused");
        let e = Error::backend("redis", "h:1", Cause::new("password=*** refused", io)).doing("GET");
        let chain = error_chain(&e);
        assert_eq!(chain, "redis h:1: GET: password=*** refused");
        assert!(!format!("{e:?}").contains("hunter2"));
        let cause = causes(&e).next().unwrap().downcast_ref::<Cause>().unwrap();
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn a_producer_failure_is_shared_with_its_kind() {
        let original = Arc::new(Error::MissingFile {
            path: "/x.csv".into(),
        });
        let copies: Vec<Error> = (0..2)
            .map(|_| Error::Producer {
                what: "games".into(),
                source: original.clone(),
            })
            .collect();
        for e in &copies {
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert_eq!(
                error_chain(e),
                "games: the producer failed: missing file: /x.csv"
            );
        }
        let cancelled = Error::Cancelled {
            what: "tee".into(),
            reason: "the first output's consumer stopped".into(),
        };
        assert_eq!(cancelled.kind(), ErrorKind::Cancelled);
    }

    #[test]
    fn every_error_has_a_kind() {
        let missing = Error::MissingFile {
            path: "/x.csv".into(),
        };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let config = Error::Config {
            key: "k".into(),
            reason: "r".into(),
        };
        assert_eq!(config.kind(), ErrorKind::InvalidInput);
        let reset = Error::io(
            "/x",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert!(reset.is_transient());
        let backend = Error::backend_msg("lake", "t", "gone");
        assert_eq!(backend.kind(), ErrorKind::Other);
        assert_eq!(
            backend.with_kind(ErrorKind::NotFound).kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn urls_are_shown_without_password_or_query() {
        assert_eq!(redact_url("host=db password=x"), "***");
        assert_eq!(redact_url("mongodb://a:b/c@h/d"), "mongodb://a:***@h/d");
        assert_eq!(redact_url("mongodb://h:1/d"), "mongodb://h:1/d");
        assert_eq!(
            redact_url("postgresql://h/d?password=a@b"),
            "postgresql://h:***@b"
        );
        assert_eq!(
            redact_url("https://cdn.example/f.csv?X-Amz-Signature=abc"),
            "https://cdn.example/f.csv?***"
        );
    }
}
