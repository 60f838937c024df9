//! Where each setting comes from: a flag (or its environment variable, which clap reads), else the
//! configuration file's profile, else the default — resolved here, for every command.

use steam_connectors::lake::Lake;
use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::PostgresConfig;
use steam_core::{Error, Result, Secret};

use super::args::{LayerArgs, MongoArgs, PostgresArgs, RedisArgs};

use crate::config::{ConfigFile, Profile};

/// Connection settings from the configuration file's profile, below flags and environment
/// variables.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The chosen profile, if a configuration file was given.
    pub profile: Option<Profile>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// The PostgreSQL server and schema of `args` (a flag or its variable), else the profile's:
    /// an error when none is given.
    pub fn postgres_of(&self, args: &PostgresArgs) -> Result<PostgresConfig> {
        self.require_postgres(
            args.postgres_url.as_ref().map(Secret::expose),
            args.schema.as_deref(),
        )
    }

    /// The raw and conformed layers of `args`, else the profile's, else the reference's buckets.
    pub fn layers_of(&self, args: &LayerArgs) -> Result<(Lake, Lake)> {
        Ok((
            self.lake(&self.raw_lake(args.raw_lake.clone()))?,
            self.lake(&self.conformed_lake(args.conformed_lake.clone()))?,
        ))
    }

    /// The MongoDB deployment and collection of `args`, else the profile's: an error when no
    /// deployment is given.
    pub fn mongo_of(&self, args: &MongoArgs) -> Result<(MongoConfig, String)> {
        let config = self.require_mongo(
            args.mongodb_uri.as_ref().map(Secret::expose),
            args.database.as_deref(),
        )?;
        Ok((config, self.collection(args.collection.clone())))
    }

    /// The Redis server of `args` (the flag or `REDIS_URL`), else the profile's (with its key
    /// prefix); `None` when neither gives one.
    pub fn redis_of(
        &self,
        args: &RedisArgs,
    ) -> Result<Option<steam_connectors::redis::RedisConfig>> {
        let profile = self.profile.as_ref().and_then(|p| p.redis.as_ref());
        let prefix = profile.and_then(|p| p.prefix.clone());
        match &args.redis_url {
            Some(url) => {
                let config = steam_connectors::redis::RedisConfig::from_url(url.expose())?;
                Ok(Some(match prefix {
                    Some(p) => config.with_prefix(p),
                    None => config,
                }))
            }
            None => profile
                .map(|p| p.to_config())
                .transpose()
                .map(Option::flatten),
        }
    }

    /// The Ballista cluster of the flag (or `STEAM_CLUSTER_URL`), else the profile's
    /// `lake.cluster`; `None` (also for a flag of `local` or empty): queries run in this process.
    pub fn cluster(&self, flag: Option<String>) -> Option<String> {
        match flag {
            Some(c) if c.is_empty() || c == "local" => None,
            Some(c) => Some(c),
            None => self.profile.as_ref().and_then(|p| p.lake.cluster.clone()),
        }
    }

    /// The conformed layer's URL when one is given (the flag or its variable, else the profile's),
    /// without the default bucket.
    pub fn conformed_lake_given(&self, flag: Option<String>) -> Option<String> {
        flag.or_else(|| self.profile.as_ref().and_then(|p| p.lake.conformed.clone()))
    }

    /// Loads `.env` from the current directory (`config` `None`), or the one beside the
    /// configuration file `config`, into the environment; whether there was one. Variables
    /// already set are never overridden. Called before the command line is parsed.
    pub fn load_dotenv(config: Option<&std::path::Path>) -> Result<bool> {
        let dir = match config {
            None => std::path::Path::new("."),
            Some(path) => match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => dir,
                None => return Ok(false),
            },
        };
        Ok(crate::config::load_dotenv(dir)?.is_some())
    }

    /// Reads the configuration file (if any) and chooses `profile` (the `.env` files are loaded
    /// first, by [`Settings::load_dotenv`]).
    pub fn load(config: Option<&std::path::Path>, profile: &str) -> Result<Settings> {
        let Some(path) = config else {
            return Ok(Settings::default());
        };
        let profile = ConfigFile::load(path)?.profile(profile)?;
        Ok(Settings {
            profile: Some(profile),
        })
    }

    /// Opens a lake by URL, handing a GCS key file of the profile
    /// (`lake.google_service_account_key`) to the lake's builder unless a variable gives one
    /// (`GOOGLE_SERVICE_ACC_KEY_FILEPATH`, `GOOGLE_SERVICE_ACCOUNT`).
    pub fn lake(&self, url: &str) -> Result<Lake> {
        let key = self
            .profile
            .as_ref()
            .and_then(|p| p.lake.google_service_account_key.clone())
            .filter(|_| {
                env_var("GOOGLE_SERVICE_ACCOUNT").is_none()
                    && env_var("GOOGLE_SERVICE_ACC_KEY_FILEPATH").is_none()
            });
        let mut builder = steam_connectors::lake::LakeBuilder::from_env(url);
        if let Some(key) = key {
            builder = builder.with_google_service_account_path(key);
        }
        builder.build()
    }

    /// A lake URL: the flag (or its variable), else the profile's, else `default`.
    fn lake_url(
        &self,
        flag: Option<String>,
        pick: fn(&crate::config::LakeProfile) -> Option<&String>,
        default: &str,
    ) -> String {
        flag.or_else(|| self.profile.as_ref().and_then(|p| pick(&p.lake)).cloned())
            .unwrap_or_else(|| default.to_owned())
    }

    /// The raw layer's URL.
    pub fn raw_lake(&self, flag: Option<String>) -> String {
        self.lake_url(
            flag,
            |l| l.raw.as_ref(),
            crate::source_to_lake::DEFAULT_RAW_LAKE,
        )
    }

    /// The conformed layer's URL.
    pub fn conformed_lake(&self, flag: Option<String>) -> String {
        self.lake_url(
            flag,
            |l| l.conformed.as_ref(),
            crate::source_to_lake::DEFAULT_CONFORMED_LAKE,
        )
    }

    /// The user_recommendations object: the flag, else `user_recommendations.parquet` in the
    /// results lake (`RESULTS_LAKE_URL`, else the profile's, else the reference's bucket).
    pub fn results_object(&self, flag: Option<String>) -> String {
        flag.unwrap_or_else(|| self.results_object_in(env_var("RESULTS_LAKE_URL")))
    }

    /// `user_recommendations.parquet` in the results lake `lake`, else the profile's, else the
    /// reference's bucket.
    pub fn results_object_in(&self, lake: Option<String>) -> String {
        let lake = self.lake_url(
            lake,
            |l| l.results.as_ref(),
            crate::train::DEFAULT_RESULTS_LAKE,
        );
        format!(
            "{}/{}.parquet",
            lake.trim_end_matches('/'),
            crate::train::RESULTS_TABLE
        )
    }

    /// The served collection: the flag, else the profile's, else `recsys`.
    pub fn collection(&self, flag: Option<String>) -> String {
        flag.or_else(|| {
            self.profile
                .as_ref()
                .and_then(|p| p.mongodb.as_ref())
                .and_then(|m| m.collection.clone())
        })
        .unwrap_or_else(|| crate::serving::DEFAULT_COLLECTION.to_owned())
    }

    /// The PostgreSQL configuration: the URL flag (or `POSTGRES_URL`), else the `POSTGRES_*`
    /// variables, else the profile's; schema from the flag, else `POSTGRES_SCHEMA`, else the
    /// profile's, else `recsys`. `None` if none of them names a server.
    pub fn postgres(
        &self,
        url: Option<&str>,
        schema: Option<&str>,
    ) -> Result<Option<PostgresConfig>> {
        let profile = self.profile.as_ref().and_then(|p| p.postgres.as_ref());
        let mut config = match (url, PostgresConfig::from_env()?) {
            (Some(url), _) => PostgresConfig::from_url(url)?,
            (None, Some(env)) => env,
            (None, None) => match profile.filter(|p| p.has_server()) {
                Some(p) => p.to_config()?,
                None => return Ok(None),
            },
        };
        let schema = schema
            .map(str::to_owned)
            .or_else(|| env_var("POSTGRES_SCHEMA"))
            .or_else(|| profile.and_then(|p| p.schema.clone()));
        if let Some(schema) = schema {
            config = config.with_schema(schema);
        }
        Ok(Some(config))
    }

    /// [`Settings::postgres`], where a server is required.
    pub fn require_postgres(
        &self,
        url: Option<&str>,
        schema: Option<&str>,
    ) -> Result<PostgresConfig> {
        self.postgres(url, schema)?.ok_or_else(|| Error::Config {
            key: "--postgres-url".into(),
            reason: "no PostgreSQL server given: pass --postgres-url, set POSTGRES_URL or \
                     POSTGRES_HOST and the other POSTGRES_* variables, or give a --config \
                     file with a postgres section"
                .into(),
        })
    }

    /// The MongoDB configuration: the URI flag (or `MONGODB_URI`), else the `MONGODB_*`
    /// variables, else the profile's (with its database); a database flag overrides the
    /// database. `None` if none of them names a server.
    pub fn mongo(&self, uri: Option<&str>, database: Option<&str>) -> Result<Option<MongoConfig>> {
        let profile = self.profile.as_ref().and_then(|p| p.mongodb.as_ref());
        let config = match uri {
            Some(uri) => Some(MongoConfig::from_url(uri)?),
            None => match MongoConfig::from_env()? {
                Some(env) => Some(env),
                None => profile
                    .filter(|p| p.has_server())
                    .map(|p| p.to_config())
                    .transpose()?,
            },
        };
        Ok(config.map(|c| match database {
            Some(db) => c.with_database(db),
            None => c,
        }))
    }

    /// [`Settings::mongo`], where a server is required.
    pub fn require_mongo(&self, uri: Option<&str>, database: Option<&str>) -> Result<MongoConfig> {
        self.mongo(uri, database)?.ok_or_else(|| Error::Config {
            key: "--mongodb-uri".into(),
            reason: "no MongoDB given: pass --mongodb-uri, set MONGODB_URI or MONGODB_HOST, or \
                     give a --config file with a mongodb section"
                .into(),
        })
    }
}
