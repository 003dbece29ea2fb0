//! Frames between a browser and a server over a WebSocket (binary messages).

use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::crypto::RoomProof;
use crate::{DecodeError, EncodeError, Envelope, MessageId, RoomId, SenderId, MAX_ENVELOPE_BYTES};

/// Format version of every frame (its first byte).
pub const WIRE_VERSION: u8 = 1;
/// Largest frame a client may send: one publish and some room to spare.
pub const MAX_FRAME_BYTES: usize = MAX_ENVELOPE_BYTES + 1024;
/// Largest server frame: a page of history.
pub const MAX_SERVER_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Most messages one history page holds.
pub const MAX_HISTORY_PAGE: u16 = 200;
/// Longest join code, in characters.
pub const MAX_JOIN_CODE_CHARS: usize = 64;
/// Largest presence card (what a member shows others about themselves; opaque to the server).
pub const MAX_PRESENCE_BYTES: usize = 512;

/// Someone following a room right now, as the other followers see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's device.
    pub sender: SenderId,
    /// The challenge of the connection the member joined on (see [`ServerFrame::Welcome`]):
    /// the sealed card is signed over it, so a card replayed on another connection does not
    /// pass for the member.
    pub challenge: [u8; 32],
    /// What the member shows others (their display name, encoded by the client; the server
    /// never interprets it). At most [`MAX_PRESENCE_BYTES`].
    #[serde(with = "serde_bytes")]
    pub card: Vec<u8>,
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Follow a room. Without a cursor the server answers with the newest page of its history
    /// ([`ServerFrame::History`]); with one, with every message after it
    /// ([`ServerFrame::CatchUp`] frames until `done`). Then it sends each new message as it is
    /// stored, and the room's presence list.
    Join {
        /// The room to follow.
        room: RoomId,
        /// The highest sequence number the client holds with nothing missing below it.
        after_seq: Option<u64>,
        /// Who is joining, for the presence list.
        member: Member,
        /// That this device holds the room key (the server lets nobody else follow the room).
        proof: RoomProof,
    },
    /// The person is typing in a room (sent at most every few seconds while they type).
    Typing {
        /// The room they type in.
        room: RoomId,
    },
    /// Stop following a room.
    Leave {
        /// The room to leave.
        room: RoomId,
    },
    /// Store and deliver a message. The server answers with [`ServerFrame::Ack`] once it is
    /// durably stored, or [`ServerFrame::Error`] naming the message id.
    Publish(Envelope),
    /// Ask for older history: up to `limit` messages with a sequence number below `before_seq`.
    History {
        /// The room whose history to page through.
        room: RoomId,
        /// Exclusive upper bound: the oldest sequence number the client already has.
        before_seq: u64,
        /// How many messages at most (capped at [`MAX_HISTORY_PAGE`]).
        limit: u16,
        /// That this device holds the room key.
        proof: RoomProof,
    },
    /// Unlock this device with the operator's join code. Answered with [`ServerFrame::Access`]
    /// carrying a device token to present on later connections.
    Unlock {
        /// The code as typed (at most [`MAX_JOIN_CODE_CHARS`] characters).
        code: String,
        /// The device asking.
        device: SenderId,
    },
    /// Present the device token an earlier unlock gave. Answered with [`ServerFrame::Access`].
    Authenticate {
        /// The token.
        token: [u8; 32],
    },
    /// Liveness check; answered with [`ServerFrame::Pong`] carrying the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Also send the message `id` (already published) over the server's radio, in its radio
    /// form (see [`crate::radio`]); the sender made it because only it holds the room key.
    /// Ignored when the server has no radio. Answered with [`ServerFrame::Relayed`] once a
    /// neighbour's rebroadcast or acknowledgement was heard.
    SendRadio {
        /// The room the message was published in.
        room: RoomId,
        /// The published message's id.
        id: MessageId,
        /// The radio payload (send time and sealed text), at most
        /// [`crate::radio::MAX_PAYLOAD_BYTES`].
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Store a message this device heard over its own radio (Web Serial, direct mode) while
    /// no server was reachable: a [`crate::Kind::Radio`] envelope made with
    /// [`crate::radio::RadioMessage::to_envelope`]. Answered like a publish.
    RadioHeard(Envelope),
    /// Lend this page's radio to the server: it then sends [`ServerFrame::RadioFrame`]s to
    /// transmit and expects [`ClientFrame::RadioFrame`]s heard. Answered with
    /// [`ServerFrame::Lending`].
    LendRadio {
        /// Who lends, for the server's radio line (at most [`MAX_LENDER_LABEL_CHARS`]).
        label: String,
    },
    /// Stop lending the radio.
    StopLending,
    /// A frame the lent radio heard (at most [`crate::radio::MAX_FRAME_BYTES`]).
    RadioFrame {
        /// The frame as heard.
        #[serde(with = "serde_bytes")]
        frame: Vec<u8>,
    },
    /// Send this camp's receipt for a message heard over the radio (made with
    /// [`crate::radio::RadioMessage::seal_receipt`]: only a holder of the room key can). Every
    /// phone of the camp makes the same id, and the server sends each once. Not answered;
    /// ignored without a radio.
    SendReceipt {
        /// The room of the message.
        room: RoomId,
        /// The receipt's id (its first 6 bytes are its radio id).
        id: MessageId,
        /// The receipt's radio payload, at most [`crate::radio::MAX_PAYLOAD_BYTES`].
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Watch a room without reading it: be among its members (presence) and be sent each new
    /// message as it is stored ([`ServerFrame::Message`]) and each presence change, but no
    /// history and no typing. Answered with [`ServerFrame::Unread`]. A [`ClientFrame::Join`] of
    /// the same room replaces the watch, and a watch replaces a join; both count towards the
    /// rooms one connection may follow.
    Watch {
        /// The room to watch.
        room: RoomId,
        /// The highest sequence number the person has seen in the room, when any: what came
        /// after it, from others, is unread.
        read_seq: Option<u64>,
        /// Who watches, for the presence list.
        member: Member,
        /// That this device holds the room key.
        proof: RoomProof,
    },
    /// Ask for a ticket to upload files' pieces for a room (`FieldMesh-Room-Ticket` on
    /// `PUT /chunks/ID`): they count towards the room's quota. Answered with
    /// [`ServerFrame::FileTicket`].
    FileTicket {
        /// The room the files are for.
        room: RoomId,
        /// That this device holds the room key.
        proof: RoomProof,
    },
    /// [`ClientFrame::SendRadio`] for an SOS or its answer: its frames go before every other
    /// frame waiting for the radio, and an unconfirmed round goes again sooner. (The server
    /// learns that the message is urgent, not what it says.)
    SendUrgentRadio {
        /// The room the message was published in.
        room: RoomId,
        /// The published message's id.
        id: MessageId,
        /// The radio payload, at most [`crate::radio::MAX_PAYLOAD_BYTES`].
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Pass a call signal (made with [`crate::call::CallSignal::seal`]) to the followers of a
    /// room this connection follows: to one of them (its connection's challenge) or to all.
    /// Nothing is stored and nothing answers; the server only checks the size and the pace.
    Signal {
        /// The room.
        room: RoomId,
        /// The connection it is for, or `None` for every follower but the sender.
        to: Option<[u8; 32]>,
        /// The sealed signal, at most [`crate::call::MAX_SIGNAL_BYTES`].
        #[serde(with = "serde_bytes")]
        sealed: Vec<u8>,
    },
}

/// Unread counts stop at this many (a list shows "99+").
pub const MAX_UNREAD_COUNT: u32 = 100;

/// Longest label of a lent radio, in characters.
pub const MAX_LENDER_LABEL_CHARS: usize = 64;

/// A message as the server stored it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Server-assigned order: increases with every newly stored message.
    pub seq: u64,
    /// Server clock when the message was first stored, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The message exactly as its sender made it.
    pub envelope: Envelope,
}

/// What went wrong with something a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame was larger than [`MAX_FRAME_BYTES`]; it was dropped.
    FrameTooLarge,
    /// The frame could not be decoded; it was dropped.
    Malformed,
    /// The frame's version byte is unknown; the client should reload to update.
    UnknownVersion,
    /// The message body is larger than [`crate::MAX_BODY_BYTES`]; it was not stored.
    BodyTooLarge,
    /// Only binary frames are understood.
    TextFrame,
    /// The server could not store the message; try again later.
    Internal,
    /// A limit on the connection was reached (rooms followed, presence size); nothing was done.
    LimitReached,
    /// This server asks for a join code before anything else; send [`ClientFrame::Unlock`].
    CodeRequired,
    /// The join code (or device token) was wrong.
    WrongCode,
    /// Too many requests; try again after `retry_after_ms`.
    RateLimited,
    /// The message's signature does not match its sender's key; it was not stored.
    BadSignature,
    /// Another message with this id is stored in this room; this one was not stored.
    IdConflict,
    /// The room proof did not show the room's key: nothing of the room was sent.
    RoomKeyRequired,
}

/// What a server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// First frame on every connection: the limits this server enforces.
    Welcome {
        /// Largest frame the client may send.
        max_frame_bytes: u32,
        /// Largest message body the client may send.
        max_body_bytes: u32,
        /// Whether the device must unlock with a join code before reading or sending.
        code_required: bool,
        /// Identifies this server's message store. Sequence numbers and cursors only mean
        /// something within one store: a client that sees another id starts its cursors over.
        store_id: [u8; 16],
        /// Fresh for this connection: room proofs and presence cards are made for it.
        challenge: [u8; 32],
    },
    /// Answer to [`ClientFrame::Unlock`] and [`ClientFrame::Authenticate`]: the device may now
    /// read and send.
    Access {
        /// Token to present on later connections instead of the code.
        token: [u8; 32],
    },
    /// A page of a room's history, oldest first.
    History {
        /// The room the page belongs to.
        room: RoomId,
        /// The messages, in increasing sequence order.
        messages: Vec<StoredMessage>,
        /// Whether older messages exist before the first one in this page.
        has_more: bool,
    },
    /// Messages after the client's cursor, oldest first; sent on join in batches.
    CatchUp {
        /// The room the batch belongs to.
        room: RoomId,
        /// The messages, in increasing sequence order, each following the previous one.
        messages: Vec<StoredMessage>,
        /// True on the last batch: the client now holds everything up to the last message.
        done: bool,
    },
    /// A message stored after the client joined its room.
    Message(StoredMessage),
    /// Who follows a room right now: sent when a client starts following it (and after it
    /// fell behind); changes then come as [`ServerFrame::PresenceChanged`].
    Presence {
        /// The room.
        room: RoomId,
        /// Its followers, one entry per connection.
        members: Vec<Member>,
    },
    /// A member is typing.
    Typing {
        /// The room.
        room: RoomId,
        /// Who types.
        sender: SenderId,
    },
    /// A published message is durably stored (or was already: `duplicate`).
    Ack {
        /// The message's id.
        id: MessageId,
        /// Its sequence number on this server.
        seq: u64,
        /// True when the server already had this id and stored nothing new.
        duplicate: bool,
    },
    /// Something the client sent was refused.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// A sentence for people.
        detail: String,
        /// The message concerned, when the error is about one.
        id: Option<MessageId>,
        /// When to try again, for [`ErrorCode::RateLimited`].
        retry_after_ms: Option<u32>,
    },
    /// Answer to [`ClientFrame::Ping`].
    Pong {
        /// The nonce from the ping.
        nonce: u64,
    },
    /// The server's radio: sent after [`ServerFrame::Welcome`] and whenever it changes.
    Radio(RadioStatus),
    /// Answer to [`ClientFrame::LendRadio`] (and sent when a lending ends).
    Lending {
        /// This page's radio is now the server's.
        active: bool,
        /// A sentence for people (why not, or what it does now).
        detail: String,
    },
    /// A frame for the lent radio to transmit.
    RadioFrame {
        /// The frame to send.
        #[serde(with = "serde_bytes")]
        frame: Vec<u8>,
    },
    /// A message went out over the radio and a neighbouring camp's radio was heard relaying
    /// or acknowledging it.
    Relayed {
        /// The room.
        room: RoomId,
        /// The message.
        id: MessageId,
    },
    /// This camp, for devices that may read (sent after unlocking): its name, which goes in
    /// radio receipts, and the mesh network key, which a page driving its own radio (Web
    /// Serial) needs to be heard by the camps.
    Camp {
        /// The camp's name.
        name: String,
        /// The mesh network key, when this server carries radio frames.
        network_key: Option<[u8; crate::radio::network::NETWORK_KEY_BYTES]>,
    },
    // New variants go last: the variant's place is its number on the wire.
    /// Answer to [`ClientFrame::Watch`]: how many messages from others came after the
    /// person's `read_seq` (at most [`MAX_UNREAD_COUNT`]), and the newest of them.
    Unread {
        /// The room.
        room: RoomId,
        /// Messages from others after `read_seq`, counted up to [`MAX_UNREAD_COUNT`].
        count: u32,
        /// The newest message from others after `read_seq`, when any.
        newest: Option<StoredMessage>,
    },
    /// Who came and went in a room since the last list or change (gathered for a moment, so
    /// people coming and going cost a few frames a second at most). Apply it with
    /// [`apply_presence_changes`].
    PresenceChanged {
        /// The room.
        room: RoomId,
        /// Members who started following it (or joined again with a new card).
        joined: Vec<Member>,
        /// The connections (their challenges) that stopped following it.
        left: Vec<[u8; 32]>,
    },
    /// Sent after [`ServerFrame::Welcome`]: the largest file (plaintext bytes) this server
    /// takes; a phone refuses larger ones before sealing anything.
    FileLimits {
        /// Bytes, at most [`crate::file::MAX_FILE_BYTES`].
        max_file_bytes: u64,
    },
    /// Answer to [`ClientFrame::FileTicket`]: valid on this server for a while (an upload
    /// refused with 401 asks for a new one).
    FileTicket {
        /// The room.
        room: RoomId,
        /// The ticket.
        ticket: [u8; 32],
    },
    /// The server's link to other camps over IP: sent after [`ServerFrame::Welcome`] and
    /// whenever it changes, by servers that have one.
    Federation(FederationStatus),
    /// A call signal from another follower of the room (see [`ClientFrame::Signal`]).
    Signal {
        /// The room.
        room: RoomId,
        /// The sending connection's challenge (set by the server, never by the sender).
        from: [u8; 32],
        /// The member it came from, as they joined the room.
        sender: SenderId,
        /// Whether it was sent to this connection alone (else to the whole room).
        direct: bool,
        /// The sealed signal.
        #[serde(with = "serde_bytes")]
        sealed: Vec<u8>,
    },
}

/// Most camp names a [`FederationStatus`] lists.
pub const MAX_FEDERATION_CAMPS: usize = 64;

/// A server's link to other camps over IP (federation), for the connection bar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationStatus {
    /// Other camps heard lately, by name (at most [`MAX_FEDERATION_CAMPS`]).
    pub camps: Vec<String>,
    /// When the server last knew it had everything the other camps sent (ms since the
    /// epoch, server clock).
    pub last_synced_ms: Option<u64>,
    /// What is wrong, when something is (a sentence for people).
    pub problem: Option<String>,
}

/// Applies a [`ServerFrame::PresenceChanged`] to a room's member list: a joined member takes
/// the place of the entry of its connection (its challenge) or is added at the end; a left
/// connection's entry is removed. Applying the same change twice changes nothing more.
pub fn apply_presence_changes(members: &mut Vec<Member>, joined: &[Member], left: &[[u8; 32]]) {
    members.retain(|m| !left.contains(&m.challenge));
    for member in joined {
        match members.iter_mut().find(|m| m.challenge == member.challenge) {
            Some(entry) => *entry = member.clone(),
            None => members.push(member.clone()),
        }
    }
}

/// What the server's radio is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RadioState {
    /// No radio is configured.
    Off,
    /// The serial port is being opened and configured.
    Connecting,
    /// The radio is connected and carries messages.
    Ready,
    /// The radio is gone (unplugged, or the port failed); the server keeps trying to reopen it.
    Unplugged,
}

/// The radio's state, for the connection bar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RadioStatus {
    /// The state.
    pub state: RadioState,
    /// A sentence for people (port, protocol, last error).
    pub detail: String,
    /// The radio's Meshtastic channel, whose plain text meets the room of that name (see
    /// `RoomKey::meshtastic_channel`), while the radio is a Meshtastic node.
    pub meshtastic_channel: Option<String>,
}

impl RadioStatus {
    /// No radio.
    pub fn off() -> Self {
        Self {
            state: RadioState::Off,
            detail: String::new(),
            meshtastic_channel: None,
        }
    }
}

impl ClientFrame {
    /// Whether a server asking for its join code answers this frame before the device
    /// unlocked: only liveness checks and the unlock itself.
    pub fn allowed_before_unlock(&self) -> bool {
        matches!(
            self,
            ClientFrame::Ping { .. }
                | ClientFrame::Unlock { .. }
                | ClientFrame::Authenticate { .. }
        )
    }

    /// Encodes the frame for a binary WebSocket message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(WIRE_VERSION, self, MAX_FRAME_BYTES)
    }

    /// Decodes a binary WebSocket message from a client, checking every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned(WIRE_VERSION, bytes, MAX_FRAME_BYTES)
    }
}

impl ServerFrame {
    /// Encodes the frame for a binary WebSocket message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(WIRE_VERSION, self, MAX_SERVER_FRAME_BYTES)
    }

    /// Decodes a binary WebSocket message from a server, checking every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned(WIRE_VERSION, bytes, MAX_SERVER_FRAME_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, SenderId, MAX_BODY_BYTES};

    fn envelope(body_len: usize) -> Envelope {
        Envelope {
            id: MessageId([1; 16]),
            room: RoomId([2; 16]),
            sender: SenderId([3; 32]),
            created_at_ms: 42,
            kind: Kind::Text,
            nonce: [8; 24],
            body: vec![0x5a; body_len],
            signature: crate::Signature([4; 64]),
        }
    }

    #[test]
    fn client_frames_round_trip() {
        let frames = [
            ClientFrame::Join {
                room: RoomId([4; 16]),
                after_seq: Some(9),
                member: Member {
                    sender: SenderId([1; 32]),
                    challenge: [2; 32],
                    card: b"Ana".to_vec(),
                },
                proof: crate::crypto::RoomKey::from_bytes([3; 32]).prove(&[2; 32]),
            },
            ClientFrame::Typing {
                room: RoomId([4; 16]),
            },
            ClientFrame::Leave {
                room: RoomId([4; 16]),
            },
            ClientFrame::Publish(envelope(MAX_BODY_BYTES)),
            ClientFrame::History {
                room: RoomId([4; 16]),
                before_seq: 99,
                limit: 50,
                proof: crate::crypto::RoomKey::from_bytes([3; 32]).prove(&[2; 32]),
            },
            ClientFrame::Unlock {
                code: "river-stone-42".into(),
                device: SenderId([1; 32]),
            },
            ClientFrame::Authenticate { token: [9; 32] },
            ClientFrame::Ping { nonce: u64::MAX },
            ClientFrame::SendRadio {
                room: RoomId([4; 16]),
                id: MessageId([5; 16]),
                payload: vec![0xa5; crate::radio::MAX_PAYLOAD_BYTES],
            },
            ClientFrame::RadioHeard(envelope(40)),
            ClientFrame::LendRadio {
                label: "Ana's browser ✓".into(),
            },
            ClientFrame::StopLending,
            ClientFrame::RadioFrame {
                frame: vec![0xc0; crate::radio::MAX_FRAME_BYTES],
            },
            ClientFrame::SendReceipt {
                room: RoomId([4; 16]),
                id: MessageId([5; 16]),
                payload: vec![0xa5; crate::radio::MAX_PAYLOAD_BYTES],
            },
            ClientFrame::Watch {
                room: RoomId([4; 16]),
                read_seq: None,
                member: Member {
                    sender: SenderId([1; 32]),
                    challenge: [2; 32],
                    card: vec![7; MAX_PRESENCE_BYTES],
                },
                proof: crate::crypto::RoomKey::from_bytes([3; 32]).prove(&[2; 32]),
            },
            ClientFrame::FileTicket {
                room: RoomId([4; 16]),
                proof: crate::crypto::RoomKey::from_bytes([3; 32]).prove(&[2; 32]),
            },
            ClientFrame::SendUrgentRadio {
                room: RoomId([4; 16]),
                id: MessageId([5; 16]),
                payload: vec![0xa5; crate::radio::MAX_PAYLOAD_BYTES],
            },
            ClientFrame::Signal {
                room: RoomId([4; 16]),
                to: Some([2; 32]),
                sealed: vec![0x5a; crate::call::MAX_SIGNAL_BYTES],
            },
        ];
        // Every variant is here: this match stops compiling when one is added.
        let covered: std::collections::HashSet<&str> = frames
            .iter()
            .map(|frame| match frame {
                ClientFrame::Join { .. } => "join",
                ClientFrame::Typing { .. } => "typing",
                ClientFrame::Leave { .. } => "leave",
                ClientFrame::Publish(_) => "publish",
                ClientFrame::History { .. } => "history",
                ClientFrame::Unlock { .. } => "unlock",
                ClientFrame::Authenticate { .. } => "authenticate",
                ClientFrame::Ping { .. } => "ping",
                ClientFrame::SendRadio { .. } => "send radio",
                ClientFrame::RadioHeard(_) => "radio heard",
                ClientFrame::LendRadio { .. } => "lend radio",
                ClientFrame::StopLending => "stop lending",
                ClientFrame::RadioFrame { .. } => "radio frame",
                ClientFrame::SendReceipt { .. } => "send receipt",
                ClientFrame::Watch { .. } => "watch",
                ClientFrame::FileTicket { .. } => "file ticket",
                ClientFrame::SendUrgentRadio { .. } => "send urgent radio",
                ClientFrame::Signal { .. } => "signal",
            })
            .collect();
        assert_eq!(covered.len(), frames.len(), "one of each variant");
        for frame in frames {
            assert_eq!(
                ClientFrame::decode(&frame.encode().unwrap()).unwrap(),
                frame
            );
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let stored = StoredMessage {
            seq: 7,
            received_at_ms: 8,
            envelope: envelope(10),
        };
        let frames = [
            ServerFrame::Welcome {
                max_frame_bytes: 1,
                max_body_bytes: 2,
                code_required: true,
                store_id: [3; 16],
                challenge: [4; 32],
            },
            ServerFrame::Access { token: [7; 32] },
            ServerFrame::History {
                room: RoomId([4; 16]),
                messages: vec![stored.clone(); MAX_HISTORY_PAGE as usize],
                has_more: true,
            },
            ServerFrame::CatchUp {
                room: RoomId([4; 16]),
                messages: vec![stored.clone()],
                done: true,
            },
            ServerFrame::Message(stored),
            ServerFrame::Presence {
                room: RoomId([4; 16]),
                members: vec![Member {
                    sender: SenderId([1; 32]),
                    challenge: [2; 32],
                    card: vec![0; MAX_PRESENCE_BYTES],
                }],
            },
            ServerFrame::Typing {
                room: RoomId([4; 16]),
                sender: SenderId([1; 32]),
            },
            ServerFrame::Ack {
                id: MessageId([5; 16]),
                seq: 1,
                duplicate: true,
            },
            ServerFrame::Error {
                code: ErrorCode::BodyTooLarge,
                detail: "too big".into(),
                id: Some(MessageId([5; 16])),
                retry_after_ms: Some(1500),
            },
            ServerFrame::Pong { nonce: 3 },
            ServerFrame::Radio(RadioStatus {
                state: RadioState::Unplugged,
                detail: "radio at /dev/ttyUSB0 went away".into(),
                meshtastic_channel: Some("FieldMesh".into()),
            }),
            ServerFrame::Lending {
                active: true,
                detail: "this server now sends and hears through your radio".into(),
            },
            ServerFrame::RadioFrame {
                frame: vec![0xdb; crate::radio::MAX_FRAME_BYTES],
            },
            ServerFrame::Relayed {
                room: RoomId([4; 16]),
                id: MessageId([6; 16]),
            },
            ServerFrame::Camp {
                name: "North camp".into(),
                network_key: Some([8; 16]),
            },
            ServerFrame::Unread {
                room: RoomId([4; 16]),
                count: MAX_UNREAD_COUNT,
                newest: Some(StoredMessage {
                    seq: 9,
                    received_at_ms: 10,
                    envelope: envelope(MAX_BODY_BYTES),
                }),
            },
            ServerFrame::PresenceChanged {
                room: RoomId([4; 16]),
                joined: vec![Member {
                    sender: SenderId([1; 32]),
                    challenge: [2; 32],
                    card: vec![0; MAX_PRESENCE_BYTES],
                }],
                left: vec![[3; 32]],
            },
            ServerFrame::FileLimits {
                max_file_bytes: crate::file::MAX_FILE_BYTES,
            },
            ServerFrame::FileTicket {
                room: RoomId([4; 16]),
                ticket: [5; 32],
            },
            ServerFrame::Federation(FederationStatus {
                camps: vec!["Camp B".into(), "Hill clinic".into()],
                last_synced_ms: Some(1_800_000_000_000),
                problem: None,
            }),
            ServerFrame::Signal {
                room: RoomId([4; 16]),
                from: [2; 32],
                sender: SenderId([1; 32]),
                direct: true,
                sealed: vec![0x5a; crate::call::MAX_SIGNAL_BYTES],
            },
        ];
        // Every variant is here: this match stops compiling when one is added.
        let covered: std::collections::HashSet<&str> = frames
            .iter()
            .map(|frame| match frame {
                ServerFrame::Welcome { .. } => "welcome",
                ServerFrame::Access { .. } => "access",
                ServerFrame::History { .. } => "history",
                ServerFrame::CatchUp { .. } => "catch-up",
                ServerFrame::Message(_) => "message",
                ServerFrame::Presence { .. } => "presence",
                ServerFrame::Typing { .. } => "typing",
                ServerFrame::Ack { .. } => "ack",
                ServerFrame::Error { .. } => "error",
                ServerFrame::Pong { .. } => "pong",
                ServerFrame::Radio(_) => "radio",
                ServerFrame::Lending { .. } => "lending",
                ServerFrame::RadioFrame { .. } => "radio frame",
                ServerFrame::Relayed { .. } => "relayed",
                ServerFrame::Camp { .. } => "camp",
                ServerFrame::Unread { .. } => "unread",
                ServerFrame::PresenceChanged { .. } => "presence changed",
                ServerFrame::FileLimits { .. } => "file limits",
                ServerFrame::FileTicket { .. } => "file ticket",
                ServerFrame::Federation(_) => "federation",
                ServerFrame::Signal { .. } => "signal",
            })
            .collect();
        assert_eq!(covered.len(), frames.len(), "one of each variant");
        for frame in frames {
            assert_eq!(
                ServerFrame::decode(&frame.encode().unwrap()).unwrap(),
                frame
            );
        }
    }

    #[test]
    fn presence_changes_apply_once_and_in_any_overlap_with_the_list() {
        let member = |n: u8, card: &str| Member {
            sender: SenderId([n; 32]),
            challenge: [n; 32],
            card: card.as_bytes().to_vec(),
        };
        let mut members = vec![member(1, "Ana"), member(2, "Ben")];
        // Cid joins, Ben leaves, Ana joins again with a new card (the list a newcomer got
        // may already hold some of it).
        let joined = [member(3, "Cid"), member(1, "Ana B.")];
        apply_presence_changes(&mut members, &joined, &[[2; 32]]);
        assert_eq!(members, [member(1, "Ana B."), member(3, "Cid")]);
        apply_presence_changes(&mut members, &joined, &[[2; 32]]);
        assert_eq!(
            members,
            [member(1, "Ana B."), member(3, "Cid")],
            "idempotent"
        );
    }

    #[test]
    fn a_full_history_page_of_largest_messages_fits_a_server_frame() {
        let stored = StoredMessage {
            seq: 7,
            received_at_ms: 8,
            envelope: envelope(MAX_BODY_BYTES),
        };
        let page = ServerFrame::History {
            room: RoomId([4; 16]),
            messages: vec![stored; MAX_HISTORY_PAGE as usize],
            has_more: true,
        };
        assert!(page.encode().is_ok());
    }

    #[test]
    fn truncated_frames_are_truncated() {
        let bytes = ClientFrame::Publish(envelope(30)).encode().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(
                ClientFrame::decode(&bytes[..cut]),
                Err(DecodeError::Truncated)
            );
        }
    }

    #[test]
    fn oversized_frames_are_refused() {
        let bytes = vec![WIRE_VERSION; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            ClientFrame::decode(&bytes),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(ClientFrame::Publish(envelope(MAX_FRAME_BYTES))
            .encode()
            .is_err());
    }

    #[test]
    fn unknown_version_and_garbage_are_refused() {
        let mut bytes = ClientFrame::Ping { nonce: 1 }.encode().unwrap();
        bytes[0] = 9;
        assert_eq!(
            ClientFrame::decode(&bytes),
            Err(DecodeError::UnknownVersion(9))
        );
        assert!(matches!(
            ClientFrame::decode(&[WIRE_VERSION, 0x7f]),
            Err(DecodeError::Malformed(_))
        ));
    }
}
