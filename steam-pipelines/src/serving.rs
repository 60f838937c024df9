//! The serving load (the reference's gcs_to_mongodb, with Redis as the serving copy) and
//! connection_testing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use steam_connectors::lake::{Lake, LakeSource};
use steam_connectors::mongodb::{MongoConfig, MongoSink, MongoSource};
use steam_connectors::postgres::PostgresConfig;
use steam_connectors::redis::{RedisConfig, RedisSink};
use steam_core::{
    batch_stream, BatchStream, Error, Result, RunSummary, Sink, Source, StageSummary, TableRef,
    WriteMode, WriteSummary,
};
use steam_transforms::{remove_probability, served_schema};

/// The reference's collection of served recommendations.
pub const DEFAULT_COLLECTION: &str = "recsys";

/// What the serving load reads and where it writes: see [`lake_to_serving`].
#[derive(Debug, Clone)]
pub struct ServingLoad {
    /// The recommendations: a Parquet object in Spark's `recommendForAllUsers` schema, or a prefix
    /// of such objects.
    pub results: Lake,
    /// The conformed layer whose `users_mapping` table (its latest partition) is loaded for
    /// lookups by username; `None` loads none.
    pub users: Option<Lake>,
    /// MongoDB, the system of record.
    pub mongo: MongoConfig,
    /// The collection of recommendations; [`ServingTables`] names the others after it.
    pub collection: String,
    /// Redis, the serving copy, if any.
    pub redis: Option<RedisConfig>,
    /// How the stores are written: [`WriteMode::Replace`] (refresh, the default: see
    /// [`lake_to_serving`]), [`WriteMode::Append`] (insert into MongoDB; set entries in place in
    /// Redis), or [`WriteMode::Upsert`] (on [`ServingLoad::keys`], nothing removed).
    pub mode: WriteMode,
    /// The recommendations' key columns (default `user_id`): what MongoDB's refresh and upsert
    /// match documents on, and Redis keys its entries by (there one column only).
    pub keys: Vec<String>,
    /// Where a copy of the results last served is kept (see [`served_file`]): after a load that
    /// succeeds in every store, the results loaded are copied there by the store (on a local
    /// directory a hard link: results are to be replaced by a rename, as `train` publishes them,
    /// not rewritten in place).
    pub served: Option<Lake>,
    /// Write only what changed since the results in [`ServingLoad::served`] (when there are
    /// some): the users whose list differs and the new users, upserted (never removed), and
    /// users_mapping's users after the largest id served before. A reader gets a user's old
    /// list or new list, whole, throughout, also when the load dies midway; the copy is then
    /// still the old one, so the next load writes everything that changed since.
    pub only_changed: bool,
}

/// The copy of the results last served, for results object `results`: beside it,
/// `<name>.served.parquet`. `None` when `results` is not a `.parquet` object.
pub fn served_file(results: &Lake) -> Option<Lake> {
    let object = results.path(&[]);
    let file = object.filename()?.strip_suffix(".parquet")?.to_owned();
    results.sibling(&format!("{file}.served.parquet"))
}

/// The lists of the results last served, by user, if there is a copy.
async fn read_served(served: &Lake) -> Result<Option<HashMap<i32, Vec<i32>>>> {
    use arrow::array::{AsArray, ListArray};
    use arrow::datatypes::Int32Type;
    let source = match LakeSource::objects(served).await {
        Ok(source) => source,
        Err(e) if e.kind() == steam_core::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lists = HashMap::new();
    let mut batches = source.read().await?;
    while let Some(batch) = batches.next().await {
        let batch = remove_probability(&batch?)?;
        let users = batch.column(0).as_primitive::<Int32Type>();
        let recs: &ListArray = batch.column(1).as_list::<i32>();
        for (i, user) in users.values().iter().enumerate() {
            lists.insert(*user, games_of(recs, i));
        }
    }
    Ok(Some(lists))
}

/// The game ids of row `i` of served lists (none for a null list).
fn games_of(recs: &arrow::array::ListArray, i: usize) -> Vec<i32> {
    use arrow::array::{Array, AsArray};
    if recs.is_null(i) {
        return Vec::new();
    }
    recs.value(i)
        .as_primitive::<arrow::datatypes::Int32Type>()
        .iter()
        .flatten()
        .collect()
}

/// The rows of a served batch whose list differs from `before`'s (or whose user it lacks).
fn changed_rows(
    batch: &steam_core::RecordBatch,
    before: &HashMap<i32, Vec<i32>>,
) -> Result<steam_core::RecordBatch> {
    use arrow::array::{AsArray, BooleanArray, ListArray};
    use arrow::datatypes::Int32Type;
    let users = batch.column(0).as_primitive::<Int32Type>();
    let recs: &ListArray = batch.column(1).as_list::<i32>();
    let keep: BooleanArray = users
        .values()
        .iter()
        .enumerate()
        .map(|(i, user)| Some(before.get(user) != Some(&games_of(recs, i))))
        .collect();
    arrow::compute::filter_record_batch(batch, &keep)
        .map_err(|e| Error::arrow("choosing the changed users", e))
}

impl ServingLoad {
    /// Recommendations from `results` into `collection` of `mongo`, refreshed; no users mapping,
    /// no Redis.
    pub fn new(results: Lake, mongo: MongoConfig, collection: impl Into<String>) -> Self {
        ServingLoad {
            results,
            users: None,
            mongo,
            collection: collection.into(),
            redis: None,
            mode: WriteMode::Replace,
            keys: vec!["user_id".into()],
            served: None,
            only_changed: false,
        }
    }
}

/// The names of the serving store's tables for collection `collection`: the same in MongoDB
/// (collections) and Redis (hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingTables {
    /// Each user's recommendations: `user_id` → `recommendations` (game ids, best first).
    pub recommendations: String,
    /// `username` → `user_id`, from users_mapping.
    pub users: String,
    /// The popular fallback: one entry, `list` = `"popular"` → `game_ids`.
    pub popular: String,
    /// Each game's similar games: `game_id` → `game_ids` (most similar first) and their `scores`
    /// ([`similar_schema`]).
    pub similar: String,
}

impl ServingTables {
    /// The tables of `collection`: itself, `<collection>_users`, `<collection>_popular` and
    /// `<collection>_similar`.
    pub fn of(collection: &str) -> Self {
        ServingTables {
            recommendations: collection.to_owned(),
            users: format!("{collection}_users"),
            popular: format!("{collection}_popular"),
            similar: format!("{collection}_similar"),
        }
    }
}

/// The key of the popular fallback's one entry.
pub const POPULAR_KEY: &str = "popular";

/// The schema of a serving store's users table.
pub fn users_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("username", DataType::Utf8, false),
        Field::new("user_id", DataType::Int32, false),
    ]))
}

/// The schema of a serving store's popular table.
pub fn popular_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("list", DataType::Utf8, false),
        Field::new(
            "game_ids",
            DataType::List(std::sync::Arc::new(Field::new(
                "item",
                DataType::Int32,
                true,
            ))),
            false,
        ),
    ]))
}

/// The schema of a serving store's similar table: `game_id` Int32, and its similar games' ids
/// (`game_ids`, `list<Int32>`, most similar first) and `scores` (`list<Float32>`, as many). MongoDB
/// keeps these columns as they are; Redis keeps each game's entry `game_id` → both lists packed
/// ([`steam_connectors::redis::encode_scored`]).
pub fn similar_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let list = |item: DataType| DataType::List(std::sync::Arc::new(Field::new("item", item, true)));
    std::sync::Arc::new(Schema::new(vec![
        Field::new("game_id", DataType::Int32, false),
        Field::new("game_ids", list(DataType::Int32), false),
        Field::new("scores", list(DataType::Float32), false),
    ]))
}

/// The similar table as Redis keeps it: `game_id` → `similar`, [`encode_scored`] of the game's
/// ids and scores.
///
/// [`encode_scored`]: steam_connectors::redis::encode_scored
fn similar_redis_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("game_id", DataType::Int32, false),
        Field::new("similar", DataType::Binary, false),
    ]))
}

/// Loads recommendations (Spark's `recommendForAllUsers` output: `user_id`,
/// `recommendations` `list<struct<game_id, rating>>`) from Parquet at `source` (one object or a
/// prefix), drops the ratings (remove_probability), and refreshes `collection`: one document per
/// user, users missing from these results removed, and no moment where a kept user has none.
pub async fn lake_to_mongodb(
    source: &Lake,
    mongo: &MongoConfig,
    collection: &str,
) -> Result<RunSummary> {
    lake_to_serving(&ServingLoad::new(source.clone(), mongo.clone(), collection)).await
}

/// [`lake_to_mongodb`] with another write mode and key columns (`user_id` for
/// [`lake_to_mongodb`]): [`WriteMode::Append`] inserts (a rerun adds the documents again),
/// [`WriteMode::Upsert`] upserts on `keys` without removing anything, and [`WriteMode::Replace`]
/// refreshes on `keys`.
pub async fn lake_to_mongodb_with(
    source: &Lake,
    mongo: &MongoConfig,
    collection: &str,
    mode: WriteMode,
    keys: &[&str],
) -> Result<RunSummary> {
    let mut load = ServingLoad::new(source.clone(), mongo.clone(), collection);
    load.mode = mode;
    load.keys = keys.iter().map(|k| k.to_string()).collect();
    lake_to_serving(&load).await
}

/// The serving load: reads the recommendations once, drops their ratings (remove_probability),
/// and writes them to MongoDB (the system of record) and, when configured, Redis (the serving
/// copy) at the same time, every store's copy marked with the same run id; then, into both
/// stores, the popular fallback and the similar games written by `train` beside the results
/// ([`crate::train::popular_file`], [`crate::train::similar_file`]; each skipped with a warning
/// when absent, as for results from elsewhere, the stores then keeping what they had) and
/// `username → user_id` from users_mapping. Table names: [`ServingTables`].
///
/// In refresh mode ([`WriteMode::Replace`]) MongoDB's collections are refreshed key by key
/// ([`MongoSink::refresh`]: a key keeps a document throughout; readers, as `serve`'s, take its
/// newest), which any server can do, rather than swapped whole; Redis's sets are swapped in whole.
/// A load that fails (either store) is an error; the stores then still serve their earlier sets
/// (MongoDB's readers may see some keys of the failed run) and a rerun completes the refresh.
/// The recommendations are keyed on [`ServingLoad::keys`], the users on `username`, the popular
/// list on `list`, the similar games on `game_id`. The popular and similar tables are always
/// refreshed whole (they are small), also in the other modes.
pub async fn lake_to_serving(load: &ServingLoad) -> Result<RunSummary> {
    let started = Instant::now();
    let run = steam_core::run_id();
    let tables = ServingTables::of(&load.collection);
    let mut written = Vec::new();

    let before = match (&load.served, load.only_changed) {
        (Some(served), true) => read_served(served).await?.map(Arc::new),
        _ => None,
    };
    let mut stages = vec![StageSummary::since("read what was served", started)];
    let t = Instant::now();
    let mode = if before.is_some() {
        WriteMode::Upsert
    } else {
        load.mode
    };
    let input = LakeSource::objects(&load.results).await?;
    let changed = before.clone();
    let served = input.read().await?.map(move |batch| {
        let batch = batch.and_then(|b| remove_probability(&b))?;
        match &changed {
            Some(before) => changed_rows(&batch, before),
            None => Ok(batch),
        }
    });
    written.extend(
        write_both(
            load,
            &run,
            TableRef::new(&tables.recommendations, served_schema()).with_keys(&load.keys),
            mode,
            batch_stream(served),
            None,
        )
        .await?,
    );
    stages.push(StageSummary::since("recommendations", t));

    let t = Instant::now();
    match read_popular(&load.results).await? {
        Some(batch) => written.extend(
            write_both(
                load,
                &run,
                TableRef::new(&tables.popular, popular_schema()).with_keys(["list"]),
                WriteMode::Replace,
                batch_stream(futures::stream::iter([Ok(batch)])),
                None,
            )
            .await?,
        ),
        None => tracing::warn!(
            "no popular list beside {} (train writes one): users without recommendations get none",
            load.results
        ),
    }
    match read_similar(&load.results).await? {
        Some(rows) => written.extend(
            write_both(
                load,
                &run,
                TableRef::new(&tables.similar, similar_schema()).with_keys(["game_id"]),
                WriteMode::Replace,
                rows,
                Some(RedisForm {
                    schema: similar_redis_schema,
                    convert: similar_entries,
                }),
            )
            .await?,
        ),
        None => tracing::warn!(
            "no similar games beside {} (train writes them): the stores keep the similar games \
             they had, if any",
            load.results
        ),
    }
    if let Some(conformed) = &load.users {
        let table = conformed.child(steam_core::Table::UsersMapping.name());
        let snapshot = table.snapshot(None).await?;
        let users = LakeSource::objects(&snapshot)
            .await?
            .select(&["username", "user_id"])?;
        // With only the changes: the users after the largest id served before (ids only grow).
        let after = before
            .as_ref()
            .map(|before| before.keys().copied().max().unwrap_or(0));
        let users = users.read().await?.map(move |batch| {
            use arrow::array::AsArray;
            let batch = batch?;
            let Some(after) = after else {
                return Ok(batch);
            };
            let ids = batch
                .column(1)
                .as_primitive_opt::<arrow::datatypes::Int32Type>()
                .ok_or_else(|| Error::Schema {
                    target: "users_mapping".into(),
                    reason: "user_id is not Int32".into(),
                })?;
            let keep: arrow::array::BooleanArray = ids
                .iter()
                .map(|id| Some(id.is_some_and(|id| id > after)))
                .collect();
            arrow::compute::filter_record_batch(&batch, &keep)
                .map_err(|e| Error::arrow("choosing the new users", e))
        });
        written.extend(
            write_both(
                load,
                &run,
                TableRef::new(&tables.users, users_schema()).with_keys(["username"]),
                if after.is_some() {
                    WriteMode::Upsert
                } else {
                    WriteMode::Replace
                },
                batch_stream(users),
                None,
            )
            .await?,
        );
    }
    stages.push(StageSummary::since("popular, similar and users", t));
    let t = Instant::now();
    if let Some(served) = &load.served {
        // Every store has these results now: they are what the next load compares with.
        use object_store::ObjectStoreExt;
        let (from, to) = (load.results.path(&[]), served.path(&[]));
        if load.results.store().head(&from).await.is_ok() {
            load.results
                .store()
                .copy(&from, &to)
                .await
                .map_err(|e| served.error(&to, e))?;
        }
    }
    stages.push(StageSummary::since("copy of what was served", t));
    stages.push(StageSummary::since("lake_to_serving", started));
    Ok(RunSummary {
        tables: written,
        stages,
        ..RunSummary::default()
    })
}

/// How a table is kept in Redis when its rows are not entries as they are (a value of several
/// columns): the table's schema there, and each batch in that schema.
#[derive(Clone, Copy)]
struct RedisForm {
    schema: fn() -> arrow::datatypes::SchemaRef,
    convert: fn(&steam_core::RecordBatch) -> Result<steam_core::RecordBatch>,
}

/// Writes `batches` to MongoDB and, if configured, Redis (in `form`, if given), both at once (one
/// read), keyed on the table's keys; [`WriteMode::Replace`] is a refresh in MongoDB
/// ([`MongoSink::refresh`]). Each store's summary is named `<table> → mongodb` or
/// `<table> → redis`.
async fn write_both(
    load: &ServingLoad,
    run: &str,
    table: TableRef,
    mode: WriteMode,
    batches: BatchStream,
    form: Option<RedisForm>,
) -> Result<Vec<WriteSummary>> {
    let mongo = MongoSink::new(load.mongo.clone()).with_run_id(run);
    let changes = load.only_changed;
    let to_mongo = |batches: BatchStream| {
        let (mongo, table) = (&mongo, &table);
        async move {
            match mode {
                WriteMode::Replace => mongo.refresh(table, batches).await,
                // Changes only: the keys written refreshed, the others left alone.
                WriteMode::Upsert if changes => mongo.refresh_keys(table, batches).await,
                other => mongo.write(table, other, batches).await,
            }
        }
    };
    let named = |mut s: WriteSummary, store: &str| {
        s.table = format!("{} → {store}", table.name);
        s
    };
    let Some(redis) = &load.redis else {
        let s = to_mongo(batches).await?;
        return Ok(vec![named(s, "mongodb")]);
    };
    // Entries from the key to the first other column.
    let redis = RedisSink::new(redis.clone()).with_run_id(run);
    let (a, b) = steam_core::tee(batches, 4, format!("serving load of {}", table.name));
    let (redis_table, b) = match form {
        None => (table.clone(), b),
        Some(form) => (
            TableRef::new(&table.name, (form.schema)()).with_keys(&table.keys),
            batch_stream(b.map(move |batch| batch.and_then(|batch| (form.convert)(&batch)))),
        ),
    };
    let (m, r) = futures::future::try_join(to_mongo(a), redis.write(&redis_table, mode, b)).await?;
    Ok(vec![named(m, "mongodb"), named(r, "redis")])
}

/// Whether object `lake` exists.
async fn exists(lake: &Lake) -> Result<bool> {
    match object_store::ObjectStoreExt::head(lake.store().as_ref(), lake.prefix()).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(lake.error(lake.prefix(), e)),
    }
}

/// The similar games beside `results` (see [`crate::train::similar_file`]) as rows of
/// [`similar_schema`], streamed, or `None` when there are none.
async fn read_similar(results: &Lake) -> Result<Option<BatchStream>> {
    let Some(lake) = crate::train::similar_file(results) else {
        return Ok(None);
    };
    if !exists(&lake).await? {
        return Ok(None);
    }
    let url = lake.url().to_owned();
    let batches = LakeSource::objects(&lake)
        .await?
        .select(&["game_id", "similar"])?
        .read()
        .await?;
    Ok(Some(batch_stream(batches.map(move |batch| {
        batch.and_then(|batch| similar_rows(&batch, &url))
    }))))
}

/// Rows of [`similar_schema`] from the similar file's `game_id` and `similar`
/// (`list<struct<game_id, score>>`), in order: a game without a list (null) has no row, entries with
/// a null id or score are left out.
fn similar_rows(batch: &steam_core::RecordBatch, url: &str) -> Result<steam_core::RecordBatch> {
    use arrow::array::{Array, AsArray, Float32Builder, Int32Builder, ListBuilder};
    use arrow::datatypes::{Float32Type, Int32Type};
    let wrong = |reason: &str| Error::Schema {
        target: url.to_owned(),
        reason: reason.to_owned(),
    };
    let games = batch
        .column(0)
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| wrong("game_id is not Int32"))?;
    let lists = batch
        .column(1)
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong("similar is not a list"))?;
    let items = lists
        .values()
        .as_struct_opt()
        .ok_or_else(|| wrong("similar is not a list of structs"))?;
    let field = |name: &str| {
        items
            .column_by_name(name)
            .ok_or_else(|| wrong(&format!("similar's items have no {name}")))
    };
    let ids = field("game_id")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| wrong("similar's game_id is not Int32"))?;
    let scores = field("score")?
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| wrong("similar's score is not Float32"))?;
    let schema = similar_schema();
    let item = |i: usize| match schema.field(i).data_type() {
        arrow::datatypes::DataType::List(item) => item.clone(),
        _ => unreachable!("similar_schema's lists"),
    };
    let mut keys = Int32Builder::with_capacity(batch.num_rows());
    let mut id_lists = ListBuilder::new(Int32Builder::new()).with_field(item(1));
    let mut score_lists = ListBuilder::new(Float32Builder::new()).with_field(item(2));
    let offsets = lists.value_offsets();
    for row in 0..batch.num_rows() {
        if games.is_null(row) || lists.is_null(row) {
            continue;
        }
        for j in offsets[row] as usize..offsets[row + 1] as usize {
            if items.is_valid(j) && ids.is_valid(j) && scores.is_valid(j) {
                id_lists.values().append_value(ids.value(j));
                score_lists.values().append_value(scores.value(j));
            }
        }
        keys.append_value(games.value(row));
        id_lists.append(true);
        score_lists.append(true);
    }
    steam_core::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(keys.finish()),
            Arc::new(id_lists.finish()),
            Arc::new(score_lists.finish()),
        ],
    )
    .map_err(|e| Error::arrow(url.to_owned(), e))
}

/// Rows of [`similar_schema`] as Redis's entries ([`similar_redis_schema`]).
fn similar_entries(batch: &steam_core::RecordBatch) -> Result<steam_core::RecordBatch> {
    use arrow::array::{AsArray, BinaryBuilder};
    use arrow::datatypes::{Float32Type, Int32Type};
    let ids = batch.column(1).as_list::<i32>();
    let scores = batch.column(2).as_list::<i32>();
    let mut packed = BinaryBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 80);
    for row in 0..batch.num_rows() {
        let (i, s) = (ids.value(row), scores.value(row));
        let i = i.as_primitive::<Int32Type>();
        let s = s.as_primitive::<Float32Type>();
        packed.append_value(steam_connectors::redis::encode_scored(
            i.values(),
            s.values(),
        ));
    }
    steam_core::RecordBatch::try_new(
        similar_redis_schema(),
        vec![batch.column(0).clone(), Arc::new(packed.finish())],
    )
    .map_err(|e| Error::arrow("the similar games' Redis entries", e))
}

/// The popular list beside `results` (see [`crate::train::popular_file`]) as the popular table's
/// one row, or `None` when there is none.
async fn read_popular(results: &Lake) -> Result<Option<steam_core::RecordBatch>> {
    use arrow::array::{Array, AsArray, Int32Array, ListArray, StringArray};
    let Some(lake) = crate::train::popular_file(results) else {
        return Ok(None);
    };
    let url = lake.url().to_owned();
    if !exists(&lake).await? {
        return Ok(None);
    }
    let batches = LakeSource::objects(&lake)
        .await?
        .select(&["rank", "game_id"])?
        .read_all()
        .await?;
    let mut ranked = Vec::new();
    for b in &batches {
        let rank = b.column(0).as_primitive::<arrow::datatypes::Int32Type>();
        let game = b.column(1).as_primitive::<arrow::datatypes::Int32Type>();
        for i in 0..b.num_rows() {
            if rank.is_valid(i) && game.is_valid(i) {
                ranked.push((rank.value(i), game.value(i)));
            }
        }
    }
    ranked.sort_unstable();
    let ids = Int32Array::from_iter_values(ranked.into_iter().map(|(_, g)| g));
    let list = ListArray::new(
        std::sync::Arc::new(arrow::datatypes::Field::new(
            "item",
            arrow::datatypes::DataType::Int32,
            true,
        )),
        arrow::buffer::OffsetBuffer::from_lengths([ids.len()]),
        std::sync::Arc::new(ids),
        None,
    );
    steam_core::RecordBatch::try_new(
        popular_schema(),
        vec![
            std::sync::Arc::new(StringArray::from(vec![POPULAR_KEY])),
            std::sync::Arc::new(list),
        ],
    )
    .map(Some)
    .map_err(|e| Error::arrow(url, e))
}

/// The outcome of checking one backend.
#[derive(Debug)]
pub struct Check {
    /// The backend: postgres, lake, mongodb, redis.
    pub backend: &'static str,
    /// What was checked (server, URL), without secrets.
    pub target: String,
    /// The time taken, or the failure with its cause.
    pub result: std::result::Result<Duration, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(d) => write!(
                f,
                "{:<9} ok     {:>8.1} ms  {}",
                self.backend,
                d.as_secs_f64() * 1e3,
                self.target
            ),
            Err(e) => write!(f, "{:<9} FAILED {}: {e}", self.backend, self.target),
        }
    }
}

async fn timed<F: std::future::Future<Output = Result<()>>>(
    check: F,
) -> std::result::Result<Duration, String> {
    let started = Instant::now();
    match check.await {
        Ok(()) => Ok(started.elapsed()),
        Err(e) => Err(steam_core::error_chain(&e)),
    }
}

/// connection_testing: `SELECT 1` on PostgreSQL; list, then write, read back and delete a probe
/// object on the lake; ping MongoDB and read up to 5 documents of `collection`; ping Redis.
/// Checks only what is given.
pub async fn connection_test(
    postgres: Option<&PostgresConfig>,
    lake: Option<&Lake>,
    mongo: Option<(&MongoConfig, &str)>,
    redis: Option<&RedisConfig>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(pg) = postgres {
        checks.push(Check {
            backend: "postgres",
            target: pg.describe(),
            result: timed(pg.ping()).await,
        });
    }
    if let Some(lake) = lake {
        checks.push(Check {
            backend: "lake",
            target: lake.url().to_owned(),
            result: timed(lake.check()).await,
        });
    }
    if let Some((mongo, collection)) = mongo {
        let result = timed(async {
            mongo.ping().await?;
            let docs = MongoSource::new(mongo.clone(), collection, served_schema())
                .with_limit(5)
                .read()
                .await?;
            // A document that cannot be read fails the check.
            docs.try_collect::<Vec<_>>().await?;
            Ok(())
        })
        .await;
        checks.push(Check {
            backend: "mongodb",
            target: mongo.describe(),
            result,
        });
    }
    if let Some(redis) = redis {
        checks.push(Check {
            backend: "redis",
            target: redis.describe(),
            result: timed(redis.ping()).await,
        });
    }
    checks
}
