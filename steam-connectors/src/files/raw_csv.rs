//! The scraper's raw CSV files, streamed as batches with line numbers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use async_trait::async_trait;
use steam_core::raw::RawFile;
use steam_core::{BatchStream, Error, Result, SchemaRef, Source};

use steam_core::channel::spawn_blocking_stream;

use super::unblock;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most columns a raw file needs.
const MAX_COLUMNS: usize = 16;

/// The default number of records per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Reads one of the scraper's raw CSV files as batches in the layout of [`steam_core::raw`].
///
/// - Columns are found by header name (order and extra columns do not matter); a missing one is
///   [`Error::MissingColumn`].
/// - Each record carries the line it starts on (the header is line 1), counting the lines inside
///   quoted multi-line values.
/// - A record with the wrong number of fields, or with invalid UTF-8 in a needed column, is kept
///   as a malformed record (its `_error` says why) for the cleaner to set aside: none is dropped.
/// - A UTF-8 byte-order mark is skipped, and CRLF inside values becomes LF, so a file saved with
///   Windows line endings gives the same values.
///
/// Memory holds one batch of records at a time.
pub struct RawCsvReader {
    file: RawFile,
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    positions: Vec<usize>,
    fields: usize,
    batch_size: usize,
    record: csv::ByteRecord,
    done: bool,
}

impl std::fmt::Debug for RawCsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCsvReader")
            .field("file", &self.file)
            .field("path", &self.path)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl RawCsvReader {
    /// Opens `path` as raw file `file` and reads its header.
    pub fn open(path: impl AsRef<Path>, file: RawFile) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let handle = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile { path: path.clone() },
            _ => Error::io(&path, e),
        })?;
        Self::from_reader(Box::new(handle), &path, file)
    }

    /// Reads raw file `file` from any reader; `path` names it in errors.
    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        path: impl AsRef<Path>,
        file: RawFile,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut buffered = BufReader::with_capacity(1 << 20, reader);
        let start = buffered.fill_buf().map_err(|e| Error::io(&path, e))?;
        if start.starts_with(BOM) {
            buffered.consume(BOM.len());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(Box::new(CrlfToLf {
                inner: buffered,
                pending_cr: false,
            }) as Box<dyn Read + Send>);
        let mut header = csv::ByteRecord::new();
        let name = path.display().to_string();
        let has_header = reader
            .read_byte_record(&mut header)
            .map_err(|e| csv_error(&path, e))?;
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_owned())
            .collect();
        let positions = file
            .columns()
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| Error::MissingColumn {
                        file: name.clone(),
                        column: (*c).to_owned(),
                        found: if has_header {
                            names.join(", ")
                        } else {
                            "nothing: the file is empty".to_owned()
                        },
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RawCsvReader {
            file,
            path,
            reader,
            positions,
            fields: names.len(),
            batch_size: DEFAULT_BATCH_SIZE,
            record: csv::ByteRecord::new(),
            done: false,
        })
    }

    /// Sets the number of records per batch (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The schema of the batches: [`RawFile::schema`].
    pub fn schema(&self) -> SchemaRef {
        self.file.schema()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let columns = self.file.columns();
        let mut lines = UInt64Builder::with_capacity(self.batch_size);
        let mut errors = StringBuilder::new();
        let mut values: Vec<StringBuilder> = columns
            .iter()
            .map(|_| StringBuilder::with_capacity(self.batch_size, self.batch_size * 16))
            .collect();
        let mut rows = 0;
        while rows < self.batch_size {
            if !self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.path, e))?
            {
                self.done = true;
                break;
            }
            rows += 1;
            let line = self.record.position().map_or(0, |p| p.line());
            lines.append_value(line);
            if self.record.len() != self.fields {
                let reason = format!("{} fields, expected {}", self.record.len(), self.fields);
                malformed(&mut errors, &mut values, reason);
                continue;
            }
            // One UTF-8 check for the whole record, then each needed field must lie on character
            // boundaries; only a record that fails this is checked field by field, for the message.
            let whole = std::str::from_utf8(self.record.as_slice()).ok();
            let mut fields = [""; MAX_COLUMNS];
            let mut bad = None;
            for (k, (&p, c)) in self.positions.iter().zip(columns).enumerate() {
                let range = self.record.range(p).unwrap_or(0..0);
                match whole.and_then(|s| s.get(range)) {
                    Some(v) => fields[k] = v,
                    None => match std::str::from_utf8(&self.record[p]) {
                        Ok(v) => fields[k] = v,
                        Err(_) => {
                            bad = Some(format!("invalid UTF-8 in column {c}"));
                            break;
                        }
                    },
                }
            }
            match bad {
                Some(reason) => malformed(&mut errors, &mut values, reason),
                None => {
                    errors.append_null();
                    for (v, builder) in fields.iter().zip(values.iter_mut()) {
                        builder.append_value(v);
                    }
                }
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(lines.finish()), Arc::new(errors.finish())];
        arrays.extend(values.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        RecordBatch::try_new(self.schema(), arrays)
            .map(Some)
            .map_err(|e| Error::arrow(format!("reading {}", self.path.display()), e))
    }
}

impl Iterator for RawCsvReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A reader that turns each CRLF into LF, in line terminators and inside quoted values alike, so
/// that line numbers and values do not depend on the file's line endings. A lone CR is kept.
struct CrlfToLf<R> {
    inner: R,
    pending_cr: bool,
}

impl<R: BufRead> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                if self.pending_cr {
                    out[n] = b'\r';
                    n += 1;
                    self.pending_cr = false;
                }
                break;
            }
            if self.pending_cr {
                self.pending_cr = false;
                if buf[0] != b'\n' {
                    out[n] = b'\r';
                    n += 1;
                    continue;
                }
            }
            // copy up to the next CR in one go; a CR followed by LF is dropped
            let room = out.len() - n;
            let window = &buf[..buf.len().min(room)];
            let mut i = match memchr::memchr(b'\r', window) {
                None => window.len(),
                Some(at) => at,
            };
            out[n..n + i].copy_from_slice(&window[..i]);
            n += i;
            if i < window.len() {
                // window[i] is a CR
                i += 1;
                match buf.get(i) {
                    Some(b'\n') => {}
                    None => self.pending_cr = true,
                    Some(_) => {
                        out[n] = b'\r';
                        n += 1;
                    }
                }
            }
            self.inner.consume(i);
            if n > 0 && !self.pending_cr {
                break;
            }
        }
        Ok(n)
    }
}

/// Marks a record as malformed: its reason, and nulls in every column.
fn malformed(errors: &mut StringBuilder, values: &mut [StringBuilder], reason: String) {
    errors.append_value(reason);
    values.iter_mut().for_each(|v| v.append_null());
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let target = path.display().to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::backend_msg("csv", target, format!("{other:?}")),
    }
}

/// A raw file as a [`Source`]: [`RawCsvReader`] on a blocking thread, at most two batches ahead of
/// the consumer.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use futures::StreamExt;
/// use steam_connectors::files::RawCsvSource;
/// use steam_core::{raw::RawFile, Source};
///
/// let source = RawCsvSource::in_dir("data/raw", RawFile::GameReviews).with_batch_size(8192);
/// let mut batches = source.read().await?;
/// while let Some(batch) = batches.next().await {
///     let batch = batch?; // raw records: line numbers, a malformed-record marker, the columns
///     println!("{} records", batch.num_rows());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RawCsvSource {
    path: PathBuf,
    file: RawFile,
    batch_size: usize,
}

impl RawCsvSource {
    /// The raw file `file` at `path`.
    pub fn new(path: impl Into<PathBuf>, file: RawFile) -> Self {
        RawCsvSource {
            path: path.into(),
            file,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// The raw file `file` in directory `dir`, under its scraper name.
    pub fn in_dir(dir: impl AsRef<Path>, file: RawFile) -> Self {
        Self::new(dir.as_ref().join(file.file_name()), file)
    }

    /// Sets the number of records per batch.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The path read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Source for RawCsvSource {
    fn schema(&self) -> SchemaRef {
        self.file.schema()
    }

    async fn read(&self) -> Result<BatchStream> {
        let what = self.path.display().to_string();
        let (path, file, batch_size) = (self.path.clone(), self.file, self.batch_size);
        // Opening reads the header: on a blocking thread.
        let reader = unblock(&format!("opening {what}"), move || {
            Ok(RawCsvReader::open(&path, file)?.with_batch_size(batch_size))
        })
        .await?;
        Ok(spawn_blocking_stream(what, move |tx| {
            for batch in reader {
                if !tx.blocking_send(Ok(batch?)) {
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
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::UInt64Type;

    fn read(text: &str, file: RawFile, batch: usize) -> Result<Vec<RecordBatch>> {
        RawCsvReader::from_reader(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            "t.csv",
            file,
        )?
        .with_batch_size(batch)
        .collect()
    }

    fn col(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column_by_name(name).unwrap().as_string::<i32>().clone();
                (0..a.len())
                    .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn lines(batches: &[RecordBatch]) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn finds_columns_by_name_and_counts_lines_of_multiline_values() {
        let text =
            "rank,extra,game_name,genre,rank_type\n1,x,\"A\nB\",Action,Sales\n2,y,C,RPG,Review\n";
        let b = read(text, RawFile::GamesRanking, 1).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(lines(&b), vec![2, 4]);
        assert_eq!(
            col(&b, "game_name"),
            vec![Some("A\nB".into()), Some("C".into())]
        );
        assert_eq!(col(&b, "rank"), vec![Some("1".into()), Some("2".into())]);
        assert_eq!(col(&b, "_error"), vec![None, None]);
    }

    #[test]
    fn crlf_and_bom_give_the_same_values() {
        let lf = "game_name,genre,rank_type,rank\n\"A\nB\",Action,Sales,1\nC,RPG,Review,2\n";
        let crlf = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
        let a = read(lf, RawFile::GamesRanking, 10).unwrap();
        let b = read(&crlf, RawFile::GamesRanking, 10).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn wrong_field_counts_and_bad_utf8_are_marked_not_dropped() {
        let mut bytes =
            b"game_name,genre,rank_type,rank\nA,Action,Sales,1,extra\nB,Action\n".to_vec();
        bytes.extend_from_slice(b"\xff\xfe,Action,Sales,3\nD,RPG,Review,4\n");
        let b: Vec<_> = RawCsvReader::from_reader(
            Box::new(std::io::Cursor::new(bytes)),
            "t.csv",
            RawFile::GamesRanking,
        )
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(lines(&b), vec![2, 3, 4, 5]);
        assert_eq!(
            col(&b, "_error"),
            vec![
                Some("5 fields, expected 4".into()),
                Some("2 fields, expected 4".into()),
                Some("invalid UTF-8 in column game_name".into()),
                None
            ]
        );
        assert_eq!(col(&b, "game_name")[3], Some("D".into()));
        assert_eq!(col(&b, "game_name")[0], None);
    }

    #[test]
    fn missing_column_and_empty_file_are_clear_errors() {
        let e = read("game_name,genre,rank\nA,B,1\n", RawFile::GamesRanking, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv: missing column \"rank_type\" (found: game_name, genre, rank)"
        );
        let e = read("", RawFile::GamesRanking, 10).unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");
        let e = RawCsvReader::open("/nonexistent/x.csv", RawFile::GamesRanking).unwrap_err();
        assert!(matches!(e, Error::MissingFile { .. }), "{e}");
        assert_eq!(e.to_string(), "missing file: /nonexistent/x.csv");
    }

    #[test]
    fn header_only_file_has_no_batches() {
        assert!(read(
            "game_name,genre,rank_type,rank\n",
            RawFile::GamesRanking,
            10
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn crlf_to_lf_keeps_lone_cr_at_any_buffer_size() {
        let input = b"a\r\nb\rc\r\n\r\n\r\rx\r".to_vec();
        for cap in 1..6 {
            for chunk in 1..6 {
                let mut r = CrlfToLf {
                    inner: BufReader::with_capacity(cap, std::io::Cursor::new(input.clone())),
                    pending_cr: false,
                };
                let mut out = Vec::new();
                let mut buf = vec![0; chunk];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                assert_eq!(out, b"a\nb\rc\n\n\r\rx\r", "cap {cap} chunk {chunk}");
            }
        }
    }
}
