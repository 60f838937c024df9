//! Pure Arrow transforms of steam-recsys: cleaning the three raw files scraped from Steam into the
//! eleven processed tables, and conforming them. No I/O, no async: every function takes batches and
//! returns batches, so the transforms run the same under any source and sink.
//!
//! - [`parse`]: one parser per scraped format ("1,152", "(81% of 62,791) All Time", list literals,
//!   year-less dates…), each total.
//! - [`DescriptionCleaner`]: `games_description.csv` → games_description and the genre, developer
//!   and publisher dimension and mapping tables, plus the [`GameIndex`] the other files join on.
//! - [`Prior`]: what earlier runs loaded, so that every id is kept across runs and each review
//!   (keyed by [`review_id`]) is loaded once.
//! - [`ReviewCleaner`]: `steam_game_reviews.csv`, streamed → games_reviews batches, then
//!   users_mapping.
//! - [`RankingCleaner`]: `games_ranking.csv` → games_ranking, then rank_dimension.
//! - [`remove_probability`]: recommendations with ratings → the game ids serving keeps.
//! - [`conform()`]: a processed table's rows as the lake's conformed layer holds them.
//!
//! Each cleaner reads the batches of a raw reader (see [`steam_core::raw`]) and returns, per batch,
//! the clean rows and the [`Reject`]s: every raw record lands in a table or in the rejects.
#![warn(missing_docs)]

mod conform;
mod descriptions;
pub mod parse;
mod prior;
mod ranking;
mod raw_batch;
mod recommendations;
mod reviews;

pub use conform::{conform, conformed_schema, FIRST_SEEN, RECORD_CREATED_DT};
pub use descriptions::{DescriptionCleaner, Descriptions, GameIndex};
pub use prior::{review_id, Prior};
pub use ranking::RankingCleaner;
pub use raw_batch::RawBatch;
pub use recommendations::remove_probability;
pub use reviews::{ReviewCleaner, ReviewOptions};
pub use steam_core::Reject;
pub use steam_core::{recommendations_schema, served_schema};

use arrow::array::RecordBatch;

/// A cleaner that streams: one raw batch in, the clean rows and rejects of that batch out, then a
/// final table built from everything seen (users_mapping, rank_dimension).
pub trait StreamingCleaner: Send {
    /// The table [`StreamingCleaner::push`] yields rows of.
    const TABLE: steam_core::Table;
    /// The table [`StreamingCleaner::finish`] yields.
    const FINAL_TABLE: steam_core::Table;
    /// The raw file it reads.
    const FILE: steam_core::raw::RawFile;

    /// Cleans one raw batch.
    fn push(&mut self, batch: &RecordBatch) -> steam_core::Result<Cleaned>;

    /// The final table.
    fn finish(self) -> steam_core::Result<RecordBatch>;
}

/// What a cleaner made of one raw batch: the clean rows and the records it set aside.
#[derive(Debug)]
pub struct Cleaned {
    /// The clean rows, in the output table's schema.
    pub batch: RecordBatch,
    /// The records set aside, in input order.
    pub rejects: Vec<Reject>,
    /// Records an earlier run loaded (see [`ReviewOptions::only_new`]): neither loaded nor set
    /// aside.
    pub known: usize,
}
