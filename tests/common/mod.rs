//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Date32Type, Float32Type, Int32Type, Int64Type};
use steam_recsys::connectors::files::ParquetFileSource;
use steam_recsys::core::Table;

/// The real scraped files, read in place from the shared data folder.
pub fn real_data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real");
    assert!(
        dir.join("games_description.csv").is_file() && dir.join("games_ranking.csv").is_file(),
        "the real data files must be at {} (they are not part of this repository)",
        dir.display()
    );
    dir
}

/// One processed table, read back whole.
pub fn table(out: &Path, table: Table) -> RecordBatch {
    let source = ParquetFileSource::open(out.join(format!("{}.parquet", table.name()))).unwrap();
    let batches = source.read_all().unwrap();
    concat_batches(&table.schema(), &batches).unwrap()
}

/// Rows in a processed table.
pub fn rows(out: &Path, t: Table) -> usize {
    table(out, t).num_rows()
}

pub fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).unwrap().as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

pub fn i32s(b: &RecordBatch, col: &str) -> Vec<Option<i32>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int32Type>()
        .iter()
        .collect()
}

pub fn i64s(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

pub fn f32s(b: &RecordBatch, col: &str) -> Vec<Option<f32>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Float32Type>()
        .iter()
        .collect()
}

/// A Date32 column as ISO dates.
pub fn dates(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .map(|d| {
            d.map(|d| {
                chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
                    .unwrap()
                    .to_string()
            })
        })
        .collect()
}

/// The rejects ledger of a raw file, as (line, column, value, reason) rows.
pub fn ledger(out: &Path, file: &str) -> Vec<(u64, String, String, String)> {
    let mut r = csv::Reader::from_path(out.join("_rejected").join(file)).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        vec!["file", "line", "column", "value", "reason"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(&rec[0], file);
            (
                rec[1].parse().unwrap(),
                rec[2].to_owned(),
                rec[3].to_owned(),
                rec[4].to_owned(),
            )
        })
        .collect()
}

/// Writes the three raw files into a new directory.
pub fn raw_dir(descriptions: &str, ranking: &str, reviews: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("games_description.csv"), descriptions).unwrap();
    std::fs::write(dir.path().join("games_ranking.csv"), ranking).unwrap();
    std::fs::write(dir.path().join("steam_game_reviews.csv"), reviews).unwrap();
    dir
}
