//! What a (possibly hostile) server may send a phone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::ServerFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ServerFrame::decode(data) {
        let again = frame.encode().expect("a decoded frame re-encodes");
        assert_eq!(ServerFrame::decode(&again).as_ref(), Ok(&frame));
    }
});
