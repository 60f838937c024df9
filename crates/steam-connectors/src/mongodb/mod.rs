//! MongoDB: Arrow streams into collections as documents, and collections back as Arrow.
//!
//! - [`MongoConfig`]: a URI (`mongodb://…`, or `mongodb+srv://…` for Atlas) or the reference's
//!   `MONGODB_HOST`, `MONGODB_USER`, `MONGODB_PASSWORD`; the password never shown.
//! - [`MongoSink`]: insert, upsert on key columns, or refresh (the collection ends holding exactly
//!   this run's documents, without a moment where a kept key has no document).
//! - [`MongoSource`]: a collection (filter, projection, limit) as Arrow batches of a given schema.
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

use mongodb::options::{ClientOptions, Credential};
use mongodb::Client;
use steam_core::{Error, Result, Secret};

pub use sink::{MongoSink, RUN_FIELD};
pub use source::MongoSource;

/// How to reach a MongoDB deployment and which database to use.
#[derive(Clone)]
pub struct MongoConfig {
    /// The URI with any password taken out.
    uri: String,
    /// The password: from the URI or from `MONGODB_PASSWORD`.
    password: Option<Secret>,
    user: Option<String>,
    database: String,
    server_selection_timeout: Duration,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.uri)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .finish()
    }
}

impl MongoConfig {
    /// The database used when none is given.
    pub const DEFAULT_DATABASE: &'static str = "steam_recsys";

    /// A configuration from a `mongodb://` or `mongodb+srv://` URI. A password in the URI is
    /// taken out of it and kept as a [`Secret`].
    pub fn from_uri(uri: &str) -> Result<Self> {
        let mut parsed = url::Url::parse(uri).map_err(|e| Error::Config {
            key: "mongodb uri".into(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "mongodb" | "mongodb+srv") {
            return Err(Error::Config {
                key: "mongodb uri".into(),
                reason: format!("scheme {:?} is not mongodb or mongodb+srv", parsed.scheme()),
            });
        }
        let password = parsed.password().map(|p| Secret::new(percent_decode(p)));
        let user = (!parsed.username().is_empty()).then(|| percent_decode(parsed.username()));
        let _ = parsed.set_password(None);
        let _ = parsed.set_username("");
        let database = parsed
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or(Self::DEFAULT_DATABASE)
            .to_owned();
        Ok(MongoConfig {
            uri: parsed.to_string(),
            password,
            user,
            database,
            server_selection_timeout: Duration::from_secs(10),
        })
    }

    /// A configuration from the reference's variables: `MONGODB_HOST` (a host, `host:port`, or a
    /// whole URI; an Atlas host `*.mongodb.net` gets `mongodb+srv://`), `MONGODB_USER`,
    /// `MONGODB_PASSWORD`, and `MONGODB_DATABASE`. `None` when `MONGODB_HOST` is not set.
    pub fn from_env() -> Result<Option<Self>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(host) = var("MONGODB_HOST") else {
            return Ok(None);
        };
        let uri = if host.contains("://") {
            host
        } else if host.ends_with(".mongodb.net") {
            format!("mongodb+srv://{host}/")
        } else {
            format!("mongodb://{host}/")
        };
        let mut config = Self::from_uri(&uri)?;
        if let Some(user) = var("MONGODB_USER") {
            config.user = Some(user);
        }
        if let Some(password) = var("MONGODB_PASSWORD") {
            config.password = Some(Secret::new(password));
        }
        if let Some(db) = var("MONGODB_DATABASE") {
            config.database = db;
        }
        Ok(Some(config))
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

    /// The URI without credentials, and the user, for messages.
    pub fn describe(&self) -> String {
        match &self.user {
            Some(user) => format!("{} (user {user})", self.uri),
            None => self.uri.clone(),
        }
    }

    /// A client. The driver connects lazily and retries reads and writes once on transient errors
    /// (its retryable reads and writes); [`MongoConfig::ping`] checks the deployment answers.
    pub async fn client(&self) -> Result<Client> {
        let mut options = ClientOptions::parse(&self.uri)
            .await
            .map_err(|e| self.error("connecting", e))?;
        if self.user.is_some() || self.password.is_some() {
            options.credential = Some(
                Credential::builder()
                    .username(self.user.clone())
                    .password(self.password.as_ref().map(|p| p.expose().to_owned()))
                    .build(),
            );
        }
        options.server_selection_timeout = Some(self.server_selection_timeout);
        options.app_name = Some("steam-recsys".into());
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

    pub(crate) fn error(&self, what: &str, e: mongodb::error::Error) -> Error {
        Error::Backend {
            backend: "mongodb",
            target: self.describe(),
            message: format!("{what}: {}", redacted(&e, self.password.as_ref())),
            source: None,
        }
    }
}

/// A driver error's message, with the password cut out should it ever appear.
pub(crate) fn redacted(e: &mongodb::error::Error, password: Option<&Secret>) -> String {
    let m = e.to_string();
    match password {
        Some(p) if !p.is_empty() => m.replace(p.expose(), "***"),
        _ => m,
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_taken_out_of_the_uri() {
        let c = MongoConfig::from_uri("mongodb://mage:p%40ss@db.example:27017/serving").unwrap();
        assert_eq!(c.database(), "serving");
        assert_eq!(c.password.as_ref().unwrap().expose(), "p@ss");
        let shown = format!("{c:?} {}", c.describe());
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert!(shown.contains("db.example:27017"), "{shown}");
        assert!(MongoConfig::from_uri("http://x").is_err());
        assert_eq!(
            MongoConfig::from_uri("mongodb://h").unwrap().database(),
            MongoConfig::DEFAULT_DATABASE
        );
    }
}
