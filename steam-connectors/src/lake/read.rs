//! Reading the conformed layer with DataFusion: a table as an Arrow stream, SQL over all tables.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{col, lit, DataFrame, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use steam_core::{batch_stream, BatchStream, Error, ErrorKind, RecordBatch, Result, Source};

use super::{Lake, PARTITION_COLUMN};

/// The URL the lake's store is registered under in a DataFusion session.
const STORE_URL: &str = "steam-lake://lake";

/// A DataFusion error: a store's by the store's kind, a location without data files not found, a
/// plan's (bad SQL, an unknown table or column) invalid input.
fn df_error(target: &str, e: DataFusionError) -> Error {
    let kind = match e.find_root() {
        DataFusionError::ObjectStore(store) => super::store_kind(store),
        // A listing of a location without data files.
        DataFusionError::Plan(m) if m.starts_with("No files found") => ErrorKind::NotFound,
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            ErrorKind::InvalidInput
        }
        DataFusionError::IoError(io) => ErrorKind::of_io(io),
        _ => ErrorKind::Other,
    };
    Error::Backend {
        kind,
        backend: "lake",
        target: target.to_owned(),
        message: String::new(),
        source: Some(Box::new(steam_core::Cause::folded(e))),
    }
}

/// The session configuration of the lake's reads, locally or on a cluster: `partitions` threads
/// (tasks per stage on a cluster), strings as written (Utf8), not as DataFusion's view types.
pub(crate) fn session_config(config: SessionConfig, partitions: usize) -> SessionConfig {
    let mut config = config.with_target_partitions(partitions.max(1));
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config
}

/// DataFusion's default configuration with the `DATAFUSION_*` environment variables applied
/// (`DATAFUSION_EXECUTION_BATCH_SIZE=…`, say): a bad value is an error naming it.
pub(crate) fn env_config() -> Result<SessionConfig> {
    SessionConfig::from_env().map_err(|e| Error::Config {
        key: "DATAFUSION_* variables".into(),
        reason: e.to_string(),
    })
}

/// A DataFusion session of this process that can read `lake`, its store registered under
/// [`STORE_URL`].
fn session(lake: &Lake, partitions: usize) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(session_config(env_config()?, partitions));
    let url = url::Url::parse(STORE_URL).map_err(|e| Error::Config {
        key: "lake".into(),
        reason: e.to_string(),
    })?;
    ctx.register_object_store(&url, lake.store().clone());
    Ok(ctx)
}

/// Registers the conformed table `table` of `lake` in `ctx`: its Parquet objects under Hive
/// partitions on [`PARTITION_COLUMN`].
/// `store_url` is the URL the lake's store is known by in `ctx`.
async fn register(ctx: &SessionContext, store_url: &str, lake: &Lake, table: &str) -> Result<()> {
    let dir = lake.path(&[table]);
    register_path(ctx, store_url, lake, table, &format!("{dir}/"), true).await
}

/// Registers the Parquet objects at `path` (an object, or a directory ending in `/`) as `table`,
/// with the Hive partition column when `partitioned`.
async fn register_path(
    ctx: &SessionContext,
    store_url: &str,
    lake: &Lake,
    table: &str,
    path: &str,
    partitioned: bool,
) -> Result<()> {
    let target = lake.describe(&object_store::path::Path::from(path.trim_end_matches('/')));
    let base = store_url.strip_suffix('/').unwrap_or(store_url);
    let table_url =
        ListingTableUrl::parse(format!("{base}/{path}")).map_err(|e| df_error(&target, e))?;
    let format = ParquetFormat::default().with_force_view_types(false);
    let mut options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    if partitioned {
        options = options
            .with_table_partition_cols(vec![(PARTITION_COLUMN.to_owned(), DataType::Date32)]);
    }
    let schema = options
        .infer_schema(&ctx.state(), &table_url)
        .await
        .map_err(|e| df_error(&target, e))?;
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let provider = ListingTable::try_new(config).map_err(|e| df_error(&target, e))?;
    ctx.register_table(table, Arc::new(provider))
        .map_err(|e| df_error(&target, e))?;
    Ok(())
}

/// A conformed table of a lake (all its partitions, or one date's) as a stream of Arrow batches,
/// read by DataFusion. The partition column [`PARTITION_COLUMN`] comes back as a `Date32` column
/// at the end. With the default parallelism of 1, rows come in partition and file order.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use steam_connectors::lake::{Lake, LakeSource};
/// use steam_core::Source;
///
/// let lake = Lake::from_url("gs://conformed_games_data")?;
/// let reviews = LakeSource::table(&lake, "games_reviews").await?; // all partitions
/// println!("{:?}", reviews.schema()); // with record_created_dt
/// let stream = reviews.read().await?;
/// # let _ = stream;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LakeSource {
    target: String,
    frame: DataFrame,
    schema: SchemaRef,
}

impl std::fmt::Debug for LakeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSource")
            .field("table", &self.target)
            .finish_non_exhaustive()
    }
}

impl LakeSource {
    /// Table `table` of `lake`, all partitions.
    pub async fn table(lake: &Lake, table: &str) -> Result<Self> {
        Self::open(lake, table, None, 1).await
    }

    /// Table `table` of `lake`, the partition of `date` only.
    pub async fn partition(lake: &Lake, table: &str, date: chrono::NaiveDate) -> Result<Self> {
        Self::open(lake, table, Some(date), 1).await
    }

    /// Table `table` of `lake`, optionally one date, read by `parallelism` threads (order is then
    /// not kept).
    pub async fn open(
        lake: &Lake,
        table: &str,
        date: Option<chrono::NaiveDate>,
        parallelism: usize,
    ) -> Result<Self> {
        let target = lake.describe(&lake.path(&[table]));
        let ctx = session(lake, parallelism)?;
        register(&ctx, STORE_URL, lake, table).await?;
        let mut frame = ctx.table(table).await.map_err(|e| df_error(&target, e))?;
        if let Some(date) = date {
            let days = arrow::datatypes::Date32Type::from_naive_date(date);
            frame = frame
                .filter(col(PARTITION_COLUMN).eq(lit(ScalarValue::Date32(Some(days)))))
                .map_err(|e| df_error(&target, e))?;
        }
        Ok(Self::from_frame(target, frame))
    }

    fn from_frame(target: String, frame: DataFrame) -> Self {
        let schema = Arc::new(frame.schema().as_arrow().clone());
        LakeSource {
            target,
            frame,
            schema,
        }
    }

    /// The Parquet objects at the lake's own prefix, as one table: a single object
    /// (`…/user_recommendations.parquet`) or every `.parquet` object under a directory, in order.
    pub async fn objects(lake: &Lake) -> Result<Self> {
        let target = lake.url().to_owned();
        let ctx = session(lake, 1)?;
        let prefix = lake.prefix().to_string();
        let path = if prefix.ends_with(".parquet") {
            prefix
        } else if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        register_path(&ctx, STORE_URL, lake, "objects", &path, false).await?;
        let frame = ctx
            .table("objects")
            .await
            .map_err(|e| df_error(&target, e))?;
        Ok(Self::from_frame(target, frame))
    }

    /// Only these columns, in this order: the others are not read from the objects. A column the
    /// table lacks is an error naming it.
    pub fn select(self, columns: &[&str]) -> Result<Self> {
        for c in columns {
            if self.schema.index_of(c).is_err() {
                let found: Vec<&str> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(Error::MissingColumn {
                    file: self.target.clone(),
                    column: (*c).to_owned(),
                    found: found.join(", "),
                });
            }
        }
        let frame = self
            .frame
            .select_columns(columns)
            .map_err(|e| df_error(&self.target, e))?;
        Ok(Self::from_frame(self.target, frame))
    }

    /// At most `n` rows: the plan stops reading once it has them.
    pub fn limit(self, n: usize) -> Result<Self> {
        let frame = self
            .frame
            .limit(0, Some(n))
            .map_err(|e| df_error(&self.target, e))?;
        Ok(Self::from_frame(self.target, frame))
    }

    /// Reads everything into memory (for small tables and tests).
    pub async fn read_all(&self) -> Result<Vec<RecordBatch>> {
        self.read().await?.try_collect().await
    }
}

#[async_trait]
impl Source for LakeSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&self) -> Result<BatchStream> {
        let target = self.target.clone();
        let stream = self
            .frame
            .clone()
            .execute_stream()
            .await
            .map_err(|e| df_error(&target, e))?;
        Ok(batch_stream(
            stream.map(move |b| b.map_err(|e| df_error(&target, e))),
        ))
    }
}

/// Runs a SQL query over every conformed table of `lake`, each registered under its name (the
/// directories under the lake's prefix), and returns the result whole (see [`sql_stream`] for
/// results of any size).
pub async fn sql(lake: &Lake, query: &str) -> Result<Vec<RecordBatch>> {
    sql_stream(lake, query, None).await?.try_collect().await
}

/// [`sql`] as a stream of batches, computed as they are read, with at most `limit` rows: memory
/// holds what the plan needs (a sort or an aggregation holds its state), not the result.
pub async fn sql_stream(lake: &Lake, query: &str, limit: Option<usize>) -> Result<BatchStream> {
    let mut source = LakeSource::sql(lake, query).await?;
    if let Some(n) = limit {
        source = source.limit(n)?;
    }
    source.read().await
}

impl LakeSource {
    /// The result of a SQL query over every conformed table of `lake`, each registered under its
    /// name (the directories under the lake's prefix, `record_created_dt` a column), as a source:
    /// its schema is known before it runs, and [`Source::read`] streams it. For several queries
    /// over one lake, [`LakeTables`] registers the tables once.
    pub async fn sql(lake: &Lake, query: &str) -> Result<Self> {
        LakeTables::open(lake).await?.sql(query).await
    }
}

/// Every conformed table of a lake registered in one DataFusion session (here, or a cluster's):
/// the objects are listed and the schemas read once, for any number of queries.
///
/// ```no_run
/// # async fn example() -> steam_core::Result<()> {
/// use steam_connectors::lake::{Lake, LakeTables};
///
/// let tables = LakeTables::open(&Lake::from_url("s3://conformed-games-data")?).await?;
/// let reviews = tables.sql("SELECT count(*) FROM games_reviews").await?;
/// let users = tables.sql("SELECT count(*) FROM users_mapping").await?;
/// # let _ = (reviews, users);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LakeTables {
    ctx: SessionContext,
    target: String,
}

impl std::fmt::Debug for LakeTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTables")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl LakeTables {
    /// The tables of `lake` in a session of this process.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let ctx = session(lake, num_cpus())?;
        Self::register_all(ctx, STORE_URL, lake, format!("SQL over {}", lake.url())).await
    }

    /// The tables of `lake` registered in `ctx` (a local or a cluster's session), where the
    /// lake's store is known as `store_url`; `target` is what messages call the queries.
    pub(crate) async fn register_all(
        ctx: SessionContext,
        store_url: &str,
        lake: &Lake,
        target: String,
    ) -> Result<Self> {
        let listing = lake
            .store()
            .list_with_delimiter(Some(lake.prefix()))
            .await
            .map_err(|e| lake.error(lake.prefix(), e))?;
        for dir in listing.common_prefixes {
            let Some(name) = dir.filename() else {
                continue;
            };
            let name = name.to_owned();
            if let Err(e) = register(&ctx, store_url, lake, &name).await {
                tracing::warn!(
                    "{} is not a readable table, skipped: {e}",
                    lake.describe(&dir)
                );
            }
        }
        Ok(LakeTables { ctx, target })
    }

    /// The result of `query` as a source (see [`LakeSource::sql`]).
    pub async fn sql(&self, query: &str) -> Result<LakeSource> {
        let frame = self
            .ctx
            .sql(query)
            .await
            .map_err(|e| df_error(&self.target, e))?;
        Ok(LakeSource::from_frame(self.target.clone(), frame))
    }
}

pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
