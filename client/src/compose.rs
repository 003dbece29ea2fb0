//! A message sealed for a room: the envelope the server stores, and its radio form for the
//! server's radio (which never sees the text: the radio form is sealed here too).

use mesh::body::{radio_text, Signal};
use mesh::crypto::{seal, Draft, Identity, RoomKey, NONCE_BYTES};
use mesh::radio::{RadioMessage, DEFAULT_FRAME_BYTES};
use mesh::{Envelope, Kind, MessageId, TextBody};

/// What sealing needs fresh each time: the device's clock and random bytes.
#[derive(Clone, Copy, Debug)]
pub struct Fresh {
    /// The message id (16 random bytes).
    pub id: [u8; 16],
    /// The nonce (24 random bytes).
    pub nonce: [u8; NONCE_BYTES],
    /// The device's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// A sealed message.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// The envelope, signed.
    pub envelope: Envelope,
    /// The envelope encoded, as the outbox keeps it.
    pub bytes: Vec<u8>,
    /// Its radio form (empty when it is too long for the radio).
    pub radio: Vec<u8>,
}

/// `body` sealed by `identity` for the room of `key`. Files stay on the server; the radio form
/// says they exist (in one line when a line each is too long). A text longer than the radio
/// carries goes only to this server's phones, but for a call for help or its answer, which
/// goes with its note cut. `camp` names this camp in the radio form's file markers.
pub fn seal_body(
    identity: &Identity,
    key: &RoomKey,
    body: &TextBody,
    camp: Option<&str>,
    fresh: Fresh,
) -> Result<Sealed, String> {
    let plaintext = body
        .encode()
        .map_err(|error| format!("Not sent: {error}."))?;
    let draft = Draft {
        id: MessageId(fresh.id),
        created_at_ms: fresh.now_ms,
        // A live position is not news: the server counts it as no unread message.
        kind: if matches!(body.signal, Some(Signal::Live { .. })) {
            Kind::Live
        } else {
            Kind::Text
        },
        plaintext: &plaintext,
    };
    let envelope =
        seal(identity, key, draft, fresh.nonce).map_err(|error| format!("Not sent: {error}."))?;
    let bytes = envelope
        .encode()
        .map_err(|error| format!("Not sent: {error}."))?;
    let urgent = body.signal.is_some_and(|s| s.is_urgent());
    let seal = |text: &str| {
        RadioMessage::seal_placed(
            key,
            envelope.id,
            (envelope.created_at_ms / 1000) as u32,
            &body.author,
            text,
            body.position,
            body.signal,
        )
    };
    let texts = [false, true]
        .into_iter()
        .take(if body.attachments.is_empty() { 1 } else { 2 })
        .map(|compact| radio_text(&body.text, &body.attachments, camp, compact))
        .collect::<Vec<_>>();
    let radio = texts
        .iter()
        .find_map(|text| RadioMessage::sealed_to_fit(text, DEFAULT_FRAME_BYTES, false, seal))
        .or_else(|| {
            let last = texts.last()?;
            RadioMessage::sealed_to_fit(last, DEFAULT_FRAME_BYTES, urgent, seal)
        })
        .map(|radio| radio.payload)
        .unwrap_or_default();
    Ok(Sealed {
        envelope,
        bytes,
        radio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(byte: u8) -> Fresh {
        Fresh {
            id: [byte; 16],
            nonce: [byte; NONCE_BYTES],
            now_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_short_text_is_sealed_signed_and_has_a_radio_form_that_opens_to_it() {
        let identity = Identity::from_seed(&[7; 64]);
        let key = RoomKey::from_bytes([3; 32]);
        let body = TextBody::new("Gauge", "River at 2.4 m").unwrap();
        let sealed = seal_body(&identity, &key, &body, None, fresh(1)).unwrap();
        assert_eq!(sealed.envelope.kind, Kind::Text);
        assert_eq!(Envelope::decode(&sealed.bytes).unwrap(), sealed.envelope);
        let opened = TextBody::decode(&sealed.envelope.open(&key).unwrap()).unwrap();
        assert_eq!(opened, body);
        let radio = RadioMessage {
            key: mesh::radio::packet::MessageKey::of(key.room_id(), sealed.envelope.id),
            payload: sealed.radio.clone(),
        }
        .open(&key)
        .expect("the radio form opens with the room key");
        assert_eq!(
            (radio.author.as_str(), radio.text.as_str()),
            ("Gauge", "River at 2.4 m")
        );
    }

    #[test]
    fn a_text_too_long_for_the_radio_has_no_radio_form() {
        let identity = Identity::from_seed(&[7; 64]);
        let key = RoomKey::from_bytes([3; 32]);
        let body = TextBody::new("Gauge", &"long report ".repeat(300)).unwrap();
        let sealed = seal_body(&identity, &key, &body, None, fresh(2)).unwrap();
        assert!(sealed.radio.is_empty());
        assert!(sealed.envelope.verify_signature().is_ok());
    }
}
