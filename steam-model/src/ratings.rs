//! Ratings: (user, item, rating) triples read from Arrow batches, and their random split.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int32Type};
use steam_core::{Error, Result};

/// The columns ratings are read from. The defaults are games_reviews': `user_id`, `game_id` and
/// `recommendation` (a boolean, read as 1.0 for a recommendation and 0.0 otherwise, as the
/// reference cast it to an integer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingColumns {
    /// The user id column: Int32, or an integer type that fits Int32.
    pub user: String,
    /// The item id column: Int32, or an integer type that fits Int32.
    pub item: String,
    /// The rating column: Boolean (1.0 / 0.0) or any numeric type (read as Float32).
    pub rating: String,
}

impl Default for RatingColumns {
    fn default() -> Self {
        RatingColumns {
            user: "user_id".into(),
            item: "game_id".into(),
            rating: "recommendation".into(),
        }
    }
}

/// Ratings as three parallel columns, in input order. The same (user, item) pair may occur more
/// than once; like Spark ML, training then counts each occurrence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratings {
    users: Vec<i32>,
    items: Vec<i32>,
    values: Vec<f32>,
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

impl Ratings {
    /// No ratings.
    pub fn new() -> Self {
        Ratings::default()
    }

    /// Adds one rating. A non-finite rating is counted as skipped, not added.
    pub fn push(&mut self, user: i32, item: i32, rating: f32) {
        if !rating.is_finite() {
            self.skipped += 1;
            return;
        }
        self.users.push(user);
        self.items.push(item);
        self.values.push(rating);
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
        let no_nulls =
            users.null_count() == 0 && items.null_count() == 0 && values.null_count() == 0;
        self.users.reserve(batch.num_rows());
        self.items.reserve(batch.num_rows());
        self.values.reserve(batch.num_rows());
        if no_nulls {
            for ((u, i), r) in users
                .values()
                .iter()
                .zip(items.values())
                .zip(values.values())
            {
                self.push(*u, *i, *r);
            }
        } else {
            for row in 0..batch.num_rows() {
                if users.is_null(row) || items.is_null(row) || values.is_null(row) {
                    self.skipped += 1;
                } else {
                    self.push(users.value(row), items.value(row), values.value(row));
                }
            }
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
            into.users.push(self.users[k]);
            into.items.push(self.items[k]);
            into.values.push(self.values[k]);
        }
        kept.skipped = self.skipped;
        Ok((kept, held))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

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
        r.extend_from_batch(&b, &RatingColumns::default()).unwrap();
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
            ..RatingColumns::default()
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
        let e = r
            .extend_from_batch(&b, &RatingColumns::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("user_id") && e.contains("integer"), "{e}");
    }

    #[test]
    fn ids_out_of_int32_range_are_an_error() {
        let mut r = Ratings::new();
        let b = batch(vec![Some(1 << 40)], vec![Some(1)], vec![Some(true)]);
        let e = r
            .extend_from_batch(&b, &RatingColumns::default())
            .unwrap_err()
            .to_string();
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
}
