//! `fieldmesh-cli` against a real `fieldmesh` server process (real SQLite file, real
//! WebSockets): the server binary is the workspace's own `target/<profile>/fieldmesh`, which
//! `cargo test --workspace` (what `./x test` runs) builds before any test runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::encode as hex;
use mesh::presence::PresenceCard;
use mesh::{ClientFrame, ServerFrame, StoredMessage, TextBody};
use tokio_tungstenite::tungstenite::Message;

fn server_binary() -> PathBuf {
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_fieldmesh-cli"));
    let server = cli.with_file_name("fieldmesh");
    assert!(
        server.exists(),
        "{} is missing: build the server first (cargo build -p server), or run the whole \
         workspace's tests (./x test)",
        server.display()
    );
    server
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; killed when dropped.
struct Server {
    child: Child,
    origin: String,
}

impl Server {
    fn start(data: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args(extra)
            .args(["--no-qr", "--log", "warn", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .arg("--site-root")
            .arg(data.join("no-site"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the server says it is ready").unwrap();
            if line.starts_with("FieldMesh is ready") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let scheme = if extra.contains(&"off") {
            "http"
        } else {
            "https"
        };
        Self {
            child,
            origin: format!("{scheme}://127.0.0.1:{port}"),
        }
    }

    fn plain(data: &Path, port: u16) -> Self {
        Self::start(data, port, &["--tls", "off"])
    }

    fn invite(&self, room: &str, key: &[u8; 32]) -> String {
        format!(
            "{}/#{}",
            self.origin,
            client::invite::fragment(room, &hex(key))
        )
    }

    fn ws(&self) -> String {
        format!("{}/ws", self.origin.replacen("http", "ws", 1))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One terminal client device: its own home folder.
struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fieldmesh-cli"));
        command.arg("--home").arg(self.home.path()).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with `input` on standard input.
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn outbox_len(&self) -> usize {
        std::fs::read_dir(self.home.path().join("outbox"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    }

    fn device_file(&self) -> PathBuf {
        self.home.path().join("device.json")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Every stored message of the room, as a phone with the key reads them over the protocol.
async fn stored(server: &Server, key: &RoomKey) -> Vec<StoredMessage> {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws()).await.unwrap();
    let next = |frame: Option<Result<Message, _>>| -> Option<ServerFrame> {
        match frame?.ok()? {
            Message::Binary(bytes) => ServerFrame::decode(&bytes).ok(),
            _ => None,
        }
    };
    let challenge = loop {
        if let Some(ServerFrame::Welcome { challenge, .. }) = next(ws.next().await) {
            break challenge;
        }
    };
    let phone = Identity::from_seed(&[42; 64]);
    let member = PresenceCard::seal(&phone, key, challenge, "Checker", [1; 24]).unwrap();
    let join = ClientFrame::Join {
        room: key.room_id(),
        after_seq: Some(0),
        member,
        proof: key.prove(&challenge),
    };
    ws.send(Message::binary(join.encode().unwrap()))
        .await
        .unwrap();
    let mut messages = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server answers");
        if let Some(ServerFrame::CatchUp {
            messages: batch,
            done,
            ..
        }) = next(frame)
        {
            messages.extend(batch);
            if done {
                return messages;
            }
        }
    }
}

#[tokio::test]
async fn two_devices_talk_in_a_room_see_each_others_codes_and_write_privately() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::plain(data.path(), free_port());
    let key = [7u8; 32];
    let link = server.invite("Camp North", &key);
    let (ana, bo) = (Cli::new(), Cli::new());

    let joined = ana.run(&["join", &link, "--name", "Ana"]);
    assert_exit(&joined, 0);
    assert!(text(&joined.stdout).contains("Joined Camp North"));
    let invite = ana.run(&["invite", "Camp North"]);
    assert_exit(&invite, 0);
    assert_eq!(text(&invite.stdout).trim(), link, "the same link goes on");
    assert_exit(
        &bo.run(&["join", text(&invite.stdout).trim(), "--name", "Bo"]),
        0,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ana.device_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the keys are the user's alone");
    }

    // A sensor script: the reading on standard input.
    let sent = ana.run_with_input(&["send", "camp north"], "River gauge: 2.4 m\n");
    assert_exit(&sent, 0);
    assert!(text(&sent.stdout).contains("stored on the server as #"));
    assert_exit(&bo.run(&["send", "Camp North", "Seen,", "thanks"]), 0);

    let read = bo.run(&["read", "Camp North"]);
    assert_exit(&read, 0);
    let lines = text(&read.stdout);
    assert!(lines.contains("Ana: River gauge: 2.4 m"), "{lines}");
    assert!(lines.contains("Bo: Seen, thanks"), "{lines}");
    let json = bo.run(&["read", "Camp North", "--json", "-n", "1"]);
    let value: serde_json::Value = serde_json::from_str(text(&json.stdout).trim()).unwrap();
    assert_eq!(value["text"], "Seen, thanks");
    assert_eq!(value["author"], "Bo");
    assert_eq!(value["via_radio"], false);

    // What the server holds is sealed and signed like a phone's message, and opens to the
    // same text with the room key.
    let room_key = RoomKey::from_bytes(key);
    let messages = stored(&server, &room_key).await;
    assert_eq!(messages.len(), 2);
    let body = TextBody::decode(&messages[0].envelope.open(&room_key).unwrap()).unwrap();
    assert_eq!(
        (body.author.as_str(), body.text.as_str()),
        ("Ana", "River gauge: 2.4 m")
    );

    // Bo follows the room; Ana looks who is there and writes to Bo privately.
    let mut follow = bo
        .command(&["read", "Camp North", "--follow", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut people = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !people.contains("Bo: ") {
        assert!(
            Instant::now() < deadline,
            "Bo never showed in the room: {people}"
        );
        std::thread::sleep(Duration::from_millis(200));
        let output = ana.run(&["people", "Camp North"]);
        assert_exit(&output, 0);
        people = text(&output.stdout);
    }
    assert!(people.starts_with("You (Ana): "), "{people}");
    let code_line = people.lines().find(|l| l.starts_with("Bo: ")).unwrap();
    assert!(code_line.contains("not verified"), "{people}");
    // Ana's laptop follows the room too: Bo's follow sees her arrive (her signed card, with
    // the key for private messages).
    let mut ana_follows = ana
        .command(&["read", "Camp North", "--follow", "-n", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_exit(&ana.run(&["verify", "Bo"]), 0);
    // Cy arrives: Ana's follower keeps who it saw, and keeps her mark on Bo.
    let cy = Cli::new();
    assert_exit(&cy.run(&["join", &link, "--name", "Cy"]), 0);
    let mut cy_follows = cy
        .command(&["read", "Camp North", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let _ = cy_follows.kill();
    let _ = cy_follows.wait();
    std::thread::sleep(Duration::from_millis(600));
    assert_exit(&ana.run(&["send", "Camp North", "Live one"]), 0);
    let people = text(&ana.run(&["people", "Camp North"]).stdout);
    assert!(people.contains("(verified;"), "{people}");
    let dm = ana.run(&["dm", "Bo", "Meet at the bridge"]);
    assert_exit(&dm, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let private = loop {
        let output = bo.run(&["read", "@Ana"]);
        if output.status.success() {
            break text(&output.stdout);
        }
        assert!(Instant::now() < deadline, "{}", text(&output.stderr));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(private.contains("Ana: Meet at the bridge"), "{private}");
    let _ = ana_follows.kill();
    let _ = ana_follows.wait();
    // And the room's export carries Ana's verified mark from her device.
    let html_path = ana.home.path().join("camp.html");
    let export = ana.run(&["export", "Camp North", "--format", "html", "-o"]);
    assert_exit(&export, 2);
    let export = ana.run(&[
        "export",
        "Camp North",
        "--format",
        "html",
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert_exit(&export, 0);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains("River gauge: 2.4 m") && html.contains("Seen, thanks"),
        "{html}"
    );
    assert!(
        html.contains("Bo <span class=\"mark\" title=\"verified\">✓</span>"),
        "{html}"
    );

    // The follower printed what arrived in the room, and nothing of the private room.
    std::thread::sleep(Duration::from_millis(300));
    let _ = follow.kill();
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut followed)
        .unwrap();
    let _ = follow.wait();
    assert!(followed.contains("Ana: Live one"), "{followed}");
    assert!(!followed.contains("Meet at the bridge"), "{followed}");
}

#[tokio::test]
async fn a_message_sent_while_the_server_is_away_goes_out_once_when_it_is_back() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::plain(data.path(), port);
    let key = [9u8; 32];
    let link = server.invite("Depot", &key);
    let gauge = Cli::new();
    assert_exit(&gauge.run(&["join", &link, "--name", "Gauge"]), 0);
    // A desk follows the room across the outage.
    let desk = Cli::new();
    assert_exit(&desk.run(&["join", &link, "--name", "Desk"]), 0);
    let mut follow = desk
        .command(&["read", "Depot", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(server);

    let queued = gauge.run(&["send", "Depot", "--wait", "2", "fuel 40%"]);
    assert_exit(&queued, 75);
    assert!(
        text(&queued.stderr).contains("waits in the outbox"),
        "{}",
        text(&queued.stderr)
    );
    assert_exit(
        &gauge.run(&["send", "Depot", "--wait", "2", "fuel 35%"]),
        75,
    );
    assert_eq!(gauge.outbox_len(), 2);
    let rooms = text(&gauge.run(&["rooms"]).stdout);
    assert!(rooms.contains("(2 waiting to be sent)"), "{rooms}");
    // A lost acknowledgement: the first entry is kept aside to be sent a second time.
    let first = std::fs::read_dir(gauge.home.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .min()
        .unwrap();
    let copy = std::fs::read(&first).unwrap();

    let server = Server::plain(data.path(), port);
    let synced = gauge.run(&["sync"]);
    assert_exit(&synced, 0);
    assert!(
        text(&synced.stdout).contains("2 sent, 0 waiting"),
        "{}",
        text(&synced.stdout)
    );
    assert_eq!(gauge.outbox_len(), 0);
    std::fs::write(&first, copy).unwrap();
    assert_exit(&gauge.run(&["send", "Depot", "fuel 30%"]), 0);
    assert_eq!(gauge.outbox_len(), 0);

    // The follower reconnected by itself and printed each message once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut followed = String::new();
    let mut out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = out.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while !followed.contains("fuel 30%") {
        assert!(
            Instant::now() < deadline,
            "the follower missed messages: {followed}"
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            followed.push_str(&text(&chunk));
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    for reading in ["fuel 40%", "fuel 35%", "fuel 30%"] {
        assert_eq!(followed.matches(reading).count(), 1, "{followed}");
    }

    let messages = stored(&server, &RoomKey::from_bytes(key)).await;
    let texts: Vec<String> = messages
        .iter()
        .map(|m| {
            let body = m.envelope.open(&RoomKey::from_bytes(key)).unwrap();
            TextBody::decode(&body).unwrap().text
        })
        .collect();
    assert_eq!(
        texts,
        ["fuel 40%", "fuel 35%", "fuel 30%"],
        "each once, in order"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let cli = Cli::new();
    let key = hex(&[1; 32]);
    for (link, says) in [
        ("https://camp.local/".to_string(), "no room part"),
        (
            format!("camp.local/#room=A&key={key}"),
            "https:// or http://",
        ),
        (
            "http://camp.local/#room=A&key=123".to_string(),
            "no room key",
        ),
    ] {
        let output = cli.run(&["join", &link, "--name", "Ana"]);
        assert_exit(&output, 2);
        assert!(
            text(&output.stderr).contains(says),
            "{}",
            text(&output.stderr)
        );
    }
    assert!(!cli.device_file().exists(), "nothing was made");
    let output = cli.run(&["send", "Camp", "hello"]);
    assert_exit(&output, 2);
    assert!(text(&output.stderr).contains("join a room first"));

    // A first join without a name is refused; one to a server that is not there keeps the
    // room (exit 3) so what is written waits in the outbox.
    let link = format!("http://127.0.0.1:{}/#room=Camp&key={key}", free_port());
    assert_exit(&cli.run(&["join", &link]), 2);
    assert_exit(&cli.run(&["join", &link, "--name", "Ana"]), 3);
    let output = cli.run(&["send", "Elsewhere", "hello"]);
    assert_exit(&output, 2);
    assert!(
        text(&output.stderr).contains("Rooms here: Camp"),
        "{}",
        text(&output.stderr)
    );
    let output = cli.run_with_input(&["send", "Camp"], "\n\n");
    assert_exit(&output, 2);
    assert_eq!(cli.outbox_len(), 0);
    assert_exit(&cli.run(&["dm", "Nobody", "hi"]), 2);

    // A damaged device file is reported and left as it was.
    std::fs::write(cli.device_file(), b"{\"seed\": \"12\"").unwrap();
    let output = cli.run(&["rooms"]);
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("damaged"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read(cli.device_file()).unwrap(),
        b"{\"seed\": \"12\""
    );
}

#[test]
fn a_camps_own_certificate_authority_is_trusted_on_first_use_then_pinned() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(
        data.path(),
        port,
        &["--http-listen", &format!("127.0.0.1:{}", free_port())],
    );
    let link = server.invite("Camp", &[3; 32]);
    let cli = Cli::new();
    let joined = cli.run(&["join", &link, "--name", "Ana"]);
    assert_exit(&joined, 0);
    let ca_dir = data.path().with_file_name(format!(
        "{}-ca",
        data.path().file_name().unwrap().to_string_lossy()
    ));
    let pem = std::fs::read_to_string(ca_dir.join("fieldmesh-ca.crt")).unwrap();
    let said = text(&joined.stderr);
    assert!(said.contains("Trusting https://127.0.0.1"), "{said}");
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let fingerprint = sha2_fingerprint(&der);
    assert!(said.contains(&fingerprint), "{said}\n{fingerprint}");
    assert_exit(&cli.run(&["send", "Camp", "over TLS"]), 0);
    assert!(!text(&cli.run(&["send", "Camp", "again"]).stderr).contains("Trusting"));

    // Another camp's authority on the same address: refused, nothing sent.
    drop(server);
    let other = tempfile::tempdir().unwrap();
    let _impostor = Server::start(
        other.path(),
        port,
        &["--http-listen", &format!("127.0.0.1:{}", free_port())],
    );
    let output = cli.run(&["send", "Camp", "--wait", "3", "to whom?"]);
    // Not a matter of waiting: refused (1), the message kept.
    assert_exit(&output, 1);
    let said = text(&output.stderr);
    assert!(
        said.contains("does not trust") && said.contains("kept in the outbox"),
        "{said}"
    );
    assert_eq!(cli.outbox_len(), 1);

    // A kept authority that no longer reads is an error, never a new first use.
    let device = std::fs::read_to_string(cli.device_file()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&device).unwrap();
    let pinned = value["servers"][0]["ca"].as_str().unwrap().to_string();
    std::fs::write(cli.device_file(), device.replace(&pinned, "zz")).unwrap();
    let output = cli.run(&["sync", "--wait", "3"]);
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("is damaged"),
        "{}",
        text(&output.stderr)
    );
    assert!(!text(&output.stderr).contains("Trusting"));
}

fn sha2_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_camp_with_a_join_code_is_joined_once_with_it_and_the_link_can_come_on_standard_input() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        free_port(),
        &["--tls", "off", "--join-code", "blue heron"],
    );
    let link = server.invite("Clinic", &[5; 32]);
    let cli = Cli::new();
    let output = cli.run_with_input(&["join", "-", "--name", "Desk"], &format!("{link}\n"));
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("--code"),
        "{}",
        text(&output.stderr)
    );
    let wrong = cli.home.path().join("wrong");
    std::fs::write(&wrong, "grey heron\n").unwrap();
    let output = cli.run_with_input(
        &["join", "-", "--code-file", wrong.to_str().unwrap()],
        &link,
    );
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("join code is wrong"),
        "{}",
        text(&output.stderr)
    );
    let right = cli.home.path().join("code");
    std::fs::write(&right, "blue heron\n").unwrap();
    let output = cli.run_with_input(
        &["join", "-", "--code-file", right.to_str().unwrap()],
        &link,
    );
    assert_exit(&output, 0);
    // The device's pass is kept: no code again.
    assert_exit(&cli.run(&["send", "Clinic", "Two beds free"]), 0);
    let read = cli.run(&["read", "Clinic"]);
    assert!(
        text(&read.stdout).contains("Desk: Two beds free"),
        "{}",
        text(&read.stdout)
    );
}
