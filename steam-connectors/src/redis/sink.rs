//! Writing Arrow streams into a table's hash: entries added in place, or a whole new set swapped in.

use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use steam_core::{BatchStream, Error, Result, Sink, TableRef, WriteMode, WriteSummary};

use super::{encode_ids, RedisConfig, RUN_FIELD};

/// Checks the loaded set is whole, then makes it the live one: the old set is unlinked (freed by
/// the server's background thread) and the new one renamed in its place, in one atomic step.
const SWAP: &str = r"
local loaded = redis.call('HLEN', KEYS[2])
if loaded ~= tonumber(ARGV[1]) then
  return redis.error_reply('STEAMLOAD the new set has ' .. loaded .. ' entries, not ' .. ARGV[1])
end
redis.call('UNLINK', KEYS[1])
redis.call('RENAME', KEYS[2], KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
return loaded
";

/// Writes Arrow streams into Redis, one hash per table (see [the module](super) for the layout):
/// each row an entry from its key column to its value column (other columns are not stored), sent
/// as `HSET`s of up to
/// [`RedisSink::with_batch_entries`] entries, pipelined [`RedisSink::with_in_flight`] at a time
/// and at the end of every input batch, so memory does not grow with the table.
///
/// The key column is the table's key ([`TableRef::keys`]; entries are keyed on one column, so a
/// table of several keys is refused; a table without keys is keyed on its first column). The value
/// column is [`RedisSink::with_value`]'s, else the first column that is not the key.
///
/// - [`WriteMode::Replace`]: the rows go to a new hash beside the live one; once every row is
///   written, one script checks the new hash holds exactly the rows written (a key that repeats
///   is an error) and renames it over the live one, unlinking the old set, so that readers see the
///   whole old set or the whole new set, never a mix, and never miss a key present in both. The
///   old set's memory is freed by the server's background thread (`UNLINK`), without blocking it.
///   A load that fails deletes what it wrote; one that is killed leaves its partial hash, listed
///   in the table's set of loads, and the next load deletes it before it starts. Two loads of
///   one table must not run at once: the second deletes the first's partial hash (the first then
///   fails its check; the live set is untouched).
/// - [`WriteMode::Append`] and [`WriteMode::Upsert`] (which needs the table's key): entries are set
///   in the live hash, replacing a key's earlier value.
///
/// Either way the hash's [`RUN_FIELD`] is set to the id of the load ([`RedisSink::with_run_id`],
/// else a new one).
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::redis::{RedisConfig, RedisSink};
/// use steam_core::{served_schema, Sink, TableRef, WriteMode};
///
/// let sink = RedisSink::new(RedisConfig::from_url("redis://127.0.0.1:6379")?)
///     .with_value("recommendations");
/// let table = TableRef::new("recsys", served_schema()).with_keys(["user_id"]);
/// sink.write(&table, WriteMode::Replace, batches).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisSink {
    config: RedisConfig,
    value: Option<String>,
    batch_entries: usize,
    in_flight: usize,
    run: Option<String>,
}

impl RedisSink {
    /// A sink into the server of `config`.
    pub fn new(config: RedisConfig) -> Self {
        RedisSink {
            config,
            value: None,
            batch_entries: 1000,
            in_flight: 16,
            run: None,
        }
    }

    /// The value column (default: the first column that is not the key).
    pub fn with_value(mut self, column: &str) -> Self {
        self.value = Some(column.to_owned());
        self
    }

    /// Entries per `HSET` (default 1,000).
    pub fn with_batch_entries(mut self, n: usize) -> Self {
        self.batch_entries = n.max(1);
        self
    }

    /// `HSET`s sent before waiting for their replies (default 16).
    pub fn with_in_flight(mut self, n: usize) -> Self {
        self.in_flight = n.max(1);
        self
    }

    /// The id the load is marked with (default: a new [`steam_core::run_id`]), such as one
    /// shared with another store written from the same rows.
    pub fn with_run_id(mut self, run: impl Into<String>) -> Self {
        self.run = Some(run.into());
        self
    }

    /// The key and the value column of `table`'s rows (see [`RedisSink`]); `mode` needs the key
    /// given when it is an upsert.
    fn columns(&self, table: &TableRef, mode: WriteMode) -> Result<(usize, usize)> {
        let target = format!("redis {}", table.name);
        let schema = &table.schema;
        let index = |n: &str| {
            schema.index_of(n).map_err(|_| Error::Schema {
                target: target.clone(),
                reason: format!("{n:?} is not a column of the data"),
            })
        };
        if mode == WriteMode::Upsert {
            table.checked_keys(&target, "an upsert")?;
        }
        let key = match table.keys.as_slice() {
            [] => 0,
            [key] => index(key)?,
            keys => {
                return Err(Error::Unsupported {
                    backend: "redis",
                    operation: format!(
                        "{target} keyed on {keys:?} (entries are keyed on one column)"
                    ),
                })
            }
        };
        let value = match &self.value {
            Some(n) => index(n)?,
            None => (0..schema.fields().len())
                .find(|&i| i != key)
                .ok_or_else(|| Error::Schema {
                    target: target.clone(),
                    reason: format!(
                        "a key and a value column are needed, the data has {}",
                        schema.fields().len()
                    ),
                })?,
        };
        Ok((key, value))
    }

    /// Deletes the partial hashes of loads that did not finish (killed ones).
    async fn remove_leftovers(&self, conn: &mut MultiplexedConnection, live: &str) -> Result<()> {
        let loads_key = format!("{live}:loads");
        let loads: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&loads_key)
            .query_async(conn)
            .await
            .map_err(|e| self.config.error("listing unfinished loads", e))?;
        if loads.is_empty() {
            return Ok(());
        }
        tracing::info!(
            "removing {} unfinished load(s) of {live} at {}",
            loads.len(),
            self.config.describe()
        );
        let mut pipe = redis::pipe();
        for run in &loads {
            pipe.cmd("UNLINK")
                .arg(format!("{live}:load:{run}"))
                .ignore();
            pipe.cmd("SREM").arg(&loads_key).arg(run).ignore();
        }
        pipe.query_async::<()>(conn)
            .await
            .map_err(|e| self.config.error("removing unfinished loads", e))
    }

    async fn load(
        &self,
        conn: &mut MultiplexedConnection,
        table: &TableRef,
        (key, value): (usize, usize),
        target: &str,
        run: &str,
        mut batches: BatchStream,
    ) -> Result<(u64, u64)> {
        let what = format!("redis {}", table.name);
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut pipe = redis::pipe();
        let (mut commands, mut entries) = (0usize, 0usize);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(target);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size() as u64;
            let keys = encode(&what, batch.schema().field(key).name(), batch.column(key))?;
            let values = encode(
                &what,
                batch.schema().field(value).name(),
                batch.column(value),
            )?;
            for (row, (k, v)) in keys.into_iter().zip(values).enumerate() {
                let Some(k) = k else {
                    return Err(Error::Schema {
                        target: what,
                        reason: format!(
                            "key column {:?} is null (row {} of the stream)",
                            batch.schema().field(key).name(),
                            rows + row as u64 + 1
                        ),
                    });
                };
                cmd.arg(k).arg(v.unwrap_or_default());
                entries += 1;
                if entries == self.batch_entries {
                    queue(&mut pipe, &mut cmd, target);
                    entries = 0;
                    commands += 1;
                    if commands == self.in_flight {
                        self.send(conn, &mut pipe).await?;
                        commands = 0;
                    }
                }
            }
            rows += batch.num_rows() as u64;
            // What the batch left is sent too, so that a slow producer's rows do not wait.
            if entries > 0 {
                queue(&mut pipe, &mut cmd, target);
                entries = 0;
                commands += 1;
            }
            if commands > 0 {
                self.send(conn, &mut pipe).await?;
                commands = 0;
            }
        }
        cmd.arg(RUN_FIELD).arg(run);
        pipe.add_command(cmd).ignore();
        self.send(conn, &mut pipe).await?;
        Ok((rows, bytes))
    }

    async fn send(
        &self,
        conn: &mut MultiplexedConnection,
        pipe: &mut redis::Pipeline,
    ) -> Result<()> {
        let sent = std::mem::take(pipe);
        sent.query_async::<()>(conn)
            .await
            .map_err(|e| self.config.error("HSET", e))
    }
}

/// Moves the `HSET` being built into the pipeline and starts the next one on `target`.
fn queue(pipe: &mut redis::Pipeline, cmd: &mut redis::Cmd, target: &str) {
    let mut next = redis::cmd("HSET");
    next.arg(target);
    pipe.add_command(std::mem::replace(cmd, next)).ignore();
}

/// Each row's bytes: integers as decimal digits, strings and binaries as their bytes, lists of
/// 32-bit integers packed ([`encode_ids`]); `None` for a null.
fn encode(what: &str, column: &str, array: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>> {
    let each = |f: &dyn Fn(usize) -> Vec<u8>| -> Vec<Option<Vec<u8>>> {
        (0..array.len())
            .map(|i| array.is_valid(i).then(|| f(i)))
            .collect()
    };
    Ok(match array.data_type() {
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            each(&|i| a.value(i).to_string().into_bytes())
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            each(&|i| a.value(i).to_string().into_bytes())
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each(&|i| a.value(i).as_bytes().to_vec())
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each(&|i| a.value(i).as_bytes().to_vec())
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            each(&|i| a.value(i).to_vec())
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            each(&|i| a.value(i).to_vec())
        }
        DataType::List(item) if item.data_type() == &DataType::Int32 => {
            let a = array.as_list::<i32>();
            each(&|i| {
                let ids = a.value(i);
                encode_ids(ids.as_primitive::<Int32Type>().iter().flatten())
            })
        }
        other => {
            return Err(Error::Unsupported {
                backend: "redis",
                operation: format!(
                    "{what}: column {column:?} of type {other} (keys and values are integers, \
                     strings, binaries or lists of 32-bit integers)"
                ),
            })
        }
    })
}

#[async_trait]
impl Sink for RedisSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        let started = Instant::now();
        let columns = self.columns(table, mode)?;
        let mut conn = self.config.connect().await?;
        let live = self.config.table_key(&table.name);
        let run = self.run.clone().unwrap_or_else(steam_core::run_id);
        let (rows, bytes) = match mode {
            WriteMode::Append | WriteMode::Upsert => {
                self.load(&mut conn, table, columns, &live, &run, batches)
                    .await?
            }
            WriteMode::Replace => {
                self.remove_leftovers(&mut conn, &live).await?;
                let loads_key = format!("{live}:loads");
                let load = format!("{live}:load:{run}");
                redis::cmd("SADD")
                    .arg(&loads_key)
                    .arg(&run)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.config.error("registering the load", e))?;
                let loaded = match self
                    .load(&mut conn, table, columns, &load, &run, batches)
                    .await
                {
                    Ok((rows, bytes)) => redis::Script::new(SWAP)
                        .key(&live)
                        .key(&load)
                        .key(&loads_key)
                        .arg(rows + 1)
                        .arg(&run)
                        .invoke_async::<u64>(&mut conn)
                        .await
                        .map(|_| (rows, bytes))
                        .map_err(|e| {
                            let what = if e.code() == Some("STEAMLOAD") {
                                "swapping in the new set (a key repeats in the rows, or another \
                                 load of the table removed this one's)"
                            } else {
                                "swapping in the new set"
                            };
                            self.config.error(what, e)
                        }),
                    Err(e) => Err(e),
                };
                if loaded.is_err() {
                    // The live set is untouched; what this load wrote goes now if it can (else
                    // the next load removes it).
                    let mut pipe = redis::pipe();
                    pipe.cmd("UNLINK").arg(&load).ignore();
                    pipe.cmd("SREM").arg(&loads_key).arg(&run).ignore();
                    let _ = pipe.query_async::<()>(&mut conn).await;
                }
                loaded?
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};

    #[test]
    fn entries_are_keyed_on_the_tables_one_key() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("username", DataType::Utf8, false),
            Field::new("user_id", DataType::Int32, false),
            Field::new("extra", DataType::Int32, false),
        ]));
        let sink = RedisSink::new(RedisConfig::from_url("redis://127.0.0.1:1").unwrap());
        let table =
            |keys: &[&str]| TableRef::new("t", schema.clone()).with_keys(keys.iter().copied());
        let columns = |t: &TableRef, mode| sink.columns(t, mode);
        assert_eq!(
            columns(&table(&["username"]), WriteMode::Replace).unwrap(),
            (0, 1)
        );
        // The value is the first column that is not the key, or the one given.
        assert_eq!(
            columns(&table(&["user_id"]), WriteMode::Upsert).unwrap(),
            (1, 0)
        );
        let valued = sink.clone().with_value("extra");
        assert_eq!(
            valued
                .columns(&table(&["user_id"]), WriteMode::Append)
                .unwrap(),
            (1, 2)
        );
        // Without keys the first column is the key, but an upsert needs them.
        assert_eq!(columns(&table(&[]), WriteMode::Append).unwrap(), (0, 1));
        let err = columns(&table(&[]), WriteMode::Upsert).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(err.to_string().contains("\"t\""), "{err}");
        let err = columns(&table(&["username", "user_id"]), WriteMode::Replace).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = columns(&table(&["nope"]), WriteMode::Replace).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
}
