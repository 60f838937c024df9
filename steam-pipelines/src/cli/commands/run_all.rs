//! `run all`: the whole offline loop, one pipeline after another.

use steam_core::{Error, Result};

use crate::cli::args::{PostgresArgs, RunCommand, RunsFormat};
use crate::cli::Settings;

/// `run all`: generates (or takes) the raw files and carries them through every pipeline to
/// MongoDB.
pub(super) async fn run(what: RunCommand, settings: &Settings) -> Result<()> {
    let RunCommand::All {
        raw,
        reviews,
        seed,
        work,
        reference_year,
        postgres,
        layers,
        results_lake,
        mongo,
        redis,
        date,
        holdout,
        no_progress,
        full_refresh,
    } = what;
    let (raw_lake, conformed_lake) = settings.layers_of(&layers)?;
    let (mongo, collection) = settings.mongo_of(&mongo)?;
    let options = crate::RunAllOptions {
        input: match raw {
            Some(dir) => crate::RawInput::Dir(dir),
            None => crate::RawInput::Generate { reviews, seed },
        },
        work,
        reference_year: reference_year.unwrap_or_else(crate::process::current_year),
        postgres: settings.postgres_of(&postgres)?,
        raw_lake,
        conformed_lake,
        results: settings.lake(&settings.results_object_in(results_lake))?,
        mongo,
        collection,
        redis: settings.redis_of(&redis)?,
        date: date.unwrap_or_else(crate::process::today),
        holdout,
        progress: !no_progress,
        full_refresh,
    };
    let report = crate::run_all(&options).await?;
    out!("{report}");
    outln!(
        "\nserved {} users in {}.{} at {}{}",
        report.served(),
        options.mongo.database(),
        options.collection,
        options.mongo.describe(),
        super::and_redis(options.redis.as_ref())
    );
    Ok(())
}

/// `runs`: the run history, newest first.
pub(super) async fn runs(
    postgres: PostgresArgs,
    limit: usize,
    format: RunsFormat,
    settings: &Settings,
) -> Result<()> {
    let config = settings.postgres_of(&postgres)?;
    let log = crate::RunLog::open(&config).await?;
    let runs = log.list(limit).await?;
    match format {
        RunsFormat::Table => out!("{}", crate::runs::runs_table(&runs)),
        RunsFormat::Json => {
            let json = serde_json::to_string_pretty(&runs).map_err(|e| Error::Internal {
                what: "the run history as JSON".into(),
                message: e.to_string(),
            })?;
            outln!("{json}");
        }
    }
    Ok(())
}
