//! Where people are: sharing this phone's position live in a room (for a chosen time, stopped
//! visibly), and "People nearby": the room's people by distance, with a compass arrow where
//! the phone knows which way it points.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::{ev, prelude::*};

use super::icons::PinIcon;
use crate::chat::{ChatClient, MapMarker, Nearby};

/// The choice of how long to share the position live in this room.
#[component]
pub(super) fn LiveSheet(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let choose = move |minutes: Option<u32>| {
        open.set(false);
        client.share_live(minutes);
    };
    view! {
        <Show when=move || open.get()>
            <div class="sheet" role="dialog" aria-label="Share your live position" data-testid="live-sheet"
                on:keydown=move |event: ev::KeyboardEvent| if event.key() == "Escape" { open.set(false) }>
                <h3>"Share your live position"</h3>
                <p class="hint">
                    "Everyone in this room sees where you are as you move, until the time is up or you \
                     stop. It is sealed like your messages: the server cannot read it."
                </p>
                <div class="sheet-column">
                    <button class="primary" data-testid="live-15" on:click=move |_| choose(Some(15))>"For 15 minutes"</button>
                    <button class="primary" data-testid="live-60" on:click=move |_| choose(Some(60))>"For 1 hour"</button>
                    <button class="primary" data-testid="live-open" on:click=move |_| choose(None)>"Until I stop"</button>
                    <button class="ghost" data-testid="live-close" on:click=move |_| open.set(false)>"Cancel"</button>
                </div>
            </div>
        </Show>
    }
}

/// "Sharing your live position here until 14:35 · Stop", while it is.
#[component]
pub(super) fn LiveBar() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || state.live_sharing.with(Option::is_some)>
            <div class="live-bar" role="status" data-testid="live-bar">
                <PinIcon/>
                <span>{move || format!("Sharing your live position here {}", state.live_sharing.get().unwrap_or_default())}</span>
                <button class="ghost small" data-testid="live-stop" on:click=move |_| client.stop_live()>"Stop"</button>
            </div>
        </Show>
    }
}

/// The room's people by distance from this phone (by how recent, while it does not know
/// where it is), each with which way to go.
#[component]
pub(super) fn NearbySheet(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    // Followed while open: this phone's position (if allowed) and its heading.
    Effect::new(move |was: Option<bool>| {
        let now = open.get();
        if was.is_some_and(|was| was != now) || (was.is_none() && now) {
            client.watch_nearby(now);
        }
        now
    });
    let entries = move || {
        let mine = state.my_position.get().map(|(p, _)| p);
        let mut people = state.nearby.get();
        if let Some(mine) = mine {
            people.sort_by(|a, b| {
                mine.distance_m(&a.position)
                    .total_cmp(&mine.distance_m(&b.position))
            });
        }
        people
    };
    view! {
        <Show when=move || open.get()>
            <div class="sheet nearby-sheet" role="dialog" aria-label="People nearby" data-testid="nearby-sheet"
                on:keydown=move |event: ev::KeyboardEvent| if event.key() == "Escape" { open.set(false) }>
                <h3>"People nearby"</h3>
                <p class="hint" data-testid="nearby-hint">
                    {move || if state.my_position.with(Option::is_none) {
                        "Where the others were last, newest first. Allow location for this site to see how far they are."
                    } else {
                        "Nearest first: where each was last, and which way."
                    }}
                </p>
                <Show
                    when=move || !state.nearby.with(Vec::is_empty)
                    fallback=|| view! { <p class="hint" data-testid="nearby-empty">"Nobody in this room has shared where they are yet."</p> }
                >
                    <ul class="nearby-list">
                        <For each=entries key=|n| (n.name.clone(), n.position, n.age.clone(), n.live) children=move |person| view! { <NearbyEntry person/> }/>
                    </ul>
                </Show>
                <div class="sheet-row">
                    <button class="ghost" data-testid="nearby-close" on:click=move |_| open.set(false)>"Close"</button>
                </div>
            </div>
        </Show>
    }
}

#[component]
fn NearbyEntry(person: Nearby) -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let position = person.position;
    let mine = move || state.my_position.get().map(|(p, _)| p);
    let line = move || match mine() {
        Some(mine) => format!(
            "{} · {}",
            mine.describe(&position),
            position.accuracy_label()
        ),
        None => format!("{} · {}", position.coordinates(), position.accuracy_label()),
    };
    // The arrow points the way to go: the bearing, less where the phone points.
    let arrow = move || {
        let (mine, heading) = (mine()?, state.heading.get()?);
        Some(format!(
            "transform: rotate({:.0}deg)",
            (mine.bearing_deg(&position) - heading).rem_euclid(360.0)
        ))
    };
    view! {
        <li class="nearby-entry" data-testid="nearby-entry">
            <span class="nearby-arrow" data-testid="nearby-arrow" aria-hidden="true" class:shown=move || arrow().is_some() style=move || arrow().unwrap_or_default()>"↑"</span>
            <span class="nearby-who">
                <span class="nearby-name" data-testid="nearby-name">{person.name}</span>
                {person.live.then(|| view! { <span class="nearby-live" data-testid="nearby-live">"live"</span> })}
                <span class="nearby-where" data-testid="nearby-where">{line}</span>
                <span class="nearby-age" data-testid="nearby-age">{person.age}</span>
            </span>
        </li>
    }
}

/// The map, over the whole screen: this phone, the room's people where they were last, its
/// messages with a position, and every SOS; a tap on a marker opens its message.
#[component]
pub(super) fn MapView() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let canvas = NodeRef::<leptos::html::Div>::new();
    // Drawn once its element is on the page; closed with it.
    Effect::new(move |_| {
        if let Some(element) = canvas.get() {
            let element: &web_sys::HtmlElement = &element;
            client.show_map(element.clone());
        }
    });
    on_cleanup(move || client.close_map());
    // The markers follow what the app knows.
    Effect::new(move |_| {
        let mut markers = Vec::new();
        if let Some((position, _)) = state.my_position.get() {
            markers.push(MapMarker {
                id: String::new(),
                kind: "me",
                position,
                label: "You".into(),
            });
        }
        for person in state.nearby.get() {
            markers.push(MapMarker {
                id: String::new(),
                kind: "person",
                position: person.position,
                label: format!("{} · {}", person.name, person.age),
            });
        }
        for message in state.messages.get() {
            if let Some(position) = message.position {
                let text: String = message.text.chars().take(40).collect();
                markers.push(MapMarker {
                    id: format!("message:{}", message.id),
                    kind: if message.signal == Some(mesh::body::Signal::Sos) {
                        "sos"
                    } else {
                        "message"
                    },
                    position,
                    label: if text.is_empty() {
                        message.author.clone()
                    } else {
                        format!("{}: {text}", message.author)
                    },
                });
            }
        }
        for alert in state.alerts.get() {
            if let Some(position) = alert.position {
                markers.push(MapMarker {
                    id: format!("sos:{}", alert.key),
                    kind: "sos",
                    position,
                    label: format!("SOS {}", alert.author),
                });
            }
        }
        let focus = state.map.get().unwrap_or_default();
        client.update_map(markers, focus);
    });
    view! {
        <div class="map-view" role="dialog" aria-label="Map" data-testid="map"
            on:keydown=move |event: ev::KeyboardEvent| if event.key() == "Escape" { state.map.set(None) }>
            <div class="map-canvas" node_ref=canvas data-testid="map-canvas"></div>
            <button class="primary map-close" data-testid="map-close" on:click=move |_| state.map.set(None)>"Close map"</button>
        </div>
    }
}
