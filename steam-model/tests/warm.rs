//! Warm-started training and the model's factors as batches.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeListArray, ListArray, RecordBatch, StringArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema};
use steam_core::{Error, Result};
use steam_model::{AlsModel, AlsParams, Feedback, Holdout, Ratings, Solver, WARM_ITERATIONS};

/// The implicit model with the regularization of a small data set, the explicit model, and the
/// implicit model by conjugate gradient: every feedback and solver `fit` supports.
fn every_kind() -> Vec<AlsParams> {
    let small = AlsParams {
        reg_param: 0.1,
        ..AlsParams::default()
    };
    vec![
        small.clone(),
        AlsParams::spark_explicit(),
        AlsParams {
            solver: Solver::ConjugateGradient { steps: 3 },
            ..small
        },
    ]
}

/// Taste clusters: 10 clusters of games (game g in cluster g % 10), each user with a main and a
/// second cluster; a user reviews 8 to 40 distinct games, 70% from its main cluster, 20% from the
/// second, 10% from anywhere, popular games more often. Reviews of its clusters' games recommend
/// them 9 times in 10 with many hours, the others 3 times in 10 with few.
fn taste_clusters(users: i32, games: i32, seed: u64) -> Ratings {
    const CLUSTERS: i32 = 10;
    let mut rng = fastrand::Rng::with_seed(seed);
    let per_cluster = games / CLUSTERS;
    // Popularity within a cluster: the j-th game weighs 1/(j + 1)^0.8.
    let weights: Vec<f64> = (0..per_cluster)
        .map(|j| 1.0 / f64::from(j + 1).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let pick_in = |rng: &mut fastrand::Rng, cluster: i32| {
        let mut x = rng.f64() * total;
        for (j, w) in weights.iter().enumerate() {
            x -= w;
            if x <= 0.0 {
                return j as i32 * CLUSTERS + cluster;
            }
        }
        (per_cluster - 1) * CLUSTERS + cluster
    };
    let mut r = Ratings::new();
    for u in 0..users {
        let main = rng.i32(0..CLUSTERS);
        let second = (main + rng.i32(1..CLUSTERS)) % CLUSTERS;
        let n = rng.usize(8..=40);
        let mut played: Vec<i32> = Vec::with_capacity(n);
        let mut tries = 0;
        while played.len() < n && tries < 10 * n {
            tries += 1;
            let x = rng.u8(..10);
            let game = match x {
                0..=6 => pick_in(&mut rng, main),
                7..=8 => pick_in(&mut rng, second),
                _ => rng.i32(0..games),
            };
            if played.contains(&game) {
                continue;
            }
            played.push(game);
            let theirs = game % CLUSTERS == main || game % CLUSTERS == second;
            let liked = rng.u8(..10) < if theirs { 9 } else { 3 };
            let hours = if liked {
                1.0 + rng.f32() * 200.0
            } else {
                rng.f32() * 5.0
            };
            r.push_review(u, game, if liked { 1.0 } else { 0.0 }, hours, None);
        }
    }
    r
}

/// Users from this id on first appear on day 2, and games from `NEW_GAMES` on.
const NEW_USERS: i32 = 1900;
const NEW_GAMES: i32 = 285;

/// (day 1, day 2 = every training review, held-out reviews): day 1 leaves out the reviews of the
/// new users and games and 2.5% of the others at random, about 10% in all.
fn two_days() -> (Ratings, Ratings, Ratings) {
    let all = taste_clusters(2000, 300, 7);
    let (train, test) = all.split(0.2, 11).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut day1 = Ratings::new();
    for k in 0..train.len() {
        let (u, i) = (train.users()[k], train.items()[k]);
        if u < NEW_USERS && i < NEW_GAMES && rng.f64() >= 0.025 {
            day1.push_review(u, i, train.values()[k], train.hours()[k], None);
        }
    }
    (day1, train, test)
}

/// The default parameters (implicit, signed confidence, 10 iterations) with the λ of this data
/// set: the default λ = 300, chosen on a million reviews, shrinks every factor of these 40,000
/// towards 0 (NDCG@10 0.06, popularity's); 30 is the best of 0.1 to 300 for a cold fit.
fn params() -> AlsParams {
    AlsParams {
        reg_param: 30.0,
        ..AlsParams::default()
    }
}

#[test]
fn warm_start_matches_a_cold_fit() {
    let (day1, day2, test) = two_days();
    let new_share = 1.0 - day1.len() as f64 / day2.len() as f64;
    assert!((0.08..0.12).contains(&new_share), "{new_share}");
    let params = params();
    assert_eq!(
        (params.feedback, params.iterations),
        (Feedback::Implicit, 10)
    );
    let holdout = Holdout::new(&day2, &test);
    assert!(holdout.users() > 1500, "{}", holdout.users());
    let ndcg = |m: &AlsModel| holdout.evaluate(m, 10).ndcg;

    let yesterday = AlsModel::fit(&day1, &params).unwrap();
    let cold = AlsModel::fit(&day2, &params).unwrap();
    let cold_ndcg = ndcg(&cold);
    let warm = |iterations: usize| {
        let p = AlsParams {
            iterations,
            ..params.clone()
        };
        AlsModel::fit_warm(&day2, &p, &yesterday).unwrap()
    };
    let warm_ndcg: Vec<f64> = (1..=3).map(|n| ndcg(&warm(n))).collect();
    eprintln!(
        "NDCG@10: day 1 {:.4}, day 2 cold {cold_ndcg:.4}, warm 1/2/3 iterations {:.4} {:.4} {:.4}",
        ndcg(&yesterday),
        warm_ndcg[0],
        warm_ndcg[1],
        warm_ndcg[2]
    );
    // The clusters are found: far above what popularity reaches.
    let popular = holdout
        .evaluate(&steam_model::Popularity::fit(&day2), 10)
        .ndcg;
    assert!(cold_ndcg > 3.0 * popular, "{cold_ndcg} vs {popular}");

    let chosen = warm(WARM_ITERATIONS);
    let warm_ndcg = ndcg(&chosen);
    assert!(
        warm_ndcg >= 0.99 * cold_ndcg,
        "warm {warm_ndcg} vs cold {cold_ndcg}"
    );
    // The new users and games have factors, and the new users get recommendations.
    assert_eq!(chosen.num_users(), cold.num_users());
    assert_eq!(chosen.num_items(), cold.num_items());
    assert!(yesterday.user_factors(NEW_USERS).is_none());
    for user in NEW_USERS..2000 {
        assert!(chosen.user_factors(user).is_some(), "user {user}");
    }
    for game in NEW_GAMES..300 {
        assert!(chosen.item_factors(game).is_some(), "game {game}");
    }
    let new_users: Ratings = {
        let mut r = Ratings::new();
        for k in 0..test.len() {
            if test.users()[k] >= NEW_USERS {
                r.push(test.users()[k], test.items()[k], test.values()[k]);
            }
        }
        r
    };
    let of_new = Holdout::new(&day2, &new_users);
    assert!(of_new.users() > 50, "{}", of_new.users());
    let new_ndcg = of_new.evaluate(&chosen, 10).ndcg;
    let new_cold = of_new.evaluate(&cold, 10).ndcg;
    assert!(
        new_ndcg >= 0.9 * new_cold,
        "new users: warm {new_ndcg}, cold {new_cold}"
    );
}

#[test]
fn a_warm_fit_on_the_same_data_stays_close() {
    let (_, day2, test) = two_days();
    let params = params();
    let holdout = Holdout::new(&day2, &test);
    let previous = AlsModel::fit(&day2, &params).unwrap();
    let one = AlsParams {
        iterations: 1,
        ..params
    };
    let warm = AlsModel::fit_warm(&day2, &one, &previous).unwrap();
    let before = holdout.evaluate(&previous, 10).ndcg;
    let after = holdout.evaluate(&warm, 10).ndcg;
    assert!(after >= 0.99 * before, "{after} vs {before}");
    // One more iteration from a fit model moves the predictions little; from scratch, one
    // iteration is far from it.
    let gap = |m: &AlsModel| -> f64 {
        let mut sum = 0f64;
        for &u in previous.user_ids().iter().step_by(7) {
            for &i in previous.item_ids() {
                let d = m.predict(u, i).unwrap() - previous.predict(u, i).unwrap();
                sum += f64::from(d).abs();
            }
        }
        sum
    };
    let cold_one = AlsModel::fit(&day2, &one).unwrap();
    assert!(
        gap(&warm) < 0.2 * gap(&cold_one),
        "{} vs {}",
        gap(&warm),
        gap(&cold_one)
    );
}

/// A small data set from `taste_clusters`.
fn small_set() -> Ratings {
    taste_clusters(150, 40, 3)
}

#[test]
fn zero_warm_iterations_keep_the_previous_factors_and_start_new_ids_at_zero() {
    let all = small_set();
    // Before: 70% of the reviews, none of users from 120 on or of games from 36 on.
    let (kept, _) = all.split(0.3, 1).unwrap();
    let mut before = Ratings::new();
    for k in 0..kept.len() {
        let (u, i) = (kept.users()[k], kept.items()[k]);
        if u < 120 && i < 36 {
            before.push_review(u, i, kept.values()[k], kept.hours()[k], None);
        }
    }
    for params in every_kind() {
        let previous = AlsModel::fit(&before, &params).unwrap();
        let zero = AlsParams {
            iterations: 0,
            ..params.clone()
        };
        let warm = AlsModel::fit_warm(&all, &zero, &previous).unwrap();
        let init = AlsModel::fit(&all, &zero).unwrap();
        assert_eq!(warm.user_ids(), init.user_ids());
        assert_eq!(warm.item_ids(), init.item_ids());
        let (mut fresh, mut fresh_items) = (0, 0);
        let zeros = vec![0.0f32; params.rank];
        for &u in warm.user_ids() {
            let want = previous
                .user_factors(u)
                .or_else(|| {
                    fresh += 1;
                    Some(&zeros[..])
                })
                .unwrap();
            assert_eq!(warm.user_factors(u).unwrap(), want, "{params} user {u}");
        }
        for &i in warm.item_ids() {
            let want = previous
                .item_factors(i)
                .or_else(|| {
                    fresh_items += 1;
                    Some(&zeros[..])
                })
                .unwrap();
            assert_eq!(warm.item_factors(i).unwrap(), want, "{params} item {i}");
        }
        assert_eq!((fresh, fresh_items), (30, 4), "the new users and games");
        // On the data it was trained on, a model warm started with 0 iterations is itself.
        let same = AlsModel::fit_warm(&before, &params, &previous).unwrap();
        let again = AlsModel::fit_warm(
            &before,
            &AlsParams {
                iterations: 0,
                ..params.clone()
            },
            &previous,
        )
        .unwrap();
        assert_eq!(again.user_ids(), previous.user_ids());
        for &u in previous.user_ids() {
            assert_eq!(again.user_factors(u), previous.user_factors(u));
        }
        // And iterations do run from there.
        assert_ne!(
            same.user_factors(previous.user_ids()[0]),
            previous.user_factors(previous.user_ids()[0])
        );
    }
}

#[test]
fn warm_start_works_for_every_feedback_and_solver() {
    let all = small_set();
    for params in every_kind() {
        let converged = AlsParams {
            iterations: 30,
            ..params.clone()
        };
        let previous = AlsModel::fit(&all, &converged).unwrap();
        let one = AlsParams {
            iterations: 1,
            ..params.clone()
        };
        let warm = AlsModel::fit_warm(&all, &one, &previous).unwrap();
        let cold = AlsModel::fit(&all, &one).unwrap();
        // Starting from a converged model, one iteration stays by it; from scratch it does not.
        let gap = |m: &AlsModel| -> f64 {
            let mut sum = 0f64;
            for &u in previous.user_ids() {
                for &i in previous.item_ids() {
                    let d = m.predict(u, i).unwrap() - previous.predict(u, i).unwrap();
                    sum += f64::from(d * d);
                }
            }
            sum.sqrt()
        };
        assert!(
            gap(&warm) < 0.25 * gap(&cold),
            "{params}: warm {} cold {}",
            gap(&warm),
            gap(&cold)
        );
        // Deterministic whatever the number of threads.
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| AlsModel::fit_warm(&all, &one, &previous).unwrap())
        };
        assert_eq!(on(1), warm, "{params}");
        assert_eq!(on(3), warm, "{params}");
    }
}

#[test]
fn warm_start_from_another_rank_is_an_error() {
    let r = small_set();
    let previous = AlsModel::fit(&r, &AlsParams::spark_explicit()).unwrap();
    let e = AlsModel::fit_warm(
        &r,
        &AlsParams {
            rank: 12,
            ..AlsParams::spark_explicit()
        },
        &previous,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("12") && e.contains("10"), "{e}");
    // Parameters and input are checked as fit checks them.
    let e = AlsModel::fit_warm(&Ratings::new(), &AlsParams::spark_explicit(), &previous)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no ratings"), "{e}");
}

fn collect(model: &AlsModel, rows: usize) -> Vec<RecordBatch> {
    model
        .factor_batches(rows)
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

fn recommendations(model: &AlsModel, train: &Ratings) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    (
        model
            .recommend_for_all_users(10, 64)
            .collect::<Result<Vec<_>>>()
            .unwrap(),
        model
            .recommend_unseen(train, 10, 64)
            .collect::<Result<Vec<_>>>()
            .unwrap(),
    )
}

#[test]
fn factors_round_trip_predicts_and_recommends_the_same() {
    let r = small_set();
    for params in every_kind() {
        let model = AlsModel::fit(&r, &params).unwrap();
        for rows in [1, 7, 64, 100_000] {
            let batches = collect(&model, rows);
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(total, model.num_users() + model.num_items());
            assert!(batches.iter().all(|b| b.num_rows() <= rows));
            assert!(batches
                .iter()
                .all(|b| b.schema() == AlsModel::factors_schema()));
            let back = AlsModel::from_factor_batches(params.clone(), &batches).unwrap();
            assert_eq!(back, model, "{params}, {rows} rows a batch");
            for &u in model.user_ids() {
                for &i in model.item_ids() {
                    assert_eq!(back.predict(u, i), model.predict(u, i));
                }
            }
            assert_eq!(recommendations(&back, &r), recommendations(&model, &r));
        }
        // Warm starting from the copy is warm starting from the model.
        let copy = AlsModel::from_factor_batches(params.clone(), &collect(&model, 50)).unwrap();
        assert_eq!(
            AlsModel::fit_warm(&r, &params, &copy).unwrap(),
            AlsModel::fit_warm(&r, &params, &model).unwrap()
        );
    }
}

#[test]
fn factor_batches_list_users_then_items_by_id() {
    let model = AlsModel::fit(&small_set(), &AlsParams::spark_explicit()).unwrap();
    let batches = collect(&model, 33);
    let mut rows: Vec<(String, i32, Vec<f32>)> = Vec::new();
    for b in &batches {
        let sides = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let ids = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        let lists = b.column(2).as_any().downcast_ref::<ListArray>().unwrap();
        for row in 0..b.num_rows() {
            let f = lists.value(row);
            let f = f.as_any().downcast_ref::<Float32Array>().unwrap();
            rows.push((sides.value(row).into(), ids.value(row), f.values().to_vec()));
        }
    }
    let users = model.num_users();
    assert!(rows[..users].iter().all(|r| r.0 == "user"));
    assert!(rows[users..].iter().all(|r| r.0 == "item"));
    let ids: Vec<i32> = rows[..users].iter().map(|r| r.1).collect();
    assert_eq!(ids, model.user_ids());
    let ids: Vec<i32> = rows[users..].iter().map(|r| r.1).collect();
    assert_eq!(ids, model.item_ids());
    for (side, id, f) in &rows {
        let want = if side == "user" {
            model.user_factors(*id)
        } else {
            model.item_factors(*id)
        };
        assert_eq!(Some(f.as_slice()), want);
    }
}

/// Batches of the factors schema from plain rows.
fn factor_batch(rows: &[(&str, i32, Vec<f32>)]) -> RecordBatch {
    let sides: StringArray = rows.iter().map(|r| Some(r.0)).collect();
    let ids: Int32Array = rows.iter().map(|r| r.1).collect();
    let values: Float32Array = rows.iter().flat_map(|r| r.2.clone()).collect();
    let offsets = OffsetBuffer::<i32>::from_lengths(rows.iter().map(|r| r.2.len()));
    let element = Arc::new(Field::new("item", DataType::Float32, true));
    let lists = ListArray::try_new(element, offsets, Arc::new(values), None).unwrap();
    RecordBatch::try_new(
        AlsModel::factors_schema(),
        vec![Arc::new(sides), Arc::new(ids), Arc::new(lists)],
    )
    .unwrap()
}

fn rank(n: usize) -> AlsParams {
    AlsParams {
        rank: n,
        ..AlsParams::default()
    }
}

#[test]
fn factors_are_read_in_any_row_order_and_from_other_column_types() {
    // Ids in no order, over several batches, users and items mixed.
    let a = factor_batch(&[
        ("item", 30, vec![1.0, 0.0]),
        ("user", 9, vec![0.5, 0.5]),
        ("user", -4, vec![2.0, 1.0]),
    ]);
    let b = factor_batch(&[("item", 10, vec![0.0, 3.0]), ("user", 2, vec![1.0, -1.0])]);
    let model = AlsModel::from_factor_batches(rank(2), &[a.clone(), b.clone()]).unwrap();
    assert_eq!(model.user_ids(), &[-4, 2, 9]);
    assert_eq!(model.item_ids(), &[10, 30]);
    assert_eq!(model.user_factors(-4), Some(&[2.0, 1.0][..]));
    assert_eq!(model.item_factors(30), Some(&[1.0, 0.0][..]));
    assert_eq!(model.predict(-4, 10), Some(3.0));
    assert_eq!(model.predict(2, 10), Some(-3.0));
    assert_eq!(model.predict(9, 30), Some(0.5));
    assert_eq!(model.rank(), 2);
    assert_eq!(model.params(), &rank(2));
    let reversed = AlsModel::from_factor_batches(rank(2), &[b, a.clone()]).unwrap();
    assert_eq!(reversed, model);
    // A slice of a batch reads only its rows.
    let sliced = AlsModel::from_factor_batches(rank(2), &[a.slice(1, 2), a.slice(0, 1)]).unwrap();
    assert_eq!(sliced.user_ids(), &[-4, 9]);
    assert_eq!(sliced.item_factors(30), Some(&[1.0, 0.0][..]));

    // Int64 ids, Float64 values in large and fixed-size lists, an extra column.
    let sides: ArrayRef = Arc::new(StringArray::from(vec!["user", "item"]));
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![5, 6]));
    let values = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
    let element = Arc::new(Field::new("item", DataType::Float64, true));
    let large: ArrayRef = Arc::new(
        LargeListArray::try_new(
            element.clone(),
            OffsetBuffer::<i64>::from_lengths([2, 2]),
            values.clone(),
            None,
        )
        .unwrap(),
    );
    let fixed: ArrayRef = Arc::new(FixedSizeListArray::try_new(element, 2, values, None).unwrap());
    for factors in [large, fixed] {
        let b = RecordBatch::try_from_iter([
            ("note", Arc::new(Int32Array::from(vec![0, 0])) as ArrayRef),
            ("side", sides.clone()),
            ("id", ids.clone()),
            ("factors", factors.clone()),
        ])
        .unwrap();
        let m = AlsModel::from_factor_batches(rank(2), std::slice::from_ref(&b)).unwrap();
        assert_eq!(m.predict(5, 6), Some(11.0));
        // Sliced: the second row alone has no user.
        let e = AlsModel::from_factor_batches(rank(2), &[b.slice(1, 1)]).unwrap_err();
        assert!(e.to_string().contains("no user rows"), "{e}");
    }
}

/// The error of reading `batches` with rank 2: a schema error for the model factors.
fn error(batches: &[RecordBatch]) -> String {
    let e = AlsModel::from_factor_batches(rank(2), batches).unwrap_err();
    match &e {
        Error::Schema { target, .. } => assert_eq!(target, "model factors", "{e}"),
        other => panic!("not a schema error: {other:?}"),
    }
    e.to_string()
}

fn good() -> Vec<(&'static str, i32, Vec<f32>)> {
    vec![("user", 1, vec![1.0, 2.0]), ("item", 1, vec![3.0, 4.0])]
}

#[test]
fn missing_or_mistyped_columns_are_errors() {
    let b = factor_batch(&good());
    let keep = |names: &[&str], replace: Option<(&str, ArrayRef)>| {
        let mut columns: Vec<(String, ArrayRef)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| names.contains(&f.name().as_str()))
            .map(|(f, c)| (f.name().clone(), c.clone()))
            .collect();
        if let Some((name, array)) = &replace {
            for c in columns.iter_mut().filter(|c| c.0 == *name) {
                c.1 = array.clone();
            }
        }
        RecordBatch::try_from_iter(columns).unwrap()
    };
    for missing in ["side", "id", "factors"] {
        let names: Vec<&str> = ["side", "id", "factors"]
            .into_iter()
            .filter(|n| *n != missing)
            .collect();
        let e = error(&[keep(&names, None)]);
        assert!(e.contains(&format!("no {missing} column")), "{e}");
    }
    let all = ["side", "id", "factors"];
    let e = error(&[keep(
        &all,
        Some(("side", Arc::new(Int32Array::from(vec![0, 1])))),
    )]);
    assert!(e.contains("side is Int32"), "{e}");
    let e = error(&[keep(
        &all,
        Some(("id", Arc::new(Float32Array::from(vec![1.0, 1.0])))),
    )]);
    assert!(e.contains("id is Float32"), "{e}");
    let e = error(&[keep(
        &all,
        Some(("id", Arc::new(Int64Array::from(vec![1, 1 << 40])))),
    )]);
    assert!(e.contains("id does not fit Int32"), "{e}");
    let e = error(&[keep(
        &all,
        Some(("factors", Arc::new(Float32Array::from(vec![1.0, 1.0])))),
    )]);
    assert!(e.contains("factors is Float32"), "{e}");
    let strings = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Utf8, true)),
        OffsetBuffer::<i32>::from_lengths([1, 1]),
        Arc::new(StringArray::from(vec!["a", "b"])),
        None,
    )
    .unwrap();
    let e = error(&[keep(&all, Some(("factors", Arc::new(strings))))]);
    assert!(e.contains("expected a list of Float32"), "{e}");
    let unsigned = ListArray::try_new(
        Arc::new(Field::new("item", DataType::UInt32, true)),
        OffsetBuffer::<i32>::from_lengths([1, 1]),
        Arc::new(UInt32Array::from(vec![1, 2])),
        None,
    )
    .unwrap();
    let e = error(&[keep(&all, Some(("factors", Arc::new(unsigned))))]);
    assert!(e.contains("expected a list of Float32"), "{e}");
}

#[test]
fn an_unknown_side_is_an_error() {
    let mut rows = good();
    rows.push(("game", 3, vec![0.0, 0.0]));
    let e = error(&[factor_batch(&rows)]);
    assert!(e.contains("\"game\""), "{e}");
    // Case matters.
    let e = error(&[factor_batch(&[
        ("User", 1, vec![1.0, 2.0]),
        ("item", 1, vec![1.0, 2.0]),
    ])]);
    assert!(e.contains("\"User\""), "{e}");
}

#[test]
fn a_factor_list_of_another_length_is_an_error_naming_the_id() {
    let mut rows = good();
    rows.push(("item", 77, vec![1.0, 2.0, 3.0]));
    let e = error(&[factor_batch(&rows)]);
    assert!(
        e.contains("item 77") && e.contains('3') && e.contains('2'),
        "{e}"
    );
    // Across batches too, and an empty list.
    let e = error(&[factor_batch(&good()), factor_batch(&[("user", 8, vec![])])]);
    assert!(e.contains("user 8 has 0 factors"), "{e}");
    // Lists all of one length that is not the parameters' rank.
    let e = AlsModel::from_factor_batches(rank(3), &[factor_batch(&good())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank is 3") && e.contains("2 values"), "{e}");
    // All of length 0.
    let e = AlsModel::from_factor_batches(
        rank(2),
        &[factor_batch(&[("user", 1, vec![]), ("item", 1, vec![])])],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("0 values"), "{e}");
}

#[test]
fn duplicate_ids_are_errors() {
    let mut rows = good();
    rows.push(("user", 1, vec![5.0, 6.0]));
    let e = error(&[factor_batch(&rows)]);
    assert!(e.contains("user 1 appears more than once"), "{e}");
    // The same id on both sides is fine; twice over two batches is not.
    let e = error(&[factor_batch(&good()), factor_batch(&good()[1..])]);
    assert!(e.contains("item 1 appears more than once"), "{e}");
}

#[test]
fn no_rows_is_an_error() {
    let e = error(&[]);
    assert!(e.contains("no rows"), "{e}");
    let e = error(&[factor_batch(&[])]);
    assert!(e.contains("no rows"), "{e}");
    let e = error(&[factor_batch(&good()[..1])]);
    assert!(e.contains("no item rows"), "{e}");
    let e = error(&[factor_batch(&good()[1..])]);
    assert!(e.contains("no user rows"), "{e}");
}

#[test]
fn non_finite_factors_are_errors() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut rows = good();
        rows.push(("item", 12, vec![0.0, bad]));
        let e = error(&[factor_batch(&rows)]);
        assert!(e.contains("item 12") && e.contains("non-finite"), "{e}");
    }
    // Float64 values beyond f32 become infinite.
    let values = Arc::new(Float64Array::from(vec![1.0, 2.0, 1e300, 4.0]));
    let lists = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Float64, true)),
        OffsetBuffer::<i32>::from_lengths([2, 2]),
        values,
        None,
    )
    .unwrap();
    let b = RecordBatch::try_from_iter([
        (
            "side",
            Arc::new(StringArray::from(vec!["user", "item"])) as ArrayRef,
        ),
        ("id", Arc::new(Int32Array::from(vec![1, 2]))),
        ("factors", Arc::new(lists)),
    ])
    .unwrap();
    let e = error(&[b]);
    assert!(e.contains("item 2") && e.contains("non-finite"), "{e}");
}

#[test]
fn null_values_are_errors() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("side", DataType::Utf8, true),
        Field::new("id", DataType::Int32, true),
        Field::new(
            "factors",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ]));
    let lists = |values: Float32Array, nulls: Option<NullBuffer>| -> ArrayRef {
        Arc::new(
            ListArray::try_new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                OffsetBuffer::<i32>::from_lengths([2, 2]),
                Arc::new(values),
                nulls,
            )
            .unwrap(),
        )
    };
    let batch = |side: Vec<Option<&str>>, id: Vec<Option<i32>>, factors: ArrayRef| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(side)),
                Arc::new(Int32Array::from(id)),
                factors,
            ],
        )
        .unwrap()
    };
    let fine = || Float32Array::from(vec![1.0, 2.0, 3.0, 4.0]);
    let ok = batch(
        vec![Some("user"), Some("item")],
        vec![Some(1), Some(1)],
        lists(fine(), None),
    );
    assert!(AlsModel::from_factor_batches(rank(2), &[ok]).is_ok());
    let e = error(&[batch(
        vec![Some("user"), None],
        vec![Some(1), Some(1)],
        lists(fine(), None),
    )]);
    assert!(e.contains("null side"), "{e}");
    let e = error(&[batch(
        vec![Some("user"), Some("item")],
        vec![Some(1), None],
        lists(fine(), None),
    )]);
    assert!(e.contains("item row has a null id"), "{e}");
    let e = error(&[batch(
        vec![Some("user"), Some("item")],
        vec![Some(1), Some(4)],
        lists(fine(), Some(NullBuffer::from(vec![true, false]))),
    )]);
    assert!(e.contains("item 4: null factors"), "{e}");
    let e = error(&[batch(
        vec![Some("user"), Some("item")],
        vec![Some(3), Some(4)],
        lists(
            Float32Array::from(vec![Some(1.0), None, Some(3.0), Some(4.0)]),
            None,
        ),
    )]);
    assert!(e.contains("user 3: a null factor"), "{e}");
}

#[test]
fn invalid_parameters_are_errors_when_reading_factors() {
    let e = AlsModel::from_factor_batches(
        AlsParams {
            reg_param: -1.0,
            ..rank(2)
        },
        &[factor_batch(&good())],
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
}

#[test]
fn factor_batches_of_zero_rows_are_batches_of_one() {
    let model = AlsModel::fit(&small_set(), &AlsParams::spark_explicit()).unwrap();
    let batches = collect(&model, 0);
    assert_eq!(batches.len(), model.num_users() + model.num_items());
    assert!(batches.iter().all(|b| b.num_rows() == 1));
    let back = AlsModel::from_factor_batches(AlsParams::spark_explicit(), &batches).unwrap();
    assert_eq!(back, model);
}
