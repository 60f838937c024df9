//! The source_to_gcs pipelines (direct, reviews, descriptions): PostgreSQL tables → a lake's raw
//! layer (CSV) and conformed layer (Hive-partitioned Parquet), reading each table once.

use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Date32Type;
use chrono::NaiveDate;
use futures::StreamExt;
use steam_connectors::lake::{Lake, LakeCsvSink, LakeParquetSink, PARTITION_COLUMN};
use steam_connectors::postgres::{quote_ident, PostgresConfig, PostgresSource};
use steam_core::{
    batch_stream, tee, Error, Result, RunSummary, Sink, Source, StageSummary, Table, TableRef,
    WriteMode, WriteSummary,
};
use steam_transforms::{conform, conformed_schema};

/// Which tables a run exports: the reference's three pipelines, or all of them (`--tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum TableGroup {
    /// source_to_gcs_direct: the nine tables exported as they are.
    Direct,
    /// source_to_gcs_reviews: games_reviews.
    Reviews,
    /// source_to_gcs_descriptions: games_description.
    Descriptions,
    /// All eleven.
    All,
}

impl TableGroup {
    /// The tables of the group.
    pub fn tables(self) -> Vec<Table> {
        match self {
            TableGroup::Direct => vec![
                Table::DeveloperDimension,
                Table::PublisherDimension,
                Table::GamesRanking,
                Table::GenreDimension,
                Table::UsersMapping,
                Table::RankDimension,
                Table::PublisherMapping,
                Table::DeveloperMapping,
                Table::GenreMapping,
            ],
            TableGroup::Reviews => vec![Table::GamesReviews],
            TableGroup::Descriptions => vec![Table::GamesDescription],
            TableGroup::All => Table::ALL.to_vec(),
        }
    }
}

impl std::str::FromStr for TableGroup {
    type Err = Error;

    /// A group by its `--tables` name: direct, reviews, descriptions or all.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(TableGroup::Direct),
            "reviews" => Ok(TableGroup::Reviews),
            "descriptions" => Ok(TableGroup::Descriptions),
            "all" => Ok(TableGroup::All),
            other => Err(Error::Config {
                key: "--tables".into(),
                reason: format!(
                    "invalid value {other:?} (possible values: direct, reviews, descriptions, all)"
                ),
            }),
        }
    }
}

/// The reference's bucket of the raw layer.
pub const DEFAULT_RAW_LAKE: &str = "gs://raw_games_data";
/// The reference's bucket of the conformed layer.
pub const DEFAULT_CONFORMED_LAKE: &str = "gs://conformed_games_data";

/// Rows per batch read from PostgreSQL, at most. The batches queued between the reader and the two
/// encoders are what memory holds of a table at any time, so they are kept small: a few MiB in all,
/// and of about the same size each, whatever the size of the table.
const BATCH_ROWS: usize = 8192;
/// Bytes of field data per batch read from PostgreSQL, about (for tables of long text).
const BATCH_BYTES: usize = 2 << 20;

/// Options of [`source_to_lake`].
#[derive(Debug, Clone)]
pub struct SourceToLakeOptions {
    /// The tables.
    pub group: TableGroup,
    /// The raw layer: `<table>.csv`, and games_reviews as
    /// `games_reviews/record_created_dt=<first_seen>/part-00000.csv`.
    pub raw: Lake,
    /// The conformed layer: `<table>/record_created_dt=<date>/part-00000.parquet`.
    pub conformed: Lake,
    /// The run date: the partition of every table but games_reviews.
    pub date: NaiveDate,
    /// games_reviews' partitions to write: those of the `first_seen` dates from this one on (an
    /// incremental export: what arrived since the last complete run), or with `None` all of them,
    /// removing partitions of dates no review has (a full export).
    pub reviews_since: Option<NaiveDate>,
}

/// Exports the group's tables from `config`'s schema to both layers.
///
/// Each table is read once, with binary COPY, and its batches go to both layers at once; each
/// layer's object is replaced only when complete. A failure while the rows stream (the source,
/// conforming, either layer's upload) abandons both layers' objects. The two objects are published
/// one after the other at the end, so a failure in that last step (a store refusing the completion
/// of one upload) can leave one layer from this run and the other from the previous one; a rerun
/// makes them agree.
///
/// The lake holds each row once, read whole: every table but games_reviews is one partition, the
/// run date's (written first, then the table's other partitions are removed: a reader listing the
/// table in between can see both); games_reviews is partitioned by `first_seen`, the day each
/// review arrived, and only the partitions of [`SourceToLakeOptions::reviews_since`] are written,
/// so a day's export costs what arrived that day. Rewriting a partition is idempotent.
pub async fn source_to_lake(
    config: &PostgresConfig,
    options: &SourceToLakeOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    let mut summary = RunSummary::default();
    for table in options.group.tables() {
        let t = Instant::now();
        if table == Table::GamesReviews {
            export_reviews(config, options, &mut summary).await?;
        } else {
            let source = PostgresSource::table(config.clone(), table.name()).await?;
            let raw = LakeCsvSink::new(options.raw.clone());
            let (a, b) = export(table, source, &raw, table.name(), options, options.date).await?;
            summary.tables.push(a);
            summary.tables.push(b);
            // The table is now the run date's partition alone.
            let lake = options.conformed.child(table.name());
            for date in lake.partitions().await? {
                if date != options.date {
                    lake.remove_partition(date).await?;
                }
            }
        }
        summary.stages.push(StageSummary::since(table.name(), t));
    }
    summary
        .stages
        .push(StageSummary::since("source_to_lake", started));
    Ok(summary)
}

/// games_reviews: one partition per `first_seen` date, in both layers.
async fn export_reviews(
    config: &PostgresConfig,
    options: &SourceToLakeOptions,
    summary: &mut RunSummary,
) -> Result<()> {
    let table = Table::GamesReviews;
    let qualified = format!(
        "{}.{}",
        quote_ident(config.schema())?,
        quote_ident(table.name())?
    );
    let since = options
        .reviews_since
        .map(|d| format!(" WHERE first_seen >= DATE '{d}'"))
        .unwrap_or_default();
    let sql = format!("SELECT DISTINCT first_seen FROM {qualified}{since} ORDER BY first_seen");
    let mut dates = Vec::new();
    for batch in PostgresSource::query(config.clone(), &sql)
        .await?
        .read_all()
        .await?
    {
        let days = batch.column(0).as_primitive::<Date32Type>();
        dates.extend(
            days.iter()
                .flatten()
                .filter_map(Date32Type::to_naive_date_opt),
        );
    }
    if dates.is_empty() && options.reviews_since.is_none() {
        // No reviews at all: the run date's partition, empty, so the table is there to read.
        dates.push(options.date);
    }
    let (mut rows_raw, mut rows_conformed, mut bytes_raw, mut bytes_conformed) = (0, 0, 0, 0);
    for date in &dates {
        let columns = table
            .schema()
            .fields()
            .iter()
            .map(|f| quote_ident(f.name()))
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        let query = format!("SELECT {columns} FROM {qualified} WHERE first_seen = DATE '{date}'");
        let source = PostgresSource::query(config.clone(), &query).await?;
        let raw = LakeCsvSink::new(
            options
                .raw
                .child(table.name())
                .child(&format!("{PARTITION_COLUMN}={date}")),
        );
        let (a, b) = export(table, source, &raw, "part-00000", options, *date).await?;
        (rows_raw, bytes_raw) = (rows_raw + a.rows, bytes_raw + a.bytes);
        (rows_conformed, bytes_conformed) = (rows_conformed + b.rows, bytes_conformed + b.bytes);
    }
    if options.reviews_since.is_none() {
        // A full export: partitions of dates no review has any more go.
        for (layer, lake) in [("raw", &options.raw), ("conformed", &options.conformed)] {
            let lake = lake.child(table.name());
            for date in lake.partitions().await? {
                if !dates.contains(&date) {
                    tracing::info!("removing {layer} games_reviews partition {date}");
                    lake.remove_partition(date).await?;
                }
            }
        }
    }
    let named = |layer: &str, rows, bytes| WriteSummary {
        table: format!("{} → {layer}", table.name()),
        rows,
        bytes,
        seconds: 0.0,
    };
    summary.tables.push(named("raw", rows_raw, bytes_raw));
    summary
        .tables
        .push(named("conformed", rows_conformed, bytes_conformed));
    Ok(())
}

/// Exports `source` (rows of `table`) to `raw` as `raw_name` and to the conformed layer's
/// partition of `date`, reading it once.
async fn export(
    table: Table,
    source: PostgresSource,
    raw: &LakeCsvSink,
    raw_name: &str,
    options: &SourceToLakeOptions,
    date: NaiveDate,
) -> Result<(WriteSummary, WriteSummary)> {
    let source = source
        .with_schema(table.schema())?
        .with_batch_size(BATCH_ROWS)
        .with_batch_bytes(BATCH_BYTES);
    let conformed = LakeParquetSink::new(options.conformed.clone(), date)
        .with_free_text("review")
        .with_free_text("long_description");
    // One read, two layers: a failure on either side (the source, conforming, an upload)
    // ends the other side with an error, so neither layer publishes a truncated object.
    let (raw_in, to_conform) = tee(source.read().await?, 2, table.name());
    let conformed_in =
        batch_stream(to_conform.map(move |b| b.and_then(|b| conform(table, &b, date))));
    let raw_ref = TableRef::new(raw_name, table.schema());
    let conformed_ref = TableRef::new(table.name(), conformed_schema(table));
    let (a, b) = futures::join!(
        raw.write(&raw_ref, WriteMode::Replace, raw_in),
        conformed.write(&conformed_ref, WriteMode::Replace, conformed_in)
    );
    // Of two errors, the cause: the other side's is the split's report that this one stopped.
    let from_split = |e: &Error| matches!(e, Error::Cancelled { .. });
    let (mut a, mut b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), Err(other)) if from_split(&e) && !from_split(&other) => return Err(other),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    a.table = format!("{} → raw", table.name());
    b.table = format!("{} → conformed", table.name());
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_their_tables_names() {
        assert_eq!(
            "reviews".parse::<TableGroup>().unwrap(),
            TableGroup::Reviews
        );
        assert_eq!("all".parse::<TableGroup>().unwrap().tables().len(), 11);
        assert_eq!("direct".parse::<TableGroup>().unwrap().tables().len(), 9);
        let err = "nope".parse::<TableGroup>().unwrap_err().to_string();
        assert!(err.contains("--tables") && err.contains("nope"), "{err}");
    }
}
