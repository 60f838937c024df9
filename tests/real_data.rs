//! The cleaning transforms on the scraper's real files (tests/fixtures/real).

mod common;

use std::path::Path;

use common::*;
use steam_recsys::core::Table;
use steam_recsys::pipelines::{generate, process, GenerateOptions, ProcessOptions};

/// A raw directory with the real description and ranking files and a small generated reviews file.
fn real_raw(transform: impl Fn(&[u8]) -> Vec<u8>) -> tempfile::TempDir {
    let real = real_data_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in ["games_description.csv", "games_ranking.csv"] {
        let bytes = std::fs::read(real.join(f)).unwrap();
        std::fs::write(dir.path().join(f), transform(&bytes)).unwrap();
    }
    let gen = tempfile::tempdir().unwrap();
    generate(&GenerateOptions::new(gen.path(), 300)).unwrap();
    let reviews = std::fs::read(gen.path().join("steam_game_reviews.csv")).unwrap();
    std::fs::write(
        dir.path().join("steam_game_reviews.csv"),
        transform(&reviews),
    )
    .unwrap();
    dir
}

async fn run(raw: &Path) -> (tempfile::TempDir, steam_recsys::core::RunSummary) {
    let out = tempfile::tempdir().unwrap();
    let mut o = ProcessOptions::new(raw, out.path());
    o.reference_year = 2024;
    let summary = process(&o).await.unwrap();
    (out, summary)
}

#[tokio::test]
async fn real_files_give_the_documented_table_sizes() {
    let raw = real_raw(|b| b.to_vec());
    let (out, summary) = run(raw.path()).await;
    let out = out.path();
    for (t, n) in common::REAL_TABLE_SIZES {
        assert_eq!(rows(out, t) as u64, n, "{t}");
        assert_eq!(summary.table(t.name()).unwrap().rows, n, "{t}");
    }
    let d = summary.file("games_description.csv").unwrap();
    assert_eq!((d.raw, d.loaded, d.rejected), (290, 290, 0));
    let r = summary.file("games_ranking.csv").unwrap();
    assert_eq!((r.raw, r.loaded, r.rejected), (672, 438, 234));
    assert_eq!(ledger(out, "games_ranking.csv").len(), 234);
    for f in &summary.files {
        assert!(f.balanced(), "{f:?}");
    }
}

#[tokio::test]
async fn real_descriptions_are_cleaned_as_documented() {
    let raw = real_raw(|b| b.to_vec());
    let (out, _) = run(raw.path()).await;
    let g = table(out.path(), Table::GamesDescription);
    let names = strings(&g, "name");
    let ids = i32s(&g, "game_id");
    assert_eq!(ids, (1..=290).map(Some).collect::<Vec<_>>());
    let row = |name: &str| {
        names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .unwrap()
    };

    let wukong = row("Black Myth: Wukong");
    assert_eq!(wukong, 0);
    assert_eq!(
        dates(&g, "release_date")[wukong].as_deref(),
        Some("2024-08-19")
    );
    assert_eq!(
        i32s(&g, "number_of_reviews_from_purchased_people")[wukong],
        Some(654_820)
    );
    assert_eq!(i32s(&g, "number_of_english_reviews")[wukong], Some(51_931));
    let long = strings(&g, "long_description")[wukong].clone().unwrap();
    assert!(
        long.starts_with("Black Myth: Wukong is an action RPG"),
        "{long:.60}"
    );

    let marine = row("Warhammer 40,000: Space Marine 2");
    assert_eq!(
        i32s(&g, "number_of_reviews_from_purchased_people")[marine],
        Some(50_860),
        "(81% of 62,791) All Time"
    );
    assert_eq!(
        strings(&g, "overall_player_rating")[marine].as_deref(),
        Some("Very Positive")
    );

    let cs2 = row("Counter-Strike 2");
    assert_eq!(i32s(&g, "number_of_english_reviews")[cs2], Some(2_258_990));

    // "()\u{a0}All Time" with "7 user reviews": the count comes from the rating text
    let ratings = strings(&g, "overall_player_rating");
    let counts = i32s(&g, "number_of_reviews_from_purchased_people");
    let not_enough: Vec<_> = (0..290)
        .filter(|&i| ratings[i].as_deref() == Some("Not enough data"))
        .map(|i| counts[i])
        .collect();
    assert_eq!(not_enough, vec![Some(7), Some(1), Some(6), Some(4)]);

    // "Nov 2018" is the first of the month
    let month_only: Vec<_> = dates(&g, "release_date")
        .into_iter()
        .flatten()
        .filter(|d| d == "2018-11-01" || d == "2019-04-01")
        .collect();
    assert_eq!(month_only.len(), 2);
    assert!(dates(&g, "release_date").iter().all(Option::is_some));

    // every long description lost its "About This Game" prefix and surrounding white space; one
    // game's own text starts with "About This Game:" again, and keeps it (the prefix goes once)
    let descriptions: Vec<String> = strings(&g, "long_description")
        .into_iter()
        .flatten()
        .collect();
    assert!(descriptions.iter().all(|d| d.trim() == d));
    let again: Vec<_> = descriptions
        .iter()
        .filter(|d| d.starts_with("About This Game"))
        .collect();
    assert_eq!(again.len(), 1);
    assert!(again[0].starts_with("About This Game:Gunfire Reborn"));

    // list literals: names with commas and apostrophes stay whole
    let devs = table(out.path(), Table::DeveloperDimension);
    let dev_names: Vec<_> = strings(&devs, "developer").into_iter().flatten().collect();
    assert!(dev_names.contains(&"FromSoftware, Inc.".to_owned()));
    assert!(!dev_names.contains(&"Inc.".to_owned()));
    let mut sorted = dev_names.clone();
    sorted.sort();
    assert_eq!(dev_names, sorted, "dimensions are sorted ascending");
    assert_eq!(
        i32s(&devs, "developer_id"),
        (1..=247).map(Some).collect::<Vec<_>>()
    );
    assert!(dev_names.contains(&"World's Edge".to_owned()));

    // ELDEN RING's developer mapping points at the whole name
    let elden = ids[row("ELDEN RING")].unwrap();
    let map = table(out.path(), Table::DeveloperMapping);
    let fromsoft = dev_names
        .iter()
        .position(|d| d == "FromSoftware, Inc.")
        .unwrap() as i32
        + 1;
    let pairs: Vec<_> = i32s(&map, "game_id")
        .into_iter()
        .zip(i32s(&map, "developer_id"))
        .collect();
    assert!(pairs.contains(&(Some(elden), Some(fromsoft))));
}

#[tokio::test]
async fn crlf_line_endings_and_a_bom_give_identical_tables() {
    let plain = real_raw(|b| b.to_vec());
    let windows = real_raw(|b| {
        let mut out = b"\xEF\xBB\xBF".to_vec();
        for &c in b {
            if c == b'\n' {
                out.push(b'\r');
            }
            out.push(c);
        }
        out
    });
    let (a, sa) = run(plain.path()).await;
    let (b, sb) = run(windows.path()).await;
    for t in Table::ALL {
        assert_eq!(table(a.path(), t), table(b.path(), t), "{t}");
    }
    assert_eq!(sa.files, sb.files);
    assert_eq!(
        ledger(a.path(), "games_ranking.csv"),
        ledger(b.path(), "games_ranking.csv"),
        "same rejects on the same lines"
    );
}
