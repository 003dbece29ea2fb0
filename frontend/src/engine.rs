//! The sync engine: the bridge between this device's store (IndexedDB), the server (one
//! WebSocket) and the reactive [`ChatState`] the views read.
//!
//! Every message written goes to the outbox first, in the same transaction as its place in the
//! room. When the server is reachable the whole outbox is sent in order; each acknowledged id
//! leaves the outbox. The server stores each id once, so sending again after a reload, a crash
//! or a lost acknowledgement never shows a message twice. Received messages are stored before
//! they are shown, and the room's cursor moves in the same transaction, so after a reconnect
//! only what is missing travels.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use app::{
    ChatActions, ChatClient, ChatMessage, ChatState, Connection, Delivery, RadioLine, RosterEntry,
    Session, SyncProgress, SyncStep,
};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::body::clean_display_name;
use mesh::crypto::{seal, Draft, Identity, PublicIdentity, RoomKey};
use mesh::presence::PresenceCard;
use mesh::radio::{RadioMessage, DEFAULT_FRAME_BYTES};
use mesh::wire::MAX_HISTORY_PAGE;
use mesh::{
    ClientFrame, Envelope, ErrorCode, Kind, Member, MessageId, RadioState, RoomId, SenderId,
    ServerFrame, StoredMessage, TextBody,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::db::{Db, MessageRecord, RecordState, RoomRecord, LOCAL_ORDER_BASE};

mod radio;
use crate::{device, pwa};

/// First reconnect delay; doubles up to [`MAX_BACKOFF_MS`], with random jitter.
const MIN_BACKOFF_MS: u32 = 500;
const MAX_BACKOFF_MS: u32 = 15_000;
/// How often the engine checks the connection is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A connection silent for this long (no frame, no pong) is treated as dead.
const SILENCE_LIMIT_MS: f64 = 12_000.0;
/// Messages the list shows at first, and how many more each "load older" adds.
const WINDOW_STEP: u32 = 100;
/// A typing notice is sent at most this often, and shown this long.
const TYPING_SEND_EVERY_MS: f64 = 2_500.0;
const TYPING_SHOW_MS: f64 = 4_000.0;
/// The outbox shows progress when it holds more than this many messages.
const PROGRESS_FROM: usize = 5;

/// Makes the engine and starts it once the page has hydrated.
pub(crate) fn start() -> ChatClient {
    let state = ChatState::new();
    let engine = Rc::new(Engine {
        state,
        db: RefCell::new(None),
        inner: RefCell::new(Inner::default()),
    });
    let actions: Rc<dyn ChatActions> = Rc::new(Actions(Rc::clone(&engine)));
    // Runs after hydration: the first frame must match the server's shell.
    spawn_local(engine.init());
    ChatClient::new(state, actions)
}

struct Engine {
    state: ChatState,
    db: RefCell<Option<Rc<Db>>>,
    inner: RefCell<Inner>,
}

/// The room the person is in.
#[derive(Clone)]
struct Joined {
    id: RoomId,
    key: RoomKey,
    record: RoomRecord,
}

#[derive(Default)]
struct Inner {
    /// This device's keys (made on first start, kept in the store).
    identity: Option<Rc<Identity>>,
    sender: Option<SenderId>,
    name: String,
    joined: Option<Joined>,
    window: u32,
    socket: Option<Socket>,
    /// The server sent its welcome on the current socket.
    online: bool,
    backoff_ms: u32,
    reconnect_scheduled: bool,
    last_heard_ms: f64,
    /// The server lets this device read and send on the current socket.
    unlocked: bool,
    /// The current server's store id (hex), from its welcome.
    store_id: String,
    /// Acknowledged ids whose outbox entries are not deleted yet: never sent again.
    acked: HashSet<String>,
    /// Outbox ids already sent on the current socket.
    sent: HashSet<String>,
    /// An outbox flush is running; `flush_again` asks it for one more pass.
    flushing: bool,
    flush_again: bool,
    /// Messages in the outbox and not failed.
    queued: usize,
    /// Size of the outbox when the current drain began, for the progress bar.
    drain_total: usize,
    /// Received in the current catch-up.
    catch_up_count: usize,
    // Waiting for the next store transaction:
    acks: Vec<(String, f64)>,
    refused: Vec<String>,
    received: Vec<MessageRecord>,
    room_dirty: bool,
    persisting: bool,
    // Presence and typing:
    members: Vec<Member>,
    typing: HashMap<SenderId, f64>,
    last_typing_sent_ms: f64,
    /// People this device has seen, by public key, and whether they were verified.
    contacts: Vec<Contact>,
    /// Private-conversation rooms with people seen, and whose they are (sender id hex).
    direct_rooms: HashMap<RoomId, String>,
    heartbeats: u32,
    /// This browser's own radio (Web Serial).
    radio: radio::RadioSide,
}

/// Someone this device has seen in a room.
struct Contact {
    /// Their sender id (public signing key), hex.
    id: String,
    /// Their X25519 public key, hex (for the private-conversation key).
    agreement: String,
    name: String,
    verified: bool,
}

impl Contact {
    fn public(&self) -> Option<PublicIdentity> {
        Some(PublicIdentity {
            signing: unhex(&self.id)?,
            agreement: unhex(&self.agreement)?,
        })
    }
}

fn parse_contacts(text: &str) -> Vec<Contact> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, '\t');
            let id = parts.next()?.to_string();
            let verified = parts.next()? == "1";
            let agreement = parts.next()?.to_string();
            let name = parts.next()?.to_string();
            (id.len() == 64).then_some(Contact {
                id,
                agreement,
                name,
                verified,
            })
        })
        .collect()
}

/// An open WebSocket and the callbacks it holds (dropped with it).
struct Socket {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

/// Marks a moment for benchmarks and the browser's performance tools.
fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// Opens a stored message with the room key. `None` when it does not verify or decrypt: such
/// a message is never shown, and never as from its claimed sender.
fn record_of(stored: &StoredMessage, key: &RoomKey, room_hex: &str) -> Option<MessageRecord> {
    if stored.envelope.kind == Kind::Radio {
        return radio_record_of(stored, key, room_hex);
    }
    let plaintext = match stored.envelope.open(key) {
        Ok(plaintext) => plaintext,
        Err(error) => {
            leptos::logging::warn!("dropping message {}: {error}", stored.envelope.id);
            return None;
        }
    };
    let (author, text) = match stored.envelope.kind {
        Kind::Text => match TextBody::decode(&plaintext) {
            Ok(body) => (body.author, body.text),
            Err(_) => ("unknown".into(), "(this message could not be read)".into()),
        },
        Kind::Radio => return None,
    };
    let sender = stored.envelope.sender.to_string();
    Some(stored_record(
        stored,
        room_hex,
        sender,
        author,
        text,
        RecordState::Stored,
    ))
}

/// The device's record of a stored message, once opened.
fn stored_record(
    stored: &StoredMessage,
    room_hex: &str,
    sender: String,
    author: String,
    text: String,
    state: RecordState,
) -> MessageRecord {
    MessageRecord {
        id: stored.envelope.id.to_string(),
        room: room_hex.to_string(),
        order: stored.seq as f64,
        seq: Some(stored.seq as f64),
        created_at: stored.envelope.created_at_ms as f64,
        sender,
        author,
        text,
        state,
    }
}

/// Opens a message that came over the radio: sealed with the room key, not signed. A message
/// this room's key does not open (another room with the same radio tag) is not shown.
fn radio_record_of(stored: &StoredMessage, key: &RoomKey, room_hex: &str) -> Option<MessageRecord> {
    let opened = RadioMessage::from_envelope(&stored.envelope)?
        .open(key)
        .ok()?;
    let author = clean_display_name(&opened.author).unwrap_or_else(|| "someone".into());
    Some(stored_record(
        stored,
        room_hex,
        RADIO_SENDER.to_string(),
        author,
        opened.text,
        RecordState::Radio,
    ))
}

/// The sender shown for radio messages: they carry no signing key.
const RADIO_SENDER: &str = "radio";

use mesh::hex::{decode as unhex, encode as hex};

/// Opens a member's presence card with the current room's key.
fn card_of(joined: &Joined, member: &Member) -> Option<PresenceCard> {
    PresenceCard::open(&joined.key, member)
}

impl Engine {
    fn db(&self) -> Option<Rc<Db>> {
        self.db.borrow().clone()
    }

    fn notice(&self, text: impl Into<String>) {
        self.state.notice.set(Some(text.into()));
    }

    async fn init(self: Rc<Self>) {
        let db = match Db::open().await {
            Ok(db) => Rc::new(db),
            Err(error) => {
                return self.notice(format!(
                    "This browser will not let FieldMesh keep messages on the device ({}). \
                     Leave private browsing or free some space, then reload.",
                    error.0
                ));
            }
        };
        *self.db.borrow_mut() = Some(db.clone());
        spawn_local(pwa::persist_storage());
        spawn_local(pwa::register(self.state));

        // The device's keys: made from 64 random bytes on first start and kept on the device.
        let stored_seed = db.setting("identity").await.ok().flatten();
        let identity = match stored_seed.as_deref().and_then(unhex::<64>) {
            Some(seed) => Identity::from_seed(&seed),
            None => {
                let identity = Identity::from_seed(&device::random_bytes());
                let seed = hex(identity.to_seed().as_slice());
                if let Err(error) = db.set_setting("identity", Some(&seed)).await {
                    self.notice(format!("Could not save this device's keys: {}", error.0));
                }
                identity
            }
        };
        let sender = identity.sender();
        self.state.own_code.set(identity.public().safety_code());
        let name = db.setting("name").await.ok().flatten().unwrap_or_default();
        let contacts = parse_contacts(
            &db.setting("contacts")
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
        let room = db.setting("room").await.ok().flatten();
        let queued = db
            .outbox()
            .await
            .map(|o| o.iter().filter(|e| !e.failed).count())
            .unwrap_or(0);
        {
            let mut inner = self.inner.borrow_mut();
            inner.identity = Some(Rc::new(identity));
            inner.contacts = contacts;
            inner.sender = Some(sender);
            inner.name = name.clone();
            inner.queued = queued;
        }
        self.state.queued.set(queued);
        self.state.last_name.set(name.clone());
        let record = match room {
            Some(room) => db.room(&room).await.ok().flatten(),
            None => None,
        };
        if let (false, Some(record)) = (name.is_empty(), record) {
            if let Some(key) = unhex::<32>(&record.key).map(RoomKey::from_bytes) {
                self.enter_room(&name, &record.name, key, record.public, record.direct)
                    .await;
            }
        }
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::set(&window, &"__fieldmeshReady".into(), &true.into());
        }
        mark("fieldmesh:ready");

        self.connect();
        self.radio_init();
        let weak = Rc::downgrade(&self);
        let _ = set_interval_with_handle(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.heartbeat();
                }
            },
            HEARTBEAT,
        );
        // Come back at once when the phone regains its network or the app its screen.
        for event in ["online", "visibilitychange", "focus"] {
            let weak = Rc::downgrade(&self);
            let handle = window_event_listener_untyped(event, move |_| {
                if let Some(engine) = weak.upgrade() {
                    engine.connect_now();
                }
            });
            std::mem::forget(handle);
        }
        // The device says its network is gone: do not wait for the heartbeat to notice.
        let weak = Rc::downgrade(&self);
        let handle = window_event_listener_untyped("offline", move |_| {
            if let Some(engine) = weak.upgrade() {
                if engine.inner.borrow().socket.is_some() {
                    engine.on_disconnect();
                }
            }
        });
        std::mem::forget(handle);
    }

    async fn enter_room(
        self: &Rc<Self>,
        name: &str,
        room_name: &str,
        key: RoomKey,
        public: bool,
        direct: bool,
    ) {
        let Some(db) = self.db() else { return };
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
            },
        };
        if let Err(error) = db.set_setting("room", Some(&hex_id)).await {
            self.notice(format!("Could not remember the room: {}", error.0));
        }
        let invite = app::invite::fragment(&record.name, &record.key);
        let previous = self
            .inner
            .borrow()
            .joined
            .as_ref()
            .map(|j| j.id)
            .filter(|room| *room != id);
        if let Some(room) = previous {
            self.send_frame(&ClientFrame::Leave { room });
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.name = name.to_string();
            inner.joined = Some(Joined {
                id,
                key,
                record: record.clone(),
            });
            inner.window = WINDOW_STEP;
            inner.members.clear();
            inner.typing.clear();
        }
        if let Err(error) = db.put_room(&record).await {
            self.notice(format!("Could not save the room: {}", error.0));
        }
        self.state.members.set(Vec::new());
        self.state.typing.set(Vec::new());
        self.state.session.set(Some(Session {
            name: name.to_string(),
            room: record.name.clone(),
            invite,
            public: record.public,
            direct: record.direct,
        }));
        self.refresh_window().await;
        mark("fieldmesh:room-rendered");
        self.send_join();
    }

    /// Shows the newest messages of the room from the store.
    async fn refresh_window(&self) {
        let (Some(db), Some((room, window, server_has_older, own))) = (
            self.db(),
            self.inner.borrow().joined.as_ref().map(|j| {
                let inner = self.inner.borrow();
                (
                    j.record.id.clone(),
                    inner.window,
                    j.record.server_has_older,
                    inner.sender.map(|s| s.to_string()),
                )
            }),
        ) else {
            return;
        };
        match db.newest(&room, window).await {
            Ok((records, more_here)) => {
                // The person may have left or switched rooms while the store answered.
                if self.inner.borrow().joined.as_ref().map(|j| &j.record.id) != Some(&room) {
                    return;
                }
                let mut messages: Vec<ChatMessage> = records
                    .iter()
                    .map(|r| chat_message(r, own.as_deref()))
                    .collect();
                self.label_authors(&mut messages);
                self.state.messages.set(messages);
                self.state.has_older.set(more_here || server_has_older);
            }
            Err(error) => self.notice(format!("Could not read messages: {}", error.0)),
        }
    }

    fn connect_now(self: &Rc<Self>) {
        let online = self.inner.borrow().online;
        if online {
            self.heartbeat();
        } else {
            self.inner.borrow_mut().backoff_ms = 0;
            self.connect();
        }
    }

    fn connect(self: &Rc<Self>) {
        let mut inner = self.inner.borrow_mut();
        inner.reconnect_scheduled = false;
        if inner.socket.is_some() {
            return;
        }
        self.state.connection.set(Connection::Connecting);
        let Some(ws) = socket_url().and_then(|url| WebSocket::new(&url).ok()) else {
            drop(inner);
            return self.schedule_reconnect();
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let (Some(engine), Ok(buffer)) = (
                weak.upgrade(),
                event.data().dyn_into::<js_sys::ArrayBuffer>(),
            ) {
                engine.on_bytes(&js_sys::Uint8Array::new(&buffer).to_vec());
            }
        });
        let weak = Rc::downgrade(self);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            if let Some(engine) = weak.upgrade() {
                engine.on_disconnect();
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        inner.last_heard_ms = js_sys::Date::now();
        inner.socket = Some(Socket {
            ws,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn on_disconnect(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.socket = None;
            inner.online = false;
            inner.unlocked = false;
            inner.sent.clear();
            inner.members.clear();
            inner.typing.clear();
        }
        self.radio_on_disconnect();
        self.state.connection.set(Connection::Offline);
        self.state.progress.set(None);
        self.state.members.set(Vec::new());
        self.state.typing.set(Vec::new());
        self.schedule_reconnect();
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = {
            let mut inner = self.inner.borrow_mut();
            if inner.reconnect_scheduled {
                return;
            }
            inner.reconnect_scheduled = true;
            inner.backoff_ms = (inner.backoff_ms.max(MIN_BACKOFF_MS / 2) * 2).min(MAX_BACKOFF_MS);
            // Jitter between half and all of the backoff, so many phones coming back after an
            // outage do not reconnect in lockstep.
            let jitter = u32::from_le_bytes(device::random_bytes()) % (inner.backoff_ms / 2 + 1);
            inner.backoff_ms / 2 + jitter
        };
        let weak = Rc::downgrade(self);
        set_timeout(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.connect();
                }
            },
            Duration::from_millis(u64::from(delay)),
        );
    }

    fn heartbeat(self: &Rc<Self>) {
        let (online, silent_for) = {
            let inner = self.inner.borrow();
            (inner.online, js_sys::Date::now() - inner.last_heard_ms)
        };
        if online && silent_for > SILENCE_LIMIT_MS {
            // The server or the Wi-Fi vanished without closing the socket: start over.
            self.on_disconnect();
            return;
        }
        self.send_frame(&ClientFrame::Ping {
            nonce: js_sys::Date::now() as u64,
        });
        self.expire_typing();
        let probe = {
            let mut inner = self.inner.borrow_mut();
            inner.heartbeats = inner.heartbeats.wrapping_add(1);
            inner.heartbeats % 3 == 0
        };
        if probe {
            self.check_direct();
        }
    }

    /// Sends a frame if the server is there. Anything that must arrive is in the outbox and
    /// goes again after the next welcome.
    fn send_frame(&self, frame: &ClientFrame) -> bool {
        let inner = self.inner.borrow();
        let (Some(socket), true) = (&inner.socket, inner.online) else {
            return false;
        };
        match frame.encode() {
            Ok(bytes) => socket.ws.send_with_u8_array(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    fn send_join(&self) {
        {
            // A cursor counts in one server store: after the server's database was replaced
            // (or this is another server), start the room over so nothing is skipped.
            let inner = &mut *self.inner.borrow_mut();
            if let Some(joined) = inner.joined.as_mut() {
                if !inner.store_id.is_empty() && joined.record.server != inner.store_id {
                    joined.record.cursor = None;
                    joined.record.server = inner.store_id.clone();
                    inner.room_dirty = true;
                }
            }
        }
        let frame = {
            let inner = self.inner.borrow();
            let (Some(joined), Some(identity), true) =
                (&inner.joined, &inner.identity, inner.unlocked)
            else {
                return;
            };
            // The card is sealed with the room key: the server relays it without reading it.
            let Ok(member) =
                PresenceCard::seal(identity, &joined.key, &inner.name, device::random_bytes())
            else {
                return;
            };
            ClientFrame::Join {
                room: joined.id,
                after_seq: joined.record.cursor.map(|c| c as u64),
                member,
            }
        };
        self.inner.borrow_mut().catch_up_count = 0;
        self.send_frame(&frame);
    }

    fn on_bytes(self: &Rc<Self>, bytes: &[u8]) {
        self.inner.borrow_mut().last_heard_ms = js_sys::Date::now();
        let Ok(frame) = ServerFrame::decode(bytes) else {
            leptos::logging::warn!("ignoring a frame from the server that does not decode");
            return;
        };
        match frame {
            ServerFrame::Welcome {
                code_required,
                store_id,
                ..
            } => {
                self.inner.borrow_mut().store_id = hex(&store_id);
                self.on_welcome(code_required)
            }
            ServerFrame::History {
                room,
                messages,
                has_more,
            } => {
                let changed = |joined: &mut Joined| {
                    joined.record.server_has_older = has_more;
                    // The first page of a room new to this device starts its cursor: from
                    // now on only what comes after it is missing.
                    if joined.record.cursor.is_none() {
                        let newest = messages.iter().map(|m| m.seq as f64).fold(0.0, f64::max);
                        joined.record.cursor = Some(newest);
                    }
                };
                let current = self.inner.borrow().joined.as_ref().map(|j| j.id);
                if current != Some(room) && self.inner.borrow().direct_rooms.contains_key(&room) {
                    return self.on_direct_probe(room, messages.into_iter().last());
                }
                if let Some(joined) = self.joined_mut(room, changed) {
                    self.receive(&joined, &messages);
                }
                self.state.loading_older.set(false);
            }
            ServerFrame::CatchUp {
                room,
                messages,
                done,
            } => {
                if let Some(joined) = self.joined_mut(room, |_| {}) {
                    let count = {
                        let mut inner = self.inner.borrow_mut();
                        inner.catch_up_count += messages.len();
                        inner.catch_up_count
                    };
                    self.state.progress.set((!done).then_some(SyncProgress {
                        what: SyncStep::Receiving,
                        done: count,
                        total: 0,
                    }));
                    self.receive(&joined, &messages);
                }
            }
            ServerFrame::Message(message) => {
                if let Some(joined) = self.joined_mut(message.envelope.room, |_| {}) {
                    self.receive(&joined, std::slice::from_ref(&message));
                }
            }
            ServerFrame::Ack { id, seq, .. } => {
                let id = id.to_string();
                let drained = {
                    let mut inner = self.inner.borrow_mut();
                    if !inner.sent.remove(&id) {
                        return;
                    }
                    inner.queued = inner.queued.saturating_sub(1);
                    inner.acks.push((id.clone(), seq as f64));
                    inner.acked.insert(id.clone());
                    inner.queued == 0
                };
                // The list shows the new state after the store has it (in one batch with the
                // other acknowledgements that arrive meanwhile).
                self.show_outbox_progress();
                if drained {
                    mark("fieldmesh:outbox-drained");
                }
                self.schedule_persist();
            }
            ServerFrame::Error {
                code,
                detail,
                id,
                retry_after_ms,
            } => self.on_error(code, detail, id, retry_after_ms),
            ServerFrame::Access { token } => {
                let engine = Rc::clone(self);
                spawn_local(async move {
                    if let Some(db) = engine.db() {
                        if let Err(error) = db.set_setting("token", Some(&hex(&token))).await {
                            engine.notice(format!(
                                "Could not remember this device's pass: {}",
                                error.0
                            ));
                        }
                    }
                });
                self.on_unlocked();
            }
            ServerFrame::Presence { room, members } => {
                if self.joined_mut(room, |_| {}).is_some() {
                    self.inner.borrow_mut().members = members;
                    self.show_members();
                }
            }
            ServerFrame::Typing { room, sender } => {
                if self.joined_mut(room, |_| {}).is_some() {
                    self.inner
                        .borrow_mut()
                        .typing
                        .insert(sender, js_sys::Date::now() + TYPING_SHOW_MS);
                    self.expire_typing();
                    let weak = Rc::downgrade(self);
                    set_timeout(
                        move || {
                            if let Some(engine) = weak.upgrade() {
                                engine.expire_typing();
                            }
                        },
                        Duration::from_millis(TYPING_SHOW_MS as u64 + 50),
                    );
                }
            }
            ServerFrame::Pong { .. } => {}
            ServerFrame::Radio(status) => {
                let line = (status.state != RadioState::Off).then(|| RadioLine {
                    ready: status.state == RadioState::Ready,
                    text: status.detail,
                });
                self.state.radio.set(line);
            }
            ServerFrame::Lending { active, detail } => self.on_lending(active, detail),
            ServerFrame::RadioFrame { frame } => self.on_radio_frame(frame),
            ServerFrame::Relayed { id, .. } => self.mark_relayed(id.to_string()),
        }
    }

    /// Applies `change` to the current room when `room` is it, returning the updated room.
    fn joined_mut(&self, room: RoomId, change: impl FnOnce(&mut Joined)) -> Option<Joined> {
        let mut inner = self.inner.borrow_mut();
        let joined = inner.joined.as_mut().filter(|j| j.id == room)?;
        change(joined);
        Some(joined.clone())
    }

    /// Queues received messages for the store and moves the cursor past them.
    fn receive(self: &Rc<Self>, joined: &Joined, messages: &[StoredMessage]) {
        {
            let mut inner = self.inner.borrow_mut();
            let records = messages
                .iter()
                .filter_map(|m| record_of(m, &joined.key, &joined.record.id));
            inner.received.extend(records);
            if let Some(current) = inner.joined.as_mut() {
                let newest = messages
                    .iter()
                    .map(|m| m.seq as f64)
                    .fold(current.record.cursor, |c, seq| {
                        Some(c.map_or(seq, |c| c.max(seq)))
                    });
                current.record.cursor = newest;
            }
            inner.room_dirty = true;
        }
        self.schedule_persist();
    }

    /// Writes what arrived to the store, one transaction at a time, gathering whatever arrives
    /// meanwhile into the next; then refreshes the list.
    fn schedule_persist(self: &Rc<Self>) {
        if std::mem::replace(&mut self.inner.borrow_mut().persisting, true) {
            return;
        }
        let engine = Rc::clone(self);
        spawn_local(async move {
            loop {
                let (acks, refused, received, room) = {
                    let mut inner = engine.inner.borrow_mut();
                    let room = std::mem::take(&mut inner.room_dirty)
                        .then(|| inner.joined.as_ref().map(|j| j.record.clone()))
                        .flatten();
                    (
                        std::mem::take(&mut inner.acks),
                        std::mem::take(&mut inner.refused),
                        std::mem::take(&mut inner.received),
                        room,
                    )
                };
                if acks.is_empty() && refused.is_empty() && received.is_empty() && room.is_none() {
                    break;
                }
                let Some(db) = engine.db() else { break };
                match db.apply(&acks, &refused, &received, room.as_slice()).await {
                    Ok(()) => {
                        // Their outbox entries are gone now: nothing left to guard.
                        let mut inner = engine.inner.borrow_mut();
                        for (id, _) in &acks {
                            inner.acked.remove(id);
                        }
                    }
                    Err(error) => engine.notice(format!(
                        "Could not save messages on this device: {}",
                        error.0
                    )),
                }
                if !received.is_empty() || !refused.is_empty() || !acks.is_empty() {
                    engine.refresh_window().await;
                }
            }
            engine.inner.borrow_mut().persisting = false;
        });
    }

    fn on_welcome(self: &Rc<Self>, code_required: bool) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.online = true;
            inner.unlocked = false;
            inner.backoff_ms = 0;
            inner.sent.clear();
        }
        if !code_required {
            return self.on_unlocked();
        }
        // A device that unlocked before shows its pass; otherwise the person enters the code.
        let engine = Rc::clone(self);
        spawn_local(async move {
            let token = match engine.db() {
                Some(db) => db.setting("token").await.ok().flatten(),
                None => None,
            };
            match token.as_deref().and_then(unhex::<32>) {
                Some(token) => {
                    engine.send_frame(&ClientFrame::Authenticate { token });
                }
                None => engine.ask_for_code(None),
            }
        });
    }

    fn ask_for_code(&self, error: Option<String>) {
        self.state.connection.set(Connection::Locked);
        self.state.code_needed.set(true);
        self.state.code_error.set(error);
    }

    /// The server lets this device read and send: join the room and send the outbox.
    fn on_unlocked(self: &Rc<Self>) {
        self.inner.borrow_mut().unlocked = true;
        self.state.code_needed.set(false);
        self.state.code_error.set(None);
        mark("fieldmesh:online");
        self.state.connection.set(Connection::Online);
        self.send_join();
        self.request_flush();
        self.radio_on_online();
    }
    /// Sends the outbox, in order, when connected. Every path that adds to the outbox comes
    /// here, so a new message never overtakes older ones still waiting.
    fn request_flush(self: &Rc<Self>) {
        let mut inner = self.inner.borrow_mut();
        if !inner.online || !inner.unlocked {
            return;
        }
        if inner.flushing {
            inner.flush_again = true;
            return;
        }
        inner.flushing = true;
        drop(inner);
        spawn_local(Rc::clone(self).flush_outbox());
    }

    async fn flush_outbox(self: Rc<Self>) {
        loop {
            self.send_outbox_once().await;
            let mut inner = self.inner.borrow_mut();
            if !std::mem::take(&mut inner.flush_again) {
                inner.flushing = false;
                return;
            }
        }
    }

    async fn send_outbox_once(&self) {
        let Some(db) = self.db() else { return };
        let outbox = match db.outbox().await {
            Ok(outbox) => outbox,
            Err(error) => return self.notice(format!("Could not read the outbox: {}", error.0)),
        };
        let waiting = {
            let inner = self.inner.borrow();
            outbox
                .iter()
                .filter(|e| !e.failed && !inner.acked.contains(&e.id))
                .count()
        };
        {
            let mut inner = self.inner.borrow_mut();
            inner.queued = waiting;
            if inner.drain_total < waiting || inner.sent.is_empty() {
                inner.drain_total = waiting;
            }
        }
        self.state.queued.set(waiting);
        self.show_outbox_progress();
        for entry in outbox.into_iter().filter(|e| !e.failed) {
            if !self.inner.borrow().acked.contains(&entry.id) {
                self.send_queued(&entry.id, &entry.envelope, &entry.radio, entry.heard);
            }
        }
    }

    fn send_queued(&self, id: &str, envelope: &[u8], radio: &[u8], heard: bool) {
        if self.inner.borrow().sent.contains(id) {
            return;
        }
        let Ok(envelope) = Envelope::decode(envelope) else {
            leptos::logging::warn!("an outbox entry does not decode; leaving it");
            return;
        };
        let (room, message) = (envelope.room, envelope.id);
        if heard {
            // Heard over this device's radio while no server was reachable: upload it.
            if self.send_frame(&ClientFrame::RadioHeard(envelope)) {
                self.inner.borrow_mut().sent.insert(id.to_string());
            }
            return;
        }
        if self.send_frame(&ClientFrame::Publish(envelope)) {
            self.inner.borrow_mut().sent.insert(id.to_string());
            // A server without a radio ignores this; one with a radio carries it to other
            // camps (it never sees the text: the radio form is sealed here).
            if !radio.is_empty() {
                self.send_frame(&ClientFrame::SendRadio {
                    room,
                    id: message,
                    payload: radio.to_vec(),
                });
            }
        }
    }

    fn show_outbox_progress(&self) {
        let (queued, total) = {
            let inner = self.inner.borrow();
            (inner.queued, inner.drain_total.max(inner.queued))
        };
        self.state.queued.set(queued);
        let showing_receive = self
            .state
            .progress
            .with_untracked(|p| p.is_some_and(|p| p.what == SyncStep::Receiving));
        if showing_receive {
            return;
        }
        self.state.progress.set(
            (queued > 0 && total > PROGRESS_FROM).then_some(SyncProgress {
                what: SyncStep::Sending,
                done: total - queued,
                total,
            }),
        );
    }

    fn on_error(
        self: &Rc<Self>,
        code: ErrorCode,
        detail: String,
        id: Option<MessageId>,
        retry_after_ms: Option<u32>,
    ) {
        let retry_seconds = retry_after_ms.map_or(1, |ms| ms.div_ceil(1000).max(1));
        let Some(id) = id else {
            return match code {
                ErrorCode::WrongCode => {
                    let engine = Rc::clone(self);
                    // A pass from before a code change no longer works: forget it.
                    spawn_local(async move {
                        if let Some(db) = engine.db() {
                            let _ = db.set_setting("token", None).await;
                        }
                    });
                    self.ask_for_code(Some(
                        "That is not the join code. Ask the operator of this FieldMesh.".into(),
                    ));
                }
                ErrorCode::RateLimited if self.state.code_needed.get_untracked() => self
                    .ask_for_code(Some(format!(
                        "Too many tries. Wait {retry_seconds} s, then enter the code again."
                    ))),
                ErrorCode::CodeRequired => self.ask_for_code(None),
                _ => self.notice(format!("The server refused: {detail}")),
            };
        };
        let id = id.to_string();
        {
            let mut inner = self.inner.borrow_mut();
            if !inner.sent.remove(&id) {
                return;
            }
            if matches!(
                code,
                ErrorCode::Internal | ErrorCode::RateLimited | ErrorCode::CodeRequired
            ) {
                // Not the message's fault: it stays queued and goes again after a pause.
                drop(inner);
                let weak = Rc::downgrade(self);
                set_timeout(
                    move || {
                        if let Some(engine) = weak.upgrade() {
                            engine.request_flush();
                        }
                    },
                    Duration::from_millis(u64::from(retry_after_ms.unwrap_or(2_000))),
                );
                if code == ErrorCode::Internal {
                    self.notice(format!("Not stored yet: {detail}"));
                }
                return;
            }
            inner.queued = inner.queued.saturating_sub(1);
            inner.refused.push(id.clone());
        }
        self.update_message(&id, |m| m.delivery = Delivery::Failed);
        self.show_outbox_progress();
        self.notice(format!("The server refused a message: {detail}"));
        self.schedule_persist();
    }

    fn show_members(&self) {
        let mut names = Vec::new();
        let mut roster = Vec::new();
        let mut warning = None;
        let mut contacts_changed = false;
        let mut agreement_changed = false;
        {
            let inner = &mut *self.inner.borrow_mut();
            let mut seen = HashSet::new();
            for member in inner.members.iter().filter(|m| seen.insert(m.sender)) {
                let card = inner
                    .joined
                    .as_ref()
                    .and_then(|joined| card_of(joined, member));
                let you = Some(member.sender) == inner.sender;
                let Some(card) = card else {
                    names.push("someone unknown".to_string());
                    continue;
                };
                let id = member.sender.to_string();
                // Trust on first use, loudly flagged on change: a name seen before with other
                // keys may be someone else using that name.
                let keys_changed = !you
                    && inner
                        .contacts
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(&card.name) && c.id != id);
                let agreement = hex(&card.identity.agreement);
                let verified = match inner.contacts.iter_mut().find(|c| c.id == id) {
                    Some(contact) => {
                        if contact.agreement != agreement {
                            // Same signing key, new agreement key (a reinstall keeps neither, so
                            // this is odd): verify again before private messages.
                            contact.verified = false;
                            agreement_changed = true;
                        }
                        if contact.name != card.name || contact.agreement != agreement {
                            contact.name = card.name.clone();
                            contact.agreement = agreement;
                            contacts_changed = true;
                        }
                        contact.verified
                    }
                    None => {
                        if !you {
                            inner.contacts.push(Contact {
                                id: id.clone(),
                                agreement,
                                name: card.name.clone(),
                                verified: false,
                            });
                            contacts_changed = true;
                        }
                        false
                    }
                };
                // Where this person's private conversation with us lives, to look for news.
                if let (false, Some(identity)) = (you, inner.identity.as_ref()) {
                    if let Some(key) = identity.dm_key(&card.identity) {
                        inner.direct_rooms.insert(key.room_id(), id.clone());
                    }
                }
                if std::mem::take(&mut agreement_changed) {
                    warning = Some(format!(
                        "⚠ {} shows a new key for private messages. Compare safety codes again \
                         before writing privately.",
                        card.name
                    ));
                }
                if keys_changed && !verified {
                    warning = Some(format!(
                        "⚠ {0} now has different keys than before. If {0} did not get a new phone or \
                         reinstall, someone may be pretending to be {0}: compare safety codes first.",
                        card.name
                    ));
                }
                names.push(if you {
                    format!("{} (you)", card.name)
                } else {
                    card.name.clone()
                });
                roster.push(RosterEntry {
                    id,
                    name: card.name.clone(),
                    code: card.identity.safety_code(),
                    verified,
                    keys_changed: keys_changed && !verified,
                    you,
                });
            }
        }
        self.state.members.set(names);
        self.state.roster.set(roster);
        if warning.is_some() {
            self.state.key_warning.set(warning);
        }
        if contacts_changed {
            self.save_contacts();
            let mut messages = self.state.messages.get_untracked();
            self.label_authors(&mut messages);
            self.state.messages.set(messages);
        }
        self.check_direct();
    }

    /// Asks the server for the newest message of each private conversation with the people
    /// around, to tell the person when someone wrote to them privately.
    fn check_direct(&self) {
        let rooms: Vec<RoomId> = {
            let inner = self.inner.borrow();
            let current = inner.joined.as_ref().map(|j| j.id);
            inner
                .direct_rooms
                .keys()
                .copied()
                .filter(|room| Some(*room) != current)
                .collect()
        };
        for room in rooms {
            self.send_frame(&ClientFrame::History {
                room,
                before_seq: u64::MAX,
                limit: 1,
            });
        }
    }

    /// The answer to [`Engine::check_direct`] for one conversation.
    fn on_direct_probe(self: &Rc<Self>, room: RoomId, newest: Option<StoredMessage>) {
        let peer = self.inner.borrow().direct_rooms.get(&room).cloned();
        let (Some(message), Some(peer)) = (newest, peer) else {
            return;
        };
        if Some(message.envelope.sender) == self.inner.borrow().sender {
            return;
        }
        let name = self
            .inner
            .borrow()
            .contacts
            .iter()
            .find(|c| c.id == peer)
            .map(|c| c.name.clone());
        let engine = Rc::clone(self);
        spawn_local(async move {
            let Some(db) = engine.db() else { return };
            // Already read up to there on this device?
            let read_up_to = db
                .room(&room.to_string())
                .await
                .ok()
                .flatten()
                .and_then(|r| r.cursor);
            if read_up_to.is_none_or(|cursor| cursor < message.seq as f64) {
                engine
                    .state
                    .direct_alert
                    .set(Some((peer, name.unwrap_or_else(|| "Someone".into()))));
            }
        });
    }

    /// The name in a message is whatever its writer typed; show instead the name the sender's
    /// signed presence card gave, so nobody can post as someone else.
    fn label_authors(&self, messages: &mut [ChatMessage]) {
        let inner = self.inner.borrow();
        for message in messages.iter_mut().filter(|m| !m.own) {
            let typed = message
                .author
                .trim_end_matches(" (unconfirmed)")
                .to_string();
            message.author = match inner.contacts.iter().find(|c| c.id == message.sender) {
                Some(contact) => contact.name.clone(),
                None => format!("{typed} (unconfirmed)"),
            };
        }
    }

    fn save_contacts(&self) {
        let text: String = self
            .inner
            .borrow()
            .contacts
            .iter()
            .map(|c| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    c.id,
                    u8::from(c.verified),
                    c.agreement,
                    c.name
                )
            })
            .collect();
        if let Some(db) = self.db() {
            spawn_local(async move {
                let _ = db.set_setting("contacts", Some(&text)).await;
            });
        }
    }

    fn expire_typing(&self) {
        let now = js_sys::Date::now();
        let inner = &mut *self.inner.borrow_mut();
        inner.typing.retain(|_, until| *until > now);
        let names = inner
            .typing
            .keys()
            .filter_map(|sender| inner.members.iter().find(|m| m.sender == *sender))
            .filter_map(|m| inner.joined.as_ref().and_then(|joined| card_of(joined, m)))
            .map(|card| card.name)
            .collect::<Vec<_>>();
        if self.state.typing.with_untracked(|shown| *shown != names) {
            self.state.typing.set(names);
        }
    }

    /// Shows and keeps an own message as relayed by a radio (the server's or this page's).
    fn mark_relayed(&self, id: String) {
        self.update_message(&id, |m| m.delivery = Delivery::Relayed);
        if let Some(db) = self.db() {
            spawn_local(async move {
                if let Err(error) = db.mark_relayed(&id).await {
                    leptos::logging::warn!("could not mark {id} relayed: {}", error.0);
                }
            });
        }
    }

    fn update_message(&self, id: &str, change: impl FnOnce(&mut ChatMessage)) {
        self.state.messages.update(|list| {
            if let Some(message) = list.iter_mut().find(|m| m.id == id) {
                change(message);
            }
        });
    }
}

fn chat_message(record: &MessageRecord, own: Option<&str>) -> ChatMessage {
    ChatMessage {
        id: record.id.clone(),
        author: record.author.clone(),
        sender: record.sender.clone(),
        text: record.text.clone(),
        time: device::format_time(record.created_at as u64),
        seq: record.seq.map(|s| s as u64),
        created_at_ms: record.created_at as u64,
        own: own == Some(record.sender.as_str()),
        delivery: match record.state {
            RecordState::Queued => Delivery::Queued,
            RecordState::Stored => Delivery::Stored,
            RecordState::Failed => Delivery::Failed,
            RecordState::Relayed => Delivery::Relayed,
            RecordState::Radio => Delivery::ViaRadio,
        },
    }
}

/// The actions the views call, backed by the engine.
struct Actions(Rc<Engine>);

impl std::ops::Deref for Actions {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.0
    }
}

impl ChatActions for Actions {
    fn join(&self, name: &str, room: &str) -> Result<(), String> {
        let name = clean_display_name(name)
            .ok_or_else(|| "Choose a display name of 1 to 40 characters.".to_string())?;
        let room_name = room.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars = room_name.chars().count();
        if chars == 0 || chars > mesh::envelope::MAX_ROOM_NAME_CHARS {
            return Err("Choose a room name of 1 to 64 characters.".into());
        }
        let Some(db) = self.db() else {
            return Err("This browser cannot keep messages on the device; see the notice.".into());
        };
        // The invite this page was opened with, if it names this room.
        let location = web_sys::window().map(|w| w.location());
        let invite = location
            .as_ref()
            .and_then(|l| l.hash().ok())
            .as_deref()
            .and_then(app::invite::parse)
            .filter(|invite| invite.room == room_name);
        let engine = Rc::clone(&self.0);
        spawn_local(async move {
            if let Err(error) = db.set_setting("name", Some(&name)).await {
                engine.notice(format!("Could not remember your name: {}", error.0));
            }
            // Which key: the public Emergency room's; the invite's; a room of this name this
            // device already has; or a new random one (a new private room).
            let known = db
                .rooms()
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|r| r.name == room_name && !r.direct);
            let (key, public, room_name) = if room_name.eq_ignore_ascii_case("emergency") {
                (RoomKey::emergency(), true, "Emergency".to_string())
            } else if let Some(key) = invite.and_then(|i| i.key).as_deref().and_then(unhex::<32>) {
                (RoomKey::from_bytes(key), false, room_name)
            } else if let Some(key) = known.as_ref().and_then(|r| unhex::<32>(&r.key)) {
                (
                    RoomKey::from_bytes(key),
                    known.is_some_and(|r| r.public),
                    room_name,
                )
            } else {
                (
                    RoomKey::from_bytes(device::random_bytes()),
                    false,
                    room_name,
                )
            };
            // The key must not linger in the address bar or the history.
            if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
                let _ = history.replace_state_with_url(&JsValue::NULL, "", Some("/"));
            }
            engine.state.last_name.set(name.clone());
            engine.state.notice.set(None);
            engine
                .enter_room(&name, &room_name, key, public, false)
                .await;
        });
        Ok(())
    }

    fn leave(&self) {
        let joined = self.inner.borrow_mut().joined.take();
        if let Some(joined) = joined {
            self.send_frame(&ClientFrame::Leave { room: joined.id });
        }
        if let Some(db) = self.db() {
            spawn_local(async move {
                let _ = db.set_setting("room", None).await;
            });
        }
        self.state.session.set(None);
        self.state.messages.set(Vec::new());
        self.state.members.set(Vec::new());
        self.state.typing.set(Vec::new());
        self.state.notice.set(None);
    }

    fn send(&self, text: &str) -> Result<(), String> {
        let (name, joined, identity) = {
            let inner = self.inner.borrow();
            match (&inner.joined, &inner.identity) {
                (Some(joined), Some(identity)) => {
                    (inner.name.clone(), joined.clone(), Rc::clone(identity))
                }
                _ => return Err("Join a room first.".into()),
            }
        };
        let sender = identity.sender();
        let body = TextBody::new(&name, text).map_err(|error| format!("Not sent: {error}."))?;
        let plaintext = body
            .encode()
            .map_err(|error| format!("Not sent: {error}."))?;
        let draft = Draft {
            id: MessageId(device::random_bytes()),
            created_at_ms: js_sys::Date::now() as u64,
            kind: Kind::Text,
            plaintext: &plaintext,
        };
        let envelope = seal(&identity, &joined.key, draft, device::random_bytes())
            .map_err(|error| format!("Not sent: {error}."))?;
        let bytes = envelope
            .encode()
            .map_err(|error| format!("Not sent: {error}."))?;
        let radio = RadioMessage::seal(
            &joined.key,
            envelope.id,
            (envelope.created_at_ms / 1000) as u32,
            &body.author,
            &body.text,
        );
        // Longer than the radio carries: it goes only to this server's phones.
        let radio = if radio.fits(DEFAULT_FRAME_BYTES) {
            radio.payload
        } else {
            Vec::new()
        };
        let record = MessageRecord {
            id: envelope.id.to_string(),
            room: joined.record.id.clone(),
            order: LOCAL_ORDER_BASE + envelope.created_at_ms as f64,
            seq: None,
            created_at: envelope.created_at_ms as f64,
            sender: sender.to_string(),
            author: body.author,
            text: body.text,
            state: RecordState::Queued,
        };
        let db = self
            .db()
            .ok_or("This browser cannot keep messages on the device; see the notice.")?;
        let own = sender.to_string();
        let window = self.inner.borrow().window as usize;
        let mut trimmed = false;
        self.state.messages.update(|list| {
            list.push(chat_message(&record, Some(&own)));
            // Keep the list to its window, however much is written offline.
            let extra = list.len().saturating_sub(window);
            list.drain(..extra);
            trimmed = extra > 0;
        });
        if trimmed {
            self.state.has_older.set(true);
        }
        self.inner.borrow_mut().queued += 1;
        self.show_outbox_progress();
        let engine = Rc::clone(&self.0);
        spawn_local(async move {
            match db.enqueue(&record, bytes, radio).await {
                Ok(()) => {
                    engine.request_flush();
                    engine.radio_send_outbox().await;
                }
                Err(error) => {
                    {
                        let mut inner = engine.inner.borrow_mut();
                        inner.queued = inner.queued.saturating_sub(1);
                    }
                    engine.show_outbox_progress();
                    engine.update_message(&record.id, |m| m.delivery = Delivery::Failed);
                    engine.notice(format!(
                        "Could not save the message on this device: {}",
                        error.0
                    ));
                }
            }
        });
        Ok(())
    }

    fn load_older(&self) {
        let engine = Rc::clone(&self.0);
        spawn_local(async move {
            let Some(db) = engine.db() else { return };
            let Some((room, room_hex, window)) = ({
                let mut inner = engine.inner.borrow_mut();
                inner.window += WINDOW_STEP;
                let window = inner.window;
                inner
                    .joined
                    .as_ref()
                    .map(|j| (j.id, j.record.id.clone(), window))
            }) else {
                return;
            };
            let held = db
                .newest(&room_hex, window)
                .await
                .map(|(records, _)| records.len())
                .unwrap_or(0);
            let server_has_older = engine
                .inner
                .borrow()
                .joined
                .as_ref()
                .is_some_and(|j| j.record.server_has_older);
            if (held as u32) < window && server_has_older {
                let before = db.oldest_seq(&room_hex).await.ok().flatten();
                let frame = ClientFrame::History {
                    room,
                    before_seq: before.map_or(u64::MAX, |s| s as u64),
                    limit: MAX_HISTORY_PAGE / 2,
                };
                if engine.send_frame(&frame) {
                    engine.state.loading_older.set(true);
                } else {
                    engine.notice("Older messages load when the server is reachable.");
                }
            }
            engine.refresh_window().await;
        });
    }

    fn retry(&self, id: &str) {
        let Some(db) = self.db() else { return };
        let engine = Rc::clone(&self.0);
        let id = id.to_string();
        spawn_local(async move {
            match db.retry(&id).await {
                Ok(Some(_)) => {
                    engine.inner.borrow_mut().queued += 1;
                    engine.show_outbox_progress();
                    engine.update_message(&id, |m| m.delivery = Delivery::Queued);
                    engine.request_flush();
                }
                Ok(None) => {}
                Err(error) => engine.notice(format!("Could not retry: {}", error.0)),
            }
        });
    }

    fn typing(&self) {
        let now = js_sys::Date::now();
        let room = {
            let mut inner = self.inner.borrow_mut();
            if now - inner.last_typing_sent_ms < TYPING_SEND_EVERY_MS {
                return;
            }
            inner.last_typing_sent_ms = now;
            inner.joined.as_ref().map(|j| j.id)
        };
        if let Some(room) = room {
            self.send_frame(&ClientFrame::Typing { room });
        }
    }

    fn apply_update(&self) {
        pwa::apply_update();
    }

    fn open_direct(&self, id: &str) {
        let (contact, identity, name) = {
            let inner = self.inner.borrow();
            let contact = inner
                .contacts
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| Some((c.public()?, c.name.clone())));
            (contact, inner.identity.clone(), inner.name.clone())
        };
        let (Some((peer, peer_name)), Some(identity)) = (contact, identity) else {
            return self.notice("That person is not known on this device yet.");
        };
        self.state.direct_alert.set(None);
        let Some(key) = identity.dm_key(&peer) else {
            return self.notice("That person's keys cannot make a private conversation.");
        };
        let engine = Rc::clone(&self.0);
        spawn_local(async move {
            engine.enter_room(&name, &peer_name, key, false, true).await;
        });
    }

    fn verify(&self, id: &str) {
        let found = {
            let mut inner = self.inner.borrow_mut();
            match inner.contacts.iter_mut().find(|c| c.id == id) {
                Some(contact) => {
                    contact.verified = true;
                    true
                }
                None => false,
            }
        };
        if found {
            self.save_contacts();
            self.state.key_warning.set(None);
            self.show_members();
        }
    }

    fn radio_connect(&self, settings: app::RadioSettings) {
        Engine::radio_connect(&self.0, settings);
    }

    fn radio_disconnect(&self) {
        Engine::radio_disconnect(&self.0);
    }

    fn radio_lend(&self, lend: bool) {
        Engine::radio_lend(&self.0, lend);
    }

    fn unlock(&self, code: &str) -> Result<(), String> {
        let code = code.trim();
        if code.is_empty() {
            return Err("Enter the join code.".into());
        }
        let Some(device) = self.inner.borrow().sender else {
            return Err("The app is still starting; try again in a moment.".into());
        };
        if !self.send_frame(&ClientFrame::Unlock {
            code: code.to_string(),
            device,
        }) {
            return Err("The server is not reachable right now; try again when it is.".into());
        }
        self.state.code_error.set(None);
        Ok(())
    }
}
