//! The train pipeline on generated data: results in Spark's schema, evaluation, conformed-table
//! inputs and their partitions, and errors.

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
use steam_recsys::pipelines::{
    generate, process, train, GenerateOptions, ProcessOptions, TrainOptions,
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
    Lake::from_url(path.to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn trains_on_reviews_and_writes_every_users_top_ten_in_sparks_schema() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 30_000).await;
    let reviews = common::table(&tables, Table::GamesReviews);
    let out = dir.path().join("results/user_recommendations.parquet");
    let report = train(&TrainOptions::new(
        lake(&tables.join("games_reviews.parquet")),
        lake(&out),
    ))
    .await
    .unwrap();

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
    assert!(report.train_rmse.rmse < test.rmse, "{report}");
    let p = report.precision.unwrap();
    assert!(p.users > 0 && p.precision > 0.0, "{p:?}");

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
    train(&TrainOptions::new(
        lake(&tables.join("games_reviews.parquet")),
        lake(&again),
    ))
    .await
    .unwrap();
    assert_eq!(read_parquet(&again).1, batches);
}

#[tokio::test]
async fn a_conformed_table_is_read_from_its_latest_partition_or_a_chosen_one() {
    let dir = tempfile::tempdir().unwrap();
    let tables = processed(dir.path(), 5_000).await;
    let reviews = common::table(&tables, Table::GamesReviews);
    let half = reviews.slice(0, reviews.num_rows() / 2);
    let conformed = lake(&dir.path().join("conformed"));
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    for (date, batch) in [(day(1), reviews.clone()), (day(2), half.clone())] {
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
    let latest = train(&options).await.unwrap();
    assert_eq!(latest.train_ratings, half.num_rows());
    assert!(
        latest.input.ends_with("record_created_dt=2026-11-02"),
        "{}",
        latest.input
    );
    assert!(latest.test_rmse.is_none() && latest.precision.is_none());

    options.date = Some(day(1));
    let first = train(&options).await.unwrap();
    assert_eq!(first.train_ratings, reviews.num_rows());

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
    train(&options).await.unwrap();
    let before = std::fs::read(&out).unwrap();

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

    assert_eq!(std::fs::read(&out).unwrap(), before);
}
