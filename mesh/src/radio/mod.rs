//! The radio form of a message, and the relay that floods it between camps.
//!
//! A LoRa frame carries a couple of hundred bytes at a few kilobits per second, so the radio
//! form is not the [`Envelope`]: it drops the 64-byte signature, the 32-byte sender key and the
//! 24-byte nonce, and keeps what a relay needs (a dedupe key, a hop limit, a fragment number)
//! and what a reader needs (a send time and the sealed text, authenticated by the room key).
//!
//! Every frame starts with the same 12-byte header and ends with an 8-byte tag under the mesh
//! network key (see [`network`]: a frame without the right tag changes nothing anywhere):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `version:2 · type:2 · catch-up:1 · hop limit:3` |
//! | 6 | message id (the first 6 bytes of the envelope id; random) |
//! | 4 | room tag (the first 4 bytes of the room id) |
//! | 1 | `fragment index:4 · fragment count − 1:4` |
//!
//! Between them, a data frame carries its chunk of the message payload: the send time (4 bytes, Unix
//! seconds) followed by the XChaCha20-Poly1305 ciphertext and its 16-byte tag. An
//! acknowledgement is the header alone. The nonce is built from the header fields (which are
//! unique per room key because the id is random) and the header is the associated data, so
//! a relay can neither read nor alter a message; it may only lower the hop limit, which is
//! left out of the associated data for that reason (the network tag covers it).
//!
//! Per-message overhead in one frame: 12 header + 4 time + 16 room tag + 8 network tag = 40
//! bytes, plus the author's name inside the ciphertext (1 length byte + up to
//! [`MAX_RADIO_NAME_BYTES`]).
//!
//! Besides data and acknowledgements there is a third frame type, the *summary* (the first
//! byte, a salt, a send time and a 128-byte Bloom filter of the message keys a node holds;
//! see [`Packet::Summary`]): every node sends one about once a minute while the mesh is
//! busy, and a neighbour that holds a message the summary lacks sends it again, as data frames
//! with the catch-up bit set (kept, not flooded). A camp that missed every neighbour's copy,
//! or was off for a while, catches up this way, oldest first, a few messages per summary.
//!
//! Radio messages are authenticated by the room key only: anyone holding the room key could
//! write one under another name. Readers show them as "via radio" and never as verified. A
//! *receipt* is a radio message too (a flag in its first sealed byte): a camp's phone that
//! opened a message sends one back naming the camp, so the sender learns "delivered to camp X"
//! from someone who holds the room key, not merely from a relay.

#[cfg(feature = "contract")]
pub mod contract;
pub mod driver;
pub mod link;
pub mod message;
pub mod network;
pub mod node;
pub mod packet;
pub mod reassembly;

pub use driver::{Driver, DriverConfig, DriverStats, Event, OwnMessage};
pub use message::{RadioMessage, RadioText};
pub use network::{NetworkKey, NetworkKeyError, FRAME_TAG_BYTES};
pub use node::{Action, Node, NodeConfig, NodeStats};
pub use packet::{FrameKey, MessageKey, Packet};
pub use reassembly::Reassembler;

use crate::crypto::TAG_BYTES;

/// Radio format version (the top two bits of the first byte). Version 2 added the network tag.
pub const RADIO_VERSION: u8 = 2;
/// Bytes before the payload in every frame.
pub const HEADER_BYTES: usize = 12;
/// Bytes of the send time at the start of a message payload.
pub const TIME_BYTES: usize = 4;
/// Fixed bytes a message adds to its text in a single frame: header, send time, room-key tag
/// and network tag.
pub const MESSAGE_OVERHEAD_BYTES: usize = HEADER_BYTES + TIME_BYTES + TAG_BYTES + FRAME_TAG_BYTES;
/// Bytes of a frame around its chunk of payload: the header and the network tag.
pub const FRAMING_BYTES: usize = HEADER_BYTES + FRAME_TAG_BYTES;
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
pub const MAX_PAYLOAD_BYTES: usize = MAX_FRAGMENTS * (MAX_FRAME_BYTES - FRAMING_BYTES);
/// Longest author name carried over the radio, in bytes (cut at a character boundary).
pub const MAX_RADIO_NAME_BYTES: usize = 24;
/// The over-the-air bitrate assumed when nothing else is said: LoRa at spreading factor 7,
/// 125 kHz, coding rate 4/5.
pub const DEFAULT_BITRATE_BPS: u32 = 5470;

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
    /// The frame's network tag is wrong: another mesh, a forgery, or an old recording.
    #[error("the radio frame is not from this mesh (wrong network tag)")]
    Unauthenticated,
    /// The frame's tag is right for another time: the sender's clock is off by about this
    /// many minutes (negative: behind ours), or the frame was recorded and replayed.
    #[error("the radio frame was tagged {minutes} minutes away from this clock (a wrong clock, or a replay)")]
    ClockSkew {
        /// Minutes between the sender's clock and ours.
        minutes: i64,
    },
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::crypto::RoomKey;

    pub(crate) fn key() -> RoomKey {
        RoomKey::from_bytes([7; 32])
    }

    /// What a sealed frame says, without checking its network tag.
    pub(crate) fn unsealed(bytes: &[u8]) -> Result<super::Packet, super::RadioError> {
        let end = bytes
            .len()
            .checked_sub(super::FRAME_TAG_BYTES)
            .ok_or(super::RadioError::Truncated)?;
        super::Packet::decode(&bytes[..end])
    }

    pub(crate) fn text(len: usize) -> String {
        "abcdefghij".repeat(len / 10 + 1)[..len].to_string()
    }
}
