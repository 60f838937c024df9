//! Offline training: ALS on games_reviews from the lake → user_recommendations in the lake (the
//! reference's Spark ML notebook), by default the implicit-feedback model chosen on a validation
//! split, recommending only games the user has not reviewed; the chosen model and its evaluation
//! are written beside the results.

use std::fmt;
use std::time::Instant;

use chrono::NaiveDate;
use futures::StreamExt;
use steam_connectors::lake::{Lake, LakeSource, ParquetObjectSink};
use steam_connectors::spawn_blocking_stream;
use steam_core::{
    Error, Result, RunSummary, Sink, StageSummary, TableRef, WriteMode, WriteSummary,
};
use steam_model::{
    auto_grid, recommendations_schema, tune, AlsModel, AlsParams, Feedback, Holdout, Model,
    ModelParams, Popularity, RankingMetrics, RatingColumns, Ratings, Rmse, Split, SplitKind,
    Tuning,
};
/// The reference's results bucket.
pub const DEFAULT_RESULTS_LAKE: &str = "gs://inference_games_results";

/// The name the results table goes by in messages and summaries.
pub const RESULTS_TABLE: &str = "user_recommendations";

/// Options of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The ratings: one Parquet object, a directory of Parquet objects, or a conformed table
    /// (`…/games_reviews`, with `record_created_dt=` partitions: the latest one is read, or
    /// [`TrainOptions::date`]'s). Read columns: [`TrainOptions::columns`].
    pub reviews: Lake,
    /// With a conformed table: the partition to read [default: the latest].
    pub date: Option<NaiveDate>,
    /// The rating columns [default: games_reviews' `user_id`, `game_id`, `recommendation`,
    /// `hours_played`, `date`].
    pub columns: RatingColumns,
    /// Held-out ratings to evaluate on, read like [`TrainOptions::reviews`]; when given, the model
    /// is trained on all of `reviews` and [`TrainOptions::split`] is not used for evaluation.
    pub test: Option<Lake>,
    /// How reviews are held out for evaluation (and, within the training reviews, for tuning).
    pub split: SplitKind,
    /// With a random split: the fraction of `reviews` held out for evaluation (the model is
    /// trained on the rest); 0 trains on everything and evaluates nothing.
    pub holdout: f64,
    /// ALS parameters (the seed also drives the splits). With [`TrainOptions::tune`], the base of
    /// the ALS candidates (their iterations and seed).
    pub params: AlsParams,
    /// Without tuning: a model of another family to train instead of ALS with
    /// [`TrainOptions::params`].
    pub model: Option<ModelParams>,
    /// Choose the family and its parameters by [`steam_model::tune`] over
    /// [`steam_model::auto_grid`] on a validation split of the training reviews, then fit the
    /// chosen one on all of them.
    pub tune: bool,
    /// Recommend games the user already reviewed too, as Spark's `recommendForAllUsers` does
    /// [default: only games the user has not reviewed].
    pub include_seen: bool,
    /// Recommendations per user, and the k of the metrics.
    pub top_k: usize,
    /// Where user_recommendations goes: one Parquet object, replaced whole. The chosen model,
    /// parameters and metrics go beside it, to `<name>.model.json`, and its factors to
    /// `<name>.factors.parquet` ([`factors_file`]).
    pub out: Lake,
    /// Start from the model beside [`TrainOptions::out`] when there is one (its factors and
    /// parameters): ids it knows start from its factors, new ones as a cold fit would, and the
    /// fit runs [`steam_model::WARM_ITERATIONS`] iterations without tuning. Without a model
    /// there, the training is cold, as configured.
    pub warm: bool,
    /// With a warm start: recompute the lists only of the users with reviews in games_reviews'
    /// partitions from this date on (what arrived since the last complete run; read from
    /// [`TrainOptions::reviews`]) and of users the previous results lack; every other user keeps
    /// the list of the previous results until a cold run (so a day's serving refresh is what that
    /// day's reviews changed). `None` recomputes every list.
    pub refresh_since: Option<NaiveDate>,
}

impl TrainOptions {
    /// The default training: the model chosen by tuning, 20% held out at random for evaluation,
    /// unseen games only, top 10.
    pub fn new(reviews: Lake, out: Lake) -> Self {
        TrainOptions {
            reviews,
            date: None,
            columns: RatingColumns::default(),
            test: None,
            split: SplitKind::Random,
            holdout: 0.2,
            params: AlsParams::default(),
            model: None,
            tune: true,
            include_seen: false,
            top_k: 10,
            out,
            warm: false,
            refresh_since: None,
        }
    }

    /// The reference's training: Spark's explicit ALS with its parameters, no tuning, every game
    /// recommended (seen ones included).
    pub fn reference(reviews: Lake, out: Lake) -> Self {
        TrainOptions {
            params: AlsParams::spark_explicit(),
            tune: false,
            include_seen: true,
            ..TrainOptions::new(reviews, out)
        }
    }

    fn evaluation_split(&self) -> Split {
        self.split.with(self.holdout, self.params.seed)
    }

    /// The split of the training reviews that tuning validates on: the evaluation's kind, a
    /// fifth held out if random, another seed.
    fn validation_split(&self) -> Split {
        let holdout = if self.holdout > 0.0 {
            self.holdout
        } else {
            0.2
        };
        self.split.with(holdout, self.params.seed.wrapping_add(1))
    }
}

/// What [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The object or partition the ratings were read from.
    pub input: String,
    /// The split evaluated on, if any (`None` with a separate test set or nothing held out).
    pub split: Option<Split>,
    /// Ratings trained on.
    pub train_ratings: usize,
    /// Ratings held out.
    pub held_out_ratings: usize,
    /// Input rows left out: null user, item or rating.
    pub skipped_rows: u64,
    /// The family and parameters of the model trained.
    pub params: ModelParams,
    /// The tuning that chose them, if they were chosen.
    pub tuning: Option<Tuning>,
    /// Users with a list.
    pub users: usize,
    /// Games in the training data.
    pub items: usize,
    /// Explicit model: RMSE on the training ratings.
    pub train_rmse: Option<Rmse>,
    /// Explicit model: RMSE on the held-out ratings, if any.
    pub test_rmse: Option<Rmse>,
    /// Ranking metrics at k on the held-out reviews (relevant: a held-out recommendation), of
    /// the model and of the popularity baseline, if any were held out.
    pub metrics: Option<(RankingMetrics, RankingMetrics)>,
    /// Whether the results include games the user reviewed.
    pub include_seen: bool,
    /// The results written.
    pub written: WriteSummary,
    /// Where the model description was written.
    pub model_file: String,
    /// Games with a list of similar games written beside the results.
    pub similar_games: usize,
    /// Seconds per stage: read, tune, fit, evaluate, recommend (with the write).
    pub stages: Vec<StageSummary>,
}

impl TrainReport {
    /// The report as a [`RunSummary`] (the results table and the stages).
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            tables: vec![self.written.clone()],
            stages: self.stages.clone(),
            ..RunSummary::default()
        }
    }

    /// The model's precision@k on the held-out reviews, if evaluated.
    pub fn precision(&self) -> Option<f64> {
        self.metrics.map(|(m, _)| m.precision)
    }

    /// What is written beside the results: the model, its parameters, how they were chosen, and
    /// the metrics.
    pub fn model_json(&self) -> serde_json::Value {
        let model = params_json(&self.params);
        serde_json::json!({
            "params": model,
            "chosen_by": match &self.tuning {
                Some(t) => serde_json::json!({
                    "tune": {
                        "metric": format!("ndcg@{}", t.chosen().metrics.k),
                        "fit_reviews": t.fit_reviews,
                        "validation_reviews": t.validation_reviews,
                        "validation_users": t.validation_users,
                        "candidates": t.candidates.iter().map(|c| serde_json::json!({
                            "params": c.params.to_string(),
                            "family": c.params.family().to_string(),
                            "metrics": metrics_json(&c.metrics),
                            "fit_seconds": c.fit_seconds,
                            "note": c.note,
                        })).collect::<Vec<_>>(),
                    }
                }),
                None => "given".into(),
            },
            "input": self.input,
            "train_reviews": self.train_ratings,
            "held_out_reviews": self.held_out_ratings,
            "split": self.split.map(|s| s.to_string()),
            "include_seen": self.include_seen,
            "evaluation": self.metrics.map(|(m, pop)| serde_json::json!({
                "model": metrics_json(&m),
                "popularity": metrics_json(&pop),
            })),
        })
    }
}

/// The `params` of a model description: the family (`model`: `implicit` or `explicit` for ALS,
/// else the family's name) and its parameters.
fn params_json(params: &ModelParams) -> serde_json::Value {
    match params {
        ModelParams::Als(p) => {
            let mut model = serde_json::json!({
                "model": p.feedback.to_string(),
                "rank": p.rank,
                "iterations": p.iterations,
                "reg_param": p.reg_param,
                "seed": p.seed,
            });
            if p.feedback == Feedback::Implicit {
                model["alpha"] = p.alpha.into();
                model["confidence"] = p.confidence.to_string().into();
                model["solver"] = match p.solver {
                    steam_model::Solver::Cholesky => "cholesky".into(),
                    steam_model::Solver::ConjugateGradient { steps } => {
                        serde_json::json!({ "conjugate_gradient_steps": steps })
                    }
                };
            }
            model
        }
        ModelParams::Ease(p) => serde_json::json!({
            "model": "ease",
            "lambda": p.lambda,
            "weighting": p.weighting.to_string(),
            "max_items": p.max_items,
        }),
        ModelParams::ItemKnn(p) => serde_json::json!({
            "model": "item-knn",
            "neighbours": p.neighbours,
            "similarity": p.similarity.to_string(),
        }),
        ModelParams::Popularity => serde_json::json!({ "model": "popularity" }),
        ModelParams::Blend(b) => serde_json::json!({
            "model": "blend",
            "weight": b.weight,
            "personal": b.personal.as_deref().map(params_json),
        }),
    }
}

fn metrics_json(m: &RankingMetrics) -> serde_json::Value {
    let num = |v: f64| {
        if v.is_finite() {
            v.into()
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({
        "k": m.k,
        "precision": num(m.precision),
        "recall": num(m.recall),
        "ndcg": num(m.ndcg),
        "map": num(m.map),
        "coverage": num(m.coverage),
        "users": m.users,
    })
}

/// One table row of ranking metrics.
pub(crate) fn metrics_row(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    m: &RankingMetrics,
) -> fmt::Result {
    writeln!(
        f,
        "{:<22} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9}",
        name, m.precision, m.recall, m.ndcg, m.map, m.coverage, m.users
    )
}

/// The header of [`metrics_row`]s at `k`.
pub(crate) fn metrics_header(f: &mut fmt::Formatter<'_>, first: &str, k: usize) -> fmt::Result {
    writeln!(
        f,
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        first,
        format!("prec@{k}"),
        format!("recall@{k}"),
        format!("ndcg@{k}"),
        format!("map@{k}"),
        "coverage",
        "users"
    )
}

impl fmt::Display for TrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input            {}", self.input)?;
        writeln!(
            f,
            "ratings          {} trained on, {} held out, {} rows skipped (null values)",
            self.train_ratings, self.held_out_ratings, self.skipped_rows
        )?;
        if let Some(s) = &self.split {
            writeln!(f, "split            {s}")?;
        }
        if let Some(t) = &self.tuning {
            writeln!(
                f,
                "tuned            {} candidates on a validation split of the training reviews \
                 ({} users), best NDCG@{}",
                t.candidates.len(),
                t.validation_users,
                t.chosen().metrics.k
            )?;
        }
        writeln!(f, "model            {}", self.params)?;
        writeln!(
            f,
            "fitted           {} users, {} games",
            self.users, self.items
        )?;
        if let Some(r) = &self.train_rmse {
            writeln!(f, "train RMSE       {:.4}", r.rmse)?;
        }
        if let Some(t) = &self.test_rmse {
            writeln!(
                f,
                "held-out RMSE    {:.4} ({} predicted, {} cold-start dropped)",
                t.rmse, t.predicted, t.dropped
            )?;
        }
        if let Some((m, pop)) = &self.metrics {
            writeln!(f)?;
            metrics_header(f, "held-out", m.k)?;
            metrics_row(f, "model", m)?;
            metrics_row(f, "popularity", pop)?;
            writeln!(f)?;
        }
        writeln!(
            f,
            "written          {} rows, {} bytes ({})",
            self.written.rows,
            self.written.bytes,
            if self.include_seen {
                "every game"
            } else {
                "games the user has not reviewed"
            }
        )?;
        writeln!(f, "model file       {}", self.model_file)?;
        writeln!(
            f,
            "similar games    {} games' lists beside the results",
            self.similar_games
        )?;
        for s in &self.stages {
            writeln!(f, "  {:<14} {:>8.2} s", s.stage, s.seconds)?;
        }
        Ok(())
    }
}

/// A fitted model and its evaluation.
struct Fitted {
    model: Model,
    /// Each game's similar games, once computed.
    similar: Option<steam_core::RecordBatch>,
    tuning: Option<Tuning>,
    train_rmse: Option<Rmse>,
    test_rmse: Option<Rmse>,
    metrics: Option<(RankingMetrics, RankingMetrics)>,
    stages: Vec<StageSummary>,
}

/// Reads the ratings of `lake` (see [`TrainOptions::reviews`]), only the columns of `columns`.
/// Interaction logs often have no hours or dates: an hours or date column the input lacks is not
/// read (every review 0 hours; no dates, so the latest review of a user is its last in input
/// order), with a warning.
pub async fn read_ratings(
    lake: &Lake,
    date: Option<NaiveDate>,
    columns: &RatingColumns,
) -> Result<(String, Ratings)> {
    let lake = lake.snapshot(date).await?;
    let source = LakeSource::objects(&lake).await?;
    let schema = steam_core::Source::schema(&source);
    let mut columns = columns.clone();
    for (what, column) in [("hours", &mut columns.hours), ("date", &mut columns.date)] {
        if let Some(name) = column.as_deref() {
            if schema.field_with_name(name).is_err() {
                tracing::warn!("{lake} has no {what} column {name:?}: read without {what}",);
                *column = None;
            }
        }
    }
    let columns = &columns;
    let source = source.select(&columns.names())?;
    let mut stream = steam_core::Source::read(&source).await?;
    let mut ratings = Ratings::new();
    while let Some(batch) = stream.next().await {
        ratings.extend_from_batch(&batch?, columns)?;
    }
    if ratings.is_empty() {
        return Err(Error::Config {
            key: "--reviews".into(),
            reason: format!("{lake} holds no ratings"),
        });
    }
    Ok((lake.url().to_owned(), ratings))
}

/// Fits the model of `options` on `train_set` (tuning first if asked, or from `previous`) and
/// evaluates it on `held_out` (if not empty): CPU work, run off the async runtime.
fn fit_and_evaluate(
    options: &TrainOptions,
    train_set: &Ratings,
    held_out: &Ratings,
    previous: Option<&AlsModel>,
) -> Result<Fitted> {
    let mut stages = Vec::new();
    let (params, tuning) = if let Some(previous) = previous {
        let params = AlsParams {
            iterations: steam_model::WARM_ITERATIONS,
            ..previous.params().clone()
        };
        (ModelParams::Als(params), None)
    } else if options.tune {
        let t = Instant::now();
        let tuning = tune(
            train_set,
            &auto_grid(&options.params),
            &options.validation_split(),
            options.top_k,
        )?;
        stages.push(StageSummary::since("tune", t));
        (tuning.chosen().params.clone(), Some(tuning))
    } else {
        let params = options
            .model
            .clone()
            .unwrap_or_else(|| ModelParams::Als(options.params.clone()));
        (params, None)
    };
    let t = Instant::now();
    let model = match (previous, &params) {
        (Some(previous), ModelParams::Als(params)) => {
            Model::Als(AlsModel::fit_warm(train_set, params, previous)?)
        }
        _ => Model::fit(train_set, &params)?,
    };
    stages.push(StageSummary::since(
        if previous.is_some() {
            "fit (warm)"
        } else {
            "fit"
        },
        t,
    ));
    let t = Instant::now();
    let als = model.als();
    let explicit = als.is_some_and(|m| m.params().feedback == Feedback::Explicit);
    let train_rmse = als.filter(|_| explicit).map(|m| m.rmse(train_set));
    let (test_rmse, metrics) = if held_out.is_empty() {
        (None, None)
    } else {
        let holdout = Holdout::new(train_set, held_out);
        let ours = holdout.evaluate(&model, options.top_k);
        let popular = holdout.evaluate(&Popularity::fit(train_set), options.top_k);
        (
            als.filter(|_| explicit).map(|m| m.rmse(held_out)),
            Some((ours, popular)),
        )
    };
    stages.push(StageSummary::since("evaluate", t));
    Ok(Fitted {
        model,
        similar: None,
        tuning,
        train_rmse,
        test_rmse,
        metrics,
        stages,
    })
}

/// Where the model description of results object `out` goes: beside it, `<name>.model.json`
/// (`<name>` without its `.parquet`).
pub fn model_file(out: &Lake) -> (object_store::path::Path, String) {
    let object = out.path(&[]);
    let name = object
        .as_ref()
        .strip_suffix(".parquet")
        .unwrap_or(object.as_ref());
    let path = object_store::path::Path::from(format!("{name}.model.json"));
    let url = out.url();
    let url = url.strip_suffix(".parquet").unwrap_or(url);
    (path, format!("{url}.model.json"))
}

/// The factors of the model of results object `out`: beside it, `<name>.factors.parquet`
/// ([`AlsModel::factor_batches`]), from which [`TrainOptions::warm`] starts. `None` when `out` is
/// not a `.parquet` object.
pub fn factors_file(out: &Lake) -> Option<Lake> {
    let object = out.path(&[]);
    let file = object.filename()?.strip_suffix(".parquet")?.to_owned();
    out.sibling(&format!("{file}.factors.parquet"))
}

/// The model beside results object `out` (its factors, and the parameters its model description
/// names), or `None` when there is none.
pub async fn previous_model(out: &Lake) -> Result<Option<AlsModel>> {
    use object_store::ObjectStoreExt;
    let Some(factors) = factors_file(out) else {
        return Ok(None);
    };
    let (path, url) = model_file(out);
    let description = match out.store().get(&path).await {
        Ok(got) => got.bytes().await.map_err(|e| out.error(&path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(out.error(&path, e)),
    };
    let batches = match LakeSource::objects(&factors).await {
        Ok(source) => source.read_all().await?,
        Err(e) if e.kind() == steam_core::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(None);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&description).map_err(|e| Error::Schema {
            target: url.clone(),
            reason: format!("not a model description: {e}"),
        })?;
    if !matches!(
        json["params"]["model"].as_str(),
        Some("implicit" | "explicit")
    ) {
        return Ok(None); // another family: no factors to start from
    }
    let params = params_from_json(&json["params"]).map_err(|reason| Error::Schema {
        target: url,
        reason,
    })?;
    AlsModel::from_factor_batches(params, &batches).map(Some)
}

/// The previous results' lists kept for users without new reviews (see
/// [`TrainOptions::refresh_since`]).
struct KeptLists {
    /// The previous results, one batch.
    previous: steam_core::RecordBatch,
    /// Row of `previous` by user, for the users that keep their list.
    rows: std::collections::HashMap<i32, usize>,
}

impl KeptLists {
    /// `batch` of new lists with the kept users' rows taken from the previous results.
    fn merge(&self, batch: &steam_core::RecordBatch) -> Result<steam_core::RecordBatch> {
        use arrow::array::AsArray;
        let users = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int32Type>();
        let indices: Vec<(usize, usize)> = users
            .values()
            .iter()
            .enumerate()
            .map(|(i, u)| match self.rows.get(u) {
                Some(row) => (1, *row),
                None => (0, i),
            })
            .collect();
        let columns = (0..batch.num_columns())
            .map(|c| {
                arrow::compute::interleave(
                    &[batch.column(c).as_ref(), self.previous.column(c).as_ref()],
                    &indices,
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::arrow("keeping the lists of users without new reviews", e))?;
        steam_core::RecordBatch::try_new(batch.schema(), columns)
            .map_err(|e| Error::arrow("keeping the lists of users without new reviews", e))
    }
}

/// The previous results' lists of the users with no review in `options.reviews`' partitions from
/// `since` on, or `None` without previous results.
async fn kept_lists(options: &TrainOptions, since: NaiveDate) -> Result<Option<KeptLists>> {
    use arrow::array::AsArray;
    let previous = match LakeSource::objects(&options.out).await {
        Ok(source) => source.read_all().await?,
        Err(e) if e.kind() == steam_core::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let schema = recommendations_schema();
    if previous
        .iter()
        .any(|b| b.schema().fields() != schema.fields())
    {
        return Ok(None); // results of another shape: every list is recomputed
    }
    let previous = arrow::compute::concat_batches(&schema, &previous)
        .map_err(|e| Error::arrow("reading the previous results", e))?;
    let mut fresh = std::collections::HashSet::new();
    for date in options.reviews.partitions().await? {
        if date < since {
            continue;
        }
        let partition = options.reviews.snapshot(Some(date)).await?;
        let source = LakeSource::objects(&partition)
            .await?
            .select(&["user_id"])?;
        for batch in source.read_all().await? {
            let users = batch
                .column(0)
                .as_primitive_opt::<arrow::datatypes::Int32Type>()
                .ok_or_else(|| Error::Schema {
                    target: partition.url().to_owned(),
                    reason: "user_id is not Int32".into(),
                })?;
            fresh.extend(users.iter().flatten());
        }
    }
    let users = previous
        .column(0)
        .as_primitive::<arrow::datatypes::Int32Type>();
    let rows = users
        .values()
        .iter()
        .enumerate()
        .filter(|(_, u)| !fresh.contains(*u))
        .map(|(i, u)| (*u, i))
        .collect();
    Ok(Some(KeptLists { previous, rows }))
}

/// The parameters of a model description's `params` (as [`TrainReport::model_json`] writes them).
fn params_from_json(p: &serde_json::Value) -> std::result::Result<AlsParams, String> {
    let text = |k: &str| p[k].as_str().ok_or_else(|| format!("params.{k} missing"));
    let number = |k: &str| p[k].as_f64().ok_or_else(|| format!("params.{k} missing"));
    let whole = |k: &str| p[k].as_u64().ok_or_else(|| format!("params.{k} missing"));
    let defaults = AlsParams::default();
    let mut params = AlsParams {
        feedback: text("model")?.parse().map_err(|e: Error| e.to_string())?,
        rank: whole("rank")? as usize,
        iterations: whole("iterations")? as usize,
        reg_param: number("reg_param")?,
        seed: whole("seed")?,
        ..defaults
    };
    if params.feedback == Feedback::Implicit {
        params.alpha = number("alpha")?;
        params.confidence = text("confidence")?
            .parse()
            .map_err(|e: Error| e.to_string())?;
        params.solver = match &p["solver"] {
            serde_json::Value::String(s) if s == "cholesky" => steam_model::Solver::Cholesky,
            other => steam_model::Solver::ConjugateGradient {
                steps: other["conjugate_gradient_steps"]
                    .as_u64()
                    .ok_or_else(|| "params.solver unknown".to_owned())?
                    as usize,
            },
        };
    }
    Ok(params)
}

/// The popular list of results object `out`: beside it, `<name>.popular.parquet` (columns `rank`,
/// `game_id`: the games most recommended in the training reviews, best first), which the serving
/// load gives users the model does not know. `None` when `out` is not a `.parquet` object.
pub fn popular_file(out: &Lake) -> Option<Lake> {
    let object = out.path(&[]);
    let file = object.filename()?.strip_suffix(".parquet")?.to_owned();
    out.sibling(&format!("{file}.popular.parquet"))
}

/// The similar games of results object `out`: beside it, `<name>.similar.parquet`
/// ([`steam_core::similar_games_schema`]: each game's most similar games by the chosen model,
/// best first), which the serving load copies for `GET /games/{id}/similar`. `None` when `out` is
/// not a `.parquet` object.
pub fn similar_file(out: &Lake) -> Option<Lake> {
    let object = out.path(&[]);
    let file = object.filename()?.strip_suffix(".parquet")?.to_owned();
    out.sibling(&format!("{file}.similar.parquet"))
}

/// The schema of [`popular_file`].
pub fn popular_file_schema() -> steam_core::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("rank", DataType::Int32, false),
        Field::new("game_id", DataType::Int32, false),
    ]))
}

/// Trains ALS on the ratings (by default: tuning picks the model, see [`TrainOptions`]),
/// evaluates it against the popularity baseline, writes every user's top k to
/// [`TrainOptions::out`] as one Parquet object of [`steam_model::recommendations_schema`]
/// (Spark's `recommendForAllUsers` output), streamed while it is computed and replaced only when
/// complete, then the model description beside it ([`model_file`]).
pub async fn train(options: &TrainOptions) -> Result<TrainReport> {
    let mut stages = Vec::new();
    let (top_k, include_seen) = (options.top_k, options.include_seen);

    let t = Instant::now();
    let (input, all) = read_ratings(&options.reviews, options.date, &options.columns).await?;
    let (train_set, held_out, split) = match &options.test {
        Some(test) => {
            let (_, test) = read_ratings(test, None, &options.columns).await?;
            (all, test, None)
        }
        None if options.split == SplitKind::Random && options.holdout == 0.0 => {
            (all, Ratings::new(), None)
        }
        None => {
            let split = options.evaluation_split();
            let (kept, held) = split.apply(&all)?;
            (kept, held, Some(split))
        }
    };
    stages.push(StageSummary::since("read", t));

    let (train_len, held_len, skipped) = (train_set.len(), held_out.len(), train_set.skipped());
    let previous = if options.warm {
        previous_model(&options.out).await?
    } else {
        None
    };
    let warm_started = previous.is_some();
    let fit_options = options.clone();
    let (fitted, train_set) = tokio::task::spawn_blocking(move || {
        let fitted = fit_and_evaluate(&fit_options, &train_set, &held_out, previous.as_ref())
            .and_then(|mut fitted| {
                let t = Instant::now();
                fitted.similar = Some(fitted.model.similar_games(&train_set, fit_options.top_k)?);
                fitted.stages.push(StageSummary::since("similar games", t));
                Ok(fitted)
            });
        (fitted, train_set)
    })
    .await
    .map_err(|e| Error::from_join("training", e))?;
    let Fitted {
        model,
        similar,
        tuning,
        train_rmse,
        test_rmse,
        metrics,
        stages: fit_stages,
    } = fitted?;
    stages.extend(fit_stages);

    let t = Instant::now();
    let params = model.params();
    let users = train_set
        .users()
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let items = train_set
        .items()
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let factors = match (factors_file(&options.out), model.als()) {
        (Some(file), Some(als)) => {
            let batches: Vec<steam_core::RecordBatch> =
                als.factor_batches(64 * 1024).collect::<Result<_>>()?;
            Some((file, batches))
        }
        _ => None,
    };
    let similar = similar_file(&options.out).map(|file| (file, similar));
    let popular: Vec<i32> = steam_model::Popularity::fit(&train_set)
        .ranked()
        .iter()
        .take(top_k)
        .copied()
        .collect();
    let kept = match (warm_started, options.refresh_since) {
        (true, Some(since)) => kept_lists(options, since).await?,
        _ => None,
    };
    // The results object is published only when the producer has computed every user's list: a
    // producer that fails or panics ends the stream with an error, and the sink aborts.
    let stream = spawn_blocking_stream("recommendForAllUsers", move |tx| {
        let batches = if include_seen {
            model.recommend_for_all_users(&train_set, top_k, 16 * 1024)
        } else {
            model.recommend_unseen(&train_set, top_k, 16 * 1024)
        };
        for batch in batches {
            let batch = match &kept {
                Some(kept) => kept.merge(&batch?)?,
                None => batch?,
            };
            if !tx.blocking_send(Ok(batch)) {
                break; // the sink stopped: its error is reported
            }
        }
        Ok(())
    });
    let written = ParquetObjectSink::new(options.out.clone())
        .write(
            &TableRef::new(RESULTS_TABLE, recommendations_schema()),
            WriteMode::Replace,
            stream,
        )
        .await?;
    stages.push(StageSummary::since("recommend", t));

    if let Some(file) = popular_file(&options.out) {
        let batch = steam_core::RecordBatch::try_new(
            popular_file_schema(),
            vec![
                std::sync::Arc::new(arrow::array::Int32Array::from_iter_values(
                    1..=popular.len() as i32,
                )),
                std::sync::Arc::new(arrow::array::Int32Array::from(popular)),
            ],
        )
        .map_err(|e| Error::arrow("the popular list", e))?;
        ParquetObjectSink::new(file)
            .write(
                &TableRef::new("popular", popular_file_schema()),
                WriteMode::Replace,
                steam_core::batch_stream(futures::stream::iter([Ok(batch)])),
            )
            .await?;
    }

    let similar_games = similar
        .as_ref()
        .map_or(0, |(_, b)| b.as_ref().map_or(0, |b| b.num_rows()));
    if let Some((file, Some(batch))) = similar {
        ParquetObjectSink::new(file)
            .write(
                &TableRef::new("similar_games", steam_core::similar_games_schema()),
                WriteMode::Replace,
                steam_core::batch_stream(futures::stream::iter([Ok(batch)])),
            )
            .await?;
    }

    if let Some((file, batches)) = factors {
        ParquetObjectSink::new(file)
            .write(
                &TableRef::new("factors", steam_model::AlsModel::factors_schema()),
                WriteMode::Replace,
                steam_core::batch_stream(futures::stream::iter(batches.into_iter().map(Ok))),
            )
            .await?;
    }

    let (path, model_url) = model_file(&options.out);
    let mut report = TrainReport {
        input,
        split,
        train_ratings: train_len,
        held_out_ratings: held_len,
        skipped_rows: skipped,
        params,
        tuning,
        users,
        items,
        train_rmse,
        test_rmse,
        metrics,
        include_seen,
        written,
        model_file: model_url,
        similar_games,
        stages,
    };
    let json = serde_json::to_vec_pretty(&report.model_json()).map_err(|e| Error::Internal {
        what: format!("model description {}", report.model_file),
        message: e.to_string(),
    })?;
    let t = Instant::now();
    options.out.put(&path, json).await?;
    report.stages.push(StageSummary::since("model file", t));
    Ok(report)
}
