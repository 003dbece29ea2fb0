//! What a Meshtastic node sends its host, after a handshake that completed: never a panic,
//! never a frame over the radio limit, nothing held past one frame, and the same frames and
//! texts however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::serial::meshtastic::proto::{self, from_radio::Payload, to_radio};
use mesh::serial::meshtastic::{stream, StreamDecoder};
use mesh::serial::{ChannelChoice, Framing, Meshtastic, Readiness};
use prost::Message as _;

fn from_radio(payload: Payload) -> Vec<u8> {
    stream::frame(
        &proto::FromRadio {
            id: 0,
            payload: Some(payload),
        }
        .encode_to_vec(),
    )
}

/// A host whose handshake is done: node 1, primary channel only.
fn connected() -> Meshtastic {
    let mut host = Meshtastic::new(ChannelChoice::Primary, 1);
    let mut decoder = StreamDecoder::new();
    for bytes in host.configure() {
        decoder.push(&bytes);
    }
    let Some(body) = decoder.next_frame() else {
        unreachable!("the handshake asks")
    };
    let Ok(proto::ToRadio {
        payload: Some(to_radio::Payload::WantConfigId(nonce)),
    }) = proto::ToRadio::decode(body.as_slice())
    else {
        unreachable!("the handshake asks with want_config_id")
    };
    let mut answer = from_radio(Payload::MyInfo(proto::MyNodeInfo { my_node_num: 1 }));
    answer.extend(from_radio(Payload::Channel(proto::Channel {
        index: 0,
        settings: None,
        role: 1,
    })));
    answer.extend(from_radio(Payload::ConfigCompleteId(nonce)));
    host.decode(&answer);
    assert!(matches!(host.readiness(), Readiness::Ready(_)));
    host
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = connected();
    let at_once = whole.decode(bytes);
    let mut split = connected();
    let cut = usize::from(cut).min(bytes.len());
    let mut in_parts = split.decode(&bytes[..cut]);
    in_parts.extend(split.decode(&bytes[cut..]));
    assert_eq!(at_once, in_parts);
    assert_eq!(whole.take_events(), split.take_events());
    for frame in at_once {
        assert!(!frame.is_empty() && frame.len() <= mesh::radio::MAX_FRAME_BYTES);
    }
});
