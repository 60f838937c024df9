//! `steam-recsys run all` killed with SIGKILL at each stage of a day's incremental run, then run
//! again: every review ends up once in PostgreSQL and in the lake, and every user is served.
//!
//! The stage a run is in is read from the run history (`pipeline_runs`), which records each stage
//! as it ends: the run is killed as soon as the history shows the stage before.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use steam_connectors::lake::{sql, Lake};
use steam_connectors::postgres::PostgresConfig;
use steam_pipelines::{generate, GenerateOptions};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts the services")
    })
}

struct Run {
    work: PathBuf,
    schema: String,
    database: String,
}

impl Run {
    fn command(&self, raw: &Path, date: &str) -> Command {
        let lake = self.work.join("lake");
        let mut command = Command::new(env!("CARGO_BIN_EXE_steam-recsys"));
        command
            .args(["run", "all", "--no-progress", "--date", date])
            .arg("--raw")
            .arg(raw)
            .arg("--work")
            .arg(self.work.join("work"))
            .args(["--schema", &self.schema])
            .args(["--database", &self.database])
            .arg("--raw-lake")
            .arg(lake.join("raw"))
            .arg("--conformed-lake")
            .arg(lake.join("conformed"))
            .arg("--results-lake")
            .arg(lake.join("results"))
            .env("POSTGRES_URL", env("STEAM_TEST_POSTGRES_URL"))
            .env("MONGODB_URI", env("STEAM_TEST_MONGODB_URI"))
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    fn config(&self) -> PostgresConfig {
        PostgresConfig::from_url(&env("STEAM_TEST_POSTGRES_URL"))
            .unwrap()
            .with_schema(self.schema.clone())
    }

    async fn count(&self, sql: &str) -> i64 {
        let client = self.config().connect().await.unwrap();
        let sql = sql.replace("SCHEMA", &format!("\"{}\"", self.schema));
        client.query_one(&sql, &[]).await.unwrap().get(0)
    }

    /// Whether the newest run is running and its history lists `stage` (any stage for `None`).
    async fn reached(&self, stage: Option<&str>) -> bool {
        let client = self.config().connect().await.unwrap();
        let sql = format!(
            "SELECT stages::text FROM \"{}\".pipeline_runs WHERE status = 'running' \
             ORDER BY started_at DESC LIMIT 1",
            self.schema
        );
        let Ok(Some(row)) = client.query_opt(&sql, &[]).await else {
            return false;
        };
        let stages: String = row.get(0);
        stage.is_none_or(|s| stages.contains(&format!("\"stage\": \"{s}\"")))
    }
}

/// `from`'s raw files with `new` reviews added first: the first `new` records of `from` of games
/// in the catalog, with another text (`tag`), a third of them by new users.
fn with_new_reviews(from: &Path, out: &Path, new: usize, tag: &str) {
    std::fs::create_dir_all(out).unwrap();
    for f in ["games_description.csv", "games_ranking.csv"] {
        std::fs::copy(from.join(f), out.join(f)).unwrap();
    }
    let mut reader = csv::Reader::from_path(from.join("steam_game_reviews.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let games: std::collections::HashSet<String> =
        csv::Reader::from_path(from.join("games_description.csv"))
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].trim().to_owned())
            .collect();
    let mut writer = csv::Writer::from_path(out.join("steam_game_reviews.csv")).unwrap();
    writer.write_record(&header).unwrap();
    let known = records.iter().filter(|r| games.contains(r[6].trim()));
    for (k, r) in known.take(new).enumerate() {
        let mut fields: Vec<String> = r.iter().map(str::to_owned).collect();
        fields[0] = format!("{} ({tag} #{k})", fields[0]);
        if k % 3 == 0 {
            fields[7] = format!("{tag}_user{k}");
        }
        writer.write_record(&fields).unwrap();
    }
    for r in &records {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_in_any_stage_is_completed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        work: dir.path().to_owned(),
        schema: format!("killed_runs_{}", std::process::id()),
        database: format!("killed_runs_{}", std::process::id()),
    };
    let mut raw = dir.path().join("raw0");
    generate(&GenerateOptions::new(&raw, 2_000)).unwrap();
    let out = run.command(&raw, "2026-11-01").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = run.count("SELECT count(*) FROM SCHEMA.games_reviews").await;

    // Each day 100 new reviews, and the run is killed after the history shows a stage.
    let points = [
        None,
        Some("process"),
        Some("postgres_init"),
        Some("source_to_lake"),
        Some("train"),
    ];
    for (i, point) in points.into_iter().enumerate() {
        let next = dir.path().join(format!("raw{}", i + 1));
        with_new_reviews(&raw, &next, 100, &format!("day{}", i + 2));
        raw = next;
        expected += 100;
        let date = format!("2026-11-{:02}", i + 2);
        let mut child = run.command(&raw, &date).spawn().unwrap();
        let started = Instant::now();
        while !run.reached(point).await {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before reaching {point:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(120), "{point:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed after {point:?}");
    }

    // The next run completes the work.
    let out = run.command(&raw, "2026-11-08").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every review once in PostgreSQL…
    let reviews = run.count("SELECT count(*) FROM SCHEMA.games_reviews").await;
    let distinct = run
        .count("SELECT count(DISTINCT review_id) FROM SCHEMA.games_reviews")
        .await;
    assert_eq!((reviews, distinct), (expected, expected));
    // …and in the lake, read whole, each in the partition of the day it arrived.
    let conformed = Lake::from_url(dir.path().join("lake/conformed").to_str().unwrap()).unwrap();
    let counted = sql(
        &conformed,
        "SELECT count(*), count(DISTINCT review_id) FROM games_reviews",
    )
    .await
    .unwrap();
    use arrow::array::AsArray;
    let counts = &counted[0];
    let n = counts
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    let d = counts
        .column(1)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!((n, d), (expected, expected));
    let arrived = run
        .count(
            "SELECT count(*) FROM (SELECT first_seen, count(*) FROM SCHEMA.games_reviews \
             GROUP BY 1) d",
        )
        .await;
    let partitions = conformed.child("games_reviews").partitions().await.unwrap();
    assert_eq!(partitions.len() as i64, arrived, "{partitions:?}");

    // Every user with recommendations is served.
    let results = Lake::from_url(
        dir.path()
            .join("lake/results/user_recommendations.parquet")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let users = steam_connectors::lake::LakeSource::objects(&results)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    let mongo = steam_connectors::mongodb::MongoConfig::from_url(&env("STEAM_TEST_MONGODB_URI"))
        .unwrap()
        .with_database(run.database.clone());
    let client = mongo.client().await.unwrap();
    let served = client
        .database(&run.database)
        .collection::<mongodb::bson::Document>("recsys")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(served as usize, users);
    // The history says what happened: five killed runs left running, then one that succeeded.
    let statuses = run
        .count("SELECT count(*) FROM SCHEMA.pipeline_runs WHERE status = 'running'")
        .await;
    assert_eq!(statuses, 5);
    client.database(&run.database).drop().await.unwrap();
}
