//! The simulator's Meshtastic nodes against the official Meshtastic Python client (`pip
//! install meshtastic`, pinned in `python/requirements.txt`; `./x test` installs it and names it
//! in `FIELDMESH_MESHTASTIC_CLI`): the real client reads a simulated node's state (`--info`),
//! sends text from one node (`--sendtext`) and listens on another (`--listen`), so the simulator
//! speaks the real protocol and not only FieldMesh's reading of it. FieldMesh's own host code
//! listens beside the Python client and gets the same text. Skipped, saying why, where the
//! client is not installed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mesh::serial::{DeviceEvent, Protocol};
use radiosim::{parse_topology, Radios};
use tokio::io::AsyncReadExt;

/// The `meshtastic` command, or `None` (saying why) when the test is to be skipped.
fn client() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("FIELDMESH_MESHTASTIC_CLI") else {
        eprintln!(
            "skipped: set FIELDMESH_MESHTASTIC_CLI to the Meshtastic Python client \
             (./x test installs it in target/python-meshtastic)"
        );
        return None;
    };
    let path = PathBuf::from(path);
    if !path.exists() {
        eprintln!(
            "skipped: the Meshtastic Python client is not at {} (./x test installs it where \
             Python 3 is present)",
            path.display()
        );
        return None;
    }
    Some(path)
}

fn two_nodes(dir: &std::path::Path) -> Radios {
    let topology = parse_topology("bitrate 20000\nlink A B latency=5\n").unwrap();
    Radios::start(topology, dir, Protocol::Meshtastic, 1).unwrap()
}

/// Runs the client with `args` against `address`, within 60 s; its output.
async fn run(client: &PathBuf, address: std::net::SocketAddr, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(client);
    command
        .arg("--host")
        .arg(address.to_string())
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the client finishes within 60 s")
        .expect("the client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the client failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_reads_a_simulated_nodes_state() {
    let Some(client) = client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let radios = two_nodes(dir.path());
    let info = run(&client, radios.tcp_address("A").unwrap(), &["--info"]).await;
    for want in [
        "Connected to radio",
        "Owner: A (A)",
        "\"firmwareVersion\": \"2.6.11.sim\"",
        "\"hopLimit\": 3",
        "Index 0: PRIMARY",
        "Index 1: SECONDARY",
        "\"name\": \"FieldMesh\"",
    ] {
        assert!(info.contains(want), "{want:?} missing from:\n{info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_the_official_client_reaches_its_listener_and_fieldmesh_over_the_air() {
    let Some(client) = client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let radios = two_nodes(dir.path());
    let b = radios.tcp_address("B").unwrap();
    // The Python client listens on B…
    // (It prints what it hears in its debug log, on standard error.)
    let log = dir.path().join("listen.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut listener = Command::new(&client)
        .arg("--host")
        .arg(b.to_string())
        .arg("--listen")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    // …and so does FieldMesh's own host code, over a second connection to B.
    let (mut fieldmesh, mut host) = radiosim::meshtastic::connect_host(b, "FieldMesh", 9)
        .await
        .expect("node B answers FieldMesh's handshake");
    let mut buffer = [0u8; 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Connected to radio")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener connects"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = run(
        &client,
        radios.tcp_address("A").unwrap(),
        &["--ch-index", "1", "--sendtext", "Water at the school"],
    )
    .await;
    assert!(sent.contains("Sending text message"), "{sent}");

    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = fieldmesh.read(&mut buffer).await.unwrap();
            assert!(n > 0, "B stays connected");
            host.decode(&buffer[..n]);
            if let Some(DeviceEvent::Text(text)) = host.take_events().into_iter().next() {
                return text;
            }
        }
    })
    .await
    .expect("FieldMesh's host hears the text");
    assert_eq!(
        (heard.text.as_str(), heard.channel.as_str(), heard.hops),
        ("Water at the school", "FieldMesh", Some(0))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Water at the school") && text.contains("TEXT_MESSAGE_APP") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Python listener did not print the text:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = listener.kill();
    let _ = listener.wait();
}
