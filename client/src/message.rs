//! A stored message opened with its room's key: what a reader shows, the same for the page
//! and the terminal client.

use mesh::body::clean_display_name;
use mesh::crypto::RoomKey;
use mesh::radio::RadioMessage;
use mesh::{Kind, MessageId, SenderId, StoredMessage, TextBody};

/// A stored message, opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    /// Its id.
    pub id: MessageId,
    /// Its sequence number on the server it came from.
    pub seq: u64,
    /// When that server first stored it (server clock, ms since the epoch).
    pub received_at_ms: u64,
    /// When its author wrote it (their clock, ms since the epoch).
    pub created_at_ms: u64,
    /// The device that signed it; `None` for a message that came over the radio, which
    /// carries no signature (its author's name is only what they said).
    pub sender: Option<SenderId>,
    /// What it says: author's name, text, files, place, signal.
    pub body: TextBody,
    /// A live position update rather than news.
    pub live: bool,
}

/// Opens `stored` with the room's `key`. `None` when it does not verify or decrypt, or is a
/// radio receipt: such a message is never shown, and never as from its claimed sender. A
/// signed message whose body does not decode shows as unreadable, from its real sender.
pub fn open(stored: &StoredMessage, key: &RoomKey) -> Option<Opened> {
    let envelope = &stored.envelope;
    let (sender, body) = if envelope.kind == Kind::Radio {
        let opened = RadioMessage::from_envelope(envelope)?
            .open(key)
            .ok()
            .filter(|opened| opened.receipt_for.is_none())?;
        let body = TextBody {
            author: clean_display_name(&opened.author).unwrap_or_else(|| "someone".into()),
            text: opened.text,
            attachments: Vec::new(),
            position: opened.position,
            signal: opened.signal,
        };
        (None, body)
    } else {
        let plaintext = envelope.open(key).ok()?;
        let body = TextBody::decode(&plaintext).unwrap_or_else(|_| TextBody {
            author: "unknown".into(),
            text: "(this message could not be read)".into(),
            attachments: Vec::new(),
            position: None,
            signal: None,
        });
        (Some(envelope.sender), body)
    };
    Some(Opened {
        id: envelope.id,
        seq: stored.seq,
        received_at_ms: stored.received_at_ms,
        created_at_ms: envelope.created_at_ms,
        sender,
        body,
        live: envelope.kind == Kind::Live,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{seal_body, Fresh};
    use mesh::crypto::Identity;

    fn stored(envelope: mesh::Envelope) -> StoredMessage {
        StoredMessage {
            seq: 4,
            received_at_ms: 9,
            envelope,
        }
    }

    #[test]
    fn a_signed_message_opens_with_its_sender_and_a_forged_one_not_at_all() {
        let identity = Identity::from_seed(&[5; 64]);
        let key = RoomKey::from_bytes([8; 32]);
        let body = TextBody::new("Ana", "Water at the school").unwrap();
        let fresh = Fresh {
            id: [1; 16],
            nonce: [2; 24],
            now_ms: 77,
        };
        let sealed = seal_body(&identity, &key, &body, None, fresh).unwrap();
        let opened = open(&stored(sealed.envelope.clone()), &key).unwrap();
        assert_eq!(opened.sender, Some(identity.sender()));
        assert_eq!((opened.seq, opened.created_at_ms), (4, 77));
        assert_eq!(opened.body, body);
        assert!(open(
            &stored(sealed.envelope.clone()),
            &RoomKey::from_bytes([9; 32])
        )
        .is_none());
        let mut forged = sealed.envelope;
        forged.sender = Identity::from_seed(&[6; 64]).sender();
        assert!(open(&stored(forged), &key).is_none());
    }
}
