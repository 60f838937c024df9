//! Ratings: (user, item, rating) triples, with each review's hours played and date, read from
//! Arrow batches; their random split and their split by each user's latest review.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int32Type};
use steam_core::{Error, Result};

/// The columns ratings are read from. The defaults are games_reviews': `user_id`, `game_id`,
/// `recommendation` (a boolean, read as 1.0 for a recommendation and 0.0 otherwise, as the
/// reference cast it to an integer), `hours_played` and `date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingColumns {
    /// The user id column: Int32, or an integer type that fits Int32.
    pub user: String,
    /// The item id column: Int32, or an integer type that fits Int32.
    pub item: String,
    /// The rating column: Boolean (1.0 / 0.0) or any numeric type (read as Float32).
    pub rating: String,
    /// The hours-played column (any numeric type), the implicit model's confidence; `None` reads
    /// every review as 0 hours. A null is read as 0 hours.
    pub hours: Option<String>,
    /// The review date column (Date32 or Date64), for the split by each user's latest review;
    /// `None` gives every review the same date (the latest is then the last in input order).
    pub date: Option<String>,
}

impl Default for RatingColumns {
    fn default() -> Self {
        RatingColumns {
            user: "user_id".into(),
            item: "game_id".into(),
            rating: "recommendation".into(),
            hours: Some("hours_played".into()),
            date: Some("date".into()),
        }
    }
}

impl RatingColumns {
    /// Every column read, in order: user, item, rating, then hours and date where set.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.user.as_str(), self.item.as_str(), self.rating.as_str()];
        names.extend(self.hours.as_deref());
        names.extend(self.date.as_deref());
        names
    }
}

/// A date with no value: before every real date.
const NO_DATE: i32 = i32::MIN;

/// Ratings as parallel columns, in input order: user, item, rating, hours played, date (days since
/// the epoch). The same (user, item) pair may occur more than once; the explicit model (like Spark
/// ML) counts each occurrence, the implicit model adds their confidences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratings {
    users: Vec<i32>,
    items: Vec<i32>,
    values: Vec<f32>,
    hours: Vec<f32>,
    days: Vec<i32>,
    skipped: u64,
}

fn column_error(column: &str, reason: String) -> Error {
    Error::Schema {
        target: format!("ratings column {column:?}"),
        reason,
    }
}

/// A column as Int32 (exact casts only: a value that does not fit is an error).
fn ids(batch: &RecordBatch, column: &str) -> Result<arrow::array::Int32Array> {
    let array = batch.column_by_name(column).ok_or_else(|| {
        let found: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        column_error(column, format!("missing (found: {})", found.join(", ")))
    })?;
    if !array.data_type().is_integer() {
        return Err(column_error(
            column,
            format!("is {}, expected an integer type", array.data_type()),
        ));
    }
    let cast = arrow::compute::cast_with_options(
        array,
        &DataType::Int32,
        &arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| column_error(column, format!("does not fit Int32: {e}")))?;
    Ok(cast.as_primitive::<Int32Type>().clone())
}

fn rating_values(batch: &RecordBatch, column: &str) -> Result<arrow::array::Float32Array> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| column_error(column, "missing from the batch".into()))?;
    let ok = matches!(array.data_type(), DataType::Boolean) || array.data_type().is_numeric();
    if !ok {
        return Err(column_error(
            column,
            format!("is {}, expected Boolean or a number", array.data_type()),
        ));
    }
    let cast = arrow::compute::cast(array, &DataType::Float32)
        .map_err(|e| column_error(column, format!("cannot be read as Float32: {e}")))?;
    Ok(cast.as_primitive::<Float32Type>().clone())
}

fn hours_values(batch: &RecordBatch, column: &str) -> Result<arrow::array::Float32Array> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| column_error(column, "missing from the batch".into()))?;
    if !array.data_type().is_numeric() {
        return Err(column_error(
            column,
            format!("is {}, expected a number of hours", array.data_type()),
        ));
    }
    let cast = arrow::compute::cast(array, &DataType::Float32)
        .map_err(|e| column_error(column, format!("cannot be read as Float32: {e}")))?;
    Ok(cast.as_primitive::<Float32Type>().clone())
}

fn date_values(batch: &RecordBatch, column: &str) -> Result<arrow::array::Date32Array> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| column_error(column, "missing from the batch".into()))?;
    if !matches!(array.data_type(), DataType::Date32 | DataType::Date64) {
        return Err(column_error(
            column,
            format!("is {}, expected Date32 or Date64", array.data_type()),
        ));
    }
    let cast = arrow::compute::cast(array, &DataType::Date32)
        .map_err(|e| column_error(column, format!("cannot be read as Date32: {e}")))?;
    Ok(cast.as_primitive::<arrow::datatypes::Date32Type>().clone())
}

impl Ratings {
    /// No ratings.
    pub fn new() -> Self {
        Ratings::default()
    }

    /// Adds one rating with no hours played and no date. A non-finite rating is counted as
    /// skipped, not added.
    pub fn push(&mut self, user: i32, item: i32, rating: f32) {
        self.push_review(user, item, rating, 0.0, None);
    }

    /// Adds one review: its rating, hours played (a negative or non-finite number is read as 0)
    /// and date in days since the epoch. A non-finite rating is counted as skipped, not added.
    pub fn push_review(&mut self, user: i32, item: i32, rating: f32, hours: f32, day: Option<i32>) {
        if !rating.is_finite() {
            self.skipped += 1;
            return;
        }
        self.users.push(user);
        self.items.push(item);
        self.values.push(rating);
        self.hours.push(if hours.is_finite() {
            hours.max(0.0)
        } else {
            0.0
        });
        self.days.push(day.unwrap_or(NO_DATE));
    }

    /// Adds the rows of `batch`. Rows with a null user, item or rating, or a non-finite rating,
    /// are skipped and counted ([`Ratings::skipped`]); a missing column or one of the wrong type
    /// is an error naming it.
    pub fn extend_from_batch(
        &mut self,
        batch: &RecordBatch,
        columns: &RatingColumns,
    ) -> Result<()> {
        let users = ids(batch, &columns.user)?;
        let items = ids(batch, &columns.item)?;
        let values = rating_values(batch, &columns.rating)?;
        let hours = columns
            .hours
            .as_deref()
            .map(|c| hours_values(batch, c))
            .transpose()?;
        let days = columns
            .date
            .as_deref()
            .map(|c| date_values(batch, c))
            .transpose()?;
        let n = batch.num_rows();
        self.users.reserve(n);
        self.items.reserve(n);
        self.values.reserve(n);
        self.hours.reserve(n);
        self.days.reserve(n);
        for row in 0..n {
            if users.is_null(row) || items.is_null(row) || values.is_null(row) {
                self.skipped += 1;
                continue;
            }
            let h = match &hours {
                Some(h) if h.is_valid(row) => h.value(row),
                _ => 0.0,
            };
            let d = match &days {
                Some(d) if d.is_valid(row) => Some(d.value(row)),
                _ => None,
            };
            self.push_review(users.value(row), items.value(row), values.value(row), h, d);
        }
        Ok(())
    }

    /// The number of ratings.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no ratings.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The hours played, one per rating (0 where unknown).
    pub fn hours(&self) -> &[f32] {
        &self.hours
    }

    /// The review dates in days since the epoch, one per rating (`None` where unknown).
    pub fn day(&self, k: usize) -> Option<i32> {
        self.days.get(k).copied().filter(|d| *d != NO_DATE)
    }

    fn copy_row(&self, k: usize, into: &mut Ratings) {
        into.users.push(self.users[k]);
        into.items.push(self.items[k]);
        into.values.push(self.values[k]);
        into.hours.push(self.hours[k]);
        into.days.push(self.days[k]);
    }

    /// Rows left out because a user, item or rating was null or a rating was not finite.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The user ids, one per rating.
    pub fn users(&self) -> &[i32] {
        &self.users
    }

    /// The item ids, one per rating.
    pub fn items(&self) -> &[i32] {
        &self.items
    }

    /// The ratings.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The ratings as one batch with the columns of `columns`: user and item (Int32), rating,
    /// hours (Float32) and date (Date32, null where unknown), so that another tool can train on
    /// the same split.
    pub fn to_batch(&self, columns: &RatingColumns) -> Result<RecordBatch> {
        use arrow::array::{ArrayRef, Date32Array, Float32Array, Int32Array};
        use arrow::datatypes::{Field, Schema};
        let mut fields = vec![
            Field::new(&columns.user, DataType::Int32, false),
            Field::new(&columns.item, DataType::Int32, false),
            Field::new(&columns.rating, DataType::Float32, false),
        ];
        let mut arrays: Vec<ArrayRef> = vec![
            std::sync::Arc::new(Int32Array::from(self.users.clone())),
            std::sync::Arc::new(Int32Array::from(self.items.clone())),
            std::sync::Arc::new(Float32Array::from(self.values.clone())),
        ];
        if let Some(hours) = &columns.hours {
            fields.push(Field::new(hours, DataType::Float32, false));
            arrays.push(std::sync::Arc::new(Float32Array::from(self.hours.clone())));
        }
        if let Some(date) = &columns.date {
            fields.push(Field::new(date, DataType::Date32, true));
            let days: Date32Array = self
                .days
                .iter()
                .map(|d| (*d != NO_DATE).then_some(*d))
                .collect();
            arrays.push(std::sync::Arc::new(days));
        }
        RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::arrow("ratings as a batch", e))
    }

    /// Splits the ratings at random, each one independently, into (kept, held out) with
    /// `holdout` the expected fraction held out, as Spark's `randomSplit` does. Deterministic for
    /// a seed and an input order. `holdout` must be in [0, 1).
    pub fn split(&self, holdout: f64, seed: u64) -> Result<(Ratings, Ratings)> {
        if !(0.0..1.0).contains(&holdout) {
            return Err(Error::Config {
                key: "holdout".into(),
                reason: format!("{holdout} is not in [0, 1)"),
            });
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut kept = Ratings::new();
        let mut held = Ratings::new();
        for k in 0..self.len() {
            let into = if rng.f64() < holdout {
                &mut held
            } else {
                &mut kept
            };
            self.copy_row(k, into);
        }
        kept.skipped = self.skipped;
        Ok((kept, held))
    }

    /// Holds out each user's most recent review, as production would (train on the past, predict
    /// the next): the one with the latest date, the later in input order among equal dates (an
    /// unknown date is earlier than every known one). Users with a single review keep it: holding
    /// it out would leave nothing to learn the user from. Returns (kept, held out).
    pub fn split_latest(&self) -> (Ratings, Ratings) {
        let mut latest: std::collections::HashMap<i32, (usize, usize)> =
            std::collections::HashMap::new();
        for k in 0..self.len() {
            let e = latest.entry(self.users[k]).or_insert((k, 0));
            if (self.days[k], k) >= (self.days[e.0], e.0) {
                e.0 = k;
            }
            e.1 += 1;
        }
        let mut held_rows = vec![false; self.len()];
        for (row, count) in latest.values() {
            if *count > 1 {
                held_rows[*row] = true;
            }
        }
        let mut kept = Ratings::new();
        let mut held = Ratings::new();
        for (k, held_row) in held_rows.iter().enumerate() {
            self.copy_row(k, if *held_row { &mut held } else { &mut kept });
        }
        kept.skipped = self.skipped;
        (kept, held)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    /// The three columns only.
    fn bare() -> RatingColumns {
        RatingColumns {
            hours: None,
            date: None,
            ..RatingColumns::default()
        }
    }

    fn batch(
        users: Vec<Option<i64>>,
        items: Vec<Option<i32>>,
        recs: Vec<Option<bool>>,
    ) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("game_id", DataType::Int32, true),
            Field::new("recommendation", DataType::Boolean, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(users)),
                Arc::new(Int32Array::from(items)),
                Arc::new(BooleanArray::from(recs)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn reads_booleans_as_zero_one_and_skips_nulls() {
        let mut r = Ratings::new();
        let b = batch(
            vec![Some(1), Some(2), None, Some(3)],
            vec![Some(10), Some(11), Some(12), Some(13)],
            vec![Some(true), Some(false), Some(true), None],
        );
        r.extend_from_batch(&b, &bare()).unwrap();
        assert_eq!(r.users(), &[1, 2]);
        assert_eq!(r.items(), &[10, 11]);
        assert_eq!(r.values(), &[1.0, 0.0]);
        assert_eq!(r.skipped(), 2);
    }

    #[test]
    fn names_a_missing_or_mistyped_column() {
        let mut r = Ratings::new();
        let b = batch(vec![Some(1)], vec![Some(1)], vec![Some(true)]);
        let columns = RatingColumns {
            rating: "stars".into(),
            ..bare()
        };
        let e = r.extend_from_batch(&b, &columns).unwrap_err().to_string();
        assert!(e.contains("stars"), "{e}");

        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("game_id", DataType::Int32, false),
            Field::new("recommendation", DataType::Boolean, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(BooleanArray::from(vec![true])),
            ],
        )
        .unwrap();
        let e = r.extend_from_batch(&b, &bare()).unwrap_err().to_string();
        assert!(e.contains("user_id") && e.contains("integer"), "{e}");
    }

    #[test]
    fn ids_out_of_int32_range_are_an_error() {
        let mut r = Ratings::new();
        let b = batch(vec![Some(1 << 40)], vec![Some(1)], vec![Some(true)]);
        let e = r.extend_from_batch(&b, &bare()).unwrap_err().to_string();
        assert!(e.contains("user_id"), "{e}");
        assert!(r.is_empty());
    }

    #[test]
    fn split_is_deterministic_and_complete() {
        let mut r = Ratings::new();
        for k in 0..10_000 {
            r.push(k % 97, k % 31, (k % 2) as f32);
        }
        let (a, b) = r.split(0.2, 7).unwrap();
        let (a2, b2) = r.split(0.2, 7).unwrap();
        assert_eq!(a, a2);
        assert_eq!(b, b2);
        assert_eq!(a.len() + b.len(), r.len());
        let fraction = b.len() as f64 / r.len() as f64;
        assert!((0.18..0.22).contains(&fraction), "{fraction}");
        let (_, b3) = r.split(0.2, 8).unwrap();
        assert_ne!(b, b3);
        let e = r.split(1.0, 1).unwrap_err().to_string();
        assert!(e.contains("1"), "{e}");
    }

    #[test]
    fn reads_hours_and_dates_and_names_a_missing_one() {
        use arrow::array::{Date32Array, Float64Array};
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int32, false),
            Field::new("game_id", DataType::Int32, false),
            Field::new("recommendation", DataType::Boolean, false),
            Field::new("hours_played", DataType::Float64, true),
            Field::new("date", DataType::Date32, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 1, 2])),
                Arc::new(Int32Array::from(vec![5, 6, 5])),
                Arc::new(BooleanArray::from(vec![true, false, true])),
                Arc::new(Float64Array::from(vec![Some(12.5), None, Some(-3.0)])),
                Arc::new(Date32Array::from(vec![Some(19000), None, Some(19001)])),
            ],
        )
        .unwrap();
        let mut r = Ratings::new();
        r.extend_from_batch(&b, &RatingColumns::default()).unwrap();
        assert_eq!(r.hours(), &[12.5, 0.0, 0.0]);
        assert_eq!(
            (r.day(0), r.day(1), r.day(2)),
            (Some(19000), None, Some(19001))
        );
        let columns = RatingColumns {
            hours: Some("playtime".into()),
            ..RatingColumns::default()
        };
        let e = r.extend_from_batch(&b, &columns).unwrap_err().to_string();
        assert!(e.contains("playtime"), "{e}");
        let columns = RatingColumns {
            date: Some("hours_played".into()),
            ..RatingColumns::default()
        };
        let e = r.extend_from_batch(&b, &columns).unwrap_err().to_string();
        assert!(e.contains("hours_played") && e.contains("Date32"), "{e}");
    }

    #[test]
    fn split_latest_holds_out_each_users_last_review() {
        let mut r = Ratings::new();
        r.push_review(1, 10, 1.0, 1.0, Some(5));
        r.push_review(1, 11, 1.0, 1.0, Some(9)); // user 1's latest
        r.push_review(1, 12, 0.0, 1.0, Some(7));
        r.push_review(2, 10, 1.0, 1.0, Some(3)); // user 2's only review stays
        r.push_review(3, 10, 1.0, 1.0, Some(4));
        r.push_review(3, 13, 1.0, 1.0, Some(4)); // a tie: the later row
        r.push_review(4, 14, 1.0, 1.0, Some(1)); // a known date beats an unknown one
        r.push_review(4, 15, 1.0, 1.0, None);
        let (kept, held) = r.split_latest();
        let mut out: Vec<(i32, i32)> = held
            .users()
            .iter()
            .zip(held.items())
            .map(|(u, i)| (*u, *i))
            .collect();
        out.sort();
        assert_eq!(out, vec![(1, 11), (3, 13), (4, 14)]);
        assert_eq!(kept.len() + held.len(), r.len());
        assert_eq!(kept.users(), &[1, 1, 2, 3, 4]);
        assert_eq!(held.day(0), Some(9));
    }

    #[test]
    fn a_batch_of_ratings_reads_back_the_same() {
        let mut r = Ratings::new();
        r.push_review(1, 10, 1.0, 2.5, Some(5));
        r.push_review(2, 11, 0.0, 0.0, None);
        let batch = r.to_batch(&RatingColumns::default()).unwrap();
        assert_eq!(batch.num_columns(), 5);
        let mut back = Ratings::new();
        back.extend_from_batch(&batch, &RatingColumns::default())
            .unwrap();
        assert_eq!(back, r);
        assert_eq!(r.to_batch(&bare()).unwrap().num_columns(), 3);
    }
}
