//! Searching the messages on this device ([`client::search`] decides what matches): a room's,
//! or every room's, read newest first a page at a time, with progress; and opening a found
//! message in its room, brought into view and marked.

use std::cell::Cell;
use std::rc::Rc;

use app::{SearchHit, SearchState};
use client::search::Query;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Engine;
use crate::device;

/// Messages read from the store at a time.
const PAGE: u32 = 500;
/// Results kept (the newest).
const MAX_HITS: usize = 50;
/// Characters shown before the first match of a result.
const EXCERPT_RADIUS: usize = 40;

/// The search part.
#[derive(Default)]
pub(super) struct Search {
    /// Counts searches: a newer one stops an older one still reading.
    generation: Cell<u32>,
}

impl Search {
    /// Searches the current room's messages (`here`), or every room's.
    pub(super) fn run(&self, engine: &Rc<Engine>, typed: &str, here: bool) {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let Some(query) = Query::new(typed) else {
            engine.state.search.set(SearchState::default());
            return;
        };
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let current = engine.session.room_record();
            let rooms = match (here, current) {
                (true, Some(room)) => vec![room],
                _ => db.rooms().await.unwrap_or_default(),
            };
            let own = engine.session.sender_hex();
            let mut hits: Vec<(f64, SearchHit)> = Vec::new();
            let mut read = 0usize;
            for room in &rooms {
                let mut before = None;
                loop {
                    let page = match db.page_before(&room.id, before, PAGE).await {
                        Ok(page) => page,
                        Err(error) => {
                            engine.notice(format!("Could not search: {}", error.0));
                            return;
                        }
                    };
                    if engine.search.generation.get() != generation {
                        return;
                    }
                    read += page.len();
                    before = page.last().map(|r| r.order);
                    for (record, summary) in page
                        .iter()
                        .map(|r| (r, r.summary()))
                        .filter(|(_, summary)| query.matches(summary))
                    {
                        let shown = engine.people.chat_message(record, &own);
                        hits.push((
                            record.created_at,
                            SearchHit {
                                room: room.id.clone(),
                                room_name: room.name.clone(),
                                id: record.id.clone(),
                                author: shown.author,
                                time: device::format_time(record.created_at as u64),
                                excerpt: query.excerpt(&summary, EXCERPT_RADIUS),
                            },
                        ));
                    }
                    engine.state.search.update(|search| {
                        search.running = true;
                        search.status = format!("Searching… {read} messages");
                    });
                    if page.len() < PAGE as usize {
                        break;
                    }
                }
            }
            hits.sort_by(|a, b| b.0.total_cmp(&a.0));
            let found = hits.len();
            hits.truncate(MAX_HITS);
            let place = if here { "this room" } else { "this device" };
            let status = match found {
                0 => format!("Nothing found in {read} messages on {place}."),
                n if n > MAX_HITS => {
                    format!("{n} found in {read} messages on {place}; the newest {MAX_HITS} shown.")
                }
                1 => format!("1 found in {read} messages on {place}."),
                n => format!("{n} found in {read} messages on {place}."),
            };
            engine.state.search.set(SearchState {
                hits: hits.into_iter().map(|(_, hit)| hit).collect(),
                status,
                running: false,
            });
        });
    }

    /// Opens a found message: its room, with the list reaching back to it, and the message
    /// brought into view and marked.
    pub(super) fn open(&self, engine: &Rc<Engine>, room: &str, id: &str) {
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        let (room, id) = (room.to_string(), id.to_string());
        spawn_local(async move {
            let Some(record) = db.message(&id).await.ok().flatten() else {
                return engine.notice("That message is no longer on this device.");
            };
            let newer = db.count_from(&room, record.order).await.unwrap_or(0);
            engine.state.search_open.set(false);
            if !engine.session.enter_by_id(&engine, &room).await {
                return engine.notice("That room is no longer on this device.");
            }
            engine.inbox.show_at_least(newer);
            engine.inbox.refresh(&engine).await;
            engine.state.focus.set(Some(id));
        });
    }
}
