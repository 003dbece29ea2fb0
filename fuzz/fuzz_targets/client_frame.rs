//! What any phone may send the server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::ClientFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ClientFrame::decode(data) {
        let again = frame.encode().expect("a decoded frame re-encodes");
        assert_eq!(ClientFrame::decode(&again).as_ref(), Ok(&frame));
    }
});
