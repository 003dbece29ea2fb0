//! This browser's serial port as a radio link (Web Serial): opened with the chosen protocol's
//! framing, configured, then frames both ways until the port goes away.
//!
//! Ports and streams are called through `Reflect`, so a port object injected by a test (whose
//! streams the test connects to the radio simulator) works like a real one.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::serial::{Framing, RnodeSettings};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use app::RadioSettings;

/// The browser's Web Serial, if it has one.
pub(super) fn serial() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    let serial = Reflect::get(&navigator, &"serial".into()).ok()?;
    (!serial.is_undefined() && !serial.is_null()).then_some(serial)
}

/// Calls `object.name(args…)`.
pub(super) fn call(object: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &name.into())?.dyn_into()?;
    function.apply(object, &args.iter().collect::<Array>())
}

/// Calls `object.name(args…)` and awaits the promise it returns.
pub(super) async fn call_async(
    object: &JsValue,
    name: &str,
    args: &[JsValue],
) -> Result<JsValue, JsValue> {
    let promise: Promise = call(object, name, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

/// A JavaScript error as a sentence.
pub(super) fn error_text(error: &JsValue) -> String {
    Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".into())
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
    port: JsValue,
    reader: Option<JsValue>,
    framing: Box<dyn Framing>,
    /// Frames decoded but not handed out yet.
    pending: std::collections::VecDeque<Vec<u8>>,
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
    let rnode = settings.frequency_hz.map(RnodeSettings::new);
    let framing = settings.protocol.framing(rnode);
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
            framing: settings.protocol.framing(rnode),
            failed: 0,
        },
        reader: PortReader {
            port: port.clone(),
            reader: Some(reader),
            framing,
            pending: Default::default(),
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

    /// The port it reads.
    pub(super) fn port(&self) -> JsValue {
        self.port.clone()
    }
}
