//! A radio message with an arbitrary payload must never open (or panic) with a key it was
//! not sealed with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::crypto::RoomKey;
use mesh::radio::{MessageKey, RadioMessage};

fuzz_target!(|data: &[u8]| {
    let key = RoomKey::emergency();
    let mut room = [0u8; 4];
    room.copy_from_slice(&key.room_id().0[..4]);
    let message = RadioMessage {
        key: MessageKey { room, id: [1; 6] },
        payload: data.to_vec(),
    };
    assert!(message.open(&key).is_err());
});
