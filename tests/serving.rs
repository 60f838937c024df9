//! Online serving against a real redis-server and the MongoDB-protocol server (scripts/services):
//! the Redis connector's swaps, failed and killed loads, the serving load into both stores, and the
//! HTTP API read through swaps and refreshes, with Redis killed under it.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use futures::{StreamExt, TryStreamExt};
use steam_recsys::connectors::lake::Lake;
use steam_recsys::connectors::mongodb::MongoConfig;
use steam_recsys::connectors::redis::{RedisConfig, RedisSink, RedisSource};
use steam_recsys::core::{
    batch_stream, served_schema, Error, Sink, Source, Table, TableRef, WriteMode,
};
use steam_recsys::pipelines::serving::{lake_to_serving, ServingLoad};
use steam_recsys::pipelines::{serve_until, ServeOptions};

fn mongo() -> MongoConfig {
    let uri = std::env::var("STEAM_TEST_MONGODB_URI").expect(
        "STEAM_TEST_MONGODB_URI is not set: run the tests with scripts/test (scripts/services)",
    );
    MongoConfig::from_url(&uri)
        .unwrap()
        .with_database(common::unique_schema("serving"))
}

/// The served rows of users `users`: each user's three games `user * 10 + salt + 0..3`.
fn served(users: std::ops::Range<i32>, salt: i32) -> RecordBatch {
    use arrow::array::ListBuilder;
    let mut lists = ListBuilder::new(arrow::array::Int32Builder::new()).with_field(Arc::new(
        arrow::datatypes::Field::new("item", arrow::datatypes::DataType::Int32, true),
    ));
    for u in users.clone() {
        lists
            .values()
            .append_slice(&[u * 10 + salt, u * 10 + salt + 1, u * 10 + salt + 2]);
        lists.append(true);
    }
    RecordBatch::try_new(
        served_schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(users)),
            Arc::new(lists.finish()),
        ],
    )
    .unwrap()
}

/// Writes `batches` to the sink's `recsys` table, keyed on `user_id`.
async fn write(
    sink: &RedisSink,
    mode: WriteMode,
    batches: impl IntoIterator<Item = steam_recsys::core::Result<RecordBatch>, IntoIter: Send + 'static>,
) -> steam_recsys::core::Result<steam_recsys::core::WriteSummary> {
    sink.write(&recs(), mode, batch_stream(futures::stream::iter(batches)))
        .await
}

async fn drop_database(mongo: &MongoConfig) {
    let client = mongo.client().await.unwrap();
    client.database(mongo.database()).drop().await.unwrap();
}

/// The served table, keyed on `user_id`.
fn recs() -> TableRef {
    TableRef::new("recsys", served_schema()).with_keys(["user_id"])
}

fn recs_sink(config: &RedisConfig) -> RedisSink {
    RedisSink::new(config.clone())
        .with_value("recommendations")
        .with_batch_entries(100)
}

/// Every (user, game ids) of a table, read back through RedisSource.
async fn read_back(config: &RedisConfig, table: &str) -> HashMap<i32, Vec<i32>> {
    let mut out = HashMap::new();
    let mut batches = RedisSource::new(config.clone(), table, served_schema())
        .with_batch_rows(64)
        .read()
        .await
        .unwrap();
    while let Some(b) = batches.try_next().await.unwrap() {
        let users = common::i32s(&b, "user_id");
        let lists = arrow::array::AsArray::as_list::<i32>(b.column(1));
        for (i, u) in users.into_iter().enumerate() {
            let ids = lists.value(i);
            let ids = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int32Type>(&ids);
            out.insert(u.unwrap(), ids.values().to_vec());
        }
    }
    out
}

async fn redis_conn(config: &RedisConfig) -> redis::aio::MultiplexedConnection {
    config.connect().await.unwrap()
}

/// The keys under the config's prefix.
async fn keys(config: &RedisConfig) -> Vec<String> {
    let mut conn = redis_conn(config).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", config.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_replace_swaps_in_the_whole_new_set_and_reads_back_as_arrow() {
    let config = common::redis("swap");
    let sink = recs_sink(&config);
    let a = write(&sink, WriteMode::Replace, [Ok(served(1..501, 0))])
        .await
        .unwrap();
    assert_eq!(a.rows, 500);
    let first = read_back(&config, "recsys").await;
    assert_eq!(first.len(), 500);
    assert_eq!(first[&7], [70, 71, 72]);
    let run_a = RedisSource::new(config.clone(), "recsys", served_schema())
        .run()
        .await
        .unwrap()
        .unwrap();

    write(
        &sink,
        WriteMode::Replace,
        [Ok(served(100..401, 5)), Ok(served(401..451, 5))],
    )
    .await
    .unwrap();
    let second = read_back(&config, "recsys").await;
    assert_eq!(second.len(), 351, "users gone from the new rows are gone");
    assert_eq!(second[&100], [1005, 1006, 1007]);
    assert!(!second.contains_key(&7));
    let run_b = RedisSource::new(config.clone(), "recsys", served_schema())
        .run()
        .await
        .unwrap()
        .unwrap();
    assert!(run_b > run_a);
    // Nothing is left over but the live hash and the (empty, so absent) set of loads.
    assert_eq!(keys(&config).await, [config.table_key("recsys")]);

    // Append sets entries in place, leaving the others.
    write(&sink, WriteMode::Append, [Ok(served(1..3, 9))])
        .await
        .unwrap();
    let third = read_back(&config, "recsys").await;
    assert_eq!(third.len(), 353);
    assert_eq!(third[&1], [19, 20, 21]);
}

#[tokio::test]
async fn a_key_twice_in_a_load_is_refused_and_the_old_set_stays() {
    let config = common::redis("twice");
    let sink = recs_sink(&config);
    write(&sink, WriteMode::Replace, [Ok(served(1..11, 0))])
        .await
        .unwrap();
    let err = write(
        &sink,
        WriteMode::Replace,
        [Ok(served(1..6, 5)), Ok(served(5..9, 5))],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("a key repeats"), "{err}");
    assert!(err.contains("redis"), "{err}");
    let kept = read_back(&config, "recsys").await;
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[&5], [50, 51, 52]);
    assert_eq!(
        keys(&config).await,
        [config.table_key("recsys")],
        "the failed load is removed"
    );
}

#[tokio::test]
async fn a_load_that_fails_or_is_killed_midway_leaves_the_old_set_serving() {
    let config = common::redis("killed");
    let sink = recs_sink(&config);
    write(&sink, WriteMode::Replace, [Ok(served(1..1001, 0))])
        .await
        .unwrap();

    // A producer that fails midway.
    let failing = [
        Ok(served(1..301, 5)),
        Err(Error::backend_msg("test", "producer", "failed midway")),
    ];
    let err = write(&sink, WriteMode::Replace, failing).await.unwrap_err();
    assert!(err.to_string().contains("failed midway"), "{err}");
    assert_eq!(read_back(&config, "recsys").await[&1], [10, 11, 12]);
    assert_eq!(keys(&config).await, [config.table_key("recsys")]);

    // A load killed midway: its producer stalls after 300 rows and the task is aborted.
    let stalled = futures::stream::iter([Ok(served(1..301, 5))]).chain(futures::stream::pending());
    let killed = {
        let sink = sink.clone();
        let table = recs();
        tokio::spawn(async move {
            sink.write(&table, WriteMode::Replace, batch_stream(stalled))
                .await
        })
    };
    let partial = loop {
        let k = keys(&config).await;
        if let Some(load) = k.iter().find(|k| k.contains(":load:")) {
            let mut conn = redis_conn(&config).await;
            let n: u64 = redis::cmd("HLEN")
                .arg(load)
                .query_async(&mut conn)
                .await
                .unwrap();
            if n >= 300 {
                break load.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    killed.abort();
    let _ = killed.await;
    let old = read_back(&config, "recsys").await;
    assert_eq!(old.len(), 1000, "the old set still serves");
    assert_eq!(old[&1], [10, 11, 12]);
    assert!(
        keys(&config).await.contains(&partial),
        "the killed load's leftovers"
    );

    // The next load removes the leftovers and completes.
    write(&sink, WriteMode::Replace, [Ok(served(1..801, 5))])
        .await
        .unwrap();
    let new = read_back(&config, "recsys").await;
    assert_eq!(new.len(), 800);
    assert_eq!(new[&1], [15, 16, 17]);
    assert_eq!(keys(&config).await, [config.table_key("recsys")]);
}

/// A results lake (user_recommendations.parquet, with the popular list beside it) and a conformed
/// layer with users_mapping (`user{N}` → N) for users `users`.
struct Fixture {
    _dir: tempfile::TempDir,
    results: Lake,
    conformed: Lake,
    results_file: std::path::PathBuf,
}

impl Fixture {
    fn new(users: std::ops::Range<i32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let results_file = dir.path().join("results/user_recommendations.parquet");
        let popular = dir
            .path()
            .join("results/user_recommendations.popular.parquet");
        let ranked = RecordBatch::try_new(
            steam_recsys::pipelines::train::popular_file_schema(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(Int32Array::from(vec![900, 901, 902])),
            ],
        )
        .unwrap();
        write_parquet(&popular, &ranked);
        let mapping = RecordBatch::try_new(
            Table::UsersMapping.schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(users.clone())),
                Arc::new(StringArray::from_iter_values(
                    users.map(|u| format!("user{u}")),
                )),
            ],
        )
        .unwrap();
        write_parquet(
            &dir.path()
                .join("conformed/users_mapping/record_created_dt=2026-11-30/part-00000.parquet"),
            &mapping,
        );
        Fixture {
            results: Lake::from_env(results_file.to_str().unwrap()).unwrap(),
            conformed: Lake::from_env(dir.path().join("conformed").to_str().unwrap()).unwrap(),
            results_file,
            _dir: dir,
        }
    }

    /// Writes the similar games `train` writes beside the results (see [`write_similar`]).
    fn write_similar(&self, games: std::ops::Range<i32>) {
        let file = steam_recsys::pipelines::train::similar_file(&self.results).unwrap();
        let name = file.path(&[]).filename().unwrap().to_owned();
        assert_eq!(name, "user_recommendations.similar.parquet");
        write_similar(&self.results_file.with_file_name(name), games);
    }

    /// Writes the results of `users` with `salt` and runs the serving load.
    async fn load(
        &self,
        users: std::ops::Range<i32>,
        salt: i32,
        mongo: &MongoConfig,
        redis: Option<&RedisConfig>,
    ) -> steam_recsys::core::RunSummary {
        common::write_recommendations(&self.results_file, users, salt);
        let mut load = ServingLoad::new(self.results.clone(), mongo.clone(), "recsys");
        load.users = Some(self.conformed.clone());
        load.redis = redis.cloned();
        lake_to_serving(&load).await.unwrap()
    }
}

/// The similar games of game `g`, most similar first: `g * 10 + 3`, `+ 1`, `+ 2` (not in id order).
fn similar_of(g: i32) -> (Vec<i32>, Vec<f32>) {
    (
        vec![g * 10 + 3, g * 10 + 1, g * 10 + 2],
        vec![0.875, 0.5, 0.25],
    )
}

/// Writes a similar games file (`steam_core::similar_games_schema`) of games `games`
/// ([`similar_of`]), with a game 0 whose list is null (no similar games).
fn write_similar(path: &std::path::Path, games: std::ops::Range<i32>) {
    use arrow::array::{Array, Float32Array, ListArray, StructArray};
    let schema = steam_recsys::core::similar_games_schema();
    let arrow::datatypes::DataType::List(item) = schema.field(1).data_type().clone() else {
        unreachable!()
    };
    let arrow::datatypes::DataType::Struct(fields) = item.data_type().clone() else {
        unreachable!()
    };
    let (mut ids, mut scores, mut lengths) = (Vec::new(), Vec::new(), vec![0]);
    for g in games.clone() {
        let (i, s) = similar_of(g);
        lengths.push(i.len());
        ids.extend(i);
        scores.extend(s);
    }
    let structs = StructArray::new(
        fields,
        vec![
            Arc::new(Int32Array::from(ids)),
            Arc::new(Float32Array::from(scores)),
        ],
        None,
    );
    let valid =
        arrow::buffer::NullBuffer::from_iter(lengths.iter().enumerate().map(|(i, _)| i > 0));
    let list = ListArray::new(
        item,
        arrow::buffer::OffsetBuffer::from_lengths(lengths),
        Arc::new(structs),
        Some(valid),
    );
    assert!(list.is_null(0));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                std::iter::once(0).chain(games),
            )),
            Arc::new(list),
        ],
    )
    .unwrap();
    write_parquet(path, &batch);
}

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// The API on a free port, stopped when the returned sender is dropped or sent to.
async fn start_api(
    mongo: &MongoConfig,
    redis: Option<&RedisConfig>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut options = ServeOptions::new(mongo.clone(), "recsys");
    options.redis = redis.cloned();
    start_api_with(options).await
}

/// [`start_api`] with options of the test's own.
async fn start_api_with(mut options: ServeOptions) -> (String, tokio::sync::oneshot::Sender<()>) {
    options.bind = "127.0.0.1:0".parse().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        serve_until(
            &options,
            async {
                let _ = stopped.await;
            },
            Some(bound_tx),
        )
        .await
        .unwrap();
    });
    let addr = bound.await.unwrap();
    (format!("http://{addr}"), stop)
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn ids(body: &serde_json::Value) -> Vec<i64> {
    body["game_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no game_ids in {body}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// The API's /metrics text.
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// The value of a Prometheus sample line starting with `prefix`, 0 if absent.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_users_names_unknown_users_and_bad_ids_and_counts_them() {
    let mongo = mongo();
    let redis = common::redis("api");
    let fixture = Fixture::new(1..201);
    fixture.write_similar(1..51);
    let summary = fixture.load(1..201, 0, &mongo, Some(&redis)).await;
    let names: Vec<&str> = summary.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        names,
        [
            "recsys → mongodb",
            "recsys → redis",
            "recsys_popular → mongodb",
            "recsys_popular → redis",
            "recsys_similar → mongodb",
            "recsys_similar → redis",
            "recsys_users → mongodb",
            "recsys_users → redis",
        ]
    );
    let similar_rows = summary.table("recsys_similar → redis").unwrap().rows;
    assert_eq!(similar_rows, 50, "game 0's null list is no entry");
    let run = RedisSource::new(redis.clone(), "recsys", served_schema())
        .run()
        .await
        .unwrap()
        .unwrap();
    let (base, _stop) = start_api(&mongo, Some(&redis)).await;
    let client = reqwest::Client::new();

    let (status, body) = get(&client, &format!("{base}/users/7/recommendations")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], 7);
    assert_eq!(ids(&body), [70, 71, 72]);
    assert_eq!(body["model"], run.as_str());
    assert!(body.get("fallback").is_none(), "{body}");

    let (status, body) = get(
        &client,
        &format!("{base}/users/by-name/user42/recommendations"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], 42);
    assert_eq!(body["username"], "user42");
    assert_eq!(ids(&body), [420, 421, 422]);

    // A user the model does not know: the popular list.
    let (status, body) = get(&client, &format!("{base}/users/5000/recommendations")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fallback"], "popular");
    assert_eq!(ids(&body), [900, 901, 902]);
    assert_eq!(body["model"], run.as_str());

    let (status, body) = get(
        &client,
        &format!("{base}/users/by-name/nobody/recommendations"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nobody"), "{body}");
    for bad in ["abc", "1.5", "99999999999", "%20"] {
        let (status, body) = get(&client, &format!("{base}/users/{bad}/recommendations")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["status"], 400);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("not a 32-bit integer"),
            "{body}"
        );
    }

    // Redis keeps each game's ids and scores packed in one entry, under the load's run.
    let packed = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("game_id", arrow::datatypes::DataType::Int32, false),
        arrow::datatypes::Field::new("similar", arrow::datatypes::DataType::Binary, false),
    ]));
    let entries = RedisSource::new(redis.clone(), "recsys_similar", packed.clone());
    assert_eq!(entries.run().await.unwrap().as_deref(), Some(run.as_str()));
    let entries: Vec<RecordBatch> = entries.read().await.unwrap().try_collect().await.unwrap();
    let entries = arrow::compute::concat_batches(&packed, &entries).unwrap();
    assert_eq!(entries.num_rows(), 50);
    let values = arrow::array::AsArray::as_binary::<i32>(entries.column(1));
    for (i, game) in common::i32s(&entries, "game_id").into_iter().enumerate() {
        let decoded = steam_recsys::connectors::redis::decode_scored(values.value(i));
        assert_eq!(decoded, Some(similar_of(game.unwrap())));
    }

    // Similar games: from Redis here, from MongoDB on an API without Redis, the same answer.
    let hits = metric(
        &metrics_text(&client, &base).await,
        "steam_recsys_cache_hits_total",
    );
    let (stored, _stop_stored) = start_api(&mongo, None).await;
    for api in [&base, &stored] {
        for game in [7, 1, 50] {
            let (status, body) = get(&client, &format!("{api}/games/{game}/similar")).await;
            assert_eq!(status, 200, "{body}");
            let (want_ids, want_scores) = similar_of(game);
            assert_eq!(body["game_id"], game);
            assert_eq!(
                ids(&body),
                want_ids.iter().map(|&g| i64::from(g)).collect::<Vec<_>>()
            );
            let scores: Vec<f64> = body["scores"]
                .as_array()
                .unwrap_or_else(|| panic!("no scores in {body}"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want: Vec<f64> = want_scores.iter().map(|&s| f64::from(s)).collect();
            assert_eq!(scores, want, "{body}");
            assert_eq!(body["model"], run.as_str(), "{body}");
        }
    }
    let hits_after = metric(
        &metrics_text(&client, &base).await,
        "steam_recsys_cache_hits_total",
    );
    assert_eq!(hits_after - hits, 3.0, "the similar lists came from Redis");
    for game in [0, 51, 5000] {
        let (status, body) = get(&client, &format!("{base}/games/{game}/similar")).await;
        assert_eq!(status, 404, "{game}: {body}");
        assert_eq!(body["status"], 404);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(&format!("game {game}")),
            "{body}"
        );
    }
    for bad in ["abc", "99999999999"] {
        let (status, body) = get(&client, &format!("{base}/games/{bad}/similar")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["status"], 400);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("not a 32-bit integer"),
            "{body}"
        );
    }

    let (status, body) = get(&client, &format!("{base}/healthz")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ok")),
        "{body}"
    );

    let text = metrics_text(&client, &base).await;
    let similar = "steam_recsys_http_requests_total{route=\"/games/{game_id}/similar\"";
    for (status, n) in [(200, 3.0), (404, 3.0), (400, 2.0)] {
        assert_eq!(
            metric(&text, &format!("{similar},status=\"{status}\"}}")),
            n,
            "{text}"
        );
    }
    let route = "steam_recsys_http_requests_total{route=\"/users/{user_id}/recommendations\"";
    assert_eq!(
        metric(&text, &format!("{route},status=\"200\"}}")),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, &format!("{route},status=\"400\"}}")),
        4.0,
        "{text}"
    );
    assert!(
        metric(&text, "steam_recsys_cache_hits_total") >= 3.0,
        "{text}"
    );
    assert!(
        metric(&text, "steam_recsys_cache_misses_total") >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "steam_recsys_fallbacks_total{kind=\"popular\"}"),
        1.0,
        "{text}"
    );
    assert!(
        text.contains("steam_recsys_http_request_duration_seconds_bucket"),
        "{text}"
    );
    drop_database(&mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_without_similar_games_serves_the_rest_and_answers_404_for_them() {
    let mongo = mongo();
    let redis = common::redis("nosimilar");
    let fixture = Fixture::new(1..101);
    let summary = fixture.load(1..101, 0, &mongo, Some(&redis)).await;
    assert!(
        summary.tables.iter().all(|t| !t.table.contains("similar")),
        "{:?}",
        summary.tables
    );
    assert!(summary.table("recsys_popular → redis").is_some());
    for api in [Some(&redis), None] {
        let (base, _stop) = start_api(&mongo, api).await;
        let client = reqwest::Client::new();
        let (status, body) = get(&client, &format!("{base}/users/7/recommendations")).await;
        assert_eq!((status, ids(&body)), (200, vec![70, 71, 72]), "{body}");
        let (status, body) = get(&client, &format!("{base}/games/7/similar")).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("no similar games"),
            "{body}"
        );
    }

    // Then results with similar games: loaded; then results without: the stores keep them.
    fixture.write_similar(1..11);
    let with = fixture.load(1..101, 5, &mongo, Some(&redis)).await;
    assert_eq!(with.table("recsys_similar → mongodb").unwrap().rows, 10);
    std::fs::remove_file(
        fixture
            .results_file
            .with_file_name("user_recommendations.similar.parquet"),
    )
    .unwrap();
    fixture.load(1..101, 0, &mongo, Some(&redis)).await;
    let (base, _stop) = start_api(&mongo, Some(&redis)).await;
    let (status, body) = get(&reqwest::Client::new(), &format!("{base}/games/3/similar")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), [33, 31, 32]);
    drop_database(&mongo).await;
}

/// Requests random users of `users` in a loop until `stop`, checking each answer is one whole
/// load's list (salt 0 or 5) and that each `model` always goes with the same salt. Returns the
/// number of answers.
async fn reader_loop(
    base: String,
    users: std::ops::Range<i32>,
    stop: Arc<AtomicBool>,
    models: Arc<std::sync::Mutex<HashMap<String, i64>>>,
) -> usize {
    let client = reqwest::Client::new();
    let mut answers = 0;
    while !stop.load(Ordering::Relaxed) {
        let user = fastrand_user(&users, answers);
        let (salt, body) = whole_list(&client, &base, user).await;
        let model = body["model"].as_str().unwrap().to_owned();
        let mut seen = models.lock().unwrap();
        let expected = *seen.entry(model.clone()).or_insert(salt);
        assert_eq!(
            expected, salt,
            "model {model} answered with two loads' lists"
        );
        answers += 1;
    }
    answers
}

fn fastrand_user(users: &std::ops::Range<i32>, i: usize) -> i32 {
    let span = (users.end - users.start) as usize;
    users.start + ((i * 7919 + 13) % span) as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_miss_a_user_or_mix_two_loads_through_swaps_and_refreshes() {
    let mongo = mongo();
    let redis = common::redis("readers");
    let fixture = Fixture::new(1..3001);
    fixture.load(1..3001, 0, &mongo, Some(&redis)).await;
    // One API reads Redis first, the other MongoDB alone.
    let (cached, _stop_a) = start_api(&mongo, Some(&redis)).await;
    let (stored, _stop_b) = start_api(&mongo, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let models = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let readers: Vec<_> = [cached, stored.clone(), stored]
        .into_iter()
        .map(|base| {
            tokio::spawn(reader_loop(
                base,
                1..2501, // present in every load
                stop.clone(),
                models.clone(),
            ))
        })
        .collect();
    // Each load waits until the readers have answered with the one before it, so that every load
    // is seen whatever the machine's speed (no fixed sleeps).
    let seen_loads = |n: usize| {
        let models = models.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while models.lock().unwrap().len() < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the readers never saw load {n}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    seen_loads(1).await;
    for (i, (users, salt)) in [(1..2801, 5), (1..3001, 0), (1..2601, 5)]
        .into_iter()
        .enumerate()
    {
        fixture.load(users, salt, &mongo, Some(&redis)).await;
        seen_loads(i + 2).await;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let seen = models.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "the readers saw every load: {seen:?}");
    drop_database(&mongo).await;
}

/// Reads random users of `users` until `stop`, asserting each answer is one whole list of the
/// user's (salt 0 or 5), never a fallback; returns the answers.
async fn changed_reader(base: String, users: std::ops::Range<i32>, stop: Arc<AtomicBool>) -> usize {
    let client = reqwest::Client::new();
    let mut answers = 0;
    while !stop.load(Ordering::Relaxed) {
        whole_list(&client, &base, fastrand_user(&users, answers)).await;
        answers += 1;
    }
    answers
}

/// Asks for `user`'s list, asserting it is there (no fallback) and one load's whole list (salt 0
/// or 5); returns the salt and the answer.
async fn whole_list(client: &reqwest::Client, base: &str, user: i32) -> (i64, serde_json::Value) {
    let (status, body) = get(client, &format!("{base}/users/{user}/recommendations")).await;
    assert_eq!(status, 200, "user {user}: {body}");
    assert!(
        body.get("fallback").is_none(),
        "user {user} missing: {body}"
    );
    let got = ids(&body);
    let salt = got[0] - i64::from(user) * 10;
    assert!(salt == 0 || salt == 5, "user {user}: {body}");
    let want: Vec<i64> = (0..3).map(|k| i64::from(user) * 10 + salt + k).collect();
    assert_eq!(got, want, "one load's whole list");
    (salt, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_only_refresh_writes_the_changes_and_readers_see_whole_lists() {
    let mongo = mongo();
    let redis = common::redis("changed");
    let fixture = Fixture::new(1..3001);
    let served = steam_recsys::pipelines::serving::served_file(&fixture.results).unwrap();
    let load = |only_changed: bool| {
        let mut load = ServingLoad::new(fixture.results.clone(), mongo.clone(), "recsys");
        load.users = Some(fixture.conformed.clone());
        load.redis = Some(redis.clone());
        load.served = Some(served.clone());
        load.only_changed = only_changed;
        load
    };
    // A full load, which keeps a copy of what it served.
    common::write_recommendations(&fixture.results_file, 1..2801, 0);
    let full = lake_to_serving(&load(true)).await.unwrap();
    let mongo_rows = |s: &steam_recsys::core::RunSummary, table: &str| {
        s.tables
            .iter()
            .find(|t| t.table == format!("{table} → mongodb"))
            .unwrap()
            .rows
    };
    assert_eq!(mongo_rows(&full, "recsys"), 2800, "no copy yet: everything");

    let (cached, _stop_a) = start_api(&mongo, Some(&redis)).await;
    let (stored, _stop_b) = start_api(&mongo, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [cached, stored]
        .into_iter()
        .map(|base| tokio::spawn(changed_reader(base, 1..2801, stop.clone())))
        .collect();
    // A third of the users get another list, 200 users are new: only they are written.
    let changed = |u: i32| if u % 3 == 0 { 5 } else { 0 };
    common::write_recommendations_with(&fixture.results_file, 1..3001, changed);
    let refresh = lake_to_serving(&load(true)).await.unwrap();
    let moved = (1..2801).filter(|u| u % 3 == 0).count() as u64;
    assert_eq!(mongo_rows(&refresh, "recsys"), moved + 200);
    // The users mapping: only the users after the largest id served before.
    assert_eq!(mongo_rows(&refresh, "recsys_users"), 200);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    // Both stores hold every user's newest list.
    let cached = read_back(&redis, "recsys").await;
    assert_eq!(cached.len(), 3000);
    for u in 1..3001 {
        assert_eq!(cached[&u][0], u * 10 + changed(u), "user {u}");
    }
    // The same results again: nothing to write.
    let again = lake_to_serving(&load(true)).await.unwrap();
    assert_eq!(mongo_rows(&again, "recsys"), 0);
    drop_database(&mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_answers_come_from_mongodb_and_health_says_degraded() {
    let server = std::env::var("STEAM_TEST_REDIS_SERVER").expect(
        "STEAM_TEST_REDIS_SERVER is not set: run the tests with scripts/test (scripts/services)",
    );
    let port = common::free_port();
    let mut command = std::process::Command::new(server);
    command.args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--bind",
        "127.0.0.1",
        "--port",
    ]);
    command.arg(port.to_string());
    let own = common::OwnServer::start(command, port);
    let redis = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
    let mongo = mongo();
    let fixture = Fixture::new(1..101);
    fixture.load(1..101, 0, &mongo, Some(&redis)).await;
    let (base, _stop) = start_api(&mongo, Some(&redis)).await;
    let client = reqwest::Client::new();
    let (status, before) = get(&client, &format!("{base}/users/9/recommendations")).await;
    assert_eq!(status, 200);

    drop(own);
    let served = AtomicUsize::new(0);
    for user in 1..=20 {
        let (status, body) = get(&client, &format!("{base}/users/{user}/recommendations")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ids(&body), [user * 10, user * 10 + 1, user * 10 + 2]);
        served.fetch_add(1, Ordering::Relaxed);
    }
    let (_, again) = get(&client, &format!("{base}/users/9/recommendations")).await;
    assert_eq!(
        again["model"], before["model"],
        "the same load, from MongoDB"
    );
    let (status, body) = get(
        &client,
        &format!("{base}/users/by-name/user3/recommendations"),
    )
    .await;
    assert_eq!((status, body["user_id"].as_i64()), (200, Some(3)), "{body}");
    let (status, health) = get(&client, &format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["redis"], "down");
    assert_eq!(health["mongodb"], "up");
    let text = metrics_text(&client, &base).await;
    assert!(
        metric(&text, "steam_recsys_cache_errors_total") >= 1.0,
        "{text}"
    );
    drop_database(&mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_its_time_is_a_504_with_a_json_error() {
    let mongo = mongo();
    let mut options = ServeOptions::new(mongo.clone(), "recsys");
    options.timeout = Duration::from_nanos(1);
    options.concurrency = 1;
    let (base, _stop) = start_api_with(options).await;
    let client = reqwest::Client::new();
    let (status, body) = get(&client, &format!("{base}/users/7/recommendations")).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["status"], 504);
    assert!(
        body["error"].as_str().unwrap().contains("no answer within"),
        "{body}"
    );
    let text = metrics_text(&client, &base).await;
    let route = "steam_recsys_http_requests_total{route=\"/users/{user_id}/recommendations\"";
    assert_eq!(
        metric(&text, &format!("{route},status=\"504\"}}")),
        1.0,
        "{text}"
    );
}
