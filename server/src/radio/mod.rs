//! The radio bridge: carries messages between this server and other camps over a LoRa radio
//! on a serial port.
//!
//! Phones publish a message as usual and hand the server its radio form too
//! ([`mesh::ClientFrame::SendRadio`]; only they hold the room key). The bridge gives it to the
//! relay node ([`mesh::radio::Node`]: dedupe, hop limit, managed flooding, retries), whose
//! frames the [`link`] writes in the chosen [`framing`]. Frames heard go back through the
//! node; each whole new message is stored as a [`mesh::Kind::Radio`] envelope and handed to
//! the room's followers, exactly as a published one. When a neighbour is heard relaying or
//! acknowledging a message, its room's followers get [`mesh::ServerFrame::Relayed`].

pub mod framing;
pub mod link;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use mesh::crypto::RoomKey;
use mesh::radio::{Action, MessageKey, Node, NodeConfig, RadioMessage, MAX_PAYLOAD_BYTES};
use mesh::{MessageId, RadioState, RadioStatus, RoomId};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::hub::Hub;
use crate::store::Store;
use framing::{Protocol, RnodeSettings};

/// Messages from the radio for a room this server does not know yet, kept until a phone
/// joins it. Bounded; the oldest go first.
const MAX_UNROUTED: usize = 256;
/// How long an unroutable message is kept.
const UNROUTED_FOR: Duration = Duration::from_secs(6 * 60 * 60);
/// A message no neighbour confirmed is sent again after this long…
const RESEND_AFTER: Duration = Duration::from_secs(120);
/// …until it has waited this long in all.
const GIVE_UP_AFTER_MS: u64 = 24 * 60 * 60 * 1000;

/// Everything the bridge needs to know.
#[derive(Clone, Debug)]
pub struct RadioConfig {
    /// Serial port.
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Serial protocol.
    pub protocol: Protocol,
    /// RNode settings for `kiss`.
    pub rnode: Option<RnodeSettings>,
    /// Largest radio frame to send.
    pub frame_bytes: usize,
    /// Hop limit of messages sent from here.
    pub hop_limit: u8,
    /// The radio's over-the-air bitrate, for timing.
    pub bitrate_bps: u32,
}

enum Command {
    Send {
        room: RoomId,
        id: MessageId,
        message: RadioMessage,
    },
    Known(RoomId),
}

/// Handle to the radio bridge. Cheap to clone. Without a radio every call is a no-op.
#[derive(Clone)]
pub struct Radio {
    commands: Option<mpsc::Sender<Command>>,
    status: watch::Receiver<RadioStatus>,
    /// Keeps the status channel open when there is no radio task to own its sender.
    _idle: Option<std::sync::Arc<watch::Sender<RadioStatus>>>,
}

/// Why a radio send was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The payload is over the radio limit.
    #[error("the radio form is {0} bytes; the limit is {MAX_PAYLOAD_BYTES}")]
    TooLarge(usize),
    /// The bridge is busy; the client may retry.
    #[error("the radio queue is full")]
    Busy,
}

impl Radio {
    /// No radio.
    pub fn none() -> Self {
        let (sender, status) = watch::channel(RadioStatus::off());
        Self {
            commands: None,
            status,
            _idle: Some(std::sync::Arc::new(sender)),
        }
    }

    /// Starts the bridge and its serial link.
    pub fn start(config: RadioConfig, store: Store, hub: Hub) -> Self {
        let (status_tx, status) = watch::channel(RadioStatus {
            state: RadioState::Connecting,
            detail: format!("opening {}", config.path.display()),
        });
        let (commands, commands_rx) = mpsc::channel(256);
        let (frames_in_tx, frames_in) = mpsc::channel(256);
        let (frames_out, frames_out_rx) = mpsc::channel(256);
        let framing = framing::framing(config.protocol, config.rnode);
        let node_config = NodeConfig {
            frame_bytes: config.frame_bytes.min(framing.max_frame()),
            hop_limit: config.hop_limit.min(mesh::radio::MAX_HOP_LIMIT),
            bitrate_bps: config.bitrate_bps,
            ..NodeConfig::default()
        };
        tokio::spawn(link::run(
            link::LinkConfig {
                path: config.path.clone(),
                baud: config.baud,
            },
            framing,
            status_tx,
            frames_in_tx,
            frames_out_rx,
        ));
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let bridge = Bridge {
            node: Node::new(node_config, u64::from_le_bytes(seed)),
            store,
            hub,
            frames_out,
            started: Instant::now(),
            rooms: HashMap::new(),
            origins: HashMap::new(),
            unrouted: VecDeque::new(),
            resend: VecDeque::new(),
            status: status.clone(),
        };
        tokio::spawn(bridge.run(commands_rx, frames_in));
        Self {
            commands: Some(commands),
            status,
            _idle: None,
        }
    }

    /// The radio's state, to watch for changes.
    pub fn status(&self) -> watch::Receiver<RadioStatus> {
        self.status.clone()
    }

    /// Whether a radio is configured.
    pub fn enabled(&self) -> bool {
        self.commands.is_some()
    }

    /// Sends the radio form of the published message `id` in `room`.
    pub fn send(&self, room: RoomId, id: MessageId, payload: Vec<u8>) -> Result<(), SendError> {
        let Some(commands) = &self.commands else {
            return Ok(());
        };
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(SendError::TooLarge(payload.len()));
        }
        let message = RadioMessage {
            key: MessageKey::of(room, id),
            payload,
        };
        commands
            .try_send(Command::Send { room, id, message })
            .map_err(|_| SendError::Busy)
    }

    /// Tells the bridge a room exists here (a phone joined it), so radio messages for it can
    /// be stored.
    pub fn known_room(&self, room: RoomId) {
        if let Some(commands) = &self.commands {
            let _ = commands.try_send(Command::Known(room));
        }
    }
}

struct Origin {
    room: RoomId,
    id: MessageId,
    message: RadioMessage,
    queued_at_ms: u64,
}

struct Bridge {
    node: Node,
    store: Store,
    hub: Hub,
    frames_out: mpsc::Sender<Vec<u8>>,
    started: Instant,
    /// Rooms by their 4-byte radio tag.
    rooms: HashMap<[u8; 4], Vec<RoomId>>,
    /// Messages sent from here, until confirmed: their room, id and radio form, and when
    /// they were queued.
    origins: HashMap<MessageKey, Origin>,
    unrouted: VecDeque<(Instant, RadioMessage)>,
    /// Unconfirmed messages to send again, and when.
    resend: VecDeque<(Instant, MessageKey)>,
    status: watch::Receiver<RadioStatus>,
}

impl Bridge {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn learn(&mut self, room: RoomId) -> bool {
        let tag = MessageKey::of(room, MessageId([0; 16])).room;
        let rooms = self.rooms.entry(tag).or_default();
        if rooms.contains(&room) {
            return false;
        }
        rooms.push(room);
        true
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut frames_in: mpsc::Receiver<Vec<u8>>,
    ) {
        self.learn(RoomKey::emergency().room_id());
        match self.store.run(|s| s.rooms_blocking()).await {
            Ok(rooms) => {
                for room in rooms {
                    self.learn(room);
                }
            }
            Err(error) => tracing::error!(%error, "could not list the stored rooms"),
        }
        match self.store.run(|s| s.radio_pending_blocking()).await {
            Ok(pending) => {
                if !pending.is_empty() {
                    tracing::info!(
                        count = pending.len(),
                        "radio messages from before the restart wait for the radio"
                    );
                }
                for p in pending {
                    let message = RadioMessage {
                        key: MessageKey::of(p.room, p.id),
                        payload: p.payload,
                    };
                    self.queue(p.room, p.id, message, p.queued_at_ms);
                }
            }
            Err(error) => tracing::error!(%error, "could not read the radio outbox"),
        }
        let mut status = self.status.clone();
        loop {
            let node_wake = self
                .node
                .next_wakeup()
                .map(|at| self.started + Duration::from_millis(at));
            let resend_wake = self.resend.front().map(|(at, _)| *at);
            let wake = match (node_wake, resend_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send { room, id, message }) => self.send(room, id, message).await,
                    Some(Command::Known(room)) => {
                        if self.learn(room) {
                            self.route_unrouted(room).await;
                        }
                    }
                    None => return,
                },
                frame = frames_in.recv() => match frame {
                    Some(frame) => {
                        let now = self.now_ms();
                        match self.node.receive(now, &frame) {
                            Ok(actions) => self.act(actions).await,
                            Err(error) => tracing::debug!(%error, "radio frame dropped"),
                        }
                    }
                    None => return,
                },
                _ = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await },
                    if wake.is_some() => {
                    let now = self.now_ms();
                    let actions = self.node.poll(now);
                    self.act(actions).await;
                    self.resend_due();
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let ready = status.borrow_and_update().state == RadioState::Ready;
                    if ready {
                        self.start_unsent();
                    }
                }
            }
        }
    }

    /// A phone's new radio message: kept in the store until confirmed, then queued.
    async fn send(&mut self, room: RoomId, id: MessageId, message: RadioMessage) {
        if self.origins.contains_key(&message.key) || self.node.has_seen(message.key) {
            return; // a replayed outbox: already on its way
        }
        let pending = crate::store::RadioPending {
            room,
            id,
            payload: message.payload.clone(),
            queued_at_ms: crate::ws::now_ms(),
        };
        let queued_at_ms = pending.queued_at_ms;
        if let Err(error) = self
            .store
            .run(move |s| s.radio_enqueue_blocking(&pending))
            .await
        {
            tracing::error!(%error, "could not keep a radio message in the store");
        }
        self.queue(room, id, message, queued_at_ms);
    }

    fn queue(&mut self, room: RoomId, id: MessageId, message: RadioMessage, queued_at_ms: u64) {
        self.learn(room);
        self.origins.insert(
            message.key,
            Origin {
                room,
                id,
                message: message.clone(),
                queued_at_ms,
            },
        );
        // Otherwise it goes out when the radio is back (see `start_unsent`).
        if self.status.borrow().state == RadioState::Ready {
            self.start(message);
        }
    }

    /// Starts, oldest first, every message of this server the relay does not carry yet: those
    /// queued while the radio was away.
    fn start_unsent(&mut self) {
        let mut unsent: Vec<(u64, RadioMessage)> = self
            .origins
            .values()
            .filter(|o| !self.node.has_seen(o.message.key))
            .filter(|o| !self.resend.iter().any(|(_, key)| *key == o.message.key))
            .map(|o| (o.queued_at_ms, o.message.clone()))
            .collect();
        unsent.sort_by_key(|(at, _)| *at);
        for (_, message) in unsent {
            self.start(message);
        }
    }

    fn start(&mut self, message: RadioMessage) {
        let now = self.now_ms();
        match self.node.send(now, &message) {
            Ok(true) => tracing::debug!(
                frames = message.frame_count(self.node.config().frame_bytes),
                "radio send"
            ),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "message not sent over the radio"),
        }
    }

    async fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Transmit(frame) => {
                    // The link drops frames while the radio is away; the node retries them.
                    let _ = self.frames_out.try_send(frame);
                }
                Action::Deliver(message) => self.deliver(message).await,
                Action::Confirmed(key) => {
                    if let Some(origin) = self.origins.remove(&key) {
                        tracing::debug!(id = ?origin.id, "relayed by radio");
                        self.hub.relayed(origin.room, origin.id);
                        self.forget_pending(origin.id).await;
                    }
                }
                Action::Unconfirmed(key) => {
                    let Some(origin) = self.origins.get(&key) else {
                        continue;
                    };
                    if crate::ws::now_ms().saturating_sub(origin.queued_at_ms) > GIVE_UP_AFTER_MS {
                        tracing::warn!(id = ?origin.id, "no camp confirmed a radio message in a day; giving up");
                        let id = origin.id;
                        self.origins.remove(&key);
                        self.forget_pending(id).await;
                    } else {
                        tracing::info!(
                            id = ?origin.id,
                            "no neighbour confirmed a radio message; sending it again in {} s",
                            RESEND_AFTER.as_secs()
                        );
                        self.resend.push_back((Instant::now() + RESEND_AFTER, key));
                    }
                }
            }
        }
    }

    async fn forget_pending(&self, id: MessageId) {
        if let Err(error) = self.store.run(move |s| s.radio_done_blocking(id)).await {
            tracing::error!(%error, "could not update the radio outbox");
        }
    }

    /// Sends again the unconfirmed messages whose wait is over.
    fn resend_due(&mut self) {
        let now = Instant::now();
        while self.resend.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, key)) = self.resend.pop_front() else {
                break;
            };
            if let Some(origin) = self.origins.get(&key) {
                let message = origin.message.clone();
                self.node.forget(key);
                if self.status.borrow().state == RadioState::Ready {
                    self.start(message);
                }
            }
        }
    }

    async fn deliver(&mut self, message: RadioMessage) {
        let rooms = self
            .rooms
            .get(&message.key.room)
            .cloned()
            .unwrap_or_default();
        if rooms.is_empty() {
            let now = Instant::now();
            self.unrouted
                .retain(|(at, _)| now.duration_since(*at) < UNROUTED_FOR);
            if self.unrouted.len() >= MAX_UNROUTED {
                self.unrouted.pop_front();
            }
            self.unrouted.push_back((now, message));
            return;
        }
        // Two rooms may share a tag; only readers of the right one can open it, the others
        // hide what they cannot open.
        for room in rooms {
            self.store_message(room, &message).await;
        }
    }

    async fn route_unrouted(&mut self, room: RoomId) {
        let (matching, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unrouted)
            .into_iter()
            .partition(|(_, m)| m.key.is_in(room));
        self.unrouted = rest.into();
        for (_, message) in matching {
            self.store_message(room, &message).await;
        }
    }

    async fn store_message(&self, room: RoomId, message: &RadioMessage) {
        let envelope = message.to_envelope(room);
        let hub = self.hub.clone();
        let received_at_ms = crate::ws::now_ms();
        let stored = self
            .store
            .run(move |s| s.insert_blocking(&envelope, received_at_ms, |m| hub.publish(m)))
            .await;
        if let Err(error) = stored {
            tracing::error!(%error, "storing a radio message failed");
        }
    }
}
