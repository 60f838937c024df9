//! The lake connector and source_to_lake on real services: PostgreSQL and S3 (moto), started by
//! scripts/test, and the local filesystem.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use chrono::NaiveDate;
use futures::{stream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{ObjectStore, RetryConfig};
use steam_recsys::connectors::lake::{sql, Lake, LakeCsvSink, LakeParquetSink, LakeSource};
use steam_recsys::core::{
    batch_stream, BatchStream, Error, Sink, Source, Table, TableRef, WriteMode,
};
use steam_recsys::pipelines::{
    generate, postgres_init, process, source_to_lake, GenerateOptions, InitInput, ProcessOptions,
    SourceToLakeOptions, TableGroup,
};

fn s3_url(prefix: &str) -> String {
    let bucket = std::env::var("STEAM_TEST_S3_BUCKET").unwrap_or_else(|_| {
        panic!(
            "STEAM_TEST_S3_BUCKET is not set: run the tests with scripts/test (scripts/services)"
        )
    });
    format!("s3://{bucket}/{}", common::unique_schema(prefix))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn batches(list: Vec<RecordBatch>) -> BatchStream {
    batch_stream(stream::iter(list.into_iter().map(Ok)))
}

fn labelled(from: i32, n: i32, label: &str) -> RecordBatch {
    common::id_label(from, n, |i| format!("{label} {}", i - from))
}

#[tokio::test]
async fn postgres_to_s3_and_back_in_both_layers() {
    // The real description and ranking files with 3,000 generated reviews, into PostgreSQL.
    let raw = tempfile::tempdir().unwrap();
    for f in ["games_description.csv", "games_ranking.csv"] {
        std::fs::copy(common::real_data_dir().join(f), raw.path().join(f)).unwrap();
    }
    let gen = tempfile::tempdir().unwrap();
    generate(&GenerateOptions::new(gen.path(), 3_000)).unwrap();
    std::fs::copy(
        gen.path().join("steam_game_reviews.csv"),
        raw.path().join("steam_game_reviews.csv"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut options = ProcessOptions::new(raw.path(), out.path());
    options.reference_year = 2024;
    options.run_date = day(29);
    process(&options).await.unwrap();
    let config = common::postgres("lake_src");
    postgres_init(&InitInput::Processed(out.path().to_owned()), &config)
        .await
        .unwrap();

    let options = SourceToLakeOptions {
        group: TableGroup::All,
        raw: Lake::from_env(&s3_url("raw")).unwrap(),
        conformed: Lake::from_env(&s3_url("conformed")).unwrap(),
        date: day(29),
        reviews_since: None,
    };
    let summary = source_to_lake(&config, &options).await.unwrap();
    assert_eq!(summary.tables.len(), 22);

    for table in Table::ALL {
        let expected = common::table(out.path(), table);
        // Conformed: the same rows, in order, with the partition column last.
        let source = LakeSource::table(&options.conformed, table.name())
            .await
            .unwrap();
        let schema = source.schema();
        let back = concat_batches(&schema, &source.read_all().await.unwrap()).unwrap();
        assert_eq!(back.num_rows(), expected.num_rows(), "{table}");
        let last = back.num_columns() - 1;
        assert_eq!(schema.field(last).name(), "record_created_dt");
        for c in 0..expected.num_columns() {
            assert_eq!(
                back.column(c).as_ref(),
                expected.column(c).as_ref(),
                "{table} column {c}"
            );
        }
        // Raw: a CSV object with a header and the same rows (reviews: one per day they arrived).
        let location = if table == Table::GamesReviews {
            options.raw.path(&[
                "games_reviews",
                "record_created_dt=2026-11-29",
                "part-00000.csv",
            ])
        } else {
            options.raw.path(&[&format!("{}.csv", table.name())])
        };
        let bytes = options
            .raw
            .store()
            .get(&location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_ref());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let names: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(header, names, "{table}");
        assert_eq!(reader.records().count(), expected.num_rows(), "{table}");
    }
    let described = LakeSource::table(&options.conformed, "games_description")
        .await
        .unwrap();
    assert!(described.schema().field_with_name("game_name").is_ok());

    // SQL over the conformed layer.
    let result = sql(
        &options.conformed,
        "SELECT count(*) AS n FROM games_reviews r JOIN games_description d \
         ON r.game_id = d.game_id WHERE r.record_created_dt = DATE '2026-11-29'",
    )
    .await
    .unwrap();
    let n = result[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n as usize, common::rows(out.path(), Table::GamesReviews));
}

/// Writes `rows` into the partition of `date` of table `t`.
async fn write_partition(
    lake: &Lake,
    date: NaiveDate,
    rows: Vec<RecordBatch>,
) -> Result<(), Error> {
    let schema = rows[0].schema();
    LakeParquetSink::new(lake.clone(), date)
        .write(
            &TableRef::new("t", schema),
            WriteMode::Replace,
            batches(rows),
        )
        .await
        .map(|_| ())
}

async fn partition_rows(lake: &Lake, date: NaiveDate) -> Vec<String> {
    let source = LakeSource::partition(lake, "t", date).await.unwrap();
    let all = source.read_all().await.unwrap();
    all.iter()
        .flat_map(|b| common::strings(b, "label"))
        .map(Option::unwrap)
        .collect()
}

async fn partitions_replace_atomically(lake: Lake) {
    write_partition(&lake, day(1), vec![labelled(0, 3, "first")])
        .await
        .unwrap();
    write_partition(&lake, day(2), vec![labelled(0, 2, "other day")])
        .await
        .unwrap();
    write_partition(&lake, day(1), vec![labelled(0, 2, "rerun")])
        .await
        .unwrap();
    write_partition(&lake, day(1), vec![labelled(0, 2, "rerun")])
        .await
        .unwrap();
    assert_eq!(partition_rows(&lake, day(1)).await, ["rerun 0", "rerun 1"]);
    assert_eq!(
        partition_rows(&lake, day(2)).await,
        ["other day 0", "other day 1"]
    );
    let listed = common::objects(&lake).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].ends_with("t/record_created_dt=2026-11-01/part-00000.parquet"),
        "{listed:?}"
    );

    // A write that fails midway changes nothing.
    let failing = batch_stream(stream::iter(vec![
        Ok(labelled(0, 1000, "doomed")),
        Err(Error::backend_msg("test", "t", "the source broke")),
    ]));
    let err = LakeParquetSink::new(lake.clone(), day(1))
        .write(
            &TableRef::new("t", labelled(0, 1, "").schema()),
            WriteMode::Replace,
            failing,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the source broke"), "{err}");
    assert_eq!(partition_rows(&lake, day(1)).await, ["rerun 0", "rerun 1"]);
    assert_eq!(common::objects(&lake).await, listed);

    // An object another writer left in the partition does not survive the next run.
    let stray = lake.path(&["t", "record_created_dt=2026-11-01", "part-stray.parquet"]);
    let copy = lake
        .store()
        .get(&Path::from(listed[0].as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    lake.store().put(&stray, copy.into()).await.unwrap();
    write_partition(&lake, day(1), vec![labelled(0, 1, "again")])
        .await
        .unwrap();
    assert_eq!(partition_rows(&lake, day(1)).await, ["again 0"]);
    assert_eq!(common::objects(&lake).await.len(), 2);

    // The partition column, when present, must hold the partition's date.
    let wrong = steam_recsys::transforms::conform(
        Table::RankDimension,
        &RecordBatch::try_new(
            Table::RankDimension.schema(),
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["Top Sellers"])),
            ],
        )
        .unwrap(),
        day(3),
    )
    .unwrap();
    let err = LakeParquetSink::new(lake.clone(), day(4))
        .write(
            &TableRef::new("rank_dimension", wrong.schema()),
            WriteMode::Replace,
            batches(vec![wrong]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("record_created_dt"), "{err}");
}

#[tokio::test]
async fn partitions_replace_atomically_on_s3() {
    partitions_replace_atomically(Lake::from_env(&s3_url("parts")).unwrap()).await;
}

#[tokio::test]
async fn partitions_replace_atomically_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    partitions_replace_atomically(Lake::from_env(dir.path().to_str().unwrap()).unwrap()).await;
}

#[tokio::test]
async fn missing_objects_and_bad_sql_have_their_kinds() {
    use steam_recsys::core::ErrorKind;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::from_env(dir.path().to_str().unwrap()).unwrap();
    let err = LakeSource::objects(&lake.child("nothing-here.parquet"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = sql(&lake, "SELEC oops").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

/// `from_url` takes nothing from the environment (object_store's `new`), `from_env` takes the
/// endpoint and credentials the test servers' variables give (`AWS_ENDPOINT`, keys, region).
#[tokio::test]
async fn from_url_reads_no_environment_and_from_env_does() {
    let url = s3_url("env-check");
    Lake::from_env(&url).unwrap().check().await.unwrap();
    let options = steam_recsys::connectors::lake::LakeOptions {
        max_retries: 0,
        request_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    // Without the environment's endpoint, region and keys there is no store to reach.
    match Lake::from_url_with(&url, &options) {
        Ok(lake) => assert!(lake.check().await.is_err()),
        Err(e) => assert!(steam_recsys::core::error_chain(&e).contains("s3://"), "{e}"),
    }
}

#[tokio::test]
async fn bad_urls_and_missing_buckets_name_the_lake() {
    let err = Lake::from_env("s3:///no-bucket").unwrap_err().to_string();
    assert!(err.contains("s3:"), "{err}");
    let err = Lake::from_env("nope://x/y").unwrap_err().to_string();
    assert!(err.contains("nope://x/y"), "{err}");
    let options = steam_recsys::connectors::lake::LakeOptions {
        max_retries: 0,
        from_env: true,
        ..Default::default()
    };
    let lake = Lake::from_url_with("s3://no-such-bucket-steam/raw", &options).unwrap();
    let err = LakeCsvSink::new(lake)
        .write(
            &TableRef::new("t", labelled(0, 1, "").schema()),
            WriteMode::Replace,
            batches(vec![labelled(0, 10, "x")]),
        )
        .await
        .unwrap_err();
    let err = common::chain_said_once(&err);
    assert!(err.contains("s3://no-such-bucket-steam/raw/t.csv"), "{err}");
    assert!(
        err.contains("NoSuchBucket") || err.contains("bucket"),
        "{err}"
    );
}

/// A TCP proxy in front of a server, which the test can kill: every connection through it drops
/// and no new one is accepted, as when the server dies, while the server itself keeps its state
/// for the test to inspect.
async fn proxy(upstream: u16) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (kill, killed) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let mut killed_accept = killed.clone();
            let (mut client, _) = tokio::select! {
                c = listener.accept() => c.unwrap(),
                _ = killed_accept.changed() => return,
            };
            let mut killed_conn = killed.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = killed_conn.changed() => {}
                }
            });
        }
    });
    (port, kill)
}

#[tokio::test]
async fn an_upload_cut_off_leaves_no_object_and_a_rerun_completes() {
    let endpoint = std::env::var("AWS_ENDPOINT").expect("AWS_ENDPOINT is set by scripts/services");
    let upstream: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let bucket = std::env::var("STEAM_TEST_S3_BUCKET").unwrap();
    let prefix = common::unique_schema("cut");
    let (port, kill) = proxy(upstream).await;
    let store = |endpoint: String| {
        let s = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(2),
                ..Default::default()
            })
            .build()
            .unwrap();
        Arc::new(s) as Arc<dyn ObjectStore>
    };
    let cut = Lake::new(
        "s3 via proxy",
        store(format!("http://127.0.0.1:{port}")),
        Path::from(prefix.as_str()),
    );
    let direct = Lake::new("s3", store(endpoint.clone()), Path::from(prefix.as_str()));
    let schema = labelled(0, 1, "").schema();
    // About 40 MiB of CSV: several parts of the multipart upload; the "server" dies halfway.
    let big = |kill: Option<tokio::sync::watch::Sender<bool>>| {
        batch_stream(stream::iter(0..40).then(move |i| {
            let kill = kill.clone();
            async move {
                if i == 20 {
                    if let Some(k) = kill {
                        let _ = k.send(true);
                    }
                }
                Ok(labelled(i * 20_000, 20_000, &"x".repeat(40)))
            }
        }))
    };
    let table = TableRef::new("big", schema);
    let err = LakeCsvSink::new(cut)
        .write(&table, WriteMode::Replace, big(Some(kill)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("s3 via proxy/big.csv"), "{err}");
    assert!(
        common::objects(&direct).await.is_empty(),
        "a partial object is visible"
    );

    let summary = LakeCsvSink::new(direct.clone())
        .write(&table, WriteMode::Replace, big(None))
        .await
        .unwrap();
    assert_eq!(summary.rows, 800_000);
    let listed = common::objects(&direct).await;
    assert_eq!(listed.len(), 1);
    let meta = direct
        .store()
        .head(&Path::from(listed[0].as_str()))
        .await
        .unwrap();
    assert_eq!(meta.size, summary.bytes);
}

/// Starts a moto server of the test's own with authentication on from the first request, so that
/// keys unknown to its IAM are refused. Returns it and its port.
fn moto_with_auth() -> (common::OwnServer, u16) {
    let exe = std::env::var("STEAM_TEST_MOTO_SERVER")
        .expect("STEAM_TEST_MOTO_SERVER is set by scripts/services");
    let port = common::free_port();
    let mut command = std::process::Command::new(exe);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
    (common::OwnServer::start(command, port), port)
}

#[tokio::test]
async fn bad_credentials_are_a_clear_error_without_the_secret() {
    let (_moto, port) = moto_with_auth();
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_bucket_name("steam-test")
        .with_region("us-east-1")
        .with_access_key_id("AKIAUNKNOWN")
        .with_secret_access_key("hunter2-not-shown")
        .with_retry(RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    let lake = Lake::new("s3://steam-test/raw", Arc::new(store), Path::from("raw"));
    let err = LakeCsvSink::new(lake)
        .write(
            &TableRef::new("t", labelled(0, 1, "").schema()),
            WriteMode::Replace,
            batches(vec![labelled(0, 10, "x")]),
        )
        .await
        .unwrap_err();
    let msg = common::chain_said_once(&err);
    assert!(msg.contains("s3://steam-test/raw/t.csv"), "{msg}");
    assert!(
        matches!(
            err.kind(),
            steam_recsys::core::ErrorKind::Unauthenticated
                | steam_recsys::core::ErrorKind::PermissionDenied
        ),
        "{:?}: {msg}",
        err.kind()
    );
    assert!(
        msg.contains("403") || msg.contains("InvalidAccessKeyId"),
        "{msg}"
    );
    assert!(
        !msg.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{msg}"
    );
}
