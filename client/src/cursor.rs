//! A room's sync cursor: the highest server sequence number this device holds with nothing
//! missing before it (from the first page on), counted in one server store. After a
//! reconnect only what comes after it travels.

/// What a device knows about its sync with one room.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomSync {
    /// The cursor, once the room's first page arrived.
    pub cursor: Option<u64>,
    /// The server store (hex id) the cursor counts in.
    pub server: String,
    /// The server has messages older than the oldest held here.
    pub server_has_older: bool,
}

impl RoomSync {
    /// The server says which store it is. A cursor counts in one store: after the server's
    /// database was replaced (or this is another server) the room starts over, so nothing is
    /// skipped. `true` when something changed.
    pub fn on_store(&mut self, store_id: &str) -> bool {
        if store_id.is_empty() || self.server == store_id {
            return false;
        }
        self.cursor = None;
        self.server = store_id.to_string();
        true
    }

    /// A history page arrived (newest last). The first page of a room new to this device
    /// starts its cursor: from then on only what comes after it is missing.
    pub fn on_history(&mut self, seqs: &[u64], has_more: bool) {
        self.server_has_older = has_more;
        if self.cursor.is_none() {
            self.cursor = Some(seqs.iter().copied().max().unwrap_or(0));
        }
    }

    /// Messages arrived in order on the room's stream (catch-up or live): the cursor moves
    /// past them. `true` when it moved.
    pub fn on_messages(&mut self, seqs: impl IntoIterator<Item = u64>) -> bool {
        let before = self.cursor;
        for seq in seqs {
            self.cursor = Some(self.cursor.map_or(seq, |c| c.max(seq)));
        }
        self.cursor != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_page_starts_the_cursor_and_later_messages_move_it() {
        let mut sync = RoomSync::default();
        sync.on_history(&[3, 7, 9], true);
        assert_eq!(sync.cursor, Some(9));
        assert!(sync.server_has_older);
        // An older page (load more) does not move it back.
        sync.on_history(&[1, 2], false);
        assert_eq!(sync.cursor, Some(9));
        assert!(!sync.server_has_older);
        assert!(sync.on_messages([10, 12]));
        assert!(
            !sync.on_messages([11]),
            "out of order: stays at the highest"
        );
        assert_eq!(sync.cursor, Some(12));
    }

    #[test]
    fn an_empty_room_starts_at_zero() {
        let mut sync = RoomSync::default();
        sync.on_history(&[], false);
        assert_eq!(sync.cursor, Some(0));
    }

    #[test]
    fn another_store_starts_the_room_over() {
        let mut sync = RoomSync {
            cursor: Some(40),
            server: "aa".into(),
            server_has_older: false,
        };
        assert!(!sync.on_store("aa"));
        assert!(!sync.on_store(""), "no store named yet");
        assert_eq!(sync.cursor, Some(40));
        assert!(sync.on_store("bb"));
        assert_eq!(sync.cursor, None);
        assert_eq!(sync.server, "bb");
    }
}
