//! The WebSocket endpoint: publish messages, follow rooms, presence and typing.
//!
//! Every frame is checked against the protocol limits before it is decoded. A bad frame gets an
//! [`ServerFrame::Error`] and the connection stays open; only frames above
//! [`TRANSPORT_MAX_BYTES`] make the WebSocket layer itself close the connection.
//!
//! Publishes that arrive together are stored in one transaction (one disk sync), which is what
//! lets a phone's outbox of a thousand messages drain in about a second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use mesh::wire::{
    MAX_HISTORY_PAGE, MAX_JOIN_CODE_CHARS, MAX_LENDER_LABEL_CHARS, MAX_PRESENCE_BYTES,
};
use mesh::{
    ClientFrame, DecodeError, Envelope, ErrorCode, Member, MessageId, RoomId, SenderId,
    ServerFrame, StoredMessage, MAX_BODY_BYTES, MAX_FRAME_BYTES,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::access::RetryAfter;
use crate::hub::{ConnectionId, Hub, RoomEvent};
use crate::store::Store;
use crate::AppState;

/// Frames larger than this close the connection at the transport level (close code 1009);
/// frames between [`MAX_FRAME_BYTES`] and this are refused with an error frame.
pub const TRANSPORT_MAX_BYTES: usize = 64 * 1024;
/// Rooms one connection may follow at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 32;
/// Frames queued for a slow client before its room followers wait (and later catch up).
const OUTBOUND_QUEUE: usize = 256;
/// Most frames read and handled as one batch (publishes among them share a transaction).
const READ_BATCH: usize = 128;
/// The server pings a quiet client this often...
const PING_EVERY: Duration = Duration::from_secs(20);
/// ...and drops a client it has not heard from (not even a pong) for this long.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// A typing notice is relayed at most this often per connection and room.
const TYPING_EVERY: Duration = Duration::from_secs(2);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// `GET /ws`: upgrades to a WebSocket speaking [`ClientFrame`]s and [`ServerFrame`]s.
/// Refused with 429 and `Retry-After` when one address opens connections too fast.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Err(retry) = state.access.limits.connect(peer.ip()) {
        tracing::info!(%peer, "too many connections from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.seconds().to_string())],
            format!("Too many connections; try again in {} s.", retry.seconds()),
        )
            .into_response();
    }
    ws.max_message_size(TRANSPORT_MAX_BYTES)
        .max_frame_size(TRANSPORT_MAX_BYTES)
        .on_upgrade(move |socket| serve_connection(socket, state, peer.ip()))
}

// Frames are moved once into a bounded queue; boxing each would cost more than the size.
#[allow(clippy::large_enum_variant)]
enum Outbound {
    Frame(ServerFrame),
    Ping,
}

async fn serve_connection(socket: WebSocket, state: AppState, address: IpAddr) {
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(outbound) = rx.recv().await {
            let message = match outbound {
                Outbound::Ping => Message::Ping(Vec::new().into()),
                Outbound::Frame(frame) => match frame.encode() {
                    Ok(bytes) => Message::Binary(bytes.into()),
                    Err(error) => {
                        tracing::error!(%error, "dropping a server frame over the limit");
                        continue;
                    }
                },
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut shutdown = state.shutdown.clone();
    let code_required = state.access.code.is_some();
    let mut session = Session {
        id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        state,
        tx,
        rooms: HashMap::new(),
        address,
        unlocked: !code_required,
        publish_paused_until: None,
        lease: None,
    };
    session
        .send(ServerFrame::Welcome {
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_body_bytes: MAX_BODY_BYTES as u32,
            code_required,
            store_id: session.state.store.id,
        })
        .await;
    let mut radio = session.state.radio.status();
    let mut radio_alive = true;
    let radio_status = radio.borrow_and_update().clone();
    session.send(ServerFrame::Radio(radio_status)).await;
    tracing::debug!(connection = session.id, "client connected");

    let mut stream = stream.ready_chunks(READ_BATCH);
    let mut heartbeat = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(items) => {
                    last_heard = Instant::now();
                    if session.handle_batch(items).await.is_break() {
                        break;
                    }
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::debug!(connection = session.id, "client silent too long; closing");
                    break;
                }
                let _ = session.tx.send(Outbound::Ping).await;
            }
            Some(frame) = lent_radio_frame(&mut session.lease) => {
                session.send(ServerFrame::RadioFrame { frame }).await;
            }
            changed = radio.changed(), if radio_alive => {
                if changed.is_ok() {
                    let status = radio.borrow_and_update().clone();
                    session.send(ServerFrame::Radio(status)).await;
                } else {
                    radio_alive = false;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(session);
    let _ = writer.await;
}

/// One connected client: where its frames go and which rooms it follows.
struct Session {
    id: ConnectionId,
    state: AppState,
    tx: mpsc::Sender<Outbound>,
    rooms: HashMap<RoomId, Following>,
    /// The client's network address, for rate limits.
    address: IpAddr,
    /// The device may read and send (no join code is set, or it unlocked).
    unlocked: bool,
    /// After a publish was refused for a reason that passes (rate limit, storage failure),
    /// every later publish is refused until then too, so messages are never stored out of the
    /// order they were sent in.
    publish_paused_until: Option<Instant>,
    /// This page lends its radio to the server.
    lease: Option<crate::radio::Lease>,
}

struct Following {
    follower: AbortHandle,
    sender: SenderId,
    last_typing: Option<Instant>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for (room, following) in self.rooms.drain() {
            following.follower.abort();
            self.state.hub.leave(room, self.id);
        }
        tracing::debug!(connection = self.id, "client disconnected");
    }
}

impl Session {
    async fn send(&self, frame: ServerFrame) {
        // A closed channel means the writer stopped because the client went away; the read
        // loop notices on its next read.
        let _ = self.tx.send(Outbound::Frame(frame)).await;
    }

    async fn refuse(&self, code: ErrorCode, detail: String, id: Option<MessageId>) {
        tracing::debug!(connection = self.id, ?code, %detail, "refused a client frame");
        self.send(ServerFrame::Error {
            code,
            detail,
            id,
            retry_after_ms: None,
        })
        .await;
    }

    async fn rate_limited(&self, what: &str, retry: RetryAfter, id: Option<MessageId>) {
        tracing::debug!(connection = self.id, what, "rate limited");
        let detail = format!("too many {what}; try again in {} s", retry.seconds());
        self.send(ServerFrame::Error {
            code: ErrorCode::RateLimited,
            detail,
            id,
            retry_after_ms: Some(retry.millis()),
        })
        .await;
    }

    /// Handles frames that arrived together, storing consecutive publishes as one batch.
    async fn handle_batch(
        &mut self,
        items: Vec<Result<Message, axum::Error>>,
    ) -> std::ops::ControlFlow<()> {
        let mut publishes = Vec::new();
        for item in items {
            let frame = match item {
                Ok(Message::Binary(bytes)) => self.decode(&bytes).await,
                Ok(Message::Text(_)) => {
                    self.refuse(
                        ErrorCode::TextFrame,
                        "only binary frames are understood".into(),
                        None,
                    )
                    .await;
                    None
                }
                // Pings are answered by the WebSocket layer itself.
                Ok(Message::Ping(_) | Message::Pong(_)) => None,
                Ok(Message::Close(_)) => {
                    self.publish(std::mem::take(&mut publishes)).await;
                    return std::ops::ControlFlow::Break(());
                }
                Err(error) => {
                    tracing::debug!(connection = self.id, %error, "client connection failed");
                    self.publish(std::mem::take(&mut publishes)).await;
                    return std::ops::ControlFlow::Break(());
                }
            };
            match frame {
                Some(ClientFrame::Publish(envelope)) => publishes.push(envelope),
                Some(other) => {
                    self.publish(std::mem::take(&mut publishes)).await;
                    self.handle(other).await;
                }
                None => {}
            }
        }
        self.publish(publishes).await;
        std::ops::ControlFlow::Continue(())
    }

    async fn decode(&self, bytes: &[u8]) -> Option<ClientFrame> {
        let (code, detail) = match ClientFrame::decode(bytes) {
            Ok(frame) => return Some(frame),
            Err(DecodeError::TooLarge { len, max }) => (
                ErrorCode::FrameTooLarge,
                format!("frame of {len} bytes refused: the limit is {max} bytes"),
            ),
            Err(DecodeError::UnknownVersion(version)) => (
                ErrorCode::UnknownVersion,
                format!("frame version {version} is not supported; reload the app to update"),
            ),
            Err(error) => (ErrorCode::Malformed, format!("frame refused: {error}")),
        };
        self.refuse(code, detail, None).await;
        None
    }

    async fn handle(&mut self, frame: ClientFrame) {
        if !self.unlocked
            && !matches!(
                frame,
                ClientFrame::Ping { .. }
                    | ClientFrame::Unlock { .. }
                    | ClientFrame::Authenticate { .. }
            )
        {
            let id = match &frame {
                ClientFrame::Publish(envelope) => Some(envelope.id),
                _ => None,
            };
            let detail = "this FieldMesh asks for a join code first".to_string();
            return self.refuse(ErrorCode::CodeRequired, detail, id).await;
        }
        match frame {
            ClientFrame::Unlock { code, device } => self.unlock(code, device).await,
            ClientFrame::Authenticate { token } => {
                match self
                    .state
                    .access
                    .authenticate(&self.state.store, token)
                    .await
                {
                    Ok(true) => {
                        self.unlocked = true;
                        self.send(ServerFrame::Access { token }).await;
                    }
                    Ok(false) => {
                        let detail = "this device's pass is no longer valid; enter the join code"
                            .to_string();
                        self.refuse(ErrorCode::WrongCode, detail, None).await;
                    }
                    Err(error) => self.internal_error(error, None).await,
                }
            }
            ClientFrame::Join {
                room,
                after_seq,
                member,
            } => self.join(room, after_seq, member).await,
            ClientFrame::Leave { room } => {
                if let Some(following) = self.rooms.remove(&room) {
                    following.follower.abort();
                    self.state.hub.leave(room, self.id);
                }
            }
            ClientFrame::Publish(envelope) => self.publish(vec![envelope]).await,
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
            ClientFrame::Typing { room } => {
                let hub = self.state.hub.clone();
                if let Some(following) = self.rooms.get_mut(&room) {
                    if following
                        .last_typing
                        .is_none_or(|at| at.elapsed() >= TYPING_EVERY)
                    {
                        following.last_typing = Some(Instant::now());
                        hub.typing(room, following.sender);
                    }
                }
            }
            ClientFrame::Ping { nonce } => self.send(ServerFrame::Pong { nonce }).await,
            ClientFrame::SendRadio { room, id, payload } => {
                // The message itself is stored (its own ack said so); only the radio copy is
                // refused, so the error names no message id.
                if let Err(error) = self.state.radio.send(room, id, payload) {
                    let detail = format!("{error}; it reached this server's phones only");
                    self.refuse(ErrorCode::LimitReached, detail, None).await;
                }
            }
            ClientFrame::RadioHeard(envelope) => self.radio_heard(envelope).await,
            ClientFrame::LendRadio { label } => {
                self.lease = None;
                let label: String = label
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_LENDER_LABEL_CHARS)
                    .collect();
                let label = format!("{} ({})", label.trim(), self.address);
                let answer = match self.state.radio.lend(&label) {
                    Ok(lease) => {
                        self.lease = Some(lease);
                        ServerFrame::Lending {
                            active: true,
                            detail: "this server now sends and hears through your radio".into(),
                        }
                    }
                    Err(detail) => ServerFrame::Lending {
                        active: false,
                        detail,
                    },
                };
                self.send(answer).await;
            }
            ClientFrame::StopLending => {
                if self.lease.take().is_some() {
                    self.send(ServerFrame::Lending {
                        active: false,
                        detail: "you stopped lending your radio".into(),
                    })
                    .await;
                }
            }
            ClientFrame::RadioFrame { frame } => match &self.lease {
                Some(lease) => {
                    lease.heard(frame);
                }
                None => {
                    let detail = "this page does not lend its radio to the server".to_string();
                    self.refuse(ErrorCode::LimitReached, detail, None).await;
                }
            },
        }
    }

    async fn join(&mut self, room: RoomId, after_seq: Option<u64>, member: Member) {
        if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let detail =
                format!("one connection can follow at most {MAX_ROOMS_PER_CONNECTION} rooms");
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        if member.card.len() > MAX_PRESENCE_BYTES {
            let detail = format!("a presence card may hold at most {MAX_PRESENCE_BYTES} bytes");
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        if let Some(previous) = self.rooms.remove(&room) {
            previous.follower.abort();
        }
        let sender = member.sender;
        self.state.radio.known_room(room);
        // Subscribe before reading the store so nothing stored in between is missed; the
        // follower skips what was already sent.
        let live = self.state.hub.join(room, self.id, member);
        let last_seq = match after_seq {
            None => {
                let page = self.state.history_page;
                match self
                    .state
                    .store
                    .run(move |s| s.page_before_blocking(room, None, page))
                    .await
                {
                    Ok((messages, has_more)) => {
                        let last = messages.last().map_or(0, |m| m.seq);
                        self.send(ServerFrame::History {
                            room,
                            messages,
                            has_more,
                        })
                        .await;
                        Some(last)
                    }
                    Err(error) => {
                        self.internal_error(error, None).await;
                        None
                    }
                }
            }
            Some(cursor) => catch_up(room, cursor, &self.tx, &self.state.store).await,
        };
        let Some(last_seq) = last_seq else {
            self.state.hub.leave(room, self.id);
            return;
        };
        let follower = tokio::spawn(follow_room(
            room,
            sender,
            live,
            self.tx.clone(),
            self.state.store.clone(),
            self.state.hub.clone(),
            last_seq,
        ));
        self.rooms.insert(
            room,
            Following {
                follower: follower.abort_handle(),
                sender,
                last_typing: None,
            },
        );
    }

    /// Stores a message the device heard over its own radio while no server was reachable.
    async fn radio_heard(&mut self, envelope: Envelope) {
        let id = envelope.id;
        let valid = envelope.body.len() <= mesh::radio::MAX_PAYLOAD_BYTES
            && mesh::radio::RadioMessage::from_envelope(&envelope).is_some();
        if !valid {
            let detail = "not a radio message: it was not stored".to_string();
            return self.refuse(ErrorCode::Malformed, detail, Some(id)).await;
        }
        if let Err(retry) = self
            .state
            .access
            .limits
            .publish(envelope.sender, self.address)
        {
            return self.rate_limited("messages", retry, Some(id)).await;
        }
        let hub = self.state.hub.clone();
        let received_at_ms = crate::now_ms();
        let stored = self
            .state
            .store
            .run(move |s| s.insert_blocking(&envelope, received_at_ms, |m| hub.publish(m)))
            .await;
        match stored {
            Ok(stored) => {
                self.send(ServerFrame::Ack {
                    id,
                    seq: stored.message.seq,
                    duplicate: stored.duplicate,
                })
                .await
            }
            Err(error) => self.internal_error(error, Some(id)).await,
        }
    }

    /// How long publishes stay paused on this connection, if they are.
    fn publish_pause(&self) -> Option<RetryAfter> {
        let until = self.publish_paused_until?;
        until.checked_duration_since(Instant::now()).map(RetryAfter)
    }

    async fn unlock(&mut self, code: String, device: SenderId) {
        if code.chars().count() > MAX_JOIN_CODE_CHARS {
            let detail = format!("a join code has at most {MAX_JOIN_CODE_CHARS} characters");
            return self.refuse(ErrorCode::WrongCode, detail, None).await;
        }
        if let Err(retry) = self.state.access.limits.unlock(device, self.address) {
            return self.rate_limited("join code attempts", retry, None).await;
        }
        match self
            .state
            .access
            .unlock(&self.state.store, code, device)
            .await
        {
            Ok(Some(token)) => {
                self.unlocked = true;
                tracing::info!(connection = self.id, "a device unlocked with the join code");
                self.send(ServerFrame::Access { token }).await;
            }
            Ok(None) => {
                tracing::info!(connection = self.id, address = %self.address, "wrong join code");
                self.refuse(
                    ErrorCode::WrongCode,
                    "that is not the join code".into(),
                    None,
                )
                .await;
            }
            Err(error) => self.internal_error(error, None).await,
        }
    }

    async fn publish(&mut self, envelopes: Vec<Envelope>) {
        if envelopes.is_empty() {
            return;
        }
        if !self.unlocked {
            for envelope in envelopes {
                let detail = "this FieldMesh asks for a join code first".to_string();
                self.refuse(ErrorCode::CodeRequired, detail, Some(envelope.id))
                    .await;
            }
            return;
        }
        // Signatures are checked with public keys only: the server never sees plaintext.
        let ids: Vec<MessageId> = envelopes.iter().map(|e| e.id).collect();
        let checked = tokio::task::spawn_blocking(move || {
            envelopes
                .into_iter()
                .map(|e| {
                    (
                        e.body.len() <= MAX_BODY_BYTES && e.verify_signature().is_ok(),
                        e,
                    )
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(checked) = checked else {
            // The check itself failed: say so for each message, so the phone keeps and retries
            // them instead of waiting for an answer that never comes.
            tracing::error!("checking signatures failed");
            for id in ids {
                self.internal_error_quiet(Some(id)).await;
            }
            return;
        };
        let mut valid = Vec::with_capacity(checked.len());
        for (signed, envelope) in checked {
            if envelope.body.len() > MAX_BODY_BYTES {
                let detail = format!(
                    "message body of {} bytes refused: the limit is {MAX_BODY_BYTES}",
                    envelope.body.len()
                );
                self.refuse(ErrorCode::BodyTooLarge, detail, Some(envelope.id))
                    .await;
            } else if !signed {
                let detail = "the message's signature does not match its sender; it was not stored";
                self.refuse(ErrorCode::BadSignature, detail.into(), Some(envelope.id))
                    .await;
            } else if let Some(retry) = self.publish_pause() {
                self.rate_limited("messages", retry, Some(envelope.id))
                    .await;
            } else if let Err(retry) = self
                .state
                .access
                .limits
                .publish(envelope.sender, self.address)
            {
                self.publish_paused_until = Some(Instant::now() + retry.0);
                self.rate_limited("messages", retry, Some(envelope.id))
                    .await;
            } else {
                valid.push(envelope);
            }
        }
        if valid.is_empty() {
            return;
        }
        let hub = self.state.hub.clone();
        let received_at_ms = crate::now_ms();
        let ids: Vec<MessageId> = valid.iter().map(|e| e.id).collect();
        let stored = self
            .state
            .store
            .run(move |s| {
                s.insert_many_blocking(&valid, received_at_ms, |message| hub.publish(message))
            })
            .await;
        match stored {
            Ok(stored) => {
                for (id, stored) in ids.into_iter().zip(stored) {
                    self.send(ServerFrame::Ack {
                        id,
                        seq: stored.message.seq,
                        duplicate: stored.duplicate,
                    })
                    .await;
                }
            }
            Err(error) => {
                tracing::error!(%error, count = ids.len(), "storing messages failed");
                self.publish_paused_until = Some(Instant::now() + Duration::from_secs(2));
                for id in ids {
                    self.internal_error_quiet(Some(id)).await;
                }
            }
        }
    }

    async fn internal_error(&self, error: crate::error::ServerError, id: Option<MessageId>) {
        tracing::error!(%error, "request failed");
        self.internal_error_quiet(id).await;
    }

    async fn internal_error_quiet(&self, id: Option<MessageId>) {
        self.send(ServerFrame::Error {
            code: ErrorCode::Internal,
            detail: "the server could not do that right now; it will be retried".into(),
            id,
            retry_after_ms: None,
        })
        .await;
    }
}

/// Sends every message of `room` after `cursor` in [`ServerFrame::CatchUp`] batches and returns
/// the last sequence number sent (or `cursor`), or `None` when the store failed.
async fn catch_up(
    room: RoomId,
    cursor: u64,
    tx: &mpsc::Sender<Outbound>,
    store: &Store,
) -> Option<u64> {
    send_stored_after(room, cursor, tx, store, |messages, done| {
        vec![ServerFrame::CatchUp {
            room,
            messages,
            done,
        }]
    })
    .await
}

/// Reads the messages of `room` after `cursor` from the store a page at a time and sends them
/// as `frames` shapes each page (`true` on the last). Returns the last sequence number sent (or
/// `cursor`), or `None` when the store failed or the client went away.
async fn send_stored_after(
    room: RoomId,
    mut cursor: u64,
    tx: &mpsc::Sender<Outbound>,
    store: &Store,
    mut frames: impl FnMut(Vec<StoredMessage>, bool) -> Vec<ServerFrame>,
) -> Option<u64> {
    loop {
        let after = cursor;
        let batch = match store
            .run(move |s| s.after_blocking(room, after, MAX_HISTORY_PAGE))
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "catch-up read failed");
                return None;
            }
        };
        let done = batch.len() < usize::from(MAX_HISTORY_PAGE);
        cursor = batch.last().map_or(cursor, |m| m.seq);
        for frame in frames(batch, done) {
            if tx.send(Outbound::Frame(frame)).await.is_err() {
                return None;
            }
        }
        if done {
            return Some(cursor);
        }
    }
}

/// Forwards a room's events to one client, messages in sequence order. A client too slow for
/// the live backlog catches up from the store, so it never misses a message.
async fn follow_room(
    room: RoomId,
    own: SenderId,
    mut live: broadcast::Receiver<RoomEvent>,
    tx: mpsc::Sender<Outbound>,
    store: Store,
    hub: Hub,
    mut last_seq: u64,
) {
    loop {
        let frame = match live.recv().await {
            Ok(RoomEvent::Message(message)) => {
                if message.seq <= last_seq {
                    continue;
                }
                last_seq = message.seq;
                ServerFrame::Message((*message).clone())
            }
            Ok(RoomEvent::Presence(members)) => ServerFrame::Presence {
                room,
                members: members.to_vec(),
            },
            Ok(RoomEvent::Typing(sender)) if sender != own => ServerFrame::Typing { room, sender },
            Ok(RoomEvent::Typing(_)) => continue,
            Ok(RoomEvent::Relayed(id)) => ServerFrame::Relayed { room, id },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "slow client catches up from the store");
                let sent = send_stored_after(room, last_seq, &tx, &store, |messages, _| {
                    messages.into_iter().map(ServerFrame::Message).collect()
                })
                .await;
                match sent {
                    Some(seq) => last_seq = seq,
                    None => return,
                }
                // A presence change may have been among the missed events.
                ServerFrame::Presence {
                    room,
                    members: hub.members(room),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.send(Outbound::Frame(frame)).await.is_err() {
            return;
        }
    }
}

/// The next frame for a lent radio to transmit; never, when this page lends none.
async fn lent_radio_frame(lease: &mut Option<crate::radio::Lease>) -> Option<Vec<u8>> {
    match lease {
        Some(lease) => lease.down.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use mesh::Kind;

    #[tokio::test]
    async fn a_lagging_follower_catches_up_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomId([1; 16]);
        // A live backlog of 4 and an outbound queue of 1: the follower falls behind at once.
        let (live_tx, live_rx) = broadcast::channel(4);
        let (tx, mut rx) = mpsc::channel(1);
        let follower = tokio::spawn(follow_room(
            room,
            SenderId([9; 32]),
            live_rx,
            tx,
            store.clone(),
            Hub::default(),
            0,
        ));
        for n in 0..60u8 {
            let envelope = Envelope {
                id: MessageId([n; 16]),
                room,
                sender: SenderId([0; 32]),
                created_at_ms: 0,
                kind: Kind::Text,
                nonce: [0; 24],
                signature: mesh::Signature([0; 64]),
                body: vec![n],
            };
            store
                .insert_blocking(&envelope, 0, |message| {
                    let _ = live_tx.send(RoomEvent::Message(Arc::clone(message)));
                })
                .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 60 {
            match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Outbound::Frame(ServerFrame::Message(message)))) => {
                    seen.push(message.envelope.body[0])
                }
                Ok(Some(Outbound::Frame(ServerFrame::Presence { .. }))) => {}
                _ => panic!("expected a message"),
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
