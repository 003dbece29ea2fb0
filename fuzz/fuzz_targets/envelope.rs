//! Stored and relayed envelopes: decoding and signature checks never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let _ = envelope.verify_signature();
        let _ = mesh::radio::RadioMessage::from_envelope(&envelope);
    }
});
