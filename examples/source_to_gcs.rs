//! The source_to_gcs pipelines from Rust: PostgreSQL tables → a lake's raw layer (CSV) and
//! conformed layer (Parquet partitioned by record_created_dt), then SQL over the conformed layer.
//!
//! `cargo run --example source_to_gcs -- POSTGRES_URL RAW_LAKE_URL CONFORMED_LAKE_URL [direct|reviews|descriptions|all]`
//!
//! Lake URLs: gs://bucket/prefix (GOOGLE_SERVICE_ACC_KEY_FILEPATH or application default
//! credentials), s3://bucket/prefix (AWS_* variables), az://container/prefix, file:///path or a
//! local path. The tables must be in PostgreSQL already (see examples/postgres_initialization.rs).

use steam_recsys::connectors::lake::{sql, Lake};
use steam_recsys::connectors::postgres::PostgresConfig;
use steam_recsys::pipelines::{source_to_lake, SourceToLakeOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, raw, conformed, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: source_to_gcs POSTGRES_URL RAW_LAKE_URL CONFORMED_LAKE_URL [TABLES]".into(),
        );
    };
    let options = SourceToLakeOptions {
        group: rest.first().map(String::as_str).unwrap_or("all").parse()?,
        raw: Lake::from_env(raw)?,
        conformed: Lake::from_env(conformed)?,
        date: chrono::Utc::now().date_naive(),
        // Every day's partition of games_reviews (a full export).
        reviews_since: None,
    };
    let summary = source_to_lake(&PostgresConfig::from_url(url)?, &options).await?;
    print!("{summary}");

    let counts = sql(
        &options.conformed,
        "SELECT record_created_dt, count(*) AS reviews FROM games_reviews \
         GROUP BY record_created_dt ORDER BY record_created_dt",
    )
    .await;
    match counts {
        Ok(batches) => println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?),
        Err(e) => println!("(no games_reviews in the conformed layer: {e})"),
    }
    Ok(())
}
