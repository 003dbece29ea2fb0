//! A connection's frames on their way to the socket: bounded in bytes, with a send timeout,
//! so a client that stops reading costs the server a fixed amount of memory and is dropped
//! rather than holding its session (and its rooms' followers) up for ever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use mesh::ServerFrame;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// Bytes of encoded frames one connection may have queued (a frame larger than this, such as
/// a full history page, waits until the queue is empty and then goes alone).
pub(crate) const BUDGET_BYTES: usize = 1024 * 1024;
/// Frames one connection may have queued, whatever their size.
const QUEUE_FRAMES: usize = 256;
/// A frame that finds no room in the queue for this long marks the client as not reading.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A write the socket does not take within this long marks the client as not reading.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// One frame in the queue, holding its share of the byte budget until it is written.
pub(crate) struct Queued {
    pub(crate) message: Message,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The writer is gone: the client went away.
    Closed,
    /// The client stopped reading: the connection is being closed.
    Stuck,
}

/// The sending half, cloned for each task that sends to the client. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: mpsc::Sender<Queued>,
    budget_bytes: usize,
    state: Shared,
}

/// What the senders and the writer share.
#[derive(Clone)]
struct Shared {
    budget: Arc<Semaphore>,
    stuck: Arc<(AtomicBool, Notify)>,
}

impl Shared {
    fn mark_stuck(&self) {
        self.stuck.0.store(true, Ordering::Release);
        self.stuck.1.notify_waiters();
        // Senders waiting for room give up at once.
        self.budget.close();
    }
}

/// The receiving half: what [`write`] drains. It holds no sender, so the queue closes (and
/// the writer ends) when the session and its followers are gone.
pub(crate) struct Writer {
    rx: mpsc::Receiver<Queued>,
    state: Shared,
}

impl Writer {
    /// The next frame to write.
    pub(crate) async fn next(&mut self) -> Option<Queued> {
        self.rx.recv().await
    }
}

impl Outbound {
    /// A queue of at most `budget_bytes`, and the half the writer drains.
    pub(crate) fn new(budget_bytes: usize) -> (Self, Writer) {
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let state = Shared {
            budget: Arc::new(Semaphore::new(budget_bytes)),
            stuck: Arc::new((AtomicBool::new(false), Notify::new())),
        };
        let outbound = Self {
            tx,
            budget_bytes,
            state: state.clone(),
        };
        (outbound, Writer { rx, state })
    }

    /// Queues `frame`, waiting at most [`SEND_TIMEOUT`] for room.
    pub(crate) async fn frame(&self, frame: &ServerFrame) -> Result<(), SendError> {
        match frame.encode() {
            Ok(bytes) => self.encoded(bytes.into()).await,
            Err(error) => {
                tracing::error!(%error, "dropping a server frame over the limit");
                Ok(())
            }
        }
    }

    /// Queues a frame already encoded (one encoding shared by many connections), waiting at
    /// most [`SEND_TIMEOUT`] for room.
    pub(crate) async fn encoded(&self, bytes: axum::body::Bytes) -> Result<(), SendError> {
        let cost = bytes.len().clamp(1, self.budget_bytes) as u32;
        let queued = async {
            let permit = Arc::clone(&self.state.budget)
                .acquire_many_owned(cost)
                .await
                .map_err(|_| SendError::Closed)?;
            self.tx
                .send(Queued {
                    message: Message::Binary(bytes),
                    _budget: Some(permit),
                })
                .await
                .map_err(|_| SendError::Closed)
        };
        if self.is_stuck() {
            return Err(SendError::Stuck);
        }
        match tokio::time::timeout(SEND_TIMEOUT, queued).await {
            Ok(result) => result,
            Err(_) => {
                self.mark_stuck();
                Err(SendError::Stuck)
            }
        }
    }

    /// Queues a ping if there is room (a client with a full queue is not idle).
    pub(crate) fn ping(&self) {
        let _ = self.tx.try_send(Queued {
            message: Message::Ping(Vec::new().into()),
            _budget: None,
        });
    }

    /// The client stopped reading: the connection should close.
    fn mark_stuck(&self) {
        self.state.mark_stuck();
    }

    fn is_stuck(&self) -> bool {
        self.state.stuck.0.load(Ordering::Acquire)
    }

    /// Resolves once the connection is marked stuck (or its writer failed).
    pub(crate) async fn stuck(&self) {
        loop {
            let notified = self.state.stuck.1.notified();
            if self.is_stuck() {
                return;
            }
            notified.await;
        }
    }
}

/// Writes queued frames to the socket until the queue closes, the socket fails, or a write
/// takes longer than [`WRITE_TIMEOUT`].
pub(crate) async fn write<S>(mut sink: S, mut writer: Writer)
where
    S: futures::Sink<Message> + Unpin,
{
    use futures::SinkExt;
    while let Some(queued) = writer.next().await {
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(queued.message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("a client stopped reading; closing its connection");
                break;
            }
        }
    }
    writer.state.mark_stuck();
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(bytes: usize) -> ServerFrame {
        ServerFrame::RadioFrame {
            frame: vec![7; bytes],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_is_bounded_in_bytes_and_then_dropped() {
        let (outbound, mut rx) = Outbound::new(10_000);
        // Nobody drains the queue: it takes 9 frames of ~1 KiB, then the next waits.
        for _ in 0..9 {
            assert_eq!(outbound.frame(&page(1000)).await, Ok(()));
        }
        let waited = tokio::time::Instant::now();
        assert_eq!(outbound.frame(&page(1000)).await, Err(SendError::Stuck));
        assert!(waited.elapsed() >= SEND_TIMEOUT);
        // Every other sender learns it at once, and the session's watch fires.
        assert_eq!(outbound.frame(&page(10)).await, Err(SendError::Stuck));
        tokio::time::timeout(Duration::from_millis(1), outbound.stuck())
            .await
            .expect("marked stuck");
        // What was queued is still there to drain (or drop), and no more.
        let mut queued = 0;
        while rx.rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_larger_than_the_budget_goes_alone_once_the_queue_drained() {
        let (outbound, mut rx) = Outbound::new(10_000);
        assert_eq!(outbound.frame(&page(4000)).await, Ok(()));
        let sender = outbound.clone();
        let big = tokio::spawn(async move { sender.frame(&page(50_000)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!big.is_finished(), "waits for the queue to drain");
        drop(rx.next().await.expect("the first frame"));
        assert_eq!(big.await.unwrap(), Ok(()));
        assert!(
            matches!(rx.next().await, Some(Queued { message: Message::Binary(b), .. }) if b.len() > 50_000)
        );
    }
}
