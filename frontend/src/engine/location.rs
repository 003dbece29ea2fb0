//! This phone's position: watched (the Geolocation API; GPS needs no network) only while the
//! person chose to send it, and put in the messages they send then.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Reflect};
use leptos::prelude::*;
use mesh::geo::Position;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::Engine;
use crate::js;

/// A fix older than this is not sent as where the person is now.
const FRESH_MS: u64 = 2 * 60 * 1000;
/// What the phone may answer with: a fix it took this recently.
const MAXIMUM_AGE_MS: u32 = 10_000;
/// How long an SOS waits for a fix before it goes without one.
const SOS_FIX_TIMEOUT_MS: u32 = 8_000;

/// The location part.
#[derive(Default)]
pub(super) struct Location {
    watch: RefCell<Option<Watch>>,
}

/// A running `watchPosition`, with the callbacks it calls.
struct Watch {
    id: JsValue,
    _on_fix: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl Location {
    /// The person turned sending their position on or off.
    pub(super) fn set_attach(&self, engine: &Rc<Engine>, on: bool) {
        if on {
            match self.start(engine) {
                Ok(()) => engine.state.attach_place.set(true),
                Err(error) => {
                    engine.state.attach_place.set(false);
                    engine.notice(error);
                }
            }
        } else {
            self.stop(engine);
        }
    }

    /// The position to send with a message: none when the person did not choose to send it;
    /// an error (the message waits in the composer) while the phone has no recent fix.
    pub(super) fn for_message(&self, engine: &Rc<Engine>) -> Result<Option<Position>, String> {
        if !engine.state.attach_place.get_untracked() {
            return Ok(None);
        }
        match engine.state.my_position.get_untracked() {
            Some((position, at)) if now_ms().saturating_sub(at) <= FRESH_MS => Ok(Some(position)),
            _ => Err(
                "Not sent yet: your position is not known (the phone is still looking). \
                 Send again in a moment, or tap the pin to send without it."
                    .into(),
            ),
        }
    }

    /// Where the phone is now, for an SOS: the watched position when it is recent, else one
    /// fix asked for now (a few seconds at most); `None` when the phone cannot tell.
    pub(super) async fn fix_now(&self, engine: &Rc<Engine>) -> Option<Position> {
        if let Some((position, at)) = engine.state.my_position.get_untracked() {
            if now_ms().saturating_sub(at) <= FRESH_MS {
                return Some(position);
            }
        }
        let geolocation = geolocation()?;
        let options = Object::new();
        for (name, value) in [
            ("enableHighAccuracy", JsValue::TRUE),
            ("maximumAge", (FRESH_MS as f64).into()),
            ("timeout", SOS_FIX_TIMEOUT_MS.into()),
        ] {
            let _ = Reflect::set(&options, &name.into(), &value);
        }
        let promise = js_sys::Promise::new(&mut |resolve, reject| {
            let _ = js::call(
                &geolocation,
                "getCurrentPosition",
                &[resolve.into(), reject.into(), options.clone().into()],
            );
        });
        let fix = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
        let position = position_of(&fix)?;
        engine.state.my_position.set(Some((position, now_ms())));
        Some(position)
    }

    /// Where the phone is, to say how far a call for help is, when the person already allowed
    /// the site to know (nothing is asked, and nothing is sent).
    pub(super) async fn fix_if_allowed(&self, engine: &Rc<Engine>) {
        if engine.state.my_position.get_untracked().is_some() {
            return;
        }
        let Some(permissions) = web_sys::window()
            .and_then(|w| Reflect::get(&w.navigator(), &"permissions".into()).ok())
            .filter(|p| !p.is_undefined())
        else {
            return;
        };
        let query = Object::new();
        let _ = Reflect::set(&query, &"name".into(), &"geolocation".into());
        let Ok(status) = js::call_async(&permissions, "query", &[query.into()]).await else {
            return;
        };
        let granted = Reflect::get(&status, &"state".into())
            .ok()
            .and_then(|s| s.as_string())
            .is_some_and(|s| s == "granted");
        if granted {
            self.fix_now(engine).await;
        }
    }

    fn start(&self, engine: &Rc<Engine>) -> Result<(), String> {
        if self.watch.borrow().is_some() {
            return Ok(());
        }
        let geolocation = geolocation().ok_or("This browser cannot tell where the phone is.")?;
        let weak = Rc::downgrade(engine);
        let on_fix = Closure::<dyn FnMut(JsValue)>::new(move |fix: JsValue| {
            let Some(engine) = weak.upgrade() else { return };
            match position_of(&fix) {
                Some(position) => engine.state.my_position.set(Some((position, now_ms()))),
                None => leptos::logging::warn!("the phone reported a position out of range"),
            }
        });
        let weak = Rc::downgrade(engine);
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |error: JsValue| {
            let Some(engine) = weak.upgrade() else { return };
            let code = Reflect::get(&error, &"code".into())
                .ok()
                .and_then(|c| c.as_f64());
            // 1: refused; 2: no fix (no GPS signal yet); 3: timed out (it keeps trying).
            if code == Some(1.0) {
                engine.location.stop(&engine);
                engine.notice(
                    "The phone did not allow FieldMesh to know where it is, so your position \
                     is not sent. Allow location for this site in the browser's settings to \
                     send it.",
                );
            }
        });
        let options = Object::new();
        for (name, value) in [
            ("enableHighAccuracy", JsValue::TRUE),
            ("maximumAge", MAXIMUM_AGE_MS.into()),
        ] {
            let _ = Reflect::set(&options, &name.into(), &value);
        }
        let id = js::call(
            &geolocation,
            "watchPosition",
            &[
                on_fix.as_ref().unchecked_ref::<JsValue>().clone(),
                on_error.as_ref().unchecked_ref::<JsValue>().clone(),
                options.into(),
            ],
        )
        .map_err(|error| {
            format!(
                "The phone's position cannot be watched: {}",
                js::error_message(&error).unwrap_or_default()
            )
        })?;
        *self.watch.borrow_mut() = Some(Watch {
            id,
            _on_fix: on_fix,
            _on_error: on_error,
        });
        Ok(())
    }

    /// Stops watching the phone's position and forgets it.
    fn stop(&self, engine: &Rc<Engine>) {
        if let Some(watch) = self.watch.borrow_mut().take() {
            if let Some(geolocation) = geolocation() {
                let _ = js::call(&geolocation, "clearWatch", &[watch.id]);
            }
        }
        engine.state.attach_place.set(false);
        engine.state.my_position.set(None);
    }
}

/// `navigator.geolocation`, where the browser has it.
fn geolocation() -> Option<JsValue> {
    web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"geolocation".into()).ok())
        .filter(|g| !g.is_undefined() && !g.is_null())
}

/// The position in a `GeolocationPosition`.
fn position_of(fix: &JsValue) -> Option<Position> {
    let coords = Reflect::get(fix, &"coords".into()).ok()?;
    let number = |name: &str| {
        Reflect::get(&coords, &name.into())
            .ok()
            .and_then(|v| v.as_f64())
    };
    Position::new(
        number("latitude")?,
        number("longitude")?,
        number("accuracy").unwrap_or(f64::from(mesh::geo::MAX_ACCURACY_M)),
    )
    .ok()
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}
