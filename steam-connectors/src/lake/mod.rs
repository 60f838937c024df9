//! Data lakes addressed by URL through object_store: a raw layer of CSV objects, a conformed layer
//! of Hive-partitioned Parquet objects, and reads and SQL through DataFusion.
//!
//! | URL | store | credentials and endpoint |
//! |---|---|---|
//! | `s3://bucket/prefix` | Amazon S3 and S3-compatible stores | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, … |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_SERVICE_ACC_KEY_FILEPATH` (the reference's variable: a service-account key file), `GOOGLE_SERVICE_ACCOUNT`, or application default credentials |
//! | `az://container/prefix` | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, … |
//! | `file:///path` or a plain path | a local directory (created when written to) or file | — |
//! | `memory://name/prefix` | memory of this process, for tests | — |
//!
//! Credentials come only from the environment variables object_store's builders read (or their
//! configuration files), never from the URL or from code, and never appear in messages.
//!
//! - [`Lake`], [`LakeBuilder`]: a lake by URL, its retries and timeouts, credentials from the
//!   environment or given.
//! - [`LakeCsvSink`]: the raw layer, `<prefix>/<table>.csv` with a header.
//! - [`LakeParquetSink`]: the conformed layer,
//!   `<prefix>/<table>/record_created_dt=YYYY-MM-DD/part-00000.parquet`.
//! - [`ParquetObjectSink`]: one Parquet object at the URL's own path (training results).
//! - [`LakeSource`]: a conformed table (all partitions or one date) as an Arrow stream.
//! - [`sql`]: DataFusion SQL over the conformed tables of a lake.
//!
//! Every object is written as one multipart upload fed while the data streams, so memory stays
//! bounded and the object appears whole or not at all: a failed write never leaves a partial object
//! and never touches the object it would have replaced. On a local directory the upload is staged
//! in a hidden, locked staging area beside its target (`.staging-ID/`, the files connector's one
//! scheme: see [`crate::files::DirTransaction`]) and renamed into place, so a killed writer leaves
//! nothing that table readers (which skip names starting with `.` or `_`) trip on; the next write
//! into the same directory removes what it left, judging by the area's lock, not by process ids.

mod object;
mod read;
mod stores;
mod upload;
mod write;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use steam_core::{Error, ErrorKind, Result};
use url::Url;

pub use object::ParquetObjectSink;
#[cfg(feature = "cluster")]
pub(crate) use read::{env_config, num_cpus, session_config};
pub use read::{sql, sql_stream, LakeSource, LakeTables};
pub use stores::LakeStores;
pub use write::{LakeCsvSink, LakeParquetSink};

/// The name of the Hive partition column of the conformed layer.
pub const PARTITION_COLUMN: &str = "record_created_dt";

/// How hard a lake tries before giving up on a request.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// Retries of a failed request (default 3).
    pub max_retries: usize,
    /// Give up retrying a request after this long (default 30 s).
    pub retry_timeout: Duration,
    /// Time limit of one request (default 60 s).
    pub request_timeout: Duration,
    /// For `gs://` lakes: the service-account key file [default: the
    /// `GOOGLE_SERVICE_ACC_KEY_FILEPATH` variable, the reference's, else object_store's own
    /// variables and application default credentials].
    pub google_service_account_path: Option<std::path::PathBuf>,
    /// Whether the store's settings and credentials are read from the environment first
    /// (object_store's `from_env`: `AWS_*`, `GOOGLE_*`, `AZURE_*`, and
    /// `GOOGLE_SERVICE_ACC_KEY_FILEPATH`), as [`Lake::from_env`] does; `false` (the default, as
    /// [`Lake::from_url`]) takes nothing from it.
    pub from_env: bool,
}

impl Default for LakeOptions {
    fn default() -> Self {
        LakeOptions {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            google_service_account_path: None,
            from_env: false,
        }
    }
}

/// A lake: an object store and a prefix inside it, from a URL.
///
/// ```
/// use steam_connectors::lake::{Lake, LakeOptions};
///
/// let lake = Lake::from_url("memory://lake/conformed_games_data")?;
/// assert_eq!(lake.prefix().as_ref(), "conformed_games_data");
/// let options = LakeOptions {
///     max_retries: 5,
///     google_service_account_path: Some("key.json".into()),
///     ..LakeOptions::default()
/// };
/// let s3 = Lake::from_url_with("s3://bucket/raw_games_data", &options);
/// # let _ = s3;
/// # Ok::<(), steam_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Lake {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// A local directory: parts of an upload are written one after the other into one file, and
    /// uploads are staged under hidden names (see [`Lake::staging`]).
    local: Option<Arc<object_store::local::LocalFileSystem>>,
    /// The store's own URL (scheme and bucket), by which another process opens it.
    store_url: Option<Url>,
}

impl fmt::Debug for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lake").field("url", &self.url).finish()
    }
}

impl fmt::Display for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Configures a [`Lake`] in object_store's manner: the URL ([`LakeBuilder::new`]) or the URL
/// over the environment's settings and credentials ([`LakeBuilder::from_env`], read by
/// object_store's own builders), then `with_*` settings over them.
///
/// ```
/// use std::time::Duration;
/// use steam_connectors::lake::LakeBuilder;
///
/// let lake = LakeBuilder::from_env("memory://lake/raw_games_data")
///     .with_max_retries(5)
///     .with_request_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(lake.url(), "memory://lake/raw_games_data");
/// # Ok::<(), steam_core::Error>(())
/// ```
#[derive(Clone)]
pub struct LakeBuilder {
    url: String,
    options: LakeOptions,
}

impl fmt::Debug for LakeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeBuilder")
            .field("url", &redact(&self.url))
            .field("options", &self.options)
            .finish()
    }
}

impl LakeBuilder {
    /// A lake at `url`, nothing read from the environment.
    pub fn new(url: impl Into<String>) -> Self {
        LakeBuilder {
            url: url.into(),
            options: LakeOptions::default(),
        }
    }

    /// A lake at `url` with the environment's settings and credentials under the `with_*` ones.
    pub fn from_env(url: impl Into<String>) -> Self {
        let mut builder = Self::new(url);
        builder.options.from_env = true;
        builder
    }

    /// Retries of a failed request (default 3).
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.options.max_retries = retries;
        self
    }

    /// Gives up retrying a request after this long (default 30 s).
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.options.retry_timeout = timeout;
        self
    }

    /// Time limit of one request (default 60 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_timeout = timeout;
        self
    }

    /// For `gs://` lakes: the service-account key file, over the environment's.
    pub fn with_google_service_account_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.options.google_service_account_path = Some(path.into());
        self
    }

    /// All the options at once.
    pub fn with_options(mut self, options: LakeOptions) -> Self {
        self.options = options;
        self
    }

    /// The lake (see [`Lake::from_url_with`]).
    pub fn build(&self) -> Result<Lake> {
        Lake::from_url_with(&self.url, &self.options)
    }
}

impl Lake {
    /// A lake from a URL, with default retries; nothing is read from the environment (a store that
    /// needs credentials gets them from [`Lake::from_env`] or [`LakeBuilder`]).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with(url, &LakeOptions::default())
    }

    /// A lake from a URL over the environment's settings and credentials (object_store's
    /// `from_env` builders: `AWS_*`, `GOOGLE_*`, `AZURE_*`, and the reference's
    /// `GOOGLE_SERVICE_ACC_KEY_FILEPATH`), with default retries.
    pub fn from_env(url: &str) -> Result<Self> {
        LakeBuilder::from_env(url).build()
    }

    /// A lake from a URL (see the [module documentation](self) for the schemes and credentials).
    pub fn from_url_with(url: &str, options: &LakeOptions) -> Result<Self> {
        let bad = |reason: String| Error::Config {
            key: "lake url".into(),
            reason: format!("{}: {reason}", redact(url)),
        };
        let parsed = match Url::parse(url) {
            Ok(u) => u,
            // A plain path is a local directory.
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let path = std::path::absolute(url).map_err(|e| bad(e.to_string()))?;
                // A file (existing, or named like one of ours) or else a directory.
                let file = path.is_file()
                    || path
                        .extension()
                        .is_some_and(|e| e == "parquet" || e == "csv");
                if file {
                    Url::from_file_path(&path)
                } else {
                    Url::from_directory_path(&path)
                }
                .map_err(|_| bad("not a usable path".into()))?
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL; set them in the environment".into(),
            ));
        }
        let shown = redact(parsed.as_str());
        let retry = RetryConfig {
            max_retries: options.max_retries,
            retry_timeout: options.retry_timeout,
            ..RetryConfig::default()
        };
        let timeout = format!("{}ms", options.request_timeout.as_millis());
        let key_path = |p: &str| -> Result<Path> {
            Path::parse(p.trim_matches('/')).map_err(|e| bad(e.to_string()))
        };
        let backend = |e: object_store::Error| Error::Backend {
            kind: store_kind(&e),
            backend: "lake",
            target: shown.clone(),
            message: String::new(),
            source: Some(Box::new(steam_core::Cause::folded(e))),
        };
        let mut local = None;
        let store_url = match parsed.scheme() {
            "memory" => None,
            _ => Url::parse(&store_key(&parsed)).ok(),
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match parsed.scheme() {
            "s3" | "s3a" => {
                use object_store::aws::AmazonS3ConfigKey as Key;
                let store = base(
                    options,
                    object_store::aws::AmazonS3Builder::from_env,
                    object_store::aws::AmazonS3Builder::new,
                )
                .with_url(parsed.as_str())
                .with_retry(retry)
                .with_config(Key::Client(ClientConfigKey::Timeout), &timeout)
                .build()
                .map_err(backend)?;
                (Arc::new(store), key_path(parsed.path())?)
            }
            "gs" => {
                use object_store::gcp::GoogleConfigKey as Key;
                let mut builder = base(
                    options,
                    object_store::gcp::GoogleCloudStorageBuilder::from_env,
                    object_store::gcp::GoogleCloudStorageBuilder::new,
                )
                .with_url(parsed.as_str())
                .with_retry(retry)
                .with_config(Key::Client(ClientConfigKey::Timeout), &timeout);
                let key = options.google_service_account_path.clone().or_else(|| {
                    std::env::var_os("GOOGLE_SERVICE_ACC_KEY_FILEPATH")
                        .filter(|k| options.from_env && !k.is_empty())
                        .map(Into::into)
                });
                if let Some(key) = key {
                    builder = builder.with_service_account_path(key.to_string_lossy());
                }
                let store = builder.build().map_err(backend)?;
                (Arc::new(store), key_path(parsed.path())?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                use object_store::azure::AzureConfigKey as Key;
                let store = base(
                    options,
                    object_store::azure::MicrosoftAzureBuilder::from_env,
                    object_store::azure::MicrosoftAzureBuilder::new,
                )
                .with_url(parsed.as_str())
                .with_retry(retry)
                .with_config(Key::Client(ClientConfigKey::Timeout), &timeout)
                .build()
                .map_err(backend)?;
                (Arc::new(store), key_path(parsed.path())?)
            }
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|_| bad("not a local path".into()))?;
                let prefix = Path::from_absolute_path(&path).map_err(|e| bad(e.to_string()))?;
                let store = Arc::new(
                    object_store::local::LocalFileSystem::new().with_automatic_cleanup(true),
                );
                local = Some(store.clone());
                (store, prefix)
            }
            "memory" => {
                let store = object_store::memory::InMemory::new();
                (Arc::new(store), key_path(parsed.path())?)
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other:?} (s3, gs, az, file, memory)"
                )))
            }
        };
        Ok(Lake {
            url: shown,
            store,
            prefix,
            local,
            store_url,
        })
    }

    /// A lake over any object store, with `prefix` inside it; `name` is what messages call it.
    pub fn new(name: impl Into<String>, store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Lake {
            url: name.into(),
            store,
            prefix,
            local: None,
            store_url: None,
        }
    }

    /// The URL of the lake's store alone (`s3://bucket`, `gs://bucket`, `az://container`,
    /// `file:///`), by which another process (a cluster's executor) opens the same store with its
    /// own environment's credentials, as [`LakeStores`] does; `None` for a `memory://` lake and a
    /// lake made by [`Lake::new`], which only this process can read.
    pub fn store_url(&self) -> Option<&Url> {
        self.store_url.as_ref()
    }

    /// The URL (without query parameters), as messages show it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix of the lake inside its store.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The location of `parts` under the lake's prefix.
    pub fn path(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.prefix.clone(), |p, part| p.clone().join(*part))
    }

    /// Parts of one multipart upload in flight at once: one for a local directory, whose parts go
    /// into one file in turn, [`upload::CONCURRENCY`] for a remote store.
    pub(crate) fn concurrent_parts(&self) -> usize {
        if self.local.is_some() {
            1
        } else {
            upload::CONCURRENCY
        }
    }

    /// Where `location` is on the local file system, for a lake in a local directory (whose
    /// uploads are staged in a staging area beside it); `None` for an object store.
    pub(crate) fn local_file(&self, location: &Path) -> Result<Option<std::path::PathBuf>> {
        let Some(local) = &self.local else {
            return Ok(None);
        };
        local
            .path_to_filesystem(location)
            .map(Some)
            .map_err(|e| self.error(location, e))
    }

    /// The lake at `part` under this one's prefix (same store), such as a table's directory or
    /// one of its partitions.
    pub fn child(&self, part: &str) -> Lake {
        Lake {
            url: format!("{}/{part}", self.url.trim_end_matches('/')),
            store: self.store.clone(),
            prefix: self.path(&[part]),
            local: self.local.clone(),
            store_url: self.store_url.clone(),
        }
    }

    /// The object `name` beside this lake's object (in the same directory, same store), such as
    /// a file written next to a results object; `None` when the lake is a store's root.
    pub fn sibling(&self, name: &str) -> Option<Lake> {
        let prefix = self.prefix.as_ref();
        if prefix.is_empty() {
            return None;
        }
        let (dir, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let url = self.url.trim_end_matches('/');
        let (url_dir, _) = url.rsplit_once('/')?;
        Some(Lake {
            url: format!("{url_dir}/{name}"),
            store: self.store.clone(),
            prefix: if dir.is_empty() {
                Path::from(name)
            } else {
                Path::from(dir).join(name)
            },
            local: self.local.clone(),
            store_url: self.store_url.clone(),
        })
    }

    /// A table of the conformed layer, or one partition of it: for a conformed table (a prefix
    /// with `record_created_dt=YYYY-MM-DD` partitions), the partition of `date`, or with `None`
    /// the whole table (every partition: each holds what arrived that day, and small tables are
    /// one partition, so the whole table holds each row once); for a single object (`….parquet`)
    /// or a prefix without partitions, the lake itself. A `date` with no partition is an error
    /// naming the dates there are.
    pub async fn snapshot(&self, date: Option<chrono::NaiveDate>) -> Result<Lake> {
        match date {
            None => Ok(self.clone()),
            Some(date) => match self.partition_date(Some(date)).await? {
                Some(chosen) => Ok(self.child(&format!("{PARTITION_COLUMN}={chosen}"))),
                None => Ok(self.clone()),
            },
        }
    }

    /// The dates of this table's `record_created_dt=` partitions, ascending (none for a single
    /// object or a prefix without partitions).
    pub async fn partitions(&self) -> Result<Vec<chrono::NaiveDate>> {
        if self.prefix.as_ref().ends_with(".parquet") {
            return Ok(Vec::new());
        }
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error(&self.prefix, e))?;
        let marker = format!("{PARTITION_COLUMN}=");
        let mut dates: Vec<chrono::NaiveDate> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| {
                let d = p.filename()?.strip_prefix(&marker)?;
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
            })
            .collect();
        dates.sort();
        Ok(dates)
    }

    /// Removes this table's partition of `date`: every object under it (on a local directory,
    /// the directory too when nothing else is left in it). A partition that is not there is not
    /// an error.
    pub async fn remove_partition(&self, date: chrono::NaiveDate) -> Result<()> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let partition = self.path(&[&format!("{PARTITION_COLUMN}={date}")]);
        let objects: Vec<Path> = self
            .store
            .list(Some(&partition))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.error(&partition, e))?;
        for object in objects {
            match self.store.delete(&object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&object, e)),
            }
        }
        if let Some(local) = &self.local {
            if let Ok(dir) = local.path_to_filesystem(&partition) {
                // Only an empty directory goes: another writer's staging area stays.
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(())
    }

    /// The partition [`Lake::snapshot`] reads for `date`: `date` if this conformed table has it
    /// (else an error naming the dates there are), or with `None` its latest; `None` for a single
    /// object or a prefix without partitions (then a `date` is an error).
    pub async fn partition_date(
        &self,
        date: Option<chrono::NaiveDate>,
    ) -> Result<Option<chrono::NaiveDate>> {
        if self.prefix.as_ref().ends_with(".parquet") {
            return Ok(None);
        }
        let dates = self.partitions().await?;
        let Some(latest) = dates.last().copied() else {
            return match date {
                Some(d) => Err(Error::backend_msg(
                    "lake",
                    self.url(),
                    format!("no {PARTITION_COLUMN} partitions, so not {d}'s"),
                )
                .with_kind(ErrorKind::NotFound)),
                None => Ok(None),
            };
        };
        let chosen = date.unwrap_or(latest);
        if !dates.contains(&chosen) {
            let have: Vec<String> = dates.iter().map(ToString::to_string).collect();
            return Err(Error::backend_msg(
                "lake",
                self.url(),
                format!(
                    "no partition {PARTITION_COLUMN}={chosen} (it has {})",
                    have.join(", ")
                ),
            )
            .with_kind(ErrorKind::NotFound));
        }
        Ok(Some(chosen))
    }

    /// `url/location`, for messages.
    pub(crate) fn describe(&self, location: &Path) -> String {
        let relative = location
            .prefix_match(&self.prefix)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| location.to_string());
        format!("{}/{relative}", self.url.trim_end_matches('/'))
    }

    /// Writes a small object whole at `location` (see [`Lake::path`]) in one request: readers see
    /// the old object or the new one, never a part (a local directory's store writes a temporary
    /// file and renames it).
    pub async fn put(&self, location: &Path, bytes: Vec<u8>) -> Result<()> {
        object_store::ObjectStoreExt::put(self.store.as_ref(), location, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.error(location, e))
    }

    /// Checks that the lake can be listed, written, read and deleted from: lists its prefix, then
    /// writes a probe object (named uniquely per call), reads it back, compares and deletes it.
    pub async fn check(&self) -> Result<()> {
        use object_store::ObjectStoreExt;
        let store = self.store.as_ref();
        store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error(&self.prefix, e).doing("list"))?;
        let probe = self.path(&[&format!(".steam-recsys-probe-{}", steam_core::run_id())]);
        let probe = &probe;
        let fail = |doing: &'static str| move |e| self.error(probe, e).doing(doing);
        store
            .put(probe, "probe".into())
            .await
            .map_err(fail("put"))?;
        let back = store.get(probe).await.map_err(fail("get"));
        let back = match back {
            Ok(got) => got.bytes().await.map_err(fail("get")),
            Err(e) => Err(e),
        };
        store.delete(probe).await.map_err(fail("delete"))?;
        if back?.as_ref() != b"probe" {
            return Err(Error::backend_msg(
                "lake",
                self.describe(probe),
                "the probe read back differs from what was written",
            ));
        }
        Ok(())
    }

    /// An error of the store at `location`: classified by kind, the store's error kept as the
    /// source.
    pub fn error(&self, location: &Path, e: object_store::Error) -> Error {
        Error::Backend {
            kind: store_kind(&e),
            backend: "lake",
            target: self.describe(location),
            message: String::new(),
            source: Some(Box::new(steam_core::Cause::folded(e))),
        }
    }
}

/// The kind of an object store's error: its own for missing and existing objects and refused
/// credentials; for the others, the kind of an I/O error in its causes (a network failure after
/// the store's retries is [`ErrorKind::Transient`]).
pub(crate) fn store_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        E::Unauthenticated { .. } => ErrorKind::Unauthenticated,
        E::PermissionDenied { .. } => ErrorKind::PermissionDenied,
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
        _ => steam_core::causes(e)
            .find_map(|c| c.downcast_ref::<std::io::Error>())
            .map_or(ErrorKind::Other, ErrorKind::of_io),
    }
}

/// A URL without its password and query string, for messages.
/// The URL of `url`'s store alone: its scheme and authority (`s3://bucket/`, `file:///`).
fn store_key(url: &Url) -> String {
    format!(
        "{}://{}/",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

fn redact(url: &str) -> String {
    let shown = steam_core::redact_url(url);
    shown.split('?').next().unwrap_or_default().to_owned()
}

/// A store builder over the environment's settings ([`LakeOptions::from_env`]) or not.
fn base<B>(options: &LakeOptions, from_env: fn() -> B, new: fn() -> B) -> B {
    if options.from_env {
        from_env()
    } else {
        new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_partition_is_not_found_and_names_the_dates_there_are() {
        let lake = Lake::from_url("memory://lake/conformed").unwrap();
        let table = lake.child("games_reviews");
        let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let err = table
            .partition_date(Some(day("2026-01-02")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let object = table.path(&["record_created_dt=2026-01-01", "part-0.parquet"]);
        lake.put(&object, b"x".to_vec()).await.unwrap();
        assert_eq!(
            table.partition_date(None).await.unwrap(),
            Some(day("2026-01-01"))
        );
        let err = table
            .partition_date(Some(day("2026-01-02")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("2026-01-02") && text.contains("it has 2026-01-01"),
            "{text}"
        );
        assert!(
            text.contains("memory://lake/conformed/games_reviews"),
            "{text}"
        );
    }

    #[test]
    fn urls_pick_the_store_and_prefix() {
        let lake = Lake::from_url("memory://lake/raw_games_data/v1").unwrap();
        assert_eq!(lake.prefix().as_ref(), "raw_games_data/v1");
        assert_eq!(
            lake.path(&["games_reviews.csv"]).as_ref(),
            "raw_games_data/v1/games_reviews.csv"
        );
        let err = Lake::from_url("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("ftp") && err.contains("unsupported"), "{err}");
        let err = Lake::from_url("s3://key:secret@bucket/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_builder_never_shows_credentials() {
        let builder =
            LakeBuilder::from_env("s3://key:hunter2@bucket/x?token=t0k3n").with_max_retries(1);
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0k3n"),
            "{shown}"
        );
        let err = builder.build().unwrap_err().to_string();
        assert!(
            err.contains("credentials do not belong in the URL"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_plain_path_is_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::from_url(dir.path().join("lake").to_str().unwrap()).unwrap();
        assert!(lake.url().starts_with("file://"), "{}", lake.url());
        assert!(
            lake.prefix().as_ref().ends_with("/lake") || lake.prefix().as_ref().ends_with("lake")
        );
    }

    #[test]
    fn gcs_is_configured_from_the_references_key_file_variable() {
        // object_store's GCS client cannot be exercised against a local emulator (they reject its
        // XML-API uploads): check that a URL and a service-account key file build a store, and
        // that a missing key file is a clear error naming the lake and the file.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let key = serde_like_json(&std::fs::read_to_string(&pem).unwrap());
        let file = dir.path().join("key.json");
        std::fs::write(&file, key).unwrap();
        let with_key = |path: &std::path::Path| LakeOptions {
            google_service_account_path: Some(path.to_owned()),
            ..LakeOptions::default()
        };
        let lake =
            Lake::from_url_with("gs://conformed_games_data/exports", &with_key(&file)).unwrap();
        assert_eq!(lake.prefix().as_ref(), "exports");
        assert_eq!(
            lake.describe(&lake.path(&["games_reviews"])),
            "gs://conformed_games_data/exports/games_reviews"
        );
        let missing = dir.path().join("missing.json");
        let err =
            Lake::from_url_with("gs://conformed_games_data", &with_key(&missing)).unwrap_err();
        let err = steam_core::error_chain(&err);
        assert!(err.contains("gs://conformed_games_data"), "{err}");
        assert!(err.contains("missing.json"), "{err}");
    }

    /// A service-account key file around a PEM private key.
    fn serde_like_json(pem: &str) -> String {
        format!(
            r#"{{"type": "service_account", "project_id": "p", "private_key_id": "k",
               "client_email": "steam@p.iam.gserviceaccount.com", "private_key": "{}"}}"#,
            pem.replace('\n', "\\n")
        )
    }
}
