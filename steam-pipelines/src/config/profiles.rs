//! The sections of a profile and the connector configurations they make.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::{PostgresConfig, SslMode};
use steam_core::{Error, Result, Secret};

use super::raw::{reason, section_key};

/// The `postgres` section of a profile: a server by `url`, or by `host`, `port`, `dbname` and
/// `user`, with the settings that go with either.
///
/// `Debug` shows the URL without its password and query, and never the password.
#[derive(Clone, Default, PartialEq)]
pub struct PostgresProfile {
    /// `url`: `postgresql://user:password@host:port/dbname?options`, or the `key=value` form.
    pub url: Option<Secret>,
    /// `host` (with the split keys: default `localhost`).
    pub host: Option<String>,
    /// `port` (default 5432).
    pub port: Option<u16>,
    /// `dbname` (default: the user's name).
    pub dbname: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password`, with either form; over a password in `url`.
    pub password: Option<Secret>,
    /// `schema` (default `recsys`).
    pub schema: Option<String>,
    /// `sslmode`: `disable`, `prefer`, `require` or `verify-full` (checked when the profile is
    /// read).
    pub sslmode: Option<String>,
    /// `sslrootcert`: a PEM file of CA certificates the server's certificate must chain to.
    pub sslrootcert: Option<PathBuf>,
    /// `connect_timeout`, in seconds in the file.
    pub connect_timeout: Option<Duration>,
}

/// A URL as `Debug` output shows it: without its password.
fn shown(url: &Option<Secret>) -> Option<String> {
    url.as_ref().map(|u| steam_core::redact_url(u.expose()))
}

impl fmt::Debug for PostgresProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProfile")
            .field("url", &shown(&self.url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("schema", &self.schema)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PostgresProfile {
    /// Whether the section says which server: a `url`, or any of `host`, `port`, `dbname`,
    /// `user`, `password`. A section with only `schema` or TLS settings does not.
    pub fn has_server(&self) -> bool {
        self.url.is_some() || self.has_split_keys() || self.password.is_some()
    }

    fn has_split_keys(&self) -> bool {
        self.host.is_some() || self.port.is_some() || self.dbname.is_some() || self.user.is_some()
    }

    /// The connector's configuration: from `url` (plus `password`), or from the split keys with
    /// the defaults of [`PostgresConfig::from_env`], then `schema`, `sslmode`, `sslrootcert` and
    /// `connect_timeout` over it. An error when the section gives no server.
    pub fn to_config(&self) -> Result<PostgresConfig> {
        self.build().map_err(|(key, reason)| Error::Config {
            key: section_key("postgres", key),
            reason,
        })
    }

    pub(super) fn build(&self) -> std::result::Result<PostgresConfig, (&'static str, String)> {
        let mode = match self.sslmode.as_deref() {
            None => None,
            Some("disable") => Some(SslMode::Disable),
            Some("prefer") => Some(SslMode::Prefer),
            Some("require") | Some("verify-full") => Some(SslMode::Require),
            Some(other) => {
                return Err((
                    "sslmode",
                    format!("{other:?} is not one of disable, prefer, require, verify-full"),
                ))
            }
        };
        if self.sslmode.as_deref() == Some("verify-full") && self.sslrootcert.is_none() {
            return Err((
                "sslmode",
                "verify-full needs sslrootcert: the CA certificates the server's certificate \
                 must chain to"
                    .into(),
            ));
        }
        let mut config = if let Some(url) = &self.url {
            if self.has_split_keys() {
                return Err((
                    "url",
                    "give either url or host, port, dbname and user, not both".into(),
                ));
            }
            let config = PostgresConfig::from_url(url.expose()).map_err(|e| ("url", reason(e)))?;
            match &self.password {
                Some(password) => config.with_password(password.clone()),
                None => config,
            }
        } else if self.has_server() {
            let mut config = PostgresConfig::new(self.host.as_deref().unwrap_or("localhost"));
            if let Some(port) = self.port {
                config = config.with_port(port);
            }
            if let Some(dbname) = &self.dbname {
                config = config.with_dbname(dbname);
            }
            if let Some(user) = &self.user {
                config = config.with_user(user);
            }
            if let Some(password) = &self.password {
                config = config.with_password(password.clone());
            }
            config
        } else {
            return Err((
                "",
                "no server given: set url, or host (and port, dbname, user, password)".into(),
            ));
        };
        if let Some(schema) = &self.schema {
            config = config.with_schema(schema.clone());
        }
        if let Some(mode) = mode {
            config = config.with_ssl_mode(mode);
        }
        if let Some(root) = &self.sslrootcert {
            config = config.with_tls_root_certificate(root.clone());
        }
        if let Some(timeout) = self.connect_timeout {
            config = config.with_connect_timeout(timeout);
        }
        Ok(config)
    }
}

/// The `lake` section of a profile: object-store URLs (`gs://`, `s3://`, `az://`, `file://` or
/// a local path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeProfile {
    /// `raw`: the raw layer (CSV), as `--raw-lake`.
    pub raw: Option<String>,
    /// `conformed`: the conformed layer (Parquet), as `--conformed-lake`.
    pub conformed: Option<String>,
    /// `results`: where the inference results (the recommendations served to MongoDB) are.
    pub results: Option<String>,
    /// `google_service_account_key`: the path of a Google service-account key file, which the
    /// CLI hands to the lake's builder unless a variable already gives one.
    pub google_service_account_key: Option<String>,
    /// `cluster`: an Apache DataFusion Ballista cluster (`df://HOST:PORT`, its scheduler) that
    /// `sql` and `stats` run their queries on, as `--cluster`.
    pub cluster: Option<String>,
}

/// The `mongodb` section of a profile: a deployment by `uri` or `host`, credentials, and where
/// the recommendations go.
///
/// `Debug` shows URIs without their credentials, and never the password.
#[derive(Clone, Default, PartialEq)]
pub struct MongoProfile {
    /// `uri`: `mongodb://…` or `mongodb+srv://…`.
    pub uri: Option<Secret>,
    /// `host`: a host, `host:port`, or a whole URI, as `MONGODB_HOST`; an Atlas host
    /// (`*.mongodb.net`) gets `mongodb+srv://`.
    pub host: Option<String>,
    /// `user`, when the URI has no credentials.
    pub user: Option<String>,
    /// `password`, when the URI has no credentials.
    pub password: Option<Secret>,
    /// `database` (default: the URI's, else `steam_recsys`).
    pub database: Option<String>,
    /// `collection` (the CLI's default: `recsys`).
    pub collection: Option<String>,
}

impl fmt::Debug for MongoProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoProfile")
            .field("uri", &shown(&self.uri))
            .field(
                "host",
                &self.host.as_ref().map(|h| {
                    if h.contains("://") {
                        steam_core::redact_url(h)
                    } else {
                        h.clone()
                    }
                }),
            )
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .finish()
    }
}

impl MongoProfile {
    /// Whether the section says which deployment: a `uri` or a `host`.
    pub fn has_server(&self) -> bool {
        self.uri.is_some() || self.host.is_some()
    }

    /// The connector's configuration: the URI from `uri` or `host` (as
    /// [`MongoConfig::from_env`] builds it), with `user` and `password` handed to its builder, and
    /// `database` over the URI's. An error when the section gives no deployment.
    pub fn to_config(&self) -> Result<MongoConfig> {
        self.build().map_err(|(key, reason)| Error::Config {
            key: section_key("mongodb", key),
            reason,
        })
    }

    pub(super) fn build(&self) -> std::result::Result<MongoConfig, (&'static str, String)> {
        let (key, base) = match (&self.uri, &self.host) {
            (Some(_), Some(_)) => return Err(("uri", "give either uri or host, not both".into())),
            (Some(uri), None) => ("uri", uri.expose().to_owned()),
            (None, Some(host)) if host.contains("://") => ("host", host.clone()),
            (None, Some(host)) if host.ends_with(".mongodb.net") => {
                ("host", format!("mongodb+srv://{host}/"))
            }
            (None, Some(host)) => ("host", format!("mongodb://{host}/")),
            (None, None) => return Err(("", "no deployment given: set uri or host".into())),
        };
        let mut config = MongoConfig::from_url(&base).map_err(|e| (key, reason(e)))?;
        if self.user.is_some() || self.password.is_some() {
            if config.user().is_some() || config.has_password() {
                return Err((
                    key,
                    "it has credentials already: give them in it or as user and password, not \
                     both"
                        .into(),
                ));
            }
            if let Some(user) = &self.user {
                config = config.with_user(user.clone());
            }
            if let Some(password) = &self.password {
                config = config.with_password(password.clone());
            }
        }
        Ok(match &self.database {
            Some(db) => config.with_database(db.clone()),
            None => config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_postgres_keys_make_a_config_without_the_password() {
        let password = "p@ss:w/rd %20?#";
        let profile = PostgresProfile {
            host: Some("db.example".into()),
            port: Some(5433),
            dbname: Some("steam".into()),
            user: Some("mage".into()),
            password: Some(Secret::new(password)),
            schema: Some("recsys_test".into()),
            connect_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        let config = profile.to_config().unwrap();
        assert_eq!(config.describe(), "mage@db.example:5433/steam");
        assert_eq!(config.schema(), "recsys_test");
        let shown = format!("{config:?} {profile:?}");
        assert!(!shown.contains("p@ss"), "{shown}");
        assert!(shown.contains("password: Some(Secret(***))"), "{shown}");
        // A URL with the password in the password key, which needs no encoding.
        let with_url = PostgresProfile {
            url: Some(Secret::new("postgresql://mage@db.example:5433/steam")),
            password: Some(Secret::new(password)),
            ..Default::default()
        };
        let config = with_url.to_config().unwrap();
        assert_eq!(config.describe(), "mage@db.example:5433/steam");
        assert!(!format!("{config:?}").contains("p@ss"));
        // Host defaults to localhost, as with the POSTGRES_* variables.
        let user_only = PostgresProfile {
            user: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(
            user_only.to_config().unwrap().describe(),
            "u@localhost:5432/u"
        );
    }

    #[test]
    fn mongo_credentials_go_to_the_builder_as_they_are() {
        let profile = MongoProfile {
            host: Some("mongo.example:27017".into()),
            user: Some("us@r:/ %".into()),
            password: Some(Secret::new("p@ss:w/rd %20?#")),
            database: Some("serving".into()),
            ..Default::default()
        };
        let config = profile.to_config().unwrap();
        assert_eq!(config.database(), "serving");
        let described = config.describe();
        assert!(described.ends_with("(user us@r:/ %)"), "{described}");
        assert!(described.contains("mongo.example:27017"), "{described}");
        let shown = format!("{config:?} {described} {profile:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        let atlas = MongoProfile {
            host: Some("cluster0.abcde.mongodb.net".into()),
            ..Default::default()
        };
        assert!(atlas
            .to_config()
            .unwrap()
            .describe()
            .starts_with("mongodb+srv://cluster0.abcde.mongodb.net"));
    }
}

/// The `redis` section of a profile: the serving copy's server.
///
/// `Debug` shows the URL without its password.
#[derive(Clone, Default, PartialEq)]
pub struct RedisProfile {
    /// `url`: `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS).
    pub url: Option<Secret>,
    /// `prefix` of every key (default `steam-recsys:`).
    pub prefix: Option<String>,
}

impl fmt::Debug for RedisProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisProfile")
            .field("url", &shown(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisProfile {
    /// The connector's configuration, `None` without a `url`.
    pub fn to_config(&self) -> Result<Option<steam_connectors::redis::RedisConfig>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let config = steam_connectors::redis::RedisConfig::from_url(url.expose()).map_err(|e| {
            Error::Config {
                key: section_key("redis", "url"),
                reason: reason(e),
            }
        })?;
        Ok(Some(match &self.prefix {
            Some(p) => config.with_prefix(p),
            None => config,
        }))
    }
}

/// The `serve` section of a profile: how `steam-recsys serve` listens and answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeProfile {
    /// `bind`: the address to listen on, `ADDRESS:PORT`.
    pub bind: Option<String>,
    /// `timeout`, in seconds in the file: how long a request may take.
    pub timeout: Option<Duration>,
    /// `redis_timeout`, in seconds in the file: how long a Redis lookup may take.
    pub redis_timeout: Option<Duration>,
    /// `concurrency`: requests served at once, at most.
    pub concurrency: Option<usize>,
}
