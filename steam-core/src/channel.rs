//! Bridges between producers (file readers, COPY readers, encoders, model output) and async batch
//! streams, and a split of one stream into two, in which the end of a stream is the producer's word, never a side effect of it stopping.
//!
//! A producer feeds a bounded channel through [`BatchSender`]s, and says it is done through a
//! [`Completion`]. The consumer's [`BatchStream`] ends cleanly only when every completion was
//! [finished](Completion::finish): a producer that returns an error, panics, or is cancelled (its
//! completion dropped unfinished) makes the error the stream's last item, so a sink that publishes
//! only after a clean end never publishes a truncated output.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::{batch_stream, BatchStream, Error, RecordBatch, Result};
use futures::{stream, FutureExt};
use tokio::sync::mpsc;

/// How many batches may wait between a producer and its consumer.
pub const DEPTH: usize = 2;

/// The sending half of a batch channel: [`BatchSender::send`] waits (and
/// [`BatchSender::blocking_send`] blocks) while the consumer is [`DEPTH`] batches behind, so memory
/// stays bounded whatever the size of the data. Dropping it says nothing about the end of the
/// stream: only a [`Completion`] does.
#[derive(Debug, Clone)]
pub struct BatchSender(mpsc::Sender<Result<RecordBatch>>);

impl BatchSender {
    /// Sends one item; `false` when the consumer has gone away (the producer should stop).
    pub async fn send(&self, item: Result<RecordBatch>) -> bool {
        self.0.send(item).await.is_ok()
    }

    /// [`BatchSender::send`] from a blocking thread (not from async code).
    pub fn blocking_send(&self, item: Result<RecordBatch>) -> bool {
        self.0.blocking_send(item).is_ok()
    }
}

/// A producer's promise to say how its data ended. [`Completion::finish`] marks a clean end; a
/// completion dropped without it (the producer failed, panicked or was cancelled) makes the
/// consumer's stream end with an error. Clones are counted: the stream ends cleanly only when every
/// clone was finished, so several producers can feed one stream, each with a clone of its own.
#[derive(Debug)]
pub struct Completion {
    /// Keeps the channel open until the producer has said how it ended.
    tx: mpsc::Sender<Result<RecordBatch>>,
    shared: Arc<Shared>,
    finished: bool,
}

#[derive(Debug)]
struct Shared {
    /// What the producer is, for the error of an unfinished end.
    what: String,
    /// Some completion was dropped unfinished.
    broken: AtomicBool,
}

impl Clone for Completion {
    fn clone(&self) -> Self {
        Completion {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            finished: false,
        }
    }
}

impl Completion {
    /// The producer sent everything: its part of the stream ended cleanly.
    pub fn finish(mut self) {
        self.finished = true;
    }

    /// The producer failed: `error` becomes the stream's last item.
    pub async fn fail(self, error: Error) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// [`Completion::fail`] from a blocking thread.
    pub fn blocking_fail(self, error: Error) {
        let _ = self.tx.blocking_send(Err(error));
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.broken.store(true, Ordering::SeqCst);
        }
    }
}

/// A bounded batch channel: the sender and completion a producer uses, and the stream the consumer
/// reads. `what` names the producer in the error of an unfinished end (such as
/// `postgres recsys.games_reviews`).
///
/// The stream yields what is sent, in order. It ends after the first `Err` item (closing the
/// channel, so producers stop at their next send), or when every sender and completion is gone:
/// cleanly if every completion was finished, else with an error naming `what`.
pub fn batch_channel(
    depth: usize,
    what: impl Into<String>,
) -> (BatchSender, Completion, BatchStream) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    let shared = Arc::new(Shared {
        what: what.into(),
        broken: AtomicBool::new(false),
    });
    let completion = Completion {
        tx: tx.clone(),
        shared: shared.clone(),
        finished: false,
    };
    let stream = stream::unfold(Some((rx, shared)), |state| async move {
        let (mut rx, shared) = state?;
        match rx.recv().await {
            Some(Ok(batch)) => Some((Ok(batch), Some((rx, shared)))),
            Some(Err(e)) => {
                rx.close();
                Some((Err(e), None))
            }
            None if shared.broken.load(Ordering::SeqCst) => Some((
                Err(Error::Cancelled {
                    what: shared.what.clone(),
                    reason: "the producer stopped before the end of its data; what it sent is \
                             incomplete"
                        .into(),
                }),
                None,
            )),
            None => None,
        }
    });
    (BatchSender(tx), completion, batch_stream(stream))
}

/// The error of a producer that panicked, with the panic's message.
fn panicked(what: &str, payload: Box<dyn std::any::Any + Send>) -> Error {
    Error::Internal {
        what: what.into(),
        message: format!(
            "the producer panicked: {}",
            crate::error::panic_message(payload.as_ref())
        ),
    }
}

/// Runs `produce` on a blocking thread and returns what it sends as a [`BatchStream`].
///
/// The stream ends cleanly when `produce` returns `Ok`; an `Err` it returns, or a panic, becomes the
/// stream's last item. The producer stops early when the stream is dropped (its next send returns
/// `false`; it should then return).
pub fn spawn_blocking_stream<F>(what: impl Into<String>, produce: F) -> BatchStream
where
    F: FnOnce(BatchSender) -> Result<()> + Send + 'static,
{
    let what = what.into();
    let (tx, done, stream) = batch_channel(DEPTH, what.clone());
    tokio::task::spawn_blocking(move || {
        match std::panic::catch_unwind(AssertUnwindSafe(|| produce(tx))) {
            Ok(Ok(())) => done.finish(),
            Ok(Err(e)) => done.blocking_fail(e),
            Err(payload) => done.blocking_fail(panicked(&what, payload)),
        }
    });
    stream
}

/// Runs the future `produce` makes as a task and returns what it sends as a [`BatchStream`], with
/// the ends of [`spawn_blocking_stream`]. Dropping the stream does not cancel the task: it stops at
/// its next send.
pub fn spawn_stream<F, Fut>(what: impl Into<String>, produce: F) -> BatchStream
where
    F: FnOnce(BatchSender) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let what = what.into();
    let (tx, done, stream) = batch_channel(DEPTH, what.clone());
    let task = produce(tx);
    tokio::spawn(async move {
        match AssertUnwindSafe(task).catch_unwind().await {
            Ok(Ok(())) => done.finish(),
            Ok(Err(e)) => done.fail(e).await,
            Err(payload) => done.fail(panicked(&what, payload)).await,
        }
    });
    stream
}

/// Splits `source` into two streams that each get every batch (batches share their buffers; no
/// data is copied), at most `depth` batches ahead of the slower one. Each output ends cleanly only
/// when `source` did: an error of the source ends both with it, and an output whose consumer
/// stops (its write failed) ends the other with an error, so neither consumer completes a
/// truncated output. `what` names the split in errors.
pub fn tee(
    mut source: BatchStream,
    depth: usize,
    what: impl Into<String>,
) -> (BatchStream, BatchStream) {
    let what = what.into();
    let (a_tx, a_done, a) = batch_channel(depth, what.clone());
    let (b_tx, b_done, b) = batch_channel(depth, what.clone());
    tokio::spawn(async move {
        let stopped = |side: &str| Error::Cancelled {
            what: what.clone(),
            reason: format!("the {side} output's consumer stopped"),
        };
        let run = async {
            while let Some(item) = futures::StreamExt::next(&mut source).await {
                let batch = match item {
                    Ok(batch) => batch,
                    Err(e) => {
                        let shared = Arc::new(e);
                        let failed = || Error::Producer {
                            what: what.clone(),
                            source: shared.clone(),
                        };
                        return Err((failed(), failed()));
                    }
                };
                if !a_tx.send(Ok(batch.clone())).await {
                    return Err((stopped("first"), stopped("first")));
                }
                if !b_tx.send(Ok(batch)).await {
                    return Err((stopped("second"), stopped("second")));
                }
            }
            Ok(())
        };
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(())) => {
                a_done.finish();
                b_done.finish();
            }
            Ok(Err((to_a, to_b))) => {
                futures::join!(a_done.fail(to_a), b_done.fail(to_b));
            }
            // The completions are dropped unfinished: both outputs end with an error.
            Err(_) => {}
        }
    });
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;

    fn batch(n: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![n]))]).unwrap()
    }

    /// The items of a stream: `Ok(n)` for a batch of `n`, `Err(message)` for an error.
    async fn items(mut s: BatchStream) -> Vec<std::result::Result<i32, String>> {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            out.push(
                item.map(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int32Array>()
                        .unwrap()
                        .value(0)
                })
                .map_err(|e| crate::error_chain(&e)),
            );
        }
        out
    }

    #[tokio::test]
    async fn a_producer_that_returns_ok_ends_the_stream_cleanly() {
        let s = spawn_blocking_stream("t", |tx| {
            for i in 0..5 {
                assert!(tx.blocking_send(Ok(batch(i))));
            }
            Ok(())
        });
        assert_eq!(items(s).await, (0..5).map(Ok).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_producer_error_or_panic_is_the_last_item() {
        let s = spawn_blocking_stream("reader of t", |tx| {
            tx.blocking_send(Ok(batch(1)));
            Err(Error::backend_msg("files", "t.csv", "disk gone"))
        });
        let got = items(s).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(1));
        assert!(
            got[1].as_ref().unwrap_err().contains("disk gone"),
            "{got:?}"
        );

        let s = spawn_blocking_stream("reader of t", |tx| {
            tx.blocking_send(Ok(batch(1)));
            panic!("index out of bounds in the decoder");
        });
        let got = items(s).await;
        assert_eq!(got.len(), 2);
        let err = got[1].as_ref().unwrap_err();
        assert!(
            err.contains("reader of t") && err.contains("panicked") && err.contains("decoder"),
            "{err}"
        );

        let s = spawn_stream("async reader", |tx| async move {
            tx.send(Ok(batch(7))).await;
            if tx.send(Ok(batch(8))).await {
                panic!("async producer broke");
            }
            Ok(())
        });
        let got = items(s).await;
        assert_eq!(got[..2], [Ok(7), Ok(8)]);
        assert!(got[2]
            .as_ref()
            .unwrap_err()
            .contains("async producer broke"));
    }

    #[tokio::test]
    async fn an_unfinished_completion_is_an_error_not_an_end() {
        let (tx, done, s) = batch_channel(2, "postgres recsys.t");
        let task = tokio::spawn(async move {
            tx.send(Ok(batch(1))).await;
            let _keep = done;
            // Never finishes: cancelled below.
            std::future::pending::<()>().await;
        });
        let mut s = s;
        assert!(s.next().await.unwrap().is_ok());
        task.abort();
        let err = s.next().await.unwrap().unwrap_err().to_string();
        assert!(
            err.contains("postgres recsys.t") && err.contains("before the end"),
            "{err}"
        );
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn several_producers_end_cleanly_only_when_all_finish() {
        let (tx, done, s) = batch_channel(4, "parts");
        for i in 0..3 {
            let (tx, done) = (tx.clone(), done.clone());
            tokio::spawn(async move {
                tx.send(Ok(batch(i))).await;
                if i != 1 {
                    done.finish();
                }
            });
        }
        drop((tx, done));
        let got = items(s).await;
        assert_eq!(got.iter().filter(|i| i.is_ok()).count(), 3);
        assert!(got.last().unwrap().as_ref().unwrap_err().contains("parts"));

        let (tx, done, s) = batch_channel(4, "parts");
        for i in 0..3 {
            let (tx, done) = (tx.clone(), done.clone());
            tokio::spawn(async move {
                tx.send(Ok(batch(i))).await;
                done.finish();
            });
        }
        done.finish();
        drop(tx);
        let mut got: Vec<i32> = items(s).await.into_iter().map(|i| i.unwrap()).collect();
        got.sort();
        assert_eq!(got, [0, 1, 2]);
    }

    #[tokio::test]
    async fn an_error_item_ends_the_stream_and_stops_the_producer() {
        let (stopped_tx, stopped_rx) = std::sync::mpsc::channel();
        let s = spawn_blocking_stream("t", move |tx| {
            tx.blocking_send(Err(Error::backend_msg("files", "t", "bad record")));
            let mut sent = 0;
            while tx.blocking_send(Ok(batch(sent))) {
                sent += 1;
            }
            stopped_tx.send(sent).unwrap();
            Ok(())
        });
        let got = items(s).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().contains("bad record"));
        // The producer saw the consumer go away.
        let sent = tokio::task::spawn_blocking(move || stopped_rx.recv().unwrap())
            .await
            .unwrap();
        assert!(sent <= DEPTH as i32, "{sent}");
    }

    #[tokio::test]
    async fn a_tee_gives_both_outputs_every_batch_and_ends_them_together() {
        let source = spawn_blocking_stream("t", |tx| {
            for i in 0..6 {
                tx.blocking_send(Ok(batch(i)));
            }
            Ok(())
        });
        let (a, b) = tee(source, 2, "split");
        let (a, b) = futures::join!(items(a), items(b));
        assert_eq!(a, (0..6).map(Ok).collect::<Vec<_>>());
        assert_eq!(a, b);

        // A failing source ends both outputs with its error.
        let source = spawn_blocking_stream("t", |tx| {
            tx.blocking_send(Ok(batch(1)));
            Err(Error::backend_msg("postgres", "t", "connection reset"))
        });
        let (a, b) = tee(source, 2, "split");
        let (a, b) = futures::join!(items(a), items(b));
        for out in [a, b] {
            assert_eq!(out[0], Ok(1));
            assert!(
                out[1].as_ref().unwrap_err().contains("connection reset"),
                "{out:?}"
            );
        }

        // A consumer that stops ends the other output with an error, not a clean end.
        let source = spawn_blocking_stream("t", |tx| {
            let mut i = 0;
            while tx.blocking_send(Ok(batch(i))) {
                i += 1;
            }
            Ok(())
        });
        let (a, b) = tee(source, 2, "split");
        let mut a = a;
        assert!(a.next().await.unwrap().is_ok());
        drop(a);
        let out = items(b).await;
        assert!(
            out.last()
                .unwrap()
                .as_ref()
                .unwrap_err()
                .contains("stopped"),
            "{out:?}"
        );
    }
}
