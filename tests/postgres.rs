//! The PostgreSQL connector against a real server (started by scripts/test).

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, DictionaryArray, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, LargeStringArray, ListArray, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampNanosecondArray, UInt16Array, UInt32Array,
    UInt8Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use futures::{stream, StreamExt};
use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSink, PostgresSource};
use steam_recsys::core::{batch_stream, BatchStream, Error, Sink, Source, TableRef, WriteMode};

fn batches(list: Vec<RecordBatch>) -> BatchStream {
    batch_stream(stream::iter(list.into_iter().map(Ok)))
}

async fn read_table(config: &PostgresConfig, table: &str, schema: SchemaRef) -> RecordBatch {
    let source = PostgresSource::table(config.clone(), table)
        .await
        .unwrap()
        .with_schema(schema.clone())
        .unwrap();
    concat_batches(&schema, &source.read_all().await.unwrap()).unwrap()
}

async fn count(config: &PostgresConfig, sql: &str) -> i64 {
    let client = config.connect().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

fn every_type() -> RecordBatch {
    let list =
        |v: Vec<Option<Vec<Option<i32>>>>| ListArray::from_iter_primitive::<Int32Type, _, _>(v);
    let text_list = {
        let values = StringArray::from(vec![Some("a,b"), None, Some("\"q\""), Some("")]);
        let offsets = arrow::buffer::OffsetBuffer::new(vec![0, 2, 2, 4, 4].into());
        let nulls = arrow::buffer::NullBuffer::from(vec![true, true, true, false]);
        ListArray::new(
            Arc::new(Field::new("item", DataType::Utf8, true)),
            offsets,
            Arc::new(values),
            Some(nulls),
        )
    };
    let dict: DictionaryArray<Int32Type> = vec![Some("x"), Some("y"), None, Some("x")]
        .into_iter()
        .collect();
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![
                Some(i8::MIN),
                Some(i8::MAX),
                None,
                Some(0),
            ])),
            true,
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![i16::MIN, i16::MAX, 0, -1])),
            false,
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                Some(i32::MAX),
                None,
                Some(7),
            ])),
            true,
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(i64::MAX),
                Some(0),
                None,
            ])),
            true,
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![
                Some(0),
                Some(u8::MAX),
                None,
                Some(1),
            ])),
            true,
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![
                Some(0),
                Some(u16::MAX),
                None,
                Some(1),
            ])),
            true,
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![
                Some(0),
                Some(u32::MAX),
                None,
                Some(1),
            ])),
            true,
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![
                Some(f32::MIN),
                Some(f32::INFINITY),
                None,
                Some(-0.5),
            ])),
            true,
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(f64::MAX),
                Some(f64::NEG_INFINITY),
                Some(1e-300),
                None,
            ])),
            true,
        ),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            true,
        ),
        (
            "text",
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("héllo, \"wörld\"\n\t'😀'"),
                None,
                Some("a\\b"),
            ])),
            true,
        ),
        (
            "large",
            Arc::new(LargeStringArray::from(vec![
                Some("x"),
                Some(""),
                None,
                Some("ü"),
            ])),
            true,
        ),
        ("dict", Arc::new(dict), true),
        (
            "bytes",
            Arc::new(BinaryArray::from(vec![
                Some(&b"\0\xff"[..]),
                Some(b""),
                None,
                Some(b"a"),
            ])),
            true,
        ),
        // 0001-01-01, 9999-12-31, 1970-01-01 and null.
        (
            "day",
            Arc::new(Date32Array::from(vec![
                Some(-719_162),
                Some(2_932_896),
                Some(0),
                None,
            ])),
            true,
        ),
        (
            "at",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(-62_135_596_800_000_000),
                Some(253_402_300_799_999_999),
                None,
                Some(1),
            ])),
            true,
        ),
        (
            "at_tz",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_123_456_000),
                    None,
                    Some(0),
                    Some(-1_000),
                ])
                .with_timezone("UTC"),
            ),
            true,
        ),
        (
            "ints",
            Arc::new(list(vec![
                Some(vec![Some(1), None, Some(3)]),
                Some(vec![]),
                None,
                Some(vec![Some(i32::MIN)]),
            ])),
            true,
        ),
        ("texts", Arc::new(text_list), true),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a, nullable)| Field::new(*n, a.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a, _)| a).collect(),
    )
    .unwrap()
}

#[tokio::test]
async fn every_supported_type_round_trips() {
    let config = common::postgres("types");
    let batch = every_type();
    let schema = batch.schema();
    let table = TableRef::new("all_types", schema.clone());
    let summary = PostgresSink::new(config.clone())
        .write(
            &table,
            WriteMode::Replace,
            batches(vec![batch.clone(), batch.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(summary.rows, 8);
    let back = read_table(&config, "all_types", schema.clone()).await;
    assert_eq!(
        back,
        concat_batches(&schema, &[batch.clone(), batch]).unwrap()
    );

    // The server holds the values themselves, not our encoding of them.
    let client = config.connect().await.unwrap();
    let q = format!(
        "SELECT text, day::text, at::text, ints::text, texts::text, pg_typeof(u32)::text \
         FROM \"{}\".all_types LIMIT 2",
        config.schema()
    );
    let rows = client.query(&q, &[]).await.unwrap();
    let second: (String, String, String, String, String, String) = (
        rows[1].get(0),
        rows[1].get(1),
        rows[1].get(2),
        rows[1].get(3),
        rows[1].get(4),
        rows[1].get(5),
    );
    assert_eq!(second.0, "héllo, \"wörld\"\n\t'😀'");
    assert_eq!(second.1, "9999-12-31");
    assert_eq!(second.2, "9999-12-31 23:59:59.999999");
    assert_eq!(second.3, "{}");
    assert_eq!(second.4, "{}");
    assert_eq!(second.5, "bigint");
    let first_ints: String = rows[0].get(3);
    let first_texts: String = rows[0].get(4);
    assert_eq!(first_ints, "{1,NULL,3}");
    assert_eq!(first_texts, "{\"a,b\",NULL}");
    // Non-nullable fields become NOT NULL columns.
    let not_null = count(
        &config,
        &format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{}' \
             AND table_name = 'all_types' AND is_nullable = 'NO'",
            config.schema()
        ),
    )
    .await;
    assert_eq!(not_null, 1);
}

#[tokio::test]
async fn a_query_reads_with_server_types() {
    let config = common::postgres("query");
    let source = PostgresSource::query(
        config.clone(),
        "SELECT g AS id, g::text || 'x' AS label, g % 2 = 0 AS even, NULL::date AS day \
         FROM generate_series(1, 1000) g;",
    )
    .await
    .unwrap()
    .with_batch_size(300);
    let schema = source.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Int32);
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(3).data_type(), &DataType::Date32);
    let got = source.read_all().await.unwrap();
    assert_eq!(
        got.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        [300, 300, 300, 100]
    );
    let all = concat_batches(&schema, &got).unwrap();
    assert_eq!(common::i32s(&all, "id")[999], Some(1000));
    assert_eq!(common::strings(&all, "label")[0].as_deref(), Some("1x"));

    let err = PostgresSource::query(config.clone(), "SELECT 1.5::numeric AS price")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("price") && err.contains("numeric"), "{err}");
    let err = PostgresSource::query(config, "SELECT * FROM no_such_table")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_table"), "{err}");
}

fn numbered(from: i32, n: i32, text: impl Fn(i32) -> String) -> RecordBatch {
    common::id_label(from, n, text)
}

async fn labels(config: &PostgresConfig, table: &str) -> Vec<(i32, String)> {
    let client = config.connect().await.unwrap();
    let q = format!(
        "SELECT id, label FROM \"{}\".\"{table}\" ORDER BY id",
        config.schema()
    );
    client
        .query(&q, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn replace_keeps_the_old_table_when_a_late_batch_is_rejected() {
    let config = common::postgres("late");
    let sink = PostgresSink::new(config.clone());
    let old = numbered(1, 3, |i| format!("old {i}"));
    let table = TableRef::new("t", old.schema());
    sink.write(&table, WriteMode::Replace, batches(vec![old]))
        .await
        .unwrap();

    // 200,000 good rows (several MiB, so COPY data is on the wire), then one the server refuses:
    // text cannot hold a NUL byte.
    let mut new = Vec::new();
    for b in 0..20 {
        new.push(numbered(b * 10_000, 10_000, |i| format!("new {i}")));
    }
    new.push(numbered(1_000_000, 2, |_| "bad\0value".into()));
    let err = sink
        .write(&table, WriteMode::Replace, batches(new))
        .await
        .unwrap_err();
    let msg = common::chain_said_once(&err);
    assert!(msg.contains(&format!("{}.t", config.schema())), "{msg}");
    assert!(msg.contains("0x00"), "{msg}");
    let expected: Vec<(i32, String)> = (1..=3).map(|i| (i, format!("old {i}"))).collect();
    assert_eq!(labels(&config, "t").await, expected);
    // No staging table is left behind.
    let tables = count(
        &config,
        &format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{}'",
            config.schema()
        ),
    )
    .await;
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn replace_keeps_the_old_table_when_the_connection_dies_mid_copy() {
    let name = common::unique_schema("victim");
    let config = common::postgres("killed").with_application_name(&name);
    let sink = PostgresSink::new(config.clone());
    let old = numbered(1, 5, |i| format!("old {i}"));
    let table = TableRef::new("t", old.schema());
    sink.write(&table, WriteMode::Replace, batches(vec![old]))
        .await
        .unwrap();

    // A stream that, after some batches, has another session terminate the writer's backend.
    let killer = config.clone().with_application_name("killer");
    let stream = stream::iter(0..40).then(move |i| {
        let killer = killer.clone();
        let name = name.clone();
        async move {
            if i == 20 {
                let client = killer.connect().await.unwrap();
                let killed: i64 = client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = $1",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(killed, 1);
                // Go on only once the backend is gone.
                loop {
                    let left: i64 = client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                            &[&name],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if left == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            Ok(numbered(i * 10_000, 10_000, |j| format!("new {j}")))
        }
    });
    let err = sink
        .write(&table, WriteMode::Replace, batch_stream(stream))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    let expected: Vec<(i32, String)> = (1..=5).map(|i| (i, format!("old {i}"))).collect();
    assert_eq!(labels(&config, "t").await, expected);
}

#[tokio::test]
async fn append_and_upsert() {
    let config = common::postgres("modes");
    let sink = PostgresSink::new(config.clone());
    let first = numbered(1, 3, |i| format!("a{i}"));
    let first_schema = first.schema();
    let table = TableRef::new("t", first.schema()).with_keys(["id"]);
    // Upsert creates the table with a primary key on the table's keys.
    sink.write(&table, WriteMode::Upsert, batches(vec![first]))
        .await
        .unwrap();
    let s = sink
        .write(
            &table,
            WriteMode::Upsert,
            batches(vec![numbered(3, 2, |i| format!("b{i}"))]),
        )
        .await
        .unwrap();
    assert_eq!(s.rows, 2);
    assert_eq!(
        labels(&config, "t").await,
        vec![
            (1, "a1".into()),
            (2, "a2".into()),
            (3, "b3".into()),
            (4, "b4".into())
        ]
    );
    sink.write(
        &table,
        WriteMode::Append,
        batches(vec![numbered(10, 1, |_| "c".into())]),
    )
    .await
    .unwrap();
    assert_eq!(labels(&config, "t").await.len(), 5);
    // Appending a duplicate key breaks the primary key: nothing of that write lands.
    let dup = numbered(20, 1, |_| "d".into());
    let err = sink
        .write(&table, WriteMode::Append, batches(vec![dup.clone(), dup]))
        .await
        .unwrap_err();
    assert!(
        common::chain_said_once(&err).contains("duplicate key"),
        "{err}"
    );
    assert_eq!(labels(&config, "t").await.len(), 5);

    // A column whose type differs is refused before copying.
    let wide = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    let err = sink
        .write(
            &TableRef::new("t", wide.clone()),
            WriteMode::Append,
            batches(vec![]),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"id\" is integer") && msg.contains("bigint"),
        "{msg}"
    );
    let err = sink
        .write(
            &table.clone().with_keys(["nope"]),
            WriteMode::Upsert,
            batches(vec![]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    // An upsert into a table without keys names the table.
    let err = sink
        .write(
            &TableRef::new("t", first_schema),
            WriteMode::Upsert,
            batches(vec![]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { .. }) && err.to_string().contains("\"t\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_load_commits_all_tables_or_none() {
    let config = common::postgres("load");
    let sink = PostgresSink::new(config.clone());
    let a = TableRef::new("a", numbered(0, 1, |_| String::new()).schema());
    let b = TableRef::new("b", a.schema.clone());
    sink.write(
        &a,
        WriteMode::Replace,
        batches(vec![numbered(1, 1, |_| "old a".into())]),
    )
    .await
    .unwrap();
    sink.write(
        &b,
        WriteMode::Replace,
        batches(vec![numbered(1, 1, |_| "old b".into())]),
    )
    .await
    .unwrap();

    let load = sink.begin().await.unwrap();
    load.write(
        &a,
        WriteMode::Replace,
        batches(vec![numbered(1, 2, |_| "new a".into())]),
    )
    .await
    .unwrap();
    let failed = load
        .write(
            &b,
            WriteMode::Replace,
            batches(vec![numbered(1, 1, |_| "\0".into())]),
        )
        .await;
    let e = common::chain_said_once(&failed.unwrap_err());
    assert!(
        e.contains("\\0") || e.contains("0x00") || e.contains("NUL"),
        "{e}"
    );
    let e = load.commit().await.unwrap_err().to_string();
    assert!(e.contains("failed"), "{e}");
    assert_eq!(labels(&config, "a").await, vec![(1, "old a".to_string())]);
    assert_eq!(labels(&config, "b").await, vec![(1, "old b".to_string())]);

    let load = sink.begin().await.unwrap();
    load.write(
        &a,
        WriteMode::Replace,
        batches(vec![numbered(1, 2, |_| "new a".into())]),
    )
    .await
    .unwrap();
    // Not visible before commit.
    assert_eq!(labels(&config, "a").await.len(), 1);
    load.write(
        &b,
        WriteMode::Replace,
        batches(vec![numbered(1, 3, |_| "new b".into())]),
    )
    .await
    .unwrap();
    load.commit().await.unwrap();
    assert_eq!(labels(&config, "a").await.len(), 2);
    assert_eq!(labels(&config, "b").await.len(), 3);
}

#[tokio::test]
async fn hostile_names_are_quoted_not_executed() {
    let schema = format!("{}\"; DROP TABLE canary; --", common::unique_schema("evil"));
    let config = PostgresConfig::from_url(&common::postgres_url())
        .unwrap()
        .with_schema(schema.clone());
    let guard = common::postgres("canary");
    let client = guard.connect().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".canary (x int); SET search_path TO \"{0}\"",
            guard.schema()
        ))
        .await
        .unwrap();
    let table_name = "t'); DROP TABLE canary; --\"x";
    let batch = numbered(1, 2, |i| format!("{i}"));
    let table = TableRef::new(table_name, batch.schema());
    PostgresSink::new(config.clone())
        .write(&table, WriteMode::Replace, batches(vec![batch.clone()]))
        .await
        .unwrap();
    let back = read_table(&config, table_name, batch.schema()).await;
    assert_eq!(back, batch);
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
            &[&schema, &table_name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);
    let canary: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'canary'",
            &[&guard.schema()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(canary, 1);
}

#[tokio::test]
async fn wrong_password_names_host_and_user_never_the_password() {
    let url = common::postgres_url();
    let good = PostgresConfig::from_url(&url).unwrap();
    let bad = good
        .clone()
        .with_password("not-the-password-xyzzy".into())
        .with_retries(3, Duration::from_millis(10));
    let err = bad.connect().await.unwrap_err();
    let msg = common::chain_said_once(&err);
    assert!(msg.contains(&good.describe()), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("xyzzy"), "{msg}");
    assert!(!format!("{err:?}").contains("xyzzy"));
    assert!(!format!("{bad:?}").contains("xyzzy"));
    assert_eq!(
        err.kind(),
        steam_recsys::core::ErrorKind::Unauthenticated,
        "{msg}"
    );
    // A refused login is not retried (a retried one says after how many attempts it gave up).
    assert!(!msg.contains("attempts"), "{msg}");
}

#[tokio::test]
async fn server_down_is_a_clear_error_after_the_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = PostgresConfig::from_url(&format!(
        "postgresql://steam:secret-pw@127.0.0.1:{port}/steam"
    ))
    .unwrap()
    .with_retries(2, Duration::from_millis(20));
    let err = config.connect().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = err.to_string();
    assert!(
        err.contains(&format!("steam@127.0.0.1:{port}/steam")),
        "{err}"
    );
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(!err.contains("secret-pw"), "{err}");
}

#[tokio::test]
async fn partitioned_read_returns_every_row_once() {
    let config = common::postgres("parts");
    let client = config.connect().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".big AS \
             SELECT CASE WHEN g % 1000 = 0 THEN NULL ELSE g END AS id, md5(g::text) AS label \
             FROM generate_series(-5000, 44999) g",
            config.schema()
        ))
        .await
        .unwrap();
    let plain = PostgresSource::table(config.clone(), "big").await.unwrap();
    let parted = plain
        .clone()
        .partitioned("id", 4)
        .unwrap()
        .with_batch_size(1000);
    let collect = |batches: Vec<RecordBatch>| {
        let mut rows: Vec<(Option<i32>, String)> = batches
            .iter()
            .flat_map(|b| {
                common::i32s(b, "id")
                    .into_iter()
                    .zip(common::strings(b, "label").into_iter().map(Option::unwrap))
            })
            .collect();
        rows.sort();
        rows
    };
    let a = collect(plain.read_all().await.unwrap());
    let b = collect(parted.read_all().await.unwrap());
    assert_eq!(a.len(), 50_000);
    assert_eq!(a, b);
    let e = plain
        .clone()
        .partitioned("label", 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"label\" is not an integer column"), "{e}");
}

#[cfg(feature = "postgres-tls")]
#[tokio::test]
async fn tls_is_used_and_the_server_certificate_verified() {
    use steam_recsys::connectors::postgres::SslMode;
    let ca = std::env::var("STEAM_TEST_POSTGRES_CA")
        .expect("STEAM_TEST_POSTGRES_CA is set by scripts/services with the server");
    let url = common::postgres_url();
    let ssl = |config: &PostgresConfig| {
        let config = config.clone();
        async move {
            let client = config.connect().await?;
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            Ok::<bool, Error>(row.get(0))
        }
    };
    // The default (prefer) and require encrypt; with a root certificate the server is verified.
    let preferred = PostgresConfig::from_url(&url).unwrap();
    assert!(ssl(&preferred).await.unwrap());
    let verified = PostgresConfig::from_url(&format!("{url}?sslmode=require"))
        .unwrap()
        .with_tls_root_certificate(&ca);
    assert!(ssl(&verified).await.unwrap());
    let plain = verified.clone().with_ssl_mode(SslMode::Disable);
    assert!(!ssl(&plain).await.unwrap());

    // A server whose certificate does not chain to the given root is refused, at once.
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another CA", "-keyout", "/dev/null", "-out"])
        .arg(other_ca.path())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let wrong = verified.clone().with_tls_root_certificate(other_ca.path());
    let err = common::chain_said_once(&ssl(&wrong).await.unwrap_err());
    assert!(
        err.contains("UnknownIssuer") && !err.contains("attempts"),
        "{err}"
    );
    let missing = verified.with_tls_root_certificate("/nonexistent/ca.pem");
    let err = ssl(&missing).await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
