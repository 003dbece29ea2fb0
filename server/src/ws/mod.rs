//! The WebSocket endpoint: publish messages, follow rooms, presence and typing.
//!
//! Every frame is checked against the protocol limits before it is decoded. A bad frame gets an
//! [`ServerFrame::Error`] and the connection stays open; only frames above
//! [`TRANSPORT_MAX_BYTES`] make the WebSocket layer itself close the connection.
//!
//! Publishes that arrive together are stored in one transaction (one disk sync), which is what
//! lets a phone's outbox of a thousand messages drain in about a second.

mod follow;
mod outbound;
mod publish;
mod unlock;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mesh::{
    ClientFrame, DecodeError, ErrorCode, MessageId, RoomId, ServerFrame, MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
};

use crate::access::RetryAfter;
use crate::hub::ConnectionId;
use crate::radio::Lending;
use crate::AppState;
use follow::Following;
use outbound::Outbound;

/// Frames larger than this close the connection at the transport level (close code 1009);
/// frames between [`MAX_FRAME_BYTES`] and this are refused with an error frame.
pub const TRANSPORT_MAX_BYTES: usize = 64 * 1024;
/// Read and write buffer of each WebSocket.
const SOCKET_BUFFER_BYTES: usize = 16 * 1024;
/// Rooms one connection may follow at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 64;
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
/// Refused with 429 and `Retry-After` when one address opens connections too fast. Behind a
/// trusted proxy the address is the client's, as the proxy names it.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    let address = state.access.request_address(peer.ip(), &headers);
    if let Err(retry) = state.access.limits.connect(address) {
        tracing::info!(%address, "too many connections from one address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.seconds().to_string())],
            format!("Too many connections; try again in {} s.", retry.seconds()),
        )
            .into_response();
    }
    ws.max_message_size(TRANSPORT_MAX_BYTES)
        .max_frame_size(TRANSPORT_MAX_BYTES)
        // A phone's frames are small: buffers of 16 KiB (not 128 KiB each way) keep 200
        // connections' memory down; a larger frame still fits, the buffer grows for it.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| serve_connection(socket, state, address))
}

async fn serve_connection(socket: WebSocket, state: AppState, address: IpAddr) {
    let (sink, stream) = socket.split();
    let (tx, rx) = Outbound::new(outbound::BUDGET_BYTES);
    let writer = tokio::spawn(outbound::write(sink, rx));

    let mut shutdown = state.shutdown.clone();
    let code_required = state.access.code.is_some();
    let mut challenge = [0u8; 32];
    if getrandom::fill(&mut challenge).is_err() {
        tracing::error!("no randomness for a connection challenge; closing it");
        return;
    }
    let mut session = Session {
        id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        challenge,
        proven: std::collections::HashSet::new(),
        state,
        tx,
        rooms: HashMap::new(),
        address,
        unlocked: !code_required,
        publish_paused_until: None,
        lending: Lending::default(),
        published: publish::Published::default(),
        limits: crate::access::ConnectionLimits::default(),
    };
    session
        .send(ServerFrame::Welcome {
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_body_bytes: MAX_BODY_BYTES as u32,
            code_required,
            store_id: session.state.store.id,
            challenge: session.challenge,
        })
        .await;
    // After the welcome, so a page from before files ignores it as an unknown frame.
    session
        .send(ServerFrame::FileLimits {
            max_file_bytes: session.state.max_file_bytes,
        })
        .await;
    // The radio's state (who lends it, from where) is for devices that may read: those that
    // entered the join code, or everyone when there is none.
    let mut radio = session.state.radio.status();
    let mut radio_alive = true;
    if session.unlocked {
        let status = radio.borrow_and_update().clone();
        session.send(ServerFrame::Radio(status)).await;
        session.send(session.state.radio.camp()).await;
    }
    let mut federation = session.state.federation.as_ref().map(|f| f.status());
    if session.unlocked {
        if let Some(federation) = &mut federation {
            let status = federation.borrow_and_update().clone();
            session.send(ServerFrame::Federation(status)).await;
        }
    }
    tracing::debug!(connection = session.id, "client connected");

    let mut stream = stream.ready_chunks(READ_BATCH);
    let mut heartbeat = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(items) => {
                    last_heard = Instant::now();
                    let was_unlocked = session.unlocked;
                    if session.handle_batch(items).await.is_break() {
                        break;
                    }
                    if session.unlocked && !was_unlocked {
                        let status = radio.borrow_and_update().clone();
                        session.send(ServerFrame::Radio(status)).await;
                        session.send(session.state.radio.camp()).await;
                        if let Some(federation) = &mut federation {
                            let status = federation.borrow_and_update().clone();
                            session.send(ServerFrame::Federation(status)).await;
                        }
                    }
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::debug!(connection = session.id, "client silent too long; closing");
                    break;
                }
                session.tx.ping();
            }
            _ = session.tx.stuck() => {
                tracing::debug!(connection = session.id, "client stopped reading; closing");
                break;
            }
            Some(frame) = session.lending.next_frame() => {
                session.send(ServerFrame::RadioFrame { frame }).await;
            }
            changed = radio.changed(), if radio_alive => {
                if changed.is_ok() {
                    let status = radio.borrow_and_update().clone();
                    if session.unlocked {
                        session.send(ServerFrame::Radio(status)).await;
                    }
                } else {
                    radio_alive = false;
                }
            }
            Some(status) = federation_changed(&mut federation) => {
                if session.unlocked {
                    session.send(ServerFrame::Federation(status)).await;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(session);
    let _ = writer.await;
}

/// The federation's next status; never ready without federation (or once it is gone).
async fn federation_changed(
    federation: &mut Option<tokio::sync::watch::Receiver<mesh::FederationStatus>>,
) -> Option<mesh::FederationStatus> {
    let Some(receiver) = federation else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        *federation = None;
        return std::future::pending().await;
    }
    Some(receiver.borrow_and_update().clone())
}

/// One connected client: where its frames go and which rooms it follows.
struct Session {
    id: ConnectionId,
    /// Fresh for this connection: room proofs and presence cards are made for it.
    challenge: [u8; 32],
    /// Rooms this connection proved it holds the key of.
    proven: std::collections::HashSet<RoomId>,
    state: AppState,
    tx: Outbound,
    rooms: HashMap<RoomId, Following>,
    /// The client's network address, for rate limits.
    address: IpAddr,
    /// The device may read and send (no join code is set, or it unlocked).
    unlocked: bool,
    /// After a publish was refused for a reason that passes (rate limit, storage failure),
    /// every later publish is refused until then too, so messages are never stored out of the
    /// order they were sent in.
    publish_paused_until: Option<Instant>,
    /// This page's radio, when it lends it to the server.
    lending: Lending,
    /// Messages this connection published lately: their radio forms may follow.
    published: publish::Published,
    /// This connection's allowances for room requests and lent radio frames.
    limits: crate::access::ConnectionLimits,
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
        // A client that went away or stopped reading is closed by the read loop, which
        // watches for it.
        let _ = self.tx.frame(&frame).await;
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
            let frame = match frame {
                Some(frame) if !self.unlocked && !frame.allowed_before_unlock() => {
                    self.publish(std::mem::take(&mut publishes)).await;
                    self.locked(&frame).await;
                    continue;
                }
                frame => frame,
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

    /// Refuses a frame that needs the join code first.
    async fn locked(&self, frame: &ClientFrame) {
        let id = match frame {
            ClientFrame::Publish(envelope) | ClientFrame::RadioHeard(envelope) => Some(envelope.id),
            _ => None,
        };
        let detail = "this FieldMesh asks for a join code first".to_string();
        self.refuse(ErrorCode::CodeRequired, detail, id).await;
    }

    /// Does what one frame asks (the join code gate is already passed), within this
    /// connection's allowances.
    async fn handle(&mut self, frame: ClientFrame) {
        let allowance = match &frame {
            ClientFrame::Join { .. }
            | ClientFrame::Watch { .. }
            | ClientFrame::Leave { .. }
            | ClientFrame::History { .. }
            | ClientFrame::LendRadio { .. }
            | ClientFrame::FileTicket { .. }
            | ClientFrame::StopLending => Some(("room requests", self.limits.room_request())),
            ClientFrame::RadioFrame { .. } => Some(("radio frames", self.limits.lent_frame())),
            _ => None,
        };
        if let Some((what, Err(retry))) = allowance {
            return self.rate_limited(what, retry, None).await;
        }
        match frame {
            ClientFrame::Unlock { code, device } => self.unlock(code, device).await,
            ClientFrame::Authenticate { token } => self.authenticate(token).await,
            ClientFrame::Join {
                room,
                after_seq,
                member,
                proof,
            } => self.join(room, after_seq, member, proof).await,
            ClientFrame::Watch {
                room,
                read_seq,
                member,
                proof,
            } => self.watch(room, read_seq, member, proof).await,
            ClientFrame::Leave { room } => self.leave(room),
            ClientFrame::FileTicket { room, proof } => self.file_ticket(room, proof).await,
            ClientFrame::Publish(envelope) => self.publish(vec![envelope]).await,
            ClientFrame::History {
                room,
                before_seq,
                limit,
                proof,
            } => self.history(room, before_seq, limit, proof).await,
            ClientFrame::Typing { room } => self.typing(room),
            ClientFrame::Ping { nonce } => self.send(ServerFrame::Pong { nonce }).await,
            ClientFrame::SendRadio { room, id, payload } => {
                self.send_radio(room, id, payload, false).await
            }
            ClientFrame::SendUrgentRadio { room, id, payload } => {
                self.send_radio(room, id, payload, true).await
            }
            ClientFrame::RadioHeard(envelope) => self.radio_heard(envelope).await,
            ClientFrame::LendRadio { label } => {
                let answer = self.lending.start(&self.state.radio, &label, self.address);
                self.send(answer).await;
            }
            ClientFrame::StopLending => {
                if let Some(answer) = self.lending.stop() {
                    self.send(answer).await;
                }
            }
            ClientFrame::Signal { room, to, sealed } => self.signal(room, to, sealed).await,
            ClientFrame::RadioFrame { frame } => {
                if let Err(detail) = self.lending.heard(frame) {
                    self.refuse(ErrorCode::LimitReached, detail, None).await;
                }
            }
            ClientFrame::SendReceipt { room, id, payload } => {
                // Best effort and unanswered: only for a room this connection follows, within
                // its allowance.
                if self.rooms.contains_key(&room) && self.limits.receipt().is_ok() {
                    if let Err(error) = self.state.radio.send_receipt(room, id, payload) {
                        tracing::debug!(%error, "a radio receipt was not sent");
                    }
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
