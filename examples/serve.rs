//! The recommendations API from Rust: serves what the serving load wrote (`steam-recsys
//! lake-to-mongodb --redis-url …`, or `run all` with Redis), from Redis with MongoDB behind it,
//! until Ctrl-C or SIGTERM.
//!
//! `cargo run --example serve -- MONGODB_URI [REDIS_URL] [ADDRESS:PORT]`
//!
//! then `curl http://127.0.0.1:8080/users/1/recommendations`.

use steam_recsys::connectors::mongodb::MongoConfig;
use steam_recsys::connectors::redis::RedisConfig;
use steam_recsys::pipelines::{serve, ServeOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(uri) = args.first() else {
        eprintln!("usage: serve MONGODB_URI [REDIS_URL] [ADDRESS:PORT]");
        std::process::exit(2);
    };
    let mut options = ServeOptions::new(MongoConfig::from_url(uri)?, "recsys");
    options.redis = args
        .get(1)
        .filter(|u| u.as_str() != "-")
        .map(|u| RedisConfig::from_url(u))
        .transpose()?;
    if let Some(bind) = args.get(2) {
        options.bind = bind.parse()?;
    }
    println!("serving on http://{}", options.bind);
    serve(&options).await?;
    Ok(())
}
