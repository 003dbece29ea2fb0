//! The radio link interface: what every way of reaching a radio offers its driver. A serial
//! port on the server, a browser's radio lent to the server over its WebSocket, and the
//! page's own Web Serial port each implement it, and one contract suite (in the server's tests
//! and the browser tests) holds them to it: frames both ways, noise between frames skipped,
//! oversize frames dropped, unplug and replug.
//!
//! A link has two halves, so one task can wait for what the radio hears while others hand it
//! frames: a [`FrameSink`] and a [`LinkEvents`] stream.

use std::future::Future;

/// What a radio link tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The radio is there and configured; the sentence says which and how.
    Up(String),
    /// A radio frame heard (at most [`super::MAX_FRAME_BYTES`]).
    Frame(Vec<u8>),
    /// This many frames of noise or oversize were dropped (for the counters).
    Noise(u64),
    /// Plain text heard on the radio's channel (a Meshtastic node's), not a FieldMesh frame.
    Text(crate::serial::ChannelText),
    /// The radio's channel for plain text is named so (a Meshtastic node's, once connected).
    Channel(String),
    /// The radio went away (unplugged, the port failed, the lender left): frames handed to
    /// the link meanwhile are dropped, as on the air; the driver retries what mattered.
    Down(String),
}

/// The half of a link that takes frames to transmit.
pub trait FrameSink {
    /// Hands a frame to the radio without waiting. `false` when the link is down or its queue
    /// is full: the frame is dropped.
    fn transmit(&mut self, frame: &[u8]) -> bool;
}

/// The half of a link that reports what happens.
pub trait LinkEvents {
    /// The next event; `None` when the link is closed for good.
    fn next_event(&mut self) -> impl Future<Output = Option<LinkEvent>>;
}
