//! `fieldmesh export` and `fieldmesh import`: a room's sealed log out of one camp's data
//! folder and into another's, checked whole, idempotent, and without plaintext.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use mesh::{ClientFrame, MessageId, ServerFrame};
use support::{room, text_message, text_of, TestServer};

fn fieldmesh(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldmesh"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stored_count(data: &Path) -> u64 {
    server::store::Store::open(data)
        .unwrap()
        .count_blocking()
        .unwrap()
}

#[tokio::test]
async fn a_rooms_sealed_log_moves_to_another_camp_whole_once_and_without_plaintext() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let camp = room("archive camp");
    let other = room("archive other");
    let secrets = [
        "Gas leak at the north tent zqxj",
        "Insulin needed for Mrs Okafor zqxj",
    ];
    let server = TestServer::start(a.path());
    let mut phone = server.client().await;
    for text in secrets {
        phone
            .publish(&text_message(camp, "Ana Archivist", text))
            .await;
    }
    // A message heard over a phone's own radio: unsigned, sealed with the room's radio key.
    let key = mesh::crypto::RoomKey::from_bytes(
        sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            b"archive camp",
        ))
        .into(),
    );
    let heard = mesh::radio::RadioMessage::seal(
        &key,
        MessageId([9; 16]),
        1_764_000_000,
        "Radio Rui",
        "Heard on air zqxj",
    )
    .to_envelope(camp);
    phone.send(&ClientFrame::RadioHeard(heard.clone())).await;
    loop {
        match phone.recv().await {
            ServerFrame::Ack { id, .. } if id == heard.id => break,
            ServerFrame::Message(_) => continue,
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    phone
        .publish(&text_message(other, "Ana Archivist", "another room"))
        .await;
    let (original, _) = phone.join(camp).await;
    assert_eq!(original.len(), 3);

    // Exported while the server runs.
    let file = a.path().join("camp.fieldmesh.jsonl");
    let room_hex = camp.to_string();
    let out = fieldmesh(
        &[
            "export",
            "--room",
            &room_hex,
            "--output",
            file.to_str().unwrap(),
        ],
        a.path(),
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("Exported 3 messages"), "{}", said(&out));
    let archive = std::fs::read(&file).unwrap();
    let text = String::from_utf8(archive.clone()).unwrap();
    assert_eq!(text.lines().count(), 4, "a header and three messages");
    // The attacker's probe: nothing readable of any message is in it.
    for needle in [
        "zqxj",
        "Gas leak",
        "Insulin",
        "Okafor",
        "Archivist",
        "Rui",
        "another room",
    ] {
        assert!(!text.contains(needle), "{needle:?} leaked into the archive");
    }
    assert!(text.contains(&heard.id.to_string()));
    server.stop();

    // Into an empty camp: every message, in order, with its times; twice stores nothing new.
    let out = fieldmesh(&["import", file.to_str().unwrap()], b.path());
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("3 messages read, 3 stored anew"),
        "{}",
        said(&out)
    );
    let out = fieldmesh(&["import", file.to_str().unwrap()], b.path());
    assert!(
        said(&out).contains("3 messages read, 0 stored anew, 3 already here"),
        "{}",
        said(&out)
    );
    let server = TestServer::start(b.path());
    let mut phone = server.client().await;
    let (imported, _) = phone.join(camp).await;
    assert_eq!(imported.len(), 3);
    for (got, want) in imported.iter().zip(&original) {
        assert_eq!(got.envelope, want.envelope);
        assert_eq!(got.received_at_ms, want.received_at_ms);
    }
    assert_eq!(text_of(&imported[1].envelope), secrets[1]);
    let (elsewhere, _) = phone.join(other).await;
    assert!(elsewhere.is_empty(), "only the room asked for moved");
    server.stop();
}

#[test]
fn a_damaged_or_foreign_archive_is_refused_whole_and_changes_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let camp = room("archive damage");
    {
        let store = server::store::Store::open(a.path()).unwrap();
        let envelopes: Vec<_> = (0..3)
            .map(|i| text_message(camp, "Bo", &format!("message {i}")))
            .collect();
        store.insert_many_blocking(&envelopes, 5, |_| {}).unwrap();
    }
    let file = a.path().join("camp.jsonl");
    let out = fieldmesh(
        &[
            "export",
            "--room",
            &camp.to_string(),
            "-o",
            file.to_str().unwrap(),
        ],
        a.path(),
    );
    assert!(out.status.success(), "{}", said(&out));
    let good = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    // One message already there: a refused import must not touch it either.
    let out = fieldmesh(&["import", file.to_str().unwrap()], b.path());
    assert!(out.status.success());
    let before = stored_count(b.path());
    let fresh = tempfile::tempdir().unwrap();

    let envelope_of = |line: &str| -> String {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        value["envelope"].as_str().unwrap().to_string()
    };
    // A flipped bit in one sealed body (base64 stays valid): its signature fails.
    let flipped = {
        let old = envelope_of(lines[2]);
        let mut bytes = old.into_bytes();
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        lines[2].replace(&envelope_of(lines[2]), std::str::from_utf8(&bytes).unwrap())
    };
    let cases: Vec<(String, &str)> = vec![
        (lines[..3].join("\n") + "\n", "cut short"),
        (
            [lines[0], lines[1], &flipped, lines[3]].join("\n"),
            "signature fails",
        ),
        (
            [
                lines[0],
                lines[1],
                lines[1]
                    .replace("\"seq\":1", "\"seq\":1,\"extra\":2")
                    .as_str(),
                lines[3],
            ]
            .join("\n"),
            "not a message line",
        ),
        (
            lines[0].replace(&camp.to_string(), &room("elsewhere").to_string())
                + "\n"
                + &lines[1..].join("\n"),
            "another room",
        ),
        ("name,text\nAna,hello\n".into(), "not a FieldMesh archive"),
        (String::new(), "empty"),
        (
            format!("{}\n{}\n", lines[0], "x".repeat(70_000)),
            "too long",
        ),
    ];
    for (content, says) in cases {
        let path = b.path().join("bad.jsonl");
        std::fs::write(&path, content).unwrap();
        for data in [b.path(), fresh.path()] {
            let out = fieldmesh(&["import", path.to_str().unwrap()], data);
            assert!(!out.status.success(), "accepted a file that is {says}");
            assert!(said(&out).contains(says), "{says}: {}", said(&out));
            assert!(
                said(&out).contains("nothing was imported"),
                "{}",
                said(&out)
            );
        }
        assert_eq!(stored_count(b.path()), before);
        assert_eq!(stored_count(fresh.path()), 0);
    }

    // An unknown room, a room id that is not one, a folder that holds no camp.
    let out = fieldmesh(
        &["export", "--room", &room("never used").to_string()],
        a.path(),
    );
    assert!(
        !out.status.success() && said(&out).contains("stores no messages of room"),
        "{}",
        said(&out)
    );
    let out = fieldmesh(&["export"], a.path());
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains(&format!("{camp}  3 messages")),
        "{}",
        said(&out)
    );
    let out = fieldmesh(&["export", "--room", "camp"], a.path());
    assert!(
        !out.status.success() && said(&out).contains("32 hex digits"),
        "{}",
        said(&out)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = fieldmesh(&["export", "--room", &camp.to_string()], empty.path());
    assert!(
        !out.status.success() && said(&out).contains("holds no FieldMesh messages"),
        "{}",
        said(&out)
    );
}
