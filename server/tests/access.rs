//! Access control against a real server process: the join code, device passes and rate limits.

mod support;

use std::net::Ipv4Addr;

use mesh::{ClientFrame, ErrorCode, SenderId, ServerFrame};
use support::{join_frame, room, text_message, Client, TestServer};

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

    stranger.send(&join_frame(room("camp"), None, "Eve")).await;
    assert!(is_error(&stranger.recv().await, ErrorCode::CodeRequired));
    let message = text_message(room("camp"), "Eve", "let me in");
    stranger.send(&ClientFrame::Publish(message.clone())).await;
    assert!(matches!(
        stranger.recv().await,
        ServerFrame::Error { code: ErrorCode::CodeRequired, id: Some(id), .. } if id == message.id
    ));
    stranger
        .send(&ClientFrame::History {
            room: room("camp"),
            before_seq: u64::MAX,
            limit: 10,
        })
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
            .send(&join_frame(camp, None, &format!("Mallory {n}")))
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
        .filter(|f| matches!(f, ServerFrame::Presence { .. }))
        .count();
    assert!(refused >= JOINS - 100, "{refused} joins refused");
    assert!(
        presence <= 100,
        "the room heard {presence} presence updates"
    );
}
