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
/// Messages waiting for the radio while it is unplugged.
const MAX_WAITING: usize = 1024;

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
            waiting: VecDeque::new(),
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

struct Bridge {
    node: Node,
    store: Store,
    hub: Hub,
    frames_out: mpsc::Sender<Vec<u8>>,
    started: Instant,
    /// Rooms by their 4-byte radio tag.
    rooms: HashMap<[u8; 4], Vec<RoomId>>,
    /// Messages sent from here, to tell their room when they are relayed.
    origins: HashMap<MessageKey, (RoomId, MessageId)>,
    unrouted: VecDeque<(Instant, RadioMessage)>,
    waiting: VecDeque<RadioMessage>,
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
        let mut status = self.status.clone();
        loop {
            let wake = self
                .node
                .next_wakeup()
                .map(|at| self.started + Duration::from_millis(at));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send { room, id, message }) => self.send(room, id, message),
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
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let ready = status.borrow_and_update().state == RadioState::Ready;
                    if ready {
                        while let Some(message) = self.waiting.pop_front() {
                            self.start(message);
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, room: RoomId, id: MessageId, message: RadioMessage) {
        self.learn(room);
        self.origins.insert(message.key, (room, id));
        if self.status.borrow().state == RadioState::Ready {
            self.start(message);
        } else {
            if self.waiting.len() >= MAX_WAITING {
                self.waiting.pop_front();
            }
            if !self.waiting.iter().any(|m| m.key == message.key) {
                self.waiting.push_back(message);
            }
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
                    if let Some((room, id)) = self.origins.remove(&key) {
                        tracing::debug!(?id, "relayed by radio");
                        self.hub.relayed(room, id);
                    }
                }
                Action::Unconfirmed(key) => {
                    self.origins.remove(&key);
                    tracing::warn!("no neighbour confirmed a radio message after every retry");
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
