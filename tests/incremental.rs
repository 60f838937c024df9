//! Day-2 operation of `run all` on the test services: a re-scrape with new reviews listed first
//! keeps every id and loads only the new reviews; the same input again changes nothing; a full
//! refresh over the same raw data gives the same PostgreSQL tables and lake rows, ids included.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use steam_recsys::connectors::lake::{sql, Lake};
use steam_recsys::connectors::mongodb::MongoConfig;
use steam_recsys::connectors::postgres::PostgresConfig;
use steam_recsys::core::Table;
use steam_recsys::pipelines::runs::RunLog;
use steam_recsys::pipelines::{
    generate, run_all, GenerateOptions, RawInput, RunAllOptions, RunAllReport, RunKind,
};

fn day(d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    postgres: PostgresConfig,
    mongo: MongoConfig,
}

impl Setup {
    fn new() -> Self {
        let uri = std::env::var("STEAM_TEST_MONGODB_URI")
            .expect("STEAM_TEST_MONGODB_URI is not set: run the tests with scripts/test");
        Setup {
            dir: tempfile::tempdir().unwrap(),
            postgres: common::postgres("incremental"),
            mongo: MongoConfig::from_url(&uri)
                .unwrap()
                .with_database(common::unique_schema("incremental")),
        }
    }

    fn lake(&self, name: &str) -> Lake {
        Lake::from_url(self.dir.path().join("lake").join(name).to_str().unwrap()).unwrap()
    }

    fn options(&self, raw: &Path, date: chrono::NaiveDate, full_refresh: bool) -> RunAllOptions {
        RunAllOptions {
            input: RawInput::Dir(raw.to_owned()),
            work: self.dir.path().join("work"),
            reference_year: 2024,
            postgres: self.postgres.clone(),
            raw_lake: self.lake("raw"),
            conformed_lake: self.lake("conformed"),
            results: self.lake("results/user_recommendations.parquet"),
            mongo: self.mongo.clone(),
            collection: "recsys".into(),
            redis: Some(common::redis("incremental")),
            date,
            holdout: 0.2,
            progress: false,
            full_refresh,
        }
    }

    async fn run(&self, raw: &Path, date: chrono::NaiveDate, full: bool) -> RunAllReport {
        run_all(&self.options(raw, date, full)).await.unwrap()
    }

    /// Every table of the schema, each row as text, sorted.
    async fn postgres_tables(&self) -> BTreeMap<&'static str, Vec<String>> {
        let client = self.postgres.connect().await.unwrap();
        let mut out = BTreeMap::new();
        for table in Table::ALL {
            let rows = client
                .query(
                    &format!(
                        "SELECT t::text FROM \"{}\".\"{}\" t ORDER BY 1",
                        self.postgres.schema(),
                        table.name()
                    ),
                    &[],
                )
                .await
                .unwrap();
            out.insert(table.name(), rows.iter().map(|r| r.get(0)).collect());
        }
        out
    }

    /// The conformed layer's rows read whole, per table: every column as text, and the
    /// partition, sorted.
    async fn lake_tables(&self) -> BTreeMap<&'static str, Vec<String>> {
        let lake = self.lake("conformed");
        let mut out = BTreeMap::new();
        for table in Table::ALL {
            let batches = sql(&lake, &format!("SELECT * FROM {}", table.name()))
                .await
                .unwrap();
            let mut rows = Vec::new();
            for b in &batches {
                let columns: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        arrow::util::display::ArrayFormatter::try_new(
                            c.as_ref(),
                            &Default::default(),
                        )
                        .unwrap()
                    })
                    .collect();
                for i in 0..b.num_rows() {
                    let cells: Vec<String> =
                        columns.iter().map(|c| c.value(i).to_string()).collect();
                    rows.push(cells.join("|"));
                }
            }
            rows.sort();
            out.insert(table.name(), rows);
        }
        out
    }

    /// users_mapping in PostgreSQL: username → id.
    async fn users(&self) -> BTreeMap<String, i32> {
        let client = self.postgres.connect().await.unwrap();
        let rows = client
            .query(
                &format!(
                    "SELECT username, user_id FROM \"{}\".users_mapping",
                    self.postgres.schema()
                ),
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }
}

/// Day 2's re-scrape: `new` reviews first (day 1's first `new` records with another text, half of
/// them by new users), then every record of day 1, in the scraper's format.
fn rescrape(day1: &Path, out: &Path, new: usize) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    for f in ["games_description.csv", "games_ranking.csv"] {
        std::fs::copy(day1.join(f), out.join(f)).unwrap();
    }
    let mut reader = csv::Reader::from_path(day1.join("steam_game_reviews.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let review = header.iter().position(|h| h == "review").unwrap();
    let username = header.iter().position(|h| h == "username").unwrap();
    let mut writer = csv::Writer::from_path(out.join("steam_game_reviews.csv")).unwrap();
    writer.write_record(&header).unwrap();
    for (k, r) in records.iter().take(new).enumerate() {
        let mut fields: Vec<String> = r.iter().map(str::to_owned).collect();
        fields[review] = format!("{} (second look #{k})", fields[review]);
        if k % 2 == 0 {
            fields[username] = format!("newcomer{k}");
        }
        writer.write_record(&fields).unwrap();
    }
    for r in &records {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();
    out.to_owned()
}

fn reviews_file(report: &RunAllReport) -> &steam_recsys::core::FileSummary {
    report
        .process
        .files
        .iter()
        .find(|f| f.file == "steam_game_reviews.csv")
        .unwrap()
}

/// review_id → the partition (days) of the conformed games_reviews, read whole.
async fn review_partitions(lake: &Lake) -> Vec<(i64, i32)> {
    let batches = sql(
        lake,
        "SELECT review_id, record_created_dt FROM games_reviews ORDER BY review_id",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let days = b.column(1).as_primitive::<Date32Type>();
        out.extend(
            ids.values()
                .iter()
                .copied()
                .zip(days.values().iter().copied()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn day_two_keeps_ids_loads_new_reviews_once_and_a_full_refresh_agrees() {
    let s = Setup::new();
    let raw1 = s.dir.path().join("day1");
    generate(&GenerateOptions::new(&raw1, 2_000)).unwrap();

    // Day 1: a full run.
    let first = s.run(&raw1, day(1), false).await;
    assert_eq!(first.kind, RunKind::Full);
    let day1 = reviews_file(&first).clone();
    assert_eq!((day1.raw, day1.known), (2_000, 0));
    let users1 = s.users().await;
    let tables1 = s.postgres_tables().await;

    // Day 2: a re-scrape, 300 new reviews listed first (150 by new users).
    let raw2 = rescrape(&raw1, &s.dir.path().join("day2"), 300);
    let second = s.run(&raw2, day(2), false).await;
    assert_eq!(second.kind, RunKind::Incremental);
    let day2 = reviews_file(&second);
    assert_eq!(day2.raw, 2_300);
    // The generator puts about 7% of reviews on games outside the catalog: rejected again.
    let new = day2.loaded as usize;
    assert!((250..=300).contains(&new), "{day2:?}");
    assert!(
        day2.known >= day1.loaded,
        "day 1's reviews are known: {day2:?}"
    );
    assert_eq!(
        day2.rejected - day1.rejected,
        300 - day2.loaded,
        "only new reviews of unknown games are new rejects: {day2:?}"
    );

    // Every id of day 1 is kept; the new users are numbered after the largest.
    let users2 = s.users().await;
    for (name, id) in &users1 {
        assert_eq!(users2.get(name), Some(id), "{name}");
    }
    let max1 = *users1.values().max().unwrap();
    let new_users: BTreeSet<i32> = users2
        .iter()
        .filter(|(n, _)| !users1.contains_key(*n))
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(new_users.len(), 150);
    assert_eq!(
        new_users,
        (max1 + 1..=max1 + 150).collect(),
        "new ids follow the largest"
    );
    let tables2 = s.postgres_tables().await;
    for t in [
        "games_description",
        "genre_dimension",
        "genre_mapping",
        "developer_dimension",
        "publisher_dimension",
        "rank_dimension",
        "games_ranking",
    ] {
        assert_eq!(tables1[t], tables2[t], "{t} is the same scrape");
    }
    let reviews1 = tables1["games_reviews"].len();
    assert_eq!(tables2["games_reviews"].len(), reviews1 + new);

    // The lake, read whole, holds each review once; each day's partition what arrived that day.
    let conformed = s.lake("conformed");
    let partitions = review_partitions(&conformed).await;
    assert_eq!(partitions.len(), reviews1 + new);
    let distinct: BTreeSet<i64> = partitions.iter().map(|p| p.0).collect();
    assert_eq!(distinct.len(), partitions.len(), "each review once");
    let on = |d: chrono::NaiveDate| {
        partitions
            .iter()
            .filter(|p| p.1 == Date32Type::from_naive_date(d))
            .count()
    };
    assert_eq!((on(day(1)), on(day(2))), (reviews1, new));
    let description = conformed.child("games_description");
    assert_eq!(description.partitions().await.unwrap(), [day(2)]);
    let lake2 = s.lake_tables().await;
    for table in Table::ALL {
        assert_eq!(
            lake2[table.name()].len(),
            tables2[table.name()].len(),
            "{table}: the lake holds each row once"
        );
    }

    // Serving: only the changed and new users were written; every user is served.
    let results: BTreeSet<i32> = {
        let batches = steam_recsys::connectors::lake::LakeSource::objects(
            &s.options(&raw2, day(2), false).results,
        )
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int32Type>().values().to_vec())
            .collect()
    };
    assert!(
        second.served() < results.len() as u64,
        "{}",
        second.served()
    );
    // Every new user with a list, and at most the users of the new reviews (the others keep
    // their lists).
    let new_listed = results.intersection(&new_users).count() as u64;
    assert!(new_listed > 100, "{new_listed}");
    assert!(
        (new_listed..=new as u64).contains(&second.served()),
        "{} served, {new_listed} new users listed, {new} new reviews",
        second.served()
    );
    let mongo = s.mongo.client().await.unwrap();
    let docs: Vec<Document> = mongo
        .database(s.mongo.database())
        .collection::<Document>("recsys")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let served: BTreeSet<i32> = docs.iter().map(|d| d.get_i32("user_id").unwrap()).collect();
    assert_eq!(served, results);

    // The same input again: nothing is added, nothing changes.
    let again = s.run(&raw2, day(2), false).await;
    assert!(again.nothing_new);
    assert_eq!(reviews_file(&again).loaded, 0);
    assert_eq!(s.postgres_tables().await, tables2);
    assert_eq!(s.lake_tables().await, lake2);

    // A full refresh over the same raw data: the same tables and lake rows, ids included.
    let full = s.run(&raw2, day(2), true).await;
    assert_eq!(full.kind, RunKind::Full);
    assert_eq!(s.postgres_tables().await, tables2);
    assert_eq!(s.lake_tables().await, lake2);
    assert_eq!(review_partitions(&conformed).await, partitions);

    // The history: four runs, all succeeded, newest first.
    let runs = RunLog::open(&s.postgres)
        .await
        .unwrap()
        .list(10)
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.kind.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("full", "succeeded"),
            ("incremental", "succeeded"),
            ("incremental", "succeeded"),
            ("full", "succeeded")
        ]
    );
    assert_eq!(runs[2].reviews_new, Some(new as i64));
    assert!(runs[3].metrics.is_some() && runs[3].model.is_some());
    mongo.database(s.mongo.database()).drop().await.unwrap();
}
