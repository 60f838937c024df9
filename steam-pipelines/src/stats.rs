//! `steam-recsys stats`: per-game and per-user statistics of one run's conformed reviews, written
//! back to the conformed lake as `game_stats` and `user_stats`.

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
    /// The partition (run date) to compute [default: games_reviews' latest]; the statistics are
    /// written to the same date.
    pub date: Option<NaiveDate>,
    /// A Ballista cluster (`df://HOST:PORT`) to run the queries on [default: this process]; the
    /// results are written from here either way.
    pub cluster: Option<String>,
}

/// The SQL of `game_stats` for one partition: per game, its name (`game_name`), reviews, recommendations (over
/// the reviews that say), the share recommending and the lower bound of its 95% Wilson interval,
/// the median and 90th percentile of hours played (exact, interpolated), and the first and last
/// review dates.
pub fn game_stats_sql(date: NaiveDate) -> String {
    let share = share_columns();
    format!(
        "WITH r AS (
           SELECT game_id, CAST(hours_played AS DOUBLE) AS hours, recommendation, date
           FROM games_reviews WHERE {PARTITION_COLUMN} = DATE '{date}'
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
           SELECT game_id, game_name FROM games_description WHERE {PARTITION_COLUMN} = DATE '{date}'
         ) d ON g.game_id = d.game_id
         ORDER BY g.game_id"
    )
}

/// The SQL of `user_stats` for one partition: per user, the username, reviews, recommendations,
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
           FROM games_reviews WHERE {PARTITION_COLUMN} = DATE '{date}'
           GROUP BY user_id
         )
         SELECT g.user_id, u.username, g.reviews, g.recommended, {share}, g.total_hours
         FROM g LEFT JOIN (
           SELECT user_id, username FROM users_mapping WHERE {PARTITION_COLUMN} = DATE '{date}'
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

/// The date of games_reviews' partition to use: `date` (which must exist), else the latest.
pub async fn stats_date(conformed: &Lake, date: Option<NaiveDate>) -> Result<NaiveDate> {
    let reviews = conformed.child(Table::GamesReviews.name());
    reviews
        .partition_date(date)
        .await?
        .ok_or_else(|| Error::Config {
            key: "date".into(),
            reason: format!("{reviews} has no {PARTITION_COLUMN} partitions"),
        })
}

/// Computes `game_stats` and `user_stats` from one partition of the conformed layer (one
/// DataFusion plan each, streamed; here or on the cluster of [`StatsOptions::cluster`]) and writes each to the same date's partition with the
/// conformed layer's atomic partition replace.
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
        summary.stages.push(StageSummary::since(name, started));
    }
    Ok(summary)
}
