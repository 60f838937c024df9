//! Where and how to connect: a URL or the reference system's `POSTGRES_*` variables, retries.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use steam_core::{Error, ErrorKind, Result, Secret};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

/// How to reach a PostgreSQL server, which schema to use, and how hard to try.
///
/// Built from a URL (`postgresql://user:password@host:port/dbname?connect_timeout=10`, or the
/// `key=value` form) or from the reference system's variables with
/// [`PostgresConfig::from_env`]. The password is never shown: `Debug` and
/// [`PostgresConfig::describe`] leave it out, and so does every error.
///
/// TLS (cargo feature `postgres-tls`, rustls), as libpq does it: `sslmode=prefer` (the default)
/// uses TLS when the server offers it and plain TCP otherwise; `sslmode=require` insists on TLS;
/// `sslmode=disable` never tries. Like libpq, these modes encrypt without checking who the server
/// is, unless a root certificate is given ([`PostgresConfig::with_tls_root_certificate`] or
/// `POSTGRES_SSLROOTCERT`): then the server's certificate must chain to it and name the host (libpq's
/// `verify-full`). Without the feature, `sslmode=require` is an error and the other modes connect
/// without TLS.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use steam_connectors::postgres::PostgresConfig;
///
/// // From a URL (the password is taken out and kept as a secret) …
/// let config = PostgresConfig::from_url("postgresql://mage:secret@db:5432/steam")?
///     .with_schema("recsys");
/// // … or piece by piece …
/// let built = PostgresConfig::new("db")
///     .with_port(5432)
///     .with_dbname("steam")
///     .with_user("mage")
///     .with_password(steam_core::Secret::new("secret"));
/// // … or from POSTGRES_URL / the POSTGRES_* variables.
/// let from_env = PostgresConfig::from_env()?;
/// let client = config.connect().await?;
/// # let _ = (built, from_env, client);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    inner: tokio_postgres::Config,
    schema: String,
    retries: usize,
    retry_delay: Duration,
    tls_root: Option<PathBuf>,
}

/// The environment variables [`PostgresConfig::from_env`] reads.
pub const ENV_VARS: [&str; 9] = [
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DBNAME",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_SCHEMA",
    "POSTGRES_CONNECT_TIMEOUT",
    "POSTGRES_SSLMODE",
    "POSTGRES_SSLROOTCERT",
];

impl PostgresConfig {
    /// The schema used when none is given: `recsys`, as the reference system.
    pub const DEFAULT_SCHEMA: &'static str = "recsys";

    /// A configuration from a connection URL or `key=value` string.
    pub fn from_url(url: &str) -> Result<Self> {
        // tokio-postgres' parse errors name the problem, never the value.
        let inner = tokio_postgres::Config::from_str(url).map_err(|e| Error::Config {
            key: "postgres url".into(),
            reason: e.to_string(),
        })?;
        Ok(Self::with_inner(inner))
    }

    /// A configuration from `POSTGRES_HOST` (default `localhost`), `POSTGRES_PORT` (5432),
    /// `POSTGRES_DBNAME`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_SCHEMA` (`recsys`) and
    /// `POSTGRES_CONNECT_TIMEOUT` (seconds), as the reference system's `io_config.yaml` used them,
    /// and `POSTGRES_SSLMODE` (`disable`, `prefer`, `require`) and `POSTGRES_SSLROOTCERT` (a PEM
    /// file of CA certificates). `None` when none of them is set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`PostgresConfig::from_env`] over any lookup of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        if ENV_VARS.iter().all(|name| var(name).is_none()) {
            return Ok(None);
        }
        let mut config = Self::new(var("POSTGRES_HOST").as_deref().unwrap_or("localhost"));
        if let Some(port) = var("POSTGRES_PORT") {
            config = config.with_port(port.trim().parse().map_err(|_| Error::Config {
                key: "POSTGRES_PORT".into(),
                reason: format!("not a port number: {port:?}"),
            })?);
        }
        if let Some(db) = var("POSTGRES_DBNAME") {
            config = config.with_dbname(&db);
        }
        if let Some(user) = var("POSTGRES_USER") {
            config = config.with_user(&user);
        }
        if let Some(password) = var("POSTGRES_PASSWORD") {
            config = config.with_password(Secret::new(password));
        }
        if let Some(schema) = var("POSTGRES_SCHEMA") {
            config.schema = schema;
        }
        if let Some(secs) = var("POSTGRES_CONNECT_TIMEOUT") {
            let secs: f64 = secs.trim().parse().map_err(|_| Error::Config {
                key: "POSTGRES_CONNECT_TIMEOUT".into(),
                reason: format!("not a number of seconds: {secs:?}"),
            })?;
            if !(secs.is_finite() && secs > 0.0) {
                return Err(Error::Config {
                    key: "POSTGRES_CONNECT_TIMEOUT".into(),
                    reason: format!("must be a positive number of seconds, not {secs}"),
                });
            }
            config.inner.connect_timeout(Duration::from_secs_f64(secs));
        }
        if let Some(mode) = var("POSTGRES_SSLMODE") {
            let mode = match mode.trim() {
                "disable" => SslMode::Disable,
                "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                other => {
                    return Err(Error::Config {
                        key: "POSTGRES_SSLMODE".into(),
                        reason: format!("{other:?} is not one of disable, prefer, require"),
                    })
                }
            };
            config.inner.ssl_mode(mode);
        }
        if let Some(path) = var("POSTGRES_SSLROOTCERT") {
            config.tls_root = Some(path.into());
        }
        Ok(Some(config))
    }

    fn with_inner(mut inner: tokio_postgres::Config) -> Self {
        if inner.get_connect_timeout().is_none() {
            inner.connect_timeout(Duration::from_secs(10));
        }
        if inner.get_application_name().is_none() {
            inner.application_name("steam-recsys");
        }
        PostgresConfig {
            inner,
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            retries: 4,
            retry_delay: Duration::from_millis(250),
            tls_root: None,
        }
    }

    /// Verifies the server's certificate (chain and host name, libpq's `verify-full`) against the
    /// CA certificates of a PEM file, and only those, as libpq's `sslrootcert` does. Without one,
    /// TLS encrypts without authenticating the server (libpq's `require`).
    pub fn with_tls_root_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.tls_root = Some(pem_file.into());
        self
    }

    /// Sets the TLS mode, as `sslmode=` in a URL does.
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.inner.ssl_mode(mode);
        self
    }

    /// A server by host name (or a Unix socket directory), port 5432, the defaults for the rest;
    /// set them with the `with_*` methods.
    pub fn new(host: &str) -> Self {
        let mut inner = tokio_postgres::Config::new();
        inner.host(host);
        Self::with_inner(inner)
    }

    /// Uses another port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.inner.port(port);
        self
    }

    /// Uses another database.
    pub fn with_dbname(mut self, dbname: &str) -> Self {
        self.inner.dbname(dbname);
        self
    }

    /// Logs in as another user.
    pub fn with_user(mut self, user: &str) -> Self {
        self.inner.user(user);
        self
    }

    /// Uses another schema (it is quoted wherever it appears, so any name is safe).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Uses another password.
    pub fn with_password(mut self, password: Secret) -> Self {
        self.inner.password(password.expose());
        self
    }

    /// Retries a failed connection attempt `retries` times (network errors only, not a refused
    /// login), waiting `first_delay`, then twice as long each time (at most 10 s). Default: 4
    /// retries from 250 ms.
    pub fn with_retries(mut self, retries: usize, first_delay: Duration) -> Self {
        self.retries = retries;
        self.retry_delay = first_delay;
        self
    }

    /// Gives up on a connection attempt after `timeout` (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.inner.connect_timeout(timeout);
        self
    }

    /// Names the connections in `pg_stat_activity` (default `steam-recsys`).
    pub fn with_application_name(mut self, name: &str) -> Self {
        self.inner.application_name(name);
        self
    }

    /// The schema tables are read from and written to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// `user@host:port/dbname`: the server and login, without the password, for messages.
    pub fn describe(&self) -> String {
        let host = match self.inner.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.inner.get_ports().first().copied().unwrap_or(5432);
        let user = self.inner.get_user().unwrap_or("(default user)");
        let db = self.inner.get_dbname().unwrap_or(user);
        format!("{user}@{host}:{port}/{db}")
    }

    /// Connects and runs `SELECT 1`: the server answers and accepts the credentials.
    pub async fn ping(&self) -> Result<()> {
        let client = self.connect().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| pg_error(self.describe(), e).doing("SELECT 1"))?;
        Ok(())
    }

    /// Opens a connection, retrying network failures with backoff. The connection's I/O runs on a
    /// spawned task that ends when the returned client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        if self.inner.get_ssl_mode() != SslMode::Disable {
            #[cfg(feature = "postgres-tls")]
            return self.connect_with(self.tls()?).await;
            #[cfg(not(feature = "postgres-tls"))]
            if self.inner.get_ssl_mode() == SslMode::Require {
                return Err(Error::Config {
                    key: "sslmode".into(),
                    reason: format!(
                        "TLS to {} is required, but steam-connectors was built without its \
                         postgres-tls feature",
                        self.describe()
                    ),
                });
            }
        }
        self.connect_with(NoTls).await
    }

    /// The rustls connector: verifying against the configured CA file, or encrypting only.
    #[cfg(feature = "postgres-tls")]
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                key: "postgres TLS".into(),
                reason: e.to_string(),
            })?;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &self.tls_root {
            let bad = |reason: String| Error::Config {
                key: "postgres TLS root certificate".into(),
                reason: format!("{}: {reason}", path.display()),
            };
            let mut added = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no PEM certificate in it".into()));
            }
        }
        let config = if self.tls_root.is_some() {
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(super::tls::EncryptOnly(
                    provider,
                )))
                .with_no_client_auth()
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    async fn connect_with<T>(&self, tls: T) -> Result<Client>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let attempt = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.connect(tls.clone()).await
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_delay)
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.retries);
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(transient)
            .notify(|e, wait| {
                tracing::warn!(server = %self.describe(), "connection failed, retrying in {wait:?}: {}", message(e))
            })
            .await;
        match result {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("postgres connection ended: {e}");
                    }
                });
                Ok(client)
            }
            Err(e) => {
                let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
                let tries = if n > 1 {
                    format!(" after {n} attempts")
                } else {
                    String::new()
                };
                Err(pg_error(self.describe(), e).doing(format!("cannot connect{tries}")))
            }
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("server", &self.describe())
            .field(
                "password",
                &self.inner.get_password().map(|_| Secret::new("")),
            )
            .field("schema", &self.schema)
            .field("connect_timeout", &self.inner.get_connect_timeout())
            .field("ssl_mode", &self.inner.get_ssl_mode())
            .field("tls_root", &self.tls_root)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Whether a failed connection attempt is worth retrying: the network failed or the server is
/// not ready ([`ErrorKind::Transient`]), not a refused login or a bad certificate.
fn transient(e: &tokio_postgres::Error) -> bool {
    kind(e) == ErrorKind::Transient
}

/// The kind of a tokio-postgres error: by the server's SQLSTATE (class 28 refused credentials,
/// 42501 permission, missing database, schema or table, duplicates, bad data or SQL, and the
/// transient ones: connection exceptions, serialization failures and deadlocks, insufficient
/// resources, a server shutting down), else by the network error under it.
pub(crate) fn kind(e: &tokio_postgres::Error) -> ErrorKind {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return match code {
            "42501" => ErrorKind::PermissionDenied,
            "3D000" | "3F000" | "42P01" | "42704" => ErrorKind::NotFound,
            "23505" | "42P04" | "42P06" | "42P07" | "42710" => ErrorKind::AlreadyExists,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "55P03" => ErrorKind::Transient,
            _ if code.starts_with("28") => ErrorKind::Unauthenticated,
            _ if code.starts_with("08") || code.starts_with("53") => ErrorKind::Transient,
            _ if code.starts_with("22") || code.starts_with("23") || code.starts_with("42") => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Other,
        };
    }
    if let Some(io) = steam_core::causes(e).find_map(|c| c.downcast_ref::<std::io::Error>()) {
        return ErrorKind::of_io(io);
    }
    if e.is_closed() {
        ErrorKind::Transient
    } else {
        ErrorKind::Other
    }
}

/// The error of the server or the connection to it, on `target`: classified by its kind
/// (connection, authentication, a missing table…), the driver's error kept as the source under a
/// readable message (the server's message with its detail, hint and context).
pub fn pg_error(target: impl Into<String>, e: tokio_postgres::Error) -> Error {
    Error::Backend {
        kind: kind(&e),
        backend: "postgres",
        target: target.into(),
        message: String::new(),
        source: Some(Box::new(steam_core::Cause::new(message(&e), e))),
    }
}

/// A readable message for a tokio-postgres error: the server's message with its detail, hint and
/// context, or the client-side cause.
pub(crate) fn message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            m.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            m.push_str(&format!("; hint: {hint}"));
        }
        if let Some(context) = db.where_() {
            m.push_str(&format!("; context: {context}"));
        }
        return m;
    }
    steam_core::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn url_password_never_shows() {
        let c =
            PostgresConfig::from_url("postgresql://steam:hunter2@db.example:6543/games").unwrap();
        assert_eq!(c.describe(), "steam@db.example:6543/games");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("steam@db.example:6543/games"), "{debug}");
        let err = PostgresConfig::from_url("postgresql://steam:hunter2@db.example:notaport/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn reference_variables() {
        let vars: HashMap<&str, &str> = [
            ("POSTGRES_HOST", "pg"),
            ("POSTGRES_PORT", "5433"),
            ("POSTGRES_DBNAME", "steam"),
            ("POSTGRES_USER", "mage"),
            ("POSTGRES_PASSWORD", "s3cret"),
            ("POSTGRES_SCHEMA", "recsys_test"),
            ("POSTGRES_CONNECT_TIMEOUT", "3"),
        ]
        .into();
        let c = PostgresConfig::from_vars(|k| vars.get(k).map(|v| v.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(c.describe(), "mage@pg:5433/steam");
        assert_eq!(c.schema(), "recsys_test");
        assert_eq!(c.inner.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(PostgresConfig::from_vars(|_| None).unwrap().is_none());
        let bad = PostgresConfig::from_vars(|k| (k == "POSTGRES_PORT").then(|| "x".into()));
        assert!(bad.unwrap_err().to_string().contains("POSTGRES_PORT"));
    }
}
