//! Helpers shared by the pipelines' integration tests.
#![allow(dead_code)]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type};
use steam_connectors::lake::Lake;

/// The column `col` of `b` as optional i32s.
pub fn i32s(b: &RecordBatch, col: &str) -> Vec<Option<i32>> {
    let a = b.column_by_name(col).unwrap().as_primitive::<Int32Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

/// The column `col` of `b` as optional strings.
pub fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).unwrap().as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

/// `batches` as one batch (an empty batch of no columns when there are none).
pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    match batches.first() {
        Some(b) => arrow::compute::concat_batches(&b.schema(), batches).unwrap(),
        None => RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty())),
    }
}

/// Asserts that `a` and `b` hold the same columns (names and types) and values: exactly, except
/// floating-point values, which may differ in the last bits where they are sums over partitions
/// added in a different order (`relative` their tolerance).
pub fn assert_same(a: &RecordBatch, b: &RecordBatch, relative: f64, what: &str) {
    assert_eq!(a.num_rows(), b.num_rows(), "{what}: rows");
    let names = |x: &RecordBatch| -> Vec<(String, DataType)> {
        x.schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    assert_eq!(names(a), names(b), "{what}: columns");
    for (i, field) in a.schema().fields().iter().enumerate() {
        let (x, y) = (a.column(i), b.column(i));
        if field.data_type() == &DataType::Float64 {
            let (x, y) = (
                x.as_primitive::<Float64Type>(),
                y.as_primitive::<Float64Type>(),
            );
            for r in 0..x.len() {
                assert_eq!(
                    x.is_valid(r),
                    y.is_valid(r),
                    "{what}: {} row {r}",
                    field.name()
                );
                if x.is_valid(r) {
                    let (p, q) = (x.value(r), y.value(r));
                    assert!(
                        (p - q).abs() <= relative * p.abs().max(q.abs()).max(1.0),
                        "{what}: {} row {r}: {p} vs {q}",
                        field.name()
                    );
                }
            }
        } else {
            assert_eq!(x.to_data(), y.to_data(), "{what}: {}", field.name());
        }
    }
}

/// A lake of its own in the test S3 bucket (moto, started by scripts/services).
pub fn s3_lake(name: &str) -> Lake {
    let bucket = std::env::var("STEAM_TEST_S3_BUCKET").unwrap_or_else(|_| {
        panic!("STEAM_TEST_S3_BUCKET is not set: run the tests with scripts/test")
    });
    let unique = format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    Lake::from_env(&format!("s3://{bucket}/{unique}/conformed")).unwrap()
}

/// A Ballista cluster of a scheduler and two executors on 127.0.0.1, started by
/// `scripts/cluster` with this package's `steam-recsys`, stopped when dropped.
#[cfg(feature = "cluster")]
pub struct TestCluster {
    dir: tempfile::TempDir,
    /// The scheduler, `df://127.0.0.1:PORT`.
    pub url: String,
}

#[cfg(feature = "cluster")]
impl TestCluster {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster")
    }

    /// Starts one (executors lost after 6 s without a heartbeat).
    pub fn start() -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cluster");
        let out = std::process::Command::new(Self::script())
            .arg("start")
            .arg(&state)
            .env("STEAM_RECSYS", env!("CARGO_BIN_EXE_steam-recsys"))
            .env("STEAM_CLUSTER_EXECUTOR_TIMEOUT", "6")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scripts/cluster start: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export STEAM_CLUSTER_URL="))
            .unwrap_or_else(|| panic!("no STEAM_CLUSTER_URL in {stdout}"))
            .to_owned();
        assert!(url.starts_with("df://127.0.0.1:"), "{url}");
        TestCluster { dir, url }
    }

    /// The process id of executor `n` (from 1).
    pub fn executor_pid(&self, n: usize) -> u32 {
        let file = self.state().join(format!("executor-{n}.pid"));
        std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The directory of its pid files and logs.
    pub fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("cluster")
    }
}

#[cfg(feature = "cluster")]
impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::script())
            .arg("stop")
            .arg(self.state())
            .status();
    }
}
