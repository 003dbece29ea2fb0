//! This device's store: IndexedDB through rexie. Messages by room and order, the outbox, rooms
//! with their sync cursors, and settings (identity, display name, current room).
//!
//! Writes that must agree (an outbox entry and its message; an acknowledgement and the
//! message's new state; received messages and the room cursor) share one transaction.

use client::delivery::Delivery;
use rexie::{Direction, Index, KeyRange, ObjectStore, Rexie, TransactionMode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use wasm_bindgen::JsValue;

const DB_NAME: &str = "fieldmesh";
const DB_VERSION: u32 = 1;
const MESSAGES: &str = "messages";
const OUTBOX: &str = "outbox";
const ROOMS: &str = "rooms";
const SETTINGS: &str = "settings";
/// Files' sealed pieces live in a database of their own: bulky, and added without upgrading
/// (and so blocking on) the message database another open tab holds.
const FILES_DB_NAME: &str = "fieldmesh-files";
const PIECES: &str = "pieces";

/// Orders not-yet-stored own messages after every stored one (server sequence numbers are far
/// below this), by the time they were written.
pub(crate) const LOCAL_ORDER_BASE: f64 = 1e15;

/// Any failure of the browser's store, as a sentence for the notice line.
#[derive(Debug)]
pub(crate) struct DbError(pub(crate) String);

impl From<rexie::Error> for DbError {
    fn from(error: rexie::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<serde_wasm_bindgen::Error> for DbError {
    fn from(error: serde_wasm_bindgen::Error) -> Self {
        Self(error.to_string())
    }
}

pub(crate) type Result<T> = std::result::Result<T, DbError>;

/// A message as this device keeps it, ready to show.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    /// Message id, hex.
    pub(crate) id: String,
    /// Room id, hex.
    pub(crate) room: String,
    /// Position in the room: the server's sequence number once stored.
    pub(crate) order: f64,
    /// The server's sequence number, once stored.
    pub(crate) seq: Option<f64>,
    pub(crate) created_at: f64,
    /// Device that wrote it, hex.
    pub(crate) sender: String,
    pub(crate) author: String,
    pub(crate) text: String,
    pub(crate) state: RecordState,
    /// Camps whose phones sent a radio receipt for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) camps: Vec<String>,
    /// Files sent with it: what they are and how to fetch and open them (keys included, as
    /// the room key is: the store never leaves the device), as `mesh` encodes them.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub(crate) files: Vec<u8>,
    /// Where the author was when they sent it, when they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) position: Option<mesh::geo::Position>,
    /// An SOS, its end or answer, or a live position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<mesh::body::Signal>,
    /// When it reached the server (or this phone's radio), by that clock; none for own
    /// messages. A phone's clock may be days off: this one says how new it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) received_at: Option<f64>,
}

impl MessageRecord {
    /// Its text with a line per file ("[photo, 180 KB]"): for the room list, notifications
    /// and search, which show text alone.
    pub(crate) fn summary(&self) -> String {
        let text = mesh::body::with_markers(&self.text, &self.files());
        let said = match self.signal {
            Some(mesh::body::Signal::Sos) => "SOS",
            Some(mesh::body::Signal::Safe { .. }) => "I am safe",
            Some(mesh::body::Signal::Coming { .. }) => "On my way",
            Some(mesh::body::Signal::Live { .. }) => "Shares where they are",
            None => return text,
        };
        if text.is_empty() {
            said.to_string()
        } else {
            format!("{said}: {text}")
        }
    }

    /// Its files.
    pub(crate) fn files(&self) -> Vec<mesh::body::Attachment> {
        mesh::body::decode_attachments(&self.files)
    }

    /// Sets its files.
    pub(crate) fn set_files(&mut self, files: &[mesh::body::Attachment]) {
        self.files = mesh::body::encode_attachments(files);
    }
}

/// Delivery state of a stored record, as kept in the store. It moves only as
/// [`Delivery`] allows: forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordState {
    Queued,
    Stored,
    Failed,
    /// Own message stored and heard relayed by another camp's radio.
    Relayed,
    /// Someone's message that came over the radio (room key only, no signature).
    Radio,
}

impl From<RecordState> for Delivery {
    fn from(state: RecordState) -> Self {
        match state {
            RecordState::Queued => Delivery::Queued,
            RecordState::Stored => Delivery::Stored,
            RecordState::Failed => Delivery::Failed,
            RecordState::Relayed => Delivery::Relayed,
            RecordState::Radio => Delivery::Radio,
        }
    }
}

impl From<Delivery> for RecordState {
    fn from(state: Delivery) -> Self {
        match state {
            Delivery::Queued => RecordState::Queued,
            Delivery::Stored => RecordState::Stored,
            Delivery::Failed => RecordState::Failed,
            Delivery::Relayed => RecordState::Relayed,
            Delivery::Radio => RecordState::Radio,
        }
    }
}

impl RecordState {
    /// Moves the state as `step` says (see [`Delivery`]).
    fn step(self, step: impl FnOnce(Delivery) -> Delivery) -> Self {
        step(self.into()).into()
    }
}

/// An own message waiting for the server's acknowledgement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    /// Auto-increment key: the order messages were written in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) n: Option<f64>,
    /// Message id, hex.
    pub(crate) id: String,
    /// The encoded envelope, sent as is.
    #[serde(with = "serde_bytes")]
    pub(crate) envelope: Vec<u8>,
    /// Its radio form (see `mesh::radio`), for a server with a radio; empty when it is too
    /// long for the radio. Older entries have none.
    #[serde(default, with = "serde_bytes")]
    pub(crate) radio: Vec<u8>,
    /// A message heard over this device's radio, to upload (not an own message to publish).
    #[serde(default)]
    pub(crate) heard: bool,
    /// The server refused it; it waits for the person to retry.
    pub(crate) failed: bool,
    /// Its files' sealed pieces the server has not confirmed yet: the message waits until it
    /// has them all, so nobody sees a file that cannot be fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pieces: Vec<PieceRef>,
    /// An SOS or its answer: sent before the other entries, and over the radio ahead of the
    /// rest.
    #[serde(default)]
    pub(crate) urgent: bool,
}

/// A sealed piece an outbox entry waits to upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PieceRef {
    /// Its name, hex.
    pub(crate) id: String,
    /// Its size in bytes.
    pub(crate) size: f64,
}

/// A sealed piece of a file this device sent, kept to upload it and to show the file here
/// without fetching it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PieceRecord {
    /// Its name: the hex of the SHA-256 of `bytes`.
    pub(crate) id: String,
    /// Its room, hex: forgetting the room forgets it.
    pub(crate) room: String,
    /// The sealed bytes.
    #[serde(with = "serde_bytes")]
    pub(crate) bytes: Vec<u8>,
}

/// What this device knows about a room.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    /// Room id, hex.
    pub(crate) id: String,
    /// The name as the person typed it.
    pub(crate) name: String,
    /// Highest server sequence number held with nothing missing after the first page.
    pub(crate) cursor: Option<f64>,
    /// The server has messages older than the oldest held here.
    pub(crate) server_has_older: bool,
    /// The room key, hex. Never sent to any server.
    #[serde(default)]
    pub(crate) key: String,
    /// The key is published (the Emergency room): anyone can read it.
    #[serde(default)]
    pub(crate) public: bool,
    /// A private conversation with one person; `name` is theirs.
    #[serde(default)]
    pub(crate) direct: bool,
    /// The server store (hex id) the cursor counts in; another store means start over.
    #[serde(default)]
    pub(crate) server: String,
    /// The person muted the room: no notifications.
    #[serde(default)]
    pub(crate) muted: bool,
}

#[derive(Serialize, Deserialize)]
struct Setting {
    key: String,
    value: String,
}

/// The open database.
pub(crate) struct Db {
    rexie: Rexie,
    files: Rexie,
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue> {
    Ok(serde_wasm_bindgen::to_value(value)?)
}

fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T> {
    Ok(serde_wasm_bindgen::from_value(value)?)
}

fn room_range(room: &str) -> Result<KeyRange> {
    order_range(room, (f64::MIN, false), (f64::MAX, false))
}

/// A room's messages from order `from` to `to` (`to` itself left out when `open_end`).
/// A room's messages from order `from` to `to`, each bound with whether it is left out.
fn order_range(room: &str, from: (f64, bool), to: (f64, bool)) -> Result<KeyRange> {
    let lower = js_sys::Array::of2(&room.into(), &JsValue::from_f64(from.0));
    let upper = js_sys::Array::of2(&room.into(), &JsValue::from_f64(to.0));
    KeyRange::bound(&lower, &upper, Some(from.1), Some(to.1))
        .map_err(|error| DbError(format!("{error:?}")))
}

/// Drops the copies of `original` that came over the radio (their ids are the original's
/// first 6 bytes, the room's first 4, then a hash of the radio form): a message heard by
/// radio and later received whole (from this server, or from another camp through it) is
/// one message.
async fn drop_radio_copies(messages: &rexie::Store, original: &MessageRecord) -> Result<()> {
    let (Some(id), Some(room)) = (original.id.get(..12), original.room.get(..8)) else {
        return Ok(());
    };
    let prefix = format!("{id}{room}");
    // Ids are lower-case hex: every id with this prefix sorts before the prefix and "g".
    let range = KeyRange::bound(
        &prefix.as_str().into(),
        &format!("{prefix}g").into(),
        Some(false),
        Some(true),
    )
    .map_err(|error| DbError(format!("{error:?}")))?;
    for value in messages.get_all(Some(range), Some(4)).await? {
        let copy: MessageRecord = from_js(value)?;
        if copy.state == RecordState::Radio && copy.room == original.room && copy.id != original.id
        {
            messages.delete(copy.id.as_str().into()).await?;
        }
    }
    Ok(())
}

impl Db {
    /// Opens (creating or upgrading) the database.
    pub(crate) async fn open() -> Result<Self> {
        let rexie = Rexie::builder(DB_NAME)
            .version(DB_VERSION)
            .add_object_store(
                ObjectStore::new(MESSAGES)
                    .key_path("id")
                    .add_index(Index::new_array("by_room", ["room", "order"])),
            )
            .add_object_store(
                ObjectStore::new(OUTBOX)
                    .key_path("n")
                    .auto_increment(true)
                    .add_index(Index::new("id", "id").unique(true)),
            )
            .add_object_store(ObjectStore::new(ROOMS).key_path("id"))
            .add_object_store(ObjectStore::new(SETTINGS).key_path("key"))
            .build()
            .await?;
        let files = Rexie::builder(FILES_DB_NAME)
            .version(1)
            .add_object_store(
                ObjectStore::new(PIECES)
                    .key_path("id")
                    .add_index(Index::new("room", "room")),
            )
            .build()
            .await?;
        Ok(Self { rexie, files })
    }

    /// Keeps a sealed piece (once: the same name is the same bytes).
    pub(crate) async fn put_piece(&self, piece: &PieceRecord) -> Result<()> {
        let tx = self
            .files
            .transaction(&[PIECES], TransactionMode::ReadWrite)?;
        tx.store(PIECES)?.put(&to_js(piece)?, None).await?;
        tx.done().await?;
        Ok(())
    }

    /// A sealed piece kept here, if it is.
    pub(crate) async fn piece(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let tx = self
            .files
            .transaction(&[PIECES], TransactionMode::ReadOnly)?;
        match tx.store(PIECES)?.get(id.into()).await? {
            Some(value) if !value.is_undefined() => Ok(Some(from_js::<PieceRecord>(value)?.bytes)),
            _ => Ok(None),
        }
    }

    /// Lets sealed pieces go (the server has them; opening their file fetches them again).
    pub(crate) async fn drop_pieces(&self, ids: &[String]) -> Result<()> {
        let tx = self
            .files
            .transaction(&[PIECES], TransactionMode::ReadWrite)?;
        let pieces = tx.store(PIECES)?;
        for id in ids {
            pieces.delete(id.as_str().into()).await?;
        }
        tx.done().await?;
        Ok(())
    }

    /// The outbox entry of message `id` has every piece on the server: it may go out.
    pub(crate) async fn uploaded(&self, id: &str) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[OUTBOX], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX)?;
        if let Some(value) = outbox
            .index("id")?
            .get(id.into())
            .await?
            .filter(|v| !v.is_undefined())
        {
            let mut entry: OutboxRecord = from_js(value)?;
            entry.pieces.clear();
            outbox.put(&to_js(&entry)?, None).await?;
        }
        tx.done().await?;
        Ok(())
    }

    /// A setting's value.
    pub(crate) async fn setting(&self, key: &str) -> Result<Option<String>> {
        let tx = self
            .rexie
            .transaction(&[SETTINGS], TransactionMode::ReadOnly)?;
        let value = tx.store(SETTINGS)?.get(key.into()).await?;
        match value {
            Some(value) if !value.is_undefined() => Ok(Some(from_js::<Setting>(value)?.value)),
            _ => Ok(None),
        }
    }

    /// A value kept under the setting `key` by [`Db::keep`]; `None` when there is none, or it
    /// no longer reads (a device then starts afresh rather than fail).
    pub(crate) async fn kept<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        use base64::Engine as _;
        let text = self.setting(key).await.ok().flatten()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        postcard::from_bytes(&bytes).ok()
    }

    /// Keeps `value` under the setting `key` (postcard, in base64).
    pub(crate) async fn keep<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        use base64::Engine as _;
        let bytes = postcard::to_allocvec(value).map_err(|e| DbError(e.to_string()))?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.set_setting(key, Some(&text)).await
    }

    /// Sets (or, with `None`, removes) a setting.
    pub(crate) async fn set_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[SETTINGS], TransactionMode::ReadWrite)?;
        let store = tx.store(SETTINGS)?;
        match value {
            Some(value) => {
                store
                    .put(
                        &to_js(&Setting {
                            key: key.into(),
                            value: value.into(),
                        })?,
                        None,
                    )
                    .await?;
            }
            None => store.delete(key.into()).await?,
        }
        tx.done().await?;
        Ok(())
    }

    /// The room record, if this device has been in the room.
    pub(crate) async fn room(&self, id: &str) -> Result<Option<RoomRecord>> {
        let tx = self
            .rexie
            .transaction(&[ROOMS], TransactionMode::ReadOnly)?;
        match tx.store(ROOMS)?.get(id.into()).await? {
            Some(value) if !value.is_undefined() => Ok(Some(from_js(value)?)),
            _ => Ok(None),
        }
    }

    /// Every room this device has been in.
    pub(crate) async fn rooms(&self) -> Result<Vec<RoomRecord>> {
        let tx = self
            .rexie
            .transaction(&[ROOMS], TransactionMode::ReadOnly)?;
        let values = tx.store(ROOMS)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// Forgets a room: its record (with its key) and its messages, in one transaction.
    pub(crate) async fn forget_room(&self, id: &str) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[ROOMS, MESSAGES], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        let keys = messages
            .index("by_room")?
            .get_all_keys(Some(room_range(id)?), None)
            .await?;
        for key in keys {
            messages.delete(key).await?;
        }
        tx.store(ROOMS)?.delete(id.into()).await?;
        tx.done().await?;
        let tx = self
            .files
            .transaction(&[PIECES], TransactionMode::ReadWrite)?;
        let pieces = tx.store(PIECES)?;
        let range = KeyRange::only(&id.into()).map_err(|error| DbError(format!("{error:?}")))?;
        for key in pieces
            .index("room")?
            .get_all_keys(Some(range), None)
            .await?
        {
            pieces.delete(key).await?;
        }
        tx.done().await?;
        Ok(())
    }

    /// Saves a room record.
    pub(crate) async fn put_room(&self, room: &RoomRecord) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[ROOMS], TransactionMode::ReadWrite)?;
        tx.store(ROOMS)?.put(&to_js(room)?, None).await?;
        tx.done().await?;
        Ok(())
    }

    /// Puts an own message in the outbox and in the room, in one transaction; with files,
    /// it waits for `pieces` (already kept here) to be uploaded. Returns how many waiting
    /// entries it replaced (older live positions for the same room).
    pub(crate) async fn enqueue(
        &self,
        message: &MessageRecord,
        envelope: Vec<u8>,
        radio: Vec<u8>,
        pieces: Vec<PieceRef>,
    ) -> Result<usize> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES, OUTBOX], TransactionMode::ReadWrite)?;
        // A newer live position makes the ones waiting for the same room pointless (offline,
        // a walk would pile them up), but for one that also goes over the radio, which only
        // a newer one for the radio replaces.
        let mut superseded = 0;
        if matches!(message.signal, Some(mesh::body::Signal::Live { .. })) {
            if let Ok(new) = mesh::Envelope::decode(&envelope) {
                let outbox = tx.store(OUTBOX)?;
                for value in outbox.get_all(None, None).await? {
                    let old: OutboxRecord = from_js(value)?;
                    let Ok(sealed) = mesh::Envelope::decode(&old.envelope) else {
                        continue;
                    };
                    let replaced = !old.heard
                        && !old.failed
                        && sealed.kind == mesh::Kind::Live
                        && sealed.room == new.room
                        && (old.radio.is_empty() || !radio.is_empty());
                    if let (true, Some(n)) = (replaced, old.n) {
                        outbox.delete(n.into()).await?;
                        superseded += 1;
                    }
                }
            }
        }
        let entry = OutboxRecord {
            n: None,
            id: message.id.clone(),
            envelope,
            radio,
            heard: false,
            failed: false,
            pieces,
            urgent: message.signal.is_some_and(|s| s.is_urgent()),
        };
        tx.store(OUTBOX)?.add(&to_js(&entry)?, None).await?;
        // A live position is not a message people read: it moves its sender on the map.
        if !matches!(message.signal, Some(mesh::body::Signal::Live { .. })) {
            tx.store(MESSAGES)?.put(&to_js(message)?, None).await?;
        }
        tx.done().await?;
        Ok(superseded)
    }

    /// Keeps a message heard over this device's radio, and queues it for upload, in one
    /// transaction. Heard twice, it is kept once: `false` when it was already here.
    pub(crate) async fn enqueue_heard(
        &self,
        message: &MessageRecord,
        envelope: Vec<u8>,
    ) -> Result<bool> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES, OUTBOX], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        let known = messages
            .get(message.id.as_str().into())
            .await?
            .is_some_and(|v| !v.is_undefined());
        if !known {
            let entry = OutboxRecord {
                n: None,
                id: message.id.clone(),
                envelope,
                radio: Vec::new(),
                heard: true,
                failed: false,
                pieces: Vec::new(),
                urgent: false,
            };
            tx.store(OUTBOX)?.add(&to_js(&entry)?, None).await?;
            // A live position goes on to the server, but is no message to keep.
            if !matches!(message.signal, Some(mesh::body::Signal::Live { .. })) {
                messages.put(&to_js(message)?, None).await?;
            }
        }
        tx.done().await?;
        Ok(!known)
    }

    /// The whole outbox, in the order it was written.
    pub(crate) async fn outbox(&self) -> Result<Vec<OutboxRecord>> {
        let tx = self
            .rexie
            .transaction(&[OUTBOX], TransactionMode::ReadOnly)?;
        let values = tx.store(OUTBOX)?.get_all(None, None).await?;
        values.into_iter().map(from_js).collect()
    }

    /// Records what the server did: acknowledgements `(id, seq)` leave the outbox and mark
    /// their messages stored; `refused` ids are marked failed (and kept for a retry);
    /// `received` messages are stored (an own one, sent by `own`, never loses state it had);
    /// `rooms` move rooms' sync cursors. One transaction.
    pub(crate) async fn apply(
        &self,
        acks: &[(String, f64)],
        refused: &[String],
        received: &[MessageRecord],
        rooms: &[RoomRecord],
        own: &str,
    ) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES, OUTBOX, ROOMS], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        let outbox = tx.store(OUTBOX)?;
        let by_id = outbox.index("id")?;
        for record in received {
            // An own message already held here keeps its state if it got further (an echo
            // after the radio relayed it must not move it back to "stored").
            let mut record = record.clone();
            if record.sender == own {
                if let Some(held) = messages
                    .get(record.id.as_str().into())
                    .await?
                    .filter(|v| !v.is_undefined())
                {
                    let held: MessageRecord = from_js(held)?;
                    record.state = held.state.step(|d| d.merge(record.state.into()));
                    record.camps = held.camps;
                }
            }
            if record.state != RecordState::Radio {
                drop_radio_copies(&messages, &record).await?;
            }
            messages.put(&to_js(&record)?, None).await?;
        }
        for (id, seq) in acks {
            if let Some(entry) = by_id
                .get(id.as_str().into())
                .await?
                .filter(|v| !v.is_undefined())
            {
                let entry: OutboxRecord = from_js(entry)?;
                if let Some(n) = entry.n {
                    outbox.delete(JsValue::from_f64(n)).await?;
                }
            }
            if let Some(value) = messages
                .get(id.as_str().into())
                .await?
                .filter(|v| !v.is_undefined())
            {
                let mut record: MessageRecord = from_js(value)?;
                record.state = record.state.step(Delivery::stored);
                record.seq = Some(*seq);
                record.order = *seq;
                messages.put(&to_js(&record)?, None).await?;
            }
        }
        for id in refused {
            self.set_failed(&outbox, &messages, id, true).await?;
        }
        let room_store = tx.store(ROOMS)?;
        for room in rooms {
            room_store.put(&to_js(room)?, None).await?;
        }
        tx.done().await?;
        Ok(())
    }

    /// Marks an own stored message as relayed by the radio.
    pub(crate) async fn mark_relayed(&self, id: &str) -> Result<()> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        if let Some(value) = messages.get(id.into()).await?.filter(|v| !v.is_undefined()) {
            let mut record: MessageRecord = from_js(value)?;
            record.state = record.state.step(Delivery::relayed);
            messages.put(&to_js(&record)?, None).await?;
        }
        tx.done().await?;
        Ok(())
    }

    /// Notes that `camp` has the message of `room` whose id starts with the 6 bytes `prefix`
    /// (a radio receipt names only those). Returns whether a record changed.
    pub(crate) async fn mark_delivered(
        &self,
        room: &str,
        prefix: &str,
        camp: &str,
    ) -> Result<bool> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        // Ids are lower-case hex: every id with this prefix sorts before the prefix and "g".
        let range = KeyRange::bound(
            &prefix.into(),
            &format!("{prefix}g").into(),
            Some(false),
            Some(true),
        )
        .map_err(|error| DbError(format!("{error:?}")))?;
        let mut changed = false;
        for value in messages.get_all(Some(range), Some(8)).await? {
            let mut record: MessageRecord = from_js(value)?;
            if record.room == room && !record.camps.iter().any(|c| c == camp) {
                record.camps.push(camp.to_string());
                messages.put(&to_js(&record)?, None).await?;
                changed = true;
            }
        }
        tx.done().await?;
        Ok(changed)
    }

    /// Marks a failed message as queued again and returns its envelope.
    pub(crate) async fn retry(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES, OUTBOX], TransactionMode::ReadWrite)?;
        let envelope = self
            .set_failed(&tx.store(OUTBOX)?, &tx.store(MESSAGES)?, id, false)
            .await?;
        tx.done().await?;
        Ok(envelope)
    }

    async fn set_failed(
        &self,
        outbox: &rexie::Store,
        messages: &rexie::Store,
        id: &str,
        failed: bool,
    ) -> Result<Option<Vec<u8>>> {
        let Some(value) = outbox
            .index("id")?
            .get(id.into())
            .await?
            .filter(|v| !v.is_undefined())
        else {
            return Ok(None);
        };
        let mut entry: OutboxRecord = from_js(value)?;
        entry.failed = failed;
        outbox.put(&to_js(&entry)?, None).await?;
        if let Some(value) = messages.get(id.into()).await?.filter(|v| !v.is_undefined()) {
            let mut record: MessageRecord = from_js(value)?;
            record.state = if failed {
                record.state.step(Delivery::refused)
            } else {
                record.state.step(Delivery::retried)
            };
            messages.put(&to_js(&record)?, None).await?;
        }
        Ok(Some(entry.envelope))
    }

    /// Up to `limit` messages of a room in `direction` order.
    async fn scan_room(
        &self,
        room: &str,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<MessageRecord>> {
        self.scan(room_range(room)?, limit, direction).await
    }

    /// Up to `limit` messages in `range` of the room-and-order index, in `direction` order.
    async fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<MessageRecord>> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES], TransactionMode::ReadOnly)?;
        let index = tx.store(MESSAGES)?.index("by_room")?;
        let rows = index
            .scan(Some(range), Some(limit), None, Some(direction))
            .await?;
        rows.into_iter().map(|(_, value)| from_js(value)).collect()
    }

    /// The newest `limit` messages of a room, oldest first, and whether older ones are held.
    pub(crate) async fn newest(
        &self,
        room: &str,
        limit: u32,
    ) -> Result<(Vec<MessageRecord>, bool)> {
        let mut records = self.scan_room(room, limit + 1, Direction::Prev).await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        records.reverse();
        Ok((records, more))
    }

    /// Up to `limit` messages of a room after order `after`, oldest first: what was added
    /// after the newest one shown.
    pub(crate) async fn newer_than(
        &self,
        room: &str,
        after: f64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        let range = order_range(room, (after, true), (f64::MAX, false))?;
        self.scan(range, limit, Direction::Next).await
    }

    /// Up to `limit` messages of a room older than order `before` (from the newest when
    /// `None`), newest first: a search reads a room a page at a time.
    pub(crate) async fn page_before(
        &self,
        room: &str,
        before: Option<f64>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        let range = order_range(
            room,
            (f64::MIN, false),
            (before.unwrap_or(f64::MAX), before.is_some()),
        )?;
        self.scan(range, limit, Direction::Prev).await
    }

    /// One message by id.
    pub(crate) async fn message(&self, id: &str) -> Result<Option<MessageRecord>> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES], TransactionMode::ReadOnly)?;
        match tx.store(MESSAGES)?.get(id.into()).await? {
            Some(value) if !value.is_undefined() => Ok(Some(from_js(value)?)),
            _ => Ok(None),
        }
    }

    /// How many messages of a room are at order `from` or newer.
    pub(crate) async fn count_from(&self, room: &str, from: f64) -> Result<u32> {
        let tx = self
            .rexie
            .transaction(&[MESSAGES], TransactionMode::ReadOnly)?;
        let index = tx.store(MESSAGES)?.index("by_room")?;
        Ok(index
            .count(Some(order_range(room, (from, false), (f64::MAX, false))?))
            .await?)
    }

    /// The oldest server sequence number held for a room.
    pub(crate) async fn oldest_seq(&self, room: &str) -> Result<Option<f64>> {
        let oldest = self.scan_room(room, 1, Direction::Next).await?;
        Ok(oldest.into_iter().next().and_then(|record| record.seq))
    }
}
