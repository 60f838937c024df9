//! DataFusion's object store registry over lake URLs, for processes that run a lake's plans
//! without holding the [`Lake`] (a cluster's scheduler and executors).

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

use super::{Lake, LakeOptions};

/// An [`ObjectStoreRegistry`] that opens the store of an `s3://bucket`, `gs://bucket` or
/// `az://container` URL on first use the way [`Lake::from_url_with`] does (the credentials from
/// this process's environment, the same retries and timeouts) and keeps it for the next. Stores
/// registered explicitly come first, `file://` (the local filesystem) among them. A `memory://`
/// URL is refused: such a store lives in the process that made it.
///
/// ```
/// use datafusion::execution::object_store::ObjectStoreRegistry;
/// use steam_connectors::lake::LakeStores;
///
/// let stores = LakeStores::default();
/// let url = url::Url::parse("file:///tmp/conformed_games_data/games_reviews/").unwrap();
/// assert!(stores.get_store(&url).is_ok());
/// assert!(stores.get_store(&url::Url::parse("memory://lake/x").unwrap()).is_err());
/// ```
#[derive(Debug, Default)]
pub struct LakeStores {
    options: LakeOptions,
    stores: DefaultObjectStoreRegistry,
}

impl LakeStores {
    /// Stores opened with `options` (retries and timeouts).
    pub fn new(options: LakeOptions) -> Self {
        LakeStores {
            options,
            stores: DefaultObjectStoreRegistry::new(),
        }
    }
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.stores.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.stores.get_store(url) {
            return Ok(store);
        }
        if url.scheme() == "memory" {
            return Err(DataFusionError::Configuration(format!(
                "{}://{} is a store in the memory of another process; use s3://, gs://, az:// or \
                 a local path",
                url.scheme(),
                url.host_str().unwrap_or_default()
            )));
        }
        let options = LakeOptions {
            from_env: true,
            ..self.options.clone()
        };
        let lake = Lake::from_url_with(&super::store_key(url), &options)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = lake.store().clone();
        self.stores.register_store(url, store.clone());
        Ok(store)
    }
}
