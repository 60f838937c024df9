//! The composition example, run as a user would run it, against the PostgreSQL that
//! scripts/services starts (STEAM_TEST_POSTGRES_URL): reviews written with the crate's
//! PostgresSink, read back through the example's query, transform and Parquet sink.

use std::fs::File;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float32Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::Float32Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSink};
use steam_recsys::core::{batch_stream, Sink, Table, TableRef, WriteMode};

fn postgres_url() -> String {
    std::env::var("STEAM_TEST_POSTGRES_URL").expect(
        "STEAM_TEST_POSTGRES_URL: start the servers with scripts/services (scripts/test does)",
    )
}

/// Five reviews: three recommend their game (one with unknown hours), one does not, one does not say.
async fn load_reviews(schema: &str) {
    let config = PostgresConfig::from_url(&postgres_url())
        .unwrap()
        .with_schema(schema);
    let table = Table::GamesReviews;
    let n = 5;
    let batch = RecordBatch::try_new(
        table.schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("good"); n])),
            Arc::new(Float32Array::from(vec![
                Some(10.0),
                None,
                Some(0.0),
                Some(3.0),
                Some(1.0),
            ])),
            Arc::new(Int64Array::from(vec![Some(0); n])),
            Arc::new(Int64Array::from(vec![Some(0); n])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                None,
            ])),
            Arc::new(Date32Array::from(vec![Some(19_000); n])),
            Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(Int32Array::from(vec![10, 20, 30, 40, 50])),
            // review_id, first_seen
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(Date32Array::from(vec![20_400; n])),
        ],
    )
    .unwrap();
    let stream = batch_stream(futures::stream::iter([Ok(batch)]));
    PostgresSink::new(config)
        .write(&TableRef::from(table), WriteMode::Replace, stream)
        .await
        .unwrap();
}

fn run(out: &std::path::Path, schema: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_postgres_to_parquet"))
        .arg(postgres_url())
        .arg(out)
        .arg(schema)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_positive_reviews_reach_the_parquet_file_with_their_weights() {
    let schema = format!("downstream_{}", std::process::id());
    load_reviews(&schema).await;
    let dir = tempfile_dir();
    let out = dir.join("positive.parquet");
    let done = run(&out, &schema);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let mut got: Vec<(i32, f32)> = Vec::new();
    for b in &batches {
        let users = b
            .column_by_name("user_id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int32Type>();
        let weights = b
            .column_by_name("weight")
            .unwrap()
            .as_primitive::<Float32Type>();
        assert_eq!(weights.null_count(), 0);
        for i in 0..b.num_rows() {
            got.push((users.value(i), weights.value(i)));
        }
    }
    got.sort_by_key(|g| g.0);
    let expected = [(1, 1.0 + 11f32.ln()), (2, 1.0), (3, 1.0)];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((u, w), (eu, ew)) in got.iter().zip(expected) {
        assert_eq!(*u, eu);
        assert!((w - ew).abs() < 1e-5, "user {u}: weight {w}, expected {ew}");
    }

    // A run that fails (no such schema) says where, and leaves the file it would replace intact.
    let before = std::fs::read(&out).unwrap();
    let failed = run(&out, &format!("{schema}_missing"));
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("postgres") && stderr.contains("_missing"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "positive.parquet")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("steam-recsys-downstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
