//! A table's entries back as Arrow.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use steam_core::{spawn_stream, BatchStream, Error, Result, Source};

use super::{decode_ids, RedisConfig, RUN_FIELD};

/// Reads a table written by [`RedisSink`](super::RedisSink) as batches of `schema`: two columns,
/// the key (`Int32`, `Int64` or `Utf8`) and the value (the same, a `Binary` or a list of `Int32`), in the
/// hash's order (`HSCAN`), streamed. A table that was never loaded reads as no rows. If a load
/// swaps the table while it is read, the stream ends with an error rather than mix two sets.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use steam_connectors::redis::{RedisConfig, RedisSource};
/// use steam_core::{served_schema, Source};
///
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?;
/// let batches = RedisSource::new(config, "recsys", served_schema()).read().await?;
/// # let _ = batches;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisSource {
    config: RedisConfig,
    table: String,
    schema: SchemaRef,
    batch_rows: usize,
}

impl RedisSource {
    /// Table `table` as `schema` (key column, value column).
    pub fn new(config: RedisConfig, table: &str, schema: SchemaRef) -> Self {
        RedisSource {
            config,
            table: table.to_owned(),
            schema,
            batch_rows: 8192,
        }
    }

    /// Rows per batch, at most (default 8,192).
    pub fn with_batch_rows(mut self, n: usize) -> Self {
        self.batch_rows = n.max(1);
        self
    }

    /// The id of the load that wrote the table, `None` if it was never loaded.
    pub async fn run(&self) -> Result<Option<String>> {
        let mut conn = self.config.connect().await?;
        redis::cmd("HGET")
            .arg(self.config.table_key(&self.table))
            .arg(RUN_FIELD)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.config.error("reading the run", e))
    }

    fn check_schema(&self) -> Result<()> {
        let fields = self.schema.fields();
        let key_ok = |t: &DataType| matches!(t, DataType::Int32 | DataType::Int64 | DataType::Utf8);
        let ok = fields.len() == 2
            && key_ok(fields[0].data_type())
            && (key_ok(fields[1].data_type())
                || fields[1].data_type() == &DataType::Binary
                || matches!(fields[1].data_type(), DataType::List(i) if i.data_type() == &DataType::Int32));
        if ok {
            Ok(())
        } else {
            Err(Error::Schema {
                target: format!("redis {}", self.table),
                reason: format!(
                    "a table reads as two columns, a key (Int32, Int64 or Utf8) and a value (the \
                     same, a Binary or a list of Int32), not {:?}",
                    self.schema
                ),
            })
        }
    }
}

/// A column being built from entries.
enum Column {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Ids(ListBuilder<Int32Builder>),
}

impl Column {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Int32 => Column::Int32(Int32Builder::new()),
            DataType::Int64 => Column::Int64(Int64Builder::new()),
            DataType::Utf8 => Column::Utf8(StringBuilder::new()),
            DataType::Binary => Column::Binary(BinaryBuilder::new()),
            DataType::List(item) => {
                Column::Ids(ListBuilder::new(Int32Builder::new()).with_field(item.clone()))
            }
            _ => unreachable!("checked by check_schema"),
        }
    }

    /// Appends `bytes`, or says what is wrong with them.
    fn push(&mut self, bytes: &[u8]) -> std::result::Result<(), &'static str> {
        let text = || std::str::from_utf8(bytes).map_err(|_| "not UTF-8");
        match self {
            Column::Int32(b) => b.append_value(text()?.parse().map_err(|_| "not an Int32")?),
            Column::Int64(b) => b.append_value(text()?.parse().map_err(|_| "not an Int64")?),
            Column::Utf8(b) => b.append_value(text()?),
            Column::Binary(b) => b.append_value(bytes),
            Column::Ids(b) => {
                let ids = decode_ids(bytes).ok_or("not packed 32-bit game ids")?;
                b.values().append_slice(&ids);
                b.append(true);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Utf8(b) => Arc::new(b.finish()),
            Column::Binary(b) => Arc::new(b.finish()),
            Column::Ids(b) => Arc::new(b.finish()),
        }
    }
}

#[async_trait]
impl Source for RedisSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&self) -> Result<BatchStream> {
        self.check_schema()?;
        let mut conn = self.config.connect().await?;
        let this = self.clone();
        let hash = self.config.table_key(&self.table);
        let started_run = self.run().await?;
        Ok(spawn_stream(
            format!("redis {}", self.table),
            move |tx| async move {
                let target = format!("redis {} at {}", this.table, this.config.describe());
                let fields = this.schema.fields();
                let (mut keys, mut values) = (
                    Column::new(fields[0].data_type()),
                    Column::new(fields[1].data_type()),
                );
                let mut rows = 0usize;
                let mut cursor = 0u64;
                loop {
                    let (next, entries): (u64, Vec<(Vec<u8>, Vec<u8>)>) = redis::cmd("HSCAN")
                        .arg(&hash)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| this.config.error("HSCAN", e))?;
                    for (k, v) in entries {
                        if k.first() == Some(&0xff) {
                            continue; // RUN_FIELD and other fields that are not rows
                        }
                        let bad = |which: &str, why: &str| Error::Schema {
                            target: target.clone(),
                            reason: format!(
                                "the {which} of entry {:?} is {why}",
                                String::from_utf8_lossy(&k)
                            ),
                        };
                        keys.push(&k).map_err(|why| bad("key", why))?;
                        values.push(&v).map_err(|why| bad("value", why))?;
                        rows += 1;
                        if rows == this.batch_rows {
                            let batch = RecordBatch::try_new(
                                this.schema.clone(),
                                vec![keys.finish(), values.finish()],
                            )
                            .map_err(|e| Error::arrow(target.clone(), e))?;
                            rows = 0;
                            if !tx.send(Ok(batch)).await {
                                return Ok(());
                            }
                        }
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                let ended_run: Option<String> = redis::cmd("HGET")
                    .arg(&hash)
                    .arg(RUN_FIELD)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| this.config.error("reading the run", e))?;
                if ended_run != started_run {
                    return Err(Error::backend_msg(
                        "redis",
                        target,
                        format!(
                            "the table was replaced while it was read (run {started_run:?}, then \
                         {ended_run:?}); read it again"
                        ),
                    ));
                }
                if rows > 0 {
                    let batch = RecordBatch::try_new(
                        this.schema.clone(),
                        vec![keys.finish(), values.finish()],
                    )
                    .map_err(|e| Error::arrow(target.clone(), e))?;
                    tx.send(Ok(batch)).await;
                }
                Ok(())
            },
        ))
    }
}
