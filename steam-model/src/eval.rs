//! Evaluation: RMSE on ratings (Spark's RegressionEvaluator after a cold-start drop), and ranking
//! metrics at k — precision, recall, NDCG, MAP and catalog coverage — of any [`Recommender`] on
//! held-out reviews, with the popularity and random baselines computed by the same code.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int32Type;
use rayon::prelude::*;
use steam_core::{Error, Result};

use crate::als::{dot, AlsModel};
use crate::ratings::Ratings;
use crate::recommend::top_k;

/// Root-mean-square error of a model's predictions on some ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rmse {
    /// The RMSE over the ratings predicted, `NaN` if there were none.
    pub rmse: f64,
    /// Ratings predicted.
    pub predicted: usize,
    /// Ratings left out because their user or item was not in training (cold start).
    pub dropped: usize,
}

impl AlsModel {
    /// The RMSE of the model's predictions on `ratings`, dropping ratings of users or items the
    /// model has not seen (Spark's `coldStartStrategy = "drop"`).
    pub fn rmse(&self, ratings: &Ratings) -> Rmse {
        const CHUNK: usize = 1 << 16;
        let n = ratings.len();
        let partial: Vec<(f64, usize)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let (mut sum, mut count) = (0f64, 0usize);
                for k in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    if let Some(p) = self.predict(ratings.users()[k], ratings.items()[k]) {
                        let d = f64::from(p) - f64::from(ratings.values()[k]);
                        sum += d * d;
                        count += 1;
                    }
                }
                (sum, count)
            })
            .collect();
        let (sum, predicted) = partial
            .iter()
            .fold((0f64, 0usize), |(s, c), (ps, pc)| (s + ps, c + pc));
        Rmse {
            rmse: if predicted == 0 {
                f64::NAN
            } else {
                (sum / predicted as f64).sqrt()
            },
            predicted,
            dropped: n - predicted,
        }
    }
}

/// Something that ranks games for a user: a trained model, a baseline, or lists computed
/// elsewhere.
pub trait Recommender: Sync {
    /// Up to `k` item ids for `user`, best first. `seen` (sorted ascending) holds the items the
    /// user reviewed in the training data.
    fn recommend(&self, user: i32, seen: &[i32], k: usize) -> Vec<i32>;
}

impl Recommender for AlsModel {
    /// The model's top `k` among the games the user has not reviewed; nothing for a user the
    /// model does not know.
    fn recommend(&self, user: i32, seen: &[i32], k: usize) -> Vec<i32> {
        let Some(x) = self.user_factors(user) else {
            return Vec::new();
        };
        let scores: Vec<f32> = self
            .item_factors
            .chunks_exact(self.rank)
            .map(|y| dot(x, y))
            .collect();
        let mut skip: Vec<usize> = seen.iter().filter_map(|i| self.items.get(*i)).collect();
        skip.sort_unstable();
        top_k(&scores, k, &skip)
            .into_iter()
            .map(|(i, _)| self.items.ids[i])
            .collect()
    }
}

/// The popularity baseline: the games most recommended in the training data that the user has
/// not reviewed (ties: more reviews first, then the lower id).
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    ranked: Vec<i32>,
}

impl Popularity {
    /// Counts each game's recommendations (ratings above 0) and reviews in `train`.
    pub fn fit(train: &Ratings) -> Self {
        let mut counts: HashMap<i32, (u64, u64)> = HashMap::new();
        for (i, r) in train.items().iter().zip(train.values()) {
            let c = counts.entry(*i).or_default();
            c.0 += u64::from(*r > 0.0);
            c.1 += 1;
        }
        let mut ranked: Vec<(i32, (u64, u64))> = counts.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Popularity {
            ranked: ranked.into_iter().map(|(i, _)| i).collect(),
        }
    }

    /// Every game of the training data, most popular first.
    pub fn ranked(&self) -> &[i32] {
        &self.ranked
    }
}

impl Recommender for Popularity {
    fn recommend(&self, _user: i32, seen: &[i32], k: usize) -> Vec<i32> {
        self.ranked
            .iter()
            .filter(|i| seen.binary_search(i).is_err())
            .take(k)
            .copied()
            .collect()
    }
}

/// The random baseline: `k` games of the training data drawn uniformly among those the user has
/// not reviewed; deterministic for a seed and a user.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomItems {
    catalog: Vec<i32>,
    seed: u64,
}

impl RandomItems {
    /// The catalog is every game of `train`.
    pub fn fit(train: &Ratings, seed: u64) -> Self {
        let mut catalog = train.items().to_vec();
        catalog.sort_unstable();
        catalog.dedup();
        RandomItems { catalog, seed }
    }
}

impl Recommender for RandomItems {
    fn recommend(&self, user: i32, seen: &[i32], k: usize) -> Vec<i32> {
        let mut rng = fastrand::Rng::with_seed(
            self.seed ^ (user as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let unseen = |i: &i32| seen.binary_search(i).is_err();
        let seen_in_catalog = seen
            .iter()
            .filter(|i| self.catalog.binary_search(i).is_ok())
            .count();
        let available = self.catalog.len() - seen_in_catalog;
        if available <= 4 * k || available < self.catalog.len() / 4 {
            // Few games left: draw from the list of them.
            let mut left: Vec<i32> = self.catalog.iter().copied().filter(unseen).collect();
            let take = k.min(left.len());
            for n in 0..take {
                let j = rng.usize(n..left.len());
                left.swap(n, j);
            }
            left.truncate(take);
            return left;
        }
        // Most games are unseen: draw, and draw again on a seen or already drawn game.
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let i = self.catalog[rng.usize(..self.catalog.len())];
            if unseen(&i) && !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

/// Recommendation lists computed elsewhere (another run, another library), read from batches of
/// [`steam_core::recommendations_schema`] and evaluated as they are: games the user reviewed in
/// training stay in the list (and are never hits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lists {
    lists: HashMap<i32, Vec<i32>>,
}

impl Lists {
    /// No lists.
    pub fn new() -> Self {
        Lists::default()
    }

    /// Adds the lists of `batch`: `user_id` (integer) and `recommendations`, a list of structs
    /// whose first field is the game id (integer); the order of the list is the ranking.
    pub fn extend_from_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let bad = |reason: String| Error::Schema {
            target: "recommendation lists".into(),
            reason,
        };
        let int32 = |a: &dyn Array, what: &str| -> Result<arrow::array::Int32Array> {
            let cast = arrow::compute::cast(a, &arrow::datatypes::DataType::Int32)
                .map_err(|e| bad(format!("{what} cannot be read as Int32: {e}")))?;
            Ok(cast.as_primitive::<Int32Type>().clone())
        };
        let users = batch
            .column_by_name("user_id")
            .ok_or_else(|| bad("no user_id column".into()))?;
        let users = int32(users.as_ref(), "user_id")?;
        let lists = batch
            .column_by_name("recommendations")
            .ok_or_else(|| bad("no recommendations column".into()))?;
        let lists = lists.as_list_opt::<i32>().ok_or_else(|| {
            bad(format!(
                "recommendations is {}, not a list",
                lists.data_type()
            ))
        })?;
        let items = lists
            .values()
            .as_struct_opt()
            .filter(|s| s.num_columns() > 0)
            .ok_or_else(|| bad("recommendations does not hold structs".into()))?;
        let games = int32(items.column(0).as_ref(), "recommendations' game id")?;
        for row in 0..batch.num_rows() {
            if users.is_null(row) {
                continue;
            }
            let range =
                lists.value_offsets()[row] as usize..lists.value_offsets()[row + 1] as usize;
            let list = range
                .filter(|j| games.is_valid(*j))
                .map(|j| games.value(j))
                .collect();
            self.lists.insert(users.value(row), list);
        }
        Ok(())
    }

    /// The number of users with a list.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether no user has a list.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

impl Recommender for Lists {
    fn recommend(&self, user: i32, _seen: &[i32], k: usize) -> Vec<i32> {
        self.lists
            .get(&user)
            .map(|l| l.iter().take(k).copied().collect())
            .unwrap_or_default()
    }
}

/// Ranking metrics at k, means over the users evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingMetrics {
    /// k.
    pub k: usize,
    /// Hits in the top k / k.
    pub precision: f64,
    /// Hits in the top k / the user's relevant held-out games.
    pub recall: f64,
    /// Normalized discounted cumulative gain: Σ over hits at rank r of 1/log₂(r + 1), over the
    /// same sum for a perfect top k.
    pub ndcg: f64,
    /// Mean average precision: Σ over hits at rank r of (hits in the top r)/r, over
    /// min(k, relevant games).
    pub map: f64,
    /// Distinct games recommended to the users evaluated / games in the training data.
    pub coverage: f64,
    /// Users evaluated.
    pub users: usize,
}

/// Held-out reviews ready for ranking evaluation: each user with at least one review in training
/// and at least one held-out review recommending a game (its relevant games), with the games it
/// reviewed in training (never recommended by the unseen-only rankers).
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    users: Vec<i32>,
    relevant: Vec<Vec<i32>>,
    seen: Vec<Vec<i32>>,
    catalog: usize,
}

impl Holdout {
    /// Relevant: held-out reviews with a rating above 0 (a recommendation).
    pub fn new(train: &Ratings, test: &Ratings) -> Self {
        let mut relevant: HashMap<i32, Vec<i32>> = HashMap::new();
        for ((u, i), r) in test.users().iter().zip(test.items()).zip(test.values()) {
            if *r > 0.0 {
                relevant.entry(*u).or_default().push(*i);
            }
        }
        let mut seen: HashMap<i32, Vec<i32>> = HashMap::new();
        for (u, i) in train.users().iter().zip(train.items()) {
            if relevant.contains_key(u) {
                seen.entry(*u).or_default().push(*i);
            }
        }
        let mut users: Vec<i32> = seen.keys().copied().collect();
        users.sort_unstable();
        let sorted = |mut v: Vec<i32>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut catalog = train.items().to_vec();
        catalog.par_sort_unstable();
        catalog.dedup();
        Holdout {
            relevant: users
                .iter()
                .map(|u| sorted(relevant.remove(u).unwrap_or_default()))
                .collect(),
            seen: users
                .iter()
                .map(|u| sorted(seen.remove(u).unwrap_or_default()))
                .collect(),
            users,
            catalog: catalog.len(),
        }
    }

    /// At most `max_users` of the users, drawn at random by `seed` (in the same order), the
    /// others dropped: the metrics' error shrinks as one over the square root of the users, so past
    /// some tens of thousands more users cost time and buy no precision.
    pub fn sample(mut self, max_users: usize, seed: u64) -> Self {
        let n = self.users.len();
        if n <= max_users {
            return self;
        }
        let mut picked = fastrand::Rng::with_seed(seed).choose_multiple(0..n, max_users);
        picked.sort_unstable();
        let take = |v: &mut Vec<Vec<i32>>| -> Vec<Vec<i32>> {
            picked.iter().map(|p| std::mem::take(&mut v[*p])).collect()
        };
        self.relevant = take(&mut self.relevant);
        self.seen = take(&mut self.seen);
        self.users = picked.iter().map(|p| self.users[*p]).collect();
        self
    }

    /// The number of users evaluated.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The metrics at `k` of `recommender` (lists longer than k are cut to k).
    pub fn evaluate(&self, recommender: &dyn Recommender, k: usize) -> RankingMetrics {
        let per_user: Vec<([f64; 4], Vec<i32>)> = (0..self.users.len())
            .into_par_iter()
            .map(|n| {
                let mut list = recommender.recommend(self.users[n], &self.seen[n], k);
                list.truncate(k);
                (user_metrics(&list, &self.relevant[n], k), list)
            })
            .collect();
        let mut sums = [0f64; 4];
        let mut recommended: Vec<i32> = Vec::new();
        for (m, list) in per_user {
            for (s, v) in sums.iter_mut().zip(m) {
                *s += v;
            }
            recommended.extend(list);
        }
        recommended.par_sort_unstable();
        recommended.dedup();
        let users = self.users.len();
        let mean = |s: f64| {
            if users == 0 {
                f64::NAN
            } else {
                s / users as f64
            }
        };
        RankingMetrics {
            k,
            precision: mean(sums[0]),
            recall: mean(sums[1]),
            ndcg: mean(sums[2]),
            map: mean(sums[3]),
            coverage: if self.catalog == 0 {
                f64::NAN
            } else {
                recommended.len() as f64 / self.catalog as f64
            },
            users,
        }
    }
}

/// Precision, recall, NDCG and average precision at `k` of one list against the sorted relevant
/// games.
fn user_metrics(list: &[i32], relevant: &[i32], k: usize) -> [f64; 4] {
    if k == 0 || relevant.is_empty() {
        return [0.0; 4];
    }
    let (mut hits, mut dcg, mut ap) = (0usize, 0f64, 0f64);
    for (r, i) in list.iter().enumerate() {
        if relevant.binary_search(i).is_ok() {
            hits += 1;
            dcg += 1.0 / ((r + 2) as f64).log2();
            ap += hits as f64 / (r + 1) as f64;
        }
    }
    let ideal = k.min(relevant.len());
    let idcg: f64 = (0..ideal).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    [
        hits as f64 / k as f64,
        hits as f64 / relevant.len() as f64,
        dcg / idcg,
        ap / ideal as f64,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlsParams;

    #[test]
    fn rmse_drops_cold_start_and_is_small_on_a_fit() {
        let mut r = Ratings::new();
        for u in 0..50 {
            for i in 0..10 {
                r.push(u, i, ((u + i) % 2) as f32);
            }
        }
        let model = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
        let train = model.rmse(&r);
        assert_eq!(train.predicted, 500);
        assert_eq!(train.dropped, 0);
        assert!(train.rmse < 0.15, "{train:?}");

        let mut cold = Ratings::new();
        cold.push(1000, 1, 1.0);
        cold.push(1, 1000, 1.0);
        cold.push(1, 2, 0.0);
        let e = model.rmse(&cold);
        assert_eq!((e.predicted, e.dropped), (1, 2));
        assert!(model.rmse(&Ratings::new()).rmse.is_nan());
    }

    /// Fixed lists, for metrics against hand-computed values.
    struct Fixed(HashMap<i32, Vec<i32>>);

    impl Recommender for Fixed {
        fn recommend(&self, user: i32, _seen: &[i32], _k: usize) -> Vec<i32> {
            self.0.get(&user).cloned().unwrap_or_default()
        }
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        let mut train = Ratings::new();
        for (u, i) in [(1, 100), (2, 100), (3, 100), (2, 101), (4, 102)] {
            train.push(u, i, 1.0);
        }
        let mut test = Ratings::new();
        // User 1: relevant {10, 11, 12}; user 2: relevant {20}; user 3 only a negative review
        // (not evaluated); user 9 never in training (not evaluated).
        for (u, i, r) in [
            (1, 10, 1.0),
            (1, 11, 1.0),
            (1, 12, 1.0),
            (1, 13, 0.0),
            (2, 20, 1.0),
            (3, 30, 0.0),
            (9, 10, 1.0),
        ] {
            test.push(u, i, r);
        }
        let holdout = Holdout::new(&train, &test);
        assert_eq!(holdout.users(), 2);
        // User 1 gets [10, 13, 11] (hits at ranks 1 and 3); user 2 gets [21, 20, 22] (rank 2).
        let lists = Fixed(HashMap::from([
            (1, vec![10, 13, 11, 12]),
            (2, vec![21, 20, 22]),
        ]));
        let m = holdout.evaluate(&lists, 3);
        let l2 = |r: f64| 1.0 / (r + 1.0).log2();
        let p = (2.0 / 3.0 + 1.0 / 3.0) / 2.0;
        let recall = (2.0 / 3.0 + 1.0) / 2.0;
        let ndcg1 = (l2(1.0) + l2(3.0)) / (l2(1.0) + l2(2.0) + l2(3.0));
        let ndcg2 = l2(2.0) / l2(1.0);
        let ap1 = (1.0 / 1.0 + 2.0 / 3.0) / 3.0;
        let ap2 = (1.0 / 2.0) / 1.0;
        assert!((m.precision - p).abs() < 1e-12, "{m:?}");
        assert!((m.recall - recall).abs() < 1e-12, "{m:?}");
        assert!((m.ndcg - (ndcg1 + ndcg2) / 2.0).abs() < 1e-12, "{m:?}");
        assert!((m.map - (ap1 + ap2) / 2.0).abs() < 1e-12, "{m:?}");
        // Recommended {10, 13, 11, 21, 20, 22}: 6 games over a training catalog of 3.
        assert!((m.coverage - 2.0).abs() < 1e-12, "{m:?}");
        assert_eq!((m.k, m.users), (3, 2));
        let nothing = Holdout::new(&train, &Ratings::new()).evaluate(&lists, 3);
        assert!(nothing.precision.is_nan() && nothing.users == 0);
    }

    #[test]
    fn popularity_ranks_by_recommendations_and_skips_seen() {
        let mut train = Ratings::new();
        // Game 7: 3 recommendations; game 5: 2 (and 1 negative); game 6: 2; game 8: 0 of 4.
        for (u, i, r) in [
            (1, 7, 1.0),
            (2, 7, 1.0),
            (3, 7, 1.0),
            (1, 5, 1.0),
            (2, 5, 1.0),
            (3, 5, 0.0),
            (4, 6, 1.0),
            (5, 6, 1.0),
            (1, 8, 0.0),
            (2, 8, 0.0),
            (3, 8, 0.0),
            (4, 8, 0.0),
        ] {
            train.push(u, i, r);
        }
        let popular = Popularity::fit(&train);
        // 5 and 6 tie on recommendations: 5 has more reviews.
        assert_eq!(popular.ranked(), &[7, 5, 6, 8]);
        assert_eq!(popular.recommend(1, &[5, 7], 10), vec![6, 8]);
        assert_eq!(popular.recommend(1, &[], 2), vec![7, 5]);
    }

    #[test]
    fn random_items_are_unseen_distinct_and_deterministic() {
        let mut train = Ratings::new();
        for i in 0..50 {
            train.push(0, i, 1.0);
        }
        let random = RandomItems::fit(&train, 7);
        let seen: Vec<i32> = (0..50).filter(|i| i % 3 == 0).collect();
        let mut counts = [0u32; 50];
        for user in 0..2000 {
            let list = random.recommend(user, &seen, 10);
            assert_eq!(list.len(), 10);
            let mut distinct = list.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 10);
            for i in &list {
                assert!(seen.binary_search(i).is_err());
                counts[*i as usize] += 1;
            }
            assert_eq!(list, random.recommend(user, &seen, 10));
        }
        // 33 unseen games share 20,000 draws: each close to 606.
        for (i, c) in counts.iter().enumerate() {
            if i % 3 != 0 {
                assert!((450..780).contains(c), "game {i}: {c}");
            }
        }
        // Fewer unseen games than k: all of them.
        let most: Vec<i32> = (0..47).collect();
        let mut left = random.recommend(3, &most, 10);
        left.sort_unstable();
        assert_eq!(left, vec![47, 48, 49]);
        assert_ne!(
            random.recommend(1, &[], 10),
            RandomItems::fit(&train, 8).recommend(1, &[], 10)
        );
    }

    #[test]
    fn lists_are_read_from_results_batches_and_evaluated_as_given() {
        let model = {
            let mut r = Ratings::new();
            for u in 0..30 {
                for i in 0..8 {
                    r.push(u, i, ((u + i) % 2) as f32);
                }
            }
            AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap()
        };
        let mut lists = Lists::new();
        for batch in model.recommend_for_all_users(3, 7) {
            lists.extend_from_batch(&batch.unwrap()).unwrap();
        }
        assert_eq!(lists.len(), 30);
        let top = lists.recommend(4, &[], 2);
        assert_eq!(top.len(), 2);
        let mut all: Vec<(i32, f32)> = (0..8).map(|i| (i, model.predict(4, i).unwrap())).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(top, vec![all[0].0, all[1].0]);
        let bad = RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("user_id", arrow::datatypes::DataType::Int32, false),
            ])),
            vec![std::sync::Arc::new(arrow::array::Int32Array::from(vec![1]))],
        )
        .unwrap();
        let e = lists.extend_from_batch(&bad).unwrap_err().to_string();
        assert!(e.contains("recommendations"), "{e}");
    }

    #[test]
    fn a_sample_keeps_whole_users_and_at_most_the_bound() {
        let (mut train, mut test) = (Ratings::new(), Ratings::new());
        for u in 0..100 {
            train.push(u, u % 7, 1.0);
            train.push(u, 7 + u % 5, 0.0);
            test.push(u, 20 + u % 3, 1.0);
        }
        let full = Holdout::new(&train, &test);
        assert_eq!(full.users(), 100);
        assert_eq!(full.clone().sample(100, 1), full);
        let part = full.clone().sample(30, 1);
        assert_eq!(part.users(), 30);
        assert!(part.users.windows(2).all(|w| w[0] < w[1]));
        for (n, u) in part.users.iter().enumerate() {
            let at = full.users.binary_search(u).unwrap();
            assert_eq!(part.seen[n], full.seen[at]);
            assert_eq!(part.relevant[n], full.relevant[at]);
        }
        assert_eq!(
            part,
            full.clone().sample(30, 1),
            "the draw follows the seed"
        );
        assert_ne!(part.users, full.sample(30, 2).users);
    }
}
