//! What an opened radio message says (name, position, signal, text, or a receipt): reading
//! arbitrary plaintext never panics, and what reads has a name within the radio's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::radio::{RadioText, MAX_RADIO_NAME_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = RadioText::from_plaintext(data, 1) {
        assert!(text.author.len() <= MAX_RADIO_NAME_BYTES);
        assert!(text.receipt_for.is_none() || text.text.is_empty());
    }
});
