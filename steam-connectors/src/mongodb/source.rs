//! Reading a collection as Arrow batches.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document};
use steam_core::{batch_stream, BatchStream, Error, Result, SchemaRef, Source};

use super::convert::to_batch;
use super::{MongoConfig, RUN_FIELD};

/// A collection read as Arrow batches of a schema you give: each field from the document field of
/// the same name (missing → null; a value of another type is an error naming the field).
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use steam_connectors::mongodb::{MongoConfig, MongoSource};
/// use steam_core::served_schema;
///
/// let config = MongoConfig::from_url("mongodb://db:27017/steam_recsys")?;
/// let source = MongoSource::new(config, "recsys", served_schema()).newest_per_key(&["user_id"]);
/// let batches = source.read_all().await?;
/// # let _ = batches;
/// # Ok(())
/// # }
/// ```
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
    /// [`MongoSink::refresh`](super::MongoSink::refresh)). Documents come sorted by the keys; the server sorts them
    /// with the refresh's index, and the older duplicates are skipped as they stream by (numbers
    /// compared by value, as the server compares them). A filter may select on the key fields only
    /// (on another field, a key's newest document could fail it and an older one be read: that is
    /// refused); the key fields are added to an inclusion projection; a limit counts documents
    /// before the skipping.
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
        let mut projection = self.projection.clone();
        if !self.newest_per.is_empty() {
            if let Some(field) = self.filter.keys().find(|k| !self.newest_per.contains(k)) {
                return Err(Error::Unsupported {
                    backend: "mongodb",
                    operation: format!(
                        "a filter on {field:?} with newest_per_key (a key's newest document could \
                         fail it and an older one be read); filter on the key fields only"
                    ),
                });
            }
            if let Some(p) = &mut projection {
                keep_keys(p, &self.newest_per)?;
            }
        }
        let mut find = coll.find(self.filter.clone());
        if let Some(p) = projection {
            find = find.projection(p);
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
                    let key: Vec<Bson> = keys.iter().map(|k| key_value(doc.get(k))).collect();
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

/// A key's value for comparing keys as the server does: numbers by value, whatever their type.
fn key_value(value: Option<&Bson>) -> Bson {
    match value {
        None => Bson::Null,
        Some(Bson::Int32(v)) => Bson::Int64((*v).into()),
        Some(Bson::Double(d)) if d.fract() == 0.0 && d.abs() < 9.0e15 => Bson::Int64(*d as i64),
        Some(other) => other.clone(),
    }
}

/// Makes `projection` return the key fields: added to an inclusion projection; an error if it
/// excludes one.
fn keep_keys(projection: &mut Document, keys: &[String]) -> Result<()> {
    let truthy = |v: &Bson| {
        !matches!(v, Bson::Int32(0) | Bson::Int64(0) | Bson::Boolean(false))
            && !matches!(v, Bson::Double(d) if *d == 0.0)
    };
    let inclusion = projection.iter().any(|(k, v)| k != "_id" && truthy(v));
    for key in keys {
        match projection.get(key) {
            Some(v) if !truthy(v) => {
                return Err(Error::Config {
                    key: "mongodb projection".into(),
                    reason: format!("it leaves out {key:?}, a key of newest_per_key"),
                })
            }
            None if inclusion => {
                projection.insert(key.clone(), 1);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn keys_compare_by_value_and_projections_keep_them() {
        assert_eq!(
            key_value(Some(&Bson::Int32(5))),
            key_value(Some(&Bson::Int64(5)))
        );
        assert_eq!(
            key_value(Some(&Bson::Double(5.0))),
            key_value(Some(&Bson::Int64(5)))
        );
        assert_ne!(
            key_value(Some(&Bson::Double(5.5))),
            key_value(Some(&Bson::Int64(5)))
        );
        let keys = ["user_id".to_owned()];
        let mut p = doc! { "recommendations": 1, "_id": 0 };
        keep_keys(&mut p, &keys).unwrap();
        assert_eq!(p.get_i32("user_id"), Ok(1));
        let mut p = doc! { "review": 0 };
        keep_keys(&mut p, &keys).unwrap();
        assert!(!p.contains_key("user_id"));
        let err = keep_keys(&mut doc! { "user_id": 0 }, &keys).unwrap_err();
        assert!(err.to_string().contains("user_id"), "{err}");
    }
}
