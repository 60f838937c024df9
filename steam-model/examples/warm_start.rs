//! Warm start against a cold fit on real interactions: a CSV of `item_id,user_id,recommend`
//! (such as the Steam Australia reviews), 20% held out at random; "day 1" is 90% of the rest.
//! The parameters are chosen by tuning on day 1's reviews; then, on all the training reviews, a
//! cold fit (their iterations) and a fit warm-started from day 1's model (`WARM_ITERATIONS`) are
//! compared by NDCG@10 on the held-out reviews, with the popularity baseline beside them.
//!
//!   cargo run --release -p steam-model --example warm_start -- FILE.csv

use std::collections::HashMap;
use std::time::Instant;

use steam_model::{
    default_grid, tune, AlsModel, AlsParams, Holdout, ModelParams, Popularity, Ratings,
    Recommender, Split, WARM_ITERATIONS,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: warm_start FILE.csv (item_id,user_id,recommend)")?;
    let text = std::fs::read_to_string(&path)?;
    let (mut users, mut items) = (HashMap::new(), HashMap::new());
    let mut all = Ratings::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [item, user, recommend] = fields[..] else {
            return Err(format!("{path}: line {}: expected 3 fields", n + 1).into());
        };
        let next = users.len() as i32 + 1;
        let u = *users.entry(user.to_owned()).or_insert(next);
        let next = items.len() as i32 + 1;
        let i = *items.entry(item.to_owned()).or_insert(next);
        let r = if recommend.eq_ignore_ascii_case("true") {
            1.0
        } else {
            0.0
        };
        all.push_review(u, i, r, 0.0, None);
    }
    let (train, test) = all.split(0.2, 42)?;
    let (day1, _) = train.split(0.1, 7)?; // day 1: 90% of the training reviews
    println!(
        "{path}: {} users, {} games, {} reviews; train {}, day 1 {}, held out {}",
        users.len(),
        items.len(),
        all.len(),
        train.len(),
        day1.len(),
        test.len()
    );
    let split = Split::Random {
        holdout: 0.2,
        seed: 43,
    };
    let grid: Vec<ModelParams> = default_grid(&AlsParams::default())
        .into_iter()
        .map(ModelParams::Als)
        .collect();
    let tuning = tune(&day1, &grid, &split, 10)?;
    let params = tuning
        .chosen()
        .params
        .als()
        .cloned()
        .ok_or("the ALS grid chose another family")?;
    println!("tuned on day 1: {params}");
    let holdout = Holdout::new(&train, &test);
    let ndcg = |r: &dyn Recommender| holdout.evaluate(r, 10).ndcg;
    let previous = AlsModel::fit(&day1, &params)?;
    let t = Instant::now();
    let cold = AlsModel::fit(&train, &params)?;
    let cold_s = t.elapsed().as_secs_f64();
    let warm_params = AlsParams {
        iterations: WARM_ITERATIONS,
        ..params.clone()
    };
    let t = Instant::now();
    let warm = AlsModel::fit_warm(&train, &warm_params, &previous)?;
    let warm_s = t.elapsed().as_secs_f64();
    let (c, w) = (ndcg(&cold), ndcg(&warm));
    println!(
        "popularity          NDCG@10 {:.4}",
        ndcg(&Popularity::fit(&train))
    );
    println!("day 1's model       NDCG@10 {:.4}", ndcg(&previous));
    println!(
        "cold, {} iterations NDCG@10 {c:.4} ({cold_s:.2} s)",
        params.iterations
    );
    println!(
        "warm, {WARM_ITERATIONS} iterations  NDCG@10 {w:.4} ({warm_s:.2} s), {:.3}x cold",
        w / c
    );
    for iterations in [1, 3, 5, 10] {
        let p = AlsParams {
            iterations,
            ..params.clone()
        };
        let w = ndcg(&AlsModel::fit_warm(&train, &p, &previous)?);
        let again = ndcg(&AlsModel::fit_warm(&day1, &p, &previous)?);
        println!("warm, {iterations:>2} iterations NDCG@10 {w:.4} ({:.3}x cold); on day 1 alone {again:.4}", w / c);
    }
    Ok(())
}
