//! The `steam-recsys` command line: argument parsing and dispatch to the pipelines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steam_connectors::lake::Lake;
use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::PostgresConfig;
use steam_core::{Error, Result, Secret};

use crate::config::{ConfigFile, Profile};
use crate::{
    generate, postgres_init, process, source_to_lake, GenerateOptions, InitInput, ProcessOptions,
    SourceToLakeOptions, TableGroup,
};

/// Data pipelines of a Steam game recommender.
#[derive(Debug, Parser)]
#[command(
    name = "steam-recsys",
    version,
    about = "Data pipelines of a Steam game recommender: clean the scraped Steam files, load \
             PostgreSQL, export to a data lake, train ALS and serve every user's top 10 from \
             MongoDB.",
    long_about = None
)]
pub struct Cli {
    /// Configuration file of named profiles (TOML: PostgreSQL, lakes, MongoDB; see
    /// steam_pipelines::config). Flags and their environment variables override it.
    #[arg(long, global = true, env = "STEAM_RECSYS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The profile of the configuration file to use.
    #[arg(long, global = true, env = "STEAM_RECSYS_PROFILE", default_value = ConfigFile::DEFAULT_PROFILE)]
    pub profile: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How `lake-to-mongodb` writes the collection (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeMode {
    /// One document per user, users absent from the results removed, no moment without a
    /// document for a user present before and after (see `MongoSink`'s refresh).
    Refresh,
    /// Append the documents (a rerun adds them again).
    Insert,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the real dataset's raw files from HuggingFace (resumable, with verified sizes and
    /// checksums). A token for a private or gated repository is read from HF_TOKEN only.
    Download {
        /// Directory to write games_description.csv, games_ranking.csv, steam_game_reviews.csv to.
        #[arg(long)]
        out: PathBuf,
        /// The Hub's base URL.
        #[arg(long, env = "HF_ENDPOINT", default_value = crate::download::DEFAULT_ENDPOINT)]
        endpoint: String,
        /// The dataset repository, owner/name.
        #[arg(long, default_value = crate::download::DEFAULT_REPO)]
        repo: String,
        /// The branch, tag or commit.
        #[arg(long, default_value = crate::download::DEFAULT_REVISION)]
        revision: String,
    },
    /// Generate the three raw files in the scraper's formats (deterministic for a seed).
    Generate {
        /// Directory to write games_description.csv, games_ranking.csv, steam_game_reviews.csv to.
        #[arg(long)]
        out: PathBuf,
        /// Number of reviews.
        #[arg(long, default_value_t = 100_000)]
        reviews: u64,
        /// Number of games.
        #[arg(long, default_value_t = 290)]
        games: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fraction of review and ranking records given a broken value (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        broken_rate: f64,
    },
    /// Clean the raw files into the eleven processed tables (Parquet), with a rejects ledger.
    Process {
        /// Directory holding the three raw files.
        #[arg(long)]
        raw: PathBuf,
        /// Output directory: one TABLE.parquet per table, and _rejected/RAW_FILE.csv ledgers.
        #[arg(long)]
        out: PathBuf,
        /// Year given to year-less review dates [default: the current year].
        #[arg(long)]
        reference_year: Option<i32>,
        /// Fail on the first bad record instead of setting it aside.
        #[arg(long)]
        strict: bool,
    },
    /// Load the eleven tables into a PostgreSQL schema, all in one transaction (replace).
    #[command(group(clap::ArgGroup::new("input").required(true).args(["processed", "raw"])))]
    PostgresInit {
        /// Directory of TABLE.parquet files written by `process`.
        #[arg(long)]
        processed: Option<PathBuf>,
        /// Directory of the three raw files, cleaned on the way.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Server URL, such as postgresql://user:password@host:5432/dbname (prefer the
        /// POSTGRES_URL variable, which other users cannot see in the process list) [default: the
        /// POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DBNAME, POSTGRES_USER, POSTGRES_PASSWORD,
        /// POSTGRES_CONNECT_TIMEOUT, POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<Secret>,
        /// Schema to load into [default: POSTGRES_SCHEMA, else recsys].
        #[arg(long)]
        schema: Option<String>,
        /// With --raw: year given to year-less review dates [default: the current year].
        #[arg(long, requires = "raw")]
        reference_year: Option<i32>,
        /// With --raw: fail on the first bad record instead of setting it aside.
        #[arg(long, requires = "raw")]
        strict: bool,
        /// With --raw: where the _rejected/RAW_FILE.csv ledgers go.
        #[arg(long, requires = "raw", default_value = ".")]
        ledger_dir: PathBuf,
    },
    /// Export PostgreSQL tables to a lake: raw CSV objects and conformed Parquet partitioned by
    /// record_created_dt (the reference's source_to_gcs_direct, _reviews and _descriptions).
    #[command(alias = "source-to-gcs")]
    SourceToLake {
        /// Which tables: direct (the nine generic ones), reviews, descriptions, or all.
        #[arg(long, value_enum, default_value_t = TableGroup::All)]
        tables: TableGroup,
        /// Server URL [default: POSTGRES_URL, else the POSTGRES_* variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<Secret>,
        /// Schema to read [default: POSTGRES_SCHEMA, else recsys].
        #[arg(long)]
        schema: Option<String>,
        /// Lake of the raw layer: s3://, gs://, az://, file:// or a local path [default: the
        /// profile's lake.raw, else gs://raw_games_data].
        #[arg(long, env = "RAW_LAKE_URL")]
        raw_lake: Option<String>,
        /// Lake of the conformed layer [default: the profile's lake.conformed, else
        /// gs://conformed_games_data].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        conformed_lake: Option<String>,
        /// Run date, YYYY-MM-DD: the partition written [default: today, UTC].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Load recommendations (Parquet in a lake) into MongoDB without their ratings, refreshing the
    /// collection keyed on user_id (the reference's gcs_to_mongodb).
    #[command(alias = "gcs-to-mongodb")]
    LakeToMongodb {
        /// The Parquet object or prefix [default: user_recommendations.parquet in the results
        /// lake: RESULTS_LAKE_URL, else the profile's lake.results, else
        /// gs://inference_games_results].
        #[arg(long)]
        source: Option<String>,
        /// MongoDB URI [default: MONGODB_URI, else MONGODB_HOST, MONGODB_USER, MONGODB_PASSWORD].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<Secret>,
        /// Database [default: the URI's, else MONGODB_DATABASE, else steam_recsys].
        #[arg(long)]
        database: Option<String>,
        /// Collection [default: the profile's mongodb.collection, else recsys].
        #[arg(long)]
        collection: Option<String>,
        /// How the collection is written.
        #[arg(long, value_enum, default_value_t = ServeMode::Refresh)]
        mode: ServeMode,
    },
    /// Check every configured backend: PostgreSQL, the lake, MongoDB. Exits non-zero if any fails.
    ConnectionTest {
        /// PostgreSQL URL [default: POSTGRES_URL, else the POSTGRES_* variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<Secret>,
        /// A lake URL to list and write a probe object to [default: the profile's
        /// lake.conformed].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// MongoDB URI [default: MONGODB_URI, else the MONGODB_* variables].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<Secret>,
        /// Collection to read up to 5 documents from [default: the profile's
        /// mongodb.collection, else recsys].
        #[arg(long)]
        collection: Option<String>,
    },
    /// Train ALS on games_reviews and write every user's top 10 (the reference's Spark ML
    /// notebook): explicit feedback, ratings = recommendation as 1/0, Spark's regularization.
    Train {
        /// The ratings: a Parquet object, a directory of them, or a conformed table such as
        /// gs://conformed_games_data/games_reviews (its latest record_created_dt partition).
        #[arg(long)]
        reviews: String,
        /// Where user_recommendations goes, one Parquet object replaced whole [default:
        /// user_recommendations.parquet in the results lake: RESULTS_LAKE_URL, else the profile's
        /// lake.results, else gs://inference_games_results].
        #[arg(long)]
        out: Option<String>,
        /// With a conformed table: the partition to read [default: the latest].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Held-out ratings to evaluate on (then --holdout is not used).
        #[arg(long)]
        test: Option<String>,
        /// Fraction of the ratings held out at random for evaluation; 0 trains on all of them.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// Latent factors.
        #[arg(long, default_value_t = 10)]
        rank: usize,
        /// Iterations.
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        /// Regularization λ (scaled by each user's and item's number of ratings, as in Spark).
        #[arg(long, default_value_t = 0.1)]
        reg_param: f64,
        /// Seed of the initial factors and of the split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Recommendations per user.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Run a composition of pipelines.
    Run {
        /// Which.
        #[command(subcommand)]
        what: RunCommand,
    },
    /// Run SQL (DataFusion) over the conformed tables of a lake, each registered by its name.
    Sql {
        /// The query, such as "SELECT count(*) FROM games_reviews".
        query: String,
        /// The conformed lake: s3://, gs://, az://, file:// or a local path [default: the
        /// profile's lake.conformed, else gs://conformed_games_data].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// How rows are printed, batch by batch as the query produces them.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// How `sql` prints its rows (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// Aligned tables, one per batch, and the row count.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line (NDJSON).
    Json,
}

/// Compositions of pipelines.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// The whole offline loop: generate (or --raw DIR) → process → postgres-init →
    /// source-to-lake (all tables) → train → lake-to-mongodb, then one report.
    All {
        /// Directory of the three raw files to use instead of generated ones (such as
        /// `download`'s).
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Without --raw: reviews to generate.
        #[arg(long, default_value_t = 100_000, conflicts_with = "raw")]
        reviews: u64,
        /// Without --raw: seed of the generator.
        #[arg(long, default_value_t = 42, conflicts_with = "raw")]
        seed: u64,
        /// Working directory: raw/ (generated), processed/ (the eleven tables and their
        /// _rejected/ ledgers).
        #[arg(long, default_value = "data/run")]
        work: PathBuf,
        /// Year given to year-less review dates [default: the current year].
        #[arg(long)]
        reference_year: Option<i32>,
        /// PostgreSQL URL [default: POSTGRES_URL, else the POSTGRES_* variables, else the
        /// profile's postgres].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<Secret>,
        /// Schema [default: POSTGRES_SCHEMA, else the profile's, else recsys].
        #[arg(long)]
        schema: Option<String>,
        /// Raw layer [default: RAW_LAKE_URL, else the profile's lake.raw, else gs://raw_games_data].
        #[arg(long, env = "RAW_LAKE_URL")]
        raw_lake: Option<String>,
        /// Conformed layer [default: CONFORMED_LAKE_URL, else the profile's lake.conformed, else
        /// gs://conformed_games_data].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        conformed_lake: Option<String>,
        /// Results lake: user_recommendations.parquet goes there [default: RESULTS_LAKE_URL, else
        /// the profile's lake.results, else gs://inference_games_results].
        #[arg(long, env = "RESULTS_LAKE_URL")]
        results_lake: Option<String>,
        /// MongoDB URI [default: MONGODB_URI, else the MONGODB_* variables, else the profile's].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<Secret>,
        /// Database [default: the URI's, else the profile's, else steam_recsys].
        #[arg(long)]
        database: Option<String>,
        /// Collection [default: the profile's mongodb.collection, else recsys].
        #[arg(long)]
        collection: Option<String>,
        /// Run date, YYYY-MM-DD [default: today, UTC].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Fraction of ratings held out to evaluate the model.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// No spinners on stderr.
        #[arg(long)]
        no_progress: bool,
    },
}

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
    /// Reads `.env` from the current directory, then the configuration file (if any) and `.env`
    /// beside it, and chooses `profile`. Variables already set are never overridden.
    pub fn load(config: Option<&std::path::Path>, profile: &str) -> Result<Settings> {
        crate::config::load_dotenv(std::path::Path::new("."))?;
        let Some(path) = config else {
            return Ok(Settings::default());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::config::load_dotenv(dir)?;
        }
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
        let options = steam_connectors::lake::LakeOptions {
            google_service_account_path: key.map(Into::into),
            ..Default::default()
        };
        Lake::from_url_with(url, &options)
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
            Some(uri) => Some(MongoConfig::from_uri(uri)?),
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

/// Writes to standard output, returning from the command with an error if it cannot.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))?
    };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| Error::io(STDOUT, e))
}

/// Where [`write_stdout`]'s errors say they happened.
const STDOUT: &str = "standard output";

/// The error is a write to standard output whose reader has gone (as `| head` closes it); a broken
/// pipe anywhere else (a server's connection) is an error like any other.
fn is_stdout_closed(e: &Error) -> bool {
    matches!(e, Error::Io { path, source }
        if path.as_os_str() == STDOUT && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Parses the command line, runs the command, prints its summary; errors go to stderr with a
/// non-zero exit code. Output cut short by its reader (`steam-recsys … | head`) ends the command
/// quietly, with success, as it ends the work that writes it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), &cli.profile) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&Error::io("the async runtime", e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_with(cli.command, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Writes an error and its causes to standard error (ignoring a standard error that is gone).
fn report(e: &Error) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {e}");
    for cause in steam_core::causes(e) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
}

/// Runs one command with flags and environment variables only.
pub async fn run(command: Command) -> Result<()> {
    run_with(command, &Settings::default()).await
}

/// Runs one command, taking what flags and environment variables leave unset from `settings`.
pub async fn run_with(command: Command, settings: &Settings) -> Result<()> {
    match command {
        Command::Download {
            out,
            endpoint,
            repo,
            revision,
        } => {
            let mut options = crate::download::DownloadOptions::from_env(out);
            options.endpoint = endpoint;
            options.repo = repo;
            options.revision = revision;
            let summary = crate::download::download(&options).await?;
            out!("{summary}");
            outln!(
                "\n{} raw files of {} in {}",
                summary.files.len(),
                options.repo,
                options.out.display()
            );
        }
        Command::Generate {
            out,
            reviews,
            games,
            seed,
            broken_rate,
        } => {
            let started = std::time::Instant::now();
            let g = generate(&GenerateOptions {
                out: out.clone(),
                reviews,
                games,
                seed,
                broken_rate,
            })?;
            outln!(
                "generated {} games, {} ranking rows, {} reviews in {} ({:.2}s)",
                g.games,
                g.ranking,
                g.reviews,
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Process {
            raw,
            out,
            reference_year,
            strict,
        } => {
            let mut options = ProcessOptions::new(raw, out.clone());
            if let Some(y) = reference_year {
                options.reference_year = y;
            }
            options.strict = strict;
            let summary = process(&options).await?;
            out!("{summary}");
            outln!(
                "\nwrote {} tables to {}; rejected records are listed in {}",
                summary.tables.len(),
                out.display(),
                out.join(steam_connectors::files::RejectLedger::DIR)
                    .display()
            );
        }
        Command::PostgresInit {
            processed,
            raw,
            postgres_url,
            schema,
            reference_year,
            strict,
            ledger_dir,
        } => {
            let config = settings
                .require_postgres(postgres_url.as_ref().map(Secret::expose), schema.as_deref())?;
            let input = match (processed, raw) {
                (Some(dir), _) => InitInput::Processed(dir),
                (None, Some(raw)) => {
                    let mut options = ProcessOptions::new(raw, &ledger_dir);
                    if let Some(y) = reference_year {
                        options.reference_year = y;
                    }
                    options.strict = strict;
                    InitInput::Raw {
                        options,
                        ledger_dir: ledger_dir.clone(),
                    }
                }
                (None, None) => {
                    return Err(Error::Config {
                        key: "postgres-init".into(),
                        reason: "give --processed DIR or --raw DIR".into(),
                    })
                }
            };
            let summary = postgres_init(&input, &config).await?;
            out!("{summary}");
            outln!(
                "\nloaded {} tables into schema {:?} at {}",
                summary.tables.len(),
                config.schema(),
                config.describe()
            );
            if matches!(input, InitInput::Raw { .. }) {
                outln!(
                    "rejected records are listed in {}",
                    ledger_dir
                        .join(steam_connectors::files::RejectLedger::DIR)
                        .display()
                );
            }
        }
        Command::SourceToLake {
            tables,
            postgres_url,
            schema,
            raw_lake,
            conformed_lake,
            date,
        } => {
            let config = settings
                .require_postgres(postgres_url.as_ref().map(Secret::expose), schema.as_deref())?;
            let options = SourceToLakeOptions {
                group: tables,
                raw: settings.lake(&settings.raw_lake(raw_lake))?,
                conformed: settings.lake(&settings.conformed_lake(conformed_lake))?,
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            };
            let summary = source_to_lake(&config, &options).await?;
            out!("{summary}");
            outln!(
                "\nexported to {} (raw) and {} (conformed, record_created_dt={})",
                options.raw,
                options.conformed,
                options.date
            );
        }
        Command::Train {
            reviews,
            out,
            date,
            test,
            holdout,
            rank,
            iterations,
            reg_param,
            seed,
            top,
        } => {
            let mut options = crate::TrainOptions::new(
                settings.lake(&reviews)?,
                settings.lake(&settings.results_object(out))?,
            );
            options.date = date;
            options.test = test.as_deref().map(|t| settings.lake(t)).transpose()?;
            options.holdout = holdout;
            options.params = steam_model::AlsParams {
                rank,
                iterations,
                reg_param,
                seed,
            };
            options.top_k = top;
            let report = crate::train(&options).await?;
            out!("{report}");
            outln!("\nwrote {} to {}", crate::train::RESULTS_TABLE, options.out);
        }
        Command::Run {
            what:
                RunCommand::All {
                    raw,
                    reviews,
                    seed,
                    work,
                    reference_year,
                    postgres_url,
                    schema,
                    raw_lake,
                    conformed_lake,
                    results_lake,
                    mongodb_uri,
                    database,
                    collection,
                    date,
                    holdout,
                    no_progress,
                },
        } => {
            let options = crate::RunAllOptions {
                input: match raw {
                    Some(dir) => crate::RawInput::Dir(dir),
                    None => crate::RawInput::Generate { reviews, seed },
                },
                work,
                reference_year: reference_year.unwrap_or_else(crate::process::current_year),
                postgres: settings.require_postgres(
                    postgres_url.as_ref().map(Secret::expose),
                    schema.as_deref(),
                )?,
                raw_lake: settings.lake(&settings.raw_lake(raw_lake))?,
                conformed_lake: settings.lake(&settings.conformed_lake(conformed_lake))?,
                results: settings.lake(&settings.results_object_in(results_lake))?,
                mongo: settings.require_mongo(
                    mongodb_uri.as_ref().map(Secret::expose),
                    database.as_deref(),
                )?,
                collection: settings.collection(collection),
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                als: steam_model::AlsParams::default(),
                holdout,
                progress: !no_progress,
            };
            let report = crate::run_all(&options).await?;
            out!("{report}");
            outln!(
                "\nserved {} documents in {}.{} at {}",
                report.served(),
                options.mongo.database(),
                options.collection,
                options.mongo.describe()
            );
        }
        Command::Sql {
            query,
            lake,
            format,
            limit,
        } => {
            let lake = settings.lake(&settings.conformed_lake(lake))?;
            let mut batches = steam_connectors::lake::sql_stream(&lake, &query, limit).await?;
            let (mut rows, mut first) = (0usize, true);
            while let Some(batch) = futures::StreamExt::next(&mut batches).await {
                let batch = batch?;
                rows += batch.num_rows();
                let fail = |e| Error::arrow("formatting the result", e);
                let mut text = Vec::new();
                match format {
                    SqlFormat::Table => {
                        let table =
                            arrow::util::pretty::pretty_format_batches(&[batch]).map_err(fail)?;
                        text = format!("{table}\n").into_bytes();
                    }
                    SqlFormat::Csv => arrow::csv::WriterBuilder::new()
                        .with_header(first)
                        .build(&mut text)
                        .write(&batch)
                        .map_err(fail)?,
                    SqlFormat::Json => {
                        let mut w = arrow::json::LineDelimitedWriter::new(&mut text);
                        w.write(&batch).map_err(fail)?;
                        w.finish().map_err(fail)?;
                    }
                }
                out!("{}", String::from_utf8_lossy(&text));
                first = false;
            }
            if format == SqlFormat::Table {
                outln!("{rows} rows");
            } else {
                tracing::info!("{rows} rows");
            }
        }
        Command::LakeToMongodb {
            source,
            mongodb_uri,
            database,
            collection,
            mode,
        } => {
            let mode = match mode {
                ServeMode::Refresh => steam_core::WriteMode::Replace,
                ServeMode::Insert => steam_core::WriteMode::Append,
            };
            let mongo = settings.require_mongo(
                mongodb_uri.as_ref().map(Secret::expose),
                database.as_deref(),
            )?;
            let collection = settings.collection(collection);
            let lake = settings.lake(&settings.results_object(source))?;
            let summary =
                crate::serving::lake_to_mongodb_with(&lake, &mongo, &collection, mode).await?;
            out!("{summary}");
            outln!(
                "\nwrote {}.{collection} at {} from {}",
                mongo.database(),
                mongo.describe(),
                lake
            );
        }
        Command::ConnectionTest {
            postgres_url,
            lake,
            mongodb_uri,
            collection,
        } => {
            let pg = settings.postgres(postgres_url.as_ref().map(Secret::expose), None)?;
            let lake = lake
                .or_else(|| {
                    settings
                        .profile
                        .as_ref()
                        .and_then(|p| p.lake.conformed.clone())
                })
                .as_deref()
                .map(|url| settings.lake(url))
                .transpose()?;
            let mongo = settings.mongo(mongodb_uri.as_ref().map(Secret::expose), None)?;
            let collection = settings.collection(collection);
            if pg.is_none() && lake.is_none() && mongo.is_none() {
                return Err(Error::Config {
                    key: "connection-test".into(),
                    reason: "nothing to check: give --postgres-url, --lake or --mongodb-uri \
                             (or their environment variables, or a --config file)"
                        .into(),
                });
            }
            let checks = crate::serving::connection_test(
                pg.as_ref(),
                lake.as_ref(),
                mongo.as_ref().map(|m| (m, collection.as_str())),
            )
            .await;
            for c in &checks {
                outln!("{c}");
            }
            let failed = checks.iter().filter(|c| c.result.is_err()).count();
            if failed > 0 {
                return Err(Error::Config {
                    key: "connection-test".into(),
                    reason: format!("{failed} of {} backends failed", checks.len()),
                });
            }
        }
    }
    Ok(())
}
