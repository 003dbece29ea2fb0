//! What a Meshtastic node sends its host, after a handshake that completed: never a panic,
//! never a frame over the radio limit, nothing held past one frame, and the same frames and
//! texts however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::serial::meshtastic::device::{answer, HostWrites};
use mesh::serial::{ChannelChoice, Framing, Meshtastic, Readiness};

/// A host whose handshake is done: node 1, primary channel only.
fn connected() -> Meshtastic {
    let mut host = Meshtastic::new(ChannelChoice::Primary, 1);
    let mut writes = HostWrites::default();
    let nonce = host
        .configure()
        .iter()
        .find_map(|bytes| writes.handshake(bytes))
        .expect("the host asks for the handshake");
    host.decode(&answer(1, &[""], nonce));
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
