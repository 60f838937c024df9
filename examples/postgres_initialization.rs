//! The postgres_initialization pipeline from Rust: generate a small raw data set, clean it into
//! the eleven tables, load them into PostgreSQL in one transaction, and read one back as Arrow.
//!
//! `cargo run --example postgres_initialization -- POSTGRES_URL [SCHEMA] [REVIEWS]`
//!
//! Without a URL it uses the POSTGRES_* variables (POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DBNAME,
//! POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_SCHEMA).

use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSource};
use steam_recsys::core::Table;
use steam_recsys::pipelines::{
    generate, postgres_init, GenerateOptions, InitInput, ProcessOptions,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut config = match args.next() {
        Some(url) => PostgresConfig::from_url(&url)?,
        None => PostgresConfig::from_env()?.ok_or("give a URL or set the POSTGRES_* variables")?,
    };
    if let Some(schema) = args.next() {
        config = config.with_schema(schema);
    }
    let reviews = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);

    let work = tempfile::tempdir()?;
    let raw = work.path().join("raw");
    generate(&GenerateOptions::new(&raw, reviews))?;
    let input = InitInput::Raw {
        options: ProcessOptions::new(&raw, work.path()),
        ledger_dir: work.path().to_owned(),
    };
    let summary = postgres_init(&input, &config).await?;
    print!("{summary}");

    let reviews = PostgresSource::table(config.clone(), "games_reviews")
        .await?
        .with_schema(Table::GamesReviews.schema())?;
    let rows: usize = reviews.read_all().await?.iter().map(|b| b.num_rows()).sum();
    println!(
        "\nread {rows} rows of {}.games_reviews back from {}",
        config.schema(),
        config.describe()
    );
    Ok(())
}
