//! The `steam-recsys` command as a user meets it: its help, and its output piped into a reader that
//! stops early.

use std::path::Path;
use std::process::{Command, Stdio};

fn steam_recsys() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steam-recsys"))
}

#[test]
fn help_opens_with_what_the_tool_does() {
    let out = steam_recsys().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let first = help.lines().next().unwrap();
    assert!(
        first.starts_with("Data pipelines of a Steam game recommender"),
        "{first}"
    );
    assert!(!help.contains("compositions"), "{help}");
}

/// Runs `args` with standard output a pipe whose reader has already gone: every write fails with
/// EPIPE, as it does under `steam-recsys … | head -1` once head has exited.
fn with_closed_stdout(args: &[&str]) -> (bool, String) {
    let mut child = steam_recsys()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The arguments of `generate` (`reviews` reviews into `raw`) and of `process` (`raw` into
/// `processed`).
fn generate_and_process(raw: &Path, processed: &Path, reviews: &str) -> [Vec<String>; 2] {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    [
        ["generate", "--reviews", reviews, "--out"]
            .map(String::from)
            .into_iter()
            .chain([path(raw)])
            .collect(),
        ["process", "--raw", &path(raw), "--out", &path(processed)]
            .map(String::from)
            .to_vec(),
    ]
}

/// Generates `reviews` reviews into `dir`/raw and processes them into `dir`/processed, which it
/// returns.
fn generated(dir: &Path, reviews: &str) -> std::path::PathBuf {
    let (raw, processed) = (dir.join("raw"), dir.join("processed"));
    for args in generate_and_process(&raw, &processed, reviews) {
        let out = steam_recsys().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    processed
}

/// A local lake whose games_reviews has one partition: `processed`'s games_reviews.
fn lake_with_reviews(processed: &Path, lake: &Path) {
    let partition = lake.join("games_reviews/record_created_dt=2026-11-29");
    std::fs::create_dir_all(&partition).unwrap();
    std::fs::copy(
        processed.join("games_reviews.parquet"),
        partition.join("part-00000.parquet"),
    )
    .unwrap();
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let processed = dir.path().join("processed");
    let lake = dir.path().join("lake");
    let mut runs: Vec<Vec<String>> = vec![vec!["--help".into()], vec!["--version".into()]];
    runs.extend(generate_and_process(&raw, &processed, "200"));
    for args in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stderr) = with_closed_stdout(&args);
        assert!(ok, "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    // The work was done all the same.
    assert!(processed.join("games_reviews.parquet").is_file());
    // A query's rows, streamed to the closed pipe.
    lake_with_reviews(&processed, &lake);
    let (ok, stderr) = with_closed_stdout(&[
        "sql",
        "SELECT * FROM games_reviews",
        "--lake",
        lake.to_str().unwrap(),
    ]);
    assert!(ok && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sql_streams_rows_as_csv_or_json_up_to_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let processed = generated(dir.path(), "500");
    let lake = dir.path().join("lake");
    lake_with_reviews(&processed, &lake);
    let query = |format: &str, limit: &str| {
        let out = steam_recsys()
            .args([
                "sql",
                "SELECT user_id, game_id, record_created_dt FROM games_reviews",
            ])
            .args([
                "--lake",
                lake.to_str().unwrap(),
                "--format",
                format,
                "--limit",
                limit,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = query("csv", "5");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert_eq!(lines[0], "user_id,game_id,record_created_dt");
    assert!(
        lines[1..].iter().all(|l| l.ends_with(",2026-11-29")),
        "{csv}"
    );
    let json = query("json", "3");
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 3, "{json}");
    for line in lines {
        assert!(
            line.starts_with("{\"user_id\":")
                && line.contains("\"record_created_dt\":\"2026-11-29\""),
            "{line}"
        );
    }
    let table = query("table", "2");
    assert!(table.trim_end().ends_with("2 rows"), "{table}");
}

#[test]
fn parsed_arguments_never_show_a_password() {
    use clap::Parser;
    let cli = steam_pipelines::cli::Cli::try_parse_from([
        "steam-recsys",
        "run",
        "all",
        "--postgres-url",
        "postgresql://steam:pg-hunter2@db:5432/steam",
        "--mongodb-uri",
        "mongodb://app:mongo-hunter2@h1,h2/?replicaSet=rs0",
        "--redis-url",
        "rediss://:redis-hunter2@cache:6380",
    ])
    .unwrap();
    let shown = format!("{cli:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let options = steam_pipelines::download::DownloadOptions {
        token: Some("hf_hunter2".into()),
        ..steam_pipelines::download::DownloadOptions::new("out")
    };
    assert!(!format!("{options:?}").contains("hunter2"));
}

#[test]
fn a_profiles_gcs_key_file_goes_to_the_lakes_builder() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steam-recsys.toml");
    let key = dir.path().join("missing-key.json");
    std::fs::write(
        &config,
        format!(
            "[default.lake]\ngoogle_service_account_key = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let settings = steam_pipelines::cli::Settings::load(Some(&config), "default").unwrap();
    let err = steam_core::error_chain(&settings.lake("gs://conformed_games_data").unwrap_err());
    assert!(err.contains("missing-key.json"), "{err}");
    // Nothing was exported into the process environment.
    assert!(std::env::var_os("GOOGLE_SERVICE_ACCOUNT").is_none());
}

#[test]
fn train_takes_its_model_from_the_flags_and_refuses_flags_tuning_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let processed = generated(dir.path(), "3000");
    let reviews = processed.join("games_reviews.parquet");
    let out = dir.path().join("recs.parquet");
    let train = |extra: &[&str]| {
        steam_recsys()
            .args(["train", "--reviews", reviews.to_str().unwrap()])
            .args(["--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let run = train(&[
        "--model",
        "implicit",
        "--reg-param",
        "1",
        "--cg-steps",
        "3",
        "--split",
        "latest",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(
            "implicit rank 10 iterations 10 reg-param 1 alpha 1 confidence signed cg-steps 3"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("latest (each user's most recent review held out)"),
        "{stdout}"
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("recs.model.json")).unwrap())
            .unwrap();
    assert_eq!(model["params"]["solver"]["conjugate_gradient_steps"], 3);
    assert_eq!(model["chosen_by"], "given");

    // With --model auto (the default) a model parameter would be ignored: refused.
    let refused = train(&["--rank", "5"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("--model") && stderr.contains("--rank"),
        "{stderr}"
    );
    let refused = train(&["--model", "implicit", "--split", "sideways"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("sideways") && stderr.contains("random or latest"),
        "{stderr}"
    );
}

/// Sends `GET path` to 127.0.0.1:`port` and returns the response's text, or `None` if nothing
/// answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn serve_answers_until_sigterm_then_exits_cleanly() {
    let uri = std::env::var("STEAM_TEST_MONGODB_URI").expect(
        "STEAM_TEST_MONGODB_URI is not set: run the tests with scripts/test (scripts/services)",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = steam_recsys()
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database",
        ])
        .arg(format!("cli_serve_{}", std::process::id()))
        .env("MONGODB_URI", uri)
        .env_remove("REDIS_URL")
        .env_remove("STEAM_RECSYS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let health = loop {
        if let Some(text) = http_get(port, "/healthz") {
            break text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""redis":"not configured""#), "{health}");
    let bad = http_get(port, "/users/x/recommendations").unwrap();
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("shutting down"), "{log}");
}

/// Variables of `.env` in the working directory reach the flags that read them (`POSTGRES_URL`
/// here): the file is loaded before the command line is parsed.
#[test]
fn dotenv_variables_reach_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "POSTGRES_URL=postgresql://steam@127.0.0.1:1/nowhere?connect_timeout=1\n",
    )
    .unwrap();
    let mut command = steam_recsys();
    for (name, _) in std::env::vars() {
        let ours = [
            "POSTGRES",
            "MONGODB",
            "REDIS",
            "STEAM",
            "CONFORMED",
            "RAW_LAKE",
            "GOOGLE",
        ];
        if ours.iter().any(|p| name.starts_with(p)) {
            command.env_remove(name);
        }
    }
    let out = command
        .arg("connection-test")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("postgres") && text.contains("127.0.0.1:1"),
        "the .env's POSTGRES_URL was not used: {text}"
    );
}

/// `path`'s games_reviews stripped to an interaction log: user_id, game_id, recommendation (no
/// hours, no date).
fn interactions_only(processed: &Path, path: &Path) {
    let file = std::fs::File::open(processed.join("games_reviews.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut writer = None;
    for batch in reader {
        let batch = batch.unwrap();
        let batch = batch
            .project(&[
                batch.schema().index_of("user_id").unwrap(),
                batch.schema().index_of("game_id").unwrap(),
                batch.schema().index_of("recommendation").unwrap(),
            ])
            .unwrap();
        let w = writer.get_or_insert_with(|| {
            parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(path).unwrap(),
                batch.schema(),
                None,
            )
            .unwrap()
        });
        w.write(&batch).unwrap();
    }
    writer.unwrap().close().unwrap();
}

#[test]
fn every_family_trains_on_an_interaction_log_without_dates_or_hours() {
    let dir = tempfile::tempdir().unwrap();
    let processed = generated(dir.path(), "3000");
    let log = dir.path().join("interactions.parquet");
    interactions_only(&processed, &log);
    let run = |args: &[&str]| {
        let out = steam_recsys().args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let log = log.to_str().unwrap();
    let out = dir.path().join("recs.parquet");
    let out = out.to_str().unwrap();
    for (family, extra, printed) in [
        ("ease", &["--lambda", "20"][..], "ease λ 20, binary"),
        ("item-knn", &["--similarity", "bm25"][..], "item-knn bm25"),
        ("popularity", &[][..], "model            popularity"),
        ("implicit", &["--blend", "0.5"][..], "blend of (implicit"),
        ("auto", &[][..], "tuned"),
    ] {
        for split in ["random", "latest"] {
            let (ok, stdout, stderr) = run(&[
                &["train", "--reviews", log, "--out", out, "--model", family][..],
                extra,
                &["--split", split],
            ]
            .concat());
            assert!(ok, "{family} {split}: {stderr}");
            assert!(stdout.contains(printed), "{family}: {stdout}");
            assert!(stderr.contains("no date column"), "{stderr}");
            assert!(stderr.contains("no hours column"), "{stderr}");
        }
        // The similar games are beside the results, one row per game.
        let similar = dir.path().join("recs.similar.parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&similar).unwrap(),
        )
        .unwrap();
        assert!(
            reader.metadata().file_metadata().num_rows() > 10,
            "{family}"
        );
    }
    // A flag the chosen family does not use is refused, not ignored.
    for (family, flag) in [
        ("ease", "--neighbours"),
        ("item-knn", "--lambda"),
        ("popularity", "--blend"),
    ] {
        let (ok, _, stderr) = run(&[
            "train",
            "--reviews",
            log,
            "--out",
            out,
            "--model",
            family,
            flag,
            "3",
        ]);
        assert!(!ok, "{family} {flag}");
        assert!(stderr.contains(flag), "{stderr}");
    }
    // evaluate prints every family and both baselines in one table; tune ranks every family.
    let (ok, stdout, stderr) = run(&["evaluate", "--reviews", log]);
    assert!(ok, "{stderr}");
    for row in [
        "implicit",
        "explicit",
        "ease",
        "item-knn cosine",
        "item-knn bm25",
        "blend",
        "popularity",
        "random",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "{row}: {stdout}"
        );
    }
    let (ok, stdout, stderr) = run(&["tune", "--reviews", log, "--iterations", "3"]);
    assert!(ok, "{stderr}");
    for family in ["popularity", "item-knn", "ease", "implicit", "blend of"] {
        assert!(stdout.contains(family), "{family}: {stdout}");
    }
}
