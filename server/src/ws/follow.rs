//! Following rooms: joining (a first page of history, or catching up from a cursor), the
//! live follower that forwards a room's events, history pages, leaving, typing notices and
//! call signals.

use std::time::Instant;

use mesh::call::MAX_SIGNAL_BYTES;
use mesh::crypto::{RoomKey, RoomProof};
use mesh::wire::{MAX_HISTORY_PAGE, MAX_PRESENCE_BYTES, MAX_UNREAD_COUNT};
use mesh::{ErrorCode, Member, RoomId, SenderId, ServerFrame, StoredMessage};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::{Outbound, Session, MAX_ROOMS_PER_CONNECTION, TYPING_EVERY};
use crate::hub::{CallSignalEvent, Hub, RoomEvent};
use crate::store::Store;

/// A room this connection follows.
pub(super) struct Following {
    pub(super) follower: AbortHandle,
    sender: SenderId,
    last_typing: Option<Instant>,
}

/// How a room is followed.
#[derive(Clone, Copy)]
enum Start {
    /// To read it, from this cursor (or the newest page).
    Read(Option<u64>),
    /// To watch it, from this read mark.
    Watch(Option<u64>),
}

/// Rooms one connection keeps as proven (more than it may follow, for history probes).
const MAX_PROVEN: usize = 4 * MAX_ROOMS_PER_CONNECTION;

impl Session {
    /// Whether `proof` shows, on this connection, the key of `room`: its signature is over
    /// this connection's challenge, by the room's access key (the one kept for the room, or
    /// the Emergency room's, which everyone can compute). Refuses the request when not.
    async fn proven(&mut self, room: RoomId, proof: &RoomProof) -> bool {
        if self.proven.contains(&room) {
            return true;
        }
        let mut ok = proof.verify(room, &self.challenge);
        if ok {
            let emergency = RoomKey::emergency();
            ok = if room == emergency.room_id() {
                proof.access == emergency.access_key()
            } else {
                let access = proof.access;
                match self
                    .state
                    .store
                    .run(move |s| s.room_access_blocking(room, access))
                    .await
                {
                    Ok(kept) => kept == access,
                    Err(error) => {
                        self.internal_error(error, None).await;
                        return false;
                    }
                }
            };
        }
        if !ok {
            tracing::info!(
                connection = self.id,
                "a room request without the room's key"
            );
            self.refuse(
                ErrorCode::RoomKeyRequired,
                "this room's key is needed to follow it, read it or see who is in it".into(),
                None,
            )
            .await;
            return false;
        }
        if self.proven.len() >= MAX_PROVEN {
            self.proven.clear();
        }
        self.proven.insert(room);
        true
    }

    /// Follows a room to read it: its history (a first page, or a catch-up after the
    /// client's cursor), then its events.
    pub(super) async fn join(
        &mut self,
        room: RoomId,
        after_seq: Option<u64>,
        member: Member,
        proof: RoomProof,
    ) {
        self.follow(room, Start::Read(after_seq), member, proof)
            .await
    }

    /// Follows a room without reading it: its unread count, then its new messages and
    /// presence.
    pub(super) async fn watch(
        &mut self,
        room: RoomId,
        read_seq: Option<u64>,
        member: Member,
        proof: RoomProof,
    ) {
        self.follow(room, Start::Watch(read_seq), member, proof)
            .await
    }

    async fn follow(&mut self, room: RoomId, start: Start, member: Member, proof: RoomProof) {
        if !self.proven(room, &proof).await {
            return;
        }
        if member.challenge != self.challenge {
            let detail = "a presence card is made for the connection it joins on".to_string();
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let detail =
                format!("one connection can follow at most {MAX_ROOMS_PER_CONNECTION} rooms");
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        if member.card.len() > MAX_PRESENCE_BYTES {
            let detail = format!("a presence card may hold at most {MAX_PRESENCE_BYTES} bytes");
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        if let Some(previous) = self.rooms.remove(&room) {
            previous.follower.abort();
        }
        let sender = member.sender;
        self.state.radio.known_room(room);
        // Subscribe before reading the store so nothing stored in between is missed; the
        // follower skips what was already sent.
        let (live, members) = self.state.hub.join(room, self.id, member);
        let last_seq = match start {
            Start::Watch(read_seq) => {
                match self
                    .state
                    .store
                    .run(move |s| s.unread_blocking(room, read_seq, sender, MAX_UNREAD_COUNT))
                    .await
                {
                    Ok(unread) => {
                        self.send(ServerFrame::Unread {
                            room,
                            count: unread.count,
                            newest: unread.newest,
                        })
                        .await;
                        Some(unread.last_seq)
                    }
                    Err(error) => {
                        self.internal_error(error, None).await;
                        None
                    }
                }
            }
            Start::Read(None) => {
                let page = self.state.history_page;
                match self
                    .state
                    .store
                    .run(move |s| s.page_before_blocking(room, None, page))
                    .await
                {
                    Ok((messages, has_more)) => {
                        let last = messages.last().map_or(0, |m| m.seq);
                        self.send(ServerFrame::History {
                            room,
                            messages,
                            has_more,
                        })
                        .await;
                        Some(last)
                    }
                    Err(error) => {
                        self.internal_error(error, None).await;
                        None
                    }
                }
            }
            Start::Read(Some(cursor)) => catch_up(room, cursor, &self.tx, &self.state.store).await,
        };
        let Some(last_seq) = last_seq else {
            self.state.hub.leave(room, self.id);
            return;
        };
        // The list once; changes follow (as the events after the join).
        self.send(ServerFrame::Presence { room, members }).await;
        let watching = matches!(start, Start::Watch(_));
        let follower = tokio::spawn(follow_room(
            Follower {
                room,
                // A watcher is not shown typing: it is nobody's own.
                reader: (!watching).then_some(sender),
                challenge: self.challenge,
            },
            live,
            self.tx.clone(),
            self.state.store.clone(),
            self.state.hub.clone(),
            last_seq,
        ));
        self.rooms.insert(
            room,
            Following {
                follower: follower.abort_handle(),
                sender,
                last_typing: None,
            },
        );
    }

    /// A ticket for uploading pieces of this room's files (they count towards its quota),
    /// for a device that shows the room's key.
    pub(super) async fn file_ticket(&mut self, room: RoomId, proof: RoomProof) {
        if !self.proven(room, &proof).await {
            return;
        }
        let ticket = self.state.chunks.issue_ticket(room);
        self.send(ServerFrame::FileTicket { room, ticket }).await;
    }

    pub(super) fn leave(&mut self, room: RoomId) {
        if let Some(following) = self.rooms.remove(&room) {
            following.follower.abort();
            self.state.hub.leave(room, self.id);
        }
    }

    pub(super) async fn history(
        &mut self,
        room: RoomId,
        before_seq: u64,
        limit: u16,
        proof: RoomProof,
    ) {
        if !self.proven(room, &proof).await {
            return;
        }
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        match self
            .state
            .store
            .run(move |s| s.page_before_blocking(room, Some(before_seq), limit))
            .await
        {
            Ok((messages, has_more)) => {
                self.send(ServerFrame::History {
                    room,
                    messages,
                    has_more,
                })
                .await
            }
            Err(error) => self.internal_error(error, None).await,
        }
    }

    /// Relays a typing notice to the room, at most every [`TYPING_EVERY`] per room.
    pub(super) fn typing(&mut self, room: RoomId) {
        let hub = self.state.hub.clone();
        if let Some(following) = self.rooms.get_mut(&room) {
            if following
                .last_typing
                .is_none_or(|at| at.elapsed() >= TYPING_EVERY)
            {
                following.last_typing = Some(Instant::now());
                hub.typing(room, following.sender);
            }
        }
    }

    /// Passes a sealed call signal to the followers of a room this connection follows,
    /// within its allowance. Nothing of it is stored or logged.
    pub(super) async fn signal(&mut self, room: RoomId, to: Option<[u8; 32]>, sealed: Vec<u8>) {
        if sealed.len() > MAX_SIGNAL_BYTES {
            let detail = format!(
                "call signal of {} bytes refused: the limit is {MAX_SIGNAL_BYTES} bytes",
                sealed.len()
            );
            return self.refuse(ErrorCode::LimitReached, detail, None).await;
        }
        let Some(following) = self.rooms.get(&room) else {
            let detail = "call signals go only to a room this device follows".to_string();
            return self.refuse(ErrorCode::RoomKeyRequired, detail, None).await;
        };
        if let Err(retry) = self.limits.signal() {
            return self.rate_limited("call signals", retry, None).await;
        }
        self.state.hub.signal(
            room,
            CallSignalEvent {
                from: self.challenge,
                sender: following.sender,
                to,
                sealed: sealed.into(),
            },
        );
    }
}

/// Sends every message of `room` after `cursor` in [`ServerFrame::CatchUp`] batches and returns
/// the last sequence number sent (or `cursor`), or `None` when the store failed.
async fn catch_up(room: RoomId, cursor: u64, tx: &Outbound, store: &Store) -> Option<u64> {
    send_stored_after(room, cursor, tx, store, |messages, done| {
        vec![ServerFrame::CatchUp {
            room,
            messages,
            done,
        }]
    })
    .await
}

/// Reads the messages of `room` after `cursor` from the store a page at a time and sends them
/// as `frames` shapes each page (`true` on the last). Returns the last sequence number sent (or
/// `cursor`), or `None` when the store failed or the client went away.
async fn send_stored_after(
    room: RoomId,
    mut cursor: u64,
    tx: &Outbound,
    store: &Store,
    mut frames: impl FnMut(Vec<StoredMessage>, bool) -> Vec<ServerFrame>,
) -> Option<u64> {
    loop {
        let after = cursor;
        let batch = match store
            .run(move |s| s.after_blocking(room, after, MAX_HISTORY_PAGE))
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "catch-up read failed");
                return None;
            }
        };
        let done = batch.len() < usize::from(MAX_HISTORY_PAGE);
        cursor = batch.last().map_or(cursor, |m| m.seq);
        for frame in frames(batch, done) {
            if tx.frame(&frame).await.is_err() {
                return None;
            }
        }
        if done {
            return Some(cursor);
        }
    }
}

/// Who a room's events go to.
struct Follower {
    room: RoomId,
    /// The reader, when it reads the room (a watcher is sent no typing notices).
    reader: Option<SenderId>,
    /// Its connection's challenge: call signals from it are not sent back, and those for
    /// another connection are not sent to it.
    challenge: [u8; 32],
}

/// Forwards a room's events to one client, messages in sequence order; typing notices only to
/// a `reader` (not of its own); call signals to everyone they are for but their sender. A
/// client too slow for the live backlog catches up from the
/// store, so it never misses a message.
async fn follow_room(
    Follower {
        room,
        reader,
        challenge,
    }: Follower,
    mut live: broadcast::Receiver<RoomEvent>,
    tx: Outbound,
    store: Store,
    hub: Hub,
    mut last_seq: u64,
) {
    loop {
        let frame = match live.recv().await {
            Ok(RoomEvent::Message(live)) => {
                if live.message.seq <= last_seq {
                    continue;
                }
                last_seq = live.message.seq;
                if let Some(bytes) = live.frame() {
                    if tx.encoded(bytes).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Ok(RoomEvent::PresenceChanged(bytes)) => {
                if tx.encoded(bytes).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(RoomEvent::Typing(sender)) if reader.is_some_and(|own| own != sender) => {
                ServerFrame::Typing { room, sender }
            }
            Ok(RoomEvent::Typing(_)) => continue,
            Ok(RoomEvent::Relayed(id)) => ServerFrame::Relayed { room, id },
            Ok(RoomEvent::Signal(signal)) => {
                if signal.from == challenge || signal.to.is_some_and(|to| to != challenge) {
                    continue;
                }
                ServerFrame::Signal {
                    room,
                    from: signal.from,
                    sender: signal.sender,
                    direct: signal.to.is_some(),
                    sealed: signal.sealed.to_vec(),
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "slow client catches up from the store");
                let sent = send_stored_after(room, last_seq, &tx, &store, |messages, _| {
                    messages.into_iter().map(ServerFrame::Message).collect()
                })
                .await;
                match sent {
                    Some(seq) => last_seq = seq,
                    None => return,
                }
                // Presence changes may have been among the missed events: the list again.
                ServerFrame::Presence {
                    room,
                    members: hub.members(room),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.frame(&frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mesh::{Envelope, Kind, MessageId};

    use super::*;

    #[tokio::test]
    async fn a_lagging_follower_catches_up_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomId([1; 16]);
        // A live backlog of 4 and an outbound queue of one frame: the follower falls behind
        // at once.
        let (live_tx, live_rx) = broadcast::channel(4);
        let (tx, mut rx) = Outbound::new(1);
        let follower = tokio::spawn(follow_room(
            Follower {
                room,
                reader: Some(SenderId([9; 32])),
                challenge: [9; 32],
            },
            live_rx,
            tx,
            store.clone(),
            Hub::default(),
            0,
        ));
        for n in 0..60u8 {
            let envelope = Envelope {
                id: MessageId([n; 16]),
                room,
                sender: SenderId([0; 32]),
                created_at_ms: 0,
                kind: Kind::Text,
                nonce: [0; 24],
                signature: mesh::Signature([0; 64]),
                body: vec![n],
            };
            store
                .insert_blocking(&envelope, 0, |message| {
                    let _ = live_tx.send(RoomEvent::Message(Arc::new(
                        crate::hub::LiveMessage::new(Arc::clone(message)),
                    )));
                })
                .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 60 {
            let queued = tokio::time::timeout(std::time::Duration::from_secs(5), rx.next())
                .await
                .expect("a frame in time")
                .expect("the queue is open");
            let axum::extract::ws::Message::Binary(bytes) = queued.message else {
                panic!("a binary frame")
            };
            match ServerFrame::decode(&bytes).unwrap() {
                ServerFrame::Message(message) => seen.push(message.envelope.body[0]),
                ServerFrame::Presence { .. } => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert_eq!(
            seen,
            (0..60).collect::<Vec<u8>>(),
            "every message once, in order"
        );
        follower.abort();
    }
}
