//! The whole offline loop in one run: raw files → process → postgres_initialization →
//! source_to_gcs (all tables) → stats → train → gcs_to_mongodb (and Redis), with one report at the
//! end.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use steam_connectors::lake::Lake;
use steam_connectors::mongodb::MongoConfig;
use steam_connectors::postgres::PostgresConfig;
use steam_core::{Error, Result, RunSummary, StageSummary, Table};

use crate::runs::{stages_json, RunKind, RunLog, RunRecord};
use crate::{
    generate, postgres_load, prior_from_postgres, process, serving, source_to_lake, train,
    GenerateOptions, InitInput, ProcessOptions, SourceToLakeOptions, TableGroup, TrainOptions,
    TrainReport,
};

/// Where the raw files come from.
#[derive(Debug, Clone)]
pub enum RawInput {
    /// Generated into `<work>/raw` first.
    Generate {
        /// Reviews to generate.
        reviews: u64,
        /// Seed of the generator.
        seed: u64,
    },
    /// A directory that already holds the three raw files (such as `steam-recsys download`'s).
    Dir(PathBuf),
}

/// Options of [`run_all`].
#[derive(Debug, Clone)]
pub struct RunAllOptions {
    /// The raw files.
    pub input: RawInput,
    /// Working directory: `raw/` (when generated), `processed/` (the eleven tables) and
    /// `processed/_rejected/` (the ledgers).
    pub work: PathBuf,
    /// Year given to year-less review dates.
    pub reference_year: i32,
    /// PostgreSQL, with the schema to load into and export from.
    pub postgres: PostgresConfig,
    /// The raw layer.
    pub raw_lake: Lake,
    /// The conformed layer; training reads `<conformed>/games_reviews`, the run date's partition.
    pub conformed_lake: Lake,
    /// The user_recommendations object.
    pub results: Lake,
    /// MongoDB, with its database.
    pub mongo: MongoConfig,
    /// The collection served.
    pub collection: String,
    /// Redis, filled with MongoDB when given (see [`serving::lake_to_serving`]).
    pub redis: Option<steam_connectors::redis::RedisConfig>,
    /// The run date: the conformed partition written and trained on.
    pub date: NaiveDate,
    /// Fraction of ratings held out at random for evaluation. The model is chosen by tuning on a
    /// validation split of the rest (see [`TrainOptions::new`]).
    pub holdout: f64,
    /// Show a spinner per stage on stderr (drawn only when stderr is a terminal).
    pub progress: bool,
    /// Rebuild everything from the input (ids still kept): every table replaced, every lake
    /// partition rewritten, the model fit cold (and tuned), every user re-served. Without it a
    /// run is incremental once PostgreSQL holds an earlier run's tables.
    pub full_refresh: bool,
}

/// What [`run_all`] did, stage by stage.
#[derive(Debug, Clone)]
pub struct RunAllReport {
    /// The run's id, as recorded in the run history ([`crate::runs::RunLog`]).
    pub run_id: String,
    /// Full or incremental.
    pub kind: RunKind,
    /// Whether there was nothing to do after loading: no new review, and the last run complete
    /// (then the lake, the model and the serving stores are left as they are).
    pub nothing_new: bool,
    /// Raw files read, records loaded and rejected; the eleven tables written.
    pub process: RunSummary,
    /// The eleven tables loaded into PostgreSQL.
    pub postgres: RunSummary,
    /// The tables exported to both lake layers.
    pub lake: RunSummary,
    /// game_stats and user_stats, computed from the run's conformed partition.
    pub stats: RunSummary,
    /// Training: metrics and the user_recommendations object (`None` when there was nothing new).
    pub train: Option<TrainReport>,
    /// The collection written.
    pub serving: RunSummary,
    /// Seconds per stage.
    pub stages: Vec<StageSummary>,
}

impl RunAllReport {
    /// Rows of `table` written by the `postgres` stage, by `process`, or in a lake layer
    /// (`layer` = `raw` or `conformed`).
    pub fn rows(&self, stage: &str, table: &str) -> Option<u64> {
        let find = |s: &RunSummary, name: &str| s.table(name).map(|t| t.rows);
        match stage {
            "process" => find(&self.process, table),
            "postgres" => find(&self.postgres, table),
            "raw" => find(&self.lake, &format!("{table} → raw")),
            "conformed" => find(&self.lake, &format!("{table} → conformed")),
            _ => None,
        }
    }

    /// Users written to the served collection (MongoDB's copy).
    pub fn served(&self) -> u64 {
        // The recommendations are written first, then the popular list, the similar games and the
        // users.
        self.serving
            .tables
            .iter()
            .find(|t| t.table.ends_with(" → mongodb"))
            .map_or(0, |t| t.rows)
    }
}

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

impl fmt::Display for RunAllReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:>10} {:>10} {:>10}",
            "raw file", "records", "loaded", "rejected"
        )?;
        for s in &self.process.files {
            writeln!(
                f,
                "{:<28} {:>10} {:>10} {:>10}",
                s.file, s.raw, s.loaded, s.rejected
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
            "table (rows)", "processed", "postgres", "raw lake", "conformed", "lake bytes"
        )?;
        for t in Table::ALL {
            let name = t.name();
            let bytes: u64 = self
                .lake
                .tables
                .iter()
                .filter(|w| w.table.starts_with(&format!("{name} →")))
                .map(|w| w.bytes)
                .sum();
            writeln!(
                f,
                "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
                name,
                cell(self.rows("process", name)),
                cell(self.rows("postgres", name)),
                cell(self.rows("raw", name)),
                cell(self.rows("conformed", name)),
                bytes
            )?;
        }
        for w in &self.stats.tables {
            writeln!(
                f,
                "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
                w.table, "-", "-", "-", w.rows, w.bytes
            )?;
        }
        if let Some(train) = &self.train {
            writeln!(
                f,
                "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
                crate::train::RESULTS_TABLE,
                "-",
                "-",
                "-",
                train.written.rows,
                train.written.bytes
            )?;
        }
        writeln!(
            f,
            "{:<28} {:>10} documents written",
            "mongodb collection",
            self.served()
        )?;
        writeln!(f)?;
        if let Some(train) = &self.train {
            let chosen = match (
                &train.tuning,
                train.stages.iter().any(|s| s.stage == "fit (warm)"),
            ) {
                (Some(_), _) => "chosen by tuning",
                (None, true) => "warm-started from the last run's",
                (None, false) => "given",
            };
            writeln!(
                f,
                "ALS: {} users, {} games, {} ratings; model ({chosen}): {}",
                train.users, train.items, train.train_ratings, train.params
            )?;
            if let Some((m, pop)) = &train.metrics {
                writeln!(
                    f,
                    "held out: precision@{k} {:.4}, NDCG@{k} {:.4} (popularity baseline {:.4}, \
                     {:.4}); model file {}",
                    m.precision,
                    m.ndcg,
                    pop.precision,
                    pop.ndcg,
                    train.model_file,
                    k = m.k
                )?;
            }
        }
        writeln!(
            f,
            "run {} ({}){}",
            self.run_id,
            self.kind,
            if self.nothing_new {
                ": nothing new since the last complete run"
            } else {
                ""
            }
        )?;
        writeln!(f)?;
        writeln!(f, "{:<28} {:>9}", "stage", "seconds")?;
        for s in &self.stages {
            writeln!(f, "{:<28} {:>9.2}", s.stage, s.seconds)?;
            // The parts of training and of the serving load, indented (not in the total).
            let parts: &[StageSummary] = match s.stage.as_str() {
                "train" => self.train.as_ref().map_or(&[], |t| &t.stages),
                "lake_to_serving" => &self.serving.stages,
                _ => &[],
            };
            for p in parts.iter().filter(|p| p.stage != s.stage) {
                writeln!(f, "  {:<26} {:>9.2}", p.stage, p.seconds)?;
            }
        }
        let total: f64 = self.stages.iter().map(|s| s.seconds).sum();
        writeln!(f, "{:<28} {:>9.2}", "total", total)
    }
}

/// Runs one stage under a spinner, recording its time.
async fn stage<T, F: Future<Output = Result<T>>>(
    stages: &mut Vec<StageSummary>,
    progress: bool,
    name: &str,
    what: &str,
    work: F,
) -> Result<T> {
    let bar = if progress {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<16} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(name.to_owned());
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let result = work.await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => bar.finish_with_message(format!("{what}: done in {seconds:.1} s")),
        Err(_) => bar.abandon_with_message(format!("{what}: failed after {seconds:.1} s")),
    }
    stages.push(StageSummary::new(name, seconds));
    result
}

/// Runs the whole loop, incrementally unless [`RunAllOptions::full_refresh`] (or nothing was
/// loaded before), recording it in the run history ([`RunLog`]: started, then each stage, then
/// succeeded or failed).
///
/// An incremental run starts from what PostgreSQL holds ([`prior_from_postgres`]): ids are kept,
/// reviews loaded before are counted as known, and only new reviews and users are appended (one
/// transaction). The lake gets games_reviews' partitions from the last complete run's date on, and
/// the small tables whole; training starts from the last model's factors; the serving stores get
/// only the users whose lists changed. With no new review and the last run complete, it stops
/// after loading. A run that died at any stage leaves the history saying so, and the next run
/// redoes every stage after loading (the lake partitions since the last complete run, training,
/// serving), so nothing is lost and nothing is loaded twice.
pub async fn run_all(options: &RunAllOptions) -> Result<RunAllReport> {
    let log = RunLog::open(&options.postgres).await?;
    let last = log.last().await?;
    let last_ok = log.last_succeeded().await?;
    let prior = prior_from_postgres(&options.postgres).await?;
    let kind = if options.full_refresh || prior.is_empty() {
        RunKind::Full
    } else {
        RunKind::Incremental
    };
    let run_id = steam_core::run_id_after(last.as_ref().map(|r| r.run_id.as_str()));
    log.start(&run_id, kind, options.date).await?;
    let mut record = RunRecord {
        run_id: run_id.clone(),
        kind: kind.to_string(),
        status: "running".into(),
        ..RunRecord::default()
    };
    let complete = last.as_ref().is_some_and(|l| l.status == "succeeded");
    // What arrived since the last complete run: this run's date, and those of unfinished runs.
    let since = if last_ok.is_some() {
        log.unfinished_since().await?
    } else {
        None
    };
    let result = run_stages(options, prior, kind, complete, since, &log, &mut record).await;
    match &result {
        Ok(report) => {
            record.status = "succeeded".into();
            record.stages = stages_json(&report.stages, &[]);
        }
        Err(e) => {
            record.status = "failed".into();
            record.error = Some(e.to_string());
        }
    }
    log.update(&record).await?;
    let mut report = result?;
    report.run_id = run_id;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_stages(
    options: &RunAllOptions,
    prior: steam_transforms::Prior,
    kind: RunKind,
    last_complete: bool,
    last_ok_date: Option<NaiveDate>,
    log: &RunLog,
    record: &mut RunRecord,
) -> Result<RunAllReport> {
    let mut stages = Vec::new();
    let p = options.progress;
    let incremental = kind == RunKind::Incremental;
    let raw = match &options.input {
        RawInput::Dir(dir) => dir.clone(),
        RawInput::Generate { reviews, seed } => {
            let dir = options.work.join("raw");
            let mut g = GenerateOptions::new(&dir, *reviews);
            g.seed = *seed;
            // Generating is blocking work (CPU and file writes): off the runtime's workers.
            stage(&mut stages, p, "generate", "raw files", async {
                tokio::task::spawn_blocking(move || generate(&g))
                    .await
                    .map_err(|e| Error::from_join("generate", e))?
            })
            .await?;
            dir
        }
    };
    let processed_dir = options.work.join("processed");
    let mut process_options = ProcessOptions::new(&raw, &processed_dir);
    process_options.reference_year = options.reference_year;
    process_options.run_date = options.date;
    process_options.prior = Some(std::sync::Arc::new(prior));
    process_options.only_new = incremental;
    let processed = stage(
        &mut stages,
        p,
        "process",
        if incremental {
            "new rows"
        } else {
            "eleven tables"
        },
        process(&process_options),
    )
    .await?;
    // What earlier runs loaded is not needed after cleaning: its memory goes now.
    drop(process_options);
    if let Some(f) = processed
        .files
        .iter()
        .find(|f| f.file == steam_core::raw::RawFile::GameReviews.file_name())
    {
        record.reviews_new = Some(f.loaded as i64);
        record.reviews_known = Some(f.known as i64);
        record.reviews_rejected = Some(f.rejected as i64);
    }
    record.stages = stages_json(&stages, &[]);
    log.update(record).await?;
    let loaded = stage(
        &mut stages,
        p,
        "postgres_init",
        if incremental {
            "PostgreSQL: new rows appended"
        } else {
            "PostgreSQL load"
        },
        postgres_load(
            &InitInput::Processed(processed_dir),
            &options.postgres,
            incremental,
        ),
    )
    .await?;
    record.stages = stages_json(&stages, &[]);
    log.update(record).await?;
    let nothing_new = incremental && last_complete && record.reviews_new == Some(0);
    let mut report = RunAllReport {
        run_id: String::new(),
        kind,
        nothing_new,
        process: processed,
        postgres: loaded,
        lake: RunSummary::default(),
        stats: RunSummary::default(),
        train: None,
        serving: RunSummary::default(),
        stages: Vec::new(),
    };
    if nothing_new {
        report.stages = stages;
        return Ok(report);
    }
    let lake_options = SourceToLakeOptions {
        group: TableGroup::All,
        raw: options.raw_lake.clone(),
        conformed: options.conformed_lake.clone(),
        date: options.date,
        // Incremental: what arrived since the last complete run (the partitions of this run's
        // date and of any unfinished run's).
        reviews_since: if incremental { last_ok_date } else { None },
    };
    report.lake = stage(
        &mut stages,
        p,
        "source_to_lake",
        "raw CSV + conformed Parquet",
        source_to_lake(&options.postgres, &lake_options),
    )
    .await?;
    record.stages = stages_json(&stages, &[]);
    log.update(record).await?;
    report.stats = stage(
        &mut stages,
        p,
        "stats",
        "game_stats, user_stats",
        crate::stats::stats(&crate::stats::StatsOptions {
            conformed: options.conformed_lake.clone(),
            date: Some(options.date),
            cluster: None,
        }),
    )
    .await?;
    let mut train_options = TrainOptions::new(
        options.conformed_lake.child(Table::GamesReviews.name()),
        options.results.clone(),
    );
    // The whole table: every partition holds what arrived that day.
    train_options.date = None;
    train_options.holdout = options.holdout;
    train_options.warm = incremental;
    train_options.refresh_since = lake_options.reviews_since;
    let trained = stage(
        &mut stages,
        p,
        "train",
        if incremental {
            "ALS (warm start)"
        } else {
            "ALS"
        },
        train(&train_options),
    )
    .await?;
    record.model = Some(trained.params.to_string());
    record.metrics = trained.metrics.map(|(m, pop)| {
        serde_json::json!({
            "model": { "k": m.k, "precision": m.precision, "ndcg": m.ndcg },
            "popularity": { "k": pop.k, "precision": pop.precision, "ndcg": pop.ndcg },
        })
    });
    record.stages = stages_json(&stages, &[]);
    log.update(record).await?;
    report.train = Some(trained);
    report.serving = stage(
        &mut stages,
        p,
        "lake_to_serving",
        if incremental {
            "changed users → MongoDB and Redis"
        } else {
            "recommendations → MongoDB and Redis"
        },
        serving::lake_to_serving(&serving::ServingLoad {
            users: Some(options.conformed_lake.clone()),
            redis: options.redis.clone(),
            served: serving::served_file(&options.results),
            only_changed: incremental,
            ..serving::ServingLoad::new(
                options.results.clone(),
                options.mongo.clone(),
                &options.collection,
            )
        }),
    )
    .await?;
    report.stages = stages;
    Ok(report)
}
