//! The server's radio links as channel pairs: the bridge holds a [`ChannelLink`] (the
//! [`FrameSink`] and [`LinkEvents`] of `mesh::radio::link`), and whatever reaches the radio
//! (the serial port task, a browser's lease) holds its [`LinkEnd`]. Both channels are bounded:
//! at most [`LINK_QUEUE`] frames of at most 255 bytes each way.

use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use tokio::sync::mpsc;

/// Frames (or events) waiting in each direction, at most.
pub const LINK_QUEUE: usize = 256;
/// Plain texts waiting for the radio, at most (each at most 200 bytes).
pub const TEXT_QUEUE: usize = 32;

/// The bridge's side of a radio link.
pub struct ChannelLink {
    frames: mpsc::Sender<Vec<u8>>,
    texts: mpsc::Sender<String>,
    events: mpsc::Receiver<LinkEvent>,
}

/// The radio's side of a link: frames to transmit come out, events go in.
pub struct LinkEnd {
    /// Frames the bridge wants transmitted.
    pub frames: mpsc::Receiver<Vec<u8>>,
    /// Plain texts the bridge wants sent on the radio's channel (a Meshtastic node's; other
    /// radios drop this end, and the bridge hears that they cannot).
    pub texts: mpsc::Receiver<String>,
    /// What happens at the radio.
    pub events: mpsc::Sender<LinkEvent>,
}

/// A new link: the bridge's side and the radio's side.
pub fn channel_link() -> (ChannelLink, LinkEnd) {
    let (frames_tx, frames) = mpsc::channel(LINK_QUEUE);
    let (texts_tx, texts) = mpsc::channel(TEXT_QUEUE);
    let (events, events_rx) = mpsc::channel(LINK_QUEUE);
    (
        ChannelLink {
            frames: frames_tx,
            texts: texts_tx,
            events: events_rx,
        },
        LinkEnd {
            frames,
            texts,
            events,
        },
    )
}

impl ChannelLink {
    /// Hands plain text to the radio without waiting; `false` when the radio carries none
    /// or its queue is full.
    pub fn send_text(&self, text: String) -> bool {
        self.texts.try_send(text).is_ok()
    }
}

impl FrameSink for ChannelLink {
    fn transmit(&mut self, frame: &[u8]) -> bool {
        self.frames.try_send(frame.to_vec()).is_ok()
    }
}

impl LinkEvents for ChannelLink {
    fn next_event(&mut self) -> impl std::future::Future<Output = Option<LinkEvent>> {
        self.events.recv()
    }
}
