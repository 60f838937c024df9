//! `run all` end to end on the test services (PostgreSQL, nx-27017 for MongoDB) with lakes on the
//! local filesystem, configured through a configuration file with ${ENV} values, as a user would.

mod common;

use std::collections::BTreeSet;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use steam_recsys::connectors::lake::Lake;
use steam_recsys::connectors::redis::RedisSource;
use steam_recsys::core::Source;
use steam_recsys::core::Table;
use steam_recsys::pipelines::cli::Settings;
use steam_recsys::pipelines::{run_all, RawInput, RunAllOptions};

#[tokio::test]
async fn run_all_serves_one_document_per_user_and_reports_the_tables_counts() {
    for var in [
        "STEAM_TEST_POSTGRES_URL",
        "STEAM_TEST_MONGODB_URI",
        "STEAM_TEST_REDIS_URL",
    ] {
        assert!(
            std::env::var(var).is_ok(),
            "{var} is not set: run the tests with scripts/test (scripts/services)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = common::unique_schema("runall");
    let database = common::unique_schema("runall_db");
    let lake = dir.path().join("lake");
    let config = dir.path().join("steam-recsys.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[ci.postgres]
url = "${{STEAM_TEST_POSTGRES_URL}}"
schema = "{schema}"

[ci.lake]
raw = "file://{lake}/raw_games_data"
conformed = "file://{lake}/conformed_games_data"
results = "file://{lake}/inference_games_results"

[ci.mongodb]
uri = "${{STEAM_TEST_MONGODB_URI}}"
database = "{database}"
collection = "recsys"
"#,
            lake = lake.display()
        ),
    )
    .unwrap();
    let settings = Settings::load(Some(&config), "ci").unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let options = RunAllOptions {
        input: RawInput::Generate {
            reviews: 2_000,
            seed: 7,
        },
        work: dir.path().join("work"),
        reference_year: 2024,
        postgres: settings.require_postgres(None, None).unwrap(),
        raw_lake: Lake::from_env(&settings.raw_lake(None)).unwrap(),
        conformed_lake: Lake::from_env(&settings.conformed_lake(None)).unwrap(),
        results: Lake::from_env(&settings.results_object(None)).unwrap(),
        mongo: settings.require_mongo(None, None).unwrap(),
        collection: settings.collection(None),
        redis: Some(common::redis("runall")),
        date,
        holdout: 0.2,
        progress: false,
        full_refresh: false,
    };
    assert_eq!(options.postgres.schema(), schema);
    assert_eq!(options.mongo.database(), database);
    let report = run_all(&options).await.unwrap();
    let text = report.to_string();
    let train = report.train.clone().unwrap();

    // Every raw record is loaded or rejected.
    assert_eq!(report.process.files.len(), 3);
    for f in &report.process.files {
        assert_eq!(f.loaded + f.rejected, f.raw, "{f:?}");
        assert_eq!(f.known, 0, "a first run knows nothing: {f:?}");
    }

    // The report's counts are the tables': in PostgreSQL, in both lake layers.
    let client = options.postgres.connect().await.unwrap();
    for table in Table::ALL {
        let name = table.name();
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM \"{schema}\".\"{name}\""),
                &[],
            )
            .await
            .unwrap();
        let in_postgres = row.get::<_, i64>(0) as u64;
        assert_eq!(report.rows("postgres", name), Some(in_postgres), "{name}");
        assert_eq!(report.rows("process", name), Some(in_postgres), "{name}");
        assert_eq!(report.rows("raw", name), Some(in_postgres), "{name}");
        assert_eq!(report.rows("conformed", name), Some(in_postgres), "{name}");
        let csv = if table == Table::GamesReviews {
            // One CSV per day the reviews arrived.
            "raw_games_data/games_reviews/record_created_dt=2026-11-29/part-00000.csv".to_owned()
        } else {
            format!("raw_games_data/{name}.csv")
        };
        let csv = std::fs::read_to_string(lake.join(csv)).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(reader.records().count() as u64, in_postgres, "{name}.csv");
        assert!(text.contains(name));
    }
    assert!(lake
        .join("conformed_games_data/games_reviews/record_created_dt=2026-11-29/part-00000.parquet")
        .exists());

    // user_recommendations: one row per trained user.
    let results = lake.join("inference_games_results/user_recommendations.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&results).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut users = BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        users.extend(common::i32s(&batch, "user_id").into_iter().flatten());
    }
    assert_eq!(users.len(), train.users);
    assert_eq!(train.written.rows as usize, users.len());

    // game_stats and user_stats: one row per reviewed game and per reviewing user, in the run's
    // partition.
    let stats: Vec<(String, u64)> = report
        .stats
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.rows))
        .collect();
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert!(stats[0].1 > 0 && stats[0].1 <= report.rows("postgres", "games_description").unwrap());
    assert!(stats[1].1 as usize >= users.len(), "{stats:?}");
    assert!(
        text.contains("game_stats") && text.contains("user_stats"),
        "{text}"
    );
    assert!(lake
        .join("conformed_games_data/user_stats/record_created_dt=2026-11-29/part-00000.parquet")
        .exists());
    let reviews = report.rows("postgres", "games_reviews").unwrap() as usize;
    assert_eq!(train.train_ratings + train.held_out_ratings, reviews);

    // The model was chosen by tuning; it is described beside the results.
    let tuning = train.tuning.as_ref().unwrap();
    assert_eq!(tuning.chosen().params, train.params);
    assert!(text.contains("chosen by tuning"), "{text}");
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.join("inference_games_results/user_recommendations.model.json"))
            .unwrap(),
    )
    .unwrap();
    let family = match &train.params {
        steam_recsys::model::ModelParams::Als(p) => p.feedback.to_string(),
        other => other.family().to_string(),
    };
    assert_eq!(model["params"]["model"], family);

    // MongoDB: exactly one document per user with a result, its 10 game ids, no ratings.
    let mongo = options.mongo.client().await.unwrap();
    let docs: Vec<Document> = mongo
        .database(&database)
        .collection::<Document>("recsys")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(docs.len(), users.len());
    assert_eq!(report.served(), users.len() as u64);
    let served: BTreeSet<i32> = docs.iter().map(|d| d.get_i32("user_id").unwrap()).collect();
    assert_eq!(served, users);
    for d in &docs {
        let recs = d.get_array("recommendations").unwrap();
        assert_eq!(recs.len(), 10, "{d}");
        assert!(recs.iter().all(|g| g.as_i32().is_some()), "{d}");
    }

    // Redis holds the same users with the same lists, marked with the same run.
    let redis = options.redis.clone().unwrap();
    let source = RedisSource::new(redis.clone(), "recsys", steam_recsys::core::served_schema());
    let mut cached = BTreeSet::new();
    let mut batches = source.read().await.unwrap();
    while let Some(batch) = batches.try_next().await.unwrap() {
        cached.extend(common::i32s(&batch, "user_id").into_iter().flatten());
    }
    assert_eq!(cached, users);
    let run = source.run().await.unwrap().unwrap();
    assert!(docs
        .iter()
        .all(|d| d.get_str("_steam_run") == Ok(run.as_str())));

    // The popular fallback and the users mapping are in both stores.
    let popular = mongo
        .database(&database)
        .collection::<Document>("recsys_popular")
        .find_one(doc! { "list": "popular" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(popular.get_array("game_ids").unwrap().len(), 10);
    let names = report.rows("process", "users_mapping").unwrap();
    let users_source = RedisSource::new(
        redis,
        "recsys_users",
        steam_recsys::pipelines::serving::users_schema(),
    );
    let mut mapped = 0;
    let mut batches = users_source.read().await.unwrap();
    while let Some(batch) = batches.try_next().await.unwrap() {
        mapped += batch.num_rows() as u64;
    }
    assert_eq!(mapped, names);
    mongo.database(&database).drop().await.unwrap();
}
