//! The tables loaded from one store into the next: `postgres-init` (into PostgreSQL),
//! `source-to-lake` (PostgreSQL into the lake), `lake-to-mongodb` (the lake's recommendations into
//! MongoDB and Redis).

use std::path::PathBuf;

use steam_core::{Error, Result};

use crate::cli::args::{LayerArgs, MongoArgs, PostgresArgs, RedisArgs, ServeMode};
use crate::cli::Settings;
use crate::{InitInput, ProcessOptions, SourceToLakeOptions, TableGroup};

/// `postgres-init`: loads the processed tables, or the raw files cleaned on the way, into
/// PostgreSQL.
pub(super) async fn postgres_init(
    processed: Option<PathBuf>,
    raw: Option<PathBuf>,
    postgres: PostgresArgs,
    reference_year: Option<i32>,
    strict: bool,
    ledger_dir: PathBuf,
    settings: &Settings,
) -> Result<()> {
    let config = settings.postgres_of(&postgres)?;
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
    let summary = crate::postgres_init(&input, &config).await?;
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
    Ok(())
}

/// `source-to-lake`: exports PostgreSQL's tables to the lake's raw and conformed layers.
pub(super) async fn source_to_lake(
    tables: TableGroup,
    postgres: PostgresArgs,
    layers: LayerArgs,
    date: Option<chrono::NaiveDate>,
    reviews_since: Option<chrono::NaiveDate>,
    settings: &Settings,
) -> Result<()> {
    let config = settings.postgres_of(&postgres)?;
    let (raw, conformed) = settings.layers_of(&layers)?;
    let options = SourceToLakeOptions {
        group: tables,
        raw,
        conformed,
        date: date.unwrap_or_else(crate::process::today),
        reviews_since,
    };
    let summary = crate::source_to_lake(&config, &options).await?;
    out!("{summary}");
    outln!(
        "\nexported to {} (raw) and {} (conformed, record_created_dt={})",
        options.raw,
        options.conformed,
        options.date
    );
    Ok(())
}

/// `lake-to-mongodb`: loads the recommendations into MongoDB, and Redis when given.
pub(super) async fn lake_to_mongodb(
    source: Option<String>,
    mongo: MongoArgs,
    mode: ServeMode,
    redis: RedisArgs,
    conformed_lake: Option<String>,
    settings: &Settings,
) -> Result<()> {
    let (mongo, collection) = settings.mongo_of(&mongo)?;
    let mut load = crate::ServingLoad::new(
        settings.lake(&settings.results_object(source))?,
        mongo,
        collection,
    );
    load.mode = match mode {
        ServeMode::Refresh => steam_core::WriteMode::Replace,
        ServeMode::Insert => steam_core::WriteMode::Append,
    };
    load.redis = settings.redis_of(&redis)?;
    load.users = match settings.conformed_lake_given(conformed_lake) {
        Some(url) => Some(settings.lake(&url)?),
        None => {
            tracing::warn!(
                "no conformed lake given (--conformed-lake, CONFORMED_LAKE_URL or the \
                 profile's lake.conformed): users_mapping is not loaded, lookups by \
                 username will find no one"
            );
            None
        }
    };
    let summary = crate::lake_to_serving(&load).await?;
    out!("{summary}");
    outln!(
        "\nwrote {}.{} at {}{} from {}",
        load.mongo.database(),
        load.collection,
        load.mongo.describe(),
        super::and_redis(load.redis.as_ref()),
        load.results
    );
    Ok(())
}
