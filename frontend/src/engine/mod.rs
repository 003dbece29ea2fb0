//! The sync engine: the bridge between this device's store (IndexedDB), the server (one
//! WebSocket), this browser's own radio (Web Serial) and the reactive [`ChatState`] the views
//! read. It is a set of small parts, each owning its state; the decisions inside them are the
//! plain types of the `client` crate and `mesh`, tested natively:
//!
//! - [`connection`]: the WebSocket (gloo-net), reconnect backoff, heartbeat, the join code.
//! - [`outbox`]: what is written goes to the outbox first and out, in order, once per
//!   connection; acknowledgements and refusals.
//! - [`files`]: photos and files: made small, sealed and kept here, uploaded before their
//!   message goes out; fetched, checked and opened on demand.
//! - [`voice`]: voice notes, recorded while a button is held.
//! - [`location`]: this phone's position, watched only while the person sends it.
//! - [`alerts`]: SOS calls: sent with a position, a banner until answered or ended.
//! - [`nearby`]: where the people of each room were last (live positions merged).
//! - [`map`]: the map, its code fetched the first time it opens.
//! - [`inbox`]: what arrives is stored before it is shown; the one way to the screen (the
//!   store changes, then the list reloads from it).
//! - [`people`]: presence, typing, contacts and trust.
//! - [`attention`]: the other rooms watched; unread counts, notifications, mute, and the
//!   announcement of a private conversation someone started.
//! - [`session`]: who this device is, which room it is in, with which key.
//! - [`search`]: the messages on this device that match a search, and opening one.
//! - [`radio`]: this browser's radio, driven by the same `mesh` driver as the server's.
//! - [`calls`]: calls and the walkie-talkie: WebRTC between the phones, signalled sealed.

mod actions;
mod alerts;
mod attention;
mod calls;
mod connection;
mod export;
mod federation;
mod files;
mod inbox;
mod location;
mod map;
mod nearby;
mod outbox;
mod people;
mod radio;
mod search;
mod session;
mod voice;
mod webserial;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::time::Duration;

use app::{ChatClient, ChatState, RadioLine};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::{RadioState, ServerFrame};

use crate::db::Db;
use crate::pwa;

/// How often the engine checks the connection is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Makes the engine and starts it once the page has hydrated.
pub(crate) fn start() -> ChatClient {
    let state = ChatState::new();
    let engine = Rc::new(Engine {
        state,
        db: OnceCell::new(),
        connection: connection::Connection::default(),
        outbox: outbox::Outbox::default(),
        files: files::Files::default(),
        voice: voice::Voice::default(),
        location: location::Location::default(),
        alerts: alerts::Alerts::default(),
        nearby: nearby::NearbyPart::default(),
        map: map::Map::default(),
        inbox: inbox::Inbox::default(),
        people: people::People::default(),
        attention: attention::Attention::default(),
        session: session::Session::default(),
        radio: radio::Radio::default(),
        search: search::Search::default(),
        federation: federation::Federation::default(),
        calls: calls::Calls::default(),
    });
    let coarse = web_sys::window()
        .and_then(|w| w.match_media("(pointer: coarse)").ok().flatten())
        .is_some_and(|query| query.matches());
    state.touch.set(coarse);
    // At once: the room key leaves the address bar before anything else runs.
    let _ = engine.session.take_invite(&engine);
    let actions: Rc<dyn app::ChatActions> = Rc::new(actions::Actions(Rc::clone(&engine)));
    // Runs after hydration: the first frame must match the server's shell.
    spawn_local(Rc::clone(&engine).init());
    ChatClient::new(state, actions)
}

/// The engine: the reactive state, the store, and the parts.
pub(crate) struct Engine {
    state: ChatState,
    db: OnceCell<Rc<Db>>,
    connection: connection::Connection,
    outbox: outbox::Outbox,
    files: files::Files,
    voice: voice::Voice,
    location: location::Location,
    alerts: alerts::Alerts,
    nearby: nearby::NearbyPart,
    map: map::Map,
    inbox: inbox::Inbox,
    people: people::People,
    attention: attention::Attention,
    session: session::Session,
    radio: radio::Radio,
    search: search::Search,
    federation: federation::Federation,
    calls: calls::Calls,
}

/// A job that runs at most once at a time: asked for while it runs, it runs once more after
/// (any number of requests meanwhile make one run).
#[derive(Default)]
struct Coalesce {
    running: Cell<bool>,
    again: Cell<bool>,
}

impl Coalesce {
    /// Runs `job` now, or once more after the run under way. `which` finds this coalescer in
    /// the engine again from inside the running task.
    fn request<F, Fut>(engine: &Rc<Engine>, which: fn(&Engine) -> &Coalesce, job: F)
    where
        F: Fn(Rc<Engine>) -> Fut + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let this = which(engine);
        if this.running.replace(true) {
            this.again.set(true);
            return;
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            loop {
                job(Rc::clone(&engine)).await;
                let this = which(&engine);
                if !this.again.replace(false) {
                    this.running.set(false);
                    return;
                }
            }
        });
    }
}

/// Marks a moment for benchmarks and the browser's performance tools.
pub(crate) fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

impl Engine {
    fn db(&self) -> Option<Rc<Db>> {
        self.db.get().cloned()
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
        let _ = self.db.set(Rc::clone(&db));
        spawn_local(pwa::persist_storage());
        spawn_local(pwa::register(self.state));
        pwa::watch_install(self.state);

        self.state.notifications.set(pwa::notifications());
        // A tapped notification opens its room: in this page, or in a new one (`?open=`).
        let weak = Rc::downgrade(&self);
        pwa::on_notification_tap(move |room| {
            if let Some(engine) = weak.upgrade() {
                engine.session.open_room_by_id(&engine, &room);
            }
        });
        self.session.open_from_address(&db).await;
        self.session.load(&self, &db).await;
        self.people.load(&db).await;
        self.outbox.load(&self, &db).await;
        self.files.load(&db).await;
        self.alerts.load(&self).await;
        self.nearby.load(&self).await;
        self.location.load(&self).await;
        self.radio.load_camp_key(&self).await;
        self.session.resume(&self, &db).await;
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::set(&window, &"__fieldmeshReady".into(), &true.into());
        }
        mark("fieldmesh:ready");
        self.session.take_early(&self);
        self.session.refresh_rooms(&self);
        // An invite pasted into the address bar of this open tab changes only the part after
        // `#`: the page is not loaded again, so follow it here.
        let weak = Rc::downgrade(&self);
        let handle = window_event_listener_untyped("hashchange", move |_| {
            if let Some(engine) = weak.upgrade() {
                engine.session.follow_invite(&engine);
            }
        });
        std::mem::forget(handle);

        self.connection.connect(&self);
        self.radio.init(&self);
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
                    engine.connection.connect_now(&engine);
                    // Back in sight: the open room is read.
                    engine.attention.seen(&engine);
                }
            });
            std::mem::forget(handle);
        }
        // Out of focus or sight, a held talk button would never be let go.
        for event in ["blur", "visibilitychange"] {
            let weak = Rc::downgrade(&self);
            let handle = window_event_listener_untyped(event, move |_| {
                if let Some(engine) = weak.upgrade() {
                    engine.calls.on_blur(&engine);
                }
            });
            std::mem::forget(handle);
        }
        // The page goes away: a call it is in says goodbye.
        let weak = Rc::downgrade(&self);
        let handle = window_event_listener_untyped("pagehide", move |_| {
            if let Some(engine) = weak.upgrade() {
                engine.calls.on_page_hide(&engine);
            }
        });
        std::mem::forget(handle);
        // The device says its network is gone: do not wait for the heartbeat to notice.
        let weak = Rc::downgrade(&self);
        let handle = window_event_listener_untyped("offline", move |_| {
            if let Some(engine) = weak.upgrade() {
                engine.connection.drop_connection(&engine);
            }
        });
        std::mem::forget(handle);
    }

    fn heartbeat(self: &Rc<Self>) {
        if !self.connection.heartbeat(self) {
            return;
        }
        self.people.heartbeat(self);
        self.inbox.heartbeat(self);
    }

    /// The server connection ended (or died): everything that lived on it ends too.
    fn on_disconnect(self: &Rc<Self>) {
        self.outbox.on_disconnect(self);
        self.people.on_disconnect(self);
        self.attention.on_disconnect();
        self.radio.on_disconnect(self);
    }

    /// The server lets this device read and send: join the room and send the outbox.
    fn on_unlocked(self: &Rc<Self>) {
        self.session.send_join(self);
        self.attention.update(self);
        self.outbox.request_flush(self);
        self.files.request_upload(self);
        self.radio.on_online(self);
        self.calls.on_online(self);
    }

    /// One frame from the server, to the part it concerns.
    fn on_frame(self: &Rc<Self>, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome {
                code_required,
                store_id,
                challenge,
                ..
            } => self
                .connection
                .on_welcome(self, code_required, store_id, challenge),
            ServerFrame::Access { token } => self.connection.on_access(self, token),
            ServerFrame::History {
                room,
                messages,
                has_more,
            } => self.inbox.on_history(self, room, messages, has_more),
            ServerFrame::CatchUp {
                room,
                messages,
                done,
            } => self.inbox.on_catch_up(self, room, messages, done),
            ServerFrame::Message(message) => {
                if self.session.is_current(message.envelope.room) {
                    self.attention.on_current(self, &message);
                    self.inbox.on_message(self, message);
                } else {
                    self.attention.on_message(self, &message);
                }
            }
            ServerFrame::Unread {
                room,
                count,
                newest,
            } => self.attention.on_unread(self, room, count, newest),
            ServerFrame::Ack { id, seq, .. } => {
                self.outbox.on_stored(self, id, seq);
            }
            ServerFrame::Error {
                code,
                detail,
                id,
                retry_after_ms,
            } => match id {
                Some(id) => self
                    .outbox
                    .on_refused(self, id, code, detail, retry_after_ms),
                None => self.connection.on_error(self, code, detail, retry_after_ms),
            },
            ServerFrame::Presence { room, members } => {
                if self.session.is_current(room) {
                    self.people.on_presence(self, members);
                }
            }
            ServerFrame::PresenceChanged { room, joined, left } => {
                if self.session.is_current(room) {
                    self.people.on_presence_changed(self, &joined, &left);
                }
            }
            ServerFrame::Typing { room, sender } => {
                if self.session.is_current(room) {
                    self.people.on_typing(self, sender);
                }
            }
            ServerFrame::Pong { .. } => {}
            ServerFrame::Radio(status) => {
                let line = (status.state != RadioState::Off).then(|| RadioLine {
                    ready: status.state == RadioState::Ready,
                    text: status.detail,
                    meshtastic_channel: status.meshtastic_channel,
                });
                self.state.radio.set(line);
            }
            ServerFrame::Lending { active, detail } => self.radio.on_lending(self, active, detail),
            ServerFrame::RadioFrame { frame } => self.radio.on_server_frame(self, frame),
            ServerFrame::Relayed { id, .. } => self.inbox.mark_relayed(self, id),
            ServerFrame::Camp { name, network_key } => self.radio.on_camp(self, name, network_key),
            ServerFrame::FileLimits { max_file_bytes } => {
                self.files.on_limits(self, max_file_bytes)
            }
            ServerFrame::FileTicket { room, ticket } => self.files.on_ticket(room, ticket),
            ServerFrame::Federation(status) => self.federation.on_status(self, status),
            ServerFrame::Signal {
                room,
                from,
                sender,
                direct,
                sealed,
            } => self
                .calls
                .on_signal(self, room, from, sender, direct, &sealed),
        }
    }
}
