//! PostgreSQL: tables and queries in and out as Arrow streams, with binary COPY both ways.
//!
//! - [`PostgresConfig`]: a URL or the reference system's `POSTGRES_*` variables; retries with
//!   backoff on connect; the password never shown.
//! - [`PostgresSink`]: writes a stream into `schema.table` (replace, append, upsert), creating the
//!   table from the Arrow schema; [`PostgresLoad`] writes many tables in one transaction.
//! - [`PostgresSource`]: a table or query as a stream of bounded batches, optionally split on an
//!   integer key over parallel connections.
//!
//! Every schema, table and column name is quoted ([`quote_ident`]), so names from configuration
//! cannot inject SQL.
//!
//! ```no_run
//! # async fn demo() -> steam_core::Result<()> {
//! use steam_connectors::postgres::{PostgresConfig, PostgresSink, PostgresSource};
//! use steam_core::{catalog::Table, Sink, Source, WriteMode};
//!
//! let config = PostgresConfig::from_url("postgresql://steam@127.0.0.1:5432/steam")?;
//! let users = PostgresSource::table(config.clone(), "users_mapping")
//!     .await?
//!     .with_schema(Table::UsersMapping.schema())?;
//! let sink = PostgresSink::new(config.with_schema("recsys_copy"));
//! let summary = sink
//!     .write(&Table::UsersMapping.into(), WriteMode::Replace, users.read().await?)
//!     .await?;
//! println!("{} rows in {:.2}s", summary.rows, summary.seconds);
//! # Ok(())
//! # }
//! ```

mod binary;
mod config;
mod sink;
mod source;
#[cfg(feature = "postgres-tls")]
mod tls;
mod types;

pub use config::{pg_error, PostgresConfig, ENV_VARS};
pub use sink::{PostgresLoad, PostgresSink};
pub use source::PostgresSource;
/// The driver, for work of your own on [`PostgresConfig::connect`]'s client.
pub use tokio_postgres;
pub use tokio_postgres::config::SslMode;
pub use types::quote_ident;
