//! Attention: the rooms this device has, and its private conversations with the people it
//! knows, are watched while the person is elsewhere ([`ClientFrame::Watch`]). The server then
//! counts this device among their members (a private conversation shows the other person
//! online wherever they are), says how much is unread, and sends each new message. From that
//! come the unread counts (home screen, title, app badge), a notification and a buzz for a new
//! message in another room or while the app is in the background (not for a muted room), and
//! "Ana wrote to you privately" a moment after her first private message, with no polling.
//!
//! The server learns nothing new from a watch: a private conversation's room is watched only
//! with people this device met in a room, where the server saw both already.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::crypto::RoomKey;
use mesh::hex::{decode as unhex, encode as hex};
use mesh::presence::PresenceCard;
use mesh::wire::MAX_UNREAD_COUNT;
use mesh::{ClientFrame, RoomId, StoredMessage};

use super::inbox::record_of;
use super::Engine;
use crate::db::{MessageRecord, RoomRecord};
use crate::{device, pwa};

/// Rooms watched at most (the server lets a connection follow 64, the current room among them,
/// and a burst of 64 room requests).
const MAX_WATCHED: usize = 48;
/// Private conversations watched with the people met most recently, at most.
const MAX_DIRECT_WATCHED: usize = 24;
/// Longest message text a notification shows.
const NOTIFICATION_CHARS: usize = 120;

/// The attention part.
#[derive(Default)]
pub(super) struct Attention {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// What is watched (or to be, once connected), by room.
    watched: HashMap<RoomId, Watched>,
    /// Rooms watched on this connection.
    sent: HashSet<RoomId>,
    /// Unread messages by room (hex), the current room's while the app is hidden.
    unread: HashMap<String, u32>,
    /// The newest message of a watched room, newer than this device holds: (when, "Ana: …").
    previews: HashMap<String, (f64, String)>,
    /// A watch update is running; `again` asks it for one more.
    updating: bool,
    again: bool,
}

/// A watched room.
struct Watched {
    key: RoomKey,
    hex: String,
    name: String,
    direct: bool,
    /// The room is on this device (a private conversation someone may not have started yet
    /// is not, until its first message).
    on_device: bool,
    muted: bool,
    /// The newest message seen, so a message is counted once.
    last_seq: u64,
}

impl Attention {
    /// Watches this device's rooms and its private conversations with the people it knows,
    /// except the room open now (updates coalesce).
    pub(super) fn update(&self, engine: &Rc<Engine>) {
        {
            let mut state = self.state.borrow_mut();
            if state.updating {
                state.again = true;
                return;
            }
            state.updating = true;
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            loop {
                engine.attention.watch(&engine).await;
                let mut state = engine.attention.state.borrow_mut();
                if !std::mem::take(&mut state.again) {
                    state.updating = false;
                    return;
                }
            }
        });
    }

    async fn watch(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let (Some(identity), name) = (engine.session.identity(), engine.session.name()) else {
            return;
        };
        if name.is_empty() {
            return;
        }
        let current = engine.session.current_room().map(|(room, _, _)| room);
        let store_id = engine.connection.store_id();
        let mut targets: Vec<(RoomId, Watched, Option<u64>)> = Vec::new();
        for record in db.rooms().await.unwrap_or_default() {
            let Some(key) = unhex::<32>(&record.key).map(RoomKey::from_bytes) else {
                continue;
            };
            let read_seq = record
                .cursor
                .filter(|_| !store_id.is_empty() && record.server == store_id)
                .map(|c| c as u64);
            targets.push((
                key.room_id(),
                Watched {
                    hex: record.id.clone(),
                    key,
                    name: record.name.clone(),
                    direct: record.direct,
                    on_device: true,
                    muted: record.muted,
                    last_seq: read_seq.unwrap_or(0),
                },
                read_seq,
            ));
        }
        for (peer, public) in engine.people.recent(MAX_DIRECT_WATCHED, &identity) {
            let Some(key) = identity.dm_key(&public) else {
                continue;
            };
            let room = key.room_id();
            if targets.iter().any(|(id, _, _)| *id == room) {
                continue;
            }
            targets.push((
                room,
                Watched {
                    hex: room.to_string(),
                    key,
                    name: peer,
                    direct: true,
                    on_device: false,
                    muted: false,
                    last_seq: 0,
                },
                None,
            ));
        }
        targets.retain(|(room, _, _)| Some(*room) != current);
        targets.truncate(MAX_WATCHED);

        let ready = engine.connection.is_ready();
        let challenge = engine.connection.challenge();
        let mut frames = Vec::new();
        {
            let state = &mut *self.state.borrow_mut();
            let wanted: HashSet<RoomId> = targets.iter().map(|(room, _, _)| *room).collect();
            // The room open now was joined, which replaced its watch.
            state
                .sent
                .retain(|room| wanted.contains(room) || Some(*room) != current);
            for room in state.sent.iter().filter(|room| !wanted.contains(room)) {
                frames.push(ClientFrame::Leave { room: *room });
            }
            state.sent.retain(|room| wanted.contains(room));
            let mut watched = HashMap::new();
            for (room, mut target, read_seq) in targets {
                if let Some(old) = state.watched.get(&room) {
                    target.last_seq = target.last_seq.max(old.last_seq);
                }
                if ready && !state.sent.contains(&room) {
                    let Ok(member) = PresenceCard::seal(
                        &identity,
                        &target.key,
                        challenge,
                        &name,
                        device::random_bytes(),
                    ) else {
                        continue;
                    };
                    frames.push(ClientFrame::Watch {
                        room,
                        read_seq,
                        member,
                        proof: target.key.prove(&challenge),
                    });
                    state.sent.insert(room);
                }
                watched.insert(room, target);
            }
            state.watched = watched;
        }
        for frame in frames {
            engine.connection.send(&frame);
        }
    }

    /// The connection ended: nothing is watched until the next one.
    pub(super) fn on_disconnect(&self) {
        self.state.borrow_mut().sent.clear();
    }

    /// The answer to a watch: what is unread in the room.
    pub(super) fn on_unread(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        count: u32,
        newest: Option<StoredMessage>,
    ) {
        let opened = {
            let state = &mut *self.state.borrow_mut();
            let Some(watched) = state.watched.get_mut(&room) else {
                return;
            };
            state.unread.insert(watched.hex.clone(), count);
            let opened = newest
                .as_ref()
                .and_then(|m| record_of(m, &watched.key, &watched.hex));
            if let (Some(newest), Some(record)) = (&newest, &opened) {
                watched.last_seq = watched.last_seq.max(newest.seq);
                state
                    .previews
                    .insert(watched.hex.clone(), (record.created_at, preview(record)));
            }
            opened
        };
        if count > 0 {
            if let Some(record) = opened {
                self.arrived(engine, room, &record, count, false);
            }
        }
        self.show(engine);
    }

    /// A new message in a watched room.
    pub(super) fn on_message(&self, engine: &Rc<Engine>, message: &StoredMessage) {
        if Some(message.envelope.sender) == engine.session.sender() {
            return;
        }
        let room = message.envelope.room;
        let (record, count) = {
            let state = &mut *self.state.borrow_mut();
            let Some(watched) = state.watched.get_mut(&room) else {
                return;
            };
            if message.seq <= watched.last_seq {
                return;
            }
            watched.last_seq = message.seq;
            // Receipts and what this room's key does not open are not news.
            let Some(record) = record_of(message, &watched.key, &watched.hex) else {
                return;
            };
            let count = state.unread.entry(watched.hex.clone()).or_default();
            *count = (*count + 1).min(MAX_UNREAD_COUNT);
            let count = *count;
            state
                .previews
                .insert(watched.hex.clone(), (record.created_at, preview(&record)));
            (record, count)
        };
        self.arrived(engine, room, &record, count, true);
        self.show(engine);
    }

    /// A new message in the room open now: news only while the app is out of sight.
    pub(super) fn on_current(&self, engine: &Rc<Engine>, message: &StoredMessage) {
        if !device::hidden() || Some(message.envelope.sender) == engine.session.sender() {
            return;
        }
        let Some((key, hex)) = engine.session.room_key(message.envelope.room) else {
            return;
        };
        let Some(record) = record_of(message, &key, &hex) else {
            return;
        };
        let muted = engine.session.room_record().is_some_and(|r| r.muted);
        {
            let mut state = self.state.borrow_mut();
            let count = state.unread.entry(hex.clone()).or_default();
            *count = (*count + 1).min(MAX_UNREAD_COUNT);
        }
        let name = engine
            .session
            .room_record()
            .map(|r| r.name)
            .unwrap_or_default();
        if !muted {
            notify(&name, &hex, &record, 1, true);
        }
        self.show(engine);
    }

    /// The app came back into sight, or a room was opened: what it shows is read.
    pub(super) fn seen(&self, engine: &Rc<Engine>) {
        if device::hidden() {
            return;
        }
        let Some((_, hex, _)) = engine.session.current_room() else {
            return;
        };
        let changed = {
            let mut state = self.state.borrow_mut();
            state.previews.remove(&hex);
            state.unread.remove(&hex).is_some_and(|n| n > 0)
        };
        if changed {
            self.show(engine);
        }
    }

    /// The person muted or unmuted a room.
    pub(super) fn muted(&self, engine: &Rc<Engine>, hex: &str, muted: bool) {
        for watched in self.state.borrow_mut().watched.values_mut() {
            if watched.hex == hex {
                watched.muted = muted;
            }
        }
        self.show(engine);
    }

    /// News in a watched room: the person is told (unless the room is muted), and a private
    /// conversation someone started comes onto this device. A `live` message is notified when
    /// the person is in another room or the app is out of sight; what was unread when the
    /// room's watch began, only out of sight, and quietly (a reconnect is not news).
    fn arrived(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        record: &MessageRecord,
        count: u32,
        live: bool,
    ) {
        let (name, hex, direct, on_device, muted, key) = {
            let state = self.state.borrow();
            let Some(w) = state.watched.get(&room) else {
                return;
            };
            (
                w.name.clone(),
                w.hex.clone(),
                w.direct,
                w.on_device,
                w.muted,
                w.key.clone(),
            )
        };
        if direct {
            engine
                .state
                .direct_alert
                .set(Some((record.sender.clone(), name.clone())));
        }
        if direct && !on_device {
            if let Some(w) = self.state.borrow_mut().watched.get_mut(&room) {
                w.on_device = true;
            }
            self.keep_conversation(engine, &name, &hex, &key);
        }
        let in_room = engine.session.current_room().is_some();
        let out_of_sight = device::hidden();
        if !muted && (out_of_sight || (live && in_room)) {
            notify(&name, &hex, record, count, live);
        }
    }

    /// A private conversation someone started: kept on this device, listed on the home screen.
    fn keep_conversation(&self, engine: &Rc<Engine>, name: &str, id: &str, key: &RoomKey) {
        let Some(db) = engine.db() else { return };
        let record = RoomRecord {
            id: id.to_string(),
            name: name.to_string(),
            key: hex(key.as_bytes()),
            direct: true,
            ..RoomRecord::default()
        };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if db.room(&record.id).await.ok().flatten().is_none() {
                if let Err(error) = db.put_room(&record).await {
                    engine.notice(format!("Could not save the conversation: {}", error.0));
                }
            }
            engine.session.refresh_rooms(&engine);
        });
    }

    /// Unread counts onto the home screen's list, and the total into the title and badge.
    pub(super) fn show(&self, engine: &Rc<Engine>) {
        let state = self.state.borrow();
        let mut total = 0;
        engine.state.rooms.update(|rooms| {
            for room in rooms.iter_mut() {
                room.unread = state.unread.get(&room.id).copied().unwrap_or(0);
                if let Some((at, text)) = state.previews.get(&room.id) {
                    if *at > room.at_ms {
                        room.at_ms = *at;
                        room.last = text.clone();
                        room.time = device::format_time(*at as u64);
                    }
                }
            }
            rooms.sort_by(|a, b| b.at_ms.total_cmp(&a.at_ms));
        });
        let muted: HashSet<&str> = state
            .watched
            .values()
            .filter(|w| w.muted)
            .map(|w| w.hex.as_str())
            .collect();
        let current_muted = engine.session.room_record().filter(|r| r.muted);
        for (room, count) in &state.unread {
            let room_muted = muted.contains(room.as_str())
                || current_muted.as_ref().is_some_and(|r| r.id == *room);
            if !room_muted {
                total += count;
            }
        }
        pwa::show_unread(total);
    }
}

/// "Ana: the well is clean", as a list line.
fn preview(record: &MessageRecord) -> String {
    format!("{}: {}", record.author, record.text)
}

/// A notification for a new message in the room named `name` (hex `id`); one per room, which
/// a newer one replaces, with a sound and buzz when `alert`.
fn notify(name: &str, id: &str, record: &MessageRecord, count: u32, alert: bool) {
    let mut text: String = record.text.chars().take(NOTIFICATION_CHARS).collect();
    if text.len() < record.text.len() {
        text.push('…');
    }
    let body = match count {
        0 | 1 => format!("{}: {text}", record.author),
        n => format!("{}: {text} (+{} more)", record.author, n - 1),
    };
    pwa::notify(name, &body, id, alert);
}
