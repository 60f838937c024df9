//! The train pipeline on generated data: the reference's model and results in Spark's schema;
//! the default (tuned, unseen games only, the model described beside the results); evaluation
//! and tuning; conformed-table inputs and their partitions; and errors.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, RecordBatchReader};
use arrow::datatypes::{Float32Type, Int32Type};
use chrono::NaiveDate;
use futures::stream;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use steam_recsys::connectors::lake::{Lake, LakeParquetSink};
use steam_recsys::core::{batch_stream, Sink, Table, TableRef, WriteMode};
use steam_recsys::model::{auto_grid, AlsParams, Feedback, ModelParams, SplitKind};
use steam_recsys::pipelines::{
    evaluate, generate, process, train, tune_reviews, EvaluateOptions, GenerateOptions,
    ProcessOptions, TrainOptions, TuneOptions,
};

/// What Spark ML 4.3's `recommendForAllUsers(10)` writes to Parquet (its file's schema, as printed
/// by pyarrow's ParquetFile.schema), the reference's user_recommendations.parquet.
const SPARK_SCHEMA: &str = "message spark_schema {
  required int32 user_id;
  optional group recommendations (LIST) {
    repeated group list {
      optional group element {
        optional int32 game_id;
        optional float rating;
      }
    }
  }
}";

/// Generates and processes `reviews` reviews; returns the directory holding the tables.
async fn processed(dir: &Path, reviews: u64) -> std::path::PathBuf {
    let mut options = GenerateOptions::new(dir.join("raw"), reviews);
    options.games = 60;
    generate(&options).unwrap();
    let mut options = ProcessOptions::new(dir.join("raw"), dir.join("processed"));
    options.reference_year = 2024;
    process(&options).await.unwrap();
    dir.join("processed")
}

fn read_parquet(path: &Path) -> (arrow::datatypes::SchemaRef, Vec<RecordBatch>) {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    (schema, reader.map(Result::unwrap).collect())
}

fn lake(path: &Path) -> Lake {
    Lake::from_env(path.to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn trains_on_reviews_and_writes_every_users_top_ten_in_sparks_schema() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 30_000).await;
    let reviews = common::table(&tables, Table::GamesReviews);
    let out = dir.path().join("results/user_recommendations.parquet");
    let report = train(&TrainOptions::reference(
        lake(&tables.join("games_reviews.parquet")),
        lake(&out),
    ))
    .await
    .unwrap();
    assert_eq!(report.params.als().unwrap().feedback, Feedback::Explicit);
    assert!(report.tuning.is_none());

    // Every review is a rating: trained on or held out (about 20%).
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(
        report.train_ratings + report.held_out_ratings,
        reviews.num_rows()
    );
    let held = report.held_out_ratings as f64 / reviews.num_rows() as f64;
    assert!((0.18..0.22).contains(&held), "{held}");
    let test = report.test_rmse.unwrap();
    assert!(test.rmse.is_finite() && test.rmse < 0.6, "{test:?}");
    assert!(report.train_rmse.unwrap().rmse < test.rmse, "{report}");
    let (m, popular) = report.metrics.unwrap();
    assert!(m.users > 0 && m.precision > 0.0, "{m:?}");
    assert_eq!(m.users, popular.users);

    // Spark's schema, field for field.
    let spark = parquet::schema::parser::parse_message_type(SPARK_SCHEMA).unwrap();
    let spark = parquet::schema::types::SchemaDescriptor::new(Arc::new(spark));
    let spark = parquet::arrow::parquet_to_arrow_schema(&spark, None).unwrap();
    let (schema, batches) = read_parquet(&out);
    assert_eq!(schema.fields(), spark.fields());

    // One row per trained user, ascending, each with the 10 best-rated games, best first.
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, report.written.rows);
    assert_eq!(rows, report.users);
    let user_ids = common::i32s(&reviews, "user_id");
    let mut previous = i32::MIN;
    for b in &batches {
        let users = b.column(0).as_primitive::<Int32Type>();
        let lists = b.column(1).as_list::<i32>();
        for row in 0..b.num_rows() {
            assert!(users.value(row) > previous);
            previous = users.value(row);
            assert!(user_ids.contains(&Some(previous)));
            let recs = lists.value(row);
            let recs = recs.as_struct();
            let games = recs.column(0).as_primitive::<Int32Type>();
            let ratings = recs.column(1).as_primitive::<Float32Type>();
            assert_eq!(games.len(), 10);
            assert_eq!(games.null_count() + ratings.null_count(), 0);
            let mut distinct = games.values().to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 10);
            assert!(ratings.values().windows(2).all(|w| w[0] >= w[1]));
        }
    }

    // The same seed gives the same file; another seed does not.
    let again = dir.path().join("again.parquet");
    train(&TrainOptions::reference(
        lake(&tables.join("games_reviews.parquet")),
        lake(&again),
    ))
    .await
    .unwrap();
    assert_eq!(read_parquet(&again).1, batches);
}

#[tokio::test]
async fn a_conformed_table_is_read_whole_or_one_days_partition() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 5_000).await;
    let reviews = common::table(&tables, Table::GamesReviews);
    // Each partition holds the reviews that arrived that day.
    let half = reviews.slice(0, reviews.num_rows() / 2);
    let rest = reviews.slice(half.num_rows(), reviews.num_rows() - half.num_rows());
    let conformed = lake(&dir.path().join("conformed"));
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    for (date, batch) in [(day(1), half.clone()), (day(2), rest.clone())] {
        LakeParquetSink::new(conformed.clone(), date)
            .write(
                &TableRef::from(Table::GamesReviews),
                WriteMode::Replace,
                batch_stream(stream::iter([Ok(batch)])),
            )
            .await
            .unwrap();
    }
    let table = lake(&dir.path().join("conformed/games_reviews"));
    let out = lake(&dir.path().join("out.parquet"));
    let mut options = TrainOptions::new(table, out);
    options.holdout = 0.0;
    let whole = train(&options).await.unwrap();
    assert_eq!(whole.train_ratings, reviews.num_rows());
    assert!(
        whole.input.trim_end_matches('/').ends_with("games_reviews"),
        "{}",
        whole.input
    );
    assert!(whole.test_rmse.is_none() && whole.metrics.is_none());

    options.date = Some(day(1));
    let first = train(&options).await.unwrap();
    assert_eq!(first.train_ratings, half.num_rows());
    assert!(
        first.input.ends_with("record_created_dt=2026-11-01"),
        "{}",
        first.input
    );

    options.date = Some(day(3));
    let e = train(&options).await.unwrap_err().to_string();
    assert!(
        e.contains("record_created_dt=2026-11-03") && e.contains("2026-11-01, 2026-11-02"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_inputs_are_clear_errors_and_leave_the_results_alone() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 2_000).await;
    let out = dir.path().join("user_recommendations.parquet");
    let mut options = TrainOptions::new(lake(&tables.join("games_reviews.parquet")), lake(&out));
    options.tune = false;
    train(&options).await.unwrap();
    let before = std::fs::read(&out).unwrap();
    let model_file = dir.path().join("user_recommendations.model.json");
    let model_before = std::fs::read(&model_file).unwrap();

    // A table without the rating column.
    options.reviews = lake(&tables.join("users_mapping.parquet"));
    let e = train(&options).await.unwrap_err().to_string();
    assert!(
        e.contains("missing column") && e.contains("users_mapping.parquet:"),
        "{e}"
    );

    // A directory with no Parquet objects.
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    options.reviews = lake(&dir.path().join("empty"));
    let e = train(&options).await.unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");

    // Bad parameters.
    options.reviews = lake(&tables.join("games_reviews.parquet"));
    options.params.rank = 0;
    let e = train(&options).await.unwrap_err().to_string();
    assert!(e.contains("rank"), "{e}");
    options.params.rank = 10;
    options.holdout = 1.5;
    let e = train(&options).await.unwrap_err().to_string();
    assert!(e.contains("holdout"), "{e}");

    options.holdout = 0.2;
    options.params.alpha = f64::INFINITY;
    let e = train(&options).await.unwrap_err().to_string();
    assert!(e.contains("alpha"), "{e}");

    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_eq!(std::fs::read(&model_file).unwrap(), model_before);
}

/// Every (user, game) pair reviewed in `batches`.
fn pairs(batch: &RecordBatch) -> std::collections::HashSet<(i32, i32)> {
    let users = common::i32s(batch, "user_id");
    let games = common::i32s(batch, "game_id");
    users
        .into_iter()
        .zip(games)
        .filter_map(|(u, g)| Some((u?, g?)))
        .collect()
}

/// (user, recommended games) of a results file.
fn lists(path: &Path) -> Vec<(i32, Vec<i32>)> {
    let mut out = Vec::new();
    for b in read_parquet(path).1 {
        let users = b.column(0).as_primitive::<Int32Type>();
        let recs = b.column(1).as_list::<i32>();
        for row in 0..b.num_rows() {
            let games = recs.value(row);
            let games = games.as_struct().column(0).as_primitive::<Int32Type>();
            out.push((users.value(row), games.values().to_vec()));
        }
    }
    out
}

#[tokio::test]
async fn the_default_is_tuned_recommends_unseen_games_and_is_described_beside_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 20_000).await;
    let reviews = common::table(&tables, Table::GamesReviews);
    let reviewed = pairs(&reviews);
    let input = lake(&tables.join("games_reviews.parquet"));

    // Trained on every review: no user is recommended a game it reviewed.
    let out = dir.path().join("results/user_recommendations.parquet");
    let mut options = TrainOptions::new(input.clone(), lake(&out));
    options.holdout = 0.0;
    let report = train(&options).await.unwrap();
    let tuning = report.tuning.as_ref().unwrap();
    assert_eq!(
        tuning.candidates.len(),
        auto_grid(&AlsParams::default()).len()
    );
    assert_eq!(report.params, tuning.chosen().params);
    let served = lists(&out);
    assert_eq!(served.len(), report.users);
    let mut full = 0;
    for (user, games) in &served {
        assert!(games.len() <= 10);
        full += usize::from(games.len() == 10);
        for g in games {
            assert!(!reviewed.contains(&(*user, *g)), "user {user} reviewed {g}");
        }
    }
    assert!(full > served.len() * 9 / 10, "{full} of {}", served.len());
    // Spark's semantics on request: the heaviest users get games they reviewed.
    options.include_seen = true;
    options.tune = false;
    options.model = Some(report.params.clone());
    let seen_out = dir.path().join("seen.parquet");
    options.out = lake(&seen_out);
    train(&options).await.unwrap();
    assert!(lists(&seen_out)
        .iter()
        .any(|(u, games)| games.iter().any(|g| reviewed.contains(&(*u, *g)))));

    // The model file names the model and how it was chosen.
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/user_recommendations.model.json")).unwrap(),
    )
    .unwrap();
    match &report.params {
        ModelParams::Als(p) => {
            assert_eq!(model["params"]["model"], p.feedback.to_string());
            assert_eq!(model["params"]["rank"], p.rank);
        }
        other => assert_eq!(model["params"]["model"], other.family().to_string()),
    }
    let candidates = model["chosen_by"]["tune"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), auto_grid(&AlsParams::default()).len());
    // Every family is among the candidates.
    for family in ["popularity", "item-knn", "ease", "als", "blend"] {
        assert!(
            candidates.iter().any(|c| c["family"] == family),
            "{family}: {candidates:?}"
        );
    }
    assert_eq!(model["include_seen"], false);

    // Evaluated on each user's latest review, the default beats the popularity baseline.
    let mut options = TrainOptions::new(input.clone(), lake(&dir.path().join("latest.parquet")));
    options.split = SplitKind::Latest;
    let report = train(&options).await.unwrap();
    let (m, popular) = report.metrics.unwrap();
    assert!(
        m.ndcg > popular.ndcg && m.precision > popular.precision,
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("popularity") && text.contains("ndcg@10"),
        "{text}"
    );
}

#[tokio::test]
async fn evaluate_scores_models_baselines_and_lists_from_elsewhere_on_one_split() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 20_000).await;
    let input = lake(&tables.join("games_reviews.parquet"));
    let mut options = EvaluateOptions::new(input.clone());
    options.save_split = Some(lake(&dir.path().join("split")));
    options.tune = true;
    let report = evaluate(&options).await.unwrap();
    let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tuned (default)",
            "implicit",
            "explicit",
            "ease",
            "item-knn cosine",
            "item-knn bm25",
            "blend",
            "popularity",
            "random"
        ]
    );
    let users = report.rows[0].metrics.users;
    assert!(users > 500, "{report}");
    assert!(report.rows.iter().all(|r| r.metrics.users == users));
    let m = |name| report.row(name).unwrap().metrics;
    assert!(m("tuned (default)").ndcg > m("popularity").ndcg, "{report}");
    assert!(m("popularity").ndcg > m("random").ndcg, "{report}");
    assert!(m("random").coverage > m("popularity").coverage, "{report}");
    assert!(report.to_string().contains("map@10"));

    // The saved split: the same reviews, evaluated from its files, give the same figures; a
    // results file from elsewhere is scored as given.
    let split = dir.path().join("split");
    let train_rows: usize = read_parquet(&split.join("train.parquet"))
        .1
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(train_rows, report.train_reviews);
    let mut trained = TrainOptions::new(
        lake(&split.join("train.parquet")),
        lake(&dir.path().join("ours.parquet")),
    );
    trained.tune = false;
    trained.holdout = 0.0;
    train(&trained).await.unwrap();
    let mut again = EvaluateOptions::new(lake(&split.join("train.parquet")));
    again.test = Some(lake(&split.join("test.parquet")));
    again.lists = vec![("ours".into(), lake(&dir.path().join("ours.parquet")))];
    let again = evaluate(&again).await.unwrap();
    assert_eq!(again.row("implicit").unwrap().metrics, m("implicit"));
    assert_eq!(again.row("popularity").unwrap().metrics, m("popularity"));
    // The lists written by train are the implicit model's unseen top 10.
    assert_eq!(again.row("ours").unwrap().metrics, m("implicit"));

    // Tuning ranks the grid; a bad list is a clear error.
    let tuned = tune_reviews(&TuneOptions::new(input.clone()))
        .await
        .unwrap();
    assert_eq!(
        tuned.tuning.candidates.len(),
        auto_grid(&AlsParams::default()).len()
    );
    assert!(tuned.to_string().contains("chosen (best NDCG@10"));
    let mut bad = EvaluateOptions::new(input);
    bad.lists = vec![("wrong".into(), lake(&tables.join("users_mapping.parquet")))];
    let e = evaluate(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("users_mapping.parquet") && e.contains("recommendations"),
        "{e}"
    );
}
