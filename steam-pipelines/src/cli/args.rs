//! The command line's arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use steam_core::Secret;

use crate::config::ConfigFile;
use crate::TableGroup;

/// Data pipelines of a Steam game recommender.
#[derive(Debug, Parser)]
#[command(
    name = "steam-recsys",
    version,
    about = "Data pipelines of a Steam game recommender: clean the scraped Steam files, load \
             PostgreSQL, export to a data lake, train ALS and serve every user's top 10 from \
             MongoDB.",
    long_about = None
)]
pub struct Cli {
    /// Configuration file of named profiles (TOML: PostgreSQL, lakes, MongoDB; see
    /// steam_pipelines::config). Flags and their environment variables override it.
    #[arg(long, global = true, env = "STEAM_RECSYS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The profile of the configuration file to use.
    #[arg(long, global = true, env = "STEAM_RECSYS_PROFILE", default_value = ConfigFile::DEFAULT_PROFILE)]
    pub profile: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How `lake-to-mongodb` writes the collection (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeMode {
    /// One document per user, users absent from the results removed, no moment without a
    /// document for a user present before and after (see `MongoSink`'s refresh).
    Refresh,
    /// Append the documents (a rerun adds them again).
    Insert,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the real dataset's raw files from HuggingFace (resumable, with verified sizes and
    /// checksums). A token for a private or gated repository is read from HF_TOKEN only.
    Download {
        /// Directory to write games_description.csv, games_ranking.csv, steam_game_reviews.csv to.
        #[arg(long)]
        out: PathBuf,
        /// The Hub's base URL.
        #[arg(long, env = "HF_ENDPOINT", default_value = crate::download::DEFAULT_ENDPOINT)]
        endpoint: String,
        /// The dataset repository, owner/name.
        #[arg(long, default_value = crate::download::DEFAULT_REPO)]
        repo: String,
        /// The branch, tag or commit.
        #[arg(long, default_value = crate::download::DEFAULT_REVISION)]
        revision: String,
    },
    /// Generate the three raw files in the scraper's formats (deterministic for a seed).
    Generate {
        /// Directory to write games_description.csv, games_ranking.csv, steam_game_reviews.csv to.
        #[arg(long)]
        out: PathBuf,
        /// Number of reviews.
        #[arg(long, default_value_t = 100_000)]
        reviews: u64,
        /// Number of games.
        #[arg(long, default_value_t = 290)]
        games: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fraction of review and ranking records given a broken value (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        broken_rate: f64,
        /// The scrape of this day of the store's life: day 1 holds --reviews reviews, each later
        /// day --daily-new more, listed first (newest first, as the store lists them).
        #[arg(long, default_value_t = 1)]
        day: u32,
        /// New reviews per day after day 1.
        #[arg(long, default_value_t = 0)]
        daily_new: u64,
        /// Write only the day's new reviews (a file of new reviews), not the whole scrape.
        #[arg(long)]
        only_new: bool,
    },
    /// Clean the raw files into the eleven processed tables (Parquet), with a rejects ledger.
    Process {
        /// Directory holding the three raw files.
        #[arg(long)]
        raw: PathBuf,
        /// Output directory: one TABLE.parquet per table, and _rejected/RAW_FILE.csv ledgers.
        #[arg(long)]
        out: PathBuf,
        /// Year given to year-less review dates [default: the current year].
        #[arg(long)]
        reference_year: Option<i32>,
        /// Fail on the first bad record instead of setting it aside.
        #[arg(long)]
        strict: bool,
        /// Run date, YYYY-MM-DD: the first_seen of reviews the output directory does not hold
        /// yet [default: today, UTC]. Ids and reviews already in the output directory are kept.
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Load the eleven tables into a PostgreSQL schema, all in one transaction (replace).
    #[command(group(clap::ArgGroup::new("input").required(true).args(["processed", "raw"])))]
    PostgresInit {
        /// Directory of TABLE.parquet files written by `process`.
        #[arg(long)]
        processed: Option<PathBuf>,
        /// Directory of the three raw files, cleaned on the way.
        #[arg(long)]
        raw: Option<PathBuf>,
        /// The server and schema.
        #[command(flatten)]
        postgres: PostgresArgs,
        /// With --raw: year given to year-less review dates [default: the current year].
        #[arg(long, requires = "raw")]
        reference_year: Option<i32>,
        /// With --raw: fail on the first bad record instead of setting it aside.
        #[arg(long, requires = "raw")]
        strict: bool,
        /// With --raw: where the _rejected/RAW_FILE.csv ledgers go.
        #[arg(long, requires = "raw", default_value = ".")]
        ledger_dir: PathBuf,
    },
    /// Export PostgreSQL tables to a lake: raw CSV objects and conformed Parquet partitioned by
    /// record_created_dt (the reference's source_to_gcs_direct, _reviews and _descriptions).
    #[command(alias = "source-to-gcs")]
    SourceToLake {
        /// Which tables: direct (the nine generic ones), reviews, descriptions, or all.
        #[arg(long, value_enum, default_value_t = TableGroup::All)]
        tables: TableGroup,
        /// The server and schema.
        #[command(flatten)]
        postgres: PostgresArgs,
        /// The two layers.
        #[command(flatten)]
        layers: LayerArgs,
        /// Run date, YYYY-MM-DD: the partition of every table but games_reviews [default: today,
        /// UTC].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Write only games_reviews' partitions of the days from this one on (what arrived since);
        /// without it every day's partition is written and days no review has are removed.
        #[arg(long, value_name = "DATE")]
        reviews_since: Option<chrono::NaiveDate>,
    },
    /// Load recommendations (Parquet in a lake) into MongoDB without their ratings, refreshing the
    /// collection keyed on user_id (the reference's gcs_to_mongodb).
    #[command(alias = "gcs-to-mongodb")]
    LakeToMongodb {
        /// The Parquet object or prefix [default: user_recommendations.parquet in the results
        /// lake: RESULTS_LAKE_URL, else the profile's lake.results, else
        /// gs://inference_games_results].
        #[arg(long)]
        source: Option<String>,
        /// The deployment, database and collection.
        #[command(flatten)]
        mongo: MongoArgs,
        /// How the collection is written.
        #[arg(long, value_enum, default_value_t = ServeMode::Refresh)]
        mode: ServeMode,
        /// The serving copy.
        #[command(flatten)]
        redis: RedisArgs,
        /// The conformed layer whose users_mapping (latest partition) is loaded for lookups by
        /// username [default: CONFORMED_LAKE_URL, else the profile's lake.conformed; without
        /// either, none is loaded].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        conformed_lake: Option<String>,
    },
    /// Serve every user's recommendations over HTTP: GET /users/{user_id}/recommendations,
    /// /users/by-name/{username}/recommendations, /games/{game_id}/similar, /healthz, /metrics.
    /// From Redis, else MongoDB;
    /// users the model does not know get the popular list. Stops on SIGTERM or Ctrl-C.
    Serve {
        /// The address to listen on [default: the profile's serve.bind, else 127.0.0.1:8080].
        #[arg(long, env = "STEAM_RECSYS_BIND")]
        bind: Option<std::net::SocketAddr>,
        /// The serving copy.
        #[command(flatten)]
        redis: RedisArgs,
        /// The deployment, database and collection.
        #[command(flatten)]
        mongo: MongoArgs,
        /// Seconds a request may take [default: the profile's serve.timeout, else 2].
        #[arg(long)]
        timeout: Option<f64>,
        /// Seconds a Redis lookup may take before MongoDB answers [default: the profile's
        /// serve.redis_timeout, else 0.1].
        #[arg(long)]
        redis_timeout: Option<f64>,
        /// Requests served at once [default: the profile's serve.concurrency, else 1024].
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Check every configured backend: PostgreSQL, the lake, MongoDB, Redis. Exits non-zero if any
    /// fails.
    ConnectionTest {
        /// PostgreSQL URL [default: POSTGRES_URL, else the POSTGRES_* variables].
        #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<Secret>,
        /// A lake URL to list and write a probe object to [default: the profile's
        /// lake.conformed].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// MongoDB URI [default: MONGODB_URI, else the MONGODB_* variables].
        #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
        mongodb_uri: Option<Secret>,
        /// Collection to read up to 5 documents from [default: the profile's
        /// mongodb.collection, else recsys].
        #[arg(long)]
        collection: Option<String>,
        /// Redis to ping.
        #[command(flatten)]
        redis: RedisArgs,
    },
    /// Train ALS on games_reviews and write every user's top 10 games not yet reviewed, with
    /// the model, its parameters and metrics beside it (`<name>.model.json`). By default the model
    /// is chosen by `tune` on a validation split of the training reviews.
    Train {
        /// The ratings: a Parquet object, a directory of them, or a conformed table such as
        /// gs://conformed_games_data/games_reviews (its latest record_created_dt partition).
        #[arg(long)]
        reviews: String,
        /// Where user_recommendations goes, one Parquet object replaced whole [default:
        /// user_recommendations.parquet in the results lake: RESULTS_LAKE_URL, else the profile's
        /// lake.results, else gs://inference_games_results].
        #[arg(long)]
        out: Option<String>,
        /// With a conformed table: the partition to read [default: the latest].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// The model and its parameters.
        #[command(flatten)]
        model: ModelArgs,
        /// How reviews are held out for evaluation.
        #[command(flatten)]
        split: SplitArgs,
        /// Recommend games the user already reviewed too (Spark's recommendForAllUsers).
        #[arg(long)]
        include_seen: bool,
        /// Recommendations per user (and the k of the metrics).
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Evaluate on held-out reviews, by one table of precision, recall, NDCG and MAP at k and
    /// catalog coverage: the implicit model, the explicit model (Spark's), the most-recommended
    /// unseen games (popularity) and random unseen games.
    Evaluate {
        /// The reviews (as train's --reviews).
        #[arg(long)]
        reviews: String,
        /// With a conformed table: the partition to read [default: the latest].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// How reviews are held out.
        #[command(flatten)]
        split: SplitArgs,
        /// The k of the metrics.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// The implicit model's parameters (--model is not used; the explicit model is Spark's
        /// with the same iterations and seed).
        #[command(flatten)]
        model: ModelArgs,
        /// Also evaluate the model train chooses by default (tuned on a validation split of the
        /// training reviews).
        #[arg(long)]
        tune: bool,
        /// Lists computed elsewhere, NAME=URL of a results object in Spark's schema (such as
        /// another library's top 10), evaluated as given; repeatable.
        #[arg(long = "lists", value_name = "NAME=URL")]
        lists: Vec<String>,
        /// Write the split there as train.parquet and test.parquet, for other tools to train
        /// and be evaluated on.
        #[arg(long)]
        save_split: Option<String>,
    },
    /// Choose the model: fit a small grid (implicit at two ranks, two λ and two α; implicit with
    /// hours-only confidence; Spark's explicit) on part of the reviews, rank by NDCG@k on the
    /// rest.
    Tune {
        /// The reviews (as train's --reviews): keep test data out.
        #[arg(long)]
        reviews: String,
        /// With a conformed table: the partition to read [default: the latest].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// How validation reviews are held out: random or latest.
        #[arg(long, default_value_t = steam_model::SplitKind::Random)]
        split: steam_model::SplitKind,
        /// With --split random: the fraction held out.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// The k of the metrics.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Iterations of every candidate.
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        /// Seed of the initial factors and of the split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run a composition of pipelines.
    Run {
        /// Which.
        #[command(subcommand)]
        what: RunCommand,
    },
    /// The history of `run all`: run id, kind, date, start, seconds, status, reviews new, known
    /// and rejected, the model's NDCG (from the schema's pipeline_runs table).
    Runs {
        /// The server and schema.
        #[command(flatten)]
        postgres: PostgresArgs,
        /// The newest N runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// table or json (one object per run, with every stage's seconds).
        #[arg(long, value_enum, default_value_t = RunsFormat::Table)]
        format: RunsFormat,
    },
    /// Per-game statistics (reviews, recommendation share and its Wilson lower bound, median and
    /// p90 hours played, first and last review) and per-user statistics (reviews, recommendation
    /// share, total hours) of the conformed reviews as of a run date, written to the conformed
    /// lake as game_stats and user_stats (that date's partition, the only one they keep).
    Stats {
        /// The conformed lake [default: CONFORMED_LAKE_URL, else the profile's lake.conformed,
        /// else gs://conformed_games_data].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// The run date: reviews that arrived by then [default: games_reviews' latest partition].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Run the queries on this Apache DataFusion Ballista cluster, df://HOST:PORT (its
        /// scheduler), or `local` [default: the profile's lake.cluster, else in this process].
        #[arg(long, env = "STEAM_CLUSTER_URL")]
        cluster: Option<String>,
    },
    /// Run SQL (DataFusion) over the conformed tables of a lake, each registered by its name.
    Sql {
        /// The query, such as "SELECT count(*) FROM games_reviews".
        query: String,
        /// The conformed lake: s3://, gs://, az://, file:// or a local path [default: the
        /// profile's lake.conformed, else gs://conformed_games_data].
        #[arg(long, env = "CONFORMED_LAKE_URL")]
        lake: Option<String>,
        /// How rows are printed, batch by batch as the query produces them.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Plan and run the query on this Apache DataFusion Ballista cluster, df://HOST:PORT (its
        /// scheduler), or `local` [default: the profile's lake.cluster, else in this process].
        #[arg(long, env = "STEAM_CLUSTER_URL")]
        cluster: Option<String>,
    },
    /// Run a process of an Apache DataFusion Ballista cluster that reads the lakes (s3://, gs://,
    /// az://, local paths) with the credentials of its own environment.
    #[cfg(feature = "cluster")]
    Cluster {
        /// Which process.
        #[command(subcommand)]
        role: ClusterCommand,
    },
}

/// The processes of a cluster.
#[cfg(feature = "cluster")]
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: plans queries into stages and hands their tasks to the executors. Runs
    /// until SIGTERM or Ctrl-C.
    Scheduler {
        /// The address to listen on (gRPC, and HTTP /healthz and /readyz).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// The host name executors and clients reach it by [default: the bind address's].
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat after which an executor is lost and its work is run again
        /// on the others.
        #[arg(long, default_value_t = 30)]
        executor_timeout: u64,
        /// Clients fetch results through the scheduler instead of from the executors, for clients
        /// that cannot reach the executors, such as outside a Docker network.
        #[arg(long)]
        flight_proxy: bool,
    },
    /// An executor: runs the tasks its scheduler hands it and serves their output. Runs until
    /// SIGTERM or Ctrl-C, then leaves the cluster.
    Executor {
        /// Its scheduler, df://HOST:PORT.
        #[arg(long, env = "STEAM_CLUSTER_URL")]
        scheduler: String,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// The host name the others reach it by [default: the address the scheduler sees].
        #[arg(long)]
        external_host: Option<String>,
        /// Its Arrow Flight port (shuffle output and results).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Its gRPC port (tasks from the scheduler).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once [default: this machine's cores].
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Directory of its shuffle output [default: a temporary directory].
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between its heartbeats to the scheduler.
        #[arg(long, default_value_t = 5)]
        heartbeat: u64,
    },
}

/// How `sql` prints its rows (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// Aligned tables, one per batch, and the row count.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line (NDJSON).
    Json,
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// Family and parameters chosen by `tune` on a validation split of the training reviews.
    Auto,
    /// Implicit-feedback ALS: every review an interaction, confidence 1 + α·ln(1 + hours).
    Implicit,
    /// Explicit-feedback ALS as Spark ML runs it (the reference's model).
    Explicit,
    /// EASE, the closed-form item-item model (--lambda).
    Ease,
    /// Item-kNN (--neighbours, --similarity).
    ItemKnn,
    /// The most recommended games the user has not reviewed.
    Popularity,
}

/// `--similarity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimilarityChoice {
    /// Cosine.
    Cosine,
    /// BM25 (K1 1.2, B 0.75).
    Bm25,
}

/// The model and its parameters, for `train` and `evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// auto: family and parameters chosen by tuning; any other: that family with the given
    /// parameters.
    #[arg(long, value_enum, default_value_t = ModelChoice::Auto)]
    pub model: ModelChoice,
    /// EASE: the regularization λ [default: 500].
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Item-kNN: neighbours kept per game [default: 20].
    #[arg(long)]
    pub neighbours: Option<usize>,
    /// Item-kNN: the similarity [default: cosine].
    #[arg(long, value_enum)]
    pub similarity: Option<SimilarityChoice>,
    /// Blend the model's scores (scaled per user to at most 1) with popularity at this weight.
    #[arg(long, value_name = "WEIGHT")]
    pub blend: Option<f32>,
    /// Latent factors [default: 10].
    #[arg(long)]
    pub rank: Option<usize>,
    /// Iterations.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Regularization λ [default: implicit 300, explicit 0.1; explicit: scaled by each user's and
    /// game's number of ratings, as in Spark].
    #[arg(long)]
    pub reg_param: Option<f64>,
    /// Implicit: the confidence scale α in 1 + α·ln(1 + hours) [default: 1]. EASE: weigh each
    /// review 1 + α·ln(1 + hours) instead of 1.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Implicit: how a review that does not recommend counts: signed (a preference 0, a known
    /// dislike) or hours (every review a preference 1) [default: signed].
    #[arg(long)]
    pub confidence: Option<steam_model::Confidence>,
    /// Implicit: solve each user and game by N conjugate-gradient steps from its previous
    /// factors, as the `implicit` library does (users first, its initialization), instead of
    /// exactly.
    #[arg(long, value_name = "N")]
    pub cg_steps: Option<usize>,
    /// Seed of the initial factors and of the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl ModelArgs {
    /// The ALS parameters (the base of tuning's ALS candidates with auto), the model of another
    /// family if one is chosen, and whether the model is to be tuned (`--model auto`). A
    /// parameter that the chosen model does not use is an error: it would be ignored.
    pub fn params(
        &self,
    ) -> steam_core::Result<(
        steam_model::AlsParams,
        Option<steam_model::ModelParams>,
        bool,
    )> {
        use steam_model::{AlsParams, ModelParams};
        let base = match self.model {
            ModelChoice::Explicit => AlsParams::spark_explicit(),
            _ => AlsParams::default(),
        };
        let als_given = self.rank.is_some()
            || self.reg_param.is_some()
            || (self.alpha.is_some() && self.model != ModelChoice::Ease)
            || self.confidence.is_some()
            || self.cg_steps.is_some();
        let params = AlsParams {
            rank: self.rank.unwrap_or(base.rank),
            iterations: self.iterations,
            reg_param: self.reg_param.unwrap_or(base.reg_param),
            alpha: self.alpha.unwrap_or(base.alpha),
            confidence: self.confidence.unwrap_or(base.confidence),
            solver: match self.cg_steps {
                Some(steps) => steam_model::Solver::ConjugateGradient { steps },
                None => base.solver,
            },
            seed: self.seed,
            ..base
        };
        let refuse = |flags: &str, models: &str| {
            Err(steam_core::Error::Config {
                key: "--model".into(),
                reason: format!(
                    "{flags} need --model {models} (the {} model does not use them)",
                    clap::ValueEnum::to_possible_value(&self.model)
                        .map_or("chosen".into(), |v| v.get_name().to_owned())
                ),
            })
        };
        let als = matches!(self.model, ModelChoice::Implicit | ModelChoice::Explicit);
        if als_given && !als {
            return refuse(
                "--rank, --reg-param, --alpha, --confidence and --cg-steps",
                "implicit or explicit",
            );
        }
        if self.lambda.is_some() && self.model != ModelChoice::Ease {
            return refuse("--lambda", "ease");
        }
        if (self.neighbours.is_some() || self.similarity.is_some())
            && self.model != ModelChoice::ItemKnn
        {
            return refuse("--neighbours and --similarity", "item-knn");
        }
        if self.blend.is_some() && matches!(self.model, ModelChoice::Auto | ModelChoice::Popularity)
        {
            return refuse("--blend", "implicit, explicit, ease or item-knn");
        }
        let model = match self.model {
            ModelChoice::Auto => None,
            ModelChoice::Implicit | ModelChoice::Explicit => {
                self.blend.map(|_| ModelParams::Als(params.clone()))
            }
            ModelChoice::Ease => Some(ModelParams::Ease(steam_model::EaseParams {
                lambda: self
                    .lambda
                    .unwrap_or(steam_model::EaseParams::default().lambda),
                weighting: match self.alpha {
                    Some(alpha) => steam_model::Weighting::Hours {
                        alpha: alpha as f32,
                    },
                    None => steam_model::Weighting::Binary,
                },
                ..steam_model::EaseParams::default()
            })),
            ModelChoice::ItemKnn => Some(ModelParams::ItemKnn(steam_model::KnnParams {
                neighbours: self
                    .neighbours
                    .unwrap_or(steam_model::KnnParams::default().neighbours),
                similarity: match self.similarity {
                    Some(SimilarityChoice::Bm25) => {
                        steam_model::Similarity::Bm25 { k1: 1.2, b: 0.75 }
                    }
                    _ => steam_model::Similarity::Cosine,
                },
            })),
            ModelChoice::Popularity => Some(ModelParams::Popularity),
        };
        let model = match (model, self.blend) {
            (Some(personal), Some(weight)) => Some(ModelParams::Blend(steam_model::BlendParams {
                personal: Some(Box::new(personal)),
                weight,
            })),
            (model, _) => model,
        };
        Ok((params, model, self.model == ModelChoice::Auto))
    }
}

/// How reviews are held out for evaluation.
#[derive(Debug, Clone, clap::Args)]
pub struct SplitArgs {
    /// Held-out reviews to evaluate on, instead of a split (then --split and --holdout are not
    /// used for evaluation).
    #[arg(long)]
    pub test: Option<String>,
    /// random: each review held out with probability --holdout; latest: each user's most
    /// recent review held out, as production would.
    #[arg(long, default_value_t = steam_model::SplitKind::Random)]
    pub split: steam_model::SplitKind,
    /// With --split random: the fraction held out; 0 trains on every review and evaluates
    /// nothing.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
}

/// Compositions of pipelines.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// The whole offline loop: generate (or --raw DIR) → process → postgres-init →
    /// source-to-lake (all tables) → stats → train → lake-to-mongodb, then one report.
    All {
        /// Directory of the three raw files to use instead of generated ones (such as
        /// `download`'s).
        #[arg(long)]
        raw: Option<PathBuf>,
        /// Without --raw: reviews to generate.
        #[arg(long, default_value_t = 100_000, conflicts_with = "raw")]
        reviews: u64,
        /// Without --raw: seed of the generator.
        #[arg(long, default_value_t = 42, conflicts_with = "raw")]
        seed: u64,
        /// Working directory: raw/ (generated), processed/ (the eleven tables and their
        /// _rejected/ ledgers).
        #[arg(long, default_value = "data/run")]
        work: PathBuf,
        /// Year given to year-less review dates [default: the current year].
        #[arg(long)]
        reference_year: Option<i32>,
        /// The server and schema.
        #[command(flatten)]
        postgres: PostgresArgs,
        /// The two layers.
        #[command(flatten)]
        layers: LayerArgs,
        /// Results lake: user_recommendations.parquet goes there [default: RESULTS_LAKE_URL, else
        /// the profile's lake.results, else gs://inference_games_results].
        #[arg(long, env = "RESULTS_LAKE_URL")]
        results_lake: Option<String>,
        /// The deployment, database and collection.
        #[command(flatten)]
        mongo: MongoArgs,
        /// The serving copy (filled with MongoDB when given).
        #[command(flatten)]
        redis: RedisArgs,
        /// Run date, YYYY-MM-DD [default: today, UTC].
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Fraction of ratings held out to evaluate the model.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// No spinners on stderr.
        #[arg(long)]
        no_progress: bool,
        /// Rebuild everything from the raw files (ids still kept): every table replaced, every
        /// lake partition rewritten, the model fit cold and tuned, every user re-served. Without
        /// it a run loads only what is new since the last complete run.
        #[arg(long)]
        full_refresh: bool,
    },
}

/// How `runs` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunsFormat {
    /// One line per run.
    Table,
    /// A JSON array.
    Json,
}

/// Where PostgreSQL is, for the commands that use it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PostgresArgs {
    /// Server URL, such as postgresql://user:password@host:5432/dbname (prefer the POSTGRES_URL
    /// variable, which other users cannot see in the process list) [default: the POSTGRES_HOST,
    /// POSTGRES_PORT, POSTGRES_DBNAME, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_CONNECT_TIMEOUT,
    /// POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT variables, else the profile's postgres].
    #[arg(long, env = "POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<Secret>,
    /// Schema [default: POSTGRES_SCHEMA, else the profile's, else recsys].
    #[arg(long)]
    pub schema: Option<String>,
}

/// The lake's raw and conformed layers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LayerArgs {
    /// Raw layer: s3://, gs://, az://, file:// or a local path [default: RAW_LAKE_URL, else the
    /// profile's lake.raw, else gs://raw_games_data].
    #[arg(long, env = "RAW_LAKE_URL")]
    pub raw_lake: Option<String>,
    /// Conformed layer [default: CONFORMED_LAKE_URL, else the profile's lake.conformed, else
    /// gs://conformed_games_data].
    #[arg(long, env = "CONFORMED_LAKE_URL")]
    pub conformed_lake: Option<String>,
}

/// Where the served recommendations go in MongoDB.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MongoArgs {
    /// MongoDB URI [default: MONGODB_URI, else MONGODB_HOST, MONGODB_USER, MONGODB_PASSWORD, else
    /// the profile's].
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<Secret>,
    /// Database [default: the URI's, else MONGODB_DATABASE, else the profile's, else
    /// steam_recsys].
    #[arg(long)]
    pub database: Option<String>,
    /// Collection [default: the profile's mongodb.collection, else recsys].
    #[arg(long)]
    pub collection: Option<String>,
}

/// Where the serving copy is in Redis.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedisArgs {
    /// Redis URL, redis://USER:PASSWORD@HOST:PORT/DB or rediss:// for TLS (prefer the
    /// REDIS_URL variable, which other users cannot see in the process list) [default: the
    /// profile's redis.url; without either, no Redis].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
}
