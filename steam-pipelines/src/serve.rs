//! `steam-recsys serve`: the recommendations HTTP API, from Redis (the serving copy) with MongoDB
//! (the system of record) behind it.
//!
//! | route | answer |
//! |---|---|
//! | `GET /users/{user_id}/recommendations` | `{"user_id": 1, "game_ids": [...], "model": "<run>"}` |
//! | `GET /users/by-name/{username}/recommendations` | the same, with `"username"`, through users_mapping |
//! | `GET /games/{game_id}/similar` | `{"game_id": 7, "game_ids": [...], "scores": [...], "model": "<run>"}`, most similar first |
//! | `GET /healthz` | each backend's state: `ok`, `degraded` (Redis down, MongoDB answers) or `down` (503) |
//! | `GET /metrics` | Prometheus text: requests by route and status, latency, cache hits and misses, fallbacks |
//!
//! A user (or a game's similar games) is looked up in Redis, then in MongoDB when Redis misses,
//! fails or is down (after a failure Redis is skipped for a second, so that a dead server costs one
//! failed lookup, not one per request). A user the model does not know gets the popular list
//! (`"fallback": "popular"`); `model` names the serving load the answer comes from, so one answer
//! never mixes two loads. Errors are JSON, `{"error": "...", "status": 400}`: a malformed user or
//! game id is a 400, an unknown username or a game without similar games a 404, a request that
//! takes longer than the timeout a 504, one that waits longer than that for a free slot (at most
//! [`ServeOptions::concurrency`] are served at once) a 503.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mongodb::bson::{doc, Bson, Document};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;
use steam_connectors::mongodb::{MongoConfig, RUN_FIELD};
use steam_connectors::redis::{decode_ids, decode_scored, RedisConfig, RedisReader};
use steam_core::{Error, Result};
use tokio::sync::Semaphore;

use crate::serving::{ServingTables, POPULAR_KEY};

/// The default address `serve` listens on.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Options of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// Redis, the serving copy; `None` serves from MongoDB alone.
    pub redis: Option<RedisConfig>,
    /// MongoDB, with its database.
    pub mongo: MongoConfig,
    /// The collection of recommendations ([`ServingTables`] names the others after it).
    pub collection: String,
    /// How long a request may take, waiting for a slot included (default 2 s).
    pub timeout: Duration,
    /// How long one Redis lookup may take before MongoDB answers instead (default 100 ms).
    pub redis_timeout: Duration,
    /// Requests served at once, at most (default 1,024); others wait for a slot.
    pub concurrency: usize,
}

impl ServeOptions {
    /// Serving `collection` of `mongo` on [`DEFAULT_BIND`], without Redis.
    pub fn new(mongo: MongoConfig, collection: impl Into<String>) -> Self {
        ServeOptions {
            bind: DEFAULT_BIND.parse().expect("a valid address"),
            redis: None,
            mongo,
            collection: collection.into(),
            timeout: Duration::from_secs(2),
            redis_timeout: Duration::from_millis(100),
            concurrency: 1024,
        }
    }
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

/// Labels of the fallback counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

type Histograms = Family<Route, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Histograms,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_errors: Counter,
    fallbacks: Family<Kind, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("steam_recsys");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency: Histograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 16)));
        let (cache_hits, cache_misses, cache_errors) =
            (Counter::default(), Counter::default(), Counter::default());
        let fallbacks = Family::<Kind, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("cache_hits", "Lookups Redis answered", cache_hits.clone());
        registry.register(
            "cache_misses",
            "Lookups Redis did not have (answered by MongoDB)",
            cache_misses.clone(),
        );
        registry.register(
            "cache_errors",
            "Lookups Redis failed, timed out or was skipped as down (answered by MongoDB)",
            cache_errors.clone(),
        );
        registry.register(
            "fallbacks",
            "Answers given by a fallback, by kind",
            fallbacks.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            cache_hits,
            cache_misses,
            cache_errors,
            fallbacks,
        }
    }
}

/// The service's shared state.
struct Api {
    options: ServeOptions,
    tables: ServingTables,
    redis: Option<RedisReader>,
    /// Milliseconds since `epoch` until which Redis is skipped after a failure.
    redis_down_until: AtomicU64,
    epoch: Instant,
    database: mongodb::Database,
    slots: Semaphore,
    metrics: Metrics,
}

/// An answer.
#[derive(Debug, Serialize)]
struct Answer {
    user_id: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    game_ids: Vec<i32>,
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'static str>,
}

/// An answer of the similar games route.
#[derive(Debug, Serialize)]
struct SimilarAnswer {
    game_id: i32,
    game_ids: Vec<i32>,
    scores: Vec<f32>,
    model: String,
}

/// An error answer: `{"error": "...", "status": N}`.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1, "status": self.0.as_u16() });
        (self.0, axum::Json(body)).into_response()
    }
}

fn unavailable(e: Error) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// A looked-up value and the run that wrote it.
struct Found<T> {
    value: T,
    run: String,
}

impl Api {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Redis's entry of `key` in `table`: `Ok(None)` when Redis is not configured, down, failed or
    /// does not have it (counted as a hit, a miss or an error).
    async fn cached(&self, table: &str, key: &[u8]) -> Option<(Vec<u8>, String)> {
        let redis = self.redis.as_ref()?;
        if self.redis_down_until.load(Ordering::Relaxed) > self.now_ms() {
            self.metrics.cache_errors.inc();
            return None;
        }
        match tokio::time::timeout(self.options.redis_timeout, redis.get(table, key)).await {
            Ok(Ok(Some(entry))) => {
                self.metrics.cache_hits.inc();
                Some((entry.value, entry.run))
            }
            Ok(Ok(None)) => {
                self.metrics.cache_misses.inc();
                None
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", self.options.redis_timeout),
                };
                tracing::warn!("redis lookup failed, answering from MongoDB: {why}");
                self.redis_down_until
                    .store(self.now_ms() + 1000, Ordering::Relaxed);
                self.metrics.cache_errors.inc();
                None
            }
        }
    }

    /// MongoDB's newest document of `filter` in `collection`.
    async fn stored(&self, collection: &str, filter: Document) -> Result<Option<Document>> {
        let coll = self.database.collection::<Document>(collection);
        coll.find_one(filter)
            .sort(doc! { RUN_FIELD: -1 })
            .await
            .map_err(|e| {
                let what = format!("finding in {}.{collection}", self.database.name());
                self.options.mongo.error(&what, e)
            })
    }

    /// The recommendations of `user`, or `None` when no store has them.
    async fn recommendations(&self, user: i32) -> Result<Option<Found<Vec<i32>>>> {
        let key = user.to_string();
        let (table, filter) = (&self.tables.recommendations, doc! { "user_id": user });
        self.game_ids(table, &key, filter, "recommendations").await
    }

    /// The popular list, or `None` when none was loaded.
    async fn popular(&self) -> Result<Option<Found<Vec<i32>>>> {
        let filter = doc! { "list": POPULAR_KEY };
        self.game_ids(&self.tables.popular, POPULAR_KEY, filter, "game_ids")
            .await
    }

    /// A list of game ids: Redis's entry of `key` in `table`, else the `field` of MongoDB's
    /// newest document of `filter` in the collection of the same name.
    async fn game_ids(
        &self,
        table: &str,
        key: &str,
        filter: Document,
        field: &str,
    ) -> Result<Option<Found<Vec<i32>>>> {
        if let Some((value, run)) = self.cached(table, key.as_bytes()).await {
            if let Some(ids) = decode_ids(&value) {
                return Ok(Some(Found { value: ids, run }));
            }
            tracing::warn!(
                "redis entry {key:?} of {table} is not a list of game ids; using MongoDB"
            );
        }
        let found = self.stored(table, filter).await?;
        Ok(found.map(|d| Found {
            value: ids_of(d.get(field)),
            run: d.get_str(RUN_FIELD).unwrap_or_default().to_owned(),
        }))
    }

    /// The similar games of `game` (ids, most similar first, and scores): Redis's entry, else
    /// MongoDB's newest document; `None` when no store has them.
    async fn similar(&self, game: i32) -> Result<Option<Found<(Vec<i32>, Vec<f32>)>>> {
        let (table, key) = (&self.tables.similar, game.to_string());
        if let Some((value, run)) = self.cached(table, key.as_bytes()).await {
            if let Some(similar) = decode_scored(&value) {
                return Ok(Some(Found {
                    value: similar,
                    run,
                }));
            }
            tracing::warn!(
                "redis entry {key:?} of {table} is not packed similar games; using MongoDB"
            );
        }
        let found = self.stored(table, doc! { "game_id": game }).await?;
        Ok(found.map(|d| {
            let (mut ids, mut scores) = (ids_of(d.get("game_ids")), scores_of(d.get("scores")));
            let n = ids.len().min(scores.len());
            ids.truncate(n);
            scores.truncate(n);
            Found {
                value: (ids, scores),
                run: d.get_str(RUN_FIELD).unwrap_or_default().to_owned(),
            }
        }))
    }

    /// The user id of `username`, or `None`.
    async fn user_of(&self, username: &str) -> Result<Option<i32>> {
        if let Some((value, _)) = self.cached(&self.tables.users, username.as_bytes()).await {
            if let Some(id) = std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                return Ok(Some(id));
            }
        }
        let found = self
            .stored(&self.tables.users, doc! { "username": username })
            .await?;
        Ok(found.and_then(|d| match d.get("user_id") {
            Some(Bson::Int32(id)) => Some(*id),
            Some(Bson::Int64(id)) => i32::try_from(*id).ok(),
            _ => None,
        }))
    }

    /// The answer for `user`: their recommendations, else the popular list.
    async fn answer(&self, user: i32, username: Option<String>) -> Result<Answer, Failure> {
        if let Some(found) = self.recommendations(user).await.map_err(unavailable)? {
            return Ok(Answer {
                user_id: user,
                username,
                game_ids: found.value,
                model: found.run,
                fallback: None,
            });
        }
        match self.popular().await.map_err(unavailable)? {
            Some(found) => {
                self.metrics
                    .fallbacks
                    .get_or_create(&Kind {
                        kind: "popular".into(),
                    })
                    .inc();
                Ok(Answer {
                    user_id: user,
                    username,
                    game_ids: found.value,
                    model: found.run,
                    fallback: Some("popular"),
                })
            }
            None => Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no recommendations for user {user}, and no popular list is loaded"),
            )),
        }
    }
}

/// The game ids of a document's array field.
fn ids_of(value: Option<&Bson>) -> Vec<i32> {
    match value {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| match b {
                Bson::Int32(i) => Some(*i),
                Bson::Int64(i) => i32::try_from(*i).ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The scores of a document's array field.
fn scores_of(value: Option<&Bson>) -> Vec<f32> {
    match value {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|b| match b {
                Bson::Double(f) => Some(*f as f32),
                Bson::Int32(i) => Some(*i as f32),
                Bson::Int64(i) => Some(*i as f32),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn similar(
    State(api): State<Arc<Api>>,
    Path(game): Path<String>,
) -> Result<axum::Json<SimilarAnswer>, Failure> {
    let game: i32 = game.parse().map_err(|_| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("game id {game:?} is not a 32-bit integer"),
        )
    })?;
    match api.similar(game).await.map_err(unavailable)? {
        Some(Found {
            value: (game_ids, scores),
            run,
        }) => Ok(axum::Json(SimilarAnswer {
            game_id: game,
            game_ids,
            scores,
            model: run,
        })),
        None => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no similar games for game {game}"),
        )),
    }
}

async fn by_id(
    State(api): State<Arc<Api>>,
    Path(user): Path<String>,
) -> Result<axum::Json<Answer>, Failure> {
    let user: i32 = user.parse().map_err(|_| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("user id {user:?} is not a 32-bit integer"),
        )
    })?;
    api.answer(user, None).await.map(axum::Json)
}

async fn by_name(
    State(api): State<Arc<Api>>,
    Path(username): Path<String>,
) -> Result<axum::Json<Answer>, Failure> {
    let Some(user) = api.user_of(&username).await.map_err(unavailable)? else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("unknown username {username:?}"),
        ));
    };
    api.answer(user, Some(username)).await.map(axum::Json)
}

async fn healthz(State(api): State<Arc<Api>>) -> Response {
    let limit = api.options.timeout;
    let mongo =
        match tokio::time::timeout(limit, api.database.run_command(doc! { "ping": 1 })).await {
            Ok(Ok(_)) => "up",
            _ => "down",
        };
    let redis = match &api.redis {
        None => "not configured",
        Some(r) => match tokio::time::timeout(limit, r.ping()).await {
            Ok(Ok(())) => {
                api.redis_down_until.store(0, Ordering::Relaxed);
                "up"
            }
            _ => "down",
        },
    };
    let (status, code) = match (mongo, redis) {
        ("up", "up" | "not configured") => ("ok", StatusCode::OK),
        ("up", _) | (_, "up") => ("degraded", StatusCode::OK),
        _ => ("down", StatusCode::SERVICE_UNAVAILABLE),
    };
    let body = serde_json::json!({
        "status": status,
        "redis": redis,
        "mongodb": mongo,
        "collection": api.options.collection,
    });
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &api.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed".into(),
        )
        .into_response(),
    }
}

/// Bounds concurrency and time, and counts every request by route and status.
async fn guard(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let limit = api.options.timeout;
    let response = match tokio::time::timeout(limit, api.slots.acquire()).await {
        Ok(Ok(_slot)) => {
            let left = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, next.run(request)).await {
                Ok(response) => response,
                Err(_) => Failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("no answer within {limit:?}"),
                )
                .into_response(),
            }
        }
        _ => Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("overloaded: no free slot within {limit:?}"),
        )
        .into_response(),
    };
    api.metrics
        .requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    api.metrics
        .latency
        .get_or_create(&Route { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The API's routes over `options`' stores (connections are made lazily: the router is built
/// even while Redis or MongoDB is down).
pub async fn router(options: &ServeOptions) -> Result<Router> {
    let redis = options
        .redis
        .as_ref()
        .map(|c| RedisReader::new(&c.clone().with_response_timeout(options.redis_timeout)))
        .transpose()?;
    let client = options.mongo.client().await?;
    let api = Arc::new(Api {
        tables: ServingTables::of(&options.collection),
        redis,
        redis_down_until: AtomicU64::new(0),
        epoch: Instant::now(),
        database: client.database(options.mongo.database()),
        slots: Semaphore::new(options.concurrency.max(1)),
        metrics: Metrics::new(),
        options: options.clone(),
    });
    Ok(Router::new()
        .route("/users/{user_id}/recommendations", get(by_id))
        .route("/users/by-name/{username}/recommendations", get(by_name))
        .route("/games/{game_id}/similar", get(similar))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), guard))
        .with_state(api))
}

/// Serves the API on `options.bind` until `shutdown` completes, then stops accepting
/// connections and finishes the requests in flight. Returns the address it listened on through
/// `bound` (useful with port 0).
pub async fn serve_until<F>(
    options: &ServeOptions,
    shutdown: F,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(options).await?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| Error::io(format!("listening on {}", options.bind), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(format!("listening on {}", options.bind), e))?;
    tracing::info!(
        "serving {} on http://{addr} (redis: {}, mongodb: {})",
        options.collection,
        options
            .redis
            .as_ref()
            .map_or_else(|| "not configured".into(), RedisConfig::describe),
        options.mongo.describe()
    );
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(format!("serving on {addr}"), e))
}

/// Serves the API until SIGTERM or Ctrl-C (see [`serve_until`]).
pub async fn serve(options: &ServeOptions) -> Result<()> {
    let shutdown = async {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the requests in flight");
    };
    serve_until(options, shutdown, None).await
}

/// SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
