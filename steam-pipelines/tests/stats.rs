//! `stats` on a small hand-made conformed lake (local directory), checked against an independent
//! computation of every figure.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use chrono::NaiveDate;
use steam_connectors::lake::{Lake, LakeParquetSink, LakeSource};
use steam_core::{batch_stream, Sink, Table, TableRef, WriteMode};
use steam_pipelines::stats::{stats, StatsOptions, WILSON_Z};

/// The run date of the hand-made input.
const TODAY: &str = "2026-11-30";

/// The games' names, by id from 1.
const NAMES: [&str; 3] = ["Elden Ring", "Hades", "Celeste"];

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A batch of `table` with `columns` given and every other (nullable) column null.
fn batch(table: Table, rows: usize, columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = table.schema();
    let arrays = schema
        .fields()
        .iter()
        .map(|f| {
            columns
                .iter()
                .find(|(n, _)| n == f.name())
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), rows))
        })
        .collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

/// Writes processed rows of `table` to the conformed layer as source-to-lake does.
async fn put(lake: &Lake, date: NaiveDate, table: Table, b: RecordBatch) {
    let conformed = steam_transforms::conform(table, &b, date).unwrap();
    let schema = steam_transforms::conformed_schema(table);
    LakeParquetSink::new(lake.clone(), date)
        .write(
            &TableRef::new(table.name(), schema),
            WriteMode::Replace,
            batch_stream(futures::stream::iter([Ok(conformed)])),
        )
        .await
        .unwrap();
}

/// One review: game, user, recommends, hours, date.
type Review = (i32, i32, Option<bool>, Option<f32>, &'static str);

/// The reviews as games_reviews rows that arrived on `arrived` (their `first_seen`).
fn reviews_batch(reviews: &[Review], arrived: NaiveDate) -> RecordBatch {
    let keys = reviews
        .iter()
        .map(|r| steam_transforms::review_id(&r.0.to_string(), &r.1.to_string(), r.4));
    let dates: Vec<i32> = reviews
        .iter()
        .map(|r| Date32Type::from_naive_date(day(r.4)))
        .collect();
    batch(
        Table::GamesReviews,
        reviews.len(),
        vec![
            (
                "game_id",
                Arc::new(Int32Array::from_iter_values(reviews.iter().map(|r| r.0))),
            ),
            (
                "user_id",
                Arc::new(Int32Array::from_iter_values(reviews.iter().map(|r| r.1))),
            ),
            (
                "recommendation",
                Arc::new(BooleanArray::from(
                    reviews.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ),
            (
                "hours_played",
                Arc::new(Float32Array::from(
                    reviews.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
            ),
            ("date", Arc::new(Date32Array::from(dates))),
            ("review_id", Arc::new(Int64Array::from_iter_values(keys))),
            (
                "first_seen",
                Arc::new(Date32Array::from(vec![
                    Date32Type::from_naive_date(arrived);
                    reviews.len()
                ])),
            ),
        ],
    )
}

/// The exact percentile `p` of `values` with linear interpolation; `None` when empty.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return None;
    }
    let pos = p * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// The share recommending and its 95% Wilson lower bound.
fn wilson(recommended: u32, rated: u32) -> (Option<f64>, Option<f64>) {
    if rated == 0 {
        return (None, None);
    }
    let (n, p, z) = (
        f64::from(rated),
        f64::from(recommended) / f64::from(rated),
        WILSON_Z,
    );
    let lower = (p + z * z / (2.0 * n) - z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt())
        / (1.0 + z * z / n);
    (Some(p), Some(lower))
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}: {a} vs {b}"
        ),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

fn f64s(b: &RecordBatch, col: &str) -> Vec<Option<f64>> {
    let a = b.column_by_name(col).unwrap().as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn i64s(b: &RecordBatch, col: &str) -> Vec<i64> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// Writes the hand-made input to `lake` and returns the reviews of [`TODAY`]'s run.
async fn hand_made(lake: &Lake) -> Vec<Review> {
    let today = day(TODAY);
    let reviews: Vec<Review> = vec![
        (1, 1, Some(true), Some(10.0), "2024-01-05"),
        (1, 2, Some(true), Some(2.5), "2024-03-01"),
        (1, 3, Some(false), Some(100.0), "2023-12-31"),
        (1, 4, Some(true), None, "2024-02-02"),
        (1, 6, Some(true), Some(4.0), "2024-02-03"),
        (2, 1, Some(false), Some(1.0), "2024-05-05"),
        (2, 2, None, Some(3.0), "2024-05-06"),
        (3, 5, Some(true), Some(0.5), "2024-07-07"),
        (4, 3, Some(true), Some(7.0), "2024-08-08"),
    ];
    // Reviews that arrived on two days up to today: both count.
    let (earlier, later) = reviews.split_at(3);
    let before = day("2026-11-29");
    put(
        lake,
        before,
        Table::GamesReviews,
        reviews_batch(earlier, before),
    )
    .await;
    put(
        lake,
        today,
        Table::GamesReviews,
        reviews_batch(later, today),
    )
    .await;
    // A later run's reviews, which arrived after the date the statistics are of: they must not
    // count.
    let after = day("2026-12-01");
    let other: Vec<Review> = vec![(1, 9, Some(false), Some(1000.0), "2020-01-01")];
    put(
        lake,
        after,
        Table::GamesReviews,
        reviews_batch(&other, after),
    )
    .await;
    put(
        lake,
        today,
        Table::GamesDescription,
        batch(
            Table::GamesDescription,
            3,
            vec![
                ("game_id", Arc::new(Int32Array::from(vec![1, 2, 3]))),
                ("name", Arc::new(StringArray::from(NAMES.to_vec()))),
            ],
        ),
    )
    .await;
    put(
        lake,
        today,
        Table::UsersMapping,
        batch(
            Table::UsersMapping,
            5,
            vec![
                ("user_id", Arc::new(Int32Array::from(vec![1, 2, 3, 4, 6]))),
                (
                    "username",
                    Arc::new(StringArray::from(vec!["ann", "bo", "cy", "di", "ed"])),
                ),
            ],
        ),
    )
    .await;

    reviews
}

/// Table `table` of `lake`, [`TODAY`]'s partition, as one batch.
async fn read(lake: &Lake, table: &str) -> RecordBatch {
    let batches = LakeSource::partition(lake, table, day(TODAY))
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    common::concat(&batches)
}

/// Checks game_stats and user_stats of `lake` against an independent computation from `reviews`.
async fn check(lake: &Lake, reviews: &[Review]) {
    // The independent computation.
    let mut games: BTreeMap<i32, Vec<&Review>> = BTreeMap::new();
    let mut users: BTreeMap<i32, Vec<&Review>> = BTreeMap::new();
    for r in reviews {
        games.entry(r.0).or_default().push(r);
        users.entry(r.1).or_default().push(r);
    }
    let counts = |rs: &[&Review]| {
        let rated = rs.iter().filter(|r| r.2.is_some()).count() as u32;
        let recommended = rs.iter().filter(|r| r.2 == Some(true)).count() as u32;
        (recommended, rated)
    };

    let g = read(lake, "game_stats").await;
    assert_eq!(
        common::i32s(&g, "game_id"),
        games.keys().map(|k| Some(*k)).collect::<Vec<_>>()
    );
    let got_names = common::strings(&g, "game_name");
    let (shares, lowers) = (
        f64s(&g, "recommendation_share"),
        f64s(&g, "recommendation_share_lower"),
    );
    let (medians, p90s) = (f64s(&g, "median_hours"), f64s(&g, "p90_hours"));
    let firsts = g
        .column_by_name("first_review")
        .unwrap()
        .as_primitive::<Date32Type>()
        .clone();
    let lasts = g
        .column_by_name("last_review")
        .unwrap()
        .as_primitive::<Date32Type>()
        .clone();
    for (i, (game, rs)) in games.iter().enumerate() {
        let (recommended, rated) = counts(rs);
        assert_eq!(i64s(&g, "reviews")[i], rs.len() as i64, "game {game}");
        assert_eq!(
            i64s(&g, "recommended")[i],
            i64::from(recommended),
            "game {game}"
        );
        let (share, lower) = wilson(recommended, rated);
        close(shares[i], share, "share");
        close(lowers[i], lower, "wilson");
        let hours: Vec<f64> = rs.iter().filter_map(|r| r.3.map(f64::from)).collect();
        close(medians[i], percentile(&hours, 0.5), "median");
        close(p90s[i], percentile(&hours, 0.9), "p90");
        let dates: Vec<NaiveDate> = rs.iter().map(|r| day(r.4)).collect();
        assert_eq!(firsts.value_as_date(i), dates.iter().min().copied());
        assert_eq!(lasts.value_as_date(i), dates.iter().max().copied());
        let name = NAMES.get(*game as usize - 1).map(|n| n.to_string());
        assert_eq!(got_names[i], name, "game {game}");
    }
    // Spot checks of the reference itself: game 1's hours 2.5, 4, 10, 100.
    assert_eq!(percentile(&[2.5, 4.0, 10.0, 100.0], 0.5), Some(7.0));
    assert!(lowers[0].unwrap() < 0.8 && lowers[0].unwrap() > 0.3);

    let u = read(lake, "user_stats").await;
    assert_eq!(
        common::i32s(&u, "user_id"),
        users.keys().map(|k| Some(*k)).collect::<Vec<_>>()
    );
    let usernames = common::strings(&u, "username");
    assert_eq!(usernames[4], None, "user 5 is not in users_mapping");
    assert_eq!(usernames[0].as_deref(), Some("ann"));
    let (shares, totals) = (f64s(&u, "recommendation_share"), f64s(&u, "total_hours"));
    for (i, (user, rs)) in users.iter().enumerate() {
        let (recommended, rated) = counts(rs);
        assert_eq!(i64s(&u, "reviews")[i], rs.len() as i64, "user {user}");
        close(shares[i], wilson(recommended, rated).0, "user share");
        let hours: Vec<f64> = rs.iter().filter_map(|r| r.3.map(f64::from)).collect();
        let total = (!hours.is_empty()).then(|| hours.iter().sum());
        close(totals[i], total, "total hours");
    }
}

#[tokio::test]
async fn stats_match_an_independent_computation_and_a_rerun_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::from_env(dir.path().to_str().unwrap()).unwrap();
    let reviews = hand_made(&lake).await;
    let options = StatsOptions {
        conformed: lake.clone(),
        date: Some(day(TODAY)),
        cluster: None,
    };
    let summary = stats(&options).await.unwrap();
    assert_eq!(summary.tables[0].rows, 4);
    assert_eq!(summary.tables[1].rows, 6);
    check(&lake, &reviews).await;

    // A rerun of the same date replaces the partition; --date of a missing partition is an error.
    let again = stats(&options).await.unwrap();
    assert_eq!(again.tables[0].rows, 4);
    assert_eq!(read(&lake, "game_stats").await.num_rows(), 4);
    let missing = stats(&StatsOptions {
        conformed: lake.clone(),
        date: Some(day("2026-01-01")),
        cluster: None,
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("2026-11-29") && missing.contains("2026-12-01"),
        "{missing}"
    );
}

/// The same plans on a Ballista cluster over an S3 lake: the same tables as in this process, and
/// the independent computation's figures.
#[cfg(feature = "cluster")]
#[tokio::test]
async fn stats_on_a_cluster_are_the_local_ones() {
    let cluster = common::TestCluster::start();
    let lake = common::s3_lake("stats-cluster");
    let reviews = hand_made(&lake).await;
    let mut options = StatsOptions {
        conformed: lake.clone(),
        date: Some(day(TODAY)),
        cluster: None,
    };
    stats(&options).await.unwrap();
    let local = [
        read(&lake, "game_stats").await,
        read(&lake, "user_stats").await,
    ];
    options.cluster = Some(cluster.url.clone());
    let summary = stats(&options).await.unwrap();
    assert_eq!(summary.tables[0].rows, 4);
    assert_eq!(summary.tables[1].rows, 6);
    for (i, name) in ["game_stats", "user_stats"].into_iter().enumerate() {
        let remote = read(&lake, name).await;
        common::assert_same(&local[i], &remote, 0.0, name);
    }
    check(&lake, &reviews).await;
}
