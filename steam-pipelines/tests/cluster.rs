//! The lake's SQL on a Ballista cluster (a scheduler and two executors started by
//! `scripts/cluster`) over an S3 lake (moto): the same results as in this process, through the
//! library and the CLI; an executor killed mid-query; a cluster that is not there.
#![cfg(feature = "cluster")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use futures::TryStreamExt;
use steam_connectors::files::ParquetFileSource;
use steam_connectors::lake::{Lake, LakeParquetSink};
use steam_core::{batch_stream, Sink, Source, Table, TableRef, WriteMode};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The two runs in the lake: the second has every table, the first only a part of the reviews.
const FIRST: &str = "2026-11-29";
const SECOND: &str = "2026-11-30";

/// Generates and processes `reviews` reviews, and writes games_reviews, games_description and
/// users_mapping to `lake` as source-to-lake does, for two runs.
async fn generated_lake(dir: &Path, lake: &Lake, reviews: u64) {
    let (raw, processed) = (dir.join("raw"), dir.join("processed"));
    steam_pipelines::generate(&steam_pipelines::GenerateOptions::new(&raw, reviews)).unwrap();
    steam_pipelines::process(&steam_pipelines::ProcessOptions::new(&raw, &processed))
        .await
        .unwrap();
    for table in [
        Table::GamesReviews,
        Table::GamesDescription,
        Table::UsersMapping,
    ] {
        let file = processed.join(format!("{}.parquet", table.name()));
        let batches = ParquetFileSource::open(&file).unwrap().read_all().unwrap();
        // Reviews arrive on two days (the first batch, then the rest); the other tables are one
        // partition, the second run's.
        let runs: &[(&str, std::ops::Range<usize>)] = if table == Table::GamesReviews {
            &[(FIRST, 0..1), (SECOND, 1..batches.len())]
        } else {
            &[(SECOND, 0..batches.len())]
        };
        for (date, range) in runs {
            let date = day(date);
            let conformed: Vec<_> = batches[range.clone()]
                .iter()
                .map(|b| steam_transforms::conform(table, &arrived(table, b, date), date))
                .collect();
            let schema = steam_transforms::conformed_schema(table);
            LakeParquetSink::new(lake.clone(), date)
                .write(
                    &TableRef::new(table.name(), schema),
                    WriteMode::Replace,
                    batch_stream(futures::stream::iter(conformed)),
                )
                .await
                .unwrap();
        }
    }
}

/// `b` with its reviews' `first_seen` set to `date` (other tables as they are).
fn arrived(
    table: Table,
    b: &arrow::array::RecordBatch,
    date: NaiveDate,
) -> arrow::array::RecordBatch {
    if table != Table::GamesReviews {
        return b.clone();
    }
    let i = b.schema().index_of("first_seen").unwrap();
    let mut columns = b.columns().to_vec();
    columns[i] = std::sync::Arc::new(arrow::array::Date32Array::from(vec![
        arrow::datatypes::Date32Type::from_naive_date(date);
        b.num_rows()
    ]));
    arrow::array::RecordBatch::try_new(b.schema(), columns).unwrap()
}

/// Joins across the three tables, group-bys, a window function and filters on
/// record_created_dt, each ordered on a unique key so that both runs return rows in one order.
fn queries() -> Vec<String> {
    vec![
        // Per game of the second run: reviews, recommendations, hours, the game's name.
        format!(
            "SELECT r.game_id, d.game_name, count(*) AS reviews,
                    sum(CASE WHEN r.recommendation THEN 1 ELSE 0 END) AS recommended,
                    min(r.hours_played) AS least_hours, max(r.hours_played) AS most_hours,
                    min(r.date) AS first_review
             FROM games_reviews r JOIN games_description d
               ON r.game_id = d.game_id AND d.record_created_dt = r.record_created_dt
             WHERE r.record_created_dt = DATE '{SECOND}'
             GROUP BY r.game_id, d.game_name
             ORDER BY r.game_id"
        ),
        // Each user's three most played games, by name, with a window function (rank: ties
        // share one, so the result is the same whatever order the rows come in).
        format!(
            "SELECT user_id, username, game_name, hours_played, rank FROM (
               SELECT r.user_id, u.username, d.game_name, r.hours_played,
                      rank() OVER (PARTITION BY r.user_id
                                   ORDER BY r.hours_played DESC NULLS LAST, r.game_id) AS rank
               FROM games_reviews r
               JOIN users_mapping u ON r.user_id = u.user_id
               JOIN games_description d ON r.game_id = d.game_id
               WHERE r.record_created_dt = DATE '{SECOND}'
                 AND u.record_created_dt = DATE '{SECOND}'
                 AND d.record_created_dt = DATE '{SECOND}'
             ) t WHERE rank <= 3
             ORDER BY user_id, rank, game_name, hours_played"
        ),
        // Rows per run: the partition column read from the paths.
        "SELECT record_created_dt, count(*) AS reviews, count(DISTINCT user_id) AS users
         FROM games_reviews GROUP BY record_created_dt ORDER BY record_created_dt"
            .to_owned(),
        // Reviews of the first run only, by a range on the partition column.
        format!(
            "SELECT game_id, count(*) AS reviews FROM games_reviews
             WHERE record_created_dt < DATE '{SECOND}'
             GROUP BY game_id ORDER BY game_id"
        ),
    ]
}

async fn run(lake: &Lake, query: &str, cluster: Option<&str>) -> steam_core::Result<RecordBatch> {
    let source = steam_pipelines::lake_sql(lake, query, cluster).await?;
    let batches: Vec<RecordBatch> = source.read().await?.try_collect().await?;
    Ok(common::concat(&batches))
}

#[tokio::test]
async fn queries_on_the_cluster_return_what_they_return_here() {
    let cluster = common::TestCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = common::s3_lake("cluster-sql");
    generated_lake(dir.path(), &lake, 20_000).await;
    for query in queries() {
        let here = run(&lake, &query, None).await.unwrap();
        let there = run(&lake, &query, Some(&cluster.url)).await.unwrap();
        assert!(here.num_rows() > 0, "{query}");
        common::assert_same(&here, &there, 0.0, &query);
    }
    // The partition filter: the first run has some of the reviews, the second all.
    let runs = run(&lake, &queries()[2], Some(&cluster.url)).await.unwrap();
    assert_eq!(runs.num_rows(), 2);
    let counts = runs
        .column_by_name("reviews")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert!(counts.value(0) < counts.value(1), "{counts:?}");

    // The CLI: the same CSV either way, up to --limit rows.
    let cli = |cluster: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steam-recsys"));
        command
            .args(["sql", &queries()[0], "--format", "csv", "--limit", "25"])
            .args(["--lake", lake.url()])
            .env_remove("STEAM_CLUSTER_URL");
        if let Some(c) = cluster {
            command.args(["--cluster", c]);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let here = cli(None);
    assert_eq!(here.lines().count(), 26, "{here}");
    assert_eq!(cli(Some(&cluster.url)), here);
}

#[tokio::test]
async fn an_executor_killed_mid_query_leaves_a_result_or_a_clear_error() {
    let cluster = common::TestCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let lake = common::s3_lake("cluster-kill");
    generated_lake(dir.path(), &lake, 50_000).await;
    // A self-join large enough to run for a while on two executors.
    let query = format!(
        "SELECT a.game_id, count(*) AS pairs, sum(a.user_id - b.user_id) AS spread
         FROM games_reviews a JOIN games_reviews b
           ON a.game_id = b.game_id AND a.user_id < b.user_id
         WHERE a.record_created_dt = DATE '{SECOND}' AND b.record_created_dt = DATE '{SECOND}'
         GROUP BY a.game_id ORDER BY a.game_id"
    );
    let t = Instant::now();
    let expected = run(&lake, &query, None).await.unwrap();
    eprintln!("here in {:?}", t.elapsed());

    let started = Instant::now();
    let running = {
        let (lake, query, url) = (lake.clone(), query.clone(), cluster.url.clone());
        tokio::spawn(async move { run(&lake, &query, Some(&url)).await })
    };
    // The first executor to write shuffle output (tasks of the job ran on it) is killed.
    let has_output = |n: usize| {
        std::fs::read_dir(cluster.state().join(format!("executor-{n}")))
            .is_ok_and(|d| d.count() > 0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        if let Some(n) = [1, 2].into_iter().find(|n| has_output(*n)) {
            break n;
        }
        assert!(Instant::now() < deadline, "no executor was given a task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!running.is_finished(), "the query ended before the kill");
    let pid = cluster.executor_pid(victim);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Never a hang: the lost executor is noticed within the scheduler's 6 s and its work run
    // again on the other one, or the query fails.
    let outcome = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .unwrap_or_else(|_| panic!("the query hung after an executor died"))
        .unwrap();
    match outcome {
        Ok(result) => {
            eprintln!("completed on the remaining executor");
            common::assert_same(&expected, &result, 0.0, "after the kill")
        }
        Err(e) => {
            let shown = e.to_string();
            eprintln!("failed: {shown}");
            assert!(shown.contains(&cluster.url), "{shown}");
        }
    }
    eprintln!("finished {:?} after the query began", started.elapsed());
    // The cluster still answers on the remaining executor.
    let again = run(&lake, &query, Some(&cluster.url)).await.unwrap();
    common::assert_same(&expected, &again, 0.0, "on the remaining executor");
}

#[tokio::test]
async fn a_cluster_that_is_not_there_is_a_clear_error_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("df://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::from_env(dir.path().to_str().unwrap()).unwrap();
    let started = Instant::now();
    let e = run(&lake, "SELECT 1", Some(&url)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15));
    let shown = e.to_string();
    assert!(
        shown.contains(&url) && shown.contains("cannot be reached"),
        "{shown}"
    );
    assert_eq!(e.kind(), steam_core::ErrorKind::Transient, "{shown}");

    // A host that does not answer at all: the connect timeout bounds the wait.
    let silent = steam_connectors::cluster::Cluster::from_url("df://10.255.255.1:50050")
        .unwrap()
        .with_connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let e = silent.sql(&lake, "SELECT 1").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{e}");
    assert!(e.to_string().contains("df://10.255.255.1:50050"), "{e}");

    // A memory lake cannot be read elsewhere; a URL that is not df:// is refused.
    let memory = Lake::from_env("memory://lake/conformed").unwrap();
    let e = run(&memory, "SELECT 1", Some(&url)).await.unwrap_err();
    assert!(e.to_string().contains("memory"), "{e}");
    let e = run(&lake, "SELECT 1", Some("http://127.0.0.1:50050"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("df://"), "{e}");
}
