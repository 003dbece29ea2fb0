//! Calls and the walkie-talkie of the room open now: the call button, a call going on that
//! this page may join, the call itself (a tile per person, the controls), and the
//! walkie-talkie's hold-to-talk bar.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::{ev, html, prelude::*};

use super::icons::PhoneIcon;
use crate::chat::{CallAction, CallTile, ChatClient};

/// Starts a voice call in the room (hidden while this page is in one).
#[component]
pub fn CallButton() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || state.call.with(Option::is_none)>
            <button
                type="button"
                class="ghost icon"
                data-testid="call-button"
                aria-label="Start a call"
                title="Start a call"
                on:click=move |_| client.call(CallAction::Start { video: false })
            >
                <PhoneIcon/>
            </button>
        </Show>
    }
}

/// Calls going on in the room that this page is not in: join or decline.
#[component]
pub fn CallInvites() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let shown = move || {
        if state.call.with(Option::is_some) {
            Vec::new()
        } else {
            state.call_invites.get()
        }
    };
    view! {
        <For each=shown key=|invite| (invite.id.clone(), invite.people, invite.declined, invite.full) let:invite>
            {
                let id = invite.id.clone();
                let id_video = invite.id.clone();
                let id_decline = invite.id.clone();
                let others = match invite.people {
                    1 => String::new(),
                    n => format!(" · {n} in the call"),
                };
                let line = if invite.declined || invite.people > 1 {
                    format!("Call with {}{others}", invite.caller)
                } else if invite.video {
                    format!("{} is calling (video)", invite.caller)
                } else {
                    format!("{} is calling", invite.caller)
                };
                view! {
                    <div class="call-invite" class:ringing=!invite.declined role="status" data-testid="call-invite" data-call=invite.id.clone()>
                        <span class="call-invite-line">{line}</span>
                        {if invite.full {
                            view! { <span class="hint" data-testid="call-full">"Full (6 people)"</span> }.into_any()
                        } else {
                            view! {
                                <span class="call-invite-actions">
                                    <button type="button" class="primary" data-testid="call-join"
                                        on:click=move |_| client.call(CallAction::Join { id: id_video.clone(), video: false })>
                                        "Join"
                                    </button>
                                    <button type="button" data-testid="call-join-video"
                                        on:click=move |_| client.call(CallAction::Join { id: id.clone(), video: true })>
                                        "With video"
                                    </button>
                                    {(!invite.declined).then(|| view! {
                                        <button type="button" class="call-decline" data-testid="call-decline"
                                            on:click=move |_| client.call(CallAction::Decline(id_decline.clone()))>
                                            "Decline"
                                        </button>
                                    })}
                                </span>
                            }.into_any()
                        }}
                    </div>
                }
            }
        </For>
    }
}

/// One person's tile: their picture (placed by the engine), name and state.
#[component]
fn Tile(tile: CallTile) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let id = tile.id.clone();
    let slot = NodeRef::<html::Div>::new();
    let handed = id.clone();
    slot.on_load(move |element| {
        client.call_media(&handed, element.into());
    });
    // The tile is made once per person; what changes is read from the call by id.
    let current = Memo::new(move |_| {
        state.call.with(|call| {
            call.as_ref()
                .and_then(|c| c.tiles.iter().find(|t| t.id == id).cloned())
        })
    });
    let current = move || current.get();
    let look = current;
    view! {
        <figure
            class="call-tile"
            class:speaking=move || current().is_some_and(|t| t.speaking)
            class:has-video=move || look().is_some_and(|t| t.video)
            data-testid="call-tile"
            data-peer=tile.id.clone()
            data-name=tile.name.clone()
            data-state=move || current().map(|t| t.state).unwrap_or_default()
            data-audio-bytes=move || current().map_or(0, |t| t.audio_bytes).to_string()
            data-video-bytes=move || current().map_or(0, |t| t.video_bytes).to_string()
        >
            <div class="call-media" node_ref=slot></div>
            <figcaption>
                <span class="call-name">{tile.name.clone()}</span>
                <span class="call-state">{move || current().map(|t| t.state).unwrap_or_default()}</span>
            </figcaption>
        </figure>
    }
}

/// The call this page is in: the people and the controls.
#[component]
pub fn CallPanel() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let in_call = move || state.call.with(Option::is_some);
    let flag = move |pick: fn(&crate::chat::CallView) -> bool| {
        move || state.call.with(|c| c.as_ref().is_some_and(pick))
    };
    let muted = flag(|c| c.muted);
    let camera = flag(|c| c.camera);
    let speaker = flag(|c| c.speaker);
    let speaking = flag(|c| c.speaking);
    let tiles = move || {
        state
            .call
            .with(|c| c.as_ref().map(|c| c.tiles.clone()).unwrap_or_default())
    };
    let count = move || {
        state.call.with(|c| {
            c.as_ref().map_or(0, |c| {
                c.tiles.iter().filter(|t| t.state != "left").count() + 1
            })
        })
    };
    let status = move || {
        state
            .call
            .with(|c| c.as_ref().and_then(|c| c.status.clone()))
    };
    view! {
        <Show when=in_call>
            <section class="call" aria-label="Call" data-testid="call-panel">
                <p class="call-line" role="status" data-testid="call-status">
                    {move || match count() {
                        1 => "In the call · waiting for others to join".to_string(),
                        n => format!("In the call · {n} people"),
                    }}
                    {move || status().map(|s| format!(" · {s}"))}
                </p>
                <div class="call-tiles">
                    <figure class="call-tile own" class:speaking=speaking class:has-video=camera data-testid="call-own">
                        <div class="call-media" node_ref={
                            let slot = NodeRef::<html::Div>::new();
                            slot.on_load(move |element| client.call_media("you", element.into()));
                            slot
                        }></div>
                        <figcaption>
                            <span class="call-name">"You"</span>
                            <span class="call-state">{move || if muted() { "muted" } else { "" }}</span>
                        </figcaption>
                    </figure>
                    <For each=tiles key=|tile| tile.id.clone() let:tile>
                        <Tile tile=tile/>
                    </For>
                </div>
                <div class="call-controls">
                    <button type="button" class:on=muted aria-pressed=move || muted().to_string() data-testid="call-mute"
                        on:click=move |_| client.call(CallAction::Mute(!muted()))>
                        {move || if muted() { "Unmute" } else { "Mute" }}
                    </button>
                    <button type="button" class:on=camera aria-pressed=move || camera().to_string() data-testid="call-camera"
                        on:click=move |_| client.call(CallAction::Camera(!camera()))>
                        {move || if camera() { "Camera off" } else { "Camera on" }}
                    </button>
                    <button type="button" class:on=move || !speaker() aria-pressed=move || (!speaker()).to_string() data-testid="call-speaker"
                        on:click=move |_| client.call(CallAction::Speaker(!speaker()))>
                        {move || if speaker() { "Silence" } else { "Sound on" }}
                    </button>
                    <button type="button" class="danger" data-testid="call-hang-up"
                        on:click=move |_| client.call(CallAction::HangUp)>
                        "Hang up"
                    </button>
                </div>
            </section>
        </Show>
    }
}

/// The walkie-talkie, while this page listens: who listens, who speaks, and the button to
/// hold while speaking (a finger, the mouse, or the space bar on it).
#[component]
pub fn TalkBar() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let listening = move || state.talk.with(Option::is_some);
    let holding = move || state.talk.with(|t| t.as_ref().is_some_and(|t| t.holding));
    let speaking = move || {
        state
            .talk
            .with(|t| t.as_ref().and_then(|t| t.speaking.clone()))
    };
    let busy = move || speaking().is_some() && !holding();
    let listeners = move || {
        state
            .talk
            .with(|t| t.as_ref().map(|t| t.listeners.clone()).unwrap_or_default())
    };
    let status = move || {
        state
            .talk
            .with(|t| t.as_ref().and_then(|t| t.status.clone()))
    };
    let press = move |down: bool| client.call(CallAction::Talk(down));
    view! {
        <Show when=listening>
            <section class="talk" aria-label="Walkie-talkie" data-testid="talk-bar">
                <div class="talk-line">
                    <span role="status" data-testid="talk-speaking">
                        {move || match speaking() {
                            Some(name) => format!("Speaking: {name}"),
                            None => match listeners().iter().filter(|t| t.state != "left").count() {
                                0 => "Walkie-talkie · nobody else is listening yet".to_string(),
                                1 => "Walkie-talkie · 1 other listening".to_string(),
                                n => format!("Walkie-talkie · {n} others listening"),
                            },
                        }}
                    </span>
                    <button type="button" class="talk-stop" data-testid="talk-stop"
                        on:click=move |_| client.call(CallAction::Listen(false))>
                        "Stop listening"
                    </button>
                </div>
                <div class="talk-people">
                    <For each=listeners key=|t| (t.id.clone(), t.state.clone(), t.speaking, t.audio_bytes / 4096) let:tile>
                        <span class="talk-person" class:speaking=tile.speaking data-testid="talk-listener"
                            data-name=tile.name.clone() data-state=tile.state.clone()
                            data-audio-bytes=tile.audio_bytes.to_string()>
                            {tile.name.clone()}
                            {(!tile.state.is_empty()).then(|| format!(" ({})", tile.state))}
                        </span>
                    </For>
                </div>
                <Show when=move || status().is_some()>
                    <p class="hint" role="alert" data-testid="talk-notice">{status}</p>
                </Show>
                <button
                    type="button"
                    class="talk-button"
                    class:holding=holding
                    data-testid="talk-button"
                    disabled=busy
                    aria-pressed=move || holding().to_string()
                    on:pointerdown=move |event: ev::PointerEvent| {
                        event.prevent_default();
                        press(true);
                    }
                    on:pointerup=move |_| press(false)
                    on:pointercancel=move |_| press(false)
                    on:pointerleave=move |_| if holding() { press(false) }
                    on:keydown=move |event: ev::KeyboardEvent| {
                        if (event.key() == " " || event.key() == "Enter") && !event.repeat() {
                            event.prevent_default();
                            press(true);
                        }
                    }
                    on:keyup=move |event: ev::KeyboardEvent| {
                        if event.key() == " " || event.key() == "Enter" {
                            press(false);
                        }
                    }
                    on:contextmenu=move |event: ev::MouseEvent| event.prevent_default()
                >
                    {move || if holding() {
                        "Speaking… let go to listen".to_string()
                    } else if let Some(name) = speaking() {
                        format!("{name} is speaking")
                    } else {
                        "Hold to talk".to_string()
                    }}
                </button>
            </section>
        </Show>
    }
}
