//! Warm-started training ([`AlsModel::fit_warm`]) and the model's factors as Arrow batches
//! ([`AlsModel::factor_batches`], [`AlsModel::from_factor_batches`]), so that a later run can
//! start from them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float32Array, Int32Array, ListArray, RecordBatch, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Int32Type, Schema, SchemaRef};
use steam_core::{Error, Result};

use super::layout::IdIndex;
use super::model::{train, AlsModel};
use super::params::AlsParams;
use crate::ratings::Ratings;

/// Iterations for a warm-started fit ([`AlsModel::fit_warm`]) from the previous run's model
/// after a day of new reviews: the default of incremental runs, instead of
/// [`AlsParams::iterations`] from scratch.
///
/// Chosen on synthetic taste clusters (2,000 users, 300 games, about 40,000 implicit signed
/// reviews with hours, 20% held out; the test `warm_start_matches_a_cold_fit`): day 1 fit cold
/// (10 iterations) on 90% of the training reviews, day 2 on all of them, the new 10% including
/// new users and games; held-out NDCG@10 of day 2 with λ = 30: cold 0.4583, warm from day 1 after
/// 1 iteration 0.4553, 2: 0.4585, 3: 0.4581. Over three more data sets, λ 10, 30 and 100 and both
/// solvers, 2 iterations always came within 1% of the cold fit (0.994 at worst), 1 did not
/// (0.978 at λ 100), 3 gained under 0.5%. Two iterations cost a fifth of a cold fit. On real
/// reviews (Steam Australia, 49k reviews, `examples/warm_start.rs`), with new ids starting at
/// zero, 1 to 10 warm iterations all give the cold fit's NDCG@10 (0.1605); with new ids started
/// at random, as a cold fit starts them, 1 iteration gave 0.446× and 2 gave 0.869× the cold fit.
pub const WARM_ITERATIONS: usize = 2;

/// The target named by errors reading factors.
const TARGET: &str = "model factors";

fn bad(reason: String) -> Error {
    Error::Schema {
        target: TARGET.into(),
        reason,
    }
}

/// The two sides of the model, as the `side` column names them.
const USER: &str = "user";
const ITEM: &str = "item";

impl AlsModel {
    /// Trains on `ratings` as [`AlsModel::fit`] does, but starting from `previous`: every user and
    /// item `previous` knows starts from its factors there, every other one from zero (so the first
    /// solves rest on the known factors alone, and each new id is solved from them); then
    /// `params.iterations` iterations (see
    /// [`WARM_ITERATIONS`]). The Cholesky solvers solve the items first, from the users' factors,
    /// so it is mostly the users' factors that carry over; conjugate gradient solves the users
    /// first, each from its previous factors. Every feedback and solver `fit` supports; with 0
    /// iterations the result holds `previous`'s factors. `previous` must have `params.rank`
    /// factors (a [`Error::Config`] otherwise); its parameters are not read.
    pub fn fit_warm(
        ratings: &Ratings,
        params: &AlsParams,
        previous: &AlsModel,
    ) -> Result<AlsModel> {
        if previous.rank != params.rank {
            return Err(Error::Config {
                key: "rank".into(),
                reason: format!(
                    "cannot warm start rank {} from a model of rank {}",
                    params.rank, previous.rank
                ),
            });
        }
        train(ratings, params, Some(previous))
    }

    /// The schema of [`AlsModel::factor_batches`]: `side` (Utf8, `user` or `item`), `id`
    /// (Int32) and `factors` (a list of Float32, element field `item`), none of them null.
    pub fn factors_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("side", DataType::Utf8, false),
            Field::new("id", DataType::Int32, false),
            Field::new("factors", factors_type(), false),
        ]))
    }

    /// The model's factors in [`AlsModel::factors_schema`], in batches of up to `rows_per_batch`
    /// rows (at least 1): every user by ascending id, then every item by ascending id. The
    /// values are the model's f32 factors, so [`AlsModel::from_factor_batches`] rebuilds the
    /// same model.
    pub fn factor_batches(
        &self,
        rows_per_batch: usize,
    ) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        let rows_per_batch = rows_per_batch.max(1);
        let users = self.users.len();
        let total = users + self.items.len();
        (0..total.div_ceil(rows_per_batch)).map(move |b| {
            let rows = b * rows_per_batch..((b + 1) * rows_per_batch).min(total);
            let user_rows = rows.start.min(users)..rows.end.min(users);
            let item_rows = rows.start.max(users) - users..rows.end.max(users) - users;
            let sides: StringArray = std::iter::repeat_n(Some(USER), user_rows.len())
                .chain(std::iter::repeat_n(Some(ITEM), item_rows.len()))
                .collect();
            let ids = Int32Array::from(
                [
                    &self.users.ids[user_rows.clone()],
                    &self.items.ids[item_rows.clone()],
                ]
                .concat(),
            );
            let r = self.rank;
            let values = Float32Array::from(
                [
                    &self.user_factors[user_rows.start * r..user_rows.end * r],
                    &self.item_factors[item_rows.start * r..item_rows.end * r],
                ]
                .concat(),
            );
            let offsets = OffsetBuffer::<i32>::from_lengths(std::iter::repeat_n(r, rows.len()));
            let element = Arc::new(Field::new("item", DataType::Float32, true));
            let fail = |e| Error::arrow("model factors as a batch", e);
            let factors =
                ListArray::try_new(element, offsets, Arc::new(values), None).map_err(fail)?;
            RecordBatch::try_new(
                Self::factors_schema(),
                vec![Arc::new(sides), Arc::new(ids), Arc::new(factors)],
            )
            .map_err(fail)
        })
    }

    /// Rebuilds a model from batches of [`AlsModel::factors_schema`], rows in any order and
    /// batches of any size: it predicts and recommends exactly as the model that wrote them. The
    /// `side` column may also be LargeUtf8 or Utf8View, `id` any integer type whose values fit
    /// Int32, `factors` a list, large list or fixed-size list of Float32 or Float64; other
    /// columns are ignored. `params` are the parameters the model was trained with (kept for
    /// [`AlsModel::params`] and later warm starts); their rank must be the length of the factor
    /// lists.
    ///
    /// A [`Error::Schema`] for "model factors" if a column is missing or of another type, a
    /// value is null, a side is neither `user` nor `item`, an id is not an Int32 or appears twice
    /// on its side, a factor list has a length other than the others' or holds a non-finite
    /// value, or there is no user or no item; a [`Error::Config`] for invalid `params`.
    pub fn from_factor_batches(params: AlsParams, batches: &[RecordBatch]) -> Result<AlsModel> {
        params.check()?;
        let mut users = Side::default();
        let mut items = Side::default();
        let mut rank: Option<usize> = None;
        for batch in batches {
            let sides = sides(batch)?;
            let ids = ids(batch)?;
            let lists = Lists::read(batch)?;
            for row in 0..batch.num_rows() {
                if sides.is_null(row) {
                    return Err(bad(format!("row {row} of a batch has a null side")));
                }
                let (side, name) = match sides.value(row) {
                    USER => (&mut users, USER),
                    ITEM => (&mut items, ITEM),
                    other => {
                        return Err(bad(format!(
                            "side {other:?} is neither {USER:?} nor {ITEM:?}"
                        )))
                    }
                };
                if ids.is_null(row) {
                    return Err(bad(format!("a {name} row has a null id")));
                }
                let id = ids.value(row);
                let factors = lists
                    .row(row)
                    .map_err(|why| bad(format!("{name} {id}: {why}")))?;
                let n = factors.len();
                let expected = *rank.get_or_insert(n);
                if n != expected {
                    return Err(bad(format!(
                        "{name} {id} has {n} factors, the rows before it {expected}"
                    )));
                }
                if let Some(v) = factors.iter().find(|v| !v.is_finite()) {
                    return Err(bad(format!("{name} {id} has a non-finite factor {v}")));
                }
                side.rows.push((id, side.factors.len()));
                side.factors.extend_from_slice(factors);
            }
        }
        let Some(rank) = rank else {
            return Err(bad("no rows".into()));
        };
        if rank != params.rank {
            return Err(bad(format!(
                "the factor lists have {rank} values, the parameters' rank is {}",
                params.rank
            )));
        }
        let (users, user_factors) = users.into_index(USER, rank)?;
        let (items, item_factors) = items.into_index(ITEM, rank)?;
        Ok(AlsModel {
            params,
            rank,
            users,
            items,
            user_factors,
            item_factors,
        })
    }
}

/// The type of the `factors` column.
fn factors_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
}

/// The rows of one side as read: (id, start of its factors), and the factors in reading order.
#[derive(Default)]
struct Side {
    rows: Vec<(i32, usize)>,
    factors: Vec<f32>,
}

impl Side {
    /// The ids sorted, with their factors in the same order; duplicates and an empty side are
    /// errors.
    fn into_index(mut self, name: &str, rank: usize) -> Result<(IdIndex, Vec<f32>)> {
        if self.rows.is_empty() {
            return Err(bad(format!("no {name} rows")));
        }
        self.rows.sort_unstable_by_key(|(id, _)| *id);
        if let Some(w) = self.rows.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(bad(format!("{name} {} appears more than once", w[0].0)));
        }
        let mut factors = Vec::with_capacity(self.factors.len());
        for (_, start) in &self.rows {
            factors.extend_from_slice(&self.factors[*start..*start + rank]);
        }
        let ids = self.rows.into_iter().map(|(id, _)| id).collect();
        Ok((IdIndex { ids }, factors))
    }
}

/// The column `name` of `batch`, or an error naming what the batch holds.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    batch.column_by_name(name).ok_or_else(|| {
        let found: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        bad(format!("no {name} column (found: {})", found.join(", ")))
    })
}

/// The `side` column as Utf8.
fn sides(batch: &RecordBatch) -> Result<StringArray> {
    let array = column(batch, "side")?;
    if !matches!(
        array.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(bad(format!("side is {}, expected Utf8", array.data_type())));
    }
    let cast = arrow::compute::cast(array, &DataType::Utf8)
        .map_err(|e| bad(format!("side cannot be read as Utf8: {e}")))?;
    Ok(cast.as_string::<i32>().clone())
}

/// The `id` column as Int32 (exact casts only).
fn ids(batch: &RecordBatch) -> Result<Int32Array> {
    let array = column(batch, "id")?;
    if !array.data_type().is_integer() {
        return Err(bad(format!("id is {}, expected Int32", array.data_type())));
    }
    let cast = arrow::compute::cast_with_options(
        array,
        &DataType::Int32,
        &arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| bad(format!("id does not fit Int32: {e}")))?;
    Ok(cast.as_primitive::<Int32Type>().clone())
}

/// The `factors` column: each row's range of the Float32 values (`None` for a null row).
struct Lists {
    ranges: Vec<Option<std::ops::Range<usize>>>,
    values: Float32Array,
}

impl Lists {
    fn read(batch: &RecordBatch) -> Result<Lists> {
        let array = column(batch, "factors")?;
        let mistyped = || {
            bad(format!(
                "factors is {}, expected a list of Float32",
                array.data_type()
            ))
        };
        let valid = |row: usize| array.is_valid(row);
        let (ranges, values): (Vec<_>, &Arc<dyn Array>) = match array.data_type() {
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                (list_ranges(list.value_offsets(), valid), list.values())
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                (list_ranges(list.value_offsets(), valid), list.values())
            }
            DataType::FixedSizeList(_, _) => {
                let list = array.as_fixed_size_list();
                // Slicing a fixed-size list slices its values: row r is at r·n.
                let n = list.value_length().max(0) as usize;
                let ranges = (0..list.len())
                    .map(|row| valid(row).then(|| row * n..(row + 1) * n))
                    .collect();
                (ranges, list.values())
            }
            _ => return Err(mistyped()),
        };
        if !matches!(values.data_type(), DataType::Float32 | DataType::Float64) {
            return Err(mistyped());
        }
        let values = arrow::compute::cast(values, &DataType::Float32)
            .map_err(|e| bad(format!("factors cannot be read as Float32: {e}")))?;
        Ok(Lists {
            ranges,
            values: values.as_primitive::<Float32Type>().clone(),
        })
    }

    /// The factors of `row`, or why they cannot be read.
    fn row(&self, row: usize) -> std::result::Result<&[f32], String> {
        let range = self
            .ranges
            .get(row)
            .ok_or("no factor list")?
            .clone()
            .ok_or("null factors")?;
        let factors = self
            .values
            .values()
            .get(range.clone())
            .ok_or("factor list offsets out of range")?;
        if self.values.null_count() > 0 && range.into_iter().any(|j| self.values.is_null(j)) {
            return Err("a null factor".into());
        }
        Ok(factors)
    }
}

/// The value range of each row of a list array with `offsets`, `None` for a null row.
fn list_ranges<O: arrow::array::OffsetSizeTrait>(
    offsets: &[O],
    valid: impl Fn(usize) -> bool,
) -> Vec<Option<std::ops::Range<usize>>> {
    offsets
        .windows(2)
        .enumerate()
        .map(|(row, w)| valid(row).then(|| w[0].as_usize()..w[1].as_usize()))
        .collect()
}
