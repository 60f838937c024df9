//! The process pipeline on small hand-written raw files and on generated data: semantics, the
//! rejects ledger, strict mode, and errors.

mod common;

use common::*;
use steam_recsys::core::{Error, Table};
use steam_recsys::pipelines::{generate, process, GenerateOptions, ProcessOptions};

const DESCRIPTIONS: &str = "name,short_description,long_description,genres,minimum_system_requirement,recommend_system_requirement,release_date,developer,publisher,overall_player_rating,number_of_reviews_from_purchased_people,number_of_english_reviews,link
Alpha,s,\"About This Game
  Alpha text \",\"['Action', 'RPG']\",[],[],\"19 Aug, 2024\",\"['FromSoftware, Inc.']\",\"[\"\"World's Edge\"\", 'Valve']\",Very Positive,\"(1,234)\",\"2,258,990\",l
Beta,s,Beta text,['RPG'],[],[],Coming soon,['Valve'],['Valve'],7 user reviews,()\u{a0}All Time,2,l
Alpha,s,dup,['RPG'],[],[],Nov 2018,['Valve'],['Valve'],Mixed,(10),1,l
Gamma,s,g,['Action'],[],[],Nov 2018,['Valve'],['Valve'],Mixed,\"(81% of 62,791)\u{a0}All Time\",1,l
Delta,s,d,Action,[],[],Nov 2018,['Valve'],['Valve'],Mixed,(10),1,l
";

const RANKING: &str = "game_name,genre,rank_type,rank
Alpha,Action,Sales,1
Beta,RPG,Review,2
Nobody,RPG,Sales,3
Alpha,Nonexistent,Revenue,4
Gamma,Action,Sales,x
";

const REVIEWS: &str = "review,hours_played,helpful,funny,recommendation,date,game_name,username
\"Great, \"\"really\"\" great\",\"1,234.5\",\"1,152\",0,Recommended,\"September 14, 2023\",Alpha,\"Sentinowl
123 products in account\"
ok,2,0,1,Not Recommended,14 September,Beta,
nope,1,0,0,Recommended,September 14,Nobody,Ghost
x,abc,0,0,Recommended,September 14,Alpha,Sentinowl
y,1,0,0,Maybe,September 14,Alpha,Zed
z,1,0,0,Recommended,February 30,Alpha,Zed
short,row
très bien 好玩,,,,Recommended,\"14 September, 2023\",Gamma,\"Sentinowl
9 products in account\"
";

async fn run(
    raw: &std::path::Path,
    strict: bool,
) -> steam_recsys::core::Result<(tempfile::TempDir, steam_recsys::core::RunSummary)> {
    let out = tempfile::tempdir().unwrap();
    let mut o = ProcessOptions::new(raw, out.path());
    o.reference_year = 2021;
    o.strict = strict;
    let s = process(&o).await?;
    Ok((out, s))
}

#[tokio::test]
async fn descriptions_semantics_and_rejects() {
    let raw = raw_dir(DESCRIPTIONS, RANKING, REVIEWS);
    let (out, summary) = run(raw.path(), false).await.unwrap();
    let out = out.path();
    let g = table(out, Table::GamesDescription);
    assert_eq!(
        strings(&g, "name"),
        vec![
            Some("Alpha".into()),
            Some("Beta".into()),
            Some("Gamma".into())
        ]
    );
    assert_eq!(
        i32s(&g, "game_id"),
        vec![Some(1), Some(2), Some(4)],
        "ids are record positions"
    );
    assert_eq!(
        strings(&g, "long_description")[0].as_deref(),
        Some("Alpha text")
    );
    assert_eq!(
        dates(&g, "release_date"),
        vec![Some("2024-08-19".into()), None, Some("2018-11-01".into())]
    );
    assert_eq!(
        strings(&g, "overall_player_rating"),
        vec![
            Some("Very Positive".into()),
            Some("Not enough data".into()),
            Some("Mixed".into())
        ]
    );
    assert_eq!(
        i32s(&g, "number_of_reviews_from_purchased_people"),
        vec![Some(1234), Some(7), Some(50_860)]
    );
    assert_eq!(
        i32s(&g, "number_of_english_reviews"),
        vec![Some(2_258_990), Some(2), Some(1)]
    );

    let rej = ledger(out, "games_description.csv");
    assert_eq!(rej.len(), 2);
    assert_eq!(
        rej[0].0, 5,
        "line of the duplicate (Alpha's description spans two lines)"
    );
    assert_eq!(rej[0].1, "name");
    assert!(
        rej[0].3.contains("duplicate game name (first on line 2)"),
        "{:?}",
        rej[0]
    );
    assert_eq!(
        (rej[1].0, rej[1].1.as_str(), rej[1].2.as_str()),
        (7, "genres", "Action")
    );

    let genres = table(out, Table::GenreDimension);
    assert_eq!(
        strings(&genres, "genre"),
        vec![Some("Action".into()), Some("RPG".into())]
    );
    let pubs = table(out, Table::PublisherDimension);
    assert_eq!(
        strings(&pubs, "publisher"),
        vec![Some("Valve".into()), Some("World's Edge".into())]
    );
    let gm = table(out, Table::GenreMapping);
    assert_eq!(
        i32s(&gm, "game_id"),
        vec![Some(1), Some(1), Some(2), Some(4)]
    );
    assert_eq!(
        i32s(&gm, "genre_id"),
        vec![Some(1), Some(2), Some(2), Some(1)]
    );
    let d = summary.file("games_description.csv").unwrap();
    assert_eq!((d.raw, d.loaded, d.rejected), (5, 3, 2));
}

#[tokio::test]
async fn ranking_semantics_and_rejects() {
    let raw = raw_dir(DESCRIPTIONS, RANKING, REVIEWS);
    let (out, _) = run(raw.path(), false).await.unwrap();
    let out = out.path();
    let rd = table(out, Table::RankDimension);
    assert_eq!(
        strings(&rd, "rank_type"),
        vec![
            Some("Sales".into()),
            Some("Review".into()),
            Some("Revenue".into())
        ],
        "order of first appearance, rejected rows included"
    );
    let r = table(out, Table::GamesRanking);
    assert_eq!(r.num_rows(), 2);
    assert_eq!(i32s(&r, "game_id"), vec![Some(1), Some(2)]);
    assert_eq!(i32s(&r, "genre_id"), vec![Some(1), Some(2)]);
    assert_eq!(i32s(&r, "rank_type_id"), vec![Some(1), Some(2)]);
    let rej = ledger(out, "games_ranking.csv");
    assert_eq!(
        rej,
        vec![
            (
                4,
                "game_name".into(),
                "Nobody".into(),
                "unknown game".into()
            ),
            (
                5,
                "genre".into(),
                "Nonexistent".into(),
                "unknown genre".into()
            ),
            (
                6,
                "rank".into(),
                "x".into(),
                "not an integer from 0 to 255".into()
            ),
        ]
    );
}

#[tokio::test]
async fn reviews_semantics_users_and_rejects() {
    let raw = raw_dir(DESCRIPTIONS, RANKING, REVIEWS);
    let (out, summary) = run(raw.path(), false).await.unwrap();
    let out = out.path();
    let users = table(out, Table::UsersMapping);
    assert_eq!(
        strings(&users, "username"),
        vec![Some("Sentinowl".into()), Some("anonymous".into()), Some("Ghost".into()), Some("Zed".into())],
        "first line of the value, anonymous when empty, order of first appearance, users of rejected reviews included"
    );
    assert_eq!(
        i32s(&users, "user_id"),
        vec![Some(1), Some(2), Some(3), Some(4)]
    );

    let r = table(out, Table::GamesReviews);
    assert_eq!(r.num_rows(), 3);
    assert_eq!(
        strings(&r, "review")[0].as_deref(),
        Some("Great, \"really\" great")
    );
    assert_eq!(strings(&r, "review")[2].as_deref(), Some("très bien 好玩"));
    assert_eq!(
        f32s(&r, "hours_played"),
        vec![Some(1234.5), Some(2.0), None]
    );
    assert_eq!(i64s(&r, "helpful"), vec![Some(1152), Some(0), None]);
    assert_eq!(i64s(&r, "funny"), vec![Some(0), Some(1), None]);
    let rec = r.column_by_name("recommendation").unwrap();
    let rec = arrow::array::AsArray::as_boolean(rec);
    assert_eq!(
        rec.iter().collect::<Vec<_>>(),
        vec![Some(true), Some(false), Some(true)]
    );
    assert_eq!(
        dates(&r, "date"),
        vec![
            Some("2023-09-14".into()),
            Some("2021-09-14".into()),
            Some("2023-09-14".into())
        ],
        "year-less dates take the reference year"
    );
    assert_eq!(i32s(&r, "user_id"), vec![Some(1), Some(2), Some(1)]);
    assert_eq!(i32s(&r, "game_id"), vec![Some(1), Some(2), Some(4)]);

    let rej = ledger(out, "steam_game_reviews.csv");
    let brief: Vec<_> = rej
        .iter()
        .map(|(l, c, v, _)| (*l, c.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        brief,
        vec![
            (5, "game_name", "Nobody"),
            (6, "hours_played", "abc"),
            (7, "recommendation", "Maybe"),
            (8, "date", "February 30"),
            (9, "", ""),
        ]
    );
    assert_eq!(rej[0].3, "unknown game");
    assert_eq!(rej[1].3, "not a number");
    assert_eq!(rej[4].3, "2 fields, expected 8");
    let f = summary.file("steam_game_reviews.csv").unwrap();
    assert_eq!((f.raw, f.loaded, f.rejected), (8, 3, 5));
}

#[tokio::test]
async fn strict_mode_fails_on_the_first_bad_record_and_keeps_old_output() {
    let raw = raw_dir(DESCRIPTIONS, RANKING, REVIEWS);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("games_ranking.parquet"), b"old").unwrap();
    let mut o = ProcessOptions::new(raw.path(), out.path());
    o.strict = true;
    let e = process(&o).await.unwrap_err();
    match &e {
        Error::BadInput {
            file,
            line,
            column,
            value,
            reason,
        } => {
            assert_eq!(file, "games_description.csv");
            assert_eq!(*line, 5);
            assert_eq!(column, "name");
            assert_eq!(value, "Alpha");
            assert!(reason.contains("duplicate"), "{reason}");
        }
        other => panic!("expected BadInput, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("games_description.csv") && msg.contains("line 5") && msg.contains("name"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(out.path().join("games_ranking.parquet")).unwrap(),
        b"old"
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no staging files left behind: {left:?}");
}

#[tokio::test]
async fn missing_file_and_missing_column_are_clear_errors() {
    let raw = raw_dir(DESCRIPTIONS, RANKING, REVIEWS);
    std::fs::remove_file(raw.path().join("steam_game_reviews.csv")).unwrap();
    let e = run(raw.path(), false).await.unwrap_err();
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("steam_game_reviews.csv"), "{e}");

    let raw = raw_dir(
        DESCRIPTIONS,
        "game_name,genre,rank\nAlpha,Action,1\n",
        REVIEWS,
    );
    let e = run(raw.path(), false).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("games_ranking.csv") && msg.contains("\"rank_type\""),
        "{msg}"
    );
}

#[tokio::test]
async fn garbage_input_never_panics() {
    let junk = [
        "",
        "\u{feff}",
        "\"",
        "name\n\"unterminated",
        "a,b,c\n1,2,3\n",
        "\0\0\0\n\n\n",
    ];
    for text in junk {
        for (i, target) in [
            "games_description.csv",
            "games_ranking.csv",
            "steam_game_reviews.csv",
        ]
        .iter()
        .enumerate()
        {
            let mut files = [
                DESCRIPTIONS.to_owned(),
                RANKING.to_owned(),
                REVIEWS.to_owned(),
            ];
            files[i] = text.to_owned();
            let raw = raw_dir(&files[0], &files[1], &files[2]);
            let e = run(raw.path(), false).await.unwrap_err();
            assert!(
                matches!(e, Error::MissingColumn { .. }),
                "{target} = {text:?} must be a missing-column error: {e}"
            );
        }
    }
    // headers fine, every value hostile
    let hostile = "review,hours_played,helpful,funny,recommendation,date,game_name,username\n\
        \u{0},-,--1,9999999999999999999999,\u{202e},\"1 2 3 4\",\"\",\"\n\n\"\n,1e400,NaN,,,,Alpha,\n";
    let raw = raw_dir(DESCRIPTIONS, RANKING, hostile);
    let (_, s) = run(raw.path(), false).await.unwrap();
    let f = s.file("steam_game_reviews.csv").unwrap();
    assert_eq!((f.raw, f.loaded, f.rejected), (2, 0, 2));
}

#[tokio::test]
async fn generated_data_every_record_is_accounted_for() {
    let raw = tempfile::tempdir().unwrap();
    let mut g = GenerateOptions::new(raw.path(), 30_000);
    g.games = 120;
    g.broken_rate = 0.01;
    g.seed = 7;
    let generated = generate(&g).unwrap();
    let (out, summary) = run(raw.path(), false).await.unwrap();
    let out = out.path();
    let expected_raw = [
        (
            "games_description.csv",
            generated.games,
            Table::GamesDescription,
        ),
        ("games_ranking.csv", generated.ranking, Table::GamesRanking),
        (
            "steam_game_reviews.csv",
            generated.reviews,
            Table::GamesReviews,
        ),
    ];
    for (file, raw_records, t) in expected_raw {
        let f = summary.file(file).unwrap();
        assert_eq!(f.raw, raw_records, "{file}");
        assert_eq!(f.loaded + f.rejected, f.raw, "{file}");
        assert_eq!(rows(out, t) as u64, f.loaded, "{file}");
        assert_eq!(ledger(out, file).len() as u64, f.rejected, "{file}");
    }
    let reviews = summary.file("steam_game_reviews.csv").unwrap();
    let unknown = ledger(out, "steam_game_reviews.csv")
        .iter()
        .filter(|r| r.3 == "unknown game")
        .count() as f64;
    let share = unknown / reviews.raw as f64;
    assert!(
        (0.05..0.09).contains(&share),
        "about 7% of reviews are for games outside the catalog: {share}"
    );
    let reasons: std::collections::BTreeSet<_> = ledger(out, "steam_game_reviews.csv")
        .into_iter()
        .map(|r| r.1)
        .collect();
    for col in ["game_name", "hours_played", "date", "recommendation", ""] {
        assert!(
            reasons.contains(col),
            "the broken records include {col:?}: {reasons:?}"
        );
    }
    // every review's user and game exist
    let users = rows(out, Table::UsersMapping) as i32;
    let games = table(out, Table::GamesDescription);
    let game_ids: std::collections::HashSet<_> = i32s(&games, "game_id").into_iter().collect();
    let r = table(out, Table::GamesReviews);
    assert!(i32s(&r, "user_id")
        .iter()
        .all(|u| (1..=users).contains(&u.unwrap())));
    assert!(i32s(&r, "game_id").iter().all(|g| game_ids.contains(g)));
    // heavy tail: the busiest user wrote far more than the average
    let mut per_user = std::collections::HashMap::new();
    for u in i32s(&r, "user_id") {
        *per_user.entry(u).or_insert(0u32) += 1;
    }
    let max = *per_user.values().max().unwrap() as f64;
    let mean = r.num_rows() as f64 / per_user.len() as f64;
    assert!(max > 10.0 * mean, "max {max}, mean {mean}");
}

/// The (id, name) pairs of a processed dimension (or of games_description, with `name`).
fn id_names(out: &std::path::Path, table: Table, id: &str, name: &str) -> Vec<(i32, String)> {
    let b = common::table(out, table);
    common::i32s(&b, id)
        .into_iter()
        .zip(common::strings(&b, name))
        .map(|(i, n)| (i.unwrap(), n.unwrap()))
        .collect()
}

#[tokio::test]
async fn a_second_scrape_into_the_same_directory_keeps_every_id() {
    let day1 = common::raw_dir(
        "name,long_description,genres,release_date,developer,publisher,overall_player_rating,\
         number_of_reviews_from_purchased_people,number_of_english_reviews\n\
         Alpha,a,\"['RPG', 'Action']\",Nov 2018,['V'],['V'],Mixed,(10),1\n\
         Beta,b,['RPG'],Nov 2018,['V'],['V'],Mixed,(10),1\n\
         Gamma,c,['Indie'],Nov 2018,['W'],['V'],Mixed,(10),1\n",
        "game_name,genre,rank_type,rank\nAlpha,RPG,Sales,1\nBeta,RPG,Review,2\n",
        "review,hours_played,helpful,funny,recommendation,date,game_name,username\n\
         good,1,0,0,Recommended,\"May 1, 2024\",Alpha,ann\n\
         fine,1,0,0,Recommended,\"May 1, 2024\",Beta,bob\n",
    );
    // The store no longer lists Beta, lists a new game first, a new genre and a new rank type;
    // a new review and a new user come first, the old review again, and the same review twice.
    let day2 = common::raw_dir(
        "name,long_description,genres,release_date,developer,publisher,overall_player_rating,\
         number_of_reviews_from_purchased_people,number_of_english_reviews\n\
         Omega,o,\"['Action', 'Arcade']\",Nov 2018,['X'],['V'],Mixed,(10),1\n\
         Gamma,c2,['Indie'],Nov 2018,['W'],['V'],Mixed,(10),1\n\
         Alpha,a,\"['RPG', 'Action']\",Nov 2018,['V'],['V'],Mixed,(10),1\n",
        "game_name,genre,rank_type,rank\nOmega,Arcade,Trending,1\nAlpha,RPG,Sales,2\n",
        "review,hours_played,helpful,funny,recommendation,date,game_name,username\n\
         wow,1,0,0,Recommended,\"May 2, 2024\",Omega,cy\n\
         good,9,5,0,Recommended,\"May 1, 2024\",Alpha,ann\n\
         wow,1,0,0,Recommended,\"May 2, 2024\",Omega,cy\n",
    );
    let out = tempfile::tempdir().unwrap();
    let date = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let mut o = ProcessOptions::new(day1.path(), out.path());
    o.run_date = date(1);
    process(&o).await.unwrap();
    let games1 = id_names(out.path(), Table::GamesDescription, "game_id", "name");
    assert_eq!(
        games1,
        [(1, "Alpha".into()), (2, "Beta".into()), (3, "Gamma".into())]
    );
    let genres1 = id_names(out.path(), Table::GenreDimension, "genre_id", "genre");
    assert_eq!(
        genres1,
        [(1, "Action".into()), (2, "Indie".into()), (3, "RPG".into())]
    );

    let mut o = ProcessOptions::new(day2.path(), out.path());
    o.run_date = date(2);
    let summary = process(&o).await.unwrap();
    // Known ids stay; Omega is numbered after the largest; Beta, gone from the file, keeps its
    // row (its reviews refer to it) and its id.
    assert_eq!(
        id_names(out.path(), Table::GamesDescription, "game_id", "name"),
        [
            (1, "Alpha".into()),
            (2, "Beta".into()),
            (3, "Gamma".into()),
            (4, "Omega".into())
        ]
    );
    let description = common::table(out.path(), Table::GamesDescription);
    assert_eq!(
        common::strings(&description, "long_description")[2].as_deref(),
        Some("c2"),
        "a game the file lists gets its new description"
    );
    assert_eq!(
        id_names(out.path(), Table::GenreDimension, "genre_id", "genre"),
        [
            (1, "Action".into()),
            (2, "Indie".into()),
            (3, "RPG".into()),
            (4, "Arcade".into())
        ]
    );
    let beta_genres: Vec<_> = {
        let m = common::table(out.path(), Table::GenreMapping);
        common::i32s(&m, "game_id")
            .into_iter()
            .zip(common::i32s(&m, "genre_id"))
            .filter(|(g, _)| *g == Some(2))
            .map(|(_, n)| n.unwrap())
            .collect()
    };
    assert_eq!(beta_genres, [3], "Beta keeps its mapping");
    assert_eq!(
        id_names(
            out.path(),
            Table::RankDimension,
            "rank_type_id",
            "rank_type"
        ),
        [
            (1, "Sales".into()),
            (2, "Review".into()),
            (3, "Trending".into())
        ]
    );
    assert_eq!(
        id_names(out.path(), Table::UsersMapping, "user_id", "username"),
        [(1, "ann".into()), (2, "bob".into()), (3, "cy".into())]
    );
    // Reviews: the table rebuilt from this input (bob's review of Beta is no longer in it), each
    // review once, with the day it first arrived.
    let reviews = common::table(out.path(), Table::GamesReviews);
    let firsts = common::dates(&reviews, "first_seen");
    let texts = common::strings(&reviews, "review");
    let mut seen: Vec<(String, String)> = texts
        .into_iter()
        .zip(firsts)
        .map(|(t, d)| (t.unwrap(), d.unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("good".into(), "2026-11-01".into()),
            ("wow".into(), "2026-11-02".into())
        ]
    );
    let f = summary.file("steam_game_reviews.csv").unwrap();
    assert_eq!((f.raw, f.loaded, f.known, f.rejected), (3, 2, 0, 1));
    let ledger = common::ledger(out.path(), "steam_game_reviews.csv");
    assert!(
        ledger[0].3.contains("duplicate review (first on line 2"),
        "{ledger:?}"
    );

    // The same input once more changes nothing.
    let before: Vec<_> = Table::ALL
        .iter()
        .map(|t| common::table(out.path(), *t))
        .collect();
    process(&o).await.unwrap();
    let after: Vec<_> = Table::ALL
        .iter()
        .map(|t| common::table(out.path(), *t))
        .collect();
    assert_eq!(before, after);
}
