//! The radio bridge: carries messages between this server and other camps over a LoRa radio
//! on a serial port.
//!
//! Phones publish a message as usual and hand the server its radio form too
//! ([`mesh::ClientFrame::SendRadio`]; only they hold the room key). The bridge gives it to the
//! radio driver ([`mesh::radio::Driver`]: the relay node with dedupe, hop limit, managed
//! flooding and retries; airtime pacing; resends with growing pauses and a give-up after a
//! day), whose frames the [`link`] writes in the chosen [`mesh::serial::Framing`], or a
//! browser lending its radio carries. Frames heard go back through the
//! node; each whole new message is stored as a [`mesh::Kind::Radio`] envelope and handed to
//! the room's followers, exactly as a published one. When a neighbour is heard relaying or
//! acknowledging a message, its room's followers get [`mesh::ServerFrame::Relayed`].

pub mod channel;
mod lend;
pub mod link;
pub mod network;

pub use lend::{lease, Lease, Lending};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::RateLimiter;
use mesh::crypto::RoomKey;
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::radio::{
    Driver, DriverConfig, Event, MessageKey, NetworkKey, NodeConfig, OwnMessage, RadioMessage,
    MAX_PAYLOAD_BYTES,
};
use mesh::serial::{ChannelChoice, Protocol, RnodeSettings, SerialSettings};
use mesh::{MessageId, RadioState, RadioStatus, RoomId};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::hub::Hub;
use crate::store::Store;

/// Messages from the radio for a room this server does not know yet, kept until a phone
/// joins it. Bounded; the oldest go first.
const MAX_UNROUTED: usize = 256;
/// How long an unroutable message is kept.
const UNROUTED_FOR: Duration = Duration::from_secs(6 * 60 * 60);

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
    /// The Meshtastic channel carrying FieldMesh's frames (`meshtastic`).
    pub channel: ChannelChoice,
    /// Largest radio frame to send.
    pub frame_bytes: usize,
    /// Hop limit of messages sent from here.
    pub hop_limit: u8,
    /// The radio's over-the-air bitrate, for timing.
    pub bitrate_bps: u32,
}

/// What the bridge needs beside a serial radio's settings.
#[derive(Clone, Debug, Default)]
pub struct RadioOptions {
    /// The operator lets browsers lend their radio (`--radio-lend`).
    pub lend_allowed: bool,
    /// The mesh network key (see [`network`]); `None` when this server carries no radio
    /// frames.
    pub network: Option<NetworkKey>,
    /// This camp's name, for receipts.
    pub camp: String,
}

/// Radio messages stored per room (by radio tag): 300 at once (a camp's backlog after an
/// outage), then one a second. Far more than a LoRa channel carries to one room; it bounds
/// what a holder of the network key can pour into a room's history.
const HEARD_PER_ROOM: (u32, Duration) = (300, Duration::from_secs(1));

enum Command {
    Send {
        room: RoomId,
        id: MessageId,
        message: RadioMessage,
        urgent: bool,
    },
    Known(RoomId),
    /// A message came over IP (federation): neighbours need not catch this camp up with it.
    HeldElsewhere {
        key: MessageKey,
        sent_at_s: u32,
    },
    /// A phone's receipt for a message heard: sent once, not kept across restarts.
    Receipt {
        room: RoomId,
        message: RadioMessage,
    },
    /// A browser lends its radio: this is the link now.
    Attach(channel::ChannelLink),
}

/// Handle to the radio bridge. Cheap to clone. The bridge runs even without a radio: a
/// browser may lend one ([`Radio::lend`]), and radio forms wait in the store until then.
#[derive(Clone)]
pub struct Radio {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<RadioStatus>,
    /// The lease of the browser lending its radio, if one does.
    lender: Arc<Mutex<Option<u64>>>,
    /// The operator lets browsers lend their radio (`--radio-lend`).
    lend_allowed: bool,
    /// A serial radio is configured (then nobody may lend one).
    serial: bool,
    /// Largest frame the radio sends (messages must fit in 16 of them).
    frame_bytes: usize,
    /// The camp's name and mesh network key, for devices that may read.
    camp: mesh::ServerFrame,
}

pub(crate) fn no_radio() -> RadioStatus {
    RadioStatus {
        state: RadioState::Off,
        detail: "no radio; a browser with a USB radio can lend one".into(),
        meshtastic_channel: None,
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
    pub fn start(
        config: Option<RadioConfig>,
        options: RadioOptions,
        store: Store,
        hub: Hub,
    ) -> Self {
        let network = options.network.clone().unwrap_or_default();
        let initial = match &config {
            Some(config) => RadioStatus {
                state: RadioState::Connecting,
                detail: format!("opening {}", config.path.display()),
                meshtastic_channel: None,
            },
            None => no_radio(),
        };
        let (status_tx, status) = watch::channel(initial);
        let (commands, commands_rx) = mpsc::channel(256);
        let mut node_config = NodeConfig {
            network,
            ..NodeConfig::default()
        };
        let mut link = None;
        if let Some(config) = &config {
            let mut seed = [0u8; 8];
            let _ = getrandom::fill(&mut seed);
            let framing = config.protocol.framing(&SerialSettings {
                rnode: config.rnode,
                channel: config.channel.clone(),
                seed: u64::from_le_bytes(seed),
            });
            // Where the radio network floods every packet by itself (Meshtastic), FieldMesh
            // sends with hop limit 0: its neighbours acknowledge and do not relay.
            let hop_limit = if framing.floods() {
                config.hop_limit.min(mesh::radio::MAX_HOP_LIMIT)
            } else {
                0
            };
            node_config = NodeConfig {
                frame_bytes: config.frame_bytes.min(framing.max_frame()),
                hop_limit,
                bitrate_bps: config.bitrate_bps,
                ..node_config
            };
            link = Some(link::open(
                link::LinkConfig {
                    path: config.path.clone(),
                    baud: config.baud,
                },
                framing,
            ));
        }
        let frame_bytes = node_config.frame_bytes;
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let driver_config = DriverConfig {
            node: node_config,
            ..DriverConfig::default()
        };
        let bridge = Bridge {
            driver: Driver::new(driver_config, u64::from_le_bytes(seed)),
            store,
            hub,
            serial: config.is_some(),
            link,
            status: status_tx,
            rooms: HashMap::new(),
            unrouted: VecDeque::new(),
            heard_per_room: RateLimiter::keyed(crate::access::quota(HEARD_PER_ROOM)),
            link_detail: String::new(),
            channel_room: None,
            channel_name: None,
            texts_waiting: VecDeque::new(),
        };
        tokio::spawn(bridge.run(commands_rx));
        Self {
            commands,
            status,
            lender: Arc::new(Mutex::new(None)),
            lend_allowed: options.lend_allowed,
            serial: config.is_some(),
            frame_bytes,
            camp: mesh::ServerFrame::Camp {
                name: options.camp,
                network_key: options.network.map(|key| key.to_bytes()),
            },
        }
    }

    /// The camp's name and mesh network key, for a device that may read.
    pub fn camp(&self) -> mesh::ServerFrame {
        self.camp.clone()
    }

    /// The radio's state, to watch for changes.
    pub fn status(&self) -> watch::Receiver<RadioStatus> {
        self.status.clone()
    }

    /// Sends the radio form of the published message `id` in `room` (an `urgent` one ahead of
    /// everything waiting for the radio).
    pub fn send(
        &self,
        room: RoomId,
        id: MessageId,
        payload: Vec<u8>,
        urgent: bool,
    ) -> Result<(), SendError> {
        let len = payload.len();
        let message = RadioMessage {
            key: MessageKey::of(room, id),
            payload,
        };
        if len > MAX_PAYLOAD_BYTES || !message.fits(self.frame_bytes) {
            return Err(SendError::TooLarge(len));
        }
        self.commands
            .try_send(Command::Send {
                room,
                id,
                message,
                urgent,
            })
            .map_err(|_| SendError::Busy)
    }

    /// Sends a phone's receipt for a message heard over the radio (see
    /// [`RadioMessage::seal_receipt`]). Best effort: dropped when the bridge is busy.
    pub fn send_receipt(
        &self,
        room: RoomId,
        id: MessageId,
        payload: Vec<u8>,
    ) -> Result<(), SendError> {
        let message = RadioMessage {
            key: MessageKey::of(room, id),
            payload,
        };
        if message.payload.len() > MAX_PAYLOAD_BYTES || !message.fits(self.frame_bytes) {
            return Err(SendError::TooLarge(message.payload.len()));
        }
        self.commands
            .try_send(Command::Receipt { room, message })
            .map_err(|_| SendError::Busy)
    }

    /// Tells the bridge a room exists here (a phone joined it), so radio messages for it can
    /// be stored.
    pub fn known_room(&self, room: RoomId) {
        let _ = self.commands.try_send(Command::Known(room));
    }

    /// The message `id` of `room`, written at `created_at_ms`, came over IP (federation): the
    /// radio's summaries count it as held, so no neighbour spends airtime catching this camp
    /// up with it. Best effort: dropped when the bridge is busy.
    pub fn held_elsewhere(&self, room: RoomId, id: MessageId, created_at_ms: u64) {
        let sent_at_s = u32::try_from(created_at_ms / 1000).unwrap_or(u32::MAX);
        let key = MessageKey::of(room, id);
        let _ = self
            .commands
            .try_send(Command::HeldElsewhere { key, sent_at_s });
    }
}

struct Bridge {
    driver: Driver,
    store: Store,
    hub: Hub,
    /// The radio is on a serial port (else a browser may lend one).
    serial: bool,
    /// The radio link: the serial port's, or a lending browser's.
    link: Option<channel::ChannelLink>,
    status: watch::Sender<RadioStatus>,
    /// Rooms by their 4-byte radio tag.
    rooms: HashMap<[u8; 4], Vec<RoomId>>,
    unrouted: VecDeque<(Instant, RadioMessage)>,
    /// How many radio messages each room (by tag) may still store now.
    heard_per_room: governor::DefaultKeyedRateLimiter<[u8; 4]>,
    /// What the link said when it came up, for the status line.
    link_detail: String,
    /// The room of the radio's Meshtastic channel, once the node named it: plain text heard
    /// there is stored in it, and what phones write in it goes out as plain text.
    channel_room: Option<(RoomKey, RoomId)>,
    /// That channel's name, for phones.
    channel_name: Option<String>,
    /// Plain texts waiting for the radio (at most [`channel::TEXT_QUEUE`]).
    texts_waiting: VecDeque<String>,
}

/// How a Meshtastic node's text is signed in its room: the node's name and how many hops it
/// came, within the radio's name limit.
fn meshtastic_author(name: &str, hops: Option<u32>) -> String {
    let suffix = match hops {
        Some(1) => " · 1 hop".to_string(),
        Some(hops) => format!(" · {hops} hops"),
        None => String::new(),
    };
    let room = mesh::radio::MAX_RADIO_NAME_BYTES.saturating_sub(suffix.len());
    let mut cut = name.len().min(room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

/// What a phone wrote in the Meshtastic channel's room, as plain Meshtastic text: its name
/// and text, at most [`mesh::serial::meshtastic::MAX_TEXT_BYTES`] (cut with "…").
fn meshtastic_text(author: &str, text: &str) -> String {
    let whole = format!("{author}: {text}");
    let max = mesh::serial::meshtastic::MAX_TEXT_BYTES;
    if whole.len() <= max {
        return whole;
    }
    let mut cut = max - '…'.len_utf8();
    while !whole.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &whole[..cut])
}

/// The next event of the link; never, when there is none.
async fn next_event(link: &mut Option<channel::ChannelLink>) -> Option<LinkEvent> {
    match link {
        Some(link) => link.next_event().await,
        None => std::future::pending().await,
    }
}

impl Bridge {
    fn learn(&mut self, room: RoomId) -> bool {
        let tag = MessageKey::room_tag(room);
        let rooms = self.rooms.entry(tag).or_default();
        if rooms.contains(&room) {
            return false;
        }
        rooms.push(room);
        true
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
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
                    // Those older than a day are given up at the first poll.
                    let own = OwnMessage {
                        room: p.room,
                        id: p.id,
                        message: RadioMessage {
                            key: MessageKey::of(p.room, p.id),
                            payload: p.payload,
                        },
                        queued_at_ms: p.queued_at_ms,
                        // Not kept across a restart: it goes in its turn.
                        urgent: false,
                    };
                    self.queue(own).await;
                }
            }
            Err(error) => tracing::error!(%error, "could not read the radio outbox"),
        }
        loop {
            // The driver's clock is the wall clock (radio messages are kept across restarts).
            let wake = self.driver.next_wakeup().map(|at| {
                Instant::now() + Duration::from_millis(at.saturating_sub(crate::now_ms()))
            });
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send { room, message, .. }) if self.is_channel_room(room) => {
                        self.send_text(&message);
                    }
                    Some(Command::Receipt { room, .. }) if self.is_channel_room(room) => {}
                    Some(Command::Send { room, id, message, urgent }) => {
                        let own = OwnMessage { room, id, message, queued_at_ms: crate::now_ms(), urgent };
                        if self.queue(own.clone()).await {
                            self.keep(own).await;
                        }
                    }
                    Some(Command::Receipt { room, message }) => {
                        let own = OwnMessage {
                            room,
                            id: message.envelope_id(),
                            message,
                            queued_at_ms: crate::now_ms(),
                            urgent: false,
                        };
                        self.queue(own).await;
                    }
                    Some(Command::HeldElsewhere { key, sent_at_s }) => {
                        self.driver.held_elsewhere(key, sent_at_s);
                    }
                    Some(Command::Known(room)) => {
                        if self.learn(room) {
                            self.route_unrouted(room).await;
                        }
                    }
                    Some(Command::Attach(link)) => {
                        self.driver.link_down();
                        self.link = Some(link);
                    }
                    None => return,
                },
                event = next_event(&mut self.link) => self.on_link(event).await,
                _ = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await },
                    if wake.is_some() => {
                    let events = self.driver.poll(crate::now_ms());
                    self.act(events).await;
                }
            }
        }
    }

    /// What the radio link says.
    async fn on_link(&mut self, event: Option<LinkEvent>) {
        match event {
            Some(LinkEvent::Up(detail)) => {
                self.flush_texts();
                self.link_detail = detail.clone();
                self.status.send_replace(RadioStatus {
                    state: RadioState::Ready,
                    detail,
                    meshtastic_channel: self.channel_name.clone(),
                });
                let events = self.driver.link_up(crate::now_ms());
                self.act(events).await;
            }
            Some(LinkEvent::Frame(frame)) => match self.driver.receive(crate::now_ms(), &frame) {
                Ok(events) => self.act(events).await,
                Err(mesh::radio::RadioError::ClockSkew { minutes }) => self.clock_skew(minutes),
                Err(error) => tracing::debug!(%error, "radio frame dropped"),
            },
            Some(LinkEvent::Noise(count)) => tracing::debug!(count, "radio noise skipped"),
            Some(LinkEvent::Channel(name)) => self.channel_named(&name),
            Some(LinkEvent::Text(text)) => self.heard_text(text).await,
            Some(LinkEvent::Down(reason)) => {
                self.driver.link_down();
                let status = if self.serial {
                    RadioStatus {
                        state: RadioState::Unplugged,
                        detail: reason,
                        meshtastic_channel: None,
                    }
                } else {
                    no_radio()
                };
                self.status.send_replace(status);
            }
            None => {
                // The lending browser went away (or the serial task ended).
                tracing::info!("the radio link closed");
                self.link = None;
                self.driver.link_down();
                self.status.send_replace(no_radio());
            }
        }
    }

    fn is_channel_room(&self, room: RoomId) -> bool {
        self.channel_room.as_ref().is_some_and(|(_, r)| *r == room)
    }

    /// The node named its channel: its room is known here from now on, and texts written
    /// before go out.
    fn channel_named(&mut self, name: &str) {
        let key = RoomKey::meshtastic_channel(name);
        let room = key.room_id();
        self.learn(room);
        self.channel_room = Some((key, room));
        self.channel_name = Some(name.to_string());
        self.flush_texts();
    }

    /// Plain text heard on the Meshtastic channel: stored in the channel's room as a radio
    /// message signed with the node's name and its hops (never as verified).
    async fn heard_text(&mut self, text: mesh::serial::ChannelText) {
        if self.channel_room.is_none() {
            self.channel_named(&text.channel);
        }
        let Some((key, room)) = self.channel_room.clone() else {
            return;
        };
        // The same packet heard twice is one message.
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(b"fieldmesh/meshtastic-text/v1")
            .chain_update(text.from.to_le_bytes())
            .chain_update(text.id.to_le_bytes())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        let sent_at_s = (crate::now_ms() / 1000) as u32;
        let author = meshtastic_author(&text.name, text.hops);
        let message = RadioMessage::seal(&key, MessageId(id), sent_at_s, &author, &text.text);
        self.store_message(room, &message).await;
    }

    /// A phone's message in the Meshtastic channel's room: its name and text go out as plain
    /// Meshtastic text (the room's key is public, like the channel's text). Never for any
    /// other room: FieldMesh's own rooms only travel sealed.
    fn send_text(&mut self, message: &RadioMessage) {
        let Some((key, _)) = &self.channel_room else {
            return;
        };
        let Ok(opened) = message.open(key) else {
            tracing::warn!("a message for the Meshtastic channel did not open with its key");
            return;
        };
        if opened.receipt_for.is_some() || opened.text.trim().is_empty() {
            return;
        }
        if self.texts_waiting.len() >= channel::TEXT_QUEUE {
            tracing::warn!("plain texts wait for the radio; the oldest is dropped");
            self.texts_waiting.pop_front();
        }
        self.texts_waiting
            .push_back(meshtastic_text(&opened.author, &opened.text));
        self.flush_texts();
    }

    /// Hands waiting plain texts to the link while it takes them.
    fn flush_texts(&mut self) {
        let Some(link) = &self.link else { return };
        while let Some(text) = self.texts_waiting.pop_front() {
            if !link.send_text(text.clone()) {
                self.texts_waiting.push_front(text);
                return;
            }
        }
    }

    /// A camp of this mesh is heard with a clock far from ours: say so on the radio line,
    /// since until one of the clocks is set right the two camps do not hear each other.
    fn clock_skew(&mut self, minutes: i64) {
        let detail = format!(
            "{}; a camp's radio is heard with a clock {} minutes {} this one: until the \
             clocks agree (within 10 minutes) its messages are refused",
            self.link_detail,
            minutes.unsigned_abs(),
            if minutes < 0 { "behind" } else { "ahead of" }
        );
        tracing::warn!(
            minutes,
            "radio frames from a clock far from ours are refused"
        );
        self.status.send_if_modified(|status| {
            let changed = status.state == RadioState::Ready && status.detail != detail;
            if changed {
                status.detail = detail;
            }
            changed
        });
    }

    /// Hands a message of this server to the driver; `false` when it carries it already (a
    /// replayed outbox) or it can never go out.
    async fn queue(&mut self, own: OwnMessage) -> bool {
        self.learn(own.room);
        let id = own.id;
        match self.driver.queue(crate::now_ms(), own) {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(%error, "message not sent over the radio");
                self.forget_pending(id).await;
                false
            }
        }
    }

    /// Keeps a phone's new radio message in the store until a neighbour confirms it.
    async fn keep(&self, own: OwnMessage) {
        let pending = crate::store::RadioPending {
            room: own.room,
            id: own.id,
            payload: own.message.payload,
            queued_at_ms: own.queued_at_ms,
        };
        if let Err(error) = self
            .store
            .run(move |s| s.radio_enqueue_blocking(&pending))
            .await
        {
            tracing::error!(%error, "could not keep a radio message in the store");
        }
    }

    async fn act(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Transmit(frame) => self.transmit(frame),
                Event::Heard(message) => self.deliver(message).await,
                Event::Relayed(own) => {
                    tracing::debug!(id = ?own.id, "relayed by radio");
                    self.hub.relayed(own.room, own.id);
                    self.forget_pending(own.id).await;
                }
                Event::GaveUp(own) => {
                    tracing::warn!(id = ?own.id, "no camp confirmed a radio message in a day; giving up");
                    self.forget_pending(own.id).await;
                }
            }
        }
    }

    /// Hands a frame to the radio link. The link drops frames while the radio is away; the
    /// driver retries what mattered.
    fn transmit(&mut self, frame: Vec<u8>) {
        if let Some(link) = &mut self.link {
            link.transmit(&frame);
        }
    }

    async fn forget_pending(&self, id: MessageId) {
        if let Err(error) = self.store.run(move |s| s.radio_done_blocking(id)).await {
            tracing::error!(%error, "could not update the radio outbox");
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
        if self.heard_per_room.check_key(&message.key.room).is_err() {
            tracing::warn!("a room gets more radio messages than a radio carries; dropped one");
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meshtastic_author_keeps_its_hops_within_the_radio_name_limit() {
        assert_eq!(
            meshtastic_author("Ridge relay", Some(2)),
            "Ridge relay · 2 hops"
        );
        assert_eq!(meshtastic_author("Clinic", Some(1)), "Clinic · 1 hop");
        assert_eq!(meshtastic_author("!0badcafe", None), "!0badcafe");
        let long = meshtastic_author("Ämtliche Wasserausgabe Nordbrücke", Some(3));
        assert!(long.len() <= mesh::radio::MAX_RADIO_NAME_BYTES, "{long}");
        assert!(long.ends_with(" · 3 hops"), "{long}");
    }

    #[test]
    fn plain_text_for_a_meshtastic_channel_is_cut_to_200_bytes() {
        assert_eq!(meshtastic_text("Ana", "On our way"), "Ana: On our way");
        let long = meshtastic_text("Ana", &"ü".repeat(150));
        assert!(long.len() <= 200 && long.ends_with('…'), "{}", long.len());
    }
}
