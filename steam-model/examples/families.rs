//! Every model family on real interactions, against the baselines: a CSV of
//! `item_id,user_id,recommend[,hours]` (such as the Steam Australia reviews; `recommend` true/false
//! or a number, above 0 recommending), 20% held out at random (seed 42). Prints precision, NDCG
//! and MAP at 10 of popularity, random, item-kNN, EASE, ALS and `--model auto` (tuned on a
//! validation split of the training reviews only), each fitted on the training reviews, and the
//! candidates the tuner weighed.
//!
//!   cargo run --release -p steam-model --example families -- FILE.csv [SEED]

use std::collections::HashMap;
use std::time::Instant;

use steam_model::{
    auto_grid, tune, AlsParams, EaseParams, Holdout, KnnParams, Model, ModelParams, RandomItems,
    Ratings, Recommender, Similarity, Split,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: families FILE.csv [SEED] (item_id,user_id,recommend[,hours])")?;
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let text = std::fs::read_to_string(&path)?;
    let (mut users, mut items) = (HashMap::new(), HashMap::new());
    let mut all = Ratings::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 3 {
            return Err(format!("{path}: line {}: expected 3 or 4 fields", n + 1).into());
        }
        let next = users.len() as i32 + 1;
        let u = *users.entry(fields[1].to_owned()).or_insert(next);
        let next = items.len() as i32 + 1;
        let i = *items.entry(fields[0].to_owned()).or_insert(next);
        let r = match fields[2] {
            t if t.eq_ignore_ascii_case("true") => 1.0,
            f if f.eq_ignore_ascii_case("false") => 0.0,
            x => x.parse::<f32>()?,
        };
        let hours = fields.get(3).map(|h| h.parse::<f32>()).transpose()?;
        all.push_review(u, i, r, hours.unwrap_or(0.0), None);
    }
    let (train, test) = all.split(0.2, seed)?;
    let holdout = Holdout::new(&train, &test);
    println!(
        "{path}: {} users, {} games, {} reviews; {} trained on, {} held out, {} users evaluated",
        users.len(),
        items.len(),
        all.len(),
        train.len(),
        test.len(),
        holdout.users()
    );
    println!(
        "{:<58} {:>8} {:>8} {:>8} {:>8}",
        "model", "prec@10", "ndcg@10", "map@10", "seconds"
    );
    let row = |name: &str, r: &dyn Recommender, seconds: f64| {
        let m = holdout.evaluate(r, 10);
        println!(
            "{name:<58} {:>8.4} {:>8.4} {:>8.4} {seconds:>8.2}",
            m.precision, m.ndcg, m.map
        );
    };
    let t = Instant::now();
    let tuning = tune(
        &train,
        &auto_grid(&AlsParams::default()),
        &Split::Random {
            holdout: 0.2,
            seed: seed + 1,
        },
        10,
    )?;
    let auto = Model::fit(&train, &tuning.chosen().params)?;
    let auto_seconds = t.elapsed().as_secs_f64();
    row(
        &format!("auto: {}", tuning.chosen().params),
        &auto,
        auto_seconds,
    );
    let fixed = [
        ModelParams::Popularity,
        ModelParams::ItemKnn(KnnParams {
            neighbours: 100,
            similarity: Similarity::Cosine,
        }),
        ModelParams::ItemKnn(KnnParams {
            neighbours: 100,
            similarity: Similarity::Bm25 { k1: 1.2, b: 0.75 },
        }),
        ModelParams::Ease(EaseParams::default()),
        ModelParams::Als(AlsParams::default()),
    ];
    for params in fixed {
        let t = Instant::now();
        let model = Model::fit(&train, &params)?;
        row(&params.to_string(), &model, t.elapsed().as_secs_f64());
    }
    row("random", &RandomItems::fit(&train, seed), 0.0);
    println!("\ncandidates on the validation split (ndcg@10, fit seconds):");
    for (n, c) in tuning.candidates.iter().enumerate() {
        println!(
            "{} {:<70} {:.4} {:>6.2} {}",
            if n == tuning.best { "*" } else { " " },
            c.params.to_string(),
            c.metrics.ndcg,
            c.fit_seconds,
            c.note
        );
    }
    Ok(())
}
