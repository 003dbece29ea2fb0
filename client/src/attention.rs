//! News in rooms the person is not looking at: which rooms a page watches, what counts as
//! unread (each message once), and when news is worth a notification.

use std::collections::HashMap;

use mesh::wire::MAX_UNREAD_COUNT;

/// Rooms watched at most (the server lets a connection follow 64, the open room among them,
/// and allows a burst of 64 room requests).
pub const MAX_WATCHED: usize = 48;
/// Private conversations watched with the people met most recently, at most.
pub const MAX_DIRECT_WATCHED: usize = 24;

/// The rooms to watch: this device's rooms in the order given, then private conversations not
/// among them, without the room open now, at most [`MAX_WATCHED`].
pub fn choose<T: Copy + PartialEq>(
    rooms: impl IntoIterator<Item = T>,
    directs: impl IntoIterator<Item = T>,
    open: Option<T>,
) -> Vec<T> {
    let mut chosen: Vec<T> = Vec::new();
    for room in rooms.into_iter().chain(directs) {
        if chosen.len() == MAX_WATCHED {
            break;
        }
        if Some(room) != open && !chosen.contains(&room) {
            chosen.push(room);
        }
    }
    chosen
}

/// Unread counts by room, each message counted once however often it is heard of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unread {
    rooms: HashMap<String, Count>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    count: u32,
    /// The newest message counted (or known of).
    last_seq: u64,
}

impl Unread {
    /// The server's count for a room (see [`mesh::ServerFrame::Unread`]) up to the message
    /// `last_seq`.
    pub fn set(&mut self, room: &str, count: u32, last_seq: u64) {
        let entry = self.rooms.entry(room.to_string()).or_default();
        entry.count = count.min(MAX_UNREAD_COUNT);
        entry.last_seq = entry.last_seq.max(last_seq);
    }

    /// A message `seq` from someone else arrived in a room: the new count, or `None` when it
    /// was counted already.
    pub fn arrived(&mut self, room: &str, seq: u64) -> Option<u32> {
        let entry = self.rooms.entry(room.to_string()).or_default();
        if seq <= entry.last_seq {
            return None;
        }
        entry.last_seq = seq;
        entry.count = (entry.count + 1).min(MAX_UNREAD_COUNT);
        Some(entry.count)
    }

    /// The person read a room; `true` when it had unread messages.
    pub fn read(&mut self, room: &str) -> bool {
        self.rooms
            .get_mut(room)
            .is_some_and(|entry| std::mem::take(&mut entry.count) > 0)
    }

    /// A room's unread count.
    pub fn count(&self, room: &str) -> u32 {
        self.rooms.get(room).map_or(0, |entry| entry.count)
    }

    /// Every room's unread messages but the muted rooms', for the title and the badge.
    pub fn total(&self, muted: impl Fn(&str) -> bool) -> u32 {
        self.rooms
            .iter()
            .filter(|(room, _)| !muted(room))
            .map(|(_, entry)| entry.count)
            .sum()
    }
}

/// The moment news arrives, as far as notifying goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moment {
    /// The person muted the room.
    pub muted: bool,
    /// The message just arrived (not counted when a watch began, which a reconnect repeats).
    pub live: bool,
    /// The person is in a room (another one): the home screen would show it otherwise.
    pub in_room: bool,
    /// The app is out of sight.
    pub hidden: bool,
}

impl Moment {
    /// Whether to show a notification: never for a muted room; always while the app is out of
    /// sight; in sight, only for a new message in another room than the one read.
    pub fn notifies(self) -> bool {
        !self.muted && (self.hidden || (self.live && self.in_room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rooms_come_first_then_private_conversations_without_the_open_room_up_to_the_cap() {
        assert_eq!(choose([1, 2, 3], [3, 4, 5], Some(2)), vec![1, 3, 4, 5]);
        let many = choose(0..40, 100..140, None);
        assert_eq!(many.len(), MAX_WATCHED);
        assert_eq!(&many[..40], (0..40).collect::<Vec<_>>().as_slice());
        assert_eq!(many[40], 100);
    }

    #[test]
    fn each_message_is_counted_once_and_reading_clears_the_count() {
        let mut unread = Unread::default();
        unread.set("a", 2, 10);
        // Stored before the watch began, and heard again live: counted already.
        assert_eq!(unread.arrived("a", 9), None);
        assert_eq!(unread.arrived("a", 10), None);
        assert_eq!(unread.arrived("a", 11), Some(3));
        assert_eq!(unread.arrived("a", 11), None);
        assert_eq!(unread.arrived("b", 1), Some(1));
        assert_eq!(unread.total(|_| false), 4);
        assert_eq!(
            unread.total(|room| room == "a"),
            1,
            "a muted room is left out"
        );
        assert!(unread.read("a"));
        assert!(!unread.read("a"));
        assert_eq!(unread.count("a"), 0);
        // What was read is not counted again when heard of once more.
        assert_eq!(unread.arrived("a", 11), None);
    }

    #[test]
    fn counts_stop_at_the_cap() {
        let mut unread = Unread::default();
        unread.set("a", 500, 500);
        assert_eq!(unread.count("a"), MAX_UNREAD_COUNT);
        assert_eq!(unread.arrived("a", 501), Some(MAX_UNREAD_COUNT));
    }

    #[test]
    fn notifications_come_out_of_sight_or_for_another_room_and_never_when_muted() {
        let at = |muted, live, in_room, hidden| Moment {
            muted,
            live,
            in_room,
            hidden,
        };
        assert!(
            at(false, true, true, false).notifies(),
            "another room's news"
        );
        assert!(at(false, false, false, true).notifies(), "out of sight");
        assert!(
            !at(false, true, false, false).notifies(),
            "the home screen shows it"
        );
        assert!(
            !at(false, false, true, false).notifies(),
            "a reconnect is not news"
        );
        assert!(!at(true, true, true, true).notifies(), "muted");
    }
}
