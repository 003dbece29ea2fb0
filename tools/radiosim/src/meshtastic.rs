//! Meshtastic device mode: each node is a stock Meshtastic node. Its host (a FieldMesh server,
//! the official Python client) talks to it over the node's pseudo-terminal or over TCP on
//! 127.0.0.1, with Meshtastic's stream API: the handshake (`want_config_id` answered with the
//! node's number, metadata, node list, configuration and channels, ended by
//! `config_complete_id`), heartbeats, packets both ways and a queue status after each packet.
//! Over the air a packet is Meshtastic's 16-byte header (destination, sender, id, flags with
//! the hop limit and the hop start, channel hash, next hop, relay node) followed by its `Data`
//! protobuf, which the simulator does not encrypt: sizes and flooding are as on a real
//! mesh, the channel key's secrecy is not simulated. Nodes flood as Meshtastic's managed
//! flooding does: a packet heard for the first time is rebroadcast with one hop less after
//! a short random wait, which a client node cancels when it hears another node rebroadcast
//! it first (a router rebroadcasts at once and never cancels; a muted client never
//! rebroadcasts); a node relays packets of channels it does not hold too, since it cannot tell.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh::serial::meshtastic::proto::{self, from_radio, to_radio};
use mesh::serial::meshtastic::{stream, StreamDecoder, BROADCAST};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use crate::topology::{MeshtasticRole, NodeOptions};
use crate::Sim;

/// Bytes of Meshtastic's over-the-air header.
pub const AIR_HEADER_BYTES: usize = 16;
/// Largest LoRa packet.
const MAX_AIR_BYTES: usize = 255;
/// Places in a node's transmit queue, as its queue status reports them.
const QUEUE_PLACES: u32 = 16;
/// Packets a node remembers, for dedupe.
const SEEN_LIMIT: usize = 4096;
/// Firmware version the simulated nodes report.
pub const FIRMWARE: &str = "2.6.11.sim";

/// A node's number from its name (never 0, never the broadcast address).
pub fn node_num(name: &str) -> u32 {
    let mut hash: u32 = 0x811C_9DC5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    match hash {
        0 | 1..=3 | BROADCAST => 0x0101_0101,
        n => n,
    }
}

/// Meshtastic's channel hash: the bytes of the name and of the key, XORed together.
pub fn channel_hash(name: &str, psk: &[u8]) -> u8 {
    let name = if name.is_empty() { "LongFast" } else { name };
    name.bytes()
        .chain(psk.iter().copied())
        .fold(0, |h, b| h ^ b)
}

/// The default channel key (Meshtastic's well-known key number 1).
const DEFAULT_PSK: [u8; 1] = [1];

/// A packet on the air.
#[derive(Clone, Debug, PartialEq)]
pub struct AirPacket {
    /// Destination.
    pub to: u32,
    /// Sender.
    pub from: u32,
    /// Id, unique per sender.
    pub id: u32,
    /// Hops it may still travel.
    pub hop_limit: u8,
    /// Hops it started with.
    pub hop_start: u8,
    /// The channel's hash.
    pub channel_hash: u8,
    /// The last byte of the node that relayed it.
    pub relay_node: u8,
    /// The `Data` protobuf.
    pub data: Vec<u8>,
}

impl AirPacket {
    /// Its bytes on the air.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(AIR_HEADER_BYTES + self.data.len());
        out.extend(self.to.to_le_bytes());
        out.extend(self.from.to_le_bytes());
        out.extend(self.id.to_le_bytes());
        out.push((self.hop_limit & 7) | ((self.hop_start & 7) << 5));
        out.push(self.channel_hash);
        out.push(0);
        out.push(self.relay_node);
        out.extend(&self.data);
        out
    }

    /// Reads bytes heard on the air.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < AIR_HEADER_BYTES || bytes.len() > MAX_AIR_BYTES {
            return None;
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        Some(Self {
            to: word(0),
            from: word(4),
            id: word(8),
            hop_limit: bytes[12] & 7,
            hop_start: bytes[12] >> 5,
            channel_hash: bytes[13],
            relay_node: bytes[15],
            data: bytes[AIR_HEADER_BYTES..].to_vec(),
        })
    }
}

/// Packets (sender, id) heard, and the order they came in, for forgetting the oldest.
type Seen = (HashSet<(u32, u32)>, VecDeque<(u32, u32)>);

/// A simulated Meshtastic node.
pub(crate) struct Device {
    num: u32,
    name: String,
    role: MeshtasticRole,
    hop_limit: u32,
    /// (name, key) by index.
    channels: Vec<(String, Vec<u8>)>,
    /// Names of every node of the topology, by number (as if their node infos were heard).
    names: HashMap<u32, String>,
    /// Nodes heard: hops away and when (Unix seconds).
    heard: Mutex<BTreeMap<u32, (u32, u32)>>,
    seen: Mutex<Seen>,
    /// Rebroadcasts waiting: cancelled when another node is heard rebroadcasting first.
    pending: Mutex<HashMap<(u32, u32), Arc<AtomicBool>>>,
    /// What the node tells its hosts (packets heard); each host forwards it once configured.
    to_hosts: broadcast::Sender<Vec<u8>>,
    next_from_radio_id: AtomicU32,
    next_packet_id: AtomicU32,
}

impl Device {
    pub(crate) fn new(name: &str, options: &NodeOptions, all: &[String]) -> Arc<Self> {
        let channels = options
            .channels
            .iter()
            .map(|c| {
                (
                    if c == "LongFast" {
                        String::new()
                    } else {
                        c.clone()
                    },
                    DEFAULT_PSK.to_vec(),
                )
            })
            .collect();
        let num = node_num(name);
        Arc::new(Self {
            num,
            name: name.to_string(),
            role: options.role,
            hop_limit: options.hop_limit,
            channels,
            names: all.iter().map(|n| (node_num(n), n.clone())).collect(),
            heard: Mutex::new(BTreeMap::new()),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            pending: Mutex::new(HashMap::new()),
            to_hosts: broadcast::channel(256).0,
            next_from_radio_id: AtomicU32::new(1),
            next_packet_id: AtomicU32::new(num.rotate_left(7) | 1),
        })
    }

    /// The node's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Hands the hosts raw bytes.
    pub(crate) fn inject(&self, bytes: &[u8]) {
        let _ = self.to_hosts.send(bytes.to_vec());
    }

    /// A message to the node's hosts, framed.
    fn tell(&self, payload: from_radio::Payload) -> Vec<u8> {
        stream::frame(
            &proto::FromRadio {
                id: self.next_from_radio_id.fetch_add(1, Ordering::Relaxed),
                payload: Some(payload),
            }
            .encode_to_vec(),
        )
    }

    fn user(&self, num: u32, name: &str) -> proto::User {
        proto::User {
            id: mesh::serial::meshtastic::node_id(num),
            long_name: name.to_string(),
            short_name: name.chars().take(4).collect(),
            hw_model: 0,
            role: 0,
        }
    }

    /// The node's answer to `want_config_id`.
    fn config(&self, nonce: u32) -> Vec<u8> {
        use from_radio::Payload as P;
        let mut out = self.tell(P::MyInfo(proto::MyNodeInfo {
            my_node_num: self.num,
        }));
        out.extend(self.tell(P::Metadata(proto::DeviceMetadata {
            firmware_version: FIRMWARE.into(),
            role: self.role as i32,
        })));
        out.extend(self.tell(P::NodeInfo(proto::NodeInfo {
            num: self.num,
            user: Some(self.user(self.num, &self.name)),
            ..Default::default()
        })));
        let heard = self.heard.lock().unwrap().clone();
        for (num, (hops, last)) in heard {
            let name = self.names.get(&num).cloned().unwrap_or_default();
            out.extend(self.tell(P::NodeInfo(proto::NodeInfo {
                num,
                user: Some(self.user(num, &name)),
                last_heard: last,
                hops_away: Some(hops),
                ..Default::default()
            })));
        }
        out.extend(self.tell(P::Config(proto::Config {
            section: Some(proto::config::Section::Device(proto::DeviceConfig {
                role: self.role as i32,
            })),
        })));
        out.extend(self.tell(P::Config(proto::Config {
            section: Some(proto::config::Section::Lora(proto::LoRaConfig {
                use_preset: true,
                modem_preset: 0,
                region: 3,
                hop_limit: self.hop_limit,
                tx_enabled: true,
            })),
        })));
        for index in 0..8 {
            let channel = match self.channels.get(index) {
                Some((name, psk)) => proto::Channel {
                    index: index as i32,
                    settings: Some(proto::ChannelSettings {
                        psk: psk.clone(),
                        name: name.clone(),
                    }),
                    role: if index == 0 { 1 } else { 2 },
                },
                None => proto::Channel {
                    index: index as i32,
                    settings: None,
                    role: 0,
                },
            };
            out.extend(self.tell(P::Channel(channel)));
        }
        out.extend(self.tell(P::ConfigCompleteId(nonce)));
        out
    }

    /// A packet from a host: on the air (with the node's number and an id), and the queue
    /// status back.
    fn send(&self, packet: proto::MeshPacket, to_air: &mpsc::Sender<Vec<u8>>) -> Vec<u8> {
        let id = if packet.id == 0 {
            self.next_packet_id.fetch_add(1, Ordering::Relaxed)
        } else {
            packet.id
        };
        let status = |res: i32| {
            self.tell(from_radio::Payload::QueueStatus(proto::QueueStatus {
                res,
                free: QUEUE_PLACES - 1,
                maxlen: QUEUE_PLACES,
                mesh_packet_id: id,
            }))
        };
        let Some(proto::mesh_packet::Payload::Decoded(data)) = packet.payload else {
            return status(1);
        };
        let Some((name, psk)) = self.channels.get(packet.channel as usize) else {
            return status(1);
        };
        let hop_limit = if packet.hop_limit == 0 && packet.hop_start == 0 {
            self.hop_limit
        } else {
            packet.hop_limit
        }
        .min(7) as u8;
        let air = AirPacket {
            to: packet.to,
            from: self.num,
            id,
            hop_limit,
            hop_start: hop_limit,
            channel_hash: channel_hash(name, psk),
            relay_node: self.num as u8,
            data: data.encode_to_vec(),
        }
        .encode();
        if air.len() > MAX_AIR_BYTES {
            // Meshtastic refuses a packet too big for the air.
            return status(2);
        }
        self.remember((self.num, id));
        if to_air.try_send(air).is_err() {
            return status(3);
        }
        status(0)
    }

    /// `true` when the packet is new here.
    fn remember(&self, key: (u32, u32)) -> bool {
        let mut seen = self.seen.lock().unwrap();
        if !seen.0.insert(key) {
            return false;
        }
        seen.1.push_back(key);
        if seen.1.len() > SEEN_LIMIT {
            if let Some(old) = seen.1.pop_front() {
                seen.0.remove(&old);
            }
        }
        true
    }

    /// A packet heard on the air: to the hosts if it is for this node on one of its
    /// channels, and rebroadcast by the flooding rules.
    pub(crate) fn hear(self: &Arc<Self>, sim: &Sim, bytes: &[u8], to_air: &mpsc::Sender<Vec<u8>>) {
        let Some(packet) = AirPacket::decode(bytes) else {
            return;
        };
        let key = (packet.from, packet.id);
        if packet.from == self.num || !self.remember(key) {
            // Heard again: someone rebroadcast it first.
            if self.role != MeshtasticRole::Router {
                if let Some(cancel) = self.pending.lock().unwrap().remove(&key) {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            return;
        }
        let hops = u32::from(packet.hop_start.saturating_sub(packet.hop_limit));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let new_node = {
            let mut heard = self.heard.lock().unwrap();
            let new_node = !heard.contains_key(&packet.from);
            if heard.len() < 512 || !new_node {
                heard.insert(packet.from, (hops, now));
            }
            new_node
        };
        if new_node {
            // A node heard for the first time joins the node list, and the hosts are told
            // (as firmware does once it has the node's info; the simulator knows every name).
            let name = self.names.get(&packet.from).cloned().unwrap_or_default();
            let _ = self
                .to_hosts
                .send(self.tell(from_radio::Payload::NodeInfo(proto::NodeInfo {
                    num: packet.from,
                    user: Some(self.user(packet.from, &name)),
                    last_heard: now,
                    hops_away: Some(hops),
                    ..Default::default()
                })));
        }
        let channel = self
            .channels
            .iter()
            .position(|(name, psk)| channel_hash(name, psk) == packet.channel_hash);
        if let (Some(channel), true) = (channel, packet.to == BROADCAST || packet.to == self.num) {
            if let Ok(data) = proto::Data::decode(packet.data.as_slice()) {
                let bytes = self.tell(from_radio::Payload::Packet(proto::MeshPacket {
                    from: packet.from,
                    to: packet.to,
                    channel: channel as u32,
                    payload: Some(proto::mesh_packet::Payload::Decoded(data)),
                    id: packet.id,
                    rx_time: now,
                    rx_snr: 6.25,
                    hop_limit: u32::from(packet.hop_limit),
                    want_ack: false,
                    rx_rssi: -90,
                    hop_start: u32::from(packet.hop_start),
                }));
                let _ = self.to_hosts.send(bytes);
            }
        }
        if packet.hop_limit == 0 || self.role == MeshtasticRole::ClientMute {
            return;
        }
        let relay = AirPacket {
            hop_limit: packet.hop_limit - 1,
            relay_node: self.num as u8,
            ..packet
        }
        .encode();
        let airtime = sim.airtime(bytes.len());
        let wait = match self.role {
            MeshtasticRole::Router => airtime.mul_f64(sim.random()),
            _ => airtime + airtime.mul_f64(2.0 * sim.random()),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.pending
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&cancel));
        let (device, to_air) = (Arc::clone(self), to_air.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            device.pending.lock().unwrap().remove(&key);
            if !cancel.load(Ordering::Relaxed) {
                let _ = to_air.try_send(relay);
            }
        });
    }
}

/// Serves one host connection (the pty, or a TCP connection) until it closes: answers the
/// handshake, puts the host's packets on the air and hands it what the node hears.
pub(crate) async fn serve_host<S: AsyncRead + AsyncWrite + Send + 'static>(
    device: Arc<Device>,
    stream: S,
    to_air: mpsc::Sender<Vec<u8>>,
    pty: bool,
) {
    let (mut reader, writer) = tokio::io::split(stream);
    let (replies, mut replies_rx) = mpsc::channel::<Vec<u8>>(64);
    let configured = Arc::new(AtomicBool::new(false));
    let mut heard = device.to_hosts.subscribe();
    let forward = {
        let configured = Arc::clone(&configured);
        tokio::spawn(async move {
            let mut writer = writer;
            loop {
                let bytes = tokio::select! {
                    reply = replies_rx.recv() => match reply {
                        Some(bytes) => bytes,
                        None => return,
                    },
                    packet = heard.recv() => match packet {
                        Ok(bytes) if configured.load(Ordering::Relaxed) => bytes,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                if writer.write_all(&bytes).await.is_err() && !pty {
                    return;
                }
            }
        })
    };
    let mut decoder = StreamDecoder::new();
    let mut buffer = vec![0u8; 1024];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) if pty => {
                // No host has the pty open (or it closed it): wait and read again.
                configured.store(false, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.push(&buffer[..n]);
        while let Some(body) = decoder.next_frame() {
            let Ok(message) = proto::ToRadio::decode(body.as_slice()) else {
                decoder.reject(body);
                continue;
            };
            let reply = match message.payload {
                Some(to_radio::Payload::WantConfigId(nonce)) => {
                    configured.store(false, Ordering::Relaxed);
                    let answer = device.config(nonce);
                    let _ = replies.send(answer).await;
                    configured.store(true, Ordering::Relaxed);
                    continue;
                }
                Some(to_radio::Payload::Packet(packet)) => device.send(packet, &to_air),
                Some(to_radio::Payload::Disconnect(_)) => {
                    configured.store(false, Ordering::Relaxed);
                    continue;
                }
                Some(to_radio::Payload::Heartbeat(_)) | None => continue,
            };
            let _ = replies.send(reply).await;
        }
    }
    forward.abort();
}

/// A host on a simulated (or real) node's TCP port with FieldMesh's own Meshtastic code, its
/// handshake done, choosing `channel`: what tests use to be "someone with a Meshtastic app".
pub async fn connect_host(
    address: std::net::SocketAddr,
    channel: &str,
    seed: u64,
) -> std::io::Result<(tokio::net::TcpStream, Box<dyn mesh::serial::Framing>)> {
    use mesh::serial::{Protocol, Readiness, SerialSettings};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut host = Protocol::Meshtastic.framing(&SerialSettings {
        channel: channel.parse().unwrap_or_default(),
        seed,
        ..SerialSettings::default()
    });
    for bytes in host.configure() {
        stream.write_all(&bytes).await?;
    }
    let mut buffer = [0u8; 1024];
    while !matches!(host.readiness(), Readiness::Ready(_)) {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the node closed before its handshake",
            ));
        }
        host.decode(&buffer[..n]);
    }
    Ok((stream, host))
}
