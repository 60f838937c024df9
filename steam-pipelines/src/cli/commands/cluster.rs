//! `cluster scheduler|executor`: the processes of an Apache DataFusion Ballista cluster.

use std::time::Duration;

use steam_connectors::cluster::{self, Cluster, ExecutorOptions, SchedulerOptions};
use steam_core::Result;

use crate::cli::args::ClusterCommand;

/// `cluster`: runs a scheduler (until SIGTERM or Ctrl-C) or an executor of a Ballista cluster.
pub(super) async fn run(role: ClusterCommand) -> Result<()> {
    match role {
        ClusterCommand::Scheduler {
            bind,
            external_host,
            executor_timeout,
            flight_proxy,
        } => {
            let options = SchedulerOptions {
                bind,
                external_host,
                executor_timeout: Duration::from_secs(executor_timeout),
                flight_proxy,
                ..SchedulerOptions::default()
            };
            tokio::select! {
                result = cluster::run_scheduler(options) => result,
                () = crate::serve::shutdown_signal() => Ok(()),
            }
        }
        ClusterCommand::Executor {
            scheduler,
            bind_host,
            external_host,
            port,
            grpc_port,
            concurrent_tasks,
            work_dir,
            heartbeat,
        } => {
            let mut options = ExecutorOptions::new(Cluster::from_url(&scheduler)?);
            options.bind_host = bind_host;
            options.external_host = external_host;
            options.port = port;
            options.grpc_port = grpc_port;
            if let Some(n) = concurrent_tasks {
                options.concurrent_tasks = n;
            }
            options.work_dir = work_dir;
            options.heartbeat = Duration::from_secs(heartbeat);
            cluster::run_executor(options).await
        }
    }
}
