//! `games_ranking.csv` → games_ranking, then rank_dimension.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int32Array, Int32Builder, RecordBatch, StringArray, UInt8Builder};
use steam_core::raw::RawFile;
use steam_core::{Error, Reject, Result, Table};

use crate::descriptions::GameIndex;
use crate::prior::Prior;
use crate::Cleaned;

const GAME: usize = 0;
const GENRE: usize = 1;
const RANK_TYPE: usize = 2;
const RANK: usize = 3;

/// Cleans `games_ranking.csv`: `rank` UInt8, `game_id` and `genre_id` by name from the
/// [`GameIndex`], `rank_type_id` numbered from 1 in order of first appearance over every well-formed
/// record (as the reference did); with a [`Prior`], known rank types keep their ids and new ones are
/// numbered after the largest, and rank_dimension keeps every known type.
///
/// Records set aside: malformed records, an empty rank type, a rank that is not an integer from 0
/// to 255, an unknown game, an unknown genre.
#[derive(Debug)]
pub struct RankingCleaner {
    index: Arc<GameIndex>,
    rank_types: HashMap<String, i32>,
    next: i32,
}

impl RankingCleaner {
    /// A cleaner joining on `index`.
    pub fn new(index: Arc<GameIndex>) -> Self {
        Self::with_prior(index, &Prior::new())
    }

    /// A cleaner joining on `index` that keeps the rank type ids of `prior`.
    pub fn with_prior(index: Arc<GameIndex>, prior: &Prior) -> Self {
        RankingCleaner {
            index,
            rank_types: prior
                .rank_types
                .iter()
                .map(|(n, i)| (n.to_owned(), i))
                .collect(),
            next: prior.rank_types.max(),
        }
    }

    /// Cleans one raw batch into games_ranking rows and rejects.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Cleaned> {
        let raw = crate::RawBatch::new(RawFile::GamesRanking, batch)?;
        let columns = RawFile::GamesRanking.columns();
        let mut rank = UInt8Builder::new();
        let mut game = Int32Builder::new();
        let mut genre = Int32Builder::new();
        let mut rank_type = Int32Builder::new();
        let mut rejects = Vec::new();
        for i in 0..raw.len() {
            let line = raw.line(i);
            if let Some(r) = raw.malformed(i) {
                rejects.push(r);
                continue;
            }
            let bad =
                |c: usize, reason: &str| Reject::value(line, columns[c], raw.value(c, i), reason);
            let type_name = raw.value(RANK_TYPE, i).trim();
            if type_name.is_empty() {
                rejects.push(bad(RANK_TYPE, "empty rank type"));
                continue;
            }
            let type_id = match self.rank_types.get(type_name) {
                Some(id) => *id,
                None => {
                    self.next = self.next.checked_add(1).ok_or_else(|| Error::Schema {
                        target: Table::RankDimension.name().to_owned(),
                        reason: "more rank types than an Int32 id can number".to_owned(),
                    })?;
                    self.rank_types.insert(type_name.to_owned(), self.next);
                    self.next
                }
            };
            let Ok(r) = raw.value(RANK, i).trim().parse::<u8>() else {
                rejects.push(bad(RANK, "not an integer from 0 to 255"));
                continue;
            };
            let Some(game_id) = self.index.game_id(raw.value(GAME, i)) else {
                rejects.push(bad(GAME, "unknown game"));
                continue;
            };
            let Some(genre_id) = self.index.genre_id(raw.value(GENRE, i)) else {
                rejects.push(bad(GENRE, "unknown genre"));
                continue;
            };
            rank.append_value(r);
            game.append_value(game_id);
            genre.append_value(genre_id);
            rank_type.append_value(type_id);
        }
        let batch = RecordBatch::try_new(
            Table::GamesRanking.schema(),
            vec![
                Arc::new(rank.finish()),
                Arc::new(game.finish()),
                Arc::new(genre.finish()),
                Arc::new(rank_type.finish()),
            ],
        )
        .map_err(|e| Error::arrow("building games_ranking", e))?;
        Ok(Cleaned {
            batch,
            rejects,
            known: 0,
        })
    }

    /// rank_dimension: every rank type seen (or known), with its id, by id.
    pub fn finish(self) -> Result<RecordBatch> {
        let mut rows: Vec<(i32, String)> =
            self.rank_types.into_iter().map(|(n, i)| (i, n)).collect();
        rows.sort_unstable();
        RecordBatch::try_new(
            Table::RankDimension.schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
            ],
        )
        .map_err(|e| Error::arrow("building rank_dimension", e))
    }
}

impl crate::StreamingCleaner for RankingCleaner {
    const TABLE: Table = Table::GamesRanking;
    const FINAL_TABLE: Table = Table::RankDimension;
    const FILE: RawFile = RawFile::GamesRanking;

    fn push(&mut self, batch: &RecordBatch) -> Result<Cleaned> {
        RankingCleaner::push(self, batch)
    }

    fn finish(self) -> Result<RecordBatch> {
        RankingCleaner::finish(self)
    }
}
