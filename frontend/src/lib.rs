//! FieldMesh in the browser: the hydrate entry point, the device store and the sync engine.
#![warn(missing_docs, unreachable_pub)]
// Leptos view types nest deeply; hydrating the whole app needs a deeper query limit.
#![recursion_limit = "1024"]

mod db;
mod device;
mod engine;
mod js;
mod photo;
mod pwa;

use app::App;
use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the page's hydration script once the Wasm module is loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // For `./x bench`: how much of a start went to fetching and compiling the Wasm.
    engine::mark("fieldmesh:start");
    leptos::mount::hydrate_body(|| {
        provide_context(engine::start());
        view! { <App/> }
    });
}

/// Seals and opens `count` text messages with this build's crypto and returns
/// `[milliseconds to seal, milliseconds to open, messages opened]`. Used by `./x bench`; does
/// no I/O.
#[wasm_bindgen]
pub fn bench_seal_open(count: u32) -> Vec<f64> {
    use mesh::crypto::{seal, Draft, Identity, RoomKey};
    use mesh::{Kind, MessageId, TextBody};
    let now = || {
        web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.now())
    };
    let identity = Identity::from_seed(&[7; 64]);
    let key = RoomKey::from_bytes([9; 32]);
    let plaintext = TextBody::new(
        "Ana",
        "Water and blankets at the school; two volunteers on the way.",
    )
    .and_then(|body| body.encode().map_err(|_| mesh::body::TextError::Empty))
    .unwrap_or_default();
    let started = now();
    let envelopes: Vec<_> = (0..count)
        .filter_map(|n| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            let mut nonce = [0u8; 24];
            nonce[..4].copy_from_slice(&n.to_le_bytes());
            let draft = Draft {
                id: MessageId(id),
                created_at_ms: u64::from(n),
                kind: Kind::Text,
                plaintext: &plaintext,
            };
            seal(&identity, &key, draft, nonce).ok()
        })
        .collect();
    let sealed = now() - started;
    let started = now();
    let opened = envelopes.iter().filter(|e| e.open(&key).is_ok()).count();
    let open_ms = now() - started;
    vec![sealed, open_ms, opened as f64]
}

/// Makes a photo small as the composer does (longest side `side` pixels) and returns
/// `[milliseconds, width, height, bytes]`. Used by `./x bench`.
#[wasm_bindgen]
pub async fn bench_shrink(file: web_sys::File, side: u32) -> Vec<f64> {
    let now = || {
        web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.now())
    };
    let started = now();
    match photo::shrink(&file, Some(side)).await {
        Ok(photo) => vec![
            now() - started,
            f64::from(photo.width),
            f64::from(photo.height),
            photo.size as f64,
        ],
        Err(_) => Vec::new(),
    }
}
