//! Offline evaluation of recommenders on games_reviews: the implicit and the explicit model, the
//! popularity and random baselines, and lists computed elsewhere, all scored by the same code on
//! the same held-out reviews ([`evaluate`]); and the choice of a model by a small grid on a
//! validation split ([`tune_reviews`]).

use std::fmt;
use std::time::Instant;

use chrono::NaiveDate;
use futures::{stream, StreamExt};
use steam_connectors::lake::{Lake, LakeSource, ParquetObjectSink};
use steam_core::{batch_stream, Error, Result, Sink, TableRef, WriteMode};
use steam_model::{
    auto_grid, tune, AlsModel, AlsParams, BlendParams, EaseParams, Holdout, KnnParams, Lists,
    Model, ModelParams, Popularity, RandomItems, RankingMetrics, RatingColumns, Ratings,
    Recommender, Similarity, Split, SplitKind, Tuning,
};

use crate::train::{metrics_header, metrics_row, read_ratings};

/// Options of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The reviews, read as [`crate::TrainOptions::reviews`]: all of them are training data when
    /// [`EvaluateOptions::test`] is given, else they are split.
    pub reviews: Lake,
    /// With a conformed table: the partition to read [default: the latest].
    pub date: Option<NaiveDate>,
    /// The columns read.
    pub columns: RatingColumns,
    /// Held-out reviews, instead of a split of `reviews`.
    pub test: Option<Lake>,
    /// How reviews are held out.
    pub split: SplitKind,
    /// With a random split: the fraction held out.
    pub holdout: f64,
    /// The k of the metrics.
    pub k: usize,
    /// The implicit model's parameters (its seed drives the random split and baseline too).
    pub implicit: AlsParams,
    /// The explicit model's parameters.
    pub explicit: AlsParams,
    /// The other families, by name (each row fitted on the training reviews as given):
    /// [`EvaluateOptions::families`] by default.
    pub others: Vec<(String, ModelParams)>,
    /// Add the model `train` would choose by default: family and parameters tuned on a validation
    /// split of the training reviews.
    pub tune: bool,
    /// Lists computed elsewhere, by name: results objects in [`steam_model::recommendations_schema`]
    /// (such as another library's top 10), evaluated as given.
    pub lists: Vec<(String, Lake)>,
    /// Write the training and held-out reviews there as `train.parquet` and `test.parquet`, so
    /// that another tool can train and be evaluated on the same split.
    pub save_split: Option<Lake>,
}

impl EvaluateOptions {
    /// Evaluation on a random 80/20 split at k = 10 of the default implicit model and Spark's
    /// explicit one, with the baselines.
    pub fn new(reviews: Lake) -> Self {
        EvaluateOptions {
            reviews,
            date: None,
            columns: RatingColumns::default(),
            test: None,
            split: SplitKind::Random,
            holdout: 0.2,
            k: 10,
            implicit: AlsParams::default(),
            explicit: AlsParams::spark_explicit(),
            others: EvaluateOptions::families(),
            tune: false,
            lists: Vec::new(),
            save_split: None,
        }
    }
}

impl EvaluateOptions {
    /// The families evaluated beside ALS by default: EASE (λ 500), item-kNN (cosine and BM25, K
    /// 100), and a blend of EASE with popularity (weight 0.3).
    pub fn families() -> Vec<(String, ModelParams)> {
        let ease = ModelParams::Ease(EaseParams::default());
        vec![
            ("ease".into(), ease.clone()),
            (
                "item-knn cosine".into(),
                ModelParams::ItemKnn(KnnParams {
                    neighbours: 100,
                    similarity: Similarity::Cosine,
                }),
            ),
            (
                "item-knn bm25".into(),
                ModelParams::ItemKnn(KnnParams {
                    neighbours: 100,
                    similarity: Similarity::Bm25 { k1: 1.2, b: 0.75 },
                }),
            ),
            (
                "blend".into(),
                ModelParams::Blend(BlendParams {
                    personal: Some(Box::new(ease)),
                    weight: 0.3,
                }),
            ),
        ]
    }
}

/// One recommender's figures.
#[derive(Debug, Clone)]
pub struct EvaluateRow {
    /// What was evaluated: implicit, explicit, tuned, popularity, random, or a list's name.
    pub name: String,
    /// Its parameters or where it came from.
    pub detail: String,
    /// The metrics.
    pub metrics: RankingMetrics,
    /// Seconds to fit (or read, or tune and fit) it.
    pub seconds: f64,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone)]
pub struct EvaluateReport {
    /// The object or partition the reviews were read from.
    pub input: String,
    /// The split, or `None` with a separate test set.
    pub split: Option<Split>,
    /// Reviews trained on.
    pub train_reviews: usize,
    /// Reviews held out.
    pub test_reviews: usize,
    /// One row per recommender.
    pub rows: Vec<EvaluateRow>,
}

impl EvaluateReport {
    /// The row of `name`, if evaluated.
    pub fn row(&self, name: &str) -> Option<&EvaluateRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

impl fmt::Display for EvaluateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input     {}", self.input)?;
        match &self.split {
            Some(s) => writeln!(f, "split     {s}")?,
            None => writeln!(f, "split     a separate test set")?,
        }
        writeln!(
            f,
            "reviews   {} trained on, {} held out; relevant: a held-out review that recommends \
             the game; lists leave out games reviewed in training (but for lists read as given)",
            self.train_reviews, self.test_reviews
        )?;
        writeln!(f)?;
        let k = self.rows.first().map_or(10, |r| r.metrics.k);
        metrics_header(f, "recommender", k)?;
        for r in &self.rows {
            metrics_row(f, &r.name, &r.metrics)?;
        }
        writeln!(f)?;
        for r in &self.rows {
            writeln!(f, "{:<22} {:>8.2} s  {}", r.name, r.seconds, r.detail)?;
        }
        Ok(())
    }
}

/// Reads the reviews and splits them (or reads the test set).
async fn train_and_test(
    reviews: &Lake,
    date: Option<NaiveDate>,
    columns: &RatingColumns,
    test: Option<&Lake>,
    split: Split,
) -> Result<(String, Ratings, Ratings, Option<Split>)> {
    let (input, all) = read_ratings(reviews, date, columns).await?;
    Ok(match test {
        Some(test) => {
            let (_, test) = read_ratings(test, None, columns).await?;
            (input, all, test, None)
        }
        None => {
            let (train, test) = split.apply(&all)?;
            (input, train, test, Some(split))
        }
    })
}

/// Writes `ratings` as one Parquet object.
async fn write_ratings(lake: Lake, ratings: &Ratings, columns: &RatingColumns) -> Result<()> {
    let batch = ratings.to_batch(columns)?;
    let table = TableRef::new("ratings", batch.schema());
    ParquetObjectSink::new(lake)
        .write(
            &table,
            WriteMode::Replace,
            batch_stream(stream::iter([Ok(batch)])),
        )
        .await?;
    Ok(())
}

/// Reads recommendation lists from a results object (or a directory of them).
async fn read_lists(lake: &Lake) -> Result<Lists> {
    let source = LakeSource::objects(lake).await?;
    let mut stream = steam_core::Source::read(&source).await?;
    let mut lists = Lists::new();
    while let Some(batch) = stream.next().await {
        lists.extend_from_batch(&batch?).map_err(|e| match e {
            Error::Schema { target, reason } => Error::Schema {
                target: format!("{target} of {}", lake.url()),
                reason,
            },
            e => e,
        })?;
    }
    Ok(lists)
}

/// Scores the implicit model, the explicit model, the popularity and random baselines (and, if
/// asked, the tuned default model and lists computed elsewhere) on the same held-out reviews.
pub async fn evaluate(options: &EvaluateOptions) -> Result<EvaluateReport> {
    let split = options.split.with(options.holdout, options.implicit.seed);
    let (input, train, test, split) = train_and_test(
        &options.reviews,
        options.date,
        &options.columns,
        options.test.as_ref(),
        split,
    )
    .await?;
    if let Some(dir) = &options.save_split {
        write_ratings(dir.child("train.parquet"), &train, &options.columns).await?;
        write_ratings(dir.child("test.parquet"), &test, &options.columns).await?;
    }
    let mut lists = Vec::new();
    for (name, lake) in &options.lists {
        let t = Instant::now();
        let read = read_lists(lake).await?;
        lists.push((
            name.clone(),
            lake.url().to_owned(),
            read,
            t.elapsed().as_secs_f64(),
        ));
    }
    let (train_reviews, test_reviews) = (train.len(), test.len());
    let options = options.clone();
    let rows = tokio::task::spawn_blocking(move || -> Result<Vec<EvaluateRow>> {
        let holdout = Holdout::new(&train, &test);
        if holdout.users() == 0 {
            return Err(Error::Config {
                key: "--test".into(),
                reason: "no held-out review recommends a game reviewed by a user known from \
                         training: nothing to evaluate"
                    .into(),
            });
        }
        let k = options.k;
        let mut rows = Vec::new();
        let mut row = |name: &str, detail: String, r: &dyn Recommender, seconds: f64| {
            rows.push(EvaluateRow {
                name: name.into(),
                detail,
                metrics: holdout.evaluate(r, k),
                seconds,
            });
        };
        if options.tune {
            let t = Instant::now();
            let tuning = tune(
                &train,
                &auto_grid(&options.implicit),
                &options
                    .split
                    .validation(options.holdout, options.implicit.seed),
                k,
            )?;
            let model = Model::fit(&train, &tuning.chosen().params)?;
            let detail = format!("tuned: {}", model.params());
            row("tuned (default)", detail, &model, t.elapsed().as_secs_f64());
        }
        for (name, params) in [
            ("implicit", &options.implicit),
            ("explicit", &options.explicit),
        ] {
            let t = Instant::now();
            let model = AlsModel::fit(&train, params)?;
            row(name, params.to_string(), &model, t.elapsed().as_secs_f64());
        }
        for (name, params) in &options.others {
            let t = Instant::now();
            let model = Model::fit(&train, params)?;
            row(name, params.to_string(), &model, t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let popular = Popularity::fit(&train);
        row(
            "popularity",
            "most recommended games the user has not reviewed".into(),
            &popular,
            t.elapsed().as_secs_f64(),
        );
        let random = RandomItems::fit(&train, options.implicit.seed);
        row(
            "random",
            format!("unreviewed games at random, seed {}", options.implicit.seed),
            &random,
            0.0,
        );
        for (name, url, l, seconds) in &lists {
            row(
                name,
                format!("{} users' lists from {url}, as given", l.len()),
                l,
                *seconds,
            );
        }
        Ok(rows)
    })
    .await
    .map_err(|e| Error::from_join("evaluation", e))??;
    Ok(EvaluateReport {
        input,
        split,
        train_reviews,
        test_reviews,
        rows,
    })
}

/// Options of [`tune_reviews`].
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The reviews, read as [`crate::TrainOptions::reviews`]: all of them are tuning data (fit and
    /// validation); keep test data out.
    pub reviews: Lake,
    /// With a conformed table: the partition to read [default: the latest].
    pub date: Option<NaiveDate>,
    /// The columns read.
    pub columns: RatingColumns,
    /// How validation reviews are held out.
    pub split: SplitKind,
    /// With a random split: the fraction held out.
    pub holdout: f64,
    /// The k of the metrics.
    pub k: usize,
    /// The grid; [`steam_model::auto_grid`] around the default ALS parameters by default.
    pub grid: Vec<ModelParams>,
}

impl TuneOptions {
    /// The default grid on a random 80/20 validation split at k = 10.
    pub fn new(reviews: Lake) -> Self {
        TuneOptions {
            reviews,
            date: None,
            columns: RatingColumns::default(),
            split: SplitKind::Random,
            holdout: 0.2,
            k: 10,
            grid: auto_grid(&AlsParams::default()),
        }
    }
}

/// What [`tune_reviews`] found.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// The object or partition the reviews were read from.
    pub input: String,
    /// The validation split.
    pub split: Split,
    /// The candidates and the choice.
    pub tuning: Tuning,
}

impl fmt::Display for TuneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tuning;
        writeln!(f, "input       {}", self.input)?;
        writeln!(f, "validation  {}", self.split)?;
        writeln!(
            f,
            "reviews     {} fitted on, {} held out; {} users evaluated",
            t.fit_reviews, t.validation_reviews, t.validation_users
        )?;
        writeln!(f)?;
        let k = t.chosen().metrics.k;
        metrics_header(f, "candidate", k)?;
        for (n, c) in t.candidates.iter().enumerate() {
            let mark = if n == t.best { " *" } else { "" };
            metrics_row(f, &format!("{}{mark}", n + 1), &c.metrics)?;
        }
        writeln!(f)?;
        for (n, c) in t.candidates.iter().enumerate() {
            writeln!(f, "{:>2}  {:>7.2} s  {}", n + 1, c.fit_seconds, c.params)?;
            if !c.note.is_empty() {
                writeln!(f, "              ({})", c.note)?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "chosen (best NDCG@{k}; within {}% of it, the simplest): {}",
            steam_model::TIE * 100.0,
            t.chosen().params
        )
    }
}

/// Fits every candidate of the grid on part of the reviews and ranks them by NDCG@k on the rest.
pub async fn tune_reviews(options: &TuneOptions) -> Result<TuneReport> {
    let (input, reviews) = read_ratings(&options.reviews, options.date, &options.columns).await?;
    let seed = options
        .grid
        .iter()
        .find_map(ModelParams::als)
        .map_or(42, |p| p.seed);
    let split = options.split.validation(options.holdout, seed);
    let (grid, k) = (options.grid.clone(), options.k);
    let tuning = tokio::task::spawn_blocking(move || tune(&reviews, &grid, &split, k))
        .await
        .map_err(|e| Error::from_join("tuning", e))??;
    Ok(TuneReport {
        input,
        split,
        tuning,
    })
}
