//! The publish pipeline: cheap checks first (size, rate), then signatures (off the async
//! threads), then one transaction for every publish that arrived together, then an ack each.

use std::time::{Duration, Instant};

use mesh::{Envelope, ErrorCode, MessageId, RoomId, ServerFrame, MAX_BODY_BYTES};

use super::Session;
use crate::access::RetryAfter;

impl Session {
    pub(super) async fn publish(&mut self, envelopes: Vec<Envelope>) {
        if envelopes.is_empty() {
            return;
        }
        // Cheap checks first: size, then rate (a flood of refused messages must not buy a
        // signature check each); then signatures, with public keys only (the server never sees
        // plaintext), off the async threads.
        let mut allowed = Vec::with_capacity(envelopes.len());
        let public = mesh::crypto::RoomKey::emergency().room_id();
        for envelope in envelopes {
            if envelope.body.len() > MAX_BODY_BYTES {
                let detail = format!(
                    "message body of {} bytes refused: the limit is {MAX_BODY_BYTES}",
                    envelope.body.len()
                );
                self.refuse(ErrorCode::BodyTooLarge, detail, Some(envelope.id))
                    .await;
            } else if let Some(retry) = self.publish_pause() {
                self.rate_limited("messages", retry, Some(envelope.id))
                    .await;
            } else if let Err(retry) = self
                .state
                .access
                .limits
                .publish(envelope.sender, self.address)
            {
                self.publish_paused_until = Some(Instant::now() + retry.0);
                self.rate_limited("messages", retry, Some(envelope.id))
                    .await;
            } else if let Err(retry) = self.public_room_allowance(&envelope, public) {
                self.publish_paused_until = Some(Instant::now() + retry.0);
                self.rate_limited("messages to the public room", retry, Some(envelope.id))
                    .await;
            } else if let Err(retry) = self
                .state
                .access
                .limits
                .device_bytes(envelope.sender, envelope.body.len())
            {
                self.publish_paused_until = Some(Instant::now() + retry.0);
                self.rate_limited("bytes from this device today", retry, Some(envelope.id))
                    .await;
            } else {
                allowed.push(envelope);
            }
        }
        let ids: Vec<MessageId> = allowed.iter().map(|e| e.id).collect();
        let checked = tokio::task::spawn_blocking(move || {
            allowed
                .into_iter()
                .map(|e| (e.verify_signature().is_ok(), e))
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(checked) = checked else {
            // The check itself failed: say so for each message, so the phone keeps and retries
            // them instead of waiting for an answer that never comes.
            tracing::error!("checking signatures failed");
            for id in ids {
                self.internal_error_quiet(Some(id)).await;
            }
            return;
        };
        let mut valid = Vec::with_capacity(checked.len());
        for (signed, envelope) in checked {
            if signed {
                valid.push(envelope);
            } else {
                let detail = "the message's signature does not match its sender; it was not stored";
                self.refuse(ErrorCode::BadSignature, detail.into(), Some(envelope.id))
                    .await;
            }
        }
        let valid = self.within_room_quota(valid).await;
        if valid.is_empty() {
            return;
        }
        let hub = self.state.hub.clone();
        let received_at_ms = crate::now_ms();
        let ids: Vec<MessageId> = valid.iter().map(|e| e.id).collect();
        let stored = self
            .state
            .store
            .run(move |s| {
                s.insert_many_blocking(&valid, received_at_ms, |message| hub.publish(message))
            })
            .await;
        match stored {
            Ok(stored) => {
                for (id, stored) in ids.into_iter().zip(stored) {
                    if stored.conflict {
                        self.id_conflict(id).await;
                        continue;
                    }
                    self.published.insert(stored.message.envelope.room, id);
                    self.send(ServerFrame::Ack {
                        id,
                        seq: stored.message.seq,
                        duplicate: stored.duplicate,
                    })
                    .await;
                }
            }
            Err(error) => {
                tracing::error!(%error, count = ids.len(), "storing messages failed");
                self.publish_paused_until = Some(Instant::now() + Duration::from_secs(2));
                for id in ids {
                    self.internal_error_quiet(Some(id)).await;
                }
            }
        }
    }

    /// Stores a message the device heard over its own radio while no server was reachable.
    pub(super) async fn radio_heard(&mut self, envelope: Envelope) {
        let id = envelope.id;
        let valid = envelope.body.len() <= mesh::radio::MAX_PAYLOAD_BYTES
            && mesh::radio::RadioMessage::from_envelope(&envelope).is_some();
        if !valid {
            let detail = "not a radio message: it was not stored".to_string();
            return self.refuse(ErrorCode::Malformed, detail, Some(id)).await;
        }
        if let Err(retry) = self
            .state
            .access
            .limits
            .publish(envelope.sender, self.address)
        {
            return self.rate_limited("messages", retry, Some(id)).await;
        }
        let hub = self.state.hub.clone();
        let received_at_ms = crate::now_ms();
        let stored = self
            .state
            .store
            .run(move |s| s.insert_blocking(&envelope, received_at_ms, |m| hub.publish(m)))
            .await;
        match stored {
            Ok(stored) if stored.conflict => self.id_conflict(id).await,
            Ok(stored) => {
                self.send(ServerFrame::Ack {
                    id,
                    seq: stored.message.seq,
                    duplicate: stored.duplicate,
                })
                .await
            }
            Err(error) => self.internal_error(error, Some(id)).await,
        }
    }

    /// The envelopes whose rooms have room for them; the others are refused with a reason.
    async fn within_room_quota(&self, envelopes: Vec<Envelope>) -> Vec<Envelope> {
        let quota = self.state.room_quota_bytes;
        let rooms: std::collections::BTreeSet<RoomId> = envelopes.iter().map(|e| e.room).collect();
        let sizes = self
            .state
            .store
            .run(move |s| {
                rooms
                    .into_iter()
                    .map(|room| Ok((room, s.room_bytes_blocking(room)?)))
                    .collect::<Result<std::collections::HashMap<_, _>, crate::error::ServerError>>()
            })
            .await;
        let mut sizes = match sizes {
            Ok(sizes) => sizes,
            Err(error) => {
                tracing::error!(%error, "could not read room sizes");
                return envelopes;
            }
        };
        let mut kept = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let size = sizes.entry(envelope.room).or_default();
            let bytes = envelope.body.len() as u64 + 256;
            if *size + bytes > quota {
                let detail = format!(
                    "this room holds its limit of {} MB of messages; the server's operator can \
                     raise it (--room-quota-mb) or let old messages go (--retention-days)",
                    quota / (1024 * 1024)
                );
                self.refuse(ErrorCode::LimitReached, detail, Some(envelope.id))
                    .await;
            } else {
                *size += bytes;
                kept.push(envelope);
            }
        }
        kept
    }

    /// The public room's own allowance, for a message to it.
    fn public_room_allowance(&self, envelope: &Envelope, public: RoomId) -> Result<(), RetryAfter> {
        if envelope.room != public {
            return Ok(());
        }
        self.state
            .access
            .limits
            .public_room(envelope.sender, self.address)
    }

    /// How long publishes stay paused on this connection, if they are.
    fn publish_pause(&self) -> Option<RetryAfter> {
        let until = self.publish_paused_until?;
        until.checked_duration_since(Instant::now()).map(RetryAfter)
    }

    /// Another message of the room has this id: this one was not stored, and is not
    /// acknowledged as if it were.
    async fn id_conflict(&self, id: MessageId) {
        let detail = "another message of this room has this id; this one was not stored".into();
        self.refuse(ErrorCode::IdConflict, detail, Some(id)).await;
    }

    /// Carries a published message's radio form over the radio, when there is one: only for
    /// a message this connection published, so nobody can fill the radio outbox with forms
    /// of messages that do not exist.
    pub(super) async fn send_radio(
        &mut self,
        room: RoomId,
        id: MessageId,
        payload: Vec<u8>,
        urgent: bool,
    ) {
        if !self.published.contains(room, id) {
            let detail = "a radio form is sent right after its message is published".to_string();
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        // The message itself is stored (its own ack said so); only the radio copy is refused,
        // so the error names no message id.
        if let Err(error) = self.state.radio.send(room, id, payload, urgent) {
            let detail = format!("{error}; it reached this server's phones only");
            self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
    }
}

/// The messages a connection published lately (at most [`Published::MAX`]), whose radio
/// forms it may hand the server.
#[derive(Default)]
pub(super) struct Published {
    order: std::collections::VecDeque<(RoomId, MessageId)>,
    known: std::collections::HashSet<(RoomId, MessageId)>,
}

impl Published {
    /// A page sends each radio form right after its message (a radio form read among
    /// publishes ends their batch, so it is handled after its message is stored): a few would
    /// do. 256 leave room for other clients, at about 20 KB per connection (80 MB for 4,096
    /// connections at worst; 4,096 entries each were 1.3 GB).
    const MAX: usize = 256;

    fn insert(&mut self, room: RoomId, id: MessageId) {
        if !self.known.insert((room, id)) {
            return;
        }
        self.order.push_back((room, id));
        if self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.known.remove(&old);
            }
        }
    }

    fn contains(&self, room: RoomId, id: MessageId) -> bool {
        self.known.contains(&(room, id))
    }
}
