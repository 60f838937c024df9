//! `download` against a local HTTP/1.1 server that plays the HuggingFace Hub: the tree API (in two
//! pages), `resolve` URLs (one redirected, as the Hub does for LFS files), `Range` requests, and
//! bodies cut short on request.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steam_recsys::pipelines::download::{download, DownloadOptions};

const REPO: &str = "owner/steam";
const REVISION: &str = "main";
const DESCRIPTION: &str = "games_description.csv";
const RANKING: &str = "games_ranking.csv";
const REVIEWS: &str = "steam_game_reviews.csv";
/// The reviews file's path in the repository: under a directory.
const REVIEWS_PATH: &str = "data/steam_game_reviews.csv";

/// Deterministic content: `n` bytes of a CSV-like alphabet.
fn content(seed: usize, n: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789,\n";
    (0..n)
        .map(|i| ALPHABET[(i * 31 + i / 97 + seed) % ALPHABET.len()])
        .collect()
}

/// A file of the fake repository.
#[derive(Clone)]
struct Served {
    path: String,
    body: Vec<u8>,
    /// The SHA-256 the listing gives as the LFS oid (`None`: a plain git file).
    lfs: Option<&'static str>,
    /// Whether `resolve` answers with a 302 to another path on the server.
    redirect: bool,
}

/// The standard repository: one plain file, two LFS files (one under `data/`, one redirected),
/// and an unrelated file.
fn repository() -> Vec<Served> {
    vec![
        Served {
            path: DESCRIPTION.into(),
            body: content(1, 20_000),
            lfs: None,
            redirect: false,
        },
        Served {
            path: "README.md".into(),
            body: b"# Steam games reviews\n".to_vec(),
            lfs: None,
            redirect: false,
        },
        Served {
            path: REVIEWS_PATH.into(),
            body: content(3, 300_000),
            lfs: Some("56672c911673cb420143f7a0366fdba0063072e537b69dc70fbdfae321ab2ade"),
            redirect: false,
        },
        Served {
            path: RANKING.into(),
            body: content(2, 50_000),
            lfs: Some("63c00ddaf5d051404c4e24a1e4ed9fa2c6dc0c1a39c866532643398fa0fe86e7"),
            redirect: true,
        },
    ]
}

/// How to cut a body short.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Announce the full Content-Length, send this many bytes, close: a broken transfer.
    WithLength(usize),
    /// Send no Content-Length and close after this many bytes: a body that ends early.
    WithoutLength(usize),
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    authorization: Option<String>,
}

#[derive(Default)]
struct State {
    files: Vec<Served>,
    /// Bytes served instead of a file's listed content, by repository path.
    replaced: HashMap<String, Vec<u8>>,
    /// Cuts for the next requests of a file's body, by repository path, first first.
    cuts: HashMap<String, Vec<Cut>>,
    /// A status answered instead, by repository path or `"tree"` for the listing.
    status: HashMap<String, u16>,
    /// Files whose server ignores `Range` (always 200 with the whole body).
    no_ranges: HashSet<String>,
    /// How many more listing requests get a 503.
    listing_failures: usize,
    seen: Vec<Seen>,
}

struct Server {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(files: Vec<Served>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State {
            files,
            ..State::default()
        }));
        let (shared, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (state, base) = (shared.clone(), base.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &state, &base);
                });
            }
        });
        Server { url, state }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// Requests for a file's body (`resolve` or the redirect target), by repository path.
    fn body_requests(&self, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with(&format!("/{path}")) && !s.path.starts_with("/api/"))
            .collect()
    }

    fn options(&self, out: &Path) -> DownloadOptions {
        let mut options = DownloadOptions::new(out);
        options.endpoint = self.url.clone();
        options.repo = REPO.into();
        options.revision = REVISION.into();
        options.retries = 3;
        options.min_delay = Duration::from_millis(10);
        options.read_timeout = Duration::from_secs(10);
        options
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut stream = stream;
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.seen.push(Seen {
        path: path.to_owned(),
        range: headers.get("range").cloned(),
        authorization: headers.get("authorization").cloned(),
    });

    let tree = format!("/api/datasets/{REPO}/tree/{REVISION}");
    let resolve = format!("/datasets/{REPO}/resolve/{REVISION}/");
    if path == tree {
        if let Some(&code) = state.status.get("tree") {
            return respond(
                &mut stream,
                code,
                &[],
                br#"{"error":"Repository not found"}"#,
            );
        }
        if state.listing_failures > 0 {
            state.listing_failures -= 1;
            return respond(&mut stream, 503, &[], b"busy");
        }
        if !query.contains("recursive=true") {
            return respond(&mut stream, 400, &[], b"not recursive");
        }
        // Two pages: the directory and the first two files, then the rest.
        let mut entries =
            vec![r#"{"type":"directory","path":"data","size":0,"oid":"d0"}"#.to_owned()];
        for f in &state.files {
            let lfs = match f.lfs {
                Some(sha) => format!(
                    r#","lfs":{{"oid":"{sha}","size":{},"pointerSize":134}}"#,
                    f.body.len()
                ),
                None => String::new(),
            };
            let size = if f.lfs.is_some() { 134 } else { f.body.len() };
            entries.push(format!(
                r#"{{"type":"file","path":"{}","size":{size},"oid":"0123"{lfs}}}"#,
                f.path
            ));
        }
        let split = entries.len().min(3);
        if query.contains("cursor=page2") {
            let body = format!("[{}]", entries[split..].join(","));
            return respond(&mut stream, 200, &[], body.as_bytes());
        }
        let body = format!("[{}]", entries[..split].join(","));
        let link = format!("Link: <{base}{tree}?recursive=true&cursor=page2>; rel=\"next\"");
        return respond(&mut stream, 200, &[&link], body.as_bytes());
    }
    let (file, redirected) = match (path.strip_prefix(&resolve), path.strip_prefix("/cdn/")) {
        (Some(file), _) => (file.to_owned(), false),
        (None, Some(file)) => (file.to_owned(), true),
        _ => return respond(&mut stream, 404, &[], b"no route"),
    };
    if let Some(&code) = state.status.get(&file) {
        return respond(&mut stream, code, &[], br#"{"error":"refused"}"#);
    }
    let Some(served) = state.files.iter().find(|f| f.path == file).cloned() else {
        return respond(&mut stream, 404, &[], br#"{"error":"Entry not found"}"#);
    };
    if served.redirect && !redirected {
        let location = format!("Location: /cdn/{file}");
        return respond(&mut stream, 302, &[&location], b"");
    }
    let body = state
        .replaced
        .get(&file)
        .cloned()
        .unwrap_or_else(|| served.body.clone());
    let start = match headers.get("range") {
        Some(range) if !state.no_ranges.contains(&file) => {
            let first = range
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            match first {
                Some(n) if n < body.len() => Some(n),
                _ => {
                    let unsatisfiable = format!("Content-Range: bytes */{}", body.len());
                    return respond(&mut stream, 416, &[&unsatisfiable], b"");
                }
            }
        }
        _ => None,
    };
    let cut = state.cuts.get_mut(&file).and_then(|cuts| {
        if cuts.is_empty() {
            None
        } else {
            Some(cuts.remove(0))
        }
    });
    drop(state);
    let (status, part, range_header) = match start {
        Some(n) => (
            206,
            &body[n..],
            Some(format!(
                "Content-Range: bytes {n}-{}/{}",
                body.len() - 1,
                body.len()
            )),
        ),
        None => (200, &body[..], None),
    };
    let extra: Vec<&str> = range_header.iter().map(String::as_str).collect();
    match cut {
        None => respond(&mut stream, status, &extra, part),
        Some(Cut::WithLength(n)) => {
            head(&mut stream, status, &extra, Some(part.len()))?;
            stream.write_all(&part[..n.min(part.len())])?;
            stream.flush()
        }
        Some(Cut::WithoutLength(n)) => {
            head(&mut stream, status, &extra, None)?;
            stream.write_all(&part[..n.min(part.len())])?;
            stream.flush()
        }
    }
}

fn head(
    stream: &mut TcpStream,
    status: u16,
    extra: &[&str],
    length: Option<usize>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut text = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    if let Some(length) = length {
        text.push_str(&format!("Content-Length: {length}\r\n"));
    }
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    extra: &[&str],
    body: &[u8],
) -> std::io::Result<()> {
    head(stream, status, extra, Some(body.len()))?;
    stream.write_all(body)?;
    stream.flush()
}

fn body_of(path: &str) -> Vec<u8> {
    repository()
        .into_iter()
        .find(|f| f.path == path)
        .map(|f| f.body)
        .unwrap_or_default()
}

/// The names of the files left in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_exact(dir: &Path) {
    for (name, path) in [
        (DESCRIPTION, DESCRIPTION),
        (RANKING, RANKING),
        (REVIEWS, REVIEWS_PATH),
    ] {
        let got = std::fs::read(dir.join(name)).expect(name);
        assert!(got == body_of(path), "{name} differs from what was served");
    }
}

fn ranges(seen: &[Seen]) -> Vec<u64> {
    seen.iter()
        .filter_map(|s| s.range.as_deref())
        .filter_map(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .collect()
}

/// One file's report: start offsets, bytes advanced, finished ok.
type FileReport = (Vec<u64>, u64, Option<bool>);

/// What a download reported, per file.
#[derive(Default)]
struct Recorded(std::sync::Mutex<std::collections::BTreeMap<String, FileReport>>);

impl steam_recsys::connectors::hub::Progress for Recorded {
    fn started(&self, file: &str, at: u64, _total: u64) {
        self.0
            .lock()
            .unwrap()
            .entry(file.into())
            .or_default()
            .0
            .push(at);
    }
    fn advanced(&self, file: &str, bytes: u64) {
        self.0.lock().unwrap().entry(file.into()).or_default().1 += bytes;
    }
    fn finished(&self, file: &str, ok: bool) {
        self.0.lock().unwrap().entry(file.into()).or_default().2 = Some(ok);
    }
}

#[tokio::test]
async fn downloads_the_three_raw_files_and_nothing_else() {
    let server = Server::start(repository());
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = std::sync::Arc::new(Recorded::default());
    let mut options = server.options(dir.path());
    options.progress = Some(recorded.clone());
    let summary = download(&options).await.expect("download");
    // Progress was told of every byte of every file, and of each file's end.
    let report = recorded.0.lock().unwrap().clone();
    assert_eq!(report.len(), 3);
    for (name, (starts, bytes, ok)) in &report {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert_eq!(
            (starts.as_slice(), *bytes, *ok),
            (&[0][..], size, Some(true)),
            "{name}"
        );
    }

    assert_exact(dir.path());
    assert_eq!(files_in(dir.path()), [DESCRIPTION, RANKING, REVIEWS]);
    let seen = server.seen();
    assert!(
        !seen.iter().any(|s| s.path.contains("README")),
        "the unrelated file was fetched: {seen:?}"
    );
    // Both pages of the listing were read, and the redirect was followed.
    let tree: Vec<_> = seen
        .iter()
        .filter(|s| s.path.starts_with("/api/"))
        .collect();
    assert_eq!(tree.len(), 2, "{seen:?}");
    assert!(seen.iter().any(|s| s.path == format!("/cdn/{RANKING}")));
    assert!(seen
        .iter()
        .all(|s| s.range.is_none() && s.authorization.is_none()));

    assert_eq!(summary.files.len(), 3);
    for f in &summary.files {
        assert!(!f.skipped && !f.resumed, "{f:?}");
        assert_eq!(f.received, f.bytes, "{f:?}");
    }
    assert_eq!(
        summary.file(REVIEWS).map(|f| f.path.as_str()),
        Some(REVIEWS_PATH)
    );
    let table = summary.to_string();
    for name in [DESCRIPTION, RANKING, REVIEWS, "downloaded"] {
        assert!(table.contains(name), "{table}");
    }
}

#[tokio::test]
async fn a_body_cut_short_is_resumed_with_a_range_request() {
    let server = Server::start(repository());
    {
        let mut state = server.state();
        state
            .cuts
            .insert(REVIEWS_PATH.into(), vec![Cut::WithLength(100_000)]);
        state
            .cuts
            .insert(DESCRIPTION.into(), vec![Cut::WithoutLength(5_000)]);
        // The redirected file: cut twice, so the second retry resumes further on.
        state.cuts.insert(
            RANKING.into(),
            vec![Cut::WithLength(10_000), Cut::WithLength(20_000)],
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = download(&server.options(dir.path()))
        .await
        .expect("download");

    assert_exact(dir.path());
    assert_eq!(files_in(dir.path()), [DESCRIPTION, RANKING, REVIEWS]);

    let reviews = ranges(&server.body_requests(REVIEWS_PATH));
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(reviews[0] > 0 && reviews[0] <= 100_000, "{reviews:?}");
    let description = ranges(&server.body_requests(DESCRIPTION));
    assert_eq!(description, [5_000]);
    // The Range header survives the redirect: it reaches the redirect's target.
    let cdn: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("/cdn/{RANKING}"))
        .collect();
    let ranking = ranges(&cdn);
    assert_eq!(ranking.len(), 2, "{cdn:?}");
    assert!(ranking[0] > 0 && ranking[1] > ranking[0], "{ranking:?}");

    for f in &summary.files {
        assert!(f.resumed, "{f:?}");
        assert!(f.received >= f.bytes, "{f:?}");
    }
}

#[tokio::test]
async fn a_partial_file_from_an_earlier_run_is_resumed() {
    let server = Server::start(repository());
    let dir = tempfile::tempdir().expect("tempdir");
    let reviews = body_of(REVIEWS_PATH);
    std::fs::write(
        dir.path().join(format!(".{REVIEWS}.part")),
        &reviews[..123_456],
    )
    .expect("write part");

    let summary = download(&server.options(dir.path()))
        .await
        .expect("download");

    assert_exact(dir.path());
    assert_eq!(files_in(dir.path()), [DESCRIPTION, RANKING, REVIEWS]);
    assert_eq!(ranges(&server.body_requests(REVIEWS_PATH)), [123_456]);
    let f = summary.file(REVIEWS).expect("reviews in the summary");
    assert!(f.resumed, "{f:?}");
    assert_eq!(f.received, (reviews.len() - 123_456) as u64);
    assert!(summary.to_string().contains("resumed"));
}

#[tokio::test]
async fn a_server_that_ignores_ranges_restarts_from_the_first_byte() {
    let server = Server::start(repository());
    server.state().no_ranges.insert(DESCRIPTION.into());
    let dir = tempfile::tempdir().expect("tempdir");
    // A stale partial file whose bytes are not the served ones.
    std::fs::write(dir.path().join(format!(".{DESCRIPTION}.part")), [b'#'; 777])
        .expect("write part");

    let summary = download(&server.options(dir.path()))
        .await
        .expect("download");

    assert_exact(dir.path());
    assert_eq!(ranges(&server.body_requests(DESCRIPTION)), [777]);
    let f = summary
        .file(DESCRIPTION)
        .expect("description in the summary");
    assert!(!f.resumed, "{f:?}");
    assert_eq!(f.received, f.bytes);
}

#[tokio::test]
async fn corrupt_content_fails_and_leaves_the_old_file_alone() {
    let server = Server::start(repository());
    let mut corrupt = body_of(REVIEWS_PATH);
    corrupt[150_000] ^= 0x20;
    server.state().replaced.insert(REVIEWS_PATH.into(), corrupt);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(REVIEWS), b"old reviews").expect("write old");

    let err = download(&server.options(dir.path()))
        .await
        .expect_err("a checksum mismatch must fail")
        .to_string();

    assert!(err.contains(REVIEWS), "{err}");
    assert!(
        err.contains("56672c911673cb42"),
        "expected sha256 missing: {err}"
    );
    assert!(err.contains(&server.url), "URL missing: {err}");
    assert_eq!(
        std::fs::read(dir.path().join(REVIEWS)).expect("old file"),
        b"old reviews"
    );
    assert!(
        !dir.path().join(format!(".{REVIEWS}.part")).exists(),
        "{:?}",
        files_in(dir.path())
    );
    // A mismatch is not retried.
    assert_eq!(server.body_requests(REVIEWS_PATH).len(), 1);

    // A plain (non-LFS) file whose size differs from the listing's fails on its size, whether the
    // server announces its length or not.
    let description = body_of(DESCRIPTION);
    let longer = [&description[..], b"extra"].concat();
    let shorter = description[..19_990].to_vec();
    for (served, cut, said) in [
        (longer.clone(), None, "sends 20005"),
        (longer, Some(Cut::WithoutLength(usize::MAX)), "got more"),
        (shorter, None, "sends 19990"),
    ] {
        let server = Server::start(repository());
        server.state().replaced.insert(DESCRIPTION.into(), served);
        if let Some(cut) = cut {
            server.state().cuts.insert(DESCRIPTION.into(), vec![cut]);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let err = download(&server.options(dir.path()))
            .await
            .expect_err("a size mismatch must fail")
            .to_string();
        assert!(err.contains(DESCRIPTION), "{err}");
        assert!(
            err.contains("expected 20000 bytes") && err.contains(said),
            "{err}"
        );
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
        assert_eq!(server.body_requests(DESCRIPTION).len(), 1, "{err}");
    }
}

#[tokio::test]
async fn a_raw_file_missing_from_the_listing_is_named() {
    let files: Vec<Served> = repository()
        .into_iter()
        .filter(|f| f.path != RANKING)
        .collect();
    let server = Server::start(files);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = download(&server.options(dir.path()))
        .await
        .expect_err("a missing file must fail")
        .to_string();
    assert!(err.contains(RANKING), "{err}");
    assert!(err.contains(REPO), "{err}");
    assert!(
        server.body_requests(DESCRIPTION).is_empty(),
        "nothing is fetched before the listing is complete"
    );
}

#[tokio::test]
async fn refusals_fail_at_once_without_showing_the_token() {
    const TOKEN: &str = "hf_TopSecretValue123";

    // A file that is not there: 404, one request, even with long retry delays.
    let server = Server::start(repository());
    server.state().status.insert(DESCRIPTION.into(), 404);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = server.options(dir.path());
    options.retries = 5;
    options.min_delay = Duration::from_secs(2);
    options.token = Some(TOKEN.into());
    // Refused at once: one request for the file, no retry (the count, not the clock, says so).
    let err = download(&options).await.expect_err("404 must fail");
    assert_eq!(err.kind(), steam_recsys::core::ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(text.contains(DESCRIPTION) && text.contains("404"), "{text}");
    assert!(
        !text.contains(TOKEN) && !format!("{err:?}").contains(TOKEN),
        "{text}"
    );
    assert_eq!(server.body_requests(DESCRIPTION).len(), 1);
    let bearer = format!("Bearer {TOKEN}");
    assert!(server
        .seen()
        .iter()
        .all(|s| s.authorization.as_deref() == Some(bearer.as_str())));

    // A private repository: 401 on the listing, with a hint about HF_TOKEN.
    let server = Server::start(repository());
    server.state().status.insert("tree".into(), 401);
    let mut options = server.options(dir.path());
    options.retries = 5;
    options.min_delay = Duration::from_secs(2);
    options.token = Some(TOKEN.into());
    let err = download(&options).await.expect_err("401 must fail");
    assert_eq!(
        err.kind(),
        steam_recsys::core::ErrorKind::Unauthenticated,
        "{err}"
    );
    let listings = server
        .seen()
        .iter()
        .filter(|s| s.path.contains("/tree/"))
        .count();
    assert_eq!(listings, 1, "a refused listing is not retried");
    let text = err.to_string();
    assert!(text.contains("401") && text.contains("HF_TOKEN"), "{text}");
    assert!(text.contains(REPO), "{text}");
    assert!(
        !text.contains(TOKEN) && !format!("{err:?}").contains(TOKEN),
        "{text}"
    );
    assert!(!format!("{options:?}").contains(TOKEN));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = Server::start(repository());
    server.state().listing_failures = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    download(&server.options(dir.path()))
        .await
        .expect("download");
    assert_exact(dir.path());

    // Retries run out: the error says how many attempts were made.
    let server = Server::start(repository());
    server.state().listing_failures = 100;
    let err = download(&server.options(dir.path()))
        .await
        .expect_err("too many failures")
        .to_string();
    assert!(err.contains("503") && err.contains("4 attempts"), "{err}");
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_second_run_skips_the_complete_files() {
    let server = Server::start(repository());
    let dir = tempfile::tempdir().expect("tempdir");
    download(&server.options(dir.path()))
        .await
        .expect("first download");
    server.state().seen.clear();

    let summary = download(&server.options(dir.path()))
        .await
        .expect("second download");

    let seen = server.seen();
    assert!(
        seen.iter().all(|s| s.path.starts_with("/api/")),
        "a body was fetched again: {seen:?}"
    );
    assert!(summary.files.iter().all(|f| f.skipped && f.received == 0));
    assert!(summary.to_string().contains("skipped"));
    assert_exact(dir.path());

    // A complete-looking file whose bytes differ from the listing's hash is fetched again.
    let mut wrong = body_of(RANKING);
    wrong[0] ^= 1;
    std::fs::write(dir.path().join(RANKING), wrong).expect("write");
    server.state().seen.clear();
    let summary = download(&server.options(dir.path()))
        .await
        .expect("third download");
    assert_exact(dir.path());
    let ranking = summary.file(RANKING).expect("ranking in the summary");
    assert!(!ranking.skipped && ranking.received == ranking.bytes);
    assert_eq!(
        server.body_requests(RANKING).len(),
        2,
        "resolve and redirect"
    );
}
