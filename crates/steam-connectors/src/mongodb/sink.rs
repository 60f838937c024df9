//! Writing Arrow streams into a collection: insert, upsert, refresh.

use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
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
/// - [`WriteMode::Replace`] (refresh, keyed on [`MongoSink::with_key`]): upsert every row, marking
///   it with this run's id in [`RUN_FIELD`], then delete the documents this run did not write. A
///   key present before and after the run always has a document (it is replaced in place, never
///   deleted and re-added), a key missing from the new rows is gone after it, and a failed run
///   deletes nothing, so a rerun completes the refresh.
///
/// The bulk `update` command is used rather than `bulkWrite`, which servers before MongoDB 8 lack.
#[derive(Debug, Clone)]
pub struct MongoSink {
    config: MongoConfig,
    key: Vec<String>,
    batch_documents: usize,
}

impl MongoSink {
    /// A sink into `config`'s database.
    pub fn new(config: MongoConfig) -> Self {
        MongoSink {
            config,
            key: Vec::new(),
            batch_documents: 10_000,
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

    fn error(&self, collection: &str, what: &str, e: mongodb::error::Error) -> Error {
        Error::Backend {
            backend: "mongodb",
            target: format!(
                "{}.{collection} at {}",
                self.config.database(),
                self.config.describe()
            ),
            message: format!(
                "{what}: {}",
                super::redacted(&e, self.config.password.as_ref())
            ),
            source: None,
        }
    }

    async fn unique_index(&self, coll: &Collection<Document>, keys: &[String]) -> Result<()> {
        let mut spec = Document::new();
        for k in keys {
            spec.insert(k.clone(), 1);
        }
        let index = IndexModel::builder()
            .keys(spec)
            .options(IndexOptions::builder().unique(true).build())
            .build();
        coll.create_index(index)
            .await
            .map_err(|e| self.error(coll.name(), "creating the unique index", e))?;
        Ok(())
    }

    /// Upserts `docs` on `keys` with the `update` command; returns the documents matched or added.
    async fn upsert(
        &self,
        coll: &Collection<Document>,
        keys: &[String],
        docs: Vec<Document>,
        run: Option<&str>,
    ) -> Result<u64> {
        let mut updates = Vec::with_capacity(docs.len());
        for mut d in docs {
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
            if let Some(run) = run {
                d.insert(RUN_FIELD, run);
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
        if !keys.is_empty() {
            self.unique_index(&coll, &keys).await?;
        }
        let run = (mode == WriteMode::Replace).then(|| {
            format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            )
        });
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size() as u64;
            let mut docs = to_documents(&target, &batch)?;
            while !docs.is_empty() {
                let rest = docs.split_off(docs.len().min(self.batch_documents));
                let chunk = std::mem::replace(&mut docs, rest);
                rows += chunk.len() as u64;
                if keys.is_empty() {
                    coll.insert_many(chunk)
                        .ordered(false)
                        .await
                        .map_err(|e| self.error(&table.name, "insert", e))?;
                } else {
                    self.upsert(&coll, &keys, chunk, run.as_deref()).await?;
                }
            }
        }
        if let Some(run) = run {
            coll.delete_many(doc! { RUN_FIELD: { "$ne": run } })
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
