//! Calls and the walkie-talkie of the room open now, carried out with WebRTC: one peer
//! connection to each other person (host candidates only: on a camp's Wi-Fi there is no STUN
//! or TURN server, and none is needed), set up with signals sealed under the room key over
//! the server's WebSocket ([`mesh::call`]). The decisions (who offers, who is gone, who holds
//! the walkie-talkie) are [`client::call`]'s; this part owns the browser objects.
//!
//! Media goes directly between the phones: a call goes on while the server is away, and
//! nothing of it passes through or stays on the server. Browser APIs are reached by name
//! ([`crate::js`]), as elsewhere, so a browser without one gets a sentence, not a crash.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use app::{CallAction, CallInvite, CallTile, CallView, TalkView};
use client::call::{Floor, FloorChange, HeardCalls, PeerState, Step, HERE_EVERY_MS, MAX_HOLD_MS};
use js_sys::{Array, Object, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::call::{CallSignal, Line, Route, Signal};
use mesh::crypto::RoomKey;
use mesh::{ClientFrame, RoomId, SenderId};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::location::sleep;
use super::Engine;
use crate::device::random_bytes;
use crate::js;

/// How often statistics (who speaks, bytes received) are read and the lines tended.
const TICK: Duration = Duration::from_millis(500);
/// A voice louder than this (the browser's audio level, 0 to 1) is someone speaking.
const SPEAKING_LEVEL: f64 = 0.02;
/// What a line says while its microphone opens.
const OPENING: &str = "Opening the microphone…";
/// Longest wait for a connection's host candidates before its description goes anyway.
const GATHER_MS: u32 = 2_000;

/// The calls part.
#[derive(Default)]
pub(super) struct Calls {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    heard: HeardCalls,
    call: Option<Active>,
    talk: Option<Active>,
    floor: Floor,
    /// When this page pressed the walkie-talkie (its clock), while it holds it.
    pressed_ms: Option<u64>,
    ticker: Option<IntervalHandle>,
    /// Calls this page was in and left: heard again, they are offered quietly, not rung.
    left_calls: Vec<[u8; 16]>,
    /// Counts the lines entered, so a microphone that opens late finds its own line.
    entered: u64,
}

/// A line this page is in, with its media.
struct Active {
    line: Line,
    /// Which entering made it (see [`State::entered`]).
    serial: u64,
    room: RoomId,
    key: RoomKey,
    core: client::call::Line,
    /// This page's tracks (microphone, camera), in one stream.
    local: JsValue,
    mic: Option<JsValue>,
    camera: Option<JsValue>,
    /// The camera as the person last chose it: a choice made while it opens holds when it
    /// has opened.
    camera_wanted: bool,
    /// A camera is being opened (asked of the browser, not answered yet).
    camera_opening: bool,
    /// This page's own picture.
    preview: Option<JsValue>,
    muted: bool,
    speaker: bool,
    speaking: bool,
    status: Option<String>,
    last_here_ms: f64,
    links: HashMap<SenderId, Link>,
    /// One media element per person, kept across their connections, so their tile keeps it.
    elements: HashMap<SenderId, JsValue>,
    /// What the statistics said of each person.
    heard: HashMap<SenderId, Heard>,
}

#[derive(Clone, Copy, Default)]
struct Heard {
    audio_bytes: u64,
    video_bytes: u64,
    speaking: bool,
    video: bool,
}

/// The connection to one person.
struct Link {
    pc: JsValue,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Active {
    fn is_call(&self) -> bool {
        matches!(self.line, Line::Call(_))
    }

    fn close_link(&mut self, sender: SenderId) {
        if let Some(link) = self.links.remove(&sender) {
            let _ = js::call(&link.pc, "close", &[]);
        }
        self.heard.remove(&sender);
    }

    /// Ends everything: connections, tracks, elements.
    fn end(&mut self) {
        for (_, link) in self.links.drain() {
            let _ = js::call(&link.pc, "close", &[]);
        }
        for track in [&self.mic, &self.camera].into_iter().flatten() {
            let _ = js::call(track, "stop", &[]);
        }
        for element in self.elements.values().chain(&self.preview) {
            let _ = Reflect::set(element, &"srcObject".into(), &JsValue::NULL);
            let _ = js::call(element, "remove", &[]);
        }
    }
}

impl Calls {
    /// The room is left (or another opened): the call and the walkie-talkie end, and the
    /// room's calls are forgotten.
    pub(super) fn entered_room(&self, engine: &Rc<Engine>) {
        self.hang_up(engine);
        self.listen_off(engine);
        self.state.borrow_mut().heard = HeardCalls::default();
        self.show(engine);
    }

    /// The page lost the focus or went out of sight: a held talk button is let go (its
    /// release would never come).
    pub(super) fn on_blur(&self, engine: &Rc<Engine>) {
        if self.state.borrow().pressed_ms.is_some() {
            self.talk(engine, false);
        }
    }

    /// The page goes away: say goodbye so the others do not wait for the connection to die.
    pub(super) fn on_page_hide(&self, engine: &Rc<Engine>) {
        self.hang_up(engine);
        self.listen_off(engine);
    }

    /// The connection came back (on a new connection id): the others learn it at once.
    pub(super) fn on_online(&self, engine: &Rc<Engine>) {
        let lines: Vec<(RoomId, RoomKey, Line, bool)> = {
            let state = self.state.borrow();
            [&state.call, &state.talk]
                .into_iter()
                .flatten()
                .map(|a| (a.room, a.key.clone(), a.line, a.camera.is_some()))
                .collect()
        };
        for (room, key, line, video) in lines {
            send_signal(engine, room, &key, line, None, Signal::Here { video });
        }
    }

    /// Does what a control asks.
    pub(super) fn act(&self, engine: &Rc<Engine>, action: CallAction) {
        match action {
            CallAction::Start { video } => self.enter(engine, Line::Call(random_bytes()), video),
            CallAction::Join { id, video } => match mesh::hex::decode::<16>(&id) {
                Some(id) => self.enter(engine, Line::Call(id), video),
                None => engine.notice("That call is over."),
            },
            CallAction::Decline(id) => {
                if let Some(id) = mesh::hex::decode::<16>(&id) {
                    self.state.borrow_mut().heard.decline(id);
                    if let Some((room, _, _)) = engine.session.current_room() {
                        if let Some(key) = engine.session.current_key() {
                            send_signal(engine, room, &key, Line::Call(id), None, Signal::Decline);
                        }
                    }
                    self.show(engine);
                }
            }
            CallAction::HangUp => self.hang_up(engine),
            CallAction::Mute(muted) => {
                if let Some(call) = self.state.borrow_mut().call.as_mut() {
                    call.muted = muted;
                    if let Some(mic) = &call.mic {
                        let _ = Reflect::set(mic, &"enabled".into(), &JsValue::from_bool(!muted));
                    }
                }
                self.show(engine);
            }
            CallAction::Speaker(on) => {
                if let Some(call) = self.state.borrow_mut().call.as_mut() {
                    call.speaker = on;
                    for element in call.elements.values() {
                        let _ = Reflect::set(element, &"muted".into(), &JsValue::from_bool(!on));
                    }
                }
                self.show(engine);
            }
            CallAction::Camera(on) => self.camera(engine, on),
            CallAction::Listen(true) => self.enter(engine, Line::Talk, false),
            CallAction::Listen(false) => self.listen_off(engine),
            CallAction::Talk(down) => self.talk(engine, down),
        }
    }

    /// Puts a person's picture (or this page's own, `"you"`) into their tile.
    pub(super) fn media(&self, id: &str, slot: web_sys::HtmlElement) {
        let mut state = self.state.borrow_mut();
        let Some(call) = state.call.as_mut() else {
            return;
        };
        let element = if id == "you" {
            call.preview.clone()
        } else {
            let Some(sender) = mesh::hex::decode::<32>(id).map(SenderId) else {
                return;
            };
            Some(element_for(call, sender))
        };
        if let Some(element) = element {
            let _ = slot.append_child(element.unchecked_ref());
            play(&element);
        }
    }

    /// Enters a call or the walkie-talkie: the microphone (and camera) first, then the
    /// others are told.
    fn enter(&self, engine: &Rc<Engine>, line: Line, video: bool) {
        let Some((room, _, _)) = engine.session.current_room() else {
            return;
        };
        let Some(key) = engine.session.current_key() else {
            return;
        };
        let is_call = matches!(line, Line::Call(_));
        {
            let state = self.state.borrow();
            let busy = if is_call { &state.call } else { &state.talk };
            if busy.is_some() {
                return;
            }
        }
        // One voice channel at a time: a call ends the walkie-talkie, and the other way.
        if is_call {
            self.listen_off(engine);
        } else {
            self.hang_up(engine);
        }
        let Some(me) = engine.session.sender() else {
            return;
        };
        let serial = {
            let mut state = self.state.borrow_mut();
            state.entered += 1;
            state.entered
        };
        let active = Active {
            line,
            serial,
            room,
            key,
            core: client::call::Line::new(me),
            local: new_stream(),
            mic: None,
            camera: None,
            camera_wanted: video,
            camera_opening: video,
            preview: None,
            muted: false,
            speaker: true,
            speaking: false,
            status: Some(OPENING.into()),
            last_here_ms: 0.0,
            links: HashMap::new(),
            elements: HashMap::new(),
            heard: HashMap::new(),
        };
        {
            let mut state = self.state.borrow_mut();
            if let Line::Call(id) = line {
                state.heard.forget(id);
                state.call = Some(active);
            } else {
                state.talk = Some(active);
            }
        }
        self.start_ticker(engine);
        self.show(engine);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let opened = open_media(true, video).await;
            let this = &engine.calls;
            {
                let mut state = this.state.borrow_mut();
                let Some(active) = state.line_mut(line).filter(|a| a.serial == serial) else {
                    // Hung up while the microphone opened.
                    if let Ok((_, tracks)) = &opened {
                        stop_all(tracks);
                    }
                    return;
                };
                active.status = None;
                // Only this opening's camera is settled here (one asked for later is not).
                if video {
                    active.camera_opening = false;
                }
                match opened {
                    Ok((stream, tracks)) => {
                        active.local = stream;
                        for track in tracks {
                            if kind_of(&track) == "video" {
                                if active.camera_wanted {
                                    active.camera = Some(track);
                                } else {
                                    // Turned off while it opened: it never goes out.
                                    stop_in(&active.local, track);
                                }
                            } else {
                                // The walkie-talkie is silent until its button is held; a call
                                // muted while the microphone opened stays muted.
                                if !is_call || active.muted {
                                    let _ =
                                        Reflect::set(&track, &"enabled".into(), &JsValue::FALSE);
                                }
                                active.mic = Some(track);
                            }
                        }
                        if active.camera.is_some() {
                            active.preview = Some(preview_of(&active.local));
                        }
                        // Connections made while it opened (the others' offers) send it now.
                        for link in active.links.values() {
                            replace_track(&link.pc, "audio", active.mic.as_ref());
                            if active.is_call() {
                                replace_track(&link.pc, "video", active.camera.as_ref());
                            }
                        }
                    }
                    Err(problem) => active.status = Some(problem),
                }
                if video {
                    active.camera_wanted = active.camera.is_some();
                }
                active.last_here_ms = js_sys::Date::now();
            }
            this.say_here(&engine, line);
            this.show(&engine);
            // The own tile was drawn before the camera opened: its picture goes in now.
            if let Some(slot) = own_slot() {
                this.media("you", slot);
            }
        });
    }

    /// Tells the room this page is in `line`.
    fn say_here(&self, engine: &Rc<Engine>, line: Line) {
        let target = {
            let state = self.state.borrow();
            state
                .line(line)
                .map(|a| (a.room, a.key.clone(), a.camera.is_some()))
        };
        if let Some((room, key, video)) = target {
            send_signal(engine, room, &key, line, None, Signal::Here { video });
        }
    }

    /// Leaves the call (if in one).
    fn hang_up(&self, engine: &Rc<Engine>) {
        let Some(mut call) = self.state.borrow_mut().call.take() else {
            return;
        };
        if let Line::Call(id) = call.line {
            let mut state = self.state.borrow_mut();
            state.left_calls.retain(|left| *left != id);
            state.left_calls.push(id);
            // A few are enough: a call's id is never used again.
            if state.left_calls.len() > 16 {
                state.left_calls.remove(0);
            }
        }
        send_signal(engine, call.room, &call.key, call.line, None, Signal::Leave);
        call.end();
        self.stop_ticker_when_idle();
        self.show(engine);
    }

    /// Stops listening to the walkie-talkie (if listening).
    fn listen_off(&self, engine: &Rc<Engine>) {
        let (talk, released) = {
            let mut state = self.state.borrow_mut();
            let talk = state.talk.take();
            let released = state.pressed_ms.take();
            state.floor = Floor::default();
            (talk, released)
        };
        let Some(mut talk) = talk else {
            return;
        };
        if let Some(pressed_ms) = released {
            let floor = Signal::Floor {
                holding: false,
                pressed_ms,
            };
            send_signal(engine, talk.room, &talk.key, Line::Talk, None, floor);
        }
        send_signal(
            engine,
            talk.room,
            &talk.key,
            Line::Talk,
            None,
            Signal::Leave,
        );
        talk.end();
        self.stop_ticker_when_idle();
        self.show(engine);
    }

    /// The walkie-talkie's button went down or up.
    fn talk(&self, engine: &Rc<Engine>, down: bool) {
        let Some(me) = engine.session.sender() else {
            return;
        };
        let now = js_sys::Date::now();
        let said = {
            let mut state = self.state.borrow_mut();
            let state = &mut *state;
            let Some(talk) = state.talk.as_mut() else {
                return;
            };
            match (down, talk.mic.clone(), state.pressed_ms) {
                (true, _, Some(_)) | (false, _, None) => None,
                (true, None, None) if talk.status.as_deref() == Some(OPENING) => None,
                (true, None, None) => {
                    talk.status = Some(
                        "FieldMesh cannot use the microphone here, so you can listen but not \
                         talk."
                            .into(),
                    );
                    None
                }
                (true, Some(mic), None) => {
                    let pressed_ms = now as u64;
                    state.floor.press(me, pressed_ms, now).ok().map(|()| {
                        let _ = Reflect::set(&mic, &"enabled".into(), &JsValue::TRUE);
                        state.pressed_ms = Some(pressed_ms);
                        talk.status = None;
                        (talk.room, talk.key.clone(), true, pressed_ms)
                    })
                }
                (false, mic, Some(pressed_ms)) => {
                    state.pressed_ms = None;
                    state.floor.release(me);
                    if let Some(mic) = mic {
                        let _ = Reflect::set(&mic, &"enabled".into(), &JsValue::FALSE);
                    }
                    Some((talk.room, talk.key.clone(), false, pressed_ms))
                }
            }
        };
        if let Some((room, key, holding, pressed_ms)) = said {
            let floor = Signal::Floor {
                holding,
                pressed_ms,
            };
            send_signal(engine, room, &key, Line::Talk, None, floor);
        }
        self.show(engine);
    }

    fn camera(&self, engine: &Rc<Engine>, on: bool) {
        // The person's choice holds at once, also for a camera still opening.
        let (has, opening) = {
            let mut state = self.state.borrow_mut();
            let Some(call) = state.call.as_mut() else {
                return;
            };
            call.camera_wanted = on;
            (call.camera.is_some(), call.camera_opening)
        };
        if !on {
            {
                let mut state = self.state.borrow_mut();
                let Some(call) = state.call.as_mut() else {
                    return;
                };
                if let Some(camera) = call.camera.take() {
                    stop_in(&call.local, camera);
                }
                for link in call.links.values() {
                    replace_track(&link.pc, "video", None);
                }
            }
            if has {
                if let Some(line) = self.call_line() {
                    self.say_here(engine, line);
                }
            }
            return self.show(engine);
        }
        if has || opening {
            return self.show(engine);
        }
        let Some(serial) = self.state.borrow_mut().call.as_mut().map(|call| {
            call.camera_opening = true;
            call.serial
        }) else {
            return;
        };
        self.show(engine);
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let opened = open_media(false, true).await;
            let this = &engine.calls;
            {
                let mut state = this.state.borrow_mut();
                let Some(call) = state.call.as_mut().filter(|call| call.serial == serial) else {
                    // Hung up while the camera opened (another call since is not this one's).
                    if let Ok((_, tracks)) = &opened {
                        stop_all(tracks);
                    }
                    return;
                };
                call.camera_opening = false;
                match opened {
                    // Turned off again while it opened: it never goes out.
                    Ok((_, tracks)) if !call.camera_wanted => stop_all(&tracks),
                    Ok((_, tracks)) => {
                        let Some(camera) = tracks.into_iter().next() else {
                            call.camera_wanted = false;
                            drop(state);
                            return this.show(&engine);
                        };
                        let _ = js::call(&call.local, "addTrack", std::slice::from_ref(&camera));
                        for link in call.links.values() {
                            replace_track(&link.pc, "video", Some(&camera));
                        }
                        call.camera = Some(camera);
                        match &call.preview {
                            Some(preview) => {
                                let _ = Reflect::set(preview, &"srcObject".into(), &call.local);
                                play(preview);
                            }
                            None => call.preview = Some(preview_of(&call.local)),
                        }
                        call.status = None;
                    }
                    Err(problem) => {
                        call.camera_wanted = false;
                        call.status = Some(problem.replace("microphone", "camera"));
                    }
                }
            }
            if let Some(line) = this.call_line() {
                this.say_here(&engine, line);
            }
            this.show(&engine);
            // The preview's tile was drawn before it existed: put it in now.
            if let Some(slot) = own_slot() {
                this.media("you", slot);
            }
        });
    }

    fn call_line(&self) -> Option<Line> {
        self.state.borrow().call.as_ref().map(|c| c.line)
    }

    /// A signal from another follower of a room.
    pub(super) fn on_signal(
        &self,
        engine: &Rc<Engine>,
        room: RoomId,
        from: [u8; 32],
        sender: SenderId,
        direct: bool,
        sealed: &[u8],
    ) {
        let Some((key, _)) = engine.session.room_key(room) else {
            return;
        };
        let to = direct.then(|| engine.connection.challenge());
        let route = Route { room, from, to };
        let Some(CallSignal { line, signal }) = CallSignal::open(&key, sender, &route, sealed)
        else {
            return;
        };
        let now = js_sys::Date::now();
        let me = engine.session.sender();
        let mut steps = Vec::new();
        let mut answer = None;
        let mut lost = None;
        let mut declined = false;
        {
            let mut state = self.state.borrow_mut();
            let state = &mut *state;
            let joined = match line {
                Line::Call(_) => state.call.as_mut().filter(|c| c.line == line),
                Line::Talk => state.talk.as_mut(),
            };
            match (joined, signal) {
                (Some(active), Signal::Here { video }) => {
                    steps = active.core.on_here(sender, from, direct, video, now);
                }
                (Some(active), Signal::Offer { sdp }) => {
                    if active.core.on_offer(sender, from, now) {
                        answer = Some(sdp);
                    }
                }
                (Some(active), Signal::Answer { sdp }) => {
                    if let Some(link) = active.links.get(&sender) {
                        let description = description("answer", &sdp);
                        let pc = link.pc.clone();
                        spawn_local(async move {
                            let _ =
                                js::call_async(&pc, "setRemoteDescription", &[description]).await;
                        });
                    }
                }
                (Some(active), Signal::Leave) => {
                    steps = active.core.on_leave(sender, now);
                    if line == Line::Talk {
                        state.floor.on_gone(sender);
                    }
                }
                (Some(_), Signal::Decline) => declined = true,
                (
                    Some(_),
                    Signal::Floor {
                        holding,
                        pressed_ms,
                    },
                ) => {
                    if let Some(me) = me {
                        if let FloorChange::Lost(to) =
                            state.floor.on_floor(me, sender, holding, pressed_ms, now)
                        {
                            lost = Some(to);
                        }
                    }
                }
                (None, Signal::Here { video }) => {
                    if let Line::Call(id) = line {
                        let new = state.heard.get(id).is_none();
                        state.heard.on_here(id, sender, video, now);
                        if new && state.left_calls.contains(&id) {
                            // Left a moment ago: offered again quietly, not rung.
                            state.heard.decline(id);
                        } else if new && state.call.is_none() {
                            ring();
                        }
                    }
                }
                (None, Signal::Leave) => {
                    if let Line::Call(id) = line {
                        state.heard.on_leave(id, sender);
                    }
                }
                (None, _) => {}
            }
        }
        if declined {
            let name = engine.people.name_of(engine, sender);
            engine.notice(format!("{name} declined the call."));
        }
        if let Some(winner) = lost {
            self.lost_floor(engine, winner);
        }
        self.carry_out(engine, line, steps);
        if let Some(sdp) = answer {
            self.answer(engine, line, sender, sdp);
        }
        self.show(engine);
    }

    /// Someone else pressed first: this page stops sending.
    fn lost_floor(&self, engine: &Rc<Engine>, winner: SenderId) {
        {
            let mut state = self.state.borrow_mut();
            state.pressed_ms = None;
            if let Some(mic) = state.talk.as_ref().and_then(|t| t.mic.as_ref()) {
                let _ = Reflect::set(mic, &"enabled".into(), &JsValue::FALSE);
            }
        }
        let name = engine.people.name_of(engine, winner);
        if let Some(talk) = self.state.borrow_mut().talk.as_mut() {
            talk.status = Some(format!("{name} pressed first; wait until they let go."));
        }
    }

    fn carry_out(&self, engine: &Rc<Engine>, line: Line, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Offer(sender) => self.offer(engine, line, sender),
                Step::SayHere(to) => {
                    let target = self
                        .state
                        .borrow()
                        .line(line)
                        .map(|a| (a.room, a.key.clone(), a.camera.is_some()));
                    if let Some((room, key, video)) = target {
                        send_signal(engine, room, &key, line, Some(to), Signal::Here { video });
                    }
                }
                Step::Close(sender) => {
                    let mut state = self.state.borrow_mut();
                    if line == Line::Talk {
                        state.floor.on_gone(sender);
                    }
                    if let Some(active) = state.line_mut(line) {
                        active.close_link(sender);
                    }
                }
            }
        }
    }

    /// Makes a connection to `sender` and sends them an offer.
    fn offer(&self, engine: &Rc<Engine>, line: Line, sender: SenderId) {
        let Some(pc) = self.connect(engine, line, sender, true) else {
            return;
        };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if let Some(sdp) = described(&pc).await {
                engine
                    .calls
                    .send_description(&engine, line, sender, Signal::Offer { sdp });
            }
        });
    }

    /// Answers `sender`'s offer (a new connection in place of any earlier one, unless both
    /// offered at once and this page's offer stands).
    fn answer(&self, engine: &Rc<Engine>, line: Line, sender: SenderId, sdp: String) {
        {
            let mut state = self.state.borrow_mut();
            let Some(active) = state.line_mut(line) else {
                return;
            };
            if let Some(link) = active.links.get(&sender) {
                let offering = Reflect::get(&link.pc, &"signalingState".into())
                    .ok()
                    .and_then(|s| s.as_string())
                    .is_some_and(|s| s == "have-local-offer");
                if offering && active.core.offers_to(sender) {
                    return;
                }
                active.close_link(sender);
            }
        }
        let Some(pc) = self.connect(engine, line, sender, false) else {
            return;
        };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let offer = description("offer", &sdp);
            if js::call_async(&pc, "setRemoteDescription", &[offer])
                .await
                .is_err()
            {
                return;
            }
            // Send this page's tracks on the connection's (now known) transceivers.
            let tracks = {
                let state = engine.calls.state.borrow();
                state.line(line).map(|a| (a.mic.clone(), a.camera.clone()))
            };
            let Some((mic, camera)) = tracks else {
                return;
            };
            attach_tracks(&pc, mic.as_ref(), camera.as_ref());
            if let Some(sdp) = described(&pc).await {
                engine
                    .calls
                    .send_description(&engine, line, sender, Signal::Answer { sdp });
            }
        });
    }

    fn send_description(&self, engine: &Rc<Engine>, line: Line, sender: SenderId, signal: Signal) {
        let target = {
            let state = self.state.borrow();
            state.line(line).and_then(|a| {
                let peer = a.core.peer(sender)?;
                Some((a.room, a.key.clone(), peer.route))
            })
        };
        if let Some((room, key, route)) = target {
            if !send_signal(engine, room, &key, line, Some(route), signal) {
                engine.notice("The call could not reach the server; it tries again shortly.");
            }
        }
    }

    /// A new peer connection to `sender`, with this page's tracks when it offers.
    fn connect(
        &self,
        engine: &Rc<Engine>,
        line: Line,
        sender: SenderId,
        offering: bool,
    ) -> Option<JsValue> {
        let class = Reflect::get(&js_sys::global(), &"RTCPeerConnection".into()).ok()?;
        if !class.is_function() {
            engine.notice("This browser cannot make calls.");
            return None;
        }
        let config = Object::new();
        // Host candidates only: no STUN or TURN server exists offline, and the phones share
        // the camp's Wi-Fi.
        let _ = Reflect::set(&config, &"iceServers".into(), &Array::new());
        let pc = Reflect::construct(
            class.unchecked_ref::<js_sys::Function>(),
            &Array::of1(&config),
        )
        .ok()?;
        let mut state = self.state.borrow_mut();
        let active = state.line_mut(line)?;
        let element = element_for(active, sender);
        let remote = new_stream();
        let _ = Reflect::set(&element, &"srcObject".into(), &remote);
        let on_track = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Ok(track) = Reflect::get(&event, &"track".into()) {
                let _ = js::call(&remote, "addTrack", &[track]);
                play(&element);
            }
        });
        let weak = Rc::downgrade(engine);
        let watched = pc.clone();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let Some(engine) = weak.upgrade() else { return };
            let state = Reflect::get(&watched, &"connectionState".into())
                .ok()
                .and_then(|s| s.as_string())
                .unwrap_or_default();
            engine
                .calls
                .on_connection(&engine, line, sender, &watched, &state);
        });
        let _ = Reflect::set(&pc, &"ontrack".into(), on_track.as_ref());
        let _ = Reflect::set(&pc, &"onconnectionstatechange".into(), on_state.as_ref());
        if offering {
            let kinds: &[&str] = if active.is_call() {
                &["audio", "video"]
            } else {
                &["audio"]
            };
            for kind in kinds {
                let track = if *kind == "audio" {
                    active.mic.clone()
                } else {
                    active.camera.clone()
                };
                let init = Object::new();
                let _ = Reflect::set(&init, &"direction".into(), &"sendrecv".into());
                let _ = Reflect::set(&init, &"streams".into(), &Array::of1(&active.local));
                let what = track.unwrap_or_else(|| (*kind).into());
                let _ = js::call(&pc, "addTransceiver", &[what, init.into()]);
            }
        }
        active.links.insert(
            sender,
            Link {
                pc: pc.clone(),
                _handlers: vec![on_track, on_state],
            },
        );
        Some(pc)
    }

    fn on_connection(
        &self,
        engine: &Rc<Engine>,
        line: Line,
        sender: SenderId,
        pc: &JsValue,
        state: &str,
    ) {
        let steps = {
            let mut calls = self.state.borrow_mut();
            let Some(active) = calls.line_mut(line) else {
                return;
            };
            // Only the connection in use speaks for the person.
            if !active.links.get(&sender).is_some_and(|l| &l.pc == pc) {
                return;
            }
            active
                .core
                .on_connection(sender, state, js_sys::Date::now())
        };
        self.carry_out(engine, line, steps);
        self.show(engine);
    }

    fn start_ticker(&self, engine: &Rc<Engine>) {
        if self.state.borrow().ticker.is_some() {
            return;
        }
        let weak = Rc::downgrade(engine);
        let ticker = set_interval_with_handle(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.calls.tick(&engine);
                }
            },
            TICK,
        )
        .ok();
        self.state.borrow_mut().ticker = ticker;
    }

    fn stop_ticker_when_idle(&self) {
        let mut state = self.state.borrow_mut();
        if state.call.is_none() && state.talk.is_none() {
            if let Some(ticker) = state.ticker.take() {
                ticker.clear();
            }
        }
    }

    /// Every half second: say "here" now and then, tend the lines, read the statistics.
    fn tick(&self, engine: &Rc<Engine>) {
        let now = js_sys::Date::now();
        let mut due = Vec::new();
        let mut work = Vec::new();
        let held_too_long;
        {
            let mut state = self.state.borrow_mut();
            let state = &mut *state;
            state.heard.tick(now);
            state.floor.tick(now);
            held_too_long = state
                .pressed_ms
                .is_some_and(|at| now - at as f64 > MAX_HOLD_MS);
            for active in [&mut state.call, &mut state.talk].into_iter().flatten() {
                if active.status.as_deref() == Some(OPENING) {
                    continue;
                }
                if now - active.last_here_ms >= HERE_EVERY_MS {
                    active.last_here_ms = now;
                    due.push(active.line);
                }
                work.push((active.line, active.core.tick(now)));
            }
        }
        for line in due {
            self.say_here(engine, line);
        }
        for (line, steps) in work {
            self.carry_out(engine, line, steps);
        }
        if held_too_long {
            self.talk(engine, false);
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            engine.calls.read_stats().await;
            engine.calls.show(&engine);
        });
    }

    /// Reads each connection's statistics: bytes received, and who is speaking.
    async fn read_stats(&self) {
        let links: Vec<(Line, SenderId, JsValue)> = {
            let state = self.state.borrow();
            [&state.call, &state.talk]
                .into_iter()
                .flatten()
                .flat_map(|a| a.links.iter().map(|(s, l)| (a.line, *s, l.pc.clone())))
                .collect()
        };
        let mut own_level: Option<(Line, f64)> = None;
        for (line, sender, pc) in links {
            let Ok(report) = js::call_async(&pc, "getStats", &[]).await else {
                continue;
            };
            let mut heard = Heard::default();
            let mut level = 0.0f64;
            if let Some(values) = js::call(&report, "values", &[])
                .ok()
                .and_then(|v| js_sys::try_iter(&v).ok().flatten())
            {
                for stat in values.flatten() {
                    let field = |name: &str| Reflect::get(&stat, &name.into()).ok();
                    let text = |name: &str| field(name).and_then(|v| v.as_string());
                    let number = |name: &str| field(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
                    match (text("type").as_deref(), text("kind").as_deref()) {
                        (Some("inbound-rtp"), Some("audio")) => {
                            heard.audio_bytes = number("bytesReceived") as u64;
                            level = level.max(number("audioLevel"));
                        }
                        (Some("inbound-rtp"), Some("video")) => {
                            heard.video_bytes = number("bytesReceived") as u64;
                        }
                        (Some("media-source"), Some("audio")) => {
                            let own = number("audioLevel");
                            own_level = Some((line, own_level.map_or(own, |(_, l)| l.max(own))));
                        }
                        _ => {}
                    }
                }
            }
            heard.speaking = level > SPEAKING_LEVEL;
            let mut state = self.state.borrow_mut();
            if let Some(active) = state.line_mut(line) {
                let before = active.heard.get(&sender).copied().unwrap_or_default();
                // A picture arrives while its bytes grow (a camera turned off sends none).
                heard.video = heard.video_bytes > before.video_bytes;
                active.heard.insert(sender, heard);
            }
        }
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        for active in [&mut state.call, &mut state.talk].into_iter().flatten() {
            let level = own_level
                .filter(|(line, _)| *line == active.line)
                .map_or(0.0, |(_, l)| l);
            active.speaking = level > SPEAKING_LEVEL && !active.muted;
        }
    }

    /// Puts the calls into the views' state.
    fn show(&self, engine: &Rc<Engine>) {
        let me = engine.session.sender();
        let (call, talk, invites) = {
            let state = self.state.borrow();
            let tiles = |active: &Active| -> Vec<CallTile> {
                active
                    .core
                    .peers()
                    .map(|peer| {
                        let heard = active.heard.get(&peer.sender).copied().unwrap_or_default();
                        CallTile {
                            id: peer.sender.to_string(),
                            name: engine.people.name_of(engine, peer.sender),
                            state: peer.state.label().to_string(),
                            speaking: heard.speaking && peer.state == PeerState::Connected,
                            video: heard.video,
                            audio_bytes: heard.audio_bytes,
                            video_bytes: heard.video_bytes,
                        }
                    })
                    .collect()
            };
            let call = state.call.as_ref().map(|call| CallView {
                tiles: tiles(call),
                muted: call.muted,
                camera: call.camera_wanted,
                speaker: call.speaker,
                speaking: call.speaking,
                status: call.status.clone(),
            });
            // One voice at a time, here too: only the holder is played (someone who pressed
            // without hearing that another holds it is not heard over them).
            if let Some(talk) = &state.talk {
                let holder = state.floor.holder();
                for (sender, element) in &talk.elements {
                    let muted = JsValue::from_bool(holder != Some(*sender));
                    let _ = Reflect::set(element, &"muted".into(), &muted);
                }
            }
            let talk = state.talk.as_ref().map(|talk| TalkView {
                listeners: tiles(talk),
                speaking: state.floor.holder().map(|holder| {
                    if Some(holder) == me {
                        "you".to_string()
                    } else {
                        engine.people.name_of(engine, holder)
                    }
                }),
                holding: state.pressed_ms.is_some(),
                status: talk.status.clone(),
            });
            let invites = state
                .heard
                .calls()
                .iter()
                .map(|heard| CallInvite {
                    id: mesh::hex::encode(&heard.id),
                    caller: engine.people.name_of(engine, heard.caller),
                    people: heard.count(),
                    video: heard.video,
                    declined: heard.declined,
                    full: heard.full(),
                })
                .collect::<Vec<_>>();
            (call, talk, invites)
        };
        if engine.state.call.with_untracked(|shown| *shown != call) {
            engine.state.call.set(call);
        }
        if engine.state.talk.with_untracked(|shown| *shown != talk) {
            engine.state.talk.set(talk);
        }
        if engine
            .state
            .call_invites
            .with_untracked(|shown| *shown != invites)
        {
            engine.state.call_invites.set(invites);
        }
    }
}

impl State {
    fn line(&self, line: Line) -> Option<&Active> {
        match line {
            Line::Call(_) => self.call.as_ref().filter(|c| c.line == line),
            Line::Talk => self.talk.as_ref(),
        }
    }

    fn line_mut(&mut self, line: Line) -> Option<&mut Active> {
        match line {
            Line::Call(_) => self.call.as_mut().filter(|c| c.line == line),
            Line::Talk => self.talk.as_mut(),
        }
    }
}

/// Seals `signal` for `room` and sends it (to one connection, or the room). `false` when the
/// server is not reachable now.
fn send_signal(
    engine: &Rc<Engine>,
    room: RoomId,
    key: &RoomKey,
    line: Line,
    to: Option<[u8; 32]>,
    signal: Signal,
) -> bool {
    let Some(identity) = engine.session.identity() else {
        return false;
    };
    let route = Route {
        room,
        from: engine.connection.challenge(),
        to,
    };
    let Ok(sealed) = (CallSignal { line, signal }).seal(&identity, key, &route, random_bytes())
    else {
        return false;
    };
    engine
        .connection
        .send(&ClientFrame::Signal { room, to, sealed })
}

/// A description for `setRemoteDescription`.
fn description(kind: &str, sdp: &str) -> JsValue {
    let init = Object::new();
    let _ = Reflect::set(&init, &"type".into(), &kind.into());
    let _ = Reflect::set(&init, &"sdp".into(), &sdp.into());
    init.into()
}

/// Sets the connection's local description (the offer or answer its state calls for) and
/// returns it once its host candidates are in (or after [`GATHER_MS`]).
async fn described(pc: &JsValue) -> Option<String> {
    js::call_async(pc, "setLocalDescription", &[]).await.ok()?;
    for _ in 0..GATHER_MS / 50 {
        let state = Reflect::get(pc, &"iceGatheringState".into())
            .ok()
            .and_then(|s| s.as_string());
        if state.as_deref() == Some("complete") {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let local = Reflect::get(pc, &"localDescription".into()).ok()?;
    Reflect::get(&local, &"sdp".into()).ok()?.as_string()
}

/// Sends this page's tracks on an answered connection's transceivers, by kind.
fn attach_tracks(pc: &JsValue, mic: Option<&JsValue>, camera: Option<&JsValue>) {
    let Ok(transceivers) = js::call(pc, "getTransceivers", &[]) else {
        return;
    };
    for transceiver in Array::from(&transceivers) {
        let kind = Reflect::get(&transceiver, &"receiver".into())
            .and_then(|r| Reflect::get(&r, &"track".into()))
            .map(|t| kind_of(&t))
            .unwrap_or_default();
        let _ = Reflect::set(&transceiver, &"direction".into(), &"sendrecv".into());
        let track = if kind == "video" { camera } else { mic };
        if let Ok(sender) = Reflect::get(&transceiver, &"sender".into()) {
            let track = track.cloned().unwrap_or(JsValue::NULL);
            js::call_detached(&sender, "replaceTrack", &[track]);
        }
    }
}

/// Puts `track` (or nothing) on the connection's sender of `kind`, without a new offer.
fn replace_track(pc: &JsValue, kind: &str, track: Option<&JsValue>) {
    let Ok(transceivers) = js::call(pc, "getTransceivers", &[]) else {
        return;
    };
    for transceiver in Array::from(&transceivers) {
        let of_kind = Reflect::get(&transceiver, &"receiver".into())
            .and_then(|r| Reflect::get(&r, &"track".into()))
            .is_ok_and(|t| kind_of(&t) == kind);
        if of_kind {
            if let Ok(sender) = Reflect::get(&transceiver, &"sender".into()) {
                let track = track.cloned().unwrap_or(JsValue::NULL);
                js::call_detached(&sender, "replaceTrack", &[track]);
            }
        }
    }
}

fn kind_of(track: &JsValue) -> String {
    Reflect::get(track, &"kind".into())
        .ok()
        .and_then(|k| k.as_string())
        .unwrap_or_default()
}

fn new_stream() -> JsValue {
    Reflect::get(&js_sys::global(), &"MediaStream".into())
        .ok()
        .filter(JsValue::is_function)
        .and_then(|class| {
            Reflect::construct(class.unchecked_ref::<js_sys::Function>(), &Array::new()).ok()
        })
        .unwrap_or(JsValue::NULL)
}

/// The media element that plays `sender` (made the first time).
fn element_for(active: &mut Active, sender: SenderId) -> JsValue {
    let speaker = active.speaker;
    let is_call = active.is_call();
    active
        .elements
        .entry(sender)
        .or_insert_with(|| {
            let tag = if is_call { "video" } else { "audio" };
            let element = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.create_element(tag).ok())
                .map(JsValue::from)
                .unwrap_or(JsValue::NULL);
            let _ = Reflect::set(&element, &"autoplay".into(), &JsValue::TRUE);
            let _ = Reflect::set(&element, &"playsInline".into(), &JsValue::TRUE);
            let _ = Reflect::set(&element, &"muted".into(), &JsValue::from_bool(!speaker));
            let _ = Reflect::set(&element, &"className".into(), &"call-video".into());
            element
        })
        .clone()
}

/// This page's own picture (muted: nobody wants to hear themselves).
fn preview_of(stream: &JsValue) -> JsValue {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("video").ok())
        .map(JsValue::from)
        .unwrap_or(JsValue::NULL);
    let _ = Reflect::set(&element, &"muted".into(), &JsValue::TRUE);
    let _ = Reflect::set(&element, &"playsInline".into(), &JsValue::TRUE);
    let _ = Reflect::set(&element, &"autoplay".into(), &JsValue::TRUE);
    let _ = Reflect::set(&element, &"className".into(), &"call-video own".into());
    let _ = Reflect::set(&element, &"srcObject".into(), stream);
    element
}

/// The slot of this page's own tile, when the call panel shows.
fn own_slot() -> Option<web_sys::HtmlElement> {
    web_sys::window()?
        .document()?
        .query_selector("[data-testid=call-own] .call-media")
        .ok()??
        .dyn_into()
        .ok()
}

/// Stops `track` and takes it out of this page's stream `local`.
fn stop_in(local: &JsValue, track: JsValue) {
    let _ = js::call(&track, "stop", &[]);
    let _ = js::call(local, "removeTrack", &[track]);
}

fn stop_all(tracks: &[JsValue]) {
    for track in tracks {
        let _ = js::call(track, "stop", &[]);
    }
}

fn play(element: &JsValue) {
    js::call_detached(element, "play", &[]);
}

/// A short buzz when a call starts ringing, where the phone can.
fn ring() {
    if let Some(window) = web_sys::window() {
        let pattern = Array::of3(&200.into(), &100.into(), &200.into());
        let _ = js::call(&window.navigator(), "vibrate", &[pattern.into()]);
    }
}

/// Opens the microphone (`audio`) and the camera (`video`): the stream and its tracks, or
/// a sentence saying why not (what the person can do about it).
async fn open_media(audio: bool, video: bool) -> Result<(JsValue, Vec<JsValue>), String> {
    let what = if audio { "microphone" } else { "camera" };
    let devices = web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"mediaDevices".into()).ok())
        .filter(|d| !d.is_undefined() && !d.is_null());
    let Some(devices) = devices else {
        return Err(format!(
            "This page cannot use the {what}: calls need FieldMesh's https:// address. You can \
             still hear the others."
        ));
    };
    let wanted = Object::new();
    if audio {
        let constraints = Object::new();
        let _ = Reflect::set(&constraints, &"echoCancellation".into(), &JsValue::TRUE);
        let _ = Reflect::set(&constraints, &"noiseSuppression".into(), &JsValue::TRUE);
        let _ = Reflect::set(&wanted, &"audio".into(), &constraints);
    }
    if video {
        let constraints = Object::new();
        let _ = Reflect::set(&constraints, &"facingMode".into(), &"user".into());
        let ideal = |n: u32| {
            let o = Object::new();
            let _ = Reflect::set(&o, &"ideal".into(), &n.into());
            o
        };
        let _ = Reflect::set(&constraints, &"width".into(), &ideal(640));
        let _ = Reflect::set(&constraints, &"height".into(), &ideal(480));
        let _ = Reflect::set(&wanted, &"video".into(), &constraints);
    }
    match js::call_async(&devices, "getUserMedia", &[wanted.into()]).await {
        Ok(stream) => {
            let tracks = js::call(&stream, "getTracks", &[])
                .map(|t| Array::from(&t).to_vec())
                .unwrap_or_default();
            Ok((stream, tracks))
        }
        Err(error) => {
            let name = Reflect::get(&error, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_default();
            Err(match name.as_str() {
                "NotAllowedError" | "SecurityError" => format!(
                    "FieldMesh may not use the {what}: it was refused. Allow it in this \
                     site's settings (the icon left of the address), then try again. You can \
                     still hear the others."
                ),
                "NotFoundError" | "OverconstrainedError" => format!(
                    "This device has no {what} FieldMesh can use. You can still hear the \
                     others."
                ),
                "NotReadableError" | "AbortError" => format!(
                    "The {what} is busy in another app. Close it and try again. You can still \
                     hear the others."
                ),
                _ => format!(
                    "The {what} could not be opened ({}). You can still hear the others.",
                    js::error_message(&error).unwrap_or(name)
                ),
            })
        }
    }
}
