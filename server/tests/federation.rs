//! Camps linked over IP: real `nats-server` processes (a hub, and each camp's leaf server
//! that `fieldmesh --federation-hub` starts), real servers, phones over WebSockets.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mesh::{MessageId, RoomId};
use support::nats::{creds, Cable, NatsHub};
use support::{room, text_message, TestServer};

/// How long the camps get to agree (catching up after a link comes back takes seconds).
const AGREE_WITHIN: Duration = Duration::from_secs(60);

const CAMPS: [(&str, &str); 4] = [
    ("camp-a", "pw-a"),
    ("camp-b", "pw-b"),
    ("camp-c", "pw-c"),
    ("camp-d", "pw-d"),
];

/// Starts camp `name` linked to the hub at `leaf_port` with the login `user`/`password`.
fn camp(dir: &Path, name: &str, leaf_port: u16, user: &str, password: &str) -> TestServer {
    let login = creds(&dir.join("logins"), user, password);
    let hub = format!("nats-leaf://127.0.0.1:{leaf_port}");
    TestServer::start_with(
        &dir.join(name),
        &[
            "--camp-name",
            name,
            "--history-page",
            "200",
            "--federation-hub",
            &hub,
            "--federation-creds",
            login.to_str().unwrap(),
        ],
    )
}

/// The ids of `room`'s messages at `server`, in its order.
async fn ids_at(server: &TestServer, room: RoomId) -> Vec<MessageId> {
    let mut phone = server.client().await;
    let (messages, _) = phone.join(room).await;
    messages.iter().map(|m| m.envelope.id).collect()
}

/// What `room` holds at `server`, for a failure's message: each message's kind and id.
async fn described(server: &TestServer, room: RoomId) -> String {
    let mut phone = server.client().await;
    let (messages, _) = phone.join(room).await;
    messages
        .iter()
        .map(|m| format!("{:?} {}", m.envelope.kind, m.envelope.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until every camp holds exactly `expected` (each once), or fails saying who lacks
/// what.
async fn every_camp_has(camps: &[&TestServer], room: RoomId, expected: &[MessageId]) {
    let started = Instant::now();
    loop {
        let mut missing = Vec::new();
        for (n, server) in camps.iter().enumerate() {
            let ids = ids_at(server, room).await;
            let mut counts: HashMap<MessageId, usize> = HashMap::new();
            for id in &ids {
                *counts.entry(*id).or_default() += 1;
            }
            assert!(
                counts.values().all(|&c| c == 1),
                "camp {n} holds a message twice"
            );
            let lacking = expected
                .iter()
                .filter(|id| !counts.contains_key(id))
                .count();
            // A radio copy may come before the whole message replaces it: only one that
            // stays is wrong.
            let extra = ids.iter().filter(|id| !expected.contains(id)).count();
            if extra > 0 && started.elapsed() >= AGREE_WITHIN {
                panic!(
                    "camp {n} holds messages nobody expects there: {} (expected {expected:?})",
                    described(server, room).await
                );
            }
            if lacking > 0 || extra > 0 {
                missing.push((n, lacking, extra));
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < AGREE_WITHIN,
            "after {AGREE_WITHIN:?}, camps still disagree (camp, lacking, extra): {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until a phone at `server` is told a federation status that `wanted` accepts.
async fn told(
    server: &TestServer,
    wanted: impl Fn(&mesh::FederationStatus) -> bool,
) -> mesh::FederationStatus {
    let started = Instant::now();
    let mut phone = server.client().await;
    let mut last = None;
    while started.elapsed() < AGREE_WITHIN {
        match phone.next_or_quiet().await {
            Ok(Some(mesh::ServerFrame::Federation(status))) => {
                if wanted(&status) {
                    return status;
                }
                last = Some(status);
            }
            Ok(_) => {}
            Err(()) => phone = server.client().await,
        }
    }
    panic!("after {AGREE_WITHIN:?} the phone was last told {last:?}");
}

/// Writes `count` messages in `room` at `server`; returns their ids.
async fn write(server: &TestServer, room: RoomId, author: &str, count: usize) -> Vec<MessageId> {
    let mut phone = server.client().await;
    let mut ids = Vec::new();
    for n in 0..count {
        let envelope = text_message(room, author, &format!("{author} {n}"));
        phone.publish(&envelope).await;
        ids.push(envelope.id);
    }
    ids
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_camps_share_everything_across_a_partition_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = NatsHub::start(&dir.path().join("hub"), &CAMPS);
    // Camp C reaches the hub through a cable the test cuts.
    let cable = Cable::to(([127, 0, 0, 1], hub.leaf_port).into()).await;
    let a = camp(dir.path(), "Camp A", hub.leaf_port, "camp-a", "pw-a");
    let b = camp(dir.path(), "Camp B", hub.leaf_port, "camp-b", "pw-b");
    let c = camp(dir.path(), "Camp C", cable.port, "camp-c", "pw-c");
    let room = room("federation");

    let mut expected = write(&a, room, "Ana", 5).await;
    expected.extend(write(&c, room, "Cleo", 5).await);
    every_camp_has(&[&a, &b, &c], room, &expected).await;
    // Phones see the link: which camps, synced when.
    let status = told(&a, |s| s.camps.len() == 2).await;
    assert_eq!(status.camps, ["Camp B", "Camp C"]);
    assert!(status.problem.is_none());
    let synced = status.last_synced_ms.expect("synced");
    assert!(synced.abs_diff(now_ms()) < 60_000, "synced {synced}");

    // The link to C goes down; both sides keep writing.
    cable.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_apart_a = write(&a, room, "Ana", 10).await;
    let while_apart_c = write(&c, room, "Cleo", 10).await;
    expected.extend(&while_apart_a);
    expected.extend(&while_apart_c);
    let mut ab = expected.clone();
    ab.retain(|id| !while_apart_c.contains(id));
    every_camp_has(&[&a, &b], room, &ab).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_c = ids_at(&c, room).await;
    assert!(
        while_apart_a.iter().all(|id| !at_c.contains(id)),
        "the cable was cut, yet C got A's messages"
    );

    // C's phones are told the link is down, and A's that C is gone.
    let apart = told(&c, |s| s.problem.is_some()).await;
    assert!(apart.last_synced_ms.is_some());
    told(&a, |s| s.camps == ["Camp B"]).await;

    // The link comes back: every camp ends with every message, once.
    cable.mend();
    every_camp_has(&[&a, &b, &c], room, &expected).await;

    // A photo taken at A opens at C: C fetches the pieces it lacks from a camp that has them.
    let photo: Vec<u8> = (0..600_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let (_, pieces) = support::http::seal(&photo, 3);
    assert!(pieces.len() > 1);
    for piece in &pieces {
        let id = mesh::file::ChunkId::of(piece);
        let stored = support::http::put(&a.addr, &id, piece, None).await;
        assert_eq!(stored.status, 201, "{}", stored.text());
    }
    for piece in &pieces {
        let id = mesh::file::ChunkId::of(piece);
        let got = support::http::request(&c.addr, "GET", &format!("/chunks/{id}"), None, &[]).await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(got.body == *piece, "C served another piece's bytes");
        // Kept: asked again, it comes from C's own disk.
        assert!(support::http::missing(&c.addr, &[id], None)
            .await
            .is_empty());
    }
    let unknown = mesh::file::ChunkId([9; 32]);
    let none =
        support::http::request(&c.addr, "GET", &format!("/chunks/{unknown}"), None, &[]).await;
    assert_eq!(none.status, 404, "{}", none.text());

    // A camp restarted from an empty database catches up.
    let b_dir = b.data_dir.clone();
    b.stop();
    std::fs::remove_dir_all(&b_dir).unwrap();
    let b = camp(dir.path(), "Camp B", hub.leaf_port, "camp-b", "pw-b");
    every_camp_has(&[&a, &b, &c], room, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outside_the_federation_neither_publishes_nor_reads() {
    let dir = tempfile::tempdir().unwrap();
    let hub = NatsHub::start(&dir.path().join("hub"), &CAMPS[..2]);
    let a = camp(dir.path(), "Camp A", hub.leaf_port, "camp-a", "pw-a");
    let b = camp(dir.path(), "Camp B", hub.leaf_port, "camp-b", "pw-b");
    // Wrong password, then a login the hub does not have.
    let x = camp(dir.path(), "Intruder", hub.leaf_port, "camp-a", "guess");
    let y = camp(dir.path(), "Stranger", hub.leaf_port, "camp-c", "pw-c");
    let room = room("closed federation");

    let ours = write(&a, room, "Ana", 3).await;
    let theirs = [
        write(&x, room, "Xavier", 2).await,
        write(&y, room, "Yuri", 2).await,
    ]
    .concat();
    every_camp_has(&[&a, &b], room, &ours).await;
    // Time enough for anything that could flow to flow.
    tokio::time::sleep(Duration::from_secs(8)).await;
    every_camp_has(&[&a, &b], room, &ours).await;
    for outsider in [&x, &y] {
        let ids = ids_at(outsider, room).await;
        assert!(
            ids.iter().all(|id| !ours.contains(id)),
            "an outsider read the federation's messages"
        );
    }
    let at_b = ids_at(&b, room).await;
    assert!(theirs.iter().all(|id| !at_b.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_comes_from_federation_is_checked_before_it_is_stored() {
    use async_nats::jetstream::{self, stream};
    let dir = tempfile::tempdir().unwrap();
    let hub = NatsHub::start(&dir.path().join("hub"), &CAMPS[..1]);
    let a = camp(dir.path(), "Camp A", hub.leaf_port, "camp-a", "pw-a");
    let room = room("checked");
    let first = write(&a, room, "Ana", 1).await;
    every_camp_has(&[&a], room, &first).await;

    // A member of the federation gone rogue: its own stream, added to the hub's sources,
    // carrying a forged signature, garbage, a message too large, and one honest message.
    let admin = hub.admin().await;
    let js = jetstream::new(admin);
    js.create_stream(stream::Config {
        name: "FM_OUT_ROGUE".into(),
        subjects: vec!["fieldmesh.out.rogue".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut forged = text_message(room, "Mallory", "I am Ana");
    forged.sender = support::identity("Ana").sender();
    let mut too_large = text_message(room, "Mallory", "big");
    too_large.body = vec![7; mesh::MAX_BODY_BYTES + 1];
    let honest = text_message(room, "Bea", "hello from far away");
    for payload in [
        forged.encode().unwrap(),
        b"not an envelope".to_vec(),
        postcard_of_oversized(&too_large),
        honest.encode().unwrap(),
    ] {
        js.publish("fieldmesh.out.rogue", payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut all = loop {
        match js.get_stream("FM_ALL").await {
            Ok(all) => break all,
            Err(_) if started.elapsed() < AGREE_WITHIN => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(error) => panic!("the camp never made FM_ALL: {error}"),
        }
    };
    let mut config = all.info().await.unwrap().config.clone();
    config
        .sources
        .get_or_insert_with(Vec::new)
        .push(stream::Source {
            name: "FM_OUT_ROGUE".into(),
            ..Default::default()
        });
    js.update_stream(config).await.unwrap();

    let mut expected = first.clone();
    expected.push(honest.id);
    every_camp_has(&[&a], room, &expected).await;
}

/// An envelope over the body limit, encoded as the wire would carry it (encoding refuses it,
/// so it is built by hand: the bytes of the same envelope with an empty body, then the body
/// put in before the signature, the last field).
fn postcard_of_oversized(envelope: &mesh::Envelope) -> Vec<u8> {
    let mut small = envelope.clone();
    small.body = Vec::new();
    let bytes = small.encode().unwrap();
    let (head, signature) = bytes.split_at(bytes.len() - 64);
    let mut out = head[..head.len() - 1].to_vec();
    let mut length = envelope.body.len();
    while length >= 0x80 {
        out.push((length as u8) | 0x80);
        length >>= 7;
    }
    out.push(length as u8);
    out.extend_from_slice(&envelope.body);
    out.extend_from_slice(signature);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_heard_by_radio_and_then_received_over_ip_is_one_message() {
    use mesh::serial::Protocol;
    use mesh::{ClientFrame, Kind, ServerFrame};
    use support::camps::Camps;

    let dir = tempfile::tempdir().unwrap();
    let hub = NatsHub::start(&dir.path().join("hub"), &CAMPS[..2]);
    // B's IP link is down at first: A's message reaches B by radio only.
    let cable = Cable::to(([127, 0, 0, 1], hub.leaf_port).into()).await;
    let mut camps = Camps::new(Protocol::Kiss, 20_000);
    camps.start_radios("bitrate 20000\nduty-cycle 1\nlink A B latency=10\n", 3);
    let linked = |name: &str, port: u16, user: &str, password: &str| {
        let login = creds(&dir.path().join("logins"), user, password);
        vec![
            "--camp-name".to_string(),
            name.to_string(),
            "--federation-hub".into(),
            format!("nats-leaf://127.0.0.1:{port}"),
            "--federation-creds".into(),
            login.to_str().unwrap().to_string(),
        ]
    };
    cable.cut();
    let a_args = linked("Camp A", hub.leaf_port, "camp-a", "pw-a");
    let b_args = linked("Camp B", cable.port, "camp-b", "pw-b");
    camps.start_with("A", &a_args.iter().map(String::as_str).collect::<Vec<_>>());
    camps.start_with("B", &b_args.iter().map(String::as_str).collect::<Vec<_>>());
    let room = support::emergency_room();
    let mut on_a = camps.phone("A").await;
    let mut on_b = camps.phone("B").await;
    on_a.join(room).await;
    on_b.join(room).await;

    let (whole, radio) = support::radio_message(room, "Ana", "Road to the ridge is open");
    on_a.send(&ClientFrame::Publish(whole.clone())).await;
    on_a.send(&radio).await;
    // B's phone gets the radio copy.
    let copy = loop {
        if let ServerFrame::Message(stored) = on_b.recv().await {
            break stored;
        }
    };
    assert_eq!(copy.envelope.kind, Kind::Radio);
    assert_ne!(copy.envelope.id, whole.id);

    // The link comes back: the whole message arrives and replaces the copy, at B and for
    // every phone that reads B's history afterwards.
    cable.mend();
    let arrived = loop {
        if let ServerFrame::Message(stored) = on_b.recv().await {
            break stored;
        }
    };
    assert_eq!(arrived.envelope, whole);
    every_camp_has(&[camps.server("A"), camps.server("B")], room, &[whole.id]).await;

    // The other way round: written at B while both links are up, A may hear the radio copy
    // after the whole message came over IP; either way A holds it once.
    let (answer, answer_radio) = support::radio_message(room, "Ben", "Thanks, on our way");
    on_b.send(&ClientFrame::Publish(answer.clone())).await;
    on_b.send(&answer_radio).await;
    every_camp_has(
        &[camps.server("A"), camps.server("B")],
        room,
        &[whole.id, answer.id],
    )
    .await;
    // And stays so once the radio settled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    every_camp_has(
        &[camps.server("A"), camps.server("B")],
        room,
        &[whole.id, answer.id],
    )
    .await;
}
