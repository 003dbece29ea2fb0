//! The screens: home and room, and the parts of the room (status bars, sheets, the
//! message list and composer) in the modules below.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

mod alerts;
mod bars;
mod calls;
mod home;
mod icons;
mod messages;
mod places;
mod search;
mod sheets;

use leptos::either::Either;
use leptos::{ev, prelude::*};
use mesh::serial::meshtastic::meshtastic_channel_of;

use crate::chat::ChatClient;
use alerts::{SosBanners, SosSheet};
use bars::{
    ConnectionBadge, DirectAlert, FederationBar, KeyWarning, Presence, RadioBar, SyncBar,
    TypingLine,
};
use calls::{CallButton, CallInvites, CallPanel, TalkBar};
use home::Home;
use icons::{MoreIcon, MutedIcon};
use messages::{Composer, MessageList};
use places::{LiveBar, LiveSheet, MapView, NearbySheet};
use search::{SearchButton, SearchSheet};
use sheets::{ExportSheet, RadioPanel, ShareSheet};

/// Shows the home screen until a room is chosen, then the room.
#[component]
pub fn ChatScreen() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    // Memos: the screen is built again only when these change, not on every session update
    // (a mute), which would lose the list's place and the draft.
    let in_room = Memo::new(move |_| client.state.session.with(Option::is_some));
    let code_needed = Memo::new(move |_| client.state.code_needed.get());
    view! {
        <main class="screen">
            <UpdateBanner/>
            // One step at a time: while the server wants its join code, only the code.
            {move || if code_needed.get() {
                Either::Left(view! { <CodeGate/> })
            } else {
                Either::Right(view! {
                    <DirectAlert/>
                    <SosBanners/>
                    {move || if in_room.get() { Either::Left(view! { <RoomView/> }) } else { Either::Right(view! { <Home/> }) }}
                    <SearchSheet/>
                    <SosSheet/>
                    <Show when=move || client.state.map.with(Option::is_some)>
                        <MapView/>
                    </Show>
                })
            }}
        </main>
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
                <div class="room-heading">
                    <h2 data-testid="room-title">{room_name}</h2>
                    <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| s.muted))>
                        <span class="title-muted" data-testid="room-muted"><MutedIcon/></span>
                    </Show>
                    <Presence/>
                </div>
                <CallButton/>
                <SearchButton/>
                <RoomMenu/>
                <ConnectionBadge/>
            </header>
            <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| s.public && meshtastic_channel_of(&s.room).is_none()))>
                <p class="public" data-testid="public-room">
                    "Public room: anyone can read it. Do not share private details here."
                </p>
            </Show>
            <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| meshtastic_channel_of(&s.room).is_some()))>
                <p class="public" data-testid="meshtastic-room">
                    "Meshtastic channel: not end-to-end encrypted, sender not verified. Anyone with the channel's key reads it and can write under any name; messages here go out as plain Meshtastic text."
                </p>
            </Show>
            <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| s.direct))>
                <p class="direct" data-testid="direct-room">
                    "Private conversation: only the two of you can read it."
                </p>
            </Show>
            <KeyWarning/>
            <CallInvites/>
            <CallPanel/>
            <TalkBar/>
            <SyncBar/>
            <RadioBar/>
            <FederationBar/>
            <LiveBar/>
            <Notice/>
            <MessageList/>
            <TypingLine/>
            <Composer/>
        </section>
    }
}

/// The room's other actions, one tap away: invite, mute, this device's radio.
#[component]
fn RoomMenu() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let open = RwSignal::new(false);
    let share = RwSignal::new(false);
    let radio = RwSignal::new(false);
    let live = RwSignal::new(false);
    let nearby = RwSignal::new(false);
    let export = RwSignal::new(false);
    let muted = move || state.session.with(|s| s.as_ref().is_some_and(|s| s.muted));
    let direct = move || state.session.with(|s| s.as_ref().is_some_and(|s| s.direct));
    let radio_on = move || state.web_radio.with(|r| r.connected);
    let choose = move |then: Box<dyn Fn()>| {
        open.set(false);
        then();
    };
    view! {
        // Escape closes the menu wherever the focus is within it (its button included).
        <span class="menu-wrap" on:keydown=move |event: ev::KeyboardEvent| {
            if event.key() == "Escape" {
                open.set(false);
            }
        }>
        <button
            type="button"
            class="ghost icon"
            class:on=radio_on
            data-testid="room-menu"
            aria-label="Room menu"
            aria-haspopup="menu"
            aria-expanded=move || open.get().to_string()
            on:click=move |_| open.update(|o| *o = !*o)
        >
            <MoreIcon/>
        </button>
        <Show when=move || open.get()>
            <div class="menu-backdrop" on:click=move |_| open.set(false)></div>
            <div class="menu" role="menu" data-testid="room-menu-items">
                <Show when=move || !direct()>
                    <button type="button" role="menuitem" data-testid="share" on:click=move |_| {
                        choose(Box::new(move || share.set(true)))
                    }>"Invite someone"</button>
                </Show>
                <button
                    type="button"
                    role="menuitemcheckbox"
                    data-testid="mute"
                    aria-checked=move || muted().to_string()
                    on:click=move |_| choose(Box::new(move || client.set_muted(!muted())))
                >
                    {move || if muted() { "Unmute notifications" } else { "Mute notifications" }}
                </button>
                <button type="button" role="menuitem" data-testid="map-button" on:click=move |_| {
                    choose(Box::new(move || state.map.set(Some(String::new()))))
                }>"Map"</button>
                <button type="button" role="menuitem" data-testid="nearby" on:click=move |_| {
                    choose(Box::new(move || nearby.set(true)))
                }>"People nearby"</button>
                <Show when=move || state.live_sharing.with(Option::is_none)>
                    <button type="button" role="menuitem" data-testid="share-live" on:click=move |_| {
                        choose(Box::new(move || live.set(true)))
                    }>"Share live position…"</button>
                </Show>
                <button
                    type="button"
                    role="menuitemcheckbox"
                    data-testid="walkie-talkie"
                    aria-checked=move || state.talk.with(Option::is_some).to_string()
                    on:click=move |_| {
                        let on = state.talk.with(Option::is_none);
                        choose(Box::new(move || client.call(crate::chat::CallAction::Listen(on))))
                    }
                >
                    {move || if state.talk.with(Option::is_some) { "Walkie-talkie: stop listening" } else { "Walkie-talkie" }}
                </button>
                <button type="button" role="menuitem" data-testid="export-room" on:click=move |_| {
                    choose(Box::new(move || export.set(true)))
                }>"Export this room…"</button>
                <button type="button" role="menuitem" class="danger" data-testid="sos" on:click=move |_| {
                    choose(Box::new(move || state.sos_open.set(true)))
                }>"Send SOS…"</button>
                <button type="button" role="menuitem" data-testid="radio-button" class:on=radio_on on:click=move |_| {
                    choose(Box::new(move || radio.set(true)))
                }>
                    {move || if radio_on() { "Radio on this device: connected" } else { "Radio on this device" }}
                </button>
            </div>
        </Show>
        </span>
        <ShareSheet open=share/>
        <RadioPanel open=radio/>
        <LiveSheet open=live/>
        <NearbySheet open=nearby/>
        <ExportSheet open=export/>
    }
}

/// The server's join code, asked for when the server wants it. Messages written meanwhile
/// stay queued on the device.
#[component]
fn CodeGate() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let code = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    // The typed code stays after a wrong try, to correct rather than retype.
    let submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        match client.unlock(&code.get_untracked()) {
            Ok(()) => local_error.set(None),
            Err(message) => local_error.set(Some(message)),
        }
    };
    let waiting = move || state.code_wait_s.get() > 0;
    let error = move || match state.code_wait_s.get() {
        0 => local_error.get().or_else(|| state.code_error.get()),
        1 => Some("Too many tries. Try again in 1 second.".into()),
        n => Some(format!("Too many tries. Try again in {n} seconds.")),
    };
    view! {
        <form class="gate" on:submit=submit data-testid="code-gate">
                <h1>"FieldMesh"</h1>
                <label for="join-code">"This FieldMesh asks for a join code"</label>
                <p class="hint">
                    "Ask the person running it. Capitals and extra spaces do not matter. \
                     Messages already written wait on this device until then."
                </p>
                <div class="gate-row">
                    <input
                        id="join-code"
                        data-testid="code-input"
                        type="text"
                        autocomplete="off"
                        autocapitalize="none"
                        maxlength="64"
                        placeholder="Join code"
                        prop:value=move || code.get()
                        on:input=move |event| code.set(event_target_value(&event))
                    />
                    <button type="submit" class="primary" data-testid="code-submit" disabled=waiting>
                        "Unlock"
                    </button>
                </div>
                <p class="error" role="alert" data-testid="code-error">{error}</p>
        </form>
    }
}

/// A new release is ready: reload into it when the person chooses (a draft is never lost to
/// an automatic reload).
#[component]
fn UpdateBanner() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    view! {
        <Show when=move || client.state.update_ready.get()>
            <div class="update" role="status" data-testid="update-ready">
                <span>"A new version of FieldMesh is ready."</span>
                <button class="primary" data-testid="apply-update" on:click=move |_| client.apply_update()>
                    "Reload"
                </button>
            </div>
        </Show>
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
