//! The MongoDB connector, lake_to_mongodb and connection_test against a MongoDB-protocol server
//! (nx-27017, started by scripts/test), a local lake, and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::Array;
use arrow::array::{
    BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema, TimeUnit};
use futures::stream;
use mongodb::bson::{doc, Document};
use steam_recsys::connectors::lake::Lake;
use steam_recsys::connectors::mongodb::{MongoConfig, MongoSink, MongoSource};
use steam_recsys::connectors::postgres::PostgresConfig;
use steam_recsys::core::{batch_stream, Sink, TableRef, WriteMode};
use steam_recsys::pipelines::{connection_test, lake_to_mongodb};

fn mongo() -> MongoConfig {
    let uri = std::env::var("STEAM_TEST_MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "STEAM_TEST_MONGODB_URI is not set: run the tests with scripts/test (scripts/services)"
        )
    });
    MongoConfig::from_uri(&uri)
        .unwrap()
        .with_database(common::unique_schema("db"))
}

async fn documents(config: &MongoConfig, collection: &str) -> Vec<Document> {
    use futures::TryStreamExt;
    let client = config.client().await.unwrap();
    client
        .database(config.database())
        .collection::<Document>(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn nested_values_dates_nulls_and_unicode_round_trip() {
    let point = Fields::from(vec![
        Field::new("game_id", DataType::Int32, true),
        Field::new("title", DataType::Utf8, true),
    ]);
    let structs = StructArray::new(
        point.clone(),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
            Arc::new(StringArray::from(vec![
                Some("Elden Ring"),
                Some("日本語 ✓"),
                None,
            ])),
        ],
        None,
    );
    let ints = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None, Some(i32::MAX)]),
        Some(vec![]),
        None,
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int32, false),
        Field::new("big", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("ints", ints.data_type().clone(), true),
        Field::new("game", DataType::Struct(point), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(-1)])),
            Arc::new(Float64Array::from(vec![Some(0.5), Some(-1e300), None])),
            Arc::new(StringArray::from(vec![
                Some("Sentinowl"),
                Some(""),
                Some("ünïcödé \"q\" 😀"),
            ])),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(Date32Array::from(vec![Some(19_000), Some(-365), None])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_700_000_000_123),
                None,
                Some(0),
            ])),
            Arc::new(ints),
            Arc::new(structs),
        ],
    )
    .unwrap();
    let config = mongo();
    let table = TableRef::new("things", schema.clone());
    MongoSink::new(config.clone())
        .write(
            &table,
            WriteMode::Append,
            batch_stream(stream::iter([Ok(batch.clone())])),
        )
        .await
        .unwrap();
    let source = MongoSource::new(config.clone(), "things", schema.clone()).with_batch_size(2);
    let back = concat_batches(&schema, &source.read_all().await.unwrap()).unwrap();
    assert_eq!(back, batch);
    // Integers keep their width; nulls are present as null.
    let docs = documents(&config, "things").await;
    assert!(matches!(
        docs[0].get("user_id"),
        Some(mongodb::bson::Bson::Int32(1))
    ));
    assert!(matches!(
        docs[0].get("big"),
        Some(mongodb::bson::Bson::Int64(_))
    ));
    assert!(matches!(
        docs[1].get("big"),
        Some(mongodb::bson::Bson::Null)
    ));
    assert!(matches!(
        docs[0].get("day"),
        Some(mongodb::bson::Bson::DateTime(_))
    ));
}

/// A recommendations Parquet file for `users`, each recommended `game(user, k)` for k in 0..3.
#[tokio::test]
async fn a_rerun_refreshes_one_document_per_user_and_drops_users_gone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join("inference_games_results/user_recommendations.parquet");
    let lake = Lake::from_url(file.to_str().unwrap()).unwrap();
    let config = mongo();
    common::write_recommendations(&file, 1..51, 0);
    lake_to_mongodb(&lake, &config, "recsys").await.unwrap();
    assert_eq!(documents(&config, "recsys").await.len(), 50);
    common::write_recommendations(&file, 1..41, 5);
    let summary = lake_to_mongodb(&lake, &config, "recsys").await.unwrap();
    assert_eq!(summary.tables[0].rows, 40);
    let docs = documents(&config, "recsys").await;
    assert_eq!(docs.len(), 40);
    let mut users: Vec<i32> = docs.iter().map(|d| d.get_i32("user_id").unwrap()).collect();
    users.sort();
    assert_eq!(users, (1..41).collect::<Vec<_>>());
    let first = docs.iter().find(|d| d.get_i32("user_id") == Ok(7)).unwrap();
    let recs: Vec<i32> = first
        .get_array("recommendations")
        .unwrap()
        .iter()
        .map(|b| b.as_i32().unwrap())
        .collect();
    assert_eq!(recs, [75, 76, 77], "game ids in order, ratings dropped");
}

#[tokio::test]
async fn recommendations_without_the_column_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "user_id",
            DataType::Int32,
            false,
        )])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let lake = Lake::from_url(file.to_str().unwrap()).unwrap();
    let err = lake_to_mongodb(&lake, &mongo(), "recsys")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"recommendations\""), "{err}");
}

/// Starts an nx-27017 server of the test's own on `port`, in memory.
fn nx_server(port: u16, dir: &std::path::Path) -> common::OwnServer {
    let exe = std::env::var("STEAM_TEST_NX_27017")
        .expect("STEAM_TEST_NX_27017 is set by scripts/services");
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "--data-dir",
            "memory",
            "--host",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .arg("--pid-file")
        .arg(dir.join(format!("nx-{port}.pid")))
        .arg("--log-file")
        .arg(dir.join(format!("nx-{port}.log")));
    common::OwnServer::start(command, port)
}

#[tokio::test]
async fn the_server_killed_mid_write_is_a_clear_error_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let server = std::sync::Arc::new(std::sync::Mutex::new(Some(nx_server(port, dir.path()))));
    let config = MongoConfig::from_uri(&format!("mongodb://127.0.0.1:{port}/serving"))
        .unwrap()
        .with_server_selection_timeout(Duration::from_secs(2));
    let schema = Arc::new(Schema::new(vec![Field::new(
        "user_id",
        DataType::Int32,
        false,
    )]));
    let rows = |kill: Option<std::sync::Arc<std::sync::Mutex<Option<common::OwnServer>>>>| {
        let schema = schema.clone();
        batch_stream(futures::StreamExt::then(stream::iter(0..10), move |i| {
            let kill = kill.clone();
            let schema = schema.clone();
            async move {
                if i == 5 {
                    if let Some(k) = kill {
                        k.lock().unwrap().take(); // kills the server
                    }
                }
                Ok(RecordBatch::try_new(
                    schema,
                    vec![Arc::new(Int32Array::from_iter_values(
                        i * 100..i * 100 + 100,
                    ))],
                )
                .unwrap())
            }
        }))
    };
    let sink = MongoSink::new(config.clone())
        .with_key(&["user_id"])
        .with_batch_documents(100);
    let table = TableRef::new("recsys", schema.clone());
    let err = sink
        .write(&table, WriteMode::Replace, rows(Some(server.clone())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("serving.recsys") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let _again = nx_server(port, dir.path());
    sink.write(&table, WriteMode::Replace, rows(None))
        .await
        .unwrap();
    let docs = documents(&config, "recsys").await;
    assert_eq!(docs.len(), 1000);
}

#[tokio::test]
async fn connection_test_names_each_backend_down_with_its_cause() {
    let closed = common::free_port();
    let pg = PostgresConfig::from_url(&format!("postgresql://steam:pw@127.0.0.1:{closed}/steam"))
        .unwrap()
        .with_retries(0, Duration::from_millis(1));
    let lake = Lake::from_url("s3://no-such-bucket-steam-probe/x").unwrap();
    let down = MongoConfig::from_uri(&format!("mongodb://127.0.0.1:{closed}/db"))
        .unwrap()
        .with_server_selection_timeout(Duration::from_millis(500));
    let err = MongoSource::new(
        down.clone(),
        "recsys",
        steam_recsys::transforms::served_schema(),
    )
    .read_all()
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let cause = std::error::Error::source(&err)
        .and_then(|c| c.downcast_ref::<steam_recsys::core::Cause>())
        .and_then(|c| c.downcast_ref::<mongodb::error::Error>())
        .expect("the driver's error is kept as the cause");
    assert!(matches!(
        cause.kind.as_ref(),
        steam_recsys::connectors::mongodb::DriverErrorKind::ServerSelection { .. }
    ));
    let redis_down = steam_recsys::connectors::redis::RedisConfig::from_url(&format!(
        "redis://:pw-s3cret@127.0.0.1:{closed}"
    ))
    .unwrap();
    let checks = connection_test(
        Some(&pg),
        Some(&lake),
        Some((&down, "recsys")),
        Some(&redis_down),
    )
    .await;
    assert_eq!(checks.len(), 4);
    for c in &checks {
        let line = c.to_string();
        assert!(c.result.is_err() && line.contains("FAILED"), "{line}");
    }
    assert!(checks[0]
        .to_string()
        .contains(&format!("127.0.0.1:{closed}")));
    assert!(checks[1].to_string().contains("no-such-bucket-steam-probe"));
    assert!(checks[2]
        .to_string()
        .contains(&format!("127.0.0.1:{closed}")));
    let redis_line = checks[3].to_string();
    assert!(redis_line.starts_with("redis"), "{redis_line}");
    assert!(
        redis_line.contains(&format!("127.0.0.1:{closed}")),
        "{redis_line}"
    );
    assert!(!redis_line.contains("pw-s3cret"), "{redis_line}");

    // And every backend up.
    let pg = PostgresConfig::from_url(&common::postgres_url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::from_url(dir.path().to_str().unwrap()).unwrap();
    let up = mongo();
    let redis_up = common::redis("check");
    let checks = connection_test(
        Some(&pg),
        Some(&lake),
        Some((&up, "recsys")),
        Some(&redis_up),
    )
    .await;
    assert_eq!(checks.len(), 4);
    for c in &checks {
        assert!(c.result.is_ok(), "{c}");
    }
}

/// A batch of served rows (`user_id`, `recommendations` list<int32>) for `users`, each
/// recommended `[u * 10 + salt]`.
fn served(users: std::ops::Range<i32>, salt: i32) -> RecordBatch {
    let schema = steam_recsys::transforms::served_schema();
    let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
        users.clone().map(|u| Some(vec![Some(u * 10 + salt)])),
    );
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(users)),
            Arc::new(lists),
        ],
    )
    .unwrap()
}

/// Each user's recommendations, as a reader following the refresh contract sees them.
async fn newest(config: &MongoConfig, collection: &str) -> Vec<(i32, Vec<i32>)> {
    use arrow::array::AsArray;
    let schema = steam_recsys::transforms::served_schema();
    let source = MongoSource::new(config.clone(), collection, schema).newest_per_key(&["user_id"]);
    let mut out = Vec::new();
    for b in source.read_all().await.unwrap() {
        let users = common::i32s(&b, "user_id");
        let lists = b.column(1).as_list::<i32>();
        for (i, u) in users.into_iter().enumerate() {
            let games = lists.value(i);
            let games = games.as_primitive::<Int32Type>().values().to_vec();
            out.push((u.unwrap(), games));
        }
    }
    out
}

fn refresh_sink(config: &MongoConfig) -> (MongoSink, TableRef) {
    let sink = MongoSink::new(config.clone())
        .with_key(&["user_id"])
        .with_batch_documents(100);
    let table = TableRef::new("recsys", steam_recsys::transforms::served_schema());
    (sink, table)
}

async fn count(config: &MongoConfig, collection: &str) -> u64 {
    let client = config.client().await.unwrap();
    client
        .database(config.database())
        .collection::<Document>(collection)
        .count_documents(doc! {})
        .await
        .unwrap()
}

#[tokio::test]
async fn readers_overlapping_a_refresh_always_find_one_document_per_user() {
    use steam_recsys::connectors::batch_channel;
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    // Users 1..=1000 served by an earlier run.
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..1001, 0))])),
    )
    .await
    .unwrap();
    assert_eq!(count(&config, "recsys").await, 1000);

    // A refresh for users 501..=1300, paused after its first 500 users.
    let (tx, done, rows) = batch_channel(2, "the test's rows");
    let write = tokio::spawn({
        let (sink, table) = (sink.clone(), table.clone());
        async move { sink.write(&table, WriteMode::Replace, rows).await }
    });
    for start in (501..1001).step_by(100) {
        assert!(tx.send(Ok(served(start..start + 100, 7))).await);
    }
    let waited = std::time::Instant::now();
    while count(&config, "recsys").await < 1500 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the refresh did not progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Mid-refresh: every user has a document, and readers take the newest run's.
    let seen = newest(&config, "recsys").await;
    assert_eq!(seen.len(), 1000);
    for (u, games) in &seen {
        let salt = if *u > 500 { 7 } else { 0 };
        assert_eq!(games, &vec![u * 10 + salt], "user {u}");
    }
    assert!(tx.send(Ok(served(1001..1301, 7))).await);
    done.finish();
    drop(tx);
    let summary = write.await.unwrap().unwrap();
    assert_eq!(summary.rows, 800);

    // After it: exactly the new users, one document each, with the new lists.
    let docs = documents(&config, "recsys").await;
    assert_eq!(docs.len(), 800);
    let seen = newest(&config, "recsys").await;
    assert_eq!(
        seen,
        (501..1301)
            .map(|u| (u, vec![u * 10 + 7]))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failed_refresh_removes_nothing_and_a_rerun_completes_it() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..301, 0))])),
    )
    .await
    .unwrap();
    let failing = batch_stream(stream::iter([
        Ok(served(1..101, 3)),
        Err(steam_recsys::core::Error::backend_msg(
            "lake",
            "results",
            "object vanished",
        )),
    ]));
    let err = sink
        .write(&table, WriteMode::Replace, failing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("object vanished"), "{err}");
    assert_eq!(count(&config, "recsys").await, 400, "nothing removed");
    let seen = newest(&config, "recsys").await;
    assert_eq!(seen.len(), 300);
    assert_eq!(seen[0], (1, vec![13]));
    assert_eq!(seen[299], (300, vec![3000]));

    // A key twice in one run is refused, and removes nothing either.
    let twice = batch_stream(stream::iter([Ok(served(1..3, 5)), Ok(served(2..3, 5))]));
    let err = sink
        .write(&table, WriteMode::Replace, twice)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("repeats") && err.contains("user_id"), "{err}");
    assert_eq!(newest(&config, "recsys").await.len(), 300);

    // So is a null key.
    let nullable = Arc::new(Schema::new(vec![Field::new(
        "user_id",
        DataType::Int32,
        true,
    )]));
    let nulls = RecordBatch::try_new(
        nullable.clone(),
        vec![Arc::new(Int32Array::from(vec![Some(1), None]))],
    )
    .unwrap();
    let err = sink
        .write(
            &TableRef::new("recsys", nullable),
            WriteMode::Replace,
            batch_stream(stream::iter([Ok(nulls)])),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"user_id\" is null"), "{err}");
    assert_eq!(newest(&config, "recsys").await.len(), 300);

    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..251, 9))])),
    )
    .await
    .unwrap();
    assert_eq!(count(&config, "recsys").await, 250);
    assert_eq!(
        newest(&config, "recsys").await,
        (1..251).map(|u| (u, vec![u * 10 + 9])).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_refresh_takes_over_a_collection_of_inserted_documents_with_a_unique_key_index() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    // As an earlier version left it: plain documents and a unique index on user_id.
    sink.write(
        &table,
        WriteMode::Upsert {
            keys: vec!["user_id".into()],
        },
        batch_stream(stream::iter([Ok(served(1..51, 0))])),
    )
    .await
    .unwrap();
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(20..71, 4))])),
    )
    .await
    .unwrap();
    assert_eq!(
        newest(&config, "recsys").await,
        (20..71).map(|u| (u, vec![u * 10 + 4])).collect::<Vec<_>>()
    );
    assert_eq!(count(&config, "recsys").await, 51);

    // Inserting beside refreshed documents still works (the refresh's unique index covers only
    // documents of refresh runs), and the next refresh sweeps the inserted ones too.
    for _ in 0..2 {
        sink.write(
            &table,
            WriteMode::Append,
            batch_stream(stream::iter([Ok(served(20..23, 8))])),
        )
        .await
        .unwrap();
    }
    assert_eq!(count(&config, "recsys").await, 57);
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(20..71, 5))])),
    )
    .await
    .unwrap();
    assert_eq!(count(&config, "recsys").await, 51);

    // A reader's filter on anything but the key is refused with newest_per_key.
    let err = MongoSource::new(
        config.clone(),
        "recsys",
        steam_recsys::transforms::served_schema(),
    )
    .with_filter(doc! { "recommendations": 205 })
    .newest_per_key(&["user_id"])
    .read_all()
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"recommendations\"") && err.contains("key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_from_a_clock_ahead_does_not_outlive_the_next_refresh() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..11, 0))])),
    )
    .await
    .unwrap();
    // A failed run stamped by a host whose clock was a century ahead.
    let client = config.client().await.unwrap();
    let coll = client
        .database(config.database())
        .collection::<Document>("recsys");
    coll.insert_one(doc! { "user_id": 99, "recommendations": [1], "_steam_run": "09000000000000000000-0000000001" })
        .await
        .unwrap();
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..6, 2))])),
    )
    .await
    .unwrap();
    assert_eq!(
        newest(&config, "recsys").await,
        (1..6).map(|u| (u, vec![u * 10 + 2])).collect::<Vec<_>>()
    );
    assert_eq!(count(&config, "recsys").await, 5);
}

#[tokio::test]
async fn a_uri_with_options_connects_as_the_driver_reads_it() {
    let base = std::env::var("STEAM_TEST_MONGODB_URI").unwrap();
    let database = common::unique_schema("opts");
    let uri = format!(
        "{}/{database}?appName=steam-test&retryWrites=false&w=1&directConnection=true\
         &serverSelectionTimeoutMS=5000&maxPoolSize=4",
        base.trim_end_matches('/')
    );
    let config = MongoConfig::from_uri(&uri).unwrap();
    assert_eq!(config.database(), database);
    assert!(config.describe().contains("retryWrites=false"));
    config.ping().await.unwrap();
    let (sink, table) = refresh_sink(&config);
    sink.write(
        &table,
        WriteMode::Replace,
        batch_stream(stream::iter([Ok(served(1..4, 1))])),
    )
    .await
    .unwrap();
    assert_eq!(newest(&config, "recsys").await.len(), 3);
}
