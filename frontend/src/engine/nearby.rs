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
    /// Sharing live until then (ms), when they share; [`STOPPED`] when they stopped.
    live_until_ms: Option<u64>,
}

/// `live_until_ms` of a person who stopped sharing: not shown.
const STOPPED: u64 = 0;

impl Seen {
    /// Where `record`'s writer was, as it says.
    fn of(record: &MessageRecord, position: Position, live_until_ms: Option<u64>) -> Self {
        Self {
            name: record.author.clone(),
            position,
            at_ms: record.created_at as u64,
            live_until_ms,
        }
    }

    fn stopped(&self) -> bool {
        self.live_until_ms == Some(STOPPED)
    }
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
                let people = rooms.entry(room.to_string()).or_default();
                changed |= noted(people, record);
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
            let mut seen: Vec<&Seen> = people.values().filter(|s| !s.stopped()).collect();
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

/// `record` moves its sender among `people`; `true` when something changed. Only what is
/// newer than what is known counts: a person who stopped sharing stays gone (hidden, not
/// forgotten) when an older live position of theirs is read later (an older page).
fn noted(people: &mut HashMap<String, Seen>, record: &MessageRecord) -> bool {
    let who = if record.sender == RADIO_SENDER {
        format!("radio:{}", record.author)
    } else {
        record.sender.clone()
    };
    let at_ms = record.created_at as u64;
    if people.get(&who).is_some_and(|seen| seen.at_ms > at_ms) {
        return false;
    }
    match (record.signal, record.position) {
        // They stopped sharing: gone at once, and kept as stopped.
        (Some(Signal::Live { until_s: 0 }), _) => {
            let shown = people.get(&who).is_some_and(|seen| !seen.stopped());
            // (Never shown: any place will do where none is known.)
            let Some(position) = people
                .get(&who)
                .map(|seen| seen.position)
                .or(record.position)
                .or_else(|| Position::new(0.0, 0.0, 0.0).ok())
            else {
                return shown;
            };
            people.insert(who, Seen::of(record, position, Some(STOPPED)));
            shown
        }
        (signal, Some(position)) => {
            let live_until_ms = match signal {
                Some(Signal::Live { until_s }) => Some(u64::from(until_s) * 1000),
                _ => None,
            };
            people.insert(who, Seen::of(record, position, live_until_ms));
            true
        }
        _ => false,
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;
    use crate::db::RecordState;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn record(at_ms: u64, position: Option<Position>, signal: Option<Signal>) -> MessageRecord {
        MessageRecord {
            id: format!("{at_ms:032x}"),
            room: "aa".into(),
            order: at_ms as f64,
            seq: None,
            created_at: at_ms as f64,
            sender: "a1a1".into(),
            author: "Ana".into(),
            text: String::new(),
            state: RecordState::Stored,
            camps: Vec::new(),
            files: Vec::new(),
            position,
            signal,
            received_at: None,
        }
    }

    fn shown(people: &HashMap<String, Seen>) -> Vec<Position> {
        people
            .values()
            .filter(|s| !s.stopped())
            .map(|s| s.position)
            .collect()
    }

    #[wasm_bindgen_test]
    fn a_person_who_stopped_sharing_stays_gone_when_an_older_live_position_is_read_later() {
        let here = Position::new(51.5, -0.12, 8.0).unwrap();
        let there = Position::new(51.49, -0.12, 8.0).unwrap();
        let live = |at, position| {
            record(
                at,
                Some(position),
                Some(Signal::Live {
                    until_s: 2_000_000_000,
                }),
            )
        };
        let stop = record(3_000, None, Some(Signal::Live { until_s: 0 }));
        let mut people = HashMap::new();
        assert!(noted(&mut people, &live(1_000, here)));
        assert_eq!(shown(&people), [here]);
        assert!(noted(&mut people, &stop));
        assert!(shown(&people).is_empty());
        // An older page, read later, holds a live position from before the stop.
        assert!(!noted(&mut people, &live(2_000, there)));
        assert!(shown(&people).is_empty());
        // Kept on the device and read back, the stop holds too.
        let kept = postcard::to_allocvec(&people).unwrap();
        let mut people: HashMap<String, Seen> = postcard::from_bytes(&kept).unwrap();
        assert!(!noted(&mut people, &live(2_500, there)));
        // A message sent with a position later: they chose to say where they are.
        assert!(noted(&mut people, &record(4_000, Some(there), None)));
        assert_eq!(shown(&people), [there]);
        // A stop read before anything else of theirs still hides what is older.
        let mut people = HashMap::new();
        assert!(!noted(&mut people, &stop));
        assert!(!noted(&mut people, &live(1_000, here)));
        assert!(shown(&people).is_empty());
    }
}
