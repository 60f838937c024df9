//! The `postgres_initialization` pipeline: the eleven processed tables into a PostgreSQL schema,
//! all in one transaction.

use std::path::PathBuf;
use std::time::Instant;

use steam_connectors::files::ParquetFileSource;
use steam_connectors::postgres::{PostgresConfig, PostgresSink};
use steam_core::catalog::Table;
use steam_core::{Error, Result, RunSummary, Sink, Source, StageSummary, WriteMode};

use crate::process::{clean_into, ProcessOptions};

/// Where [`postgres_init`] takes the eleven tables from.
#[derive(Debug, Clone)]
pub enum InitInput {
    /// A directory of `<table>.parquet` files, as `steam-recsys process` writes them.
    Processed(PathBuf),
    /// The raw scraper files, cleaned on the way (`options.raw`; `options.out` is not used), with
    /// the rejects ledgers written into `ledger_dir/_rejected/`.
    Raw {
        /// The cleaning options.
        options: ProcessOptions,
        /// Where the `_rejected/` ledgers go.
        ledger_dir: PathBuf,
    },
}

/// Loads the eleven tables into `config`'s schema (created if missing) with replace semantics.
///
/// All eleven are written in one transaction: each goes into a staging table, and they take the
/// old tables' places together at commit. Readers see the old eleven or the new eleven, never a
/// mix, a missing table or a half-loaded one; a failure anywhere leaves the old ones untouched.
pub async fn postgres_init(input: &InitInput, config: &PostgresConfig) -> Result<RunSummary> {
    let started = Instant::now();
    let sink = PostgresSink::new(config.clone());
    let mut summary = match input {
        InitInput::Processed(dir) => {
            // Check every file before writing anything.
            let mut sources = Vec::new();
            for table in Table::ALL {
                let path = dir.join(format!("{}.parquet", table.name()));
                let source = ParquetFileSource::open(&path)?;
                check_schema(table, &source, &path)?;
                sources.push((table, source));
            }
            let load = sink.begin().await?;
            let mut summary = RunSummary::default();
            for (table, source) in sources {
                let written = load
                    .write(&table.into(), WriteMode::Replace, source.read().await?)
                    .await?;
                summary.tables.push(written);
            }
            load.commit().await?;
            summary
        }
        InitInput::Raw {
            options,
            ledger_dir,
        } => {
            tokio::fs::create_dir_all(ledger_dir)
                .await
                .map_err(|e| Error::io(ledger_dir, e))?;
            let load = sink.begin().await?;
            let summary = clean_into(options, &load, ledger_dir).await?;
            load.commit().await?;
            summary
        }
    };
    summary.stages.push(StageSummary::since(
        format!("postgres_init → {}", config.schema()),
        started,
    ));
    Ok(summary)
}

/// Checks a Parquet file holds the table's columns with the table's types.
fn check_schema(table: Table, source: &ParquetFileSource, path: &std::path::Path) -> Result<()> {
    let expected = table.schema();
    let found = source.schema();
    for field in expected.fields() {
        match found.field_with_name(field.name()) {
            Ok(f) if f.data_type() == field.data_type() => {}
            Ok(f) => {
                return Err(Error::Schema {
                    target: path.display().to_string(),
                    reason: format!(
                        "column {:?} is {}, expected {}",
                        field.name(),
                        f.data_type(),
                        field.data_type()
                    ),
                })
            }
            Err(_) => {
                return Err(Error::Schema {
                    target: path.display().to_string(),
                    reason: format!(
                        "missing column {:?} of table {}",
                        field.name(),
                        table.name()
                    ),
                })
            }
        }
    }
    if found.fields().len() != expected.fields().len() {
        return Err(Error::Schema {
            target: path.display().to_string(),
            reason: format!(
                "{} columns, table {} has {}",
                found.fields().len(),
                table.name(),
                expected.fields().len()
            ),
        });
    }
    Ok(())
}
