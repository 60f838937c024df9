//! The `Source` and `Sink` contracts.

use std::pin::Pin;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::Stream;

use crate::{Result, Table, WriteSummary};

/// A stream of record batches, all of one schema.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// Wraps any stream of batches as a [`BatchStream`].
pub fn batch_stream<S>(stream: S) -> BatchStream
where
    S: Stream<Item = Result<RecordBatch>> + Send + 'static,
{
    Box::pin(stream)
}

/// Something that produces record batches: a file, a table, a query, a collection.
///
/// A source states its schema before it produces data; every batch of [`Source::read`] has that
/// schema. Reading is streamed: a source holds a bounded number of batches in memory, whatever the
/// size of what it reads.
#[async_trait]
pub trait Source: Send + Sync {
    /// The schema of every batch this source produces.
    fn schema(&self) -> SchemaRef;

    /// Starts reading. Each call starts a new, independent read from the beginning.
    async fn read(&self) -> Result<BatchStream>;
}

/// How a [`Sink`] treats what the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The target ends holding exactly the written rows. Readers see either the old content or the
    /// new, never a missing or half-written target, and a failed write leaves the old content intact.
    #[default]
    Replace,
    /// The rows are added to what the target holds.
    Append,
    /// Rows whose key columns (the table's [`TableRef::keys`]) match an existing row replace it;
    /// others are added. A table without keys is an error naming it ([`TableRef::checked_keys`]).
    Upsert,
}

impl WriteMode {
    /// A short name for messages: `replace`, `append` or `upsert`.
    pub fn name(&self) -> &'static str {
        match self {
            WriteMode::Replace => "replace",
            WriteMode::Append => "append",
            WriteMode::Upsert => "upsert",
        }
    }
}

/// Something that consumes record batches into a named table: a directory of Parquet files, a
/// PostgreSQL schema, a lake, a MongoDB database.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Writes `batches` into `table` with `mode`, and says how much was written.
    ///
    /// The stream's batches must match the table's schema ([`Table::schema`] for catalog tables).
    /// A sink that cannot honour `mode` returns [`crate::Error::Unsupported`] before writing, or,
    /// when it can only find out while writing (a server that cannot swap in what it staged),
    /// with the target as it was.
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        batches: BatchStream,
    ) -> Result<WriteSummary>;
}

/// The table a [`Sink`] writes: its name, the schema its batches have, and its key columns.
///
/// The keys are the one place a write's keys are given: [`WriteMode::Upsert`] matches rows on
/// them, and keyed stores use them (a Redis hash's entries, a MongoDB refresh, the primary key of a
/// PostgreSQL table created for it).
///
/// ```
/// use steam_core::{served_schema, Table, TableRef};
///
/// let served = TableRef::new("recsys", served_schema()).with_keys(["user_id"]);
/// assert_eq!(served.keys, ["user_id"]);
/// // A catalog table comes with its natural key, if it has one.
/// assert_eq!(TableRef::from(Table::GenreMapping).keys, ["game_id", "genre_id"]);
/// assert_eq!(TableRef::from(Table::GamesReviews).keys, ["review_id"]);
/// assert!(TableRef::from(Table::GamesRanking).keys.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct TableRef {
    /// The table's name, such as `games_reviews`.
    pub name: String,
    /// The schema of the batches.
    pub schema: SchemaRef,
    /// The columns that identify a row, in order; empty when rows have no key.
    pub keys: Vec<String>,
}

impl TableRef {
    /// A table of any name and schema, without keys.
    pub fn new(name: impl Into<String>, schema: SchemaRef) -> Self {
        TableRef {
            name: name.into(),
            schema,
            keys: Vec::new(),
        }
    }

    /// The same table with `keys` as its key columns (over any it had).
    pub fn with_keys<I>(mut self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The keys, for `operation` (such as `an upsert`) into `target` (such as `mongodb
    /// db.recsys`): a [`crate::Error::Config`] naming the table when it has none, a
    /// [`crate::Error::Schema`] when a key is not a column of its schema.
    pub fn checked_keys(&self, target: &str, operation: &str) -> Result<&[String]> {
        if self.keys.is_empty() {
            return Err(crate::Error::Config {
                key: format!("keys of table {:?}", self.name),
                reason: format!(
                    "{operation} into {target} needs key columns; give them with \
                     TableRef::with_keys"
                ),
            });
        }
        if let Some(k) = self.keys.iter().find(|k| self.schema.index_of(k).is_err()) {
            return Err(crate::Error::Schema {
                target: target.to_owned(),
                reason: format!("key column {k:?} is not a column of the data"),
            });
        }
        Ok(&self.keys)
    }
}

impl From<Table> for TableRef {
    /// The catalog table, keyed on its primary key ([`Table::primary_key`]; none for the fact
    /// tables).
    fn from(table: Table) -> Self {
        TableRef::new(table.name(), table.schema()).with_keys(table.primary_key().iter().copied())
    }
}

/// Checks that `got` has the columns of `expected`, by name and type, in order (nullability and
/// metadata aside): a [`crate::Error::Schema`] for `target` naming the first column that differs.
pub fn check_columns(
    target: &str,
    got: &arrow::datatypes::Schema,
    expected: &arrow::datatypes::Schema,
) -> Result<()> {
    let fail = |reason: String| {
        Err(crate::Error::Schema {
            target: target.to_owned(),
            reason,
        })
    };
    for (i, want) in expected.fields().iter().enumerate() {
        match got.fields().get(i) {
            None => return fail(format!("column {} ({}) is missing", want.name(), i + 1)),
            Some(f) if f.name() != want.name() || f.data_type() != want.data_type() => {
                return fail(format!(
                    "column {}: expected {} {}, got {} {}",
                    i + 1,
                    want.name(),
                    want.data_type(),
                    f.name(),
                    f.data_type()
                ))
            }
            Some(_) => {}
        }
    }
    if got.fields().len() > expected.fields().len() {
        let extra: Vec<&str> = got.fields()[expected.fields().len()..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        return fail(format!("unexpected columns {extra:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_columns, TableRef};
    use crate::{Error, Table};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn keys_are_the_tables_and_checked_where_a_write_needs_them() {
        for table in Table::ALL {
            let keyed = TableRef::from(table);
            let keys: Vec<&str> = keyed.keys.iter().map(String::as_str).collect();
            assert_eq!(keys, table.primary_key(), "{}", table.name());
        }
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let bare = TableRef::new("people", schema.clone());
        let err = bare.checked_keys("sink x", "an upsert").unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("\"people\"") && text.contains("an upsert into sink x"),
            "{text}"
        );
        let keyed = bare.clone().with_keys(["id"]);
        assert_eq!(keyed.checked_keys("sink x", "an upsert").unwrap(), ["id"]);
        let wrong = bare.with_keys(vec!["id".to_owned(), "nope".to_owned()]);
        let err = wrong.checked_keys("sink x", "an upsert").unwrap_err();
        assert!(matches!(err, Error::Schema { .. }), "{err}");
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    #[test]
    fn columns_are_compared_by_name_and_type_in_order() {
        let want = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let nullable = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        assert!(check_columns("t", &nullable, &want).is_ok());
        let retyped = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let e = check_columns("t", &retyped, &want).unwrap_err().to_string();
        assert!(
            e.contains("column 1: expected id Int32, got id Int64"),
            "{e}"
        );
        let short = Schema::new(vec![Field::new("id", DataType::Int32, false)]);
        let e = check_columns("t", &short, &want).unwrap_err().to_string();
        assert!(e.contains("name (2) is missing"), "{e}");
        let e = check_columns("t", &want, &short).unwrap_err().to_string();
        assert!(e.contains("unexpected columns [\"name\"]"), "{e}");
    }
}
