//! Generate a small raw data set and clean it into the eleven processed tables, from Rust.
//!
//! `cargo run --example process -- [OUT_DIR] [REVIEWS]`

use std::path::PathBuf;

use steam_recsys::pipelines::{generate, process, GenerateOptions, ProcessOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "data/example".into()));
    let reviews = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);

    let raw = out.join("raw");
    let generated = generate(&GenerateOptions::new(&raw, reviews))?;
    println!("generated {generated:?} in {}", raw.display());

    let mut options = ProcessOptions::new(&raw, out.join("processed"));
    options.reference_year = 2024;
    let summary = process(&options).await?;
    print!("{summary}");
    for file in &summary.files {
        assert!(file.balanced(), "every raw record is loaded or rejected");
    }
    Ok(())
}
