//! The radio link contract (`mesh::radio::contract`) against the server's two links: the
//! serial link over a real pseudo-terminal pair made by socat, for every serial protocol
//! (unplugged by killing socat, plugged back in by starting it again on the same path), and
//! the lent browser radio, driven through the same calls the page's WebSocket session makes
//! (the WebSocket itself is covered by the browser test of lend mode). The page's own Web
//! Serial port runs the same contract in headless Chromium (`frontend/tests`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh::radio::contract::{self, Radio};
use mesh::radio::link::{FrameSink, LinkEvent, LinkEvents};
use mesh::serial::{ChannelChoice, Framing, Protocol, SerialSettings};
use server::radio::channel::ChannelLink;
use server::radio::link::{self, LinkConfig};
use server::radio::{lease, Lease};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

const WAIT: Duration = Duration::from_secs(20);

/// Runs the contract, failing with the step it stopped at when it takes too long.
async fn run_contract<L: FrameSink + LinkEvents, R: Radio>(
    name: &str,
    link: &mut L,
    radio: &mut R,
) {
    let step = Arc::new(Mutex::new(""));
    let progress = Arc::clone(&step);
    let run = contract::check(link, radio, move |s| *progress.lock().unwrap() = s);
    if tokio::time::timeout(WAIT, run).await.is_err() {
        panic!("{name}: timed out at \"{}\"", step.lock().unwrap());
    }
}

/// Two linked pseudo-terminals: `host` for the server, `device` for the test's radio.
struct PtyPair {
    child: Child,
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
        Self { child }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A radio on the device end of a pty, speaking `protocol` as a radio would.
struct SerialRadio {
    dir: PathBuf,
    protocol: Protocol,
    pty: Option<PtyPair>,
    port: Option<SerialStream>,
    framing: Box<dyn Framing>,
}

impl SerialRadio {
    fn start(dir: &Path, protocol: Protocol) -> Self {
        let mut radio = Self {
            dir: dir.to_path_buf(),
            protocol,
            pty: None,
            port: None,
            framing: protocol.framing(&SerialSettings::default()),
        };
        radio.plug();
        radio
    }

    fn plug(&mut self) {
        self.pty = Some(PtyPair::start(&self.dir));
        let port = tokio_serial::new(self.dir.join("device").to_str().unwrap(), 115_200)
            .open_native_async()
            .expect("the device end opens");
        self.port = Some(port);
        self.framing = self.protocol.framing(&SerialSettings::default());
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.port.as_mut().unwrap().write_all(bytes).await.unwrap();
    }
}

impl Radio for SerialRadio {
    async fn hear(&mut self, frame: &[u8]) {
        let bytes = self.framing.encode(frame);
        self.write(&bytes).await;
    }

    async fn babble(&mut self) {
        self.write(b"boot: rst:0x1 (POWERON)\r\n\xff\xfe noise \n")
            .await;
    }

    async fn hear_oversize(&mut self) {
        let bytes = self.framing.encode(&[0x41; 4000]);
        self.write(&bytes).await;
    }

    async fn transmitted(&mut self) -> Vec<u8> {
        let mut buffer = [0u8; 512];
        loop {
            let n = self.port.as_mut().unwrap().read(&mut buffer).await.unwrap();
            if let Some(frame) = self.framing.decode(&buffer[..n]).into_iter().next() {
                return frame;
            }
        }
    }

    async fn unplug(&mut self) {
        self.port = None;
        self.pty = None;
    }

    async fn replug(&mut self) {
        self.plug();
    }
}

async fn serial_contract(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let mut radio = SerialRadio::start(dir.path(), protocol);
    let mut link = link::open(
        LinkConfig {
            path: dir.path().join("host"),
            baud: 115_200,
        },
        protocol.framing(&SerialSettings::default()),
    );
    run_contract(protocol.name(), &mut link, &mut radio).await;
}

#[tokio::test]
async fn the_kiss_serial_link_keeps_the_link_contract_over_a_real_pty() {
    serial_contract(Protocol::Kiss).await;
}

#[tokio::test]
async fn the_line_serial_link_keeps_the_link_contract_over_a_real_pty() {
    serial_contract(Protocol::Line).await;
}

/// A stock Meshtastic node A, simulated by `radiosim` and reached over its TCP port, with a
/// second node B beside it whose host is the test (over B's TCP port, speaking the same
/// `mesh` Meshtastic code): a frame B's host sends crosses the simulated air to A, which
/// hands it to the link; a frame the link sends goes out from A and reaches B's host.
struct MeshtasticRadio {
    radios: radiosim::Radios,
    b: tokio::net::TcpStream,
    host: Box<dyn Framing>,
    heard: std::collections::VecDeque<Vec<u8>>,
}

fn fieldmesh_channel(seed: u64) -> SerialSettings {
    SerialSettings {
        channel: ChannelChoice::Name("FieldMesh".into()),
        seed,
        ..SerialSettings::default()
    }
}

impl MeshtasticRadio {
    async fn start(dir: &Path) -> Self {
        let topology = radiosim::parse_topology("bitrate 100000\nlink A B latency=1\n").unwrap();
        let radios = radiosim::Radios::start(topology, dir, Protocol::Meshtastic, 3).unwrap();
        let (b, host) =
            radiosim::meshtastic::connect_host(radios.tcp_address("B").unwrap(), "FieldMesh", 11)
                .await
                .expect("node B answers its host's handshake");
        Self {
            radios,
            b,
            host,
            heard: Default::default(),
        }
    }
}

impl Radio for MeshtasticRadio {
    async fn hear(&mut self, frame: &[u8]) {
        let bytes = self.host.encode(frame);
        assert!(!bytes.is_empty(), "B's host sends the frame");
        self.b.write_all(&bytes).await.unwrap();
    }

    async fn babble(&mut self) {
        self.radios.inject(
            "A",
            b"DEBUG | 12:00:00 [Router] boot\r\n\x94\x00 \xff\xfe noise\n",
        );
    }

    async fn hear_oversize(&mut self) {
        let mut bytes = vec![0x94, 0xC3, 0x7F, 0xFF];
        bytes.extend([0x41; 600]);
        self.radios.inject("A", &bytes);
    }

    async fn transmitted(&mut self) -> Vec<u8> {
        let mut buffer = [0u8; 1024];
        loop {
            if let Some(frame) = self.heard.pop_front() {
                return frame;
            }
            let n = self.b.read(&mut buffer).await.unwrap();
            assert!(n > 0, "node B stays connected");
            self.heard.extend(self.host.decode(&buffer[..n]));
        }
    }

    async fn unplug(&mut self) {
        self.radios.unplug_tcp("A");
    }

    async fn replug(&mut self) {
        self.radios.replug_tcp("A");
    }
}

#[tokio::test]
async fn a_meshtastic_node_over_tcp_keeps_the_link_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut radio = MeshtasticRadio::start(dir.path()).await;
    let address = radio.radios.tcp_address("A").unwrap();
    let mut link = link::open(
        LinkConfig {
            path: format!("tcp://{address}").into(),
            baud: 115_200,
        },
        Protocol::Meshtastic.framing(&fieldmesh_channel(5)),
    );
    run_contract("meshtastic over tcp", &mut link, &mut radio).await;
}

#[tokio::test]
async fn a_meshtastic_node_that_never_answers_its_handshake_is_asked_again_and_said_so() {
    // Something listens on the port but never speaks Meshtastic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut asked = 0;
        let mut buffer = [0u8; 1024];
        let mut writes = mesh::serial::meshtastic::device::HostWrites::default();
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            asked += usize::from(writes.handshake(&buffer[..n]).is_some());
            if asked == 2 {
                return asked;
            }
        }
        asked
    });
    let mut link = link::open(
        LinkConfig {
            path: format!("tcp://{address}").into(),
            baud: 115_200,
        },
        Protocol::Meshtastic.framing(&fieldmesh_channel(3)),
    );
    let said = tokio::time::timeout(Duration::from_secs(25), async {
        loop {
            match link.next_event().await {
                Some(LinkEvent::Down(reason)) => return reason,
                Some(LinkEvent::Up(detail)) => panic!("up without a handshake: {detail}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the radio line says why within 25 s");
    assert!(said.contains("did not finish its handshake"), "{said}");
    assert_eq!(silent.await.unwrap(), 2, "the handshake was asked again");
}

/// The bridge's side of lending: one link per lease, the next one once the page lends again.
struct LentHost {
    link: ChannelLink,
    next: mpsc::UnboundedReceiver<ChannelLink>,
    ended: bool,
}

impl FrameSink for LentHost {
    fn transmit(&mut self, frame: &[u8]) -> bool {
        self.link.transmit(frame)
    }
}

impl LinkEvents for LentHost {
    async fn next_event(&mut self) -> Option<LinkEvent> {
        if std::mem::take(&mut self.ended) {
            self.link = self.next.recv().await?;
        }
        match self.link.next_event().await {
            Some(event) => Some(event),
            None => {
                // The lease ended: the lender is gone until a page lends again.
                self.ended = true;
                Some(LinkEvent::Down("the lending page went away".into()))
            }
        }
    }
}

/// The page lending its radio, as its WebSocket session drives the lease.
struct LentRadio {
    lease: Option<Lease>,
    lender: Arc<Mutex<Option<u64>>>,
    next: mpsc::UnboundedSender<ChannelLink>,
}

impl Radio for LentRadio {
    async fn hear(&mut self, frame: &[u8]) {
        assert!(self.lease.as_ref().unwrap().heard(frame.to_vec()));
    }

    async fn babble(&mut self) {
        // The WebSocket refuses bytes that are no frame at all; what reaches the lease is at
        // worst an empty frame.
        assert!(!self.lease.as_ref().unwrap().heard(Vec::new()));
    }

    async fn hear_oversize(&mut self) {
        assert!(!self.lease.as_ref().unwrap().heard(vec![0x41; 4000]));
    }

    async fn transmitted(&mut self) -> Vec<u8> {
        self.lease.as_mut().unwrap().transmitted().await.unwrap()
    }

    async fn unplug(&mut self) {
        self.lease = None;
    }

    async fn replug(&mut self) {
        let (link, lease) = lease("Ana's browser", Arc::clone(&self.lender));
        self.next.send(link).unwrap();
        self.lease = Some(lease);
    }
}

#[tokio::test]
async fn the_lent_browser_radio_keeps_the_link_contract() {
    let lender = Arc::new(Mutex::new(None));
    let (link, first) = lease("Ana's browser", Arc::clone(&lender));
    let (next, next_rx) = mpsc::unbounded_channel();
    let mut host = LentHost {
        link,
        next: next_rx,
        ended: false,
    };
    let mut radio = LentRadio {
        lease: Some(first),
        lender,
        next,
    };
    run_contract("lent", &mut host, &mut radio).await;
}
