//! Who this device is and which room it is in: its keys (made on first start, kept on the
//! device), its display name, and the room with its key and sync cursor. Which key a typed
//! room name opens is decided by [`client::session`].

use std::cell::RefCell;
use std::rc::Rc;

use app::{RoomSummary, Session as Shown};
use client::cursor::RoomSync;
use client::session::{choose_room, clean_room_name};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::clean_display_name;
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::{decode as unhex, encode as hex};
use mesh::presence::PresenceCard;
use mesh::{ClientFrame, RoomId, SenderId};
use wasm_bindgen::JsValue;

use super::{mark, Engine};
use crate::db::{Db, RoomRecord};
use crate::device;

/// The session part.
#[derive(Default)]
pub(super) struct Session {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    identity: Option<Rc<Identity>>,
    name: String,
    joined: Option<Joined>,
    /// The invite this page was opened with: its room name and key.
    invite: Option<(String, [u8; 32])>,
}

/// Who writes, where: the display name, the room, and this device's identity.
pub(super) type Writer = (String, Joined, Rc<Identity>);

/// The room the person is in.
#[derive(Clone)]
pub(super) struct Joined {
    pub(super) id: RoomId,
    pub(super) key: RoomKey,
    /// The room id in hex, as the store keys it.
    pub(super) room_hex: String,
    record: RoomRecord,
    sync: RoomSync,
}

impl Joined {
    /// The person leaves this room: the server stops sending it, and attention watches it
    /// from where it was read.
    fn left(&self, engine: &Rc<Engine>) {
        // A call in the room ends first: its goodbye needs the room still followed.
        engine.calls.entered_room(engine);
        engine
            .connection
            .send(&ClientFrame::Leave { room: self.id });
        engine
            .attention
            .left(self.id, self.sync.cursor, &self.sync.server);
        // Where the person is was chosen for this room: the next one starts without it. (Only
        // then: turning it off also forgets the fix an SOS banner's distance needs.)
        if engine.state.attach_place.get_untracked() {
            engine.location.set_attach(engine, false);
        }
    }

    fn record(&self) -> RoomRecord {
        RoomRecord {
            cursor: self.sync.cursor.map(|c| c as f64),
            server: self.sync.server.clone(),
            server_has_older: self.sync.server_has_older,
            ..self.record.clone()
        }
    }
}

impl Session {
    /// Takes the invite out of the address bar at once (the room key must not linger there,
    /// in the history, or in a screenshot), keeping it for the join form. Returns the invited
    /// room's name.
    pub(super) fn take_invite(&self, engine: &Engine) -> Option<String> {
        let window = web_sys::window()?;
        let invite = window
            .location()
            .hash()
            .ok()
            .as_deref()
            .and_then(client::invite::parse)?;
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
        }
        self.keep_invite(engine, &invite)
    }

    /// Keeps an invite's room name and key for joining.
    fn keep_invite(&self, engine: &Engine, invite: &client::invite::Invite) -> Option<String> {
        let room = clean_room_name(&invite.room).ok()?;
        if let Some(key) = invite.key.as_deref().and_then(unhex::<32>) {
            self.state.borrow_mut().invite = Some((room.clone(), key));
        }
        engine.state.invite_room.set(Some(room.clone()));
        Some(room)
    }

    /// An invite arrived in the address bar (at start, or pasted into an open tab): go to
    /// the invited room when this device knows the person's name, else fill the form.
    pub(super) fn follow_invite(&self, engine: &Rc<Engine>) {
        let Some(room) = self.take_invite(engine) else {
            return;
        };
        let name = self.name();
        if !name.is_empty() {
            if let Err(error) = self.join(engine, &name, &room) {
                engine.notice(error);
            }
        } else if engine.state.session.with_untracked(Option::is_some) {
            self.leave(engine);
        }
    }

    /// A pasted invite link (or just its part after `#`): join its room as `name`.
    pub(super) fn open_invite(
        &self,
        engine: &Rc<Engine>,
        name: &str,
        link: &str,
    ) -> Result<(), String> {
        let fragment = link.trim().rsplit_once('#').map_or(link.trim(), |(_, f)| f);
        let invite = client::invite::parse(fragment)
            .filter(|invite| invite.key.as_deref().and_then(unhex::<32>).is_some())
            .ok_or_else(|| {
                "That is not a whole invite link: ask for the invite again (Share, in the room)."
                    .to_string()
            })?;
        let room = self
            .keep_invite(engine, &invite)
            .ok_or_else(|| "That invite names no room.".to_string())?;
        self.join(engine, name, &room)
    }

    /// Carries out what was typed, and a join tapped, before the app was ready
    /// (`public/early.js` held them).
    pub(super) fn take_early(&self, engine: &Rc<Engine>) {
        let Some(held) = web_sys::window()
            .and_then(|w| js_sys::Reflect::get(&w, &"__fieldmeshEarly".into()).ok())
            .filter(|held| held.is_object())
        else {
            return;
        };
        let values = js_sys::Reflect::get(&held, &"values".into()).unwrap_or(JsValue::UNDEFINED);
        let value = |id: &str| {
            js_sys::Reflect::get(&values, &id.into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default()
        };
        let (name, room) = (value("join-name"), value("join-room"));
        let submitted = js_sys::Reflect::get(&held, &"submitted".into())
            .ok()
            .and_then(|v| v.as_string());
        if name.is_empty() && room.is_empty() {
            return;
        }
        // A form tapped before the app was ready (`public/early.js` holds any of them).
        let held = match submitted.as_deref() {
            _ if engine.state.session.with_untracked(Option::is_some) => None,
            Some("join-form") => Some(self.join(engine, &name, &room)),
            Some("invite-form") => Some(self.open_invite(engine, &name, &value("invite-paste"))),
            _ => None,
        };
        if let Some(Err(error)) = held {
            engine.notice(error);
        }
        engine.state.early_join.set(Some((name, room)));
    }

    /// Lists this device's rooms for the home screen: newest message first.
    pub(super) fn refresh_rooms(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let rooms = engine.state.rooms;
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let mut listed = Vec::new();
            for record in db.rooms().await.unwrap_or_default() {
                let last = db
                    .newest(&record.id, 1)
                    .await
                    .ok()
                    .and_then(|(records, _)| records.into_iter().next());
                let at = last.as_ref().map_or(0.0, |m| m.created_at);
                listed.push((
                    at,
                    RoomSummary {
                        at_ms: at,
                        unread: 0,
                        muted: record.muted,
                        id: record.id.clone(),
                        name: record.name.clone(),
                        last: last
                            .as_ref()
                            .map(|m| format!("{}: {}", m.author, m.summary()))
                            .unwrap_or_default(),
                        time: last
                            .map(|m| device::format_time(m.created_at as u64))
                            .unwrap_or_default(),
                        public: record.public,
                        direct: record.direct,
                    },
                ));
            }
            rooms.set(listed.into_iter().map(|(_, room)| room).collect());
            // Unread counts and newer messages of watched rooms go on top, then the order.
            engine.attention.show(&engine);
            engine.attention.update(&engine);
        });
    }

    /// Opens a room this device has.
    pub(super) fn open_room(
        &self,
        engine: &Rc<Engine>,
        name: &str,
        id: &str,
    ) -> Result<(), String> {
        let name = display_name(name)?;
        let Some(db) = engine.db() else {
            return Err("The app is still starting; try again in a moment.".into());
        };
        let engine = Rc::clone(engine);
        let id = id.to_string();
        spawn_local(async move {
            let Some(record) = db.room(&id).await.ok().flatten() else {
                return engine.notice("That room is no longer on this device.");
            };
            if let Err(error) = db.set_setting("name", Some(&name)).await {
                engine.notice(format!("Could not remember your name: {}", error.0));
            }
            engine.state.last_name.set(name.clone());
            if !engine.session.enter_record(&engine, &name, &record).await {
                engine.notice("That room's key is damaged on this device.");
            }
        });
        Ok(())
    }

    /// Enters a room this device has by its id, under the name used last (unless it is the
    /// open one); `false` when it is not on this device.
    pub(super) async fn enter_by_id(&self, engine: &Rc<Engine>, id: &str) -> bool {
        if self
            .current_view()
            .is_some_and(|(current, _)| current == id)
        {
            return true;
        }
        let Some(db) = engine.db() else { return false };
        let Some(record) = db.room(id).await.ok().flatten() else {
            return false;
        };
        self.enter_record(engine, &self.name(), &record).await
    }

    /// Opens a room this device has by its id (a tapped notification), under the name used
    /// last.
    pub(super) fn open_room_by_id(&self, engine: &Rc<Engine>, id: &str) {
        let engine = Rc::clone(engine);
        let id = id.to_string();
        spawn_local(async move {
            if !engine.session.enter_by_id(&engine, &id).await {
                engine.notice("That room is no longer on this device.");
            }
        });
    }

    /// A page opened by a tapped notification (`?open=<room id>`) resumes in that room.
    pub(super) async fn open_from_address(&self, db: &Db) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let search = window.location().search().unwrap_or_default();
        let Some(room) = search
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix("open="))
            .filter(|room| unhex::<16>(room).is_some())
        else {
            return;
        };
        if db.room(room).await.ok().flatten().is_some() {
            let _ = db.set_setting("room", Some(room)).await;
        }
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
        }
    }

    /// Forgets a room: its key and messages leave this device.
    pub(super) fn forget_room(&self, engine: &Rc<Engine>, id: &str) {
        if self
            .current_view()
            .is_some_and(|(current, _)| current == id)
        {
            self.leave(engine);
        }
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        let id = id.to_string();
        spawn_local(async move {
            if let Err(error) = db.forget_room(&id).await {
                engine.notice(format!("Could not forget the room: {}", error.0));
            }
            engine.session.refresh_rooms(&engine);
        });
    }

    /// This device's keys (made from 64 random bytes on first start) and name.
    pub(super) async fn load(&self, engine: &Rc<Engine>, db: &Db) {
        let stored_seed = db.setting("identity").await.ok().flatten();
        let identity = match stored_seed.as_deref().and_then(unhex::<64>) {
            Some(seed) => Identity::from_seed(&seed),
            None => {
                let identity = Identity::from_seed(&device::random_bytes());
                let seed = hex(identity.to_seed().as_slice());
                if let Err(error) = db.set_setting("identity", Some(&seed)).await {
                    engine.notice(format!("Could not save this device's keys: {}", error.0));
                }
                identity
            }
        };
        engine.state.own_code.set(identity.public().safety_code());
        let name = db.setting("name").await.ok().flatten().unwrap_or_default();
        engine.state.last_name.set(name.clone());
        let mut state = self.state.borrow_mut();
        state.identity = Some(Rc::new(identity));
        state.name = name;
    }

    /// Goes back into the room the person was in, or into the room of the invite this page
    /// was opened with.
    pub(super) async fn resume(&self, engine: &Rc<Engine>, db: &Db) {
        let name = self.state.borrow().name.clone();
        let invited = engine.state.invite_room.get_untracked();
        if let Some(room) = invited.filter(|_| !name.is_empty()) {
            if let Err(error) = self.join(engine, &name, &room) {
                engine.notice(error);
            }
            return;
        }
        let Some(room) = db.setting("room").await.ok().flatten() else {
            return;
        };
        let Some(record) = db.room(&room).await.ok().flatten() else {
            return;
        };
        if name.is_empty() {
            return;
        }
        self.enter_record(engine, &name, &record).await;
    }

    /// Enters a room this device keeps; `false` when its stored key is damaged.
    async fn enter_record(&self, engine: &Rc<Engine>, name: &str, record: &RoomRecord) -> bool {
        let Some(key) = unhex::<32>(&record.key).map(RoomKey::from_bytes) else {
            return false;
        };
        self.enter_room(
            engine,
            name,
            &record.name,
            key,
            record.public,
            record.direct,
        )
        .await;
        true
    }

    pub(super) fn identity(&self) -> Option<Rc<Identity>> {
        self.state.borrow().identity.clone()
    }

    pub(super) fn sender(&self) -> Option<SenderId> {
        self.state.borrow().identity.as_ref().map(|i| i.sender())
    }

    /// This device's sender id in hex ("" before its keys are loaded).
    pub(super) fn sender_hex(&self) -> String {
        self.sender().map(|s| s.to_string()).unwrap_or_default()
    }

    pub(super) fn name(&self) -> String {
        self.state.borrow().name.clone()
    }

    pub(super) fn is_current(&self, room: RoomId) -> bool {
        self.state
            .borrow()
            .joined
            .as_ref()
            .is_some_and(|j| j.id == room)
    }

    /// The current room: its id, its id in hex, and whether the server has older messages.
    pub(super) fn current_room(&self) -> Option<(RoomId, String, bool)> {
        let state = self.state.borrow();
        let joined = state.joined.as_ref()?;
        Some((
            joined.id,
            joined.room_hex.clone(),
            joined.sync.server_has_older,
        ))
    }

    /// What the list shows: the current room's id in hex, and whether the server has older.
    pub(super) fn current_view(&self) -> Option<(String, bool)> {
        self.current_room().map(|(_, hex, older)| (hex, older))
    }

    /// The current room's key.
    pub(super) fn current_key(&self) -> Option<RoomKey> {
        self.state.borrow().joined.as_ref().map(|j| j.key.clone())
    }

    /// The key and hex id of `room`, when it is the current one.
    pub(super) fn room_key(&self, room: RoomId) -> Option<(RoomKey, String)> {
        let state = self.state.borrow();
        let joined = state.joined.as_ref().filter(|j| j.id == room)?;
        Some((joined.key.clone(), joined.room_hex.clone()))
    }

    /// Applies `change` to the current room's sync when `room` is it.
    pub(super) fn with_sync<T>(
        &self,
        room: RoomId,
        change: impl FnOnce(&mut RoomSync) -> T,
    ) -> Option<T> {
        let mut state = self.state.borrow_mut();
        let joined = state.joined.as_mut().filter(|j| j.id == room)?;
        Some(change(&mut joined.sync))
    }

    /// The current room as the store keeps it.
    pub(super) fn room_record(&self) -> Option<RoomRecord> {
        self.state.borrow().joined.as_ref().map(Joined::record)
    }

    /// Who writes, in which room, with which keys.
    pub(super) fn writer(&self) -> Option<Writer> {
        let state = self.state.borrow();
        Some((
            state.name.clone(),
            state.joined.clone()?,
            Rc::clone(state.identity.as_ref()?),
        ))
    }

    pub(super) async fn enter_room(
        &self,
        engine: &Rc<Engine>,
        name: &str,
        room_name: &str,
        key: RoomKey,
        public: bool,
        direct: bool,
    ) {
        let Some(db) = engine.db() else { return };
        let id = key.room_id();
        let hex_id = id.to_string();
        let record = match db.room(&hex_id).await {
            Ok(Some(record)) => record,
            _ => RoomRecord {
                id: hex_id.clone(),
                name: room_name.to_string(),
                cursor: None,
                server_has_older: false,
                key: hex(key.as_bytes()),
                public,
                direct,
                server: String::new(),
                muted: false,
            },
        };
        if let Err(error) = db.set_setting("room", Some(&hex_id)).await {
            engine.notice(format!("Could not remember the room: {}", error.0));
        }
        let invite = client::invite::fragment(&record.name, &record.key);
        let previous = {
            let state = self.state.borrow();
            state.joined.clone().filter(|j| j.id != id)
        };
        if let Some(previous) = previous {
            previous.left(engine);
        }
        let sync = RoomSync {
            cursor: record.cursor.map(|c| c as u64),
            server: record.server.clone(),
            server_has_older: record.server_has_older,
        };
        {
            let mut state = self.state.borrow_mut();
            state.name = name.to_string();
            state.joined = Some(Joined {
                id,
                key,
                room_hex: hex_id,
                record: record.clone(),
                sync,
            });
        }
        engine.inbox.reset_window();
        engine.people.entered_room(engine);
        if let Err(error) = db.put_room(&record).await {
            engine.notice(format!("Could not save the room: {}", error.0));
        }
        engine.state.session.set(Some(Shown {
            name: name.to_string(),
            room: record.name.clone(),
            invite,
            public: record.public,
            direct: record.direct,
            muted: record.muted,
        }));
        engine.inbox.refresh(engine).await;
        mark("fieldmesh:room-rendered");
        self.send_join(engine);
        engine.attention.seen(engine);
        // The room left is watched again; this one is read now.
        engine.attention.update(engine);
    }

    /// Joins the current room on the server: presence card, and the cursor to catch up from.
    pub(super) fn send_join(&self, engine: &Rc<Engine>) {
        if !engine.connection.is_ready() {
            return;
        }
        let store_id = engine.connection.store_id();
        let challenge = engine.connection.challenge();
        let frame = {
            let mut state = self.state.borrow_mut();
            let state = &mut *state;
            let (Some(joined), Some(identity)) = (state.joined.as_mut(), &state.identity) else {
                return;
            };
            // A cursor counts in one server store: after the server's database was replaced
            // (or this is another server), start the room over so nothing is skipped.
            joined.sync.on_store(&store_id);
            // The card is sealed with the room key: the server relays it without reading it.
            let Ok(member) = PresenceCard::seal(
                identity,
                &joined.key,
                challenge,
                &state.name,
                device::random_bytes(),
            ) else {
                return;
            };
            ClientFrame::Join {
                room: joined.id,
                after_seq: joined.sync.cursor,
                member,
                proof: joined.key.prove(&challenge),
            }
        };
        engine.inbox.joining();
        engine.connection.send(&frame);
    }

    /// The join form: a display name and a room name.
    pub(super) fn join(&self, engine: &Rc<Engine>, name: &str, room: &str) -> Result<(), String> {
        let name = display_name(name)?;
        let room_name = clean_room_name(room)?;
        let Some(db) = engine.db() else {
            return Err("This browser cannot keep messages on the device; see the notice.".into());
        };
        // The invite this page was opened with, if it names this room.
        let invite_key = self
            .state
            .borrow()
            .invite
            .as_ref()
            .filter(|(room, _)| *room == room_name)
            .map(|(_, key)| *key);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if let Err(error) = db.set_setting("name", Some(&name)).await {
                engine.notice(format!("Could not remember your name: {}", error.0));
            }
            let known = db
                .rooms()
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|r| r.name == room_name && !r.direct)
                .and_then(|r| Some((unhex::<32>(&r.key)?, r.public)));
            let room = choose_room(&room_name, invite_key, known, device::random_bytes());
            if invite_key.is_some() {
                engine.state.invite_room.set(None);
            }
            engine.state.last_name.set(name.clone());
            engine.state.notice.set(None);
            engine
                .session
                .enter_room(&engine, &name, &room.name, room.key, room.public, false)
                .await;
        });
        Ok(())
    }

    pub(super) fn leave(&self, engine: &Rc<Engine>) {
        let joined = self.state.borrow_mut().joined.take();
        if let Some(joined) = joined {
            joined.left(engine);
        }
        if let Some(db) = engine.db() {
            spawn_local(async move {
                let _ = db.set_setting("room", None).await;
            });
        }
        engine.people.entered_room(engine);
        engine.state.session.set(None);
        engine.state.messages.set(Vec::new());
        engine.state.notice.set(None);
        self.refresh_rooms(engine);
    }

    /// Mutes the current room (no notifications) or unmutes it.
    pub(super) fn set_muted(&self, engine: &Rc<Engine>, muted: bool) {
        let record = {
            let mut state = self.state.borrow_mut();
            let Some(joined) = state.joined.as_mut() else {
                return;
            };
            joined.record.muted = muted;
            joined.record()
        };
        engine.state.session.update(|shown| {
            if let Some(shown) = shown {
                shown.muted = muted;
            }
        });
        engine.attention.muted(engine, &record.id, muted);
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if let Err(error) = db.put_room(&record).await {
                engine.notice(format!("Could not save the room: {}", error.0));
            }
        });
    }

    /// Opens the private conversation with contact `id`.
    pub(super) fn open_direct(&self, engine: &Rc<Engine>, id: &str) {
        let (Some((peer, peer_name)), Some(identity)) =
            (engine.people.public_of(id), self.identity())
        else {
            return engine.notice("That person is not known on this device yet.");
        };
        engine.state.direct_alert.set(None);
        let Some(key) = identity.dm_key(&peer) else {
            return engine.notice("That person's keys cannot make a private conversation.");
        };
        let name = self.name();
        let engine = Rc::clone(engine);
        spawn_local(async move {
            engine
                .session
                .enter_room(&engine, &name, &peer_name, key, false, true)
                .await;
        });
    }
}

/// The display name as kept, or the sentence to show.
fn display_name(typed: &str) -> Result<String, String> {
    clean_display_name(typed).ok_or_else(|| "Choose a display name of 1 to 40 characters.".into())
}
