//! A whole message as the radio carries it, sealed with the room key.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;

use super::packet::{FrameKey, MessageKey, Packet};
use super::{
    RadioError, HEADER_BYTES, MAX_FRAGMENTS, MAX_FRAME_BYTES, MAX_HOP_LIMIT, MAX_RADIO_NAME_BYTES,
    MIN_FRAME_BYTES, RADIO_VERSION, TIME_BYTES,
};
use crate::crypto::{RoomKey, NONCE_BYTES, TAG_BYTES};
use crate::envelope::{Kind, MessageId, RoomId, SenderId, Signature};
use crate::Envelope;

const RADIO_KEY_INFO: &[u8] = b"fieldmesh/radio-key/v1";
const NONCE_PREFIX: &[u8; 4] = b"FMr1";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::test_support::{key, text};
    use crate::radio::{DEFAULT_FRAME_BYTES, DEFAULT_HOP_LIMIT, MESSAGE_OVERHEAD_BYTES};

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
}
