//! The `steam-recsys` command line: argument parsing and dispatch to the pipelines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steam_connectors::lake::Lake;
use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::PostgresConfig;
use steam_core::{Error, Result};

use crate::{
    generate, postgres_init, process, source_to_lake, GenerateOptions, InitInput, ProcessOptions,
    SourceToLakeOptions, TableGroup,
};

/// Data pipelines of a Steam game recommender.
#[derive(Debug, Parser)]
#[command(name = "steam-recsys", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        postgres_url: Option<String>,
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
        #[arg(long, default_value = "all")]
        tables: String,
        /// Server URL [default: POSTGRES_URL, else the POSTGRES_* variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
        /// Schema to read [default: POSTGRES_SCHEMA, else recsys].
        #[arg(long)]
        schema: Option<String>,
        /// Lake of the raw layer: s3://, gs://, az://, file:// or a local path.
        #[arg(long, env = "RAW_LAKE_URL", default_value = crate::source_to_lake::DEFAULT_RAW_LAKE)]
        raw_lake: String,
        /// Lake of the conformed layer.
        #[arg(long, env = "CONFORMED_LAKE_URL", default_value = crate::source_to_lake::DEFAULT_CONFORMED_LAKE)]
        conformed_lake: String,
        /// Run date, YYYY-MM-DD: the partition written [default: today, UTC].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Load recommendations (Parquet in a lake) into MongoDB without their ratings, refreshing the
    /// collection keyed on user_id (the reference's gcs_to_mongodb).
    #[command(alias = "gcs-to-mongodb")]
    LakeToMongodb {
        /// The Parquet object or prefix, such as gs://inference_games_results/user_recommendations.parquet.
        #[arg(long)]
        source: String,
        /// MongoDB URI [default: MONGODB_URI, else MONGODB_HOST, MONGODB_USER, MONGODB_PASSWORD].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<String>,
        /// Database [default: the URI's, else MONGODB_DATABASE, else steam_recsys].
        #[arg(long)]
        database: Option<String>,
        /// Collection.
        #[arg(long, default_value = crate::serving::DEFAULT_COLLECTION)]
        collection: String,
        /// refresh (one document per user, users gone removed) or insert (append documents).
        #[arg(long, default_value = "refresh")]
        mode: String,
    },
    /// Check every configured backend: PostgreSQL, the lake, MongoDB. Exits non-zero if any fails.
    ConnectionTest {
        /// PostgreSQL URL [default: POSTGRES_URL, else the POSTGRES_* variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
        /// A lake URL to list and write a probe object to.
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// MongoDB URI [default: MONGODB_URI, else the MONGODB_* variables].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<String>,
        /// Collection to read up to 5 documents from.
        #[arg(long, default_value = crate::serving::DEFAULT_COLLECTION)]
        collection: String,
    },
    /// Run SQL (DataFusion) over the conformed tables of a lake, each registered by its name.
    Sql {
        /// The query, such as "SELECT count(*) FROM games_reviews".
        query: String,
        /// The lake: s3://, gs://, az://, file:// or a local path.
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: String,
    },
}

/// The MongoDB configuration from a URI flag, else the `MONGODB_*` variables; `None` if neither.
pub fn mongo_config(uri: Option<&str>, database: Option<&str>) -> Result<Option<MongoConfig>> {
    let config = match uri {
        Some(uri) => Some(MongoConfig::from_uri(uri)?),
        None => MongoConfig::from_env()?,
    };
    Ok(config.map(|c| match database {
        Some(db) => c.with_database(db),
        None => c,
    }))
}

/// The PostgreSQL configuration from a URL flag, else the `POSTGRES_*` variables, with a schema
/// flag over `POSTGRES_SCHEMA` over `recsys`.
pub fn postgres_config(url: Option<&str>, schema: Option<&str>) -> Result<PostgresConfig> {
    let env = PostgresConfig::from_env()?;
    let mut config = match (url, env) {
        (Some(url), _) => PostgresConfig::from_url(url)?,
        (None, Some(env)) => env,
        (None, None) => {
            return Err(Error::Config {
                key: "--postgres-url".into(),
                reason: "no PostgreSQL server given: pass --postgres-url or set POSTGRES_HOST \
                         and the other POSTGRES_* variables"
                    .into(),
            })
        }
    };
    let env_schema = std::env::var("POSTGRES_SCHEMA")
        .ok()
        .filter(|s| !s.is_empty());
    if let Some(schema) = schema.map(str::to_owned).or(env_schema) {
        config = config.with_schema(schema);
    }
    Ok(config)
}

/// Parses the command line, runs the command, prints its summary; errors go to stderr with a
/// non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
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
            println!(
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
            print!("{summary}");
            println!(
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
            let config = postgres_config(postgres_url.as_deref(), schema.as_deref())?;
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
            print!("{summary}");
            println!(
                "\nloaded {} tables into schema {:?} at {}",
                summary.tables.len(),
                config.schema(),
                config.describe()
            );
            if matches!(input, InitInput::Raw { .. }) {
                println!(
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
            let config = postgres_config(postgres_url.as_deref(), schema.as_deref())?;
            let options = SourceToLakeOptions {
                group: tables.parse::<TableGroup>()?,
                raw: Lake::from_url(&raw_lake)?,
                conformed: Lake::from_url(&conformed_lake)?,
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            };
            let summary = source_to_lake(&config, &options).await?;
            print!("{summary}");
            println!(
                "\nexported to {} (raw) and {} (conformed, record_created_dt={})",
                options.raw, options.conformed, options.date
            );
        }
        Command::Sql { query, lake } => {
            let lake = Lake::from_url(&lake)?;
            let batches = steam_connectors::lake::sql(&lake, &query).await?;
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| Error::arrow("formatting the result", e))?;
            println!("{table}");
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            println!("{rows} rows");
        }
        Command::LakeToMongodb {
            source,
            mongodb_uri,
            database,
            collection,
            mode,
        } => {
            let mode = match mode.as_str() {
                "refresh" => steam_core::WriteMode::Replace,
                "insert" => steam_core::WriteMode::Append,
                other => {
                    return Err(Error::Config {
                        key: "--mode".into(),
                        reason: format!("{other:?} is not refresh or insert"),
                    })
                }
            };
            let mongo =
                mongo_config(mongodb_uri.as_deref(), database.as_deref())?.ok_or_else(|| {
                    Error::Config {
                        key: "--mongodb-uri".into(),
                        reason: "no MongoDB given: pass --mongodb-uri or set MONGODB_HOST".into(),
                    }
                })?;
            let lake = Lake::from_url(&source)?;
            let summary =
                crate::serving::lake_to_mongodb_with(&lake, &mongo, &collection, mode).await?;
            print!("{summary}");
            println!(
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
            let pg = match (&postgres_url, PostgresConfig::from_env()?) {
                (Some(url), _) => Some(PostgresConfig::from_url(url)?),
                (None, env) => env,
            };
            let lake = lake.as_deref().map(Lake::from_url).transpose()?;
            let mongo = mongo_config(mongodb_uri.as_deref(), None)?;
            if pg.is_none() && lake.is_none() && mongo.is_none() {
                return Err(Error::Config {
                    key: "connection-test".into(),
                    reason: "nothing to check: give --postgres-url, --lake or --mongodb-uri \
                             (or their environment variables)"
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
                println!("{c}");
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
