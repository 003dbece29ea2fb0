//! Call signalling through a real server process: sealed signals reach the followers they
//! are for, never their sender or another room, within limits, and nothing of them is kept.

mod support;

use mesh::call::{CallSignal, Line, Route, Signal, MAX_SIGNAL_BYTES};
use mesh::crypto::NONCE_BYTES;
use mesh::{ClientFrame, ErrorCode, RoomId, ServerFrame};
use support::{identity, room, room_key, Client, TestServer};

/// Joins `room` as `name`'s device (its real identity), skipping the history page.
async fn join_as(client: &mut Client, room: RoomId, name: &str) {
    let ClientFrame::Join {
        after_seq,
        mut member,
        proof,
        ..
    } = client.join_frame(room, None, name)
    else {
        unreachable!()
    };
    member.sender = identity(name).sender();
    client
        .send(&ClientFrame::Join {
            room,
            after_seq,
            member,
            proof,
        })
        .await;
    assert!(matches!(client.recv().await, ServerFrame::History { .. }));
}

fn sealed(name: &str, room: RoomId, from: [u8; 32], to: Option<[u8; 32]>, sdp: &str) -> Vec<u8> {
    CallSignal {
        line: Line::Call([1; 16]),
        signal: Signal::Offer { sdp: sdp.into() },
    }
    .seal(
        &identity(name),
        &room_key(room),
        &Route { room, from, to },
        [7; NONCE_BYTES],
    )
    .unwrap()
}

/// The next call signal `client` receives, opened with the room key: `(from, sender's
/// signal)`.
async fn next_signal(client: &mut Client, name: &str) -> ([u8; 32], CallSignal) {
    loop {
        if let ServerFrame::Signal {
            room,
            from,
            sender,
            direct,
            sealed,
        } = client.recv().await
        {
            assert_eq!(
                sender,
                identity(name).sender(),
                "the server names the sender"
            );
            let to = direct.then_some(client.challenge);
            let route = Route { room, from, to };
            let signal = CallSignal::open(&room_key(room), sender, &route, &sealed)
                .expect("the signal opens for its route");
            return (from, signal);
        }
    }
}

fn sdp_of(signal: &CallSignal) -> &str {
    match &signal.signal {
        Signal::Offer { sdp } => sdp,
        other => panic!("expected an offer, got {other:?}"),
    }
}

#[tokio::test]
async fn signals_reach_the_room_or_one_follower_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("calling camp");
    let elsewhere = room("another camp");
    let mut ana = server.client().await;
    let mut ben = server.client().await;
    let mut cara = server.client().await;
    let mut eve = server.client().await;
    join_as(&mut ana, camp, "Ana").await;
    join_as(&mut ben, camp, "Ben").await;
    join_as(&mut cara, camp, "Cara").await;
    join_as(&mut eve, elsewhere, "Eve").await;

    // To everyone in the room.
    let to_all = sealed("Ana", camp, ana.challenge, None, "v=0 everyone");
    ana.send(&ClientFrame::Signal {
        room: camp,
        to: None,
        sealed: to_all.clone(),
    })
    .await;
    for (client, _) in [(&mut ben, "Ben"), (&mut cara, "Cara")] {
        let (from, signal) = next_signal(client, "Ana").await;
        assert_eq!(from, ana.challenge);
        assert_eq!(sdp_of(&signal), "v=0 everyone");
    }
    // To Ben alone: Cara gets only the next one, to everyone.
    let for_ben = sealed("Ana", camp, ana.challenge, Some(ben.challenge), "v=0 ben");
    ana.send(&ClientFrame::Signal {
        room: camp,
        to: Some(ben.challenge),
        sealed: for_ben,
    })
    .await;
    assert_eq!(sdp_of(&next_signal(&mut ben, "Ana").await.1), "v=0 ben");
    let again = sealed("Ana", camp, ana.challenge, None, "v=0 again");
    ana.send(&ClientFrame::Signal {
        room: camp,
        to: None,
        sealed: again,
    })
    .await;
    assert_eq!(sdp_of(&next_signal(&mut cara, "Ana").await.1), "v=0 again");
    // Ana is not sent her own, and the other room hears nothing: the pings' answers come
    // first.
    for client in [&mut ana, &mut eve] {
        client.send(&ClientFrame::Ping { nonce: 3 }).await;
        assert_eq!(client.recv().await, ServerFrame::Pong { nonce: 3 });
    }

    // Ben replays Ana's signal as his own: the server names him and his connection, so it
    // does not open as Ana's (next_signal would fail), nor as his.
    ben.send(&ClientFrame::Signal {
        room: camp,
        to: None,
        sealed: to_all.clone(),
    })
    .await;
    loop {
        if let ServerFrame::Signal {
            room: got,
            from,
            sender,
            sealed,
            ..
        } = cara.recv().await
        {
            assert_eq!((from, sender), (ben.challenge, identity("Ben").sender()));
            let route = Route {
                room: got,
                from,
                to: None,
            };
            assert!(CallSignal::open(&room_key(camp), sender, &route, &sealed).is_none());
            assert!(
                CallSignal::open(&room_key(camp), identity("Ana").sender(), &route, &sealed)
                    .is_none()
            );
            break;
        }
    }

    // Nothing of a signal is stored: no file in the data folder holds its bytes.
    drop((ana, ben, cara, eve));
    server.stop();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(32).any(|w| w == &to_all[..32]),
                "{} holds a signal",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn signals_outside_a_followed_room_oversized_or_flooding_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let camp = room("quiet camp");
    let mut ana = server.client().await;
    let mut ben = server.client().await;
    join_as(&mut ben, camp, "Ben").await;

    // Ana does not follow the room: refused, Ben hears nothing.
    ana.send(&ClientFrame::Signal {
        room: camp,
        to: None,
        sealed: sealed("Ana", camp, ana.challenge, None, "v=0"),
    })
    .await;
    assert!(matches!(
        ana.recv().await,
        ServerFrame::Error {
            code: ErrorCode::RoomKeyRequired,
            ..
        }
    ));
    join_as(&mut ana, camp, "Ana").await;
    // Over the signal limit (but within a frame): refused with the limit named.
    ana.send(&ClientFrame::Signal {
        room: camp,
        to: None,
        sealed: vec![0; MAX_SIGNAL_BYTES + 1],
    })
    .await;
    match ana.recv().await {
        ServerFrame::Error {
            code: ErrorCode::LimitReached,
            detail,
            ..
        } => assert!(detail.contains(&MAX_SIGNAL_BYTES.to_string()), "{detail}"),
        other => panic!("expected the limit, got {other:?}"),
    }
    // A flood: the first 60 pass, then the rest wait.
    let one = sealed("Ana", camp, ana.challenge, None, "v=0 flood");
    for _ in 0..100 {
        ana.send(&ClientFrame::Signal {
            room: camp,
            to: None,
            sealed: one.clone(),
        })
        .await;
    }
    match ana.recv().await {
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(_),
            ..
        } => {}
        other => panic!("expected a rate limit, got {other:?}"),
    }
    let mut heard = 0;
    ben.send(&ClientFrame::Ping { nonce: 1 }).await;
    loop {
        match ben.recv().await {
            ServerFrame::Signal { .. } => heard += 1,
            ServerFrame::Pong { nonce: 1 } if heard >= 60 => break,
            ServerFrame::Pong { .. } => ben.send(&ClientFrame::Ping { nonce: 1 }).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((60..75).contains(&heard), "{heard} signals passed");
}
