//! Writing Arrow streams into PostgreSQL tables with binary COPY, atomically.

use std::str::FromStr;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{SinkExt, StreamExt};
use steam_core::catalog::Table;
use steam_core::{BatchStream, Error, Result, Sink, TableRef, WriteMode, WriteSummary};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::binary::{encode, HEADER, TRAILER};
use super::config::{pg_error, PostgresConfig};
use super::types::{normalize, quote_ident, PgType};

/// Bytes of encoded rows gathered before they are sent as one COPY message.
const CHUNK: usize = 1 << 20;
/// PostgreSQL's limit on the length of a name, in bytes.
const NAME_MAX: usize = 63;

/// Writes Arrow streams into tables of one PostgreSQL schema with `COPY … FROM STDIN (FORMAT
/// binary)`.
///
/// Each [`Sink::write`] is one transaction; [`PostgresSink::begin`] opens a [`PostgresLoad`] that
/// writes many tables in one transaction, so that they change together or not at all.
///
/// A table that does not exist is created from the Arrow schema: `Int8`/`Int16`/`UInt8` as
/// `smallint`, `Int32`/`UInt16` as `integer`, `Int64`/`UInt32` as `bigint`, `Float32` as `real`,
/// `Float64` as `double precision`, `Boolean`, strings (`Utf8`, `LargeUtf8`, `Utf8View`,
/// dictionaries of strings) as `text`, binaries as `bytea`, `Date32` as `date`, timestamps as
/// `timestamp` (or `timestamptz` with a time zone), and lists of these as arrays. Non-nullable
/// fields are `NOT NULL`. A table gets a primary key on its [`TableRef::keys`] (a catalog table's,
/// [`Table::primary_key`], when the [`TableRef`] comes from the [`Table`]) and catalog tables an
/// index on each foreign key ([`Table::foreign_keys`]).
///
/// Write modes:
/// - [`WriteMode::Replace`]: the rows go into a staging table, which gets its keys and indexes and
///   takes the table's place (drop, rename) at commit. Readers see the old table until then and
///   the new one after, never a missing or half-loaded one; a failure leaves the old one as it was.
///   A view or foreign key that depends on the old table stops the swap with an error rather than
///   being dropped with it.
/// - [`WriteMode::Append`]: the rows are copied into the table (created if missing); a column
///   whose type differs from the data's is an error before anything is copied.
/// - [`WriteMode::Upsert`]: the rows are copied into a temporary table, then
///   `INSERT … ON CONFLICT (keys) DO UPDATE` on the table's keys; the table needs a unique index
///   on them (a table created here gets it as primary key). A table without keys is an error.
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::postgres::{PostgresConfig, PostgresSink};
/// use steam_core::{Sink, Table, TableRef, WriteMode};
///
/// let config = PostgresConfig::from_url("postgresql://mage:secret@db:5432/steam")?;
/// let sink = PostgresSink::new(config);
/// let table = TableRef::from(Table::GamesReviews);
/// let written = sink.write(&table, WriteMode::Replace, batches).await?;
/// println!("{} rows into recsys.games_reviews", written.rows);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresSink {
    config: PostgresConfig,
    analyze: bool,
}

impl PostgresSink {
    /// A sink writing into `config`'s schema.
    pub fn new(config: PostgresConfig) -> Self {
        PostgresSink {
            config,
            analyze: true,
        }
    }

    /// Whether replaced tables are `ANALYZE`d before they take the old ones' place, so the planner
    /// has statistics from the first query (default: yes).
    pub fn with_analyze(mut self, analyze: bool) -> Self {
        self.analyze = analyze;
        self
    }

    /// Opens a connection and a transaction for writing several tables at once.
    pub async fn begin(&self) -> Result<PostgresLoad> {
        let client = self.config.connect().await?;
        let target = self.config.describe();
        let schema = self.config.schema().to_owned();
        let fail = |e: tokio_postgres::Error| pg_error(format!("schema {schema:?} at {target}"), e);
        client
            .batch_execute("BEGIN; SET LOCAL client_min_messages TO warning")
            .await
            .map_err(fail)?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await
            .map_err(fail)?;
        if exists.is_none() {
            let sql = format!("CREATE SCHEMA {}", quote_ident(&schema)?);
            client.batch_execute(&sql).await.map_err(fail)?;
        }
        Ok(PostgresLoad {
            client,
            schema,
            analyze: self.analyze,
            state: Mutex::new(State::default()),
        })
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        let load = self.begin().await?;
        let summary = load.write(table, mode, batches).await?;
        load.commit().await?;
        Ok(summary)
    }
}

/// Several tables written in one PostgreSQL transaction: nothing is visible to other sessions
/// until [`PostgresLoad::commit`], and nothing changes if it is never called (dropping the load
/// rolls back) or if any write fails.
pub struct PostgresLoad {
    client: Client,
    schema: String,
    analyze: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Replaced tables waiting for commit: the staging table takes the table's place.
    swaps: Vec<Swap>,
    /// Set when a write failed: the transaction is aborted and can only be rolled back.
    failed: bool,
    temp_tables: u32,
}

struct Swap {
    table: String,
    staging: String,
    /// Indexes of the staging table and the names they take.
    indexes: Vec<(String, String)>,
}

/// The keys and indexes a table is created with.
struct Layout {
    primary_key: Vec<String>,
    indexed: Vec<String>,
}

impl Layout {
    fn of(table: &TableRef) -> Layout {
        let catalog = Table::from_str(&table.name).ok();
        let primary_key = table.keys.clone();
        let indexed = catalog
            .map(|t| {
                t.foreign_keys()
                    .iter()
                    .map(|(c, _)| c.to_string())
                    // A primary key's first column is indexed already.
                    .filter(|c| primary_key.first() != Some(c))
                    .collect()
            })
            .unwrap_or_default();
        Layout {
            primary_key,
            indexed,
        }
    }
}

impl std::fmt::Debug for PostgresLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLoad")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresLoad {
    fn target(&self, table: &str) -> String {
        format!("{}.{}", self.schema, table)
    }

    fn qualified(&self, table: &str) -> Result<String> {
        Ok(format!(
            "{}.{}",
            quote_ident(&self.schema)?,
            quote_ident(table)?
        ))
    }

    fn db_error(&self, table: &str, e: tokio_postgres::Error) -> Error {
        pg_error(self.target(table), e)
    }

    /// Runs SQL statements, attributing failures to `table`.
    async fn exec(&self, table: &str, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.db_error(table, e))
    }

    /// Makes the writes visible: replaced tables take their places, then the transaction commits.
    pub async fn commit(mut self) -> Result<()> {
        let state = std::mem::take(self.state.get_mut());
        if state.failed {
            return Err(Error::backend_msg(
                "postgres",
                format!("schema {}", self.schema),
                "a write of this load failed; nothing was committed",
            ));
        }
        let mut sql = String::new();
        for swap in &state.swaps {
            let table = self.qualified(&swap.table)?;
            sql.push_str(&format!(
                "DROP TABLE IF EXISTS {table};\nALTER TABLE {} RENAME TO {};\n",
                self.qualified(&swap.staging)?,
                quote_ident(&swap.table)?
            ));
            for (from, to) in &swap.indexes {
                sql.push_str(&format!(
                    "ALTER INDEX {} RENAME TO {};\n",
                    self.qualified(from)?,
                    quote_ident(to)?
                ));
            }
        }
        sql.push_str("COMMIT");
        let tables: Vec<&str> = state.swaps.iter().map(|s| s.table.as_str()).collect();
        let what = if tables.is_empty() {
            "commit".to_owned()
        } else {
            tables.join(", ")
        };
        let result = self.client.batch_execute(&sql).await;
        if let Err(e) = result {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(pg_error(format!("{}.{{{what}}}", self.schema), e)
                .doing("swapping in the new tables failed"));
        }
        Ok(())
    }

    /// Abandons every write of this load.
    pub async fn rollback(self) -> Result<()> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| self.db_error("(rollback)", e))
    }

    /// The columns `table` has now: name, type OID and SQL type; empty when it does not exist.
    async fn existing_columns(&self, table: &str) -> Result<Vec<(String, u32, String)>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid::oid, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&self.qualified(table)?],
            )
            .await
            .map_err(|e| self.db_error(table, e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Checks the data's columns exist in the table with the same types.
    fn check_columns(
        &self,
        table: &TableRef,
        types: &[PgType],
        existing: &[(String, u32, String)],
    ) -> Result<()> {
        for (field, ty) in table.schema.fields().iter().zip(types) {
            match existing.iter().find(|(name, _, _)| name == field.name()) {
                None => {
                    return Err(Error::Schema {
                        target: format!("postgres {}", self.target(&table.name)),
                        reason: format!("the table has no column {:?}", field.name()),
                    })
                }
                Some((_, oid, sql)) if *oid != ty.pg().oid() => {
                    return Err(Error::Schema {
                        target: format!("postgres {}", self.target(&table.name)),
                        reason: format!(
                            "column {:?} is {sql} in the table; the data's type is {}",
                            field.name(),
                            ty.sql()
                        ),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn create_sql(&self, name: &str, table: &TableRef, types: &[PgType]) -> Result<String> {
        let mut columns = Vec::with_capacity(types.len());
        for (field, ty) in table.schema.fields().iter().zip(types) {
            let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
            columns.push(format!(
                "{} {}{not_null}",
                quote_ident(field.name())?,
                ty.sql()
            ));
        }
        Ok(format!(
            "CREATE TABLE {} ({})",
            self.qualified(name)?,
            columns.join(", ")
        ))
    }

    /// `ALTER TABLE … ADD PRIMARY KEY` and `CREATE INDEX` statements for `name`, with the index
    /// names they get; `final_name` is the table the indexes are named after.
    fn index_sql(
        &self,
        name: &str,
        final_name: &str,
        layout: &Layout,
    ) -> Result<(String, Vec<(String, String)>)> {
        let mut sql = String::new();
        let mut names = Vec::new();
        let table = self.qualified(name)?;
        if !layout.primary_key.is_empty() {
            let index = ident_name(name, "pkey");
            let cols = quote_list(&layout.primary_key)?;
            sql.push_str(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} PRIMARY KEY ({cols});\n",
                quote_ident(&index)?
            ));
            names.push((index, ident_name(final_name, "pkey")));
        }
        for column in &layout.indexed {
            let index = ident_name(name, &format!("{column}_idx"));
            sql.push_str(&format!(
                "CREATE INDEX {} ON {table} ({});\n",
                quote_ident(&index)?,
                quote_ident(column)?
            ));
            names.push((index, ident_name(final_name, &format!("{column}_idx"))));
        }
        Ok((sql, names))
    }

    /// Copies `batches` into `into` (an unquoted table name, qualified unless `temp`).
    async fn copy(
        &self,
        table: &TableRef,
        into: &str,
        temp: bool,
        types: &[PgType],
        mut batches: BatchStream,
    ) -> Result<(u64, u64)> {
        let target = self.target(&table.name);
        let columns = quote_list(table.schema.fields().iter().map(|f| f.name()))?;
        let into = if temp {
            quote_ident(into)?
        } else {
            self.qualified(into)?
        };
        let sql = format!("COPY {into} ({columns}) FROM STDIN (FORMAT binary)");
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&sql)
            .await
            .map_err(|e| self.db_error(&table.name, e))?;
        futures::pin_mut!(sink);
        let mut buf = BytesMut::with_capacity(2 * CHUNK);
        buf.put_slice(HEADER);
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let mut normalized = Vec::with_capacity(types.len());
            if batch.num_columns() != types.len() {
                return Err(Error::Schema {
                    target: format!("postgres {target}"),
                    reason: format!(
                        "a batch has {} columns; the table's schema has {}",
                        batch.num_columns(),
                        types.len()
                    ),
                });
            }
            for ((column, field), ty) in batch
                .columns()
                .iter()
                .zip(batch.schema().fields())
                .zip(types)
            {
                normalized.push(normalize(&target, field.name(), column, *ty)?);
            }
            let normalized =
                arrow::record_batch::RecordBatch::try_new(batch_schema(table, types), normalized)
                    .map_err(|e| Error::arrow(format!("postgres {target}"), e))?;
            encode(&target, &normalized, types, rows, &mut buf)?;
            rows += batch.num_rows() as u64;
            if buf.len() >= CHUNK {
                bytes += buf.len() as u64;
                let chunk = buf.split().freeze();
                if let Err(e) = sink.send(chunk).await {
                    return Err(self.db_error(&table.name, e));
                }
            }
        }
        buf.put_slice(&TRAILER);
        bytes += buf.len() as u64;
        sink.send(buf.split().freeze())
            .await
            .map_err(|e| self.db_error(&table.name, e))?;
        let copied = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| self.db_error(&table.name, e))?;
        if copied != rows {
            return Err(Error::backend_msg(
                "postgres",
                target,
                format!("sent {rows} rows, the server copied {copied}"),
            ));
        }
        Ok((rows, bytes))
    }

    async fn write_inner(
        &self,
        state: &mut State,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<(u64, u64)> {
        let target = self.target(&table.name);
        let types = table
            .schema
            .fields()
            .iter()
            .map(|f| PgType::for_field(&format!("postgres {target}"), f))
            .collect::<Result<Vec<_>>>()?;
        let layout = Layout::of(table);
        match mode {
            WriteMode::Replace => {
                let staging = ident_name(&format!("steam_stage_{:016x}", fnv(&table.name)), "");
                if let Some(i) = state.swaps.iter().position(|s| s.table == table.name) {
                    // Written twice in one load: the second write wins.
                    let old = state.swaps.remove(i);
                    self.exec(
                        &table.name,
                        &format!("DROP TABLE {}", self.qualified(&old.staging)?),
                    )
                    .await?;
                }
                self.exec(&table.name, &self.create_sql(&staging, table, &types)?)
                    .await?;
                let counts = self.copy(table, &staging, false, &types, batches).await?;
                let (mut sql, indexes) = self.index_sql(&staging, &table.name, &layout)?;
                if self.analyze {
                    sql.push_str(&format!("ANALYZE {};\n", self.qualified(&staging)?));
                }
                if !sql.is_empty() {
                    self.exec(&table.name, &sql).await?;
                }
                state.swaps.push(Swap {
                    table: table.name.clone(),
                    staging,
                    indexes,
                });
                Ok(counts)
            }
            WriteMode::Append => {
                self.ensure_table(table, &types, &layout).await?;
                self.copy(table, &table.name, false, &types, batches).await
            }
            WriteMode::Upsert => {
                let keys = table.checked_keys(&format!("postgres {target}"), "an upsert")?;
                self.ensure_table(table, &types, &layout).await?;
                state.temp_tables += 1;
                let temp = format!("steam_upsert_{}", state.temp_tables);
                let mut columns = Vec::new();
                for (field, ty) in table.schema.fields().iter().zip(&types) {
                    columns.push(format!("{} {}", quote_ident(field.name())?, ty.sql()));
                }
                let create = format!(
                    "CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP",
                    quote_ident(&temp)?,
                    columns.join(", ")
                );
                self.exec(&table.name, &create).await?;
                let (_, bytes) = self.copy(table, &temp, true, &types, batches).await?;
                let names: Vec<&String> = table.schema.fields().iter().map(|f| f.name()).collect();
                let cols = quote_list(names.iter().copied())?;
                let updates = names
                    .iter()
                    .filter(|n| !keys.contains(*n))
                    .map(|n| quote_ident(n).map(|q| format!("{q} = EXCLUDED.{q}")))
                    .collect::<Result<Vec<_>>>()?;
                let action = if updates.is_empty() {
                    "DO NOTHING".to_owned()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                let sql = format!(
                    "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON CONFLICT ({}) {action}",
                    self.qualified(&table.name)?,
                    quote_ident(&temp)?,
                    quote_list(keys)?
                );
                let rows = self
                    .client
                    .execute(&sql, &[])
                    .await
                    .map_err(|e| self.db_error(&table.name, e))?;
                self.exec(&table.name, &format!("DROP TABLE {}", quote_ident(&temp)?))
                    .await?;
                Ok((rows, bytes))
            }
        }
    }

    /// Creates the table with its keys and indexes when it does not exist; otherwise checks its
    /// columns against the data's.
    async fn ensure_table(
        &self,
        table: &TableRef,
        types: &[PgType],
        layout: &Layout,
    ) -> Result<()> {
        let existing = self.existing_columns(&table.name).await?;
        if existing.is_empty() {
            let (indexes, _) = self.index_sql(&table.name, &table.name, layout)?;
            let sql = format!(
                "{};\n{indexes}",
                self.create_sql(&table.name, table, types)?
            );
            self.exec(&table.name, &sql).await
        } else {
            self.check_columns(table, types, &existing)
        }
    }
}

#[async_trait]
impl Sink for PostgresLoad {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        let started = Instant::now();
        let mut state = self.state.lock().await;
        if state.failed {
            return Err(Error::backend_msg(
                "postgres",
                self.target(&table.name),
                "an earlier write of this load failed; roll it back",
            ));
        }
        match self.write_inner(&mut state, table, mode, batches).await {
            Ok((rows, bytes)) => Ok(WriteSummary::new(
                table.name.clone(),
                rows,
                bytes,
                started.elapsed(),
            )),
            Err(e) => {
                state.failed = true;
                Err(e)
            }
        }
    }
}

/// The schema of normalized batches: the table's field names with the encoded Arrow types.
fn batch_schema(table: &TableRef, types: &[PgType]) -> arrow::datatypes::SchemaRef {
    let fields: Vec<_> = table
        .schema
        .fields()
        .iter()
        .zip(types)
        .map(|(f, t)| t.field(f.name(), true))
        .collect();
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

fn quote_list<I, S>(names: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let quoted = names
        .into_iter()
        .map(|n| quote_ident(n.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    Ok(quoted.join(", "))
}

/// `base_suffix` cut to PostgreSQL's 63-byte limit on a character boundary (an empty suffix adds
/// nothing).
fn ident_name(base: &str, suffix: &str) -> String {
    let suffix = if suffix.is_empty() {
        String::new()
    } else {
        format!("_{suffix}")
    };
    let mut cut = NAME_MAX.saturating_sub(suffix.len()).min(base.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// FNV-1a: a stable name for a table's staging table.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_fit_postgres_limit() {
        let long = "é".repeat(40);
        let name = ident_name(&long, "pkey");
        assert!(name.len() <= NAME_MAX && name.ends_with("_pkey"), "{name}");
        assert_eq!(ident_name("games", "pkey"), "games_pkey");
    }
}
