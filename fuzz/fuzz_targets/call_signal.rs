//! A call signal as a room member (or anyone who guessed nothing) may send it: the sealed
//! bytes, and the body a room member could seal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::call::{decode_signal_body, CallSignal, Route};
use mesh::crypto::RoomKey;
use mesh::SenderId;

fuzz_target!(|data: &[u8]| {
    // What is inside a seal: never a panic, whatever a member put there.
    let _ = decode_signal_body(data);
    // The sealed bytes themselves: refused, never a panic.
    let key = RoomKey::from_bytes([7; 32]);
    let route = Route {
        room: key.room_id(),
        from: [1; 32],
        to: None,
    };
    assert!(CallSignal::open(&key, SenderId([2; 32]), &route, data).is_none());
});
