//! The serial link to the radio, one implementation of the radio link interface
//! (`mesh::radio::link`): opens the port (or, for a radio on the network, a TCP connection),
//! configures the radio (and waits for its handshake, for a Meshtastic node), moves frames
//! both ways, and reopens the port whenever it goes away (a radio unplugged and plugged back
//! in, a node restarted), telling the bridge `Up`, `Frame`, `Noise` and `Down` as it goes.

use std::path::PathBuf;
use std::time::Duration;

use mesh::radio::link::LinkEvent;
use mesh::serial::{DeviceEvent, Framing, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

use super::channel::{channel_link, ChannelLink, LinkEnd};

/// How often a missing radio is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(1000);
/// How often the framing is given the time (heartbeats, a handshake asked again).
const TICK_EVERY: Duration = Duration::from_millis(1000);

/// Where the radio is and how to talk to it.
pub struct LinkConfig {
    /// The serial port (`/dev/ttyUSB0`, `/dev/serial/by-id/…`, a pty), or `tcp://HOST:PORT`
    /// for a radio on the network (a Meshtastic node's port 4403).
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
}

/// A radio on the network rather than a serial port: `tcp://HOST:PORT` (port 4403 when
/// none is given).
pub fn tcp_address(path: &std::path::Path) -> Option<String> {
    let text = path.to_str()?;
    let rest = text.strip_prefix("tcp://")?.trim_end_matches('/');
    if rest.is_empty() {
        return None;
    }
    let has_port = match rest.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    Some(if has_port {
        rest.to_string()
    } else {
        format!("{rest}:4403")
    })
}

/// A serial port or a TCP connection: bytes both ways.
trait Port: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Port for T {}

async fn open_port(config: &LinkConfig) -> std::io::Result<Box<dyn Port>> {
    if let Some(address) = tcp_address(&config.path) {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&address),
        )
        .await
        .map_err(|_| std::io::Error::other("no answer in 5 s"))??;
        stream.set_nodelay(true)?;
        return Ok(Box::new(stream));
    }
    let path = config.path.display().to_string();
    let port = tokio_serial::new(&path, config.baud)
        .timeout(Duration::from_millis(500))
        .open_native_async()?;
    Ok(Box::new(port))
}

/// Opens the serial link: the bridge's side comes back, the port is looked after by a task
/// until that side is dropped.
pub fn open(config: LinkConfig, framing: Box<dyn Framing>) -> ChannelLink {
    let (link, end) = channel_link();
    tokio::spawn(run(config, framing, end));
    link
}

/// Why a port's session ended.
enum Ended {
    /// The bridge's side is gone: stop.
    Closed,
    /// The port failed or closed: open it again.
    Lost(std::io::Error),
}

/// Runs the link until the bridge's side is dropped. Frames handed over while the port is
/// closed are dropped: the driver retries.
async fn run(config: LinkConfig, mut framing: Box<dyn Framing>, end: LinkEnd) {
    let LinkEnd {
        frames: mut frames_out,
        mut texts,
        events,
    } = end;
    let path = config.path.display().to_string();
    // A radio that stays away is reported once, not every second.
    let mut down_reported = false;
    loop {
        let mut port = match open_port(&config).await {
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
        let io = Io {
            frames_out: &mut frames_out,
            texts: &mut texts,
            events: &events,
        };
        let error = match session(&config, &path, &mut port, &mut *framing, io).await {
            Ended::Closed => return,
            Ended::Lost(error) => error.to_string(),
        };
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

/// The bridge's channels, as a session uses them.
struct Io<'a> {
    frames_out: &'a mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    texts: &'a mut tokio::sync::mpsc::Receiver<String>,
    events: &'a tokio::sync::mpsc::Sender<LinkEvent>,
}

/// One open port: configure the radio, say `Up` once it is ready (at once, or after its
/// handshake), then move frames (and plain texts) both ways until the port fails.
async fn session(
    config: &LinkConfig,
    path: &str,
    port: &mut Box<dyn Port>,
    framing: &mut dyn Framing,
    io: Io<'_>,
) -> Ended {
    let Io {
        frames_out,
        texts,
        events,
    } = io;
    for bytes in framing.configure() {
        if let Err(error) = port.write_all(&bytes).await {
            return Ended::Lost(error);
        }
    }
    // What was last said of readiness, so each change is said once.
    let mut said: Option<Readiness> = None;
    let mut tick = tokio::time::interval(TICK_EVERY);
    let mut buffer = vec![0u8; 1024];
    loop {
        if announce(config, path, framing, &mut said, events)
            .await
            .is_err()
        {
            return Ended::Closed;
        }
        tokio::select! {
            read = port.read(&mut buffer) => match read {
                // A pty whose other side closed reads 0; a USB radio pulled out errs.
                Ok(0) => return Ended::Lost(std::io::Error::other("the port closed")),
                Ok(n) => {
                    let before = framing.dropped();
                    let frames = framing.decode(&buffer[..n]);
                    let noise = framing.dropped() - before;
                    if noise > 0 && events.send(LinkEvent::Noise(noise)).await.is_err() {
                        return Ended::Closed;
                    }
                    // The handshake may end in these bytes, before their frames.
                    let Ok(up) = announce(config, path, framing, &mut said, events).await else {
                        return Ended::Closed;
                    };
                    // A frame before the radio is up is no frame of this link yet.
                    if up {
                        for frame in frames {
                            if events.send(LinkEvent::Frame(frame)).await.is_err() {
                                return Ended::Closed;
                            }
                        }
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
                Err(error) => return Ended::Lost(error),
            },
            text = texts.recv() => match text {
                Some(text) => match framing.encode_text(&text) {
                    Ok(bytes) => {
                        if let Err(error) = port.write_all(&bytes).await {
                            return Ended::Lost(error);
                        }
                    }
                    Err(error) => tracing::warn!(%path, %error, "plain text not sent"),
                },
                None => return Ended::Closed,
            },
            frame = frames_out.recv() => match frame {
                Some(frame) => {
                    let bytes = framing.encode(&frame);
                    if !bytes.is_empty() {
                        if let Err(error) = port.write_all(&bytes).await {
                            return Ended::Lost(error);
                        }
                    }
                }
                None => return Ended::Closed,
            },
            _ = tick.tick() => {
                for bytes in framing.tick(crate::now_ms()) {
                    if let Err(error) = port.write_all(&bytes).await {
                        return Ended::Lost(error);
                    }
                }
            }
        }
    }
}

/// Tells the bridge when the radio's readiness changed (up, refused, connecting again) and
/// logs what the radio reported; `Ok(true)` while it is up, `Err` when the bridge is gone.
async fn announce(
    config: &LinkConfig,
    path: &str,
    framing: &mut dyn Framing,
    said: &mut Option<Readiness>,
    events: &tokio::sync::mpsc::Sender<LinkEvent>,
) -> Result<bool, ()> {
    let protocol = framing.protocol();
    let readiness = framing.readiness();
    // Up is said once: what the radio says of itself may change while it is up (nodes heard).
    let changed = match (said.as_ref(), &readiness) {
        (Some(Readiness::Ready(_)), Readiness::Ready(_)) => false,
        (said, readiness) => said != Some(readiness),
    };
    if changed {
        if let (Readiness::Ready(_), Some(channel)) = (&readiness, framing.text_channel()) {
            events
                .send(LinkEvent::Channel(channel))
                .await
                .map_err(|_| ())?;
        }
        let event = match &readiness {
            Readiness::Ready(detail) => {
                let detail = match detail {
                    Some(detail) => format!("{detail}, on {path}"),
                    None if tcp_address(&config.path).is_some() => {
                        format!("{protocol} radio at {path}")
                    }
                    None => format!("{protocol} radio on {path} at {} baud", config.baud),
                };
                tracing::info!(%path, %protocol, %detail, "radio connected");
                Some(LinkEvent::Up(detail))
            }
            Readiness::Refused(reason) => {
                tracing::warn!(%path, %reason, "the radio cannot carry FieldMesh as it is set up");
                Some(LinkEvent::Down(reason.clone()))
            }
            Readiness::Waiting if said.is_some() => Some(LinkEvent::Down(format!(
                "the {protocol} radio on {path} is connecting again"
            ))),
            Readiness::Waiting => None,
        };
        if let Some(event) = event {
            events.send(event).await.map_err(|_| ())?;
        }
        *said = Some(readiness);
    }
    let up = matches!(said, Some(Readiness::Ready(_)));
    for event in framing.take_events() {
        match event {
            // While the radio is not up, the problem is what the radio line says.
            DeviceEvent::Problem(problem) if !up => {
                tracing::warn!(%path, %problem, "radio");
                events
                    .send(LinkEvent::Down(format!("{problem} ({path})")))
                    .await
                    .map_err(|_| ())?;
            }
            DeviceEvent::Problem(problem) => tracing::warn!(%path, %problem, "radio"),
            DeviceEvent::Text(text) => {
                tracing::debug!(%path, from = %text.name, "plain text on the radio channel");
                events.send(LinkEvent::Text(text)).await.map_err(|_| ())?;
            }
        }
    }
    Ok(up)
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
