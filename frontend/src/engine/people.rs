//! The people around: who is in the room (their sealed presence cards), who is typing, and
//! the contacts this device keeps with trust on first use ([`client::people`]), whose private
//! conversations [`super::attention`] watches.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use app::{ChatMessage, RosterEntry};
use client::people::Contacts;
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::crypto::{Identity, PublicIdentity};
use mesh::presence::PresenceCard;
use mesh::{ClientFrame, Member, SenderId};

use super::inbox::chat_message;
use super::Engine;
use crate::db::{Db, MessageRecord, RecordState};

/// A typing notice is sent at most this often, and shown this long.
const TYPING_SEND_EVERY_MS: f64 = 2_500.0;
const TYPING_SHOW_MS: f64 = 4_000.0;

/// The people part.
#[derive(Default)]
pub(super) struct People {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    contacts: Contacts,
    members: Vec<Member>,
    /// The room's list came since it was entered: changes apply to it (before, they would
    /// apply to nothing, say from a watch of the room whose join was refused).
    listed: bool,
    typing: HashMap<SenderId, f64>,
    last_typing_sent_ms: f64,
}

impl People {
    pub(super) async fn load(&self, db: &Db) {
        let text = db
            .setting("contacts")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        self.state.borrow_mut().contacts = Contacts::parse(&text);
    }

    /// A room was entered or left: nobody is known to be there yet.
    pub(super) fn entered_room(&self, engine: &Rc<Engine>) {
        {
            let mut state = self.state.borrow_mut();
            state.members.clear();
            state.listed = false;
            state.typing.clear();
        }
        engine.state.members.set(Vec::new());
        engine.state.typing.set(Vec::new());
    }

    pub(super) fn on_disconnect(&self, engine: &Rc<Engine>) {
        self.entered_room(engine);
    }

    pub(super) fn heartbeat(&self, engine: &Rc<Engine>) {
        self.expire_typing(engine);
    }

    pub(super) fn on_presence(&self, engine: &Rc<Engine>, members: Vec<Member>) {
        {
            let mut state = self.state.borrow_mut();
            state.members = members;
            state.listed = true;
        }
        self.show_members(engine);
    }

    /// Who came and went since the list: applied to it.
    pub(super) fn on_presence_changed(
        &self,
        engine: &Rc<Engine>,
        joined: &[Member],
        left: &[[u8; 32]],
    ) {
        {
            let state = &mut *self.state.borrow_mut();
            if !state.listed {
                return;
            }
            mesh::apply_presence_changes(&mut state.members, joined, left);
        }
        self.show_members(engine);
    }

    fn show_members(&self, engine: &Rc<Engine>) {
        let Some(key) = engine.session.current_key() else {
            return;
        };
        let own = engine.session.sender();
        let mut names = Vec::new();
        let mut roster = Vec::new();
        let mut warning = None;
        let contacts_changed = {
            let state = &mut *self.state.borrow_mut();
            let mut seen = HashSet::new();
            for member in state.members.iter().filter(|m| seen.insert(m.sender)) {
                let Some(card) = PresenceCard::open(&key, member) else {
                    names.push("someone unknown".to_string());
                    continue;
                };
                let you = Some(member.sender) == own;
                let person = state.contacts.observe(&card, you);
                if person.warning.is_some() {
                    warning = person.warning.clone();
                }
                names.push(if you {
                    format!("{} (you)", person.name)
                } else {
                    person.name.clone()
                });
                roster.push(RosterEntry {
                    id: person.id,
                    name: person.name,
                    code: person.code,
                    verified: person.verified,
                    keys_changed: person.keys_changed,
                    you,
                });
            }
            state.contacts.take_changed()
        };
        engine.state.members.set(names);
        engine.state.roster.set(roster);
        if warning.is_some() {
            engine.state.key_warning.set(warning);
        }
        if contacts_changed {
            self.save_contacts(engine);
            // Names on messages come from contacts: the list follows, and private
            // conversations with new people are watched.
            engine.inbox.changed(engine);
            engine.attention.update(engine);
        }
    }

    /// The name `sender` shows in the room open now ("someone" when their card is unknown).
    pub(super) fn name_of(&self, engine: &Rc<Engine>, sender: SenderId) -> String {
        let Some(key) = engine.session.current_key() else {
            return "someone".into();
        };
        let state = self.state.borrow();
        state
            .members
            .iter()
            .filter(|m| m.sender == sender)
            .find_map(|m| PresenceCard::open(&key, m))
            .map_or_else(|| "someone".into(), |card| card.name)
    }

    pub(super) fn on_typing(&self, engine: &Rc<Engine>, sender: SenderId) {
        self.state
            .borrow_mut()
            .typing
            .insert(sender, js_sys::Date::now() + TYPING_SHOW_MS);
        self.expire_typing(engine);
        let weak = Rc::downgrade(engine);
        set_timeout(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.people.expire_typing(&engine);
                }
            },
            Duration::from_millis(TYPING_SHOW_MS as u64 + 50),
        );
    }

    fn expire_typing(&self, engine: &Rc<Engine>) {
        let Some(key) = engine.session.current_key() else {
            return;
        };
        let now = js_sys::Date::now();
        let names = {
            let state = &mut *self.state.borrow_mut();
            state.typing.retain(|_, until| *until > now);
            state
                .typing
                .keys()
                .filter_map(|sender| state.members.iter().find(|m| m.sender == *sender))
                .filter_map(|m| PresenceCard::open(&key, m))
                .map(|card| card.name)
                .collect::<Vec<_>>()
        };
        if engine.state.typing.with_untracked(|shown| *shown != names) {
            engine.state.typing.set(names);
        }
    }

    /// The person types: the room hears it, at most every 2.5 s.
    pub(super) fn send_typing(&self, engine: &Rc<Engine>) {
        let now = js_sys::Date::now();
        {
            let mut state = self.state.borrow_mut();
            if now - state.last_typing_sent_ms < TYPING_SEND_EVERY_MS {
                return;
            }
            state.last_typing_sent_ms = now;
        }
        if let Some((room, _, _)) = engine.session.current_room() {
            engine.connection.send(&ClientFrame::Typing { room });
        }
    }

    /// A record as the list shows it, with the author's name from their signed card when this
    /// device knows them.
    pub(super) fn chat_message(&self, record: &MessageRecord, own: &str) -> ChatMessage {
        let state = self.state.borrow();
        let author = if record.sender == own {
            record.author.clone()
        } else {
            state.contacts.label(
                &record.author,
                &record.sender,
                record.state != RecordState::Radio,
            )
        };
        let verified = state
            .contacts
            .get(&record.sender)
            .is_some_and(|c| c.verified);
        chat_message(record, own, author, verified)
    }

    /// Runs `read` with the contacts (who is verified, and their names).
    pub(super) fn with_contacts<T>(&self, read: impl FnOnce(&Contacts) -> T) -> T {
        read(&self.state.borrow().contacts)
    }

    /// The person compared safety codes with `id`.
    pub(super) fn verify(&self, engine: &Rc<Engine>, id: &str) {
        if self.state.borrow_mut().contacts.verify(id) {
            self.state.borrow_mut().contacts.take_changed();
            self.save_contacts(engine);
            engine.state.key_warning.set(None);
            self.show_members(engine);
            // Their messages show "✓ verified" now.
            engine.inbox.changed(engine);
        }
    }

    /// The `count` people first seen last (not this device), with their public keys.
    pub(super) fn recent(&self, count: usize, own: &Identity) -> Vec<(String, PublicIdentity)> {
        let own = own.sender().to_string();
        self.state
            .borrow()
            .contacts
            .list()
            .iter()
            .rev()
            .filter(|c| c.id != own)
            .filter_map(|c| Some((c.name.clone(), c.public()?)))
            .take(count)
            .collect()
    }

    /// A contact's public keys and name.
    pub(super) fn public_of(&self, id: &str) -> Option<(PublicIdentity, String)> {
        let state = self.state.borrow();
        let contact = state.contacts.get(id)?;
        Some((contact.public()?, contact.name.clone()))
    }

    fn save_contacts(&self, engine: &Rc<Engine>) {
        let text = self.state.borrow().contacts.to_text();
        if let Some(db) = engine.db() {
            spawn_local(async move {
                let _ = db.set_setting("contacts", Some(&text)).await;
            });
        }
    }
}
