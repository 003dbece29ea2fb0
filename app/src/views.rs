//! The screens: join form and room.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::{ev, html, prelude::*};
use mesh::body::{MAX_DISPLAY_NAME_CHARS, MAX_TEXT_CHARS};
use mesh::envelope::MAX_ROOM_NAME_CHARS;
use mesh::serial::Protocol;

use crate::chat::{ChatClient, ChatMessage, Connection, Delivery, RadioSettings, SyncStep};

/// Shows the join form until a room is chosen, then the room.
#[component]
pub fn ChatScreen() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let in_room = move || client.state.session.with(Option::is_some);
    view! {
        <main class="screen">
            <UpdateBanner/>
            <CodeGate/>
            <DirectAlert/>
            <Show when=in_room fallback=JoinForm>
                <RoomView/>
            </Show>
        </main>
    }
}

#[component]
fn JoinForm() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    // Prefilled with the name used last time (known once the browser has loaded it).
    let name = RwSignal::new(client.state.last_name.get_untracked());
    let room = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    // An invite link names the room in its fragment: fill it in (in the browser only).
    Effect::new(move |_| {
        if let Some(invite) = window()
            .location()
            .hash()
            .ok()
            .as_deref()
            .and_then(crate::invite::parse)
        {
            room.set(invite.room);
        }
    });

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
    .into_any()
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
                    <Presence/>
                </div>
                <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| !s.direct))>
                    <ShareButton/>
                </Show>
                <RadioButton/>
                <ConnectionBadge/>
            </header>
            <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| s.public))>
                <p class="public" data-testid="public-room">
                    "Public room: anyone can read it. Do not share private details here."
                </p>
            </Show>
            <Show when=move || state.session.with(|s| s.as_ref().is_some_and(|s| s.direct))>
                <p class="direct" data-testid="direct-room">
                    "Private conversation: only the two of you can read it."
                </p>
            </Show>
            <KeyWarning/>
            <SyncBar/>
            <RadioBar/>
            <Notice/>
            <MessageList/>
            <TypingLine/>
            <Composer/>
        </section>
    }
    .into_any()
}

#[component]
fn ConnectionBadge() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let label = move || match state.connection.get() {
        Connection::Connecting => "connecting…",
        Connection::Online => "online",
        Connection::Offline => "offline",
        Connection::Locked => "join code needed",
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

/// A QR code as SVG markup: only rectangles drawn from the text's bits, never the text itself.
fn qr_svg(text: &str) -> String {
    qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build()
        })
        .unwrap_or_default()
}

/// Shows a QR code and link that bring the next phone to this server and room.
#[component]
fn ShareButton() -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let open = RwSignal::new(false);
    let link = move || {
        let origin = window().location().origin().unwrap_or_default();
        let invite = state
            .session
            .with(|s| s.as_ref().map(|s| s.invite.clone()))
            .unwrap_or_default();
        format!("{origin}/#{invite}")
    };
    view! {
        <button class="ghost share" data-testid="share" aria-label="Invite someone" on:click=move |_| open.set(true)>
            "⇪"
        </button>
        <Show when=move || open.get()>
            <div class="sheet" role="dialog" aria-label="Invite someone" data-testid="share-sheet">
                <h3>"Invite someone"</h3>
                <p class="hint">"Let them scan this with their camera. It opens FieldMesh on this server, in this room. The link holds the room's key: whoever has it can read the room."</p>
                <div class="qr" data-testid="invite-qr" inner_html=move || qr_svg(&link())></div>
                <input class="link" readonly data-testid="invite-link" prop:value=link on:focus=move |event| {
                    event_target::<leptos::web_sys::HtmlInputElement>(&event).select();
                }/>
                <button class="primary" data-testid="share-close" on:click=move |_| open.set(false)>"Done"</button>
            </div>
        </Show>
    }
}

/// This browser's own USB radio (Web Serial): connect, settings, state, counters, lending.
#[component]
fn RadioButton() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let open = RwSignal::new(false);
    let protocol = RwSignal::new(Protocol::default());
    let baud = RwSignal::new(String::new());
    let frequency = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let radio = move || state.web_radio.get();
    let baud_hint = || {
        Protocol::ALL
            .map(|p| format!("{} ({})", p.default_baud(), p.name()))
            .join(" / ")
    };
    let connect = move |_| {
        let baud_text = baud.get_untracked();
        let default_baud = protocol.get_untracked().default_baud();
        let baud_value = if baud_text.trim().is_empty() {
            default_baud
        } else {
            match baud_text.trim().parse::<u32>() {
                Ok(b) if (300..=4_000_000).contains(&b) => b,
                _ => {
                    return error.set(Some(
                        "The speed is a number of baud, such as 115200.".into(),
                    ))
                }
            }
        };
        let frequency_text = frequency.get_untracked();
        let frequency_hz = if frequency_text.trim().is_empty() {
            None
        } else {
            match frequency_text.trim().parse::<f64>() {
                Ok(mhz) if (100.0..=1_000.0).contains(&mhz) => {
                    Some((mhz * 1_000_000.0).round() as u32)
                }
                _ => return error.set(Some("The frequency is in MHz, such as 868.1.".into())),
            }
        };
        error.set(None);
        client.radio_connect(RadioSettings {
            protocol: protocol.get_untracked(),
            baud: baud_value,
            frequency_hz,
        });
    };
    view! {
        <button class="ghost radio-button" class:on=move || radio().connected data-testid="radio-button"
            aria-label="Radio" on:click=move |_| open.set(true)>
            "📡"
        </button>
        <Show when=move || open.get()>
            <div class="sheet radio-panel" role="dialog" aria-label="This device's radio" data-testid="radio-panel">
                <h3>"Radio on this device"</h3>
                {move || if !radio().supported {
                    view! {
                        <p class="hint" data-testid="radio-unsupported">
                            "This browser cannot talk to a USB radio: Web Serial works in Chrome or Edge on a computer, not in Firefox, Safari or most phones. Your messages still travel through the server, and through its radio if it has one."
                        </p>
                    }.into_any()
                } else if radio().connected {
                    view! {
                        <p data-testid="radio-state"><strong>{move || radio().status}</strong>" · "{move || radio().protocol.name()}</p>
                        <p class="hint" data-testid="radio-counters">
                            {move || { let r = radio(); format!("{} frames heard · {} sent · {} errors", r.frames_in, r.frames_out, r.errors) }}
                        </p>
                        <label class="check">
                            <input type="checkbox" data-testid="radio-lend" prop:checked=move || radio().lending
                                prop:disabled=move || state.connection.get() != Connection::Online
                                on:change=move |event| client.radio_lend(event_target_checked(&event))/>
                            " Lend this radio to the server (its phones then reach the mesh through it)"
                        </label>
                        <p class="hint" data-testid="radio-lend-detail">{move || radio().lend_detail.unwrap_or_default()}</p>
                        <button data-testid="radio-disconnect" on:click=move |_| client.radio_disconnect()>"Disconnect"</button>
                    }.into_any()
                } else {
                    view! {
                        <p class="hint">"Plug a LoRa radio into this device's USB port and connect it: messages then reach other camps over the radio even with no server here."</p>
                        <p data-testid="radio-state">{move || radio().status}</p>
                        <label>"Protocol "
                            <select data-testid="radio-protocol" on:change=move |event| {
                                if let Ok(chosen) = event_target_value(&event).parse() {
                                    protocol.set(chosen);
                                }
                            }>
                                {Protocol::ALL.map(|p| view! {
                                    <option value=p.name() selected=p == Protocol::default()>{p.label()}</option>
                                })}
                            </select>
                        </label>
                        <label>"Speed (baud) "
                            <input inputmode="numeric" placeholder=baud_hint data-testid="radio-baud"
                                prop:value=baud on:input=move |event| baud.set(event_target_value(&event))/>
                        </label>
                        <label>"RNode frequency (MHz, optional) "
                            <input inputmode="decimal" placeholder="868.1" data-testid="radio-frequency"
                                prop:value=frequency on:input=move |event| frequency.set(event_target_value(&event))/>
                        </label>
                        <p class="error" role="alert">{move || error.get()}</p>
                        <button class="primary" data-testid="radio-connect" on:click=connect>"Connect a radio"</button>
                    }.into_any()
                }}
                <button data-testid="radio-close" on:click=move |_| open.set(false)>"Close"</button>
            </div>
        </Show>
    }
}

/// Everyone in the room with their safety codes; compare a code with the person's own phone
/// and mark them verified.
#[component]
fn Roster(open: RwSignal<bool>) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    view! {
        <Show when=move || open.get()>
            <div class="sheet roster" role="dialog" aria-label="People in this room" data-testid="roster">
                <h3>"People here"</h3>
                <p class="hint">
                    "Your safety code: " <b data-testid="own-code">{move || state.own_code.get()}</b>
                    <br/>
                    "Ask each person to read their code from their own phone. If it matches, mark them verified."
                </p>
                <ul class="people">
                    <For
                        each=move || state.roster.get()
                        key=|entry| (entry.id.clone(), entry.verified, entry.keys_changed)
                        children=move |entry| {
                            let id = entry.id.clone();
                            view! {
                                <li class:changed=entry.keys_changed data-testid="roster-entry">
                                    <span class="who">
                                        <b data-testid="roster-name">{entry.name.clone()}</b>
                                        {entry.you.then_some(" (you)")}
                                        {entry.verified.then_some(view! { <span class="verified" data-testid="verified">" ✓ verified"</span> })}
                                        {entry.keys_changed.then_some(view! { <span class="warn">" ⚠ new keys"</span> })}
                                    </span>
                                    <code data-testid="roster-code">{entry.code.clone()}</code>
                                    {(!entry.you && !entry.verified).then(|| {
                                        let id = id.clone();
                                        view! {
                                            <button class="ghost small" data-testid="mark-verified" on:click=move |_| client.verify(&id)>
                                                "Codes match: mark verified"
                                            </button>
                                        }
                                    })}
                                    {(!entry.you).then(|| view! {
                                        <button class="ghost small" data-testid="message-privately" on:click=move |_| {
                                            open.set(false);
                                            client.open_direct(&id);
                                        }>
                                            "Message privately"
                                        </button>
                                    })}
                                </li>
                            }
                        }
                    />
                </ul>
                <button class="primary" data-testid="roster-close" on:click=move |_| open.set(false)>"Done"</button>
            </div>
        </Show>
    }
}

/// "Ben wrote to you privately · Open"
#[component]
fn DirectAlert() -> impl IntoView {
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
fn KeyWarning() -> impl IntoView {
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
fn Presence() -> impl IntoView {
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
        <button class="presence" data-testid="presence" on:click=move |_| roster.set(true)>{text}</button>
        <Roster open=roster/>
    }
}

/// Offline with N queued, or the progress of a long sync.
#[component]
fn SyncBar() -> impl IntoView {
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
    .into_any()
}

/// The server's radio: shown only when it has one.
#[component]
fn RadioBar() -> impl IntoView {
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

/// "Ben is typing…"
#[component]
fn TypingLine() -> impl IntoView {
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

/// The server's join code, asked for when the server wants it. Messages written meanwhile
/// stay queued on the device.
#[component]
fn CodeGate() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let code = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let submit = move |event: ev::SubmitEvent| {
        event.prevent_default();
        match client.unlock(&code.get_untracked()) {
            Ok(()) => {
                local_error.set(None);
                code.set(String::new());
            }
            Err(message) => local_error.set(Some(message)),
        }
    };
    let error = move || local_error.get().or_else(|| state.code_error.get());
    view! {
        <Show when=move || state.code_needed.get()>
            <form class="gate" on:submit=submit data-testid="code-gate">
                <label for="join-code">"This FieldMesh asks for a join code"</label>
                <p class="hint">"Ask the person running it. Messages you write meanwhile wait on this device."</p>
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
                    <button type="submit" class="primary" data-testid="code-submit">"Unlock"</button>
                </div>
                <p class="error" role="alert" data-testid="code-error">{error}</p>
            </form>
        </Show>
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
                key=|message| (message.id.clone(), message.delivery, message.author.clone())
                children=move |message| view! { <MessageRow message/> }
            />
        </div>
    }
    .into_any()
}

/// Pixels as `f64`, whatever integer or float type web-sys gives scroll offsets in.
fn px(value: impl Into<f64>) -> f64 {
    value.into()
}

#[component]
fn MessageRow(message: ChatMessage) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let id = message.id.clone();
    let state = client.state;
    let delivery = message.own.then(|| match message.delivery {
        Delivery::Queued => {
            let label = move || {
                if state.connection.get() == Connection::Online { "sending…" } else { "queued" }
            };
            view! { <span class="state" data-testid="message-state">{label}</span> }.into_any()
        }
        Delivery::Stored | Delivery::ViaRadio => {
            view! { <span class="state" data-testid="message-state">"✓ stored on server"</span> }.into_any()
        }
        Delivery::Relayed => {
            view! { <span class="state relayed" data-testid="message-state">"📡 relayed by radio"</span> }.into_any()
        }
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
                {(message.delivery == Delivery::ViaRadio).then(|| view! {
                    <span class="via-radio" title="Came over the radio from another camp; the name is not confirmed by a signature">"📡 via radio"</span>
                })}
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
                on:input=move |event| {
                    draft.set(event_target_value(&event));
                    client.typing();
                }
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
    .into_any()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_svg_without_the_text() {
        let svg = qr_svg("https://x/#room=<script>");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(!svg.contains("<script>"));
    }
}
