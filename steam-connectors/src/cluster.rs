//! The lake's SQL on an Apache DataFusion Ballista cluster (cargo feature `cluster`): the same
//! DataFusion plans as [`lake::sql`](crate::lake::sql), planned by a Ballista scheduler and run by
//! its executors, the results streamed back.
//!
//! - [`Cluster`]: a cluster by its scheduler's address, `df://HOST[:PORT]`; [`Cluster::sql`] is
//!   [`LakeSource::sql`] on it.
//! - [`run_scheduler`], [`run_executor`]: Ballista's own scheduler and executor processes, with
//!   the lakes' object stores ([`LakeStores`]): `s3://`, `gs://`, `az://` and local paths, opened
//!   with the credentials of each process's environment, as [`Lake`] opens them. No credentials
//!   travel with a query.
//!
//! The tables are registered on the client exactly as for a local query (each directory under the
//! lake's prefix a table, `record_created_dt` its partition column), but under the lake's store
//! URL (`s3://bucket/…`) instead of a name private to the process, so that the scheduler (which
//! lists the files) and the executors (which read them) find the same objects. A `memory://` lake
//! exists in one process only and cannot be queried on a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::config::BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use steam_core::{Error, ErrorKind, Result};

use crate::lake::{Lake, LakeOptions, LakeSource, LakeStores, LakeTables};

/// The port of a scheduler when a `df://` URL names none (Ballista's default).
pub const DEFAULT_PORT: u16 = 50050;

/// A Ballista cluster, by its scheduler's address.
///
/// ```
/// use std::time::Duration;
/// use steam_connectors::cluster::Cluster;
///
/// let cluster = Cluster::from_url("df://127.0.0.1:50050")?
///     .with_connect_timeout(Duration::from_secs(2))
///     .with_partitions(8);
/// assert_eq!(cluster.url(), "df://127.0.0.1:50050");
/// assert!(Cluster::from_url("http://127.0.0.1:50050").is_err());
/// # Ok::<(), steam_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cluster {
    url: String,
    host: String,
    port: u16,
    connect_timeout: Duration,
    partitions: usize,
}

impl Cluster {
    /// The cluster that `STEAM_CLUSTER_URL` names, or `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("STEAM_CLUSTER_URL") {
            Ok(url) if !url.trim().is_empty() => Self::from_url(url.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// The cluster whose scheduler is at `df://HOST[:PORT]` (port [`DEFAULT_PORT`] by default).
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Config {
            key: "cluster".into(),
            reason: format!("{}: {reason}", steam_core::redact_url(url)),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "df" {
            return Err(bad("expected df://HOST:PORT (a Ballista scheduler)"));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_owned();
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("a scheduler takes no credentials"));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(bad("expected df://HOST:PORT and nothing after it"));
        }
        let port = parsed.port().unwrap_or(DEFAULT_PORT);
        Ok(Cluster {
            url: format!("df://{host}:{port}"),
            host,
            port,
            connect_timeout: Duration::from_secs(10),
            partitions: crate::lake::num_cpus(),
        })
    }

    /// The scheduler's address as `df://HOST:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long connecting to the scheduler (and from the client to the executors) may take
    /// before the query fails with an error naming the address (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Partitions of each stage, that is tasks a stage is split into across the executors
    /// (default: this machine's cores, as for a local query).
    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    fn error(&self, kind: ErrorKind, message: String) -> Error {
        cluster_error(kind, self.url.clone(), message)
    }

    fn failure(&self, kind: ErrorKind, doing: &str, e: impl Into<BoxError>) -> Error {
        cluster_error(kind, self.url.clone(), doing.to_owned()).with_source(e)
    }

    /// Checks, within the connect timeout, that the scheduler answers and has at least one
    /// executor.
    pub async fn check(&self) -> Result<()> {
        let address = (self.host.as_str(), self.port);
        match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                Err(self.failure(ErrorKind::of_io(&e), "the scheduler cannot be reached", e))
            }
            Err(_) => Err(self.error(
                ErrorKind::Transient,
                format!(
                    "the scheduler did not answer within {:?}",
                    self.connect_timeout
                ),
            )),
        }
    }

    /// A DataFusion session whose queries the cluster plans and runs (after [`Cluster::check`]).
    pub async fn session(&self) -> Result<SessionContext> {
        self.check().await?;
        let config = crate::lake::session_config(
            crate::lake::env_config()?.upgrade_for_ballista(),
            self.partitions,
        )
        .set_u64(
            BALLISTA_CLIENT_GRPC_CONNECT_TIMEOUT_SECONDS,
            self.connect_timeout.as_secs().max(1),
        );
        let state = session_state(config, Arc::new(LakeStores::default()))
            .map_err(|e| self.failure(ErrorKind::InvalidInput, "session", e))?;
        SessionContext::remote_with_state(&self.url, state)
            .await
            .map_err(|e| self.failure(ErrorKind::Other, "connect", e))
    }

    /// A SQL query over every conformed table of `lake` (as [`LakeSource::sql`] registers them),
    /// planned and run by the cluster; [`steam_core::Source::read`] streams the result back.
    pub async fn sql(&self, lake: &Lake, query: &str) -> Result<LakeSource> {
        self.tables(lake).await?.sql(query).await
    }

    /// Every conformed table of `lake` registered for queries the cluster plans and runs.
    pub async fn tables(&self, lake: &Lake) -> Result<LakeTables> {
        let store_url = lake.store_url().ok_or_else(|| Error::Config {
            key: "lake".into(),
            reason: format!(
                "{} is in the memory of this process; a cluster reads s3://, gs://, az:// or \
                 local lakes",
                lake.url()
            ),
        })?;
        let ctx = self.session().await?;
        // The client lists and reads the tables' schemas with the lake's own store (its options
        // and credentials); the scheduler and executors open theirs from the same URL.
        ctx.register_object_store(store_url, lake.store().clone());
        let target = format!("SQL over {} on {}", lake.url(), self.url);
        LakeTables::register_all(ctx, store_url.as_str(), lake, target).await
    }
}

/// A session state over `config` whose object stores are `stores`, with Ballista's functions and
/// optimizer rules (as Ballista's default session builder makes it).
fn session_state(
    config: SessionConfig,
    stores: Arc<LakeStores>,
) -> datafusion::error::Result<SessionState> {
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime(stores, None)?)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build())
}

/// A runtime whose object stores are `stores`, spilling to `temp_dir`.
fn runtime(
    stores: Arc<LakeStores>,
    temp_dir: Option<&str>,
) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(stores);
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    Ok(Arc::new(builder.build()?))
}

/// An error of the cluster (`target`: its address, or a scheduler's or executor's).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn cluster_error(kind: ErrorKind, target: String, message: String) -> Error {
    Error::Backend {
        kind,
        backend: "cluster",
        target,
        message,
        source: None,
    }
}

/// The settings of a scheduler ([`run_scheduler`]).
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The address it listens on (default `127.0.0.1:50050`).
    pub bind: SocketAddr,
    /// The host name clients and executors reach it by [default: the bind address's].
    pub external_host: Option<String>,
    /// An executor not heard from for this long is lost: its tasks and the shuffle output it held
    /// are run again on the others (default 30 s; executors send a heartbeat every
    /// [`ExecutorOptions::heartbeat`]).
    pub executor_timeout: Duration,
    /// Clients fetch results through the scheduler (the address they reach it by) instead of from
    /// the executors, for clients that cannot reach the executors, such as outside a Docker
    /// network (default false).
    pub flight_proxy: bool,
    /// Retries and timeouts of the lakes' object stores.
    pub lake: LakeOptions,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            external_host: None,
            executor_timeout: Duration::from_secs(30),
            flight_proxy: false,
            lake: LakeOptions::default(),
        }
    }
}

/// Runs a Ballista scheduler that can list the lakes' files, until it fails. It hands a stage's
/// tasks to the executors in turn (round-robin), so that the work spreads. Its HTTP routes
/// `/healthz` and `/readyz` (ready with at least one executor; the body counts them) share its
/// port with gRPC.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
    use ballista_scheduler::scheduler_process::{
        create_scheduler, start_grpc_service_with_listener,
    };
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

    let target = format!("scheduler at {}", options.bind);
    let failed =
        |e: BoxError| cluster_error(ErrorKind::Other, target.clone(), String::new()).with_source(e);
    let stores = Arc::new(LakeStores::new(options.lake.clone()));
    let timeout = options.executor_timeout.as_secs().max(1);
    let mut config = SchedulerConfig::default()
        .with_hostname(
            options
                .external_host
                .clone()
                .unwrap_or_else(|| options.bind.ip().to_string()),
        )
        .with_port(options.bind.port())
        .with_enable_embedded_flight_proxy(options.flight_proxy)
        .with_task_distribution(TaskDistributionPolicy::RoundRobin)
        .with_override_config_producer(Arc::new(SessionConfig::new_with_ballista))
        .with_override_session_builder(Arc::new(move |config| {
            session_state(config, stores.clone())
        }));
    config.bind_host = options.bind.ip().to_string();
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 3).max(1);
    // Jobs fail once the last executor has been gone this long, rather than wait for one.
    config.no_executors_grace_period_seconds = timeout;
    config.validate().map_err(|e| failed(e.into()))?;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| failed(e.into()))?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| failed(e.into()))?;
    tracing::info!("Ballista scheduler listening on {}", options.bind);
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(|e| failed(e.into()))?;
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| failed(e.into()))
}

/// The settings of an executor ([`run_executor`]).
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Its scheduler, `df://HOST:PORT`.
    pub scheduler: Cluster,
    /// The address it listens on (default `127.0.0.1`).
    pub bind_host: String,
    /// The host name the scheduler, other executors and clients reach it by [default: the
    /// address the scheduler sees it connect from].
    pub external_host: Option<String>,
    /// Its Arrow Flight port, which serves shuffle output and results (default 50051).
    pub port: u16,
    /// Its gRPC port, on which the scheduler hands it tasks (default 50052).
    pub grpc_port: u16,
    /// Tasks it runs at once [default: its machine's cores].
    pub concurrent_tasks: usize,
    /// Where it keeps shuffle output [default: a temporary directory].
    pub work_dir: Option<PathBuf>,
    /// How often it tells the scheduler it is alive (default 5 s; see
    /// [`SchedulerOptions::executor_timeout`]).
    pub heartbeat: Duration,
    /// Retries and timeouts of the lakes' object stores.
    pub lake: LakeOptions,
}

impl ExecutorOptions {
    /// Default settings for an executor of `scheduler`.
    pub fn new(scheduler: Cluster) -> Self {
        ExecutorOptions {
            scheduler,
            bind_host: "127.0.0.1".into(),
            external_host: None,
            port: 50051,
            grpc_port: 50052,
            concurrent_tasks: crate::lake::num_cpus(),
            work_dir: None,
            heartbeat: Duration::from_secs(5),
            lake: LakeOptions::default(),
        }
    }
}

/// Runs a Ballista executor that can read the lakes' files, registered with its scheduler, until
/// SIGTERM or Ctrl-C (it then tells the scheduler it is leaving) or a failure. Until the scheduler
/// answers, it keeps trying to reach it. Without [`ExecutorOptions::work_dir`], shuffle output goes
/// to a temporary directory and spills to the system's.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};

    let target = format!("executor at {}:{}", options.bind_host, options.port);
    let stores = Arc::new(LakeStores::new(options.lake.clone()));
    let work_dir = options
        .work_dir
        .as_ref()
        .map(|d| d.to_string_lossy().into_owned());
    let temp_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options.external_host.clone(),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.host.clone(),
        scheduler_port: options.scheduler.port,
        scheduler_connect_timeout_seconds: options
            .scheduler
            .connect_timeout
            .as_secs()
            .clamp(1, u64::from(u16::MAX)) as u16,
        vcores: options.concurrent_tasks.max(1),
        work_dir,
        executor_heartbeat_interval_seconds: options.heartbeat.as_secs().max(1),
        print_thread_info: false,
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        override_runtime_producer: Some(Arc::new(move |_config: &SessionConfig| {
            runtime(stores.clone(), temp_dir.as_deref())
        })),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| cluster_error(ErrorKind::Other, target, String::new()).with_source(e))
}
