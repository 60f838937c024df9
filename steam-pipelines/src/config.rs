//! The configuration file: named profiles of connection settings for PostgreSQL, the data lake and
//! MongoDB, in the spirit of the reference system's Mage `io_config.yaml`.
//!
//! # The file
//!
//! A TOML file whose top-level tables are profiles. The profile `default` is used unless another
//! is chosen. A profile has up to three sections, `postgres`, `lake` and `mongodb`; every key is
//! optional, and a key the format does not know is an error that names it, its line and the file.
//! A complete example:
//!
//! ```toml
//! # steam-recsys.toml
//!
//! [default.postgres]
//! # Either a URL...
//! url = "postgresql://steam@localhost:5432/steam"
//! # ...or host, port, dbname and user (not both: the URL already says them).
//! # host = "localhost"
//! # port = 5432                        # or a string, such as "${POSTGRES_PORT:-5432}"
//! # dbname = "steam"
//! # user = "steam"
//! # The password goes with either form, taken as it is (no percent-encoding needed).
//! password = "${POSTGRES_PASSWORD}"
//! schema = "recsys"                    # default: recsys
//! sslmode = "prefer"                   # disable, prefer (default), require, verify-full
//! # sslrootcert = "/etc/ssl/steam-ca.pem"   # required by verify-full
//! connect_timeout = 10                 # seconds, default 10
//!
//! [default.lake]
//! raw = "gs://raw_games_data"
//! conformed = "gs://conformed_games_data"
//! results = "gs://inference_games_results"
//! google_service_account_key = "${GOOGLE_SERVICE_ACC_KEY_FILEPATH:-}"   # a key file's path
//!
//! [default.mongodb]
//! # Either a URI (mongodb:// or mongodb+srv://)...
//! uri = "mongodb://localhost:27017"
//! # ...or a host: a host, host:port, or a whole URI; an Atlas host (*.mongodb.net) gets
//! # mongodb+srv://.
//! # host = "cluster0.abcde.mongodb.net"
//! # Credentials: in the URI, or as these keys (taken as they are, no percent-encoding needed).
//! user = "steam"
//! password = "${MONGODB_PASSWORD}"
//! database = "steam_recsys"            # default: the URI's, else steam_recsys
//! collection = "recsys"                # default: recsys
//!
//! # Another profile: everything on this machine.
//! [local.postgres]
//! host = "localhost"
//! dbname = "steam"
//! user = "steam"
//! password = "${POSTGRES_PASSWORD:-steam}"
//!
//! [local.lake]
//! raw = "file:///var/lib/steam-recsys/raw"
//! conformed = "file:///var/lib/steam-recsys/conformed"
//! results = "file:///var/lib/steam-recsys/results"
//!
//! [local.mongodb]
//! uri = "mongodb://localhost:27017"
//! ```
//!
//! # Environment variables in values
//!
//! Every string value may name environment variables, replaced after the TOML is parsed (so a
//! value can never break the file's syntax):
//!
//! - `${NAME}` is the variable's value; a variable that is not set is an error naming the
//!   variable, the key (such as `default.postgres.password`) and the file. A variable set to the
//!   empty string is used as it is.
//! - `${NAME:-fallback}` is the fallback when the variable is not set or empty. The fallback is
//!   taken literally (it cannot contain `}` or another `${…}`).
//! - `$$` is a literal `$`. Any other `$` is an error, so a `$NAME` written by mistake is caught.
//!
//! A value that is empty once replaced counts as not given: `password = "${POSTGRES_PASSWORD:-}"`
//! means no password when the variable is unset. Numbers (`port`, `connect_timeout`) may be
//! strings, read as numbers after the replacement.
//!
//! Variables are only looked up in the profile that is used: another profile may name variables
//! that are not set. Their syntax is checked in every profile when the file is read.
//!
//! A variable is inserted into the value as it is. Inside a URL's credentials, reserved characters
//! (`@ : / % ? #`) in it would have to be percent-encoded; give the password with the `password`
//! key instead, which needs no encoding.
//!
//! # `.env` files
//!
//! [`load_dotenv`] loads `<dir>/.env` into the process environment, never overriding a variable
//! that is already set. It holds `NAME=value` lines (`export NAME=value` too, `#` comments, values
//! in double or single quotes, which may span lines). A `$NAME` or `${NAME}` in an unquoted or
//! double-quoted value is replaced by that variable: single-quote a value with a literal `$`.
//!
//! The CLI loads `.env` from the current directory, then from the configuration file's directory,
//! before it reads the file: the real environment wins over both, and the current directory's
//! `.env` over the file's.
//!
//! # Precedence
//!
//! For each setting the CLI takes the first of:
//!
//! 1. its command-line flag;
//! 2. the environment variable that flag reads: `POSTGRES_URL` (else the `POSTGRES_HOST`,
//!    `POSTGRES_PORT`, `POSTGRES_DBNAME`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, … variables),
//!    `POSTGRES_SCHEMA`, `MONGODB_URI` (else `MONGODB_HOST`, `MONGODB_USER`, `MONGODB_PASSWORD`),
//!    `MONGODB_DATABASE`, `RAW_LAKE_URL`, `CONFORMED_LAKE_URL`;
//! 3. the key in the chosen profile of the configuration file;
//! 4. the built-in default (schema `recsys`, database `steam_recsys`, collection `recsys`, lakes
//!    `gs://raw_games_data` and `gs://conformed_games_data`).
//!
//! | setting | flag | environment | profile key |
//! |---|---|---|---|
//! | PostgreSQL server | `--postgres-url` | `POSTGRES_URL`, else `POSTGRES_*` | `postgres.url`, or `postgres.host`… |
//! | schema | `--schema` | `POSTGRES_SCHEMA` | `postgres.schema` |
//! | raw lake | `--raw-lake` | `RAW_LAKE_URL` | `lake.raw` |
//! | conformed lake | `--conformed-lake`, `--lake` | `CONFORMED_LAKE_URL` | `lake.conformed` |
//! | inference results | `--source` | | `lake.results` |
//! | MongoDB server | `--mongodb-uri` | `MONGODB_URI`, else `MONGODB_*` | `mongodb.uri`, or `mongodb.host`… |
//! | database | `--database` | `MONGODB_DATABASE` | `mongodb.database` |
//! | collection | `--collection` | | `mongodb.collection` |
//! | GCS service account | | `GOOGLE_SERVICE_ACC_KEY_FILEPATH`, `GOOGLE_SERVICE_ACCOUNT` | `lake.google_service_account_key` |
//!
//! When `lake.google_service_account_key` is set (and neither of those variables is), the CLI
//! hands it to the lake's builder (`LakeOptions::google_service_account_path`).
//!
//! # Secrets
//!
//! Passwords, and URLs and URIs that may carry credentials, are [`Secret`]s or are shown without
//! their credentials: the `Debug` output of every type here leaves them out, and so does every
//! error, which names keys, variables, lines and files. No error shows the value of a variable,
//! of a password, URL or URI, or the line of the file or of `.env` that it is about.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::{PostgresConfig, SslMode};
use steam_core::{Error, Result, Secret};

/// All the profiles of a configuration file, as written (variables not yet replaced).
///
/// Read it with [`ConfigFile::load`] or [`ConfigFile::parse`], then pick a profile with
/// [`ConfigFile::profile`].
#[derive(Clone)]
pub struct ConfigFile {
    origin: String,
    profiles: BTreeMap<String, RawProfile>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("origin", &self.origin)
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigFile {
    /// The profile used when none is chosen.
    pub const DEFAULT_PROFILE: &'static str = "default";

    /// Reads and parses a configuration file (see [`ConfigFile::parse`]).
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingFile {
                    path: path.to_path_buf(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a configuration file; `origin` (its path) names it in errors.
    ///
    /// Checks the TOML, the keys of every profile and the syntax of every `${…}`; environment
    /// variables are looked up later, by [`ConfigFile::profile`].
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile> {
        let profiles: BTreeMap<String, RawProfile> =
            toml::from_str(text).map_err(|e| toml_error(&e, text, origin))?;
        let file = ConfigFile {
            origin: origin.to_owned(),
            profiles,
        };
        // Every variable "set" to the empty string: only syntax errors remain possible.
        let any = |_: &str| Some(String::new());
        for (name, raw) in &file.profiles {
            raw.visit_strings(&mut |key, value| {
                interpolate(value, &any)
                    .map(drop)
                    .map_err(|e| e.into_error(&key_path(name, key), origin))
            })?;
        }
        Ok(file)
    }

    /// The file's path, as given to [`ConfigFile::load`] or [`ConfigFile::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The names of the profiles, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The profile `name`, its `${…}` replaced from the process environment and its values
    /// checked. An error when the file has no such profile (listing those it has), when a
    /// variable is not set, or when a value is invalid.
    pub fn profile(&self, name: &str) -> Result<Profile> {
        self.profile_with(name, |var| std::env::var(var).ok())
    }

    /// [`ConfigFile::profile`] with variables looked up by `vars` instead of the process
    /// environment (`None`: not set).
    pub fn profile_with(
        &self,
        name: &str,
        vars: impl Fn(&str) -> Option<String>,
    ) -> Result<Profile> {
        let raw = self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profile_names().collect();
            Error::Config {
                key: self.origin.clone(),
                reason: if known.is_empty() {
                    format!("no profile {name:?}: the file has no profiles")
                } else {
                    format!("no profile {name:?} (profiles: {})", known.join(", "))
                },
            }
        })?;
        let r = Resolver {
            origin: &self.origin,
            profile: name,
            vars: &vars,
        };
        raw.resolve(&r)
    }
}

/// One profile: where PostgreSQL, the lake and MongoDB are, with `${…}` replaced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// The `postgres` section, if the profile has one.
    pub postgres: Option<PostgresProfile>,
    /// The `lake` section (all keys unset when the profile has none).
    pub lake: LakeProfile,
    /// The `mongodb` section, if the profile has one.
    pub mongodb: Option<MongoProfile>,
}

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

impl fmt::Debug for PostgresProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProfile")
            .field("url", &self.url.as_ref().map(|u| redacted_url(u.expose())))
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

    fn build(&self) -> std::result::Result<PostgresConfig, (&'static str, String)> {
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
            .field("uri", &self.uri.as_ref().map(|u| redacted_url(u.expose())))
            .field(
                "host",
                &self.host.as_ref().map(|h| {
                    if h.contains("://") {
                        redacted_url(h)
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

    fn build(&self) -> std::result::Result<MongoConfig, (&'static str, String)> {
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
        let mut config = MongoConfig::from_uri(&base).map_err(|e| (key, reason(e)))?;
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

/// Loads `<dir>/.env` into the process environment without overriding variables already set
/// (of a variable given twice, the first wins). Returns the file's path, or `None` when there is
/// none.
///
/// The file is read whole before any variable is set: a malformed line is an error naming the
/// file and the line (not its content), and then nothing is set. Call it before starting other
/// threads, as it changes the process environment.
pub fn load_dotenv(dir: &Path) -> Result<Option<PathBuf>> {
    let Some((path, entries)) = read_dotenv(dir)? else {
        return Ok(None);
    };
    for (name, value) in unset_entries(entries, |name| std::env::var_os(name).is_some()) {
        std::env::set_var(name, value);
    }
    Ok(Some(path))
}

/// The entries of `entries` to set, given which variables `is_set`: those not set, the first of
/// a name given twice.
fn unset_entries(entries: DotenvEntries, is_set: impl Fn(&str) -> bool) -> DotenvEntries {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|(name, _)| seen.insert(name.clone()) && !is_set(name))
        .collect()
}

/// A `.env` file's entries, `NAME` and value, in order.
pub type DotenvEntries = Vec<(String, String)>;

/// Reads `<dir>/.env`: its path and its entries, or `None` when there is none. A malformed line is
/// an error naming the file and the line, not its content.
pub fn read_dotenv(dir: &Path) -> Result<Option<(PathBuf, DotenvEntries)>> {
    let path = dir.join(".env");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let entries = match parse_dotenv(text) {
        Ok(entries) => entries,
        Err(dotenvy::Error::LineParse(..)) => {
            return Err(Error::Config {
                key: path.display().to_string(),
                reason: format!(
                    "line {}: not a NAME=value line (or a quote is not closed)",
                    bad_dotenv_line(text)
                ),
            })
        }
        Err(dotenvy::Error::Io(e)) => return Err(Error::io(&path, e)),
        Err(e) => {
            return Err(Error::Config {
                key: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    Ok(Some((path, entries)))
}

fn parse_dotenv(text: &str) -> std::result::Result<Vec<(String, String)>, dotenvy::Error> {
    dotenvy::from_read_iter(text.as_bytes()).collect()
}

/// The 1-based line on which the entry that does not parse starts: one past the longest run of
/// whole lines that parses (a prefix ending inside a quoted multi-line value does not).
fn bad_dotenv_line(text: &str) -> usize {
    let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    ends.iter()
        .rposition(|&end| parse_dotenv(&text[..end]).is_ok())
        .map_or(1, |i| i + 2)
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile: a table of postgres, lake and mongodb sections"
)]
struct RawProfile {
    postgres: Option<RawPostgres>,
    lake: Option<RawLake>,
    mongodb: Option<RawMongo>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a postgres section")]
struct RawPostgres {
    url: Option<Hidden>,
    host: Option<String>,
    port: Option<Number>,
    dbname: Option<String>,
    user: Option<String>,
    password: Option<Hidden>,
    schema: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    connect_timeout: Option<Number>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a lake section")]
struct RawLake {
    raw: Option<String>,
    conformed: Option<String>,
    results: Option<String>,
    google_service_account_key: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mongodb section")]
struct RawMongo {
    uri: Option<Hidden>,
    host: Option<Hidden>,
    user: Option<String>,
    password: Option<Hidden>,
    database: Option<String>,
    collection: Option<String>,
}

/// A string whose deserialization errors never show the value (a password given as a number
/// must not appear in the message).
#[derive(Clone)]
struct Hidden(String);

impl<'de> Deserialize<'de> for Hidden {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hidden;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Hidden, E> {
                Ok(Hidden(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Hidden, E> {
                Ok(Hidden(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Hidden, E> {
                Err(E::custom("expected a string, found a number (quote it)"))
            }
        }
        d.deserialize_string(V)
    }
}

/// A number, or a string to read as one once its variables are replaced.
#[derive(Clone)]
enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or a string such as \"${POSTGRES_PORT}\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Number, E> {
                i64::try_from(v)
                    .map(Number::Int)
                    .map_err(|_| E::custom("number out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Number, E> {
                Ok(Number::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Number, E> {
                Ok(Number::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawProfile {
    /// Calls `f` with the key (`postgres.url`) and text of every string value.
    fn visit_strings(&self, f: &mut dyn FnMut(&str, &str) -> Result<()>) -> Result<()> {
        let mut each = |section: &str, pairs: &[(&str, Option<&str>)]| -> Result<()> {
            for (key, value) in pairs {
                if let Some(value) = value {
                    f(&format!("{section}.{key}"), value)?;
                }
            }
            Ok(())
        };
        if let Some(p) = &self.postgres {
            each(
                "postgres",
                &[
                    ("url", p.url.as_ref().map(|h| h.0.as_str())),
                    ("host", p.host.as_deref()),
                    ("port", p.port.as_ref().and_then(Number::text)),
                    ("dbname", p.dbname.as_deref()),
                    ("user", p.user.as_deref()),
                    ("password", p.password.as_ref().map(|h| h.0.as_str())),
                    ("schema", p.schema.as_deref()),
                    ("sslmode", p.sslmode.as_deref()),
                    ("sslrootcert", p.sslrootcert.as_deref()),
                    (
                        "connect_timeout",
                        p.connect_timeout.as_ref().and_then(Number::text),
                    ),
                ],
            )?;
        }
        if let Some(l) = &self.lake {
            each(
                "lake",
                &[
                    ("raw", l.raw.as_deref()),
                    ("conformed", l.conformed.as_deref()),
                    ("results", l.results.as_deref()),
                    (
                        "google_service_account_key",
                        l.google_service_account_key.as_deref(),
                    ),
                ],
            )?;
        }
        if let Some(m) = &self.mongodb {
            each(
                "mongodb",
                &[
                    ("uri", m.uri.as_ref().map(|h| h.0.as_str())),
                    ("host", m.host.as_ref().map(|h| h.0.as_str())),
                    ("user", m.user.as_deref()),
                    ("password", m.password.as_ref().map(|h| h.0.as_str())),
                    ("database", m.database.as_deref()),
                    ("collection", m.collection.as_deref()),
                ],
            )?;
        }
        Ok(())
    }

    fn resolve(&self, r: &Resolver) -> Result<Profile> {
        let postgres = match &self.postgres {
            None => None,
            Some(p) => {
                let s = "postgres";
                let profile = PostgresProfile {
                    url: r
                        .text(s, "url", p.url.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    host: r.text(s, "host", p.host.as_ref())?,
                    port: r.port(s, "port", p.port.as_ref())?,
                    dbname: r.text(s, "dbname", p.dbname.as_ref())?,
                    user: r.text(s, "user", p.user.as_ref())?,
                    password: r
                        .text(s, "password", p.password.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    schema: r.text(s, "schema", p.schema.as_ref())?,
                    sslmode: r.text(s, "sslmode", p.sslmode.as_ref())?,
                    sslrootcert: r
                        .text(s, "sslrootcert", p.sslrootcert.as_ref())?
                        .map(PathBuf::from),
                    connect_timeout: r.seconds(s, "connect_timeout", p.connect_timeout.as_ref())?,
                };
                match profile.build() {
                    Err((key, reason)) if profile.has_server() || key == "sslmode" => {
                        return Err(r.error(s, key, reason))
                    }
                    _ => {}
                }
                Some(profile)
            }
        };
        let lake = match &self.lake {
            None => LakeProfile::default(),
            Some(l) => {
                let s = "lake";
                LakeProfile {
                    raw: r.text(s, "raw", l.raw.as_ref())?,
                    conformed: r.text(s, "conformed", l.conformed.as_ref())?,
                    results: r.text(s, "results", l.results.as_ref())?,
                    google_service_account_key: r.text(
                        s,
                        "google_service_account_key",
                        l.google_service_account_key.as_ref(),
                    )?,
                }
            }
        };
        let mongodb = match &self.mongodb {
            None => None,
            Some(m) => {
                let s = "mongodb";
                let profile = MongoProfile {
                    uri: r
                        .text(s, "uri", m.uri.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    host: r.text(s, "host", m.host.as_ref().map(|h| &h.0))?,
                    user: r.text(s, "user", m.user.as_ref())?,
                    password: r
                        .text(s, "password", m.password.as_ref().map(|h| &h.0))?
                        .map(Secret::new),
                    database: r.text(s, "database", m.database.as_ref())?,
                    collection: r.text(s, "collection", m.collection.as_ref())?,
                };
                if profile.has_server() {
                    if let Err((key, reason)) = profile.build() {
                        return Err(r.error(s, key, reason));
                    }
                }
                Some(profile)
            }
        };
        Ok(Profile {
            postgres,
            lake,
            mongodb,
        })
    }
}

impl Number {
    fn text(&self) -> Option<&str> {
        match self {
            Number::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Replaces variables in one profile, and names the key and the file in its errors.
struct Resolver<'a> {
    origin: &'a str,
    profile: &'a str,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    fn error(&self, section: &str, key: &str, reason: String) -> Error {
        let key = if key.is_empty() {
            key_path(self.profile, section)
        } else {
            key_path(self.profile, &format!("{section}.{key}"))
        };
        Error::Config {
            key,
            reason: format!("{}: {reason}", self.origin),
        }
    }

    /// The value with its variables replaced; `None` when absent or empty.
    fn text(&self, section: &str, key: &str, raw: Option<&String>) -> Result<Option<String>> {
        let Some(raw) = raw else { return Ok(None) };
        let value = interpolate(raw, self.vars).map_err(|e| {
            e.into_error(
                &key_path(self.profile, &format!("{section}.{key}")),
                self.origin,
            )
        })?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// A number, or a string read as one after replacement; `None` when absent or empty.
    fn number(&self, section: &str, key: &str, raw: Option<&Number>) -> Result<Option<f64>> {
        match raw {
            None => Ok(None),
            Some(Number::Int(i)) => Ok(Some(*i as f64)),
            Some(Number::Float(x)) => Ok(Some(*x)),
            Some(Number::Text(t)) => match self.text(section, key, Some(t))? {
                None => Ok(None),
                Some(t) => t.trim().parse::<f64>().map(Some).map_err(|_| {
                    self.error(
                        section,
                        key,
                        "not a number once its variables are replaced".into(),
                    )
                }),
            },
        }
    }

    fn port(&self, section: &str, key: &str, raw: Option<&Number>) -> Result<Option<u16>> {
        match self.number(section, key, raw)? {
            None => Ok(None),
            Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => Ok(Some(p as u16)),
            Some(_) => Err(self.error(section, key, "not a port number (1 to 65535)".into())),
        }
    }

    fn seconds(&self, section: &str, key: &str, raw: Option<&Number>) -> Result<Option<Duration>> {
        match self.number(section, key, raw)? {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
            Some(_) => Err(self.error(section, key, "must be a positive number of seconds".into())),
        }
    }
}

/// What is wrong with a `${…}`; never holds the value.
#[derive(Debug, PartialEq)]
enum InterpolationError {
    Unset(String),
    Syntax(&'static str),
}

impl InterpolationError {
    fn into_error(self, key: &str, origin: &str) -> Error {
        let reason = match self {
            InterpolationError::Unset(name) => format!(
                "{origin}: environment variable {name} is not set (write ${{{name}:-fallback}} \
                 to give a fallback)"
            ),
            InterpolationError::Syntax(what) => format!("{origin}: {what}"),
        };
        Error::Config {
            key: key.to_owned(),
            reason,
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-fallback}` with variables from `vars`, and `$$` with `$`.
fn interpolate(
    value: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, InterpolationError> {
    use InterpolationError::*;
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix('{') else {
            return Err(Syntax(
                "a `$` must start `${NAME}` or `${NAME:-fallback}`, or be doubled (`$$`) for a \
                 literal `$`",
            ));
        };
        let Some(end) = after.find('}') else {
            return Err(Syntax("a `${` has no closing `}`"));
        };
        let inner = &after[..end];
        rest = &after[end + 1..];
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Syntax(
                "a `${…}` holds no valid variable name (letters, digits and `_`, not starting \
                 with a digit)",
            ));
        }
        match (vars(name), fallback) {
            (Some(v), Some(fallback)) if v.is_empty() => out.push_str(fallback),
            (Some(v), _) => out.push_str(&v),
            (None, Some(fallback)) => out.push_str(fallback),
            (None, None) => return Err(Unset(name.to_owned())),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `profile.rest`, the profile's name quoted when it is not a bare TOML key.
fn key_path(profile: &str, rest: &str) -> String {
    let bare = !profile.is_empty()
        && profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("{profile}.{rest}")
    } else {
        format!("{profile:?}.{rest}")
    }
}

fn section_key(section: &str, key: &str) -> String {
    if key.is_empty() {
        section.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// The reason of a connector's configuration error, without its key.
fn reason(e: Error) -> String {
    match e {
        Error::Config { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A TOML error as `line L, column C: message`, without the source line (it may hold a secret).
fn toml_error(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    let at = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = text.get(..start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: ")
        }
        None => String::new(),
    };
    Error::Config {
        key: origin.to_owned(),
        reason: format!("{at}{}", e.message().trim_end()),
    }
}

/// A URL without its password and query: `scheme://user:***@host:port/path?***`; `***` when it
/// is not a URL.
fn redacted_url(url: &str) -> String {
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
    use std::collections::HashMap;

    /// The example of the module's documentation.
    fn example() -> String {
        let docs = include_str!("config.rs");
        let start = docs.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
        let end = start + docs[start..].find("//! ```\n").unwrap();
        docs[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn parses_the_documented_example() {
        let file = ConfigFile::parse(&example(), "steam-recsys.toml").unwrap();
        assert_eq!(
            file.profile_names().collect::<Vec<_>>(),
            ["default", "local"]
        );
        let p = file
            .profile_with(
                ConfigFile::DEFAULT_PROFILE,
                vars(&[
                    ("POSTGRES_PASSWORD", "pg-s3cret"),
                    ("MONGODB_PASSWORD", "mg-s3cret"),
                ]),
            )
            .unwrap();
        let pg = p.postgres.as_ref().unwrap();
        assert_eq!(pg.password.as_ref().unwrap().expose(), "pg-s3cret");
        assert_eq!(pg.schema.as_deref(), Some("recsys"));
        assert_eq!(pg.sslmode.as_deref(), Some("prefer"));
        assert_eq!(pg.connect_timeout, Some(Duration::from_secs(10)));
        let config = pg.to_config().unwrap();
        assert_eq!(config.describe(), "steam@localhost:5432/steam");
        assert_eq!(config.schema(), "recsys");
        assert_eq!(
            p.lake,
            LakeProfile {
                raw: Some("gs://raw_games_data".into()),
                conformed: Some("gs://conformed_games_data".into()),
                results: Some("gs://inference_games_results".into()),
                google_service_account_key: None,
            }
        );
        let mongo = p.mongodb.as_ref().unwrap();
        assert_eq!(mongo.collection.as_deref(), Some("recsys"));
        let mc = mongo.to_config().unwrap();
        assert_eq!(mc.database(), "steam_recsys");
        assert!(
            mc.describe().contains("localhost:27017"),
            "{}",
            mc.describe()
        );
        assert!(mc.describe().contains("(user steam)"), "{}", mc.describe());

        let local = file.profile_with("local", vars(&[])).unwrap();
        let pg = local.postgres.unwrap();
        assert_eq!(pg.password.unwrap().expose(), "steam");
        assert_eq!(pg.host.as_deref(), Some("localhost"));
        assert_eq!(
            local.lake.raw.as_deref(),
            Some("file:///var/lib/steam-recsys/raw")
        );
        assert!(local.mongodb.unwrap().user.is_none());
    }

    #[test]
    fn picks_a_profile_and_lists_them_when_it_is_missing() {
        let text = r#"
            [default.lake]
            raw = "gs://a"
            [staging.lake]
            raw = "gs://b"
        "#;
        let file = ConfigFile::parse(text, "conf/steam-recsys.toml").unwrap();
        assert_eq!(
            file.profile("staging").unwrap().lake.raw.as_deref(),
            Some("gs://b")
        );
        assert_eq!(
            file.profile("default").unwrap().lake.raw.as_deref(),
            Some("gs://a")
        );
        let err = file.profile("prod").unwrap_err().to_string();
        for part in ["conf/steam-recsys.toml", "\"prod\"", "default, staging"] {
            assert!(err.contains(part), "{err} lacks {part}");
        }
        let empty = ConfigFile::parse("", "empty.toml").unwrap();
        assert!(empty
            .profile("default")
            .unwrap_err()
            .to_string()
            .contains("no profiles"));
        // A profile without sections is valid and empty.
        let bare = ConfigFile::parse("[default]\n", "bare.toml").unwrap();
        assert_eq!(bare.profile("default").unwrap(), Profile::default());
    }

    #[test]
    fn interpolation() {
        let v = vars(&[("A", "alpha"), ("EMPTY", "")]);
        assert_eq!(interpolate("x${A}y", &v).unwrap(), "xalphay");
        assert_eq!(interpolate("${A:-fb}", &v).unwrap(), "alpha");
        assert_eq!(interpolate("${MISSING:-fb:-x}", &v).unwrap(), "fb:-x");
        assert_eq!(interpolate("${EMPTY:-fb}", &v).unwrap(), "fb");
        assert_eq!(interpolate("${EMPTY}", &v).unwrap(), "");
        assert_eq!(interpolate("${MISSING:-}", &v).unwrap(), "");
        assert_eq!(interpolate("p$$ss$${A}", &v).unwrap(), "p$ss${A}");
        assert_eq!(interpolate("no dollars", &v).unwrap(), "no dollars");
        assert_eq!(
            interpolate("${MISSING}", &v).unwrap_err(),
            InterpolationError::Unset("MISSING".into())
        );
        for bad in ["$A", "${A", "${}", "${1A}", "${A-B}", "trailing $"] {
            assert!(
                matches!(interpolate(bad, &v), Err(InterpolationError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn interpolates_values_of_a_profile() {
        let text = r#"
            [default.postgres]
            url = "postgresql://steam@${PGHOST}:5432/steam"
            password = "${PW}"
            schema = "${SCHEMA:-recsys}"
            [default.lake]
            raw = "gs://$${literal}"
            [split.postgres]
            host = "${PGHOST}"
            port = "${PORT:-5433}"
            connect_timeout = "${TIMEOUT:-2.5}"
        "#;
        let file = ConfigFile::parse(text, "f.toml").unwrap();
        let p = file
            .profile_with("default", vars(&[("PGHOST", "db"), ("PW", "pw")]))
            .unwrap();
        let pg = p.postgres.unwrap();
        assert_eq!(pg.url.unwrap().expose(), "postgresql://steam@db:5432/steam");
        assert_eq!(pg.password.unwrap().expose(), "pw");
        assert_eq!(pg.schema.as_deref(), Some("recsys"));
        assert_eq!(p.lake.raw.as_deref(), Some("gs://${literal}"));
        let split = file
            .profile_with("split", vars(&[("PGHOST", "db")]))
            .unwrap()
            .postgres
            .unwrap();
        assert_eq!(split.port, Some(5433));
        assert_eq!(split.connect_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            split.to_config().unwrap().describe(),
            "(default user)@db:5433/(default user)"
        );
    }

    #[test]
    fn an_unset_variable_names_itself_the_key_and_the_file_but_not_the_value() {
        let text = r#"
            [default.postgres]
            url = "postgresql://steam:hunter2@db/${STEAM_CFG_TEST_NEVER_SET}"
        "#;
        let file = ConfigFile::parse(text, "/etc/steam-recsys.toml").unwrap();
        let err = file.profile("default").unwrap_err().to_string();
        for part in [
            "STEAM_CFG_TEST_NEVER_SET",
            "default.postgres.url",
            "/etc/steam-recsys.toml",
        ] {
            assert!(err.contains(part), "{err} lacks {part}");
        }
        assert!(!err.contains("hunter2"), "{err}");
        // Only the chosen profile's variables are looked up.
        let text = r#"
            [default.lake]
            raw = "gs://a"
            [other.lake]
            raw = "${STEAM_CFG_TEST_NEVER_SET}"
        "#;
        let file = ConfigFile::parse(text, "f.toml").unwrap();
        assert!(file.profile("default").is_ok());
        assert!(file.profile("other").is_err());
        // A syntax error is found in every profile, when the file is read.
        let err = ConfigFile::parse("[other.lake]\nraw = \"gs://$oops\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other.lake.raw") && err.contains("f.toml"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_and_the_file() {
        let text = "[default.postgres]\nurl = \"postgresql://h/db\"\nhots = \"x\"\n";
        let err = ConfigFile::parse(text, "steam-recsys.toml")
            .unwrap_err()
            .to_string();
        for part in ["steam-recsys.toml", "hots", "line 3"] {
            assert!(err.contains(part), "{err} lacks {part}");
        }
        let err = ConfigFile::parse("[default.mongo]\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mongo") && err.contains("f.toml"), "{err}");
        // Neither the line of a misspelled key nor a password of the wrong type is shown.
        let err = ConfigFile::parse("[default.postgres]\npasword = \"hunter2\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pasword") && !err.contains("hunter2"), "{err}");
        let err = ConfigFile::parse("[default.postgres]\npassword = 31337\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && !err.contains("31337"), "{err}");
        let err = ConfigFile::parse("[default.postgres]\npassword = \"hunter2\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                "[p.postgres]\nhost = \"h\"\nport = 70000\n",
                "p.postgres.port",
            ),
            (
                "[p.postgres]\nhost = \"h\"\nport = \"${X:-abc}\"\n",
                "p.postgres.port",
            ),
            (
                "[p.postgres]\nhost = \"h\"\nconnect_timeout = 0\n",
                "p.postgres.connect_timeout",
            ),
            (
                "[p.postgres]\nhost = \"h\"\nsslmode = \"verify-ca\"\n",
                "p.postgres.sslmode",
            ),
            (
                "[p.postgres]\nhost = \"h\"\nsslmode = \"verify-full\"\n",
                "p.postgres.sslmode",
            ),
            (
                "[p.postgres]\nschema = \"s\"\nsslmode = \"bogus\"\n",
                "p.postgres.sslmode",
            ),
            (
                "[p.postgres]\nurl = \"postgresql://h/d\"\nhost = \"h\"\n",
                "p.postgres.url",
            ),
            ("[p.mongodb]\nuri = \"http://x\"\n", "p.mongodb.uri"),
            (
                "[p.mongodb]\nuri = \"mongodb://a\"\nhost = \"b\"\n",
                "p.mongodb.uri",
            ),
            (
                "[p.mongodb]\nuri = \"mongodb://u:pw@h\"\nuser = \"v\"\n",
                "p.mongodb.uri",
            ),
        ];
        for (text, key) in cases {
            let file = ConfigFile::parse(text, "f.toml").unwrap();
            let err = file.profile_with("p", vars(&[])).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("f.toml"), "{text}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
        // A section with only a schema is fine; it names no server.
        let file = ConfigFile::parse("[p.postgres]\nschema = \"s\"\n", "f.toml").unwrap();
        let pg = file.profile_with("p", vars(&[])).unwrap().postgres.unwrap();
        assert!(!pg.has_server());
        let err = pg.to_config().unwrap_err().to_string();
        assert!(err.contains("no server"), "{err}");
    }

    #[test]
    fn debug_output_holds_no_password() {
        let text = r#"
            [default.postgres]
            url = "postgresql://steam:url-s3cret@db:5432/steam?password=q-s3cret"
            password = "${PW}"
            [default.mongodb]
            uri = "mongodb://mage:uri-s3cret@mongo:27017/serving"
            [other.mongodb]
            host = "mongodb://mage:host-s3cret@mongo:27017"
            password = "key-s3cret"
        "#;
        let file = ConfigFile::parse(text, "f.toml").unwrap();
        let p = file
            .profile_with("default", vars(&[("PW", "env-s3cret")]))
            .unwrap();
        let shown = format!("{file:?} {p:?} {p:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgresql://steam:***@db:5432/steam?***"),
            "{shown}"
        );
        assert!(
            shown.contains("mongodb://mage:***@mongo:27017/serving"),
            "{shown}"
        );
        let err = file
            .profile_with("other", vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let mongo = MongoProfile {
            host: Some("mongodb://mage:host-s3cret@mongo:27017".into()),
            ..Default::default()
        };
        assert!(!format!("{mongo:?}").contains("s3cret"));
        assert_eq!(redacted_url("host=db password=x"), "***");
        assert_eq!(redacted_url("mongodb://a:b/c@h/d"), "mongodb://a:***@h/d");
        assert_eq!(redacted_url("mongodb://h:1/d"), "mongodb://h:1/d");
        assert_eq!(
            redacted_url("postgresql://h/d?password=a@b"),
            "postgresql://h:***@b"
        );
    }

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

    #[test]
    fn dotenv_sets_new_variables_and_keeps_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_dotenv(dir.path()).unwrap(), None);
        assert_eq!(load_dotenv(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(".env"),
            "# comment\nNEW=from-file\nexport SET=\"from file\"\nMULTI=\"a\nb\"\nNEW=again\n",
        )
        .unwrap();
        let (path, entries) = read_dotenv(dir.path()).unwrap().unwrap();
        assert_eq!(path, dir.path().join(".env"));
        // SET is already in the environment: kept; of NEW given twice, the first wins.
        let to_set = unset_entries(entries, |name| name == "SET");
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(to_set, [pair("NEW", "from-file"), pair("MULTI", "a\nb")]);
    }

    #[test]
    fn a_malformed_dotenv_names_the_file_and_line_and_sets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "STEAM_CFG_TEST_DOTENV_BEFORE=1\nMULTI=\"x\ny\"\n\nnot a line hunter2\nZ=2\n",
        )
        .unwrap();
        let err = load_dotenv(dir.path()).unwrap_err().to_string();
        assert!(err.contains(".env") && err.contains("line 5"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // Read whole before anything is set: the good first line was not set either.
        assert!(std::env::var_os("STEAM_CFG_TEST_DOTENV_BEFORE").is_none());
        std::fs::write(dir.path().join(".env"), "A=1\nB=\"never closed\n").unwrap();
        let err = load_dotenv(dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn load_names_a_missing_file() {
        let err = ConfigFile::load(Path::new("/nonexistent/steam-recsys.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/steam-recsys.toml"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steam-recsys.toml");
        std::fs::write(&path, "[default.lake]\nraw = \"gs://r\"\n").unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.origin(), path.display().to_string());
        assert_eq!(
            file.profile("default").unwrap().lake.raw.as_deref(),
            Some("gs://r")
        );
    }
}
