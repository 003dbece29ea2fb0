//! Files: attached in the composer, made small (photos), sealed here piece by piece
//! (`mesh::file`), kept in the device's store beside the outbox, uploaded when the server is
//! reachable (asking first which pieces it lacks, as [`client::upload::Upload`] decides), and
//! the message published only once the server has them all. Files of messages are fetched,
//! checked against their message and opened here, on demand.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use app::{DraftFile, Transfer};
use base64::Engine as _;
use client::upload::{PieceAnswer, Step, Upload};
use futures::channel::oneshot;
use futures::stream::{FuturesUnordered, StreamExt};
use js_sys::{Array, Object, Reflect, Uint8Array};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::{clean_file_name, Attachment, FileKind, TextBody, MAX_ATTACHMENTS};
use mesh::file::{ChunkId, FileSealer, Manifest, DEFAULT_MAX_SEND_BYTES, MAX_FILE_BYTES};
use mesh::geo::Position;
use mesh::{ClientFrame, Envelope, MessageId, RoomId};
use wasm_bindgen::JsValue;

use super::outbox::sealed;
use super::session::Writer;
use super::{Coalesce, Engine};
use crate::db::{Db, PieceRecord, PieceRef};
use crate::{device, js};

/// When an upload could not go on (no answer, no ticket), the next try.
const RETRY_MS: u32 = 5_000;

/// How long an upload waits for the server's room ticket.
const TICKET_WAIT_MS: u32 = 10_000;

/// Files fetched at once.
const DOWNLOADS_AT_ONCE: usize = 3;

/// Files sent from here up to this size stay in the phone's store after upload (shown and
/// played offline); larger ones are fetched again when opened.
const KEEP_SENT_BYTES: u64 = 2_000_000;

/// Where the server's file limit is kept.
const MAX_FILE_SETTING: &str = "max_file_bytes";

/// Picture types the browser decodes everywhere; others (HEIC, animations) go as files.
const PHOTO_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/avif"];

/// A file attached in the composer.
#[derive(Clone)]
struct Draft {
    id: u32,
    file: web_sys::File,
    /// A recorded voice note, this many milliseconds long.
    voice_ms: Option<u32>,
}

/// The files part.
#[derive(Default)]
pub(super) struct Files {
    /// Attached in the composer.
    drafts: RefCell<Vec<Draft>>,
    next_draft: Cell<u32>,
    /// Files being prepared and sealed: a second send waits for the first.
    preparing: Cell<bool>,
    uploading: Coalesce,
    /// Opened files (by key), to share them.
    opened: RefCell<HashMap<String, JsValue>>,
    /// The largest file the server takes, as it said last (0: not known yet).
    max_bytes: Cell<u64>,
    /// Downloads under way, and those waiting for their turn.
    downloading: Cell<usize>,
    waiting: RefCell<VecDeque<String>>,
    /// Room tickets the server gave (uploads count towards their room's quota), and uploads
    /// waiting for one.
    tickets: RefCell<HashMap<RoomId, [u8; 32]>>,
    ticket_waiters: RefCell<HashMap<RoomId, Vec<oneshot::Sender<()>>>>,
}

impl Files {
    /// The largest file this device sends: what the server said, kept for offline use.
    fn max_bytes(&self) -> u64 {
        match self.max_bytes.get() {
            0 => DEFAULT_MAX_SEND_BYTES,
            max => max,
        }
    }

    /// Reads the limit the server gave last time (a phone offline still knows it).
    pub(super) async fn load(&self, db: &Db) {
        if let Some(max) = db
            .setting(MAX_FILE_SETTING)
            .await
            .ok()
            .flatten()
            .and_then(|m| m.parse::<u64>().ok())
        {
            self.max_bytes.set(max.clamp(1, MAX_FILE_BYTES));
        }
    }

    /// The server says how large a file it takes.
    pub(super) fn on_limits(&self, engine: &Rc<Engine>, max_file_bytes: u64) {
        let max = max_file_bytes.clamp(1, MAX_FILE_BYTES);
        if self.max_bytes.replace(max) == max {
            return;
        }
        if let Some(db) = engine.db() {
            spawn_local(async move {
                let _ = db
                    .set_setting(MAX_FILE_SETTING, Some(&max.to_string()))
                    .await;
            });
        }
    }

    pub(super) fn has_drafts(&self) -> bool {
        !self.drafts.borrow().is_empty()
    }

    /// The person picked files.
    pub(super) fn attach(&self, engine: &Rc<Engine>, files: Vec<web_sys::File>) {
        let mut refused = Vec::new();
        for file in files {
            if self.drafts.borrow().len() >= MAX_ATTACHMENTS {
                refused.push(format!(
                    "A message carries at most {MAX_ATTACHMENTS} files; send these, then the rest."
                ));
                break;
            }
            let photo = is_photo(&file.type_());
            let size = file.size() as u64;
            // A photo is made small before it is sealed; a huge one still takes too long.
            let max = self.max_bytes();
            let limit = if photo {
                (4 * max).max(4 * DEFAULT_MAX_SEND_BYTES)
            } else {
                max
            };
            if size > limit {
                refused.push(too_large(&file.name(), size, max));
                continue;
            }
            self.add_draft(engine, file, None);
        }
        if !refused.is_empty() {
            engine.notice(refused.join(" "));
        }
    }

    /// A voice note was recorded: it is attached like a picked file.
    pub(super) fn attach_voice(&self, engine: &Rc<Engine>, file: web_sys::File, millis: u32) {
        if self.drafts.borrow().len() >= MAX_ATTACHMENTS {
            return engine.notice(format!(
                "A message carries at most {MAX_ATTACHMENTS} files; send these, then record again."
            ));
        }
        self.add_draft(engine, file, Some(millis));
    }

    fn add_draft(&self, engine: &Rc<Engine>, file: web_sys::File, voice_ms: Option<u32>) {
        let id = self.next_draft.get() + 1;
        self.next_draft.set(id);
        let photo = voice_ms.is_none() && is_photo(&file.type_());
        let preview = photo.then(|| object_url(&file)).flatten();
        let shown = DraftFile {
            id,
            name: match voice_ms {
                Some(ms) => format!("Voice note {}", mesh::body::duration(ms)),
                None => file.name(),
            },
            size: mesh::body::human_size(file.size() as u64),
            photo,
            preview,
        };
        self.drafts.borrow_mut().push(Draft { id, file, voice_ms });
        engine.state.drafts.update(|drafts| drafts.push(shown));
    }

    /// The person took an attached file out.
    pub(super) fn unattach(&self, engine: &Rc<Engine>, id: u32) {
        self.drafts.borrow_mut().retain(|draft| draft.id != id);
        engine.state.drafts.update(|drafts| {
            drafts.retain(|draft| {
                let keep = draft.id != id;
                if !keep {
                    revoke(draft.preview.as_deref());
                }
                keep
            })
        });
    }

    /// Prepares the attached files (photos made small, every file sealed and kept here), then
    /// puts the message in the outbox; the files stay attached until it is there.
    pub(super) fn send(
        &self,
        engine: &Rc<Engine>,
        writer: Writer,
        caption: &str,
        position: Option<Position>,
    ) -> Result<(), String> {
        if self.preparing.replace(true) {
            return Err("The files before are still being prepared; a moment.".into());
        }
        // The limits of the message itself are checked before the long work.
        if caption.trim().chars().count() > mesh::body::MAX_TEXT_CHARS {
            self.preparing.set(false);
            return Err(format!(
                "Not sent: the text is longer than {} characters.",
                mesh::body::MAX_TEXT_CHARS
            ));
        }
        let drafts: Vec<Draft> = self.drafts.borrow().clone();
        let size = engine.state.photo_size.get_untracked();
        let caption = caption.to_string();
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let result =
                prepare_and_store(&engine, writer, (&caption, position), &drafts, size).await;
            engine.files.preparing.set(false);
            engine.state.preparing.set(None);
            match result {
                Ok(()) => {
                    let sent: Vec<u32> = drafts.iter().map(|draft| draft.id).collect();
                    for id in sent {
                        engine.files.unattach(&engine, id);
                    }
                }
                Err(error) => {
                    engine.notice(error);
                    engine.state.caption_back.set(Some(caption));
                }
            }
        });
        Ok(())
    }

    /// Uploads what the outbox's messages wait for, when the server is reachable. Any number
    /// of requests while a pass runs make one more pass.
    pub(super) fn request_upload(&self, engine: &Rc<Engine>) {
        if !engine.connection.is_ready() {
            return;
        }
        Coalesce::request(
            engine,
            |engine| &engine.files.uploading,
            |engine| async move {
                upload_pass(&engine).await;
            },
        );
    }

    /// Fetches, checks and opens a file of a message (`MESSAGE/INDEX`), once; a few at a
    /// time (a room full of photos fetches them in turn), the others wait in line.
    pub(super) fn open(&self, engine: &Rc<Engine>, key: &str) {
        let busy = engine.state.transfers.with_untracked(|transfers| {
            transfers
                .get(key)
                .is_some_and(|t| t.running || t.url.is_some())
        });
        if busy {
            return;
        }
        set_transfer(engine, key, |t| {
            t.running = true;
            t.error = None;
        });
        if self.downloading.get() >= DOWNLOADS_AT_ONCE {
            self.waiting.borrow_mut().push_back(key.to_string());
            return;
        }
        self.downloading.set(self.downloading.get() + 1);
        self.start_download(engine, key);
    }

    /// One download ended: the next in line starts.
    fn download_ended(&self, engine: &Rc<Engine>) {
        let next = self.waiting.borrow_mut().pop_front();
        match next {
            Some(key) => self.start_download(engine, &key),
            None => self
                .downloading
                .set(self.downloading.get().saturating_sub(1)),
        }
    }

    fn start_download(&self, engine: &Rc<Engine>, key: &str) {
        let Some((message, index)) = key
            .split_once('/')
            .and_then(|(m, i)| Some((m.to_string(), i.parse::<usize>().ok()?)))
        else {
            return self.download_ended(engine);
        };
        let Some(db) = engine.db() else {
            return self.download_ended(engine);
        };
        let engine = Rc::clone(engine);
        let key = key.to_string();
        spawn_local(async move {
            let found = db
                .message(&message)
                .await
                .ok()
                .flatten()
                .and_then(|record| record.files().get(index).cloned());
            let Some(file) = found else {
                set_transfer(&engine, &key, |t| {
                    t.running = false;
                    t.error = Some("This file is no longer on this device.".into())
                });
                return engine.files.download_ended(&engine);
            };
            let result = download(&engine, &db, &key, &file).await;
            engine.files.download_ended(&engine);
            match result {
                Ok((blob, url)) => {
                    engine.files.opened.borrow_mut().insert(key.clone(), blob);
                    set_transfer(&engine, &key, |t| {
                        t.running = false;
                        t.error = None;
                        t.done = t.total;
                        t.url = Some(url);
                    });
                }
                Err(error) => set_transfer(&engine, &key, |t| {
                    t.running = false;
                    t.error = Some(error);
                }),
            }
        });
    }

    /// The server's answer to a ticket request.
    pub(super) fn on_ticket(&self, room: RoomId, ticket: [u8; 32]) {
        self.tickets.borrow_mut().insert(room, ticket);
        for waiter in self
            .ticket_waiters
            .borrow_mut()
            .remove(&room)
            .unwrap_or_default()
        {
            let _ = waiter.send(());
        }
    }

    /// A ticket for uploading `room`'s files: the one held, or a new one asked for with the
    /// room's key. `None` when none came (offline, or this device lacks the key).
    async fn ticket(&self, engine: &Rc<Engine>, db: &Db, room: RoomId) -> Option<[u8; 32]> {
        if let Some(ticket) = self.tickets.borrow().get(&room) {
            return Some(*ticket);
        }
        let record = db.room(&room.to_string()).await.ok().flatten()?;
        let key = mesh::crypto::RoomKey::from_bytes(mesh::hex::decode::<32>(&record.key)?);
        let (tx, rx) = oneshot::channel();
        self.ticket_waiters
            .borrow_mut()
            .entry(room)
            .or_default()
            .push(tx);
        let proof = key.prove(&engine.connection.challenge());
        if !engine
            .connection
            .send(&ClientFrame::FileTicket { room, proof })
        {
            return None;
        }
        let timeout = Box::pin(pause(TICKET_WAIT_MS));
        let _ = futures::future::select(rx, timeout).await;
        self.tickets.borrow().get(&room).copied()
    }

    /// Opens the share sheet with an opened file.
    pub(super) fn share(&self, engine: &Rc<Engine>, key: &str) {
        let Some(blob) = self.opened.borrow().get(key).cloned() else {
            return;
        };
        let name = Reflect::get(&blob, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        let shared = (|| -> Result<JsValue, JsValue> {
            let navigator = Reflect::get(&js_sys::global(), &"navigator".into())?;
            let data = Object::new();
            Reflect::set(&data, &"files".into(), &Array::of1(&blob))?;
            Reflect::set(&data, &"title".into(), &name.into())?;
            let can = js::call(&navigator, "canShare", &[data.clone().into()])?;
            if can.as_bool() != Some(true) {
                return Err(JsValue::NULL);
            }
            js::call_detached(&navigator, "share", &[data.into()]);
            Ok(JsValue::TRUE)
        })();
        if shared.is_err() {
            engine.notice("This browser cannot share files; use Save instead.");
        }
    }
}

/// Why a file is refused for its size.
fn too_large(name: &str, size: u64, max: u64) -> String {
    format!(
        "{name} is {}: this server takes files up to {}.",
        mesh::body::human_size(size),
        mesh::body::human_size(max)
    )
}

fn is_photo(media_type: &str) -> bool {
    PHOTO_TYPES.contains(&media_type)
}

/// A preview of a message's tiny thumbnail, as a `data:` address (WebP or JPEG, by its first
/// bytes; anything else is not shown).
pub(super) fn thumbnail_url(bytes: &[u8]) -> Option<String> {
    let media = if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else {
        return None;
    };
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    Some(format!("data:{media};base64,{data}"))
}

fn set_transfer(engine: &Engine, key: &str, change: impl FnOnce(&mut Transfer)) {
    engine.state.transfers.update(|transfers| {
        change(transfers.entry(key.to_string()).or_default());
    });
}

/// `URL.createObjectURL(blob)`.
pub(super) fn object_url(blob: &JsValue) -> Option<String> {
    let url = Reflect::get(&js_sys::global(), &"URL".into()).ok()?;
    js::call(&url, "createObjectURL", std::slice::from_ref(blob))
        .ok()?
        .as_string()
}

pub(super) fn revoke(url: Option<&str>) {
    if let (Some(url), Ok(class)) = (url, Reflect::get(&js_sys::global(), &"URL".into())) {
        let _ = js::call(&class, "revokeObjectURL", &[url.into()]);
    }
}

fn error_text(error: JsValue) -> String {
    js::error_message(&error).unwrap_or_else(|| "the browser refused".into())
}

/// One attached file, ready to seal: its bytes (a `Blob`), size, and description.
struct Prepared {
    blob: JsValue,
    size: u64,
    what: FileKind,
    media_type: String,
    name: String,
    thumbnail: Vec<u8>,
}

async fn prepare_and_store(
    engine: &Rc<Engine>,
    writer: Writer,
    (caption, position): (&str, Option<Position>),
    drafts: &[Draft],
    size: app::PhotoSize,
) -> Result<(), String> {
    let db = engine
        .db()
        .ok_or("This browser cannot keep files on the device.")?;
    let count = drafts.len();
    let step = |what: &str, n: usize| {
        engine
            .state
            .preparing
            .set(Some(format!("{what} {} of {count}…", n + 1)))
    };
    // Everything is made ready and checked before anything is sealed and kept.
    let max = engine.files.max_bytes();
    let mut ready = Vec::with_capacity(count);
    for (n, draft) in drafts.iter().enumerate() {
        step("Preparing", n);
        let prepared = prepare(draft, size).await?;
        if prepared.size > max {
            return Err(too_large(&prepared.name, prepared.size, max));
        }
        ready.push(prepared);
    }
    let body_bytes: usize = ready
        .iter()
        .map(|p| {
            mesh::file::chunk_count(p.size) * 33 + p.thumbnail.len() + p.name.len() + PER_FILE_BYTES
        })
        .sum::<usize>()
        + caption.len();
    if body_bytes > mesh::MAX_BODY_BYTES {
        return Err(
            "These files are too many or too large for one message; send them in two or more."
                .into(),
        );
    }
    let room = writer.1.room_hex.clone();
    let mut attachments = Vec::new();
    let mut pieces = Vec::new();
    for (n, prepared) in ready.into_iter().enumerate() {
        step("Sealing", n);
        let manifest = match seal_into_store(&db, &room, &prepared, max, &mut pieces).await {
            Ok(manifest) => manifest,
            Err(error) => {
                forget_pieces(&db, &pieces).await;
                return Err(error);
            }
        };
        attachments.push(Attachment {
            what: prepared.what,
            media_type: prepared.media_type,
            name: prepared.name,
            file: manifest,
            thumbnail: prepared.thumbnail,
        });
    }
    let queued = queue(
        engine,
        &db,
        &writer,
        (caption, position),
        attachments,
        &pieces,
    )
    .await;
    if queued.is_err() {
        // Kept for nothing: no message names them.
        forget_pieces(&db, &pieces).await;
    }
    queued
}

/// Seals the message with its files and puts it in the outbox.
async fn queue(
    engine: &Rc<Engine>,
    db: &Db,
    writer: &Writer,
    (caption, position): (&str, Option<Position>),
    attachments: Vec<Attachment>,
    pieces: &[PieceRef],
) -> Result<(), String> {
    let body = TextBody::with_files(&writer.0, caption, attachments)
        .map_err(|error| format!("Not sent: {error}."))?
        .at(position);
    let camp = engine.radio.camp();
    let (record, envelope, radio) = sealed(writer, &body, camp.as_deref())?;
    engine
        .outbox
        .store(engine, db, record, envelope, radio, pieces.to_vec())
        .await
        .map_err(|()| "The message with files was not saved.".to_string())
}

/// Bytes a file's description takes in a message besides its piece names, thumbnail and name
/// (key, size, kind, media type, lengths), with room to spare.
const PER_FILE_BYTES: usize = 160;

async fn forget_pieces(db: &Db, pieces: &[PieceRef]) {
    let ids: Vec<String> = pieces.iter().map(|p| p.id.clone()).collect();
    let _ = db.drop_pieces(&ids).await;
}

/// A picked file as it will be sent: a photo decoded and drawn again at the chosen size
/// (which also leaves its location and every other note of the camera behind), with a tiny
/// thumbnail; any other file as it is.
async fn prepare(draft: &Draft, size: app::PhotoSize) -> Result<Prepared, String> {
    let file = &draft.file;
    let name = clean_file_name(&file.name()).unwrap_or_else(|| "file".into());
    // "audio/webm;codecs=opus" is sent as "audio/webm".
    let media_type = file
        .type_()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if is_photo(&media_type) {
        match crate::photo::shrink(file, size.longest_side()).await {
            Ok(photo) => {
                let stem = name
                    .rsplit_once('.')
                    .map_or(name.as_str(), |(stem, _)| stem);
                let extension = if photo.media_type == "image/webp" {
                    "webp"
                } else {
                    "jpg"
                };
                return Ok(Prepared {
                    size: photo.size,
                    blob: photo.blob,
                    what: FileKind::Photo {
                        width: photo.width,
                        height: photo.height,
                    },
                    name: format!("{stem}.{extension}"),
                    media_type: photo.media_type,
                    thumbnail: photo.thumbnail,
                });
            }
            // Never sent as it is: the original may hold where it was taken.
            Err(error) => {
                return Err(format!(
                    "{name} could not be made small on this phone ({error}), so it was not sent."
                ))
            }
        }
    }
    let valid = mesh::body::is_media_type(&media_type);
    Ok(Prepared {
        blob: file.clone().into(),
        size: file.size() as u64,
        what: match draft.voice_ms {
            Some(millis) => FileKind::Voice { millis },
            None => FileKind::Document,
        },
        media_type: if valid {
            media_type
        } else {
            "application/octet-stream".into()
        },
        name,
        thumbnail: Vec::new(),
    })
}

/// Seals a prepared file piece by piece into the store (one piece in memory at a time).
async fn seal_into_store(
    db: &Db,
    room: &str,
    prepared: &Prepared,
    max: u64,
    refs: &mut Vec<PieceRef>,
) -> Result<Manifest, String> {
    let sealer = FileSealer::new(device::random_bytes(), prepared.size, max)
        .map_err(|error| format!("{} cannot be sent: {error}.", prepared.name))?;
    let mut ids = Vec::with_capacity(sealer.chunk_count());
    for index in 0..sealer.chunk_count() {
        let range = sealer.chunk_range(index);
        let plaintext = read_slice(&prepared.blob, range.start, range.end)
            .await
            .map_err(|error| format!("Could not read {}: {}", prepared.name, error_text(error)))?;
        let (id, sealed) = sealer
            .seal(index, &plaintext)
            .map_err(|error| format!("{} changed while it was read: {error}.", prepared.name))?;
        refs.push(PieceRef {
            id: id.to_string(),
            size: sealed.len() as f64,
        });
        let piece = PieceRecord {
            id: id.to_string(),
            room: room.to_string(),
            bytes: sealed,
        };
        db.put_piece(&piece).await.map_err(|error| {
            format!(
                "Could not keep {} on this device: {}",
                prepared.name, error.0
            )
        })?;
        ids.push(id);
    }
    sealer
        .manifest(ids)
        .map_err(|error| format!("{} cannot be sent: {error}.", prepared.name))
}

/// `blob.slice(start, end).arrayBuffer()`, as bytes.
async fn read_slice(blob: &JsValue, start: u64, end: u64) -> Result<Vec<u8>, JsValue> {
    let part = js::call(blob, "slice", &[(start as f64).into(), (end as f64).into()])?;
    let buffer = js::call_async(&part, "arrayBuffer", &[]).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// What an upload shows the server: this device's pass (with a join code) and the room's
/// ticket, both hex.
#[derive(Clone, Default)]
struct Pass {
    token: Option<String>,
    ticket: Option<String>,
}

/// An HTTP answer: status, `Retry-After` in seconds, body.
struct Answer {
    status: u16,
    retry_after_s: Option<u32>,
    body: Vec<u8>,
}

/// `fetch(url, {method, body, headers})`; `Err` when no answer came (offline, server away).
async fn http(
    method: &str,
    url: &str,
    body: Option<Uint8Array>,
    pass: &Pass,
) -> Result<Answer, JsValue> {
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &method.into())?;
    if method != "GET" {
        // A piece fetched is immutable and cached; an answer about uploads never is.
        Reflect::set(&init, &"cache".into(), &"no-store".into())?;
    }
    if let Some(body) = body {
        Reflect::set(&init, &"body".into(), &body)?;
    }
    let headers = Object::new();
    if let Some(token) = &pass.token {
        Reflect::set(
            &headers,
            &"Authorization".into(),
            &format!("Bearer {token}").into(),
        )?;
    }
    if let Some(ticket) = &pass.ticket {
        Reflect::set(&headers, &"FieldMesh-Room-Ticket".into(), &ticket.into())?;
    }
    Reflect::set(&init, &"headers".into(), &headers)?;
    let response = js::call_async(&js_sys::global(), "fetch", &[url.into(), init.into()]).await?;
    let status = Reflect::get(&response, &"status".into())?
        .as_f64()
        .unwrap_or(0.0) as u16;
    let headers = Reflect::get(&response, &"headers".into())?;
    let retry_after_s = js::call(&headers, "get", &["Retry-After".into()])?
        .as_string()
        .and_then(|s| s.trim().parse().ok());
    let buffer = js::call_async(&response, "arrayBuffer", &[]).await?;
    Ok(Answer {
        status,
        retry_after_s,
        body: Uint8Array::new(&buffer).to_vec(),
    })
}

/// Waits `ms` milliseconds.
async fn pause(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = js::call(
            &js_sys::global(),
            "setTimeout",
            &[resolve.into(), ms.into()],
        );
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// One pass over the outbox: each message that waits for its files gets them uploaded, in
/// the order they were written.
async fn upload_pass(engine: &Rc<Engine>) {
    let Some(db) = engine.db() else { return };
    let Ok(outbox) = db.outbox().await else {
        return;
    };
    let token = db.setting("token").await.ok().flatten();
    for entry in outbox
        .into_iter()
        .filter(|e| !e.failed && !e.pieces.is_empty())
    {
        if !engine.connection.is_ready() {
            return;
        }
        let pieces: Vec<(ChunkId, u64)> = entry
            .pieces
            .iter()
            .filter_map(|p| Some((ChunkId(mesh::hex::decode::<32>(&p.id)?), p.size as u64)))
            .collect();
        let Ok(room) = Envelope::decode(&entry.envelope).map(|e| e.room) else {
            continue;
        };
        let Some(ticket) = engine.files.ticket(engine, &db, room).await else {
            // No ticket now (the room gone from this device, or no answer): the others go
            // on; this one is tried again later.
            retry_later(engine, RETRY_MS);
            continue;
        };
        let pass = Pass {
            token: token.clone(),
            ticket: Some(mesh::hex::encode(&ticket)),
        };
        match upload(engine, &db, &entry.id, pieces, &pass).await {
            Uploaded::Done => {
                if let Err(error) = db.uploaded(&entry.id).await {
                    engine.notice(format!("Could not note an upload: {}", error.0));
                    return;
                }
                engine.outbox.request_flush(engine);
                // Large files leave the phone's store once the server has them (they are
                // fetched again when opened); photos and voice notes stay to show offline.
                if let Ok(Some(record)) = db.message(&entry.id).await {
                    let large: Vec<String> = record
                        .files()
                        .iter()
                        .filter(|f| f.file.size > KEEP_SENT_BYTES)
                        .flat_map(|f| f.file.chunks.iter().map(ChunkId::to_string))
                        .collect();
                    if !large.is_empty() {
                        let _ = db.drop_pieces(&large).await;
                    }
                }
            }
            Uploaded::Later => {
                retry_later(engine, RETRY_MS);
                return;
            }
            Uploaded::NewTicket => {
                engine.files.tickets.borrow_mut().remove(&room);
                retry_later(engine, 0);
                return;
            }
            Uploaded::Refused(reason) => {
                set_transfer(engine, &entry.id, |t| {
                    t.running = false;
                    t.error = Some(reason.clone());
                });
                if let Some(id) = mesh::hex::decode::<16>(&entry.id).map(MessageId) {
                    engine.outbox.upload_refused(engine, id);
                }
                engine.notice(format!("A file was not sent: {reason}"));
            }
        }
    }
}

enum Uploaded {
    Done,
    /// The server does not know the room ticket (it restarted, or the ticket expired).
    NewTicket,
    /// Cut off (offline, the server away, the join code wanted): the next pass resumes.
    Later,
    /// The server will not take a piece as it is.
    Refused(String),
}

type PieceFuture = Pin<Box<dyn Future<Output = (ChunkId, Result<Answer, JsValue>)>>>;

/// Uploads one message's pieces: asks which the server lacks, sends those a few at a time.
async fn upload(
    engine: &Rc<Engine>,
    db: &Db,
    message: &str,
    pieces: Vec<(ChunkId, u64)>,
    pass: &Pass,
) -> Uploaded {
    let mut upload = Upload::new(pieces);
    let mut in_flight: FuturesUnordered<PieceFuture> = FuturesUnordered::new();
    let show = |upload: &Upload, running: bool| {
        let (done, total) = upload.progress();
        set_transfer(engine, message, |t| {
            t.done = done;
            t.total = total;
            t.running = running;
            t.error = None;
        });
    };
    show(&upload, true);
    loop {
        match upload.step() {
            Step::Done => {
                show(&upload, false);
                return Uploaded::Done;
            }
            Step::Ask(ids) => {
                let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
                let answer = http(
                    "POST",
                    "/chunks/missing",
                    Some(Uint8Array::from(body.as_slice())),
                    pass,
                )
                .await;
                match answer {
                    Ok(answer) if answer.status == 200 => {
                        let missing: Vec<ChunkId> = answer
                            .body
                            .chunks_exact(32)
                            .filter_map(|c| c.try_into().ok().map(ChunkId))
                            .collect();
                        upload.on_missing(&missing);
                        show(&upload, true);
                    }
                    Ok(answer) => {
                        upload.on_ask_failed();
                        show(&upload, false);
                        return match PieceAnswer::of(
                            answer.status,
                            answer.retry_after_s,
                            &String::from_utf8_lossy(&answer.body),
                        ) {
                            PieceAnswer::Failed(reason) => Uploaded::Refused(reason),
                            PieceAnswer::Retry(ms) => {
                                retry_later(engine, ms);
                                Uploaded::Later
                            }
                            PieceAnswer::NewTicket => Uploaded::NewTicket,
                            _ => Uploaded::Later,
                        };
                    }
                    Err(_) => {
                        upload.on_ask_failed();
                        show(&upload, false);
                        return Uploaded::Later;
                    }
                }
            }
            Step::Send(ids) => {
                for id in ids {
                    let bytes =
                        match db.piece(&id.to_string()).await {
                            Ok(Some(bytes)) => bytes,
                            _ => return Uploaded::Refused(
                                "a piece of the file is no longer on this device; send it again"
                                    .into(),
                            ),
                        };
                    let pass = pass.clone();
                    in_flight.push(Box::pin(async move {
                        let url = format!("/chunks/{id}");
                        let body = Uint8Array::from(bytes.as_slice());
                        (id, http("PUT", &url, Some(body), &pass).await)
                    }));
                }
            }
            Step::Wait => {
                let Some((id, answer)) = in_flight.next().await else {
                    // Nothing in flight and nothing to do: a failure stopped it.
                    let reason = upload.failure().unwrap_or("the upload stopped").to_string();
                    show(&upload, false);
                    return Uploaded::Refused(reason);
                };
                match answer {
                    Ok(answer) => {
                        let answer = PieceAnswer::of(
                            answer.status,
                            answer.retry_after_s,
                            &String::from_utf8_lossy(&answer.body),
                        );
                        if answer == PieceAnswer::NeedsCode {
                            show(&upload, false);
                            return Uploaded::Later;
                        }
                        if answer == PieceAnswer::NewTicket {
                            show(&upload, false);
                            return Uploaded::NewTicket;
                        }
                        if let Some(ms) = upload.on_answer(id, answer) {
                            pause(ms).await;
                        }
                        show(&upload, true);
                    }
                    Err(_) => {
                        upload.on_disconnect();
                        show(&upload, false);
                        return Uploaded::Later;
                    }
                }
            }
        }
    }
}

/// Tries the uploads again after `ms` (the server asked for patience).
fn retry_later(engine: &Rc<Engine>, ms: u32) {
    let weak = Rc::downgrade(engine);
    set_timeout(
        move || {
            if let Some(engine) = weak.upgrade() {
                engine.files.request_upload(&engine);
            }
        },
        std::time::Duration::from_millis(u64::from(ms)),
    );
}

/// Fetches a file's pieces (from this device's store when it sent them, else from the
/// server, through the service worker's cache), checks and opens each, and makes the whole
/// a `File` with an address to show it by.
async fn download(
    engine: &Rc<Engine>,
    db: &Db,
    key: &str,
    file: &Attachment,
) -> Result<(JsValue, String), String> {
    let manifest = &file.file;
    let total = manifest.chunks.len() as u64;
    set_transfer(engine, key, |t| {
        t.running = true;
        t.error = None;
        t.done = 0;
        t.total = manifest.size;
    });
    let parts = Array::new();
    let mut done = 0u64;
    for (index, id) in manifest.chunks.iter().enumerate() {
        let name = id.to_string();
        let sealed = match db.piece(&name).await {
            Ok(Some(bytes)) => bytes,
            _ => {
                let answer = http("GET", &format!("/chunks/{name}"), None, &Pass::default())
                    .await
                    .map_err(|_| {
                        "Could not fetch the file: the server is not reachable. Try again when it is."
                            .to_string()
                    })?;
                match answer.status {
                    200 => answer.body,
                    404 => {
                        return Err(
                            "The server does not have this file (not yet, or not any more).".into(),
                        )
                    }
                    status => {
                        return Err(format!(
                            "Could not fetch the file (the server answered {status})."
                        ))
                    }
                }
            }
        };
        let plaintext = manifest.open(index, &sealed).map_err(|error| {
            format!("This file did not pass its check and is not shown ({error}).")
        })?;
        done += plaintext.len() as u64;
        parts.push(&Uint8Array::from(plaintext.as_slice()));
        if total > 1 {
            set_transfer(engine, key, |t| t.done = done);
        }
    }
    let made = js::new_file(&parts, &file.name, &file.media_type).map_err(error_text)?;
    let url = object_url(&made).ok_or("The browser could not show the file.")?;
    Ok((made, url))
}
