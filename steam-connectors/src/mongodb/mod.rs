//! MongoDB: Arrow streams into collections as documents, and collections back as Arrow.
//!
//! - [`MongoConfig`]: a URL as the driver reads it (`mongodb://h1,h2/?replicaSet=rs0`,
//!   `mongodb+srv://…` for Atlas, any option; [`MongoConfig::from_url`]) or the environment
//!   (`MONGODB_URI`, else the reference's `MONGODB_HOST`, `MONGODB_USER`, `MONGODB_PASSWORD`;
//!   [`MongoConfig::from_env`]); the password never shown.
//! - [`MongoSink`]: insert, upsert on the table's keys, or replace: a staging collection swapped
//!   in with one `renameCollection` (readers see the old collection or the new, never both); and
//!   [`MongoSink::refresh`], key by key: bulk inserts of this run's documents, then one sweep of
//!   earlier runs' (the collection ends holding exactly this run's documents, without a moment
//!   where a kept key has no document; readers take a key's newest document).
//! - [`MongoSource`]: a collection (filter, projection, limit, each key's newest document) as
//!   Arrow batches of a given schema.
//!
//! Rows become documents one field per column: 8-, 16- and 32-bit integers as Int32, 64-bit (and
//! unsigned 32-bit) as Int64, floats as Double, strings, booleans, dates and timestamps as BSON
//! dates (UTC, milliseconds), lists as arrays, structs as sub-documents, and nulls as BSON `null`
//! (the field is present). Reading maps the other way; a missing field reads as null.

mod convert;
mod sink;
mod source;

use std::fmt;
use std::time::Duration;

use mongodb::options::{ClientOptions, ConnectionString, Credential};
use mongodb::Client;
use steam_core::{Error, ErrorKind, Result, Secret};

pub use sink::{MongoSink, RUN_FIELD};

/// The driver's error kinds, for the driver error a [`steam_core::Cause`] keeps.
pub use mongodb::error::ErrorKind as DriverErrorKind;
pub use source::MongoSource;

/// How to reach a MongoDB deployment and which database to use.
///
/// The URI is read as the driver reads it ([`ConnectionString`]): one host or several (a replica
/// set's seed list, `?replicaSet=rs0`), `mongodb+srv://` (the hosts come from DNS when connecting),
/// and every option the driver knows. The password is taken out and kept as a [`Secret`]; neither
/// it nor option values that are secrets (`tlsCertificateKeyFilePassword`,
/// `authMechanismProperties`, `proxyPassword`) appear in messages or in `Debug` output.
///
/// ```
/// use steam_connectors::mongodb::MongoConfig;
///
/// let config = MongoConfig::from_url("mongodb://h1:27017,h2:27017/serving?replicaSet=rs0")?
///     .with_user("mage")
///     .with_password(steam_core::Secret::new("secret"));
/// assert_eq!(config.database(), "serving");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), steam_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoConfig {
    /// The parsed URI, without its credential.
    conn: ConnectionString,
    /// The URI as messages show it: hosts, path and options, without the user information and
    /// secret option values.
    shown: String,
    /// The URI's credential without its password (user, auth source, mechanism), if any.
    credential: Option<Credential>,
    /// The password: from the URI or [`MongoConfig::with_password`].
    password: Option<Secret>,
    database: String,
    server_selection_timeout: Duration,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.shown)
            .field(
                "user",
                &self.credential.as_ref().and_then(|c| c.username.as_deref()),
            )
            .field("password", &self.password)
            .field("database", &self.database)
            .finish()
    }
}

/// URI options whose values are secrets.
const SECRET_OPTIONS: [&str; 3] = [
    "tlscertificatekeyfilepassword",
    "authmechanismproperties",
    "proxypassword",
];

impl MongoConfig {
    /// The database used when none is given.
    pub const DEFAULT_DATABASE: &'static str = "steam_recsys";

    /// A configuration from a `mongodb://` or `mongodb+srv://` URL, parsed as the driver parses it
    /// (no network access: an SRV name is looked up when connecting), and from nothing else (not
    /// the environment: that is [`MongoConfig::from_env`]). A password in the URL is taken out of
    /// it and kept as a [`Secret`].
    pub fn from_url(uri: &str) -> Result<Self> {
        let shown = show_uri(uri);
        let mut conn = ConnectionString::parse(uri).map_err(|e| Error::Config {
            key: "mongodb uri".into(),
            reason: format!("{}: {}", scrub(&shown, uri), scrub(&e.to_string(), uri)),
        })?;
        let mut credential = conn.credential.take();
        let password = credential
            .as_mut()
            .and_then(|c| c.password.take())
            .map(Secret::new);
        let database = conn
            .default_database
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| Self::DEFAULT_DATABASE.to_owned());
        Ok(MongoConfig {
            conn,
            shown,
            credential,
            password,
            database,
            server_selection_timeout: Duration::from_secs(10),
        })
    }

    /// A configuration from the environment: `MONGODB_URI` (a whole URI, read as
    /// [`MongoConfig::from_url`] reads it), else the reference's `MONGODB_HOST` (a host,
    /// `host:port`, or a whole URI; an Atlas host `*.mongodb.net` gets `mongodb+srv://`); then
    /// `MONGODB_USER`, `MONGODB_PASSWORD` and `MONGODB_DATABASE` over the URI's. Empty variables
    /// count as unset. `None` when neither `MONGODB_URI` nor `MONGODB_HOST` is set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`MongoConfig::from_env`] with the variables `var` gives.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        let uri = match (var("MONGODB_URI"), var("MONGODB_HOST")) {
            (Some(uri), _) => uri,
            (None, Some(host)) if host.contains("://") => host,
            (None, Some(host)) if host.ends_with(".mongodb.net") => {
                format!("mongodb+srv://{host}/")
            }
            (None, Some(host)) => format!("mongodb://{host}/"),
            (None, None) => return Ok(None),
        };
        let mut config = Self::from_url(&uri)?;
        if let Some(user) = var("MONGODB_USER") {
            config = config.with_user(user);
        }
        if let Some(password) = var("MONGODB_PASSWORD") {
            config = config.with_password(Secret::new(password));
        }
        if let Some(db) = var("MONGODB_DATABASE") {
            config.database = db;
        }
        Ok(Some(config))
    }

    /// Logs in as `user` (over a user in the URI); the auth database and mechanism stay the URI's.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.credential
            .get_or_insert_with(Credential::default)
            .username = Some(user.into());
        self
    }

    /// Logs in with `password` (over a password in the URI).
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// The user to log in as, if any.
    pub fn user(&self) -> Option<&str> {
        self.credential.as_ref().and_then(|c| c.username.as_deref())
    }

    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Uses another database.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// How long to look for a usable server before giving up (default 10 s).
    pub fn with_server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// The database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The URI without secrets (the hosts, the path, the options) and the user, for messages.
    pub fn describe(&self) -> String {
        match self.credential.as_ref().and_then(|c| c.username.as_deref()) {
            Some(user) => format!("{} (user {user})", self.shown),
            None => self.shown.clone(),
        }
    }

    /// A client. The driver connects lazily and retries reads and writes once on transient errors
    /// (its retryable reads and writes); [`MongoConfig::ping`] checks the deployment answers.
    pub async fn client(&self) -> Result<Client> {
        // The credential goes back in before the driver resolves the options, so that it fills in
        // the authentication database as it does for a URI (the URI's database, or the SRV
        // record's authSource).
        let mut conn = self.conn.clone();
        if self.credential.is_some() || self.password.is_some() {
            let mut credential = self.credential.clone().unwrap_or_default();
            credential.password = self.password.as_ref().map(|p| p.expose().to_owned());
            conn.credential = Some(credential);
        }
        let mut options = ClientOptions::parse(conn)
            .await
            .map_err(|e| self.error("connecting", e))?;
        options.server_selection_timeout = Some(self.server_selection_timeout);
        if options.app_name.is_none() {
            options.app_name = Some("steam-recsys".into());
        }
        Client::with_options(options).map_err(|e| self.error("connecting", e))
    }

    /// Pings the deployment.
    pub async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .database("admin")
            .run_command(mongodb::bson::doc! { "ping": 1 })
            .await
            .map_err(|e| self.error("ping", e))?;
        Ok(())
    }

    /// A driver error `e` while doing `what`, as the connector reports its own: classified, the
    /// password cut out of its message, the driver's error kept as the cause ([`steam_core::Cause`]).
    pub fn error(&self, what: &str, e: mongodb::error::Error) -> Error {
        driver_error(self.describe(), what, e, self.password.as_ref())
    }
}

/// A [`Error::Backend`] for a driver error `e` while doing `what` to `target`: classified by
/// [`kind`], the driver's error kept as the source ([`steam_core::Cause`], shown with the
/// password cut out; `Cause::downcast_ref::<mongodb::error::Error>()` gives the driver's own).
pub(crate) fn driver_error(
    target: String,
    what: &str,
    e: mongodb::error::Error,
    password: Option<&Secret>,
) -> Error {
    Error::Backend {
        kind: kind(&e),
        backend: "mongodb",
        target,
        message: what.to_owned(),
        source: Some(Box::new(steam_core::Cause::new(redacted(&e, password), e))),
    }
}

/// The kind of a driver error: refused credentials, missing permissions (code 13), a missing
/// namespace (26), a duplicate key (11000), an invalid argument; a server that cannot be reached
/// or a connection that broke, or an error the driver labels retryable, is transient.
pub fn kind(e: &mongodb::error::Error) -> ErrorKind {
    use mongodb::error::{ErrorKind as K, WriteFailure};
    let by_code = |code: i32| match code {
        13 => Some(ErrorKind::PermissionDenied),
        18 => Some(ErrorKind::Unauthenticated),
        26 => Some(ErrorKind::NotFound),
        11000 => Some(ErrorKind::AlreadyExists),
        _ => None,
    };
    let coded = match e.kind.as_ref() {
        K::Command(c) => by_code(c.code),
        K::Write(WriteFailure::WriteError(w)) => by_code(w.code),
        K::InsertMany(failure) => failure
            .write_errors
            .iter()
            .flatten()
            .find_map(|w| by_code(w.code)),
        _ => None,
    };
    if let Some(kind) = coded {
        return kind;
    }
    match e.kind.as_ref() {
        K::Authentication { .. } => ErrorKind::Unauthenticated,
        K::InvalidArgument { .. } => ErrorKind::InvalidInput,
        K::ServerSelection { .. } | K::Io(_) | K::ConnectionPoolCleared { .. } => {
            ErrorKind::Transient
        }
        _ if e.contains_label("RetryableWriteError")
            || e.contains_label("TransientTransactionError") =>
        {
            ErrorKind::Transient
        }
        _ => ErrorKind::Other,
    }
}

/// A driver error's message, with the password cut out should it ever appear.
fn redacted(e: &mongodb::error::Error, password: Option<&Secret>) -> String {
    let m = e.to_string();
    match password {
        Some(p) => p.hide_in(&m),
        None => m,
    }
}

/// The parts of a connection string as the driver splits them: the scheme, the user information
/// (before the last `@` ahead of the first `?`), the hosts and path, and the options.
fn uri_parts(uri: &str) -> Option<(&str, Option<&str>, &str, Option<&str>)> {
    let (scheme, rest) = uri.split_once("://")?;
    let (before, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (userinfo, hosts) = match before.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, before),
    };
    Some((scheme, userinfo, hosts, query))
}

/// `uri` as messages show it: no user information, the hosts, the path, and the options with the
/// values of secret ones replaced by `***`.
fn show_uri(uri: &str) -> String {
    let Some((scheme, _, hosts, query)) = uri_parts(uri) else {
        return "(not a mongodb:// URI)".into();
    };
    let Some(query) = query else {
        return format!("{scheme}://{hosts}");
    };
    let options: Vec<String> = query
        .split('&')
        .map(|option| match option.split_once('=') {
            Some((k, _)) if SECRET_OPTIONS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=***")
            }
            _ => option.to_owned(),
        })
        .collect();
    format!("{scheme}://{hosts}?{}", options.join("&"))
}

/// A message of the driver about `uri`, with any secret of the URI (the password, secret option
/// values; raw or percent-decoded) replaced by `***`.
fn scrub(message: &str, uri: &str) -> String {
    let mut secrets = Vec::new();
    if let Some((_, userinfo, _, query)) = uri_parts(uri) {
        if let Some((_, password)) = userinfo.and_then(|u| u.split_once(':')) {
            secrets.push(password.to_owned());
        }
        // A malformed URI may be split otherwise by the driver: whatever stands between a `:` and
        // any `@` could be a password, whole or in pieces.
        let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
        for (at, _) in rest.match_indices('@') {
            if let Some((_, candidate)) = rest[..at].split_once(':') {
                secrets.push(candidate.to_owned());
                secrets.extend(
                    candidate
                        .split(['?', '/', '@', ',', ':', '&'])
                        .filter(|piece| piece.len() >= 3)
                        .map(str::to_owned),
                );
            }
        }
        for option in query.unwrap_or_default().split('&') {
            if let Some((k, v)) = option.split_once('=') {
                if SECRET_OPTIONS.contains(&k.to_ascii_lowercase().as_str()) {
                    secrets.push(v.to_owned());
                }
            }
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_owned();
    for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(&secret)
            .decode_utf8_lossy()
            .into_owned();
        out = out.replace(&secret, "***").replace(&decoded, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(c: &MongoConfig) -> String {
        format!("{c:?} {}", c.describe())
    }

    #[test]
    fn the_password_is_taken_out_of_the_uri() {
        let c = MongoConfig::from_url("mongodb://mage:p%40ss@db.example:27017/serving").unwrap();
        assert_eq!(c.database(), "serving");
        assert_eq!(c.password.as_ref().unwrap().expose(), "p@ss");
        let text = shown(&c);
        assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");
        assert!(
            text.contains("db.example:27017") && text.contains("user mage"),
            "{text}"
        );
        let err = MongoConfig::from_url("http://x").unwrap_err().to_string();
        assert!(err.contains("mongodb uri"), "{err}");
        assert_eq!(
            MongoConfig::from_url("mongodb://h").unwrap().database(),
            MongoConfig::DEFAULT_DATABASE
        );
    }

    #[test]
    fn replica_sets_srv_and_options_are_read_as_the_driver_reads_them() {
        let c = MongoConfig::from_url(
            "mongodb://app:s3cr%2Ft@h1.example:27017,h2.example:27018,[::1]:27019/recs\
             ?replicaSet=rs0&authSource=admin&readPreference=secondaryPreferred&w=majority\
             &tls=true&retryWrites=false",
        )
        .unwrap();
        assert_eq!(c.database(), "recs");
        assert_eq!(c.conn.replica_set.as_deref(), Some("rs0"));
        assert_eq!(c.conn.retry_writes, Some(false));
        match &c.conn.host_info {
            mongodb::options::HostInfo::HostIdentifiers(hosts) => assert_eq!(hosts.len(), 3),
            other => panic!("{other:?}"),
        }
        let credential = c.credential.as_ref().unwrap();
        assert_eq!(credential.username.as_deref(), Some("app"));
        assert_eq!(credential.source.as_deref(), Some("admin"));
        assert!(credential.password.is_none());
        assert_eq!(c.password.as_ref().unwrap().expose(), "s3cr/t");
        let text = shown(&c);
        assert!(!text.contains("s3cr"), "{text}");
        assert!(
            text.contains("h1.example:27017,h2.example:27018,[::1]:27019/recs?replicaSet=rs0"),
            "{text}"
        );
        let options = show_uri(
            "mongodb://h/?tlsCertificateKeyFilePassword=keypass&authMechanismProperties=\
             AWS_SESSION_TOKEN:tok3n&appName=x",
        );
        assert_eq!(
            options,
            "mongodb://h/?tlsCertificateKeyFilePassword=***&authMechanismProperties=***&appName=x"
        );

        let srv = MongoConfig::from_url(
            "mongodb+srv://app:pw-secret@cluster0.abcde.mongodb.net/serving?retryWrites=true&w=majority",
        )
        .unwrap();
        assert_eq!(srv.database(), "serving");
        assert!(matches!(
            srv.conn.host_info,
            mongodb::options::HostInfo::DnsRecord(ref name) if name == "cluster0.abcde.mongodb.net"
        ));
        assert!(!shown(&srv).contains("pw-secret"));
    }

    #[test]
    fn from_env_reads_mongodb_uri_else_the_references_variables() {
        let env = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            MongoConfig::from_vars(move |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        assert!(env(&[]).unwrap().is_none());
        assert!(env(&[("MONGODB_URI", ""), ("MONGODB_USER", "u")])
            .unwrap()
            .is_none());
        let c = env(&[
            (
                "MONGODB_URI",
                "mongodb://app:pw-uri@h1:27017,h2:27017/serving?replicaSet=rs0",
            ),
            ("MONGODB_HOST", "ignored.example"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.database(), "serving");
        assert_eq!(c.user(), Some("app"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "pw-uri");
        assert!(!c.describe().contains("ignored"), "{}", c.describe());
        let c = env(&[
            ("MONGODB_HOST", "cluster0.abcde.mongodb.net"),
            ("MONGODB_USER", "mage"),
            ("MONGODB_PASSWORD", "pw-env"),
            ("MONGODB_DATABASE", "recs"),
        ])
        .unwrap()
        .unwrap();
        assert!(c
            .describe()
            .starts_with("mongodb+srv://cluster0.abcde.mongodb.net"));
        assert_eq!((c.user(), c.database()), (Some("mage"), "recs"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "pw-env");
        let c = env(&[("MONGODB_HOST", "db:27018")]).unwrap().unwrap();
        assert!(
            c.describe().starts_with("mongodb://db:27018"),
            "{}",
            c.describe()
        );
        let err = env(&[("MONGODB_URI", "http://x")]).unwrap_err().to_string();
        assert!(err.contains("mongodb uri"), "{err}");
    }

    #[test]
    fn bad_uris_are_clear_errors_without_the_password() {
        for uri in [
            "mongodb://app:hunter2@h1:notaport/db",
            "mongodb://app:hunter2@h1:27017/db?replicaSet=rs0&unknownOption=1&w=-5",
            "mongodb+srv://app:hunter2@h1:27017/db",
            "mongodb://app:hunter2@/db",
            "mongodb://app:hun/ter2@h1/db",
            "mongodb://app:hunter2?@h1/db",
        ] {
            let err = MongoConfig::from_url(uri).unwrap_err().to_string();
            assert!(err.contains("mongodb uri"), "{uri}: {err}");
            assert!(
                !err.contains("hunter2") && !err.contains("hun/ter2"),
                "{uri}: {err}"
            );
        }
    }
}
