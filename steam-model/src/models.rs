//! Every model family behind one type: [`ModelParams`] say which family and its parameters,
//! [`Model`] is the fitted model, a [`Recommender`] that scores users and games alike whatever
//! its family, writes every user's top k and each game's most similar games.

use std::fmt;

use arrow::array::{Float32Array, Int32Array, RecordBatch};
use arrow::buffer::OffsetBuffer;
use rayon::prelude::*;
use steam_core::{recommendations_schema, similar_games_schema, Error, Result};

use crate::als::{dot, AlsModel, AlsParams, IdIndex};
use crate::ease::{EaseModel, EaseParams};
use crate::eval::{Popularity, Recommender};
use crate::knn::{ItemKnn, KnnParams, Similarity};
use crate::ratings::Ratings;
use crate::recommend::top_k;
use crate::sparse::{Profiles, Weighting};

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// The most recommended games ([`Popularity`]).
    Popularity,
    /// Item-kNN ([`ItemKnn`]).
    ItemKnn,
    /// EASE ([`EaseModel`]).
    Ease,
    /// Alternating least squares ([`AlsModel`]), implicit or explicit.
    Als,
    /// A personal model's scores plus a popularity prior ([`BlendParams`]).
    Blend,
}

named_enum!(Family, "model", {
    Popularity => "popularity",
    ItemKnn => "item-knn",
    Ease => "ease",
    Als => "als",
    Blend => "blend",
});

/// Parameters of a blend: a personal model's scores, scaled per user to at most 1, plus
/// `weight` × each game's recommendations over the most recommended game's.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendParams {
    /// The personal model; `None` in a tuning grid means the best personal candidate of that
    /// tuning (a blend cannot be fitted on its own without one).
    pub personal: Option<Box<ModelParams>>,
    /// The weight of the popularity prior.
    pub weight: f32,
}

/// A model family and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelParams {
    /// Alternating least squares.
    Als(AlsParams),
    /// EASE.
    Ease(EaseParams),
    /// Item-kNN.
    ItemKnn(KnnParams),
    /// The most recommended games the user has not reviewed.
    Popularity,
    /// A personal model blended with popularity.
    Blend(BlendParams),
}

impl ModelParams {
    /// The family.
    pub fn family(&self) -> Family {
        match self {
            ModelParams::Als(_) => Family::Als,
            ModelParams::Ease(_) => Family::Ease,
            ModelParams::ItemKnn(_) => Family::ItemKnn,
            ModelParams::Popularity => Family::Popularity,
            ModelParams::Blend(_) => Family::Blend,
        }
    }

    /// How complex the model is, for ties in tuning (the simpler wins): popularity 0, item-kNN 2,
    /// EASE 4, ALS 6, a blend one more than its personal model.
    pub fn complexity(&self) -> u32 {
        match self {
            ModelParams::Popularity => 0,
            ModelParams::ItemKnn(_) => 2,
            ModelParams::Ease(_) => 4,
            ModelParams::Als(_) => 6,
            ModelParams::Blend(b) => 1 + b.personal.as_ref().map_or(6, |p| p.complexity()),
        }
    }

    /// The ALS parameters, for an ALS model.
    pub fn als(&self) -> Option<&AlsParams> {
        match self {
            ModelParams::Als(p) => Some(p),
            _ => None,
        }
    }
}

impl From<AlsParams> for ModelParams {
    fn from(p: AlsParams) -> Self {
        ModelParams::Als(p)
    }
}

impl fmt::Display for ModelParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelParams::Als(p) => write!(f, "{p}"),
            ModelParams::Ease(p) => write!(f, "{p}"),
            ModelParams::ItemKnn(p) => write!(f, "{p}"),
            ModelParams::Popularity => f.write_str("popularity"),
            ModelParams::Blend(b) => match &b.personal {
                Some(p) => write!(f, "blend of ({p}) and popularity × {}", b.weight),
                None => write!(
                    f,
                    "blend of the best personal model and popularity × {}",
                    b.weight
                ),
            },
        }
    }
}

/// The popularity model over a catalog: the ranking of [`Popularity`], and each game's
/// recommendations over the most recommended game's (the prior of blends).
#[derive(Debug, Clone, PartialEq)]
pub struct PopularityModel {
    ranking: Popularity,
    catalog: IdIndex,
    /// By catalog index: (games − rank) / games, so the ranking's order.
    rank_scores: Vec<f32>,
    /// By catalog index: recommendations / the most recommendations.
    prior: Vec<f32>,
}

impl PopularityModel {
    fn fit(train: &Ratings) -> Self {
        let ranking = Popularity::fit(train);
        let catalog = IdIndex::new(train.items());
        let n = catalog.len();
        let mut rank_scores = vec![0f32; n];
        for (rank, id) in ranking.ranked().iter().enumerate() {
            if let Some(i) = catalog.get(*id) {
                rank_scores[i] = (n - rank) as f32 / n as f32;
            }
        }
        let mut recommended = vec![0f32; n];
        for (i, r) in train.items().iter().zip(train.values()) {
            if *r > 0.0 {
                if let Some(i) = catalog.get(*i) {
                    recommended[i] += 1.0;
                }
            }
        }
        let most = recommended.iter().copied().fold(0f32, f32::max);
        let prior = recommended
            .iter()
            .map(|r| if most > 0.0 { r / most } else { 0.0 })
            .collect();
        PopularityModel {
            ranking,
            catalog,
            rank_scores,
            prior,
        }
    }

    /// Every game of the training data, most popular first.
    pub fn ranked(&self) -> &[i32] {
        self.ranking.ranked()
    }
}

/// A personal model blended with a popularity prior (see [`BlendParams`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    pub(crate) personal: Box<Model>,
    popularity: PopularityModel,
    weight: f32,
}

/// A fitted model of any family.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Alternating least squares.
    Als(AlsModel),
    /// EASE.
    Ease(EaseModel),
    /// Item-kNN.
    ItemKnn(ItemKnn),
    /// Popularity.
    Popularity(PopularityModel),
    /// A blend.
    Blend(Blend),
}

impl Model {
    /// Fits `params`' family on `train`. A blend needs its personal model named.
    pub fn fit(train: &Ratings, params: &ModelParams) -> Result<Model> {
        Ok(match params {
            ModelParams::Als(p) => Model::Als(AlsModel::fit(train, p)?),
            ModelParams::Ease(p) => Model::Ease(EaseModel::fit(train, p)?),
            ModelParams::ItemKnn(p) => Model::ItemKnn(ItemKnn::fit(train, p)?),
            ModelParams::Popularity => Model::Popularity(PopularityModel::fit(train)),
            ModelParams::Blend(b) => {
                let personal = b.personal.as_deref().ok_or_else(|| Error::Config {
                    key: "model".into(),
                    reason: "a blend needs its personal model".into(),
                })?;
                Model::blend(train, Model::fit(train, personal)?, b.weight)
            }
        })
    }

    /// `personal` blended with the popularity of `train` at `weight`.
    pub fn blend(train: &Ratings, personal: Model, weight: f32) -> Model {
        Model::Blend(Blend {
            personal: Box::new(personal),
            popularity: PopularityModel::fit(train),
            weight,
        })
    }

    /// The family and parameters.
    pub fn params(&self) -> ModelParams {
        match self {
            Model::Als(m) => ModelParams::Als(m.params().clone()),
            Model::Ease(m) => ModelParams::Ease(m.params().clone()),
            Model::ItemKnn(m) => ModelParams::ItemKnn(m.params().clone()),
            Model::Popularity(_) => ModelParams::Popularity,
            Model::Blend(b) => ModelParams::Blend(BlendParams {
                personal: Some(Box::new(b.personal.params())),
                weight: b.weight,
            }),
        }
    }

    /// The ALS model, if that is the family.
    pub fn als(&self) -> Option<&AlsModel> {
        match self {
            Model::Als(m) => Some(m),
            _ => None,
        }
    }

    /// The games the model scores (sorted ids; dense indices are positions here).
    fn catalog(&self) -> &IdIndex {
        match self {
            Model::Als(m) => &m.items,
            Model::Ease(m) => &m.profiles.items,
            Model::ItemKnn(m) => &m.profiles.items,
            Model::Popularity(m) => &m.catalog,
            Model::Blend(b) => &b.popularity.catalog,
        }
    }

    /// The users the model has lists for, sorted.
    fn users(&self) -> &[i32] {
        match self {
            Model::Als(m) => &m.users.ids,
            Model::Ease(m) => &m.profiles.users.ids,
            Model::ItemKnn(m) => &m.profiles.users.ids,
            Model::Popularity(_) => &[],
            Model::Blend(b) => b.personal.users(),
        }
    }

    /// Writes user id `user`'s scores over [`Model::catalog`] to `out` (−∞: never recommended);
    /// `false` when the model knows nothing of the user (popularity knows every user).
    fn scores(&self, user: i32, out: &mut [f32]) -> bool {
        match self {
            Model::Als(m) => {
                let Some(x) = m.user_factors(user) else {
                    return false;
                };
                for (o, y) in out.iter_mut().zip(m.item_factors.chunks_exact(m.rank)) {
                    *o = dot(x, y);
                }
                true
            }
            Model::Ease(m) => m.scores(user, out),
            Model::ItemKnn(m) => m.scores(user, out),
            Model::Popularity(m) => {
                out.copy_from_slice(&m.rank_scores);
                true
            }
            Model::Blend(b) => {
                // The personal model's catalog is the popularity's (both every training game).
                let known = b.personal.scores(user, out);
                let scale = if known {
                    out.iter()
                        .filter(|s| s.is_finite())
                        .fold(0f32, |m, s| m.max(s.abs()))
                } else {
                    0.0
                };
                for (o, p) in out.iter_mut().zip(&b.popularity.prior) {
                    let personal = if scale > 0.0 && o.is_finite() {
                        *o / scale
                    } else {
                        0.0
                    };
                    *o = personal + b.weight * p;
                }
                true
            }
        }
    }

    /// The top `k` of user `user` among games not in `skip` (sorted dense indices): dense
    /// indices and scores.
    fn top(&self, user: i32, k: usize, skip: &[usize], buffer: &mut [f32]) -> Vec<(usize, f32)> {
        if let Model::Popularity(m) = self {
            // The ranking is the order of the scores: walk it instead of scoring every game.
            return m
                .ranking
                .ranked()
                .iter()
                .filter_map(|id| m.catalog.get(*id))
                .filter(|i| skip.binary_search(i).is_err())
                .take(k)
                .map(|i| (i, m.rank_scores[i]))
                .collect();
        }
        if !self.scores(user, buffer) {
            return Vec::new();
        }
        let mut best = top_k(buffer, k, skip);
        best.retain(|(_, s)| s.is_finite());
        best
    }

    /// Every training user's top `k` games among those it has not reviewed in `train`, in
    /// batches of up to `batch_users` users ordered by user id, in
    /// [`steam_core::recommendations_schema`] (the score is the model's).
    pub fn recommend_unseen<'a>(
        &'a self,
        train: &Ratings,
        k: usize,
        batch_users: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + 'a> {
        if let Model::Als(m) = self {
            return Box::new(m.recommend_unseen(train, k, batch_users));
        }
        self.lists(train, k, batch_users, true)
    }

    /// The lists of every user of the model (of `train` for popularity), leaving out the games
    /// each reviewed in `train` if `unseen`.
    fn lists<'a>(
        &'a self,
        train: &Ratings,
        k: usize,
        batch_users: usize,
        unseen: bool,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + 'a> {
        let seen = Profiles::new(train, Weighting::Binary);
        let users: Vec<i32> = match self {
            Model::Popularity(_) => seen.users.ids.clone(),
            _ => self.users().to_vec(),
        };
        let batch_users = batch_users.max(1);
        let n = self.catalog().len();
        Box::new(
            users
                .chunks(batch_users)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
                .into_iter()
                .map(move |chunk| {
                    let tops: Vec<Vec<(usize, f32)>> = chunk
                        .par_iter()
                        .map_init(
                            || vec![0f32; n],
                            |buffer, user| {
                                let skip = if unseen {
                                    self.seen_indices(&seen, *user)
                                } else {
                                    Vec::new()
                                };
                                self.top(*user, k, &skip, buffer)
                            },
                        )
                        .collect();
                    let catalog = self.catalog();
                    lists_batch(
                        Int32Array::from(chunk),
                        &tops,
                        |i| catalog.ids[i],
                        "user_recommendations",
                    )
                }),
        )
    }

    /// Every training user's top `k` games, those it reviewed included (Spark's
    /// `recommendForAllUsers`), in batches as [`Model::recommend_unseen`]. A popularity model
    /// lists the users of `train`.
    pub fn recommend_for_all_users<'a>(
        &'a self,
        train: &Ratings,
        k: usize,
        batch_users: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + 'a> {
        if let Model::Als(m) = self {
            return Box::new(m.recommend_for_all_users(k, batch_users));
        }
        self.lists(train, k, batch_users, false)
    }

    /// The dense indices of the games `user` reviewed in `seen`, sorted.
    fn seen_indices(&self, seen: &Profiles, user: i32) -> Vec<usize> {
        let catalog = self.catalog();
        seen.of(user)
            .map(|(games, _)| {
                games
                    .iter()
                    .filter_map(|g| catalog.get(seen.items.ids[*g as usize]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each game's `k` most similar games by the model, in one batch of
    /// [`steam_core::similar_games_schema`] ordered by game id: ALS by the cosine of item
    /// factors, EASE by its weights B (row: what the game adds to the others' scores), item-kNN by
    /// its neighbours, a blend by its personal model, popularity (no item-item scores) by the
    /// cosine item-kNN of `train`.
    pub fn similar_games(&self, train: &Ratings, k: usize) -> Result<RecordBatch> {
        match self {
            Model::Blend(b) => return b.personal.similar_games(train, k),
            Model::Popularity(_) => {
                let knn = ItemKnn::fit(
                    train,
                    &KnnParams {
                        neighbours: k.max(1),
                        similarity: Similarity::Cosine,
                    },
                )?;
                return Model::ItemKnn(knn).similar_games(train, k);
            }
            _ => {}
        }
        let catalog = self.catalog();
        let n = catalog.len();
        let norms: Vec<f32> = match self {
            Model::Als(m) => m
                .item_factors
                .chunks_exact(m.rank)
                .map(|y| dot(y, y).sqrt())
                .collect(),
            _ => Vec::new(),
        };
        let lists: Vec<Vec<(usize, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0f32; n],
                |row, i| {
                    match self {
                        Model::Als(m) => {
                            let y = &m.item_factors[i * m.rank..(i + 1) * m.rank];
                            for (j, (o, z)) in row
                                .iter_mut()
                                .zip(m.item_factors.chunks_exact(m.rank))
                                .enumerate()
                            {
                                let d = norms[i] * norms[j];
                                *o = if d > 0.0 { dot(y, z) / d } else { 0.0 };
                            }
                        }
                        Model::Ease(m) => m.item_row(i, row),
                        Model::ItemKnn(m) => m.item_row(i, row),
                        _ => row.fill(f32::NEG_INFINITY),
                    }
                    let mut best = top_k(row, k, &[i]);
                    best.retain(|(_, s)| s.is_finite());
                    best
                },
            )
            .collect();
        lists_batch(
            Int32Array::from(catalog.ids.clone()),
            &lists,
            |i| catalog.ids[i],
            "similar_games",
        )
    }
}

/// A batch of keys and their lists of (id, score), in the recommendations or the similar games
/// schema (`what` chooses).
fn lists_batch(
    keys: Int32Array,
    lists: &[Vec<(usize, f32)>],
    id: impl Fn(usize) -> i32,
    what: &str,
) -> Result<RecordBatch> {
    let schema = if what == "similar_games" {
        similar_games_schema()
    } else {
        recommendations_schema()
    };
    let offsets = OffsetBuffer::<i32>::from_lengths(lists.iter().map(Vec::len));
    let ids: Int32Array = lists.iter().flatten().map(|(i, _)| id(*i)).collect();
    let scores: Float32Array = lists.iter().flatten().map(|(_, s)| *s).collect();
    crate::recommend::build(schema, keys, offsets, ids, scores, what)
}

impl Recommender for Model {
    fn recommend(&self, user: i32, seen: &[i32], k: usize) -> Vec<i32> {
        match self {
            Model::Als(m) => m.recommend(user, seen, k),
            Model::Popularity(m) => m.ranking.recommend(user, seen, k),
            _ => {
                let catalog = self.catalog();
                let skip: Vec<usize> = seen.iter().filter_map(|i| catalog.get(*i)).collect();
                let mut buffer = vec![0f32; catalog.len()];
                self.top(user, k, &skip, &mut buffer)
                    .into_iter()
                    .map(|(i, _)| catalog.ids[i])
                    .collect()
            }
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.params())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float32Type, Int32Type};

    use super::*;

    fn groups() -> Ratings {
        // Two taste groups of five games; every user plays four games of its group.
        let mut r = Ratings::new();
        for u in 0..60 {
            let g = u % 2;
            for k in 0..4 {
                r.push(u, g * 5 + (u / 2 + k) % 5, 1.0);
            }
        }
        r
    }

    #[test]
    fn every_family_recommends_unseen_games_of_the_users_group() {
        let r = groups();
        let families = [
            ModelParams::Ease(EaseParams {
                lambda: 1.0,
                ..EaseParams::default()
            }),
            ModelParams::ItemKnn(KnnParams::default()),
            ModelParams::ItemKnn(KnnParams {
                similarity: Similarity::Bm25 { k1: 1.2, b: 0.75 },
                ..KnnParams::default()
            }),
            ModelParams::Blend(BlendParams {
                personal: Some(Box::new(ModelParams::ItemKnn(KnnParams::default()))),
                weight: 0.1,
            }),
        ];
        for params in families {
            let model = Model::fit(&r, &params).unwrap();
            assert_eq!(model.params(), params);
            for u in 0..60 {
                let g = u % 2;
                let seen: Vec<i32> = (0..4).map(|k| g * 5 + (u / 2 + k) % 5).collect();
                let mut sorted = seen.clone();
                sorted.sort_unstable();
                let top = model.recommend(u, &sorted, 1);
                let missing = (0..5).map(|k| g * 5 + k).find(|i| !seen.contains(i));
                assert_eq!(top.first().copied(), missing, "{params} user {u}");
            }
            let batches: Vec<RecordBatch> = model
                .recommend_unseen(&r, 3, 25)
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(batches.len(), 3);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 60);
            let first = &batches[0];
            assert_eq!(first.schema(), recommendations_schema());
            let list = first.column(1).as_list::<i32>().value(0);
            let games = list
                .as_struct()
                .column(0)
                .as_primitive::<Int32Type>()
                .clone();
            // User 0 (group 0) reviewed 0..4: its best unseen game is 4.
            assert_eq!(games.value(0), 4, "{params}");
        }
        let e = Model::fit(
            &r,
            &ModelParams::Blend(BlendParams {
                personal: None,
                weight: 1.0,
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("personal"), "{e}");
    }

    #[test]
    fn popularity_as_a_model_matches_the_baseline() {
        let r = groups();
        let model = Model::fit(&r, &ModelParams::Popularity).unwrap();
        let baseline = Popularity::fit(&r);
        for u in 0..10 {
            assert_eq!(
                model.recommend(u, &[1, 2], 5),
                baseline.recommend(u, &[1, 2], 5)
            );
        }
        let batches: Vec<RecordBatch> = model
            .recommend_unseen(&r, 2, 100)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(batches[0].num_rows(), 60);
        // Every user's list is the baseline's without the games it reviewed, scores descending.
        let mut seen: std::collections::HashMap<i32, Vec<i32>> = Default::default();
        for (u, i) in r.users().iter().zip(r.items()) {
            seen.entry(*u).or_default().push(*i);
        }
        let users = batches[0].column(0).as_primitive::<Int32Type>();
        let lists = batches[0].column(1).as_list::<i32>();
        for row in 0..batches[0].num_rows() {
            let list = lists.value(row);
            let list = list.as_struct();
            let ids = list.column(0).as_primitive::<Int32Type>().values().to_vec();
            let scores = list
                .column(1)
                .as_primitive::<Float32Type>()
                .values()
                .to_vec();
            let user = users.value(row);
            let mut reviewed = seen.remove(&user).unwrap();
            reviewed.sort_unstable();
            assert_eq!(ids, baseline.recommend(user, &reviewed, 2), "user {user}");
            assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
        }
    }

    #[test]
    fn similar_games_stay_in_the_group_and_are_symmetric_where_the_model_is() {
        let r = groups();
        for params in [
            ModelParams::ItemKnn(KnnParams::default()),
            ModelParams::Popularity,
            ModelParams::Als(AlsParams {
                rank: 2,
                reg_param: 0.1,
                ..AlsParams::default()
            }),
            ModelParams::Ease(EaseParams {
                lambda: 1.0,
                ..EaseParams::default()
            }),
        ] {
            let model = Model::fit(&r, &params).unwrap();
            let batch = model.similar_games(&r, 3).unwrap();
            assert_eq!(batch.schema(), similar_games_schema());
            assert_eq!(batch.num_rows(), 10);
            let games = batch.column(0).as_primitive::<Int32Type>();
            let lists = batch.column(1).as_list::<i32>();
            let mut sims = std::collections::HashMap::new();
            for row in 0..batch.num_rows() {
                let game = games.value(row);
                let list = lists.value(row);
                let list = list.as_struct();
                let ids = list.column(0).as_primitive::<Int32Type>();
                let scores = list.column(1).as_primitive::<Float32Type>();
                assert_eq!(ids.len(), 3, "{params}");
                for j in 0..ids.len() {
                    assert_ne!(ids.value(j), game);
                    assert_eq!(
                        ids.value(j) / 5,
                        game / 5,
                        "{params}: {game} → {}",
                        ids.value(j)
                    );
                    sims.insert((game, ids.value(j)), scores.value(j));
                }
            }
            if !matches!(params, ModelParams::Ease(_)) {
                // Cosine similarities (kNN, popularity's kNN, ALS factors) are symmetric.
                for ((a, b), s) in &sims {
                    if let Some(t) = sims.get(&(*b, *a)) {
                        assert!((s - t).abs() < 1e-5, "{params}: {a} {b}");
                    }
                }
            }
        }
    }
}
