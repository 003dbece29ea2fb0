//! This browser's serial port as a radio link (Web Serial): opened with the chosen protocol's
//! framing, configured (for a Meshtastic node: its handshake, then a heartbeat every few
//! minutes), then frames both ways until the port goes away.
//!
//! Ports and streams are called through `Reflect`, so a port object injected by a test (whose
//! streams the test connects to the radio simulator) works like a real one.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Promise, Reflect, Uint8Array};
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::serial::{Framing, Readiness};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use app::RadioSettings;

pub(super) use crate::js::{call, call_async};

/// The browser's Web Serial, if it has one.
pub(super) fn serial() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    let serial = Reflect::get(&navigator, &"serial".into()).ok()?;
    (!serial.is_undefined() && !serial.is_null()).then_some(serial)
}

/// A JavaScript error as a sentence.
pub(super) fn error_text(error: &JsValue) -> String {
    crate::js::error_message(error).unwrap_or_else(|| "unknown error".into())
}

/// The protocol's framing, shared by both halves of a port (a Meshtastic node's handshake,
/// heard by the reader, decides what the writer may send).
type SharedFraming = Rc<RefCell<Box<dyn Framing>>>;

/// How often the framing is given the time (heartbeats, a handshake asked again).
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The writing half of an open port: frames in the protocol's framing, queued in order by
/// the stream.
pub(super) struct PortWriter {
    writer: JsValue,
    framing: SharedFraming,
    /// Writes that failed (a failed write shows up as a failed read too).
    pub(super) failed: u64,
}

/// The reading half of an open port.
pub(super) struct PortReader {
    reader: Option<JsValue>,
    /// The port's writer, for what the framing writes by itself (heartbeats).
    writer: JsValue,
    framing: SharedFraming,
    /// Frames decoded but not handed out yet.
    pending: std::collections::VecDeque<Vec<u8>>,
    /// The link said it is up (the first event once the radio is ready).
    announced: bool,
    /// The read under way, kept while a tick comes first (a read cannot be taken back).
    read: Option<JsFuture>,
    closed: bool,
}

/// A port the person chose, opened and configured for `settings`.
pub(super) struct Port {
    pub(super) port: JsValue,
    pub(super) writer: PortWriter,
    pub(super) reader: PortReader,
    /// Largest frame the protocol carries.
    pub(super) max_frame: usize,
    /// Whether FieldMesh floods on this link (not over Meshtastic, which floods by itself).
    pub(super) floods: bool,
}

/// Opens `port` with `settings` and writes the protocol's configuration. `Err` with a
/// sentence for the radio panel.
pub(super) async fn open(port: JsValue, settings: &RadioSettings) -> Result<Port, String> {
    let options = js_sys::Object::new();
    let _ = Reflect::set(&options, &"baudRate".into(), &settings.baud.into());
    if let Err(error) = call_async(&port, "open", &[options.into()]).await {
        // Already open (the page reconnected to a port it holds): carry on with it.
        let readable = Reflect::get(&port, &"readable".into()).unwrap_or(JsValue::NULL);
        if readable.is_null() || readable.is_undefined() {
            return Err(format!("could not open the radio: {}", error_text(&error)));
        }
    }
    let serial = mesh::serial::SerialSettings {
        rnode: settings.rnode,
        channel: settings.meshtastic_channel.parse().unwrap_or_default(),
        seed: u64::from_le_bytes(crate::device::random_bytes()),
    };
    let mut framing = settings.protocol.framing(&serial);
    let writer = Reflect::get(&port, &"writable".into())
        .and_then(|w| call(&w, "getWriter", &[]))
        .map_err(|error| format!("the radio cannot be written to: {}", error_text(&error)))?;
    for frame in framing.configure() {
        let bytes = Uint8Array::from(frame.as_slice());
        call_async(&writer, "write", &[bytes.into()])
            .await
            .map_err(|error| format!("configuring the radio failed: {}", error_text(&error)))?;
    }
    let reader = Reflect::get(&port, &"readable".into())
        .and_then(|r| call(&r, "getReader", &[]))
        .map_err(|error| format!("the radio cannot be read: {}", error_text(&error)))?;
    let (max_frame, floods) = (framing.max_frame(), framing.floods());
    let framing = Rc::new(RefCell::new(framing));
    Ok(Port {
        max_frame,
        floods,
        writer: PortWriter {
            writer: writer.clone(),
            framing: Rc::clone(&framing),
            failed: 0,
        },
        reader: PortReader {
            reader: Some(reader),
            writer,
            framing,
            pending: Default::default(),
            announced: false,
            read: None,
            closed: false,
        },
        port,
    })
}

impl FrameSink for PortWriter {
    fn transmit(&mut self, frame: &[u8]) -> bool {
        let encoded = self.framing.borrow_mut().encode(frame);
        if encoded.is_empty() {
            // The radio cannot take it now (a Meshtastic node before its handshake).
            return false;
        }
        let bytes = Uint8Array::from(encoded.as_slice());
        match call(&self.writer, "write", &[bytes.into()]).and_then(|p| p.dyn_into::<Promise>()) {
            Ok(promise) => {
                wasm_bindgen_futures::spawn_local(async move {
                    // A failed write shows up as a failed read too; the driver retries.
                    let _ = JsFuture::from(promise).await;
                });
                true
            }
            Err(_) => {
                self.failed += 1;
                false
            }
        }
    }
}

impl LinkEvents for PortReader {
    async fn next_event(&mut self) -> Option<LinkEvent> {
        loop {
            let readiness = self.framing.borrow().readiness();
            match readiness {
                Readiness::Ready(detail) if !self.announced => {
                    self.announced = true;
                    return Some(LinkEvent::Up(
                        detail.unwrap_or_else(|| "serial port open".into()),
                    ));
                }
                Readiness::Refused(reason) if !self.closed => {
                    self.closed = true;
                    return Some(LinkEvent::Down(reason));
                }
                _ => {}
            }
            if let Some(frame) = self.pending.pop_front() {
                if self.announced {
                    return Some(LinkEvent::Frame(frame));
                }
                continue;
            }
            if self.closed {
                return None;
            }
            let reader = self.reader.clone()?;
            let read = match self.read.take() {
                Some(read) => read,
                None => match call(&reader, "read", &[]).and_then(|p| p.dyn_into::<Promise>()) {
                    Ok(promise) => JsFuture::from(promise),
                    Err(error) => {
                        self.closed = true;
                        return Some(LinkEvent::Down(error_text(&error)));
                    }
                },
            };
            let tick = Box::pin(super::location::sleep(TICK_EVERY));
            let result = match futures::future::select(read, tick).await {
                futures::future::Either::Left((result, _)) => result,
                futures::future::Either::Right(((), read)) => {
                    self.read = Some(read);
                    let due = self.framing.borrow_mut().tick(js_sys::Date::now() as u64);
                    for bytes in due {
                        let bytes = Uint8Array::from(bytes.as_slice());
                        if let Err(error) = call_async(&self.writer, "write", &[bytes.into()]).await
                        {
                            self.closed = true;
                            return Some(LinkEvent::Down(error_text(&error)));
                        }
                    }
                    continue;
                }
            };
            let result = match result {
                Ok(result) => result,
                Err(error) => {
                    self.closed = true;
                    return Some(LinkEvent::Down(error_text(&error)));
                }
            };
            if Reflect::get(&result, &"done".into())
                .ok()
                .and_then(|d| d.as_bool())
                == Some(true)
            {
                self.closed = true;
                return Some(LinkEvent::Down("the port closed".into()));
            }
            let Ok(value) = Reflect::get(&result, &"value".into()) else {
                continue;
            };
            let bytes = Uint8Array::new(&value).to_vec();
            let mut framing = self.framing.borrow_mut();
            let before = framing.dropped();
            self.pending.extend(framing.decode(&bytes));
            for event in framing.take_events() {
                if let mesh::serial::DeviceEvent::Problem(problem) = event {
                    web_sys::console::warn_1(&format!("radio: {problem}").into());
                }
            }
            let dropped = framing.dropped() - before;
            if dropped > 0 {
                return Some(LinkEvent::Noise(dropped));
            }
        }
    }
}

impl Port {
    /// Lets go of the port: the read ends, the locks are released, the port closes.
    pub(super) async fn close(port: JsValue, writer: Option<PortWriter>, reader: Option<JsValue>) {
        if let Some(reader) = &reader {
            let _ = call_async(reader, "cancel", &[]).await;
            let _ = call(reader, "releaseLock", &[]);
        }
        if let Some(writer) = writer {
            let _ = call(&writer.writer, "releaseLock", &[]);
        }
        let _ = call_async(&port, "close", &[]).await;
    }
}

impl PortReader {
    /// The stream reader, for closing.
    pub(super) fn stream_reader(&self) -> Option<JsValue> {
        self.reader.clone()
    }
}

/// The link contract (`mesh::radio::contract`) against this port code in headless Chromium,
/// with a port object the test controls (no USB radio can be plugged in here; the object has
/// the streams of a real `SerialPort`, as the browser tests inject it).
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use std::collections::VecDeque;

    use futures::channel::mpsc;
    use futures::StreamExt;
    use mesh::radio::contract::{check, Radio};
    use mesh::serial::meshtastic::device::{answer, heard, HostWrites};
    use mesh::serial::Protocol;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen(inline_js = r#"
        export function fake_port() {
            const device = { written: [], waiters: [], controller: null };
            const port = {
                readable: null,
                writable: null,
                async open() {
                    port.readable = new ReadableStream({ start(c) { device.controller = c; } });
                    port.writable = new WritableStream({
                        write(chunk) {
                            device.written.push(...chunk);
                            device.waiters.splice(0).forEach((wake) => wake());
                        },
                    });
                },
                async close() {},
            };
            return [port, device];
        }
        export function device_send(device, bytes) { device.controller.enqueue(bytes); }
        export function device_unplug(device) {
            device.controller.error(new DOMException('The device has been lost.', 'NetworkError'));
        }
        export function device_written(device) {
            return new Promise((ok) => {
                const take = () => { const out = new Uint8Array(device.written); device.written = []; ok(out); };
                if (device.written.length) take(); else device.waiters.push(take);
            });
        }
    "#)]
    extern "C" {
        fn fake_port() -> js_sys::Array;
        fn device_send(device: &JsValue, bytes: Uint8Array);
        fn device_unplug(device: &JsValue);
        fn device_written(device: &JsValue) -> Promise;
    }

    fn settings(protocol: Protocol) -> RadioSettings {
        RadioSettings {
            protocol,
            baud: protocol.default_baud(),
            rnode: None,
            network_key: [0; 16],
            meshtastic_channel: "FieldMesh".into(),
        }
    }

    /// What the page holds: the open port's halves, and the next port once it is replugged
    /// (the engine reopens a radio plugged back in the same way).
    struct PageLink {
        writer: PortWriter,
        reader: PortReader,
        next: mpsc::UnboundedReceiver<Port>,
        ended: bool,
    }

    impl FrameSink for PageLink {
        fn transmit(&mut self, frame: &[u8]) -> bool {
            !self.ended && self.writer.transmit(frame)
        }
    }

    impl LinkEvents for PageLink {
        async fn next_event(&mut self) -> Option<LinkEvent> {
            if self.ended {
                let port = self.next.next().await?;
                self.writer = port.writer;
                self.reader = port.reader;
                self.ended = false;
            }
            let event = self.reader.next_event().await;
            if matches!(event, Some(LinkEvent::Down(_)) | None) {
                self.ended = true;
            }
            event
        }
    }

    /// The device's side of the protocol: KISS and lines frame the same both ways; a
    /// Meshtastic node answers the handshake and wraps frames in its own messages.
    enum DeviceSide {
        Framed(Box<dyn Framing>),
        Meshtastic(HostWrites),
    }

    /// The fake Meshtastic node's number and another node heard through it.
    const NODE: u32 = 0x0A0B_0C0D;
    const OTHER: u32 = 0x0BAD_CAFE;

    struct FakeRadio {
        protocol: Protocol,
        device: JsValue,
        side: DeviceSide,
        heard: VecDeque<Vec<u8>>,
        next: mpsc::UnboundedSender<Port>,
    }

    /// Plugs a fake radio in; a Meshtastic node answers the page's handshake (its primary
    /// channel and FieldMesh, #1).
    async fn plug(protocol: Protocol) -> (Port, JsValue, DeviceSide) {
        let pair = fake_port();
        let port = open(pair.get(0), &settings(protocol))
            .await
            .expect("the fake port opens");
        let device = pair.get(1);
        let side = if protocol == Protocol::Meshtastic {
            let mut writes = HostWrites::default();
            let nonce = loop {
                let bytes = JsFuture::from(device_written(&device)).await.unwrap();
                if let Some(nonce) = writes.handshake(&Uint8Array::new(&bytes).to_vec()) {
                    break nonce;
                }
            };
            device_send(
                &device,
                Uint8Array::from(answer(NODE, &["", "FieldMesh"], nonce).as_slice()),
            );
            DeviceSide::Meshtastic(writes)
        } else {
            DeviceSide::Framed(protocol.framing(&Default::default()))
        };
        (port, device, side)
    }

    impl Radio for FakeRadio {
        async fn hear(&mut self, frame: &[u8]) {
            let bytes = match &mut self.side {
                DeviceSide::Framed(framing) => framing.encode(frame),
                DeviceSide::Meshtastic(_) => heard(OTHER, 1, frame),
            };
            device_send(&self.device, Uint8Array::from(bytes.as_slice()));
        }

        async fn babble(&mut self) {
            device_send(
                &self.device,
                Uint8Array::from(&b"boot: rst:0x1\r\n\xff\xfe noise \n"[..]),
            );
        }

        async fn hear_oversize(&mut self) {
            let bytes = match &mut self.side {
                DeviceSide::Framed(framing) => framing.encode(&[0x41; 4000]),
                // A length over the stream's 512-byte limit.
                DeviceSide::Meshtastic(_) => [&[0x94, 0xC3, 0x7F, 0xFF][..], &[0x41; 600]].concat(),
            };
            device_send(&self.device, Uint8Array::from(bytes.as_slice()));
        }

        async fn transmitted(&mut self) -> Vec<u8> {
            loop {
                if let Some(frame) = self.heard.pop_front() {
                    return frame;
                }
                let bytes = JsFuture::from(device_written(&self.device)).await.unwrap();
                let bytes = Uint8Array::new(&bytes).to_vec();
                let frames = match &mut self.side {
                    DeviceSide::Framed(framing) => framing.decode(&bytes),
                    DeviceSide::Meshtastic(writes) => writes.frames(&bytes),
                };
                self.heard.extend(frames);
            }
        }

        async fn unplug(&mut self) {
            device_unplug(&self.device);
        }

        async fn replug(&mut self) {
            let (port, device, side) = plug(self.protocol).await;
            self.device = device;
            self.side = side;
            self.next.unbounded_send(port).unwrap();
        }
    }

    async fn contract(protocol: Protocol) {
        let (port, device, side) = plug(protocol).await;
        let (next, next_rx) = mpsc::unbounded();
        let mut link = PageLink {
            writer: port.writer,
            reader: port.reader,
            next: next_rx,
            ended: false,
        };
        let mut radio = FakeRadio {
            protocol,
            device,
            side,
            heard: VecDeque::new(),
            next,
        };
        check(&mut link, &mut radio, |_| {}).await;
    }

    #[wasm_bindgen_test]
    async fn the_web_serial_port_keeps_the_link_contract_with_kiss() {
        contract(Protocol::Kiss).await;
    }

    #[wasm_bindgen_test]
    async fn the_web_serial_port_keeps_the_link_contract_with_lines() {
        contract(Protocol::Line).await;
    }

    #[wasm_bindgen_test]
    async fn the_web_serial_port_keeps_the_link_contract_with_a_meshtastic_node() {
        contract(Protocol::Meshtastic).await;
    }
}
