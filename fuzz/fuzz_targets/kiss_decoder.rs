//! KISS bytes from a serial port: never a panic, never a frame over the limit, and the same
//! frames however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::serial::KissDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = KissDecoder::new(256);
    let at_once = whole.push(bytes);
    let mut split = KissDecoder::new(256);
    let cut = usize::from(cut).min(bytes.len());
    let mut in_parts = split.push(&bytes[..cut]);
    in_parts.extend(split.push(&bytes[cut..]));
    assert_eq!(at_once, in_parts);
    for frame in at_once.into_iter().flatten() {
        assert!(frame.payload.len() < 256);
    }
});
