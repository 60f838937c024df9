//! Parquet files: one file per table in a directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use steam_core::{
    BatchStream, Cause, Error, RecordBatch, Result, SchemaRef, Sink, Source, TableRef, WriteMode,
    WriteSummary,
};
use tokio::sync::mpsc;

use super::staging::StagingArea;
use super::unblock;
use steam_core::channel::spawn_blocking_stream;

const BACKEND: &str = "parquet";

/// Writes each table as `<dir>/<table>.parquet`.
///
/// Only [`WriteMode::Replace`] is supported: the file is written in a staging area beside its
/// target (a hidden, locked directory: see [`DirTransaction`](super::DirTransaction)) and renamed
/// into place when complete, so a reader sees the old file or the new one, and a failed write (a
/// bad batch, an error in the stream, a full disk) leaves the old file untouched and nothing else.
/// Encoding and all file-system work run on blocking threads, encoding at most two batches behind
/// the stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steam_core::Result<()> {
/// use std::sync::Arc;
/// use arrow::array::{Int32Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use steam_connectors::files::ParquetDirSink;
/// use steam_core::{batch_stream, Sink, TableRef, WriteMode};
///
/// let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2]))])
///     .unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let sink = ParquetDirSink::new(dir.path());
/// let written = sink
///     .write(
///         &TableRef::new("ids", schema),
///         WriteMode::Replace,
///         batch_stream(futures::stream::iter([Ok(batch)])),
///     )
///     .await?;
/// assert_eq!(written.rows, 2);
/// assert!(sink.path("ids").is_file());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ParquetDirSink {
    dir: PathBuf,
    compression: Compression,
    max_row_group_size: usize,
    free_text: Vec<String>,
}

impl ParquetDirSink {
    /// A sink writing into `dir` (created when missing), zstd level 1, row groups of up to 1Mi rows.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ParquetDirSink {
            dir: dir.into(),
            compression: Compression::ZSTD(ZstdLevel::default()),
            max_row_group_size: 1 << 20,
            free_text: Vec::new(),
        }
    }

    /// Marks `column` as free text (reviews, descriptions): written without a dictionary and without
    /// min/max statistics, which cost time and help nothing when values rarely repeat.
    pub fn with_free_text(mut self, column: &str) -> Self {
        self.free_text.push(column.to_owned());
        self
    }

    /// Sets the compression codec.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the largest number of rows in a row group.
    pub fn with_max_row_group_size(mut self, rows: usize) -> Self {
        self.max_row_group_size = rows.max(1);
        self
    }

    /// The file a table is written to.
    pub fn path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.parquet"))
    }
}

/// Parquet writer properties: a codec, a row-group size, and free-text columns written without a
/// dictionary and without statistics.
pub(crate) fn writer_properties(
    compression: Compression,
    max_row_group_size: usize,
    free_text: &[String],
) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(max_row_group_size));
    for column in free_text {
        let path = ColumnPath::from(column.as_str());
        props = props
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    props.build()
}

/// Checks that a table name is safe as a file name: letters, digits, `_`, `-`, `.`, not starting
/// with a dot.
pub(crate) fn check_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            key: "table".into(),
            reason: format!("{name:?} is not a valid table name (letters, digits, _ - . only)"),
        })
    }
}

#[async_trait]
impl Sink for ParquetDirSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        mut batches: BatchStream,
    ) -> Result<WriteSummary> {
        if mode != WriteMode::Replace {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: format!("write mode {}", mode.name()),
            });
        }
        check_table_name(&table.name)?;
        let started = Instant::now();
        let path = self.path(&table.name);
        let file_name = format!("{}.parquet", table.name);
        let target = path.display().to_string();
        let dir = self.dir.clone();
        let area = unblock(&format!("staging {target}"), move || {
            StagingArea::create(&dir)
        })
        .await?;
        let staged = area.path().join(&file_name);
        let props = writer_properties(self.compression, self.max_row_group_size, &self.free_text);
        let schema = table.schema.clone();
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(2);
        let writer_target = target.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
            let file = File::create(&staged).map_err(|e| Error::io(&staged, e))?;
            let mut w = ArrowWriter::try_new(file, schema, Some(props))
                .map_err(|e| Error::backend(BACKEND, &writer_target, Cause::folded(e)))?;
            let mut rows = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                rows += batch.num_rows() as u64;
                w.write(&batch)
                    .map_err(|e| Error::backend(BACKEND, &writer_target, Cause::folded(e)))?;
            }
            w.close()
                .map_err(|e| Error::backend(BACKEND, &writer_target, Cause::folded(e)))?;
            Ok(rows)
        });
        let mut failure = None;
        while let Some(item) = batches.next().await {
            let batch = match item {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Err(e) = steam_core::check_columns(&table.name, &batch.schema(), &table.schema) {
                failure = Some(e);
                break;
            }
            if tx.send(batch).await.is_err() {
                break; // the writer failed: its error is returned below
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| Error::from_join(format!("writer of {target}"), e));
        let result = match (failure, written) {
            (Some(e), _) => Err(e),
            (None, Ok(Ok(rows))) => Ok(rows),
            (None, Ok(Err(e)) | Err(e)) => Err(e),
        };
        // Published whole, or not at all; the staging area goes either way.
        let (rows, bytes) = unblock(&format!("publishing {target}"), move || {
            let published = result.and_then(|rows| {
                area.publish(&file_name, &path)?;
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                Ok((rows, bytes))
            });
            area.remove();
            published
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

/// A Parquet file as a [`Source`], read on a blocking thread in batches of 8192 rows.
///
/// ```no_run
/// # fn example() -> steam_core::Result<()> {
/// use steam_connectors::files::ParquetFileSource;
/// use steam_core::Source;
///
/// let source = ParquetFileSource::open("data/processed/games_reviews.parquet")?;
/// println!("{:?}", source.schema());
/// let batches = source.read_all()?; // or stream them with steam_core::Source::read
/// # let _ = batches;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ParquetFileSource {
    path: PathBuf,
    schema: SchemaRef,
    batch_size: usize,
    columns: Option<Vec<usize>>,
}

impl ParquetFileSource {
    /// Opens `path` and reads its schema from the footer.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let builder = Self::builder(&path)?;
        Ok(ParquetFileSource {
            schema: builder.schema().clone(),
            path,
            batch_size: 8192,
            columns: None,
        })
    }

    /// Reads only `columns` (top-level, by name, in this order): the others are not decoded. A
    /// name the file does not have is an error naming it.
    pub fn select(mut self, columns: &[&str]) -> Result<Self> {
        let mut indices = Vec::with_capacity(columns.len());
        for c in columns {
            let i = self.schema.index_of(c).map_err(|_| Error::Schema {
                target: self.path.display().to_string(),
                reason: format!("no column {c:?}"),
            })?;
            indices.push(i);
        }
        self.schema = std::sync::Arc::new(
            self.schema
                .project(&indices)
                .map_err(|e| Error::arrow(format!("selecting from {}", self.path.display()), e))?,
        );
        self.columns = Some(indices);
        Ok(self)
    }

    /// The reader of the file, of the selected columns.
    fn reader(
        path: &Path,
        batch_size: usize,
        columns: Option<&[usize]>,
    ) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
        let target = path.display().to_string();
        let mut builder = Self::builder(path)?.with_batch_size(batch_size);
        if let Some(columns) = columns {
            let mask =
                parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), columns.to_vec());
            builder = builder.with_projection(mask);
        }
        let reader = builder
            .build()
            .map_err(|e| Error::backend(BACKEND, &target, Cause::folded(e)))?;
        Ok(reader)
    }

    /// Sets the number of rows per batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                path: path.to_path_buf(),
            },
            _ => Error::io(path, e),
        })?;
        ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| Error::backend(BACKEND, path.display().to_string(), Cause::folded(e)))
    }

    /// Reads the whole file into memory (for small tables and tests).
    pub fn read_all(&self) -> Result<Vec<RecordBatch>> {
        let target = self.path.display().to_string();
        let batches: Vec<RecordBatch> =
            Self::reader(&self.path, self.batch_size, self.columns.as_deref())?
                .map(|b| b.map_err(|e| Error::arrow(format!("reading {target}"), e)))
                .collect::<Result<_>>()?;
        self.ordered(batches)
    }

    /// Puts the selected columns in the order they were asked in (the reader gives file order).
    fn ordered(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        batches.into_iter().map(|b| self.order(b)).collect()
    }

    fn order(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.columns.is_none() {
            return Ok(batch);
        }
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                batch
                    .column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| Error::Schema {
                        target: self.path.display().to_string(),
                        reason: format!("no column {:?}", f.name()),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::arrow(format!("reading {}", self.path.display()), e))
    }
}

#[async_trait]
impl Source for ParquetFileSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&self) -> Result<BatchStream> {
        let target = self.path.display().to_string();
        let (path, batch_size) = (self.path.clone(), self.batch_size);
        let columns = self.columns.clone();
        // Opening reads the footer: on a blocking thread.
        let reader = unblock(&format!("opening {target}"), move || {
            Self::reader(&path, batch_size, columns.as_deref())
        })
        .await?;
        let this = self.clone();
        Ok(spawn_blocking_stream(target.clone(), move |tx| {
            for batch in reader {
                let batch = batch.map_err(|e| Error::arrow(format!("reading {target}"), e))?;
                let batch = this.order(batch)?;
                if !tx.blocking_send(Ok(batch)) {
                    break;
                }
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::stream;
    use steam_core::batch_stream;

    fn table() -> TableRef {
        TableRef::new(
            "t",
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("name", DataType::Utf8, true),
            ])),
        )
    }

    fn batch(t: &TableRef, ids: &[i32]) -> RecordBatch {
        RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|i| Some(format!("n{i}"))),
                )),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn writes_and_reads_back_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ParquetDirSink::new(dir.path());
        let t = table();
        let s = sink
            .write(
                &t,
                WriteMode::Replace,
                batch_stream(stream::iter(vec![
                    Ok(batch(&t, &[1, 2])),
                    Ok(batch(&t, &[3])),
                ])),
            )
            .await
            .unwrap();
        assert_eq!(s.rows, 3);
        assert!(s.bytes > 0);
        let back = ParquetFileSource::open(sink.path("t"))
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
        let s = sink
            .write(
                &t,
                WriteMode::Replace,
                batch_stream(stream::iter(vec![Ok(batch(&t, &[9]))])),
            )
            .await
            .unwrap();
        assert_eq!(s.rows, 1);
        let src = ParquetFileSource::open(sink.path("t")).unwrap();
        let mut stream = src.read().await.unwrap();
        let b = stream.next().await.unwrap().unwrap();
        assert_eq!(b, batch(&t, &[9]));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ParquetDirSink::new(dir.path());
        let t = table();
        sink.write(
            &t,
            WriteMode::Replace,
            batch_stream(stream::iter(vec![Ok(batch(&t, &[1]))])),
        )
        .await
        .unwrap();
        let failing = vec![
            Ok(batch(&t, &[5, 6])),
            Err(Error::backend_msg("test", "t", "source broke")),
        ];
        let e = sink
            .write(&t, WriteMode::Replace, batch_stream(stream::iter(failing)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("source broke"));
        let wrong = TableRef::new(
            "x",
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        );
        let e = sink
            .write(
                &t,
                WriteMode::Replace,
                batch_stream(stream::iter(vec![Ok(RecordBatch::new_empty(wrong.schema))])),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Schema { .. }), "{e}");
        let back = ParquetFileSource::open(sink.path("t"))
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(back, vec![batch(&t, &[1])]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("t.parquet")]);
    }

    #[tokio::test]
    async fn refuses_other_modes_and_unsafe_names() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ParquetDirSink::new(dir.path());
        let t = table();
        let empty = || batch_stream(stream::iter(Vec::new()));
        assert!(matches!(
            sink.write(&t, WriteMode::Append, empty())
                .await
                .unwrap_err(),
            Error::Unsupported { .. }
        ));
        for bad in ["../evil", "a/b", "", ".hidden"] {
            let t = TableRef::new(bad, t.schema.clone());
            assert!(
                matches!(
                    sink.write(&t, WriteMode::Replace, empty())
                        .await
                        .unwrap_err(),
                    Error::Config { .. }
                ),
                "{bad}"
            );
        }
    }
}
