//! "Export this room": every message this device holds of the open room, as a file the person
//! saves: JSON Lines for tools, or a printable HTML transcript for a report or a handover. It
//! is made here from the device's own records (opened with its own keys); nothing is asked
//! of the server, so it works offline too. The formats are [`client::export`]'s, the same as
//! `fieldmesh-cli export`.

use std::rc::Rc;
use std::time::Duration;

use client::export::{exported, html, json_lines, utc, Exported};
use client::message::Opened;
use client::people::Contacts;
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::Signal;
use mesh::{MessageId, SenderId, TextBody};
use wasm_bindgen::JsCast;

use super::inbox::RADIO_SENDER;
use super::Engine;
use crate::db::{MessageRecord, RecordState};
use crate::js;

/// Messages read from the device's store per step.
const PAGE: u32 = 500;

/// Exports the open room as a transcript (`as_html`) or as JSON Lines.
pub(super) fn export_room(engine: &Rc<Engine>, as_html: bool) {
    let (Some((_, room_hex, _)), Some(db)) = (engine.session.current_room(), engine.db()) else {
        return engine.notice("Open a room first.");
    };
    let room = engine
        .state
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.room.clone()))
        .unwrap_or_default();
    let engine = Rc::clone(engine);
    spawn_local(async move {
        let mut records: Vec<MessageRecord> = Vec::new();
        let mut before = None;
        loop {
            let page = match db.page_before(&room_hex, before, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    return engine
                        .notice(format!("Could not read this room's messages: {}", error.0))
                }
            };
            let Some(oldest) = page.last() else { break };
            before = Some(oldest.order);
            records.extend(page);
        }
        records.reverse();
        let lines: Vec<Exported> = engine.people.with_contacts(|contacts| {
            records
                .iter()
                .filter(|r| !matches!(r.signal, Some(Signal::Live { .. })))
                .filter_map(|r| exported_record(r, contacts))
                .collect()
        });
        let now = js_sys::Date::now() as u64;
        let (text, media_type, extension) = if as_html {
            (html(&room, &lines, now), "text/html", "html")
        } else {
            (json_lines(&lines), "application/x-ndjson", "jsonl")
        };
        let name = format!(
            "fieldmesh-{}-{}.{extension}",
            file_stem(&room),
            &utc(now)[..10]
        );
        match save(&text, &name, media_type) {
            Ok(()) => engine.notice(format!(
                "Exported {} messages of {room} as {name}.",
                lines.len()
            )),
            Err(why) => engine.notice(format!("Could not export: {why}")),
        }
    });
}

/// A record as exported (`None` when its ids are damaged).
fn exported_record(record: &MessageRecord, contacts: &Contacts) -> Option<Exported> {
    let sender = if record.sender == RADIO_SENDER {
        None
    } else {
        Some(SenderId::from_hex(&record.sender)?)
    };
    let opened = Opened {
        id: MessageId::from_hex(&record.id)?,
        seq: record.seq.map_or(0, |s| s as u64),
        received_at_ms: record.received_at.map_or(0, |t| t as u64),
        created_at_ms: record.created_at as u64,
        sender,
        body: TextBody {
            author: record.author.clone(),
            text: record.text.clone(),
            attachments: record.files(),
            position: record.position,
            signal: record.signal,
        },
        live: false,
    };
    let mut line = exported(&opened, contacts);
    // The device's own messages the server has not stored say so.
    line.status = match record.state {
        RecordState::Queued => Some("waiting"),
        RecordState::Failed => Some("refused"),
        _ => None,
    };
    Some(line)
}

/// A room name as part of a file name: letters and digits, the rest as "-".
fn file_stem(room: &str) -> String {
    let stem: String = room
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        "room".into()
    } else {
        stem.chars().take(40).collect()
    }
}

/// Hands `text` to the browser as a download called `name`.
fn save(text: &str, name: &str, media_type: &str) -> Result<(), String> {
    let failed = |e: wasm_bindgen::JsValue| {
        js::error_message(&e).unwrap_or_else(|| "the browser refused".into())
    };
    let file = js::new_file(&js_sys::Array::of1(&text.into()), name, media_type).map_err(failed)?;
    let url = super::files::object_url(&file).ok_or("the browser cannot make a link to it")?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let link: web_sys::HtmlElement = document
        .create_element("a")
        .map_err(failed)?
        .dyn_into()
        .map_err(|_| "no link element")?;
    link.set_attribute("href", &url).map_err(failed)?;
    link.set_attribute("download", name).map_err(failed)?;
    link.click();
    // The browser has what it needs once the download started.
    set_timeout(
        move || super::files::revoke(Some(&url)),
        Duration::from_secs(60),
    );
    Ok(())
}
