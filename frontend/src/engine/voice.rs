//! Voice notes: recorded while the button is held (the browser's `MediaRecorder`, Opus where
//! it offers it), at most [`MAX_MS`], then attached to the message like a picked file.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Object, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::Engine;
use crate::js;

/// The longest voice note.
pub(super) const MAX_MS: u32 = 2 * 60 * 1000;
/// Shorter than this is a tap, not a note: nothing is attached.
const MIN_MS: f64 = 500.0;
/// Containers tried in order: Opus first.
const TYPES: [&str; 4] = [
    "audio/webm;codecs=opus",
    "audio/ogg;codecs=opus",
    "audio/mp4",
    "audio/webm",
];
/// About 3 KB a second: two minutes in under 400 KB.
const BITS_PER_SECOND: u32 = 24_000;

/// The voice part.
#[derive(Default)]
pub(super) struct Voice {
    /// The button is held (a release before the microphone opened stops at once).
    held: Cell<bool>,
    /// The microphone is being opened: another press only holds the button again.
    opening: Cell<bool>,
    recording: RefCell<Option<Recording>>,
}

struct Recording {
    recorder: JsValue,
    stream: JsValue,
    parts: Array,
    started_ms: f64,
    ticker: Option<IntervalHandle>,
    _on_data: Closure<dyn FnMut(JsValue)>,
}

impl Voice {
    /// The record button went down.
    pub(super) fn start(&self, engine: &Rc<Engine>) {
        if self.held.replace(true) || self.opening.get() || self.recording.borrow().is_some() {
            return;
        }
        self.opening.set(true);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let opened = open().await;
            engine.voice.opening.set(false);
            match opened {
                Ok(recording) => {
                    let weak = Rc::downgrade(&engine);
                    let started = recording.started_ms;
                    let ticker = set_interval_with_handle(
                        move || {
                            let Some(engine) = weak.upgrade() else { return };
                            let elapsed = js_sys::Date::now() - started;
                            engine.state.recording.set(Some((elapsed / 1000.0) as u32));
                            if elapsed >= f64::from(MAX_MS) {
                                engine.voice.stop(&engine);
                            }
                        },
                        Duration::from_millis(250),
                    )
                    .ok();
                    *engine.voice.recording.borrow_mut() = Some(Recording {
                        ticker,
                        ..recording
                    });
                    engine.state.recording.set(Some(0));
                    // Let go while the microphone was opening.
                    if !engine.voice.held.get() {
                        engine.voice.held.set(true);
                        engine.voice.stop(&engine);
                    }
                }
                Err(error) => {
                    engine.voice.held.set(false);
                    engine.notice(format!("The microphone is not available: {error}."));
                }
            }
        });
    }

    /// The record button came up: the note is attached (unless it was only a tap).
    pub(super) fn stop(&self, engine: &Rc<Engine>) {
        if !self.held.replace(false) {
            return;
        }
        let Some(recording) = self.recording.borrow_mut().take() else {
            return;
        };
        engine.state.recording.set(None);
        if let Some(ticker) = &recording.ticker {
            ticker.clear();
        }
        let millis = (js_sys::Date::now() - recording.started_ms).min(f64::from(MAX_MS));
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let file = finish(&recording).await;
            if millis < MIN_MS {
                return engine
                    .notice("Hold the button down while you speak to record a voice note.");
            }
            match file {
                Ok(file) => engine.files.attach_voice(&engine, file, millis as u32),
                Err(error) => engine.notice(format!("The voice note was not kept: {error}.")),
            }
        });
    }
}

/// Opens the microphone and starts recording.
async fn open() -> Result<Recording, String> {
    let global = js_sys::global();
    let fail = |error: JsValue| -> String {
        js::error_message(&error)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "this browser cannot record".into())
    };
    let class = Reflect::get(&global, &"MediaRecorder".into()).map_err(fail)?;
    if !class.is_function() {
        return Err("this browser cannot record".into());
    }
    let devices = Reflect::get(&global, &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"mediaDevices".into()))
        .map_err(fail)?;
    if devices.is_undefined() {
        return Err("this page cannot use the microphone here (it needs HTTPS)".into());
    }
    let wanted = Object::new();
    Reflect::set(&wanted, &"audio".into(), &JsValue::TRUE).map_err(fail)?;
    let stream = js::call_async(&devices, "getUserMedia", &[wanted.into()])
        .await
        .map_err(fail)?;
    let media_type = TYPES.into_iter().find(|t| {
        js::call(&class, "isTypeSupported", &[(*t).into()])
            .ok()
            .and_then(|s| s.as_bool())
            .unwrap_or(false)
    });
    let options = Object::new();
    if let Some(media_type) = media_type {
        Reflect::set(&options, &"mimeType".into(), &media_type.into()).map_err(fail)?;
    }
    Reflect::set(
        &options,
        &"audioBitsPerSecond".into(),
        &BITS_PER_SECOND.into(),
    )
    .map_err(fail)?;
    let recorder = Reflect::construct(
        class.unchecked_ref::<js_sys::Function>(),
        &Array::of2(&stream, &options),
    )
    .map_err(fail)?;
    let parts = Array::new();
    let kept = parts.clone();
    let on_data = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        if let Ok(data) = Reflect::get(&event, &"data".into()) {
            kept.push(&data);
        }
    });
    Reflect::set(&recorder, &"ondataavailable".into(), on_data.as_ref()).map_err(fail)?;
    // A piece every second: a page closed mid-note loses at most the last second's.
    js::call(&recorder, "start", &[1000.into()]).map_err(fail)?;
    Ok(Recording {
        recorder,
        stream,
        parts,
        started_ms: js_sys::Date::now(),
        ticker: None,
        _on_data: on_data,
    })
}

/// Stops the recorder and the microphone, and makes the note a file.
async fn finish(recording: &Recording) -> Result<web_sys::File, String> {
    let recorder = &recording.recorder;
    let stopped = js_sys::Promise::new(&mut |resolve, _| {
        let _ = Reflect::set(recorder, &"onstop".into(), &resolve);
    });
    let result = js::call(recorder, "stop", &[]);
    if result.is_ok() {
        let _ = wasm_bindgen_futures::JsFuture::from(stopped).await;
    }
    if let Ok(tracks) = js::call(&recording.stream, "getTracks", &[]) {
        for track in Array::from(&tracks) {
            let _ = js::call(&track, "stop", &[]);
        }
    }
    let media_type = Reflect::get(recorder, &"mimeType".into())
        .ok()
        .and_then(|t| t.as_string())
        .unwrap_or_else(|| "audio/webm".into());
    let extension = match media_type.split(';').next().unwrap_or_default() {
        "audio/ogg" => "ogg",
        "audio/mp4" => "m4a",
        _ => "webm",
    };
    let name = format!("voice note.{extension}");
    let file = js::new_file(&recording.parts, &name, &media_type)
        .map_err(|_| "the recording could not be kept".to_string())?;
    Ok(file.unchecked_into())
}
