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
//! # sql and stats on an Apache DataFusion Ballista cluster (its scheduler; the `cluster` feature)
//! # cluster = "df://ballista-scheduler:50050"
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
//! [default.redis]
//! # The serving copy of the recommendations (redis://, or rediss:// for TLS).
//! url = "redis://:${REDIS_PASSWORD}@localhost:6379/0"
//! prefix = "steam-recsys:"             # default: steam-recsys:
//!
//! [default.serve]
//! bind = "127.0.0.1:8080"              # default: 127.0.0.1:8080
//! timeout = 2                          # seconds per request, default 2
//! redis_timeout = 0.1                  # seconds per Redis lookup, default 0.1
//! concurrency = 1024                   # requests served at once, default 1024
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
//! | Redis server | `--redis-url` | `REDIS_URL` | `redis.url` |
//! | Redis key prefix | | | `redis.prefix` |
//! | API address | `--bind` | `STEAM_RECSYS_BIND` | `serve.bind` |
//! | API timeouts, concurrency | `--timeout`, `--redis-timeout`, `--concurrency` | | `serve.timeout`, `serve.redis_timeout`, `serve.concurrency` |
//! | Ballista cluster for `sql`, `stats` | `--cluster` | `STEAM_CLUSTER_URL` | `lake.cluster` |
//! | GCS service account | | `GOOGLE_SERVICE_ACC_KEY_FILEPATH`, `GOOGLE_SERVICE_ACCOUNT` | `lake.google_service_account_key` |
//!
//! When `lake.google_service_account_key` is set (and neither of those variables is), the CLI
//! hands it to the lake's builder (`LakeOptions::google_service_account_path`).
//!
//! # Secrets
//!
//! Passwords, and URLs and URIs that may carry credentials, are [`Secret`](steam_core::Secret)s or are shown without
//! their credentials: the `Debug` output of every type here leaves them out, and so does every
//! error, which names keys, variables, lines and files. No error shows the value of a variable,
//! of a password, URL or URI, or the line of the file or of `.env` that it is about.

// The file's profiles as written and `${…}` replaced (raw), the sections and the connector
// configurations they make (profiles), and `.env` files (dotenv).
mod dotenv;
mod profiles;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use steam_core::{Error, Result};

pub use dotenv::{load_dotenv, read_dotenv, DotenvEntries};
pub use profiles::{LakeProfile, MongoProfile, PostgresProfile, RedisProfile, ServeProfile};
use raw::{interpolate, key_path, toml_error, RawProfile, Resolver};

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
    /// The `redis` section, if the profile has one.
    pub redis: Option<RedisProfile>,
    /// The `serve` section (all keys unset when the profile has none).
    pub serve: ServeProfile,
}

#[cfg(test)]
mod tests {
    use super::raw::InterpolationError;
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    /// The example of the module's documentation.
    fn example() -> String {
        let docs = include_str!("mod.rs");
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
                    ("REDIS_PASSWORD", "rd-s3cret"),
                ]),
            )
            .unwrap();
        let redis = p.redis.as_ref().unwrap();
        assert!(!format!("{redis:?}").contains("rd-s3cret"), "{redis:?}");
        let rc = redis.to_config().unwrap().unwrap();
        assert_eq!(rc.describe(), "redis://:***@localhost:6379/0");
        assert_eq!(rc.prefix(), "steam-recsys:");
        assert_eq!(
            p.serve,
            ServeProfile {
                bind: Some("127.0.0.1:8080".into()),
                timeout: Some(Duration::from_secs(2)),
                redis_timeout: Some(Duration::from_millis(100)),
                concurrency: Some(1024),
            }
        );
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
                cluster: None,
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
    fn bad_serve_and_redis_values_name_their_key() {
        for (text, key) in [
            ("[p.serve]\nbind = \"localhost\"\n", "p.serve.bind"),
            ("[p.serve]\nconcurrency = 0\n", "p.serve.concurrency"),
            ("[p.serve]\ntimeout = -1\n", "p.serve.timeout"),
            ("[p.redis]\nurl = \"http://:pw-s3cret@h\"\n", "p.redis.url"),
            (
                "[p.lake]\ncluster = \"http://u:pw-s3cret@h:50050\"\n",
                "p.lake.cluster",
            ),
        ] {
            let file = ConfigFile::parse(text, "f.toml").unwrap();
            let err = file.profile_with("p", vars(&[])).unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains(key), "{shown} lacks {key}");
            assert!(!shown.contains("pw-s3cret"), "{shown}");
        }
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
