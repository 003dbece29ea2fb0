//! Four real servers, A to D, each on a simulated radio (`radiosim`, real
//! pseudo-terminals) in a chain where each hears only its neighbours. A phone on A writes to
//! a phone on D, which must get it exactly once, and D's reply must come back, also with a
//! fifth of every link's frames lost.

mod support;

use std::time::Duration;

use mesh::serial::Protocol;
use mesh::{ClientFrame, Envelope, Kind, MessageId, ServerFrame};
use support::camps::{chain_topology, Camps};
use support::*;

/// Fast radios, so the tests take seconds.
const BITRATE: u32 = 20_000;
/// Three rounds of summaries (each every 30 to 90 s) and catch-up.
const CATCH_UP_ROUNDS: Duration = Duration::from_secs(270);

/// Sends a message and its radio form from `client`, waiting for the store's ack.
async fn send(client: &mut Client, envelope: &Envelope, radio: &ClientFrame) {
    client.send(&ClientFrame::Publish(envelope.clone())).await;
    client.send(radio).await;
    loop {
        if let ServerFrame::Ack { id, .. } = client.recv().await {
            if id == envelope.id {
                return;
            }
        }
    }
}

/// Collects radio messages arriving at `client` until `want` texts are in or `limit` passes;
/// returns every text seen (with repeats, if any).
async fn collect_radio(client: &mut Client, want: usize, limit: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut texts = Vec::new();
    while texts.len() < want {
        let Ok(frame) = tokio::time::timeout_at(deadline, client.next_or_quiet()).await else {
            break;
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            // Quiet for a while: keep waiting until the deadline.
            Ok(None) => continue,
            Err(()) => panic!("the server closed the phone's connection"),
        };
        // The phone's own published messages come back too; count only radio arrivals.
        if let ServerFrame::Message(stored) = frame {
            if stored.envelope.kind == Kind::Radio {
                texts.push(radio_text_of(&stored.envelope).1);
            }
        }
    }
    texts
}

/// Reads (and drops) what `client` is sent, answering the server's pings, until cancelled.
async fn keep_reading(client: &mut Client) {
    while client.next_or_quiet().await.is_ok() {}
    panic!("the server closed the phone's connection");
}

/// Waits for the `Relayed` notice of `id` on `client`.
async fn relayed(client: &mut Client, id: MessageId) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, client.next_frame()).await {
        if matches!(frame, ServerFrame::Relayed { id: got, .. } if got == id) {
            return true;
        }
    }
    false
}

/// A running chain A–D and a phone in the Emergency room at each end, radios ready.
struct Chain {
    camps: Camps,
    room: mesh::RoomId,
    on_a: Client,
    on_d: Client,
}

async fn start_chain(loss: f64, protocol: Protocol) -> Chain {
    let camps = Camps::chain(protocol, BITRATE, loss, 7);
    let room = emergency_room();
    let mut on_a = camps.phone("A").await;
    let mut on_d = camps.phone("D").await;
    on_a.join(room).await;
    on_d.join(room).await;
    Chain {
        camps,
        room,
        on_a,
        on_d,
    }
}

async fn chain_round_trip(protocol: Protocol) {
    let Chain {
        camps,
        room,
        mut on_a,
        mut on_d,
    } = start_chain(0.0, protocol).await;

    let (hello, hello_radio) = radio_message(room, "Ana", "Water at camp A, 40 litres");
    send(&mut on_a, &hello, &hello_radio).await;
    let got = collect_radio(&mut on_d, 1, Duration::from_secs(20)).await;
    assert_eq!(got, ["Water at camp A, 40 litres"]);
    assert!(relayed(&mut on_a, hello.id).await, "A hears B relay it");

    let (reply, reply_radio) = radio_message(room, "Dev", "Thanks, sending two people");
    send(&mut on_d, &reply, &reply_radio).await;
    let back = collect_radio(&mut on_a, 1, Duration::from_secs(20)).await;
    assert_eq!(back, ["Thanks, sending two people"]);

    // Exactly once: nothing more arrives at D while the chain settles (retries, echoes).
    let extra = collect_radio(&mut on_d, 1, Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "D got a message twice: {extra:?}");
    // B and C stored it too, once, so their own phones see it.
    let mut on_b = camps.server("B").client().await;
    let (history, _) = on_b.join(room).await;
    let texts: Vec<String> = history
        .iter()
        .map(|m| radio_text_of(&m.envelope).1)
        .collect();
    assert_eq!(
        texts,
        ["Water at camp A, 40 litres", "Thanks, sending two people"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiss_radios_carry_a_message_from_a_to_d_and_the_reply_back() {
    chain_round_trip(Protocol::Kiss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_radios_carry_a_message_from_a_to_d_and_the_reply_back() {
    chain_round_trip(Protocol::Line).await;
}

/// Five messages from `from` in `room`; what was sent, and the radio texts `to` got (in the
/// order they came, and anything arriving within 3 s more).
async fn five_across(
    from: &mut Client,
    to: &mut Client,
    room: mesh::RoomId,
) -> (Vec<String>, Vec<String>) {
    let mut sent = Vec::new();
    for n in 0..5 {
        let text = format!("Status {n} from A: all well");
        let (envelope, radio) = radio_message(room, "Ana", &text);
        send(from, &envelope, &radio).await;
        sent.push(text);
    }
    // Usually all are in within seconds. A frame lost on one hop three times (a relay's two
    // retries) waits for the next hop's summary, sent every 30 to 90 s, whose answer can be
    // lost too: the wait allows for three such rounds.
    // The sender's phone keeps reading meanwhile, as a page does: a phone that stops reading
    // answers no pings and the server drops it after a minute.
    let mut got = tokio::select! {
        got = collect_radio(to, sent.len(), CATCH_UP_ROUNDS) => got,
        () = keep_reading(from) => unreachable!("keeps reading until cancelled"),
    };
    got.extend(collect_radio(to, 1, Duration::from_secs(3)).await);
    (sent, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_all_frames_lost_every_message_still_arrives_once() {
    let Chain {
        // Bound so the servers live until the end of the test.
        camps: _camps,
        room,
        mut on_a,
        mut on_d,
    } = start_chain(0.2, Protocol::Kiss).await;
    let (sent, mut got) = five_across(&mut on_a, &mut on_d, room).await;
    got.sort();
    assert_eq!(got, sent, "each message arrives exactly once");

    let (reply, reply_radio) = radio_message(room, "Dev", "Got all five");
    send(&mut on_d, &reply, &reply_radio).await;
    let back = collect_radio(&mut on_a, 1, CATCH_UP_ROUNDS).await;
    assert_eq!(back, ["Got all five"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_while_the_radio_is_away_goes_out_when_it_is_back_even_after_a_restart() {
    let mut camps = Camps::new(Protocol::Kiss, BITRATE);
    let room = emergency_room();
    // No radio plugged in yet: the message is stored and waits.
    let mut on_a = camps.start("A").client().await;
    on_a.join(room).await;
    let (envelope, radio) = radio_message(room, "Ana", "Written before the radio came");
    send(&mut on_a, &envelope, &radio).await;
    drop(on_a);
    camps.stop("A");

    // A neighbour listens; then A's radio is plugged in and the laptop restarted. (Started
    // the other way round, A's first sends could all go out while B's server still starts on
    // a busy machine, and B would wait for A's next summary, up to a minute, or its resend.)
    let two_camps = chain_topology(BITRATE, 0.0).replace("link B C\nlink C D\n", "");
    camps.start_radios(&two_camps, 7);
    let mut on_b = camps.start("B").client().await;
    on_b.join(room).await;
    camps.start("A");
    let got = collect_radio(&mut on_b, 1, Duration::from_secs(30)).await;
    assert_eq!(got, ["Written before the radio came"]);
}

#[tokio::test]
async fn radio_forms_of_messages_never_published_are_refused_and_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path());
    let room = emergency_room();
    let mut mallory = server.client().await;
    mallory.join(room).await;
    for n in 0..50u8 {
        let (_, radio) = radio_message(room, "Mallory", &format!("ghost {n}"));
        mallory.send(&radio).await;
        match mallory.recv().await {
            ServerFrame::Error {
                code: mesh::ErrorCode::LimitReached,
                detail,
                ..
            } => assert!(detail.contains("published"), "{detail}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // A real message's radio form is taken and kept until a radio carries it.
    let (envelope, radio) = radio_message(room, "Ana", "real");
    send(&mut mallory, &envelope, &radio).await;
    let kept = || {
        let db = rusqlite::Connection::open(dir.path().join("messages.sqlite3")).unwrap();
        db.query_row("SELECT COUNT(*) FROM radio_outbox", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while kept() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept(), 1, "only the published message's radio form");
}

/// Camps A and C, each a laptop with a stock Meshtastic node on its USB port (simulated,
/// real pseudo-terminals), and a stock node B between them that runs no FieldMesh and does
/// not even hold the FieldMesh channel: Meshtastic floods the packets through B.
fn meshtastic_camps(loss: f64) -> Camps {
    let mut camps = Camps::new(Protocol::Meshtastic, BITRATE);
    camps.start_radios(
        &format!(
            "bitrate {BITRATE}\nduty-cycle 1\ndefault loss={loss} latency=10\n\
             node B channels=LongFast\nlink A B\nlink B C\n"
        ),
        7,
    );
    for name in ["A", "C"] {
        camps.start_with(name, &["--meshtastic-channel", "FieldMesh"]);
    }
    camps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshtastic_nodes_carry_messages_between_camps_through_a_stock_node() {
    let camps = meshtastic_camps(0.0);
    let room = emergency_room();
    let mut on_a = camps.phone("A").await;
    let mut on_c = camps.phone("C").await;
    on_a.join(room).await;
    on_c.join(room).await;
    let (hello, hello_radio) = radio_message(room, "Ana", "Water at camp A, 40 litres");
    send(&mut on_a, &hello, &hello_radio).await;
    assert_eq!(
        collect_radio(&mut on_c, 1, Duration::from_secs(20)).await,
        ["Water at camp A, 40 litres"]
    );
    // Confirmed end to end: C's FieldMesh acknowledged it (B runs none).
    assert!(relayed(&mut on_a, hello.id).await, "A hears C confirm it");
    let (reply, reply_radio) = radio_message(room, "Cara", "Thanks, two people coming");
    send(&mut on_c, &reply, &reply_radio).await;
    assert_eq!(
        collect_radio(&mut on_a, 1, Duration::from_secs(20)).await,
        ["Thanks, two people coming"]
    );
    let extra = collect_radio(&mut on_c, 1, Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "C got a message twice: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_meshtastic_with_a_fifth_of_all_packets_lost_messages_arrive_once_in_order() {
    let camps = meshtastic_camps(0.2);
    let room = emergency_room();
    let mut on_a = camps.phone("A").await;
    let mut on_c = camps.phone("C").await;
    on_a.join(room).await;
    on_c.join(room).await;
    let (sent, got) = five_across(&mut on_a, &mut on_c, room).await;
    assert_eq!(got, sent, "each message once, in the order A wrote them");
}

/// Someone with a stock Meshtastic node and its app: FieldMesh's own host code on node
/// `B`'s TCP port, sending and reading plain text on the FieldMesh channel.
struct MeshtasticPerson {
    stream: tokio::net::TcpStream,
    host: Box<dyn mesh::serial::Framing>,
}

impl MeshtasticPerson {
    async fn connect(address: std::net::SocketAddr) -> Self {
        let (stream, host) = radiosim::meshtastic::connect_host(address, "FieldMesh", 21)
            .await
            .expect("the node answers the handshake");
        Self { stream, host }
    }

    async fn say(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        let bytes = self.host.encode_text(text).unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// The texts heard within `limit`, as they came (only the first, with `first`).
    async fn texts_within(&mut self, limit: Duration, first: bool) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut texts = Vec::new();
        let mut buffer = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(read) = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await
        {
            let n = read.unwrap();
            assert!(n > 0, "the node stays connected");
            self.host.decode(&buffer[..n]);
            for event in self.host.take_events() {
                if let mesh::serial::DeviceEvent::Text(text) = event {
                    texts.push(text.text);
                }
            }
            if first && !texts.is_empty() {
                break;
            }
        }
        texts
    }

    async fn next_text(&mut self) -> String {
        let texts = self.texts_within(Duration::from_secs(20), true).await;
        texts.into_iter().next().expect("a text within 20 s")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_meshtastic_text_meets_the_channels_room_and_fieldmeshs_own_rooms_never_go_out_as_text(
) {
    let mut camps = Camps::new(Protocol::Meshtastic, BITRATE);
    camps.start_radios(
        &format!("bitrate {BITRATE}\nduty-cycle 1\nlink A B latency=10\n"),
        7,
    );
    camps.start_with("A", &["--meshtastic-channel", "FieldMesh"]);
    let mut ana = camps.phone("A").await;
    let mut person = MeshtasticPerson::connect(camps.radios().tcp_address("B").unwrap()).await;
    let channel_room = keyed_room(mesh::crypto::RoomKey::meshtastic_channel("FieldMesh"));
    ana.join(channel_room).await;

    // Someone on the channel writes: it is in the channel's room at camp A, signed with their
    // node's name and how many hops it came.
    person.say("Water at the school, 40 litres").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let heard = loop {
        let frame = tokio::time::timeout_at(deadline, ana.next_frame())
            .await
            .expect("the text reaches the room within 20 s");
        if let Some(ServerFrame::Message(stored)) = frame {
            break radio_text_of(&stored.envelope);
        }
    };
    assert_eq!(
        heard,
        (
            "B · 0 hops".to_string(),
            "Water at the school, 40 litres".to_string()
        )
    );

    // Ana answers in the room: it goes out as plain Meshtastic text, with her name.
    let (reply, reply_radio) = radio_message(channel_room, "Ana", "On our way with the truck");
    send(&mut ana, &reply, &reply_radio).await;
    assert_eq!(person.next_text().await, "Ana: On our way with the truck");

    // FieldMesh's own rooms, private or the public Emergency room, only ever travel sealed.
    // (Another phone, each in one room: Ana's connection still gets her answer's echo.)
    let private = room("camp A private");
    let mut bea = camps.phone("A").await;
    bea.join(private).await;
    let (secret, secret_radio) = radio_message(private, "Bea", "The store code is 4711");
    send(&mut bea, &secret, &secret_radio).await;
    let emergency = emergency_room();
    let mut cem = camps.phone("A").await;
    cem.join(emergency).await;
    let (public, public_radio) = radio_message(emergency, "Cem", "Road to the north is open");
    send(&mut cem, &public, &public_radio).await;
    let texts = person.texts_within(Duration::from_secs(5), false).await;
    assert!(
        texts.is_empty(),
        "FieldMesh rooms went out as plain text: {texts:?}"
    );
}
