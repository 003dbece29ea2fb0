//! The radio form of a message, and the relay that floods it between camps.
//!
//! A LoRa frame carries a couple of hundred bytes at a few kilobits per second, so the radio
//! form is not the [`Envelope`]: it drops the 64-byte signature, the 32-byte sender key and the
//! 24-byte nonce, and keeps what a relay needs (a dedupe key, a hop limit, a fragment number)
//! and what a reader needs (a send time and the sealed text, authenticated by the room key).
//!
//! Every frame starts with the same 12-byte header:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `version:2 · type:2 · reserved:1 · hop limit:3` |
//! | 6 | message id (the first 6 bytes of the envelope id; random) |
//! | 4 | room tag (the first 4 bytes of the room id) |
//! | 1 | `fragment index:4 · fragment count − 1:4` |
//!
//! A data frame then carries its chunk of the message payload: the send time (4 bytes, Unix
//! seconds) followed by the XChaCha20-Poly1305 ciphertext and its 16-byte tag. An
//! acknowledgement is the header alone. The nonce is built from the header fields (which are
//! unique per room key because the id is random) and the header is the associated data, so
//! a relay can neither read nor alter a message; it may only lower the hop limit, which is
//! left out of the associated data for that reason.
//!
//! Per-message overhead in one frame: 12 header + 4 time + 16 tag = 32 bytes, plus the
//! author's name inside the ciphertext (1 length byte + up to [`MAX_RADIO_NAME_BYTES`]).
//!
//! Radio messages are authenticated by the room key only: anyone holding the room key could
//! write one under another name. Readers show them as "via radio" and never as verified.

use std::collections::{HashMap, VecDeque};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;

use crate::crypto::{RoomKey, NONCE_BYTES, TAG_BYTES};
use crate::envelope::{Kind, MessageId, RoomId, SenderId, Signature};
use crate::Envelope;

/// Radio format version (the top two bits of the first byte).
pub const RADIO_VERSION: u8 = 1;
/// Bytes before the payload in every frame.
pub const HEADER_BYTES: usize = 12;
/// Bytes of the send time at the start of a message payload.
pub const TIME_BYTES: usize = 4;
/// Fixed bytes a message adds to its text in a single frame: header, send time and tag.
pub const MESSAGE_OVERHEAD_BYTES: usize = HEADER_BYTES + TIME_BYTES + TAG_BYTES;
/// The frame payload we design for (a LoRa frame of 255 bytes less a link header).
pub const DEFAULT_FRAME_BYTES: usize = 233;
/// Smallest frame payload that still carries a useful chunk.
pub const MIN_FRAME_BYTES: usize = 48;
/// Largest frame payload any LoRa radio accepts.
pub const MAX_FRAME_BYTES: usize = 255;
/// Hop limit a message starts with.
pub const DEFAULT_HOP_LIMIT: u8 = 3;
/// Highest hop limit (three bits).
pub const MAX_HOP_LIMIT: u8 = 7;
/// Most fragments of one message.
pub const MAX_FRAGMENTS: usize = 16;
/// Largest message payload (time + ciphertext + tag) the radio carries.
pub const MAX_PAYLOAD_BYTES: usize = MAX_FRAGMENTS * (MAX_FRAME_BYTES - HEADER_BYTES);
/// Longest author name carried over the radio, in bytes (cut at a character boundary).
pub const MAX_RADIO_NAME_BYTES: usize = 24;

const TYPE_DATA: u8 = 0;
const TYPE_ACK: u8 = 1;
const RADIO_KEY_INFO: &[u8] = b"fieldmesh/radio-key/v1";
const NONCE_PREFIX: &[u8; 4] = b"FMr1";
/// Marks envelope ids made from a radio message id (bytes 10..16 of the id).
const RADIO_ID_MARK: &[u8; 6] = b"radio\x01";

/// Why radio bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RadioError {
    /// Shorter than a header, or a data frame without payload.
    #[error("radio frame is truncated")]
    Truncated,
    /// Longer than the frame limit.
    #[error("radio frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another format version.
    #[error("unknown radio format version {0}")]
    UnknownVersion(u8),
    /// Bad type, fragment numbers or reserved bits.
    #[error("malformed radio frame: {0}")]
    Malformed(&'static str),
    /// The message does not fit in [`MAX_FRAGMENTS`] frames.
    #[error("the message needs {len} bytes over the radio; the limit is {max}")]
    MessageTooLong {
        /// Payload bytes it needs.
        len: usize,
        /// The limit at this frame size.
        max: usize,
    },
    /// The room key does not open it, or it was altered.
    #[error("the radio message does not open with this room's key")]
    Undecryptable,
}

/// Identifies one message on the radio: its room tag and its 6-byte id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    /// The first 4 bytes of the room id.
    pub room: [u8; 4],
    /// The first 6 bytes of the envelope id.
    pub id: [u8; 6],
}

impl MessageKey {
    /// The radio key of an envelope id in a room.
    pub fn of(room: RoomId, id: MessageId) -> Self {
        let mut key = Self {
            room: Self::room_tag(room),
            id: [0; 6],
        };
        key.id.copy_from_slice(&id.0[..6]);
        key
    }

    /// Whether `room` has this room tag.
    pub fn is_in(&self, room: RoomId) -> bool {
        room.0[..4] == self.room
    }

    /// The 4-byte tag of `room` on the radio.
    pub fn room_tag(room: RoomId) -> [u8; 4] {
        let mut tag = [0u8; 4];
        tag.copy_from_slice(&room.0[..4]);
        tag
    }

    /// The envelope id a receiving server stores this message under. Fixed per message, so
    /// every server and every retry stores it once.
    pub fn envelope_id(&self) -> MessageId {
        let mut id = [0u8; 16];
        id[..6].copy_from_slice(&self.id);
        id[6..10].copy_from_slice(&self.room);
        id[10..].copy_from_slice(RADIO_ID_MARK);
        MessageId(id)
    }
}

/// The dedupe key of one frame: the message and the fragment index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameKey {
    /// Which message.
    pub message: MessageKey,
    /// Which fragment of it.
    pub index: u8,
}

/// One frame on the air.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// A fragment of a message (most messages are one fragment).
    Data {
        /// Hops it may still travel after this one.
        hop_limit: u8,
        /// Which fragment of which message.
        key: FrameKey,
        /// How many fragments the message has (1..=16).
        count: u8,
        /// This fragment's share of the payload.
        chunk: Vec<u8>,
    },
    /// "I have this frame": stops the sender's retries. Radio frames have no addresses, so
    /// the acknowledgement names the hop limit of the copy it answers: only the node that sent
    /// that copy takes it as meant for itself (a relay further along, which sent the same
    /// frame with a lower hop limit, must not).
    Ack {
        /// The frame acknowledged.
        key: FrameKey,
        /// Its fragment count, as received.
        count: u8,
        /// The hop limit of the copy acknowledged.
        hop_limit: u8,
    },
}

impl Packet {
    /// The frame's dedupe key.
    pub fn key(&self) -> FrameKey {
        match self {
            Packet::Data { key, .. } | Packet::Ack { key, .. } => *key,
        }
    }

    /// The bytes on the air.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, hop_limit, key, count, chunk) = match self {
            Packet::Data {
                hop_limit,
                key,
                count,
                chunk,
            } => (TYPE_DATA, *hop_limit, key, *count, chunk.as_slice()),
            Packet::Ack {
                key,
                count,
                hop_limit,
            } => (TYPE_ACK, *hop_limit, key, *count, &[][..]),
        };
        let mut out = Vec::with_capacity(HEADER_BYTES + chunk.len());
        out.push(RADIO_VERSION << 6 | kind << 4 | hop_limit.min(MAX_HOP_LIMIT));
        out.extend_from_slice(&key.message.id);
        out.extend_from_slice(&key.message.room);
        out.push(key.index << 4 | (count.saturating_sub(1) & 0x0f));
        out.extend_from_slice(chunk);
        out
    }

    /// Reads a frame, checking every field; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, RadioError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(RadioError::TooLarge {
                len: bytes.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        if bytes.len() < HEADER_BYTES {
            return Err(RadioError::Truncated);
        }
        let first = bytes[0];
        if first >> 6 != RADIO_VERSION {
            return Err(RadioError::UnknownVersion(first >> 6));
        }
        if first & 0x08 != 0 {
            return Err(RadioError::Malformed("reserved bit set"));
        }
        let mut message = MessageKey {
            room: [0; 4],
            id: [0; 6],
        };
        message.id.copy_from_slice(&bytes[1..7]);
        message.room.copy_from_slice(&bytes[7..11]);
        let index = bytes[11] >> 4;
        let count = (bytes[11] & 0x0f) + 1;
        if index >= count {
            return Err(RadioError::Malformed("fragment index beyond its count"));
        }
        let key = FrameKey { message, index };
        let chunk = &bytes[HEADER_BYTES..];
        match (first >> 4) & 0x03 {
            TYPE_DATA if chunk.is_empty() => Err(RadioError::Truncated),
            TYPE_DATA => Ok(Packet::Data {
                hop_limit: first & 0x07,
                key,
                count,
                chunk: chunk.to_vec(),
            }),
            TYPE_ACK if chunk.is_empty() => Ok(Packet::Ack {
                key,
                count,
                hop_limit: first & 0x07,
            }),
            TYPE_ACK => Err(RadioError::Malformed("acknowledgement with a payload")),
            _ => Err(RadioError::Malformed("unknown frame type")),
        }
    }
}

/// A whole message as the radio carries it: who it is, and its payload (send time, then the
/// sealed name and text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioMessage {
    /// Room tag and id.
    pub key: MessageKey,
    /// Time and sealed body: what the fragments carry, joined.
    pub payload: Vec<u8>,
}

/// What a radio message says once opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioText {
    /// The author's display name as they sent it (not verified by a signature).
    pub author: String,
    /// The text.
    pub text: String,
    /// When it was sent, in Unix seconds by the sender's clock.
    pub sent_at_s: u32,
}

fn nonce(key: &MessageKey, sent_at_s: u32) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    nonce[..4].copy_from_slice(NONCE_PREFIX);
    nonce[4..10].copy_from_slice(&key.id);
    nonce[10..14].copy_from_slice(&key.room);
    nonce[14..18].copy_from_slice(&sent_at_s.to_be_bytes());
    nonce
}

fn associated(key: &MessageKey, sent_at_s: u32) -> [u8; 15] {
    let mut aad = [0u8; 15];
    aad[0] = RADIO_VERSION;
    aad[1..7].copy_from_slice(&key.id);
    aad[7..11].copy_from_slice(&key.room);
    aad[11..].copy_from_slice(&sent_at_s.to_be_bytes());
    aad
}

/// Cuts `name` to at most [`MAX_RADIO_NAME_BYTES`] bytes at a character boundary.
fn radio_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_RADIO_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

impl RadioMessage {
    /// Seals `author` and `text` for `key`'s room under the envelope id `id` (the same message
    /// the sender stores and publishes, so the radio copy is known by the same id).
    pub fn seal(key: &RoomKey, id: MessageId, sent_at_s: u32, author: &str, text: &str) -> Self {
        let message = MessageKey::of(key.room_id(), id);
        let author = radio_name(author);
        let mut plaintext = Vec::with_capacity(1 + author.len() + text.len());
        plaintext.push(author.len() as u8);
        plaintext.extend_from_slice(author.as_bytes());
        plaintext.extend_from_slice(text.as_bytes());
        let sealed = key
            .derived_cipher(RADIO_KEY_INFO)
            .encrypt(
                XNonce::from_slice(&nonce(&message, sent_at_s)),
                Payload {
                    msg: &plaintext,
                    aad: &associated(&message, sent_at_s),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length we allow");
        let mut payload = sent_at_s.to_be_bytes().to_vec();
        payload.extend_from_slice(&sealed);
        Self {
            key: message,
            payload,
        }
    }

    /// The send time, if the payload is long enough to hold one.
    pub fn sent_at_s(&self) -> Option<u32> {
        let bytes: [u8; TIME_BYTES] = self.payload.get(..TIME_BYTES)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// Opens the message with the room key.
    pub fn open(&self, key: &RoomKey) -> Result<RadioText, RadioError> {
        if !self.key.is_in(key.room_id()) || self.payload.len() < TIME_BYTES + TAG_BYTES + 1 {
            return Err(RadioError::Undecryptable);
        }
        let sent_at_s = self.sent_at_s().ok_or(RadioError::Undecryptable)?;
        let plaintext = key
            .derived_cipher(RADIO_KEY_INFO)
            .decrypt(
                XNonce::from_slice(&nonce(&self.key, sent_at_s)),
                Payload {
                    msg: &self.payload[TIME_BYTES..],
                    aad: &associated(&self.key, sent_at_s),
                },
            )
            .map_err(|_| RadioError::Undecryptable)?;
        let (&name_len, rest) = plaintext.split_first().ok_or(RadioError::Undecryptable)?;
        let name_len = usize::from(name_len);
        if name_len > rest.len().min(MAX_RADIO_NAME_BYTES) {
            return Err(RadioError::Malformed("author name length"));
        }
        let (author, text) = rest.split_at(name_len);
        Ok(RadioText {
            author: String::from_utf8(author.to_vec())
                .map_err(|_| RadioError::Malformed("author name is not UTF-8"))?,
            text: String::from_utf8(text.to_vec())
                .map_err(|_| RadioError::Malformed("text is not UTF-8"))?,
            sent_at_s,
        })
    }

    /// Whether the message fits in the most frames a message may have, at `frame_bytes`.
    pub fn fits(&self, frame_bytes: usize) -> bool {
        !self.payload.is_empty() && self.frame_count(frame_bytes) <= MAX_FRAGMENTS
    }

    /// How many frames of `frame_bytes` this message needs.
    pub fn frame_count(&self, frame_bytes: usize) -> usize {
        self.payload
            .len()
            .div_ceil(frame_bytes.clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES) - HEADER_BYTES)
    }

    /// Splits the message into data frames of at most `frame_bytes` bytes.
    pub fn fragments(&self, hop_limit: u8, frame_bytes: usize) -> Result<Vec<Packet>, RadioError> {
        let chunk_bytes = frame_bytes.clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES) - HEADER_BYTES;
        let max = MAX_FRAGMENTS * chunk_bytes;
        if self.payload.is_empty() || self.payload.len() > max {
            return Err(RadioError::MessageTooLong {
                len: self.payload.len(),
                max,
            });
        }
        let count = self.payload.len().div_ceil(chunk_bytes) as u8;
        Ok(self
            .payload
            .chunks(chunk_bytes)
            .enumerate()
            .map(|(index, chunk)| Packet::Data {
                hop_limit: hop_limit.min(MAX_HOP_LIMIT),
                key: FrameKey {
                    message: self.key,
                    index: index as u8,
                },
                count,
                chunk: chunk.to_vec(),
            })
            .collect())
    }

    /// The envelope a server stores and hands to its clients for a message that came from
    /// the radio: kind [`Kind::Radio`], the radio payload as body, no signature.
    pub fn to_envelope(&self, room: RoomId) -> Envelope {
        Envelope {
            id: self.key.envelope_id(),
            room,
            sender: SenderId([0; 32]),
            created_at_ms: u64::from(self.sent_at_s().unwrap_or(0)) * 1000,
            kind: Kind::Radio,
            nonce: [0; NONCE_BYTES],
            body: self.payload.clone(),
            signature: Signature([0; 64]),
        }
    }

    /// The radio message a [`Kind::Radio`] envelope carries.
    pub fn from_envelope(envelope: &Envelope) -> Option<Self> {
        if envelope.kind != Kind::Radio {
            return None;
        }
        let key = MessageKey::of(envelope.room, envelope.id);
        (key.envelope_id() == envelope.id).then(|| Self {
            key,
            payload: envelope.body.clone(),
        })
    }
}

/// Joins fragments back into messages. Bounded: at most `max_partial` messages in progress
/// (the oldest is dropped to make room), each at most [`MAX_PAYLOAD_BYTES`], each dropped
/// when not complete within the timeout. A message is handed out only when every fragment
/// is there, so a partial one is never shown as whole.
#[derive(Debug)]
pub struct Reassembler {
    max_partial: usize,
    timeout_ms: u64,
    partial: HashMap<MessageKey, Partial>,
}

#[derive(Debug)]
struct Partial {
    started_ms: u64,
    chunks: Vec<Option<Vec<u8>>>,
}

impl Reassembler {
    /// A reassembler holding at most `max_partial` messages for at most `timeout_ms` each.
    pub fn new(max_partial: usize, timeout_ms: u64) -> Self {
        Self {
            max_partial: max_partial.max(1),
            timeout_ms,
            partial: HashMap::new(),
        }
    }

    /// Messages in progress.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Adds one fragment; returns the message when it completes it.
    pub fn push(
        &mut self,
        now_ms: u64,
        key: FrameKey,
        count: u8,
        chunk: &[u8],
    ) -> Option<RadioMessage> {
        self.expire(now_ms);
        if count == 1 {
            return Some(RadioMessage {
                key: key.message,
                payload: chunk.to_vec(),
            });
        }
        if usize::from(key.index) >= usize::from(count) || chunk.len() > MAX_FRAME_BYTES {
            return None;
        }
        if !self.partial.contains_key(&key.message) && self.partial.len() >= self.max_partial {
            let oldest = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.started_ms)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.partial.remove(&oldest);
            }
        }
        let entry = self.partial.entry(key.message).or_insert_with(|| Partial {
            started_ms: now_ms,
            chunks: vec![None; usize::from(count)],
        });
        if entry.chunks.len() != usize::from(count) {
            // Two senders disagree about this message: start over with the newer one.
            *entry = Partial {
                started_ms: now_ms,
                chunks: vec![None; usize::from(count)],
            };
        }
        entry.chunks[usize::from(key.index)] = Some(chunk.to_vec());
        if entry.chunks.iter().all(Option::is_some) {
            let entry = self.partial.remove(&key.message)?;
            let payload = entry.chunks.into_iter().flatten().flatten().collect();
            return Some(RadioMessage {
                key: key.message,
                payload,
            });
        }
        None
    }

    /// Drops messages that waited longer than the timeout.
    pub fn expire(&mut self, now_ms: u64) {
        let timeout = self.timeout_ms;
        self.partial
            .retain(|_, p| now_ms.saturating_sub(p.started_ms) <= timeout);
    }
}

/// Timing and limits of a relay node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Largest frame the radio sends.
    pub frame_bytes: usize,
    /// Hop limit of the messages this node starts.
    pub hop_limit: u8,
    /// The radio's bitrate, for airtime estimates.
    pub bitrate_bps: u32,
    /// Retries of an unconfirmed frame.
    pub max_retries: u8,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            frame_bytes: DEFAULT_FRAME_BYTES,
            hop_limit: DEFAULT_HOP_LIMIT,
            // LoRa SF7, 125 kHz, coding rate 4/5.
            bitrate_bps: 5470,
            max_retries: 8,
        }
    }
}

impl NodeConfig {
    /// Estimated airtime of a frame of `bytes` bytes (plus preamble and header) in ms.
    pub fn airtime_ms(&self, bytes: usize) -> u64 {
        ((bytes as u64 + 13) * 8 * 1000).div_ceil(u64::from(self.bitrate_bps.max(1)))
    }

    /// Rebroadcasts wait a random delay up to this, so neighbours that heard the same frame
    /// do not all send at once, and a node that hears another's rebroadcast first can cancel.
    pub fn contention_window_ms(&self) -> u64 {
        3 * self.airtime_ms(self.frame_bytes)
    }

    /// How long a sent frame waits for a rebroadcast or an acknowledgement before a retry.
    fn confirm_timeout_ms(&self, tries: u8) -> u64 {
        let base = self.contention_window_ms() + 4 * self.airtime_ms(self.frame_bytes) + 500;
        base + base * u64::from(tries) / 2
    }
}

/// What the node asks its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes over the radio.
    Transmit(Vec<u8>),
    /// A whole message arrived for the first time: store and show it.
    Deliver(RadioMessage),
    /// Every frame of a message this node started was heard relayed or acknowledged.
    Confirmed(MessageKey),
    /// A message this node started ran out of retries without confirmation.
    Unconfirmed(MessageKey),
}

#[derive(Clone, Debug)]
enum FrameState {
    /// A rebroadcast waits for its slot; cancelled if a neighbour rebroadcasts first.
    Scheduled { at_ms: u64, packet: Packet },
    /// Sent; waiting to hear it relayed or acknowledged.
    Sent {
        retry_at_ms: u64,
        tries: u8,
        packet: Packet,
    },
    /// Nothing more to do.
    Done,
}

#[derive(Clone, Debug)]
struct Seen {
    at_ms: u64,
    /// Order of arrival at this node, so frames due together leave in the order they came
    /// (a sender's messages in the order they were written).
    order: u64,
    /// The hop limit it reached us with (`u8::MAX` for frames we started).
    heard_hop: u8,
    state: FrameState,
    origin: bool,
}

/// How many frames the node remembers for dedupe, and for how long.
const SEEN_LIMIT: usize = 8192;
const SEEN_TTL_MS: u64 = 30 * 60 * 1000;

/// A relay node: the managed-flooding state machine, without I/O. Feed it frames heard and
/// messages to send, call [`Node::poll`] at [`Node::next_wakeup`], and carry out the
/// [`Action`]s. Used by the server's radio bridge and by the browser's Web Serial radio.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    seen: HashMap<FrameKey, Seen>,
    order: VecDeque<(u64, FrameKey)>,
    reassembler: Reassembler,
    /// Frames still unconfirmed per message this node started.
    origin: HashMap<MessageKey, usize>,
    rng: u64,
    /// Frames remembered so far, for [`Seen::order`].
    arrivals: u64,
}

/// Counters, for the UI and the figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames in progress or remembered.
    pub remembered: usize,
    /// Messages being reassembled.
    pub partial: usize,
}

impl Node {
    /// A node with `config`; `seed` seeds the jitter of rebroadcast delays.
    pub fn new(config: NodeConfig, seed: u64) -> Self {
        Self {
            config,
            seen: HashMap::new(),
            order: VecDeque::new(),
            reassembler: Reassembler::new(64, 5 * 60 * 1000),
            origin: HashMap::new(),
            rng: seed | 1,
            arrivals: 0,
        }
    }

    /// The node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// How much it holds.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            remembered: self.seen.len(),
            partial: self.reassembler.pending(),
        }
    }

    /// Whether this node has seen (sent or received) the message.
    pub fn has_seen(&self, key: MessageKey) -> bool {
        self.seen.contains_key(&FrameKey {
            message: key,
            index: 0,
        })
    }

    fn random_below(&mut self, bound: u64) -> u64 {
        // xorshift64*: jitter only, nothing secret depends on it.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }

    fn remember(&mut self, now_ms: u64, key: FrameKey, mut seen: Seen) {
        self.arrivals += 1;
        seen.order = self.arrivals;
        self.seen.insert(key, seen);
        self.order.push_back((now_ms, key));
        while self.order.len() > SEEN_LIMIT
            || self
                .order
                .front()
                .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > SEEN_TTL_MS)
        {
            let Some((at, old)) = self.order.pop_front() else {
                break;
            };
            // Only forget it if the entry is this one (a key is remembered once).
            if self.seen.get(&old).is_some_and(|s| s.at_ms == at) {
                if let Some(entry) = self.seen.remove(&old) {
                    if entry.origin && !matches!(entry.state, FrameState::Done) {
                        self.origin.remove(&old.message);
                    }
                }
            }
        }
    }

    /// Starts sending `message` from this node. Returns `false` (and sends nothing) when the
    /// node already carries it, so an outbox replayed after a reconnect goes out once.
    pub fn send(&mut self, now_ms: u64, message: &RadioMessage) -> Result<bool, RadioError> {
        if self.has_seen(message.key) {
            return Ok(false);
        }
        let packets = message.fragments(self.config.hop_limit, self.config.frame_bytes)?;
        self.origin.insert(message.key, packets.len());
        for packet in packets {
            let key = packet.key();
            self.remember(
                now_ms,
                key,
                Seen {
                    at_ms: now_ms,
                    heard_hop: u8::MAX,
                    order: 0,
                    state: FrameState::Scheduled {
                        at_ms: now_ms,
                        packet,
                    },
                    origin: true,
                },
            );
        }
        Ok(true)
    }

    /// Forgets a message this node started, so [`Node::send`] sends it afresh (after it went
    /// unconfirmed: the neighbours may have been away).
    pub fn forget(&mut self, key: MessageKey) {
        self.origin.remove(&key);
        self.seen
            .retain(|frame, seen| !(frame.message == key && seen.origin));
    }

    /// Handles a frame heard on the radio.
    pub fn receive(&mut self, now_ms: u64, bytes: &[u8]) -> Result<Vec<Action>, RadioError> {
        let packet = Packet::decode(bytes)?;
        let mut actions = Vec::new();
        let key = packet.key();
        match packet {
            Packet::Ack { hop_limit, .. } => {
                if let Some(seen) = self.seen.get_mut(&key) {
                    if matches!(
                        &seen.state,
                        FrameState::Sent { packet: Packet::Data { hop_limit: sent, .. }, .. }
                            if *sent == hop_limit
                    ) {
                        seen.state = FrameState::Done;
                        let origin = seen.origin;
                        self.confirmed(key, origin, &mut actions);
                    }
                }
            }
            Packet::Data {
                hop_limit,
                count,
                chunk,
                ..
            } => match self.seen.get_mut(&key) {
                Some(seen) => {
                    let origin = seen.origin;
                    let heard_hop = seen.heard_hop;
                    match &seen.state {
                        // A neighbour relayed it first: ours would add nothing here.
                        FrameState::Scheduled { .. } if !origin && hop_limit < heard_hop => {
                            seen.state = FrameState::Done;
                        }
                        // Our transmission was relayed onward: confirmed.
                        FrameState::Sent {
                            packet:
                                Packet::Data {
                                    hop_limit: sent, ..
                                },
                            ..
                        } if hop_limit < *sent => {
                            seen.state = FrameState::Done;
                            self.confirmed(key, origin, &mut actions);
                        }
                        // The sender upstream retries: it did not hear us; tell it we have it.
                        FrameState::Sent { .. } | FrameState::Done
                            if !origin && hop_limit >= heard_hop =>
                        {
                            let ack = Packet::Ack {
                                key,
                                count,
                                hop_limit,
                            };
                            actions.push(Action::Transmit(ack.encode()));
                        }
                        _ => {}
                    }
                }
                None => {
                    let state = if hop_limit > 0 {
                        let delay = self.random_below(self.config.contention_window_ms());
                        FrameState::Scheduled {
                            at_ms: now_ms + delay,
                            packet: Packet::Data {
                                hop_limit: hop_limit - 1,
                                key,
                                count,
                                chunk: chunk.clone(),
                            },
                        }
                    } else {
                        let ack = Packet::Ack {
                            key,
                            count,
                            hop_limit: 0,
                        };
                        actions.push(Action::Transmit(ack.encode()));
                        FrameState::Done
                    };
                    self.remember(
                        now_ms,
                        key,
                        Seen {
                            at_ms: now_ms,
                            heard_hop: hop_limit,
                            order: 0,
                            state,
                            origin: false,
                        },
                    );
                    if let Some(message) = self.reassembler.push(now_ms, key, count, &chunk) {
                        actions.push(Action::Deliver(message));
                    }
                }
            },
        }
        Ok(actions)
    }

    fn confirmed(&mut self, key: FrameKey, origin: bool, actions: &mut Vec<Action>) {
        if !origin {
            return;
        }
        if let Some(left) = self.origin.get_mut(&key.message) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.origin.remove(&key.message);
                actions.push(Action::Confirmed(key.message));
            }
        }
    }

    /// Sends what is due at `now_ms`: scheduled rebroadcasts and retries.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut given_up = Vec::new();
        let config = self.config.clone();
        // Retries wait a random extra share of the contention window, so two nodes that
        // collided once do not collide again on every retry.
        let jitter: Vec<u64> = (0..8)
            .map(|_| self.random_below(config.contention_window_ms()))
            .collect();
        let mut due: Vec<(&FrameKey, &mut Seen)> = self
            .seen
            .iter_mut()
            .filter(|(_, seen)| match seen.state {
                FrameState::Scheduled { at_ms, .. } => at_ms <= now_ms,
                FrameState::Sent { retry_at_ms, .. } => retry_at_ms <= now_ms,
                FrameState::Done => false,
            })
            .collect();
        // Oldest first, fragments in order.
        due.sort_by_key(|(_, seen)| (seen.at_ms, seen.order));
        for (n, (key, seen)) in due.into_iter().enumerate() {
            let jitter = jitter[n % jitter.len()];
            match std::mem::replace(&mut seen.state, FrameState::Done) {
                FrameState::Scheduled { packet, .. } => {
                    actions.push(Action::Transmit(packet.encode()));
                    // A last-hop rebroadcast is relayed by nobody: nothing can confirm it.
                    if !seen.origin && matches!(packet, Packet::Data { hop_limit: 0, .. }) {
                        continue;
                    }
                    seen.state = FrameState::Sent {
                        retry_at_ms: now_ms + config.confirm_timeout_ms(0) + jitter,
                        tries: 0,
                        packet,
                    };
                }
                FrameState::Sent { tries, packet, .. } if tries < config.max_retries => {
                    actions.push(Action::Transmit(packet.encode()));
                    seen.state = FrameState::Sent {
                        retry_at_ms: now_ms + config.confirm_timeout_ms(tries + 1) + jitter,
                        tries: tries + 1,
                        packet,
                    };
                }
                FrameState::Sent { .. } => {
                    if seen.origin {
                        given_up.push(key.message);
                    }
                }
                FrameState::Done => {}
            }
        }
        for message in given_up {
            if self.origin.remove(&message).is_some() {
                actions.push(Action::Unconfirmed(message));
            }
        }
        actions
    }

    /// When [`Node::poll`] next has something to do.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.seen
            .values()
            .filter_map(|seen| match seen.state {
                FrameState::Scheduled { at_ms, .. } => Some(at_ms),
                FrameState::Sent { retry_at_ms, .. } => Some(retry_at_ms),
                FrameState::Done => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn key() -> RoomKey {
        RoomKey::from_bytes([7; 32])
    }

    fn text(len: usize) -> String {
        "abcdefghij".repeat(len / 10 + 1)[..len].to_string()
    }

    #[test]
    fn a_200_character_message_fits_one_frame_with_32_bytes_of_overhead() {
        let message =
            RadioMessage::seal(&key(), MessageId([1; 16]), 1_800_000_000, "Ana", &text(197));
        let frames = message
            .fragments(DEFAULT_HOP_LIMIT, DEFAULT_FRAME_BYTES)
            .unwrap();
        assert_eq!(frames.len(), 1);
        let bytes = frames[0].encode();
        assert_eq!(MESSAGE_OVERHEAD_BYTES, 32);
        assert_eq!(bytes.len(), MESSAGE_OVERHEAD_BYTES + 1 + 3 + 197);
        assert!(bytes.len() <= DEFAULT_FRAME_BYTES);
        let no_name = RadioMessage::seal(&key(), MessageId([1; 16]), 1, "", &text(200));
        assert_eq!(no_name.frame_count(DEFAULT_FRAME_BYTES), 1);
    }

    #[test]
    fn seal_and_open_round_trip_and_reject_tampering() {
        let message = RadioMessage::seal(&key(), MessageId([2; 16]), 42, "Łucja", "Wasser 💧");
        let opened = message.open(&key()).unwrap();
        assert_eq!(opened.author, "Łucja");
        assert_eq!(opened.text, "Wasser 💧");
        assert_eq!(opened.sent_at_s, 42);
        assert_eq!(
            message.open(&RoomKey::from_bytes([8; 32])),
            Err(RadioError::Undecryptable)
        );
        for i in 0..message.payload.len() {
            let mut bad = message.clone();
            bad.payload[i] ^= 1;
            assert!(bad.open(&key()).is_err(), "byte {i} flipped still opened");
        }
        let mut moved = message.clone();
        moved.key.id[0] ^= 1;
        assert!(moved.open(&key()).is_err());
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(30);
        let message = RadioMessage::seal(&key(), MessageId([3; 16]), 1, &name, "hi");
        let opened = message.open(&key()).unwrap();
        assert_eq!(opened.author, "é".repeat(12));
    }

    #[test]
    fn long_messages_fragment_and_reassemble_in_any_order() {
        let long = text(1500);
        let message = RadioMessage::seal(&key(), MessageId([4; 16]), 9, "Bo", &long);
        let mut frames = message.fragments(3, DEFAULT_FRAME_BYTES).unwrap();
        assert_eq!(frames.len(), 7);
        frames.reverse();
        let mut reassembler = Reassembler::new(4, 1000);
        let mut out = None;
        for (i, frame) in frames.iter().enumerate() {
            let Packet::Data {
                key, count, chunk, ..
            } = Packet::decode(&frame.encode()).unwrap()
            else {
                panic!("data frame expected");
            };
            let got = reassembler.push(10, key, count, &chunk);
            if i + 1 < frames.len() {
                assert!(got.is_none(), "a partial message must never come out");
            } else {
                out = got;
            }
        }
        assert_eq!(out.unwrap().open(&key()).unwrap().text, long);
        let too_long = RadioMessage::seal(&key(), MessageId([5; 16]), 9, "Bo", &text(4000));
        assert!(matches!(
            too_long.fragments(3, DEFAULT_FRAME_BYTES),
            Err(RadioError::MessageTooLong { .. })
        ));
    }

    #[test]
    fn partial_messages_expire_and_are_bounded() {
        let mut reassembler = Reassembler::new(2, 1000);
        let frame = |id: u8, index: u8| FrameKey {
            message: MessageKey {
                room: [0; 4],
                id: [id; 6],
            },
            index,
        };
        assert!(reassembler.push(0, frame(1, 0), 2, b"a").is_none());
        assert!(reassembler.push(1, frame(2, 0), 2, b"a").is_none());
        assert!(reassembler.push(5, frame(3, 0), 2, b"a").is_none());
        assert_eq!(reassembler.pending(), 2, "the oldest made room");
        // Message 1 was evicted: its second half alone is not a message.
        assert!(reassembler.push(6, frame(1, 1), 2, b"b").is_none());
        // Past the timeout, the first half of 3 is gone too.
        assert!(reassembler.push(2000, frame(3, 1), 2, b"b").is_none());
        assert_eq!(reassembler.pending(), 1);
    }

    #[test]
    fn decoding_checks_every_field() {
        let message = RadioMessage::seal(&key(), MessageId([6; 16]), 1, "A", "hello");
        let bytes = message.fragments(7, 233).unwrap()[0].encode();
        assert!(matches!(
            Packet::decode(&bytes),
            Ok(Packet::Data { hop_limit: 7, .. })
        ));
        for len in 0..HEADER_BYTES + 1 {
            assert!(Packet::decode(&bytes[..len]).is_err());
        }
        assert!(matches!(
            Packet::decode(&[0u8; 300]),
            Err(RadioError::TooLarge { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] = 0x80 | (bad[0] & 0x3f);
        assert_eq!(Packet::decode(&bad), Err(RadioError::UnknownVersion(2)));
        let mut bad = bytes.clone();
        bad[11] = 0x20; // index 2 of 1
        assert!(matches!(
            Packet::decode(&bad),
            Err(RadioError::Malformed(_))
        ));
        let mut bad = bytes.clone();
        bad[0] |= 0x30;
        assert!(matches!(
            Packet::decode(&bad),
            Err(RadioError::Malformed(_))
        ));
        let ack = Packet::Ack {
            key: FrameKey {
                message: message.key,
                index: 0,
            },
            count: 1,
            hop_limit: 5,
        };
        assert_eq!(Packet::decode(&ack.encode()), Ok(ack));
    }

    #[test]
    fn radio_envelopes_round_trip() {
        let room_key = key();
        let message = RadioMessage::seal(&room_key, MessageId([9; 16]), 77, "C", "ok");
        let envelope = message.to_envelope(room_key.room_id());
        assert_eq!(envelope.created_at_ms, 77_000);
        assert_eq!(
            RadioMessage::from_envelope(&envelope),
            Some(message.clone())
        );
        let bytes = envelope.encode().unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (state.rotate_left(i as u32 % 64) >> 3) as u8)
                .collect();
            let _ = Packet::decode(&bytes);
            let message = RadioMessage {
                key: MessageKey {
                    room: [1; 4],
                    id: [2; 6],
                },
                payload: bytes,
            };
            let _ = message.open(&key());
        }
    }

    /// Nodes in a line, each hearing only its neighbours, with a perfect channel.
    fn run_chain(nodes: &mut [Node], start: RadioMessage, steps: u64) -> Vec<Vec<Action>> {
        let mut log: Vec<Vec<Action>> = vec![Vec::new(); nodes.len()];
        nodes[0].send(0, &start).unwrap();
        let mut air: Vec<(u64, usize, Vec<u8>)> = Vec::new();
        for now in 0..steps {
            for i in 0..nodes.len() {
                let mut actions = nodes[i].poll(now);
                let heard: Vec<_> = air
                    .iter()
                    .filter(|(at, to, _)| *at == now && *to == i)
                    .cloned()
                    .collect();
                for (_, _, bytes) in heard {
                    actions.extend(nodes[i].receive(now, &bytes).unwrap());
                }
                for action in &actions {
                    if let Action::Transmit(bytes) = action {
                        for j in [i.wrapping_sub(1), i + 1] {
                            if j < nodes.len() {
                                air.push((now + 50, j, bytes.clone()));
                            }
                        }
                    }
                }
                log[i].extend(actions);
            }
        }
        log
    }

    #[test]
    fn a_message_floods_a_chain_once_and_the_origin_hears_it_confirmed() {
        let mut nodes: Vec<Node> = (0..4)
            .map(|i| Node::new(NodeConfig::default(), i + 1))
            .collect();
        let message = RadioMessage::seal(&key(), MessageId([1; 16]), 1, "A", "to D");
        let log = run_chain(&mut nodes, message.clone(), 20_000);
        for (i, actions) in log.iter().enumerate().skip(1) {
            let delivered = actions
                .iter()
                .filter(|a| matches!(a, Action::Deliver(_)))
                .count();
            assert_eq!(delivered, 1, "node {i} delivers once");
        }
        assert!(log[0].contains(&Action::Confirmed(message.key)));
        assert!(!log[0].iter().any(|a| matches!(a, Action::Deliver(_))));
        // A (hop 3), B (2), C (1), D (0): four data frames and no retries on a clean channel.
        let data = log
            .iter()
            .flatten()
            .filter(|a| matches!(a, Action::Transmit(b) if matches!(Packet::decode(b), Ok(Packet::Data { .. }))))
            .count();
        assert_eq!(data, 4);
        assert!(nodes.iter().all(|n| n.next_wakeup().is_none()));
    }

    #[test]
    fn messages_sent_together_leave_in_the_order_they_were_written() {
        let mut node = Node::new(NodeConfig::default(), 9);
        // Ids in falling order, so any ordering by key would reverse them.
        let messages: Vec<RadioMessage> = (0..3u8)
            .map(|n| RadioMessage::seal(&key(), MessageId([200 - n; 16]), 1, "A", &format!("m{n}")))
            .collect();
        for message in &messages {
            node.send(0, message).unwrap();
        }
        let sent: Vec<MessageKey> = node
            .poll(0)
            .into_iter()
            .filter_map(|a| match a {
                Action::Transmit(bytes) => Some(Packet::decode(&bytes).unwrap().key().message),
                _ => None,
            })
            .collect();
        let written: Vec<MessageKey> = messages.iter().map(|m| m.key).collect();
        assert_eq!(sent, written);
    }

    #[test]
    fn hop_limit_stops_the_flood() {
        let config = NodeConfig {
            hop_limit: 1,
            ..NodeConfig::default()
        };
        let mut nodes: Vec<Node> = (0..4).map(|i| Node::new(config.clone(), i + 1)).collect();
        let message = RadioMessage::seal(&key(), MessageId([2; 16]), 1, "A", "near");
        let log = run_chain(&mut nodes, message, 20_000);
        let delivered: Vec<usize> = log
            .iter()
            .map(|a| a.iter().filter(|a| matches!(a, Action::Deliver(_))).count())
            .collect();
        assert_eq!(delivered, vec![0, 1, 1, 0]);
    }

    #[test]
    fn an_unheard_message_is_retried_a_bounded_number_of_times() {
        let mut node = Node::new(NodeConfig::default(), 5);
        let message = RadioMessage::seal(&key(), MessageId([3; 16]), 1, "A", "anyone?");
        assert!(node.send(0, &message).unwrap());
        assert!(
            !node.send(0, &message).unwrap(),
            "a replayed send goes out once"
        );
        let mut sent = 0;
        let mut outcome = Vec::new();
        let mut now = 0;
        while let Some(at) = node.next_wakeup() {
            now = at.max(now);
            for action in node.poll(now) {
                match action {
                    Action::Transmit(_) => sent += 1,
                    other => outcome.push(other),
                }
            }
        }
        assert_eq!(sent, 1 + usize::from(NodeConfig::default().max_retries));
        assert_eq!(outcome, vec![Action::Unconfirmed(message.key)]);
    }

    #[test]
    fn an_ack_confirms_only_the_copy_it_answers_and_a_known_frame_is_acknowledged() {
        let config = NodeConfig {
            hop_limit: 0,
            ..NodeConfig::default()
        };
        let mut a = Node::new(config, 1);
        let mut b = Node::new(NodeConfig::default(), 2);
        let message = RadioMessage::seal(&key(), MessageId([4; 16]), 1, "A", "hi");
        a.send(0, &message).unwrap();
        let Action::Transmit(hop0) = a.poll(0).remove(0) else {
            panic!("A transmits")
        };
        // B is at the edge of A's hop limit: it acknowledges, with the hop limit it heard.
        let replies = b.receive(1, &hop0).unwrap();
        let Action::Transmit(ack) = &replies[0] else {
            panic!("B acknowledges")
        };
        assert!(matches!(
            Packet::decode(ack),
            Ok(Packet::Ack { hop_limit: 0, .. })
        ));
        assert!(matches!(&replies[1], Action::Deliver(_)));
        // B hears the same frame again (A did not hear the ack): it acks, no delivery.
        assert_eq!(b.receive(2, &hop0).unwrap().len(), 1);
        // An acknowledgement of another copy (hop limit 3, for a node upstream) is not A's.
        let mut other = Packet::decode(ack).unwrap();
        if let Packet::Ack { hop_limit, .. } = &mut other {
            *hop_limit = 3;
        }
        assert_eq!(a.receive(3, &other.encode()).unwrap(), vec![]);
        assert_eq!(
            a.receive(4, ack).unwrap(),
            vec![Action::Confirmed(message.key)]
        );
        assert_eq!(a.next_wakeup(), None);
    }

    /// Four nodes in a chain, every frame lost with probability `loss` on every link, one
    /// message every 3 s from the first: how many reach the last. Event-driven time.
    fn lossy_chain(loss: f64, count: u64) -> usize {
        let mut nodes: Vec<Node> = (0..4)
            .map(|i| Node::new(NodeConfig::default(), i + 11))
            .collect();
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut random = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut air: Vec<(u64, usize, Vec<u8>)> = Vec::new();
        let mut delivered = HashSet::new();
        let mut sent = 0;
        let mut now = 0;
        loop {
            if sent < count && now >= sent * 3000 {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(sent + 1).to_le_bytes());
                let message = RadioMessage::seal(&key(), MessageId(id), 1, "A", "status");
                nodes[0].send(now, &message).unwrap();
                sent += 1;
            }
            for i in 0..nodes.len() {
                let mut actions = nodes[i].poll(now);
                for (_, _, bytes) in air.iter().filter(|(at, to, _)| *at == now && *to == i) {
                    actions.extend(nodes[i].receive(now, bytes).unwrap());
                }
                for action in actions {
                    match action {
                        Action::Transmit(bytes) => {
                            for j in [i.wrapping_sub(1), i + 1] {
                                if j < nodes.len() && random() >= loss {
                                    air.push((now + 150, j, bytes.clone()));
                                }
                            }
                        }
                        Action::Deliver(message) if i == 3 => {
                            delivered.insert(message.key);
                        }
                        _ => {}
                    }
                }
            }
            air.retain(|(at, _, _)| *at > now);
            let next = [
                air.iter().map(|(at, _, _)| *at).min(),
                nodes.iter().filter_map(Node::next_wakeup).min(),
                (sent < count).then_some(sent * 3000),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(next) => now = next.max(now + 1),
                None => return delivered.len(),
            }
        }
    }

    #[test]
    fn with_a_fifth_of_frames_lost_on_every_link_every_message_crosses_the_chain() {
        // An acknowledgement meant for the node upstream once confirmed a relay further
        // along too, and a few messages in a hundred died at the last hop.
        assert_eq!(lossy_chain(0.2, 300), 300);
    }
}
