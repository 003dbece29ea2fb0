//! The transport contract, run against every serial protocol over a real pseudo-terminal
//! pair made by socat: frames go both ways intact, garbage from the device is skipped, and a
//! radio that is unplugged (socat killed) and plugged back in (socat restarted on the same
//! path) is reopened by itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh::serial::Protocol;
use mesh::serial::{kiss_encode, KissDecoder, LineDecoder, CMD_DATA};
use mesh::{RadioState, RadioStatus};
use server::radio::link::{self, LinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

const WAIT: Duration = Duration::from_secs(10);

/// Two linked pseudo-terminals: `host` for the server, `device` for the test's radio.
struct PtyPair {
    child: Child,
    device: PathBuf,
}

impl PtyPair {
    fn start(dir: &Path) -> Self {
        let host = dir.join("host");
        let device = dir.join("device");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", host.display()))
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("socat is installed (./x installs it)");
        let deadline = std::time::Instant::now() + WAIT;
        while !(host.exists() && device.exists()) {
            assert!(std::time::Instant::now() < deadline, "socat made its ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, device }
    }

    /// Pulls the radio out: the ptys disappear.
    fn unplug(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The device end, speaking `protocol` as a radio would.
struct Device {
    port: SerialStream,
    protocol: Protocol,
    kiss: KissDecoder,
    lines: LineDecoder,
}

impl Device {
    fn open(path: &Path, protocol: Protocol) -> Self {
        let port = tokio_serial::new(path.to_str().unwrap(), 115_200)
            .open_native_async()
            .expect("the device end opens");
        Self {
            port,
            protocol,
            kiss: KissDecoder::new(512),
            lines: LineDecoder::new(512),
        }
    }

    /// Hands the host a frame heard over the air, with some line noise before it.
    async fn hear(&mut self, frame: &[u8]) {
        let mut bytes = b"\xff\x13 rx noise\n".to_vec();
        bytes.extend(match self.protocol {
            Protocol::Kiss => kiss_encode(CMD_DATA, frame),
            Protocol::Line => Protocol::Line.framing(None).encode(frame),
        });
        self.port.write_all(&bytes).await.unwrap();
    }

    /// The next frame the host asked to transmit.
    async fn transmitted(&mut self) -> Vec<u8> {
        let mut buffer = [0u8; 512];
        loop {
            let n = tokio::time::timeout(WAIT, self.port.read(&mut buffer))
                .await
                .expect("the host wrote a frame in time")
                .unwrap();
            let frames: Vec<Vec<u8>> = match self.protocol {
                Protocol::Kiss => self
                    .kiss
                    .push(&buffer[..n])
                    .into_iter()
                    .flatten()
                    .filter(|f| f.command == CMD_DATA)
                    .map(|f| f.payload)
                    .collect(),
                Protocol::Line => {
                    let mut line = Protocol::Line.framing(None);
                    self.lines
                        .push(&buffer[..n])
                        .into_iter()
                        .flatten()
                        .flat_map(|mut l| {
                            l.push(b'\n');
                            line.decode(&l)
                        })
                        .collect()
                }
            };
            if let Some(frame) = frames.into_iter().next() {
                return frame;
            }
        }
    }
}

async fn wait_for(status: &mut watch::Receiver<RadioStatus>, state: RadioState) {
    tokio::time::timeout(WAIT, status.wait_for(|s| s.state == state))
        .await
        .unwrap_or_else(|_| panic!("radio reached {state:?} in time"))
        .unwrap();
}

async fn contract(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::start(dir.path());
    let (status_tx, mut status) = watch::channel(RadioStatus::off());
    let status_tx = std::sync::Arc::new(status_tx);
    let (in_tx, mut frames_in) = mpsc::channel(16);
    let (frames_out, out_rx) = mpsc::channel(16);
    let link = tokio::spawn(link::run(
        LinkConfig {
            path: dir.path().join("host"),
            baud: 115_200,
        },
        protocol.framing(None),
        status_tx,
        in_tx,
        out_rx,
    ));
    wait_for(&mut status, RadioState::Ready).await;
    let mut device = Device::open(&pty.device, protocol);

    // Host to radio, and radio to host, with bytes that need escaping.
    let frame: Vec<u8> = (0..=170u8).map(|i| i.wrapping_mul(37) | 0xC0).collect();
    frames_out.send(frame.clone()).await.unwrap();
    assert_eq!(device.transmitted().await, frame);
    device.hear(&frame[..100]).await;
    let heard = tokio::time::timeout(WAIT, frames_in.recv()).await.unwrap();
    assert_eq!(heard.unwrap(), &frame[..100]);

    // Unplugged: the link says so, and keeps looking.
    drop(device);
    pty.unplug();
    wait_for(&mut status, RadioState::Unplugged).await;

    // Plugged back in on the same path: reopened by itself, and frames flow again.
    let pty = PtyPair::start(dir.path());
    wait_for(&mut status, RadioState::Ready).await;
    let mut device = Device::open(&pty.device, protocol);
    device.hear(b"after the replug").await;
    let heard = tokio::time::timeout(WAIT, frames_in.recv()).await.unwrap();
    assert_eq!(heard.unwrap(), b"after the replug");
    frames_out.send(b"still here".to_vec()).await.unwrap();
    assert_eq!(device.transmitted().await, b"still here");

    drop(frames_out);
    tokio::time::timeout(WAIT, link).await.unwrap().unwrap();
}

#[tokio::test]
async fn kiss_link_keeps_the_transport_contract_over_a_real_pty() {
    contract(Protocol::Kiss).await;
}

#[tokio::test]
async fn line_link_keeps_the_transport_contract_over_a_real_pty() {
    contract(Protocol::Line).await;
}
