//! FieldMesh user interface: Leptos components shared by server-side rendering (feature `ssr`)
//! and the browser (feature `hydrate`).
//!
//! The server renders only the shell. Everything a person sees about rooms and messages comes
//! from a [`ChatClient`] that the browser entry point (`frontend`) provides as context.
#![warn(missing_docs, unreachable_pub)]
// Leptos view types nest deeply; hydrating the whole app needs a deeper query limit.
#![recursion_limit = "256"]

pub mod chat;
pub mod invite;
mod views;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

pub use chat::{
    ChatActions, ChatClient, ChatMessage, ChatState, Connection, Delivery, RadioLine,
    RadioSettings, RosterEntry, Session, SyncProgress, SyncStep, WebRadio,
};

/// The HTML document the server sends for every page: head, hydration scripts and the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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

/// The application: one screen that shows the join form or the room.
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
        <Router>
            <Routes fallback=views::NotFound>
                <Route path=path!("/") view=views::ChatScreen/>
            </Routes>
        </Router>
    }
}
