//! One object written from a stream of batches: encoded on a blocking thread, uploaded in
//! multipart chunks while it is encoded, made visible only when complete.

use std::io::Write;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use steam_core::{BatchStream, Error, RecordBatch, Result};
use tokio::sync::mpsc;

use super::Lake;

/// Size of the chunks handed to the uploader (each becomes a part of the multipart upload).
const CHUNK: usize = 8 << 20;
/// Parts uploaded at once, at most.
const CONCURRENCY: usize = 4;

/// A `Write` that hands its bytes, in chunks of [`CHUNK`], to the uploader.
pub(crate) struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    written: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.written += chunk.len() as u64;
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What an encoder gets: the batches, and where to write the encoded bytes.
pub(crate) struct EncoderIo {
    /// The batches, in order.
    pub batches: mpsc::Receiver<RecordBatch>,
    /// Where the encoded bytes go.
    pub out: ChunkWriter,
}

/// Writes `batches` to `location` as one object encoded by `encode`, which runs on a blocking
/// thread and returns the number of rows it wrote. The object becomes visible only when `encode`
/// and the upload both succeed; on any error the upload is aborted and nothing changes at
/// `location`. Returns rows and bytes.
pub(crate) async fn upload<F>(
    lake: &Lake,
    location: &Path,
    mut batches: BatchStream,
    encode: F,
) -> Result<(u64, u64)>
where
    F: FnOnce(&mut EncoderIo) -> Result<u64> + Send + 'static,
{
    let (batch_tx, batch_rx) = mpsc::channel::<RecordBatch>(2);
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Bytes>(2);
    let encoder = tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        let mut io = EncoderIo {
            batches: batch_rx,
            out: ChunkWriter {
                buf: Vec::with_capacity(CHUNK),
                tx: chunk_tx,
                written: 0,
            },
        };
        let rows = encode(&mut io)?;
        io.out
            .send()
            .map_err(|e| Error::backend_msg("lake", "encoder", e.to_string()))?;
        Ok((rows, io.out.written))
    });

    let upload = lake
        .store()
        .put_multipart(location)
        .await
        .map_err(|e| lake.error(location, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);

    // Feed the encoder and upload what it produces, at once.
    let feed = async {
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch_tx.send(batch).await.is_err() {
                break; // the encoder stopped: its error is reported below
            }
        }
        drop(batch_tx);
        Ok::<(), Error>(())
    };
    let send = async {
        while let Some(chunk) = chunk_rx.recv().await {
            writer
                .wait_for_capacity(CONCURRENCY)
                .await
                .map_err(|e| lake.error(location, e))?;
            writer.put(chunk);
        }
        Ok::<(), Error>(())
    };
    let streamed = futures::future::try_join(feed, send).await;
    // Unblocks an encoder still sending, if the upload stopped early.
    drop(chunk_rx);
    let encoded = match encoder.await {
        Ok(result) => result,
        Err(e) => Err(Error::backend_msg(
            "lake",
            lake.describe(location),
            format!("encoder thread: {e}"),
        )),
    };
    match (streamed, encoded) {
        (Ok(_), Ok((rows, bytes))) => {
            writer.finish().await.map_err(|e| lake.error(location, e))?;
            Ok((rows, bytes))
        }
        (Err(e), _) | (Ok(_), Err(e)) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}
