//! The `process` pipeline: the three raw files → the eleven processed tables as Parquet, with every
//! set-aside record in the rejects ledger.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::NaiveDate;
use futures::{stream, StreamExt};
use steam_connectors::files::ParquetFileSource;
use steam_connectors::files::{
    DirTransaction, ParquetDirSink, RawCsvReader, RawCsvSource, RejectLedger,
};
use steam_core::raw::RawFile;
use steam_core::Table;
use steam_core::{
    batch_stream, Error, FileSummary, RecordBatch, Reject, Result, RunSummary, Sink, Source,
    StageSummary, WriteMode,
};
use steam_transforms::{
    DescriptionCleaner, Prior, RankingCleaner, ReviewCleaner, ReviewOptions, StreamingCleaner,
};

/// Options of [`process`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// The directory holding the three raw files.
    pub raw: PathBuf,
    /// The output directory: `<table>.parquet` for each table, `_rejected/<raw file>.csv` ledgers.
    pub out: PathBuf,
    /// The year given to year-less review dates.
    pub reference_year: i32,
    /// Fail on the first record that would be set aside, naming file, line, column and value.
    pub strict: bool,
    /// Records per batch.
    pub batch_size: usize,
    /// The run's date: the `first_seen` of reviews no earlier run loaded.
    pub run_date: NaiveDate,
    /// What earlier runs loaded: their ids are kept and their reviews known (see [`Prior`]).
    /// [`process`] reads it from its output directory (the tables an earlier `process` wrote
    /// there, see [`prior_from_dir`]) when this is `None`.
    pub prior: Option<Arc<Prior>>,
    /// Write only what is new: games_reviews without the reviews [`ProcessOptions::prior`] knows
    /// (counted as known), users_mapping with the new users only. The other tables are whole.
    pub only_new: bool,
}

impl ProcessOptions {
    /// Options with the current year as reference year and today (UTC) as run date, not strict,
    /// 8192 records per batch, the prior read from the output directory, whole tables.
    pub fn new(raw: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        ProcessOptions {
            raw: raw.into(),
            out: out.into(),
            reference_year: current_year(),
            strict: false,
            batch_size: 8192,
            run_date: today(),
            prior: None,
            only_new: false,
        }
    }
}

/// The current year (UTC).
pub fn current_year() -> i32 {
    use chrono::Datelike;
    today().year()
}

/// Today's date (UTC).
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// What the processed tables in `dir` (as [`process`] writes them) hold, as a [`Prior`]: empty
/// when `dir` holds no `games_description.parquet` (nothing was processed there), an error naming
/// the file when it holds some of the tables but not all. Of games_reviews only `review_id` and
/// `first_seen` are read.
pub fn prior_from_dir(dir: &Path) -> Result<Prior> {
    let mut prior = Prior::new();
    if !dir.join("games_description.parquet").is_file() {
        return Ok(prior);
    }
    for table in Prior::tables() {
        let path = dir.join(format!("{}.parquet", table.name()));
        let mut source = ParquetFileSource::open(&path)?;
        if table == Table::GamesReviews {
            source = source.select(&Prior::REVIEW_COLUMNS)?;
        }
        for batch in source.read_all()? {
            prior.add(table, &batch)?;
        }
    }
    Ok(prior)
}

/// Where a raw file's records went: counts, the ledger, strict mode.
struct Accounts {
    file: RawFile,
    strict: bool,
    ledger: RejectLedger,
    summary: FileSummary,
}

impl Accounts {
    fn new(dir: &Path, file: RawFile, strict: bool) -> Result<Self> {
        Ok(Accounts {
            file,
            strict,
            ledger: RejectLedger::create(dir, file.file_name())?,
            summary: FileSummary {
                file: file.file_name().to_owned(),
                ..FileSummary::default()
            },
        })
    }

    /// Records a batch of `raw` records of which `loaded` landed, `known` were loaded by an
    /// earlier run, and `rejects` were set aside.
    fn record(
        &mut self,
        raw: usize,
        loaded: usize,
        known: usize,
        rejects: Vec<Reject>,
    ) -> Result<()> {
        if self.strict {
            if let Some(first) = rejects.into_iter().next() {
                return Err(first.into_error(self.file.file_name()));
            }
        } else {
            self.ledger.write(&rejects)?;
            self.summary.rejected += rejects.len() as u64;
        }
        self.summary.raw += raw as u64;
        self.summary.loaded += loaded as u64;
        self.summary.known += known as u64;
        Ok(())
    }

    fn finish(self) -> Result<FileSummary> {
        if !self.summary.balanced() {
            return Err(Error::Schema {
                target: self.summary.file.clone(),
                reason: format!(
                    "records unaccounted for: {} read, {} loaded, {} known, {} rejected",
                    self.summary.raw,
                    self.summary.loaded,
                    self.summary.known,
                    self.summary.rejected
                ),
            });
        }
        self.ledger.finish()?;
        Ok(self.summary)
    }
}

fn one_batch(batch: RecordBatch) -> steam_core::BatchStream {
    batch_stream(stream::iter([Ok(batch)]))
}

/// Runs the cleaning transforms over the raw files in `options.raw` and writes the eleven tables
/// and the rejects ledgers into `options.out`.
///
/// All three files are checked (present, needed columns) before anything is written. Everything
/// is written into a staging directory beside `options.out` and published whole (see
/// [`DirTransaction`]) only when every table is complete, so a failed run (strict mode included)
/// leaves the previous output as it was.
/// Reviews are streamed: memory holds a few batches, the users seen and the review keys (of this
/// run and the prior's), not the file.
///
/// Ids are kept across runs: without [`ProcessOptions::prior`], the tables already in
/// `options.out` are the prior ([`prior_from_dir`]), so processing a new scrape into the same
/// directory keeps every id and each review's `first_seen`.
pub async fn process(options: &ProcessOptions) -> Result<RunSummary> {
    let started = Instant::now();
    for file in RawFile::ALL {
        RawCsvReader::open(options.raw.join(file.file_name()), file)?;
    }
    let mut options = options.clone();
    if options.prior.is_none() {
        let dir = options.out.clone();
        let prior = tokio::task::spawn_blocking(move || prior_from_dir(&dir))
            .await
            .map_err(|e| Error::from_join("reading the earlier tables", e))??;
        options.prior = Some(Arc::new(prior));
    }
    let options = &options;
    let tx = DirTransaction::begin_async(&options.out).await?;
    let result = run(options, tx.dir()).await;
    let result = match result {
        Ok(summary) => tx.commit_async().await.map(|()| summary),
        Err(e) => Err(e), // the transaction is dropped: the staged files go
    };
    let mut summary = result?;
    summary.stages.push(StageSummary::since("process", started));
    Ok(summary)
}

async fn run(options: &ProcessOptions, staging: &Path) -> Result<RunSummary> {
    let sink = ParquetDirSink::new(staging)
        .with_free_text("review")
        .with_free_text("long_description");
    // The directory's files are written whole, the new rows alone when `only_new`.
    clean(options, &sink, staging, false).await
}

/// How [`clean_into`] writes `table`: [`WriteMode::Append`] for the two tables that hold only new
/// rows when `only_new` (games_reviews, users_mapping), else [`WriteMode::Replace`].
pub fn write_mode(table: Table, only_new: bool) -> WriteMode {
    match table {
        Table::GamesReviews | Table::UsersMapping if only_new => WriteMode::Append,
        _ => WriteMode::Replace,
    }
}

/// Runs the cleaning transforms over the raw files in `options.raw` (`options.out` is not used),
/// writing the eleven tables into `sink` (with [`write_mode`]) and the rejects ledgers into
/// `ledger_dir/_rejected/`. Reviews are streamed from file to sink.
///
/// This is [`process`] with any sink: `postgres_init --raw` cleans straight into PostgreSQL.
pub async fn clean_into(
    options: &ProcessOptions,
    sink: &dyn Sink,
    ledger_dir: &Path,
) -> Result<RunSummary> {
    clean(options, sink, ledger_dir, true).await
}

/// [`clean_into`], appending the new rows when `append` (and `options.only_new`), else replacing.
async fn clean(
    options: &ProcessOptions,
    sink: &dyn Sink,
    ledger_dir: &Path,
    append: bool,
) -> Result<RunSummary> {
    let staging = ledger_dir;
    let append = append && options.only_new;
    let mut summary = RunSummary::default();

    // games_description.csv: small, cleaned whole.
    let t = Instant::now();
    let mut accounts = Accounts::new(staging, RawFile::GamesDescription, options.strict)?;
    let prior = options.prior.clone().unwrap_or_default();
    let mut cleaner = DescriptionCleaner::with_prior(prior.clone());
    let mut batches = RawCsvSource::in_dir(&options.raw, RawFile::GamesDescription)
        .with_batch_size(options.batch_size)
        .read()
        .await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let rejects = cleaner.push(&batch)?;
        let loaded = batch.num_rows() - rejects.len();
        accounts.record(batch.num_rows(), loaded, 0, rejects)?;
    }
    let descriptions = cleaner.finish()?;
    for (table, batch) in descriptions.tables {
        summary.tables.push(
            sink.write(&table.into(), write_mode(table, append), one_batch(batch))
                .await?,
        );
    }
    summary.files.push(accounts.finish()?);
    summary
        .stages
        .push(StageSummary::since("games_description.csv", t));
    let index = Arc::new(descriptions.index);

    // games_ranking.csv, then steam_game_reviews.csv: streamed.
    let ranking = RankingCleaner::with_prior(index.clone(), &prior);
    clean_streamed(sink, options, staging, ranking, append, &mut summary).await?;
    let options_r = ReviewOptions {
        reference_year: options.reference_year,
        run_date: options.run_date,
        only_new: options.only_new,
    };
    let reviews = ReviewCleaner::with_prior(index, prior, options_r);
    clean_streamed(sink, options, staging, reviews, append, &mut summary).await?;
    Ok(summary)
}

/// Streams a raw file through `cleaner` into its table, then writes the cleaner's final table,
/// accounting for every record.
async fn clean_streamed<C: StreamingCleaner + 'static>(
    sink: &dyn Sink,
    options: &ProcessOptions,
    staging: &Path,
    cleaner: C,
    append: bool,
    summary: &mut RunSummary,
) -> Result<()> {
    let started = Instant::now();
    let accounts = Arc::new(Mutex::new(Accounts::new(staging, C::FILE, options.strict)?));
    let cleaner = Arc::new(Mutex::new(cleaner));
    let raw = RawCsvSource::in_dir(&options.raw, C::FILE)
        .with_batch_size(options.batch_size)
        .read()
        .await?;
    let (acc, cl) = (accounts.clone(), cleaner.clone());
    let cleaned = raw.map(move |batch| {
        let batch = batch?;
        let out = cl.lock().map_err(|_| poisoned())?.push(&batch)?;
        acc.lock().map_err(|_| poisoned())?.record(
            batch.num_rows(),
            out.batch.num_rows(),
            out.known,
            out.rejects,
        )?;
        Ok(out.batch)
    });
    let mode = write_mode(C::TABLE, append);
    let written = sink
        .write(&C::TABLE.into(), mode, batch_stream(cleaned))
        .await?;
    summary.tables.push(written);
    let last = unshare(cleaner)?.finish()?;
    summary.tables.push(
        sink.write(
            &C::FINAL_TABLE.into(),
            write_mode(C::FINAL_TABLE, append),
            one_batch(last),
        )
        .await?,
    );
    summary.files.push(unshare(accounts)?.finish()?);
    summary
        .stages
        .push(StageSummary::since(C::FILE.file_name(), started));
    Ok(())
}

/// Takes a value back out of the `Arc<Mutex<_>>` it was shared through with a finished stream.
fn unshare<T>(shared: Arc<Mutex<T>>) -> Result<T> {
    Arc::try_unwrap(shared)
        .map_err(|_| poisoned())?
        .into_inner()
        .map_err(|_| poisoned())
}

fn poisoned() -> Error {
    Error::Schema {
        target: "process".into(),
        reason: "a cleaning step panicked".into(),
    }
}
