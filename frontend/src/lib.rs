//! FieldMesh in the browser: the hydrate entry point and the connection to the server.
#![warn(missing_docs, unreachable_pub)]
// Leptos view types nest deeply; hydrating the whole app needs a deeper query limit.
#![recursion_limit = "256"]

mod db;
mod device;
mod engine;
mod pwa;

use app::App;
use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the page's hydration script once the Wasm module is loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(|| {
        provide_context(engine::start());
        view! { <App/> }
    });
}
