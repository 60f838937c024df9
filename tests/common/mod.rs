//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Date32Type, Float32Type, Int32Type, Int64Type};
use steam_recsys::connectors::files::ParquetFileSource;
use steam_recsys::core::Table;

/// The real scraped files, kept in the repository as test fixtures (see their README).
pub fn real_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real")
}

/// The documented sizes of the tables made from the real description and ranking files.
pub const REAL_TABLE_SIZES: [(Table, u64); 9] = [
    (Table::GamesDescription, 290),
    (Table::GenreDimension, 350),
    (Table::GenreMapping, 5_507),
    (Table::DeveloperDimension, 247),
    (Table::DeveloperMapping, 375),
    (Table::PublisherDimension, 182),
    (Table::PublisherMapping, 328),
    (Table::RankDimension, 3),
    (Table::GamesRanking, 438),
];

/// One processed table, read back whole.
pub fn table(out: &Path, table: Table) -> RecordBatch {
    let source = ParquetFileSource::open(out.join(format!("{}.parquet", table.name()))).unwrap();
    let batches = source.read_all().unwrap();
    concat_batches(&table.schema(), &batches).unwrap()
}

/// Rows in a processed table.
pub fn rows(out: &Path, t: Table) -> usize {
    table(out, t).num_rows()
}

pub fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).unwrap().as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

pub fn i32s(b: &RecordBatch, col: &str) -> Vec<Option<i32>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int32Type>()
        .iter()
        .collect()
}

pub fn i64s(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

pub fn f32s(b: &RecordBatch, col: &str) -> Vec<Option<f32>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Float32Type>()
        .iter()
        .collect()
}

/// A Date32 column as ISO dates.
pub fn dates(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .map(|d| {
            d.map(|d| {
                chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
                    .unwrap()
                    .to_string()
            })
        })
        .collect()
}

/// The rejects ledger of a raw file, as (line, column, value, reason) rows.
pub fn ledger(out: &Path, file: &str) -> Vec<(u64, String, String, String)> {
    let mut r = csv::Reader::from_path(out.join("_rejected").join(file)).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        vec!["file", "line", "column", "value", "reason"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(&rec[0], file);
            (
                rec[1].parse().unwrap(),
                rec[2].to_owned(),
                rec[3].to_owned(),
                rec[4].to_owned(),
            )
        })
        .collect()
}

/// Writes the three raw files into a new directory.
pub fn raw_dir(descriptions: &str, ranking: &str, reviews: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("games_description.csv"), descriptions).unwrap();
    std::fs::write(dir.path().join("games_ranking.csv"), ranking).unwrap();
    std::fs::write(dir.path().join("steam_game_reviews.csv"), reviews).unwrap();
    dir
}

/// The throwaway PostgreSQL server that `scripts/test` starts (`scripts/services`).
pub fn postgres_url() -> String {
    std::env::var("STEAM_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "STEAM_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts a \
             throwaway PostgreSQL server, or start one with `scripts/services start DIR` and \
             source DIR/env"
        )
    })
}

/// A schema name no other test uses.
pub fn unique_schema(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A configuration for the test server, in a schema of its own.
pub fn postgres(prefix: &str) -> steam_recsys::connectors::postgres::PostgresConfig {
    steam_recsys::connectors::postgres::PostgresConfig::from_url(&postgres_url())
        .unwrap()
        .with_schema(unique_schema(prefix))
}

/// A batch of `id` (Int32, non-null) from `from`, and `label` (Utf8) = `text(id)`.
pub fn id_label(from: i32, n: i32, text: impl Fn(i32) -> String) -> RecordBatch {
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("label", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(Int32Array::from_iter_values(from..from + n)),
            std::sync::Arc::new(StringArray::from_iter_values((from..from + n).map(text))),
        ],
    )
    .unwrap()
}

/// A server process of a test's own, listening on 127.0.0.1:`port`, killed when dropped.
pub struct OwnServer(std::process::Child);

impl OwnServer {
    /// Spawns `command` (output discarded) and waits until `port` accepts connections.
    pub fn start(mut command: std::process::Command, port: u16) -> OwnServer {
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = OwnServer(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{command:?} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The objects of a lake, sorted.
pub async fn objects(lake: &steam_recsys::connectors::lake::Lake) -> Vec<String> {
    use futures::TryStreamExt;
    let mut names: Vec<String> = lake
        .store()
        .list(Some(lake.prefix()))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

/// The test Redis server (`STEAM_TEST_REDIS_URL`, set by scripts/services) with a key prefix of
/// this test's own, so that tests running at once never share keys.
pub fn redis(prefix: &str) -> steam_recsys::connectors::redis::RedisConfig {
    let url = std::env::var("STEAM_TEST_REDIS_URL").expect(
        "STEAM_TEST_REDIS_URL is not set: run the tests with scripts/test (scripts/services)",
    );
    steam_recsys::connectors::redis::RedisConfig::from_url(&url)
        .unwrap()
        .with_prefix(format!("{}:", unique_schema(prefix)))
}

/// Writes `user_recommendations` in Spark's schema to `path`: users `users`, each with the three
/// games `user * 10 + salt + 0..3`, best first.
pub fn write_recommendations(path: &std::path::Path, users: std::ops::Range<i32>, salt: i32) {
    write_recommendations_with(path, users, |_| salt)
}

/// [`write_recommendations`] with each user's own salt.
pub fn write_recommendations_with(
    path: &std::path::Path,
    users: std::ops::Range<i32>,
    salt: impl Fn(i32) -> i32,
) {
    let schema = steam_recsys::core::recommendations_schema();
    let arrow::datatypes::DataType::List(item) = schema.field(1).data_type().clone() else {
        unreachable!()
    };
    let arrow::datatypes::DataType::Struct(fields) = item.data_type().clone() else {
        unreachable!()
    };
    let n = users.len();
    let games: Vec<i32> = users
        .clone()
        .flat_map(|u| {
            let salt = salt(u);
            (0..3).map(move |k| u * 10 + k + salt)
        })
        .collect();
    let ratings: Vec<f32> = (0..games.len()).map(|i| 1.0 - i as f32 / 1000.0).collect();
    let structs = arrow::array::StructArray::new(
        fields,
        vec![
            std::sync::Arc::new(arrow::array::Int32Array::from(games)),
            std::sync::Arc::new(arrow::array::Float32Array::from(ratings)),
        ],
        None,
    );
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(3, n));
    let list = arrow::array::ListArray::new(item, offsets, std::sync::Arc::new(structs), None);
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow::array::Int32Array::from_iter_values(users)),
            std::sync::Arc::new(list),
        ],
    )
    .unwrap();
    // Written aside and renamed into place, as `train` publishes it.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let aside = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&aside).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// `err` and its causes in one line, asserting on the way that each is said once: no level's
/// message repeats the text of the level under it (a backend's message says what was being done,
/// its source why).
pub fn chain_said_once(err: &steam_recsys::core::Error) -> String {
    let levels: Vec<String> = std::iter::once(err as &(dyn std::error::Error + 'static))
        .chain(steam_recsys::core::causes(err))
        .map(|e| e.to_string())
        .collect();
    for pair in levels.windows(2) {
        assert!(
            pair[1].is_empty() || !pair[0].contains(&pair[1]),
            "{:?} repeats its cause {:?}",
            pair[0],
            pair[1]
        );
    }
    steam_recsys::core::error_chain(err)
}
