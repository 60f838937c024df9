//! Reading PostgreSQL tables and queries as Arrow streams with binary COPY.

use std::sync::Arc;

use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::StreamExt;
use steam_core::{batch_stream, BatchStream, Error, Result, Source};
use tokio_postgres::Client;

use super::binary::Decoder;
use super::config::{pg_error, PostgresConfig};
use super::types::{quote_ident, quote_literal, PgType};
use steam_core::channel::batch_channel;

/// What a [`PostgresSource`] reads.
#[derive(Debug, Clone)]
enum What {
    /// A table of the configured schema.
    Table(String),
    /// A query.
    Query(String),
}

/// A PostgreSQL table or query as a stream of Arrow batches, read with `COPY (…) TO STDOUT
/// (FORMAT binary)`.
///
/// Batches hold at most [`PostgresSource::with_batch_size`] rows and about
/// [`PostgresSource::with_batch_bytes`] bytes, and the server is read only as fast as batches are
/// consumed, so memory does not grow with the table. Column types: `smallint` → `Int16`, `integer`
/// → `Int32`, `bigint` → `Int64`, `real` → `Float32`, `double precision` → `Float64`, `boolean`,
/// `text`/`varchar`/`char` → `Utf8`, `bytea` → `Binary`, `date` → `Date32`, `timestamp` and
/// `timestamptz` → microsecond timestamps (`timestamptz` in UTC), and one-dimensional arrays of
/// these → `List`. Other types are an error naming the column; cast them in a query.
/// [`PostgresSource::with_schema`] casts to a schema of your own, such as a catalog table's.
///
/// [`PostgresSource::partitioned`] splits a large table on ranges of an integer column and reads
/// the ranges over parallel connections, all in one snapshot.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use futures::StreamExt;
/// use steam_connectors::postgres::{PostgresConfig, PostgresSource};
/// use steam_core::{Source, Table};
///
/// let config = PostgresConfig::from_url("postgresql://mage:secret@db:5432/steam")?;
/// let source = PostgresSource::table(config, "games_reviews")
///     .await?
///     .with_schema(Table::GamesReviews.schema())?;
/// let mut batches = source.read().await?;
/// while let Some(batch) = batches.next().await {
///     println!("{} rows", batch?.num_rows());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresSource {
    config: PostgresConfig,
    what: What,
    /// The schema batches are decoded into (from the server's column types).
    decoded: SchemaRef,
    types: Vec<PgType>,
    /// The schema batches are cast to, when it differs from `decoded`.
    target: Option<SchemaRef>,
    batch_size: usize,
    batch_bytes: usize,
    partitions: Option<(String, usize)>,
}

impl PostgresSource {
    /// A table of `config`'s schema. Connects once to learn its columns.
    pub async fn table(config: PostgresConfig, table: &str) -> Result<Self> {
        let what = What::Table(table.to_owned());
        Self::open(config, what).await
    }

    /// The rows of a `SELECT` (or `VALUES`, `TABLE`…) query. Connects once to learn its columns.
    pub async fn query(config: PostgresConfig, query: &str) -> Result<Self> {
        let what = What::Query(query.trim().trim_end_matches(';').to_owned());
        Self::open(config, what).await
    }

    async fn open(config: PostgresConfig, what: What) -> Result<Self> {
        let client = config.connect().await?;
        let name = describe(&config, &what);
        let select = select_sql(&config, &what)?;
        let statement = client
            .prepare(&select)
            .await
            .map_err(|e| pg_error(name.clone(), e))?;
        let not_null = match &what {
            What::Table(table) => not_null_columns(&client, &config, table, &name).await?,
            What::Query(_) => Vec::new(),
        };
        let mut fields = Vec::new();
        let mut types = Vec::new();
        for column in statement.columns() {
            let ty = PgType::for_pg(&name, column.name(), column.type_())?;
            let nullable = !not_null.iter().any(|n| n == column.name());
            fields.push(ty.field(column.name(), nullable));
            types.push(ty);
        }
        Ok(PostgresSource {
            config,
            what,
            decoded: Arc::new(Schema::new(fields)),
            types,
            target: None,
            batch_size: 65_536,
            batch_bytes: 32 << 20,
            partitions: None,
        })
    }

    /// Rows per batch, at most (default 65,536).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Bytes of field data per batch, about (default 32 MiB): a batch ends at whichever of the
    /// row and byte limits comes first, so long text does not make batches huge.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Casts every batch to `schema`, whose fields must be the source's columns in order (by
    /// name). A value the cast cannot hold (an overflow, a null in a non-nullable field) is an
    /// error naming the column.
    pub fn with_schema(mut self, schema: SchemaRef) -> Result<Self> {
        let ours: Vec<&String> = self.decoded.fields().iter().map(|f| f.name()).collect();
        let theirs: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        if ours != theirs {
            return Err(Error::Schema {
                target: format!("postgres {}", describe(&self.config, &self.what)),
                reason: format!("the source has columns {ours:?}; the schema asks for {theirs:?}"),
            });
        }
        self.target = Some(schema);
        Ok(self)
    }

    /// Reads `partitions` ranges of the integer column `key` over as many connections at once,
    /// in one snapshot of the database. Batches arrive in no particular order. Only for tables.
    pub fn partitioned(mut self, key: &str, partitions: usize) -> Result<Self> {
        let name = describe(&self.config, &self.what);
        if !matches!(self.what, What::Table(_)) {
            return Err(Error::Unsupported {
                backend: "postgres",
                operation: format!("a partitioned read of a query ({name}); read a table"),
            });
        }
        let integer = self
            .decoded
            .field_with_name(key)
            .map(|f| f.data_type().is_integer())
            .unwrap_or(false);
        if !integer {
            return Err(Error::Schema {
                target: format!("postgres {name}"),
                reason: format!("partition key {key:?} is not an integer column"),
            });
        }
        self.partitions = Some((key.to_owned(), partitions.max(1)));
        Ok(self)
    }

    /// Reads the whole result into memory (for small tables and tests).
    pub async fn read_all(&self) -> Result<Vec<RecordBatch>> {
        let mut stream = self.read().await?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch?);
        }
        Ok(out)
    }

    fn reader(&self) -> Reader {
        Reader {
            name: describe(&self.config, &self.what),
            decoded: self.decoded.clone(),
            types: self.types.clone(),
            target: self.target.clone(),
            batch_size: self.batch_size,
            batch_bytes: self.batch_bytes,
        }
    }

    async fn read_partitioned(&self, key: &str, partitions: usize) -> Result<BatchStream> {
        let name = describe(&self.config, &self.what);
        let fail = |e: tokio_postgres::Error| pg_error(name.clone(), e);
        let select = select_sql(&self.config, &self.what)?;
        let key_sql = quote_ident(key)?;
        let coordinator = self.config.connect().await?;
        coordinator
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(fail)?;
        let snapshot: String = coordinator
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(fail)?
            .get(0);
        let bounds = coordinator
            .query_one(
                &format!("SELECT min({key_sql})::int8, max({key_sql})::int8 FROM ({select}) q"),
                &[],
            )
            .await
            .map_err(fail)?;
        let (min, max): (Option<i64>, Option<i64>) = (bounds.get(0), bounds.get(1));
        let ranges = split(min, max, partitions);
        let (tx, done, stream) = batch_channel(ranges.len().max(1), format!("postgres {name}"));
        let mut clients = Vec::new();
        for _ in &ranges {
            let client = self.config.connect().await?;
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                    quote_literal(&snapshot)
                ))
                .await
                .map_err(fail)?;
            clients.push(client);
        }
        // Every worker has imported the snapshot; the coordinator can go.
        drop(coordinator);
        for (client, (lo, hi, nulls)) in clients.into_iter().zip(ranges) {
            let mut cond = format!("{key_sql} >= {lo} AND {key_sql} <= {hi}");
            if nulls {
                cond = format!("({cond}) OR {key_sql} IS NULL");
            }
            let sql =
                format!("COPY (SELECT * FROM ({select}) q WHERE {cond}) TO STDOUT (FORMAT binary)");
            let reader = self.reader();
            let (tx, done) = (tx.clone(), done.clone());
            // Each range's reader says how it ended: the stream ends cleanly only when all did.
            tokio::spawn(async move {
                let mut stream = reader.stream(client, sql);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(batch) => {
                            if !tx.send(Ok(batch)).await {
                                return; // the consumer went away
                            }
                        }
                        Err(e) => return done.fail(e).await,
                    }
                }
                done.finish();
            });
        }
        done.finish();
        drop(tx);
        Ok(stream)
    }
}

#[async_trait]
impl Source for PostgresSource {
    fn schema(&self) -> SchemaRef {
        self.target.clone().unwrap_or_else(|| self.decoded.clone())
    }

    async fn read(&self) -> Result<BatchStream> {
        if let Some((key, n)) = &self.partitions {
            return self.read_partitioned(key, *n).await;
        }
        let client = self.config.connect().await?;
        let sql = format!(
            "COPY ({}) TO STDOUT (FORMAT binary)",
            select_sql(&self.config, &self.what)?
        );
        Ok(self.reader().stream(client, sql))
    }
}

/// Everything one COPY reader needs, detached from the source so it can move into a task.
struct Reader {
    name: String,
    decoded: SchemaRef,
    types: Vec<PgType>,
    target: Option<SchemaRef>,
    batch_size: usize,
    batch_bytes: usize,
}

impl Reader {
    fn stream(self, client: Client, sql: String) -> BatchStream {
        let decoder = Decoder::new(&self.name, self.decoded.clone(), &self.types);
        let state = (self, client, sql, None, decoder, false);
        batch_stream(futures::stream::try_unfold(
            state,
            |(reader, client, sql, copy, mut decoder, done)| async move {
                if done {
                    return Ok(None);
                }
                let mut copy = match copy {
                    Some(c) => c,
                    None => Box::pin(client.copy_out(&sql).await.map_err(|e| reader.fail(e))?),
                };
                loop {
                    if decoder.rows() >= reader.batch_size || decoder.bytes() >= reader.batch_bytes
                    {
                        let batch = reader.cast(decoder.flush()?)?;
                        return Ok(Some((
                            batch,
                            (reader, client, sql, Some(copy), decoder, false),
                        )));
                    }
                    match copy.next().await {
                        Some(chunk) => decoder.feed(&chunk.map_err(|e| reader.fail(e))?)?,
                        None => {
                            decoder.check_end()?;
                            let batch = reader.cast(decoder.flush()?)?;
                            if batch.num_rows() == 0 {
                                return Ok(None);
                            }
                            return Ok(Some((batch, (reader, client, sql, None, decoder, true))));
                        }
                    }
                }
            },
        ))
    }

    fn fail(&self, e: tokio_postgres::Error) -> Error {
        pg_error(self.name.clone(), e)
    }

    fn cast(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(target) = &self.target else {
            return Ok(batch);
        };
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| {
                cast_with_options(c, f.data_type(), &options).map_err(|e| {
                    Error::arrow(format!("postgres {}: column {:?}", self.name, f.name()), e)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(target.clone(), columns)
            .map_err(|e| Error::arrow(format!("postgres {}", self.name), e))
    }
}

fn describe(config: &PostgresConfig, what: &What) -> String {
    match what {
        What::Table(t) => format!("{}.{}", config.schema(), t),
        What::Query(q) => {
            let short: String = q.chars().take(60).collect();
            format!("query {short:?}")
        }
    }
}

fn select_sql(config: &PostgresConfig, what: &What) -> Result<String> {
    Ok(match what {
        What::Table(t) => format!(
            "SELECT * FROM {}.{}",
            quote_ident(config.schema())?,
            quote_ident(t)?
        ),
        What::Query(q) => format!("SELECT * FROM ({q}) AS steam_query"),
    })
}

/// The columns of a table declared `NOT NULL`.
async fn not_null_columns(
    client: &Client,
    config: &PostgresConfig,
    table: &str,
    name: &str,
) -> Result<Vec<String>> {
    let qualified = format!("{}.{}", quote_ident(config.schema())?, quote_ident(table)?);
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) \
             AND attnum > 0 AND NOT attisdropped AND attnotnull",
            &[&qualified],
        )
        .await
        .map_err(|e| pg_error(name.to_owned(), e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Splits `min..=max` into at most `n` contiguous ranges; the first also takes the nulls.
fn split(min: Option<i64>, max: Option<i64>, n: usize) -> Vec<(i64, i64, bool)> {
    let (Some(min), Some(max)) = (min, max) else {
        // Empty, or only nulls: one range that matches just the nulls.
        return vec![(1, 0, true)];
    };
    let span = (max as i128 - min as i128 + 1) as u128;
    let n = (n as u128).min(span).max(1);
    let step = span.div_ceil(n);
    let mut out = Vec::new();
    let mut lo = min as i128;
    while lo <= max as i128 {
        let hi = (lo + step as i128 - 1).min(max as i128);
        out.push((lo as i64, hi as i64, out.is_empty()));
        lo = hi + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn ranges_cover_the_span_once() {
        assert_eq!(
            split(Some(1), Some(10), 3),
            vec![(1, 4, true), (5, 8, false), (9, 10, false)]
        );
        assert_eq!(split(Some(5), Some(5), 4), vec![(5, 5, true)]);
        assert_eq!(split(None, None, 4), vec![(1, 0, true)]);
        let r = split(Some(i64::MIN), Some(i64::MAX), 4);
        assert_eq!(r.first().unwrap().0, i64::MIN);
        assert_eq!(r.last().unwrap().1, i64::MAX);
        assert_eq!(r.len(), 4);
    }
}
