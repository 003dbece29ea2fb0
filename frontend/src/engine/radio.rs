//! This browser's own radio over Web Serial: the same framing, radio form, relay node and
//! encryption as the server (all from `mesh`), driven from the page.
//!
//! Direct mode: the page is a mesh node of its own. Messages written here go out over the
//! radio (from the outbox, so an unplugged radio loses nothing: they go out after the
//! reconnect), and messages heard are stored on the device and queued for upload to a server
//! when one is reachable. Lend mode: the page is its server's radio port; frames heard go up
//! the WebSocket, frames the server's relay sends come down to the radio.
//!
//! Ports and streams are called through `Reflect`, so a port object injected by a test (whose
//! streams the test connects to the radio simulator) works like a real one.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use mesh::radio::{Driver, DriverConfig, Event, MessageKey, NodeConfig, OwnMessage};
use mesh::serial::{Framing, RnodeSettings};
use wasm_bindgen_futures::JsFuture;

use super::*;
use app::{RadioSettings, WebRadio};

/// The radio side of the engine.
pub(super) struct RadioSide {
    link: Option<Link>,
    /// The same radio driver as the server's: relay node, airtime pacing, resends, give-up.
    driver: Driver,
    /// Bumped on every connect and disconnect, so a read loop of an old port stops.
    generation: u32,
    /// The person wants the radio lent to the server (kept across reconnects).
    want_lend: bool,
    /// The server accepted the lending on the current connection.
    lending: bool,
    /// The node's next timer, if one is set.
    timer_at: Option<u64>,
}

struct Link {
    port: JsValue,
    writer: JsValue,
    reader: Option<JsValue>,
    framing: Box<dyn Framing>,
}

impl Default for RadioSide {
    fn default() -> Self {
        let seed = u64::from_le_bytes(device::random_bytes());
        Self {
            link: None,
            driver: Driver::new(DriverConfig::default(), seed),
            generation: 0,
            want_lend: false,
            lending: false,
            timer_at: None,
        }
    }
}

fn serial() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    let serial = Reflect::get(&navigator, &"serial".into()).ok()?;
    (!serial.is_undefined() && !serial.is_null()).then_some(serial)
}

/// Calls `object.name(args…)`.
fn call(object: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &name.into())?.dyn_into()?;
    function.apply(object, &args.iter().collect::<Array>())
}

/// Calls `object.name(args…)` and awaits the promise it returns.
async fn call_async(object: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let promise: Promise = call(object, name, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

fn error_text(error: &JsValue) -> String {
    Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

impl Engine {
    fn set_radio(&self, change: impl FnOnce(&mut WebRadio)) {
        self.state.web_radio.update(change);
    }

    /// Finds out whether this browser has Web Serial, and reconnects a radio it was allowed
    /// to use before (no picker needed for those).
    pub(super) fn radio_init(self: &Rc<Self>) {
        let Some(serial) = serial() else {
            self.set_radio(|r| {
                r.supported = false;
                r.status = "no Web Serial in this browser".into();
            });
            return;
        };
        self.set_radio(|r| {
            r.supported = true;
            r.status = "not connected".into();
        });
        // A radio plugged back in: reconnect with the settings used last.
        let weak = Rc::downgrade(self);
        let on_connect = Closure::<dyn Fn()>::new(move || {
            if let Some(engine) = weak.upgrade() {
                spawn_local(engine.radio_reconnect());
            }
        });
        let _ = Reflect::set(&serial, &"onconnect".into(), on_connect.as_ref());
        on_connect.forget();
        spawn_local(Rc::clone(self).radio_reconnect());
    }

    /// Opens the first port this site may use, with the saved settings, if not connected.
    async fn radio_reconnect(self: Rc<Self>) {
        if self.inner.borrow().radio.link.is_some() {
            return;
        }
        let Some(serial) = serial() else { return };
        let Some(db) = self.db() else { return };
        let Some(settings) = db
            .setting("radio")
            .await
            .ok()
            .flatten()
            .and_then(|s| parse_settings(&s))
        else {
            return;
        };
        let ports = match call_async(&serial, "getPorts", &[]).await {
            Ok(ports) => Array::from(&ports),
            Err(_) => return,
        };
        if ports.length() > 0 {
            self.radio_open(ports.get(0), settings).await;
        }
    }

    /// Asks for a port with the browser's picker (this must run in the click's task) and
    /// connects.
    pub(super) fn radio_connect(self: &Rc<Self>, settings: RadioSettings) {
        let Some(serial) = serial() else { return };
        let request = call(&serial, "requestPort", &[]).and_then(|p| p.dyn_into::<Promise>());
        let engine = Rc::clone(self);
        spawn_local(async move {
            let port = match request {
                Ok(promise) => JsFuture::from(promise).await,
                Err(error) => Err(error),
            };
            match port {
                Ok(port) => engine.radio_open(port, settings).await,
                Err(error) => engine.set_radio(|r| {
                    r.status = format!("no radio chosen ({})", error_text(&error));
                }),
            }
        });
    }

    async fn radio_open(self: &Rc<Self>, port: JsValue, settings: RadioSettings) {
        self.radio_close_link().await;
        self.set_radio(|r| r.status = "opening the port…".into());
        let options = js_sys::Object::new();
        let _ = Reflect::set(&options, &"baudRate".into(), &settings.baud.into());
        if let Err(error) = call_async(&port, "open", &[options.into()]).await {
            // Already open (the page reconnected to a port it holds): carry on with it.
            let readable = Reflect::get(&port, &"readable".into()).unwrap_or(JsValue::NULL);
            if readable.is_null() || readable.is_undefined() {
                return self.set_radio(|r| {
                    r.connected = false;
                    r.errors += 1;
                    r.status = format!("could not open the radio: {}", error_text(&error));
                });
            }
        }
        let framing: Box<dyn Framing> = settings
            .protocol
            .framing(settings.frequency_hz.map(RnodeSettings::new));
        let writer =
            Reflect::get(&port, &"writable".into()).and_then(|w| call(&w, "getWriter", &[]));
        let writer = match writer {
            Ok(writer) => writer,
            Err(error) => {
                return self.set_radio(|r| {
                    r.errors += 1;
                    r.status = format!("the radio cannot be written to: {}", error_text(&error));
                })
            }
        };
        self.set_radio(|r| r.status = "configuring…".into());
        for frame in framing.configure() {
            let bytes = Uint8Array::from(frame.as_slice());
            if let Err(error) = call_async(&writer, "write", &[bytes.into()]).await {
                return self.set_radio(|r| {
                    r.errors += 1;
                    r.status = format!("configuring the radio failed: {}", error_text(&error));
                });
            }
        }
        let frame_bytes = framing.max_frame();
        let generation = {
            let mut inner = self.inner.borrow_mut();
            let radio = &mut inner.radio;
            radio.generation += 1;
            radio.driver = Driver::new(
                DriverConfig {
                    node: NodeConfig {
                        frame_bytes,
                        ..NodeConfig::default()
                    },
                    ..DriverConfig::default()
                },
                u64::from_le_bytes(device::random_bytes()),
            );
            radio.link = Some(Link {
                port,
                writer,
                reader: None,
                framing,
            });
            radio.generation
        };
        if let Some(db) = self.db() {
            let _ = db
                .set_setting("radio", Some(&settings_text(&settings)))
                .await;
        }
        self.set_radio(|r| {
            r.connected = true;
            r.protocol = settings.protocol;
            r.status = "connected".into();
        });
        mark("fieldmesh:radio-connected");
        if self.inner.borrow().radio.want_lend {
            self.radio_lend(true);
        } else {
            let events = self.inner.borrow_mut().radio.driver.link_up(now_ms());
            self.radio_act(events);
        }
        spawn_local(Rc::clone(self).radio_read(generation));
        self.radio_send_outbox().await;
    }

    /// Reads the radio until it goes away.
    async fn radio_read(self: Rc<Self>, generation: u32) {
        let reader = {
            let inner = self.inner.borrow();
            let Some(link) = inner.radio.link.as_ref() else {
                return;
            };
            Reflect::get(&link.port, &"readable".into()).and_then(|r| call(&r, "getReader", &[]))
        };
        let reader = match reader {
            Ok(reader) => reader,
            Err(error) => return self.radio_lost(generation, &error_text(&error)),
        };
        if let Some(link) = self.inner.borrow_mut().radio.link.as_mut() {
            link.reader = Some(reader.clone());
        }
        loop {
            let result = match call_async(&reader, "read", &[]).await {
                Ok(result) => result,
                Err(error) => return self.radio_lost(generation, &error_text(&error)),
            };
            if self.inner.borrow().radio.generation != generation {
                return;
            }
            if Reflect::get(&result, &"done".into())
                .ok()
                .and_then(|d| d.as_bool())
                == Some(true)
            {
                return self.radio_lost(generation, "the port closed");
            }
            let Ok(value) = Reflect::get(&result, &"value".into()) else {
                continue;
            };
            let bytes = Uint8Array::new(&value).to_vec();
            let (frames, dropped) = {
                let mut inner = self.inner.borrow_mut();
                let Some(link) = inner.radio.link.as_mut() else {
                    return;
                };
                let before = link.framing.dropped();
                let frames = link.framing.decode(&bytes);
                (frames, link.framing.dropped() - before)
            };
            if dropped > 0 {
                self.set_radio(|r| r.errors += dropped);
            }
            for frame in frames {
                self.radio_heard(frame);
            }
        }
    }

    /// The port failed or was unplugged: messages stay in the outbox for the reconnect.
    fn radio_lost(self: &Rc<Self>, generation: u32, why: &str) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.radio.generation != generation {
                return;
            }
            inner.radio.link = None;
            inner.radio.generation += 1;
            inner.radio.driver.link_down();
        }
        if self.inner.borrow().radio.lending {
            self.send_frame(&ClientFrame::StopLending);
        }
        self.set_radio(|r| {
            r.connected = false;
            r.errors += 1;
            r.status = format!("radio lost ({why}); plug it back in: queued messages wait");
        });
        mark("fieldmesh:radio-lost");
    }

    async fn radio_close_link(self: &Rc<Self>) {
        let link = {
            let mut inner = self.inner.borrow_mut();
            inner.radio.generation += 1;
            inner.radio.driver.link_down();
            inner.radio.link.take()
        };
        if let Some(link) = link {
            if let Some(reader) = &link.reader {
                let _ = call_async(reader, "cancel", &[]).await;
                let _ = call(reader, "releaseLock", &[]);
            }
            let _ = call(&link.writer, "releaseLock", &[]);
            let _ = call_async(&link.port, "close", &[]).await;
        }
    }

    /// Closes the radio at the person's request.
    pub(super) fn radio_disconnect(self: &Rc<Self>) {
        let engine = Rc::clone(self);
        spawn_local(async move {
            if engine.inner.borrow().radio.lending {
                engine.send_frame(&ClientFrame::StopLending);
            }
            engine.radio_close_link().await;
            engine.set_radio(|r| {
                r.connected = false;
                r.lending = false;
                r.status = "disconnected".into();
            });
        });
    }

    /// Writes one radio frame to the port (queued in order by the stream).
    fn radio_write(&self, frame: &[u8]) {
        let inner = self.inner.borrow();
        let Some(link) = inner.radio.link.as_ref() else {
            return;
        };
        let bytes = Uint8Array::from(link.framing.encode(frame).as_slice());
        match call(&link.writer, "write", &[bytes.into()]).and_then(|p| p.dyn_into::<Promise>()) {
            Ok(promise) => {
                drop(inner);
                self.set_radio(|r| r.frames_out += 1);
                spawn_local(async move {
                    // A failed write shows up as a failed read too; the node retries.
                    let _ = JsFuture::from(promise).await;
                });
            }
            Err(_) => {
                drop(inner);
                self.set_radio(|r| r.errors += 1);
            }
        }
    }

    /// A frame the radio heard.
    fn radio_heard(self: &Rc<Self>, frame: Vec<u8>) {
        self.set_radio(|r| {
            r.frames_in += 1;
            r.status = "receiving".into();
        });
        if self.inner.borrow().radio.lending {
            self.send_frame(&ClientFrame::RadioFrame { frame });
            return;
        }
        let events = self
            .inner
            .borrow_mut()
            .radio
            .driver
            .receive(now_ms(), &frame);
        match events {
            Ok(events) => self.radio_act(events),
            Err(_) => self.set_radio(|r| r.errors += 1),
        }
    }

    fn radio_act(self: &Rc<Self>, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Transmit(frame) => self.radio_write(&frame),
                Event::Heard(message) => spawn_local(Rc::clone(self).radio_store(message)),
                Event::Relayed(own) => self.mark_relayed(own.id.to_string()),
                // It stays in the outbox for a server; only the radio stops trying.
                Event::GaveUp(own) => {
                    leptos::logging::warn!("no camp confirmed radio message {} in a day", own.id)
                }
            }
        }
        self.radio_schedule();
    }

    /// Sets a timer for the driver's next frame, retry, rebroadcast or resend.
    fn radio_schedule(self: &Rc<Self>) {
        let next = self.inner.borrow().radio.driver.next_wakeup();
        let Some(at) = next else { return };
        {
            let mut inner = self.inner.borrow_mut();
            if inner
                .radio
                .timer_at
                .is_some_and(|t| t <= at && t >= now_ms())
            {
                return;
            }
            inner.radio.timer_at = Some(at);
        }
        let weak = Rc::downgrade(self);
        let _ = set_timeout_with_handle(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.inner.borrow_mut().radio.timer_at = None;
                    let events = engine.inner.borrow_mut().radio.driver.poll(now_ms());
                    engine.radio_act(events);
                }
            },
            Duration::from_millis(at.saturating_sub(now_ms())),
        );
    }

    /// Direct mode: hands the driver every message of the outbox with a radio form (after a
    /// connect, a reconnect, or a message written); it carries each once, and starts them
    /// while the radio is connected and not lent.
    pub(super) async fn radio_send_outbox(self: &Rc<Self>) {
        if self.inner.borrow().radio.link.is_none() {
            return;
        }
        let Some(db) = self.db() else { return };
        let Ok(outbox) = db.outbox().await else {
            return;
        };
        for entry in outbox.iter().filter(|e| !e.radio.is_empty() && !e.heard) {
            let Ok(envelope) = Envelope::decode(&entry.envelope) else {
                continue;
            };
            let own = OwnMessage {
                room: envelope.room,
                id: envelope.id,
                message: mesh::radio::RadioMessage {
                    key: MessageKey::of(envelope.room, envelope.id),
                    payload: entry.radio.clone(),
                },
                queued_at_ms: envelope.created_at_ms,
            };
            let _ = self.inner.borrow_mut().radio.driver.queue(now_ms(), own);
        }
        let events = self.inner.borrow_mut().radio.driver.poll(now_ms());
        self.radio_act(events);
    }

    /// Direct mode: a whole message heard. Stored on the device in the room it opens in, and
    /// queued for upload to a server.
    async fn radio_store(self: Rc<Self>, message: mesh::radio::RadioMessage) {
        let Some(db) = self.db() else { return };
        let mut keys = vec![RoomKey::emergency()];
        if let Ok(rooms) = db.rooms().await {
            keys.extend(
                rooms
                    .iter()
                    .filter_map(|r| unhex::<32>(&r.key).map(RoomKey::from_bytes)),
            );
        }
        let Some(key) = keys
            .into_iter()
            .find(|k| message.key.is_in(k.room_id()) && message.open(k).is_ok())
        else {
            return; // a room this device does not read
        };
        let room = key.room_id();
        let envelope = message.to_envelope(room);
        let stored = StoredMessage {
            seq: 0,
            received_at_ms: now_ms(),
            envelope: envelope.clone(),
        };
        let Some(mut record) = radio_record_of(&stored, &key, &hex(&room.0)) else {
            return;
        };
        record.seq = None;
        record.order = LOCAL_ORDER_BASE + record.created_at;
        let Ok(bytes) = envelope.encode() else { return };
        match db.enqueue_heard(&record, bytes).await {
            Ok(true) => {}
            Ok(false) => return, // heard before: already kept and queued
            Err(error) => {
                return self.notice(format!("Could not keep a radio message: {}", error.0))
            }
        }
        let joined = self.inner.borrow().joined.as_ref().map(|j| j.id);
        if joined == Some(room) {
            let mut message = chat_message(&record, None);
            self.label_authors(std::slice::from_mut(&mut message));
            self.state.messages.update(|list| {
                if !list.iter().any(|m| m.id == message.id) {
                    list.push(message);
                }
            });
        }
        self.inner.borrow_mut().queued += 1;
        self.show_outbox_progress();
        mark("fieldmesh:radio-message");
        self.request_flush();
    }

    /// Lends the radio to the server, or takes it back.
    pub(super) fn radio_lend(self: &Rc<Self>, lend: bool) {
        self.inner.borrow_mut().radio.want_lend = lend;
        if lend {
            let name = self.inner.borrow().name.clone();
            let label = if name.is_empty() {
                "a browser".to_string()
            } else {
                format!("{name}'s browser")
            };
            if !self.send_frame(&ClientFrame::LendRadio { label }) {
                self.set_radio(|r| {
                    r.lend_detail = Some("lent as soon as the server is reachable".into())
                });
            }
        } else {
            self.send_frame(&ClientFrame::StopLending);
            self.inner.borrow_mut().radio.lending = false;
            self.set_radio(|r| {
                r.lending = false;
                r.lend_detail = None;
            });
            self.radio_resume();
        }
    }

    /// The server's answer about lending.
    pub(super) fn on_lending(self: &Rc<Self>, active: bool, detail: String) {
        self.inner.borrow_mut().radio.lending = active;
        if active {
            // The server's driver carries the radio now; this page's waits.
            self.inner.borrow_mut().radio.driver.link_down();
        } else {
            self.inner.borrow_mut().radio.want_lend = false;
            self.radio_resume();
        }
        self.set_radio(|r| {
            r.lending = active;
            r.lend_detail = Some(detail);
        });
    }

    /// A frame the server's relay wants the lent radio to transmit.
    pub(super) fn on_radio_frame(self: &Rc<Self>, frame: Vec<u8>) {
        if self.inner.borrow().radio.lending {
            self.radio_write(&frame);
        }
    }

    /// The server connection ended: a lending ends with it (it resumes on reconnect).
    pub(super) fn radio_on_disconnect(self: &Rc<Self>) {
        let was = std::mem::replace(&mut self.inner.borrow_mut().radio.lending, false);
        if was {
            self.set_radio(|r| {
                r.lending = false;
                r.lend_detail =
                    Some("the server is away; the radio works on its own meanwhile".into());
            });
            self.radio_resume();
        }
    }

    /// The page drives its radio itself again (lending ended): the driver's link is up.
    fn radio_resume(self: &Rc<Self>) {
        if self.inner.borrow().radio.link.is_none() {
            return;
        }
        let events = self.inner.borrow_mut().radio.driver.link_up(now_ms());
        self.radio_act(events);
        let engine = Rc::clone(self);
        spawn_local(async move { engine.radio_send_outbox().await });
    }

    /// The server connection is ready: lend again if the person wanted to.
    pub(super) fn radio_on_online(self: &Rc<Self>) {
        let (want, connected) = {
            let inner = self.inner.borrow();
            (inner.radio.want_lend, inner.radio.link.is_some())
        };
        if want && connected {
            self.radio_lend(true);
        }
    }
}

fn settings_text(settings: &RadioSettings) -> String {
    format!(
        "{}\t{}\t{}",
        settings.protocol.name(),
        settings.baud,
        settings
            .frequency_hz
            .map(|f| f.to_string())
            .unwrap_or_default()
    )
}

fn parse_settings(text: &str) -> Option<RadioSettings> {
    let mut parts = text.split('\t');
    let protocol = parts.next()?.parse().ok()?;
    let baud = parts.next()?.parse().ok()?;
    let frequency_hz = parts.next().and_then(|f| f.parse().ok());
    Some(RadioSettings {
        protocol,
        baud,
        frequency_hz,
    })
}
