//! One object written from a stream of batches: encoded on a blocking thread, uploaded in
//! multipart chunks while it is encoded, made visible only when complete.
//!
//! Every part is one buffer of exactly [`CHUNK`] bytes (the last may be shorter). An object has at
//! most one buffer more than it has parts in flight: the encoder fills one while the others are
//! uploaded, and waits for an uploaded part's buffer when all are taken. Buffers are reused from
//! part to part, so memory does not depend on the size of the object and the allocator sees no
//! churn of large blocks.
//!
//! On a local directory an upload is staged: written into a staging area beside its target (a
//! hidden directory `.staging-ID` with its lock file, held locked while the upload lives; the files
//! connector's one scheme, see [`crate::files::DirTransaction`]) and renamed into place when
//! complete. Making the area first removes the areas of dead writers in that directory: those whose
//! lock can be taken.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::{Path, PathPart};
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use steam_core::{BatchStream, Error, RecordBatch, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Lake;
use crate::files::staging::StagingArea;
use crate::files::unblock;

/// Size of each part of a multipart upload (S3 and GCS want at least 5 MiB but for the last).
const CHUNK: usize = 8 << 20;
/// Parts uploaded at once to a remote store, at most.
pub(crate) const CONCURRENCY: usize = 4;

/// The chunk buffers of one object: at most `limit` exist at once.
struct Pool {
    state: Mutex<Buffers>,
    returned: Condvar,
    limit: usize,
}

struct Buffers {
    /// Buffers whose parts are uploaded, ready to be filled again.
    free: Vec<BytesMut>,
    /// Buffers being filled, queued or uploaded.
    out: usize,
    /// The upload stopped: nothing more will be returned.
    closed: bool,
    /// Encoders waiting for a buffer.
    waiting: usize,
}

impl Pool {
    fn new(limit: usize) -> Self {
        Pool {
            state: Mutex::new(Buffers {
                free: Vec::new(),
                out: 0,
                closed: false,
                waiting: 0,
            }),
            returned: Condvar::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer of at least [`CHUNK`] bytes' capacity: a returned one, a new one while
    /// fewer than the limit exist, or else the next one returned (blocking).
    fn take(&self) -> std::io::Result<BytesMut> {
        let mut buffers = self.lock();
        loop {
            if buffers.closed {
                return Err(std::io::Error::other("the upload stopped"));
            }
            if let Some(buf) = buffers.free.pop() {
                buffers.out += 1;
                return Ok(buf);
            }
            if buffers.out < self.limit {
                buffers.out += 1;
                return Ok(BytesMut::with_capacity(CHUNK));
            }
            buffers.waiting += 1;
            buffers = self
                .returned
                .wait(buffers)
                .unwrap_or_else(PoisonError::into_inner);
            buffers.waiting -= 1;
        }
    }

    /// Takes back the buffer of an uploaded part (reused if nothing else holds it).
    fn give(&self, chunk: Bytes) {
        let reusable = chunk
            .try_into_mut()
            .ok()
            .filter(|buf| buf.capacity() >= CHUNK);
        let mut buffers = self.lock();
        buffers.out = buffers.out.saturating_sub(1);
        if let Some(mut buf) = reusable {
            buf.clear();
            buffers.free.push(buf);
        }
        drop(buffers);
        self.returned.notify_one();
    }

    /// Wakes an encoder waiting for a buffer, with an error.
    fn close(&self) {
        self.lock().closed = true;
        self.returned.notify_all();
    }
}

/// A `Write` that hands its bytes, in chunks of exactly [`CHUNK`], to the uploader.
pub(crate) struct ChunkWriter {
    /// The chunk being filled (no capacity until the first write after a send).
    buf: BytesMut,
    tx: mpsc::Sender<Bytes>,
    pool: Arc<Pool>,
    written: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf).freeze();
        self.written += chunk.len() as u64;
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let len = data.len();
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf = self.pool.take()?;
            }
            let n = data.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(len)
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

/// The parts of one multipart upload, at most `concurrency` in flight; each one's buffer goes back
/// to the pool when it is uploaded.
struct Parts {
    upload: Box<dyn MultipartUpload>,
    running: JoinSet<object_store::Result<()>>,
    pool: Arc<Pool>,
    concurrency: usize,
}

impl Parts {
    async fn put(&mut self, chunk: Bytes) -> object_store::Result<()> {
        while let Some(done) = self.running.try_join_next() {
            joined(done)?;
        }
        while self.running.len() >= self.concurrency {
            if let Some(done) = self.running.join_next().await {
                joined(done)?;
            }
        }
        let part = self.upload.put_part(PutPayload::from(chunk.clone()));
        let pool = self.pool.clone();
        self.running.spawn(async move {
            part.await?;
            pool.give(chunk);
            Ok(())
        });
        Ok(())
    }

    async fn finish(&mut self) -> object_store::Result<()> {
        while let Some(done) = self.running.join_next().await {
            joined(done)?;
        }
        self.upload.complete().await.map(|_| ())
    }

    async fn abort(&mut self) {
        self.running.shutdown().await;
        let _ = self.upload.abort().await;
    }
}

fn joined(
    done: std::result::Result<object_store::Result<()>, tokio::task::JoinError>,
) -> object_store::Result<()> {
    done.map_err(|source| object_store::Error::JoinError { source })?
}

/// An upload to a local directory, staged (see the module's documentation).
struct Staged {
    area: StagingArea,
    /// The staged object, in the store.
    location: Path,
    /// The staged file's name in the area.
    name: std::ffi::OsString,
    /// The target, on the file system.
    file: std::path::PathBuf,
}

impl Staged {
    /// A staging area for an upload to `location`, if the lake is a local directory; made (after
    /// removing dead writers' areas there) on a blocking thread.
    async fn new(lake: &Lake, location: &Path) -> Result<Option<Staged>> {
        let Some(file) = lake.local_file(location)? else {
            return Ok(None);
        };
        let parts: Vec<PathPart<'_>> = location.parts().collect();
        let (Some((name, parent)), Some(dir)) = (parts.split_last(), file.parent()) else {
            return Ok(None);
        };
        let dir = dir.to_path_buf();
        let area = unblock(&format!("staging {}", lake.describe(location)), move || {
            StagingArea::create(&dir)
        })
        .await?;
        if area.leftovers_removed() > 0 {
            tracing::info!(
                "removed {} staging area(s) of dead writers beside {}",
                area.leftovers_removed(),
                lake.describe(location)
            );
        }
        let area_name = area
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staged = parent
            .iter()
            .cloned()
            .chain([PathPart::from(area_name), name.clone()]);
        let location = Path::from_iter(staged);
        // The file's name as the store writes it (decoded from the location).
        let name = lake
            .local_file(&location)?
            .and_then(|f| f.file_name().map(ToOwned::to_owned))
            .unwrap_or_default();
        Ok(Some(Staged {
            area,
            location,
            name,
            file,
        }))
    }

    /// Renames the complete staged object into place (readers see the old object or the new one)
    /// and removes the area, on a blocking thread.
    async fn publish(self) -> Result<()> {
        let what = format!("publishing {}", self.file.display());
        unblock(&what, move || {
            let published = self.area.publish(&self.name, &self.file);
            self.area.remove();
            published
        })
        .await
    }

    /// Removes the area and what is in it, on a blocking thread.
    async fn discard(staged: Option<Staged>) {
        if let Some(staged) = staged {
            let _ = unblock("removing a staging area", move || {
                staged.area.remove();
                Ok(())
            })
            .await;
        }
    }
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
    let concurrency = lake.concurrent_parts();
    let pool = Arc::new(Pool::new(concurrency + 1));
    let (batch_tx, batch_rx) = mpsc::channel::<RecordBatch>(2);
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Bytes>(1);
    let encoder_pool = pool.clone();
    let encoder = tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        let mut io = EncoderIo {
            batches: batch_rx,
            out: ChunkWriter {
                buf: BytesMut::new(),
                tx: chunk_tx,
                pool: encoder_pool,
                written: 0,
            },
        };
        let rows = encode(&mut io)?;
        io.out.send().map_err(|_| Error::Cancelled {
            what: "encoder".into(),
            reason: "the upload stopped".into(),
        })?;
        Ok((rows, io.out.written))
    });

    // On a local directory the upload goes to a staging area (see the module's documentation).
    let staged = match Staged::new(lake, location).await {
        Ok(staged) => staged,
        Err(e) => {
            pool.close();
            return Err(e);
        }
    };
    let target = staged.as_ref().map_or(location, |s| &s.location);
    let upload = match lake.store().put_multipart(target).await {
        Ok(upload) => upload,
        Err(e) => {
            pool.close();
            Staged::discard(staged).await;
            return Err(lake.error(location, e));
        }
    };
    let mut parts = Parts {
        upload,
        running: JoinSet::new(),
        pool: pool.clone(),
        concurrency,
    };

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
            parts
                .put(chunk)
                .await
                .map_err(|e| lake.error(location, e))?;
        }
        Ok::<(), Error>(())
    };
    let streamed = futures::future::try_join(feed, send).await;
    // Unblocks an encoder still sending or waiting for a buffer, if the upload stopped early.
    drop(chunk_rx);
    pool.close();
    let encoded = match encoder.await {
        Ok(result) => result,
        Err(e) => Err(Error::from_join(
            format!("encoder of {}", lake.describe(location)),
            e,
        )),
    };
    match (streamed, encoded) {
        (Ok(_), Ok((rows, bytes))) => match parts.finish().await {
            Ok(()) => match staged {
                None => Ok((rows, bytes)),
                Some(staged) => staged.publish().await.map(|()| (rows, bytes)),
            },
            Err(e) => {
                parts.abort().await;
                Staged::discard(staged).await;
                Err(lake.error(location, e))
            }
        },
        (Err(e), _) | (Ok(_), Err(e)) => {
            parts.abort().await;
            Staged::discard(staged).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::names_in as names;

    /// Writes `total` bytes in pieces of odd sizes through a writer whose pool holds `limit`
    /// buffers, uploading each chunk as soon as it arrives; returns the chunks' lengths, the
    /// number of distinct buffers seen, and the bytes.
    fn chunks(total: usize, limit: usize) -> (Vec<usize>, usize, Vec<u8>) {
        let pool = Arc::new(Pool::new(limit));
        let (tx, mut rx) = mpsc::channel::<Bytes>(1);
        let writer_pool = pool.clone();
        let writer = std::thread::spawn(move || {
            let mut out = ChunkWriter {
                buf: BytesMut::new(),
                tx,
                pool: writer_pool,
                written: 0,
            };
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            for piece in data.chunks(1_000_003) {
                out.write_all(piece).unwrap();
            }
            out.send().unwrap();
            out.written
        });
        let (mut lengths, mut buffers, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(chunk) = rx.blocking_recv() {
            lengths.push(chunk.len());
            bytes.extend_from_slice(&chunk);
            if !buffers.contains(&chunk.as_ptr()) {
                buffers.push(chunk.as_ptr());
            }
            pool.give(chunk);
        }
        assert_eq!(writer.join().unwrap(), total as u64);
        (lengths, buffers.len(), bytes)
    }

    #[test]
    fn parts_are_whole_chunks_in_reused_buffers() {
        let total = 5 * CHUNK + 12_345;
        let (lengths, buffers, bytes) = chunks(total, 2);
        assert_eq!(lengths, [CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, 12_345]);
        assert!(buffers <= 2, "{buffers} buffers for a pool of 2");
        assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }

    /// Uploads `text` to `t.csv` of a lake in `dir`, or fails midway when `text` is `None`.
    async fn upload_text(dir: &std::path::Path, text: Option<&'static str>) -> Result<(u64, u64)> {
        use steam_core::batch_stream;
        let lake = Lake::from_url(dir.to_str().unwrap()).unwrap();
        let location = lake.path(&["t.csv"]);
        let batches = match text {
            Some(_) => batch_stream(futures::stream::iter(Vec::new())),
            None => batch_stream(futures::stream::iter(vec![Err(Error::backend_msg(
                "test",
                "t",
                "source broke",
            ))])),
        };
        upload(&lake, &location, batches, move |io| {
            io.out.write_all(text.unwrap_or("part").as_bytes()).unwrap();
            while io.batches.blocking_recv().is_some() {}
            Ok(0)
        })
        .await
    }

    #[tokio::test]
    async fn a_local_upload_is_staged_and_only_dead_writers_areas_are_removed() {
        use std::fs::File;
        let dir = tempfile::tempdir().unwrap();
        // Two writers' staging areas, both with a pid no process has in their names: one is at
        // work (its lock held, as a writer in another container holds it), the other is dead.
        for id in ["live-4000000000-1", "dead-4000000000-1"] {
            let area = dir.path().join(format!(".staging-{id}"));
            std::fs::create_dir(&area).unwrap();
            std::fs::write(area.join("t.csv#1"), "part").unwrap();
        }
        let live = File::create(dir.path().join(".staging-live-4000000000-1.lock")).unwrap();
        live.lock().unwrap();
        File::create(dir.path().join(".staging-dead-4000000000-1.lock")).unwrap();
        std::fs::write(dir.path().join("u.csv"), "another object").unwrap();

        upload_text(dir.path(), Some("new")).await.unwrap();
        assert_eq!(
            names(dir.path()),
            [
                ".staging-live-4000000000-1",
                ".staging-live-4000000000-1.lock",
                "t.csv",
                "u.csv"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.csv")).unwrap(),
            "new"
        );

        // A failed upload leaves the old object and no staging area of its own.
        let e = upload_text(dir.path(), None).await.unwrap_err();
        assert!(e.to_string().contains("source broke"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.csv")).unwrap(),
            "new"
        );
        assert_eq!(names(dir.path()).len(), 4, "{:?}", names(dir.path()));
        drop(live);
    }

    #[test]
    fn a_closed_pool_stops_a_waiting_writer() {
        let pool = Arc::new(Pool::new(1));
        let held = pool.take().unwrap();
        let waiting = pool.clone();
        let writer = std::thread::spawn(move || waiting.take().map(|_| ()));
        // Close only once the writer is waiting for a buffer.
        while pool.lock().waiting == 0 {
            std::thread::yield_now();
        }
        pool.close();
        assert!(writer.join().unwrap().is_err());
        drop(held);
    }
}
