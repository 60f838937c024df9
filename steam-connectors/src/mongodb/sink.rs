//! Writing Arrow streams into a collection: insert, upsert, refresh.

use std::time::Instant;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use steam_core::{BatchStream, Error, Result, Sink, TableRef, WriteMode, WriteSummary};

use super::convert::to_documents;
use super::MongoConfig;

/// The field refresh marks documents with: the id of the run that last wrote them.
pub const RUN_FIELD: &str = "_steam_run";

/// Writes Arrow streams into collections of one database, one document per row; the
/// [`TableRef`]'s name is the collection's.
///
/// - [`WriteMode::Append`]: insert (unordered bulk inserts of up to
///   [`MongoSink::with_batch_documents`] documents).
/// - [`WriteMode::Upsert`]: one document per key, replaced in place or added, with a unique index
///   on the keys created if missing (a rerun never duplicates).
/// - [`WriteMode::Replace`] (refresh, keyed on [`MongoSink::with_key`]): bulk-insert every row as
///   a new document marked with this run's id in [`RUN_FIELD`], then delete, in one sweep, the
///   documents of earlier runs. Run ids grow with time, so "newest" is "greatest". A key present
///   before and after the run has a document at every moment (the new one is added before the old
///   one goes), a key missing from the new rows is gone after it, and a failed run deletes nothing,
///   so a rerun completes the refresh. A unique index on the keys and [`RUN_FIELD`] (descending)
///   (over the documents that have one) refuses a key twice in one run and serves lookups of a
///   key's newest document; an index on [`RUN_FIELD`] serves the sweep. A new run's id is greater
///   than every id in the collection, even with a clock set back. A unique index on the keys
///   alone, as upsert mode and earlier versions of refresh create, would refuse the new documents
///   and is dropped.
///
/// **Readers' contract**: while a refresh runs (or after one failed), a key can have two documents,
/// the newest run's and an older one; readers take the one with the greatest [`RUN_FIELD`], as
/// [`MongoSource::newest_per_key`](super::MongoSource::newest_per_key) does, or, for one key,
/// `find({key}).sort({_steam_run: -1}).limit(1)`.
///
/// Only driver commands every MongoDB server has are used (`insert`, `delete`, `update`,
/// `createIndexes`, `listIndexes`, `dropIndexes`), nothing specific to any server.
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::mongodb::{MongoConfig, MongoSink};
/// use steam_core::{served_schema, Sink, TableRef, WriteMode};
///
/// let config = MongoConfig::from_uri("mongodb://db:27017/steam_recsys")?;
/// let sink = MongoSink::new(config).with_key(&["user_id"]);
/// // Refresh: one document per user, users gone removed, none missing at any moment.
/// sink.write(&TableRef::new("recsys", served_schema()), WriteMode::Replace, batches)
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MongoSink {
    config: MongoConfig,
    key: Vec<String>,
    batch_documents: usize,
    run: Option<String>,
}

impl MongoSink {
    /// A sink into `config`'s database.
    pub fn new(config: MongoConfig) -> Self {
        MongoSink {
            config,
            key: Vec::new(),
            batch_documents: 10_000,
            run: None,
        }
    }

    /// The key columns refresh ([`WriteMode::Replace`]) matches documents on.
    pub fn with_key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Documents per bulk request, at most (default 10,000).
    pub fn with_batch_documents(mut self, n: usize) -> Self {
        self.batch_documents = n.max(1);
        self
    }

    /// The id refresh marks this run's documents with (default: a new one), such as one shared
    /// with another store written from the same rows. It must sort after every earlier run's id
    /// in the collection ([`steam_core::run_id`]'s do); if it does not, a new id is used and a
    /// warning logged.
    pub fn with_run_id(mut self, run: impl Into<String>) -> Self {
        self.run = Some(run.into());
        self
    }

    fn error(&self, collection: &str, what: &str, e: mongodb::error::Error) -> Error {
        let target = format!(
            "{}.{collection} at {}",
            self.config.database(),
            self.config.describe()
        );
        super::driver_error(target, what, e, self.config.password.as_ref())
    }

    /// Creates (if missing) a unique index on `keys`, then `last` descending when given.
    async fn unique_index(
        &self,
        coll: &Collection<Document>,
        keys: &[String],
        last: Option<&str>,
    ) -> Result<()> {
        let mut spec = Document::new();
        for k in keys {
            spec.insert(k.clone(), 1);
        }
        let mut options = IndexOptions::builder().unique(true).build();
        if let Some(last) = last {
            spec.insert(last, -1);
            // Only documents of refresh runs: inserted documents (no run) may repeat a key.
            options.partial_filter_expression = Some(doc! { last: { "$exists": true } });
        }
        let index = IndexModel::builder().keys(spec).options(options).build();
        coll.create_index(index)
            .await
            .map_err(|e| self.error(coll.name(), "creating the unique index", e))?;
        Ok(())
    }

    /// Readies `coll` for a refresh on `keys` and returns the run's id: creates the refresh's
    /// indexes (and with them the collection), drops a unique index on exactly the keys (it would
    /// refuse the run's documents), and picks an id greater than every run's in the collection.
    async fn prepare_refresh(
        &self,
        coll: &Collection<Document>,
        keys: &[String],
    ) -> Result<String> {
        self.unique_index(coll, keys, Some(RUN_FIELD)).await?;
        coll.create_index(IndexModel::builder().keys(doc! { RUN_FIELD: 1 }).build())
            .await
            .map_err(|e| self.error(coll.name(), "creating the run index", e))?;
        let listing = |e| self.error(coll.name(), "listing indexes", e);
        let mut indexes = coll.list_indexes().await.map_err(listing)?;
        let mut drop = Vec::new();
        while let Some(index) = indexes.try_next().await.map_err(listing)? {
            let unique = index
                .options
                .as_ref()
                .and_then(|o| o.unique)
                .unwrap_or(false);
            let on_keys =
                index.keys.len() == keys.len() && keys.iter().all(|k| index.keys.contains_key(k));
            if let (true, true, Some(name)) = (unique, on_keys, index.options.and_then(|o| o.name))
            {
                drop.push(name);
            }
        }
        for name in drop {
            tracing::info!(
                "dropping the unique index {name:?} on {keys:?} of {}: a refresh keeps a key's old \
                 document until its new one is written",
                coll.name()
            );
            coll.drop_index(name)
                .await
                .map_err(|e| self.error(coll.name(), "dropping the unique index on the keys", e))?;
        }
        let latest = coll
            .find_one(doc! { RUN_FIELD: { "$exists": true } })
            .sort(doc! { RUN_FIELD: -1 })
            .projection(doc! { RUN_FIELD: 1 })
            .await
            .map_err(|e| self.error(coll.name(), "finding the latest run", e))?;
        let latest = latest.as_ref().and_then(|d| d.get_str(RUN_FIELD).ok());
        match &self.run {
            Some(run) if latest.is_none_or(|l| run.as_str() > l) => Ok(run.clone()),
            Some(run) => {
                let id = next_run_id(latest);
                tracing::warn!(
                    "run id {run:?} does not sort after the latest run of {} ({latest:?}): \
                     refreshing as run {id:?}",
                    coll.name()
                );
                Ok(id)
            }
            None => Ok(next_run_id(latest)),
        }
    }

    /// Upserts `docs` on `keys` with the `update` command; returns the documents matched or added.
    async fn upsert(
        &self,
        coll: &Collection<Document>,
        keys: &[String],
        docs: Vec<Document>,
    ) -> Result<u64> {
        let mut updates = Vec::with_capacity(docs.len());
        for d in docs {
            let mut filter = Document::new();
            for k in keys {
                let v = d.get(k).cloned().unwrap_or(Bson::Null);
                if v == Bson::Null {
                    return Err(Error::Schema {
                        target: format!("mongodb {}.{}", self.config.database(), coll.name()),
                        reason: format!("key column {k:?} is null"),
                    });
                }
                filter.insert(k.clone(), v);
            }
            updates.push(doc! { "q": filter, "u": d, "upsert": true });
        }
        let reply = coll
            .client()
            .database(self.config.database())
            .run_command(doc! { "update": coll.name(), "updates": updates, "ordered": false })
            .await
            .map_err(|e| self.error(coll.name(), "upsert", e))?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            if let Some(Bson::Document(first)) = errors.first() {
                return Err(Error::backend_msg(
                    "mongodb",
                    format!("{}.{}", self.config.database(), coll.name()),
                    format!(
                        "{} write errors in an upsert, the first: {}",
                        errors.len(),
                        first.get_str("errmsg").unwrap_or("(no message)")
                    ),
                ));
            }
        }
        let n = reply
            .get_i32("n")
            .map(i64::from)
            .or_else(|_| reply.get_i64("n"))
            .unwrap_or(0);
        Ok(n.max(0) as u64)
    }
}

#[async_trait]
impl Sink for MongoSink {
    async fn write(
        &self,
        table: &TableRef,
        mode: WriteMode,
        mut batches: BatchStream,
    ) -> Result<WriteSummary> {
        let started = Instant::now();
        let client = self.config.client().await?;
        let coll: Collection<Document> = client
            .database(self.config.database())
            .collection(&table.name);
        let target = format!("mongodb {}.{}", self.config.database(), table.name);
        let keys = match &mode {
            WriteMode::Append => Vec::new(),
            WriteMode::Upsert { keys } => keys.clone(),
            WriteMode::Replace => {
                if self.key.is_empty() {
                    return Err(Error::Unsupported {
                        backend: "mongodb",
                        operation: "refresh (replace) without key columns; set MongoSink::with_key"
                            .into(),
                    });
                }
                self.key.clone()
            }
        };
        if let Some(k) = keys.iter().find(|k| table.schema.index_of(k).is_err()) {
            return Err(Error::Schema {
                target,
                reason: format!("key column {k:?} is not a column of the data"),
            });
        }
        let run = match &mode {
            WriteMode::Replace => Some(self.prepare_refresh(&coll, &keys).await?),
            WriteMode::Upsert { .. } => {
                self.unique_index(&coll, &keys, None).await?;
                None
            }
            WriteMode::Append => None,
        };
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size() as u64;
            let mut docs = to_documents(&target, &batch)?;
            while !docs.is_empty() {
                let rest = docs.split_off(docs.len().min(self.batch_documents));
                let mut chunk = std::mem::replace(&mut docs, rest);
                rows += chunk.len() as u64;
                if let WriteMode::Upsert { .. } = mode {
                    self.upsert(&coll, &keys, chunk).await?;
                    continue;
                }
                if let Some(run) = &run {
                    for d in &mut chunk {
                        if let Some(k) = keys
                            .iter()
                            .find(|k| matches!(d.get(*k), None | Some(Bson::Null)))
                        {
                            return Err(Error::Schema {
                                target,
                                reason: format!("key column {k:?} is null"),
                            });
                        }
                        d.insert(RUN_FIELD, run.as_str());
                    }
                }
                coll.insert_many(chunk).ordered(false).await.map_err(|e| {
                    let what = if run.is_some()
                        && super::kind(&e) == steam_core::ErrorKind::AlreadyExists
                    {
                        format!(
                            "refresh: a key ({}) repeats in the new rows",
                            keys.join(", ")
                        )
                    } else {
                        "insert".to_owned()
                    };
                    self.error(&table.name, &what, e)
                })?;
            }
        }
        if let Some(run) = run {
            // One sweep: every document of an earlier run, or of no run (inserted).
            coll.delete_many(doc! { "$or": [
                { RUN_FIELD: { "$lt": run.as_str() } },
                { RUN_FIELD: { "$exists": false } },
            ] })
            .await
            .map_err(|e| self.error(&table.name, "removing documents of earlier runs", e))?;
        }
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }
}

/// A new run's id ([`steam_core::run_id_after`] the latest run's): ids sort as the runs
/// started, and a new run's sorts after every earlier one even with a clock set back.
fn next_run_id(latest: Option<&str>) -> String {
    steam_core::run_id_after(latest)
}

#[cfg(test)]
mod tests {
    use super::next_run_id;

    #[test]
    fn run_ids_sort_after_the_latest_even_when_the_clock_is_behind() {
        let a = next_run_id(None);
        let b = next_run_id(Some(&a));
        assert!(b > a, "{a} {b}");
        let future = format!("{:020}-{:010}", 9_000_000_000_000_000_000u128, 1);
        let c = next_run_id(Some(&future));
        assert!(c > future, "{future} {c}");
        assert!(c.starts_with("09000000000000000001-"), "{c}");
        // An id of another form does not stop a run.
        assert!(next_run_id(Some("legacy")) > a);
    }
}
