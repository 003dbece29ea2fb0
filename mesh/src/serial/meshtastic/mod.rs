//! Meshtastic: a stock Meshtastic node (Heltec, LilyGO T-Beam and the like, running the
//! ordinary Meshtastic firmware) as FieldMesh's radio, over USB serial or TCP (port 4403)
//! alike. The host side of the node's API, without I/O:
//!
//! - the handshake: wake bytes, `want_config_id` with a random number, then the node's own
//!   number, node list, configuration and channels, ended by `config_complete_id` with the
//!   same number (asked again when it does not come, and after the node restarts);
//! - a heartbeat every few minutes, since a node drops a silent host after about 15;
//! - FieldMesh's sealed radio frames as `PRIVATE_APP` packets to everyone on one channel the
//!   operator chooses. The node floods them by itself (its hop limit), so FieldMesh does not
//!   flood on top on this link ([`Framing::floods`]), but keeps its confirmations and retries;
//! - plain Meshtastic text on that channel, reported as [`DeviceEvent::Text`].
//!
//! Meshtastic's channel encryption is AES-CTR with a shared key and no authentication: anyone
//! with the channel key reads and forges its packets. FieldMesh's frames keep their own room
//! sealing and network tag inside; plain text carries neither.

pub mod device;
pub mod proto;
pub mod stream;

use std::collections::BTreeMap;
use std::fmt;

use prost::Message as _;

use super::{DeviceEvent, Framing, Protocol, Readiness, TextError};
pub use stream::{StreamDecoder, MAX_PROTO_BYTES, START1, START2};

/// The broadcast address: a packet to everyone.
pub const BROADCAST: u32 = 0xFFFF_FFFF;
/// Port number of plain text messages.
pub const TEXT_MESSAGE_APP: i32 = 1;
/// Port number of node information (a `User`).
pub const NODEINFO_APP: i32 = 4;
/// Port number of an application's own bytes: FieldMesh's frames.
pub const PRIVATE_APP: i32 = 256;
/// `want_config_id` values with a meaning of their own ("configuration only", "nodes only").
pub const SPECIAL_CONFIG_IDS: [u32; 2] = [69_420, 69_421];
/// Largest FieldMesh frame carried in one packet: a LoRa packet is 255 bytes, Meshtastic's
/// header takes 16 and the `Data` around the payload up to 8, and a channel with public-key
/// encryption 12 more; this leaves a margin below the smallest (219).
pub const MAX_FRAME_BYTES: usize = 216;
/// Longest plain text FieldMesh sends to a Meshtastic channel, in bytes.
pub const MAX_TEXT_BYTES: usize = 200;
/// How long the handshake may take before it is asked again.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// How often a heartbeat goes to the node.
pub const HEARTBEAT_EVERY_MS: u64 = 5 * 60 * 1000;
/// The hop limit when the node does not say its own.
pub const DEFAULT_HOP_LIMIT: u32 = 3;
/// Meshtastic's bitrate at its default preset (long range, fast: SF11 at 250 kHz, 4/5),
/// for FieldMesh's pacing.
pub const LONG_FAST_BITRATE_BPS: u32 = 1070;
/// Most nodes of the node list kept (a node may report hundreds).
const MAX_NODES: usize = 512;
/// Most channels a node has.
const MAX_CHANNELS: usize = 8;
/// Most events held until the owner takes them.
const MAX_EVENTS: usize = 64;
/// Wake bytes sent before the handshake.
const WAKE_BYTES: usize = 32;

/// Which channel of the node carries FieldMesh's frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ChannelChoice {
    /// The node's primary channel.
    #[default]
    Primary,
    /// The channel at this index (0 to 7).
    Index(u32),
    /// The channel with this name (case does not matter).
    Name(String),
}

impl std::str::FromStr for ChannelChoice {
    type Err = std::convert::Infallible;

    /// A number 0 to 7 is an index, "primary" or nothing the primary, anything else a name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Ok(match text.parse::<u32>() {
            Ok(index) if (index as usize) < MAX_CHANNELS => ChannelChoice::Index(index),
            _ if text.is_empty() || text.eq_ignore_ascii_case("primary") => ChannelChoice::Primary,
            _ => ChannelChoice::Name(text.to_string()),
        })
    }
}

impl fmt::Display for ChannelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelChoice::Primary => f.write_str("primary"),
            ChannelChoice::Index(index) => write!(f, "{index}"),
            ChannelChoice::Name(name) => f.write_str(name),
        }
    }
}

/// A channel of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Its index.
    pub index: u32,
    /// Its name (the primary's may be empty: then it is the preset's, "LongFast").
    pub name: String,
    /// The primary channel.
    pub primary: bool,
}

impl ChannelInfo {
    /// Its name as people read it.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            "LongFast"
        } else {
            &self.name
        }
    }
}

/// A node of the node list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Its long name (empty until known).
    pub name: String,
    /// Hops away when last heard (0: heard directly).
    pub hops_away: Option<u32>,
}

/// Where the handshake is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handshake {
    /// Not started (the port is not open).
    Idle,
    /// Asked; waiting for the node's answer since then (`None`: the first tick sets it).
    Asked { since_ms: Option<u64> },
    /// Done.
    Complete,
}

/// The host side of a Meshtastic node's API (see the module documentation).
pub struct Meshtastic {
    channel: ChannelChoice,
    decoder: StreamDecoder,
    rng: u64,
    nonce: u32,
    handshake: Handshake,
    /// The handshake is asked again at the next tick (the node restarted).
    ask_again: bool,
    my_node: Option<u32>,
    my_name: String,
    firmware: String,
    hop_limit: u32,
    channels: Vec<ChannelInfo>,
    nodes: BTreeMap<u32, Peer>,
    events: Vec<DeviceEvent>,
    last_sent_ms: u64,
    now_ms: u64,
    dropped: u64,
}

impl Meshtastic {
    /// The host side for FieldMesh frames on `channel`; `seed` makes the handshake numbers
    /// and packet ids (pass something random).
    pub fn new(channel: ChannelChoice, seed: u64) -> Self {
        Self {
            channel,
            decoder: StreamDecoder::new(),
            rng: seed | 1,
            nonce: 0,
            handshake: Handshake::Idle,
            ask_again: false,
            my_node: None,
            my_name: String::new(),
            firmware: String::new(),
            hop_limit: DEFAULT_HOP_LIMIT,
            channels: Vec::new(),
            nodes: BTreeMap::new(),
            events: Vec::new(),
            last_sent_ms: 0,
            now_ms: 0,
            dropped: 0,
        }
    }

    fn random(&mut self) -> u32 {
        // xorshift64*: ids and handshake numbers need to differ, not to be secret.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// The handshake's opening: wake bytes, then `want_config_id` with a new number.
    fn ask(&mut self) -> Vec<Vec<u8>> {
        self.nonce = loop {
            let nonce = self.random();
            if nonce != 0 && !SPECIAL_CONFIG_IDS.contains(&nonce) {
                break nonce;
            }
        };
        self.handshake = Handshake::Asked { since_ms: None };
        self.ask_again = false;
        self.my_node = None;
        self.my_name.clear();
        self.channels.clear();
        self.nodes.clear();
        vec![
            vec![START2; WAKE_BYTES],
            to_radio(proto::to_radio::Payload::WantConfigId(self.nonce)),
        ]
    }

    /// The channel chosen for FieldMesh, once the node has said its channels.
    pub fn channel(&self) -> Option<&ChannelInfo> {
        self.channels.iter().find(|c| match &self.channel {
            ChannelChoice::Primary => c.primary,
            ChannelChoice::Index(index) => c.index == *index,
            ChannelChoice::Name(name) => c.label().eq_ignore_ascii_case(name),
        })
    }

    /// The node's number, once known.
    pub fn my_node(&self) -> Option<u32> {
        self.my_node
    }

    /// The node list (without the node itself).
    pub fn nodes(&self) -> &BTreeMap<u32, Peer> {
        &self.nodes
    }

    /// The name of node `num` as people read it: its long name, else its id (`!a1b2c3d4`).
    pub fn name_of(&self, num: u32) -> String {
        match self.nodes.get(&num) {
            Some(peer) if !peer.name.is_empty() => peer.name.clone(),
            _ => node_id(num),
        }
    }

    /// A packet to everyone on FieldMesh's channel; empty until the handshake is done.
    fn packet(&mut self, portnum: i32, payload: &[u8]) -> Vec<u8> {
        let Some(channel) = self.channel().map(|c| c.index) else {
            return Vec::new();
        };
        if self.handshake != Handshake::Complete {
            return Vec::new();
        }
        let id = loop {
            let id = self.random();
            if id != 0 {
                break id;
            }
        };
        self.last_sent_ms = self.now_ms;
        to_radio(proto::to_radio::Payload::Packet(proto::MeshPacket {
            to: BROADCAST,
            channel,
            id,
            hop_limit: self.hop_limit,
            hop_start: self.hop_limit,
            payload: Some(proto::mesh_packet::Payload::Decoded(proto::Data {
                portnum,
                payload: payload.to_vec(),
                want_response: false,
            })),
            ..Default::default()
        }))
    }

    /// Plain Meshtastic text to FieldMesh's channel, or why not.
    fn text(&mut self, text: &str) -> Result<Vec<u8>, TextError> {
        if text.trim().is_empty() {
            return Err(TextError::Empty);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(TextError::TooLong(text.len()));
        }
        let bytes = self.packet(TEXT_MESSAGE_APP, text.as_bytes());
        if bytes.is_empty() {
            return Err(TextError::NotReady);
        }
        Ok(bytes)
    }

    fn event(&mut self, event: DeviceEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(event);
    }

    fn learn(&mut self, num: u32, peer: impl FnOnce(&mut Peer)) {
        if Some(num) == self.my_node || num == BROADCAST || num == 0 {
            return;
        }
        if !self.nodes.contains_key(&num) && self.nodes.len() >= MAX_NODES {
            return;
        }
        peer(self.nodes.entry(num).or_default());
    }

    /// One message from the node; returns the FieldMesh frame it carries, if any.
    fn on_from_radio(&mut self, message: proto::FromRadio) -> Option<Vec<u8>> {
        use proto::from_radio::Payload;
        match message.payload? {
            Payload::MyInfo(info) => self.my_node = Some(info.my_node_num),
            Payload::NodeInfo(info) => {
                let name = info.user.map(|u| clean(&u.long_name)).unwrap_or_default();
                if Some(info.num) == self.my_node {
                    self.my_name = name;
                    return None;
                }
                let hops = info.hops_away;
                self.learn(info.num, |peer| {
                    if !name.is_empty() {
                        peer.name = name;
                    }
                    peer.hops_away = hops.or(peer.hops_away);
                });
            }
            Payload::Channel(channel) => {
                let index = u32::try_from(channel.index).ok()?;
                // Roles: 0 disabled, 1 primary, 2 secondary.
                if index as usize >= MAX_CHANNELS || channel.role == 0 {
                    self.channels.retain(|c| c.index != index);
                    return None;
                }
                let info = ChannelInfo {
                    index,
                    name: clean(&channel.settings.map(|s| s.name).unwrap_or_default()),
                    primary: channel.role == 1,
                };
                self.channels.retain(|c| c.index != index);
                self.channels.push(info);
                self.channels.sort_by_key(|c| c.index);
            }
            Payload::Config(proto::Config {
                section: Some(proto::config::Section::Lora(lora)),
            }) if (1..=7).contains(&lora.hop_limit) => self.hop_limit = lora.hop_limit,
            Payload::Metadata(metadata) => self.firmware = clean(&metadata.firmware_version),
            Payload::ConfigCompleteId(id) if id == self.nonce && id != 0 => {
                self.handshake = Handshake::Complete;
                self.last_sent_ms = self.now_ms;
            }
            Payload::Rebooted(_) => self.ask_again = true,
            Payload::QueueStatus(status) if status.res != 0 => {
                self.event(DeviceEvent::Problem(format!(
                    "the Meshtastic node refused a packet (error {}; {} of {} places free)",
                    status.res, status.free, status.maxlen
                )));
            }
            Payload::Packet(packet) => return self.on_packet(packet),
            _ => {}
        }
        None
    }

    fn on_packet(&mut self, packet: proto::MeshPacket) -> Option<Vec<u8>> {
        let Some(proto::mesh_packet::Payload::Decoded(data)) = packet.payload else {
            // Sealed with a key the node does not hold.
            return None;
        };
        let hops = (packet.hop_start >= packet.hop_limit && packet.hop_start > 0)
            .then(|| packet.hop_start - packet.hop_limit);
        self.learn(packet.from, |peer| peer.hops_away = hops.or(peer.hops_away));
        if Some(packet.from) == self.my_node || self.handshake != Handshake::Complete {
            return None;
        }
        let ours = self.channel().map(|c| c.index) == Some(packet.channel);
        match data.portnum {
            PRIVATE_APP if ours && packet.to == BROADCAST => {
                if data.payload.len() > crate::radio::MAX_FRAME_BYTES || data.payload.is_empty() {
                    self.dropped += 1;
                    return None;
                }
                return Some(data.payload);
            }
            TEXT_MESSAGE_APP if ours && packet.to == BROADCAST => {
                let Ok(text) = String::from_utf8(data.payload) else {
                    self.dropped += 1;
                    return None;
                };
                let channel = self.channel().map(|c| c.label().to_string());
                self.event(DeviceEvent::Text(ChannelText {
                    channel: channel.unwrap_or_default(),
                    from: packet.from,
                    name: self.name_of(packet.from),
                    hops,
                    id: packet.id,
                    text,
                }));
            }
            NODEINFO_APP => {
                if let Ok(user) = proto::User::decode(data.payload.as_slice()) {
                    let name = clean(&user.long_name);
                    self.learn(packet.from, |peer| {
                        if !name.is_empty() {
                            peer.name = name;
                        }
                    });
                }
            }
            _ => {}
        }
        None
    }

    fn describe(&self, channel: &ChannelInfo) -> String {
        let mut about = self.my_node.map(node_id).unwrap_or_default();
        if !self.firmware.is_empty() {
            about.push_str(&format!(", firmware {}", self.firmware));
        }
        let me = if self.my_name.is_empty() {
            about
        } else {
            format!("{:?} ({about})", self.my_name)
        };
        let direct = self
            .nodes
            .values()
            .filter(|p| p.hops_away == Some(0))
            .count();
        format!(
            "Meshtastic node {me}, channel {} (#{}), {} other node{} known, {direct} heard \
             directly",
            channel.label(),
            channel.index,
            self.nodes.len(),
            if self.nodes.len() == 1 { "" } else { "s" },
        )
    }
}

/// How the room of a Meshtastic channel is named: this, then the channel's name.
pub const MESHTASTIC_ROOM_PREFIX: &str = "Meshtastic: ";
/// The Meshtastic channel a room name stands for ("Meshtastic: FieldMesh" → "FieldMesh"),
/// in any case.
pub fn meshtastic_channel_of(room_name: &str) -> Option<&str> {
    let prefix = MESHTASTIC_ROOM_PREFIX.len();
    let head = room_name.get(..prefix)?;
    let channel = room_name[prefix..].trim();
    (head.eq_ignore_ascii_case(MESHTASTIC_ROOM_PREFIX) && !channel.is_empty()).then_some(channel)
}

/// How many bytes of a message written into a Meshtastic channel's room go out (`author:
/// text`), against [`MAX_TEXT_BYTES`].
pub fn text_bytes(author: &str, text: &str) -> usize {
    author.len() + 2 + text.trim().len()
}

/// A node number as Meshtastic writes it: `!a1b2c3d4`.
pub fn node_id(num: u32) -> String {
    format!("!{num:08x}")
}

/// A name from the node, without control characters and at most 40 characters.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(40).collect()
}

fn to_radio(payload: proto::to_radio::Payload) -> Vec<u8> {
    stream::frame(
        &proto::ToRadio {
            payload: Some(payload),
        }
        .encode_to_vec(),
    )
}

/// Plain text heard on FieldMesh's Meshtastic channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelText {
    /// The channel's name.
    pub channel: String,
    /// The sending node's number.
    pub from: u32,
    /// The sending node's name, or its id.
    pub name: String,
    /// Hops it came, when the packet says.
    pub hops: Option<u32>,
    /// The packet's id (with `from`, unique).
    pub id: u32,
    /// The text.
    pub text: String,
}

impl Framing for Meshtastic {
    fn protocol(&self) -> Protocol {
        Protocol::Meshtastic
    }

    fn configure(&mut self) -> Vec<Vec<u8>> {
        self.decoder = StreamDecoder::new();
        self.ask()
    }

    fn encode(&mut self, frame: &[u8]) -> Vec<u8> {
        if frame.is_empty() || frame.len() > MAX_FRAME_BYTES {
            return Vec::new();
        }
        self.packet(PRIVATE_APP, frame)
    }

    fn decode(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.decoder.push(bytes);
        let mut frames = Vec::new();
        while let Some(body) = self.decoder.next_frame() {
            match proto::FromRadio::decode(body.as_slice()) {
                Ok(message) => frames.extend(self.on_from_radio(message)),
                Err(_) => self.decoder.reject(body),
            }
        }
        frames
    }

    fn max_frame(&self) -> usize {
        MAX_FRAME_BYTES
    }

    fn dropped(&self) -> u64 {
        self.dropped + self.decoder.dropped()
    }

    fn readiness(&self) -> Readiness {
        match self.handshake {
            Handshake::Idle | Handshake::Asked { .. } => Readiness::Waiting,
            Handshake::Complete => match self.channel() {
                Some(channel) => Readiness::Ready(Some(self.describe(channel))),
                None => Readiness::Refused(format!(
                    "the Meshtastic node has no channel {}{}; add it on the node (for example \
                     `meshtastic --ch-add FieldMesh`) or name one of its channels with \
                     --meshtastic-channel",
                    match &self.channel {
                        ChannelChoice::Name(name) => format!("named {name:?}"),
                        other => format!("{other}"),
                    },
                    if self.channels.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it has {})",
                            self.channels
                                .iter()
                                .map(|c| format!("#{} {}", c.index, c.label()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                )),
            },
        }
    }

    fn tick(&mut self, now_ms: u64) -> Vec<Vec<u8>> {
        self.now_ms = now_ms;
        if self.ask_again {
            self.event(DeviceEvent::Problem(
                "the Meshtastic node restarted; connecting again".into(),
            ));
            return self.ask();
        }
        match self.handshake {
            Handshake::Idle => Vec::new(),
            Handshake::Asked { since_ms: None } => {
                self.handshake = Handshake::Asked {
                    since_ms: Some(now_ms),
                };
                Vec::new()
            }
            Handshake::Asked {
                since_ms: Some(since),
            } if now_ms.saturating_sub(since) >= HANDSHAKE_TIMEOUT_MS => {
                self.event(DeviceEvent::Problem(format!(
                    "the Meshtastic node did not finish its handshake in {} s; asking again \
                     (is it a Meshtastic node, with serial or TCP access on?)",
                    HANDSHAKE_TIMEOUT_MS / 1000
                )));
                let bytes = self.ask();
                self.handshake = Handshake::Asked {
                    since_ms: Some(now_ms),
                };
                bytes
            }
            Handshake::Asked { .. } => Vec::new(),
            Handshake::Complete
                if now_ms.saturating_sub(self.last_sent_ms) >= HEARTBEAT_EVERY_MS =>
            {
                self.last_sent_ms = now_ms;
                let nonce = self.random();
                vec![to_radio(proto::to_radio::Payload::Heartbeat(
                    proto::Heartbeat { nonce },
                ))]
            }
            Handshake::Complete => Vec::new(),
        }
    }

    fn floods(&self) -> bool {
        false
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        std::mem::take(&mut self.events)
    }

    fn encode_text(&mut self, text: &str) -> Result<Vec<u8>, TextError> {
        self.text(text)
    }

    fn text_channel(&self) -> Option<String> {
        self.channel().map(|c| c.label().to_string())
    }
}

#[cfg(test)]
mod tests;
