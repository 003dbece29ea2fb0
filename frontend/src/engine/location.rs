//! This phone's position: watched (the Geolocation API; GPS needs no network) only while the
//! person chose to send it (with their messages, or live in a room) or looks at who is near,
//! and put in the messages they send then. A live position goes when the phone has moved, or
//! at a slow pace while it stays; it ends when the chosen time is up or the person stops it
//! (the others are told at once).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Object, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::geo::Position;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use mesh::body::Signal;
use mesh::TextBody;

use super::outbox::sealed_for;
use super::Engine;
use crate::{device, js};

/// A fix older than this is not sent as where the person is now.
const FRESH_MS: u64 = 2 * 60 * 1000;
/// What the phone may answer with: a fix it took this recently.
const MAXIMUM_AGE_MS: u32 = 10_000;
/// How long an SOS waits for a fix before it goes without one.
const SOS_FIX_TIMEOUT_MS: u32 = 8_000;
/// A live position goes again once the phone moved this far (or further than its fix is
/// exact)...
const LIVE_MOVE_M: f64 = 25.0;
/// ...or this long after the last, when it stays.
const LIVE_SLOW_MS: u64 = 5 * 60 * 1000;
/// Over the radio, a live position goes at most this often per room (airtime is scarce).
const LIVE_RADIO_MS: u64 = 10 * 60 * 1000;
/// How often a live share checks its time and its slow pace.
const LIVE_TICK: Duration = Duration::from_secs(20);
/// `until_s` of a share with no end chosen.
const UNTIL_STOPPED: u32 = u32::MAX;
/// The setting the live shares are kept under (a reload goes on sharing): the rooms (hex),
/// with when each ends (ms; none: when stopped).
const LIVE_SETTING: &str = "live-shares";

/// The location part.
#[derive(Default)]
pub(super) struct Location {
    watch: RefCell<Option<Watch>>,
    /// Rooms (hex) this device shares its position in, live.
    live: RefCell<HashMap<String, Live>>,
    ticking: Cell<bool>,
    /// "People nearby" is open: the position is followed while it is.
    nearby_open: Cell<bool>,
    compass: RefCell<Option<Listener>>,
}

/// A callback the browser calls with an event.
type Listener = Closure<dyn FnMut(JsValue)>;

/// A live share in one room.
struct Live {
    /// When it ends (ms); `None`: when the person stops it.
    until_ms: Option<u64>,
    /// The position sent last, and when.
    sent: Option<(Position, u64)>,
    /// When a live position last went over the radio.
    radio_ms: u64,
}

impl Live {
    /// A share beginning now, until `until_ms` (`None`: until stopped).
    fn until(until_ms: Option<u64>) -> Self {
        Self {
            until_ms,
            sent: None,
            radio_ms: 0,
        }
    }
}

/// A running `watchPosition`, with the callbacks it calls.
struct Watch {
    id: JsValue,
    _on_fix: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl Location {
    /// Takes up the live shares a reload interrupted: those not over go on (the phone was
    /// allowed to tell where it is, so nothing is asked); without that permission any more,
    /// they end, and the others are told.
    pub(super) async fn load(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let kept: Vec<(String, Option<u64>)> = db.kept(LIVE_SETTING).await.unwrap_or_default();
        let now = now_ms();
        let going: Vec<(String, Option<u64>)> = kept
            .into_iter()
            .filter(|(_, until)| until.is_none_or(|until| until > now))
            .collect();
        if going.is_empty() {
            return;
        }
        let allowed = allowed().await && self.start(engine).is_ok();
        for (room, until_ms) in going {
            if allowed {
                self.live.borrow_mut().insert(room, Live::until(until_ms));
            } else {
                send_live(engine, room, None, 0, true);
            }
        }
        self.keep_live(engine);
        self.show_live(engine);
        if allowed {
            self.tick(engine);
        }
    }

    /// Keeps the live shares on the device.
    fn keep_live(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let kept: Vec<(String, Option<u64>)> = self
            .live
            .borrow()
            .iter()
            .map(|(room, live)| (room.clone(), live.until_ms))
            .collect();
        spawn_local(async move {
            let _ = db.keep(LIVE_SETTING, &kept).await;
        });
    }

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
            engine.state.attach_place.set(false);
            self.release(engine);
        }
    }

    /// Shares this phone's position live in the room open now for `minutes` (`None`: until
    /// stopped).
    pub(super) fn share_live(&self, engine: &Rc<Engine>, minutes: Option<u32>) {
        let Some((_, room, _)) = engine.session.current_room() else {
            return;
        };
        if let Err(error) = self.start(engine) {
            engine.notice(error);
            return;
        }
        let until_ms = minutes.map(|m| now_ms() + u64::from(m) * 60_000);
        self.live.borrow_mut().insert(room, Live::until(until_ms));
        self.keep_live(engine);
        self.show_live(engine);
        if let Some((position, at)) = engine.state.my_position.get_untracked() {
            if now_ms().saturating_sub(at) <= FRESH_MS {
                self.moved(engine, position);
            }
        }
        self.tick(engine);
    }

    /// Stops sharing live in the room open now: the others are told, and it is gone from
    /// their lists and maps.
    pub(super) fn stop_live(&self, engine: &Rc<Engine>) {
        let Some((_, room, _)) = engine.session.current_room() else {
            return;
        };
        self.end_live(engine, &room);
    }

    fn end_live(&self, engine: &Rc<Engine>, room: &str) {
        if self.live.borrow_mut().remove(room).is_some() {
            send_live(engine, room.to_string(), None, 0, true);
            self.keep_live(engine);
        }
        self.show_live(engine);
        self.release(engine);
    }

    /// Says whether (and until when) the room open now gets this device's live position.
    pub(super) fn show_live(&self, engine: &Rc<Engine>) {
        let label = engine.session.current_room().and_then(|(_, room, _)| {
            self.live
                .borrow()
                .get(&room)
                .map(|live| match live.until_ms {
                    Some(until) => format!("until {}", device::format_time(until)),
                    None => "until you stop".to_string(),
                })
        });
        engine.state.live_sharing.set(label);
    }

    /// "People nearby" opened or closed: this phone's position (when the person allowed the
    /// site to know it; nothing is asked and nothing sent) and its heading are followed while
    /// it is open.
    pub(super) fn watch_nearby(&self, engine: &Rc<Engine>, open: bool) {
        self.nearby_open.set(open);
        if !open {
            if let (Some(window), Some(compass)) = (web_sys::window(), self.compass.take()) {
                for event in ["deviceorientationabsolute", "deviceorientation"] {
                    let _ = window.remove_event_listener_with_callback(
                        event,
                        compass.as_ref().unchecked_ref(),
                    );
                }
            }
            engine.state.heading.set(None);
            self.release(engine);
            return;
        }
        self.follow_compass(engine);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if allowed().await && engine.location.nearby_open.get() {
                let _ = engine.location.start(&engine);
            }
        });
    }

    /// Which way the phone points, from its compass where it has one: the absolute
    /// orientation's `alpha` (counter-clockwise from north), or Safari's
    /// `webkitCompassHeading` (clockwise).
    fn follow_compass(&self, engine: &Rc<Engine>) {
        if self.compass.borrow().is_some() {
            return;
        }
        let Some(window) = web_sys::window() else {
            return;
        };
        let weak = Rc::downgrade(engine);
        let compass = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(engine) = weak.upgrade() else { return };
            let number = |name: &str| {
                Reflect::get(&event, &name.into())
                    .ok()
                    .and_then(|v| v.as_f64())
                    .filter(|v| v.is_finite())
            };
            let heading = number("webkitCompassHeading").or_else(|| {
                let absolute = Reflect::get(&event, &"absolute".into())
                    .ok()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                absolute
                    .then(|| number("alpha"))
                    .flatten()
                    .map(|alpha| (360.0 - alpha).rem_euclid(360.0))
            });
            if heading.is_some() {
                engine.state.heading.set(heading);
            }
        });
        for event in ["deviceorientationabsolute", "deviceorientation"] {
            let _ =
                window.add_event_listener_with_callback(event, compass.as_ref().unchecked_ref());
        }
        *self.compass.borrow_mut() = Some(compass);
    }

    /// The phone reported where it is: live shares that are due go.
    fn moved(&self, engine: &Rc<Engine>, position: Position) {
        let now = now_ms();
        let mut due = Vec::new();
        for (room, live) in self.live.borrow_mut().iter_mut() {
            let far = live.sent.is_none_or(|(sent, at)| {
                let moved = sent.distance_m(&position);
                moved >= LIVE_MOVE_M.max(f64::from(position.accuracy_m()))
                    || now.saturating_sub(at) >= LIVE_SLOW_MS
            });
            if !far {
                continue;
            }
            let radio = now.saturating_sub(live.radio_ms) >= LIVE_RADIO_MS;
            if radio {
                live.radio_ms = now;
            }
            live.sent = Some((position, now));
            let until_s = live
                .until_ms
                .map_or(UNTIL_STOPPED, |until| (until / 1000) as u32);
            due.push((room.clone(), until_s, radio));
        }
        for (room, until_s, radio) in due {
            send_live(engine, room, Some(position), until_s, radio);
        }
    }

    /// While anything is shared live: ends what is over, and sends again what stayed put.
    fn tick(&self, engine: &Rc<Engine>) {
        if self.ticking.replace(true) {
            return;
        }
        let weak = Rc::downgrade(engine);
        spawn_local(async move {
            loop {
                sleep(LIVE_TICK).await;
                let Some(engine) = weak.upgrade() else { return };
                let location = &engine.location;
                if location.live.borrow().is_empty() {
                    location.ticking.set(false);
                    return;
                }
                let now = now_ms();
                let over: Vec<String> = location
                    .live
                    .borrow()
                    .iter()
                    .filter(|(_, live)| live.until_ms.is_some_and(|until| until <= now))
                    .map(|(room, _)| room.clone())
                    .collect();
                for room in over {
                    location.end_live(&engine, &room);
                }
                if let Some((position, at)) = engine.state.my_position.get_untracked() {
                    if now.saturating_sub(at) <= LIVE_SLOW_MS {
                        location.moved(&engine, position);
                    }
                }
            }
        });
    }

    /// Stops watching the phone when nothing needs its position any more.
    fn release(&self, engine: &Rc<Engine>) {
        if engine.state.attach_place.get_untracked()
            || !self.live.borrow().is_empty()
            || self.nearby_open.get()
        {
            return;
        }
        self.stop(engine);
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
        // The browser's timeout starts once the person answered its question: a question
        // left unanswered would hold an SOS for ever, so the wait has an end of its own.
        let answer = wasm_bindgen_futures::JsFuture::from(promise);
        let limit = sleep(Duration::from_millis(u64::from(SOS_FIX_TIMEOUT_MS) + 500));
        let fix = match futures::future::select(answer, Box::pin(limit)).await {
            futures::future::Either::Left((Ok(fix), _)) => fix,
            _ => return None,
        };
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
        if allowed().await {
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
                Some(position) => {
                    engine.state.my_position.set(Some((position, now_ms())));
                    engine.location.moved(&engine, position);
                }
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
                engine.state.attach_place.set(false);
                let rooms: Vec<String> = engine.location.live.borrow().keys().cloned().collect();
                for room in rooms {
                    engine.location.end_live(&engine, &room);
                }
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

/// Sends a live position (`until_s` 0: sharing stopped) to the room `room` (hex), over the
/// radio too when `radio`.
fn send_live(
    engine: &Rc<Engine>,
    room: String,
    position: Option<Position>,
    until_s: u32,
    radio: bool,
) {
    let (Some(identity), Some(db)) = (engine.session.identity(), engine.db()) else {
        return;
    };
    let name = engine.session.name();
    let engine = Rc::clone(engine);
    spawn_local(async move {
        let Some(key) = super::alerts::room_key(&engine, &room).await else {
            return;
        };
        let Ok(body) = TextBody::place(&name, "", position, Some(Signal::Live { until_s })) else {
            return;
        };
        let Ok((record, envelope, radio_form)) = sealed_for(&key, &room, &identity, &body, None)
        else {
            return;
        };
        let radio_form = if radio { radio_form } else { Vec::new() };
        let _ = engine
            .outbox
            .store(&engine, &db, record, envelope, radio_form, Vec::new())
            .await;
    });
}

/// Whether the person allowed this site to know where the phone is (nothing is asked).
async fn allowed() -> bool {
    let Some(permissions) = web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"permissions".into()).ok())
        .filter(|p| !p.is_undefined())
    else {
        return false;
    };
    let query = Object::new();
    let _ = Reflect::set(&query, &"name".into(), &"geolocation".into());
    let Ok(status) = js::call_async(&permissions, "query", &[query.into()]).await else {
        return false;
    };
    Reflect::get(&status, &"state".into())
        .ok()
        .and_then(|s| s.as_string())
        .is_some_and(|s| s == "granted")
}

/// Waits `duration` (a browser timer).
pub(super) async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
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
