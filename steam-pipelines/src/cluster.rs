//! Where the lake's SQL runs: in this process (DataFusion), or planned and run by an Apache
//! DataFusion Ballista cluster (cargo feature `cluster`), the same plan either way.

use steam_connectors::lake::{Lake, LakeSource, LakeTables};
#[cfg(not(feature = "cluster"))]
use steam_core::Error;
use steam_core::Result;

/// `query` over every conformed table of `lake` ([`LakeSource::sql`]): here, or with `cluster`
/// (`df://HOST:PORT`, a Ballista scheduler) on that cluster, which needs the `cluster` feature.
pub async fn lake_sql(lake: &Lake, query: &str, cluster: Option<&str>) -> Result<LakeSource> {
    lake_tables(lake, cluster).await?.sql(query).await
}

/// Every conformed table of `lake` registered once for several queries ([`LakeTables`]): here,
/// or on `cluster` as [`lake_sql`] runs them.
pub async fn lake_tables(lake: &Lake, cluster: Option<&str>) -> Result<LakeTables> {
    match cluster {
        None => LakeTables::open(lake).await,
        #[cfg(feature = "cluster")]
        Some(url) => {
            steam_connectors::cluster::Cluster::from_url(url)?
                .tables(lake)
                .await
        }
        #[cfg(not(feature = "cluster"))]
        Some(url) => Err(Error::Config {
            key: "cluster".into(),
            reason: format!(
                "{}: this steam-recsys was built without the `cluster` feature \
                 (cargo install steam-pipelines --features cluster)",
                steam_core::redact_url(url)
            ),
        }),
    }
}
