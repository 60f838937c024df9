//! One Parquet object at a URL of its own, such as the training step's
//! `gs://inference_games_results/user_recommendations.parquet`.

use std::time::Instant;

use async_trait::async_trait;
use parquet::basic::{Compression, ZstdLevel};
use steam_core::{BatchStream, Error, Result, Sink, TableRef, WriteMode, WriteSummary};

use super::Lake;
use crate::files::writer_properties;

/// Writes a table as the single Parquet object the lake's URL names (its prefix is the object's
/// path): zstd level 1, statistics on, row groups of up to 128Ki rows. The object is replaced whole
/// when the upload completes, so readers see the old object or the new one; a failed write leaves
/// the old one. Only [`WriteMode::Replace`]; the table's name is used in messages only.
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::lake::{Lake, ParquetObjectSink};
/// use steam_core::{recommendations_schema, Sink, TableRef, WriteMode};
///
/// let out = Lake::from_url("gs://inference_games_results/user_recommendations.parquet")?;
/// let table = TableRef::new("user_recommendations", recommendations_schema());
/// ParquetObjectSink::new(out).write(&table, WriteMode::Replace, batches).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ParquetObjectSink {
    lake: Lake,
    compression: Compression,
}

impl ParquetObjectSink {
    /// A sink writing the object at `lake`'s URL.
    pub fn new(lake: Lake) -> Self {
        ParquetObjectSink {
            lake,
            compression: Compression::ZSTD(ZstdLevel::default()),
        }
    }

    /// Sets the compression codec.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
}

#[async_trait]
impl Sink for ParquetObjectSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        super::write::replace_only(&mode)?;
        let started = Instant::now();
        let location = self.lake.prefix().clone();
        if location.as_ref().is_empty() {
            return Err(Error::Config {
                key: "lake".into(),
                reason: format!(
                    "{} names no object: give a path such as {}/{}.parquet",
                    self.lake.url(),
                    self.lake.url().trim_end_matches('/'),
                    table.name
                ),
            });
        }
        let props = writer_properties(self.compression, 128 * 1024, &[]);
        let checked = super::write::checked(table, batches);
        let (rows, bytes) = super::write::upload_parquet(
            &self.lake,
            &location,
            table.schema.clone(),
            props,
            checked,
        )
        .await?;
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }
}
