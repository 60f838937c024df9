//! The two layers' sinks: CSV objects and Hive-partitioned Parquet objects.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Schema, SchemaRef};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use steam_core::{
    batch_stream, BatchStream, Error, RecordBatch, Result, Sink, TableRef, WriteMode, WriteSummary,
};

use super::upload::upload;
use super::{Lake, PARTITION_COLUMN};
use crate::files::staging::is_staging_name;
use crate::files::{check_table_name, writer_properties};

pub(super) fn replace_only(mode: &WriteMode) -> Result<()> {
    if *mode != WriteMode::Replace {
        return Err(Error::Unsupported {
            backend: "lake",
            operation: format!("write mode {} (objects are replaced whole)", mode.name()),
        });
    }
    Ok(())
}

/// Checks each batch has the table's columns, by name and type, in order.
pub(super) fn checked(table: &TableRef, batches: BatchStream) -> BatchStream {
    let schema = table.schema.clone();
    let name = table.name.clone();
    batch_stream(batches.and_then(move |batch| {
        let result = steam_core::check_columns(&name, &batch.schema(), &schema).map(|()| batch);
        futures::future::ready(result)
    }))
}

/// The raw layer: each table as one CSV object with a header, `<prefix>/<table>.csv`.
///
/// Only [`WriteMode::Replace`]: the object is replaced whole when the upload completes (dates as
/// `YYYY-MM-DD`, timestamps in RFC 3339, nulls as empty fields).
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::lake::{Lake, LakeCsvSink};
/// use steam_core::{Sink, Table, TableRef, WriteMode};
///
/// let sink = LakeCsvSink::new(Lake::from_url("gs://raw_games_data")?);
/// sink.write(&TableRef::from(Table::GamesRanking), WriteMode::Replace, batches)
///     .await?; // gs://raw_games_data/games_ranking.csv, replaced whole
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LakeCsvSink {
    lake: Lake,
}

impl LakeCsvSink {
    /// A sink into `lake`.
    pub fn new(lake: Lake) -> Self {
        LakeCsvSink { lake }
    }

    /// Where a table's object goes.
    pub fn location(&self, table: &str) -> Path {
        self.lake.path(&[&format!("{table}.csv")])
    }
}

#[async_trait]
impl Sink for LakeCsvSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        replace_only(&mode)?;
        check_table_name(&table.name)?;
        let started = Instant::now();
        let location = self.location(&table.name);
        let target = self.lake.describe(&location);
        let schema = table.schema.clone();
        let (rows, bytes) = upload(&self.lake, &location, checked(table, batches), move |io| {
            let fail = |e: arrow::error::ArrowError| Error::arrow(format!("csv {target}"), e);
            let mut rows = 0;
            // The header comes from the schema, so an empty table still gets one.
            let header = RecordBatch::new_empty(schema.clone());
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut io.out);
                w.write(&header).map_err(fail)?;
            }
            while let Some(batch) = io.batches.blocking_recv() {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut io.out);
                w.write(&batch).map_err(fail)?;
                rows += batch.num_rows() as u64;
            }
            Ok(rows)
        })
        .await?;
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }
}

/// The conformed layer: each table as Parquet under Hive-style partitions,
/// `<prefix>/<table>/record_created_dt=YYYY-MM-DD/part-00000.parquet`.
///
/// One write fills one partition, as one object, so that replacing a partition is atomic: a rerun
/// of the same date replaces the object whole (readers see the old rows or the new, never a mix or
/// a duplicate) and other dates stay as they are. Other objects found in the partition afterwards
/// (left by another writer) are deleted; on a local directory, other writers' staging areas are
/// not (see the [module](super) documentation). Batches may carry the partition column ([`PARTITION_COLUMN`], as
/// `steam_transforms::conform` adds it): its values must be the partition's date, and it is left
/// out of the files, as Hive partitioning does. Only [`WriteMode::Replace`]. zstd level 1,
/// statistics on, row groups of up to 128Ki rows.
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use chrono::NaiveDate;
/// use steam_connectors::lake::{Lake, LakeParquetSink};
/// use steam_core::{Sink, TableRef, WriteMode};
///
/// let date = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
/// let sink = LakeParquetSink::new(Lake::from_url("s3://conformed_games_data")?, date)
///     .with_free_text("review");
/// let table = TableRef::new("games_reviews", steam_core::Table::GamesReviews.schema());
/// sink.write(&table, WriteMode::Replace, batches).await?;
/// // s3://conformed_games_data/games_reviews/record_created_dt=2026-11-30/part-00000.parquet
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LakeParquetSink {
    lake: Lake,
    date: chrono::NaiveDate,
    compression: Compression,
    max_row_group_size: usize,
    free_text: Vec<String>,
}

impl LakeParquetSink {
    /// A sink into `lake` writing the partition of `date`.
    pub fn new(lake: Lake, date: chrono::NaiveDate) -> Self {
        LakeParquetSink {
            lake,
            date,
            compression: Compression::ZSTD(ZstdLevel::default()),
            max_row_group_size: 128 * 1024,
            free_text: Vec::new(),
        }
    }

    /// Marks `column` as free text: no dictionary, no statistics.
    pub fn with_free_text(mut self, column: &str) -> Self {
        self.free_text.push(column.to_owned());
        self
    }

    /// Sets the compression codec.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The partition directory of a table.
    pub fn partition(&self, table: &str) -> Path {
        self.lake.path(&[
            table,
            &format!("{PARTITION_COLUMN}={}", self.date.format("%Y-%m-%d")),
        ])
    }

    /// Where a table's object goes.
    pub fn location(&self, table: &str) -> Path {
        self.partition(table).join("part-00000.parquet")
    }
}

#[async_trait]
impl Sink for LakeParquetSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        replace_only(&mode)?;
        check_table_name(&table.name)?;
        let started = Instant::now();
        let location = self.location(&table.name);
        let target = self.lake.describe(&location);

        // The partition column, if the batches carry it, is checked and dropped.
        let partition_index = table.schema.index_of(PARTITION_COLUMN).ok();
        if let Some(i) = partition_index {
            if table.schema.field(i).data_type() != &DataType::Date32 {
                return Err(Error::Schema {
                    target: target.clone(),
                    reason: format!("{PARTITION_COLUMN} must be Date32"),
                });
            }
        }
        let file_schema: SchemaRef = match partition_index {
            Some(i) => {
                let mut fields = table.schema.fields().to_vec();
                fields.remove(i);
                Arc::new(Schema::new(fields))
            }
            None => table.schema.clone(),
        };
        let days = Date32Type::from_naive_date(self.date);
        let check_target = target.clone();
        let stripped = checked(table, batches).map(move |batch| {
            let mut batch = batch?;
            if let Some(i) = partition_index {
                let dates = batch.column(i).as_primitive::<Date32Type>();
                if dates.null_count() > 0 || dates.values().iter().any(|d| *d != days) {
                    return Err(Error::Schema {
                        target: check_target.clone(),
                        reason: format!(
                            "{PARTITION_COLUMN} holds dates other than the partition's"
                        ),
                    });
                }
                batch.remove_column(i);
            }
            Ok(batch)
        });
        let props = writer_properties(self.compression, self.max_row_group_size, &self.free_text);
        let (rows, bytes) = upload_parquet(
            &self.lake,
            &location,
            file_schema,
            props,
            batch_stream(stripped),
        )
        .await?;

        // Objects of other writers in this partition would mix with ours: remove them. Staging
        // areas (of a local directory) are not objects readers see: those of writers at work are
        // theirs, those of dead writers the next write's staging removes.
        let partition = self.partition(&table.name);
        let staged = |p: &Path| {
            p.prefix_match(&partition)
                .is_some_and(|mut parts| parts.any(|part| is_staging_name(part.as_ref())))
        };
        let others: Vec<Path> = self
            .lake
            .store()
            .list(Some(&partition))
            .map_ok(|meta| meta.location)
            .try_filter(|p| futures::future::ready(*p != location && !staged(p)))
            .try_collect()
            .await
            .map_err(|e| self.lake.error(&partition, e))?;
        for other in others {
            self.lake
                .store()
                .delete(&other)
                .await
                .map_err(|e| self.lake.error(&other, e))?;
        }
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }
}

/// Writes `batches` (of `schema`) to `location` as one Parquet object, encoded while it uploads
/// (see [`upload`]). Returns rows and bytes.
pub(super) async fn upload_parquet(
    lake: &Lake,
    location: &Path,
    schema: SchemaRef,
    props: parquet::file::properties::WriterProperties,
    batches: BatchStream,
) -> Result<(u64, u64)> {
    let target = lake.describe(location);
    upload(lake, location, batches, move |io| {
        let fail = |e: parquet::errors::ParquetError| {
            Error::backend("parquet", target.clone(), steam_core::Cause::folded(e))
        };
        let mut w = ArrowWriter::try_new(&mut io.out, schema, Some(props)).map_err(fail)?;
        let mut rows = 0;
        while let Some(batch) = io.batches.blocking_recv() {
            rows += batch.num_rows() as u64;
            w.write(&batch).map_err(fail)?;
        }
        w.close().map_err(fail)?;
        Ok(rows)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::Field;

    #[tokio::test]
    async fn a_partitions_rewrite_keeps_other_writers_staging_areas() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::from_url(dir.path().to_str().unwrap()).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let sink = LakeParquetSink::new(lake, date);
        let partition = dir.path().join("t/record_created_dt=2026-11-29");
        std::fs::create_dir_all(partition.join(".staging-other")).unwrap();
        std::fs::write(
            partition.join(".staging-other/part-00000.parquet"),
            "theirs",
        )
        .unwrap();
        let lock = std::fs::File::create(partition.join(".staging-other.lock")).unwrap();
        lock.lock().unwrap(); // a writer at work
        std::fs::write(partition.join("part-00001.parquet"), "a stray object").unwrap();

        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1]))])
            .unwrap();
        let table = TableRef::new("t", schema);
        let batches = batch_stream(futures::stream::iter([Ok(batch)]));
        sink.write(&table, WriteMode::Replace, batches)
            .await
            .unwrap();

        assert_eq!(
            crate::files::names_in(&partition),
            [
                ".staging-other",
                ".staging-other.lock",
                "part-00000.parquet"
            ]
        );
        assert!(partition
            .join(".staging-other/part-00000.parquet")
            .is_file());
        drop(lock);
    }
}
