//! Searching the messages on this device: a button on the home screen and in the room, and a
//! sheet with the query, the results (newest first, matches marked) and the progress.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::either::Either;
use leptos::{ev, html, prelude::*};

use crate::chat::{ChatClient, SearchHit};

/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// Opens the search sheet.
#[component]
pub(super) fn SearchButton() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    view! {
        <button
            type="button"
            class="ghost icon"
            data-testid="search-open"
            aria-label="Search messages"
            title="Search messages"
            on:click=move |_| state.search_open.set(true)
        >
            <super::icons::SearchIcon/>
        </button>
    }
}

/// The search sheet: results as the person types, this room's or every room's.
#[component]
pub(super) fn SearchSheet() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let query = RwSignal::new(String::new());
    let only_here = RwSignal::new(true);
    let in_room = move || state.session.with(Option::is_some);
    let input = NodeRef::<html::Input>::new();
    // The field has the keyboard as soon as the sheet opens.
    Effect::new(move |_| {
        if state.search_open.get() {
            if let Some(input) = input.get() {
                let _ = input.focus();
            }
        }
    });
    let run = move || {
        let here = only_here.get_untracked() && state.session.with_untracked(Option::is_some);
        client.search(&query.get_untracked(), here);
    };
    let close = move || state.search_open.set(false);
    view! {
        <Show when=move || state.search_open.get()>
            <div
                class="sheet search"
                role="dialog"
                aria-label="Search messages"
                data-testid="search"
                on:keydown=move |event: ev::KeyboardEvent| {
                    if event.key() == "Escape" {
                        close();
                    }
                }
            >
                <form class="search-row" role="search" on:submit=move |event: ev::SubmitEvent| {
                    event.prevent_default();
                    run();
                }>
                    <input
                        type="search"
                        node_ref=input
                        data-testid="search-input"
                        aria-label="Search messages"
                        placeholder="Search messages on this device"
                        enterkeyhint="search"
                        maxlength=MAX_QUERY_CHARS
                        prop:value=move || query.get()
                        on:input=move |event| {
                            query.set(event_target_value(&event));
                            run();
                        }
                    />
                    <button type="button" class="ghost small" data-testid="search-close" on:click=move |_| close()>
                        "Close"
                    </button>
                </form>
                <Show when=in_room>
                    <label class="check">
                        <input
                            type="checkbox"
                            data-testid="search-here"
                            prop:checked=move || only_here.get()
                            on:change=move |event| {
                                only_here.set(event_target_checked(&event));
                                run();
                            }
                        />
                        "Only this room"
                    </label>
                </Show>
                <p class="hint" role="status" data-testid="search-status">
                    {move || state.search.with(|s| s.status.clone())}
                </p>
                <ul class="hits">
                    <For
                        each=move || state.search.with(|s| s.hits.clone())
                        key=|hit| (hit.id.clone(), hit.excerpt.clone())
                        let:hit
                    >
                        <Hit hit/>
                    </For>
                </ul>
            </div>
        </Show>
    }
}

/// One result: room, author, time, and the text around the match, marked. Tap to open it.
#[component]
fn Hit(hit: SearchHit) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let (room, id) = (hit.room.clone(), hit.id.clone());
    view! {
        <li>
            <button type="button" class="hit" data-testid="search-hit" on:click=move |_| client.open_found(&room, &id)>
                <span class="room-line">
                    <span class="room-name" data-testid="search-hit-room">{hit.room_name}</span>
                    <span class="hit-author">{hit.author}</span>
                    <span class="room-time">{hit.time}</span>
                </span>
                <span class="hit-text" dir="auto" data-testid="search-hit-text">
                    {hit.excerpt.into_iter().map(|(text, matched)| if matched {
                        Either::Left(view! { <mark>{text}</mark> })
                    } else {
                        Either::Right(text)
                    }).collect_view()}
                </span>
            </button>
        </li>
    }
}
