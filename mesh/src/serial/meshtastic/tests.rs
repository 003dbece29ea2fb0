use super::proto::{from_radio::Payload as From, to_radio::Payload as To, *};
use super::*;
use crate::serial::TextError;

const ME: u32 = 0xA1B2_C3D4;
const OTHER: u32 = 0x0BAD_CAFE;

fn from_radio(payload: From) -> Vec<u8> {
    stream::frame(
        &FromRadio {
            id: 0,
            payload: Some(payload),
        }
        .encode_to_vec(),
    )
}

/// What the host wrote, as `ToRadio` messages (wake bytes skipped).
fn to_radio(bytes: &[Vec<u8>]) -> Vec<To> {
    let mut decoder = StreamDecoder::new();
    for chunk in bytes {
        decoder.push(chunk);
    }
    std::iter::from_fn(|| decoder.next_frame())
        .map(|body| ToRadio::decode(body.as_slice()).unwrap().payload.unwrap())
        .collect()
}

fn nonce_of(bytes: &[Vec<u8>]) -> u32 {
    match to_radio(bytes).as_slice() {
        [To::WantConfigId(nonce)] => *nonce,
        other => panic!("expected want_config_id, got {other:?}"),
    }
}

fn channel(index: i32, name: &str, role: i32) -> Vec<u8> {
    from_radio(From::Channel(Channel {
        index,
        settings: Some(ChannelSettings {
            psk: vec![1],
            name: name.into(),
        }),
        role,
    }))
}

fn node(num: u32, name: &str, hops: Option<u32>) -> Vec<u8> {
    from_radio(From::NodeInfo(NodeInfo {
        num,
        user: Some(User {
            long_name: name.into(),
            ..Default::default()
        }),
        hops_away: hops,
        ..Default::default()
    }))
}

/// A node's whole answer to the handshake `nonce`.
fn answer(nonce: u32) -> Vec<u8> {
    let mut bytes = b"DEBUG | 12:00:01 [Serial] client connected\r\n".to_vec();
    bytes.extend(from_radio(From::MyInfo(MyNodeInfo { my_node_num: ME })));
    bytes.extend(from_radio(From::Metadata(DeviceMetadata {
        firmware_version: "2.6.11".into(),
        role: 0,
    })));
    bytes.extend(node(ME, "Camp A base", Some(0)));
    bytes.extend(node(OTHER, "Ridge relay", Some(0)));
    bytes.extend(node(0x1234_5678, "", Some(2)));
    bytes.extend(from_radio(From::Config(Config {
        section: Some(config::Section::Lora(LoRaConfig {
            hop_limit: 5,
            region: 3,
            ..Default::default()
        })),
    })));
    bytes.extend(channel(0, "", 1));
    bytes.extend(channel(1, "FieldMesh", 2));
    bytes.extend(channel(2, "", 0));
    bytes.extend(from_radio(From::ConfigCompleteId(nonce)));
    bytes
}

fn connected(choice: ChannelChoice) -> Meshtastic {
    let mut radio = Meshtastic::new(choice, 7);
    let opening = radio.configure();
    assert_eq!(opening[0], vec![START2; 32], "wake bytes first");
    let nonce = nonce_of(&opening[1..]);
    assert!(radio.decode(&answer(nonce)).is_empty());
    radio
}

fn packet(from: u32, channel: u32, portnum: i32, payload: &[u8], hops: (u32, u32)) -> Vec<u8> {
    from_radio(From::Packet(MeshPacket {
        from,
        to: BROADCAST,
        channel,
        id: 99,
        hop_start: hops.0,
        hop_limit: hops.1,
        payload: Some(mesh_packet::Payload::Decoded(Data {
            portnum,
            payload: payload.to_vec(),
            want_response: false,
        })),
        ..Default::default()
    }))
}

#[test]
fn the_handshake_ends_with_the_number_asked_and_says_what_the_node_is() {
    let mut radio = Meshtastic::new(ChannelChoice::Name("fieldmesh".into()), 7);
    let nonce = nonce_of(&radio.configure()[1..]);
    assert!(nonce != 0 && !SPECIAL_CONFIG_IDS.contains(&nonce));
    assert_eq!(radio.readiness(), Readiness::Waiting);
    assert!(
        radio.encode(b"too early").is_empty(),
        "nothing before the handshake"
    );
    // An answer to someone else's handshake does not end ours.
    let mut bytes = answer(nonce);
    let end = bytes.len() - from_radio(From::ConfigCompleteId(nonce)).len();
    bytes.truncate(end);
    bytes.extend(from_radio(From::ConfigCompleteId(nonce ^ 1)));
    radio.decode(&bytes);
    assert_eq!(radio.readiness(), Readiness::Waiting);
    radio.decode(&from_radio(From::ConfigCompleteId(nonce)));
    let Readiness::Ready(Some(detail)) = radio.readiness() else {
        panic!("not ready: {:?}", radio.readiness())
    };
    assert_eq!(
        detail,
        "Meshtastic node \"Camp A base\" (!a1b2c3d4, firmware 2.6.11), channel FieldMesh (#1), \
         2 other nodes known, 1 heard directly"
    );
    assert_eq!(radio.my_node(), Some(ME));
    assert_eq!(radio.name_of(OTHER), "Ridge relay");
    assert_eq!(radio.name_of(0x1234_5678), "!12345678");
}

#[test]
fn a_whole_handshake_split_anywhere_gives_the_same_node() {
    let mut first = Meshtastic::new(ChannelChoice::Primary, 3);
    let nonce = nonce_of(&first.configure()[1..]);
    let bytes = answer(nonce);
    for cut in (0..bytes.len()).step_by(7) {
        let mut radio = Meshtastic::new(ChannelChoice::Primary, 3);
        radio.configure();
        radio.decode(&bytes[..cut]);
        radio.decode(&bytes[cut..]);
        assert!(
            matches!(radio.readiness(), Readiness::Ready(Some(ref d)) if d.contains("channel LongFast (#0)")),
            "cut at {cut}: {:?}",
            radio.readiness()
        );
    }
}

#[test]
fn frames_go_as_private_app_packets_to_everyone_on_the_chosen_channel() {
    let mut radio = connected(ChannelChoice::Index(1));
    let first = to_radio(&[radio.encode(b"sealed frame")]);
    let second = to_radio(&[radio.encode(b"another")]);
    let (To::Packet(a), To::Packet(b)) = (&first[0], &second[0]) else {
        panic!("expected packets: {first:?} {second:?}")
    };
    assert_eq!(
        (a.to, a.channel, a.hop_limit, a.hop_start),
        (BROADCAST, 1, 5, 5)
    );
    assert_eq!(a.from, 0, "the node fills in its own number");
    assert!(a.id != 0 && a.id != b.id);
    let Some(mesh_packet::Payload::Decoded(data)) = &a.payload else {
        panic!("not decoded: {a:?}")
    };
    assert_eq!(
        (data.portnum, data.payload.as_slice()),
        (PRIVATE_APP, &b"sealed frame"[..])
    );
    assert!(
        radio.encode(&[7; MAX_FRAME_BYTES + 1]).is_empty(),
        "over the budget"
    );
    assert!(!radio.floods(), "Meshtastic floods by itself");
}

#[test]
fn frames_and_text_heard_on_the_channel_come_out_and_the_rest_does_not() {
    let mut radio = connected(ChannelChoice::Name("FieldMesh".into()));
    let mut bytes = packet(OTHER, 1, PRIVATE_APP, b"from camp B", (3, 3));
    bytes.extend(packet(OTHER, 0, PRIVATE_APP, b"other channel", (3, 3)));
    bytes.extend(packet(ME, 1, PRIVATE_APP, b"our own echo", (3, 3)));
    bytes.extend(packet(OTHER, 1, 67, b"telemetry", (3, 3)));
    bytes.extend(packet(OTHER, 1, 4242, b"unknown port", (3, 3)));
    bytes.extend(packet(
        0x0000_0042,
        1,
        TEXT_MESSAGE_APP,
        "Water at the school".as_bytes(),
        (3, 1),
    ));
    bytes.extend(packet(OTHER, 1, TEXT_MESSAGE_APP, &[0xFF, 0xFE], (3, 3)));
    assert_eq!(radio.decode(&bytes), vec![b"from camp B".to_vec()]);
    assert_eq!(
        radio.take_events(),
        vec![DeviceEvent::Text(ChannelText {
            channel: "FieldMesh".into(),
            from: 0x42,
            name: "!00000042".into(),
            hops: Some(2),
            id: 99,
            text: "Water at the school".into(),
        })]
    );
    assert!(radio.take_events().is_empty());
    // The node heard from learns its name from a node-info packet.
    let user = User {
        long_name: "Clinic".into(),
        ..Default::default()
    };
    radio.decode(&packet(
        0x42,
        0,
        NODEINFO_APP,
        &user.encode_to_vec(),
        (3, 3),
    ));
    assert_eq!(radio.name_of(0x42), "Clinic");
}

#[test]
fn plain_text_is_sent_within_200_bytes_and_only_when_ready() {
    let mut waiting = Meshtastic::new(ChannelChoice::Primary, 1);
    waiting.configure();
    assert_eq!(waiting.encode_text("hello"), Err(TextError::NotReady));
    let mut radio = connected(ChannelChoice::Primary);
    assert_eq!(radio.encode_text("  "), Err(TextError::Empty));
    assert_eq!(
        radio.encode_text(&"x".repeat(201)),
        Err(TextError::TooLong(201))
    );
    let sent = to_radio(&[radio.encode_text(&"é".repeat(100)).unwrap()]);
    let To::Packet(packet) = &sent[0] else {
        panic!()
    };
    let Some(mesh_packet::Payload::Decoded(data)) = &packet.payload else {
        panic!()
    };
    assert_eq!((data.portnum, packet.channel), (TEXT_MESSAGE_APP, 0));
}

#[test]
fn a_missing_channel_is_refused_with_the_channels_the_node_has() {
    let radio = connected(ChannelChoice::Name("Rescue".into()));
    assert_eq!(
        radio.readiness(),
        Readiness::Refused(
            "the Meshtastic node has no channel named \"Rescue\" (it has #0 LongFast, #1 \
             FieldMesh); add it on the node (for example `meshtastic --ch-add FieldMesh`) or \
             name one of its channels with --meshtastic-channel"
                .into()
        )
    );
    assert_eq!("3".parse(), Ok(ChannelChoice::Index(3)));
    assert_eq!("".parse(), Ok(ChannelChoice::Primary));
    assert_eq!("9".parse(), Ok(ChannelChoice::Name("9".into())));
}

#[test]
fn an_unanswered_handshake_is_asked_again_and_a_quiet_link_gets_heartbeats() {
    let mut radio = Meshtastic::new(ChannelChoice::Primary, 5);
    let first = nonce_of(&radio.configure()[1..]);
    assert!(radio.tick(1_000).is_empty());
    assert!(radio.tick(1_000 + HANDSHAKE_TIMEOUT_MS - 1).is_empty());
    let again = radio.tick(1_000 + HANDSHAKE_TIMEOUT_MS);
    let second = nonce_of(&again[1..]);
    assert_ne!(first, second);
    assert!(
        matches!(&radio.take_events()[..], [DeviceEvent::Problem(p)] if p.contains("did not finish its handshake"))
    );
    // The late answer to the first is no answer.
    radio.decode(&answer(first));
    assert_eq!(radio.readiness(), Readiness::Waiting);
    radio.decode(&answer(second));
    assert!(matches!(radio.readiness(), Readiness::Ready(_)));
    let now = 100_000;
    assert!(radio.tick(now).is_empty());
    radio.encode(b"frame");
    assert!(radio.tick(now + HEARTBEAT_EVERY_MS - 1).is_empty());
    assert!(matches!(
        to_radio(&radio.tick(now + HEARTBEAT_EVERY_MS))[..],
        [To::Heartbeat(_)]
    ));
    assert!(radio.tick(now + HEARTBEAT_EVERY_MS + 1).is_empty());
}

#[test]
fn a_node_that_restarts_is_asked_for_its_handshake_again() {
    let mut radio = connected(ChannelChoice::Primary);
    radio.decode(&from_radio(From::Rebooted(true)));
    let again = radio.tick(5_000);
    let nonce = nonce_of(&again[1..]);
    assert_eq!(radio.readiness(), Readiness::Waiting);
    assert!(radio.encode(b"meanwhile").is_empty());
    radio.decode(&answer(nonce));
    assert!(matches!(radio.readiness(), Readiness::Ready(_)));
}

#[test]
fn bad_input_is_skipped_and_what_follows_still_arrives() {
    let mut radio = connected(ChannelChoice::Primary);
    let good = packet(OTHER, 0, PRIVATE_APP, b"still here", (3, 3));
    let mut bytes = vec![START1, START2, 0x7F, 0xFF]; // a length over 512
    bytes.extend(b"garbage \x94\x00 between frames\n");
    bytes.extend(stream::frame(&[0x12, 0x50, 0x01])); // a field claiming 80 bytes, 1 there
    bytes.extend(stream::frame(&[0xFF; 40])); // no protobuf at all
    let truncated = packet(OTHER, 0, PRIVATE_APP, b"cut short", (3, 3));
    bytes.extend(&truncated[..truncated.len() - 4]);
    bytes.extend(&good);
    let before = radio.dropped();
    let frames = radio.decode(&bytes);
    assert!(frames.ends_with(&[b"still here".to_vec()]), "{frames:?}");
    assert!(radio.dropped() >= before + 3);
    // A packet with a frame longer than any radio frame, or an empty one, is dropped.
    assert!(radio
        .decode(&packet(OTHER, 0, PRIVATE_APP, &[1; 300], (3, 3)))
        .is_empty());
    assert!(radio
        .decode(&packet(OTHER, 0, PRIVATE_APP, b"", (3, 3)))
        .is_empty());
    assert_eq!(
        radio.decode(&packet(OTHER, 0, PRIVATE_APP, b"and after", (3, 3))),
        vec![b"and after".to_vec()]
    );
}

#[test]
fn the_node_list_and_events_stay_bounded() {
    let mut radio = connected(ChannelChoice::Primary);
    for num in 1..2_000u32 {
        radio.decode(&node(num, "n", Some(1)));
        radio.decode(&packet(num, 0, TEXT_MESSAGE_APP, b"hi", (3, 3)));
    }
    assert!(radio.nodes().len() <= MAX_NODES);
    assert!(radio.take_events().len() <= MAX_EVENTS);
}

#[test]
fn arbitrary_bytes_never_panic_nor_grow_the_buffer_past_a_frame() {
    // A small deterministic fuzz on stable (the cargo-fuzz target `meshtastic_stream` goes
    // further): pseudo-random bytes, with frame starts and valid packets mixed in.
    let mut radio = connected(ChannelChoice::Primary);
    let good = packet(OTHER, 0, PRIVATE_APP, b"ok", (3, 3));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut frames = 0;
    for round in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut chunk = state.to_le_bytes().to_vec();
        if round % 7 == 0 {
            chunk[0] = START1;
            chunk[1] = START2;
        }
        if round % 97 == 0 {
            chunk.extend(&good);
        }
        for frame in radio.decode(&chunk) {
            assert!(!frame.is_empty() && frame.len() <= crate::radio::MAX_FRAME_BYTES);
            frames += 1;
        }
        assert!(radio.decoder.buffered() <= stream::HEADER_BYTES + MAX_PROTO_BYTES + chunk.len());
    }
    assert!(
        frames > 0,
        "valid packets among the noise still come through"
    );
}
