//! The WebSocket endpoint: publish messages and follow rooms.
//!
//! Every frame is checked against the protocol limits before it is decoded. A bad frame gets an
//! [`ServerFrame::Error`] and the connection stays open; only frames above
//! [`TRANSPORT_MAX_BYTES`] make the WebSocket layer itself close the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use mesh::wire::MAX_HISTORY_PAGE;
use mesh::{
    ClientFrame, DecodeError, Envelope, ErrorCode, RoomId, ServerFrame, StoredMessage,
    MAX_BODY_BYTES, MAX_FRAME_BYTES,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::store::Store;
use crate::AppState;

/// Frames larger than this close the connection at the transport level (close code 1009);
/// frames between [`MAX_FRAME_BYTES`] and this are refused with an error frame.
pub const TRANSPORT_MAX_BYTES: usize = 1024 * 1024;
/// Rooms one connection may follow at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 32;
/// Frames queued for a slow client before its room followers wait (and later catch up).
const OUTBOUND_QUEUE: usize = 256;

/// `GET /ws`: upgrades to a WebSocket speaking [`ClientFrame`]s and [`ServerFrame`]s.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(TRANSPORT_MAX_BYTES)
        .max_frame_size(TRANSPORT_MAX_BYTES)
        .on_upgrade(move |socket| serve_connection(socket, state))
}

async fn serve_connection(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let bytes = match frame.encode() {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::error!(%error, "dropping a server frame over the limit");
                    continue;
                }
            };
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut shutdown = state.shutdown.clone();
    let mut session = Session {
        state,
        tx,
        rooms: HashMap::new(),
    };
    session
        .send(ServerFrame::Welcome {
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_body_bytes: MAX_BODY_BYTES as u32,
        })
        .await;
    tracing::debug!("client connected");

    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => session.handle_bytes(&bytes).await,
                Some(Ok(Message::Text(_))) => {
                    session.refuse(ErrorCode::TextFrame, "only binary frames are understood".into(), None).await;
                }
                Some(Ok(Message::Close(_))) | None => break,
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "client connection failed");
                    break;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(session);
    let _ = writer.await;
    tracing::debug!("client disconnected");
}

/// One connected client: where its frames go and which rooms it follows.
struct Session {
    state: AppState,
    tx: mpsc::Sender<ServerFrame>,
    rooms: HashMap<RoomId, AbortHandle>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for follower in self.rooms.values() {
            follower.abort();
        }
    }
}

impl Session {
    async fn send(&self, frame: ServerFrame) {
        // A closed channel means the writer stopped because the client went away; the read
        // loop notices on its next read.
        let _ = self.tx.send(frame).await;
    }

    async fn refuse(&self, code: ErrorCode, detail: String, id: Option<mesh::MessageId>) {
        tracing::debug!(?code, %detail, "refused a client frame");
        self.send(ServerFrame::Error { code, detail, id }).await;
    }

    async fn handle_bytes(&mut self, bytes: &[u8]) {
        match ClientFrame::decode(bytes) {
            Ok(frame) => self.handle(frame).await,
            Err(DecodeError::TooLarge { len, max }) => {
                let detail = format!("frame of {len} bytes refused: the limit is {max} bytes");
                self.refuse(ErrorCode::FrameTooLarge, detail, None).await;
            }
            Err(DecodeError::UnknownVersion(version)) => {
                let detail =
                    format!("frame version {version} is not supported; reload the app to update");
                self.refuse(ErrorCode::UnknownVersion, detail, None).await;
            }
            Err(error) => {
                self.refuse(
                    ErrorCode::Malformed,
                    format!("frame refused: {error}"),
                    None,
                )
                .await
            }
        }
    }

    async fn handle(&mut self, frame: ClientFrame) {
        match frame {
            ClientFrame::Join { room } => self.join(room).await,
            ClientFrame::Leave { room } => {
                if let Some(follower) = self.rooms.remove(&room) {
                    follower.abort();
                }
            }
            ClientFrame::Publish(envelope) => self.publish(envelope).await,
            ClientFrame::History {
                room,
                before_seq,
                limit,
            } => {
                let limit = limit.clamp(1, MAX_HISTORY_PAGE);
                match self
                    .state
                    .store
                    .run(move |s| s.page_before_blocking(room, Some(before_seq), limit))
                    .await
                {
                    Ok((messages, has_more)) => {
                        self.send(ServerFrame::History {
                            room,
                            messages,
                            has_more,
                        })
                        .await
                    }
                    Err(error) => self.internal_error(error, None).await,
                }
            }
            ClientFrame::Ping { nonce } => self.send(ServerFrame::Pong { nonce }).await,
        }
    }

    async fn join(&mut self, room: RoomId) {
        if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let detail =
                format!("one connection can follow at most {MAX_ROOMS_PER_CONNECTION} rooms");
            return self.refuse(ErrorCode::Malformed, detail, None).await;
        }
        if let Some(previous) = self.rooms.remove(&room) {
            previous.abort();
        }
        // Subscribe before reading history so nothing stored in between is missed; the
        // follower skips what the history page already holds.
        let live = self.state.hub.subscribe(room);
        let page = self.state.history_page;
        let (messages, has_more) = match self
            .state
            .store
            .run(move |s| s.page_before_blocking(room, None, page))
            .await
        {
            Ok(page) => page,
            Err(error) => return self.internal_error(error, None).await,
        };
        let last_seq = messages.last().map_or(0, |m| m.seq);
        self.send(ServerFrame::History {
            room,
            messages,
            has_more,
        })
        .await;
        let follower = tokio::spawn(follow_room(
            room,
            live,
            self.tx.clone(),
            self.state.store.clone(),
            last_seq,
        ));
        self.rooms.insert(room, follower.abort_handle());
    }

    async fn publish(&mut self, envelope: Envelope) {
        let id = envelope.id;
        if envelope.body.len() > MAX_BODY_BYTES {
            let detail = format!(
                "message body of {} bytes refused: the limit is {MAX_BODY_BYTES}",
                envelope.body.len()
            );
            return self.refuse(ErrorCode::BodyTooLarge, detail, Some(id)).await;
        }
        let hub = self.state.hub.clone();
        let received_at_ms = now_ms();
        let stored = self
            .state
            .store
            .run(move |s| {
                s.insert_blocking(&envelope, received_at_ms, |message| hub.publish(message))
            })
            .await;
        match stored {
            Ok(stored) => {
                if !stored.duplicate {
                    tracing::debug!(%id, seq = stored.message.seq, "stored a message");
                }
                self.send(ServerFrame::Ack {
                    id,
                    seq: stored.message.seq,
                    duplicate: stored.duplicate,
                })
                .await;
            }
            Err(error) => self.internal_error(error, Some(id)).await,
        }
    }

    async fn internal_error(&self, error: crate::error::ServerError, id: Option<mesh::MessageId>) {
        tracing::error!(%error, "request failed");
        self.send(ServerFrame::Error {
            code: ErrorCode::Internal,
            detail: "the server could not do that right now; it will be retried".into(),
            id,
        })
        .await;
    }
}

/// Forwards a room's new messages to one client, in sequence order. A client too slow for the
/// live backlog catches up from the store, so it never misses a message.
async fn follow_room(
    room: RoomId,
    mut live: broadcast::Receiver<Arc<StoredMessage>>,
    tx: mpsc::Sender<ServerFrame>,
    store: Store,
    mut last_seq: u64,
) {
    loop {
        match live.recv().await {
            Ok(message) => {
                if message.seq <= last_seq {
                    continue;
                }
                last_seq = message.seq;
                if tx
                    .send(ServerFrame::Message((*message).clone()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "slow client catches up from the store");
                loop {
                    let after = last_seq;
                    let batch = match store
                        .run(move |s| s.after_blocking(room, after, MAX_HISTORY_PAGE))
                        .await
                    {
                        Ok(batch) => batch,
                        Err(error) => {
                            tracing::error!(%error, "catch-up read failed; closing the room feed");
                            return;
                        }
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for message in batch {
                        last_seq = message.seq;
                        if tx.send(ServerFrame::Message(message)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{Kind, MessageId, SenderId};

    #[tokio::test]
    async fn a_lagging_follower_catches_up_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomId([1; 16]);
        // A live backlog of 4 and an outbound queue of 1: the follower falls behind at once.
        let (live_tx, live_rx) = broadcast::channel(4);
        let (tx, mut rx) = mpsc::channel(1);
        let follower = tokio::spawn(follow_room(room, live_rx, tx, store.clone(), 0));
        for n in 0..60u8 {
            let envelope = Envelope {
                id: MessageId([n; 16]),
                room,
                sender: SenderId([0; 32]),
                created_at_ms: 0,
                kind: Kind::Text,
                body: vec![n],
            };
            store
                .insert_blocking(&envelope, 0, |message| {
                    let _ = live_tx.send(Arc::clone(message));
                })
                .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 60 {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
                Ok(Some(ServerFrame::Message(message))) => seen.push(message.envelope.body[0]),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert_eq!(
            seen,
            (0..60).collect::<Vec<u8>>(),
            "every message once, in order"
        );
        follower.abort();
    }
}
