//! What arrives, and the one way to the screen. Received messages are stored before they are
//! shown, and the room's cursor moves in the same transaction, so after a reconnect only what
//! is missing travels. Every change to the room in the store (a message written, heard,
//! acknowledged, refused, relayed, received) announces itself here, and the list follows by
//! reading the newest messages from the store: nothing is pushed onto the screen beside it.
//! A message written here is the newest of its room: the list then reads only what is newer
//! than what it shows (one record, not the window), so writing costs the same in any room.

use std::cell::RefCell;
use std::rc::Rc;

use app::{ChatFile, ChatMessage, Delivery as Shown, SyncProgress, SyncStep};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::Signal;
use mesh::crypto::RoomKey;
use mesh::wire::MAX_HISTORY_PAGE;
use mesh::{ClientFrame, Kind, MessageId, RoomId, StoredMessage};

use super::{mark, Coalesce, Engine};
use crate::db::{MessageRecord, RecordState};
use crate::device;

/// Messages the list shows at first, and how many more each "load older" adds.
pub(super) const WINDOW_STEP: u32 = 100;
/// The sender shown for radio messages: they carry no signing key.
pub(super) use client::sos::RADIO_SENDER;

/// The inbox part.
#[derive(Default)]
pub(super) struct Inbox {
    state: RefCell<State>,
    /// Reloads of the list coalesce.
    reloads: Coalesce,
}

#[derive(Default)]
struct State {
    /// How many of the newest messages the list shows.
    window: u32,
    /// Received in the current catch-up.
    catch_up_count: usize,
    // Waiting for the next store transaction:
    acks: Vec<(String, f64)>,
    refused: Vec<String>,
    received: Vec<MessageRecord>,
    /// The room's cursor moved (written with the next transaction, or alone by the heartbeat).
    room_dirty: bool,
    /// The records the list shows, oldest first, and their room.
    shown: Vec<MessageRecord>,
    shown_room: String,
    /// Something besides new messages changed: the list reads its whole window again.
    reload_due: bool,
    /// The heartbeat asks for a cursor that moved alone to be written.
    cursor_due: bool,
    persisting: bool,
}

impl Inbox {
    /// A room was entered: the list starts at its first window.
    pub(super) fn reset_window(&self) {
        let mut state = self.state.borrow_mut();
        state.window = WINDOW_STEP;
        state.catch_up_count = 0;
    }

    /// The list reaches back at least `count` messages (to show a found one).
    pub(super) fn show_at_least(&self, count: u32) {
        let mut state = self.state.borrow_mut();
        state.window = state.window.max(count.div_ceil(WINDOW_STEP) * WINDOW_STEP);
    }

    /// A join was sent: a catch-up starts counting.
    pub(super) fn joining(&self) {
        self.state.borrow_mut().catch_up_count = 0;
    }

    pub(super) fn on_history(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        messages: Vec<StoredMessage>,
        has_more: bool,
    ) {
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        if engine
            .session
            .with_sync(room, |sync| sync.on_history(&seqs, has_more))
            .is_none()
        {
            return;
        }
        self.receive(engine, room, &messages);
        engine.state.loading_older.set(false);
    }

    pub(super) fn on_catch_up(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        messages: Vec<StoredMessage>,
        done: bool,
    ) {
        if !engine.session.is_current(room) {
            return;
        }
        let count = {
            let mut state = self.state.borrow_mut();
            state.catch_up_count += messages.len();
            state.catch_up_count
        };
        engine.state.progress.set((!done).then_some(SyncProgress {
            what: SyncStep::Receiving,
            done: count,
            total: 0,
        }));
        self.receive(engine, room, &messages);
    }

    /// A new message in a followed room. A copy of this device's own message in flight is its
    /// acknowledgement: it is recorded once (by whichever of the two comes first), and
    /// otherwise only moves the cursor.
    pub(super) fn on_message(&self, engine: &Rc<Engine>, message: StoredMessage) {
        let room = message.envelope.room;
        if !engine.session.is_current(room) {
            return;
        }
        if engine.outbox.is_own(&message.envelope.id) {
            engine
                .outbox
                .on_stored(engine, message.envelope.id, message.seq);
            if engine
                .session
                .with_sync(room, |sync| sync.on_messages([message.seq]))
                == Some(true)
            {
                self.state.borrow_mut().room_dirty = true;
            }
            return;
        }
        self.receive(engine, room, std::slice::from_ref(&message));
    }

    /// Queues received messages for the store and moves the cursor past them.
    fn receive(&self, engine: &Rc<Engine>, room: RoomId, messages: &[StoredMessage]) {
        let Some((key, room_hex)) = engine.session.room_key(room) else {
            return;
        };
        engine.session.with_sync(room, |sync| {
            sync.on_messages(messages.iter().map(|m| m.seq))
        });
        let records: Vec<MessageRecord> = messages
            .iter()
            .filter_map(|m| record_of(m, &key, &room_hex))
            .collect();
        let room_name = engine
            .session
            .room_record()
            .map(|r| r.name)
            .unwrap_or_default();
        engine.alerts.note(engine, &room_hex, &room_name, &records);
        engine.nearby.note(engine, &room_hex, &records);
        {
            let mut state = self.state.borrow_mut();
            // A live position moves its sender on the map; it is no message to keep.
            state.received.extend(
                records
                    .into_iter()
                    .filter(|r| !matches!(r.signal, Some(Signal::Live { .. }))),
            );
            state.room_dirty = true;
        }
        self.schedule_persist(engine);
        engine.radio.receipts(engine, room, &key, messages);
    }

    /// The server stored an own message: its record becomes stored, its outbox entry goes.
    pub(super) fn ack(&self, engine: &Rc<Engine>, id: MessageId, seq: u64) {
        self.state
            .borrow_mut()
            .acks
            .push((id.to_string(), seq as f64));
        self.schedule_persist(engine);
    }

    /// The server refused an own message for good: it waits, failed, for a retry.
    pub(super) fn refuse(&self, engine: &Rc<Engine>, id: MessageId) {
        self.state.borrow_mut().refused.push(id.to_string());
        self.schedule_persist(engine);
    }

    /// The heartbeat writes a cursor that moved alone (an own message's copy), without
    /// touching the messages or the list.
    pub(super) fn heartbeat(&self, engine: &Rc<Engine>) {
        let due = {
            let mut state = self.state.borrow_mut();
            state.cursor_due = state.room_dirty;
            state.cursor_due
        };
        if due {
            self.schedule_persist(engine);
        }
    }

    /// Writes what arrived to the store, one transaction at a time, gathering whatever arrives
    /// meanwhile into the next; then the list follows.
    fn schedule_persist(&self, engine: &Rc<Engine>) {
        if std::mem::replace(&mut self.state.borrow_mut().persisting, true) {
            return;
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            loop {
                let (acks, refused, received, room, messages_changed) = {
                    let mut state = engine.inbox.state.borrow_mut();
                    let acks = std::mem::take(&mut state.acks);
                    let refused = std::mem::take(&mut state.refused);
                    let received = std::mem::take(&mut state.received);
                    let messages_changed =
                        !(acks.is_empty() && refused.is_empty() && received.is_empty());
                    // A cursor that moved alone waits for the next write or the heartbeat.
                    let with_room = messages_changed || std::mem::take(&mut state.cursor_due);
                    let room = (with_room && std::mem::take(&mut state.room_dirty))
                        .then(|| engine.session.room_record())
                        .flatten();
                    (acks, refused, received, room, messages_changed)
                };
                if !messages_changed && room.is_none() {
                    break;
                }
                let Some(db) = engine.db() else { break };
                let own = engine.session.sender_hex();
                let written = if messages_changed {
                    db.apply(&acks, &refused, &received, room.as_slice(), &own)
                        .await
                } else if let Some(room) = &room {
                    // Only the cursor moved: the room alone.
                    db.put_room(room).await
                } else {
                    Ok(())
                };
                match written {
                    Ok(()) => {
                        // Their outbox entries are gone now: nothing left to guard.
                        engine.outbox.forgotten(
                            acks.iter()
                                .filter_map(|(id, _)| mesh::hex::decode::<16>(id).map(MessageId)),
                        );
                    }
                    Err(error) => engine.notice(format!(
                        "Could not save messages on this device: {}",
                        error.0
                    )),
                }
                if messages_changed {
                    engine.inbox.changed(&engine);
                }
            }
            engine.inbox.state.borrow_mut().persisting = false;
        });
    }

    /// The room changed in the store: the list follows (reloads coalesce).
    pub(super) fn changed(&self, engine: &Rc<Engine>) {
        self.state.borrow_mut().reload_due = true;
        self.follow_store(engine);
    }

    /// A message newer than any in the room was stored: the list adds what is newer than
    /// what it shows.
    pub(super) fn appended(&self, engine: &Rc<Engine>) {
        self.follow_store(engine);
    }

    fn follow_store(&self, engine: &Rc<Engine>) {
        Coalesce::request(
            engine,
            |engine| &engine.inbox.reloads,
            |engine| async move {
                let reload = std::mem::take(&mut engine.inbox.state.borrow_mut().reload_due);
                if reload || !engine.inbox.add_newer(&engine).await {
                    engine.inbox.refresh(&engine).await;
                }
            },
        );
    }

    /// Adds the room's messages newer than the newest shown; false when the whole window is
    /// to be read instead (another room shown, or nothing newer found).
    async fn add_newer(&self, engine: &Rc<Engine>) -> bool {
        let Some(db) = engine.db() else { return true };
        let Some((room, _)) = engine.session.current_view() else {
            return true;
        };
        let (newest, window) = {
            let state = self.state.borrow();
            let newest = (state.shown_room == room)
                .then(|| state.shown.last().map(|r| r.order))
                .flatten();
            (newest, state.window)
        };
        let Some(newest) = newest else { return false };
        mark("fieldmesh:list-add");
        let records = match db.newer_than(&room, newest, window).await {
            Ok(records) if !records.is_empty() => records,
            Ok(_) => return false,
            Err(error) => {
                engine.notice(format!("Could not read messages: {}", error.0));
                return true;
            }
        };
        if engine.session.current_view().map(|(r, _)| r).as_ref() != Some(&room) {
            return true;
        }
        let own = engine.session.sender_hex();
        let (messages, dropped) = {
            let state = &mut *self.state.borrow_mut();
            if state.shown_room != room {
                return false;
            }
            // A whole reload may have shown some of them meanwhile.
            let newest = state.shown.last().map_or(f64::MIN, |r| r.order);
            state
                .shown
                .extend(records.into_iter().filter(|r| r.order > newest));
            // The window may have grown meanwhile (a found message shown further back).
            let dropped = state.shown.len().saturating_sub(state.window as usize);
            state.shown.drain(..dropped);
            let messages: Vec<ChatMessage> = state
                .shown
                .iter()
                .map(|r| engine.people.chat_message(r, &own))
                .collect();
            (messages, dropped > 0)
        };
        engine.state.messages.set(messages);
        if dropped {
            engine.state.has_older.set(true);
        }
        true
    }

    /// Shows the newest messages of the room from the store.
    pub(super) async fn refresh(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let Some((room, server_has_older)) = engine.session.current_view() else {
            return;
        };
        let window = self.state.borrow().window;
        mark("fieldmesh:list-reload");
        match db.newest(&room, window).await {
            Ok((records, more_here)) => {
                // The person may have left or switched rooms while the store answered.
                if engine.session.current_view().map(|(r, _)| r).as_ref() != Some(&room) {
                    return;
                }
                let own = engine.session.sender_hex();
                let room_name = engine
                    .session
                    .room_record()
                    .map(|r| r.name)
                    .unwrap_or_default();
                engine.alerts.note(engine, &room, &room_name, &records);
                engine.nearby.note(engine, &room, &records);
                engine.nearby.show(engine);
                engine.location.show_live(engine);
                let messages: Vec<ChatMessage> = records
                    .iter()
                    .map(|r| engine.people.chat_message(r, &own))
                    .collect();
                {
                    let mut state = self.state.borrow_mut();
                    state.shown = records;
                    state.shown_room = room;
                }
                engine.state.messages.set(messages);
                engine.state.has_older.set(more_here || server_has_older);
            }
            Err(error) => engine.notice(format!("Could not read messages: {}", error.0)),
        }
    }

    /// Shows and keeps an own message as relayed by a radio (the server's or this page's).
    pub(super) fn mark_relayed(&self, engine: &Rc<Engine>, id: MessageId) {
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            match db.mark_relayed(&id.to_string()).await {
                Ok(()) => engine.inbox.changed(&engine),
                Err(error) => {
                    leptos::logging::warn!("could not mark {id} relayed: {}", error.0)
                }
            }
        });
    }

    /// "Load older": a bigger window from the device, and older pages from the server when
    /// the device holds no more.
    pub(super) fn load_older(&self, engine: &Rc<Engine>) {
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let Some(db) = engine.db() else { return };
            let Some((room, room_hex, server_has_older)) = engine.session.current_room() else {
                return;
            };
            let window = {
                let mut state = engine.inbox.state.borrow_mut();
                state.window += WINDOW_STEP;
                state.window
            };
            let held = db
                .newest(&room_hex, window)
                .await
                .map(|(records, _)| records.len())
                .unwrap_or(0);
            if (held as u32) < window && server_has_older {
                let before = db.oldest_seq(&room_hex).await.ok().flatten();
                let Some((key, _)) = engine.session.room_key(room) else {
                    return;
                };
                let frame = ClientFrame::History {
                    room,
                    before_seq: before.map_or(u64::MAX, |s| s as u64),
                    limit: MAX_HISTORY_PAGE / 2,
                    proof: key.prove(&engine.connection.challenge()),
                };
                if engine.connection.send(&frame) {
                    engine.state.loading_older.set(true);
                } else {
                    engine.notice("Older messages load when the server is reachable.");
                }
            }
            engine.inbox.changed(&engine);
        });
    }
}

/// Opens a stored message with the room key (see [`client::message::open`]). `None` when it
/// does not verify or decrypt: such a message is never shown, and never as from its claimed
/// sender.
pub(super) fn record_of(
    stored: &StoredMessage,
    key: &RoomKey,
    room_hex: &str,
) -> Option<MessageRecord> {
    let Some(opened) = client::message::open(stored, key) else {
        leptos::logging::warn!("not showing message {}", stored.envelope.id);
        return None;
    };
    let (sender, state) = match opened.sender {
        Some(sender) => (sender.to_string(), RecordState::Stored),
        None => (RADIO_SENDER.to_string(), RecordState::Radio),
    };
    let body = opened.body;
    let mut record = stored_record(stored, room_hex, sender, body.author, body.text, state);
    record.set_files(&body.attachments);
    record.position = body.position;
    record.signal = body.signal;
    Some(record)
}

/// Opens a message that came over the radio: sealed with the room key, not signed. A message
/// this room's key does not open (another room with the same radio tag) is not shown.
pub(super) fn radio_record_of(
    stored: &StoredMessage,
    key: &RoomKey,
    room_hex: &str,
) -> Option<MessageRecord> {
    (stored.envelope.kind == Kind::Radio)
        .then(|| record_of(stored, key, room_hex))
        .flatten()
}

/// The device's record of a stored message, once opened.
fn stored_record(
    stored: &StoredMessage,
    room_hex: &str,
    sender: String,
    author: String,
    text: String,
    state: RecordState,
) -> MessageRecord {
    MessageRecord {
        id: stored.envelope.id.to_string(),
        room: room_hex.to_string(),
        order: stored.seq as f64,
        seq: Some(stored.seq as f64),
        created_at: stored.envelope.created_at_ms as f64,
        sender,
        author,
        text,
        state,
        camps: Vec::new(),
        files: Vec::new(),
        position: None,
        signal: None,
        received_at: Some(stored.received_at_ms as f64),
    }
}

/// A record as the views show it; `author` is the name to show.
pub(super) fn chat_message(
    record: &MessageRecord,
    own: &str,
    author: String,
    verified: bool,
) -> ChatMessage {
    ChatMessage {
        id: record.id.clone(),
        author,
        verified,
        sender: record.sender.clone(),
        text: record.text.clone(),
        time: device::format_time(record.created_at as u64),
        seq: record.seq.map(|s| s as u64),
        created_at_ms: record.created_at as u64,
        own: own == record.sender,
        delivery: match record.state {
            RecordState::Queued => Shown::Queued,
            RecordState::Stored => Shown::Stored,
            RecordState::Failed => Shown::Failed,
            RecordState::Relayed => Shown::Relayed,
            RecordState::Radio => Shown::ViaRadio,
        },
        delivered_to: record.camps.clone(),
        files: record
            .files()
            .iter()
            .enumerate()
            .map(|(index, file)| ChatFile {
                key: format!("{}/{index}", record.id),
                kind: file.what,
                name: file.name.clone(),
                size: mesh::body::human_size(file.file.size),
                media_type: file.media_type.clone(),
                thumbnail: super::files::thumbnail_url(&file.thumbnail),
            })
            .collect(),
        position: record.position,
        signal: record.signal,
    }
}
