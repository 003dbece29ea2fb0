//! Radio frames heard from anyone: the decoder and the relay node must never panic, and a
//! frame that decodes must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::radio::{NetworkKey, Node, NodeConfig, Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
    }
    // The same bytes cut into a stream of frames, fed to one relay node with time passing:
    // as heard (the tag almost never fits, and such a frame must change nothing), and tagged
    // with the node's key, so the relay logic behind the tag check is explored too.
    let network = NetworkKey::from_bytes([9; 16]);
    let config = NodeConfig {
        network: network.clone(),
        ..NodeConfig::default()
    };
    let mut node = Node::new(config, 1);
    let mut now = 1_800_000_000_000;
    for frame in data.split(|&b| b == 0xFF) {
        let before = node.stats();
        if node.receive(now, frame).is_err() {
            let after = node.stats();
            assert_eq!(
                (after.remembered, after.partial),
                (before.remembered, before.partial),
                "a refused frame changed the node"
            );
        }
        let _ = node.receive(now, &network.seal(now, frame.to_vec()));
        now += 700;
        let _ = node.poll(now);
    }
});
