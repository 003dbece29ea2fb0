//! Live fan-out: who follows which room, and handing them each newly stored message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mesh::{RoomId, StoredMessage};
use tokio::sync::broadcast;

/// How many messages a slow follower may fall behind before it catches up from the store.
const ROOM_BACKLOG: usize = 256;

/// The rooms that have followers right now. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<RoomId, broadcast::Sender<Arc<StoredMessage>>>>>,
}

impl Hub {
    /// Starts following `room`: the receiver gets every message published after this call.
    pub fn subscribe(&self, room: RoomId) -> broadcast::Receiver<Arc<StoredMessage>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .entry(room)
            .or_insert_with(|| broadcast::channel(ROOM_BACKLOG).0)
            .subscribe()
    }

    /// Hands a newly stored message to the room's followers, and forgets rooms nobody follows.
    pub fn publish(&self, message: &Arc<StoredMessage>) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = message.envelope.room;
        if let Some(sender) = rooms.get(&room) {
            if sender.send(Arc::clone(message)).is_err() {
                rooms.remove(&room);
            }
        }
    }

    /// Number of rooms with at least one follower.
    pub fn room_count(&self) -> usize {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.retain(|_, sender| sender.receiver_count() > 0);
        rooms.len()
    }
}
