//! The postgres_initialization pipeline against a real server (started by scripts/test).

mod common;

use std::path::Path;

use arrow::compute::concat_batches;
use steam_recsys::connectors::postgres::{PostgresConfig, PostgresSource};
use steam_recsys::core::{Error, Table};
use steam_recsys::pipelines::cli::{run, Command};
use steam_recsys::pipelines::{
    generate, postgres_init, process, GenerateOptions, InitInput, ProcessOptions,
};

/// The real description and ranking files with 3,000 generated reviews.
fn raw_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["games_description.csv", "games_ranking.csv"] {
        std::fs::copy(common::real_data_dir().join(f), dir.path().join(f)).unwrap();
    }
    let gen = tempfile::tempdir().unwrap();
    let mut options = GenerateOptions::new(gen.path(), 3_000);
    options.broken_rate = 0.01;
    generate(&options).unwrap();
    std::fs::copy(
        gen.path().join("steam_game_reviews.csv"),
        dir.path().join("steam_game_reviews.csv"),
    )
    .unwrap();
    dir
}

async fn processed(raw: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let mut options = ProcessOptions::new(raw, out.path());
    options.reference_year = 2024;
    process(&options).await.unwrap();
    out
}

async fn counts(config: &PostgresConfig) -> Vec<i64> {
    let client = config.connect().await.unwrap();
    let mut out = Vec::new();
    for t in Table::ALL {
        let q = format!(
            "SELECT count(*) FROM \"{}\".\"{}\"",
            config.schema(),
            t.name()
        );
        out.push(client.query_one(&q, &[]).await.unwrap().get(0));
    }
    out
}

#[tokio::test]
async fn the_eleven_tables_load_with_exact_row_counts() {
    let raw = raw_dir();
    let out = processed(raw.path()).await;
    let config = common::postgres("init");
    let summary = postgres_init(&InitInput::Processed(out.path().to_owned()), &config)
        .await
        .unwrap();
    assert_eq!(summary.tables.len(), 11);
    let in_parquet: Vec<i64> = Table::ALL
        .iter()
        .map(|t| common::rows(out.path(), *t) as i64)
        .collect();
    assert_eq!(counts(&config).await, in_parquet);
    for (t, n) in common::REAL_TABLE_SIZES {
        assert_eq!(summary.table(t.name()).unwrap().rows, n, "{t}");
    }

    // Every value comes back as it was written.
    for t in Table::ALL {
        let source = PostgresSource::table(config.clone(), t.name())
            .await
            .unwrap()
            .with_schema(t.schema())
            .unwrap();
        let back = concat_batches(&t.schema(), &source.read_all().await.unwrap()).unwrap();
        assert_eq!(back, common::table(out.path(), t), "{t}");
    }

    // Keys and indexes.
    let client = config.connect().await.unwrap();
    let keys: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = $1 AND c.contype = 'p'",
            &[&config.schema()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 10, "primary keys: every table but games_ranking");
    let indexed: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 \
             AND tablename = 'games_reviews' ORDER BY 1",
            &[&config.schema()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexed,
        [
            "games_reviews_game_id_idx",
            "games_reviews_pkey",
            "games_reviews_user_id_idx"
        ]
    );

    // Straight from the raw files: the same tables, and the ledger on disk.
    let direct = common::postgres("init_raw");
    let ledger = tempfile::tempdir().unwrap();
    let mut options = ProcessOptions::new(raw.path(), ledger.path());
    options.reference_year = 2024;
    let summary = postgres_init(
        &InitInput::Raw {
            options,
            ledger_dir: ledger.path().to_owned(),
        },
        &direct,
    )
    .await
    .unwrap();
    assert_eq!(counts(&direct).await, in_parquet);
    let reviews = summary.file("steam_game_reviews.csv").unwrap();
    assert!(reviews.balanced() && reviews.rejected > 0, "{reviews:?}");
    let ledger_lines =
        std::fs::read_to_string(ledger.path().join("_rejected/steam_game_reviews.csv"))
            .unwrap()
            .lines()
            .count();
    assert!(
        ledger_lines as u64 > reviews.rejected,
        "header + one line per reject"
    );
    for t in Table::ALL {
        let q = format!(
            "SELECT count(*) FROM ((TABLE \"{a}\".\"{t}\" EXCEPT ALL TABLE \"{b}\".\"{t}\") \
             UNION ALL (TABLE \"{b}\".\"{t}\" EXCEPT ALL TABLE \"{a}\".\"{t}\")) d",
            a = config.schema(),
            b = direct.schema(),
            t = t.name()
        );
        let differ: i64 = client.query_one(&q, &[]).await.unwrap().get(0);
        assert_eq!(differ, 0, "{t}");
    }
}

#[tokio::test]
async fn a_failed_reload_leaves_all_eleven_tables_as_they_were() {
    let raw = raw_dir();
    let out = processed(raw.path()).await;
    let config = common::postgres("reload");
    postgres_init(&InitInput::Processed(out.path().to_owned()), &config)
        .await
        .unwrap();
    let before = counts(&config).await;

    // A missing file is found before anything is written.
    let partial = tempfile::tempdir().unwrap();
    for t in Table::ALL.iter().filter(|t| **t != Table::RankDimension) {
        let f = format!("{}.parquet", t.name());
        std::fs::copy(out.path().join(&f), partial.path().join(&f)).unwrap();
    }
    let err = postgres_init(&InitInput::Processed(partial.path().to_owned()), &config)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("rank_dimension.parquet"), "{err}");

    // A table that breaks in the middle of a load (games_ranking is loaded last, after every other
    // table has been staged): nothing changes.
    let broken = tempfile::tempdir().unwrap();
    for t in Table::ALL {
        let f = format!("{}.parquet", t.name());
        std::fs::copy(out.path().join(&f), broken.path().join(&f)).unwrap();
    }
    let ranking = broken.path().join("games_ranking.parquet");
    let bytes = std::fs::read(&ranking).unwrap();
    let mut corrupt = bytes.clone();
    for b in corrupt.iter_mut().skip(4).take(bytes.len() / 2) {
        *b = 0xAB;
    }
    std::fs::write(&ranking, corrupt).unwrap();
    let err = postgres_init(&InitInput::Processed(broken.path().to_owned()), &config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("games_ranking.parquet"), "{err}");
    assert_eq!(counts(&config).await, before);

    // The command line, with a schema flag over the URL's default.
    let schema = common::unique_schema("cli");
    run(Command::PostgresInit {
        processed: Some(out.path().to_owned()),
        raw: None,
        postgres: steam_recsys::pipelines::cli::PostgresArgs {
            postgres_url: Some(common::postgres_url().into()),
            schema: Some(schema.clone()),
        },
        reference_year: None,
        strict: false,
        ledger_dir: ".".into(),
    })
    .await
    .unwrap();
    let cli = PostgresConfig::from_url(&common::postgres_url())
        .unwrap()
        .with_schema(schema);
    assert_eq!(counts(&cli).await, before);
}
