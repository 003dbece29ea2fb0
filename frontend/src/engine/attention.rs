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

use client::attention::{choose, Moment, Unread, MAX_DIRECT_WATCHED};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::Signal;
use mesh::crypto::RoomKey;
use mesh::hex::{decode as unhex, encode as hex};
use mesh::presence::PresenceCard;
use mesh::{ClientFrame, Kind, RoomId, StoredMessage};

use super::inbox::record_of;
use super::{Coalesce, Engine};
use crate::db::{MessageRecord, RoomRecord};
use crate::{device, pwa};

/// Longest message text a notification shows.
const NOTIFICATION_CHARS: usize = 120;

/// The attention part.
#[derive(Default)]
pub(super) struct Attention {
    state: RefCell<State>,
    updates: Coalesce,
}

#[derive(Default)]
struct State {
    /// What is watched (or to be, once connected), by room.
    watched: HashMap<RoomId, Watched>,
    /// Rooms watched on this connection.
    sent: HashSet<RoomId>,
    /// Unread messages by room (hex), the open room's while the app is hidden.
    unread: Unread,
    /// The newest message of a watched room, newer than this device holds: (when, "Ana: …").
    previews: HashMap<String, (f64, String)>,
    /// Rooms the person left on this connection, with the cursor they were read to (and its
    /// store): watched again from there, and what the answer counts arrived since, so it is
    /// news (not what a reconnect repeats).
    left: HashMap<RoomId, (u64, String)>,
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
}

impl Attention {
    /// Watches this device's rooms and its private conversations with the people it knows,
    /// except the room open now (updates coalesce).
    pub(super) fn update(&self, engine: &Rc<Engine>) {
        Coalesce::request(
            engine,
            |engine| &engine.attention.updates,
            |engine| async move { engine.attention.watch(&engine).await },
        );
    }

    async fn watch(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let records = db.rooms().await.unwrap_or_default();
        // Everything below is read at one moment, after the store answered: a connection
        // welcomed meanwhile is seen whole (its store id with its readiness).
        let (Some(identity), name) = (engine.session.identity(), engine.session.name()) else {
            return;
        };
        if name.is_empty() {
            return;
        }
        let current = engine.session.current_room().map(|(room, _, _)| room);
        let store_id = engine.connection.store_id();
        let ready = engine.connection.is_ready();
        let challenge = engine.connection.challenge();
        let mut targets: HashMap<RoomId, (Watched, Option<u64>)> = HashMap::new();
        let (mut own_rooms, mut directs) = (Vec::new(), Vec::new());
        for record in records {
            let Some(key) = unhex::<32>(&record.key).map(RoomKey::from_bytes) else {
                continue;
            };
            let stored = record
                .cursor
                .filter(|_| !store_id.is_empty() && record.server == store_id)
                .map(|c| c as u64);
            // A room just left was read further than the store may hold yet.
            let left = self
                .state
                .borrow()
                .left
                .get(&key.room_id())
                .filter(|(_, server)| !store_id.is_empty() && *server == store_id)
                .map(|(cursor, _)| *cursor);
            let read_seq = stored.max(left);
            own_rooms.push(key.room_id());
            targets.insert(
                key.room_id(),
                (
                    Watched {
                        hex: record.id.clone(),
                        key,
                        name: record.name.clone(),
                        direct: record.direct,
                        on_device: true,
                        muted: record.muted,
                    },
                    read_seq,
                ),
            );
        }
        for (peer, public) in engine.people.recent(MAX_DIRECT_WATCHED, &identity) {
            let Some(key) = identity.dm_key(&public) else {
                continue;
            };
            let room = key.room_id();
            directs.push(room);
            targets.entry(room).or_insert((
                Watched {
                    hex: room.to_string(),
                    key,
                    name: peer,
                    direct: true,
                    on_device: false,
                    muted: false,
                },
                None,
            ));
        }
        let chosen = choose(own_rooms, directs, current);

        let mut frames = Vec::new();
        {
            let state = &mut *self.state.borrow_mut();
            let wanted: HashSet<RoomId> = chosen.iter().copied().collect();
            // The room open now was joined, which replaced its watch.
            state
                .sent
                .retain(|room| wanted.contains(room) || Some(*room) != current);
            for room in state.sent.iter().filter(|room| !wanted.contains(room)) {
                frames.push(ClientFrame::Leave { room: *room });
            }
            state.sent.retain(|room| wanted.contains(room));
            let mut watched = HashMap::new();
            for room in chosen {
                let Some((target, read_seq)) = targets.remove(&room) else {
                    continue;
                };
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
        let mut state = self.state.borrow_mut();
        state.sent.clear();
        state.left.clear();
    }

    /// The person left `room` (for another or the home screen), read up to `cursor` in the
    /// store `server`: what its watch finds after that arrived while they were leaving.
    pub(super) fn left(&self, room: RoomId, cursor: Option<u64>, server: &str) {
        let mut state = self.state.borrow_mut();
        match cursor {
            Some(cursor) if !server.is_empty() => {
                state.left.insert(room, (cursor, server.to_string()));
            }
            _ => {
                state.left.remove(&room);
            }
        }
    }

    /// The answer to a watch: what is unread in the room.
    pub(super) fn on_unread(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        count: u32,
        newest: Option<StoredMessage>,
    ) {
        let (opened, live) = {
            let state = &mut *self.state.borrow_mut();
            let Some(watched) = state.watched.get(&room) else {
                return;
            };
            // Left on this connection: what arrived since is news, as if it came live.
            let live = state.left.remove(&room).is_some();
            let last_seq = newest.as_ref().map_or(0, |m| m.seq);
            state.unread.set(&watched.hex, count, last_seq);
            // A live position heard over the radio is counted by the server (it cannot tell),
            // but is neither the room's last line nor news.
            let opened = newest
                .as_ref()
                .and_then(|m| record_of(m, &watched.key, &watched.hex))
                .filter(|r| !matches!(r.signal, Some(Signal::Live { .. })));

            if let Some(record) = &opened {
                state
                    .previews
                    .insert(watched.hex.clone(), (record.created_at, preview(record)));
            }
            (opened, live)
        };
        if let Some(record) = &opened {
            let watched = self
                .state
                .borrow()
                .watched
                .get(&room)
                .map(|w| (w.hex.clone(), w.name.clone()));
            if let Some((hex, name)) = watched {
                engine
                    .alerts
                    .note(engine, &hex, &name, std::slice::from_ref(record));
            }
        }
        leptos::logging::log!("a watch began: {count} unread, news since leaving: {live}");
        if count > 0 {
            if let Some(record) = opened {
                self.arrived(engine, room, &record, count, live);
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
        let noted;
        let counted = 'counted: {
            let state = &mut *self.state.borrow_mut();
            let Some(watched) = state.watched.get(&room) else {
                return;
            };
            // Receipts and what this room's key does not open are not news.
            let Some(record) = record_of(message, &watched.key, &watched.hex) else {
                return;
            };
            let (hex, name) = (watched.hex.clone(), watched.name.clone());
            let signal =
                (record.signal.is_some() || record.position.is_some()).then(|| record.clone());
            // Read outside this borrow (an SOS is news even when counted already; a live
            // position is never news).
            noted = signal.map(|record| (hex, name, record));
            if matches!(record.signal, Some(Signal::Live { .. })) {
                break 'counted None;
            }
            let Some(count) = state.unread.arrived(&watched.hex, message.seq) else {
                break 'counted None;
            };
            state
                .previews
                .insert(watched.hex.clone(), (record.created_at, preview(&record)));
            Some((record, count))
        };
        if let Some((hex, name, record)) = noted {
            engine
                .alerts
                .note(engine, &hex, &name, std::slice::from_ref(&record));
            engine
                .nearby
                .note(engine, &hex, std::slice::from_ref(&record));
        }
        let Some((record, count)) = counted else {
            return;
        };
        self.arrived(engine, room, &record, count, true);
        self.show(engine);
    }

    /// A new message in the room open now: news only while the app is out of sight.
    pub(super) fn on_current(&self, engine: &Rc<Engine>, message: &StoredMessage) {
        if !device::hidden()
            || Some(message.envelope.sender) == engine.session.sender()
            || message.envelope.kind == Kind::Live
        {
            return;
        }
        let Some((key, hex)) = engine.session.room_key(message.envelope.room) else {
            return;
        };
        let Some(record) = record_of(message, &key, &hex) else {
            return;
        };
        // A live position heard over the radio (where the server cannot tell) is not news.
        if matches!(record.signal, Some(Signal::Live { .. })) {
            return;
        }
        let Some(count) = self.state.borrow_mut().unread.arrived(&hex, message.seq) else {
            return;
        };
        let (name, muted) = engine
            .session
            .room_record()
            .map(|r| (r.name, r.muted))
            .unwrap_or_default();
        let moment = Moment {
            muted,
            live: true,
            in_room: true,
            hidden: true,
        };
        if moment.notifies() {
            notify(&name, &hex, &record, count, true);
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
            state.unread.read(&hex)
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
        let moment = Moment {
            muted,
            live,
            in_room: engine.session.current_room().is_some(),
            hidden: device::hidden(),
        };
        // What decided, in the console (no text, no keys): a missing notification is explained.
        leptos::logging::log!("news in a watched room ({count} unread): {moment:?}");
        if moment.notifies() {
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
        engine.state.rooms.update(|rooms| {
            for room in rooms.iter_mut() {
                room.unread = state.unread.count(&room.id);
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
        let open_muted = engine.session.room_record().filter(|r| r.muted);
        let total = state.unread.total(|room| {
            muted.contains(room) || open_muted.as_ref().is_some_and(|r| r.id == room)
        });
        pwa::show_unread(total);
    }
}

/// "Ana: the well is clean", as a list line.
fn preview(record: &MessageRecord) -> String {
    format!("{}: {}", record.author, record.summary())
}

/// A notification for a new message in the room named `name` (hex `id`); one per room, which
/// a newer one replaces, with a sound and buzz when `alert`.
fn notify(name: &str, id: &str, record: &MessageRecord, count: u32, alert: bool) {
    let summary = record.summary();
    let mut text: String = summary.chars().take(NOTIFICATION_CHARS).collect();
    if text.len() < summary.len() {
        text.push('…');
    }
    let body = match count {
        0 | 1 => format!("{}: {text}", record.author),
        n => format!("{}: {text} (+{} more)", record.author, n - 1),
    };
    pwa::notify(name, &body, id, alert);
}
