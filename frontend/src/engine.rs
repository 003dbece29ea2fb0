//! The sync engine: one WebSocket to the server, reconnecting with backoff, and the bridge
//! between server frames and the reactive [`ChatState`] the views read.
//!
//! Messages written here stay in an in-memory queue until the server acknowledges them, and are
//! sent again after every reconnect; the server stores each id once, so a resend never shows
//! twice.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use app::{ChatActions, ChatClient, ChatMessage, ChatState, Connection, Delivery, Session};
use leptos::prelude::*;
use mesh::body::clean_display_name;
use mesh::wire::MAX_HISTORY_PAGE;
use mesh::{
    ClientFrame, Envelope, ErrorCode, Kind, MessageId, RoomId, SenderId, ServerFrame,
    StoredMessage, TextBody,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::device;

/// First reconnect delay; doubles up to [`MAX_BACKOFF_MS`], with random jitter.
const MIN_BACKOFF_MS: u32 = 500;
const MAX_BACKOFF_MS: u32 = 15_000;
/// How often the engine checks the connection is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A connection silent for this long (no frame, no pong) is treated as dead.
const SILENCE_LIMIT_MS: u64 = 25_000;

/// Makes the engine, starts connecting, and restores the last session after hydration.
pub(crate) fn start() -> ChatClient {
    let state = ChatState::new();
    let engine = Rc::new(Engine {
        state,
        sender: device::sender_id(),
        inner: RefCell::new(Inner::default()),
    });
    let actions: Rc<dyn ChatActions> = engine.clone();
    let client = ChatClient::new(state, actions);

    let weak = Rc::downgrade(&engine);
    // After hydration (the first frame must match the server's shell), restore and connect.
    request_animation_frame(move || {
        let Some(engine) = weak.upgrade() else { return };
        if let (Some(name), Some(room)) = device::remembered_session() {
            let _ = engine.join(&name, &room);
        }
        engine.connect();
        let weak = Rc::downgrade(&engine);
        let _ = set_interval_with_handle(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.heartbeat();
                }
            },
            HEARTBEAT,
        );
    });
    // The engine lives as long as the page.
    std::mem::forget(engine);
    client
}

struct Engine {
    state: ChatState,
    sender: SenderId,
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Name and room the person is in, with the room's id.
    joined: Option<(String, RoomId)>,
    socket: Option<Socket>,
    /// The server sent its welcome on the current socket.
    online: bool,
    /// Own messages not yet acknowledged, in the order they were written.
    pending: Vec<Envelope>,
    /// Own messages the server refused, kept for a retry.
    failed: HashMap<MessageId, Envelope>,
    /// Oldest sequence number shown, for paging backwards.
    oldest_seq: Option<u64>,
    backoff_ms: u32,
    reconnect_scheduled: bool,
    last_heard_ms: u64,
}

/// An open WebSocket and the callbacks it holds (dropped with it).
struct Socket {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
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

impl Engine {
    fn connect(self: &Rc<Self>) {
        let mut inner = self.inner.borrow_mut();
        inner.reconnect_scheduled = false;
        if inner.socket.is_some() {
            return;
        }
        self.state.connection.set(Connection::Connecting);
        let Some(ws) = socket_url().and_then(|url| WebSocket::new(&url).ok()) else {
            drop(inner);
            return self.schedule_reconnect();
        };
        ws.set_binary_type(BinaryType::Arraybuffer);

        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let (Some(engine), Ok(buffer)) = (
                weak.upgrade(),
                event.data().dyn_into::<js_sys::ArrayBuffer>(),
            ) {
                engine.on_bytes(&js_sys::Uint8Array::new(&buffer).to_vec());
            }
        });
        let weak: Weak<Self> = Rc::downgrade(self);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
            if let Some(engine) = weak.upgrade() {
                engine.on_disconnect();
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        inner.last_heard_ms = device::now_ms();
        inner.socket = Some(Socket {
            ws,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn on_disconnect(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.socket = None;
            inner.online = false;
        }
        self.state.connection.set(Connection::Offline);
        self.schedule_reconnect();
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = {
            let mut inner = self.inner.borrow_mut();
            if inner.reconnect_scheduled {
                return;
            }
            inner.reconnect_scheduled = true;
            inner.backoff_ms = (inner.backoff_ms.max(MIN_BACKOFF_MS / 2) * 2).min(MAX_BACKOFF_MS);
            // Full jitter between half and all of the backoff, so many phones coming back at
            // once after an outage do not reconnect in lockstep.
            let jitter = u32::from_le_bytes(device::random_bytes()) % (inner.backoff_ms / 2 + 1);
            inner.backoff_ms / 2 + jitter
        };
        let weak = Rc::downgrade(self);
        set_timeout(
            move || {
                if let Some(engine) = weak.upgrade() {
                    engine.connect();
                }
            },
            Duration::from_millis(u64::from(delay)),
        );
    }

    fn heartbeat(self: &Rc<Self>) {
        let silent_for = device::now_ms().saturating_sub(self.inner.borrow().last_heard_ms);
        if self.inner.borrow().online && silent_for > SILENCE_LIMIT_MS {
            // The server or the Wi-Fi vanished without closing the socket: start over.
            self.on_disconnect();
            return;
        }
        self.send_frame(&ClientFrame::Ping {
            nonce: device::now_ms(),
        });
    }

    /// Sends a frame if the server is there; otherwise it is sent again after reconnecting.
    fn send_frame(&self, frame: &ClientFrame) -> bool {
        let inner = self.inner.borrow();
        let (Some(socket), true) = (&inner.socket, inner.online) else {
            return false;
        };
        match frame.encode() {
            Ok(bytes) => socket.ws.send_with_u8_array(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    fn on_bytes(self: &Rc<Self>, bytes: &[u8]) {
        self.inner.borrow_mut().last_heard_ms = device::now_ms();
        let Ok(frame) = ServerFrame::decode(bytes) else {
            leptos::logging::warn!("ignoring a frame from the server that does not decode");
            return;
        };
        match frame {
            ServerFrame::Welcome { .. } => self.on_welcome(),
            ServerFrame::History {
                room,
                messages,
                has_more,
            } => self.on_history(room, messages, has_more),
            ServerFrame::Message(message) => {
                if self.current_room() == Some(message.envelope.room) {
                    self.merge(std::iter::once(message));
                }
            }
            ServerFrame::Ack { id, seq, .. } => {
                self.inner
                    .borrow_mut()
                    .pending
                    .retain(|envelope| envelope.id != id);
                self.update_message(id, |message| {
                    message.delivery = Delivery::Stored;
                    message.seq = Some(seq);
                });
            }
            ServerFrame::Error { code, detail, id } => self.on_error(code, detail, id),
            ServerFrame::Pong { .. } => {}
        }
    }

    fn on_welcome(self: &Rc<Self>) {
        let (room, pending) = {
            let mut inner = self.inner.borrow_mut();
            inner.online = true;
            inner.backoff_ms = 0;
            (
                inner.joined.as_ref().map(|(_, room)| *room),
                inner.pending.clone(),
            )
        };
        self.state.connection.set(Connection::Online);
        if let Some(room) = room {
            self.rejoin(room);
        }
        for envelope in pending {
            self.send_frame(&ClientFrame::Publish(envelope));
        }
    }

    /// Starts the room view over from the server's newest page, keeping unsent own messages, so
    /// a reconnect never leaves a gap in what is shown.
    fn rejoin(&self, room: RoomId) {
        self.inner.borrow_mut().oldest_seq = None;
        self.state
            .messages
            .update(|list| list.retain(|m| m.seq.is_none()));
        self.state.has_older.set(false);
        self.state.loading_older.set(false);
        self.send_frame(&ClientFrame::Join { room });
    }

    fn on_history(&self, room: RoomId, messages: Vec<StoredMessage>, has_more: bool) {
        if self.current_room() != Some(room) {
            return;
        }
        let first_seq = messages.first().map(|m| m.seq);
        let oldest = self.inner.borrow().oldest_seq;
        // The page extends (or starts) what is shown at its old end: it decides whether there
        // is more to load.
        if oldest.is_none() || first_seq.is_none() || first_seq <= oldest {
            self.state.has_older.set(has_more);
        }
        self.state.loading_older.set(false);
        self.merge(messages);
    }

    fn on_error(&self, code: ErrorCode, detail: String, id: Option<MessageId>) {
        if let Some(id) = id {
            if code == ErrorCode::Internal {
                // The server will manage later: leave it queued for the next connection.
                self.state
                    .notice
                    .set(Some(format!("Not stored yet: {detail}")));
                return;
            }
            let mut inner = self.inner.borrow_mut();
            if let Some(at) = inner.pending.iter().position(|e| e.id == id) {
                let envelope = inner.pending.remove(at);
                inner.failed.insert(id, envelope);
            }
            drop(inner);
            self.update_message(id, |message| message.delivery = Delivery::Failed);
        }
        self.state
            .notice
            .set(Some(format!("The server refused: {detail}")));
    }

    fn current_room(&self) -> Option<RoomId> {
        self.inner.borrow().joined.as_ref().map(|(_, room)| *room)
    }

    fn to_chat_message(
        &self,
        envelope: &Envelope,
        seq: Option<u64>,
        delivery: Delivery,
    ) -> ChatMessage {
        let (author, text) = match envelope.kind {
            Kind::Text => match TextBody::decode(&envelope.body) {
                Ok(body) => (body.author, body.text),
                Err(_) => ("unknown".into(), "(this message could not be read)".into()),
            },
        };
        ChatMessage {
            id: envelope.id.to_string(),
            author,
            text,
            time: device::format_time(envelope.created_at_ms),
            seq,
            created_at_ms: envelope.created_at_ms,
            own: envelope.sender == self.sender,
            delivery,
        }
    }

    /// Adds stored messages to the list, once each, in server order.
    fn merge(&self, messages: impl IntoIterator<Item = StoredMessage>) {
        let incoming: Vec<ChatMessage> = messages
            .into_iter()
            .map(|stored| {
                self.to_chat_message(&stored.envelope, Some(stored.seq), Delivery::Stored)
            })
            .collect();
        if incoming.is_empty() {
            return;
        }
        if let Some(oldest) = incoming.iter().filter_map(|m| m.seq).min() {
            let mut inner = self.inner.borrow_mut();
            inner.oldest_seq = Some(inner.oldest_seq.map_or(oldest, |seq| seq.min(oldest)));
        }
        self.state.messages.update(|list| {
            let mut index: HashMap<String, usize> = list
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), i))
                .collect();
            for message in incoming {
                match index.get(&message.id) {
                    Some(&at) => {
                        list[at].seq = message.seq;
                        list[at].delivery = Delivery::Stored;
                    }
                    None => {
                        index.insert(message.id.clone(), list.len());
                        list.push(message);
                    }
                }
            }
            list.sort_by_key(|m| (m.seq.unwrap_or(u64::MAX), m.created_at_ms));
        });
    }

    fn update_message(&self, id: MessageId, change: impl FnOnce(&mut ChatMessage)) {
        let id = id.to_string();
        self.state.messages.update(|list| {
            if let Some(message) = list.iter_mut().find(|m| m.id == id) {
                change(message);
            }
            list.sort_by_key(|m| (m.seq.unwrap_or(u64::MAX), m.created_at_ms));
        });
    }
}

impl ChatActions for Engine {
    fn join(&self, name: &str, room: &str) -> Result<(), String> {
        let name = clean_display_name(name)
            .ok_or_else(|| "Choose a display name of 1 to 40 characters.".to_string())?;
        let room_name = room.split_whitespace().collect::<Vec<_>>().join(" ");
        let room_id = RoomId::from_name(&room_name)
            .ok_or_else(|| "Choose a room name of 1 to 64 characters.".to_string())?;
        device::remember_session(&name, Some(&room_name));
        self.inner.borrow_mut().joined = Some((name.clone(), room_id));
        self.state.messages.set(Vec::new());
        self.state.notice.set(None);
        self.state.session.set(Some(Session {
            name,
            room: room_name,
        }));
        self.rejoin(room_id);
        Ok(())
    }

    fn leave(&self) {
        let joined = self.inner.borrow_mut().joined.take();
        if let Some((name, room)) = joined {
            self.send_frame(&ClientFrame::Leave { room });
            device::remember_session(&name, None);
        }
        self.state.session.set(None);
        self.state.messages.set(Vec::new());
        self.state.notice.set(None);
    }

    fn send(&self, text: &str) -> Result<(), String> {
        let Some((name, room)) = self.inner.borrow().joined.clone() else {
            return Err("Join a room first.".into());
        };
        let body = TextBody::new(&name, text).map_err(|error| format!("Not sent: {error}."))?;
        let envelope = Envelope {
            id: device::new_message_id(),
            room,
            sender: self.sender,
            created_at_ms: device::now_ms(),
            kind: Kind::Text,
            body: body
                .encode()
                .map_err(|error| format!("Not sent: {error}."))?,
        };
        let message = self.to_chat_message(&envelope, None, Delivery::Sending);
        self.state.messages.update(|list| list.push(message));
        self.inner.borrow_mut().pending.push(envelope.clone());
        self.send_frame(&ClientFrame::Publish(envelope));
        Ok(())
    }

    fn load_older(&self) {
        let (Some(room), Some(before_seq)) = (self.current_room(), self.inner.borrow().oldest_seq)
        else {
            return;
        };
        if self.send_frame(&ClientFrame::History {
            room,
            before_seq,
            limit: MAX_HISTORY_PAGE / 2,
        }) {
            self.state.loading_older.set(true);
        } else {
            self.state.notice.set(Some(
                "Older messages load when the server is reachable.".into(),
            ));
        }
    }

    fn retry(&self, id: &str) {
        let Some(id) = MessageId::from_hex(id) else {
            return;
        };
        let Some(envelope) = self.inner.borrow_mut().failed.remove(&id) else {
            return;
        };
        self.inner.borrow_mut().pending.push(envelope.clone());
        self.update_message(id, |message| message.delivery = Delivery::Sending);
        self.send_frame(&ClientFrame::Publish(envelope));
    }
}
