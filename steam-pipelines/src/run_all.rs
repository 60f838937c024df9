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

use crate::{
    generate, postgres_init, process, serving, source_to_lake, train, GenerateOptions, InitInput,
    ProcessOptions, SourceToLakeOptions, TableGroup, TrainOptions, TrainReport,
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
}

/// What [`run_all`] did, stage by stage.
#[derive(Debug, Clone)]
pub struct RunAllReport {
    /// Raw files read, records loaded and rejected; the eleven tables written.
    pub process: RunSummary,
    /// The eleven tables loaded into PostgreSQL.
    pub postgres: RunSummary,
    /// The tables exported to both lake layers.
    pub lake: RunSummary,
    /// game_stats and user_stats, computed from the run's conformed partition.
    pub stats: RunSummary,
    /// Training: metrics and the user_recommendations object.
    pub train: TrainReport,
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
        // The recommendations are written first, then the popular list and the users.
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
        writeln!(
            f,
            "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
            crate::train::RESULTS_TABLE,
            "-",
            "-",
            "-",
            self.train.written.rows,
            self.train.written.bytes
        )?;
        writeln!(
            f,
            "{:<28} {:>10} documents",
            "mongodb collection",
            self.served()
        )?;
        writeln!(f)?;
        let chosen = if self.train.tuning.is_some() {
            "chosen by tuning"
        } else {
            "given"
        };
        writeln!(
            f,
            "ALS: {} users, {} games, {} ratings; model ({chosen}): {}",
            self.train.users, self.train.items, self.train.train_ratings, self.train.params
        )?;
        if let Some((m, pop)) = &self.train.metrics {
            writeln!(
                f,
                "held out: precision@{k} {:.4}, NDCG@{k} {:.4} (popularity baseline {:.4}, {:.4}); \
                 model file {}",
                m.precision,
                m.ndcg,
                pop.precision,
                pop.ndcg,
                self.train.model_file,
                k = m.k
            )?;
        }
        writeln!(f)?;
        writeln!(f, "{:<28} {:>9}", "stage", "seconds")?;
        for s in &self.stages {
            writeln!(f, "{:<28} {:>9.2}", s.stage, s.seconds)?;
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

/// Runs the whole loop. Each stage runs only if the previous one succeeded; the first error stops
/// the run and is returned, and every stage leaves its target's old data in place on failure.
pub async fn run_all(options: &RunAllOptions) -> Result<RunAllReport> {
    let mut stages = Vec::new();
    let p = options.progress;
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
    let processed = stage(
        &mut stages,
        p,
        "process",
        "eleven tables",
        process(&process_options),
    )
    .await?;
    let loaded = stage(
        &mut stages,
        p,
        "postgres_init",
        "PostgreSQL load",
        postgres_init(&InitInput::Processed(processed_dir), &options.postgres),
    )
    .await?;
    let lake_options = SourceToLakeOptions {
        group: TableGroup::All,
        raw: options.raw_lake.clone(),
        conformed: options.conformed_lake.clone(),
        date: options.date,
    };
    let exported = stage(
        &mut stages,
        p,
        "source_to_lake",
        "raw CSV + conformed Parquet",
        source_to_lake(&options.postgres, &lake_options),
    )
    .await?;
    let statistics = stage(
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
    train_options.date = Some(options.date);
    train_options.holdout = options.holdout;
    let trained = stage(&mut stages, p, "train", "ALS", train(&train_options)).await?;
    let served = stage(
        &mut stages,
        p,
        "lake_to_serving",
        "recommendations → MongoDB and Redis",
        serving::lake_to_serving(&serving::ServingLoad {
            users: Some(options.conformed_lake.clone()),
            redis: options.redis.clone(),
            ..serving::ServingLoad::new(
                options.results.clone(),
                options.mongo.clone(),
                &options.collection,
            )
        }),
    )
    .await?;
    Ok(RunAllReport {
        process: processed,
        postgres: loaded,
        lake: exported,
        stats: statistics,
        train: trained,
        serving: served,
        stages,
    })
}
