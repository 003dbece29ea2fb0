//! The message envelope: what a sender makes, every hop stores and forwards, and nobody but
//! the readers of the room interprets.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::{DecodeError, EncodeError};

/// Format version of an encoded [`Envelope`] (its first byte). Version 2: sealed and signed.
pub const ENVELOPE_VERSION: u8 = 2;
/// Largest body an envelope may carry. Text is far smaller; attachments travel separately.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest encoded envelope: the body plus room for the header fields.
pub const MAX_ENVELOPE_BYTES: usize = MAX_BODY_BYTES + 256;

/// A message id chosen by the sender: 128 random bits. Every store and every hop is idempotent
/// on it, so a message that arrives twice is kept and shown once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 16]);

/// The room a message belongs to, as the server sees it: 128 bits that let it route and store
/// without knowing the room's name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomId(pub [u8; 16]);

/// Who sent a message: the device's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SenderId(pub [u8; 32]);

/// What the body of an envelope holds, so a reader knows how to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A chat message: the body is a [`crate::TextBody`].
    Text,
    /// A chat message that came over the radio: the body is a [`crate::radio::RadioMessage`]
    /// payload, sealed with the room key and not signed.
    Radio,
    /// A live position (the body is a [`crate::TextBody`] with a
    /// [`crate::body::Signal::Live`]): stored and delivered like a message, but not news
    /// (never counted as unread). The server learns that someone shares where they are, and
    /// how often, not where.
    Live,
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        write_hex(f, &self.0[..8])?;
        write!(f, "…)")
    }
}

// serde derives stop at 32-element arrays; a signature is written as its 64 bytes, no prefix.
impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes64;
        impl<'de> serde::de::Visitor<'de> for Bytes64 {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        deserializer.deserialize_tuple(64, Bytes64)
    }
}

/// One message as it travels: a header the server may read, a sealed body only the room's
/// readers can open, and the sender's signature over both (see [`crate::crypto`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender-made unique id.
    pub id: MessageId,
    /// Room the message is posted in.
    pub room: RoomId,
    /// Device that made the message.
    pub sender: SenderId,
    /// Sender's clock when the message was written, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// How to read the body once opened.
    pub kind: Kind,
    /// The 24-byte XChaCha20-Poly1305 nonce the body was sealed with.
    pub nonce: [u8; 24],
    /// The sealed body (ciphertext and 16-byte tag): only the room's readers can open it.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The sender's Ed25519 signature over the header and the sealed body.
    pub signature: Signature,
}

impl Envelope {
    /// Checks the limits a decoded or freshly made envelope must keep.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(EncodeError::TooLarge {
                len: self.body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        Ok(())
    }

    /// Encodes the envelope for storage or transmission: a version byte, then postcard.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        encode_versioned(ENVELOPE_VERSION, self, MAX_ENVELOPE_BYTES)
    }

    /// Decodes bytes made by [`Envelope::encode`], checking every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope: Self = decode_versioned(ENVELOPE_VERSION, bytes, MAX_ENVELOPE_BYTES)?;
        envelope
            .validate()
            .map_err(|_| DecodeError::Malformed("body larger than the limit"))?;
        Ok(envelope)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

macro_rules! hex_id {
    ($name:ident, $len:literal) => {
        impl $name {
            /// Parses the lowercase or uppercase hex form made by `Display`.
            pub fn from_hex(text: &str) -> Option<Self> {
                crate::hex::decode::<$len>(text).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, &self.0)?;
                write!(f, ")")
            }
        }
    };
}
hex_id!(MessageId, 16);
hex_id!(RoomId, 16);
hex_id!(SenderId, 32);

/// Longest room name, in characters, that people can type.
pub const MAX_ROOM_NAME_CHARS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body_len: usize) -> Envelope {
        Envelope {
            id: MessageId([7; 16]),
            room: RoomId([4; 16]),
            sender: SenderId([9; 32]),
            created_at_ms: 1_764_000_000_000,
            kind: Kind::Text,
            nonce: [3; 24],
            body: (0..body_len).map(|i| i as u8).collect(),
            signature: Signature([6; 64]),
        }
    }

    #[test]
    fn envelope_round_trips_through_bytes() {
        for len in [0, 1, 200, MAX_BODY_BYTES] {
            let envelope = sample(len);
            let bytes = envelope.encode().unwrap();
            assert_eq!(bytes[0], ENVELOPE_VERSION);
            assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
            assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        }
    }

    #[test]
    fn header_overhead_is_small() {
        let bytes = sample(0).encode().unwrap();
        // version + id + room + sender + varint time + kind + nonce + body length + signature
        assert!(
            bytes.len() <= 1 + 16 + 16 + 32 + 10 + 1 + 24 + 1 + 64,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let bytes = sample(40).encode().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(
                Envelope::decode(&bytes[..cut]),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let huge = vec![ENVELOPE_VERSION; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            Envelope::decode(&huge),
            Err(DecodeError::TooLarge {
                len: MAX_ENVELOPE_BYTES + 1,
                max: MAX_ENVELOPE_BYTES
            })
        );
    }

    #[test]
    fn oversized_body_cannot_be_encoded() {
        let envelope = sample(MAX_BODY_BYTES + 1);
        assert!(matches!(
            envelope.encode(),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_version_is_named() {
        let mut bytes = sample(3).encode().unwrap();
        bytes[0] = 3;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnknownVersion(3))
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut bytes = sample(3).encode().unwrap();
        bytes.push(0);
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_kind_is_malformed() {
        let bytes = sample(0).encode().unwrap();
        // The kind tag sits right before the 1-byte body length at the end.
        let mut bad = bytes.clone();
        // The kind tag sits before the nonce, the 1-byte body length and the signature.
        let kind_at = bad.len() - 64 - 1 - 24 - 1;
        bad[kind_at] = 0x7f;
        assert!(matches!(
            Envelope::decode(&bad),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn ids_round_trip_through_hex() {
        let id = MessageId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(MessageId::from_hex(&id.to_string()), Some(id));
        assert_eq!(MessageId::from_hex("zz"), None);
        assert_eq!(MessageId::from_hex(&"é".repeat(16)), None);
    }
}
