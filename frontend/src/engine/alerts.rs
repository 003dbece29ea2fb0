//! SOS calls: sending one (to the room open now and to the public Emergency room, with where
//! the phone is), and the banner each received one raises until its sender says they are
//! safe or someone answers that they are on their way. The calls are kept on the device (a
//! reload keeps the banner) for a day.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use app::SosAlert;
use client::sos::{Call, Calls, Ended, Heard, Noted};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::Signal;
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::decode as unhex;
use mesh::TextBody;
use serde::Deserialize;

use super::outbox::sealed_for;
use super::Engine;
use crate::db::{Db, MessageRecord};
use crate::pwa;

/// The setting the calls are kept under.
const SETTING: &str = "sos-calls";
/// Where earlier releases kept them (without when they arrived): read once, then replaced.
const EARLIER_SETTING: &str = "sos-alerts";
/// The setting the calls' ends are kept under.
const ENDED_SETTING: &str = "sos-ended";
/// How often the banners' "4 min ago" moves on.
const TICK: Duration = Duration::from_secs(30);

/// The SOS part.
#[derive(Default)]
pub(super) struct Alerts {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    calls: Calls,
    ticking: bool,
}

/// A call as earlier releases kept it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct EarlierCall {
    key: String,
    message: String,
    room: String,
    room_name: String,
    author: String,
    sender: String,
    own: bool,
    position: Option<mesh::geo::Position>,
    at_ms: u64,
    note: String,
    coming: Vec<String>,
}

impl From<EarlierCall> for Call {
    fn from(c: EarlierCall) -> Self {
        Call {
            key: c.key,
            message: c.message,
            room: c.room,
            room_name: c.room_name,
            author: c.author,
            sender: c.sender,
            own: c.own,
            position: c.position,
            arrived_ms: c.at_ms,
            at_ms: c.at_ms,
            note: c.note,
            coming: c.coming,
        }
    }
}

impl Alerts {
    /// Reads the calls kept on the device and shows them.
    pub(super) async fn load(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let kept: Vec<Call> = match db.kept(SETTING).await {
            Some(kept) => kept,
            None => db
                .kept::<Vec<EarlierCall>>(EARLIER_SETTING)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(Call::from)
                .collect(),
        };
        let ended: Vec<Ended> = db.kept(ENDED_SETTING).await.unwrap_or_default();
        self.state.borrow_mut().calls.restore(kept, ended);
        self.show(engine);
        if self.state.borrow().calls.any_of_others() {
            self.locate(engine);
        }
    }

    /// Messages read in the room `room` (hex) named `room_name`: SOS calls raise a banner,
    /// their ends and answers change it.
    pub(super) fn note(
        &self,
        engine: &Rc<Engine>,
        room: &str,
        room_name: &str,
        records: &[MessageRecord],
    ) {
        let own = engine.session.sender_hex();
        let heard = records.iter().filter_map(|record| {
            Some(Heard {
                id: &record.id,
                sender: &record.sender,
                author: &record.author,
                at_ms: record.created_at as u64,
                arrived_ms: record.received_at.map(|at| at as u64),
                text: &record.text,
                position: record.position,
                signal: record.signal?,
            })
        });
        let Noted {
            raised,
            changed,
            keep,
        } = self
            .state
            .borrow_mut()
            .calls
            .note(&own, now_ms(), room, room_name, heard);
        let raised_any = !raised.is_empty();
        for alert in raised {
            let body = if alert.note.is_empty() {
                format!("{} needs help (in {})", alert.author, alert.room_name)
            } else {
                format!("{}: {} (in {})", alert.author, alert.note, alert.room_name)
            };
            // Even in a muted room: someone asks for help.
            pwa::notify(
                &format!("SOS from {}", alert.author),
                &body,
                &alert.room,
                true,
            );
        }
        if changed {
            self.show(engine);
        }
        if keep {
            self.save(engine);
        }
        if raised_any {
            self.locate(engine);
        }
    }

    /// Sends an SOS with this phone's position (asked for now, a few seconds at most) and
    /// `note` to the room open now and to the Emergency room.
    pub(super) fn send(&self, engine: &Rc<Engine>, note: &str) {
        let Some(identity) = engine.session.identity() else {
            engine.notice("Join a room first.");
            return;
        };
        let name = engine.session.name();
        let note = note.trim().to_string();
        let emergency = RoomKey::emergency();
        let mut rooms: Vec<(RoomKey, String, String)> = Vec::new();
        if let (Some((room, hex_id, _)), Some(record)) =
            (engine.session.current_room(), engine.session.room_record())
        {
            if room != emergency.room_id() {
                if let Some((key, _)) = engine.session.room_key(room) {
                    rooms.push((key, hex_id, record.name));
                }
            }
        }
        rooms.push((
            emergency.clone(),
            emergency.room_id().to_string(),
            "Emergency".to_string(),
        ));
        engine
            .state
            .sos_status
            .set(Some("Finding your position…".into()));
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let position = engine.location.fix_now(&engine).await;
            let Some(db) = engine.db() else { return };
            let camp = engine.radio.camp();
            let mut sent = Vec::new();
            for (key, room_hex, room_name) in rooms {
                let body = match TextBody::place(&name, &note, position, Some(Signal::Sos)) {
                    Ok(body) => body,
                    Err(error) => {
                        engine
                            .state
                            .sos_status
                            .set(Some(format!("Not sent: {error}.")));
                        return;
                    }
                };
                let to = (&key, room_hex.as_str(), room_name.as_str());
                if post(&engine, &db, to, &identity, &body, camp.as_deref()).await {
                    sent.push(room_name);
                }
            }
            let place = if position.is_some() {
                "with your position"
            } else {
                "without a position (the phone did not know it)"
            };
            engine
                .state
                .sos_status
                .set(Some(format!("SOS sent to {} {place}.", sent.join(" and "))));
            engine.state.sos_open.set(false);
        });
    }

    /// The person answered the call `key`: "I am safe" to every room their own call went to,
    /// or "On my way" to the room of another's.
    pub(super) fn answer(&self, engine: &Rc<Engine>, key: &str) {
        let Some(identity) = engine.session.identity() else {
            return;
        };
        let name = engine.session.name();
        // A call went to more than one room: it is answered, or ends, in all of them.
        let answered = self.state.borrow().calls.of_caller(key);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let Some(db) = engine.db() else { return };
            // Where they are goes with the answer as with any message: when they chose to
            // send it (the pin) and the phone knows it now.
            let position = engine.location.for_message(&engine).ok().flatten();
            let camp = engine.radio.camp();
            for alert in answered {
                let Some(of) = unhex::<6>(alert.message.get(..12).unwrap_or_default()) else {
                    continue;
                };
                let Some(key) = room_key(&engine, &alert.room).await else {
                    engine.notice(format!(
                        "Could not answer in {}: this device does not have the room.",
                        alert.room_name
                    ));
                    continue;
                };
                let signal = if alert.own {
                    Signal::Safe { of }
                } else {
                    Signal::Coming { of }
                };
                let Ok(body) = TextBody::place(&name, "", position, Some(signal)) else {
                    continue;
                };
                let to = (&key, alert.room.as_str(), alert.room_name.as_str());
                post(&engine, &db, to, &identity, &body, camp.as_deref()).await;
            }
        });
    }

    /// How far a call is needs where this phone is: asked for when the person allowed it.
    fn locate(&self, engine: &Rc<Engine>) {
        let engine = Rc::clone(engine);
        spawn_local(async move { engine.location.fix_if_allowed(&engine).await });
    }

    /// Opens the room of the call `key` at its message.
    pub(super) fn open(&self, engine: &Rc<Engine>, key: &str) {
        let Some(alert) = self.state.borrow().calls.get(key).cloned() else {
            return;
        };
        engine.search.open(engine, &alert.room, &alert.message);
    }

    /// The calls onto the screen, one per caller (their newest, with everyone on the way to
    /// any of their calls), newest first, with how long ago; while there are any, that is
    /// kept current.
    fn show(&self, engine: &Rc<Engine>) {
        let now = now_ms();
        let alerts: Vec<SosAlert> = self
            .state
            .borrow_mut()
            .calls
            .shown(now)
            .into_iter()
            .map(|a| SosAlert {
                age: mesh::geo::format_age(now.saturating_sub(a.at_ms)),
                key: a.key,
                message: a.message,
                room: a.room,
                room_name: a.room_name,
                author: a.author,
                own: a.own,
                position: a.position,
                at_ms: a.at_ms,
                note: a.note,
                coming: a.coming,
            })
            .collect();
        let any = !alerts.is_empty();
        engine.state.alerts.set(alerts);
        if any && !std::mem::replace(&mut self.state.borrow_mut().ticking, true) {
            let weak = Rc::downgrade(engine);
            spawn_local(async move {
                loop {
                    super::location::sleep(TICK).await;
                    let Some(engine) = weak.upgrade() else { return };
                    if engine.alerts.state.borrow().calls.is_empty() {
                        engine.alerts.state.borrow_mut().ticking = false;
                        return;
                    }
                    engine.alerts.show(&engine);
                }
            });
        }
    }

    /// Keeps the calls on the device.
    fn save(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let (kept, ended) = self.state.borrow().calls.kept();
        spawn_local(async move {
            let _ = db.keep(SETTING, &kept).await;
            let _ = db.keep(ENDED_SETTING, &ended).await;
        });
    }
}

/// Seals `body` by `identity` for the room `to` (key, hex id, name), puts it in the outbox
/// and notes it here (an own call raises its banner, an answer changes one); `false` when it
/// could not be kept.
async fn post(
    engine: &Rc<Engine>,
    db: &Db,
    (key, room, room_name): (&RoomKey, &str, &str),
    identity: &Identity,
    body: &TextBody,
    camp: Option<&str>,
) -> bool {
    let Ok((record, envelope, radio)) = sealed_for(key, room, identity, body, camp) else {
        return false;
    };
    let shown = record.clone();
    let stored = engine
        .outbox
        .store(engine, db, record, envelope, radio, Vec::new())
        .await
        .is_ok();
    if stored {
        engine.alerts.note(engine, room, room_name, &[shown]);
    }
    stored
}

/// The key of the room `room` (hex): the Emergency room's is public, the others' are on the
/// device.
pub(super) async fn room_key(engine: &Rc<Engine>, room: &str) -> Option<RoomKey> {
    let emergency = RoomKey::emergency();
    if emergency.room_id().to_string() == room {
        return Some(emergency);
    }
    let record = engine.db()?.room(room).await.ok().flatten()?;
    unhex::<32>(&record.key).map(RoomKey::from_bytes)
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn calls_kept_by_the_release_before_are_read_and_shown_for_a_day_from_their_time() {
        let kept = vec![EarlierCall {
            key: "aa/010203040506".into(),
            message: "0102030405060708".into(),
            room: "aa".into(),
            room_name: "Camp".into(),
            author: "Ana".into(),
            sender: "a1a1".into(),
            own: false,
            position: mesh::geo::Position::new(51.5, -0.12, 8.0).ok(),
            at_ms: 1_800_000_000_000,
            note: "second floor".into(),
            coming: vec!["Ben".into()],
        }];
        let bytes = postcard::to_allocvec(&kept).unwrap();
        let read: Vec<EarlierCall> = postcard::from_bytes(&bytes).unwrap();
        let call = Call::from(read.into_iter().next().unwrap());
        assert_eq!(
            (
                call.author.as_str(),
                call.note.as_str(),
                call.coming.as_slice()
            ),
            ("Ana", "second floor", ["Ben".to_string()].as_slice())
        );
        assert_eq!(
            (call.at_ms, call.arrived_ms),
            (1_800_000_000_000, 1_800_000_000_000)
        );
        assert!(call.position.is_some());
    }
}
