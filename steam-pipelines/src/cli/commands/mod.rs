//! Each command: its settings resolved, its pipeline run, its report printed. [`run_with`] hands
//! each command's flags to its function, grouped by job: `data.rs` (download, generate, process),
//! `load.rs` (postgres-init, source-to-lake, lake-to-mongodb), `model.rs` (train, evaluate, tune),
//! `run_all.rs` (run all), `inspect.rs` (stats, sql, connection-test), `serve.rs` and, with the
//! `cluster` feature, `cluster.rs`.

use steam_connectors::redis::RedisConfig;
use steam_core::Result;

use super::args::Command;
use super::settings::Settings;

#[cfg(feature = "cluster")]
mod cluster;
mod data;
mod inspect;
mod load;
mod model;
mod run_all;
mod serve;

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
        } => data::download(out, endpoint, repo, revision).await,
        Command::Generate {
            out,
            reviews,
            games,
            seed,
            broken_rate,
            day,
            daily_new,
            only_new,
        } => data::generate(crate::GenerateOptions {
            out,
            reviews,
            games,
            seed,
            broken_rate,
            day,
            daily_new,
            only_new,
        }),
        Command::Process {
            raw,
            out,
            reference_year,
            strict,
            date,
        } => data::process(raw, out, reference_year, strict, date).await,
        Command::PostgresInit {
            processed,
            raw,
            postgres,
            reference_year,
            strict,
            ledger_dir,
        } => {
            load::postgres_init(
                processed,
                raw,
                postgres,
                reference_year,
                strict,
                ledger_dir,
                settings,
            )
            .await
        }
        Command::SourceToLake {
            tables,
            postgres,
            layers,
            date,
            reviews_since,
        } => load::source_to_lake(tables, postgres, layers, date, reviews_since, settings).await,
        Command::Train {
            reviews,
            out,
            date,
            model,
            split,
            include_seen,
            top,
        } => {
            model::train(
                reviews,
                out,
                date,
                model,
                split,
                include_seen,
                top,
                settings,
            )
            .await
        }
        Command::Evaluate {
            reviews,
            date,
            split,
            k,
            model,
            tune,
            lists,
            save_split,
        } => {
            model::evaluate(
                reviews, date, split, k, model, tune, lists, save_split, settings,
            )
            .await
        }
        Command::Tune {
            reviews,
            date,
            split,
            holdout,
            k,
            iterations,
            seed,
        } => model::tune(reviews, date, split, holdout, k, iterations, seed, settings).await,
        Command::Run { what } => run_all::run(what, settings).await,
        Command::Runs {
            postgres,
            limit,
            format,
        } => run_all::runs(postgres, limit, format, settings).await,
        Command::Stats {
            lake,
            date,
            cluster,
        } => inspect::stats(lake, date, cluster, settings).await,
        Command::Sql {
            query,
            lake,
            format,
            limit,
            cluster,
        } => inspect::sql(query, lake, format, limit, cluster, settings).await,
        #[cfg(feature = "cluster")]
        Command::Cluster { role } => cluster::run(role).await,
        Command::LakeToMongodb {
            source,
            mongo,
            mode,
            redis,
            conformed_lake,
        } => load::lake_to_mongodb(source, mongo, mode, redis, conformed_lake, settings).await,
        Command::Serve {
            bind,
            redis,
            mongo,
            timeout,
            redis_timeout,
            concurrency,
        } => {
            serve::serve(
                bind,
                redis,
                mongo,
                timeout,
                redis_timeout,
                concurrency,
                settings,
            )
            .await
        }
        Command::ConnectionTest {
            postgres_url,
            lake,
            mongodb_uri,
            collection,
            redis,
        } => {
            inspect::connection_test(postgres_url, lake, mongodb_uri, collection, redis, settings)
                .await
        }
    }
}

/// " and Redis at …" when there is a serving copy in Redis, else nothing: the end of the report
/// of the commands that fill MongoDB.
fn and_redis(redis: Option<&RedisConfig>) -> String {
    redis
        .map(|r| format!(" and Redis at {}", r.describe()))
        .unwrap_or_default()
}
