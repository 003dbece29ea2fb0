//! Lending: a browser's Web Serial radio as this server's radio link, one browser at a time,
//! for as long as its page keeps the lease.

use mesh::radio::link::LinkEvent;
use mesh::wire::MAX_LENDER_LABEL_CHARS;
use mesh::ServerFrame;

use super::channel::{channel_link, ChannelLink, LinkEnd};
use super::{Command, Radio};

/// A browser's radio, lent to this server while the lease lives: the radio's side of the
/// bridge's link. Frames to transmit come out of [`Lease::transmitted`], frames heard go in
/// with [`Lease::heard`]. Dropping it (the page closed, or stopped lending) ends the link and
/// frees the radio for another browser.
pub struct Lease {
    id: u64,
    lender: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
    end: LinkEnd,
}

impl Lease {
    /// Hands the bridge a frame the lent radio heard. A frame over the size limit is dropped
    /// (and counted as noise), as a radio would; so is one the bridge has no room for.
    pub fn heard(&self, frame: Vec<u8>) -> bool {
        let event = if frame.is_empty() || frame.len() > mesh::radio::MAX_FRAME_BYTES {
            LinkEvent::Noise(1)
        } else {
            LinkEvent::Frame(frame)
        };
        let frame = matches!(event, LinkEvent::Frame(_));
        self.end.events.try_send(event).is_ok() && frame
    }

    /// The next frame the bridge wants the lent radio to transmit.
    pub async fn transmitted(&mut self) -> Option<Vec<u8>> {
        self.end.frames.recv().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut lender = self.lender.lock().unwrap_or_else(|p| p.into_inner());
        if *lender == Some(self.id) {
            *lender = None;
            tracing::info!("the lent radio went away");
        }
    }
}

impl Radio {
    /// Takes a browser's radio as this server's radio link, unless the server has its own or
    /// another browser lends one already.
    pub fn lend(&self, label: &str) -> Result<Lease, String> {
        if self.serial {
            return Err("this server has its own radio; yours is not needed".into());
        }
        if !self.lend_allowed {
            return Err(
                "this server does not take lent radios; its operator can allow it (--radio-lend)"
                    .into(),
            );
        }
        let mut lender = self.lender.lock().unwrap_or_else(|p| p.into_inner());
        if lender.is_some() {
            return Err("another browser lends its radio to this server already".into());
        }
        let (link, lease) = lease(label, std::sync::Arc::clone(&self.lender));
        *lender = Some(lease.id);
        // Unlocked before the lease may be dropped: its drop takes the lock.
        drop(lender);
        if self.commands.try_send(Command::Attach(link)).is_err() {
            return Err("the radio is busy; try again in a moment".into());
        }
        tracing::info!(%label, "a browser lends its radio");
        Ok(lease)
    }
}

/// A lent radio's link: the bridge's side, and the lease the page's connection holds. Its
/// first event says the radio is up, lent by `label`. `lender` is the slot that names the
/// current lease (cleared when this one ends).
pub fn lease(
    label: &str,
    lender: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
) -> (ChannelLink, Lease) {
    static NEXT_LEASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let (link, end) = channel_link();
    // A new channel has room for its first event.
    let _ = end
        .events
        .try_send(LinkEvent::Up(format!("radio lent by {label}")));
    let id = NEXT_LEASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (link, Lease { id, lender, end })
}

/// One connection's side of lending: the lease while it lends, and the answers it owes.
#[derive(Default)]
pub struct Lending {
    lease: Option<Lease>,
}

impl Lending {
    /// The page offers its radio; `label` says whose (cleaned and cut here), `address` where
    /// it connects from. Answers whether the server took it.
    pub fn start(&mut self, radio: &Radio, label: &str, address: std::net::IpAddr) -> ServerFrame {
        self.lease = None;
        let label: String = label
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_LENDER_LABEL_CHARS)
            .collect();
        let label = format!("{} ({address})", label.trim());
        match radio.lend(&label) {
            Ok(lease) => {
                self.lease = Some(lease);
                ServerFrame::Lending {
                    active: true,
                    detail: "this server now sends and hears through your radio".into(),
                }
            }
            Err(detail) => ServerFrame::Lending {
                active: false,
                detail,
            },
        }
    }

    /// The page takes its radio back; answers only when it was lending.
    pub fn stop(&mut self) -> Option<ServerFrame> {
        self.lease.take().map(|_| ServerFrame::Lending {
            active: false,
            detail: "you stopped lending your radio".into(),
        })
    }

    /// A frame the lent radio heard. `Err` with a sentence when this page lends no radio.
    pub fn heard(&self, frame: Vec<u8>) -> Result<(), String> {
        match &self.lease {
            Some(lease) => {
                lease.heard(frame);
                Ok(())
            }
            None => Err("this page does not lend its radio to the server".into()),
        }
    }

    /// The next frame for the lent radio to transmit; never, when this page lends none.
    pub async fn next_frame(&mut self) -> Option<Vec<u8>> {
        match &mut self.lease {
            Some(lease) => lease.transmitted().await,
            None => std::future::pending().await,
        }
    }
}
