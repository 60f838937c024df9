//! Top-k recommendations for every user, in the results schema of Spark ML's
//! `recommendForAllUsers`: over every game (Spark's semantics) or over the games each user has not
//! reviewed.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array, ListArray, RecordBatch, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, SchemaRef};
use nalgebra::DMatrix;
use rayon::prelude::*;
use steam_core::recommendations_schema;
use steam_core::{Error, Result};

use crate::als::AlsModel;
use crate::ratings::Ratings;

/// Users scored together in one matrix product.
const BLOCK: usize = 512;

/// The `k` best (item index, score) of one column of scores: highest score first, ties by
/// ascending item index. `skip` lists item indices left out (sorted).
pub(crate) fn top_k(scores: &[f32], k: usize, skip: &[usize]) -> Vec<(usize, f32)> {
    // Kept sorted best first; a score enters only if it beats the current k-th.
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    let better = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    for (i, &score) in scores.iter().enumerate() {
        if best.len() == k {
            let worst = best[k - 1];
            // Items come in ascending order, so a tie with the k-th never enters.
            if score.total_cmp(&worst.1).is_le() {
                continue;
            }
        }
        if skip.binary_search(&i).is_ok() {
            continue;
        }
        let at = best.partition_point(|b| better(b, &(i, score)).is_lt());
        best.insert(at, (i, score));
        best.truncate(k);
    }
    best
}

impl AlsModel {
    /// The items' factors as a matrix with one row per item, for scoring.
    pub(crate) fn item_rows(&self) -> DMatrix<f32> {
        DMatrix::from_row_slice(self.items.len(), self.rank, &self.item_factors)
    }

    /// Scores users `users` (dense indices) against every item (`items` = [`Self::item_rows`]):
    /// an items × users matrix, one column per user, by one matrix product.
    pub(crate) fn scores(
        &self,
        items: &DMatrix<f32>,
        users: std::ops::Range<usize>,
    ) -> DMatrix<f32> {
        let block = DMatrix::from_column_slice(
            self.rank,
            users.len(),
            &self.user_factors[users.start * self.rank..users.end * self.rank],
        );
        items * block
    }

    /// The top `k` items of every user, over all items (items the user already rated included,
    /// as in Spark; see [`AlsModel::recommend_unseen`]), in batches of up to `batch_users` users,
    /// ordered by user id:
    /// [`recommendations_schema`] (`user_id`, `recommendations` list of (`game_id`, `rating`),
    /// best first). Scores are f32 dot products; ties go to the lower item id.
    pub fn recommend_for_all_users(
        &self,
        k: usize,
        batch_users: usize,
    ) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        let batch_users = batch_users.max(1);
        let n = self.users.len();
        (0..n.div_ceil(batch_users)).map(move |b| {
            let range = b * batch_users..((b + 1) * batch_users).min(n);
            self.recommend_batch(range, k, None)
        })
    }

    /// [`AlsModel::recommend_for_all_users`] over the games each user has not reviewed in
    /// `train` (the training data): a user is never recommended a game it already reviewed. A
    /// user who reviewed every game gets an empty list.
    pub fn recommend_unseen<'a>(
        &'a self,
        train: &Ratings,
        k: usize,
        batch_users: usize,
    ) -> impl Iterator<Item = Result<RecordBatch>> + 'a {
        let seen = Seen::new(self, train);
        let batch_users = batch_users.max(1);
        let n = self.users.len();
        (0..n.div_ceil(batch_users)).map(move |b| {
            let range = b * batch_users..((b + 1) * batch_users).min(n);
            self.recommend_batch(range, k, Some(&seen))
        })
    }

    fn recommend_batch(
        &self,
        users: std::ops::Range<usize>,
        k: usize,
        seen: Option<&Seen>,
    ) -> Result<RecordBatch> {
        let blocks: Vec<std::ops::Range<usize>> = users
            .clone()
            .step_by(BLOCK)
            .map(|s| s..(s + BLOCK).min(users.end))
            .collect();
        let items = self.item_rows();
        let tops: Vec<Vec<(usize, f32)>> = blocks
            .into_par_iter()
            .flat_map_iter(|block| {
                let scores = self.scores(&items, block.clone());
                (0..block.len())
                    .map(|c| {
                        let skip = seen.map(|s| s.of(block.start + c)).unwrap_or(&[]);
                        top_k(scores.column(c).as_slice(), k, skip)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let user_ids = Int32Array::from(self.users.ids[users].to_vec());
        let lengths = tops.iter().map(Vec::len);
        let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
        let game_ids: Int32Array = tops
            .iter()
            .flatten()
            .map(|(i, _)| self.items.ids[*i])
            .collect();
        let ratings: Float32Array = tops.iter().flatten().map(|(_, s)| *s).collect();
        let schema = recommendations_schema();
        build(
            schema,
            user_ids,
            offsets,
            game_ids,
            ratings,
            "user_recommendations",
        )
    }
}

/// The items each user of a model reviewed in some ratings: dense item indices, sorted, grouped
/// by dense user index.
struct Seen {
    offsets: Vec<usize>,
    items: Vec<usize>,
}

impl Seen {
    fn new(model: &AlsModel, ratings: &Ratings) -> Self {
        let mut pairs: Vec<(usize, usize)> = ratings
            .users()
            .par_iter()
            .zip(ratings.items())
            .filter_map(|(u, i)| Some((model.users.get(*u)?, model.items.get(*i)?)))
            .collect();
        pairs.par_sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0usize; model.users.len() + 1];
        for (u, _) in &pairs {
            offsets[u + 1] += 1;
        }
        for u in 0..model.users.len() {
            offsets[u + 1] += offsets[u];
        }
        Seen {
            offsets,
            items: pairs.into_iter().map(|(_, i)| i).collect(),
        }
    }

    fn of(&self, user: usize) -> &[usize] {
        &self.items[self.offsets[user]..self.offsets[user + 1]]
    }
}

/// A batch of `schema` (a key column, then a list of (id, score) structs) from its columns;
/// `what` names it in errors.
pub(crate) fn build(
    schema: SchemaRef,
    keys: Int32Array,
    offsets: OffsetBuffer<i32>,
    ids: Int32Array,
    scores: Float32Array,
    what: &str,
) -> Result<RecordBatch> {
    let fail = |e| Error::arrow(format!("building {what}"), e);
    let DataType::List(element) = schema.field(1).data_type().clone() else {
        return Err(Error::Schema {
            target: what.into(),
            reason: "the second column is not a list".into(),
        });
    };
    let DataType::Struct(fields) = element.data_type().clone() else {
        return Err(Error::Schema {
            target: what.into(),
            reason: "the list does not hold structs".into(),
        });
    };
    let items = StructArray::try_new(
        fields,
        vec![Arc::new(ids) as ArrayRef, Arc::new(scores)],
        None,
    )
    .map_err(fail)?;
    let list = ListArray::try_new(element, offsets, Arc::new(items), None).map_err(fail)?;
    RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(list)]).map_err(fail)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int32Type};

    use super::*;
    use crate::AlsParams;

    #[test]
    fn top_k_orders_by_score_then_item() {
        let scores = [0.5, 0.9, 0.5, 0.1, 0.9];
        assert_eq!(top_k(&scores, 3, &[]), vec![(1, 0.9), (4, 0.9), (0, 0.5)]);
        assert_eq!(top_k(&scores, 10, &[1]).len(), 4);
        assert_eq!(top_k(&scores, 2, &[1, 4]), vec![(0, 0.5), (2, 0.5)]);
        assert_eq!(top_k(&scores, 1, &[]), vec![(1, 0.9)]);
        // Against a full sort, on many random columns with ties.
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..200 {
            let column: Vec<f32> = (0..50).map(|_| rng.u8(0..20) as f32 / 4.0).collect();
            let skip: Vec<usize> = (0..50).filter(|_| rng.u8(0..5) == 0).collect();
            let mut all: Vec<(usize, f32)> = column
                .iter()
                .copied()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(7);
            assert_eq!(top_k(&column, 7, &skip), all);
        }
        assert!(top_k(&scores, 0, &[]).is_empty());
    }

    #[test]
    fn recommendations_match_brute_force_and_include_rated_items() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut r = Ratings::new();
        for _ in 0..3000 {
            let u = rng.i32(0..700) * 3;
            let i = rng.i32(0..40) + 100;
            r.push(u, i, rng.u8(0..2) as f32);
        }
        let model = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        let batches: Vec<RecordBatch> = model
            .recommend_for_all_users(10, 300)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(batches[0].schema(), recommendations_schema());
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, model.num_users());
        let mut previous = i32::MIN;
        for b in &batches {
            let users = b.column(0).as_primitive::<Int32Type>();
            let lists = b.column(1).as_list::<i32>();
            for row in 0..b.num_rows() {
                let user = users.value(row);
                assert!(user > previous, "users ascending");
                previous = user;
                let recs = lists.value(row);
                let recs = recs.as_struct();
                let games = recs.column(0).as_primitive::<Int32Type>();
                let ratings = recs.column(1).as_primitive::<Float32Type>();
                assert_eq!(games.len(), 10);
                // Brute force: every item's prediction; the 10th best bounds the rest.
                let mut all: Vec<(i32, f32)> = model
                    .item_ids()
                    .iter()
                    .map(|i| (*i, model.predict(user, *i).unwrap()))
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                for (k, (game, rating)) in all.iter().take(10).enumerate() {
                    assert_eq!(games.value(k), *game);
                    assert!((ratings.value(k) - rating).abs() < 1e-5);
                }
            }
        }
        // Spark does not remove rated items: some user's top 10 holds an item it rated.
        let rated: std::collections::HashSet<(i32, i32)> = r
            .users()
            .iter()
            .zip(r.items())
            .map(|(u, i)| (*u, *i))
            .collect();
        let overlap = batches.iter().any(|b| {
            let users = b.column(0).as_primitive::<Int32Type>();
            let lists = b.column(1).as_list::<i32>();
            (0..b.num_rows()).any(|row| {
                let recs = lists.value(row);
                let games = recs
                    .as_struct()
                    .column(0)
                    .as_primitive::<Int32Type>()
                    .clone();
                games
                    .values()
                    .iter()
                    .any(|g| rated.contains(&(users.value(row), *g)))
            })
        });
        assert!(overlap);
    }

    #[test]
    fn fewer_items_than_k_gives_every_item() {
        let mut r = Ratings::new();
        r.push(1, 10, 1.0);
        r.push(2, 11, 0.0);
        r.push(1, 12, 1.0);
        let model = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        let b = model
            .recommend_for_all_users(10, 100)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(1).as_list::<i32>().value(0).len(), 3);
    }

    #[test]
    fn unseen_recommendations_leave_out_reviewed_games() {
        let mut rng = fastrand::Rng::with_seed(8);
        let mut r = Ratings::new();
        for _ in 0..4000 {
            r.push_review(
                rng.i32(0..300),
                rng.i32(0..30),
                1.0,
                rng.f32() * 100.0,
                None,
            );
        }
        let model = AlsModel::fit(
            &r,
            &AlsParams {
                reg_param: 0.1,
                ..AlsParams::default()
            },
        )
        .unwrap();
        let mut reviewed: std::collections::HashMap<i32, Vec<i32>> = Default::default();
        for (u, i) in r.users().iter().zip(r.items()) {
            reviewed.entry(*u).or_default().push(*i);
        }
        let mut users = 0;
        for b in model.recommend_unseen(&r, 10, 64) {
            let b = b.unwrap();
            let ids = b.column(0).as_primitive::<Int32Type>();
            let lists = b.column(1).as_list::<i32>();
            for row in 0..b.num_rows() {
                users += 1;
                let user = ids.value(row);
                let games = lists.value(row);
                let games = games
                    .as_struct()
                    .column(0)
                    .as_primitive::<Int32Type>()
                    .clone();
                let seen = &reviewed[&user];
                let unseen = 30 - {
                    let mut s = seen.clone();
                    s.sort_unstable();
                    s.dedup();
                    s.len()
                };
                assert_eq!(games.len(), unseen.min(10));
                // The best unseen games by the model's scores, in order.
                let mut all: Vec<(i32, f32)> = (0..30)
                    .filter(|i| !seen.contains(i))
                    .map(|i| (i, model.predict(user, i).unwrap()))
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let want: Vec<i32> = all.iter().take(10).map(|(i, _)| *i).collect();
                assert_eq!(games.values().to_vec(), want);
            }
        }
        assert_eq!(users, model.num_users());
    }
}
