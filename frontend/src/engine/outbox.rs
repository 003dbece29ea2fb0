//! The outbox: every message written goes to the device's store first (in the same transaction
//! as its place in the room), then to the server, in order, once per connection. The server
//! stores each id once, so sending again after a reload, a crash or a lost acknowledgement
//! never shows a message twice. What to send and what an answer does is decided by
//! [`client::outbox::OutboxBook`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use app::{SyncProgress, SyncStep};
use client::outbox::{OutboxBook, Refusal};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::crypto::{Identity, RoomKey};
use mesh::{ClientFrame, Envelope, ErrorCode, MessageId, TextBody};

use super::session::Writer;
use super::{mark, Engine};
use crate::db::{Db, MessageRecord, PieceRef, RecordState, LOCAL_ORDER_BASE};
use crate::device;

/// The outbox part.
#[derive(Default)]
pub(super) struct Outbox {
    book: RefCell<OutboxBook>,
    /// A pass over the outbox is running; `again` asks it for one more.
    flushing: RefCell<(bool, bool)>,
}

impl Outbox {
    /// Counts what waits from before (a reload, a restart).
    pub(super) async fn load(&self, engine: &Rc<Engine>, db: &Db) {
        let waiting = waiting_ids(db).await.unwrap_or_default();
        self.book.borrow_mut().plan(&waiting);
        self.show_progress(engine);
    }

    pub(super) fn on_connected(&self) {
        self.book.borrow_mut().reconnected();
    }

    pub(super) fn on_disconnect(&self, _engine: &Rc<Engine>) {
        self.book.borrow_mut().reconnected();
    }

    /// Whether `id` was sent from here on this connection (or acknowledged): the server's
    /// copy of it is its acknowledgement.
    pub(super) fn is_own(&self, id: &MessageId) -> bool {
        self.book.borrow().is_own(id)
    }

    /// Sends the outbox, in order, when connected. Every path that adds to the outbox comes
    /// here, so a new message never overtakes older ones still waiting.
    pub(super) fn request_flush(&self, engine: &Rc<Engine>) {
        if !engine.connection.is_ready() {
            return;
        }
        {
            let mut flushing = self.flushing.borrow_mut();
            if flushing.0 {
                flushing.1 = true;
                return;
            }
            *flushing = (true, false);
        }
        let engine = Rc::clone(engine);
        spawn_local(async move {
            loop {
                engine.outbox.send_once(&engine).await;
                let mut flushing = engine.outbox.flushing.borrow_mut();
                if !std::mem::take(&mut flushing.1) {
                    flushing.0 = false;
                    return;
                }
            }
        });
    }

    async fn send_once(&self, engine: &Rc<Engine>) {
        let Some(db) = engine.db() else { return };
        let outbox = match db.outbox().await {
            Ok(outbox) => outbox,
            Err(error) => return engine.notice(format!("Could not read the outbox: {}", error.0)),
        };
        let mut outbox = outbox;
        // An SOS and its answers go first; the rest in the order written.
        outbox.sort_by_key(|e| !e.urgent);
        let entries: Vec<(MessageId, Envelope, Vec<u8>, bool, bool, bool)> = outbox
            .into_iter()
            .filter(|e| !e.failed)
            .filter_map(|e| match Envelope::decode(&e.envelope) {
                Ok(envelope) => Some((
                    envelope.id,
                    envelope,
                    e.radio,
                    e.heard,
                    e.pieces.is_empty(),
                    e.urgent,
                )),
                Err(_) => {
                    leptos::logging::warn!("an outbox entry does not decode; leaving it");
                    None
                }
            })
            .collect();
        // Counted while they wait, whether for the server or for their files' upload.
        let waiting: Vec<MessageId> = entries.iter().map(|e| e.0).collect();
        let to_send = self.book.borrow_mut().plan(&waiting);
        self.show_progress(engine);
        for (id, envelope, radio, heard, uploaded, urgent) in entries {
            // Its files are not all on the server yet: it goes once they are.
            if !uploaded || !to_send.contains(&id) {
                continue;
            }
            let room = envelope.room;
            let frame = if heard {
                // Heard over this device's radio while no server was reachable: upload it.
                ClientFrame::RadioHeard(envelope)
            } else {
                ClientFrame::Publish(envelope)
            };
            if !engine.connection.send_in_turn(&frame).await {
                return;
            }
            self.book.borrow_mut().mark_sent(id);
            // A server without a radio ignores this; one with a radio carries it to other
            // camps (it never sees the text: the radio form is sealed here).
            if !heard && !radio.is_empty() {
                let frame = if urgent {
                    ClientFrame::SendUrgentRadio {
                        room,
                        id,
                        payload: radio,
                    }
                } else {
                    ClientFrame::SendRadio {
                        room,
                        id,
                        payload: radio,
                    }
                };
                engine.connection.send_in_turn(&frame).await;
            }
        }
    }

    /// The server stored `id` as `seq` (its acknowledgement, or its copy coming back first).
    /// `true` the first time.
    pub(super) fn on_stored(&self, engine: &Rc<Engine>, id: MessageId, seq: u64) -> bool {
        if !self.book.borrow_mut().stored(id) {
            return false;
        }
        // The list shows the new state after the store has it (in one batch with the other
        // acknowledgements that arrive meanwhile).
        engine.inbox.ack(engine, id, seq);
        self.show_progress(engine);
        if self.book.borrow().queued() == 0 {
            mark("fieldmesh:outbox-drained");
        }
        true
    }

    /// The store deleted these entries: nothing left to guard.
    pub(super) fn forgotten(&self, ids: impl IntoIterator<Item = MessageId>) {
        self.book.borrow_mut().forgotten(ids);
    }

    pub(super) fn on_refused(
        &self,
        engine: &Rc<Engine>,
        id: MessageId,
        code: ErrorCode,
        detail: String,
        retry_after_ms: Option<u32>,
    ) {
        let refusal = self.book.borrow_mut().refused(id, code, retry_after_ms);
        match refusal {
            Refusal::NotOurs => {}
            Refusal::RetryAfter(ms) => {
                // Not the message's fault: it stays queued and goes again after a pause.
                let weak = Rc::downgrade(engine);
                set_timeout(
                    move || {
                        if let Some(engine) = weak.upgrade() {
                            engine.outbox.request_flush(&engine);
                        }
                    },
                    Duration::from_millis(u64::from(ms)),
                );
                if code == ErrorCode::Internal {
                    engine.notice(format!("Not stored yet: {detail}"));
                }
            }
            Refusal::Failed => {
                engine.inbox.refuse(engine, id);
                self.show_progress(engine);
                engine.notice(format!("The server refused a message: {detail}"));
            }
        }
    }

    /// Seals `text` as this device in the current room and puts it in the outbox (with the
    /// files attached in the composer, when there are any).
    pub(super) fn write(&self, engine: &Rc<Engine>, text: &str) -> Result<(), String> {
        let writer = engine
            .session
            .writer()
            .ok_or_else(|| "Join a room first.".to_string())?;
        let db = engine
            .db()
            .ok_or("This browser cannot keep messages on the device; see the notice.")?;
        let position = engine.location.for_message(engine)?;
        if engine.files.has_drafts() {
            return engine.files.send(engine, writer, text, position);
        }
        let body = TextBody::new(&writer.0, text)
            .map_err(|error| format!("Not sent: {error}."))?
            .at(position);
        let (record, envelope, radio) = sealed(&writer, &body, None)?;
        let engine = Rc::clone(engine);
        spawn_local(async move {
            let _ = engine
                .outbox
                .store(&engine, &db, record, envelope, radio, Vec::new())
                .await;
        });
        Ok(())
    }

    /// Keeps a sealed message in the outbox and its room (the notice says so when it cannot),
    /// and sends it when it may go: at once, or once its files' `pieces` are uploaded.
    pub(super) async fn store(
        &self,
        engine: &Rc<Engine>,
        db: &Db,
        record: MessageRecord,
        envelope: Vec<u8>,
        radio: Vec<u8>,
        pieces: Vec<PieceRef>,
    ) -> Result<(), ()> {
        self.book.borrow_mut().added();
        self.show_progress(engine);
        let with_files = !pieces.is_empty();
        match db.enqueue(&record, envelope, radio, pieces).await {
            Ok(superseded) => {
                for _ in 0..superseded {
                    self.book.borrow_mut().dropped();
                }
                engine.inbox.appended(engine);
                if with_files {
                    engine.files.request_upload(engine);
                }
                self.request_flush(engine);
                engine.radio.send_outbox(engine).await;
                Ok(())
            }
            Err(error) => {
                self.book.borrow_mut().dropped();
                self.show_progress(engine);
                engine.notice(format!(
                    "Could not save the message on this device: {}",
                    error.0
                ));
                Err(())
            }
        }
    }

    /// The server refused a piece of a message's file for good: the message waits, failed,
    /// for the person (its count leaves the queue).
    pub(super) fn upload_refused(&self, engine: &Rc<Engine>, id: MessageId) {
        self.book.borrow_mut().dropped();
        self.show_progress(engine);
        engine.inbox.refuse(engine, id);
    }

    /// A message heard over this device's radio was queued for upload.
    pub(super) fn heard_queued(&self, engine: &Rc<Engine>) {
        self.book.borrow_mut().added();
        self.show_progress(engine);
        self.request_flush(engine);
    }

    /// The person taps a failed message: it goes again.
    pub(super) fn retry(&self, engine: &Rc<Engine>, id: String) {
        let Some(db) = engine.db() else { return };
        let engine = Rc::clone(engine);
        spawn_local(async move {
            match db.retry(&id).await {
                Ok(Some(_)) => {
                    engine.outbox.book.borrow_mut().added();
                    engine.outbox.show_progress(&engine);
                    engine.inbox.changed(&engine);
                    engine.files.request_upload(&engine);
                    engine.outbox.request_flush(&engine);
                }
                Ok(None) => {}
                Err(error) => engine.notice(format!("Could not retry: {}", error.0)),
            }
        });
    }

    fn show_progress(&self, engine: &Rc<Engine>) {
        let book = self.book.borrow();
        engine.state.queued.set(book.queued());
        let showing_receive = engine
            .state
            .progress
            .with_untracked(|p| p.is_some_and(|p| p.what == SyncStep::Receiving));
        if showing_receive {
            return;
        }
        engine
            .state
            .progress
            .set(book.progress().map(|(done, total)| SyncProgress {
                what: SyncStep::Sending,
                done,
                total,
            }));
    }
}

/// `body` sealed as the writer in their room: the record to show, the envelope, and its
/// radio form (empty when it is too long for the radio; files travel there as a line each,
/// "[photo, 180 KB]").
pub(super) fn sealed(
    (_, joined, identity): &Writer,
    body: &TextBody,
    camp: Option<&str>,
) -> Result<(MessageRecord, Vec<u8>, Vec<u8>), String> {
    sealed_for(&joined.key, &joined.room_hex, identity, body, camp)
}

/// `body` sealed by `identity` for the room of `key` (hex `room_hex`), which need not be the
/// room open now (an SOS goes to the Emergency room too): see [`sealed`].
pub(super) fn sealed_for(
    key: &RoomKey,
    room_hex: &str,
    identity: &Identity,
    body: &TextBody,
    camp: Option<&str>,
) -> Result<(MessageRecord, Vec<u8>, Vec<u8>), String> {
    let client::compose::Sealed {
        envelope,
        bytes,
        radio,
    } = client::compose::seal_body(
        identity,
        key,
        body,
        camp,
        client::compose::Fresh {
            id: device::random_bytes(),
            nonce: device::random_bytes(),
            now_ms: js_sys::Date::now() as u64,
        },
    )?;
    let record = MessageRecord {
        id: envelope.id.to_string(),
        room: room_hex.to_string(),
        order: LOCAL_ORDER_BASE + envelope.created_at_ms as f64,
        seq: None,
        created_at: envelope.created_at_ms as f64,
        sender: identity.sender().to_string(),
        author: body.author.clone(),
        text: body.text.clone(),
        state: RecordState::Queued,
        camps: Vec::new(),
        files: mesh::body::encode_attachments(&body.attachments),
        position: body.position,
        signal: body.signal,
        received_at: None,
    };
    Ok((record, bytes, radio))
}

/// Ids of the outbox entries that wait (not failed), in order.
async fn waiting_ids(db: &Db) -> Option<Vec<MessageId>> {
    let outbox = db.outbox().await.ok()?;
    Some(
        outbox
            .iter()
            .filter(|e| !e.failed)
            .filter_map(|e| mesh::hex::decode::<16>(&e.id).map(MessageId))
            .collect(),
    )
}
