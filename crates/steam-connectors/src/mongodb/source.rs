//! Reading a collection as Arrow batches.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document};
use steam_core::{batch_stream, BatchStream, Result, SchemaRef, Source};

use super::convert::to_batch;
use super::{MongoConfig, RUN_FIELD};

/// A collection read as Arrow batches of a schema you give: each field from the document field of
/// the same name (missing → null; a value of another type is an error naming the field).
#[derive(Debug, Clone)]
pub struct MongoSource {
    config: MongoConfig,
    collection: String,
    schema: SchemaRef,
    filter: Document,
    projection: Option<Document>,
    limit: Option<i64>,
    batch_size: usize,
    newest_per: Vec<String>,
}

impl MongoSource {
    /// All documents of `collection`, as `schema`.
    pub fn new(config: MongoConfig, collection: &str, schema: SchemaRef) -> Self {
        MongoSource {
            config,
            collection: collection.to_owned(),
            schema,
            filter: Document::new(),
            projection: None,
            limit: None,
            batch_size: 8192,
            newest_per: Vec::new(),
        }
    }

    /// Only documents matching `filter`.
    pub fn with_filter(mut self, filter: Document) -> Self {
        self.filter = filter;
        self
    }

    /// Only these fields from the server.
    pub fn with_projection(mut self, projection: Document) -> Self {
        self.projection = Some(projection);
        self
    }

    /// At most `n` documents.
    pub fn with_limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Only each key's newest document: of the documents with the same values of `keys`, the one
    /// with the greatest [`RUN_FIELD`] (the readers' contract of a refresh, see
    /// [`MongoSink`](super::MongoSink)). Documents come sorted by the keys; the server sorts them
    /// with the refresh's index, and the older duplicates are skipped as they stream by. A
    /// projection must keep the key fields; a limit counts documents before the skipping.
    pub fn newest_per_key(mut self, keys: &[&str]) -> Self {
        self.newest_per = keys.iter().map(|k| k.to_string()).collect();
        self
    }

    /// Reads everything into memory (for small collections and tests).
    pub async fn read_all(&self) -> Result<Vec<steam_core::RecordBatch>> {
        self.read().await?.try_collect().await
    }

    /// Documents per batch (default 8192).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
}

#[async_trait]
impl Source for MongoSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&self) -> Result<BatchStream> {
        let client = self.config.client().await?;
        let coll = client
            .database(self.config.database())
            .collection::<Document>(&self.collection);
        let mut find = coll.find(self.filter.clone());
        if let Some(p) = &self.projection {
            find = find.projection(p.clone());
        }
        if let Some(n) = self.limit {
            find = find.limit(n);
        }
        if !self.newest_per.is_empty() {
            let mut sort = Document::new();
            for k in &self.newest_per {
                sort.insert(k.clone(), 1);
            }
            sort.insert(RUN_FIELD, -1);
            find = find.sort(sort);
        }
        let cursor = find.await.map_err(|e| {
            self.config
                .error(&format!("find in {}", self.collection), e)
        })?;
        let config = self.config.clone();
        let schema = self.schema.clone();
        let target = format!("{}.{}", self.config.database(), self.collection);
        let keys = self.newest_per.clone();
        let mut previous: Option<Vec<Bson>> = None;
        let stream = cursor
            .map_err(move |e| config.error("reading", e))
            .try_filter(move |doc| {
                let mut keep = true;
                if !keys.is_empty() {
                    let key: Vec<Bson> = keys
                        .iter()
                        .map(|k| doc.get(k).cloned().unwrap_or(Bson::Null))
                        .collect();
                    keep = previous.as_ref() != Some(&key);
                    previous = Some(key);
                }
                futures::future::ready(keep)
            })
            .try_chunks(self.batch_size)
            .map(move |chunk| match chunk {
                Ok(docs) => to_batch(&target, &schema, &docs),
                Err(e) => Err(e.1),
            });
        Ok(batch_stream(stream))
    }
}
