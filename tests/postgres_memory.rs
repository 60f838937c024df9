//! Reading a table much larger than the memory the read may use. Alone in its own test binary so
//! that the process's peak memory is this read's.

mod common;

use futures::StreamExt;
use steam_recsys::connectors::postgres::PostgresSource;
use steam_recsys::core::Source;

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_large_table_streams_in_bounded_memory() {
    let config = common::postgres("memory");
    let client = config.connect().await.unwrap();
    // 400,000 rows of 1 KiB: about 400 MiB of text on the server.
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE UNLOGGED TABLE \"{0}\".wide AS \
             SELECT g AS id, repeat(md5(g::text), 32) AS payload FROM generate_series(1, 400000) g",
            config.schema()
        ))
        .await
        .unwrap();
    drop(client);
    let source = PostgresSource::table(config, "wide")
        .await
        .unwrap()
        .with_batch_bytes(4 << 20);
    let before = peak_rss();
    let mut stream = source.read().await.unwrap();
    let (mut rows, mut bytes, mut largest) = (0usize, 0usize, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        largest = largest.max(batch.get_array_memory_size());
    }
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(rows, 400_000);
    assert!(bytes > 380 << 20, "read {bytes} bytes");
    assert!(largest < 16 << 20, "a batch of {largest} bytes");
    assert!(
        grown < 64 << 20,
        "peak memory grew by {} MiB while reading {} MiB",
        grown >> 20,
        bytes >> 20
    );
}
