//! The gcs_to_mongodb pipeline from Rust: recommendations (Parquet in a lake) → remove_probability
//! → MongoDB, refreshed on user_id; then a few served documents read back as Arrow.
//!
//! `cargo run --example gcs_to_mongodb -- SOURCE_URL MONGODB_URI [COLLECTION]`
//!
//! SOURCE_URL is a Parquet object or prefix: gs://inference_games_results/user_recommendations.parquet,
//! s3://…, or a local path.

use steam_recsys::connectors::lake::Lake;
use steam_recsys::connectors::mongodb::{MongoConfig, MongoSource};
use steam_recsys::pipelines::lake_to_mongodb;
use steam_recsys::transforms::served_schema;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, uri, rest @ ..] = args.as_slice() else {
        return Err("usage: gcs_to_mongodb SOURCE_URL MONGODB_URI [COLLECTION]".into());
    };
    let collection = rest.first().map(String::as_str).unwrap_or("recsys");
    let mongo = MongoConfig::from_url(uri)?;
    let summary = lake_to_mongodb(&Lake::from_env(source)?, &mongo, collection).await?;
    print!("{summary}");
    let served = MongoSource::new(mongo, collection, served_schema())
        .with_limit(3)
        .read_all()
        .await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&served)?);
    Ok(())
}
