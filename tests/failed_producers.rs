//! Producers that fail midway — an error, a panic, a failing range of a partitioned PostgreSQL
//! read — never make a sink publish a truncated output: every sink keeps the old data and says why.

mod common;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use steam_recsys::connectors::files::{ParquetDirSink, ParquetFileSource};
use steam_recsys::connectors::lake::{
    Lake, LakeCsvSink, LakeParquetSink, LakeSource, ParquetObjectSink,
};
use steam_recsys::connectors::postgres::PostgresSource;
use steam_recsys::connectors::spawn_blocking_stream;
use steam_recsys::core::{batch_stream, BatchStream, Error, Sink, Source, TableRef, WriteMode};

/// Ten batches of 100 rows labelled `label`.
fn rows(label: &str) -> Vec<RecordBatch> {
    (0..10)
        .map(|i| common::id_label(i * 100, 100, |n| format!("{label} {n}")))
        .collect()
}

fn table() -> TableRef {
    TableRef::new("t", rows("x")[0].schema())
}

#[derive(Clone, Copy, Debug)]
enum Failure {
    Error,
    Panic,
}

/// A producer on a blocking thread that sends five batches, then fails.
fn failing(how: Failure) -> BatchStream {
    spawn_blocking_stream("the test's producer", move |tx| {
        for batch in rows("new").into_iter().take(5) {
            assert!(tx.blocking_send(Ok(batch)));
        }
        match how {
            Failure::Error => Err(Error::backend_msg("test", "t", "the disk went away")),
            Failure::Panic => panic!("a bug in the producer"),
        }
    })
}

fn all(list: Vec<RecordBatch>) -> BatchStream {
    batch_stream(futures::stream::iter(list.into_iter().map(Ok)))
}

fn labels(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| common::strings(b, "label"))
        .map(Option::unwrap)
        .collect()
}

/// A Parquet directory whose table t holds the old rows.
async fn old_parquet(dir: &std::path::Path) -> ParquetDirSink {
    let sink = ParquetDirSink::new(dir);
    sink.write(&table(), WriteMode::Replace, all(rows("old")))
        .await
        .unwrap();
    sink
}

/// The labels of table t's Parquet file.
fn file_labels(sink: &ParquetDirSink) -> Vec<String> {
    labels(
        &ParquetFileSource::open(sink.path("t"))
            .unwrap()
            .read_all()
            .unwrap(),
    )
}

fn expect_cause(err: Error, how: Failure) {
    let text = err.to_string();
    match how {
        Failure::Error => assert!(text.contains("the disk went away"), "{text}"),
        Failure::Panic => assert!(
            text.contains("panicked") && text.contains("a bug in the producer"),
            "{text}"
        ),
    }
}

#[tokio::test]
async fn a_parquet_file_keeps_its_old_rows() {
    for how in [Failure::Error, Failure::Panic] {
        let dir = tempfile::tempdir().unwrap();
        let sink = old_parquet(dir.path()).await;
        let err = sink
            .write(&table(), WriteMode::Replace, failing(how))
            .await
            .unwrap_err();
        expect_cause(err, how);
        assert_eq!(file_labels(&sink), labels(&rows("old")), "{how:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

async fn lake_sinks_keep_their_old_objects(lake: Lake) {
    let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let results = lake.child("results.parquet");
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(LakeParquetSink::new(lake.clone(), day)),
        Box::new(LakeCsvSink::new(lake.clone())),
        Box::new(ParquetObjectSink::new(results.clone())),
    ];
    for sink in &sinks {
        sink.write(&table(), WriteMode::Replace, all(rows("old")))
            .await
            .unwrap();
    }
    let before = common::objects(&lake).await;
    let mut contents = Vec::new();
    for name in &before {
        let path = object_store::path::Path::from(name.as_str());
        contents.push(
            lake.store()
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        );
    }
    for how in [Failure::Error, Failure::Panic] {
        for sink in &sinks {
            let err = sink
                .write(&table(), WriteMode::Replace, failing(how))
                .await
                .unwrap_err();
            expect_cause(err, how);
        }
        assert_eq!(common::objects(&lake).await, before, "{how:?}");
        for (name, old) in before.iter().zip(&contents) {
            let path = object_store::path::Path::from(name.as_str());
            let now = lake
                .store()
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(&now, old, "{name}");
        }
    }
    let partition = LakeSource::partition(&lake, "t", day).await.unwrap();
    assert_eq!(
        labels(&partition.read_all().await.unwrap()),
        labels(&rows("old"))
    );
}

#[tokio::test]
async fn lake_objects_keep_their_old_content_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    lake_sinks_keep_their_old_objects(Lake::from_env(dir.path().to_str().unwrap()).unwrap()).await;
    // Nothing hidden is left behind either.
    let mut stack = vec![dir.path().to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.') && !name.contains('#'), "{name}");
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

#[tokio::test]
async fn lake_objects_keep_their_old_content_on_s3() {
    let bucket = std::env::var("STEAM_TEST_S3_BUCKET").unwrap_or_else(|_| {
        panic!("STEAM_TEST_S3_BUCKET is not set: run the tests with scripts/test")
    });
    let url = format!("s3://{bucket}/{}", common::unique_schema("failed"));
    lake_sinks_keep_their_old_objects(Lake::from_env(&url).unwrap()).await;
}

#[tokio::test]
async fn a_partitioned_read_with_a_failing_range_ends_with_its_error() {
    let config = common::postgres("failing_range");
    let client = config.connect().await.unwrap();
    // Rows are read in four ranges of id; the third fails on its 1,500th row, mid-COPY (the
    // function is IMMUTABLE so that computing the ranges, which reads only id, skips it).
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\";
             CREATE TABLE \"{0}\".data AS
                 SELECT g::int AS id, 'new ' || g AS label FROM generate_series(0, 7999) g;
             CREATE FUNCTION \"{0}\".check_row(i int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
             BEGIN IF i = 5500 THEN RAISE EXCEPTION 'unreadable row %', i; END IF;
             RETURN 'new ' || i; END $$;
             CREATE VIEW \"{0}\".t AS SELECT id, \"{0}\".check_row(id) AS label FROM \"{0}\".data;",
            config.schema()
        ))
        .await
        .unwrap();
    let source = PostgresSource::table(config.clone(), "t")
        .await
        .unwrap()
        .with_schema(table().schema)
        .unwrap()
        .partitioned("id", 4)
        .unwrap()
        .with_batch_size(200);
    let dir = tempfile::tempdir().unwrap();
    let sink = old_parquet(dir.path()).await;
    let err = sink
        .write(&table(), WriteMode::Replace, source.read().await.unwrap())
        .await
        .unwrap_err();
    let err = steam_recsys::core::error_chain(&err);
    assert!(err.contains("unreadable row 5500"), "{err}");
    assert_eq!(file_labels(&sink), labels(&rows("old")));
}
