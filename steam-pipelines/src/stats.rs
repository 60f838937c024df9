//! `steam-recsys stats`: per-game and per-user statistics of the conformed reviews as of a run
//! date, written back to the conformed lake as `game_stats` and `user_stats`.

use std::time::Instant;

use chrono::NaiveDate;
use steam_connectors::lake::{Lake, LakeParquetSink, PARTITION_COLUMN};
use steam_core::{
    Error, Result, RunSummary, Sink, Source, StageSummary, Table, TableRef, WriteMode,
};

/// The z of the Wilson bound: a two-sided 95% interval.
pub const WILSON_Z: f64 = 1.959_963_984_540_054;

/// Options of [`stats`].
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// The conformed layer: games_reviews, games_description and users_mapping are read from it,
    /// game_stats and user_stats written to it.
    pub conformed: Lake,
    /// The run date: the statistics cover the reviews that arrived by then, and are written to
    /// its partition, the only one they keep [default: games_reviews' latest partition].
    pub date: Option<NaiveDate>,
    /// A Ballista cluster (`df://HOST:PORT`) to run the queries on [default: this process]; the
    /// results are written from here either way.
    pub cluster: Option<String>,
}

/// The SQL of `game_stats` as of `date` (the reviews that arrived by then, every partition up to
/// `date`'s; games_description is one partition): per game, its name (`game_name`), reviews, recommendations (over
/// the reviews that say), the share recommending and the lower bound of its 95% Wilson interval,
/// the median and 90th percentile of hours played (exact, interpolated), and the first and last
/// review dates.
pub fn game_stats_sql(date: NaiveDate) -> String {
    let share = share_columns();
    format!(
        "WITH r AS (
           SELECT game_id, CAST(hours_played AS DOUBLE) AS hours, recommendation, date
           FROM games_reviews WHERE {PARTITION_COLUMN} <= DATE '{date}'
         ),
         g AS (
           SELECT game_id,
                  count(*) AS reviews,
                  count(recommendation) AS rated,
                  sum(CASE WHEN recommendation THEN 1 ELSE 0 END) AS recommended,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median_hours,
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS p90_hours,
                  min(date) AS first_review,
                  max(date) AS last_review
           FROM r GROUP BY game_id
         )
         SELECT g.game_id, d.game_name, g.reviews, g.recommended, {share},
                g.median_hours, g.p90_hours, g.first_review, g.last_review
         FROM g LEFT JOIN (
           SELECT game_id, game_name FROM games_description
         ) d ON g.game_id = d.game_id
         ORDER BY g.game_id"
    )
}

/// The SQL of `user_stats` as of `date` (as [`game_stats_sql`]): per user, the username, reviews, recommendations,
/// the share recommending (and its Wilson lower bound) and the total hours played.
pub fn user_stats_sql(date: NaiveDate) -> String {
    let share = share_columns();
    format!(
        "WITH g AS (
           SELECT user_id,
                  count(*) AS reviews,
                  count(recommendation) AS rated,
                  sum(CASE WHEN recommendation THEN 1 ELSE 0 END) AS recommended,
                  sum(CAST(hours_played AS DOUBLE)) AS total_hours
           FROM games_reviews WHERE {PARTITION_COLUMN} <= DATE '{date}'
           GROUP BY user_id
         )
         SELECT g.user_id, u.username, g.reviews, g.recommended, {share}, g.total_hours
         FROM g LEFT JOIN (
           SELECT user_id, username FROM users_mapping
         ) u ON g.user_id = u.user_id
         ORDER BY g.user_id"
    )
}

/// `recommendation_share` (over the reviews that say; null without any) and
/// `recommendation_share_lower` (its 95% Wilson lower bound), from `g.rated` and `g.recommended`.
fn share_columns() -> String {
    let z2 = WILSON_Z * WILSON_Z;
    let p = "CAST(g.recommended AS DOUBLE) / g.rated";
    format!(
        "CASE WHEN g.rated > 0 THEN {p} END AS recommendation_share,
         CASE WHEN g.rated > 0 THEN
           ({p} + {z2} / (2.0 * g.rated)
             - {WILSON_Z} * sqrt(({p}) * (1.0 - {p}) / g.rated + {z2} / (4.0 * g.rated * g.rated)))
           / (1.0 + {z2} / g.rated)
         END AS recommendation_share_lower"
    )
}

/// The date the statistics are of: `date`, which some partition of games_reviews must be on or
/// before (else an error naming the partitions there are), or the latest partition's.
pub async fn stats_date(conformed: &Lake, date: Option<NaiveDate>) -> Result<NaiveDate> {
    let reviews = conformed.child(Table::GamesReviews.name());
    let dates = reviews.partitions().await?;
    let Some(first) = dates.first().copied() else {
        return Err(Error::Config {
            key: "date".into(),
            reason: format!("{reviews} has no {PARTITION_COLUMN} partitions"),
        });
    };
    match date {
        None => Ok(dates[dates.len() - 1]),
        Some(d) if d >= first => Ok(d),
        Some(d) => {
            let have: Vec<String> = dates.iter().map(ToString::to_string).collect();
            Err(Error::backend_msg(
                "lake",
                reviews.url(),
                format!(
                    "no reviews arrived by {d}: no partition {PARTITION_COLUMN}={d} or before \
                     (it has {})",
                    have.join(", ")
                ),
            )
            .with_kind(steam_core::ErrorKind::NotFound))
        }
    }
}

/// Computes `game_stats` and `user_stats` from the conformed layer as of the run date (one
/// DataFusion plan each, streamed; here or on the cluster of [`StatsOptions::cluster`]), writes
/// each to the run date's partition with the conformed layer's atomic partition replace, then
/// removes the table's other partitions (so the table read whole holds each row once).
pub async fn stats(options: &StatsOptions) -> Result<RunSummary> {
    let date = stats_date(&options.conformed, options.date).await?;
    let sink = LakeParquetSink::new(options.conformed.clone(), date);
    let tables = crate::lake_tables(&options.conformed, options.cluster.as_deref()).await?;
    let mut summary = RunSummary::default();
    for (name, sql) in [
        ("game_stats", game_stats_sql(date)),
        ("user_stats", user_stats_sql(date)),
    ] {
        let started = Instant::now();
        let source = tables.sql(&sql).await?;
        let table = TableRef::new(name, source.schema());
        let written = sink
            .write(&table, WriteMode::Replace, source.read().await?)
            .await?;
        summary.tables.push(written);
        let lake = options.conformed.child(name);
        for other in lake.partitions().await? {
            if other != date {
                lake.remove_partition(other).await?;
            }
        }
        summary.stages.push(StageSummary::since(name, started));
    }
    Ok(summary)
}
