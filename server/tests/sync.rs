//! The sync protocol the offline outbox relies on: acknowledgements, cursors, replays,
//! presence and typing, against a real server process and a real SQLite file.

mod support;

use mesh::{ClientFrame, ServerFrame, StoredMessage};
use support::{room, text_message, text_of, Client, TestServer};

/// Reads catch-up batches until `done`, returning the messages and the batch sizes.
async fn read_catch_up(client: &mut Client) -> (Vec<StoredMessage>, Vec<usize>) {
    let mut messages = Vec::new();
    let mut sizes = Vec::new();
    loop {
        match client.recv().await {
            ServerFrame::CatchUp {
                messages: batch,
                done,
                ..
            } => {
                sizes.push(batch.len());
                messages.extend(batch);
                if done {
                    return (messages, sizes);
                }
            }
            other => panic!("expected a catch-up batch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_cursor_brings_only_the_missing_messages_then_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut writer = server.client().await;
    let mut seqs = Vec::new();
    for n in 0..10 {
        seqs.push(
            writer
                .publish(&text_message(camp, "W", &format!("m{n}")))
                .await
                .0,
        );
    }

    let mut reader = server.client().await;
    reader
        .send(&reader.join_frame(camp, Some(seqs[3]), "reader"))
        .await;
    let (missing, _) = read_catch_up(&mut reader).await;
    let texts: Vec<String> = missing.iter().map(|m| text_of(&m.envelope)).collect();
    assert_eq!(texts, ["m4", "m5", "m6", "m7", "m8", "m9"]);

    writer.publish(&text_message(camp, "W", "live")).await;
    match reader.recv().await {
        ServerFrame::Message(m) => assert_eq!(text_of(&m.envelope), "live"),
        other => panic!("expected the live message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_long_absence_catches_up_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut writer = server.client().await;
    // Pipelined: all frames go out before any ack is read, as an outbox sends them.
    let envelopes: Vec<_> = (0..450)
        .map(|n| text_message(camp, "W", &format!("{n}")))
        .collect();
    for envelope in &envelopes {
        writer.send(&ClientFrame::Publish(envelope.clone())).await;
    }
    for envelope in &envelopes {
        match writer.recv().await {
            ServerFrame::Ack {
                id,
                duplicate: false,
                ..
            } => assert_eq!(id, envelope.id, "acks come in order"),
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    let mut reader = server.client().await;
    reader
        .send(&reader.join_frame(camp, Some(0), "reader"))
        .await;
    let (all, sizes) = read_catch_up(&mut reader).await;
    assert_eq!(sizes, [200, 200, 50]);
    let texts: Vec<String> = all.iter().map(|m| text_of(&m.envelope)).collect();
    assert_eq!(texts, (0..450).map(|n| n.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_replayed_outbox_is_stored_once_and_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut reader = server.client().await;
    reader.join(camp).await;

    let outbox: Vec<_> = (0..20)
        .map(|n| text_message(camp, "Ana", &format!("queued {n}")))
        .collect();
    // First attempt: the server stores twelve, then the connection dies before the client
    // records any ack (it reads them here only to know the server is done).
    let mut first = server.client().await;
    for envelope in &outbox[..12] {
        first.send(&ClientFrame::Publish(envelope.clone())).await;
    }
    for _ in 0..12 {
        assert!(matches!(
            first.recv().await,
            ServerFrame::Ack {
                duplicate: false,
                ..
            }
        ));
    }
    drop(first);

    // After reconnecting, the whole outbox is sent again.
    let mut second = server.client().await;
    for envelope in &outbox {
        second.send(&ClientFrame::Publish(envelope.clone())).await;
    }
    let mut duplicates = 0;
    for envelope in &outbox {
        match second.recv().await {
            ServerFrame::Ack { id, duplicate, .. } => {
                assert_eq!(id, envelope.id);
                duplicates += usize::from(duplicate);
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    assert_eq!(duplicates, 12, "the first twelve were already stored");

    let mut got = Vec::new();
    while got.len() < 20 {
        match reader.recv().await {
            ServerFrame::Message(m) => got.push(text_of(&m.envelope)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        got,
        (0..20).map(|n| format!("queued {n}")).collect::<Vec<_>>()
    );
    reader.send(&ClientFrame::Ping { nonce: 2 }).await;
    assert_eq!(
        reader.recv().await,
        ServerFrame::Pong { nonce: 2 },
        "no copies followed"
    );
}

#[tokio::test]
async fn presence_follows_joins_and_disconnects_and_typing_reaches_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");

    let mut ana = server.client().await;
    ana.send(&ana.join_frame(camp, None, "Ana")).await;
    let mut ben = server.client().await;
    let ben_join = ben.join_frame(camp, None, "Ben");
    let ClientFrame::Join {
        member: ben_member, ..
    } = &ben_join
    else {
        unreachable!()
    };
    let ben_sender = ben_member.sender;
    ben.send(&ben_join).await;

    ana.members_are(camp, &["Ana", "Ben"]).await;

    ben.send(&ClientFrame::Typing { room: camp }).await;
    loop {
        match ana.recv_any().await {
            ServerFrame::Typing { sender, .. } => {
                assert_eq!(sender, ben_sender);
                break;
            }
            ServerFrame::Presence { .. }
            | ServerFrame::PresenceChanged { .. }
            | ServerFrame::History { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Ben does not hear his own typing.
    ben.send(&ClientFrame::Ping { nonce: 3 }).await;
    loop {
        match ben.recv_any().await {
            ServerFrame::Pong { nonce: 3 } => break,
            ServerFrame::Typing { .. } => panic!("own typing echoed"),
            _ => continue,
        }
    }

    drop(ben);
    ana.members_are(camp, &["Ana"]).await;
}

/// Issue 15: each change of a room's followers sent the whole list to every member, so 200
/// phones joining cost about 20,000 lists (568 MB). A member is now sent who came and went,
/// and a newcomer the list once: phones joining one by one cost the room about N² entries, not N³/3.
#[tokio::test]
async fn joining_sends_the_others_who_came_not_the_whole_list() {
    const PHONES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "10"]);
    let camp = room("camp of twenty");
    let mut phones: Vec<Client> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for n in 0..PHONES {
        let mut phone = server.client().await;
        names.push(format!("phone {n:02}"));
        phone.send(&phone.join_frame(camp, None, &names[n])).await;
        phones.push(phone);
        // Everyone, the newcomer too, comes to list everyone so far.
        let cards: Vec<&str> = names.iter().map(String::as_str).collect();
        for phone in &mut phones {
            phone.members_are(camp, &cards).await;
        }
    }
    let entries: usize = phones.iter().map(|p| p.presence_entries).sum();
    // Each phone gets the list once (k entries for the k-th) and each later change (one
    // entry; the change after a join names the newcomer to itself too): N·(N+1) at most.
    assert!(
        entries <= PHONES * (PHONES + 1),
        "{entries} member entries sent for {PHONES} joins (whole lists: about {})",
        (1..=PHONES).map(|k| k * k).sum::<usize>()
    );
    // One leaves: each of the others is told that one, not sent the list again. (First the
    // last change, naming the newest phone, is read everywhere.)
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    for phone in &mut phones {
        phone.send(&ClientFrame::Ping { nonce: 1 }).await;
        while phone.recv_any().await != (ServerFrame::Pong { nonce: 1 }) {}
    }
    let before: Vec<usize> = phones.iter().map(|p| p.presence_entries).collect();
    drop(phones.remove(0));
    let cards: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    for (phone, before) in phones.iter_mut().zip(&before[1..]) {
        phone.members_are(camp, &cards).await;
        assert_eq!(phone.presence_entries - before, 1);
    }
}

/// Issue 15, scaled down from the 1,000 phones in 50 rooms for 10 minutes of `./x bench`:
/// phones on several addresses in several rooms, each room written to steadily; every phone
/// gets every message of its room once, and the server's memory does not grow with the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_phones_in_ten_rooms_get_every_message_once_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), &["--phones-per-address", "125"]);
    let soak = support::soak::Soak {
        phones: 100,
        rooms: 10,
        duration: std::time::Duration::from_secs(20),
        every: std::time::Duration::from_millis(200),
    };
    let figures = support::soak::run(&server, &soak).await;
    assert!(figures.sent >= 900, "{} messages stored", figures.sent);
    assert_eq!(
        (figures.delivered, figures.duplicates),
        (figures.due, 0),
        "every message to every phone of its room, once"
    );
    // The first half warms the caches; the second half must not keep growing.
    let half = figures.memory_kb[5];
    let end = *figures.memory_kb.last().unwrap();
    assert!(
        end <= half + 8 * 1024,
        "memory grew from {half} KiB at half time to {end} KiB: {:?}",
        figures.memory_kb
    );
}

/// Resident memory of process `pid` in MiB.
fn rss_mib(pid: u32) -> u64 {
    support::memory_kb(pid, "VmRSS").expect("the server's memory is readable") / 1024
}

#[tokio::test]
async fn clients_that_page_history_and_never_read_cost_bounded_memory_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut writer = server.client().await;
    let text = "x".repeat(3_900);
    for _ in 0..800 {
        writer
            .send(&ClientFrame::Publish(text_message(camp, "Ana", &text)))
            .await;
    }
    let mut acks = 0;
    while acks < 800 {
        if let ServerFrame::Ack { .. } = writer.recv().await {
            acks += 1;
        }
    }
    drop(writer);
    let before = rss_mib(server.pid());
    // Eight clients ask for every history page they may, and never read an answer.
    let mut lurkers = Vec::new();
    for _ in 0..8 {
        let mut lurker = server.client().await;
        lurker.send(&lurker.join_frame(camp, None, "Lurker")).await;
        for _ in 0..64 {
            lurker
                .send(&lurker.history_frame(camp, u64::MAX, mesh::wire::MAX_HISTORY_PAGE))
                .await;
        }
        lurkers.push(lurker);
    }
    let mut peak = before;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(8) {
        peak = peak.max(rss_mib(server.pid()));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!("server memory: {before} MiB before the lurkers, {peak} MiB at most with them");
    assert!(
        peak < 100,
        "the server grew from {before} MiB to {peak} MiB for clients that do not read"
    );
    // The server gives up on them (a send or a write waited too long) and closes them; what
    // they had buffered drains as they finally read.
    for mut lurker in lurkers {
        let closed = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while lurker.next_frame().await.is_some() {}
        })
        .await;
        assert!(closed.is_ok(), "a client that stopped reading is closed");
    }
    // Everyone else is served all along.
    let mut reader = server.client().await;
    let (page, _) = reader.join(camp).await;
    assert!(!page.is_empty());
}
