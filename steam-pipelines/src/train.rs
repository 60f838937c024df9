//! Offline training: ALS on games_reviews from the lake → user_recommendations in the lake (the
//! reference's Spark ML notebook).

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
    recommendations_schema, AlsModel, AlsParams, PrecisionAtK, RatingColumns, Ratings, Rmse,
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
    /// The rating columns [default: games_reviews' `user_id`, `game_id`, `recommendation`].
    pub columns: RatingColumns,
    /// Held-out ratings to evaluate on, read like [`TrainOptions::reviews`]; when given, the model
    /// is trained on all of `reviews` and [`TrainOptions::holdout`] is not used.
    pub test: Option<Lake>,
    /// The fraction of `reviews` held out at random for evaluation (the model is trained on the
    /// rest); 0 trains on everything and evaluates on the training ratings only.
    pub holdout: f64,
    /// ALS parameters; the seed also drives the split.
    pub params: AlsParams,
    /// Recommendations per user.
    pub top_k: usize,
    /// Where user_recommendations goes: one Parquet object, replaced whole.
    pub out: Lake,
}

impl TrainOptions {
    /// The reference's training: rank 10, 10 iterations, regParam 0.1, 20% held out, top 10.
    pub fn new(reviews: Lake, out: Lake) -> Self {
        TrainOptions {
            reviews,
            date: None,
            columns: RatingColumns::default(),
            test: None,
            holdout: 0.2,
            params: AlsParams::default(),
            top_k: 10,
            out,
        }
    }
}

/// What [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The object or partition the ratings were read from.
    pub input: String,
    /// Ratings trained on.
    pub train_ratings: usize,
    /// Ratings held out.
    pub held_out_ratings: usize,
    /// Input rows left out: null user, item or rating.
    pub skipped_rows: u64,
    /// Users with factors.
    pub users: usize,
    /// Items with factors.
    pub items: usize,
    /// RMSE on the training ratings.
    pub train_rmse: Rmse,
    /// RMSE on the held-out ratings, if any.
    pub test_rmse: Option<Rmse>,
    /// Precision@k on the held-out ratings (relevant: a recommendation), if any.
    pub precision: Option<PrecisionAtK>,
    /// The results written.
    pub written: WriteSummary,
    /// Seconds per stage: read, fit, evaluate, recommend (with the write).
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
}

impl fmt::Display for TrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input            {}", self.input)?;
        writeln!(
            f,
            "ratings          {} trained on, {} held out, {} rows skipped (null values)",
            self.train_ratings, self.held_out_ratings, self.skipped_rows
        )?;
        writeln!(
            f,
            "factors          {} users, {} items",
            self.users, self.items
        )?;
        writeln!(f, "train RMSE       {:.4}", self.train_rmse.rmse)?;
        if let Some(t) = &self.test_rmse {
            writeln!(
                f,
                "held-out RMSE    {:.4} ({} predicted, {} cold-start dropped)",
                t.rmse, t.predicted, t.dropped
            )?;
        }
        if let Some(p) = &self.precision {
            writeln!(
                f,
                "precision@{:<6} {:.4} ({} users)",
                p.k, p.precision, p.users
            )?;
        }
        writeln!(
            f,
            "written          {} rows, {} bytes",
            self.written.rows, self.written.bytes
        )?;
        for s in &self.stages {
            writeln!(f, "  {:<14} {:>8.2} s", s.stage, s.seconds)?;
        }
        Ok(())
    }
}

/// A fitted model and its evaluation.
struct Fitted {
    model: AlsModel,
    train_rmse: Rmse,
    test_rmse: Option<Rmse>,
    precision: Option<PrecisionAtK>,
    train_len: usize,
    held_len: usize,
    skipped: u64,
    fit_seconds: f64,
    evaluate_seconds: f64,
}

/// Reads the ratings of `lake` (see [`TrainOptions::reviews`]), only the three columns.
pub async fn read_ratings(
    lake: &Lake,
    date: Option<NaiveDate>,
    columns: &RatingColumns,
) -> Result<(String, Ratings)> {
    let lake = lake.snapshot(date).await?;
    let source = LakeSource::objects(&lake).await?.select(&[
        columns.user.as_str(),
        columns.item.as_str(),
        columns.rating.as_str(),
    ])?;
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

/// Trains ALS on the ratings, evaluates it, and writes every user's top k to
/// [`TrainOptions::out`] as one Parquet object of
/// [`steam_model::recommendations_schema`] (Spark's `recommendForAllUsers` output), streamed
/// while it is computed and replaced only when complete.
pub async fn train(options: &TrainOptions) -> Result<TrainReport> {
    let mut stages = Vec::new();

    let t = Instant::now();
    let (input, all) = read_ratings(&options.reviews, options.date, &options.columns).await?;
    let (train_set, held_out) = match &options.test {
        Some(test) => {
            let (_, test) = read_ratings(test, None, &options.columns).await?;
            (all, test)
        }
        None => all.split(options.holdout, options.params.seed)?,
    };
    stages.push(StageSummary::since("read", t));

    // Fitting and evaluating are CPU work: off the runtime's threads, timed there.
    let params = options.params.clone();
    let top_k = options.top_k;
    let fitted = tokio::task::spawn_blocking(move || -> Result<Fitted> {
        let t = Instant::now();
        let model = AlsModel::fit(&train_set, &params)?;
        let fit_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let train_rmse = model.rmse(&train_set);
        let (test_rmse, precision) = if held_out.is_empty() {
            (None, None)
        } else {
            (
                Some(model.rmse(&held_out)),
                Some(model.precision_at_k(&train_set, &held_out, top_k, 1.0)),
            )
        };
        Ok(Fitted {
            model,
            train_rmse,
            test_rmse,
            precision,
            train_len: train_set.len(),
            held_len: held_out.len(),
            skipped: train_set.skipped(),
            fit_seconds,
            evaluate_seconds: t.elapsed().as_secs_f64(),
        })
    })
    .await
    .map_err(|e| Error::backend_msg("train", "als", format!("training thread: {e}")))??;
    let Fitted {
        model,
        train_rmse,
        test_rmse,
        precision,
        train_len,
        held_len,
        skipped,
        fit_seconds,
        evaluate_seconds,
    } = fitted;
    for (name, seconds) in [("fit", fit_seconds), ("evaluate", evaluate_seconds)] {
        stages.push(StageSummary::new(name, seconds));
    }

    let t = Instant::now();
    let (users, items) = (model.num_users(), model.num_items());
    // The results object is published only when the producer has computed every user's list: a
    // producer that fails or panics ends the stream with an error, and the sink aborts.
    let stream = spawn_blocking_stream("recommendForAllUsers", move |tx| {
        for batch in model.recommend_for_all_users(top_k, 16 * 1024) {
            if !tx.blocking_send(Ok(batch?)) {
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

    Ok(TrainReport {
        input,
        train_ratings: train_len,
        held_out_ratings: held_len,
        skipped_rows: skipped,
        users,
        items,
        train_rmse,
        test_rmse,
        precision,
        written,
        stages,
    })
}
