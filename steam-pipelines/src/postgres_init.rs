//! The `postgres_initialization` pipeline: the eleven processed tables into a PostgreSQL schema,
//! all in one transaction.

use std::path::PathBuf;
use std::time::Instant;

use steam_connectors::files::ParquetFileSource;
use steam_connectors::postgres::{quote_ident, PostgresConfig, PostgresSink, PostgresSource};
use steam_core::catalog::Table;
use steam_core::{Error, Result, RunSummary, Sink, Source, StageSummary};
use steam_transforms::Prior;

use crate::process::{clean_into, write_mode, ProcessOptions};

/// Where [`postgres_init`] takes the eleven tables from.
#[derive(Debug, Clone)]
pub enum InitInput {
    /// A directory of `<table>.parquet` files, as `steam-recsys process` writes them.
    Processed(PathBuf),
    /// The raw scraper files, cleaned on the way (`options.raw`; `options.out` is not used), with
    /// the rejects ledgers written into `ledger_dir/_rejected/`. Without `options.prior`, the
    /// schema's tables are the prior ([`prior_from_postgres`]): every id is kept.
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
    postgres_load(input, config, false).await
}

/// Loads the eleven tables into `config`'s schema like [`postgres_init`], or, when `only_new`,
/// appends games_reviews and users_mapping (which then hold only new rows, as
/// [`ProcessOptions::only_new`] makes them) and replaces the nine others, all in one
/// transaction: a failure leaves every table as it was.
pub async fn postgres_load(
    input: &InitInput,
    config: &PostgresConfig,
    only_new: bool,
) -> Result<RunSummary> {
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
                let mode = write_mode(table, only_new);
                let written = load
                    .write(&table.into(), mode, source.read().await?)
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
            let mut options = options.clone();
            options.only_new = only_new;
            if options.prior.is_none() {
                // Ids are kept: the schema's own tables are the prior.
                options.prior = Some(std::sync::Arc::new(prior_from_postgres(config).await?));
            }
            let summary = clean_into(&options, &load, ledger_dir).await?;
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

/// What `config`'s schema holds, as a [`Prior`]: empty when it has no games_description (nothing
/// was loaded there). Of games_reviews only `review_id` and `first_seen` are read; a
/// games_reviews without them (loaded by a version without review keys) is an error saying to
/// rebuild.
pub async fn prior_from_postgres(config: &PostgresConfig) -> Result<Prior> {
    let mut prior = Prior::new();
    // Which tables and columns there are (the schema's name as a string literal).
    let literal = format!("'{}'", config.schema().replace('\'', "''"));
    let sql = format!(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = {literal}"
    );
    let mut present: Vec<(String, String)> = Vec::new();
    for batch in PostgresSource::query(config.clone(), &sql)
        .await?
        .read_all()
        .await?
    {
        use arrow::array::AsArray;
        let (t, c) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_string::<i32>(),
        );
        for (t, c) in t.iter().zip(c.iter()) {
            if let (Some(t), Some(c)) = (t, c) {
                present.push((t.to_owned(), c.to_owned()));
            }
        }
    }
    let has = |table: Table, column: Option<&str>| {
        present
            .iter()
            .any(|(t, c)| t == table.name() && column.is_none_or(|column| c == column))
    };
    if !has(Table::GamesDescription, None) {
        return Ok(prior);
    }
    for table in Prior::tables() {
        let missing = |what: &str| Error::Schema {
            target: format!("postgres {}.{}", config.schema(), table.name()),
            reason: format!(
                "{what}, while games_description is there: load every table again \
                 (run all --full-refresh)"
            ),
        };
        if !has(table, None) {
            return Err(missing("missing"));
        }
        let source = if table == Table::GamesReviews {
            for column in Prior::REVIEW_COLUMNS {
                if !has(table, Some(column)) {
                    return Err(missing(&format!(
                        "no column {column} (loaded before reviews had keys)"
                    )));
                }
            }
            let sql = format!(
                "SELECT review_id, first_seen FROM {}.{}",
                quote_ident(config.schema())?,
                quote_ident(table.name())?
            );
            PostgresSource::query(config.clone(), &sql).await?
        } else {
            PostgresSource::table(config.clone(), table.name())
                .await?
                .with_schema(table.schema())?
        };
        for batch in source.read_all().await? {
            prior.add(table, &batch)?;
        }
    }
    Ok(prior)
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
