//! The serial link to the radio, one implementation of the radio link interface
//! (`mesh::radio::link`): opens the port, configures the radio, moves frames both ways, and
//! reopens the port whenever it goes away (a radio unplugged and plugged back in), telling
//! the bridge `Up`, `Frame`, `Noise` and `Down` as it goes.

use std::path::PathBuf;
use std::time::Duration;

use mesh::radio::link::LinkEvent;
use mesh::serial::Framing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

use super::channel::{channel_link, ChannelLink, LinkEnd};

/// How often a missing radio is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(1000);

/// Where the radio is and how to talk to it.
pub struct LinkConfig {
    /// The serial port (`/dev/ttyUSB0`, `/dev/serial/by-id/…`, a pty).
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
}

/// Opens the serial link: the bridge's side comes back, the port is looked after by a task
/// until that side is dropped.
pub fn open(config: LinkConfig, framing: Box<dyn Framing>) -> ChannelLink {
    let (link, end) = channel_link();
    tokio::spawn(run(config, framing, end));
    link
}

/// Runs the link until the bridge's side is dropped. Frames handed over while the port is
/// closed are dropped: the driver retries.
async fn run(config: LinkConfig, mut framing: Box<dyn Framing>, end: LinkEnd) {
    let LinkEnd {
        frames: mut frames_out,
        events,
    } = end;
    let path = config.path.display().to_string();
    // A radio that stays away is reported once, not every second.
    let mut down_reported = false;
    loop {
        let port = tokio_serial::new(&path, config.baud)
            .timeout(Duration::from_millis(500))
            .open_native_async();
        let mut port = match port {
            Ok(port) => port,
            Err(error) => {
                if !std::mem::replace(&mut down_reported, true) {
                    let reason =
                        format!("no radio at {path} ({error}); looking again every second");
                    if events.send(LinkEvent::Down(reason)).await.is_err() {
                        return;
                    }
                }
                if !drop_frames_for(&mut frames_out, REOPEN_EVERY).await {
                    return;
                }
                continue;
            }
        };
        let mut failed = None;
        for bytes in framing.configure() {
            if let Err(error) = port.write_all(&bytes).await {
                failed = Some(error);
                break;
            }
        }
        if failed.is_none() {
            let detail = format!(
                "{} radio on {path} at {} baud",
                framing.protocol(),
                config.baud
            );
            tracing::info!(%path, protocol = %framing.protocol(), "radio connected");
            if events.send(LinkEvent::Up(detail)).await.is_err() {
                return;
            }
            let mut buffer = vec![0u8; 1024];
            failed = loop {
                tokio::select! {
                    read = port.read(&mut buffer) => match read {
                        // A pty whose other side closed reads 0; a USB radio pulled out errs.
                        Ok(0) => break Some(std::io::Error::other("the port closed")),
                        Ok(n) => {
                            let before = framing.dropped();
                            let frames = framing.decode(&buffer[..n]);
                            let noise = framing.dropped() - before;
                            if noise > 0 && events.send(LinkEvent::Noise(noise)).await.is_err() {
                                return;
                            }
                            for frame in frames {
                                if events.send(LinkEvent::Frame(frame)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(error) => break Some(error),
                    },
                    frame = frames_out.recv() => match frame {
                        Some(frame) => {
                            if let Err(error) = port.write_all(&framing.encode(&frame)).await {
                                break Some(error);
                            }
                        }
                        None => return,
                    },
                }
            };
        }
        let error = failed.map(|e| e.to_string()).unwrap_or_default();
        tracing::warn!(%path, %error, "radio link lost; reopening");
        down_reported = true;
        let reason = format!("radio at {path} went away ({error}); looking again every second");
        if events.send(LinkEvent::Down(reason)).await.is_err() {
            return;
        }
        drop(port);
        if !drop_frames_for(&mut frames_out, REOPEN_EVERY).await {
            return;
        }
    }
}

/// Drops the frames handed over for `time` while the radio is away (so senders never block
/// and nothing stale is written once it is back; the driver retries what mattered). `false`
/// when the bridge's side is gone.
async fn drop_frames_for(
    frames_out: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    time: Duration,
) -> bool {
    let deadline = tokio::time::sleep(time);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            frame = frames_out.recv() => if frame.is_none() { return false },
        }
    }
}
