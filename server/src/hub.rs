//! Live fan-out: who follows which room, and handing them each new event (stored messages,
//! presence changes, typing).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use mesh::{Member, MessageId, RoomId, SenderId, ServerFrame, StoredMessage};
use tokio::sync::broadcast;

/// How many events a slow follower may fall behind before it catches up from the store.
const ROOM_BACKLOG: usize = 256;
/// Presence changes of a room are gathered for this long and sent as one change (who came,
/// who went; a newcomer gets the whole list once), so people coming and going (or a script
/// joining in a loop) cost the room a few small frames a second at most, and 200 phones
/// joining cost each member 200 entries, not 200 lists.
pub const PRESENCE_EVERY: Duration = Duration::from_millis(250);
/// Most members a room's presence list shows (everyone beyond still follows the room). A
/// camp of 500 phones, each in a few tabs, stays below it.
pub const MAX_LISTED_MEMBERS: usize = 2_000;

/// A stored message on its way to a room's followers: encoded as a frame once, by the first
/// follower that sends it, for all of them (200 phones in a room cost one encoding, not 200).
#[derive(Debug)]
pub struct LiveMessage {
    /// The message.
    pub message: Arc<StoredMessage>,
    frame: OnceLock<Option<Bytes>>,
}

impl LiveMessage {
    /// `message`, not encoded yet.
    pub fn new(message: Arc<StoredMessage>) -> Self {
        Self {
            message,
            frame: OnceLock::new(),
        }
    }

    /// The message as an encoded [`ServerFrame::Message`] (`None` only if it could not be
    /// encoded, which a stored message always can).
    pub fn frame(&self) -> Option<Bytes> {
        self.frame
            .get_or_init(|| {
                ServerFrame::Message((*self.message).clone())
                    .encode()
                    .ok()
                    .map(Bytes::from)
            })
            .clone()
    }
}

/// Something that happened in a room, for its followers.
#[derive(Clone, Debug)]
pub enum RoomEvent {
    /// A message was stored.
    Message(Arc<LiveMessage>),
    /// Followers came or went: an encoded [`ServerFrame::PresenceChanged`], the same bytes
    /// for every follower.
    PresenceChanged(Bytes),
    /// A member is typing.
    Typing(SenderId),
    /// A message sent from here over the radio was heard relayed by another camp.
    Relayed(MessageId),
    /// A sealed call signal, for every follower or one.
    Signal(Arc<CallSignalEvent>),
}

/// A call signal on its way (opaque: sealed with the room key).
#[derive(Debug)]
pub struct CallSignalEvent {
    /// The sending connection's challenge.
    pub from: [u8; 32],
    /// The member it came from.
    pub sender: SenderId,
    /// The connection it is for, or `None` for all.
    pub to: Option<[u8; 32]>,
    /// The sealed signal (at most [`mesh::call::MAX_SIGNAL_BYTES`]).
    pub sealed: Bytes,
}

/// Identifies one connection in the presence lists.
pub type ConnectionId = u64;

struct Room {
    events: broadcast::Sender<RoomEvent>,
    members: Vec<(ConnectionId, Member)>,
    /// Followers beyond [`MAX_LISTED_MEMBERS`], not in the list (each once, however often it
    /// follows again; one that was never here leaving changes nothing).
    unlisted: HashSet<ConnectionId>,
    /// Changes not sent yet (they go once [`PRESENCE_EVERY`] has passed); a connection is
    /// in at most one of the two.
    joined: Vec<Member>,
    left: Vec<[u8; 32]>,
    /// A change is due.
    presence_due: bool,
}

impl Room {
    fn member_list(&self) -> Arc<Vec<Member>> {
        Arc::new(
            self.members
                .iter()
                .map(|(_, member)| member.clone())
                .collect(),
        )
    }
}

/// The rooms that have followers right now. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<RoomId, Room>>>,
    max_listed: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_max_listed(MAX_LISTED_MEMBERS)
    }
}

impl Hub {
    /// A hub whose presence lists show at most `max_listed` members.
    pub fn with_max_listed(max_listed: usize) -> Self {
        Self {
            rooms: Arc::default(),
            max_listed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Room>> {
        // Nothing in here can be left half-updated by a panic; keep serving.
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts following `room` as `member`: returns the room's member list now (with the
    /// member), and a receiver of every event after this call.
    pub fn join(
        &self,
        room: RoomId,
        connection: ConnectionId,
        member: Member,
    ) -> (broadcast::Receiver<RoomEvent>, Vec<Member>) {
        let mut rooms = self.lock();
        let entry = rooms.entry(room).or_insert_with(|| Room {
            events: broadcast::channel(ROOM_BACKLOG).0,
            members: Vec::new(),
            unlisted: HashSet::new(),
            joined: Vec::new(),
            left: Vec::new(),
            presence_due: false,
        });
        entry.members.retain(|(id, _)| *id != connection);
        if entry.members.len() < self.max_listed {
            entry.unlisted.remove(&connection);
            let challenge = member.challenge;
            entry.left.retain(|gone| *gone != challenge);
            entry.joined.retain(|m| m.challenge != challenge);
            entry.joined.push(member.clone());
            entry.members.push((connection, member));
            self.presence_changed(room, entry);
        } else if entry.unlisted.insert(connection) {
            tracing::info!(
                listed = entry.members.len(),
                "a room's presence list is full; a new follower is not listed"
            );
        }
        let receiver = entry.events.subscribe();
        (receiver, entry.member_list().to_vec())
    }

    /// Sends the room's changes once [`PRESENCE_EVERY`] has passed, with every change until
    /// then.
    fn presence_changed(&self, room: RoomId, entry: &mut Room) {
        if std::mem::replace(&mut entry.presence_due, true) {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PRESENCE_EVERY).await;
            let mut rooms = hub.lock();
            if let Some(entry) = rooms.get_mut(&room) {
                entry.presence_due = false;
                // (A room forgotten and made again meanwhile may have flushed already.)
                if entry.joined.is_empty() && entry.left.is_empty() {
                    return;
                }
                let changed = ServerFrame::PresenceChanged {
                    room,
                    joined: std::mem::take(&mut entry.joined),
                    left: std::mem::take(&mut entry.left),
                };
                match changed.encode() {
                    Ok(frame) => {
                        let _ = entry
                            .events
                            .send(RoomEvent::PresenceChanged(Bytes::from(frame)));
                    }
                    Err(error) => tracing::warn!(%error, "a presence change was not encoded"),
                }
            }
        });
    }

    /// Stops `connection` following `room`, telling the others; forgets empty rooms.
    pub fn leave(&self, room: RoomId, connection: ConnectionId) {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get_mut(&room) else {
            return;
        };
        let gone = entry
            .members
            .iter()
            .position(|(id, _)| *id == connection)
            .map(|at| entry.members.remove(at).1.challenge);
        match gone {
            Some(challenge) => {
                entry.joined.retain(|m| m.challenge != challenge);
                // Sent even when its join was not: a newcomer's list may hold it.
                entry.left.push(challenge);
            }
            None => {
                entry.unlisted.remove(&connection);
            }
        }
        if entry.members.is_empty() && entry.unlisted.is_empty() {
            rooms.remove(&room);
        } else if gone.is_some() {
            self.presence_changed(room, entry);
        }
    }

    /// Hands a newly stored message to the room's followers.
    pub fn publish(&self, message: &Arc<StoredMessage>) {
        self.send(
            message.envelope.room,
            RoomEvent::Message(Arc::new(LiveMessage::new(Arc::clone(message)))),
        );
    }

    /// Tells a room's followers that the radio carried message `id`.
    pub fn relayed(&self, room: RoomId, id: MessageId) {
        self.send(room, RoomEvent::Relayed(id));
    }

    /// Tells a room's followers that `sender` is typing.
    pub fn typing(&self, room: RoomId, sender: SenderId) {
        self.send(room, RoomEvent::Typing(sender));
    }

    /// Hands a call signal to the room's followers.
    pub fn signal(&self, room: RoomId, signal: CallSignalEvent) {
        self.send(room, RoomEvent::Signal(Arc::new(signal)));
    }

    fn send(&self, room: RoomId, event: RoomEvent) {
        if let Some(entry) = self.lock().get(&room) {
            let _ = entry.events.send(event);
        }
    }

    /// The room's followers now.
    pub fn members(&self, room: RoomId) -> Vec<Member> {
        self.lock()
            .get(&room)
            .map(|entry| entry.member_list().to_vec())
            .unwrap_or_default()
    }

    /// Number of rooms with at least one follower.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> Member {
        Member {
            sender: SenderId([n; 32]),
            challenge: [n; 32],
            card: vec![n],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn presence_changes_are_gathered_and_lists_are_capped() {
        let hub = Hub::with_max_listed(3);
        let room = RoomId([1; 16]);
        let (mut first, list) = hub.join(room, 1, member(1));
        assert_eq!(list, [member(1)], "a newcomer gets the list with itself");
        // Ten more join within one period: the room hears one change, of at most three.
        for n in 2..=11 {
            let _ = hub.join(room, u64::from(n), member(n));
        }
        tokio::time::sleep(PRESENCE_EVERY * 2).await;
        let changes = |receiver: &mut broadcast::Receiver<RoomEvent>| {
            let mut changes = Vec::new();
            while let Ok(event) = receiver.try_recv() {
                if let RoomEvent::PresenceChanged(frame) = event {
                    match ServerFrame::decode(&frame).unwrap() {
                        ServerFrame::PresenceChanged { joined, left, .. } => {
                            changes.push((joined, left))
                        }
                        other => panic!("expected a presence change, got {other:?}"),
                    }
                }
            }
            changes
        };
        assert_eq!(
            changes(&mut first),
            [(vec![member(1), member(2), member(3)], vec![])]
        );
        assert_eq!(hub.members(room).len(), 3);
        // The listed leave; the unlisted still keep the room alive. One joins and leaves
        // within a period: it is said to have left (a newcomer's list may hold it).
        let (_, list) = hub.join(room, 20, member(20));
        assert_eq!(list.len(), 3, "the list is full: not listed");
        // Following again (a join after a watch) is still one follower.
        let _ = hub.join(room, 20, member(20));
        hub.leave(room, 2);
        let (_, list) = hub.join(room, 21, member(21));
        assert!(list.contains(&member(21)));
        hub.leave(room, 21);
        tokio::time::sleep(PRESENCE_EVERY * 2).await;
        assert_eq!(changes(&mut first), [(vec![], vec![[2; 32], [21; 32]])]);
        for n in [1, 3] {
            hub.leave(room, n);
        }
        // A connection that left once leaving again changes nothing.
        hub.leave(room, 2);
        hub.leave(room, 2);
        assert_eq!(hub.room_count(), 1);
        for n in 4..=11 {
            hub.leave(room, n);
        }
        assert_eq!(hub.room_count(), 1, "20 still follows");
        hub.leave(room, 20);
        assert_eq!(hub.room_count(), 0);
    }
}
