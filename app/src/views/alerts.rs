//! SOS: the sheet that sends one (a deliberate hold of the button), and the red banner that
//! every phone which receives one shows until its sender is safe or someone is on the way.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use std::time::Duration;

use leptos::{ev, prelude::*};
use mesh::body::MAX_TEXT_CHARS;

use crate::chat::{ChatClient, SosAlert};

/// How long the SOS button is held before it sends: long enough not to happen by accident.
const HOLD_MS: u64 = 1500;

/// The SOS calls this device knows of, one banner each: others' until someone is on the way,
/// its own until its sender says they are safe.
#[component]
pub(super) fn SosBanners() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let shown = move || {
        state.alerts.with(|alerts| {
            alerts
                .iter()
                .filter(|a| a.own || a.coming.is_empty())
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <For
            each=shown
            key=|alert| (alert.key.clone(), alert.coming.len(), alert.age.clone())
            children=move |alert| view! { <SosBanner alert/> }
        />
    }
}

#[component]
fn SosBanner(alert: SosAlert) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let key = alert.key.clone();
    let open_key = alert.key.clone();
    let position = alert.position;
    let age = alert.age.clone();
    let room_name = alert.room_name.clone();
    // Where they are from here (kept current as this phone moves), and how long ago.
    let whereabouts = move || {
        let place = match (position, state.my_position.get()) {
            (Some(theirs), Some((mine, _))) => mine.describe(&theirs),
            (Some(theirs), None) => theirs.coordinates(),
            (None, _) => "position unknown".to_string(),
        };
        format!("{place} · {age} · in {room_name}")
    };
    let note = (!alert.note.is_empty()).then(|| alert.note.clone());
    if alert.own {
        let coming = alert.coming.join(", ");
        return view! {
            <div class="sos-banner own" role="alert" data-testid="sos-banner">
                <p class="sos-title">"Your SOS is out"</p>
                <p class="sos-line" data-testid="sos-coming-line">
                    {if coming.is_empty() {
                        "Nobody has answered yet. Stay where you can be found if you can.".to_string()
                    } else {
                        format!("On the way: {coming}")
                    }}
                </p>
                <div class="sos-actions">
                    <button class="primary" data-testid="sos-safe" on:click=move |_| client.answer_sos(&key)>
                        "I am safe"
                    </button>
                </div>
            </div>
        }
        .into_any();
    }
    view! {
        <div class="sos-banner" role="alert" data-testid="sos-banner">
            <p class="sos-title">"SOS from " <strong data-testid="sos-author">{alert.author}</strong></p>
            <p class="sos-line" data-testid="sos-where">{whereabouts}</p>
            {note.map(|note| view! { <p class="sos-note" dir="auto" data-testid="sos-note">{note}</p> })}
            <div class="sos-actions">
                <button class="primary" data-testid="sos-answer" on:click=move |_| client.answer_sos(&key)>
                    "On my way"
                </button>
                <button class="ghost" data-testid="sos-open" on:click=move |_| client.open_sos(&open_key)>
                    "Show"
                </button>
            </div>
        </div>
    }
    .into_any()
}

/// The SOS sheet: an optional note, and a button held for a moment and a half to send.
#[component]
pub(super) fn SosSheet() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let note = RwSignal::new(String::new());
    let holding = RwSignal::new(false);
    let timer = StoredValue::new(None::<TimeoutHandle>);
    let release = move || {
        holding.set(false);
        if let Some(handle) = timer.get_value() {
            handle.clear();
            timer.set_value(None);
        }
    };
    let press = move || {
        if holding.get_untracked() {
            return;
        }
        holding.set(true);
        let handle = set_timeout_with_handle(
            move || {
                holding.set(false);
                timer.set_value(None);
                client.send_sos(&note.get_untracked());
                note.set(String::new());
            },
            Duration::from_millis(HOLD_MS),
        )
        .ok();
        timer.set_value(handle);
    };
    let close = move || {
        release();
        state.sos_open.set(false);
    };
    view! {
        <Show when=move || state.sos_open.get()>
            <div class="sheet sos-sheet" role="dialog" aria-label="Send an SOS" data-testid="sos-sheet"
                on:keydown=move |event: ev::KeyboardEvent| if event.key() == "Escape" { close() }>
                <h3>"Send an SOS"</h3>
                <p class="hint">
                    "Everyone in this room and in the public Emergency room is alerted, with where \
                     this phone is (it asks for the position now). Over the radio it goes before \
                     anything else."
                </p>
                <textarea
                    data-testid="sos-note"
                    rows="2"
                    maxlength=MAX_TEXT_CHARS.to_string()
                    placeholder="What is happening? (optional)"
                    aria-label="What is happening (optional)"
                    prop:value=move || note.get()
                    on:input=move |event| note.set(event_target_value(&event))
                ></textarea>
                <button
                    type="button"
                    class="sos-hold"
                    class:holding=move || holding.get()
                    data-testid="sos-send"
                    aria-label="Hold to send the SOS"
                    on:pointerdown=move |event: ev::PointerEvent| {
                        event.prevent_default();
                        press();
                    }
                    on:pointerup=move |_| release()
                    on:pointercancel=move |_| release()
                    on:pointerleave=move |_| release()
                    on:contextmenu=move |event: ev::MouseEvent| event.prevent_default()
                    on:keydown=move |event: ev::KeyboardEvent| {
                        if (event.key() == " " || event.key() == "Enter") && !event.repeat() {
                            event.prevent_default();
                            press();
                        }
                    }
                    on:keyup=move |event: ev::KeyboardEvent| {
                        if event.key() == " " || event.key() == "Enter" {
                            release();
                        }
                    }
                >
                    <span class="sos-fill" aria-hidden="true"></span>
                    <span class="sos-label">{move || if holding.get() { "Keep holding…" } else { "Hold to send SOS" }}</span>
                </button>
                <p class="sos-status" role="status" data-testid="sos-status">{move || state.sos_status.get()}</p>
                <div class="sheet-row">
                    <button class="ghost" data-testid="sos-close" on:click=move |_| close()>"Close"</button>
                </div>
            </div>
        </Show>
    }
}
