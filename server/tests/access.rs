//! Access control against a real server process: the join code, device passes and rate limits.

mod support;

use std::net::Ipv4Addr;

use mesh::{ClientFrame, ErrorCode, SenderId, ServerFrame};
use support::{room, text_message, Client, TestServer};

const CODE: &str = "river stone 42";

fn device(n: u8) -> SenderId {
    SenderId([n; 32])
}

async fn unlock(client: &mut Client, code: &str, device: SenderId) -> ServerFrame {
    client
        .send(&ClientFrame::Unlock {
            code: code.into(),
            device,
        })
        .await;
    client.recv().await
}

fn is_error(frame: &ServerFrame, want: ErrorCode) -> bool {
    matches!(frame, ServerFrame::Error { code, .. } if *code == want)
}

#[tokio::test]
async fn without_the_code_nothing_can_be_read_or_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let (mut stranger, welcome) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    assert!(matches!(
        welcome,
        ServerFrame::Welcome {
            code_required: true,
            ..
        }
    ));

    stranger
        .send(&stranger.join_frame(room("camp"), None, "Eve"))
        .await;
    assert!(is_error(&stranger.recv().await, ErrorCode::CodeRequired));
    let message = text_message(room("camp"), "Eve", "let me in");
    stranger.send(&ClientFrame::Publish(message.clone())).await;
    assert!(matches!(
        stranger.recv().await,
        ServerFrame::Error { code: ErrorCode::CodeRequired, id: Some(id), .. } if id == message.id
    ));
    stranger
        .send(&stranger.history_frame(room("camp"), u64::MAX, 10))
        .await;
    assert!(is_error(&stranger.recv().await, ErrorCode::CodeRequired));
}

#[tokio::test]
async fn a_wrong_code_is_refused_and_limited_while_another_device_still_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let (mut guesser, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    for attempt in 0..5 {
        let answer = unlock(&mut guesser, &format!("guess {attempt}"), device(1)).await;
        assert!(
            is_error(&answer, ErrorCode::WrongCode),
            "attempt {attempt}: {answer:?}"
        );
    }
    match unlock(&mut guesser, "guess 5", device(1)).await {
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            detail,
            ..
        } => {
            assert!(ms > 0 && ms <= 30_000, "retry after {ms} ms");
            assert!(detail.contains("try again"), "{detail}");
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    // Even the right code waits for the guessing device: the limit is checked first.
    assert!(is_error(
        &unlock(&mut guesser, CODE, device(1)).await,
        ErrorCode::RateLimited
    ));

    // Someone else, on the same network address, is not locked out.
    let (mut friend, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    assert!(matches!(
        unlock(&mut friend, CODE, device(2)).await,
        ServerFrame::Access { .. }
    ));
    friend.join(room("camp")).await;
    friend
        .publish(&text_message(room("camp"), "Friend", "in"))
        .await;
}

#[tokio::test]
async fn one_address_guessing_with_many_devices_is_limited_but_other_addresses_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let guessing_from = Ipv4Addr::new(127, 0, 0, 1);
    let mut refused = 0;
    let mut limited = false;
    for n in 0..25u8 {
        let (mut client, _) = Client::connect_from(&server.addr, guessing_from).await;
        match unlock(&mut client, "wrong", device(100 + n)).await {
            frame if is_error(&frame, ErrorCode::WrongCode) => refused += 1,
            frame if is_error(&frame, ErrorCode::RateLimited) => {
                limited = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        limited,
        "fresh device ids do not buy unlimited guesses from one address"
    );
    assert_eq!(refused, 20);

    let (mut neighbour, _) = Client::connect_from(&server.addr, Ipv4Addr::new(127, 0, 0, 2)).await;
    assert!(matches!(
        unlock(&mut neighbour, CODE, device(3)).await,
        ServerFrame::Access { .. }
    ));
}

#[tokio::test]
async fn a_device_pass_works_until_the_code_changes_and_only_a_hash_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let (mut phone, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    let ServerFrame::Access { token } = unlock(&mut phone, CODE, device(4)).await else {
        panic!("unlock")
    };
    drop(phone);

    // The pass lets the device back in without the code, across a restart.
    server.stop();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE]);
    let (mut phone, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    phone.send(&ClientFrame::Authenticate { token }).await;
    assert_eq!(phone.recv().await, ServerFrame::Access { token });
    phone.join(room("camp")).await;
    phone
        .send(&ClientFrame::Authenticate { token: [0; 32] })
        .await;
    assert!(
        is_error(&phone.recv().await, ErrorCode::WrongCode),
        "a made-up pass is refused"
    );

    let stored = std::fs::read_to_string(dir.path().join("join-code.argon2")).unwrap();
    assert!(stored.starts_with("$argon2"), "{stored}");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(CODE.len()).any(|w| w == CODE.as_bytes()),
                "plain code in {}",
                path.display()
            );
        }
    }

    // A new code: old passes stop working.
    server.stop();
    let server = TestServer::start_with(dir.path(), &["--join-code", "a new code"]);
    let (mut phone, _) = Client::connect_from(&server.addr, Ipv4Addr::LOCALHOST).await;
    phone.send(&ClientFrame::Authenticate { token }).await;
    assert!(is_error(&phone.recv().await, ErrorCode::WrongCode));
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_every_file_in_it_are_the_servers_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_with(&data, &["--join-code", CODE]);
    // A message on disk: the database, its journal and the join code's hash all exist.
    let mut client = server.client().await;
    assert!(matches!(
        unlock(&mut client, CODE, device(1)).await,
        ServerFrame::Access { .. }
    ));
    client
        .publish(&text_message(room("private"), "Ana", "kept private"))
        .await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data folder");
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(files.len() >= 3, "database, journal, join code: {files:?}");
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn a_join_code_from_a_file_works_and_never_shows_in_the_process_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("join-code");
    std::fs::write(&file, format!("{CODE}\n")).unwrap();
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &["--join-code-file", file.to_str().unwrap()],
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(CODE),
        "the code is not on the command line"
    );
    let mut client = server.client().await;
    let wrong = unlock(&mut client, "wrong", device(1)).await;
    assert!(is_error(&wrong, ErrorCode::WrongCode));
    assert!(matches!(
        unlock(&mut client, CODE, device(1)).await,
        ServerFrame::Access { .. }
    ));
}

/// The next frames within a short while, all of them.
async fn frames_for(client: &mut Client, time: std::time::Duration) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(time, client.next_frame()).await {
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn a_stranger_on_the_network_cannot_become_the_camps_radio() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let mut client = server.client().await;
    client
        .send(&ClientFrame::LendRadio {
            label: "totally the camp radio".into(),
        })
        .await;
    let frames = frames_for(&mut client, std::time::Duration::from_millis(500)).await;
    let answer = frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Lending { active, detail } => Some((*active, detail.clone())),
            _ => None,
        })
        .expect("an answer");
    assert!(!answer.0, "not lent");
    assert!(answer.1.contains("--radio-lend"), "{}", answer.1);
}

#[tokio::test]
async fn with_lending_allowed_only_a_device_that_entered_the_code_may_lend_or_see_the_radio() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--join-code", CODE, "--radio-lend"]);
    let mut client = server.client().await;
    client
        .send(&ClientFrame::LendRadio {
            label: "Eve".into(),
        })
        .await;
    let locked = frames_for(&mut client, std::time::Duration::from_millis(500)).await;
    assert!(
        !locked.iter().any(|f| matches!(f, ServerFrame::Radio(_))),
        "no radio status before the code: {locked:?}"
    );
    assert!(locked.iter().any(|f| is_error(f, ErrorCode::CodeRequired)));
    assert!(!locked
        .iter()
        .any(|f| matches!(f, ServerFrame::Lending { active: true, .. })));

    assert!(matches!(
        unlock(&mut client, CODE, device(3)).await,
        ServerFrame::Access { .. }
    ));
    client
        .send(&ClientFrame::LendRadio {
            label: "Ana".into(),
        })
        .await;
    let unlocked = frames_for(&mut client, std::time::Duration::from_millis(500)).await;
    assert!(unlocked.iter().any(|f| matches!(f, ServerFrame::Radio(_))));
    assert!(unlocked
        .iter()
        .any(|f| matches!(f, ServerFrame::Lending { active: true, .. })));
}

#[test]
fn lending_without_a_join_code_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fieldmesh"))
        .args([
            "--tls",
            "off",
            "--no-qr",
            "--listen",
            "127.0.0.1:0",
            "--radio-lend",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--radio-lend needs --join-code"), "{said}");
}

#[tokio::test]
async fn a_flood_of_joins_does_not_flood_the_room_with_presence() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("presence flood");
    let mut follower = server.client().await;
    follower.join(camp).await;
    let mut mallory = server.client().await;
    const JOINS: usize = 2_000;
    for n in 0..JOINS {
        mallory
            .send(&mallory.join_frame(camp, None, &format!("Mallory {n}")))
            .await;
    }
    // Mallory hears why most of them were not done.
    let mut refused = 0;
    while let Ok(Some(frame)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), mallory.next_frame()).await
    {
        if is_error(&frame, ErrorCode::RateLimited) {
            refused += 1;
        }
    }
    let presence = frames_for(&mut follower, std::time::Duration::from_secs(1))
        .await
        .into_iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Presence { .. } | ServerFrame::PresenceChanged { .. }
            )
        })
        .count();
    assert!(refused >= JOINS - 100, "{refused} joins refused");
    assert!(
        presence <= 100,
        "the room heard {presence} presence updates"
    );
}

/// The mesh network key the lending tests' server uses.
fn mesh_key() -> mesh::radio::NetworkKey {
    mesh::radio::NetworkKey::from_bytes([0x42; 16])
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("messages.sqlite3")).unwrap();
    db.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// Waits until `sql` counts `want` rows, or 5 s pass; returns the last count.
async fn settle(dir: &std::path::Path, sql: &str, want: i64) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = count(dir, sql);
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

const OUTBOX: &str = "SELECT COUNT(*) FROM radio_outbox";

/// A server that lets devices that entered the code lend a radio, on the tests' mesh key.
fn lending_server(dir: &std::path::Path, extra: &[&str]) -> TestServer {
    let words = mesh_key().to_words();
    let mut args = vec![
        "--join-code",
        CODE,
        "--radio-lend",
        "--radio-network-key",
        &words,
    ];
    args.extend_from_slice(extra);
    TestServer::start_with(dir, &args)
}

#[tokio::test]
async fn a_lender_without_the_network_key_can_neither_confirm_nor_inject_anything() {
    use mesh::radio::{FrameKey, Packet, RadioMessage};
    let dir = tempfile::tempdir().unwrap();
    let server = lending_server(dir.path(), &["--radio-bitrate", "20000"]);
    let room = support::emergency_room();
    // Mallory entered the camp's code and lends a radio: she sees every outgoing frame.
    let mut mallory = server.client().await;
    unlock(&mut mallory, CODE, device(7)).await;
    mallory
        .send(&ClientFrame::LendRadio {
            label: "Mallory".into(),
        })
        .await;
    let mut ana = server.client().await;
    unlock(&mut ana, CODE, device(8)).await;
    ana.join(room).await;
    let (envelope, radio) = support::radio_message(room, "Ana", "we need insulin");
    ana.publish(&envelope).await;
    ana.send(&radio).await;
    assert_eq!(settle(dir.path(), OUTBOX, 1).await, 1);
    let heard = loop {
        if let ServerFrame::RadioFrame { frame } = mallory.recv_any().await {
            break frame;
        }
    };
    // Her acknowledgement of the heard frame, without the key: tagged under a key of hers.
    let Ok(Packet::Data {
        key,
        count: fragments,
        hop_limit,
        ..
    }) = Packet::decode(&heard[..heard.len() - mesh::radio::FRAME_TAG_BYTES])
    else {
        panic!("a data frame")
    };
    let ack = Packet::Ack {
        key,
        count: fragments,
        hop_limit,
    };
    let now = server::now_ms();
    let own_key = mesh::radio::NetworkKey::from_bytes([0x66; 16]);
    for forged in [ack.seal(&own_key, now), ack.encode()] {
        mallory
            .send(&ClientFrame::RadioFrame { frame: forged })
            .await;
    }
    // 3,000 junk frames with the Emergency room's tag (as many as her allowance lets through).
    let tag = mesh::radio::MessageKey::room_tag(room);
    for n in 0..3_000u32 {
        let junk = Packet::Data {
            hop_limit: 3,
            key: FrameKey {
                message: mesh::radio::MessageKey {
                    room: tag,
                    id: [n as u8, (n >> 8) as u8, 0, 0, 0, 1],
                },
                index: 0,
            },
            count: 1,
            chunk: vec![n as u8; 60],
        };
        mallory
            .send(&ClientFrame::RadioFrame {
                frame: junk.seal(&own_key, now),
            })
            .await;
    }
    let quiet = frames_for(&mut ana, std::time::Duration::from_millis(1500)).await;
    assert!(
        !quiet
            .iter()
            .any(|f| matches!(f, ServerFrame::Relayed { .. })),
        "no 'relayed by radio' from a forged acknowledgement"
    );
    assert!(
        !quiet.iter().any(|f| matches!(
            f,
            ServerFrame::Message(stored) if stored.envelope.kind == mesh::Kind::Radio
        )),
        "no junk stored"
    );
    assert_eq!(
        count(dir.path(), OUTBOX),
        1,
        "still waiting for a real camp"
    );
    assert_eq!(
        count(dir.path(), "SELECT COUNT(*) FROM messages"),
        1,
        "only Ana's message is stored"
    );

    // The same frames made with the mesh's key are a real camp's: they count.
    let real_ack = ack.seal(&mesh_key(), server::now_ms());
    mallory
        .send(&ClientFrame::RadioFrame { frame: real_ack })
        .await;
    let from_afar = RadioMessage::seal(
        &mesh::crypto::RoomKey::emergency(),
        mesh::MessageId([77; 16]),
        1_764_000_000,
        "Far camp",
        "bridge is down",
    );
    for fragment in from_afar.fragments(3, 233).unwrap() {
        mallory
            .send(&ClientFrame::RadioFrame {
                frame: fragment.seal(&mesh_key(), server::now_ms()),
            })
            .await;
    }
    let later = frames_for(&mut ana, std::time::Duration::from_millis(1500)).await;
    assert!(later
        .iter()
        .any(|f| matches!(f, ServerFrame::Relayed { id, .. } if *id == envelope.id)));
    assert!(later.iter().any(|f| matches!(
        f,
        ServerFrame::Message(stored) if stored.envelope.kind == mesh::Kind::Radio
    )));
    assert_eq!(settle(dir.path(), OUTBOX, 0).await, 0);
}

#[tokio::test]
async fn the_camp_name_and_network_key_go_only_to_devices_that_entered_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = lending_server(dir.path(), &["--camp-name", "North\u{200b} camp"]);
    let mut client = server.client().await;
    let locked = frames_for(&mut client, std::time::Duration::from_millis(300)).await;
    assert!(!locked.iter().any(|f| matches!(f, ServerFrame::Camp { .. })));
    unlock(&mut client, CODE, device(9)).await;
    let unlocked = frames_for(&mut client, std::time::Duration::from_millis(300)).await;
    assert!(
        unlocked.iter().any(|f| matches!(
            f,
            ServerFrame::Camp { name, network_key: Some(key) }
                if name == "North camp" && *key == mesh_key().to_bytes()
        )),
        "{unlocked:?}"
    );
}

/// Raises this test process's open-file limit, so it can hold as many sockets as the attack.
fn allow_open_files(count: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let target = count.min(limit.maximum.unwrap_or(u64::MAX));
    if limit.current.is_some_and(|current| current < target) {
        limit.current = Some(target);
        setrlimit(Resource::Nofile, limit).unwrap();
    }
}

/// Sends a plain GET from `source` and returns how long the answer took and its status line.
async fn get_from(addr: &str, source: Ipv4Addr, path: &str) -> (std::time::Duration, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    (
        started.elapsed(),
        text.lines().next().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn half_sent_requests_neither_lock_others_out_nor_stay_open() {
    use tokio::io::AsyncWriteExt;
    allow_open_files(4096);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    // One address opens 1,100 connections and sends half a request on each.
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..1_100 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((attacker, 0).into()).unwrap();
        let Ok(mut stream) = socket.connect(server.addr.parse().unwrap()).await else {
            continue;
        };
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }
    // Everyone else is still served, at once.
    let (took, status) = get_from(&server.addr, Ipv4Addr::LOCALHOST, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "/healthz took {took:?}"
    );
    // The server closes what is over one address's share at once, and the rest once their
    // headers are late.
    let kept = still_open(&mut held).await;
    assert!(
        kept <= server::admit::MAX_CONNECTIONS_PER_ADDRESS,
        "{kept} half-open connections from one address kept"
    );
    tokio::time::sleep(server::admit::HEADER_TIMEOUT + std::time::Duration::from_secs(2)).await;
    assert_eq!(still_open(&mut held).await, 0);
}

/// How many of `streams` the server has not closed (nothing to read, no end of stream).
async fn still_open(streams: &mut [tokio::net::TcpStream]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut open = 0;
    for stream in streams.iter_mut() {
        let mut byte = [0u8; 1];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(2), stream.read(&mut byte)).await;
        if read.is_err() {
            open += 1;
        }
    }
    open
}

#[tokio::test]
async fn a_stranger_who_knows_a_room_id_can_neither_follow_page_nor_see_who_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut ana = server.client().await;
    ana.join(camp).await;
    ana.publish(&text_message(camp, "Ana", "meet at the school"))
        .await;
    let ana_join = ana.join_frame(camp, None, "Ana");

    let mut eve = server.client().await;
    // Her own key's proof, Ana's proof and card replayed, and a history request without the
    // key: all refused, and nothing of the room reaches her.
    let stranger = mesh::crypto::RoomKey::from_bytes([0xee; 32]);
    let ClientFrame::Join { member, proof, .. } = eve.join_frame(camp, None, "Eve") else {
        unreachable!()
    };
    let own_key = ClientFrame::Join {
        room: camp,
        after_seq: None,
        member,
        proof: mesh::crypto::RoomProof {
            access: stranger.access_key(),
            ..stranger.prove(&eve.challenge)
        },
    };
    assert_ne!(proof.access, stranger.access_key());
    let history = ClientFrame::History {
        room: camp,
        before_seq: u64::MAX,
        limit: 50,
        proof: stranger.prove(&eve.challenge),
    };
    for frame in [own_key, ana_join, history] {
        eve.send(&frame).await;
        assert!(
            is_error(&eve.recv().await, ErrorCode::RoomKeyRequired),
            "{frame:?}"
        );
    }
    ana.publish(&text_message(camp, "Ana", "second")).await;
    let seen = frames_for(&mut eve, std::time::Duration::from_millis(500)).await;
    assert!(
        !seen.iter().any(|f| matches!(
            f,
            ServerFrame::Presence { .. }
                | ServerFrame::PresenceChanged { .. }
                | ServerFrame::Message(_)
                | ServerFrame::History { .. }
        )),
        "{seen:?}"
    );
    // With the key, the same connection gets in.
    let (page, _) = eve.join(camp).await;
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn one_sender_cannot_bury_the_public_room_and_a_full_room_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--room-quota-mb", "1"]);
    let public = support::emergency_room();
    let mut mallory = server.client().await;
    for n in 0..2_100 {
        mallory
            .send(&ClientFrame::Publish(text_message(
                public,
                "Mallory",
                &format!("junk {n}"),
            )))
            .await;
    }
    let answers = frames_for(&mut mallory, std::time::Duration::from_millis(1500)).await;
    let stored = answers
        .iter()
        .filter(|f| matches!(f, ServerFrame::Ack { .. }))
        .count();
    assert!(stored <= 25, "{stored} junk messages stored");
    // Ben's news still shows on a joining phone's first page.
    let mut ben = server.client().await;
    ben.publish(&text_message(public, "Ben", "water at the school"))
        .await;
    let mut newcomer = server.client().await;
    let (page, _) = newcomer.join(public).await;
    assert!(page
        .iter()
        .any(|m| support::text_of(&m.envelope) == "water at the school"));

    // A room at its quota refuses more, saying why; other rooms carry on.
    let camp = room("full camp");
    let text = "x".repeat(3_900);
    let mut refused = None;
    for _ in 0..400 {
        let envelope = text_message(camp, "Ana", &text);
        ben.send(&ClientFrame::Publish(envelope)).await;
        match ben.recv().await {
            ServerFrame::Ack { .. } | ServerFrame::Message(_) => {}
            ServerFrame::Error {
                code: ErrorCode::LimitReached,
                detail,
                ..
            } => {
                refused = Some(detail);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let detail = refused.expect("the room filled up");
    assert!(detail.contains("--room-quota-mb"), "{detail}");
    ben.publish(&text_message(room("another camp"), "Ana", "still fine"))
        .await;
}

/// Opens `count` WebSockets at once from this machine, each saying `forwarded_for(n)` in
/// `X-Forwarded-For` (when given), and returns how many were refused (HTTP 429). The
/// connections stay open until the end.
async fn connect_many(
    addr: &str,
    count: usize,
    forwarded_for: Option<fn(usize) -> String>,
) -> usize {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut open = Vec::new();
    let mut refused = 0;
    for n in 0..count {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(address) = forwarded_for {
            request
                .headers_mut()
                .insert("x-forwarded-for", address(n).parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                refused += 1;
            }
            Err(error) => panic!("connection failed: {error}"),
        }
    }
    refused
}

fn camp_phone(n: usize) -> String {
    format!("10.8.{}.{}", n / 200, n % 200 + 1)
}

#[tokio::test]
async fn two_hundred_phones_behind_one_address_connect_when_the_operator_says_they_share_it() {
    let dir = tempfile::tempdir().unwrap();
    // The finding: with the compiled-in allowance most of 200 phones on one address wait.
    let server = TestServer::start(dir.path());
    let refused = connect_many(&server.addr, 200, None).await;
    assert!(
        refused > 100,
        "{refused} of 200 refused with the default allowance"
    );
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "10"]);
    let started = std::time::Instant::now();
    assert_eq!(connect_many(&server.addr, 200, None).await, 0);
    eprintln!(
        "200 phones on one address connected in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_phone_has_its_own_allowance_and_nobody_else_can_claim_one() {
    // The attacker's probe: without a trusted proxy, naming other addresses in the header
    // buys nothing.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let refused = connect_many(&server.addr, 200, Some(camp_phone)).await;
    assert!(
        refused > 100,
        "{refused} of 200 refused: the header was not believed"
    );
    drop(server);

    // Behind the proxy (here: this machine), each phone the proxy names counts alone.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--trusted-proxy", "127.0.0.1"]);
    assert_eq!(connect_many(&server.addr, 200, Some(camp_phone)).await, 0);
}
