//! The run history: one row per `run all` in PostgreSQL (`<schema>.pipeline_runs`), from which the
//! next run learns what the last complete one did, and `steam-recsys runs` prints.

use std::fmt;

use steam_connectors::postgres::{pg_error, quote_ident, tokio_postgres, PostgresConfig};
use steam_core::{Error, Result, StageSummary};

/// The table of the run history, in the configured schema.
pub const RUNS_TABLE: &str = "pipeline_runs";

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Every table rebuilt from the input, every user re-served (ids still kept).
    Full,
    /// Only what is new since the last complete run.
    Incremental,
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
        })
    }
}

/// One run as recorded.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// The run's id (also the serving stores' run id).
    pub run_id: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// The run date (the lake partition written).
    pub run_date: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// `running` (or killed: never ended), `succeeded` or `failed`.
    pub status: String,
    /// Seconds and rows per stage.
    pub stages: serde_json::Value,
    /// Reviews loaded by this run.
    pub reviews_new: Option<i64>,
    /// Reviews of the input an earlier run had loaded.
    pub reviews_known: Option<i64>,
    /// Reviews of the input set aside in the rejects ledger.
    pub reviews_rejected: Option<i64>,
    /// The model trained (its parameters), if one was.
    pub model: Option<String>,
    /// Its held-out metrics (and the popularity baseline's), if any.
    pub metrics: Option<serde_json::Value>,
    /// What failed, for a failed run.
    pub error: Option<String>,
}

/// The run history of one PostgreSQL schema.
#[derive(Debug, Clone)]
pub struct RunLog {
    config: PostgresConfig,
    table: String,
}

const COLUMNS: &str = "run_id, kind, run_date::text, \
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
    to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
    status, stages::text, reviews_new, reviews_known, reviews_rejected, model, metrics::text, error";

impl RunLog {
    /// The history of `config`'s schema; the schema and table are created if missing.
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        let table = format!(
            "{}.{}",
            quote_ident(config.schema())?,
            quote_ident(RUNS_TABLE)?
        );
        let log = RunLog {
            config: config.clone(),
            table,
        };
        let sql = format!(
            "SET client_min_messages TO warning;
             CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {t} (
               run_id text PRIMARY KEY,
               kind text NOT NULL,
               run_date date NOT NULL,
               started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
               ended_at timestamptz,
               status text NOT NULL,
               stages jsonb NOT NULL DEFAULT '[]',
               reviews_new bigint,
               reviews_known bigint,
               reviews_rejected bigint,
               model text,
               metrics jsonb,
               error text
             )",
            schema = quote_ident(config.schema())?,
            t = log.table
        );
        log.client()
            .await?
            .batch_execute(&sql)
            .await
            .map_err(|e| log.error("creating the run history", e))?;
        Ok(log)
    }

    async fn client(&self) -> Result<tokio_postgres::Client> {
        self.config.connect().await
    }

    fn error(&self, doing: &str, e: tokio_postgres::Error) -> Error {
        pg_error(format!("{} at {}", self.table, self.config.describe()), e).doing(doing)
    }

    /// Records the start of a run.
    pub async fn start(
        &self,
        run_id: &str,
        kind: RunKind,
        run_date: chrono::NaiveDate,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (run_id, kind, run_date, status) VALUES ($1, $2, $3::text::date, 'running')",
            self.table
        );
        self.client()
            .await?
            .execute(&sql, &[&run_id, &kind.to_string(), &run_date.to_string()])
            .await
            .map_err(|e| self.error("recording the run's start", e))?;
        Ok(())
    }

    /// Records a run's progress or end: its stages and counts so far, and, when `status` is not
    /// `running`, its end.
    pub async fn update(&self, record: &RunRecord) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET status = $2, stages = $3::text::jsonb, reviews_new = $4,
               reviews_known = $5, reviews_rejected = $6, model = $7, metrics = $8::text::jsonb,
               error = $9,
               ended_at = CASE WHEN $2 = 'running' THEN NULL ELSE clock_timestamp() END
             WHERE run_id = $1",
            self.table
        );
        let metrics = record.metrics.as_ref().map(|m| m.to_string());
        self.client()
            .await?
            .execute(
                &sql,
                &[
                    &record.run_id,
                    &record.status,
                    &record.stages.to_string(),
                    &record.reviews_new,
                    &record.reviews_known,
                    &record.reviews_rejected,
                    &record.model,
                    &metrics,
                    &record.error,
                ],
            )
            .await
            .map_err(|e| self.error("recording the run", e))?;
        Ok(())
    }

    /// The latest runs, newest first (at most `limit`).
    pub async fn list(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.select(&format!(
            "ORDER BY started_at DESC, run_id DESC LIMIT {}",
            limit.min(i64::MAX as usize)
        ))
        .await
    }

    /// The latest run that succeeded, if any.
    pub async fn last_succeeded(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .select("WHERE status = 'succeeded' ORDER BY started_at DESC, run_id DESC LIMIT 1")
            .await?
            .pop())
    }

    /// The earliest run date of the runs started after the last that succeeded (all of them
    /// without one): what a run has to export again, since any of them may have loaded reviews
    /// (dated their run date) that never reached the lake.
    pub async fn unfinished_since(&self) -> Result<Option<chrono::NaiveDate>> {
        let sql = format!(
            "SELECT min(run_date)::text FROM {t} WHERE started_at > coalesce(
               (SELECT max(started_at) FROM {t} WHERE status = 'succeeded'), '-infinity')",
            t = self.table
        );
        let row = self
            .client()
            .await?
            .query_one(&sql, &[])
            .await
            .map_err(|e| self.error("reading the run history", e))?;
        let date: Option<String> = row.get(0);
        Ok(date.and_then(|d| d.parse().ok()))
    }

    /// The latest run, whatever its status.
    pub async fn last(&self) -> Result<Option<RunRecord>> {
        Ok(self.list(1).await?.pop())
    }

    async fn select(&self, tail: &str) -> Result<Vec<RunRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM {} {tail}", self.table);
        let rows = self
            .client()
            .await?
            .query(&sql, &[])
            .await
            .map_err(|e| self.error("reading the run history", e))?;
        let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        Ok(rows
            .iter()
            .map(|r| RunRecord {
                run_id: r.get(0),
                kind: r.get(1),
                run_date: r.get(2),
                started_at: r.get(3),
                ended_at: r.get(4),
                status: r.get(5),
                stages: json(r.get(6)).unwrap_or_default(),
                reviews_new: r.get(7),
                reviews_known: r.get(8),
                reviews_rejected: r.get(9),
                model: r.get(10),
                metrics: json(r.get(11)),
                error: r.get(12),
            })
            .collect())
    }
}

/// Stages as the history stores them: `[{"stage", "seconds", "rows"}]`.
pub fn stages_json(stages: &[StageSummary], rows: &[(String, u64)]) -> serde_json::Value {
    serde_json::Value::Array(
        stages
            .iter()
            .map(|s| {
                let rows = rows.iter().find(|(n, _)| *n == s.stage).map(|(_, r)| *r);
                serde_json::json!({ "stage": s.stage, "seconds": s.seconds, "rows": rows })
            })
            .collect(),
    )
}

/// The records as a table, one line each.
pub fn runs_table(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:<26} {:<11} {:<10} {:<24} {:>8} {:<9} {:>9} {:>9} {:>8} {:>9}\n",
        "run",
        "kind",
        "date",
        "started",
        "seconds",
        "status",
        "new",
        "known",
        "rejected",
        "ndcg@10"
    );
    for r in runs {
        let seconds: f64 = r
            .stages
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["seconds"].as_f64()).sum())
            .unwrap_or(0.0);
        let cell = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let ndcg = r
            .metrics
            .as_ref()
            .and_then(|m| m["model"]["ndcg"].as_f64())
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
        out.push_str(&format!(
            "{:<26} {:<11} {:<10} {:<24} {:>8.1} {:<9} {:>9} {:>9} {:>8} {:>9}\n",
            r.run_id,
            r.kind,
            r.run_date,
            r.started_at,
            seconds,
            r.status,
            cell(r.reviews_new),
            cell(r.reviews_known),
            cell(r.reviews_rejected),
            ndcg
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}
