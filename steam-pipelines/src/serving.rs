//! The gcs_to_mongodb pipeline (recommendations from the lake into MongoDB) and
//! connection_testing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use steam_connectors::lake::{Lake, LakeSource};
use steam_connectors::mongodb::{MongoConfig, MongoSink, MongoSource};
use steam_connectors::postgres::PostgresConfig;
use steam_core::{
    batch_stream, Result, RunSummary, Sink, Source, StageSummary, TableRef, WriteMode,
};
use steam_transforms::{remove_probability, served_schema};

/// The reference's collection of served recommendations.
pub const DEFAULT_COLLECTION: &str = "recsys";

/// Loads recommendations (Spark's `recommendForAllUsers` output: `user_id`,
/// `recommendations` `list<struct<game_id, rating>>`) from Parquet at `source` (one object or a
/// prefix), drops the ratings (remove_probability), and refreshes `collection`: one document per
/// user, users missing from these results removed, and no moment where a kept user has none.
pub async fn lake_to_mongodb(
    source: &Lake,
    mongo: &MongoConfig,
    collection: &str,
) -> Result<RunSummary> {
    lake_to_mongodb_with(source, mongo, collection, WriteMode::Replace).await
}

/// [`lake_to_mongodb`] with another write mode: [`WriteMode::Append`] inserts (a rerun adds the
/// documents again), [`WriteMode::Upsert`] upserts on its keys without removing anything, and
/// [`WriteMode::Replace`] refreshes on `user_id`.
pub async fn lake_to_mongodb_with(
    source: &Lake,
    mongo: &MongoConfig,
    collection: &str,
    mode: WriteMode,
) -> Result<RunSummary> {
    let started = Instant::now();
    let input = LakeSource::objects(source).await?;
    let served = input
        .read()
        .await?
        .map(|batch| batch.and_then(|b| remove_probability(&b)));
    let sink = MongoSink::new(mongo.clone()).with_key(&["user_id"]);
    let written = sink
        .write(
            &TableRef::new(collection, served_schema()),
            mode,
            batch_stream(served),
        )
        .await?;
    Ok(RunSummary {
        tables: vec![written],
        stages: vec![StageSummary::since("lake_to_mongodb", started)],
        ..RunSummary::default()
    })
}

/// The outcome of checking one backend.
#[derive(Debug)]
pub struct Check {
    /// The backend: postgres, lake, mongodb.
    pub backend: &'static str,
    /// What was checked (server, URL), without secrets.
    pub target: String,
    /// The time taken, or the failure with its cause.
    pub result: std::result::Result<Duration, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(d) => write!(
                f,
                "{:<9} ok     {:>8.1} ms  {}",
                self.backend,
                d.as_secs_f64() * 1e3,
                self.target
            ),
            Err(e) => write!(f, "{:<9} FAILED {}: {e}", self.backend, self.target),
        }
    }
}

async fn timed<F: std::future::Future<Output = Result<()>>>(
    check: F,
) -> std::result::Result<Duration, String> {
    let started = Instant::now();
    match check.await {
        Ok(()) => Ok(started.elapsed()),
        Err(e) => Err(steam_core::error_chain(&e)),
    }
}

/// connection_testing: `SELECT 1` on PostgreSQL; list, then write, read back and delete a probe
/// object on the lake; ping MongoDB and read up to 5 documents of `collection`. Checks only what is
/// given.
pub async fn connection_test(
    postgres: Option<&PostgresConfig>,
    lake: Option<&Lake>,
    mongo: Option<(&MongoConfig, &str)>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(pg) = postgres {
        let result = timed(async {
            let client = pg.connect().await?;
            client.query_one("SELECT 1", &[]).await.map_err(|e| {
                steam_core::Error::backend_msg("postgres", pg.describe(), e.to_string())
            })?;
            Ok(())
        })
        .await;
        checks.push(Check {
            backend: "postgres",
            target: pg.describe(),
            result,
        });
    }
    if let Some(lake) = lake {
        let result = timed(async {
            use object_store::ObjectStoreExt;
            let store = lake.store();
            let fail = |e: object_store::Error| {
                steam_core::Error::backend_msg("lake", lake.url(), e.to_string())
            };
            let _ = store
                .list_with_delimiter(Some(lake.prefix()))
                .await
                .map_err(fail)?;
            let probe = lake.path(&[&format!(".steam-recsys-probe-{}", std::process::id())]);
            store.put(&probe, "probe".into()).await.map_err(fail)?;
            let back = store
                .get(&probe)
                .await
                .map_err(fail)?
                .bytes()
                .await
                .map_err(fail)?;
            store.delete(&probe).await.map_err(fail)?;
            if back.as_ref() != b"probe" {
                return Err(steam_core::Error::backend_msg(
                    "lake",
                    lake.url(),
                    "probe read back differs",
                ));
            }
            Ok(())
        })
        .await;
        checks.push(Check {
            backend: "lake",
            target: lake.url().to_owned(),
            result,
        });
    }
    if let Some((mongo, collection)) = mongo {
        let result = timed(async {
            mongo.ping().await?;
            let docs = MongoSource::new(mongo.clone(), collection, served_schema())
                .with_limit(5)
                .read()
                .await?;
            let _: Vec<_> = docs.collect().await;
            Ok(())
        })
        .await;
        checks.push(Check {
            backend: "mongodb",
            target: mongo.describe(),
            result,
        });
    }
    checks
}
