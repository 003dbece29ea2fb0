//! Seal and open 10,000 text messages natively and print the figures (a benchmark, not a test).
//!
//! `cargo run --release -p mesh --example crypto_bench [COUNT]`
//! The same work runs in the browser through `frontend::bench_seal_open` (`./x bench`).

use std::time::Instant;

use mesh::crypto::{seal, Draft, Identity, RoomKey, NONCE_BYTES, SIGNATURE_BYTES, TAG_BYTES};
use mesh::{Kind, MessageId, TextBody};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let identity = Identity::from_seed(&[7; 64]);
    let key = RoomKey::from_bytes([9; 32]);
    let body = TextBody::new(
        "Ana",
        "Water and blankets at the school; two volunteers on the way.",
    )
    .unwrap();
    let plaintext = body.encode().unwrap();

    let started = Instant::now();
    let envelopes: Vec<_> = (0..count)
        .map(|n| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let mut nonce = [0u8; NONCE_BYTES];
            nonce[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let draft = Draft {
                id: MessageId(id),
                created_at_ms: 1_764_000_000_000 + n as u64,
                kind: Kind::Text,
                plaintext: &plaintext,
            };
            seal(&identity, &key, draft, nonce).unwrap()
        })
        .collect();
    let sealed = started.elapsed();

    let started = Instant::now();
    for envelope in &envelopes {
        assert_eq!(envelope.open(&key).unwrap(), plaintext);
    }
    let opened = started.elapsed();

    let started = Instant::now();
    for envelope in &envelopes {
        envelope.verify_signature().unwrap();
    }
    let verified = started.elapsed();

    let encoded = envelopes[0].encode().unwrap().len();
    println!(
        "FieldMesh crypto benchmark (native, {count} messages of {} plaintext bytes)",
        plaintext.len()
    );
    println!(
        "  seal (encrypt + sign):        {:>8.1} ms  ({:.1} µs each)",
        ms(sealed),
        us(sealed, count)
    );
    println!(
        "  open (verify + decrypt):      {:>8.1} ms  ({:.1} µs each)",
        ms(opened),
        us(opened, count)
    );
    println!(
        "  server check (verify only):   {:>8.1} ms  ({:.1} µs each)",
        ms(verified),
        us(verified, count)
    );
    println!(
        "  envelope: {encoded} bytes for {} plaintext bytes = {} bytes overhead (nonce {NONCE_BYTES}, tag {TAG_BYTES}, signature {SIGNATURE_BYTES}, header and lengths {})",
        plaintext.len(),
        encoded - plaintext.len(),
        encoded - plaintext.len() - NONCE_BYTES - TAG_BYTES - SIGNATURE_BYTES
    );
}

fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn us(duration: std::time::Duration, count: usize) -> f64 {
    duration.as_secs_f64() * 1e6 / count as f64
}
