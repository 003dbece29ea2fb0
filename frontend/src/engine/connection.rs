//! The connection to the server: one WebSocket (gloo-net's, as a Stream and a Sink), opened
//! again with backoff when it goes, checked by a heartbeat, and the join code.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use app::Connection as Shown;
use client::connection::{is_silent, Backoff};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::hex::{decode as unhex, encode as hex};
use mesh::{ClientFrame, ErrorCode, ServerFrame};

use super::{mark, Engine};
use crate::device;

/// Frames waiting for the socket, at most (each at most 64 KiB; the outbox waits for room).
const SEND_QUEUE: usize = 256;

/// The connection part.
#[derive(Default)]
pub(super) struct Connection {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Frames for the current socket's writer.
    to_server: Option<mpsc::Sender<Vec<u8>>>,
    /// Bumped for each socket, so an old socket's reader stops quietly.
    generation: u32,
    /// The server sent its welcome on the current socket.
    online: bool,
    /// The server lets this device read and send on the current socket.
    unlocked: bool,
    backoff: Backoff,
    reconnect_scheduled: bool,
    last_heard_ms: f64,
    /// The current server's store id (hex), from its welcome.
    store_id: String,
    /// This connection's challenge: room proofs and presence cards are made for it.
    challenge: [u8; 32],
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

impl Connection {
    /// Whether the server welcomed this device and it may read and send.
    pub(super) fn is_ready(&self) -> bool {
        let state = self.state.borrow();
        state.online && state.unlocked
    }

    /// The current server's store id (hex), once welcomed.
    pub(super) fn store_id(&self) -> String {
        self.state.borrow().store_id.clone()
    }

    /// This connection's challenge (see [`mesh::ServerFrame::Welcome`]).
    pub(super) fn challenge(&self) -> [u8; 32] {
        self.state.borrow().challenge
    }

    /// Sends a frame if the server is there. Anything that must arrive is in the outbox and
    /// goes again after the next welcome.
    pub(super) fn send(&self, frame: &ClientFrame) -> bool {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let (Some(to_server), true) = (state.to_server.as_mut(), state.online) else {
            return false;
        };
        match frame.encode() {
            Ok(bytes) => to_server.try_send(bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// Sends a frame, waiting for room in the send queue (the outbox drains this way, so a
    /// thousand messages never overflow it). `false` when the connection is gone.
    pub(super) async fn send_in_turn(&self, frame: &ClientFrame) -> bool {
        let to_server = {
            let state = self.state.borrow();
            match (&state.to_server, state.online) {
                (Some(to_server), true) => to_server.clone(),
                _ => return false,
            }
        };
        match frame.encode() {
            Ok(bytes) => to_server.clone().send(bytes).await.is_ok(),
            Err(_) => false,
        }
    }

    pub(super) fn connect_now(&self, engine: &Rc<Engine>) {
        if self.state.borrow().online {
            self.heartbeat(engine);
        } else {
            self.state.borrow_mut().backoff.reset();
            self.connect(engine);
        }
    }

    pub(super) fn connect(&self, engine: &Rc<Engine>) {
        let generation = {
            let mut state = self.state.borrow_mut();
            state.reconnect_scheduled = false;
            if state.to_server.is_some() {
                return;
            }
            state.generation = state.generation.wrapping_add(1);
            state.generation
        };
        engine.state.connection.set(Shown::Connecting);
        let Some(socket) = socket_url().and_then(|url| WebSocket::open(&url).ok()) else {
            return self.schedule_reconnect(engine);
        };
        let (mut sink, mut stream) = socket.split();
        let (to_server, mut outgoing) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        {
            let mut state = self.state.borrow_mut();
            state.to_server = Some(to_server);
            state.last_heard_ms = js_sys::Date::now();
        }
        spawn_local(async move {
            while let Some(bytes) = outgoing.next().await {
                if sink.send(Message::Bytes(bytes)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let weak = Rc::downgrade(engine);
        spawn_local(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Some(engine) = weak.upgrade() else { return };
                if engine.connection.state.borrow().generation != generation {
                    return;
                }
                if let Message::Bytes(bytes) = message {
                    engine.connection.state.borrow_mut().last_heard_ms = js_sys::Date::now();
                    match ServerFrame::decode(&bytes) {
                        Ok(frame) => engine.on_frame(frame),
                        Err(_) => leptos::logging::warn!(
                            "ignoring a frame from the server that does not decode"
                        ),
                    }
                }
            }
            if let Some(engine) = weak.upgrade() {
                if engine.connection.state.borrow().generation == generation {
                    engine.connection.drop_connection(&engine);
                }
            }
        });
    }

    /// The socket closed or died: forget it, tell the parts, and try again later.
    pub(super) fn drop_connection(&self, engine: &Rc<Engine>) {
        {
            let mut state = self.state.borrow_mut();
            if state.to_server.is_none() {
                return;
            }
            // Dropping the sender ends the writer, which closes the socket.
            state.to_server = None;
            state.generation = state.generation.wrapping_add(1);
            state.online = false;
            state.unlocked = false;
        }
        engine.state.connection.set(Shown::Offline);
        engine.state.progress.set(None);
        engine.on_disconnect();
        self.schedule_reconnect(engine);
    }

    fn schedule_reconnect(&self, engine: &Rc<Engine>) {
        let delay = {
            let mut state = self.state.borrow_mut();
            if state.reconnect_scheduled {
                return;
            }
            state.reconnect_scheduled = true;
            state
                .backoff
                .next_delay(u32::from_le_bytes(device::random_bytes()))
        };
        let weak = Rc::downgrade(engine);
        set_timeout(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.connection.connect(&engine);
                }
            },
            Duration::from_millis(u64::from(delay)),
        );
    }

    /// Checks the connection is alive and pings the server. `false` when it was dead.
    pub(super) fn heartbeat(&self, engine: &Rc<Engine>) -> bool {
        let (online, last_heard_ms) = {
            let state = self.state.borrow();
            (state.online, state.last_heard_ms)
        };
        if online && is_silent(js_sys::Date::now(), last_heard_ms) {
            // The server or the Wi-Fi vanished without closing the socket: start over.
            self.drop_connection(engine);
            return false;
        }
        self.send(&ClientFrame::Ping {
            nonce: js_sys::Date::now() as u64,
        });
        true
    }

    pub(super) fn on_welcome(
        &self,
        engine: &Rc<Engine>,
        code_required: bool,
        store_id: [u8; 16],
        challenge: [u8; 32],
    ) {
        {
            let mut state = self.state.borrow_mut();
            state.challenge = challenge;
            state.online = true;
            state.unlocked = false;
            state.backoff.reset();
            state.store_id = hex(&store_id);
        }
        engine.outbox.on_connected();
        if !code_required {
            return self.on_unlocked(engine);
        }
        // A device that unlocked before shows its pass; otherwise the person enters the code.
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let token = match engine.db() {
                Some(db) => db.setting("token").await.ok().flatten(),
                None => None,
            };
            match token.as_deref().and_then(unhex::<32>) {
                Some(token) => {
                    engine.connection.send(&ClientFrame::Authenticate { token });
                }
                None => ask_for_code(&engine, None),
            }
        });
    }

    pub(super) fn on_access(&self, engine: &Rc<Engine>, token: [u8; 32]) {
        let saving = Rc::clone(engine);
        spawn_local(async move {
            if let Some(db) = saving.db() {
                if let Err(error) = db.set_setting("token", Some(&hex(&token))).await {
                    saving.notice(format!(
                        "Could not remember this device's pass: {}",
                        error.0
                    ));
                }
            }
        });
        self.on_unlocked(engine);
    }

    fn on_unlocked(&self, engine: &Rc<Engine>) {
        self.state.borrow_mut().unlocked = true;
        engine.state.code_needed.set(false);
        engine.state.code_error.set(None);
        mark("fieldmesh:online");
        engine.state.connection.set(Shown::Online);
        engine.on_unlocked();
    }

    /// A refusal that names no message: about the join code, or a sentence for the person.
    pub(super) fn on_error(
        &self,
        engine: &Rc<Engine>,
        code: ErrorCode,
        detail: String,
        retry_after_ms: Option<u32>,
    ) {
        let retry_seconds = retry_after_ms.map_or(1, |ms| ms.div_ceil(1000).max(1));
        match code {
            ErrorCode::WrongCode => {
                // A pass from before a code change no longer works: forget it.
                let forgetting = Rc::clone(engine);
                spawn_local(async move {
                    if let Some(db) = forgetting.db() {
                        let _ = db.set_setting("token", None).await;
                    }
                });
                ask_for_code(
                    engine,
                    Some("That is not the join code. Ask the operator of this FieldMesh.".into()),
                );
            }
            ErrorCode::RateLimited if engine.state.code_needed.get_untracked() => {
                let ticking = engine.state.code_wait_s.get_untracked() > 0;
                engine.state.code_wait_s.set(retry_seconds);
                ask_for_code(engine, Some("Too many tries.".into()));
                if !ticking {
                    count_down(engine.state);
                }
            }
            ErrorCode::CodeRequired => ask_for_code(engine, None),
            _ => engine.notice(format!("The server refused: {detail}")),
        }
    }
}

/// Counts the wait before the next try at the join code down, a second at a time.
fn count_down(state: app::ChatState) {
    set_timeout(
        move || {
            let left = state.code_wait_s.get_untracked().saturating_sub(1);
            state.code_wait_s.set(left);
            if left > 0 {
                count_down(state);
            } else {
                state
                    .code_error
                    .set(Some("You can try the code again now.".into()));
            }
        },
        Duration::from_secs(1),
    );
}

fn ask_for_code(engine: &Engine, error: Option<String>) {
    engine.state.connection.set(Shown::Locked);
    engine.state.code_needed.set(true);
    engine.state.code_error.set(error);
}
