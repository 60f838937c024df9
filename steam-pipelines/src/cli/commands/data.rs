//! The raw files fetched or generated, and cleaned into the processed tables: `download`,
//! `generate`, `process`.

use std::path::PathBuf;

use steam_core::Result;

use crate::{GenerateOptions, ProcessOptions};

/// `download`: fetches the raw files, with progress bars on standard error.
pub(super) async fn download(
    out: PathBuf,
    endpoint: String,
    repo: String,
    revision: String,
) -> Result<()> {
    let mut options = crate::download::DownloadOptions::from_env(out);
    options.endpoint = endpoint;
    options.repo = repo;
    options.revision = revision;
    options.progress = Some(std::sync::Arc::new(Bars::default()));
    let summary = crate::download::download(&options).await?;
    out!("{summary}");
    outln!(
        "\n{} raw files of {} in {}",
        summary.files.len(),
        options.repo,
        options.out.display()
    );
    Ok(())
}

/// `generate`: writes the three raw files.
pub(super) fn generate(options: GenerateOptions) -> Result<()> {
    let started = std::time::Instant::now();
    let out = options.out.clone();
    let g = crate::generate(&options)?;
    outln!(
        "generated {} games, {} ranking rows, {} reviews in {} ({:.2}s)",
        g.games,
        g.ranking,
        g.reviews,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `process`: cleans the raw files into the processed tables.
pub(super) async fn process(
    raw: PathBuf,
    out: PathBuf,
    reference_year: Option<i32>,
    strict: bool,
    date: Option<chrono::NaiveDate>,
) -> Result<()> {
    let mut options = ProcessOptions::new(raw, out.clone());
    if let Some(y) = reference_year {
        options.reference_year = y;
    }
    if let Some(d) = date {
        options.run_date = d;
    }
    options.strict = strict;
    let summary = crate::process(&options).await?;
    out!("{summary}");
    outln!(
        "\nwrote {} tables to {}; rejected records are listed in {}",
        summary.tables.len(),
        out.display(),
        out.join(steam_connectors::files::RejectLedger::DIR)
            .display()
    );
    Ok(())
}

/// Progress bars on standard error for `download`, one per file.
#[derive(Default)]
struct Bars(std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>);

impl crate::download::Progress for Bars {
    fn started(&self, file: &str, at: u64, total: u64) {
        let mut bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = bars.entry(file.to_owned()).or_insert_with(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template(
                "{msg:28} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(file.to_owned());
            bar
        });
        bar.set_position(at);
    }

    fn advanced(&self, file: &str, bytes: u64) {
        let bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = bars.get(file) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, file: &str, ok: bool) {
        let mut bars = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = bars.remove(file) {
            if ok {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        }
    }
}
