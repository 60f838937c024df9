//! Read a PostgreSQL table into Arrow batches and count them: the read half of the PostgreSQL
//! benchmark (scripts/bench/postgres), and a small example of `PostgresSource`.
//!
//! `cargo run --release --example postgres_read -- POSTGRES_URL SCHEMA TABLE [PARTITION_KEY N]`

use std::time::Instant;

use futures::StreamExt;
use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSource};
use steam_recsys::core::Source;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, table, rest @ ..] = args.as_slice() else {
        return Err("usage: postgres_read POSTGRES_URL SCHEMA TABLE [PARTITION_KEY N]".into());
    };
    let started = Instant::now();
    let config = PostgresConfig::from_url(url)?.with_schema(schema.as_str());
    let mut source = PostgresSource::table(config, table).await?;
    if let [key, n] = rest {
        source = source.partitioned(key, n.parse()?)?;
    }
    let mut batches = source.read().await?;
    let (mut rows, mut bytes, mut count) = (0usize, 0usize, 0usize);
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        count += 1;
    }
    eprintln!(
        "read {rows} rows ({} MiB of Arrow) in {count} batches from {schema}.{table}: {:.3}s",
        bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
