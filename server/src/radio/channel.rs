//! The server's radio links as channel pairs: the bridge holds a [`ChannelLink`] (the
//! [`FrameSink`] and [`LinkEvents`] of `mesh::radio::link`), and whatever reaches the radio
//! (the serial port task, a browser's lease) holds its [`LinkEnd`]. Both channels are bounded:
//! at most [`LINK_QUEUE`] frames of at most 255 bytes each way.

use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use tokio::sync::mpsc;

/// Frames (or events) waiting in each direction, at most.
pub const LINK_QUEUE: usize = 256;

/// The bridge's side of a radio link.
pub struct ChannelLink {
    frames: mpsc::Sender<Vec<u8>>,
    events: mpsc::Receiver<LinkEvent>,
}

/// The radio's side of a link: frames to transmit come out, events go in.
pub struct LinkEnd {
    /// Frames the bridge wants transmitted.
    pub frames: mpsc::Receiver<Vec<u8>>,
    /// What happens at the radio.
    pub events: mpsc::Sender<LinkEvent>,
}

/// A new link: the bridge's side and the radio's side.
pub fn channel_link() -> (ChannelLink, LinkEnd) {
    let (frames_tx, frames) = mpsc::channel(LINK_QUEUE);
    let (events, events_rx) = mpsc::channel(LINK_QUEUE);
    (
        ChannelLink {
            frames: frames_tx,
            events: events_rx,
        },
        LinkEnd { frames, events },
    )
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
