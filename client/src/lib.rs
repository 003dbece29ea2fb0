//! The decisions of a FieldMesh client, as plain types: no browser, no runtime, no I/O. The
//! page's engine (`frontend`) owns one of each and carries out what they decide; native unit
//! tests here pin every rule down.
//!
//! - [`call`]: calls and the walkie-talkie: who offers to whom, who is reconnecting or gone,
//!   the calls going on in a room, who holds the walkie-talkie.
//! - [`compose`]: a message sealed for a room, with its radio form.
//! - [`message`]: a stored message opened with its room's key.
//! - [`export`]: a room's messages as JSON Lines and as a printable transcript.
//! - [`invite`]: invite links, read and made.
//! - [`attention`]: which rooms a page watches, unread counts, when to notify.
//! - [`outbox`]: which outbox entries go out on the current connection, what an
//!   acknowledgement or a refusal does, and the progress bar's figures.
//! - [`delivery`]: an own message's state, which only moves forward.
//! - [`federation`]: the line about the server's link to other camps.
//! - [`cursor`]: the per-room sync cursor (what to ask for after a reconnect).
//! - [`people`]: contacts, trust on first use, key changes, verification.
//! - [`connection`]: reconnect backoff with jitter and the silence limit.
//! - [`session`]: which key a room name opens (public room, invite, known room, new room).
//! - [`search`]: which messages match a search, and what of each to show.
//! - [`sos`]: which SOS calls show, which an answer changes, and who may end one.
//! - [`upload`]: a file's sealed pieces: which to send, what an answer means, when the message
//!   may go out, and the progress bar's figures.
#![warn(missing_docs, unreachable_pub)]

pub mod attention;
pub mod call;
pub mod compose;
pub mod connection;
pub mod cursor;
pub mod delivery;
pub mod export;
pub mod federation;
pub mod invite;
pub mod message;
pub mod outbox;
pub mod people;
pub mod search;
pub mod session;
pub mod sos;
pub mod upload;
