//! connection_testing from Rust: checks PostgreSQL, a lake, MongoDB and Redis, one line each.
//!
//! `cargo run --example connection_testing -- [POSTGRES_URL] [LAKE_URL] [MONGODB_URI] [REDIS_URL]`
//! (give `-` to skip one).

use steam_recsys::connectors::lake::Lake;
use steam_recsys::connectors::mongodb::MongoConfig;
use steam_recsys::connectors::postgres::PostgresConfig;
use steam_recsys::connectors::redis::RedisConfig;
use steam_recsys::pipelines::connection_test;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).filter(|a| a.as_str() != "-").cloned();
    let pg = arg(0).map(|u| PostgresConfig::from_url(&u)).transpose()?;
    let lake = arg(1).map(|u| Lake::from_env(&u)).transpose()?;
    let mongo = arg(2).map(|u| MongoConfig::from_url(&u)).transpose()?;
    let redis = arg(3).map(|u| RedisConfig::from_url(&u)).transpose()?;
    let checks = connection_test(
        pg.as_ref(),
        lake.as_ref(),
        mongo.as_ref().map(|m| (m, "recsys")),
        redis.as_ref(),
    )
    .await;
    for c in &checks {
        println!("{c}");
    }
    if checks.iter().any(|c| c.result.is_err()) {
        std::process::exit(1);
    }
    Ok(())
}
