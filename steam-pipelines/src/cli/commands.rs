//! Each command: its settings resolved, its pipeline run, its report printed.

use steam_core::{Error, Result, Secret};

use super::args::{Command, RunCommand, ServeMode, SqlFormat};
use super::settings::Settings;
use crate::{
    generate, postgres_init, process, source_to_lake, GenerateOptions, InitInput, ProcessOptions,
    SourceToLakeOptions,
};

/// The test set, split kind and holdout of `--test`, `--split` and `--holdout`.
fn held_out(
    split: &super::args::SplitArgs,
    settings: &Settings,
) -> Result<(
    Option<steam_connectors::lake::Lake>,
    steam_model::SplitKind,
    f64,
)> {
    let test = split
        .test
        .as_deref()
        .map(|t| settings.lake(t))
        .transpose()?;
    Ok((test, split.split, split.holdout))
}

/// Runs a scheduler or an executor of a Ballista cluster.
#[cfg(feature = "cluster")]
async fn run_cluster(role: super::args::ClusterCommand) -> Result<()> {
    use super::args::ClusterCommand;
    use steam_connectors::cluster::{self, Cluster, ExecutorOptions, SchedulerOptions};
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
                executor_timeout: std::time::Duration::from_secs(executor_timeout),
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
            options.heartbeat = std::time::Duration::from_secs(heartbeat);
            cluster::run_executor(options).await
        }
    }
}

/// Runs one command with flags and environment variables only.
pub async fn run(command: Command) -> Result<()> {
    run_with(command, &Settings::default()).await
}

/// Runs one command, taking what flags and environment variables leave unset from `settings`.
pub async fn run_with(command: Command, settings: &Settings) -> Result<()> {
    match command {
        Command::Download {
            out,
            endpoint,
            repo,
            revision,
        } => {
            let mut options = crate::download::DownloadOptions::from_env(out);
            options.endpoint = endpoint;
            options.repo = repo;
            options.revision = revision;
            options.progress = Some(std::sync::Arc::new(Bars::default()));
            let summary = crate::download::download(&options).await?;
            out!("{summary}");
            outln!(
                "\n{} raw files of {} in {}",
                summary.files.len(),
                options.repo,
                options.out.display()
            );
        }
        Command::Generate {
            out,
            reviews,
            games,
            seed,
            broken_rate,
        } => {
            let started = std::time::Instant::now();
            let g = generate(&GenerateOptions {
                out: out.clone(),
                reviews,
                games,
                seed,
                broken_rate,
            })?;
            outln!(
                "generated {} games, {} ranking rows, {} reviews in {} ({:.2}s)",
                g.games,
                g.ranking,
                g.reviews,
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Process {
            raw,
            out,
            reference_year,
            strict,
        } => {
            let mut options = ProcessOptions::new(raw, out.clone());
            if let Some(y) = reference_year {
                options.reference_year = y;
            }
            options.strict = strict;
            let summary = process(&options).await?;
            out!("{summary}");
            outln!(
                "\nwrote {} tables to {}; rejected records are listed in {}",
                summary.tables.len(),
                out.display(),
                out.join(steam_connectors::files::RejectLedger::DIR)
                    .display()
            );
        }
        Command::PostgresInit {
            processed,
            raw,
            postgres,
            reference_year,
            strict,
            ledger_dir,
        } => {
            let config = settings.postgres_of(&postgres)?;
            let input = match (processed, raw) {
                (Some(dir), _) => InitInput::Processed(dir),
                (None, Some(raw)) => {
                    let mut options = ProcessOptions::new(raw, &ledger_dir);
                    if let Some(y) = reference_year {
                        options.reference_year = y;
                    }
                    options.strict = strict;
                    InitInput::Raw {
                        options,
                        ledger_dir: ledger_dir.clone(),
                    }
                }
                (None, None) => {
                    return Err(Error::Config {
                        key: "postgres-init".into(),
                        reason: "give --processed DIR or --raw DIR".into(),
                    })
                }
            };
            let summary = postgres_init(&input, &config).await?;
            out!("{summary}");
            outln!(
                "\nloaded {} tables into schema {:?} at {}",
                summary.tables.len(),
                config.schema(),
                config.describe()
            );
            if matches!(input, InitInput::Raw { .. }) {
                outln!(
                    "rejected records are listed in {}",
                    ledger_dir
                        .join(steam_connectors::files::RejectLedger::DIR)
                        .display()
                );
            }
        }
        Command::SourceToLake {
            tables,
            postgres,
            layers,
            date,
        } => {
            let config = settings.postgres_of(&postgres)?;
            let (raw, conformed) = settings.layers_of(&layers)?;
            let options = SourceToLakeOptions {
                group: tables,
                raw,
                conformed,
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            };
            let summary = source_to_lake(&config, &options).await?;
            out!("{summary}");
            outln!(
                "\nexported to {} (raw) and {} (conformed, record_created_dt={})",
                options.raw,
                options.conformed,
                options.date
            );
        }
        Command::Train {
            reviews,
            out,
            date,
            model,
            split,
            include_seen,
            top,
        } => {
            let mut options = crate::TrainOptions::new(
                settings.lake(&reviews)?,
                settings.lake(&settings.results_object(out))?,
            );
            options.date = date;
            (options.test, options.split, options.holdout) = held_out(&split, settings)?;
            (options.params, options.tune) = model.params()?;
            options.include_seen = include_seen;
            options.top_k = top;
            let report = crate::train(&options).await?;
            out!("{report}");
            outln!("\nwrote {} to {}", crate::train::RESULTS_TABLE, options.out);
        }
        Command::Evaluate {
            reviews,
            date,
            split,
            k,
            model,
            tune,
            lists,
            save_split,
        } => {
            let mut options = crate::EvaluateOptions::new(settings.lake(&reviews)?);
            options.date = date;
            (options.test, options.split, options.holdout) = held_out(&split, settings)?;
            options.k = k;
            let implicit = super::args::ModelArgs {
                model: super::args::ModelChoice::Implicit,
                ..model.clone()
            };
            options.implicit = implicit.params()?.0;
            options.explicit = steam_model::AlsParams {
                iterations: model.iterations,
                seed: model.seed,
                ..steam_model::AlsParams::spark_explicit()
            };
            options.tune = tune;
            for spec in lists {
                let (name, url) = spec.split_once('=').ok_or_else(|| Error::Config {
                    key: "--lists".into(),
                    reason: format!("{spec:?} is not NAME=URL"),
                })?;
                options.lists.push((name.to_owned(), settings.lake(url)?));
            }
            options.save_split = save_split
                .as_deref()
                .map(|d| settings.lake(d))
                .transpose()?;
            let report = crate::evaluate(&options).await?;
            out!("{report}");
        }
        Command::Tune {
            reviews,
            date,
            split,
            holdout,
            k,
            iterations,
            seed,
        } => {
            let mut options = crate::TuneOptions::new(settings.lake(&reviews)?);
            options.date = date;
            options.split = split;
            options.holdout = holdout;
            options.k = k;
            options.grid = steam_model::default_grid(&steam_model::AlsParams {
                iterations,
                seed,
                ..steam_model::AlsParams::default()
            });
            let report = crate::tune_reviews(&options).await?;
            out!("{report}");
        }
        Command::Run {
            what:
                RunCommand::All {
                    raw,
                    reviews,
                    seed,
                    work,
                    reference_year,
                    postgres,
                    layers,
                    results_lake,
                    mongo,
                    redis,
                    date,
                    holdout,
                    no_progress,
                },
        } => {
            let (raw_lake, conformed_lake) = settings.layers_of(&layers)?;
            let (mongo, collection) = settings.mongo_of(&mongo)?;
            let options = crate::RunAllOptions {
                input: match raw {
                    Some(dir) => crate::RawInput::Dir(dir),
                    None => crate::RawInput::Generate { reviews, seed },
                },
                work,
                reference_year: reference_year.unwrap_or_else(crate::process::current_year),
                postgres: settings.postgres_of(&postgres)?,
                raw_lake,
                conformed_lake,
                results: settings.lake(&settings.results_object_in(results_lake))?,
                mongo,
                collection,
                redis: settings.redis_of(&redis)?,
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                holdout,
                progress: !no_progress,
            };
            let report = crate::run_all(&options).await?;
            out!("{report}");
            outln!(
                "\nserved {} users in {}.{} at {}{}",
                report.served(),
                options.mongo.database(),
                options.collection,
                options.mongo.describe(),
                options
                    .redis
                    .as_ref()
                    .map(|r| format!(" and Redis at {}", r.describe()))
                    .unwrap_or_default()
            );
        }
        Command::Stats {
            lake,
            date,
            cluster,
        } => {
            let options = crate::StatsOptions {
                conformed: settings.lake(&settings.conformed_lake(lake))?,
                date,
                cluster: settings.cluster(cluster),
            };
            let summary = crate::stats(&options).await?;
            out!("{summary}");
            let on = options
                .cluster
                .as_ref()
                .map(|c| format!(" (computed on {c})"))
                .unwrap_or_default();
            outln!(
                "\nwrote game_stats and user_stats to {}{on}",
                options.conformed
            );
        }
        Command::Sql {
            query,
            lake,
            format,
            limit,
            cluster,
        } => {
            let lake = settings.lake(&settings.conformed_lake(lake))?;
            let cluster = settings.cluster(cluster);
            let mut source = crate::lake_sql(&lake, &query, cluster.as_deref()).await?;
            if let Some(n) = limit {
                source = source.limit(n)?;
            }
            let mut batches = steam_core::Source::read(&source).await?;
            let (mut rows, mut first) = (0usize, true);
            while let Some(batch) = futures::StreamExt::next(&mut batches).await {
                let batch = batch?;
                rows += batch.num_rows();
                let fail = |e| Error::arrow("formatting the result", e);
                let mut text = Vec::new();
                match format {
                    SqlFormat::Table => {
                        let table =
                            arrow::util::pretty::pretty_format_batches(&[batch]).map_err(fail)?;
                        text = format!("{table}\n").into_bytes();
                    }
                    SqlFormat::Csv => arrow::csv::WriterBuilder::new()
                        .with_header(first)
                        .build(&mut text)
                        .write(&batch)
                        .map_err(fail)?,
                    SqlFormat::Json => {
                        let mut w = arrow::json::LineDelimitedWriter::new(&mut text);
                        w.write(&batch).map_err(fail)?;
                        w.finish().map_err(fail)?;
                    }
                }
                out!("{}", String::from_utf8_lossy(&text));
                first = false;
            }
            if format == SqlFormat::Table {
                outln!("{rows} rows");
            } else {
                tracing::info!("{rows} rows");
            }
        }
        #[cfg(feature = "cluster")]
        Command::Cluster { role } => run_cluster(role).await?,
        Command::LakeToMongodb {
            source,
            mongo,
            mode,
            redis,
            conformed_lake,
        } => {
            let (mongo, collection) = settings.mongo_of(&mongo)?;
            let mut load = crate::ServingLoad::new(
                settings.lake(&settings.results_object(source))?,
                mongo,
                collection,
            );
            load.mode = match mode {
                ServeMode::Refresh => steam_core::WriteMode::Replace,
                ServeMode::Insert => steam_core::WriteMode::Append,
            };
            load.redis = settings.redis_of(&redis)?;
            load.users = match settings.conformed_lake_given(conformed_lake) {
                Some(url) => Some(settings.lake(&url)?),
                None => {
                    tracing::warn!(
                        "no conformed lake given (--conformed-lake, CONFORMED_LAKE_URL or the \
                         profile's lake.conformed): users_mapping is not loaded, lookups by \
                         username will find no one"
                    );
                    None
                }
            };
            let summary = crate::lake_to_serving(&load).await?;
            out!("{summary}");
            outln!(
                "\nwrote {}.{} at {}{} from {}",
                load.mongo.database(),
                load.collection,
                load.mongo.describe(),
                load.redis
                    .as_ref()
                    .map(|r| format!(" and Redis at {}", r.describe()))
                    .unwrap_or_default(),
                load.results
            );
        }
        Command::Serve {
            bind,
            redis,
            mongo,
            timeout,
            redis_timeout,
            concurrency,
        } => {
            let (mongo, collection) = settings.mongo_of(&mongo)?;
            let mut options = crate::ServeOptions::new(mongo, collection);
            let profile = settings
                .profile
                .as_ref()
                .map(|p| p.serve.clone())
                .unwrap_or_default();
            options.bind = match (bind, &profile.bind) {
                (Some(b), _) => b,
                (None, Some(b)) => b.parse().map_err(|_| Error::Config {
                    key: "serve.bind".into(),
                    reason: format!("{b:?} is not ADDRESS:PORT"),
                })?,
                (None, None) => options.bind,
            };
            let seconds = |flag: Option<f64>, key: &str| -> Result<Option<std::time::Duration>> {
                flag.map(|s| {
                    std::time::Duration::try_from_secs_f64(s)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| Error::Config {
                            key: key.into(),
                            reason: format!("{s} is not a positive number of seconds"),
                        })
                })
                .transpose()
            };
            options.timeout = seconds(timeout, "--timeout")?
                .or(profile.timeout)
                .unwrap_or(options.timeout);
            options.redis_timeout = seconds(redis_timeout, "--redis-timeout")?
                .or(profile.redis_timeout)
                .unwrap_or(options.redis_timeout);
            options.concurrency = concurrency
                .or(profile.concurrency)
                .unwrap_or(options.concurrency);
            options.redis = settings.redis_of(&redis)?;
            crate::serve(&options).await?;
        }
        Command::ConnectionTest {
            postgres_url,
            lake,
            mongodb_uri,
            collection,
            redis,
        } => {
            let pg = settings.postgres(postgres_url.as_ref().map(Secret::expose), None)?;
            let lake = lake
                .or_else(|| {
                    settings
                        .profile
                        .as_ref()
                        .and_then(|p| p.lake.conformed.clone())
                })
                .as_deref()
                .map(|url| settings.lake(url))
                .transpose()?;
            let mongo = settings.mongo(mongodb_uri.as_ref().map(Secret::expose), None)?;
            let collection = settings.collection(collection);
            let redis = settings.redis_of(&redis)?;
            if pg.is_none() && lake.is_none() && mongo.is_none() && redis.is_none() {
                return Err(Error::Config {
                    key: "connection-test".into(),
                    reason: "nothing to check: give --postgres-url, --lake, --mongodb-uri or \
                             --redis-url (or their environment variables, or a --config file)"
                        .into(),
                });
            }
            let checks = crate::serving::connection_test(
                pg.as_ref(),
                lake.as_ref(),
                mongo.as_ref().map(|m| (m, collection.as_str())),
                redis.as_ref(),
            )
            .await;
            for c in &checks {
                outln!("{c}");
            }
            let failed = checks.iter().filter(|c| c.result.is_err()).count();
            if failed > 0 {
                return Err(Error::Config {
                    key: "connection-test".into(),
                    reason: format!("{failed} of {} backends failed", checks.len()),
                });
            }
        }
    }
    Ok(())
}

/// Progress bars on standard error for `download`, one per file.
#[derive(Default)]
struct Bars(std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>);

impl crate::download::Progress for Bars {
    fn started(&self, file: &str, at: u64, total: u64) {
        let mut bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = bars.entry(file.to_owned()).or_insert_with(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{msg:28} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(file.to_owned());
            bar
        });
        bar.set_position(at);
    }

    fn advanced(&self, file: &str, bytes: u64) {
        let bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = bars.get(file) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, file: &str, ok: bool) {
        let mut bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = bars.remove(file) {
            if ok {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        }
    }
}
