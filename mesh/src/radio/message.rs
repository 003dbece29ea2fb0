//! A whole message as the radio carries it, sealed with the room key.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;

use super::packet::{FrameKey, MessageKey, Packet};
use super::{
    RadioError, FRAMING_BYTES, MAX_FRAGMENTS, MAX_FRAME_BYTES, MAX_HOP_LIMIT, MAX_RADIO_NAME_BYTES,
    MIN_FRAME_BYTES, RADIO_VERSION, TIME_BYTES,
};
use sha2::{Digest, Sha256};

use crate::body::Signal;
use crate::crypto::{RoomKey, NONCE_BYTES, TAG_BYTES};
use crate::envelope::{Kind, MessageId, RoomId, SenderId, Signature};
use crate::geo::{Position, POSITION_BYTES};
use crate::Envelope;

const RADIO_KEY_INFO: &[u8] = b"fieldmesh/radio-key/v1";
const NONCE_PREFIX: &[u8; 4] = b"FMr1";
const RECEIPT_ID_DOMAIN: &[u8] = b"fieldmesh/radio-receipt-id/v1\0";
const ENVELOPE_ID_DOMAIN: &[u8] = b"fieldmesh/radio-envelope-id/v2\0";
/// Set in the first sealed byte (beside the name's length) of a receipt.
const RECEIPT_FLAG: u8 = 0x80;
/// Set in the first sealed byte when a position (ten bytes) follows the name.
const POSITION_FLAG: u8 = 0x40;
/// Set in the first sealed byte when a signal (a kind byte and its data) follows the name
/// (and the position).
const SIGNAL_FLAG: u8 = 0x20;
/// The name's length, below the flags.
const NAME_MASK: u8 = 0x1f;
const SOS: u8 = 1;
const SAFE: u8 = 2;
const COMING: u8 = 3;
const LIVE: u8 = 4;

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
    /// For a receipt: the radio id of the message it confirms (then `author` is the camp
    /// that has it, and `text` is empty).
    pub receipt_for: Option<[u8; 6]>,
    /// Where the author was, when they said.
    pub position: Option<Position>,
    /// An SOS, its end or answer, or a live position.
    pub signal: Option<Signal>,
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
        Self::seal_placed(key, id, sent_at_s, author, text, None, None)
    }

    /// Seals a message with a position (ten bytes more) and a signal (one to seven bytes).
    pub fn seal_placed(
        key: &RoomKey,
        id: MessageId,
        sent_at_s: u32,
        author: &str,
        text: &str,
        position: Option<Position>,
        signal: Option<Signal>,
    ) -> Self {
        let author = radio_name(author);
        let mut plaintext = Vec::with_capacity(1 + author.len() + 17 + text.len());
        let mut first = author.len() as u8;
        if position.is_some() {
            first |= POSITION_FLAG;
        }
        if signal.is_some() {
            first |= SIGNAL_FLAG;
        }
        plaintext.push(first);
        plaintext.extend_from_slice(author.as_bytes());
        if let Some(position) = position {
            plaintext.extend_from_slice(&position.to_bytes());
        }
        match signal {
            None => {}
            Some(Signal::Sos) => plaintext.push(SOS),
            Some(Signal::Safe { of }) => {
                plaintext.push(SAFE);
                plaintext.extend_from_slice(&of);
            }
            Some(Signal::Coming { of }) => {
                plaintext.push(COMING);
                plaintext.extend_from_slice(&of);
            }
            Some(Signal::Live { until_s }) => {
                plaintext.push(LIVE);
                plaintext.extend_from_slice(&until_s.to_be_bytes());
            }
        }
        plaintext.extend_from_slice(text.as_bytes());
        Self::seal_plaintext(
            key,
            MessageKey::of(key.room_id(), id),
            sent_at_s,
            &plaintext,
        )
    }

    /// What `seal` makes of `text` when it fits in frames of `frame_bytes`. Otherwise, when
    /// `cut` (a call for help or its answer goes on the air whatever its note), what it makes
    /// of as much of `text` as fits, ending in "…"; `None` when nothing fits.
    pub fn sealed_to_fit(
        text: &str,
        frame_bytes: usize,
        cut: bool,
        seal: impl Fn(&str) -> RadioMessage,
    ) -> Option<RadioMessage> {
        let whole = seal(text);
        if whole.fits(frame_bytes) {
            return Some(whole);
        }
        if !cut {
            return None;
        }
        // The longest start of the text (in characters) that fits, found by halving.
        let ends: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
        let shortened = |chars: usize| seal(&format!("{}…", &text[..ends[chars]]));
        let (mut fits, mut too_long) = (0, ends.len());
        if !shortened(0).fits(frame_bytes) {
            return None;
        }
        while too_long - fits > 1 {
            let middle = (fits + too_long) / 2;
            if shortened(middle).fits(frame_bytes) {
                fits = middle;
            } else {
                too_long = middle;
            }
        }
        Some(shortened(fits))
    }

    /// A receipt from `camp` for the message `of` in `key`'s room: proof, from a holder of the
    /// room key, that the message reached that camp. Every phone of one camp makes the same
    /// radio id for it, so the camp's radio sends it once however many phones read the message.
    pub fn seal_receipt(key: &RoomKey, of: MessageKey, sent_at_s: u32, camp: &str) -> Self {
        let camp = radio_name(camp);
        let digest = Sha256::new()
            .chain_update(RECEIPT_ID_DOMAIN)
            .chain_update(key.room_id().0)
            .chain_update(of.id)
            .chain_update(camp.as_bytes())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        let mut plaintext = Vec::with_capacity(1 + camp.len() + of.id.len());
        plaintext.push(RECEIPT_FLAG | camp.len() as u8);
        plaintext.extend_from_slice(camp.as_bytes());
        plaintext.extend_from_slice(&of.id);
        Self::seal_plaintext(
            key,
            MessageKey::of(key.room_id(), MessageId(id)),
            sent_at_s,
            &plaintext,
        )
    }

    fn seal_plaintext(
        key: &RoomKey,
        message: MessageKey,
        sent_at_s: u32,
        plaintext: &[u8],
    ) -> Self {
        let sealed = key
            .derived_cipher(RADIO_KEY_INFO)
            .encrypt(
                XNonce::from_slice(&nonce(&message, sent_at_s)),
                Payload {
                    msg: plaintext,
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
        RadioText::from_plaintext(&plaintext, sent_at_s)
    }
}

impl RadioText {
    /// Reads what a radio message says once opened: `plaintext` as sealed by
    /// [`RadioMessage::seal_placed`] or [`RadioMessage::seal_receipt`]. A length or flag that
    /// does not match its bytes is [`RadioError::Malformed`].
    pub fn from_plaintext(plaintext: &[u8], sent_at_s: u32) -> Result<Self, RadioError> {
        let (&first, rest) = plaintext.split_first().ok_or(RadioError::Undecryptable)?;
        let name_len = usize::from(first & NAME_MASK);
        if name_len > rest.len().min(MAX_RADIO_NAME_BYTES) {
            return Err(RadioError::Malformed("author name length"));
        }
        let (author, mut rest) = rest.split_at(name_len);
        let author = String::from_utf8(author.to_vec())
            .map_err(|_| RadioError::Malformed("author name is not UTF-8"))?;
        if first & RECEIPT_FLAG != 0 {
            let of: [u8; 6] = rest
                .try_into()
                .map_err(|_| RadioError::Malformed("receipt of another length"))?;
            return Ok(RadioText {
                author,
                text: String::new(),
                sent_at_s,
                receipt_for: Some(of),
                position: None,
                signal: None,
            });
        }
        let mut take = |n: usize, what: &'static str| -> Result<&[u8], RadioError> {
            if rest.len() < n {
                return Err(RadioError::Malformed(what));
            }
            let (taken, left) = rest.split_at(n);
            rest = left;
            Ok(taken)
        };
        let position = if first & POSITION_FLAG != 0 {
            let bytes = take(POSITION_BYTES, "position cut short")?;
            Some(
                Position::from_bytes(bytes)
                    .map_err(|_| RadioError::Malformed("position out of range"))?,
            )
        } else {
            None
        };
        let signal = if first & SIGNAL_FLAG != 0 {
            let kind = take(1, "signal cut short")?[0];
            let six = |bytes: &[u8]| -> [u8; 6] { bytes.try_into().expect("six bytes") };
            Some(match kind {
                SOS => Signal::Sos,
                SAFE => Signal::Safe {
                    of: six(take(6, "signal cut short")?),
                },
                COMING => Signal::Coming {
                    of: six(take(6, "signal cut short")?),
                },
                LIVE => Signal::Live {
                    until_s: u32::from_be_bytes(
                        take(4, "signal cut short")?.try_into().expect("four bytes"),
                    ),
                },
                _ => return Err(RadioError::Malformed("unknown signal")),
            })
        } else {
            None
        };
        Ok(RadioText {
            author,
            text: String::from_utf8(rest.to_vec())
                .map_err(|_| RadioError::Malformed("text is not UTF-8"))?,
            sent_at_s,
            receipt_for: None,
            position,
            signal,
        })
    }
}

impl RadioMessage {
    /// Whether the message fits in the most frames a message may have, at `frame_bytes`.
    pub fn fits(&self, frame_bytes: usize) -> bool {
        !self.payload.is_empty() && self.frame_count(frame_bytes) <= MAX_FRAGMENTS
    }

    /// How many frames of `frame_bytes` this message needs.
    pub fn frame_count(&self, frame_bytes: usize) -> usize {
        self.payload
            .len()
            .div_ceil(frame_bytes.clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES) - FRAMING_BYTES)
    }

    /// Splits the message into data frames of at most `frame_bytes` bytes.
    pub fn fragments(&self, hop_limit: u8, frame_bytes: usize) -> Result<Vec<Packet>, RadioError> {
        let chunk_bytes = frame_bytes.clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES) - FRAMING_BYTES;
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

    /// The envelope id a receiving server stores this message under: the radio id, the room
    /// tag and a hash of the payload. The same message is stored once however often it is
    /// heard, and a frame that squats a heard id with other bytes is another message, so it
    /// cannot hide the real one.
    pub fn envelope_id(&self) -> MessageId {
        let digest = Sha256::new()
            .chain_update(ENVELOPE_ID_DOMAIN)
            .chain_update(&self.payload)
            .finalize();
        let mut id = [0u8; 16];
        id[..6].copy_from_slice(&self.key.id);
        id[6..10].copy_from_slice(&self.key.room);
        id[10..].copy_from_slice(&digest[..6]);
        MessageId(id)
    }

    /// The envelope a server stores and hands to its clients for a message that came from
    /// the radio: kind [`Kind::Radio`], the radio payload as body, no signature.
    pub fn to_envelope(&self, room: RoomId) -> Envelope {
        Envelope {
            id: self.envelope_id(),
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
        let message = Self {
            key: MessageKey::of(envelope.room, envelope.id),
            payload: envelope.body.clone(),
        };
        (message.envelope_id() == envelope.id).then_some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::test_support::{key, text};
    use crate::radio::{
        NetworkKey, DEFAULT_FRAME_BYTES, DEFAULT_HOP_LIMIT, MESSAGE_OVERHEAD_BYTES,
    };

    #[test]
    fn a_190_character_message_fits_one_frame_with_40_bytes_of_overhead() {
        let message =
            RadioMessage::seal(&key(), MessageId([1; 16]), 1_800_000_000, "Ana", &text(189));
        let frames = message
            .fragments(DEFAULT_HOP_LIMIT, DEFAULT_FRAME_BYTES)
            .unwrap();
        assert_eq!(frames.len(), 1);
        let bytes = frames[0].seal(&NetworkKey::open_mesh(), 0);
        assert_eq!(MESSAGE_OVERHEAD_BYTES, 40);
        assert_eq!(bytes.len(), MESSAGE_OVERHEAD_BYTES + 1 + 3 + 189);
        assert!(bytes.len() <= DEFAULT_FRAME_BYTES);
        let no_name = RadioMessage::seal(&key(), MessageId([1; 16]), 1, "", &text(192));
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
    fn a_call_for_help_with_a_long_note_goes_on_the_air_cut_and_a_long_message_does_not() {
        let here = Position::new(-54.8, -68.3, 9.0).unwrap();
        // Longer than the most frames a message may take, with a character of two bytes.
        let note = format!("é{}", text(MAX_FRAGMENTS * DEFAULT_FRAME_BYTES));
        let seal = |signal: Option<Signal>| {
            move |text: &str| {
                RadioMessage::seal_placed(
                    &key(),
                    MessageId([8; 16]),
                    5,
                    "Ana",
                    text,
                    Some(here),
                    signal,
                )
            }
        };
        assert!(
            RadioMessage::sealed_to_fit(&note, DEFAULT_FRAME_BYTES, false, seal(None)).is_none()
        );
        let sos =
            RadioMessage::sealed_to_fit(&note, DEFAULT_FRAME_BYTES, true, seal(Some(Signal::Sos)))
                .expect("an SOS goes");
        assert!(sos.fits(DEFAULT_FRAME_BYTES));
        let opened = sos.open(&key()).unwrap();
        assert_eq!(opened.signal, Some(Signal::Sos));
        assert_eq!(opened.position, Some(here));
        let kept = opened.text.strip_suffix('…').expect("marked as cut");
        assert!(
            note.starts_with(kept) && kept.len() > 1_000,
            "{} bytes kept",
            kept.len()
        );
        // One character more would not fit.
        let longer = format!("{}{}…", kept, &note[kept.len()..].chars().next().unwrap());
        assert!(!seal(Some(Signal::Sos))(&longer).fits(DEFAULT_FRAME_BYTES));
        // What fits goes whole.
        let short =
            RadioMessage::sealed_to_fit("at the pier", DEFAULT_FRAME_BYTES, true, seal(None))
                .unwrap();
        assert_eq!(short.open(&key()).unwrap().text, "at the pier");
    }

    #[test]
    fn a_position_adds_ten_bytes_and_a_signal_one_to_seven() {
        let here = Position::new(-54.8, -68.3, 9.0).unwrap();
        let plain = RadioMessage::seal(&key(), MessageId([6; 16]), 5, "Ana", "at the pier");
        let placed = RadioMessage::seal_placed(
            &key(),
            MessageId([6; 16]),
            5,
            "Ana",
            "at the pier",
            Some(here),
            None,
        );
        assert_eq!(placed.payload.len() - plain.payload.len(), POSITION_BYTES);
        let opened = placed.open(&key()).unwrap();
        assert_eq!(
            (opened.text.as_str(), opened.position),
            ("at the pier", Some(here))
        );
        assert_eq!(opened.signal, None);
        assert_eq!(plain.open(&key()).unwrap().position, None);
        for (signal, bytes) in [
            (Signal::Sos, 1),
            (
                Signal::Safe {
                    of: [1, 2, 3, 4, 5, 6],
                },
                7,
            ),
            (Signal::Coming { of: [9; 6] }, 7),
            (
                Signal::Live {
                    until_s: 1_900_000_000,
                },
                5,
            ),
        ] {
            let sealed = RadioMessage::seal_placed(
                &key(),
                MessageId([7; 16]),
                5,
                "Ana",
                "",
                Some(here),
                Some(signal),
            );
            let opened = sealed.open(&key()).unwrap();
            assert_eq!(opened.signal, Some(signal));
            assert_eq!(opened.position, Some(here));
            assert_eq!(opened.text, "");
            let bare = RadioMessage::seal(&key(), MessageId([7; 16]), 5, "Ana", "");
            assert_eq!(
                sealed.payload.len() - bare.payload.len(),
                POSITION_BYTES + bytes
            );
        }
        // A flag with its bytes missing, or a position beyond the pole, is refused.
        for plaintext in [
            vec![POSITION_FLAG | 1, b'A', 0, 0],
            vec![SIGNAL_FLAG | 1, b'A'],
            vec![SIGNAL_FLAG | 1, b'A', SAFE, 1, 2],
            vec![SIGNAL_FLAG | 1, b'A', 99],
            [
                vec![POSITION_FLAG | 1, b'A'],
                900_000_001i32.to_be_bytes().to_vec(),
                vec![0; 6],
            ]
            .concat(),
        ] {
            let bad = RadioMessage::seal_plaintext(
                &key(),
                MessageKey::of(key().room_id(), MessageId([8; 16])),
                5,
                &plaintext,
            );
            assert!(
                matches!(bad.open(&key()), Err(RadioError::Malformed(_))),
                "{plaintext:?}"
            );
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(30);
        let message = RadioMessage::seal(&key(), MessageId([3; 16]), 1, &name, "hi");
        let opened = message.open(&key()).unwrap();
        assert_eq!(opened.author, "é".repeat(12));
    }

    #[test]
    fn receipts_name_the_camp_and_the_message_and_need_the_room_key() {
        let message = RadioMessage::seal(&key(), MessageId([4; 16]), 10, "Ana", "water at 5");
        let receipt = RadioMessage::seal_receipt(&key(), message.key, 20, "North camp");
        let opened = receipt.open(&key()).unwrap();
        assert_eq!(opened.author, "North camp");
        assert_eq!(opened.receipt_for, Some(message.key.id));
        assert_eq!(opened.text, "");
        assert_eq!(message.open(&key()).unwrap().receipt_for, None);
        // Every phone of the camp makes the same radio id, so the camp sends one receipt.
        let again = RadioMessage::seal_receipt(&key(), message.key, 99, "North camp");
        assert_eq!(again.key, receipt.key);
        assert_ne!(
            RadioMessage::seal_receipt(&key(), message.key, 20, "South camp").key,
            receipt.key
        );
        // Only the room key makes or opens one.
        let other = RoomKey::from_bytes([8; 32]);
        assert!(receipt.open(&other).is_err());
        assert_ne!(
            RadioMessage::seal_receipt(&other, message.key, 20, "North camp").key,
            receipt.key
        );
    }

    #[test]
    fn a_squatted_radio_id_is_another_envelope() {
        let room_key = key();
        let real = RadioMessage::seal(&room_key, MessageId([5; 16]), 1, "A", "real");
        let squat = RadioMessage {
            key: real.key,
            payload: vec![0; 40],
        };
        assert_ne!(real.envelope_id(), squat.envelope_id());
        assert_eq!(real.envelope_id().0[..6], real.key.id);
        // An envelope whose id does not match its body is not taken as a radio message.
        let mut envelope = real.to_envelope(room_key.room_id());
        envelope.body = squat.payload.clone();
        assert_eq!(RadioMessage::from_envelope(&envelope), None);
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
