//! The `steam-recsys` command line: argument parsing and dispatch to the pipelines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steam_core::Result;

use crate::{generate, process, GenerateOptions, ProcessOptions};

/// Data pipelines of a Steam game recommender.
#[derive(Debug, Parser)]
#[command(name = "steam-recsys", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the three raw files in the scraper's formats (deterministic for a seed).
    Generate {
        /// Directory to write games_description.csv, games_ranking.csv, steam_game_reviews.csv to.
        #[arg(long)]
        out: PathBuf,
        /// Number of reviews.
        #[arg(long, default_value_t = 100_000)]
        reviews: u64,
        /// Number of games.
        #[arg(long, default_value_t = 290)]
        games: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fraction of review and ranking records given a broken value (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        broken_rate: f64,
    },
    /// Clean the raw files into the eleven processed tables (Parquet), with a rejects ledger.
    Process {
        /// Directory holding the three raw files.
        #[arg(long)]
        raw: PathBuf,
        /// Output directory: one TABLE.parquet per table, and _rejected/RAW_FILE.csv ledgers.
        #[arg(long)]
        out: PathBuf,
        /// Year given to year-less review dates [default: the current year].
        #[arg(long)]
        reference_year: Option<i32>,
        /// Fail on the first bad record instead of setting it aside.
        #[arg(long)]
        strict: bool,
    },
}

/// Parses the command line, runs the command, prints its summary; errors go to stderr with a
/// non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Generate {
            out,
            reviews,
            games,
            seed,
            broken_rate,
        } => {
            let started = std::time::Instant::now();
            let g = generate(&GenerateOptions {
                out: out.clone(),
                reviews,
                games,
                seed,
                broken_rate,
            })?;
            println!(
                "generated {} games, {} ranking rows, {} reviews in {} ({:.2}s)",
                g.games,
                g.ranking,
                g.reviews,
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Process {
            raw,
            out,
            reference_year,
            strict,
        } => {
            let mut options = ProcessOptions::new(raw, out.clone());
            if let Some(y) = reference_year {
                options.reference_year = y;
            }
            options.strict = strict;
            let summary = process(&options).await?;
            print!("{summary}");
            println!(
                "\nwrote {} tables to {}; rejected records are listed in {}",
                summary.tables.len(),
                out.display(),
                out.join(steam_connectors::files::RejectLedger::DIR)
                    .display()
            );
        }
    }
    Ok(())
}
