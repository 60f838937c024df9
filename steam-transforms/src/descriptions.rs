//! `games_description.csv` → games_description and the genre, developer and publisher tables.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Date32Array, Int32Array, RecordBatch, StringArray,
};
use arrow::datatypes::Int32Type;
use steam_core::raw::RawFile;
use steam_core::{Error, Reject, Result, Table};

use crate::parse;
use crate::prior::{Prior, DIMENSIONS};
use crate::raw_batch::RawBatch;

const NAME: usize = 0;
const LONG_DESCRIPTION: usize = 1;
const GENRES: usize = 2;
const RELEASE_DATE: usize = 3;
const DEVELOPER: usize = 4;
const PUBLISHER: usize = 5;
const RATING: usize = 6;
const PURCHASED: usize = 7;
const ENGLISH: usize = 8;

/// What `overall_player_rating` becomes when the purchased-review count is missing.
pub const NOT_ENOUGH_DATA: &str = "Not enough data";

#[derive(Debug)]
struct Game {
    id: i32,
    name: String,
    long_description: String,
    release_date: Option<i32>,
    rating: Option<String>,
    purchased: Option<i32>,
    english: Option<i32>,
    lists: [Vec<String>; 3],
}

/// Cleans `games_description.csv`. Feed it every raw batch with [`DescriptionCleaner::push`], then
/// [`DescriptionCleaner::finish`].
///
/// Semantics:
/// - `game_id` is the record's 1-based position in the file (malformed and rejected records keep
///   their number, so ids do not shift when a record is set aside); with a [`Prior`]
///   ([`DescriptionCleaner::with_prior`]) that knows games, a known name keeps its id and a new
///   one gets the next id after the largest known, in file order;
/// - `long_description` loses its leading "About This Game" and surrounding white space;
/// - `release_date` from "19 Aug, 2024" or "Nov 2018" (first of the month), null when unparseable;
/// - `number_of_english_reviews` from "2,258,990";
/// - `number_of_reviews_from_purchased_people` from "(654,820)" or "(81% of 62,791) All Time"
///   (the integer part of 81% of 62,791); when it is missing, `overall_player_rating` becomes
///   "Not enough data" and the count becomes the first integer of the original rating text;
/// - genres, developer and publisher are Python list literals; each dimension holds the distinct
///   names of the loaded games sorted ascending (byte order) with ids from 1, each mapping one row
///   per (game, name). With a [`Prior`], each dimension also keeps every name it knew, with its
///   id, and new names (sorted ascending) get ids after the largest known;
/// - with a [`Prior`], games it knows that the file no longer lists keep their games_description
///   and mapping rows (reviews refer to them, and their ids stay theirs). Every table is sorted by
///   its id (mappings by game, stably).
///
/// Records set aside: malformed records, an empty name, a name already used by an earlier game
/// (reviews and rankings join on it), a list that is not a list literal, a review count that is not
/// one, an English review count that is not a number.
#[derive(Debug)]
pub struct DescriptionCleaner {
    games: Vec<Game>,
    names: HashMap<String, u64>,
    records: i32,
    prior: Arc<Prior>,
    next_game: i32,
}

/// Concatenates `batches` of `table` and sorts the rows by the first column (stably).
fn sorted_by_first(table: Table, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let fail = |e| Error::arrow(format!("building {table}"), e);
    let all = arrow::compute::concat_batches(&table.schema(), batches).map_err(fail)?;
    let ids = all
        .column(0)
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| Error::Schema {
            target: table.name().to_owned(),
            reason: "the first column is not Int32".to_owned(),
        })?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by_key(|i| ids.value(*i as usize)); // stable
    let order = arrow::array::UInt32Array::from(order);
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &order, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    RecordBatch::try_new(table.schema(), columns).map_err(fail)
}

/// The games and genres the other raw files join on, by name.
#[derive(Debug, Clone, Default)]
pub struct GameIndex {
    games: HashMap<String, i32>,
    genres: HashMap<String, i32>,
}

impl GameIndex {
    /// The id of the game named `name` (trimmed), if it was loaded.
    pub fn game_id(&self, name: &str) -> Option<i32> {
        self.games.get(name.trim()).copied()
    }

    /// The id of the genre named `genre` (trimmed), if it is in the genre dimension.
    pub fn genre_id(&self, genre: &str) -> Option<i32> {
        self.genres.get(genre.trim()).copied()
    }

    /// Number of games.
    pub fn games(&self) -> usize {
        self.games.len()
    }

    /// Builds the index from processed tables: games_description batches (`game_id`, `name`) and
    /// genre_dimension batches (`genre_id`, `genre`).
    pub fn from_tables(games: &[RecordBatch], genres: &[RecordBatch]) -> Result<Self> {
        Ok(GameIndex {
            games: pairs(Table::GamesDescription, games, "game_id", "name")?,
            genres: pairs(Table::GenreDimension, genres, "genre_id", "genre")?,
        })
    }
}

fn pairs(
    table: Table,
    batches: &[RecordBatch],
    id: &str,
    name: &str,
) -> Result<HashMap<String, i32>> {
    let mut out = HashMap::new();
    for b in batches {
        let column = |c: &str| {
            b.column_by_name(c).ok_or_else(|| Error::Schema {
                target: table.name().to_owned(),
                reason: format!("missing column {c}"),
            })
        };
        let ids = column(id)?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| Error::Schema {
                target: table.name().to_owned(),
                reason: format!("{id} is not Int32"),
            })?;
        let names = column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::Schema {
                target: table.name().to_owned(),
                reason: format!("{name} is not Utf8"),
            })?;
        for (i, n) in ids.iter().zip(names.iter()) {
            if let (Some(i), Some(n)) = (i, n) {
                out.insert(n.to_owned(), i);
            }
        }
    }
    Ok(out)
}

/// The seven tables made from `games_description.csv`, and the index the other files join on.
#[derive(Debug)]
pub struct Descriptions {
    /// games_description, then each dimension followed by its mapping.
    pub tables: Vec<(Table, RecordBatch)>,
    /// Games and genres by name.
    pub index: GameIndex,
    /// Records loaded into games_description.
    pub loaded: u64,
}

impl Default for DescriptionCleaner {
    fn default() -> Self {
        Self::new()
    }
}

impl DescriptionCleaner {
    /// A cleaner that has seen no records.
    pub fn new() -> Self {
        Self::with_prior(Arc::new(Prior::new()))
    }

    /// A cleaner that keeps the ids of `prior` (see [`Prior`]).
    pub fn with_prior(prior: Arc<Prior>) -> Self {
        DescriptionCleaner {
            games: Vec::new(),
            names: HashMap::new(),
            records: 0,
            next_game: prior.games.max(),
            prior,
        }
    }

    /// The id of a game named `name`: its known id, its position in the file on a first run, or
    /// the next after the largest known.
    fn game_id(&mut self, name: &str) -> Result<i32> {
        if let Some(id) = self.prior.games.get(name) {
            return Ok(id);
        }
        if self.prior.games.is_empty() {
            return Ok(self.records);
        }
        self.next_game = self.next_game.checked_add(1).ok_or_else(|| Error::Schema {
            target: RawFile::GamesDescription.file_name().to_owned(),
            reason: "more games than an Int32 id can number".to_owned(),
        })?;
        Ok(self.next_game)
    }

    /// Cleans one raw batch; returns the records it set aside.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<Reject>> {
        let raw = RawBatch::new(RawFile::GamesDescription, batch)?;
        let mut rejects = Vec::new();
        for i in 0..raw.len() {
            self.records = self.records.checked_add(1).ok_or_else(|| Error::Schema {
                target: RawFile::GamesDescription.file_name().to_owned(),
                reason: "more games than an Int32 id can number".to_owned(),
            })?;
            match self.record(&raw, i) {
                Ok(Ok(())) => {}
                Ok(Err(r)) => rejects.push(r),
                Err(e) => return Err(e),
            }
        }
        Ok(rejects)
    }

    fn record(&mut self, raw: &RawBatch<'_>, i: usize) -> Result<Result<(), Reject>> {
        match self.parse_record(raw, i) {
            Ok((line, game)) => {
                let id = self.game_id(&game.name)?;
                self.names.insert(game.name.clone(), line);
                self.games.push(Game { id, ..game });
                Ok(Ok(()))
            }
            Err(r) => Ok(Err(r)),
        }
    }

    fn parse_record(&mut self, raw: &RawBatch<'_>, i: usize) -> Result<(u64, Game), Reject> {
        let line = raw.line(i);
        if let Some(r) = raw.malformed(i) {
            return Err(r);
        }
        let value = |c: usize| raw.value(c, i);
        let bad = |c: usize, reason: String| {
            Reject::value(
                line,
                RawFile::GamesDescription.columns()[c],
                value(c),
                reason,
            )
        };
        let name = value(NAME).trim();
        if name.is_empty() {
            return Err(bad(NAME, "empty game name".to_owned()));
        }
        if let Some(first) = self.names.get(name) {
            return Err(bad(
                NAME,
                format!("duplicate game name (first on line {first})"),
            ));
        }
        let list = |c: usize| parse::list_literal(value(c)).map_err(|e| bad(c, e));
        let lists = [list(GENRES)?, list(DEVELOPER)?, list(PUBLISHER)?];
        let mut purchased =
            parse::purchased_reviews(value(PURCHASED)).map_err(|e| bad(PURCHASED, e))?;
        let english = parse::thousands_i32(value(ENGLISH)).map_err(|e| bad(ENGLISH, e))?;
        let rating_text = value(RATING).trim();
        let rating = if purchased.is_none() {
            purchased = parse::first_integer(rating_text);
            Some(NOT_ENOUGH_DATA.to_owned())
        } else {
            (!rating_text.is_empty()).then(|| rating_text.to_owned())
        };
        Ok((
            line,
            Game {
                id: 0,
                name: name.to_owned(),
                long_description: parse::long_description(value(LONG_DESCRIPTION)).to_owned(),
                release_date: parse::release_date(value(RELEASE_DATE)).map(parse::date32),
                rating,
                purchased,
                english,
                lists,
            },
        ))
    }

    /// Builds the seven tables from every record pushed (and, with a [`Prior`], the rows it keeps).
    pub fn finish(mut self) -> Result<Descriptions> {
        self.games.sort_by_key(|g| g.id);
        let games = &self.games;
        let prior = &self.prior;
        let listed: HashSet<i32> = games.iter().map(|g| g.id).collect();
        // Known games the file no longer lists: their rows are kept.
        let kept = |batches: &[RecordBatch], table: Table| -> Result<Vec<RecordBatch>> {
            batches
                .iter()
                .map(|b| {
                    let ids = b.column(0).as_primitive_opt::<Int32Type>().ok_or_else(|| {
                        Error::Schema {
                            target: format!("earlier {table}"),
                            reason: "game_id is not Int32".to_owned(),
                        }
                    })?;
                    let keep: BooleanArray = ids
                        .iter()
                        .map(|id| Some(id.is_some_and(|id| !listed.contains(&id))))
                        .collect();
                    arrow::compute::filter_record_batch(b, &keep)
                        .map_err(|e| Error::arrow(format!("keeping earlier {table}"), e))
                })
                .collect()
        };
        let mut tables = Vec::with_capacity(7);
        let ids: ArrayRef = Arc::new(Int32Array::from_iter_values(games.iter().map(|g| g.id)));
        let description = RecordBatch::try_new(
            Table::GamesDescription.schema(),
            vec![
                ids,
                Arc::new(StringArray::from_iter_values(games.iter().map(|g| &g.name))),
                Arc::new(StringArray::from_iter(
                    games.iter().map(|g| Some(&g.long_description)),
                )),
                Arc::new(Date32Array::from_iter(games.iter().map(|g| g.release_date))),
                Arc::new(StringArray::from_iter(
                    games.iter().map(|g| g.rating.as_deref()),
                )),
                Arc::new(Int32Array::from_iter(games.iter().map(|g| g.purchased))),
                Arc::new(Int32Array::from_iter(games.iter().map(|g| g.english))),
            ],
        )
        .map_err(|e| Error::arrow("building games_description", e))?;
        let mut all = vec![description];
        all.extend(kept(&prior.descriptions, Table::GamesDescription)?);
        let description = sorted_by_first(Table::GamesDescription, &all)?;
        let mut index_games = HashMap::new();
        {
            let ids = description.column(0).as_primitive::<Int32Type>();
            let names = description.column(1).as_string::<i32>();
            for (i, n) in ids.values().iter().zip(names.iter()) {
                if let Some(n) = n {
                    index_games.insert(n.to_owned(), *i);
                }
            }
        }
        tables.push((Table::GamesDescription, description));

        let mut genres = HashMap::new();
        for (k, (dim_table, map_table)) in DIMENSIONS.into_iter().enumerate() {
            let known = &prior.dimensions[k];
            let new: BTreeSet<&str> = games
                .iter()
                .flat_map(|g| g.lists[k].iter().map(String::as_str))
                .filter(|n| known.get(n).is_none())
                .collect();
            let mut ids: HashMap<&str, i32> = known.iter().collect();
            let mut next = known.max();
            for name in new {
                next = next.checked_add(1).ok_or_else(|| Error::Schema {
                    target: dim_table.name().to_owned(),
                    reason: "more names than an Int32 id can number".to_owned(),
                })?;
                ids.insert(name, next);
            }
            let mut rows: Vec<(i32, &str)> = ids.iter().map(|(n, i)| (*i, *n)).collect();
            rows.sort_unstable();
            let dimension = RecordBatch::try_new(
                dim_table.schema(),
                vec![
                    Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                ],
            )
            .map_err(|e| Error::arrow(format!("building {dim_table}"), e))?;
            let (game_ids, name_ids): (Vec<i32>, Vec<i32>) = games
                .iter()
                .flat_map(|g| g.lists[k].iter().map(move |n| (g.id, n.as_str())))
                .map(|(g, n)| (g, ids[n]))
                .unzip();
            let mapping = RecordBatch::try_new(
                map_table.schema(),
                vec![
                    Arc::new(Int32Array::from(game_ids)),
                    Arc::new(Int32Array::from(name_ids)),
                ],
            )
            .map_err(|e| Error::arrow(format!("building {map_table}"), e))?;
            let mut all = vec![mapping];
            all.extend(kept(&prior.mappings[k], map_table)?);
            let mapping = sorted_by_first(map_table, &all)?;
            if k == 0 {
                genres = ids.iter().map(|(n, i)| ((*n).to_owned(), *i)).collect();
            }
            tables.push((dim_table, dimension));
            tables.push((map_table, mapping));
        }
        let index = GameIndex {
            games: index_games,
            genres,
        };
        Ok(Descriptions {
            tables,
            index,
            loaded: games.len() as u64,
        })
    }
}
