//! The source_to_gcs pipelines (direct, reviews, descriptions): PostgreSQL tables → a lake's raw
//! layer (CSV) and conformed layer (Hive-partitioned Parquet), reading each table once.

use std::time::Instant;

use chrono::NaiveDate;
use futures::StreamExt;
use steam_connectors::lake::{Lake, LakeCsvSink, LakeParquetSink};
use steam_connectors::postgres::{PostgresConfig, PostgresSource};
use steam_core::{
    batch_stream, tee, Error, Result, RunSummary, Sink, Source, StageSummary, Table, TableRef,
    WriteMode,
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
    /// The raw layer: `<table>.csv`.
    pub raw: Lake,
    /// The conformed layer: `<table>/record_created_dt=<date>/part-00000.parquet`.
    pub conformed: Lake,
    /// The run date: the partition written and the `record_created_dt` of every row.
    pub date: NaiveDate,
}

/// Exports the group's tables from `config`'s schema to both layers.
///
/// Each table is read once, with binary COPY, and its batches go to both layers at once; each
/// layer's object is replaced only when complete. A failure while the rows stream (the source,
/// conforming, either layer's upload) abandons both layers' objects. The two objects are published
/// one after the other at the end, so a failure in that last step (a store refusing the completion
/// of one upload) can leave one layer from this run and the other from the previous one; a rerun
/// makes them agree.
pub async fn source_to_lake(
    config: &PostgresConfig,
    options: &SourceToLakeOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    let raw = LakeCsvSink::new(options.raw.clone());
    let conformed = LakeParquetSink::new(options.conformed.clone(), options.date)
        .with_free_text("review")
        .with_free_text("long_description");
    let mut summary = RunSummary::default();
    for table in options.group.tables() {
        let t = Instant::now();
        let source = PostgresSource::table(config.clone(), table.name())
            .await?
            .with_schema(table.schema())?
            .with_batch_size(BATCH_ROWS)
            .with_batch_bytes(BATCH_BYTES);
        // One read, two layers: a failure on either side (the source, conforming, an upload)
        // ends the other side with an error, so neither layer publishes a truncated object.
        let (raw_in, to_conform) = tee(source.read().await?, 2, table.name());
        let date = options.date;
        let conformed_in =
            batch_stream(to_conform.map(move |b| b.and_then(|b| conform(table, &b, date))));
        let raw_ref = TableRef::from(table);
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
        summary.tables.push(a);
        summary.tables.push(b);
        summary.stages.push(StageSummary::since(table.name(), t));
    }
    summary
        .stages
        .push(StageSummary::since("source_to_lake", started));
    Ok(summary)
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
