//! This browser's serial port as a radio link (Web Serial): opened with the chosen protocol's
//! framing, configured, then frames both ways until the port goes away.
//!
//! Ports and streams are called through `Reflect`, so a port object injected by a test (whose
//! streams the test connects to the radio simulator) works like a real one.

use js_sys::{Promise, Reflect, Uint8Array};
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::serial::Framing;
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

/// The writing half of an open port: frames in the protocol's framing, queued in order by
/// the stream.
pub(super) struct PortWriter {
    writer: JsValue,
    framing: Box<dyn Framing>,
    /// Writes that failed (a failed write shows up as a failed read too).
    pub(super) failed: u64,
}

/// The reading half of an open port.
pub(super) struct PortReader {
    reader: Option<JsValue>,
    framing: Box<dyn Framing>,
    /// Frames decoded but not handed out yet.
    pending: std::collections::VecDeque<Vec<u8>>,
    /// The link said it is up (the first event of every opened port).
    announced: bool,
    closed: bool,
}

/// A port the person chose, opened and configured for `settings`.
pub(super) struct Port {
    pub(super) port: JsValue,
    pub(super) writer: PortWriter,
    pub(super) reader: PortReader,
    /// Largest frame the protocol carries.
    pub(super) max_frame: usize,
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
        ..Default::default()
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
    Ok(Port {
        max_frame: framing.max_frame(),
        writer: PortWriter {
            writer,
            framing: settings.protocol.framing(&serial),
            failed: 0,
        },
        reader: PortReader {
            reader: Some(reader),
            framing,
            pending: Default::default(),
            announced: false,
            closed: false,
        },
        port,
    })
}

impl FrameSink for PortWriter {
    fn transmit(&mut self, frame: &[u8]) -> bool {
        let bytes = Uint8Array::from(self.framing.encode(frame).as_slice());
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
        if !std::mem::replace(&mut self.announced, true) {
            return Some(LinkEvent::Up("serial port open".into()));
        }
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(LinkEvent::Frame(frame));
            }
            if self.closed {
                return None;
            }
            let reader = self.reader.clone()?;
            let result = match call_async(&reader, "read", &[]).await {
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
            let before = self.framing.dropped();
            self.pending.extend(self.framing.decode(&bytes));
            let dropped = self.framing.dropped() - before;
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

    struct FakeRadio {
        protocol: Protocol,
        device: JsValue,
        framing: Box<dyn Framing>,
        heard: VecDeque<Vec<u8>>,
        next: mpsc::UnboundedSender<Port>,
    }

    async fn plug(protocol: Protocol) -> (Port, JsValue) {
        let pair = fake_port();
        let port = open(pair.get(0), &settings(protocol))
            .await
            .expect("the fake port opens");
        (port, pair.get(1))
    }

    impl Radio for FakeRadio {
        async fn hear(&mut self, frame: &[u8]) {
            device_send(
                &self.device,
                Uint8Array::from(self.framing.encode(frame).as_slice()),
            );
        }

        async fn babble(&mut self) {
            device_send(
                &self.device,
                Uint8Array::from(&b"boot: rst:0x1\r\n\xff\xfe noise \n"[..]),
            );
        }

        async fn hear_oversize(&mut self) {
            let bytes = self.framing.encode(&[0x41; 4000]);
            device_send(&self.device, Uint8Array::from(bytes.as_slice()));
        }

        async fn transmitted(&mut self) -> Vec<u8> {
            loop {
                if let Some(frame) = self.heard.pop_front() {
                    return frame;
                }
                let bytes = JsFuture::from(device_written(&self.device)).await.unwrap();
                let frames = self.framing.decode(&Uint8Array::new(&bytes).to_vec());
                self.heard.extend(frames);
            }
        }

        async fn unplug(&mut self) {
            device_unplug(&self.device);
        }

        async fn replug(&mut self) {
            let (port, device) = plug(self.protocol).await;
            self.device = device;
            self.framing = self.protocol.framing(&Default::default());
            self.next.unbounded_send(port).unwrap();
        }
    }

    async fn contract(protocol: Protocol) {
        let (port, device) = plug(protocol).await;
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
            framing: protocol.framing(&Default::default()),
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
}
