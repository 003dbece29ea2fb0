//! The chat protocol against a real server process, a real SQLite file and real WebSockets.

mod support;

use mesh::{ClientFrame, ErrorCode, ServerFrame, MAX_BODY_BYTES, MAX_FRAME_BYTES};
use support::{room, text_message, text_of, TestServer};

#[tokio::test]
async fn second_client_in_a_room_sees_the_first_clients_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp north");
    let mut ana = server.client().await;
    let mut ben = server.client().await;
    ana.join(camp).await;
    ben.join(camp).await;

    let message = text_message(camp, "Ana", "water at the school");
    let (seq, duplicate) = ana.publish(&message).await;
    assert!(!duplicate);

    match ben.recv().await {
        ServerFrame::Message(stored) => {
            assert_eq!(stored.seq, seq);
            assert_eq!(stored.envelope, message);
        }
        other => panic!("expected the message, got {other:?}"),
    }
}

#[tokio::test]
async fn rooms_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let mut north = server.client().await;
    let mut south = server.client().await;
    north.join(room("north")).await;
    south.join(room("south")).await;
    south
        .publish(&text_message(room("south"), "Sam", "only for the south"))
        .await;
    north.send(&ClientFrame::Ping { nonce: 5 }).await;
    // The ping's answer is the next frame: nothing from the south room came first.
    assert_eq!(north.recv().await, ServerFrame::Pong { nonce: 5 });
}

#[tokio::test]
async fn a_repeated_id_is_stored_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut ana = server.client().await;
    let mut ben = server.client().await;
    ben.join(camp).await;

    let message = text_message(camp, "Ana", "once only");
    let (first_seq, first_dup) = ana.publish(&message).await;
    let (again_seq, again_dup) = ana.publish(&message).await;
    // A resend from a fresh connection (as after a reconnect) is also recognised.
    let (third_seq, third_dup) = server.client().await.publish(&message).await;
    assert!(!first_dup && again_dup && third_dup);
    assert_eq!((first_seq, first_seq), (again_seq, third_seq));

    assert!(matches!(ben.recv().await, ServerFrame::Message(m) if m.envelope.id == message.id));
    ben.send(&ClientFrame::Ping { nonce: 1 }).await;
    assert_eq!(
        ben.recv().await,
        ServerFrame::Pong { nonce: 1 },
        "no second copy was delivered"
    );

    let (history, _) = server.client().await.join(camp).await;
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn history_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let camp = room("camp");
    let server = TestServer::start(dir.path());
    let mut ana = server.client().await;
    for n in 0..5 {
        ana.publish(&text_message(camp, "Ana", &format!("message {n}")))
            .await;
    }
    drop(ana);
    server.stop();

    let server = TestServer::start(dir.path());
    let (history, has_more) = server.client().await.join(camp).await;
    assert!(!has_more);
    let texts: Vec<String> = history.iter().map(|m| text_of(&m.envelope)).collect();
    assert_eq!(
        texts,
        (0..5).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn history_pages_backwards_to_the_first_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut ana = server.client().await;
    for n in 0..120 {
        ana.publish(&text_message(camp, "Ana", &format!("m{n}")))
            .await;
    }

    let mut reader = server.client().await;
    let (mut shown, mut has_more) = reader.join(camp).await;
    assert_eq!(shown.len(), 50, "the default page on join");
    while has_more {
        reader
            .send(&reader.history_frame(camp, shown[0].seq, 40))
            .await;
        let ServerFrame::History {
            messages,
            has_more: more,
            ..
        } = reader.recv().await
        else {
            panic!("expected a history page")
        };
        assert!(!messages.is_empty());
        has_more = more;
        shown.splice(0..0, messages);
    }
    let texts: Vec<String> = shown.iter().map(|m| text_of(&m.envelope)).collect();
    assert_eq!(texts, (0..120).map(|n| format!("m{n}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_the_connection_and_store_stay_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut ana = server.client().await;
    // Ana does not follow the room, so the only frames she gets answer what she sends.
    ana.publish(&text_message(camp, "Ana", "before")).await;

    ana.send_raw(vec![1; MAX_FRAME_BYTES + 1]).await;
    match ana.recv().await {
        ServerFrame::Error {
            code: ErrorCode::FrameTooLarge,
            detail,
            id: None,
            ..
        } => {
            assert!(
                detail.contains(&MAX_FRAME_BYTES.to_string()),
                "the error names the limit: {detail}"
            );
        }
        other => panic!("expected a frame-too-large error, got {other:?}"),
    }

    // A frame within the frame limit whose body breaks the body limit names the message.
    let mut big = text_message(camp, "Ana", "x");
    big.body = vec![0; MAX_BODY_BYTES + 1];
    ana.send(&ClientFrame::Publish(big.clone())).await;
    assert!(matches!(
        ana.recv().await,
        ServerFrame::Error { code: ErrorCode::BodyTooLarge, id: Some(id), .. } if id == big.id
    ));

    // Garbage, an unknown version and a text frame: each refused with a clear error.
    ana.send_raw(vec![1, 0x7f, 0x7f]).await;
    assert!(matches!(
        ana.recv().await,
        ServerFrame::Error {
            code: ErrorCode::Malformed,
            ..
        }
    ));
    ana.send_raw(vec![9, 0]).await;
    assert!(matches!(
        ana.recv().await,
        ServerFrame::Error {
            code: ErrorCode::UnknownVersion,
            ..
        }
    ));
    ana.send_text("hello").await;
    assert!(matches!(
        ana.recv().await,
        ServerFrame::Error {
            code: ErrorCode::TextFrame,
            ..
        }
    ));

    // The same connection still works, and the store holds exactly the good messages.
    ana.publish(&text_message(camp, "Ana", "after")).await;
    let (history, _) = server.client().await.join(camp).await;
    let texts: Vec<String> = history.iter().map(|m| text_of(&m.envelope)).collect();
    assert_eq!(texts, ["before", "after"]);

    // Beyond the transport limit the connection is closed, and the server carries on.
    let sent = ana
        .try_send_raw(vec![1; server::ws::TRANSPORT_MAX_BYTES + 1])
        .await;
    assert!(
        sent.is_err() || ana.closed().await,
        "the connection was closed"
    );
    let (history, _) = server.client().await.join(camp).await;
    assert_eq!(history.len(), 2);
}

#[tokio::test]
async fn a_slow_reader_still_gets_every_message_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut reader = server.client().await;
    reader.join(camp).await;
    // The reader does not read while the writer publishes. (Falling behind the live backlog
    // is covered by `ws::tests::a_lagging_follower_catches_up_from_the_store`.)
    let mut writer = server.client().await;
    let total = 300;
    let filler = "x".repeat(1000);
    for n in 0..total {
        writer
            .publish(&text_message(camp, "W", &format!("{n} {filler}")))
            .await;
    }
    let mut got = Vec::new();
    while got.len() < total {
        match reader.recv().await {
            ServerFrame::Message(m) => {
                got.push(text_of(&m.envelope).split_once(' ').unwrap().0.to_string())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, (0..total).map(|n| n.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn sigterm_during_a_burst_exits_cleanly_and_every_acknowledged_message_survives() {
    let dir = tempfile::tempdir().unwrap();
    let camp = room("camp");
    let server = TestServer::start(dir.path());
    let mut ana = server.client().await;
    let outbox: Vec<_> = (0..300)
        .map(|n| text_message(camp, "Ana", &format!("{n}")))
        .collect();
    for envelope in &outbox {
        ana.send(&ClientFrame::Publish(envelope.clone())).await;
    }
    // Stop the server while the burst is being stored.
    assert!(matches!(ana.recv().await, ServerFrame::Ack { .. }));
    let stopping = std::thread::spawn(move || server.stop());
    let mut acknowledged = 1;
    while let Some(frame) = ana.next_frame().await {
        if matches!(frame, ServerFrame::Ack { .. }) {
            acknowledged += 1;
        }
    }
    stopping.join().expect("the server exited cleanly");

    let server = TestServer::start(dir.path());
    let mut reader = server.client().await;
    reader
        .send(&reader.join_frame(camp, Some(0), "reader"))
        .await;
    let mut stored = 0;
    loop {
        match reader.recv().await {
            ServerFrame::CatchUp { messages, done, .. } => {
                stored += messages.len();
                if done {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        stored >= acknowledged,
        "{acknowledged} acknowledged, {stored} stored"
    );
}

#[tokio::test]
async fn forged_and_altered_messages_are_refused_with_a_clear_error_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp");
    let mut mallory = server.client().await;

    // Signed by Mallory, claiming to be from Ana.
    let mut forged = text_message(camp, "Mallory", "meet at the bridge");
    forged.sender = support::identity("Ana").sender();
    // Ana's own message, with one bit of the sealed body flipped on the way.
    let mut altered = text_message(camp, "Ana", "meet at the school");
    altered.body[0] ^= 1;
    for envelope in [&forged, &altered] {
        mallory.send(&ClientFrame::Publish(envelope.clone())).await;
        match mallory.recv().await {
            ServerFrame::Error {
                code: ErrorCode::BadSignature,
                id: Some(id),
                detail,
                ..
            } => {
                assert_eq!(id, envelope.id);
                assert!(detail.contains("signature"), "{detail}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let (history, _) = server.client().await.join(camp).await;
    assert!(history.is_empty(), "nothing forged or altered was stored");
}

#[tokio::test]
async fn a_flood_of_forgeries_is_rate_limited_before_any_signature_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("flood");
    let mut mallory = server.client().await;
    // One forgery, reused with fresh ids: each would cost the server a signature check.
    let mut forged = text_message(camp, "Mallory", "noise");
    forged.sender = support::identity("Ana").sender();
    const SENT: usize = 2_300;
    for n in 0..SENT {
        let mut envelope = forged.clone();
        envelope.id.0[..8].copy_from_slice(&(n as u64).to_le_bytes());
        mallory.send(&ClientFrame::Publish(envelope)).await;
    }
    let (mut bad_signature, mut rate_limited) = (0, 0);
    while bad_signature + rate_limited < SENT {
        match mallory.recv().await {
            ServerFrame::Error {
                code: ErrorCode::BadSignature,
                ..
            } => bad_signature += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            } => rate_limited += 1,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // The burst allowance (2,000) pays for checks; everything past it is refused unchecked.
    assert!(bad_signature <= 2_000 + 40, "{bad_signature} checked");
    assert!(
        rate_limited >= SENT - 2_040,
        "{rate_limited} refused by rate"
    );
}

#[tokio::test]
async fn a_message_id_squatted_in_another_room_does_not_hide_the_real_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let (camp, elsewhere) = (room("camp squat"), room("elsewhere squat"));
    let mut ben = server.client().await;
    ben.join(camp).await;
    let real = text_message(camp, "Ana", "the bridge is out");
    // Mallory learned the id and stores his own message under it first, in another room.
    let mut mallory = server.client().await;
    let squat = support::text_message_with_id(elsewhere, "Mallory", "mine now", real.id);
    assert!(!mallory.publish(&squat).await.1, "stored as his own");
    // Ana's message is stored and delivered, not taken for a duplicate.
    let mut ana = server.client().await;
    let (_, duplicate) = ana.publish(&real).await;
    assert!(!duplicate, "stored as new");
    loop {
        if let ServerFrame::Message(message) = ben.recv().await {
            assert_eq!(message.envelope, real);
            break;
        }
    }
    // Other bytes under Ana's id in her own room are refused, never acknowledged.
    let other = support::text_message_with_id(camp, "Mallory", "a different text", real.id);
    mallory.send(&ClientFrame::Publish(other)).await;
    match mallory.recv().await {
        ServerFrame::Error {
            code: ErrorCode::IdConflict,
            id: Some(id),
            ..
        } => assert_eq!(id, real.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watcher_gets_the_unread_count_new_messages_and_presence_but_no_history_or_typing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("camp watched");
    let mut ana = server.client().await;
    ana.join(camp).await;
    let mut seqs = Vec::new();
    for text in ["one", "two", "three"] {
        seqs.push(ana.publish(&text_message(camp, "Ana", text)).await.0);
    }
    // Ben's own message after his read mark is not unread for him.
    let mut ben = server.client().await;
    ben.publish(&text_message(camp, "Ben", "mine")).await;

    let ClientFrame::Join { mut member, .. } = ben.join_frame(camp, None, "Ben") else {
        unreachable!()
    };
    member.sender = support::identity("Ben").sender();
    let watch = ClientFrame::Watch {
        room: camp,
        read_seq: Some(seqs[0]),
        member,
        proof: support::proof(camp, &ben.challenge),
    };
    ben.send(&watch).await;
    match ben.recv().await {
        ServerFrame::Unread {
            room,
            count,
            newest,
        } => {
            assert_eq!(room, camp);
            assert_eq!(count, 2, "two of Ana's messages came after the read mark");
            assert_eq!(text_of(&newest.expect("the newest").envelope), "three");
        }
        other => panic!("expected the unread count, got {other:?}"),
    }
    // Ana sees Ben among the room's members.
    ana.members_are(camp, &["Ben", "tester"]).await;
    // Ana's typing is not sent to a watcher; her next message is, once.
    ana.send(&ClientFrame::Typing { room: camp }).await;
    let four = ana.publish(&text_message(camp, "Ana", "four")).await.0;
    loop {
        match ben.recv_any().await {
            ServerFrame::Message(stored) => {
                assert_eq!(
                    (stored.seq, text_of(&stored.envelope).as_str()),
                    (four, "four")
                );
                break;
            }
            ServerFrame::Typing { .. } => panic!("a watcher is not sent typing"),
            ServerFrame::Presence { .. }
            | ServerFrame::PresenceChanged { .. }
            | ServerFrame::Radio(_)
            | ServerFrame::Camp { .. } => {}
            other => panic!("expected the new message, got {other:?}"),
        }
    }
    ben.send(&ClientFrame::Ping { nonce: 1 }).await;
    assert_eq!(
        ben.recv().await,
        ServerFrame::Pong { nonce: 1 },
        "nothing else came"
    );

    // Without the room's key, nothing of the room.
    let mut eve = server.client().await;
    let ClientFrame::Join { member, .. } = eve.join_frame(camp, None, "Eve") else {
        unreachable!()
    };
    eve.send(&ClientFrame::Watch {
        room: camp,
        read_seq: None,
        member,
        proof: support::proof(room("another camp"), &eve.challenge),
    })
    .await;
    match eve.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::RoomKeyRequired),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
