//! The home screen: your name, your rooms and private conversations (last message first),
//! the public Emergency room, a new room, and joining by an invite.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::{ev, prelude::*};
use mesh::body::MAX_DISPLAY_NAME_CHARS;
use mesh::envelope::MAX_ROOM_NAME_CHARS;

use crate::chat::{ChatClient, Notifications, RoomSummary};

/// What the screen says about rooms, in one place.
const HOW_ROOMS_WORK: &str = "A name you have not used makes a new private room on this device; \
     others join it through its invite (inside the room: ⋮, then Invite someone). A name you used before \
     reopens your room.";

#[component]
pub fn Home() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    // Prefilled with the name used last time (known once the browser has loaded it).
    let name = RwSignal::new(state.last_name.get_untracked());
    let room = RwSignal::new(String::new());
    let link = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let last = state.last_name.get();
        if name.get_untracked().is_empty() {
            name.set(last);
        }
    });
    // An invite link named the room: fill it in (in the browser only).
    Effect::new(move |_| {
        if let Some(invited) = state.invite_room.get() {
            room.set(invited);
        }
    });
    // What was typed before the app was ready comes back.
    Effect::new(move |_| {
        if let Some((early_name, early_room)) = state.early_join.get() {
            if !early_name.is_empty() {
                name.set(early_name);
            }
            if !early_room.is_empty() {
                room.set(early_room);
            }
        }
    });
    let outcome = move |result: Result<(), String>| match result {
        Ok(()) => error.set(None),
        Err(message) => error.set(Some(message)),
    };
    let join = move |event: ev::SubmitEvent| {
        event.prevent_default();
        outcome(client.join(&name.get_untracked(), &room.get_untracked()));
    };
    let open_invite = move |event: ev::SubmitEvent| {
        event.prevent_default();
        outcome(client.open_invite(&name.get_untracked(), &link.get_untracked()));
    };
    let emergency = move |_| outcome(client.join(&name.get_untracked(), "Emergency"));
    // The server's radio is a Meshtastic node: its channel's plain text has a room.
    let channel = move || state.radio.with(|r| r.as_ref()?.meshtastic_channel.clone());
    let open_channel = move |_| {
        if let Some(channel) = channel() {
            outcome(client.join(
                &name.get_untracked(),
                &format!(
                    "{}{channel}",
                    mesh::serial::meshtastic::MESHTASTIC_ROOM_PREFIX
                ),
            ));
        }
    };
    let open = move |id: String| outcome(client.open_room(&name.get_untracked(), &id));
    let has_rooms = move || state.rooms.with(|rooms| !rooms.is_empty());

    view! {
        <div class="home" data-testid="home">
            <header class="join-header">
                <Show when=has_rooms>
                    <span class="home-search"><super::search::SearchButton/></span>
                </Show>
                <h1>"FieldMesh"</h1>
                <p>"Chat that keeps working when the network does not."</p>
            </header>
            <Show when=move || state.can_install.get()>
                <button type="button" class="primary" data-testid="install-app" on:click=move |_| client.install()>
                    "Install app"
                </button>
                <p class="hint">"Installed, FieldMesh opens from the home screen even with no network at all."</p>
            </Show>
            <Show when=move || state.ios_install_hint.get()>
                <p class="hint" data-testid="ios-install-hint">
                    "To install on this iPhone or iPad: tap Share, then \"Add to Home Screen\". \
                     Installed, FieldMesh opens even with no network at all."
                </p>
            </Show>
            <label for="join-name">"Your name"</label>
            <input
                id="join-name"
                data-testid="join-name"
                type="text"
                autocomplete="nickname"
                maxlength=MAX_DISPLAY_NAME_CHARS
                placeholder="How others see you"
                prop:value=move || name.get()
                on:input=move |event| name.set(event_target_value(&event))
            />
            <p class="error" role="alert" data-testid="join-error">{move || error.get()}</p>
            <Show when=has_rooms>
                <h2>"Your rooms"</h2>
                <ul class="rooms" data-testid="rooms">
                    <For
                        each=move || state.rooms.get()
                        key=|room| {
                            (room.id.clone(), room.last.clone(), room.time.clone(), room.unread, room.muted)
                        }
                        let:room
                    >
                        <RoomItem room open=open/>
                    </For>
                </ul>
                <NotificationOffer/>
            </Show>
            <button type="button" class="emergency" data-testid="open-emergency" on:click=emergency>
                <strong>"Emergency"</strong>
                " · the public room: anyone here can read it"
            </button>
            {move || channel().map(|channel| view! {
                <button type="button" class="emergency meshtastic" data-testid="open-meshtastic" on:click=open_channel>
                    <strong>{format!("Meshtastic channel {channel}")}</strong>
                    " · plain text with the Meshtastic people around: not encrypted"
                </button>
            })}
            <form class="join" on:submit=join data-testid="join-form">
                <h2>"New room"</h2>
                <label for="join-room">"Room name"</label>
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
                <p class="hint" data-testid="join-hint">{HOW_ROOMS_WORK}</p>
                <button type="submit" class="primary" data-testid="join-submit">"Open room"</button>
            </form>
            <form class="join" on:submit=open_invite data-testid="invite-form">
                <h2>"Join with an invite"</h2>
                <label for="invite-paste">"Invite link"</label>
                <input
                    id="invite-paste"
                    data-testid="invite-paste"
                    type="url"
                    autocomplete="off"
                    autocapitalize="none"
                    required
                    placeholder="Paste the link you were sent"
                    prop:value=move || link.get()
                    on:input=move |event| link.set(event_target_value(&event))
                />
                <p class="hint">
                    "Or scan the invite's QR code with your phone's camera: it opens this app in \
                     the invited room."
                </p>
                <button type="submit" class="primary" data-testid="invite-open">"Join"</button>
            </form>
        </div>
    }
}

/// Notifications are offered once the person has a room to be told about; the browser asks
/// only after a tap.
#[component]
fn NotificationOffer() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || state.notifications.get() == Notifications::Ask>
            <div class="offer" data-testid="notify-offer">
                <p>"Be told when a message arrives while FieldMesh is in the background."</p>
                <button type="button" class="primary" data-testid="notify-on" on:click=move |_| client.enable_notifications()>
                    "Turn on notifications"
                </button>
            </div>
        </Show>
        <Show when=move || state.notifications.get() == Notifications::Blocked>
            <p class="hint" data-testid="notify-blocked">
                "Notifications are blocked for FieldMesh in this browser's site settings."
            </p>
        </Show>
    }
}

/// One room in the list: tap to open; × to forget it, after a question.
#[component]
fn RoomItem(room: RoomSummary, open: impl Fn(String) + Copy + 'static) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let asking = RwSignal::new(false);
    let id = room.id.clone();
    let forget_id = room.id.clone();
    let kind = if room.direct {
        "private"
    } else if room.public {
        "public"
    } else {
        ""
    };
    let forget_label = format!("Forget {}", room.name);
    let unread = crate::chat::unread_label(room.unread);
    let unread_label = unread
        .as_ref()
        .map(|n| format!("{n} unread"))
        .unwrap_or_default();
    let last = if room.last.is_empty() {
        "No messages yet".to_string()
    } else {
        room.last.clone()
    };
    view! {
        <li class="room-item" data-testid="room-item">
            <button type="button" class="room-open" data-testid="room-item-open" on:click=move |_| open(id.clone())>
                <span class="room-line">
                    <span class="room-name" data-testid="room-item-name">{room.name.clone()}</span>
                    <span class="tag">{kind}</span>
                    <span class="room-time" data-testid="room-item-time">{room.time.clone()}</span>
                </span>
                <span class="room-line">
                    <span class="room-last" data-testid="room-item-last">{last}</span>
                    {room.muted.then(|| view! { <span class="muted-mark" title="Muted" data-testid="room-item-muted"><super::icons::MutedIcon/></span> })}
                    {unread.map(|n| view! {
                        <span class="unread" class:quiet=room.muted aria-label=unread_label data-testid="room-item-unread">{n}</span>
                    })}
                </span>
            </button>
            <button
                type="button"
                class="ghost room-forget"
                data-testid="room-forget"
                aria-label=forget_label
                on:click=move |_| asking.set(true)
            >
                "×"
            </button>
            <Show when=move || asking.get()>
                <div class="forget-ask" role="alertdialog">
                    <span>"Forget this room and its messages on this device?"</span>
                    <button type="button" class="danger" data-testid="forget-confirm" on:click={
                        let id = forget_id.clone();
                        move |_| {
                            asking.set(false);
                            client.forget_room(&id);
                        }
                    }>"Forget"</button>
                    <button type="button" class="ghost" on:click=move |_| asking.set(false)>"Keep"</button>
                </div>
            </Show>
        </li>
    }
}
