//! The status lines of a room: connection, sync progress, the server's radio, who is here,
//! who is typing, key warnings and private-message alerts.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::prelude::*;

use super::sheets::Roster;
use crate::chat::{ChatClient, Connection, SyncStep};

#[component]
pub(super) fn ConnectionBadge() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let label = move || match state.connection.get() {
        Connection::Connecting => "connecting…",
        Connection::Online => "online",
        Connection::Offline => "offline",
        Connection::Locked => "locked",
    };
    view! {
        <span
            class="badge"
            class:online=move || state.connection.get() == Connection::Online
            class:offline=move || state.connection.get() == Connection::Offline
            data-testid="connection"
            role="status"
        >
            {label}
        </span>
    }
}

/// "Ben wrote to you privately · Open"
#[component]
pub(super) fn DirectAlert() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || state.direct_alert.with(Option::is_some)>
            <div class="update" role="status" data-testid="direct-alert">
                <span>{move || state.direct_alert.get().map(|(_, name)| format!("{name} wrote to you privately."))}</span>
                <button class="primary" data-testid="open-direct" on:click=move |_| {
                    if let Some((id, _)) = state.direct_alert.get_untracked() {
                        state.direct_alert.set(None);
                        client.open_direct(&id);
                    }
                }>"Open"</button>
            </div>
        </Show>
    }
}

/// A loud warning when someone known comes back with other keys.
#[component]
pub(super) fn KeyWarning() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    view! {
        <Show when=move || state.key_warning.with(Option::is_some)>
            <div class="keywarn" role="alert" data-testid="key-changed">
                <span>{move || state.key_warning.get()}</span>
                <button class="ghost" aria-label="Dismiss" on:click=move |_| state.key_warning.set(None)>"×"</button>
            </div>
        </Show>
    }
}

/// Who is in the room now; tap for the roster and safety codes.
#[component]
pub(super) fn Presence() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let roster = RwSignal::new(false);
    let text = move || {
        state.members.with(|names| match names.len() {
            0 => String::new(),
            1 => "only you here".to_string(),
            n => format!("{n} here: {}", names.join(", ")),
        })
    };
    view! {
        <button class="presence" class:quiet=move || state.members.with(Vec::is_empty) data-testid="presence" title="People here, and safety codes to compare" on:click=move |_| roster.set(true)>{text}</button>
        <Roster open=roster/>
    }
}

/// Offline with N queued, or the progress of a long sync.
#[component]
pub(super) fn SyncBar() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let text = move || {
        let queued = state.queued.get();
        if let Some(progress) = state.progress.get() {
            return Some(match (progress.what, progress.total) {
                (SyncStep::Receiving, 0) => {
                    format!("Syncing: received {} missed messages…", progress.done)
                }
                (SyncStep::Receiving, total) => {
                    format!("Syncing: receiving {} of {total}", progress.done)
                }
                (SyncStep::Sending, total) => format!("Syncing: sent {} of {total}", progress.done),
            });
        }
        match (state.connection.get(), queued) {
            (Connection::Online, 0) => None,
            (Connection::Locked, 0) => Some("Waiting for the join code.".into()),
            (Connection::Locked, n) => Some(format!(
                "Waiting for the join code: {n} queued, sent once it is entered."
            )),
            (Connection::Online, n) => Some(format!("Sending {n} queued…")),
            (_, 0) => Some(
                "Offline: messages you write are kept and sent when the server is back.".into(),
            ),
            (_, 1) => Some("Offline: 1 message queued, sent when the server is back.".into()),
            (_, n) => Some(format!(
                "Offline: {n} messages queued, sent when the server is back."
            )),
        }
    };
    let percent = move || {
        state
            .progress
            .get()
            .map(|p| format!("width: {}%", p.done * 100 / p.total.max(1)))
            .unwrap_or_default()
    };
    view! {
        <Show when=move || text().is_some()>
            <div class="syncbar" role="status" data-testid="sync-status">
                <span>{text}</span>
                <Show when=move || state.progress.with(|p| p.is_some_and(|p| p.total > 0))>
                    <div class="progress"><div class="progress-fill" style=percent></div></div>
                </Show>
            </div>
        </Show>
    }
}

/// The server's radio: shown only when it has one.
#[component]
pub(super) fn RadioBar() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    view! {
        {move || state.radio.get().map(|radio| {
            let label = if radio.ready { "📡 Radio on" } else { "📡 Radio off" };
            view! {
                <div class="radiobar" class:down=!radio.ready role="status" data-testid="radio-status">
                    <strong>{label}</strong>
                    " · "
                    <span>{radio.text}</span>
                </div>
            }
        })}
    }
}

/// The server's link to other camps over IP: shown only when it has one.
#[component]
pub(super) fn FederationBar() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    view! {
        {move || state.federation.get().map(|(linked, text)| view! {
            <div class="radiobar" class:down=!linked role="status" data-testid="federation-status">
                "🔗 "
                <span>{text}</span>
            </div>
        })}
    }
}

/// "Ben is typing…"
#[component]
pub(super) fn TypingLine() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let text = move || {
        state.typing.with(|names| match names.as_slice() {
            [] => String::new(),
            [one] => format!("{one} is typing…"),
            [one, two] => format!("{one} and {two} are typing…"),
            _ => "Several people are typing…".to_string(),
        })
    };
    view! { <p class="typing" data-testid="typing" aria-live="polite">{text}</p> }
}
