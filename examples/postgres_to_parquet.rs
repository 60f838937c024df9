//! What the library is for: a Source, a transform and a Sink composed by hand.
//!
//! Reads a PostgreSQL query as a stream of Arrow batches ([`PostgresSource`]), passes each batch
//! through a transform of this example's own (the positive reviews, with a playtime confidence
//! weight), and writes the result with a [`Sink`] implemented here, outside the crates: one
//! Parquet file through the parquet crate's `AsyncArrowWriter`, written beside its final name and
//! renamed into place only when every batch is in, so a failed run leaves an older file intact.
//! Memory holds one batch at a time, whatever the table's size.
//!
//! It needs only the `postgres` feature of steam-recsys (see `downstream/`, a package outside the
//! workspace that builds it with that feature alone):
//!
//! `cargo run --example postgres_to_parquet -- POSTGRES_URL OUT.parquet [SCHEMA]`
//!
//! with `SCHEMA` the one `postgres-init` loaded (default `recsys`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, BooleanArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use futures::StreamExt;
use parquet::arrow::AsyncArrowWriter;
use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSource};
use steam_recsys::core::{
    batch_stream, BatchStream, Error, Result, Sink, Source, TableRef, WriteMode, WriteSummary,
};

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, out, rest @ ..] = args.as_slice() else {
        return Err("usage: postgres_to_parquet POSTGRES_URL OUT.parquet [SCHEMA]".into());
    };
    let schema = rest.first().map_or("recsys", String::as_str);
    let started = Instant::now();

    // The source: a query, its columns' types learnt from the server before the first row.
    let config = PostgresConfig::from_url(url)?.with_schema(schema);
    let query = format!(
        "SELECT user_id, game_id, hours_played, recommendation FROM \"{}\".games_reviews",
        schema.replace('"', "\"\"")
    );
    let source = PostgresSource::query(config, &query).await?;

    // The transform: batch by batch, as the stream goes.
    let transform = Positive::new(source.schema())?;
    let output = transform.schema();
    let batches = source.read().await?;
    let transformed = batch_stream(batches.map(move |batch| transform.apply(&batch?)));

    // The sink.
    let table = TableRef::new("positive_reviews", output);
    let summary = ParquetFileSink::new(out)
        .write(&table, WriteMode::Replace, transformed)
        .await
        .map_err(|e| steam_recsys::core::error_chain(&e))?;
    eprintln!(
        "{} rows ({} KiB) into {out} in {:.2}s",
        summary.rows,
        summary.bytes >> 10,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The example's own transform: keeps the reviews that recommend their game and adds
/// `weight = 1 + ln(1 + hours_played)` (0 hours when unknown), a playtime confidence.
struct Positive {
    recommendation: usize,
    hours: usize,
    schema: SchemaRef,
}

impl Positive {
    /// Checks the input's columns once, before any batch.
    fn new(input: SchemaRef) -> Result<Self> {
        let column = |name: &str, ty: DataType| -> Result<usize> {
            match input.index_of(name) {
                Ok(i) if input.field(i).data_type() == &ty => Ok(i),
                _ => Err(Error::Schema {
                    target: "positive reviews".into(),
                    reason: format!("the input needs a column {name} of type {ty}"),
                }),
            }
        };
        let recommendation = column("recommendation", DataType::Boolean)?;
        let hours = column("hours_played", DataType::Float32)?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("weight", DataType::Float32, false));
        Ok(Positive {
            recommendation,
            hours,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let fail = |e| Error::arrow("positive reviews", e);
        let recommended = batch.column(self.recommendation).as_boolean();
        // Null (unknown) recommendations are dropped with the negative ones.
        let keep: BooleanArray = recommended.iter().map(|r| Some(r == Some(true))).collect();
        let kept = arrow::compute::filter_record_batch(batch, &keep).map_err(fail)?;
        let hours = kept.column(self.hours).as_primitive::<Float32Type>();
        let weight: Float32Array = (0..hours.len())
            .map(|i| {
                let h = if hours.is_null(i) {
                    0.0
                } else {
                    hours.value(i)
                };
                Some(1.0 + h.max(0.0).ln_1p())
            })
            .collect();
        let mut columns = kept.columns().to_vec();
        columns.push(Arc::new(weight));
        RecordBatch::try_new(self.schema.clone(), columns).map_err(fail)
    }
}

/// A [`Sink`] written outside the crates: one Parquet file, replaced whole.
struct ParquetFileSink {
    path: PathBuf,
}

impl ParquetFileSink {
    fn new(path: impl Into<PathBuf>) -> Self {
        ParquetFileSink { path: path.into() }
    }
}

#[async_trait::async_trait]
impl Sink for ParquetFileSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        mut batches: BatchStream,
    ) -> Result<WriteSummary> {
        if mode != WriteMode::Replace {
            return Err(Error::Unsupported {
                backend: "parquet file",
                operation: format!("{} into {}", mode.name(), self.path.display()),
            });
        }
        let started = Instant::now();
        let staged = staging_path(&self.path);
        let io = |e| Error::io(&staged, e);
        let parquet = |e| {
            let cause = steam_recsys::core::Cause::folded(e);
            Error::backend("parquet file", staged.display().to_string(), cause)
        };
        let file = tokio::fs::File::create(&staged).await.map_err(io)?;
        let mut writer =
            AsyncArrowWriter::try_new(file, table.schema.clone(), None).map_err(parquet)?;
        let mut rows = 0;
        let written = async {
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await.map_err(parquet)?;
            }
            writer.close().await.map_err(parquet)
        }
        .await;
        if let Err(e) = written {
            // The old file, if any, stays as it was.
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(e);
        }
        let published = async {
            let bytes = tokio::fs::metadata(&staged).await?.len();
            tokio::fs::rename(&staged, &self.path).await?;
            Ok(bytes)
        };
        let bytes = match published.await {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(io(e));
            }
        };
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }
}

/// `OUT.parquet` is staged as `.OUT.parquet.PID.partial` in the same directory, so that the final
/// rename stays on one file system.
fn staging_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}
