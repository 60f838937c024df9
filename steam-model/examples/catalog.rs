//! Time and memory of each family at a large catalog: synthetic interactions over GAMES games
//! (skewed popularity: a game's chance falls as 1/rank), USERS users of 2 to 40 games each. Fits
//! one family (run one process per family and read its peak memory with /usr/bin/time -v), then
//! every user's top 10 and each game's 10 most similar games.
//!
//!   /usr/bin/time -v cargo run --release -p steam-model --example catalog -- FAMILY [GAMES] [USERS]
//!
//! FAMILY: popularity, item-knn, ease, als or auto (the tuner over every family). Defaults: 50000
//! games, 200000 users.

use std::time::Instant;

use steam_model::{
    auto_grid, tune, AlsParams, EaseParams, KnnParams, Model, ModelParams, Ratings, Split,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let family = args
        .next()
        .ok_or("usage: catalog popularity|item-knn|ease|als|auto [GAMES] [USERS]")?;
    let games: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let users: i32 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    // Zipf-like draw: the cumulative weights of 1/rank.
    let mut cumulative = Vec::with_capacity(games);
    let mut total = 0f64;
    for rank in 1..=games {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let mut train = Ratings::new();
    for u in 0..users {
        for _ in 0..rng.usize(2..=40) {
            let x = rng.f64() * total;
            let game = cumulative.partition_point(|c| *c < x) as i32;
            train.push_review(
                u,
                game,
                f32::from(rng.u8(0..10) > 0),
                rng.f32() * 50.0,
                None,
            );
        }
    }
    println!("{} interactions, {users} users, {games} games", train.len());
    let t = Instant::now();
    let params = match family.as_str() {
        "popularity" => ModelParams::Popularity,
        "item-knn" => ModelParams::ItemKnn(KnnParams {
            neighbours: 100,
            ..KnnParams::default()
        }),
        "ease" => ModelParams::Ease(EaseParams::default()),
        "als" => ModelParams::Als(AlsParams::default()),
        "auto" => {
            let split = Split::Random {
                holdout: 0.2,
                seed: 1,
            };
            let tuning = tune(&train, &auto_grid(&AlsParams::default()), &split, 10)?;
            println!("tuned in {:.1} s", t.elapsed().as_secs_f64());
            tuning.chosen().params.clone()
        }
        other => return Err(format!("unknown family {other:?}").into()),
    };
    let t = Instant::now();
    let model = Model::fit(&train, &params)?;
    println!("fit {params}: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut lists = 0;
    for batch in model.recommend_unseen(&train, 10, 16 * 1024) {
        lists += batch?.num_rows();
    }
    println!(
        "top 10 of {lists} users: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let similar = model.similar_games(&train, 10)?;
    println!(
        "10 similar games of {} games: {:.1} s",
        similar.num_rows(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
