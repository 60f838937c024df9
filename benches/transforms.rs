//! Criterion benchmarks of the cleaning transforms on generated data (no I/O in the timed part),
//! and of the raw CSV reader.
//!
//! `cargo bench --bench transforms`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use steam_recsys::connectors::files::RawCsvReader;
use steam_recsys::core::raw::RawFile;
use steam_recsys::core::RecordBatch;
use steam_recsys::pipelines::{generate, GenerateOptions};
use steam_recsys::transforms::{DescriptionCleaner, ReviewCleaner, ReviewOptions};

const REVIEWS: u64 = 100_000;

fn read(dir: &std::path::Path, file: RawFile) -> Vec<RecordBatch> {
    RawCsvReader::open(dir.join(file.file_name()), file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    generate(&GenerateOptions::new(dir.path(), REVIEWS)).unwrap();
    let descriptions = read(dir.path(), RawFile::GamesDescription);
    let reviews = read(dir.path(), RawFile::GameReviews);
    let index = {
        let mut d = DescriptionCleaner::new();
        for b in &descriptions {
            d.push(b).unwrap();
        }
        Arc::new(d.finish().unwrap().index)
    };

    let mut g = c.benchmark_group("transforms");
    g.sample_size(20);
    g.throughput(Throughput::Elements(290));
    g.bench_function("descriptions_290_games", |b| {
        b.iter(|| {
            let mut d = DescriptionCleaner::new();
            for batch in &descriptions {
                d.push(batch).unwrap();
            }
            d.finish().unwrap()
        })
    });
    g.throughput(Throughput::Elements(REVIEWS));
    g.bench_function("reviews_100k", |b| {
        b.iter_batched(
            || {
                ReviewCleaner::new(
                    index.clone(),
                    ReviewOptions::new(2024, chrono::NaiveDate::from_ymd_opt(2024, 12, 1).unwrap()),
                )
            },
            |mut cleaner| {
                let mut rows = 0;
                for batch in &reviews {
                    rows += cleaner.push(batch).unwrap().batch.num_rows();
                }
                (rows, cleaner.finish().unwrap())
            },
            BatchSize::LargeInput,
        )
    });
    let bytes = std::fs::metadata(dir.path().join(RawFile::GameReviews.file_name()))
        .unwrap()
        .len();
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("raw_csv_reader_100k_reviews", |b| {
        b.iter(|| read(dir.path(), RawFile::GameReviews).len())
    });
    g.finish();
}

criterion_group!(transforms, benches);
criterion_main!(transforms);
