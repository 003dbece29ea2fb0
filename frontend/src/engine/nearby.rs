//! Where the people of each room were last: from their live positions (merged: one place per
//! person, the newest) and from the messages they sent with a position. A person who stops
//! sharing is gone from here at once. Kept on the device, a day at most.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use app::Nearby as Shown;
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::Signal;
use mesh::geo::Position;
use serde::{Deserialize, Serialize};

use super::inbox::RADIO_SENDER;
use super::Engine;
use crate::db::MessageRecord;

/// A position older than this is forgotten.
const KEPT_FOR_MS: u64 = 24 * 60 * 60 * 1000;
/// A live position not renewed for this long is no longer called live (the sender's phone
/// may be off; where it was stays known).
const LIVE_SILENCE_MS: u64 = 15 * 60 * 1000;
/// Most people kept per room.
const MAX_PER_ROOM: usize = 200;
/// Most rooms kept.
const MAX_ROOMS: usize = 64;
/// The setting the positions are kept under.
const SETTING: &str = "nearby";

/// The nearby part.
#[derive(Default)]
pub(super) struct NearbyPart {
    /// By room (hex), then by person.
    rooms: RefCell<HashMap<String, HashMap<String, Seen>>>,
    saving: std::cell::Cell<bool>,
}

/// Where someone was.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Seen {
    name: String,
    position: Position,
    at_ms: u64,
    /// Sharing live until then (ms), when they share.
    live_until_ms: Option<u64>,
}

impl NearbyPart {
    /// Reads the positions kept on the device.
    pub(super) async fn load(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let kept: HashMap<String, HashMap<String, Seen>> =
            db.kept(SETTING).await.unwrap_or_default();
        *self.rooms.borrow_mut() = kept;
        self.show(engine);
    }

    /// Messages read in the room `room` (hex): their positions move their senders.
    pub(super) fn note(&self, engine: &Rc<Engine>, room: &str, records: &[MessageRecord]) {
        let own = engine.session.sender_hex();
        let mut changed = false;
        {
            let mut rooms = self.rooms.borrow_mut();
            for record in records {
                if !own.is_empty() && record.sender == own {
                    continue;
                }
                let who = if record.sender == RADIO_SENDER {
                    format!("radio:{}", record.author)
                } else {
                    record.sender.clone()
                };
                let at_ms = record.created_at as u64;
                let people = rooms.entry(room.to_string()).or_default();
                let newer = people.get(&who).is_none_or(|seen| seen.at_ms <= at_ms);
                if !newer {
                    continue;
                }
                match (record.signal, record.position) {
                    // They stopped sharing: gone at once.
                    (Some(Signal::Live { until_s: 0 }), _) => {
                        changed |= people.remove(&who).is_some();
                    }
                    (signal, Some(position)) => {
                        let live_until_ms = match signal {
                            Some(Signal::Live { until_s }) => Some(u64::from(until_s) * 1000),
                            _ => None,
                        };
                        people.insert(
                            who,
                            Seen {
                                name: record.author.clone(),
                                position,
                                at_ms,
                                live_until_ms,
                            },
                        );
                        changed = true;
                    }
                    _ => {}
                }
                if people.len() > MAX_PER_ROOM {
                    if let Some(oldest) = people
                        .iter()
                        .min_by_key(|(_, seen)| seen.at_ms)
                        .map(|(who, _)| who.clone())
                    {
                        people.remove(&oldest);
                    }
                }
            }
            while rooms.len() > MAX_ROOMS {
                let Some(stalest) = rooms
                    .iter()
                    .min_by_key(|(_, people)| people.values().map(|s| s.at_ms).max())
                    .map(|(room, _)| room.clone())
                else {
                    break;
                };
                rooms.remove(&stalest);
            }
        }
        if changed {
            self.show(engine);
            self.save(engine);
        }
    }

    /// The people of the room open now onto the screen, most recent first (the view orders
    /// them by distance once this phone knows where it is).
    pub(super) fn show(&self, engine: &Rc<Engine>) {
        let now = now_ms();
        let Some((_, room, _)) = engine.session.current_room() else {
            engine.state.nearby.set(Vec::new());
            return;
        };
        let mut shown: Vec<Shown> = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(people) = rooms.get_mut(&room) else {
                drop(rooms);
                engine.state.nearby.set(Vec::new());
                return;
            };
            people.retain(|_, seen| now.saturating_sub(seen.at_ms) <= KEPT_FOR_MS);
            let mut seen: Vec<&Seen> = people.values().collect();
            seen.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
            seen.into_iter()
                .map(|s| Shown {
                    name: s.name.clone(),
                    position: s.position,
                    age: mesh::geo::format_age(now.saturating_sub(s.at_ms)),
                    live: s.live_until_ms.is_some_and(|until| until > now)
                        && now.saturating_sub(s.at_ms) <= LIVE_SILENCE_MS,
                })
                .collect()
        };
        shown.dedup_by(|a, b| a.name == b.name && a.position == b.position);
        engine.state.nearby.set(shown);
    }

    /// Keeps the positions on the device (one write at a time).
    fn save(&self, engine: &Rc<Engine>) {
        if self.saving.replace(true) {
            return;
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let rooms = engine.nearby.rooms.borrow().clone();
            if let Some(db) = engine.db() {
                let _ = db.keep(SETTING, &rooms).await;
            }
            engine.nearby.saving.set(false);
        });
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}
