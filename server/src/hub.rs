//! Live fan-out: who follows which room, and handing them each new event (stored messages,
//! presence changes, typing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mesh::{Member, MessageId, RoomId, SenderId, StoredMessage};
use tokio::sync::broadcast;

/// How many events a slow follower may fall behind before it catches up from the store.
const ROOM_BACKLOG: usize = 256;

/// Something that happened in a room, for its followers.
#[derive(Clone, Debug)]
pub enum RoomEvent {
    /// A message was stored.
    Message(Arc<StoredMessage>),
    /// The set of followers changed; this is the whole new list.
    Presence(Arc<Vec<Member>>),
    /// A member is typing.
    Typing(SenderId),
    /// A message sent from here over the radio was heard relayed by another camp.
    Relayed(MessageId),
}

/// Identifies one connection in the presence lists.
pub type ConnectionId = u64;

struct Room {
    events: broadcast::Sender<RoomEvent>,
    members: Vec<(ConnectionId, Member)>,
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
#[derive(Clone, Default)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<RoomId, Room>>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Room>> {
        // Nothing in here can be left half-updated by a panic; keep serving.
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts following `room` as `member`: the receiver gets every event after this call,
    /// starting with the presence list that now includes the member.
    pub fn join(
        &self,
        room: RoomId,
        connection: ConnectionId,
        member: Member,
    ) -> broadcast::Receiver<RoomEvent> {
        let mut rooms = self.lock();
        let entry = rooms.entry(room).or_insert_with(|| Room {
            events: broadcast::channel(ROOM_BACKLOG).0,
            members: Vec::new(),
        });
        entry.members.retain(|(id, _)| *id != connection);
        entry.members.push((connection, member));
        let receiver = entry.events.subscribe();
        let _ = entry.events.send(RoomEvent::Presence(entry.member_list()));
        receiver
    }

    /// Stops `connection` following `room`, telling the others; forgets empty rooms.
    pub fn leave(&self, room: RoomId, connection: ConnectionId) {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get_mut(&room) else {
            return;
        };
        entry.members.retain(|(id, _)| *id != connection);
        if entry.members.is_empty() {
            rooms.remove(&room);
        } else {
            let _ = entry.events.send(RoomEvent::Presence(entry.member_list()));
        }
    }

    /// Hands a newly stored message to the room's followers.
    pub fn publish(&self, message: &Arc<StoredMessage>) {
        self.send(
            message.envelope.room,
            RoomEvent::Message(Arc::clone(message)),
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
