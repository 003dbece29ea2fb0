//! The serial link to the radio: opens the port, configures the radio, moves frames both
//! ways, and reopens the port whenever it goes away (a radio unplugged and plugged back in).

use std::path::PathBuf;
use std::time::Duration;

use mesh::{RadioState, RadioStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialPortBuilderExt;

use mesh::serial::Framing;

/// How often a missing radio is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(1000);

/// Where the radio is and how to talk to it.
pub struct LinkConfig {
    /// The serial port (`/dev/ttyUSB0`, `/dev/serial/by-id/…`, a pty).
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
}

/// Runs the link until `frames_out` closes. Frames heard go to `frames_in`; the state goes to
/// `status`. Frames handed over while the port is closed are dropped: the relay retries.
pub async fn run(
    config: LinkConfig,
    mut framing: Box<dyn Framing>,
    status: std::sync::Arc<watch::Sender<RadioStatus>>,
    frames_in: mpsc::Sender<Vec<u8>>,
    mut frames_out: mpsc::Receiver<Vec<u8>>,
) {
    let path = config.path.display().to_string();
    let set = |state: RadioState, detail: String| {
        status.send_if_modified(|current| {
            let changed = current.state != state || current.detail != detail;
            *current = RadioStatus { state, detail };
            changed
        });
    };
    loop {
        set(RadioState::Connecting, format!("opening {path}"));
        let port = tokio_serial::new(&path, config.baud)
            .timeout(Duration::from_millis(500))
            .open_native_async();
        let mut port = match port {
            Ok(port) => port,
            Err(error) => {
                set(
                    RadioState::Unplugged,
                    format!("no radio at {path} ({error}); looking again every second"),
                );
                // Keep draining so senders never block; the relay retries what is lost.
                let deadline = tokio::time::sleep(REOPEN_EVERY);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        frame = frames_out.recv() => if frame.is_none() { return },
                    }
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
            set(
                RadioState::Ready,
                format!(
                    "{} radio on {path} at {} baud",
                    framing.protocol(),
                    config.baud
                ),
            );
            tracing::info!(%path, protocol = %framing.protocol(), "radio connected");
            let mut buffer = vec![0u8; 1024];
            failed = loop {
                tokio::select! {
                    read = port.read(&mut buffer) => match read {
                        // A pty whose other side closed reads 0; a USB radio pulled out errs.
                        Ok(0) => break Some(std::io::Error::other("the port closed")),
                        Ok(n) => {
                            for frame in framing.decode(&buffer[..n]) {
                                if frames_in.send(frame).await.is_err() {
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
        set(
            RadioState::Unplugged,
            format!("radio at {path} went away ({error}); looking again every second"),
        );
        drop(port);
        tokio::time::sleep(REOPEN_EVERY).await;
    }
}
