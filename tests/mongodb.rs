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
use steam_recsys::core::{batch_stream, Error, Sink, TableRef, WriteMode};
use steam_recsys::pipelines::{connection_test, lake_to_mongodb, lake_to_mongodb_with};

fn mongo() -> MongoConfig {
    let uri = std::env::var("STEAM_TEST_MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "STEAM_TEST_MONGODB_URI is not set: run the tests with scripts/test (scripts/services)"
        )
    });
    MongoConfig::from_url(&uri)
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
    let lake = Lake::from_env(file.to_str().unwrap()).unwrap();
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
    let lake = Lake::from_env(file.to_str().unwrap()).unwrap();
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
    let config = MongoConfig::from_url(&format!("mongodb://127.0.0.1:{port}/serving"))
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
    let sink = MongoSink::new(config.clone()).with_batch_documents(100);
    let table = TableRef::new("recsys", schema.clone()).with_keys(["user_id"]);
    let err = sink
        .refresh(&table, rows(Some(server.clone())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("serving.recsys") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let _again = nx_server(port, dir.path());
    sink.refresh(&table, rows(None)).await.unwrap();
    let docs = documents(&config, "recsys").await;
    assert_eq!(docs.len(), 1000);
}

#[tokio::test]
async fn connection_test_names_each_backend_down_with_its_cause() {
    let closed = common::free_port();
    let pg = PostgresConfig::from_url(&format!("postgresql://steam:pw@127.0.0.1:{closed}/steam"))
        .unwrap()
        .with_retries(0, Duration::from_millis(1));
    let lake = Lake::from_env("s3://no-such-bucket-steam-probe/x").unwrap();
    let down = MongoConfig::from_url(&format!("mongodb://127.0.0.1:{closed}/db"))
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
    assert!(err.is_transient(), "{}", common::chain_said_once(&err));
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
    let lake = Lake::from_env(dir.path().to_str().unwrap()).unwrap();
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

/// `batch` as a stream of one batch.
fn one(batch: RecordBatch) -> steam_recsys::core::BatchStream {
    batch_stream(stream::iter([Ok(batch)]))
}

/// Users 1..=100 with salt 3, then the producer fails.
fn vanishing() -> steam_recsys::core::BatchStream {
    batch_stream(stream::iter([
        Ok(served(1..101, 3)),
        Err(Error::backend_msg("lake", "results", "object vanished")),
    ]))
}

/// User 2 twice in one stream.
fn twice() -> steam_recsys::core::BatchStream {
    batch_stream(stream::iter([Ok(served(1..3, 5)), Ok(served(2..3, 5))]))
}

/// Polls `check` every 20 ms until it gives a value; fails after 60 s without one.
async fn wait_for<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let waited = std::time::Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(waited.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The indexes of `collection`.
async fn indexes(config: &MongoConfig, collection: &str) -> Vec<mongodb::IndexModel> {
    use futures::TryStreamExt;
    let client = config.client().await.unwrap();
    let coll = client
        .database(config.database())
        .collection::<Document>(collection);
    coll.list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Whether `indexes` has a unique one on exactly `keys`.
fn has_unique(indexes: &[mongodb::IndexModel], keys: Document) -> bool {
    indexes
        .iter()
        .any(|i| i.keys == keys && i.options.as_ref().and_then(|o| o.unique) == Some(true))
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

/// A sink of small bulk requests and the served table, keyed on `user_id`.
fn refresh_sink(config: &MongoConfig) -> (MongoSink, TableRef) {
    let sink = MongoSink::new(config.clone()).with_batch_documents(100);
    let table =
        TableRef::new("recsys", steam_recsys::transforms::served_schema()).with_keys(["user_id"]);
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
    sink.refresh(&table, one(served(1..1001, 0))).await.unwrap();
    assert_eq!(count(&config, "recsys").await, 1000);

    // A refresh for users 501..=1300, paused after its first 500 users.
    let (tx, done, rows) = batch_channel(2, "the test's rows");
    let write = tokio::spawn({
        let (sink, table) = (sink.clone(), table.clone());
        async move { sink.refresh(&table, rows).await }
    });
    for start in (501..1001).step_by(100) {
        assert!(tx.send(Ok(served(start..start + 100, 7))).await);
    }
    wait_for("the refresh to progress", || async {
        (count(&config, "recsys").await >= 1500).then_some(())
    })
    .await;
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
    sink.refresh(&table, one(served(1..301, 0))).await.unwrap();
    let err = sink
        .refresh(&table, vanishing())
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
    let err = sink.refresh(&table, twice()).await.unwrap_err().to_string();
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
        .refresh(
            &TableRef::new("recsys", nullable).with_keys(["user_id"]),
            batch_stream(stream::iter([Ok(nulls)])),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"user_id\" is null"), "{err}");
    assert_eq!(newest(&config, "recsys").await.len(), 300);

    sink.refresh(&table, one(served(1..251, 9))).await.unwrap();
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
    sink.write(&table, WriteMode::Upsert, one(served(1..51, 0)))
        .await
        .unwrap();
    sink.refresh(&table, one(served(20..71, 4))).await.unwrap();
    assert_eq!(
        newest(&config, "recsys").await,
        (20..71).map(|u| (u, vec![u * 10 + 4])).collect::<Vec<_>>()
    );
    assert_eq!(count(&config, "recsys").await, 51);

    // Inserting beside refreshed documents still works (the refresh's unique index covers only
    // documents of refresh runs), and the next refresh sweeps the inserted ones too.
    for _ in 0..2 {
        sink.write(&table, WriteMode::Append, one(served(20..23, 8)))
            .await
            .unwrap();
    }
    assert_eq!(count(&config, "recsys").await, 57);
    sink.refresh(&table, one(served(20..71, 5))).await.unwrap();
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
    sink.refresh(&table, one(served(1..11, 0))).await.unwrap();
    // A failed run stamped by a host whose clock was a century ahead.
    let client = config.client().await.unwrap();
    let coll = client
        .database(config.database())
        .collection::<Document>("recsys");
    coll.insert_one(doc! { "user_id": 99, "recommendations": [1], "_steam_run": "09000000000000000000-0000000001" })
        .await
        .unwrap();
    sink.refresh(&table, one(served(1..6, 2))).await.unwrap();
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
    let config = MongoConfig::from_url(&uri).unwrap();
    assert_eq!(config.database(), database);
    assert!(config.describe().contains("retryWrites=false"));
    config.ping().await.unwrap();
    let (sink, table) = refresh_sink(&config);
    sink.refresh(&table, one(served(1..4, 1))).await.unwrap();
    assert_eq!(newest(&config, "recsys").await.len(), 3);
}

/// The staging collections of replaces of `collection` in the config's database.
async fn staging(config: &MongoConfig, collection: &str) -> Vec<String> {
    let client = config.client().await.unwrap();
    let mut names = client
        .database(config.database())
        .list_collection_names()
        .await
        .unwrap();
    // `steam_stage_<collection>_<id of 31 characters>`: not another collection's.
    let prefix = format!("steam_stage_{collection}_");
    names.retain(|n| n.strip_prefix(&prefix).is_some_and(|id| id.len() == 31));
    names
}

/// The staging collection of the replace of `recsys` under way, once it holds `documents`.
async fn staged(config: &MongoConfig, documents: u64) -> String {
    wait_for("the replace to progress", || async {
        let name = staging(config, "recsys").await.pop()?;
        (count(config, &name).await == documents).then_some(name)
    })
    .await
}

/// `recsys` holds `users`, one document each recommending `user * 10 + salt` as readers see it,
/// and no staging collection is left beside it.
async fn check_holds(config: &MongoConfig, users: std::ops::Range<i32>, salt: i32) {
    assert_eq!(count(config, "recsys").await, users.len() as u64);
    assert_eq!(
        newest(config, "recsys").await,
        users.map(|u| (u, vec![u * 10 + salt])).collect::<Vec<_>>()
    );
    assert_eq!(staging(config, "recsys").await, Vec::<String>::new());
}

/// How a replace that ran to its end left `recsys`: swapped in whole (`new` users, one document
/// each, with salt `salt`), or, on a server that cannot swap collections, failed at the swap (an
/// [`Error::Unsupported`] when the server answers renameCollection without renaming, as
/// nx-27017 does when its admin database has no such collection, else the server's refusal) with
/// the old collection (`old` users of salt 0) as it was. Either way no staging collection is left.
async fn check_replaced(
    config: &MongoConfig,
    result: steam_recsys::core::Result<steam_recsys::core::WriteSummary>,
    old: std::ops::Range<i32>,
    new: std::ops::Range<i32>,
    salt: i32,
) {
    match result {
        Ok(summary) => {
            assert_eq!(summary.rows, new.len() as u64);
            check_holds(config, new, salt).await;
        }
        Err(e) => {
            let chain = steam_recsys::core::error_chain(&e);
            assert!(chain.contains("renameCollection"), "{chain}");
            check_holds(config, old, 0).await;
        }
    }
}

#[tokio::test]
async fn a_replace_fills_a_staging_collection_and_never_shows_two_documents_of_a_key() {
    use steam_recsys::connectors::batch_channel;
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    sink.write(&table, WriteMode::Append, one(served(1..1001, 0)))
        .await
        .unwrap();
    // An index of the collection's own, which the new collection must have too.
    let by_recommendation = doc! { "recommendations": 1 };
    let client = config.client().await.unwrap();
    client
        .database(config.database())
        .collection::<Document>("recsys")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(by_recommendation.clone())
                .build(),
        )
        .await
        .unwrap();

    // A replace by users 501..=1300, paused after its first 500 users.
    let (tx, done, rows) = batch_channel(2, "the test's rows");
    let write = tokio::spawn({
        let (sink, table) = (sink.clone(), table.clone());
        async move { sink.write(&table, WriteMode::Replace, rows).await }
    });
    for start in (501..1001).step_by(100) {
        assert!(tx.send(Ok(served(start..start + 100, 7))).await);
    }
    let stage = staged(&config, 500).await;
    // Mid-replace: the collection is the old one, whole, and nothing else.
    assert_eq!(count(&config, "recsys").await, 1000);
    assert_eq!(
        newest(&config, "recsys").await,
        (1..1001).map(|u| (u, vec![u * 10])).collect::<Vec<_>>()
    );
    // The staging collection has the collection's index and a unique one on the keys already
    // (found by their keys: nx-27017 names indexes its own way).
    let on =
        |indexes: &[mongodb::IndexModel], keys: &Document| indexes.iter().any(|i| &i.keys == keys);
    let staged_indexes = indexes(&config, &stage).await;
    assert!(
        on(&staged_indexes, &by_recommendation),
        "{staged_indexes:?}"
    );
    assert!(
        has_unique(&staged_indexes, doc! { "user_id": 1 }),
        "{staged_indexes:?}"
    );

    assert!(tx.send(Ok(served(1001..1301, 7))).await);
    done.finish();
    drop(tx);
    let result = write.await.unwrap();
    let swapped = result.is_ok();
    check_replaced(&config, result, 1..1001, 501..1301, 7).await;
    let live_indexes = indexes(&config, "recsys").await;
    assert!(on(&live_indexes, &by_recommendation), "{live_indexes:?}");
    assert_eq!(has_unique(&live_indexes, doc! { "user_id": 1 }), swapped);
}

#[tokio::test]
async fn a_failed_replace_drops_its_staging_collection_and_leaves_the_old_one() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    sink.refresh(&table, one(served(1..301, 0))).await.unwrap();
    let err = sink
        .write(&table, WriteMode::Replace, vanishing())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("object vanished"), "{err}");
    check_holds(&config, 1..301, 0).await;

    // A key twice is refused by the staging collection's unique index.
    let err = sink
        .write(&table, WriteMode::Replace, twice())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("repeats") && err.contains("user_id"), "{err}");
    check_holds(&config, 1..301, 0).await;

    // A key that is not a column is refused before anything is written.
    let err = sink
        .write(
            &table.clone().with_keys(["nope"]),
            WriteMode::Replace,
            one(served(1..3, 5)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    check_holds(&config, 1..301, 0).await;

    // And a replace without keys has no unique index: what it writes is what it swaps in.
    let bare = TableRef::new("recsys", table.schema.clone());
    let result = sink
        .write(&bare, WriteMode::Replace, one(served(1..51, 2)))
        .await;
    check_replaced(&config, result, 1..301, 1..51, 2).await;
}

#[tokio::test]
async fn a_killed_replaces_staging_collection_is_dropped_by_the_next_replace() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    sink.refresh(&table, one(served(1..1001, 0))).await.unwrap();
    // A replace killed midway: its producer stalls after 300 rows and the task is aborted.
    let stalled =
        futures::StreamExt::chain(stream::iter([Ok(served(1..301, 5))]), stream::pending());
    let killed = tokio::spawn({
        let (sink, table) = (sink.clone(), table.clone());
        async move {
            sink.write(&table, WriteMode::Replace, batch_stream(stalled))
                .await
        }
    });
    let left = staged(&config, 300).await;
    killed.abort();
    let _ = killed.await;
    assert_eq!(staging(&config, "recsys").await, [left.as_str()]);
    assert_eq!(count(&config, "recsys").await, 1000, "the old collection");
    // Another table's staging collection, whose name starts alike, is not this one's to drop.
    let client = config.client().await.unwrap();
    let other = format!(
        "steam_stage_recsys_users_{}",
        &left["steam_stage_recsys_".len()..]
    );
    client
        .database(config.database())
        .create_collection(&other)
        .await
        .unwrap();

    let result = sink
        .write(&table, WriteMode::Replace, one(served(1..801, 5)))
        .await;
    check_replaced(&config, result, 1..1001, 1..801, 5).await;
    assert_eq!(staging(&config, "recsys_users").await, [other]);
}

#[tokio::test]
async fn an_upsert_needs_the_tables_keys_and_lake_to_mongodb_keeps_the_callers() {
    let config = mongo();
    let (sink, table) = refresh_sink(&config);
    let bare = TableRef::new("recsys", table.schema.clone());
    let rows = || one(served(1..3, 0));
    let upsert = sink.write(&bare, WriteMode::Upsert, rows()).await;
    let refresh = sink.refresh(&bare, rows()).await;
    for (result, what) in [(upsert, "an upsert"), (refresh, "a refresh")] {
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(text.contains("\"recsys\"") && text.contains(what), "{text}");
    }
    assert_eq!(count(&config, "recsys").await, 0, "nothing written");

    // An upsert on two columns: rows match on both.
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int32, false),
        Field::new("game_id", DataType::Int32, false),
        Field::new("hours", DataType::Int32, false),
    ]));
    let plays = TableRef::new("plays", schema.clone()).with_keys(["user_id", "game_id"]);
    let rows = |r: &[(i32, i32, i32)]| {
        let column = |f: fn(&(i32, i32, i32)) -> i32| {
            Arc::new(Int32Array::from_iter_values(r.iter().map(f))) as arrow::array::ArrayRef
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![column(|r| r.0), column(|r| r.1), column(|r| r.2)],
        );
        one(batch.unwrap())
    };
    for r in [
        &[(1, 1, 10), (1, 2, 20), (2, 1, 30)][..],
        &[(1, 2, 99), (3, 3, 1)],
    ] {
        sink.write(&plays, WriteMode::Upsert, rows(r))
            .await
            .unwrap();
    }
    assert_eq!(count(&config, "plays").await, 4);
    let docs = documents(&config, "plays").await;
    let hours = |u: i32, g: i32| {
        docs.iter()
            .find(|d| d.get_i32("user_id") == Ok(u) && d.get_i32("game_id") == Ok(g))
            .map(|d| d.get_i32("hours").unwrap())
    };
    assert_eq!(
        (hours(1, 1), hours(1, 2), hours(3, 3)),
        (Some(10), Some(99), Some(1))
    );
    let unique = has_unique(
        &indexes(&config, "plays").await,
        doc! { "user_id": 1, "game_id": 1 },
    );
    assert!(unique);

    // lake_to_mongodb_with takes the caller's keys to MongoDB (it used to upsert on user_id
    // whatever they were): keys the results do not have are refused, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("results/user_recommendations.parquet");
    let lake = Lake::from_url(file.to_str().unwrap()).unwrap();
    common::write_recommendations(&file, 1..11, 0);
    let err = lake_to_mongodb_with(
        &lake,
        &config,
        "upserted",
        WriteMode::Upsert,
        &["user_id", "game_id"],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    assert!(err.to_string().contains("\"game_id\""), "{err}");
    assert_eq!(count(&config, "upserted").await, 0);
    // On (user_id, recommendations) another list of a user is another key, added beside the
    // first, and the same list again matches. The collection gets its unique index on exactly
    // those keys before any write; nx-27017 then refuses the writes (a list in an update's filter
    // is "not supported" there), a server that compares arrays takes them.
    let keys = ["user_id", "recommendations"];
    for (salt, documents) in [(0, 10), (5, 20), (5, 20)] {
        common::write_recommendations(&file, 1..11, salt);
        match lake_to_mongodb_with(&lake, &config, "upserted", WriteMode::Upsert, &keys).await {
            Ok(_) => assert_eq!(count(&config, "upserted").await, documents, "salt {salt}"),
            Err(e) => assert!(
                steam_recsys::core::error_chain(&e).contains("upsert"),
                "{e}"
            ),
        }
    }
    let indexes = indexes(&config, "upserted").await;
    assert!(
        has_unique(&indexes, doc! { "user_id": 1, "recommendations": 1 }),
        "{indexes:?}"
    );
    assert!(!has_unique(&indexes, doc! { "user_id": 1 }), "{indexes:?}");
}

/// The MongoDB check reads documents of the collection, and one it cannot read fails the check
/// (it used to be discarded).
#[tokio::test]
async fn the_connection_check_fails_on_a_document_it_cannot_read() {
    let config = mongo();
    let client = config.client().await.unwrap();
    let coll = client
        .database(config.database())
        .collection::<Document>("recsys");
    coll.insert_one(doc! { "user_id": "not a number", "recommendations": "not a list" })
        .await
        .unwrap();
    let checks = connection_test(None, None, Some((&config, "recsys")), None).await;
    assert_eq!(checks.len(), 1);
    let line = checks[0].to_string();
    assert!(
        checks[0].result.is_err() && line.contains("FAILED"),
        "{line}"
    );
    assert!(line.contains("user_id"), "{line}");
    client.database(config.database()).drop().await.unwrap();
}
