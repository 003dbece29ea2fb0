//! FieldMesh user interface: Leptos components shared by server-side rendering (feature `ssr`)
//! and the browser (feature `hydrate`).
//!
//! The server renders only the shell. Everything a person sees about rooms and messages comes
//! from a [`ChatClient`] that the browser entry point (`frontend`) provides as context.
#![warn(missing_docs, unreachable_pub)]
// Leptos view types nest deeply; hydrating the whole app needs a deeper query limit.
#![recursion_limit = "1024"]

pub mod chat;
pub mod text;
mod views;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};

pub use chat::{
    unread_label, CallAction, CallInvite, CallTile, CallView, ChatActions, ChatClient, ChatFile,
    ChatMessage, ChatState, Connection, Delivery, DraftFile, MapMarker, Nearby, Notifications,
    PhotoSize, RadioLine, RadioSettings, RoomSummary, RosterEntry, SearchHit, SearchState, Session,
    SosAlert, SyncProgress, SyncStep, TalkView, Transfer, WebRadio,
};

/// The page's Content-Security-Policy: its own scripts (the inline hydration script by this
/// response's nonce) and Wasm, its own connections, nothing framed, nothing framing it.
/// Inline style attributes stay allowed (the progress bar sets its width).
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
         connect-src 'self' blob:; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sends the page's policy with this response's nonce (on the server only).
#[cfg(feature = "ssr")]
fn send_content_security_policy() {
    use leptos_axum::ResponseOptions;
    let (Some(nonce), Some(response)) =
        (leptos::nonce::use_nonce(), use_context::<ResponseOptions>())
    else {
        return;
    };
    if let Ok(policy) = content_security_policy(&nonce.to_string()).parse() {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, policy);
    }
}

/// The HTML document the server sends for every page: head, hydration scripts and the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    send_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
                <meta name="theme-color" content="#0f1419"/>
                <meta name="color-scheme" content="dark"/>
                <meta name="description" content="Offline-first chat for the field"/>
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="icon" href="/icons/icon-192.png" type="image/png"/>
                <link rel="apple-touch-icon" href="/icons/icon-192.png"/>
                // Holds a tap on a form's button, and what was typed, until the app is ready.
                <script src="/early.js"></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: one screen that shows the home screen or the room.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // The browser provides a live client before hydrating; the server renders the shell with
    // an inert one, so both produce the same first frame.
    if use_context::<ChatClient>().is_none() {
        provide_context(ChatClient::inert());
    }

    view! {
        <Stylesheet id="leptos" href="/pkg/fieldmesh.css"/>
        <Title text="FieldMesh"/>
        // One screen, no router: the server serves the page at `/` only, and the service
        // worker serves it for every navigation. (A router's routes hydrate through boxed,
        // asynchronous views, which kept about 180 KB of unused code in the Wasm.)
        <views::ChatScreen/>
    }
}
