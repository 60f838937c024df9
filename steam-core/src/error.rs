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
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend (files, postgres, lake, mongodb…) failed on a target (a table, object, collection).
    #[error("{backend} {target}: {message}")]
    Backend {
        /// The backend's name, such as `postgres` or `parquet`.
        backend: &'static str,
        /// What was being read or written: a table, a path, a collection.
        target: String,
        /// A message without secrets.
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
    /// An Arrow compute or construction error, with what was being done.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// A [`Error::Backend`] with an underlying error.
    pub fn backend(
        backend: &'static str,
        target: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend,
            target: target.into(),
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// A [`Error::Backend`] with a message only.
    pub fn backend_msg(
        backend: &'static str,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Backend {
            backend,
            target: target.into(),
            message: message.into(),
            source: None,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            error_chain(&e),
            "postgres recsys.t: connection reset: connection reset"
        );
    }
}
