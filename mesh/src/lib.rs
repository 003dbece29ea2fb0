//! FieldMesh protocol core.
//!
//! Everything the browser, the server, the radio bridge and the tests must agree on lives here,
//! as plain data types and pure functions over bytes: the message [`Envelope`], the WebSocket
//! frames ([`ClientFrame`], [`ServerFrame`]), the body formats, presence cards ([`presence`]),
//! the end-to-end encryption ([`crypto`]), the radio form of messages with its relay node and
//! driver ([`radio`]) and the serial framings of radios ([`serial`]). No I/O and no async runtime,
//! so the crate builds for `wasm32-unknown-unknown`, for the server and for fuzzers alike.
#![warn(missing_docs, unreachable_pub)]

pub mod body;
pub mod call;
mod codec;
pub mod crypto;
pub mod envelope;
mod error;
pub mod file;
pub mod geo;
pub mod hex;
pub mod presence;
pub mod radio;
pub mod serial;
pub mod wire;

pub use body::TextBody;
pub use envelope::{
    Envelope, Kind, MessageId, RoomId, SenderId, Signature, MAX_BODY_BYTES, MAX_ENVELOPE_BYTES,
};
pub use error::{DecodeError, EncodeError};
pub use wire::{
    apply_presence_changes, ClientFrame, ErrorCode, FederationStatus, Member, RadioState,
    RadioStatus, ServerFrame, StoredMessage, MAX_FRAME_BYTES,
};
