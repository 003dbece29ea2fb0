//! The durable message store: one SQLite file in WAL mode, idempotent by message id.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use mesh::{Envelope, Kind, MessageId, RoomId, StoredMessage};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::ServerError;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
        room BLOB NOT NULL CHECK (length(room) = 16),
        received_at_ms INTEGER NOT NULL,
        envelope BLOB NOT NULL
    );
    CREATE INDEX messages_by_room ON messages (room, seq);
",
    "
    CREATE TABLE device_tokens (
        token_hash BLOB PRIMARY KEY,
        epoch BLOB NOT NULL,
        device BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
",
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
",
    // Radio forms of published messages, kept until a neighbour confirms them so a restart
    // or a long radio outage loses none.
    "
    CREATE TABLE radio_outbox (
        id BLOB PRIMARY KEY CHECK (length(id) = 16),
        room BLOB NOT NULL CHECK (length(room) = 16),
        payload BLOB NOT NULL,
        queued_at_ms INTEGER NOT NULL
    );
",
    // Ids are unique per room, not server-wide: a message published in one room cannot squat
    // the id of a message of another room.
    "
    CREATE TABLE messages_by_room_id (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id BLOB NOT NULL CHECK (length(id) = 16),
        room BLOB NOT NULL CHECK (length(room) = 16),
        received_at_ms INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        UNIQUE (room, id)
    );
    INSERT INTO messages_by_room_id (seq, id, room, received_at_ms, envelope)
        SELECT seq, id, room, received_at_ms, envelope FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_by_room_id RENAME TO messages;
    CREATE INDEX messages_by_room ON messages (room, seq);
",
    // Each room's access key: only a connection that proves it (and so holds the room key)
    // may follow the room, page its history or see who is in it.
    "
    CREATE TABLE room_access (
        room BLOB PRIMARY KEY CHECK (length(room) = 16),
        access BLOB NOT NULL CHECK (length(access) = 32)
    );
",
    // Which messages came from other camps over federation (never published back to it).
    "
    ALTER TABLE messages ADD COLUMN federated INTEGER NOT NULL DEFAULT 0;
",
];

/// Where a stored message came from, for federation: what came from it is not sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A phone of this camp, or this camp's radio.
    Here,
    /// Another camp, over federation.
    Federation,
}

/// What a watcher of a room has not read (see [`Store::unread_blocking`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    /// Messages from others after the read mark, counted up to the cap.
    pub count: u32,
    /// The newest of them.
    pub newest: Option<StoredMessage>,
    /// The room's newest sequence number (or the read mark, when nothing came after it).
    pub last_seq: u64,
}

/// A message waiting to be confirmed over the radio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadioPending {
    /// The room.
    pub room: RoomId,
    /// The published message's id.
    pub id: MessageId,
    /// Its radio payload.
    pub payload: Vec<u8>,
    /// When it was queued (server clock, ms since the epoch).
    pub queued_at_ms: u64,
}

/// What [`Store::room_log_blocking`] hands over.
pub enum LogStep<'a> {
    /// How many messages follow.
    Count(u64),
    /// One message.
    Message(&'a StoredMessage),
}

/// Most bytes of message bodies one history page carries (it then says `has_more`).
pub const MAX_PAGE_BYTES: usize = 256 * 1024;
/// What a message's header adds to its body in a page, for the byte budget.
const ENVELOPE_HEADER_ALLOWANCE: usize = 200;

/// Result of storing a message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The message as stored (the first copy, when it was a duplicate or a conflict).
    pub message: Arc<StoredMessage>,
    /// True when the id was already stored in the room and nothing changed.
    pub duplicate: bool,
    /// True when the room holds another message under this id: this one was not stored, and
    /// must not be acknowledged as if it were.
    pub conflict: bool,
}

/// Handle to the message database. Cheap to clone; all clones share one connection, so writes
/// are serialised and sequence numbers are handed out in commit order.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Random id made when the database was created (see [`mesh::ServerFrame::Welcome`]).
    pub id: [u8; 16],
    /// Bytes stored per room, for the rooms asked about so far (kept up to date on insert).
    sizes: Arc<Mutex<HashMap<RoomId, u64>>>,
    /// Woken after each commit that stored something new (federation's publisher waits on it).
    pub stored: Arc<tokio::sync::Notify>,
}

impl Store {
    /// Opens (or creates) `messages.sqlite3` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ServerError::Io {
            context: format!("cannot create the data directory {}", data_dir.display()),
            source,
        })?;
        // Only the server's user may read the messages, the passes and the join code's hash.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| ServerError::Io {
                    context: format!("cannot protect the data directory {}", data_dir.display()),
                    source,
                },
            )?;
        }
        let conn = Connection::open(data_dir.join("messages.sqlite3"))?;
        // WAL lets readers work beside the writer; synchronous=FULL makes every acknowledged
        // message survive a power cut, which matters more here than write speed.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |row| {
                row.get(0)
            })
            .optional()?;
        let id = match stored.and_then(|v| <[u8; 16]>::try_from(v).ok()) {
            Some(id) => id,
            None => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id)
                    .map_err(|e| ServerError::Crypto(format!("no randomness: {e}")))?;
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('store_id', ?1)",
                    [&id[..]],
                )?;
                id
            }
        };
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            id,
            sizes: Arc::default(),
            stored: Arc::default(),
        })
    }

    fn sizes(&self) -> MutexGuard<'_, HashMap<RoomId, u64>> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of the messages stored in `room`.
    pub fn room_bytes_blocking(&self, room: RoomId) -> Result<u64, ServerError> {
        if let Some(bytes) = self.sizes().get(&room) {
            return Ok(*bytes);
        }
        let conn = self.lock();
        let bytes: i64 = conn.query_row(
            "SELECT COALESCE(SUM(length(envelope)), 0) FROM messages WHERE room = ?1",
            [&room.0[..]],
            |row| row.get(0),
        )?;
        let bytes = bytes.max(0) as u64;
        self.sizes().insert(room, bytes);
        Ok(bytes)
    }

    /// Deletes the messages received before `cutoff_ms` (the operator's retention), and
    /// returns how many went.
    pub fn forget_older_than_blocking(&self, cutoff_ms: u64) -> Result<usize, ServerError> {
        let conn = self.lock();
        let deleted = conn.execute(
            "DELETE FROM messages WHERE received_at_ms < ?1",
            [cutoff_ms as i64],
        )?;
        if deleted > 0 {
            self.sizes().clear();
        }
        Ok(deleted)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to keep using.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `envelope` unless its id is already stored; see [`Store::insert_many_blocking`].
    pub fn insert_blocking(
        &self,
        envelope: &Envelope,
        received_at_ms: u64,
        on_new: impl FnMut(&Arc<StoredMessage>),
    ) -> Result<Stored, ServerError> {
        let mut stored =
            self.insert_many_blocking(std::slice::from_ref(envelope), received_at_ms, on_new)?;
        Ok(stored.remove(0))
    }

    /// Stores each envelope whose id is not stored yet, all in one transaction (one disk sync
    /// for the batch), and returns one result per envelope in order. After the commit, calls
    /// `on_new` with each new message while the write lock is still held, so listeners see
    /// messages in sequence order.
    pub fn insert_many_blocking(
        &self,
        envelopes: &[Envelope],
        received_at_ms: u64,
        on_new: impl FnMut(&Arc<StoredMessage>),
    ) -> Result<Vec<Stored>, ServerError> {
        self.insert_many_from_blocking(envelopes, received_at_ms, Origin::Here, on_new)
    }

    /// [`Store::insert_many_blocking`] for envelopes that came from `origin`.
    pub fn insert_many_from_blocking(
        &self,
        envelopes: &[Envelope],
        received_at_ms: u64,
        origin: Origin,
        on_new: impl FnMut(&Arc<StoredMessage>),
    ) -> Result<Vec<Stored>, ServerError> {
        let times = vec![received_at_ms; envelopes.len()];
        self.insert_timed_blocking(envelopes, &times, origin, on_new)
    }

    /// [`Store::insert_many_from_blocking`] with each envelope's own time of first storing
    /// (`times[i]` for `envelopes[i]`): an archive loaded into another camp keeps its times.
    pub fn insert_timed_blocking(
        &self,
        envelopes: &[Envelope],
        times: &[u64],
        origin: Origin,
        mut on_new: impl FnMut(&Arc<StoredMessage>),
    ) -> Result<Vec<Stored>, ServerError> {
        assert_eq!(envelopes.len(), times.len(), "one time per envelope");
        let encoded = envelopes
            .iter()
            .map(Envelope::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut results = Vec::with_capacity(envelopes.len());
        let mut replaced_copies = false;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (id, room, received_at_ms, envelope, federated)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (room, id) DO NOTHING RETURNING seq",
            )?;
            let mut existing = tx.prepare_cached(
                "SELECT seq, received_at_ms, envelope FROM messages WHERE room = ?1 AND id = ?2",
            )?;
            for ((envelope, bytes), &received_at_ms) in envelopes.iter().zip(&encoded).zip(times) {
                // A radio copy of a message held whole is that message again.
                if envelope.kind == Kind::Radio {
                    if let Some(original) = twins(&tx, envelope)?
                        .into_iter()
                        .find(|m| m.envelope.kind != Kind::Radio)
                    {
                        results.push(Stored {
                            message: Arc::new(original),
                            duplicate: true,
                            conflict: false,
                        });
                        continue;
                    }
                }
                let inserted: Option<i64> = insert
                    .query_row(
                        params![
                            &envelope.id.0[..],
                            &envelope.room.0[..],
                            received_at_ms as i64,
                            bytes,
                            origin == Origin::Federation
                        ],
                        |row| row.get(0),
                    )
                    .optional()?;
                if inserted.is_some() && envelope.kind != Kind::Radio {
                    // The whole message replaces its radio copies.
                    for copy in twins(&tx, envelope)?
                        .into_iter()
                        .filter(|m| m.envelope.kind == Kind::Radio)
                    {
                        tx.execute("DELETE FROM messages WHERE seq = ?1", [copy.seq as i64])?;
                        replaced_copies = true;
                    }
                }
                let stored = match inserted {
                    Some(seq) => Stored {
                        message: Arc::new(StoredMessage {
                            seq: seq as u64,
                            received_at_ms,
                            envelope: envelope.clone(),
                        }),
                        duplicate: false,
                        conflict: false,
                    },
                    None => {
                        let message = existing
                            .query_row(
                                params![&envelope.room.0[..], &envelope.id.0[..]],
                                row_to_message,
                            )?
                            .map_err(ServerError::CorruptRow)?;
                        // The same message again is a duplicate; another one under its id is
                        // a conflict, never taken for it.
                        let same = message.envelope == *envelope;
                        Stored {
                            message: Arc::new(message),
                            duplicate: same,
                            conflict: !same,
                        }
                    }
                };
                results.push(stored);
            }
        }
        tx.commit()?;
        if replaced_copies {
            // Sizes are counted again on the next ask.
            self.sizes().clear();
        }
        {
            let mut sizes = self.sizes();
            for ((stored, envelope), bytes) in results.iter().zip(envelopes).zip(&encoded) {
                if !stored.duplicate && !stored.conflict {
                    if let Some(size) = sizes.get_mut(&envelope.room) {
                        *size += bytes.len() as u64;
                    }
                }
            }
        }
        let mut any = false;
        for stored in results
            .iter()
            .filter(|stored| !stored.duplicate && !stored.conflict)
        {
            on_new(&stored.message);
            any = true;
        }
        if any {
            self.stored.notify_one();
        }
        Ok(results)
    }

    /// Keeps a radio form until it is confirmed; a second copy of the same id is ignored.
    pub fn radio_enqueue_blocking(&self, pending: &RadioPending) -> Result<(), ServerError> {
        self.lock().execute(
            "INSERT OR IGNORE INTO radio_outbox (id, room, payload, queued_at_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                &pending.id.0[..],
                &pending.room.0[..],
                &pending.payload,
                pending.queued_at_ms as i64
            ],
        )?;
        Ok(())
    }

    /// The access key of `room`: the one kept, or `access` when the room has none yet (the
    /// first device to prove a key for a room sets it; room ids are random, so nobody knows
    /// a new room's id before its first member joins).
    pub fn room_access_blocking(
        &self,
        room: RoomId,
        access: [u8; 32],
    ) -> Result<[u8; 32], ServerError> {
        let conn = self.lock();
        conn.execute(
            "INSERT OR IGNORE INTO room_access (room, access) VALUES (?1, ?2)",
            (&room.0[..], &access[..]),
        )?;
        let kept: Vec<u8> = conn.query_row(
            "SELECT access FROM room_access WHERE room = ?1",
            [&room.0[..]],
            |row| row.get(0),
        )?;
        Ok(kept.try_into().unwrap_or([0; 32]))
    }

    /// Forgets a radio form: confirmed, or given up.
    pub fn radio_done_blocking(&self, id: MessageId) -> Result<(), ServerError> {
        self.lock()
            .execute("DELETE FROM radio_outbox WHERE id = ?1", [&id.0[..]])?;
        Ok(())
    }

    /// Every radio form still waiting, oldest first.
    pub fn radio_pending_blocking(&self) -> Result<Vec<RadioPending>, ServerError> {
        let conn = self.lock();
        let mut query = conn.prepare_cached(
            "SELECT id, room, payload, queued_at_ms FROM radio_outbox ORDER BY queued_at_ms",
        )?;
        let rows = query
            .query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?
            .filter_map(|row| {
                let (id, room, payload, queued_at_ms) = row.ok()?;
                Some(RadioPending {
                    id: MessageId(id.try_into().ok()?),
                    room: RoomId(room.try_into().ok()?),
                    payload,
                    queued_at_ms: queued_at_ms.max(0) as u64,
                })
            })
            .collect();
        Ok(rows)
    }

    /// Up to `limit` messages stored here (not from federation) after the sequence number
    /// `after`, in the order stored: what federation has not been given yet.
    pub fn own_after_blocking(
        &self,
        after: u64,
        limit: u16,
    ) -> Result<Vec<StoredMessage>, ServerError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT seq, received_at_ms, envelope FROM messages
             WHERE seq > ?1 AND federated = 0 ORDER BY seq ASC LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![after.min(i64::MAX as u64) as i64, i64::from(limit)],
            row_to_message,
        )?;
        readable(rows)
    }

    /// A value kept beside the messages (`None` when never set).
    pub fn meta_blocking(&self, key: &str) -> Result<Option<Vec<u8>>, ServerError> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// Keeps `value` under `key` beside the messages.
    pub fn set_meta_blocking(&self, key: &str, value: &[u8]) -> Result<(), ServerError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Every room with at least one stored message.
    pub fn rooms_blocking(&self) -> Result<Vec<RoomId>, ServerError> {
        let conn = self.lock();
        let mut query = conn.prepare_cached("SELECT DISTINCT room FROM messages")?;
        let rooms = query
            .query_map([], |row| row.get::<_, Vec<u8>>(0))?
            .filter_map(|room| room.ok()?.try_into().ok().map(RoomId))
            .collect();
        Ok(rooms)
    }

    /// Reads every message of `room` from one snapshot (what is stored meanwhile is not
    /// seen), holding one message in memory at a time: first `visit(Count(n))` with how many
    /// there are, then `visit(Message(m))` for each, oldest first. Rows that no longer decode
    /// are skipped (and not counted). Returns how many were visited.
    pub fn room_log_blocking(
        &self,
        room: RoomId,
        mut visit: impl FnMut(LogStep<'_>) -> Result<(), ServerError>,
    ) -> Result<u64, ServerError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut count = 0u64;
        {
            let mut statement = tx.prepare(
                "SELECT seq, received_at_ms, envelope FROM messages WHERE room = ?1 ORDER BY seq",
            )?;
            for pass in [false, true] {
                if pass {
                    visit(LogStep::Count(count))?;
                }
                for row in statement.query_map([&room.0[..]], row_to_message)? {
                    let Ok(message) = row? else { continue };
                    if pass {
                        visit(LogStep::Message(&message))?;
                    } else {
                        count += 1;
                    }
                }
            }
        }
        tx.finish()?;
        Ok(count)
    }

    /// Every room with stored messages: how many, their bytes, and when the newest arrived
    /// (ms since the epoch), busiest first. For the operator, who knows rooms only by id.
    pub fn room_summaries_blocking(&self) -> Result<Vec<(RoomId, u64, u64, u64)>, ServerError> {
        let conn = self.lock();
        let mut query = conn.prepare_cached(
            "SELECT room, COUNT(*), SUM(length(envelope)), MAX(received_at_ms) FROM messages
             GROUP BY room ORDER BY COUNT(*) DESC",
        )?;
        let rooms = query
            .query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?
            .filter_map(|row| {
                let (room, count, bytes, newest) = row.ok()?;
                Some((
                    RoomId(room.try_into().ok()?),
                    count as u64,
                    bytes as u64,
                    newest as u64,
                ))
            })
            .collect();
        Ok(rooms)
    }

    /// Up to `limit` messages of `room` with a sequence number below `before` (all when
    /// `None`), oldest first, and whether older ones exist.
    pub fn page_before_blocking(
        &self,
        room: RoomId,
        before: Option<u64>,
        limit: u16,
    ) -> Result<(Vec<StoredMessage>, bool), ServerError> {
        let before = before.map_or(i64::MAX, |seq| seq.min(i64::MAX as u64) as i64);
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT seq, received_at_ms, envelope FROM messages
             WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![&room.0[..], before, i64::from(limit) + 1],
            row_to_message,
        )?;
        let mut messages = Vec::with_capacity(usize::from(limit) + 1);
        let mut bytes = 0;
        let mut cut_for_size = false;
        for row in rows {
            match row? {
                Ok(message) => {
                    // A page also stops at a byte budget, so a client asking for many pages
                    // of large messages cannot make the server hold megabytes per request.
                    bytes += message.envelope.body.len() + ENVELOPE_HEADER_ALLOWANCE;
                    if bytes > MAX_PAGE_BYTES && !messages.is_empty() {
                        cut_for_size = true;
                        break;
                    }
                    messages.push(message);
                }
                Err(seq) => {
                    tracing::error!(seq, "skipping a stored message that no longer decodes")
                }
            }
        }
        let has_more = cut_for_size || messages.len() > usize::from(limit);
        messages.truncate(usize::from(limit));
        messages.reverse();
        Ok((messages, has_more))
    }

    /// Up to `limit` messages of `room` with a sequence number above `after`, oldest first.
    pub fn after_blocking(
        &self,
        room: RoomId,
        after: u64,
        limit: u16,
    ) -> Result<Vec<StoredMessage>, ServerError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT seq, received_at_ms, envelope FROM messages
             WHERE room = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![
                &room.0[..],
                after.min(i64::MAX as u64) as i64,
                i64::from(limit)
            ],
            row_to_message,
        )?;
        readable(rows)
    }

    /// How many messages of `room` after `after` (all when `None`) were sent by others than
    /// `own`, counting the newest `cap` messages at most; the newest of those, and the room's
    /// newest sequence number.
    pub fn unread_blocking(
        &self,
        room: RoomId,
        after: Option<u64>,
        own: mesh::SenderId,
        cap: u32,
    ) -> Result<Unread, ServerError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT seq, received_at_ms, envelope FROM messages
             WHERE room = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let after = after.map_or(-1, |seq| seq.min(i64::MAX as u64) as i64);
        let rows =
            statement.query_map(params![&room.0[..], after, i64::from(cap)], row_to_message)?;
        let mut unread = Unread {
            count: 0,
            newest: None,
            last_seq: after.max(0) as u64,
        };
        for row in rows {
            let message = row?;
            let seq = match &message {
                Ok(message) => message.seq,
                Err(seq) => *seq,
            };
            unread.last_seq = unread.last_seq.max(seq);
            match message {
                Ok(message)
                    if message.envelope.sender != own
                        && message.envelope.kind != mesh::Kind::Live =>
                {
                    unread.count += 1;
                    unread.newest.get_or_insert(message);
                }
                Ok(_) => {}
                Err(seq) => {
                    tracing::error!(seq, "skipping a stored message that no longer decodes")
                }
            }
        }
        Ok(unread)
    }

    /// Remembers a device token (by its hash) handed out under the join code `epoch`.
    pub fn add_device_token_blocking(
        &self,
        token_hash: &[u8],
        epoch: &[u8],
        device: mesh::SenderId,
    ) -> Result<(), ServerError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO device_tokens (token_hash, epoch, device, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, epoch, &device.0[..], crate::now_ms() as i64],
        )?;
        Ok(())
    }

    /// Whether a device token (by its hash) was handed out under the join code `epoch`.
    pub fn has_device_token_blocking(
        &self,
        token_hash: &[u8],
        epoch: &[u8],
    ) -> Result<bool, ServerError> {
        let found: Option<i64> = self
            .lock()
            .query_row(
                "SELECT 1 FROM device_tokens WHERE token_hash = ?1 AND epoch = ?2",
                params![token_hash, epoch],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Number of stored messages (all rooms).
    pub fn count_blocking(&self) -> Result<u64, ServerError> {
        let count: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))?;
        Ok(count as u64)
    }

    /// Async wrapper: runs `f` on the blocking thread pool with this store.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ServerError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ServerError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }
}

/// The other messages of `envelope`'s room that are the same message in another form: its
/// radio copies (ids: the message's first 6 bytes, the room's first 4, a hash), or for a
/// radio copy the message it was made from (ids starting with the same 6 bytes).
fn twins(
    tx: &rusqlite::Transaction<'_>,
    envelope: &Envelope,
) -> Result<Vec<StoredMessage>, ServerError> {
    let mut low = [0u8; 16];
    low[..6].copy_from_slice(&envelope.id.0[..6]);
    let mut high = [0xffu8; 16];
    high[..6].copy_from_slice(&envelope.id.0[..6]);
    let mut query = tx.prepare_cached(
        "SELECT seq, received_at_ms, envelope FROM messages
         WHERE room = ?1 AND id >= ?2 AND id <= ?3 AND id != ?4 LIMIT 8",
    )?;
    let rows = query.query_map(
        params![
            &envelope.room.0[..],
            &low[..],
            &high[..],
            &envelope.id.0[..]
        ],
        row_to_message,
    )?;
    let tag = &envelope.room.0[..4];
    let mut twins = Vec::new();
    for row in rows {
        let Ok(message) = row? else { continue };
        let copy_of = |radio: &Envelope, whole: &Envelope| {
            radio.kind == Kind::Radio
                && whole.kind != Kind::Radio
                && radio.id.0[6..10] == *tag
                && radio.id.0[..6] == whole.id.0[..6]
        };
        if copy_of(&message.envelope, envelope) || copy_of(envelope, &message.envelope) {
            twins.push(message);
        }
    }
    Ok(twins)
}

/// The messages of `rows` that still decode (one that does not is logged and skipped).
fn readable(
    rows: impl Iterator<Item = rusqlite::Result<Result<StoredMessage, u64>>>,
) -> Result<Vec<StoredMessage>, ServerError> {
    let mut messages = Vec::new();
    for row in rows {
        match row? {
            Ok(message) => messages.push(message),
            Err(seq) => tracing::error!(seq, "skipping a stored message that no longer decodes"),
        }
    }
    Ok(messages)
}

/// Reads a row; the inner `Err` carries the sequence number of a row whose envelope no longer
/// decodes (it is skipped and logged, never served).
fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredMessage, u64>> {
    let seq: i64 = row.get(0)?;
    let received_at_ms: i64 = row.get(1)?;
    let bytes: Vec<u8> = row.get(2)?;
    Ok(Envelope::decode(&bytes)
        .map(|envelope| StoredMessage {
            seq: seq as u64,
            received_at_ms: received_at_ms as u64,
            envelope,
        })
        .map_err(|_| seq as u64))
}

fn migrate(conn: &Connection) -> Result<(), ServerError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{Kind, MessageId, SenderId};

    fn envelope(n: u8, room: RoomId) -> Envelope {
        Envelope {
            id: MessageId([n; 16]),
            room,
            sender: SenderId([1; 32]),
            created_at_ms: u64::from(n),
            kind: Kind::Text,
            nonce: [0; 24],
            signature: mesh::Signature([0; 64]),
            body: vec![n; 8],
        }
    }

    #[test]
    fn a_message_heard_by_radio_and_received_whole_is_one_message_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = mesh::crypto::RoomKey::from_bytes([7; 32]);
        let room = key.room_id();
        let copy_of = |whole: &Envelope| {
            mesh::radio::RadioMessage::seal(&key, whole.id, 1_800_000_000, "Ana", "water")
                .to_envelope(room)
        };
        let mut whole = envelope(1, room);
        let copy = copy_of(&whole);
        assert_ne!(copy.id, whole.id);

        // Heard by radio first: the whole message replaces the copy.
        assert!(!store.insert_blocking(&copy, 1, |_| {}).unwrap().duplicate);
        let stored = store.insert_blocking(&whole, 2, |_| {}).unwrap();
        assert!(!stored.duplicate && !stored.conflict);
        let (page, _) = store.page_before_blocking(room, None, 10).unwrap();
        let ids: Vec<MessageId> = page.iter().map(|m| m.envelope.id).collect();
        assert_eq!(ids, [whole.id]);
        assert_eq!(
            store.room_bytes_blocking(room).unwrap(),
            whole.encode().unwrap().len() as u64
        );

        // Held whole first: the radio copy is that message again, and stores nothing.
        whole.id = MessageId([2; 16]);
        store.insert_blocking(&whole, 3, |_| {}).unwrap();
        let again = store.insert_blocking(&copy_of(&whole), 4, |_| {}).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.envelope, whole);
        assert_eq!(store.count_blocking().unwrap(), 2);

        // A radio message whose id only starts like another radio message's is its own.
        let other =
            mesh::radio::RadioMessage::seal(&key, MessageId([3; 16]), 1_800_000_000, "Ben", "a")
                .to_envelope(room);
        let second =
            mesh::radio::RadioMessage::seal(&key, MessageId([3; 16]), 1_800_000_001, "Ben", "b")
                .to_envelope(room);
        store.insert_blocking(&other, 5, |_| {}).unwrap();
        assert!(!store.insert_blocking(&second, 6, |_| {}).unwrap().duplicate);
        assert_eq!(store.count_blocking().unwrap(), 4);
    }

    #[test]
    fn room_sizes_follow_inserts_and_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (RoomId([1; 16]), RoomId([2; 16]));
        store
            .insert_blocking(&envelope(1, a), 1_000, |_| {})
            .unwrap();
        let one = store.room_bytes_blocking(a).unwrap();
        assert!(one > 8);
        assert_eq!(store.room_bytes_blocking(b).unwrap(), 0);
        // Kept up to date on insert (a duplicate adds nothing), per room.
        store
            .insert_blocking(&envelope(2, a), 5_000, |_| {})
            .unwrap();
        store
            .insert_blocking(&envelope(2, a), 6_000, |_| {})
            .unwrap();
        store
            .insert_blocking(&envelope(3, b), 9_000, |_| {})
            .unwrap();
        assert_eq!(store.room_bytes_blocking(a).unwrap(), 2 * one);
        assert_eq!(store.room_bytes_blocking(b).unwrap(), one);
        // The retention deletes what was received before the cutoff, and the sizes follow.
        assert_eq!(store.forget_older_than_blocking(5_000).unwrap(), 1);
        assert_eq!(store.room_bytes_blocking(a).unwrap(), one);
        assert_eq!(store.count_blocking().unwrap(), 2);
    }

    #[test]
    fn unread_counts_what_others_sent_after_the_read_mark_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (room, other) = (RoomId([1; 16]), RoomId([2; 16]));
        let me = SenderId([9; 32]);
        let mut seqs = Vec::new();
        for n in 1..=6u8 {
            let mut message = envelope(n, room);
            // Messages 2 and 5 are this person's own.
            if n == 2 || n == 5 {
                message.sender = me;
            }
            seqs.push(
                store
                    .insert_blocking(&message, 0, |_| {})
                    .unwrap()
                    .message
                    .seq,
            );
        }
        store
            .insert_blocking(&envelope(7, other), 0, |_| {})
            .unwrap();
        let all = store.unread_blocking(room, None, me, 100).unwrap();
        assert_eq!(all.count, 4, "own messages and other rooms are not unread");
        assert_eq!(all.newest.unwrap().envelope.id, MessageId([6; 16]));
        assert_eq!(all.last_seq, seqs[5]);
        let later = store.unread_blocking(room, Some(seqs[2]), me, 100).unwrap();
        assert_eq!(later.count, 2, "only what came after the read mark");
        let none = store.unread_blocking(room, Some(seqs[5]), me, 100).unwrap();
        assert_eq!((none.count, none.newest, none.last_seq), (0, None, seqs[5]));
        // The count looks at the newest `cap` messages only, and still finds the newest.
        let capped = store.unread_blocking(room, None, me, 3).unwrap();
        assert_eq!(capped.count, 2);
        assert_eq!(capped.newest.unwrap().envelope.id, MessageId([6; 16]));
        // A live position is stored and moves the room on, but is not news.
        let mut live = envelope(8, room);
        live.kind = Kind::Live;
        let live_seq = store.insert_blocking(&live, 0, |_| {}).unwrap().message.seq;
        let after_live = store.unread_blocking(room, Some(seqs[5]), me, 100).unwrap();
        assert_eq!(
            (after_live.count, after_live.newest, after_live.last_seq),
            (0, None, live_seq)
        );
    }

    #[test]
    fn a_repeated_id_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomId([5; 16]);
        let mut told = 0;
        let first = store
            .insert_blocking(&envelope(1, room), 10, |_| told += 1)
            .unwrap();
        let again = store
            .insert_blocking(&envelope(1, room), 20, |_| told += 1)
            .unwrap();
        assert!(!first.duplicate);
        assert!(again.duplicate);
        assert_eq!(again.message.seq, first.message.seq);
        assert_eq!(again.message.received_at_ms, 10);
        assert_eq!(told, 1);
        assert_eq!(store.count_blocking().unwrap(), 1);
    }

    #[test]
    fn ids_are_unique_per_room_and_another_message_under_a_stored_id_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (here, there) = (RoomId([5; 16]), RoomId([6; 16]));
        let first = store
            .insert_blocking(&envelope(1, here), 10, |_| {})
            .unwrap();
        // The same id in another room is another message.
        let other_room = store
            .insert_blocking(&envelope(1, there), 11, |_| {})
            .unwrap();
        assert!(!other_room.duplicate && !other_room.conflict);
        assert_ne!(other_room.message.seq, first.message.seq);
        // Other bytes under a stored id in the same room: a conflict, not stored.
        let mut squatter = envelope(1, here);
        squatter.body = b"not the same".to_vec();
        let mut told = 0;
        let conflict = store.insert_blocking(&squatter, 12, |_| told += 1).unwrap();
        assert!(conflict.conflict && !conflict.duplicate);
        assert_eq!(told, 0, "nobody is told of it");
        assert_eq!(
            conflict.message.envelope,
            envelope(1, here),
            "the first stays"
        );
        assert_eq!(store.count_blocking().unwrap(), 2);
    }

    #[test]
    fn a_database_of_server_wide_ids_moves_to_ids_per_room_keeping_every_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as the release before made it.
            let conn = Connection::open(dir.path().join("messages.sqlite3")).unwrap();
            for migration in &MIGRATIONS[..4] {
                conn.execute_batch(migration).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            for n in 1..=3u8 {
                let bytes = envelope(n, RoomId([5; 16])).encode().unwrap();
                conn.execute(
                    "INSERT INTO messages (id, room, received_at_ms, envelope) VALUES (?1, ?2, 7, ?3)",
                    params![&[n; 16][..], &[5u8; 16][..], bytes],
                )
                .unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.count_blocking().unwrap(), 3);
        let next = store
            .insert_blocking(&envelope(1, RoomId([6; 16])), 8, |_| {})
            .unwrap();
        assert!(!next.conflict && !next.duplicate);
        assert_eq!(next.message.seq, 4, "sequence numbers carry on");
    }

    #[test]
    fn a_page_of_large_messages_stops_at_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let room = RoomId([5; 16]);
        for n in 1..=60u8 {
            let mut big = envelope(n, room);
            big.body = vec![n; 16 * 1024];
            store.insert_blocking(&big, 0, |_| {}).unwrap();
        }
        let (page, more) = store.page_before_blocking(room, None, 200).unwrap();
        assert!(more, "the rest is one more page away");
        assert!(page.len() < 60 && !page.is_empty());
        let bytes: usize = page.iter().map(|m| m.envelope.body.len()).sum();
        assert!(bytes <= MAX_PAGE_BYTES, "{bytes} bytes");
        assert_eq!(
            page.last().unwrap().envelope.id.0[0],
            60,
            "the newest come first"
        );
        let (older, _) = store
            .page_before_blocking(room, Some(page[0].seq), 200)
            .unwrap();
        assert_eq!(
            older.last().unwrap().seq + 1,
            page[0].seq,
            "paging continues without a gap"
        );
    }

    #[test]
    fn pages_go_backwards_and_history_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let room = RoomId([5; 16]);
        let other = RoomId([6; 16]);
        {
            let store = Store::open(dir.path()).unwrap();
            for n in 1..=25 {
                store
                    .insert_blocking(&envelope(n, room), 0, |_| {})
                    .unwrap();
                store
                    .insert_blocking(&envelope(100 + n, other), 0, |_| {})
                    .unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        let (newest, more) = store.page_before_blocking(room, None, 10).unwrap();
        assert!(more);
        let ids: Vec<u8> = newest.iter().map(|m| m.envelope.id.0[0]).collect();
        assert_eq!(ids, (16..=25).collect::<Vec<_>>());
        let (older, more) = store
            .page_before_blocking(room, Some(newest[0].seq), 10)
            .unwrap();
        assert!(more);
        assert_eq!(older.last().unwrap().envelope.id.0[0], 15);
        let (oldest, more) = store
            .page_before_blocking(room, Some(older[0].seq), 10)
            .unwrap();
        assert!(!more);
        assert_eq!(oldest.len(), 5);
        let after = store.after_blocking(room, oldest[4].seq, 100).unwrap();
        assert_eq!(after.len(), 20);
    }
}
