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
use std::sync::{Arc, Mutex};
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
/// Frames waiting for airtime, at most.
const MAX_AIR_QUEUE: usize = 128;
/// Pause between frames handed to the radio, beyond their airtime.
const AIR_GAP: Duration = Duration::from_millis(30);
/// …until it has waited this long in all.
const GIVE_UP_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// How often messages past that day are dropped, also those that never went out.
const EXPIRE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Whether a radio message queued at `queued_at_ms` has waited too long to matter now.
fn expired(queued_at_ms: u64) -> bool {
    crate::now_ms().saturating_sub(queued_at_ms) > GIVE_UP_AFTER_MS
}

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

/// Handle to the radio bridge. Cheap to clone. The bridge runs even without a radio: a
/// browser may lend one ([`Radio::lend`]), and radio forms wait in the store until then.
#[derive(Clone)]
pub struct Radio {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<RadioStatus>,
    status_tx: Arc<watch::Sender<RadioStatus>>,
    /// The browser lending its radio, if one does.
    lender: Arc<Mutex<Option<Lender>>>,
    /// Frames heard, for the bridge (from the serial link or a lender).
    frames_in: mpsc::Sender<Vec<u8>>,
    /// A serial radio is configured (then nobody may lend one).
    serial: bool,
    /// Largest frame the radio sends (messages must fit in 16 of them).
    frame_bytes: usize,
}

struct Lender {
    lease: u64,
    down: mpsc::Sender<Vec<u8>>,
}

/// A browser's radio, lent to this server while the lease lives: frames to transmit come out
/// of [`Lease::down`], frames heard go in with [`Lease::heard`]. Dropping it (the page
/// closed, or stopped lending) frees the radio link for another browser.
pub struct Lease {
    id: u64,
    radio: Radio,
    /// Frames the browser's radio is to transmit.
    pub down: mpsc::Receiver<Vec<u8>>,
}

impl Lease {
    /// Hands the bridge a frame the lent radio heard. `false` when it is over the size limit
    /// or the bridge is busy (the frame is dropped, as a radio would).
    pub fn heard(&self, frame: Vec<u8>) -> bool {
        frame.len() <= mesh::radio::MAX_FRAME_BYTES && self.radio.frames_in.try_send(frame).is_ok()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut lender = self.radio.lender.lock().unwrap_or_else(|p| p.into_inner());
        if lender.as_ref().is_some_and(|l| l.lease == self.id) {
            *lender = None;
            tracing::info!("the lent radio went away");
            self.radio.status_tx.send_replace(no_radio());
        }
    }
}

fn no_radio() -> RadioStatus {
    RadioStatus {
        state: RadioState::Off,
        detail: "no radio; a browser with a USB radio can lend one".into(),
    }
}

/// Why a radio send was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The payload does not fit in the most frames a message may have.
    #[error("the message is too long for the radio ({0} bytes in its radio form)")]
    TooLarge(usize),
    /// The bridge is busy; the client may retry.
    #[error("the radio queue is full")]
    Busy,
}

impl Radio {
    /// Starts the bridge, and the serial link when a radio is configured.
    pub fn start(config: Option<RadioConfig>, store: Store, hub: Hub) -> Self {
        let initial = match &config {
            Some(config) => RadioStatus {
                state: RadioState::Connecting,
                detail: format!("opening {}", config.path.display()),
            },
            None => no_radio(),
        };
        let (status_tx, status) = watch::channel(initial);
        let status_tx = Arc::new(status_tx);
        let (commands, commands_rx) = mpsc::channel(256);
        let (frames_in, frames_in_rx) = mpsc::channel(256);
        let mut node_config = NodeConfig::default();
        let mut serial_out = None;
        if let Some(config) = &config {
            let (frames_out, frames_out_rx) = mpsc::channel(256);
            serial_out = Some(frames_out);
            let framing = framing::framing(config.protocol, config.rnode);
            node_config = NodeConfig {
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
                Arc::clone(&status_tx),
                frames_in.clone(),
                frames_out_rx,
            ));
        }
        let frame_bytes = node_config.frame_bytes;
        let lender = Arc::new(Mutex::new(None));
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let bridge = Bridge {
            node: Node::new(node_config, u64::from_le_bytes(seed)),
            store,
            hub,
            serial_out,
            lender: Arc::clone(&lender),
            started: Instant::now(),
            rooms: HashMap::new(),
            origins: HashMap::new(),
            unrouted: VecDeque::new(),
            resend: VecDeque::new(),
            air_queue: VecDeque::new(),
            air_free_at: Instant::now(),
            status: status.clone(),
        };
        tokio::spawn(bridge.run(commands_rx, frames_in_rx));
        Self {
            commands,
            status,
            status_tx,
            lender,
            frames_in,
            serial: config.is_some(),
            frame_bytes,
        }
    }

    /// Takes a browser's radio as this server's radio link, unless the server has its own or
    /// another browser lends one already.
    pub fn lend(&self, label: &str) -> Result<Lease, String> {
        static NEXT_LEASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        if self.serial {
            return Err("this server has its own radio; yours is not needed".into());
        }
        let mut lender = self.lender.lock().unwrap_or_else(|p| p.into_inner());
        if lender.is_some() {
            return Err("another browser lends its radio to this server already".into());
        }
        let id = NEXT_LEASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (down_tx, down) = mpsc::channel(256);
        *lender = Some(Lender {
            lease: id,
            down: down_tx,
        });
        drop(lender);
        tracing::info!(%label, "a browser lends its radio");
        self.status_tx.send_replace(RadioStatus {
            state: RadioState::Ready,
            detail: format!("radio lent by {label}"),
        });
        Ok(Lease {
            id,
            radio: self.clone(),
            down,
        })
    }

    /// The radio's state, to watch for changes.
    pub fn status(&self) -> watch::Receiver<RadioStatus> {
        self.status.clone()
    }

    /// Sends the radio form of the published message `id` in `room`.
    pub fn send(&self, room: RoomId, id: MessageId, payload: Vec<u8>) -> Result<(), SendError> {
        let len = payload.len();
        let message = RadioMessage {
            key: MessageKey::of(room, id),
            payload,
        };
        if len > MAX_PAYLOAD_BYTES || !message.fits(self.frame_bytes) {
            return Err(SendError::TooLarge(len));
        }
        self.commands
            .try_send(Command::Send { room, id, message })
            .map_err(|_| SendError::Busy)
    }

    /// Tells the bridge a room exists here (a phone joined it), so radio messages for it can
    /// be stored.
    pub fn known_room(&self, room: RoomId) {
        let _ = self.commands.try_send(Command::Known(room));
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
    /// Frames to transmit go to the serial link when there is one…
    serial_out: Option<mpsc::Sender<Vec<u8>>>,
    /// …or else to the browser lending its radio.
    lender: Arc<Mutex<Option<Lender>>>,
    started: Instant,
    /// Rooms by their 4-byte radio tag.
    rooms: HashMap<[u8; 4], Vec<RoomId>>,
    /// Messages sent from here, until confirmed: their room, id and radio form, and when
    /// they were queued.
    origins: HashMap<MessageKey, Origin>,
    unrouted: VecDeque<(Instant, RadioMessage)>,
    /// Unconfirmed messages to send again, and when.
    resend: VecDeque<(Instant, MessageKey)>,
    /// Frames for the radio, paced by their airtime.
    air_queue: VecDeque<Vec<u8>>,
    /// When the radio is done with the frames handed to it.
    air_free_at: Instant,
    status: watch::Receiver<RadioStatus>,
}

impl Bridge {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn learn(&mut self, room: RoomId) -> bool {
        let tag = MessageKey::room_tag(room);
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
                    if expired(p.queued_at_ms) {
                        // A day without any radio: too old to matter to anyone now.
                        self.forget_pending(p.id).await;
                        continue;
                    }
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
        let mut expire = tokio::time::interval(EXPIRE_EVERY);
        loop {
            let node_wake = self
                .node
                .next_wakeup()
                .map(|at| self.started + Duration::from_millis(at));
            let resend_wake = self.resend.front().map(|(at, _)| *at);
            let air_wake = (!self.air_queue.is_empty()).then_some(self.air_free_at);
            let wake = [node_wake, resend_wake, air_wake]
                .into_iter()
                .flatten()
                .min();
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
                _ = expire.tick() => self.expire_origins().await,
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
            queued_at_ms: crate::now_ms(),
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
                    if self.air_queue.len() >= MAX_AIR_QUEUE {
                        // More than the radio can send for a long while: the node retries.
                        self.air_queue.pop_front();
                    }
                    self.air_queue.push_back(frame);
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
                    if expired(origin.queued_at_ms) {
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
        self.pump();
    }

    /// Hands the radio the queued frames it can send now: one frame's airtime apart, so its
    /// own small buffer never overflows and retries are not lost in it.
    fn pump(&mut self) {
        let now = Instant::now();
        while self.air_free_at <= now {
            let Some(frame) = self.air_queue.pop_front() else {
                return;
            };
            let airtime = Duration::from_millis(self.node.config().airtime_ms(frame.len()));
            self.air_free_at = now.max(self.air_free_at) + airtime + AIR_GAP;
            // The link drops frames while the radio is away; the node retries them.
            if let Some(serial) = &self.serial_out {
                let _ = serial.try_send(frame);
            } else if let Some(lender) = self
                .lender
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                let _ = lender.down.try_send(frame);
            }
        }
    }

    /// Drops the messages of this server that waited a day, sent or not (with no radio, or
    /// none lent, they never go out and would otherwise pile up).
    async fn expire_origins(&mut self) {
        let old: Vec<MessageKey> = self
            .origins
            .iter()
            .filter(|(_, o)| expired(o.queued_at_ms))
            .map(|(key, _)| *key)
            .collect();
        for key in old {
            if let Some(origin) = self.origins.remove(&key) {
                self.forget_pending(origin.id).await;
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
        let received_at_ms = crate::now_ms();
        let stored = self
            .store
            .run(move |s| s.insert_blocking(&envelope, received_at_ms, |m| hub.publish(m)))
            .await;
        if let Err(error) = stored {
            tracing::error!(%error, "storing a radio message failed");
        }
    }
}
