//! `steam-recsys source-to-lake` interrupted mid-write, on a local-directory lake, read afterwards
//! by an outside reader (pyarrow, from the test services' venv) as a user's tools would read it:
//! a writer killed with SIGKILL, and a source that fails midway.
//!
//! PostgreSQL is steered into both cases for real: games_reviews is swapped for a view whose rows
//! stall (or raise an error) after the first few thousand, so the export is certain to be mid-write
//! when it is killed or fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use steam_connectors::postgres::PostgresConfig;
use steam_pipelines::{
    generate, postgres_init, process, GenerateOptions, InitInput, ProcessOptions,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts the services")
    })
}

/// A schema of the test server holding the eleven tables made from 20,000 generated reviews.
async fn loaded_schema(work: &Path, name: &str) -> PostgresConfig {
    let raw = work.join("raw");
    generate(&GenerateOptions::new(&raw, 20_000)).unwrap();
    let mut options = ProcessOptions::new(&raw, work.join("processed"));
    options.reference_year = 2024;
    options.run_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    process(&options).await.unwrap();
    let schema = format!("{name}_{}", std::process::id());
    let config = PostgresConfig::from_url(&env("STEAM_TEST_POSTGRES_URL"))
        .unwrap()
        .with_schema(schema);
    postgres_init(&InitInput::Processed(work.join("processed")), &config)
        .await
        .unwrap();
    config
}

async fn execute(config: &PostgresConfig, sql: &str) {
    let client = config.connect().await.unwrap();
    client.batch_execute(sql).await.unwrap();
}

/// Swaps games_reviews for a view of the same rows that runs `plpgsql` once a row after the first
/// `after` (the row's number is `i`) of the export's read of the rows (not of its look-up of the
/// days the reviews arrived on).
async fn steer_reviews(config: &PostgresConfig, after: u32, plpgsql: &str) {
    let s = format!("\"{}\"", config.schema());
    execute(
        config,
        &format!(
            "ALTER TABLE {s}.games_reviews RENAME TO games_reviews_data;
             CREATE SEQUENCE {s}.row_seq;
             CREATE FUNCTION {s}.steer(i bigint) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN IF i > {after} THEN {plpgsql} END IF; RETURN true; END $$;
             CREATE VIEW {s}.games_reviews AS
                 SELECT * FROM {s}.games_reviews_data
                 WHERE current_query() LIKE '%DISTINCT first_seen%'
                    OR {s}.steer(nextval('{s}.row_seq'));"
        ),
    )
    .await;
}

/// Puts games_reviews back, ending any export still stalled on the view.
async fn restore_reviews(config: &PostgresConfig) {
    let s = format!("\"{}\"", config.schema());
    execute(
        config,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND query LIKE '%{}%games_reviews%';
             DROP VIEW {s}.games_reviews;
             DROP FUNCTION {s}.steer(bigint);
             DROP SEQUENCE {s}.row_seq;
             ALTER TABLE {s}.games_reviews_data RENAME TO games_reviews;",
            config.schema()
        ),
    )
    .await;
}

struct Lakes {
    /// The raw layer.
    root: PathBuf,
    /// The raw layer's CSV of the reviews that arrived on 2026-11-29.
    raw: PathBuf,
    conformed: PathBuf,
}

impl Lakes {
    fn new(work: &Path) -> Self {
        let root = work.join("lake/raw_games_data");
        Lakes {
            raw: root.join("games_reviews/record_created_dt=2026-11-29"),
            root,
            conformed: work.join("lake/conformed_games_data"),
        }
    }

    fn partition(&self) -> PathBuf {
        self.conformed
            .join("games_reviews/record_created_dt=2026-11-29")
    }

    /// The names in the raw layer's directory and in the partition's: (visible, hidden), of files
    /// and of hidden directories (staging areas).
    fn names(&self) -> (Vec<String>, Vec<String>) {
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        for dir in [self.raw.clone(), self.partition()] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && !name.starts_with('.') {
                    continue;
                }
                if name.starts_with('.') || name.starts_with('_') {
                    hidden.push(name);
                } else {
                    visible.push(name);
                }
            }
        }
        visible.sort();
        hidden.sort();
        (visible, hidden)
    }

    /// Whether both uploads are under way: a staging area (`.staging-ID/`) with a part of the
    /// object in it, in the raw layer's directory and in the partition's.
    fn both_staged(&self) -> bool {
        let staged = |dir: PathBuf| {
            std::fs::read_dir(dir).unwrap().any(|entry| {
                let entry = entry.unwrap();
                entry.file_name().to_string_lossy().starts_with(".staging-")
                    && entry.path().is_dir()
                    && std::fs::read_dir(entry.path()).is_ok_and(|mut d| d.next().is_some())
            })
        };
        staged(self.raw.clone()) && staged(self.partition())
    }

    /// The rows pyarrow's dataset reader finds in the raw layer's reviews (every CSV under it) and
    /// in the conformed table (Hive-partitioned Parquet), or its error.
    fn read_by_pyarrow(&self) -> Result<(u64, u64), String> {
        let script = r#"
import sys
import pyarrow.csv as csv
import pyarrow.dataset as ds
raw = ds.dataset(sys.argv[1], format=ds.CsvFileFormat(
    parse_options=csv.ParseOptions(newlines_in_values=True)))
conformed = ds.dataset(sys.argv[2], format="parquet", partitioning="hive")
print(raw.count_rows(), conformed.count_rows())
"#;
        let out = Command::new(env("STEAM_TEST_PYTHON"))
            .arg("-c")
            .arg(script)
            .arg(self.root.join("games_reviews"))
            .arg(self.conformed.join("games_reviews"))
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let counts: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        Ok((counts[0], counts[1]))
    }
}

/// `steam-recsys source-to-lake --tables reviews` of `config`'s schema into `lakes`.
fn export(config: &PostgresConfig, lakes: &Lakes) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steam-recsys"));
    command
        .args([
            "source-to-lake",
            "--tables",
            "reviews",
            "--date",
            "2026-11-29",
        ])
        .args(["--schema", config.schema()])
        .arg("--raw-lake")
        .arg(&lakes.root)
        .arg("--conformed-lake")
        .arg(&lakes.conformed)
        .env("POSTGRES_URL", env("STEAM_TEST_POSTGRES_URL"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run_ok(mut command: Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_export_leaves_nothing_readers_trip_on_and_the_next_run_cleans_up() {
    let work = tempfile::tempdir().unwrap();
    let config = loaded_schema(work.path(), "killed").await;
    let lakes = Lakes::new(work.path());
    run_ok(export(&config, &lakes));
    let before = lakes.read_by_pyarrow().unwrap();
    assert!(before.0 > 10_000 && before.0 == before.1, "{before:?}");

    // Rows stall after the first 5,000: the export is mid-write until it is killed.
    steer_reviews(&config, 5_000, "PERFORM pg_sleep(600);").await;
    let mut child = export(&config, &lakes).spawn().unwrap();
    let started = Instant::now();
    loop {
        if lakes.both_staged() {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no staged upload appeared: {:?}",
            lakes.names()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What the killed writer left is hidden from table readers; the old data reads as before.
    let (visible, hidden) = lakes.names();
    assert_eq!(visible, ["part-00000.csv", "part-00000.parquet"]);
    assert!(!hidden.is_empty());
    assert_eq!(lakes.read_by_pyarrow(), Ok(before));

    // The next run replaces the data and removes the leftovers.
    restore_reviews(&config).await;
    run_ok(export(&config, &lakes));
    let (visible, hidden) = lakes.names();
    assert_eq!(visible, ["part-00000.csv", "part-00000.parquet"]);
    assert!(hidden.is_empty(), "{hidden:?}");
    assert_eq!(lakes.read_by_pyarrow(), Ok(before));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_failing_midway_publishes_neither_layer() {
    let work = tempfile::tempdir().unwrap();
    let config = loaded_schema(work.path(), "failing").await;
    let lakes = Lakes::new(work.path());
    run_ok(export(&config, &lakes));
    let before = lakes.read_by_pyarrow().unwrap();
    let raw_before = std::fs::read(lakes.raw.join("part-00000.csv")).unwrap();

    // Rows fail after the first 12,000: batches have reached both layers by then.
    steer_reviews(
        &config,
        12_000,
        "RAISE EXCEPTION 'storage failure at row %', i;",
    )
    .await;
    let out = export(&config, &lakes).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("storage failure at row 12001") && err.contains("games_reviews"),
        "{err}"
    );
    let (visible, hidden) = lakes.names();
    assert_eq!(visible, ["part-00000.csv", "part-00000.parquet"]);
    assert!(
        hidden.is_empty(),
        "a failed write cleans up after itself: {hidden:?}"
    );
    assert_eq!(lakes.read_by_pyarrow(), Ok(before));
    assert_eq!(
        std::fs::read(lakes.raw.join("part-00000.csv")).unwrap(),
        raw_before
    );
    restore_reviews(&config).await;
}
