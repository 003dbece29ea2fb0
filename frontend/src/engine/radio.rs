//! This browser's own radio over Web Serial, driven by the same radio driver as the server's
//! (`mesh::radio::Driver`: relay node, airtime pacing, resends with growing pauses, a give-up
//! after a day), with the same framing, radio form and encryption.
//!
//! Direct mode: the page is a mesh node of its own. Messages written here go out over the
//! radio (from the outbox, so an unplugged radio loses nothing: they go out after the
//! reconnect), and messages heard are stored on the device and queued for upload to a server
//! when one is reachable. Lend mode: the page is its server's radio link; frames heard go up
//! the WebSocket, frames the server's driver sends come down to the radio.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use app::{RadioSettings, WebRadio};
use js_sys::{Array, Promise, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::crypto::RoomKey;
use mesh::hex::{decode as unhex, encode as hex};
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::radio::{
    Driver, DriverConfig, Event, MessageKey, NetworkKey, NodeConfig, OwnMessage, RadioError,
    RadioMessage,
};
use mesh::serial::RnodeSettings;
use mesh::{ClientFrame, Envelope, Kind, MessageId, RoomId, StoredMessage};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::inbox::radio_record_of;
use super::webserial::{self, call, call_async, error_text, Port, PortReader, PortWriter};
use super::{mark, Engine};
use crate::db::LOCAL_ORDER_BASE;
use crate::device;

/// The radio part.
pub(super) struct Radio {
    state: RefCell<State>,
}

struct State {
    /// The open port: its writer, and what closing it needs.
    link: Option<Link>,
    driver: Driver,
    /// Bumped on every connect and disconnect, so a read loop of an old port stops.
    generation: u32,
    /// The person wants the radio lent to the server (kept across reconnects).
    want_lend: bool,
    /// The server accepted the lending on the current connection.
    lending: bool,
    /// The driver's next timer, if one is set.
    timer_at: Option<u64>,
    /// This camp's name, from its server: what this device's receipts say.
    camp: Option<String>,
}

/// A radio message is answered with a receipt when the server stored it this recently (older
/// ones are history: their senders heard from this camp long ago, or gave up).
const RECEIPT_WITHIN_MS: u64 = 10 * 60 * 1000;
/// The setting that keeps the mesh network key this device was last given.
const NETWORK_KEY_SETTING: &str = "network-key";

struct Link {
    port: JsValue,
    writer: PortWriter,
    reader: Option<JsValue>,
}

impl Default for Radio {
    fn default() -> Self {
        Self {
            state: RefCell::new(State {
                link: None,
                driver: Driver::new(
                    DriverConfig::default(),
                    u64::from_le_bytes(device::random_bytes()),
                ),
                generation: 0,
                want_lend: false,
                lending: false,
                timer_at: None,
                camp: None,
            }),
        }
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn show(engine: &Engine, change: impl FnOnce(&mut WebRadio)) {
    engine.state.web_radio.update(change);
}

impl Radio {
    /// Finds out whether this browser has Web Serial, and reconnects a radio it was allowed
    /// to use before (no picker needed for those).
    pub(super) fn init(&self, engine: &Rc<Engine>) {
        let Some(serial) = webserial::serial() else {
            return show(engine, |r| {
                r.supported = false;
                r.status = "no Web Serial in this browser".into();
            });
        };
        show(engine, |r| {
            r.supported = true;
            r.status = "not connected".into();
        });
        // A radio plugged back in: reconnect with the settings used last.
        let weak = Rc::downgrade(engine);
        let on_connect = Closure::<dyn Fn()>::new(move || {
            if let Some(engine) = weak.upgrade() {
                spawn_local(reconnect(engine));
            }
        });
        let _ = Reflect::set(&serial, &"onconnect".into(), on_connect.as_ref());
        on_connect.forget();
        spawn_local(reconnect(Rc::clone(engine)));
    }

    /// Asks for a port with the browser's picker (this must run in the click's task) and
    /// connects.
    pub(super) fn connect(&self, engine: &Rc<Engine>, settings: RadioSettings) {
        let Some(serial) = webserial::serial() else {
            return;
        };
        show(engine, |r| {
            r.status = "choose the radio in the browser's list of ports…".into();
        });
        let request = call(&serial, "requestPort", &[]).and_then(|p| p.dyn_into::<Promise>());
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let port = match request {
                Ok(promise) => JsFuture::from(promise).await,
                Err(error) => Err(error),
            };
            match port {
                Ok(port) => open(engine, port, settings).await,
                Err(error) => show(&engine, |r| {
                    r.status = format!("no radio chosen ({})", error_text(&error));
                }),
            }
        });
    }

    /// Closes the radio at the person's request.
    pub(super) fn disconnect(&self, engine: &Rc<Engine>) {
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if engine.radio.state.borrow().lending {
                engine.connection.send(&ClientFrame::StopLending);
            }
            close_link(&engine).await;
            show(&engine, |r| {
                r.connected = false;
                r.lending = false;
                r.status = "disconnected".into();
            });
        });
    }

    /// Lends the radio to the server, or takes it back.
    pub(super) fn lend(&self, engine: &Rc<Engine>, lend: bool) {
        self.state.borrow_mut().want_lend = lend;
        if lend {
            let name = engine.session.name();
            let label = if name.is_empty() {
                "a browser".to_string()
            } else {
                format!("{name}'s browser")
            };
            if !engine.connection.send(&ClientFrame::LendRadio { label }) {
                show(engine, |r| {
                    r.lend_detail = Some("lent as soon as the server is reachable".into())
                });
            }
        } else {
            engine.connection.send(&ClientFrame::StopLending);
            self.state.borrow_mut().lending = false;
            show(engine, |r| {
                r.lending = false;
                r.lend_detail = None;
            });
            self.resume(engine);
        }
    }

    /// The camp's name and mesh network key, from its server: receipts name the camp, and
    /// direct mode uses the key (kept for when no server is reachable).
    /// The name of the camp this device's server is in, when it has a radio.
    pub(super) fn camp(&self) -> Option<String> {
        self.state.borrow().camp.clone()
    }

    pub(super) fn on_camp(
        &self,
        engine: &Rc<Engine>,
        name: String,
        key: Option<[u8; mesh::radio::network::NETWORK_KEY_BYTES]>,
    ) {
        self.state.borrow_mut().camp = Some(name);
        let Some(key) = key.map(NetworkKey::from_bytes) else {
            return;
        };
        let words = key.to_words();
        show(engine, |r| r.camp_key_words = Some(words.clone()));
        if let Some(db) = engine.db() {
            spawn_local(async move {
                let _ = db.set_setting(NETWORK_KEY_SETTING, Some(&words)).await;
            });
        }
    }

    /// Shows the network key this device was last given, to fill in for direct mode.
    pub(super) async fn load_camp_key(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        if let Ok(Some(words)) = db.setting(NETWORK_KEY_SETTING).await {
            show(engine, |r| {
                r.camp_key_words.get_or_insert(words);
            });
        }
    }

    /// Messages arrived from the server in `room`: a receipt from another camp marks the
    /// message it names as delivered there; a message that came over the radio to this camp
    /// lately is answered with this camp's receipt (the server sends each camp's once).
    pub(super) fn receipts(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        key: &RoomKey,
        messages: &[StoredMessage],
    ) {
        let camp = self.state.borrow().camp.clone();
        let now = now_ms();
        for stored in messages.iter().filter(|m| m.envelope.kind == Kind::Radio) {
            let Some(message) = RadioMessage::from_envelope(&stored.envelope) else {
                continue;
            };
            let Ok(opened) = message.open(key) else {
                continue;
            };
            match (opened.receipt_for, &camp) {
                (Some(of), _) => self.delivered(engine, room, of, opened.author),
                (None, Some(camp)) if now.abs_diff(stored.received_at_ms) < RECEIPT_WITHIN_MS => {
                    let receipt =
                        RadioMessage::seal_receipt(key, message.key, (now / 1000) as u32, camp);
                    let mut id = [0u8; 16];
                    id[..6].copy_from_slice(&receipt.key.id);
                    engine.connection.send(&ClientFrame::SendReceipt {
                        room,
                        id: MessageId(id),
                        payload: receipt.payload,
                    });
                }
                _ => {}
            }
        }
    }

    /// A receipt: `camp` has the message of `room` whose radio id is `of`.
    fn delivered(&self, engine: &Rc<Engine>, room: RoomId, of: [u8; 6], camp: String) {
        let Some(db) = engine.db() else { return };
        let Some(camp) = mesh::body::clean_display_name(&camp) else {
            return;
        };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            match db.mark_delivered(&hex(&room.0), &hex(&of), &camp).await {
                Ok(true) if engine.session.is_current(room) => engine.inbox.changed(&engine),
                Ok(_) => {}
                Err(error) => leptos::logging::warn!("could not note a receipt: {}", error.0),
            }
        });
    }

    /// The server's answer about lending.
    pub(super) fn on_lending(&self, engine: &Rc<Engine>, active: bool, detail: String) {
        {
            let mut state = self.state.borrow_mut();
            state.lending = active;
            if active {
                // The server's driver carries the radio now; this page's waits.
                state.driver.link_down();
            } else {
                state.want_lend = false;
            }
        }
        if !active {
            self.resume(engine);
        }
        show(engine, |r| {
            r.lending = active;
            r.lend_detail = Some(detail);
        });
    }

    /// A frame the server's driver wants the lent radio to transmit.
    pub(super) fn on_server_frame(&self, engine: &Rc<Engine>, frame: Vec<u8>) {
        if self.state.borrow().lending {
            self.write(engine, &frame);
        }
    }

    /// The server connection ended: a lending ends with it (it resumes on reconnect).
    pub(super) fn on_disconnect(&self, engine: &Rc<Engine>) {
        let was = std::mem::replace(&mut self.state.borrow_mut().lending, false);
        if was {
            show(engine, |r| {
                r.lending = false;
                r.lend_detail =
                    Some("the server is away; the radio works on its own meanwhile".into());
            });
            self.resume(engine);
        }
    }

    /// The server connection is ready: lend again if the person wanted to.
    pub(super) fn on_online(&self, engine: &Rc<Engine>) {
        let (want, connected) = {
            let state = self.state.borrow();
            (state.want_lend, state.link.is_some())
        };
        if want && connected {
            self.lend(engine, true);
        }
    }

    /// The page drives its radio itself again (lending ended): the driver's link is up.
    fn resume(&self, engine: &Rc<Engine>) {
        if self.state.borrow().link.is_none() {
            return;
        }
        let events = self.state.borrow_mut().driver.link_up(now_ms());
        act(engine, events);
        let engine = Rc::clone(engine);
        spawn_local(async move { engine.radio.send_outbox(&engine).await });
    }

    /// Direct mode: hands the driver every message of the outbox with a radio form (after a
    /// connect, a reconnect, or a message written); it carries each once, and starts them
    /// while the radio is connected and not lent.
    pub(super) async fn send_outbox(&self, engine: &Rc<Engine>) {
        if self.state.borrow().link.is_none() {
            return;
        }
        let Some(db) = engine.db() else { return };
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
                message: RadioMessage {
                    key: MessageKey::of(envelope.room, envelope.id),
                    payload: entry.radio.clone(),
                },
                queued_at_ms: envelope.created_at_ms,
                urgent: entry.urgent,
            };
            let _ = self.state.borrow_mut().driver.queue(now_ms(), own);
        }
        let events = self.state.borrow_mut().driver.poll(now_ms());
        act(engine, events);
    }

    /// Writes one radio frame to the port.
    fn write(&self, engine: &Rc<Engine>, frame: &[u8]) {
        let written = match self.state.borrow_mut().link.as_mut() {
            Some(link) => link.writer.transmit(frame),
            None => return,
        };
        if written {
            show(engine, |r| r.frames_out += 1);
        } else {
            show(engine, |r| r.errors += 1);
        }
    }

    /// A frame the radio heard.
    fn heard(&self, engine: &Rc<Engine>, frame: Vec<u8>) {
        show(engine, |r| {
            r.frames_in += 1;
            r.status = "receiving".into();
        });
        if self.state.borrow().lending {
            engine.connection.send(&ClientFrame::RadioFrame { frame });
            return;
        }
        let events = self.state.borrow_mut().driver.receive(now_ms(), &frame);
        match events {
            Ok(events) => act(engine, events),
            Err(RadioError::ClockSkew { minutes }) => show(engine, |r| {
                r.errors += 1;
                r.clock_skew_minutes = Some(minutes);
            }),
            Err(_) => show(engine, |r| r.errors += 1),
        }
    }

    /// Sets a timer for the driver's next frame, retry, rebroadcast or resend.
    fn schedule(&self, engine: &Rc<Engine>) {
        let at = {
            let mut state = self.state.borrow_mut();
            let Some(at) = state.driver.next_wakeup() else {
                return;
            };
            if state.timer_at.is_some_and(|t| t <= at && t >= now_ms()) {
                return;
            }
            state.timer_at = Some(at);
            at
        };
        let weak = Rc::downgrade(engine);
        let _ = set_timeout_with_handle(
            move || {
                if let Some(engine) = weak.upgrade() {
                    let events = {
                        let mut state = engine.radio.state.borrow_mut();
                        state.timer_at = None;
                        state.driver.poll(now_ms())
                    };
                    act(&engine, events);
                }
            },
            Duration::from_millis(at.saturating_sub(now_ms())),
        );
    }
}

/// Carries out what the driver asks.
fn act(engine: &Rc<Engine>, events: Vec<Event>) {
    for event in events {
        match event {
            Event::Transmit(frame) => engine.radio.write(engine, &frame),
            Event::Heard(message) => spawn_local(store_heard(Rc::clone(engine), message)),
            Event::Relayed(own) => engine.inbox.mark_relayed(engine, own.id),
            // It stays in the outbox for a server; only the radio stops trying.
            Event::GaveUp(own) => {
                leptos::logging::warn!("no camp confirmed radio message {} in a day", own.id)
            }
        }
    }
    engine.radio.schedule(engine);
}

/// Opens the first port this site may use, with the saved settings, if not connected.
async fn reconnect(engine: Rc<Engine>) {
    if engine.radio.state.borrow().link.is_some() {
        return;
    }
    let Some(serial) = webserial::serial() else {
        return;
    };
    let Some(db) = engine.db() else { return };
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
        open(engine, ports.get(0), settings).await;
    }
}

async fn open(engine: Rc<Engine>, port: JsValue, settings: RadioSettings) {
    close_link(&engine).await;
    show(&engine, |r| r.status = "opening the port…".into());
    let opened = webserial::open(port, &settings).await;
    let Port {
        port,
        writer,
        reader,
        max_frame,
        floods,
    } = match opened {
        Ok(port) => port,
        Err(status) => {
            return show(&engine, |r| {
                r.connected = false;
                r.errors += 1;
                r.status = status;
            })
        }
    };
    let generation = {
        let mut state = engine.radio.state.borrow_mut();
        state.generation += 1;
        state.driver = Driver::new(
            DriverConfig {
                node: NodeConfig {
                    frame_bytes: max_frame,
                    network: NetworkKey::from_bytes(settings.network_key),
                    bitrate_bps: settings.protocol.default_bitrate(),
                    // Where the radio network floods by itself (Meshtastic), FieldMesh's
                    // neighbours acknowledge and do not relay.
                    hop_limit: if floods {
                        mesh::radio::DEFAULT_HOP_LIMIT
                    } else {
                        0
                    },
                    ..NodeConfig::default()
                },
                ..DriverConfig::default()
            },
            u64::from_le_bytes(device::random_bytes()),
        );
        state.link = Some(Link {
            port,
            writer,
            reader: reader.stream_reader(),
        });
        state.generation
    };
    if let Some(db) = engine.db() {
        let _ = db
            .set_setting("radio", Some(&settings_text(&settings)))
            .await;
    }
    let network = NetworkKey::from_bytes(settings.network_key);
    show(&engine, |r| {
        r.connected = true;
        r.protocol = settings.protocol;
        r.status = if floods {
            "connected".into()
        } else {
            "connected; waiting for the Meshtastic node's answer…".into()
        };
        r.clock_skew_minutes = None;
        r.mesh = if network.is_open_mesh() {
            "the open mesh".into()
        } else {
            format!("mesh key {}", network.fingerprint())
        };
    });
    mark("fieldmesh:radio-connected");
    // The link is up (and messages start) once the radio says so: at once for a plain
    // serial radio, after its handshake for a Meshtastic node.
    spawn_local(read(Rc::clone(&engine), reader, generation, floods));
    engine.radio.send_outbox(&engine).await;
}

/// Reads the radio until it goes away.
async fn read(engine: Rc<Engine>, mut reader: PortReader, generation: u32, floods: bool) {
    while let Some(event) = reader.next_event().await {
        if engine.radio.state.borrow().generation != generation {
            return;
        }
        match event {
            LinkEvent::Frame(frame) => engine.radio.heard(&engine, frame),
            LinkEvent::Noise(dropped) => show(&engine, |r| r.errors += dropped),
            // Plain Meshtastic text is shown through a camp's server, not in direct mode yet.
            LinkEvent::Text(_) | LinkEvent::Channel(_) => {}
            LinkEvent::Up(detail) => up(&engine, &detail, floods),
            LinkEvent::Down(why) => return lost(&engine, generation, &why),
        }
    }
}

/// The radio is ready: lend it, or start what waits for it. A radio that floods by itself
/// (Meshtastic) is not lent: the server would send its frames for a radio that relays.
fn up(engine: &Rc<Engine>, detail: &str, floods: bool) {
    if detail.starts_with("Meshtastic") {
        show(engine, |r| r.status = format!("connected · {detail}"));
    }
    let want_lend = floods && engine.radio.state.borrow().want_lend;
    if want_lend {
        engine.radio.lend(engine, true);
    } else {
        let events = engine.radio.state.borrow_mut().driver.link_up(now_ms());
        act(engine, events);
    }
}

/// The port failed or was unplugged: messages stay in the outbox for the reconnect.
fn lost(engine: &Rc<Engine>, generation: u32, why: &str) {
    {
        let mut state = engine.radio.state.borrow_mut();
        if state.generation != generation {
            return;
        }
        state.link = None;
        state.generation += 1;
        state.driver.link_down();
    }
    if engine.radio.state.borrow().lending {
        engine.connection.send(&ClientFrame::StopLending);
    }
    show(engine, |r| {
        r.connected = false;
        r.errors += 1;
        r.status = format!("radio lost ({why}); plug it back in: queued messages wait");
    });
    mark("fieldmesh:radio-lost");
}

async fn close_link(engine: &Rc<Engine>) {
    let link = {
        let mut state = engine.radio.state.borrow_mut();
        state.generation += 1;
        state.driver.link_down();
        state.link.take()
    };
    if let Some(link) = link {
        Port::close(link.port, Some(link.writer), link.reader).await;
    }
}

/// Direct mode: a whole message heard. Stored on the device in the room it opens in, and
/// queued for upload to a server.
async fn store_heard(engine: Rc<Engine>, message: RadioMessage) {
    let Some(db) = engine.db() else { return };
    let mut keys = vec![RoomKey::emergency()];
    if let Ok(rooms) = db.rooms().await {
        keys.extend(
            rooms
                .iter()
                .filter_map(|r| unhex::<32>(&r.key).map(RoomKey::from_bytes)),
        );
    }
    let Some((key, opened)) = keys.into_iter().find_map(|k| {
        let opened = message
            .key
            .is_in(k.room_id())
            .then(|| message.open(&k).ok())??;
        Some((k, opened))
    }) else {
        return; // a room this device does not read
    };
    let room = key.room_id();
    if let Some(of) = opened.receipt_for {
        return engine.radio.delivered(&engine, room, of, opened.author);
    }
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
        Err(error) => return engine.notice(format!("Could not keep a radio message: {}", error.0)),
    }
    if matches!(record.signal, Some(mesh::body::Signal::Live { .. })) {
        engine
            .nearby
            .note(&engine, &record.room, std::slice::from_ref(&record));
    } else if engine.session.is_current(room) {
        engine.inbox.changed(&engine);
    }
    mark("fieldmesh:radio-message");
    engine.outbox.heard_queued(&engine);
}

fn settings_text(settings: &RadioSettings) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        settings.protocol.name(),
        settings.baud,
        settings
            .rnode
            .map(|r| format!(
                "{},{},{},{},{}",
                r.frequency_hz, r.bandwidth_hz, r.tx_power_dbm, r.spreading_factor, r.coding_rate
            ))
            .unwrap_or_default(),
        hex(&settings.network_key),
        settings.meshtastic_channel.replace(['\t', '\n'], " ")
    )
}

fn parse_settings(text: &str) -> Option<RadioSettings> {
    let mut parts = text.split('\t');
    let protocol = parts.next()?.parse().ok()?;
    let baud = parts.next()?.parse().ok()?;
    // "frequency,bandwidth,power,spreading factor,coding rate", or (saved by earlier releases)
    // the frequency alone.
    let rnode = parts.next().and_then(|text| {
        let numbers: Vec<u32> = text
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        match numbers[..] {
            [frequency] => Some(RnodeSettings::new(frequency)),
            [frequency_hz, bandwidth_hz, power, sf, cr] => Some(RnodeSettings {
                frequency_hz,
                bandwidth_hz,
                tx_power_dbm: u8::try_from(power).ok()?,
                spreading_factor: u8::try_from(sf).ok()?,
                coding_rate: u8::try_from(cr).ok()?,
            }),
            _ => None,
        }
    });
    // Settings saved before radio frames carried a network key have none: the person picks
    // one again.
    let network_key = unhex(parts.next()?)?;
    // Settings saved before Meshtastic radios have no channel: the node's primary.
    let meshtastic_channel = parts.next().unwrap_or_default().to_string();
    Some(RadioSettings {
        protocol,
        baud,
        rnode,
        network_key,
        meshtastic_channel,
    })
}
