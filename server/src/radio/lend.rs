//! Lending: a browser's Web Serial radio as this server's radio link, one browser at a time,
//! for as long as its page keeps the lease.

use mesh::wire::MAX_LENDER_LABEL_CHARS;
use mesh::{RadioState, RadioStatus, ServerFrame};
use tokio::sync::mpsc;

use super::{no_radio, Radio};

/// Frames waiting for the lent radio, at most (each at most 255 bytes).
const LENT_QUEUE: usize = 256;

pub(super) struct Lender {
    lease: u64,
    pub(super) down: mpsc::Sender<Vec<u8>>,
}

/// A browser's radio, lent to this server while the lease lives: frames to transmit come out
/// of [`Lease::down`], frames heard go in with [`Lease::heard`]. Dropping it (the page
/// closed, or stopped lending) frees the radio link for another browser.
pub struct Lease {
    id: u64,
    radio: Radio,
    /// Frames the browser's radio is to transmit.
    pub down: mpsc::Receiver<Vec<u8>>,
}

impl Lease {
    /// Hands the bridge a frame the lent radio heard. `false` when it is over the size limit
    /// or the bridge is busy (the frame is dropped, as a radio would).
    pub fn heard(&self, frame: Vec<u8>) -> bool {
        frame.len() <= mesh::radio::MAX_FRAME_BYTES && self.radio.frames_in.try_send(frame).is_ok()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut lender = self.radio.lender.lock().unwrap_or_else(|p| p.into_inner());
        if lender.as_ref().is_some_and(|l| l.lease == self.id) {
            *lender = None;
            tracing::info!("the lent radio went away");
            self.radio.status_tx.send_replace(no_radio());
        }
    }
}

impl Radio {
    /// Takes a browser's radio as this server's radio link, unless the server has its own or
    /// another browser lends one already.
    pub fn lend(&self, label: &str) -> Result<Lease, String> {
        static NEXT_LEASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        if self.serial {
            return Err("this server has its own radio; yours is not needed".into());
        }
        let mut lender = self.lender.lock().unwrap_or_else(|p| p.into_inner());
        if lender.is_some() {
            return Err("another browser lends its radio to this server already".into());
        }
        let id = NEXT_LEASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (down_tx, down) = mpsc::channel(LENT_QUEUE);
        *lender = Some(Lender {
            lease: id,
            down: down_tx,
        });
        drop(lender);
        tracing::info!(%label, "a browser lends its radio");
        self.status_tx.send_replace(RadioStatus {
            state: RadioState::Ready,
            detail: format!("radio lent by {label}"),
        });
        Ok(Lease {
            id,
            radio: self.clone(),
            down,
        })
    }
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
            Some(lease) => lease.down.recv().await,
            None => std::future::pending().await,
        }
    }
}
