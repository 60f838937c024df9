//! Bridges between blocking producers (file readers, encoders) and async batch streams.

use futures::stream;
use steam_core::{batch_stream, BatchStream, RecordBatch, Result};
use tokio::sync::mpsc;

/// How many batches may wait between a blocking producer and its consumer.
const DEPTH: usize = 2;

/// The sending half given to a blocking producer: [`BoundedSender::send`] blocks while the consumer
/// is two batches behind, so memory stays bounded whatever the size of the data.
#[derive(Debug)]
pub struct BoundedSender(mpsc::Sender<Result<RecordBatch>>);

impl BoundedSender {
    /// Sends one item; `false` when the consumer has gone away (the producer should stop).
    pub fn send(&self, item: Result<RecordBatch>) -> bool {
        self.0.blocking_send(item).is_ok()
    }
}

/// Runs `produce` on a blocking thread and returns what it sends as a [`BatchStream`].
///
/// The producer stops early when the stream is dropped (its next send returns `false`).
pub fn spawn_blocking_stream<F>(produce: F) -> BatchStream
where
    F: FnOnce(BoundedSender) + Send + 'static,
{
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || produce(BoundedSender(tx)));
    batch_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
