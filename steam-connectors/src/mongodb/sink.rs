//! Writing Arrow streams into a collection: insert, upsert, replace (a collection swap), refresh.

use std::time::Instant;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use steam_core::{BatchStream, Error, ErrorKind, Result, Sink, TableRef, WriteMode, WriteSummary};

use super::convert::to_documents;
use super::MongoConfig;

/// The field replace and refresh mark documents with: the id of the run that last wrote them.
pub const RUN_FIELD: &str = "_steam_run";

/// The start of a staging collection's name: `steam_stage_<collection>_<id>` (see
/// [`stage_id`]).
const STAGE_PREFIX: &str = "steam_stage_";

/// Writes Arrow streams into collections of one database, one document per row; the
/// [`TableRef`]'s name is the collection's and its [`keys`](TableRef::keys) are what upserts and
/// refreshes match documents on.
///
/// - [`WriteMode::Append`]: insert (unordered bulk inserts of up to
///   [`MongoSink::with_batch_documents`] documents).
/// - [`WriteMode::Upsert`]: one document per key, replaced in place or added, with a unique index
///   on the table's keys created if missing (a rerun never duplicates). A table without keys is an
///   error naming it.
/// - [`WriteMode::Replace`]: a swap. The rows go into a staging collection beside the target,
///   `steam_stage_<collection>_<id>`, which gets the target's indexes and a unique index on the
///   table's keys (if it has keys; a key twice is then an error) before its first document; once
///   every row is written, one `renameCollection` with `dropTarget: true` (an admin command)
///   puts it in the target's place. Readers see the old collection until then and the new one
///   after, never both, a missing or a half-written one. A write that fails drops the staging
///   collection and leaves the old one as it was; a killed one leaves it, and the next replace of
///   the collection drops it before it starts (so two replaces of one collection must not run at
///   once: the second drops the first's staging collection). The swap needs a server that renames
///   within a database (a sharded collection cannot be renamed before MongoDB 5.0); one that
///   acknowledges the rename without doing it is caught, not trusted (the staging collection is
///   still there): it is dropped and the write fails with [`Error::Unsupported`], the old
///   collection intact. Documents are marked with the run's id in [`RUN_FIELD`].
/// - [`MongoSink::refresh`] (not a [`WriteMode`]): the keyed refresh, for readers that take a
///   key's newest document, on any server: see there.
///
/// Only driver commands every MongoDB server has are used (`insert`, `delete`, `update`,
/// `createIndexes`, `listIndexes`, `dropIndexes`, `create`, `drop`, `listCollections`,
/// `renameCollection`), nothing specific to any server.
///
/// ```no_run
/// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
/// use steam_connectors::mongodb::{MongoConfig, MongoSink};
/// use steam_core::{served_schema, Sink, TableRef, WriteMode};
///
/// let config = MongoConfig::from_url("mongodb://db:27017/steam_recsys")?;
/// let table = TableRef::new("recsys", served_schema()).with_keys(["user_id"]);
/// // The collection swapped for one of exactly these rows, one document per user.
/// MongoSink::new(config).write(&table, WriteMode::Replace, batches).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MongoSink {
    config: MongoConfig,
    batch_documents: usize,
    run: Option<String>,
}

/// How documents go into a collection.
#[derive(Clone, Copy)]
enum Put<'a> {
    /// Inserted, marked with the run's id when there is one.
    Insert(Option<&'a str>),
    /// Upserted on the keys.
    Upsert,
}

impl MongoSink {
    /// A sink into `config`'s database.
    pub fn new(config: MongoConfig) -> Self {
        MongoSink {
            config,
            batch_documents: 10_000,
            run: None,
        }
    }

    /// Documents per bulk request, at most (default 10,000).
    pub fn with_batch_documents(mut self, n: usize) -> Self {
        self.batch_documents = n.max(1);
        self
    }

    /// The id replace and refresh mark this run's documents with (default: a new one), such as
    /// one shared with another store written from the same rows. For a refresh it must sort after
    /// every earlier run's id in the collection ([`steam_core::run_id`]'s do); if it does not, a
    /// new id is used and a warning logged.
    pub fn with_run_id(mut self, run: impl Into<String>) -> Self {
        self.run = Some(run.into());
        self
    }

    /// Refreshes `table`'s collection key by key, on the table's keys (a table without keys is an
    /// error naming it), where a [`WriteMode::Replace`] swap cannot be had or readers follow keys:
    /// a key keeps a document throughout; readers take the newest.
    ///
    /// Every row is bulk-inserted as a new document marked with this run's id in [`RUN_FIELD`],
    /// then the documents of earlier runs are deleted in one sweep. Run ids grow with time, so
    /// "newest" is "greatest". A key present before and after the run has a document at every
    /// moment (the new one is added before the old one goes), a key missing from the new rows is
    /// gone after it, and a failed run deletes nothing, so a rerun completes the refresh. A unique
    /// index on the keys and [`RUN_FIELD`] (descending) (over the documents that have one) refuses
    /// a key twice in one run and serves lookups of a key's newest document; an index on
    /// [`RUN_FIELD`] serves the sweep. A new run's id is greater than every id in the collection,
    /// even with a clock set back. A unique index on the keys alone, as upsert and replace create,
    /// would refuse the new documents and is dropped.
    ///
    /// **Readers' contract**: while a refresh runs (or after one failed), a key can have two
    /// documents, the newest run's and an older one; readers take the one with the greatest
    /// [`RUN_FIELD`], as [`MongoSource::newest_per_key`](super::MongoSource::newest_per_key)
    /// does, or, for one key, `find({key}).sort({_steam_run: -1}).limit(1)`.
    ///
    /// ```no_run
    /// # async fn example(batches: steam_core::BatchStream) -> steam_core::Result<()> {
    /// use steam_connectors::mongodb::{MongoConfig, MongoSink};
    /// use steam_core::{served_schema, TableRef};
    ///
    /// let config = MongoConfig::from_url("mongodb://db:27017/steam_recsys")?;
    /// let table = TableRef::new("recsys", served_schema()).with_keys(["user_id"]);
    /// // One document per user, users gone removed, none missing at any moment.
    /// MongoSink::new(config).refresh(&table, batches).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh(&self, table: &TableRef, batches: BatchStream) -> Result<WriteSummary> {
        let started = Instant::now();
        let keys = table.checked_keys(&self.target(&table.name), "a refresh")?;
        let coll = self.database().await?.collection(&table.name);
        let run = self.prepare_refresh(&coll, keys).await?;
        let (rows, bytes) = self
            .fill(&coll, table, keys, Put::Insert(Some(&run)), batches, None)
            .await?;
        // One sweep: every document of an earlier run, or of no run (inserted).
        coll.delete_many(doc! { "$or": [
            { RUN_FIELD: { "$lt": run.as_str() } },
            { RUN_FIELD: { "$exists": false } },
        ] })
        .await
        .map_err(|e| self.error(&table.name, "removing documents of earlier runs", e))?;
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }

    /// [`MongoSink::refresh`] of the keys written only: the rows' documents are added under this
    /// load's run, then the earlier documents of those keys are removed; documents of other keys
    /// stay as they are. For loads of what changed: a reader of a key written finds its old
    /// document until the new one is there (readers take the newest), never none; a load that
    /// dies midway leaves some keys new and the others old, each whole.
    pub async fn refresh_keys(
        &self,
        table: &TableRef,
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        let started = Instant::now();
        let keys = table.checked_keys(&self.target(&table.name), "a refresh")?;
        let coll = self.database().await?.collection(&table.name);
        let run = self.prepare_refresh(&coll, keys).await?;
        let mut written = Vec::new();
        let (rows, bytes) = self
            .fill(
                &coll,
                table,
                keys,
                Put::Insert(Some(&run)),
                batches,
                Some(&mut written),
            )
            .await?;
        // Each key's other documents: of an earlier run, or of none (inserted). `$ne` also
        // matches a document without the field; the keys' `$in` is matched by index.
        for chunk in written.chunks(1_000) {
            let mut filter = match keys {
                [key] => {
                    let values: Vec<Bson> =
                        chunk.iter().filter_map(|d| d.get(key).cloned()).collect();
                    doc! { key.as_str(): { "$in": values } }
                }
                _ => doc! { "$or": chunk.to_vec() },
            };
            filter.insert(RUN_FIELD, doc! { "$ne": run.as_str() });
            coll.delete_many(filter)
                .await
                .map_err(|e| self.error(&table.name, "removing the keys' earlier documents", e))?;
        }
        Ok(WriteSummary::new(
            &table.name,
            rows,
            bytes,
            started.elapsed(),
        ))
    }

    /// The database, through a new client.
    async fn database(&self) -> Result<Database> {
        let client = self.config.client().await?;
        Ok(client.database(self.config.database()))
    }

    /// A collection as messages name it: `mongodb <database>.<collection>`.
    fn target(&self, collection: &str) -> String {
        format!("mongodb {}.{collection}", self.config.database())
    }

    fn error(&self, collection: &str, what: &str, e: mongodb::error::Error) -> Error {
        let target = format!(
            "{}.{collection} at {}",
            self.config.database(),
            self.config.describe()
        );
        super::driver_error(target, what, e, self.config.password.as_ref())
    }

    /// Writes `batches` into `coll` as `put` says, refusing a document whose key is null (when
    /// marking a run); returns the rows and bytes written.
    async fn fill(
        &self,
        coll: &Collection<Document>,
        table: &TableRef,
        keys: &[String],
        put: Put<'_>,
        mut batches: BatchStream,
        mut written: Option<&mut Vec<Document>>,
    ) -> Result<(u64, u64)> {
        let target = self.target(&table.name);
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size() as u64;
            let mut docs = to_documents(&target, &batch)?;
            while !docs.is_empty() {
                let rest = docs.split_off(docs.len().min(self.batch_documents));
                let mut chunk = std::mem::replace(&mut docs, rest);
                rows += chunk.len() as u64;
                let run = match put {
                    Put::Upsert => {
                        self.upsert(coll, keys, chunk).await?;
                        continue;
                    }
                    Put::Insert(run) => run,
                };
                if let Some(run) = run {
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
                        d.insert(RUN_FIELD, run);
                    }
                }
                if let Some(written) = written.as_deref_mut() {
                    written.extend(chunk.iter().map(|d| {
                        keys.iter()
                            .map(|k| (k.clone(), d.get(k).cloned().unwrap_or(Bson::Null)))
                            .collect::<Document>()
                    }));
                }
                coll.insert_many(chunk).ordered(false).await.map_err(|e| {
                    let what = if !keys.is_empty() && super::kind(&e) == ErrorKind::AlreadyExists {
                        format!("a key ({}) repeats in the new rows", keys.join(", "))
                    } else {
                        "insert".to_owned()
                    };
                    self.error(&table.name, &what, e)
                })?;
            }
        }
        Ok((rows, bytes))
    }

    /// [`WriteMode::Replace`]: fills a staging collection and swaps it in (see [`MongoSink`]).
    async fn replace(
        &self,
        db: &Database,
        table: &TableRef,
        batches: BatchStream,
    ) -> Result<(u64, u64)> {
        let keys = if table.keys.is_empty() {
            &[][..]
        } else {
            table.checked_keys(&self.target(&table.name), "a replace")?
        };
        self.drop_leftovers(db, &table.name).await?;
        let staging = format!("{STAGE_PREFIX}{}_{}", table.name, stage_id());
        let coll = db.collection::<Document>(&staging);
        let run = self.run.clone().unwrap_or_else(steam_core::run_id);
        let written = async {
            db.create_collection(&staging)
                .await
                .map_err(|e| self.error(&table.name, "creating the staging collection", e))?;
            self.copy_indexes(db, &table.name, &coll, keys).await?;
            if !keys.is_empty() {
                self.unique_index(&coll, keys, None).await?;
            }
            let counts = self
                .fill(&coll, table, keys, Put::Insert(Some(&run)), batches, None)
                .await?;
            // A concurrent replace of the same collection drops unfinished staging collections;
            // an insert after that would have made a partial one: never swapped in.
            let staged = coll
                .count_documents(doc! {})
                .await
                .map_err(|e| self.error(&table.name, "counting the staging collection", e))?;
            if staged != counts.0 {
                return Err(Error::backend_msg(
                    "mongodb",
                    self.target(&table.name),
                    format!(
                        "the staging collection {staging} holds {staged} documents, not the {}                          written (another replace of the collection dropped it: replaces of one                          collection must not run at once); the old collection is kept",
                        counts.0
                    ),
                ));
            }
            self.swap(db, &staging, &table.name).await?;
            Ok(counts)
        }
        .await;
        if written.is_err() {
            // The old collection is untouched; the staging one goes now if it can (else the next
            // replace drops it).
            if let Err(e) = coll.drop().await {
                tracing::warn!(
                    "could not drop the staging collection {staging} of a failed replace: {}",
                    super::redacted(&e, self.config.password.as_ref())
                );
            }
        }
        written
    }

    /// Drops the staging collections of replaces of `collection` that did not finish.
    async fn drop_leftovers(&self, db: &Database, collection: &str) -> Result<()> {
        let prefix = format!("{STAGE_PREFIX}{collection}_");
        let names = self.collection_names(db, collection).await?;
        for name in names
            .iter()
            .filter(|n| n.strip_prefix(&prefix).is_some_and(is_stage_id))
        {
            tracing::info!(
                "dropping {name}, the staging collection of a replace of {collection} that did \
                 not finish"
            );
            db.collection::<Document>(name)
                .drop()
                .await
                .map_err(|e| self.error(collection, "dropping an unfinished replace", e))?;
        }
        Ok(())
    }

    async fn collection_names(&self, db: &Database, collection: &str) -> Result<Vec<String>> {
        db.list_collection_names()
            .await
            .map_err(|e| self.error(collection, "listing collections", e))
    }

    /// Creates on `staging` the indexes of `collection` (if it exists), but for `_id`'s and one on
    /// exactly `keys` (the replace creates its own).
    async fn copy_indexes(
        &self,
        db: &Database,
        collection: &str,
        staging: &Collection<Document>,
        keys: &[String],
    ) -> Result<()> {
        let listing = |e| self.error(collection, "listing indexes", e);
        let mut indexes = match db.collection::<Document>(collection).list_indexes().await {
            Ok(cursor) => cursor,
            Err(e) if super::kind(&e) == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(listing(e)),
        };
        let mut copies = Vec::new();
        while let Some(index) = indexes.try_next().await.map_err(listing)? {
            let name = index.options.as_ref().and_then(|o| o.name.as_deref());
            let on_keys =
                index.keys.len() == keys.len() && index.keys.keys().zip(keys).all(|(a, b)| a == b);
            if name != Some("_id_") && !on_keys {
                copies.push(index);
            }
        }
        if !copies.is_empty() {
            staging.create_indexes(copies).await.map_err(|e| {
                self.error(
                    collection,
                    "creating its indexes on the staging collection",
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Puts `staging` in `collection`'s place with one `renameCollection` (`dropTarget`), and
    /// checks it happened.
    async fn swap(&self, db: &Database, staging: &str, collection: &str) -> Result<()> {
        let namespace = |c: &str| format!("{}.{c}", db.name());
        db.client()
            .database("admin")
            .run_command(doc! {
                "renameCollection": namespace(staging),
                "to": namespace(collection),
                "dropTarget": true,
            })
            .await
            .map_err(|e| {
                self.error(
                    collection,
                    "swapping in the new collection (renameCollection)",
                    e,
                )
            })?;
        // A server that answers the command without renaming would leave the staging collection
        // beside the old one: caught here rather than trusted.
        let names = match self.collection_names(db, collection).await {
            Ok(names) => names,
            // The rename was acknowledged: the swap happened, only its check could not be made.
            Err(e) => {
                tracing::warn!(
                    "{}: could not check the swap after renameCollection: {}",
                    self.target(collection),
                    steam_core::error_chain(&e)
                );
                return Ok(());
            }
        };
        if names.iter().any(|n| n == staging) {
            return Err(Error::Unsupported {
                backend: "mongodb",
                operation: format!(
                    "replace of {}.{collection} (the server answered renameCollection without \
                     renaming {staging}, so it cannot swap collections; MongoSink::refresh \
                     refreshes key by key instead)",
                    db.name()
                ),
            });
        }
        Ok(())
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
        batches: BatchStream,
    ) -> Result<WriteSummary> {
        let started = Instant::now();
        let (rows, bytes) = match mode {
            WriteMode::Append => {
                let coll = self.database().await?.collection(&table.name);
                self.fill(&coll, table, &[], Put::Insert(None), batches, None)
                    .await?
            }
            WriteMode::Upsert => {
                let keys = table.checked_keys(&self.target(&table.name), "an upsert")?;
                let coll = self.database().await?.collection(&table.name);
                self.unique_index(&coll, keys, None).await?;
                self.fill(&coll, table, keys, Put::Upsert, batches, None)
                    .await?
            }
            WriteMode::Replace => {
                let db = self.database().await?;
                self.replace(&db, table, batches).await?
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

/// A staging collection's id: a new run id's digits, `\d{20}_\d{10}` (no `-`, which some
/// servers refuse in a name).
fn stage_id() -> String {
    steam_core::run_id().replace('-', "_")
}

/// Whether `s` has the form of a [`stage_id`].
fn is_stage_id(s: &str) -> bool {
    s.len() == 31
        && s.bytes().enumerate().all(|(i, b)| match i {
            20 => b == b'_',
            _ => b.is_ascii_digit(),
        })
}

/// A new run's id ([`steam_core::run_id_after`] the latest run's): ids sort as the runs
/// started, and a new run's sorts after every earlier one even with a clock set back.
fn next_run_id(latest: Option<&str>) -> String {
    steam_core::run_id_after(latest)
}

#[cfg(test)]
mod tests {
    use super::{is_stage_id, next_run_id, stage_id};

    #[test]
    fn staging_collections_are_told_apart_from_other_tables() {
        let id = stage_id();
        assert!(is_stage_id(&id), "{id}");
        // `steam_stage_recsys_` + id is recsys's; recsys_users' and recsys_2024's are not.
        for other in [
            format!("users_{id}"),
            format!("2024_{id}"),
            id.replace('_', "-"),
            id[1..].to_owned(),
        ] {
            assert!(!is_stage_id(&other), "{other}");
        }
    }

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
