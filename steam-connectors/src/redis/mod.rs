//! Redis as the serving store: one hash per table, one entry per key, swapped in whole.
//!
//! - [`RedisConfig`]: a URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS with
//!   rustls and the webpki roots) or `REDIS_URL`; the password never shown.
//! - [`RedisSink`]: rows as entries `key → value` of the table's hash, written with pipelined
//!   `HSET`s in bounded batches. Replace mode loads a new hash beside the live one and swaps it in
//!   with one atomic script (see [`RedisSink`]).
//! - [`RedisSource`]: a table's entries back as Arrow.
//! - [`RedisReader`]: one key at a time, with the id of the load that wrote it, as an online
//!   service reads.
//!
//! ## Layout
//!
//! Table `T` under prefix `P` (default [`DEFAULT_PREFIX`]) is the hash `P{T}`; the braces make
//! every key of a table one Redis Cluster hash slot. A load in progress writes `P{T}:load:RUN`
//! and lists its run in the set `P{T}:loads`. Besides the rows, a hash holds the field
//! [`RUN_FIELD`] (`\xffrun`, the id of the load that wrote it); a row's key is an integer's
//! decimal digits or a UTF-8 string, so it can never be a field that starts with byte `0xFF`.
//!
//! Values: a list of integers is packed as little-endian 32-bit integers (4 bytes per game id:
//! [`encode_ids`], [`decode_ids`]); an integer as its decimal digits; a string or a binary as its
//! bytes. Scored game ids (such as similar games) are a binary of [`encode_scored`]: the ids packed,
//! then their scores as little-endian 32-bit floats.

mod sink;
mod source;

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;
use steam_core::{Error, ErrorKind, Result, Secret};

pub use sink::RedisSink;
pub use source::RedisSource;

/// The default prefix of every key the connector writes.
pub const DEFAULT_PREFIX: &str = "steam-recsys:";

/// The field of a table's hash that holds the id of the load that wrote it.
pub const RUN_FIELD: &[u8] = b"\xffrun";

/// How to reach a Redis server, and the prefix of the keys used.
///
/// ```
/// use steam_connectors::redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://:secret@cache:6379/2")?;
/// assert_eq!(config.describe(), "redis://:***@cache:6379/2");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), steam_core::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// The URL's password, kept to cut it out of error messages.
    password: Option<Secret>,
    shown: String,
    client: redis::Client,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl RedisConfig {
    /// A server by URL: `redis://`, `rediss://` (TLS), `redis+unix://`, `unix://`. A URL that
    /// does not parse is an error that does not show it.
    pub fn from_url(url: &str) -> Result<Self> {
        let shown = steam_core::redact_url(url);
        let password = url_password(url);
        let client = redis::Client::open(url).map_err(|e| Error::Config {
            key: "redis url".into(),
            reason: format!(
                "{shown} is not a Redis URL: {}",
                hide(password.as_ref(), &e.to_string())
            ),
        })?;
        Ok(RedisConfig {
            password,
            shown,
            client,
            prefix: DEFAULT_PREFIX.into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
        })
    }

    /// The server of `REDIS_URL`, if set and not empty.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self::from_url(&url).map(Some),
            _ => Ok(None),
        }
    }

    /// Keys start with `prefix` (default [`DEFAULT_PREFIX`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command (or pipeline) may take to answer (default 30 s).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL without its password, for messages.
    pub fn describe(&self) -> String {
        self.shown.clone()
    }

    /// The hash of table `table`.
    pub fn table_key(&self, table: &str) -> String {
        format!("{}{{{table}}}", self.prefix)
    }

    /// A connection of its own (commands are pipelined on it).
    pub async fn connect(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("connecting", e))
    }

    /// Pings the server.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connect().await?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.error("ping", e))
    }

    /// An error of the server while doing `what`, its message without the password.
    pub(crate) fn error(&self, what: &str, e: redis::RedisError) -> Error {
        let text = hide(self.password.as_ref(), &e.to_string());
        Error::Backend {
            kind: kind(&e),
            backend: "redis",
            target: self.shown.clone(),
            message: what.to_owned(),
            source: Some(Box::new(steam_core::Cause::new(text, e))),
        }
    }
}

/// `text` without `password`.
fn hide(password: Option<&Secret>, text: &str) -> String {
    password.map_or_else(|| text.to_owned(), |p| p.hide_in(text))
}

/// The password of a URL's user information, if it has one.
fn url_password(url: &str) -> Option<Secret> {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
        .map(Secret::new)
}

/// The kind of a Redis error.
pub fn kind(e: &redis::RedisError) -> ErrorKind {
    use redis::ErrorKind as K;
    if e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        return ErrorKind::Transient;
    }
    match e.kind() {
        K::AuthenticationFailed => ErrorKind::Unauthenticated,
        K::InvalidClientConfig => ErrorKind::InvalidInput,
        _ if e.code() == Some("NOPERM") => ErrorKind::PermissionDenied,
        _ if matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
        ) =>
        {
            ErrorKind::Transient
        }
        _ => ErrorKind::Other,
    }
}

/// Game ids packed as little-endian 32-bit integers, in order.
pub fn encode_ids(ids: impl IntoIterator<Item = i32>) -> Vec<u8> {
    ids.into_iter().flat_map(i32::to_le_bytes).collect()
}

/// The game ids of [`encode_ids`]; `None` when the length is not a multiple of 4.
pub fn decode_ids(bytes: &[u8]) -> Option<Vec<i32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Game ids and their scores (as many of each) packed as [`encode_ids`] of the ids followed by the
/// scores as little-endian 32-bit floats: 8 bytes a game. Extra ids or scores are dropped.
pub fn encode_scored(ids: &[i32], scores: &[f32]) -> Vec<u8> {
    let n = ids.len().min(scores.len());
    let mut bytes = encode_ids(ids[..n].iter().copied());
    bytes.extend(scores[..n].iter().flat_map(|s| s.to_le_bytes()));
    bytes
}

/// The game ids and scores of [`encode_scored`]; `None` when the length is not a multiple of 8.
pub fn decode_scored(bytes: &[u8]) -> Option<(Vec<i32>, Vec<f32>)> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    let (ids, scores) = bytes.split_at(bytes.len() / 2);
    let scores = scores
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((decode_ids(ids)?, scores))
}

/// One entry read by [`RedisReader::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value as stored.
    pub value: Vec<u8>,
    /// The id of the load that wrote it.
    pub run: String,
}

/// Reads single entries, as an online service does: one `HMGET` per lookup, which returns the
/// value and the id of the load that wrote it together, so that an answer never mixes two loads
/// even while a load swaps the table. Cloning is cheap and clones share one connection, which
/// reconnects by itself after the server comes back. Each lookup is bounded by the config's
/// response timeout.
#[derive(Clone)]
pub struct RedisReader {
    config: RedisConfig,
    conn: ConnectionManager,
}

impl fmt::Debug for RedisReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisReader {
    /// A reader that connects on first use (so that a service can start while Redis is down),
    /// and reconnects with a short backoff when the connection is lost.
    pub fn new(config: &RedisConfig) -> Result<Self> {
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(config.client.clone(), manager)
            .map_err(|e| config.error("connecting", e))?;
        Ok(RedisReader {
            config: config.clone(),
            conn,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The entry of `key` in table `table`, or `None` when the table (as last loaded) has none.
    pub async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Entry>> {
        let mut conn = self.conn.clone();
        let reply: (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.config.table_key(table))
            .arg(key)
            .arg(RUN_FIELD)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.config.error("HMGET", e))?;
        Ok(match reply {
            (Some(value), run) => Some(Entry {
                value,
                run: run
                    .map(|r| String::from_utf8_lossy(&r).into_owned())
                    .unwrap_or_default(),
            }),
            (None, _) => None,
        })
    }

    /// Pings the server on the shared connection.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.config.error("ping", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_odd_lengths_are_refused() {
        let ids = vec![10, -1, i32::MAX, 0];
        let packed = encode_ids(ids.iter().copied());
        assert_eq!(packed.len(), 16);
        assert_eq!(decode_ids(&packed), Some(ids));
        assert_eq!(decode_ids(&packed[..5]), None);
        assert_eq!(decode_ids(&[]), Some(vec![]));
    }

    #[test]
    fn scored_ids_round_trip_and_odd_lengths_are_refused() {
        let (ids, scores) = (vec![7, -3, i32::MAX], vec![0.5, -1.25, 1e-3]);
        let packed = encode_scored(&ids, &scores);
        assert_eq!(packed.len(), 24);
        assert_eq!(decode_scored(&packed), Some((ids.clone(), scores.clone())));
        assert_eq!(&packed[..12], encode_ids(ids).as_slice());
        assert_eq!(decode_scored(&packed[..20]), None);
        assert_eq!(decode_scored(&[]), Some((vec![], vec![])));
        assert_eq!(encode_scored(&[1, 2], &[0.5]).len(), 8, "as many of each");
    }

    #[test]
    fn passwords_are_never_shown() {
        let config = RedisConfig::from_url("rediss://steam:s3cr3t@cache.example:6380/1").unwrap();
        assert_eq!(config.describe(), "rediss://steam:***@cache.example:6380/1");
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let e = config.error(
            "ping",
            redis::RedisError::from((redis::ErrorKind::Io, "failed", "s3cr3t in detail".into())),
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(e.to_string().contains("cache.example"), "{e}");
        let bad = RedisConfig::from_url("http://:s3cr3t@host").unwrap_err();
        assert!(!bad.to_string().contains("s3cr3t"), "{bad}");
    }

    #[test]
    fn table_keys_share_a_cluster_slot() {
        let config = RedisConfig::from_url("redis://127.0.0.1:6379")
            .unwrap()
            .with_prefix("app:");
        assert_eq!(config.table_key("recsys"), "app:{recsys}");
    }
}
