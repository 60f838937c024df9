//! `steam_game_reviews.csv`, streamed → games_reviews, then users_mapping.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::array::{
    BooleanBufferBuilder, BooleanBuilder, Date32Builder, Float32Builder, Int32Array, Int32Builder,
    Int64Builder, RecordBatch, StringArray,
};
use arrow::compute::filter;
use chrono::NaiveDate;
use steam_core::raw::RawFile;
use steam_core::{Error, Reject, Result, Table};

use crate::descriptions::GameIndex;
use crate::prior::{review_id, Prior};
use crate::{parse, Cleaned};

const REVIEW: usize = 0;
const HOURS: usize = 1;
const HELPFUL: usize = 2;
const FUNNY: usize = 3;
const RECOMMENDATION: usize = 4;
const DATE: usize = 5;
const GAME: usize = 6;
const USERNAME: usize = 7;

/// Options of [`ReviewCleaner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewOptions {
    /// The year given to year-less review dates ("September 14"): the store omits the current year,
    /// so this is the year the data was scraped.
    pub reference_year: i32,
    /// The run's date: the `first_seen` of every review no earlier run loaded.
    pub run_date: NaiveDate,
    /// Leave out what earlier runs loaded: reviews the [`Prior`] knows are counted
    /// ([`Cleaned::known`]) instead of loaded, and users_mapping holds the new users only. Without
    /// it the tables are whole: known reviews keep their `first_seen`, users_mapping holds every
    /// known user too.
    pub only_new: bool,
}

impl ReviewOptions {
    /// Whole tables, year-less dates in `reference_year`, first seen on `run_date`.
    pub fn new(reference_year: i32, run_date: NaiveDate) -> Self {
        ReviewOptions {
            reference_year,
            run_date,
            only_new: false,
        }
    }
}

/// Where a review key was first met.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// Loaded by an earlier run, on this date (days since the epoch).
    Before(i32),
    /// On this line of the file being cleaned.
    Line(u64),
}

/// Cleans `steam_game_reviews.csv` batch by batch, in bounded memory (only the users seen so far are
/// kept), then yields users_mapping.
///
/// Semantics:
/// - `hours_played` Float32 from "1,234.5"; `helpful`, `funny` Int64 from "1,152"; empty → null;
/// - `recommendation`: "Recommended" → true, "Not Recommended" → false, empty → null;
/// - `date` from "September 14, 2023", "14 September, 2023", "September 14" or "14 September"
///   (year-less dates take [`ReviewOptions::reference_year`]); empty → null;
/// - `user_id` from the username (the first line of the scraped value, "anonymous" when empty),
///   numbered from 1 in order of first appearance over every well-formed record, as the reference
///   did, so users_mapping also holds users none of whose reviews were loaded;
/// - `game_id` by game name from the [`GameIndex`];
/// - `review_id` from the game's name, the username and the text ([`review_id`]); `first_seen`
///   the date of the run that first loaded the review: the [`Prior`]'s for a review it knows,
///   else [`ReviewOptions::run_date`];
/// - with a [`Prior`], known usernames keep their ids and new ones are numbered after the largest
///   known; users_mapping holds the known users too, unless [`ReviewOptions::only_new`].
///
/// Records set aside: malformed records, a game not in the index ("unknown game"), a value that
/// does not parse (naming the column and the value), a review met earlier in the same input
/// ("duplicate review", naming the first line: the same game, username and text).
#[derive(Debug)]
pub struct ReviewCleaner {
    index: Arc<GameIndex>,
    options: ReviewOptions,
    prior: Arc<Prior>,
    run_day: i32,
    users: HashMap<String, i32>,
    usernames: Vec<String>,
    next_user: i32,
    reviews: HashMap<i64, Seen>,
}

impl ReviewCleaner {
    /// A cleaner joining on `index`.
    pub fn new(index: Arc<GameIndex>, options: ReviewOptions) -> Self {
        Self::with_prior(index, Arc::new(Prior::new()), options)
    }

    /// A cleaner joining on `index` that keeps the users of `prior` and knows its reviews.
    pub fn with_prior(index: Arc<GameIndex>, prior: Arc<Prior>, options: ReviewOptions) -> Self {
        ReviewCleaner {
            index,
            options,
            run_day: parse::date32(options.run_date),
            next_user: prior.users.max(),
            prior,
            users: HashMap::new(),
            usernames: Vec::new(),
            reviews: HashMap::new(),
        }
    }

    fn user_id(&mut self, name: &str) -> Result<i32> {
        if let Some(id) = self.prior.users.get(name) {
            return Ok(id);
        }
        if let Some(id) = self.users.get(name) {
            return Ok(*id);
        }
        self.next_user = self.next_user.checked_add(1).ok_or_else(|| Error::Schema {
            target: Table::UsersMapping.name().to_owned(),
            reason: "more users than an Int32 id can number".to_owned(),
        })?;
        self.users.insert(name.to_owned(), self.next_user);
        self.usernames.push(name.to_owned());
        Ok(self.next_user)
    }

    /// Cleans one raw batch into games_reviews rows and rejects.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Cleaned> {
        let raw = crate::RawBatch::new(RawFile::GameReviews, batch)?;
        let n = raw.len();
        let mut keep = BooleanBufferBuilder::new(n);
        let mut hours = Float32Builder::with_capacity(n);
        let mut helpful = Int64Builder::with_capacity(n);
        let mut funny = Int64Builder::with_capacity(n);
        let mut recommendation = BooleanBuilder::with_capacity(n);
        let mut date = Date32Builder::with_capacity(n);
        let mut user = Int32Builder::with_capacity(n);
        let mut game = Int32Builder::with_capacity(n);
        let mut key = Int64Builder::with_capacity(n);
        let mut first_seen = Date32Builder::with_capacity(n);
        let mut rejects = Vec::new();
        let mut known = 0;
        let columns = RawFile::GameReviews.columns();
        for i in 0..n {
            let line = raw.line(i);
            if let Some(r) = raw.malformed(i) {
                keep.append(false);
                rejects.push(r);
                continue;
            }
            let username = parse::username(raw.value(USERNAME, i));
            let user_id = self.user_id(username)?;
            let id = review_id(raw.value(GAME, i), username, raw.value(REVIEW, i));
            let seen = match self.reviews.get(&id) {
                Some(seen) => Some(*seen),
                None => self.prior.first_seen(id).map(Seen::Before),
            };
            let first = match seen {
                Some(Seen::Line(first)) => {
                    keep.append(false);
                    rejects.push(Reject::value(
                        line,
                        columns[REVIEW],
                        raw.value(REVIEW, i),
                        format!(
                            "duplicate review (first on line {first}: the same game, username \
                             and text)"
                        ),
                    ));
                    continue;
                }
                Some(Seen::Before(_)) if self.options.only_new => {
                    keep.append(false);
                    known += 1;
                    continue;
                }
                Some(Seen::Before(day)) => day,
                None => self.run_day,
            };
            let parsed = (|| {
                let bad = |c: usize, reason: String| {
                    Reject::value(line, columns[c], raw.value(c, i), reason)
                };
                let game_id = self
                    .index
                    .game_id(raw.value(GAME, i))
                    .ok_or_else(|| bad(GAME, "unknown game".to_owned()))?;
                let h = parse::thousands_f32(raw.value(HOURS, i)).map_err(|e| bad(HOURS, e))?;
                let hp =
                    parse::thousands_i64(raw.value(HELPFUL, i)).map_err(|e| bad(HELPFUL, e))?;
                let f = parse::thousands_i64(raw.value(FUNNY, i)).map_err(|e| bad(FUNNY, e))?;
                let r = match raw.value(RECOMMENDATION, i).trim() {
                    "Recommended" => Some(true),
                    "Not Recommended" => Some(false),
                    "" => None,
                    _ => {
                        return Err(bad(
                            RECOMMENDATION,
                            "expected 'Recommended' or 'Not Recommended'".to_owned(),
                        ))
                    }
                };
                let d = parse::review_date(raw.value(DATE, i), self.options.reference_year)
                    .map_err(|e| bad(DATE, e))?;
                Ok((game_id, h, hp, f, r, d))
            })();
            match parsed {
                Ok((game_id, h, hp, f, r, d)) => {
                    keep.append(true);
                    hours.append_option(h);
                    helpful.append_option(hp);
                    funny.append_option(f);
                    recommendation.append_option(r);
                    date.append_option(d.map(parse::date32));
                    user.append_value(user_id);
                    game.append_value(game_id);
                    key.append_value(id);
                    first_seen.append_value(first);
                    self.reviews.insert(id, Seen::Line(line));
                }
                Err(r) => {
                    keep.append(false);
                    rejects.push(r);
                }
            }
        }
        let keep = BooleanArray::new(keep.finish(), None);
        let review: &StringArray = raw.column(REVIEW);
        let review = filter(review, &keep).map_err(|e| Error::arrow("filtering reviews", e))?;
        let batch = RecordBatch::try_new(
            Table::GamesReviews.schema(),
            vec![
                review,
                Arc::new(hours.finish()),
                Arc::new(helpful.finish()),
                Arc::new(funny.finish()),
                Arc::new(recommendation.finish()),
                Arc::new(date.finish()),
                Arc::new(user.finish()),
                Arc::new(game.finish()),
                Arc::new(key.finish()),
                Arc::new(first_seen.finish()),
            ],
        )
        .map_err(|e| Error::arrow("building games_reviews", e))?;
        Ok(Cleaned {
            batch,
            rejects,
            known,
        })
    }

    /// Number of new users seen so far (not known to the [`Prior`]).
    pub fn users(&self) -> usize {
        self.usernames.len()
    }

    /// users_mapping, by id: every known user (unless [`ReviewOptions::only_new`]), then every new
    /// username seen, with its id.
    pub fn finish(self) -> Result<RecordBatch> {
        let mut rows: Vec<(i32, &str)> = Vec::new();
        if !self.options.only_new {
            rows.extend(self.prior.users.iter().map(|(n, i)| (i, n)));
            rows.sort_unstable();
        }
        let first_new = self.prior.users.max() + 1;
        let new = (first_new..).zip(self.usernames.iter().map(String::as_str));
        rows.extend(new);
        RecordBatch::try_new(
            Table::UsersMapping.schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .map_err(|e| Error::arrow("building users_mapping", e))
    }
}

impl crate::StreamingCleaner for ReviewCleaner {
    const TABLE: Table = Table::GamesReviews;
    const FINAL_TABLE: Table = Table::UsersMapping;
    const FILE: RawFile = RawFile::GameReviews;

    fn push(&mut self, batch: &RecordBatch) -> Result<Cleaned> {
        ReviewCleaner::push(self, batch)
    }

    fn finish(self) -> Result<RecordBatch> {
        ReviewCleaner::finish(self)
    }
}
