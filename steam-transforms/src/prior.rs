//! What earlier runs loaded: the ids they gave each name and the reviews they loaded, so that a run
//! keeps every id and loads each review once.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use steam_core::{Error, Result, Table};

/// The stable key of a review: the 64-bit XXH3 hash of the game's name (trimmed), the username (as
/// [`crate::parse::username`] reads it) and the review's text, each followed by a NUL byte, as a
/// signed integer (PostgreSQL has no unsigned type).
///
/// Steam keeps one review per account and game, but usernames are display names, which two people
/// can share; the text tells their reviews apart. Counts that change between scrapes (hours,
/// helpful, funny) and the date (a year-less date takes the scrape's year) are left out, so a
/// re-scrape gives the same key. An edited review is a new review. Two different reviews share a
/// key with probability about n²/2⁶⁵ (3·10⁻⁸ for a million reviews); they would be taken for one.
pub fn review_id(game: &str, username: &str, review: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [game.trim(), username, review] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.digest() as i64
}

/// Names and their ids: those of earlier runs, then new ones numbered after the largest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    ids: HashMap<String, i32>,
    max: i32,
}

impl Names {
    pub(crate) fn get(&self, name: &str) -> Option<i32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn max(&self) -> i32 {
        self.max
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i32)> {
        self.ids.iter().map(|(n, i)| (n.as_str(), *i))
    }

    fn insert(&mut self, name: &str, id: i32) {
        self.ids.entry(name.to_owned()).or_insert(id);
        self.max = self.max.max(id);
    }
}

/// What earlier runs loaded, read back from where they loaded it (a PostgreSQL schema, a directory
/// of processed tables): every name's id (games, genres, developers, publishers, rank types,
/// users), every review's key and first date, and the rows of games_description and of the three
/// game mappings, which a run keeps for games its descriptions file no longer lists.
///
/// Feed it batches with [`Prior::add`]; a cleaner given a `Prior` keeps each known name's id, gives
/// new names ids after the largest known, never reuses one, and knows each review loaded before.
/// An empty `Prior` (a first run) numbers as a cleaner without one.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    pub(crate) games: Names,
    pub(crate) dimensions: [Names; 3],
    pub(crate) rank_types: Names,
    pub(crate) users: Names,
    pub(crate) reviews: HashMap<i64, i32>,
    pub(crate) descriptions: Vec<RecordBatch>,
    pub(crate) mappings: [Vec<RecordBatch>; 3],
}

/// The dimension and mapping tables of genres, developers and publishers, in that order.
pub(crate) const DIMENSIONS: [(Table, Table); 3] = [
    (Table::GenreDimension, Table::GenreMapping),
    (Table::DeveloperDimension, Table::DeveloperMapping),
    (Table::PublisherDimension, Table::PublisherMapping),
];

impl Prior {
    /// Nothing loaded before.
    pub fn new() -> Self {
        Prior::default()
    }

    /// The tables a `Prior` is read from: every table but games_ranking. Of games_reviews only the
    /// columns [`Prior::REVIEW_COLUMNS`] are needed.
    pub fn tables() -> impl Iterator<Item = Table> {
        Table::ALL.into_iter().filter(|t| *t != Table::GamesRanking)
    }

    /// The columns of games_reviews a `Prior` reads.
    pub const REVIEW_COLUMNS: [&'static str; 2] = ["review_id", "first_seen"];

    /// Whether nothing was loaded before: no game, no user, no review.
    pub fn is_empty(&self) -> bool {
        self.games.is_empty() && self.users.is_empty() && self.reviews.is_empty()
    }

    /// Users known.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Games known.
    pub fn games(&self) -> usize {
        self.games.len()
    }

    /// Reviews known.
    pub fn reviews(&self) -> usize {
        self.reviews.len()
    }

    /// The date (days since the epoch) of the run that first loaded review `id`, if one did.
    pub fn first_seen(&self, id: i64) -> Option<i32> {
        self.reviews.get(&id).copied()
    }

    /// Adds a batch of `table`'s rows, as loaded by an earlier run. Columns are found by name:
    /// games_reviews needs only [`Prior::REVIEW_COLUMNS`]; games_description and the mappings
    /// need the table's whole schema (their rows are kept). games_ranking adds nothing.
    pub fn add(&mut self, table: Table, batch: &RecordBatch) -> Result<()> {
        let ids = |id: &str, name: &str| -> Result<Vec<(String, i32)>> {
            let ids = int32(table, batch, id)?;
            let names = column(table, batch, name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| schema(table, format!("{name} is not Utf8")))?;
            Ok(ids
                .iter()
                .zip(names.iter())
                .filter_map(|(i, n)| Some((n?.to_owned(), i?)))
                .collect())
        };
        let into = |names: &mut Names, id: &str, name: &str| -> Result<()> {
            for (n, i) in ids(id, name)? {
                names.insert(&n, i);
            }
            Ok(())
        };
        match table {
            Table::GamesDescription => {
                steam_core::check_columns(
                    &format!("earlier {table}"),
                    &batch.schema(),
                    &table.schema(),
                )?;
                into(&mut self.games, "game_id", "name")?;
                self.descriptions.push(batch.clone());
            }
            Table::UsersMapping => into(&mut self.users, "user_id", "username")?,
            Table::RankDimension => into(&mut self.rank_types, "rank_type_id", "rank_type")?,
            Table::GamesReviews => {
                let ids = column(table, batch, "review_id")?
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| schema(table, "review_id is not Int64".into()))?;
                let dates = column(table, batch, "first_seen")?
                    .as_primitive_opt::<Date32Type>()
                    .ok_or_else(|| schema(table, "first_seen is not Date32".into()))?;
                self.reviews.reserve(batch.num_rows());
                for (id, date) in ids.iter().zip(dates.iter()) {
                    if let (Some(id), Some(date)) = (id, date) {
                        self.reviews.entry(id).or_insert(date);
                    }
                }
            }
            Table::GamesRanking => {}
            other => {
                for (k, (dimension, mapping)) in DIMENSIONS.into_iter().enumerate() {
                    let name = dimension.name().trim_end_matches("_dimension");
                    if other == dimension {
                        into(&mut self.dimensions[k], &format!("{name}_id"), name)?;
                    } else if other == mapping {
                        steam_core::check_columns(
                            &format!("earlier {table}"),
                            &batch.schema(),
                            &table.schema(),
                        )?;
                        self.mappings[k].push(batch.clone());
                    }
                }
            }
        }
        Ok(())
    }
}

fn schema(table: Table, reason: String) -> Error {
    Error::Schema {
        target: format!("earlier {table}"),
        reason,
    }
}

fn column<'a>(table: Table, batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| schema(table, format!("missing column {name}")))
}

fn int32<'a>(
    table: Table,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::PrimitiveArray<Int32Type>> {
    column(table, batch, name)?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| schema(table, format!("{name} is not Int32")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_ids_are_stable_and_tell_texts_users_and_games_apart() {
        let a = review_id("Portal 2", "ann", "great");
        assert_eq!(a, review_id(" Portal 2 ", "ann", "great"));
        assert_ne!(a, review_id("Portal 2", "ann", "great!"));
        assert_ne!(a, review_id("Portal 2", "bob", "great"));
        assert_ne!(a, review_id("Portal", "2ann", "great"));
        // The value is part of the stored data: it must not change between releases.
        // (XXH3-64 of "Portal 2\0ann\0great\0", as a signed integer.)
        assert_eq!(a, -6_318_112_082_467_757_540);
        assert_ne!(review_id("a", "", ""), review_id("", "a", ""));
    }
}
