//! Text lines from a DIY radio: never a panic, never a line over the limit, and the same
//! lines however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::serial::LineDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = LineDecoder::new(300);
    let at_once = whole.push(bytes);
    let mut split = LineDecoder::new(300);
    let cut = usize::from(cut).min(bytes.len());
    let mut in_parts = split.push(&bytes[..cut]);
    in_parts.extend(split.push(&bytes[cut..]));
    assert_eq!(at_once, in_parts);
    for line in at_once.into_iter().flatten() {
        assert!(line.len() <= 300);
    }
});
