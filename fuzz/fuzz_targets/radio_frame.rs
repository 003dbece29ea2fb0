//! Radio frames heard from anyone: the decoder and the relay node must never panic, and a
//! frame that decodes must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::radio::{Node, NodeConfig, Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
    }
    // The same bytes cut into a stream of frames, fed to one relay node with time passing.
    let mut node = Node::new(NodeConfig::default(), 1);
    let mut now = 0;
    for frame in data.split(|&b| b == 0xFF) {
        let _ = node.receive(now, frame);
        now += 700;
        let _ = node.poll(now);
    }
});
