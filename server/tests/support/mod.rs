//! Test harness: a real `fieldmesh` process on a free port with a real SQLite file, and
//! WebSocket clients speaking the real protocol.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod camps;
pub mod http;
pub mod nats;
pub mod soak;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mesh::crypto::{seal, Draft, Identity, RoomKey};
use mesh::{
    ClientFrame, Envelope, Kind, Member, MessageId, RoomId, SenderId, ServerFrame, TextBody,
};
use sha2::Digest;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one frame before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server process. Killed when dropped.
pub struct TestServer {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub data_dir: PathBuf,
}

impl TestServer {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts with extra flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldmesh"))
            .args(extra)
            .args([
                "--tls",
                "off",
                "--no-qr",
                "--listen",
                "127.0.0.1:0",
                "--site-root",
            ])
            .arg(data_dir.join("no-site"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--log")
            .arg(std::env::var("FIELDMESH_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("FieldMesh is ready: open http://") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "server exited cleanly on SIGTERM: {status}"
        );
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`: resident now; `VmHWM`: its peak).
pub fn memory_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A WebSocket client speaking the FieldMesh wire protocol.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// This connection's challenge, from the server's welcome.
    pub challenge: [u8; 32],
    /// Each room's members, as the presence frames received so far tell (as a page keeps it).
    pub members: std::collections::HashMap<RoomId, Vec<mesh::Member>>,
    /// Member entries received in presence frames so far (a list's members, a change's
    /// comings and goings).
    pub presence_entries: usize,
}

impl Client {
    pub async fn connect(addr: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("websocket connects");
        let mut client = Self {
            ws,
            challenge: [0; 32],
            members: Default::default(),
            presence_entries: 0,
        };
        match client.recv().await {
            ServerFrame::Welcome { challenge, .. } => client.challenge = challenge,
            other => panic!("expected a welcome, got {other:?}"),
        }
        client
    }

    /// Connects from a chosen loopback address (any of 127.0.0.0/8), as another phone would,
    /// and returns the welcome frame too.
    pub async fn connect_from(addr: &str, source: std::net::Ipv4Addr) -> (Self, ServerFrame) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let stream = socket
            .connect(addr.parse().unwrap())
            .await
            .expect("tcp connects");
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}/ws"),
            MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("websocket connects");
        let mut client = Self {
            ws,
            challenge: [0; 32],
            members: Default::default(),
            presence_entries: 0,
        };
        let welcome = client.recv_any().await;
        if let ServerFrame::Welcome { challenge, .. } = &welcome {
            client.challenge = *challenge;
        }
        (client, welcome)
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_raw(frame.encode().unwrap()).await;
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.try_send_raw(bytes).await.expect("frame sent");
    }

    /// Sends without asserting success: the server may close the connection mid-frame.
    pub async fn try_send_raw(
        &mut self,
        bytes: Vec<u8>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(Message::Binary(bytes.into())).await
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("frame sent");
    }

    /// Keeps [`Client::members`] as presence frames tell.
    fn note_presence(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Presence { room, members } => {
                self.presence_entries += members.len();
                self.members.insert(*room, members.clone());
            }
            ServerFrame::PresenceChanged { room, joined, left } => {
                self.presence_entries += joined.len() + left.len();
                let members = self.members.entry(*room).or_default();
                mesh::apply_presence_changes(members, joined, left);
            }
            _ => {}
        }
    }

    /// Reads frames until `room`'s members, sorted by card, are `cards`.
    pub async fn members_are(&mut self, room: RoomId, cards: &[&str]) {
        loop {
            let mut now: Vec<String> = self
                .members
                .get(&room)
                .into_iter()
                .flatten()
                .map(|m| String::from_utf8_lossy(&m.card).into_owned())
                .collect();
            now.sort();
            if now == cards {
                return;
            }
            self.recv_any().await;
        }
    }

    /// The next frame from the server that is not presence or typing (fails the test after
    /// [`WAIT`]).
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            match self.recv_any().await {
                ServerFrame::Presence { .. }
                | ServerFrame::PresenceChanged { .. }
                | ServerFrame::Typing { .. }
                | ServerFrame::Radio(_)
                | ServerFrame::Camp { .. }
                | ServerFrame::FileLimits { .. }
                | ServerFrame::Federation(_)
                | ServerFrame::Relayed { .. } => continue,
                frame => return frame,
            }
        }
    }

    /// The next frame from the server, whatever it is.
    pub async fn recv_any(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("the frame is readable");
            match message {
                Message::Binary(bytes) => {
                    let frame = ServerFrame::decode(&bytes).expect("server frames decode");
                    self.note_presence(&frame);
                    return frame;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame, or `None` once the server has closed the connection.
    pub async fn next_frame(&mut self) -> Option<ServerFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.ok()?? {
                Ok(Message::Binary(bytes)) => {
                    let frame = ServerFrame::decode(&bytes).ok();
                    if let Some(frame) = &frame {
                        self.note_presence(frame);
                    }
                    return frame;
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next frame: `Ok(None)` after [`WAIT`] of quiet, `Err(())` once the server closed
    /// the connection (a frame that does not decode is skipped).
    pub async fn next_or_quiet(&mut self) -> Result<Option<ServerFrame>, ()> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    if let Ok(frame) = ServerFrame::decode(&bytes) {
                        self.note_presence(&frame);
                        return Ok(Some(frame));
                    }
                }
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Err(()),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Whether the server closed the connection (within [`WAIT`]).
    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Joins a room without a cursor and returns the history page the server answers with.
    pub async fn join(&mut self, room: RoomId) -> (Vec<mesh::StoredMessage>, bool) {
        self.send(&self.join_frame(room, None, "tester")).await;
        match self.recv().await {
            ServerFrame::History {
                room: got,
                messages,
                has_more,
            } if got == room => (messages, has_more),
            other => panic!("expected history, got {other:?}"),
        }
    }

    /// Publishes and returns the acknowledgement `(seq, duplicate)`, skipping live messages.
    pub async fn publish(&mut self, envelope: &Envelope) -> (u64, bool) {
        self.send(&ClientFrame::Publish(envelope.clone())).await;
        loop {
            match self.recv().await {
                ServerFrame::Ack { id, seq, duplicate } if id == envelope.id => {
                    return (seq, duplicate)
                }
                ServerFrame::Message(_) => continue,
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }
}

impl Client {
    /// A join frame for a member called `name` on this connection (the card is the name's
    /// bytes), with the proof of the room's key.
    pub fn join_frame(&self, room: RoomId, after_seq: Option<u64>, name: &str) -> ClientFrame {
        join_frame(room, after_seq, name, self.challenge)
    }

    /// A history request on this connection, with the proof of the room's key.
    pub fn history_frame(&self, room: RoomId, before_seq: u64, limit: u16) -> ClientFrame {
        ClientFrame::History {
            room,
            before_seq,
            limit,
            proof: proof(room, &self.challenge),
        }
    }
}

/// The proof of `room`'s key for the connection whose challenge is `challenge`.
pub fn proof(room: RoomId, challenge: &[u8; 32]) -> mesh::crypto::RoomProof {
    keys()
        .get(&room)
        .expect("rooms come from room()")
        .prove(challenge)
}

/// A join frame for a member called `name` (the card is the name's bytes) on the connection
/// whose challenge is `challenge`.
pub fn join_frame(
    room: RoomId,
    after_seq: Option<u64>,
    name: &str,
    challenge: [u8; 32],
) -> ClientFrame {
    let mut sender = [0u8; 32];
    sender[..16].copy_from_slice(&rand_bytes());
    ClientFrame::Join {
        room,
        after_seq,
        member: Member {
            sender: SenderId(sender),
            challenge,
            card: name.as_bytes().to_vec(),
        },
        proof: proof(room, &challenge),
    }
}

/// Room keys of the rooms tests made, so helpers can seal and open their messages.
fn keys() -> std::sync::MutexGuard<'static, std::collections::HashMap<RoomId, RoomKey>> {
    static KEYS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<RoomId, RoomKey>>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default).lock().unwrap()
}

/// The key of a room made by the helpers.
pub fn room_key(room: RoomId) -> RoomKey {
    keys().get(&room).cloned().expect("rooms come from room()")
}

/// The public Emergency room, whose key every device knows.
pub fn emergency_room() -> RoomId {
    let key = RoomKey::emergency();
    let id = key.room_id();
    keys().insert(id, key);
    id
}

/// A text message and its radio form, as a phone sends them to a server with a radio.
pub fn radio_message(room: RoomId, author: &str, text: &str) -> (Envelope, ClientFrame) {
    let envelope = text_message(room, author, text);
    let key = keys().get(&room).cloned().expect("rooms come from room()");
    // Sent now, as a phone would: catch-up offers only messages of the last two hours.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let radio = mesh::radio::RadioMessage::seal(&key, envelope.id, now_s, author, text);
    let frame = ClientFrame::SendRadio {
        room,
        id: envelope.id,
        payload: radio.payload,
    };
    (envelope, frame)
}

/// Opens a message that came over the radio and returns `(author, text)`.
pub fn radio_text_of(envelope: &Envelope) -> (String, String) {
    let key = keys()
        .get(&envelope.room)
        .cloned()
        .expect("rooms come from room()");
    let message = mesh::radio::RadioMessage::from_envelope(envelope).expect("a radio envelope");
    let opened = message.open(&key).expect("radio messages open");
    (opened.author, opened.text)
}

/// The id of the room with `key` (whose messages the helpers then open).
pub fn keyed_room(key: RoomKey) -> RoomId {
    let id = key.room_id();
    keys().insert(id, key);
    id
}

/// The id of a test room whose key is derived from `name` (real rooms have random keys).
pub fn room(name: &str) -> RoomId {
    let key = RoomKey::from_bytes(sha2::Sha256::digest(name.as_bytes()).into());
    let id = key.room_id();
    keys().insert(id, key);
    id
}

/// A test device's identity (the same for a name across tests).
pub fn identity(author: &str) -> Identity {
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(&sha2::Sha256::digest(author.as_bytes()));
    let second = sha2::Sha256::digest(&seed[..32]);
    seed[32..].copy_from_slice(&second);
    Identity::from_seed(&seed)
}

/// A text message with a random id, sealed for `room` and signed by `author`.
pub fn text_message(room: RoomId, author: &str, text: &str) -> Envelope {
    text_message_with_id(room, author, text, MessageId(rand_bytes()))
}

/// A signed, sealed text message under a chosen id.
pub fn text_message_with_id(room: RoomId, author: &str, text: &str, id: MessageId) -> Envelope {
    let key = keys().get(&room).cloned().expect("rooms come from room()");
    let body = TextBody::new(author, text).unwrap().encode().unwrap();
    let draft = Draft {
        id,
        created_at_ms: 1_764_000_000_000,
        kind: Kind::Text,
        plaintext: &body,
    };
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(&rand_bytes());
    seal(&identity(author), &key, draft, nonce).unwrap()
}

fn rand_bytes() -> [u8; 16] {
    // Unique enough for tests: a process-wide counter mixed with the clock.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&n.to_le_bytes());
    out[8..].copy_from_slice(&t.to_le_bytes());
    out
}

/// Opens a test message and returns its text.
pub fn text_of(envelope: &Envelope) -> String {
    let key = keys()
        .get(&envelope.room)
        .cloned()
        .expect("rooms come from room()");
    TextBody::decode(&envelope.open(&key).expect("test messages open"))
        .unwrap()
        .text
}
