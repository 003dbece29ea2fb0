//! The screens: join form and room.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::{ev, html, prelude::*};
use mesh::body::{MAX_DISPLAY_NAME_CHARS, MAX_TEXT_CHARS};
use mesh::envelope::MAX_ROOM_NAME_CHARS;

use crate::chat::{ChatClient, ChatMessage, Connection, Delivery};

/// Shows the join form until a room is chosen, then the room.
#[component]
pub fn ChatScreen() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let in_room = move || client.state.session.with(Option::is_some);
    view! {
        <main class="screen">
            <Show when=in_room fallback=JoinForm>
                <RoomView/>
            </Show>
        </main>
    }
}

#[component]
fn JoinForm() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let name = RwSignal::new(String::new());
    let room = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);

    let submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        match client.join(&name.get_untracked(), &room.get_untracked()) {
            Ok(()) => error.set(None),
            Err(message) => error.set(Some(message)),
        }
    };

    view! {
        <form class="join" on:submit=submit data-testid="join-form">
            <header class="join-header">
                <h1>"FieldMesh"</h1>
                <p>"Chat that keeps working when the network does not."</p>
            </header>
            <label for="join-name">"Your name"</label>
            <input
                id="join-name"
                data-testid="join-name"
                type="text"
                autocomplete="nickname"
                required
                maxlength=MAX_DISPLAY_NAME_CHARS
                placeholder="How others see you"
                prop:value=move || name.get()
                on:input=move |event| name.set(event_target_value(&event))
            />
            <label for="join-room">"Room"</label>
            <input
                id="join-room"
                data-testid="join-room"
                type="text"
                autocomplete="off"
                autocapitalize="none"
                required
                maxlength=MAX_ROOM_NAME_CHARS
                placeholder="For example: camp north"
                prop:value=move || room.get()
                on:input=move |event| room.set(event_target_value(&event))
            />
            <p class="hint">"Anyone who types the same room name joins the same room."</p>
            <p class="error" role="alert" data-testid="join-error">{move || error.get()}</p>
            <button type="submit" class="primary" data-testid="join-submit">"Join room"</button>
        </form>
    }
}

#[component]
fn RoomView() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let room_name = move || state.session.with(|s| s.as_ref().map(|s| s.room.clone()));

    view! {
        <section class="room">
            <header class="room-bar">
                <button class="ghost" on:click=move |_| client.leave() data-testid="leave" aria-label="Leave room">
                    "‹"
                </button>
                <h2 data-testid="room-title">{room_name}</h2>
                <ConnectionBadge/>
            </header>
            <Notice/>
            <MessageList/>
            <Composer/>
        </section>
    }
}

#[component]
fn ConnectionBadge() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let label = move || match state.connection.get() {
        Connection::Connecting => "connecting…",
        Connection::Online => "online",
        Connection::Offline => "offline",
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

#[component]
fn Notice() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    view! {
        <Show when=move || state.notice.with(Option::is_some)>
            <div class="notice" role="alert" data-testid="notice">
                <span>{move || state.notice.get()}</span>
                <button class="ghost" on:click=move |_| state.notice.set(None) aria-label="Dismiss">
                    "×"
                </button>
            </div>
        </Show>
    }
}

#[component]
fn MessageList() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let list = NodeRef::<html::Div>::new();
    let last_count = StoredValue::new(0usize);

    // Keep the newest message in view when new ones arrive, unless the person has scrolled up
    // to read older ones (or older ones were just prepended).
    Effect::new(move |_| {
        let count = state.messages.with(Vec::len);
        let Some(element) = list.get() else { return };
        let previous = last_count.get_value();
        last_count.set_value(count);
        let near_bottom =
            px(element.scroll_height()) - px(element.scroll_top()) - px(element.client_height())
                < 160.0;
        if count > previous
            && (near_bottom || previous == 0)
            && !state.loading_older.get_untracked()
        {
            element.scroll_to_with_x_and_y(0.0, px(element.scroll_height()));
        }
    });

    view! {
        <div class="messages" node_ref=list data-testid="message-list" aria-live="polite">
            <Show when=move || state.has_older.get()>
                <button
                    class="older"
                    data-testid="load-older"
                    disabled=move || state.loading_older.get()
                    on:click=move |_| client.load_older()
                >
                    {move || if state.loading_older.get() { "Loading…" } else { "Load older messages" }}
                </button>
            </Show>
            <Show when=move || state.messages.with(Vec::is_empty)>
                <p class="empty">"No messages yet. Say hello."</p>
            </Show>
            <For
                each=move || state.messages.get()
                key=|message| (message.id.clone(), message.delivery)
                children=move |message| view! { <MessageRow message/> }
            />
        </div>
    }
}

/// Pixels as `f64`: web-sys's scroll offsets are `f64` under `web_sys_unstable_apis` (our wasm
/// build) and `i32` without it (the native build).
fn px(value: impl Into<f64>) -> f64 {
    value.into()
}

#[component]
fn MessageRow(message: ChatMessage) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let id = message.id.clone();
    let delivery = message.own.then(|| match message.delivery {
        Delivery::Sending => view! { <span class="state" data-testid="message-state">"sending"</span> }.into_any(),
        Delivery::Stored => view! { <span class="state" data-testid="message-state">"✓ stored"</span> }.into_any(),
        Delivery::Failed => view! {
            <button class="state failed" data-testid="message-retry" on:click=move |_| client.retry(&id)>
                "failed · tap to retry"
            </button>
        }
        .into_any(),
    });
    view! {
        <article class="message" class:own=message.own data-testid="message" data-id=message.id.clone()>
            <header>
                <span class="author" data-testid="message-author">{message.author}</span>
                <time>{message.time}</time>
            </header>
            <p class="text" data-testid="message-text">{message.text}</p>
            {delivery}
        </article>
    }
}

#[component]
fn Composer() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let draft = RwSignal::new(String::new());
    let input = NodeRef::<html::Textarea>::new();

    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        match client.send(&text) {
            Ok(()) => {
                draft.set(String::new());
                client.state.notice.set(None);
            }
            Err(message) => client.state.notice.set(Some(message)),
        }
        if let Some(input) = input.get() {
            let _ = input.focus();
        }
    };
    let on_key = move |event: ev::KeyboardEvent| {
        // Enter sends, Shift+Enter makes a new line; never while an input method composes.
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            send();
        }
    };
    let remaining = move || MAX_TEXT_CHARS as i64 - draft.with(|d| d.chars().count()) as i64;

    view! {
        <form class="composer" on:submit=move |event: ev::SubmitEvent| { event.prevent_default(); send(); }>
            <textarea
                node_ref=input
                data-testid="composer-input"
                rows="1"
                placeholder="Message"
                aria-label="Message"
                enterkeyhint="send"
                prop:value=move || draft.get()
                on:input=move |event| draft.set(event_target_value(&event))
                on:keydown=on_key
            ></textarea>
            <Show when=move || { remaining() < 200 }>
                <span class="counter" class:over=move || { remaining() < 0 }>{remaining}</span>
            </Show>
            <button
                type="submit"
                class="primary send"
                data-testid="composer-send"
                disabled=move || draft.with(|d| d.trim().is_empty())
                aria-label="Send"
            >
                "Send"
            </button>
        </form>
    }
}

/// Shown for any path but `/`.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <main class="screen">
            <p class="empty">"Nothing here. " <a href="/">"Open FieldMesh"</a></p>
        </main>
    }
}
