//! The message list (newest at the bottom, older on request) and the composer.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::either::Either;
use leptos::{ev, html, prelude::*};
use mesh::body::MAX_TEXT_CHARS;
use mesh::serial::meshtastic::meshtastic_channel_of;

use super::icons::{CameraIcon, ClipIcon, FileIcon, MicIcon, PinIcon};
use crate::chat::{ChatClient, ChatFile, ChatMessage, Connection, Delivery, PhotoSize};
use crate::text::{is_long, pieces, Piece};
use mesh::body::{FileKind, Signal};
use mesh::geo::Position;

#[component]
pub(super) fn MessageList() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let list = NodeRef::<html::Div>::new();
    let last_count = StoredValue::new(0usize);
    // Whether the newest message was in view at the last scroll: then it stays in view when
    // the list's own height changes (a banner above it appears, the keyboard opens).
    let at_bottom = StoredValue::new(true);
    let near_bottom = move |element: &web_sys::HtmlDivElement| {
        px(element.scroll_height()) - px(element.scroll_top()) - px(element.client_height()) < 160.0
    };
    Effect::new(move |_| {
        use wasm_bindgen::{closure::Closure, JsCast};
        let Some(element) = list.get() else { return };
        let follow = element.clone();
        let resized = Closure::<dyn Fn()>::new(move || {
            if at_bottom.get_value() {
                follow.scroll_to_with_x_and_y(0.0, px(follow.scroll_height()));
            }
        });
        if let Ok(observer) = web_sys::ResizeObserver::new(resized.as_ref().unchecked_ref()) {
            observer.observe(&element);
            // Lives as long as the list: both go when the room closes.
            on_cleanup(move || observer.disconnect());
        }
        resized.forget();
    });

    // Keep the newest message in view when new ones arrive, unless the person has scrolled up
    // to read older ones (or older ones were just prepended).
    Effect::new(move |_| {
        let count = state.messages.with(Vec::len);
        let Some(element) = list.get() else { return };
        let previous = last_count.get_value();
        last_count.set_value(count);
        if count > previous
            && (near_bottom(&element) || previous == 0)
            && !state.loading_older.get_untracked()
        {
            element.scroll_to_with_x_and_y(0.0, px(element.scroll_height()));
        }
    });

    // A found message that was opened: brought into view, marked, and the list stops
    // following the newest.
    Effect::new(move |_| {
        let Some(id) = state.focus.get() else { return };
        state.messages.track();
        let Some(element) = list.get() else { return };
        // Ids are hex: nothing in them needs escaping in a selector.
        let Ok(Some(found)) = element.query_selector(&format!("[data-id=\"{id}\"]")) else {
            return;
        };
        at_bottom.set_value(false);
        let options = web_sys::ScrollIntoViewOptions::new();
        options.set_block(web_sys::ScrollLogicalPosition::Center);
        found.scroll_into_view_with_scroll_into_view_options(&options);
        let _ = found.class_list().add_1("found");
        state.focus.set(None);
    });

    view! {
        <div
            class="messages"
            node_ref=list
            data-testid="message-list"
            aria-live="polite"
            on:scroll=move |event| {
                let element = event_target::<web_sys::HtmlDivElement>(&event);
                at_bottom.set_value(near_bottom(&element));
            }
        >
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
                key=|message| (
                    message.id.clone(),
                    message.delivery,
                    message.author.clone(),
                    message.verified,
                    message.delivered_to.len(),
                )
                children=move |message| view! { <MessageRow message/> }
            />
        </div>
    }
}

/// Pixels as `f64`, whatever integer or float type web-sys gives scroll offsets in.
pub(super) fn px(value: impl Into<f64>) -> f64 {
    value.into()
}

#[component]
pub(super) fn MessageRow(message: ChatMessage) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let id = message.id.clone();
    let state = client.state;
    let delivered_to = message.delivered_to.join(", ");
    // One shape for every state but a failed one (a button to retry), so no view is boxed.
    let failed = message.delivery == Delivery::Failed && delivered_to.is_empty();
    let shown = message.delivery;
    let (class, title) = if !delivered_to.is_empty() {
        (
            "state delivered",
            Some("A phone in each of these camps opened it with the room key and said so over the radio"),
        )
    } else if shown == Delivery::Relayed {
        ("state relayed", None)
    } else {
        ("state", None)
    };
    let label = move || {
        if !delivered_to.is_empty() {
            return format!("✓✓ delivered to {delivered_to}");
        }
        match shown {
            Delivery::Queued if state.connection.get() == Connection::Online => "sending…",
            Delivery::Queued => "queued",
            Delivery::Stored | Delivery::ViaRadio => "✓ stored on server",
            Delivery::Relayed => "📡 relayed by radio",
            Delivery::Failed => "failed",
        }
        .to_string()
    };
    let delivery = message.own.then(|| {
        if failed {
            Either::Right(view! {
                <button class="state failed" data-testid="message-retry" on:click=move |_| client.retry(&id)>
                    "failed · tap to retry"
                </button>
            })
        } else {
            Either::Left(view! { <span class=class title=title data-testid="message-state">{label}</span> })
        }
    });
    view! {
        <article class="message" class:own=message.own class:sos=message.signal == Some(Signal::Sos) data-testid="message" data-id=message.id.clone()>
            <header>
                <span class="author" data-testid="message-author">{message.author}</span>
                {message.verified.then(|| view! {
                    <span class="verified" data-testid="message-verified" title="You compared safety codes with this person">"✓ verified"</span>
                })}
                <time>{message.time}</time>
                {(message.delivery == Delivery::ViaRadio).then(|| view! {
                    <span class="via-radio" title="Came over the radio from another camp; the name is not confirmed by a signature">"📡 via radio"</span>
                })}
            </header>
            {message.signal.and_then(signal_line).map(|(class, text)| view! {
                <p class=class data-testid="message-signal">{text}</p>
            })}
            {(!message.text.is_empty()).then(|| view! { <MessageText text=message.text/> })}
            {(!message.files.is_empty()).then(|| view! {
                <MessageFiles files=message.files.clone()/>
            })}
            {message.position.map(|position| view! { <MessagePlace position own=message.own id=message.id.clone()/> })}
            {(message.own && message.delivery == Delivery::Queued && !message.files.is_empty())
                .then(|| view! { <UploadLine id=message.id.clone()/> })}
            {delivery}
        </article>
    }
}

/// What a message with a signal says above its text: its class and words.
fn signal_line(signal: Signal) -> Option<(&'static str, &'static str)> {
    match signal {
        Signal::Sos => Some(("signal sos", "SOS: needs help")),
        Signal::Safe { .. } => Some(("signal safe", "✓ Safe now: the SOS is over")),
        Signal::Coming { .. } => Some(("signal coming", "On the way to help")),
        Signal::Live { .. } => None,
    }
}

/// A message's text in its own direction (right to left for Arabic or Hebrew), web addresses
/// as links, and a long message folded behind "Show more".
#[component]
fn MessageText(text: String) -> impl IntoView {
    let long = is_long(&text);
    let expanded = RwSignal::new(false);
    let pieces = pieces(&text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Either::Left(text),
            Piece::Link(url) => {
                let href = url.clone();
                Either::Right(view! {
                    <a href=href target="_blank" rel="noopener noreferrer nofollow" data-testid="message-link">
                        {url}
                    </a>
                })
            }
        })
        .collect_view();
    view! {
        <p class="text" class:folded=move || long && !expanded.get() dir="auto" data-testid="message-text">{pieces}</p>
        {long.then(|| view! {
            <button class="ghost small more" data-testid="show-more" on:click=move |_| expanded.update(|e| *e = !*e)>
                {move || if expanded.get() { "Show less" } else { "Show more" }}
            </button>
        })}
    }
}

/// Where a message was sent from: how far and which way from this phone when it knows where
/// it is ("1.2 km NE · ±8 m"), else the coordinates.
#[component]
fn MessagePlace(position: Position, own: bool, id: String) -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let focus = format!("message:{id}");
    let line = move || {
        let accuracy = position.accuracy_label();
        match state.my_position.get() {
            Some(_) if own => format!("sent from here · {accuracy}"),
            Some((mine, _)) => format!("{} · {accuracy}", mine.describe(&position)),
            None => format!("{} · {accuracy}", position.coordinates()),
        }
    };
    let title = format!(
        "Sent from {} ({})",
        position.coordinates(),
        position.accuracy_label()
    );
    view! {
        <button type="button" class="place" data-testid="message-place" title=title
            on:click=move |_| state.map.set(Some(focus.clone()))>
            <PinIcon/>
            <span>{line}</span>
        </button>
    }
}

/// The files of a message: photos shown (fetched when shown), voice notes and other files
/// fetched when tapped; each with its progress, and what went wrong with a retry.
#[component]
fn MessageFiles(files: Vec<ChatFile>) -> impl IntoView {
    files
        .into_iter()
        .map(|file| view! { <MessageFile file/> })
        .collect_view()
}

#[component]
fn MessageFile(file: ChatFile) -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let key = file.key.clone();
    let transfer = {
        let key = key.clone();
        Memo::new(move |_| {
            state
                .transfers
                .with(|t| t.get(&key).cloned().unwrap_or_default())
        })
    };
    let url = move || transfer.with(|t| t.url.clone());
    let photo = matches!(file.kind, FileKind::Photo { .. });
    if photo {
        // Photos are fetched as soon as they are shown.
        let key = key.clone();
        Effect::new(move |_| client.open_file(&key));
    }
    let stored_key = StoredValue::new(key.clone());
    let open = move |_| stored_key.with_value(|key| client.open_file(key));
    let share = move |_| stored_key.with_value(|key| client.share_file(key));
    let name = StoredValue::new(file.name.clone());
    let (what, label) = match file.kind {
        FileKind::Photo { width, height } => (
            "photo",
            format!("Photo, {} × {} · {}", width, height, file.size),
        ),
        FileKind::Voice { millis } => (
            "voice",
            format!(
                "Voice note, {} · {}",
                mesh::body::duration(millis),
                file.size
            ),
        ),
        FileKind::Document => ("document", format!("{} · {}", file.name, file.size)),
    };
    let ratio = match file.kind {
        FileKind::Photo { width, height } if width > 0 && height > 0 => {
            format!("aspect-ratio: {width} / {height}")
        }
        _ => String::new(),
    };
    let thumbnail = file.thumbnail.clone();
    let voice = matches!(file.kind, FileKind::Voice { .. });
    let picture = photo.then(|| {
        let alt = file.name.clone();
        view! {
            // Once opened, a tap shows the photo whole, at its own size, in a tab of its own.
            <a
                class="picture"
                style=ratio.clone()
                data-testid="file-photo-link"
                href=move || url().unwrap_or_default()
                target="_blank"
                rel="noopener"
                aria-disabled=move || url().is_none().then_some("true")
                on:click=move |event| {
                    if url().is_none() {
                        event.prevent_default();
                    }
                }
            >
                <img
                    data-testid="file-photo"
                    alt=alt
                    class:blurred=move || url().is_none()
                    src=move || url().or_else(|| thumbnail.clone()).unwrap_or_default()
                />
            </a>
        }
    });
    let media_type = file.media_type.clone();
    view! {
        <div class=format!("file {what}") data-testid="file" data-kind=what data-type=media_type>
            {picture}
            <div class="file-line">
                <span class="file-label">
                    {(what == "document").then(|| view! { <FileIcon/>" " })}
                    <span data-testid="file-label">{label}</span>
                </span>
                <Show when=move || url().is_none() && !transfer.with(|t| t.running) && (!photo || transfer.with(|t| t.error.is_some()))>
                    <button class="ghost small" data-testid="file-open" on:click=open>
                        {move || if transfer.with(|t| t.error.is_some()) { "Try again" } else if voice { "▶ Play" } else { "Download" }}
                    </button>
                </Show>
                <Show when=move || url().is_some()>
                    <a class="button ghost small" data-testid="file-save" href=move || url().unwrap_or_default() download=move || name.get_value()>"Save"</a>
                    <Show when=move || state.can_share.get()>
                        <button class="ghost small" data-testid="file-share" on:click=share>"Share"</button>
                    </Show>
                </Show>
            </div>
            <Show when=move || voice && url().is_some()>
                <audio controls data-testid="file-audio" src=move || url().unwrap_or_default()></audio>
            </Show>
            <Show when=move || transfer.with(|t| t.running)>
                <div class="progress" role="progressbar" aria-label="Downloading">
                    <div class="progress-fill" style=move || format!("width: {}%", transfer.with(|t| t.percent()))></div>
                </div>
            </Show>
            <Show when=move || transfer.with(|t| t.error.is_some())>
                <p class="file-error" data-testid="file-error">{move || transfer.with(|t| t.error.clone())}</p>
            </Show>
        </div>
    }
}

/// An own message that waits for its files to reach the server: how far the upload is.
#[component]
fn UploadLine(id: String) -> impl IntoView {
    let state = expect_context::<ChatClient>().state;
    let transfer = Memo::new(move |_| state.transfers.with(|t| t.get(&id).cloned()));
    let text = move || {
        transfer.with(|t| match t {
            Some(t) if t.error.is_some() => {
                format!("Not uploaded: {}", t.error.clone().unwrap_or_default())
            }
            Some(t) if t.running => format!("Uploading {} %", t.percent()),
            Some(t) if t.total > 0 && t.done >= t.total => "Uploaded; sending…".to_string(),
            Some(t) => format!("Upload waits for the server ({} % there)", t.percent()),
            None => "Files wait for the server".to_string(),
        })
    };
    view! {
        <div class="upload" data-testid="upload-state">
            <span>{text}</span>
            <div class="progress" role="progressbar" aria-label="Uploading">
                <div class="progress-fill" style=move || format!("width: {}%", transfer.with(|t| t.as_ref().map_or(0, |t| t.percent())))></div>
            </div>
        </div>
    }
}

/// The files attached to the message being written, each with a way to take it out, and the
/// size photos go at.
#[component]
fn Drafts() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let state = client.state;
    let has_photo = move || state.drafts.with(|d| d.iter().any(|f| f.photo));
    view! {
        <Show when=move || {
            !state.drafts.with(Vec::is_empty)
                || state.preparing.with(Option::is_some)
                || state.recording.with(Option::is_some)
                || state.attach_place.get()
        }>
            <div class="drafts" data-testid="drafts">
                <For
                    each=move || state.drafts.get()
                    key=|draft| draft.id
                    children=move |draft| {
                        let id = draft.id;
                        let label = format!("Remove {}", draft.name);
                        view! {
                            <div class="draft" data-testid="draft">
                                {draft.preview.map(|src| view! { <img src=src alt=""/> })}
                                <span class="draft-name">{draft.name}</span>
                                <span class="draft-size">{draft.size}</span>
                                <button
                                    type="button"
                                    class="ghost small"
                                    aria-label=label
                                    data-testid="draft-remove"
                                    disabled=move || state.preparing.with(Option::is_some)
                                    on:click=move |_| client.unattach(id)
                                >"✕"</button>
                            </div>
                        }
                    }
                />
                <Show when=has_photo>
                    <label class="photo-size">
                        "Photo size "
                        <select
                            data-testid="photo-size"
                            on:change=move |event| {
                                let size = match event_target_value(&event).as_str() {
                                    "small" => PhotoSize::Small,
                                    "original" => PhotoSize::Original,
                                    _ => PhotoSize::Medium,
                                };
                                state.photo_size.set(size);
                            }
                        >
                            {[PhotoSize::Small, PhotoSize::Medium, PhotoSize::Original].map(|size| view! {
                                <option value=size.label() selected=move || state.photo_size.get() == size>{size.label()}</option>
                            })}
                        </select>
                        <span class="hint">" · location removed"</span>
                    </label>
                </Show>
                <Show when=move || state.attach_place.get()>
                    <p class="place-status" role="status" data-testid="place-status">
                        {move || match state.my_position.get() {
                            Some((position, _)) => format!("Your position goes with your messages · {}", position.accuracy_label()),
                            None => "Finding your position… (turn on the phone's location)".to_string(),
                        }}
                    </p>
                </Show>
                <Show when=move || state.preparing.with(Option::is_some)>
                    <p class="preparing" role="status" data-testid="preparing">{move || state.preparing.get()}</p>
                </Show>
                <Show when=move || state.recording.with(Option::is_some)>
                    <p class="recording" role="status" data-testid="recording">
                        {move || {
                            let seconds = state.recording.get().unwrap_or(0);
                            format!("Recording {}:{:02} · let go to attach it (2:00 at most)", seconds / 60, seconds % 60)
                        }}
                    </p>
                </Show>
            </div>
        </Show>
    }
}

/// A hidden file picker behind a button: `accept` narrows what it offers.
fn picked(event: &ev::Event) -> Vec<web_sys::File> {
    let input = event_target::<web_sys::HtmlInputElement>(event);
    let files = input
        .files()
        .map(|list| (0..list.length()).filter_map(|i| list.get(i)).collect())
        .unwrap_or_default();
    // The same file can be picked again later.
    input.set_value("");
    files
}

#[component]
pub(super) fn Composer() -> impl IntoView {
    let client = expect_context::<ChatClient>();
    let draft = RwSignal::new(String::new());
    let input = NodeRef::<html::Textarea>::new();

    let has_files = move || !client.state.drafts.with(Vec::is_empty);
    // Files that could not be sent give their caption back.
    Effect::new(move |_| {
        if let Some(text) = client.state.caption_back.get() {
            client.state.caption_back.set(None);
            if draft.with_untracked(|d| d.trim().is_empty()) {
                draft.set(text);
            }
        }
    });
    // In a Meshtastic channel's room what is written goes out as plain text, name included,
    // at most 200 bytes.
    let meshtastic_bytes = move || {
        client.state.session.with(|s| {
            let s = s.as_ref()?;
            meshtastic_channel_of(&s.room)?;
            Some(draft.with(|d| mesh::serial::meshtastic::text_bytes(&s.name, d)))
        })
    };
    let over_meshtastic =
        move || meshtastic_bytes().is_some_and(|n| n > mesh::serial::meshtastic::MAX_TEXT_BYTES);

    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() && !has_files() {
            return;
        }
        if let Some(bytes) = meshtastic_bytes().filter(|_| over_meshtastic()) {
            client.state.notice.set(Some(format!(
                "A Meshtastic channel takes at most 200 bytes with your name; this is {bytes}. \
                 Shorten it."
            )));
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
        // On a computer Enter sends and Shift+Enter makes a new line; on a touch screen Enter
        // makes a new line and the button sends (as phone chat apps do). Never while an input
        // method composes.
        if event.key() == "Enter"
            && !event.shift_key()
            && !event.is_composing()
            && !client.state.touch.get_untracked()
        {
            event.prevent_default();
            send();
        }
    };
    let remaining = move || MAX_TEXT_CHARS as i64 - draft.with(|d| d.chars().count()) as i64;
    view! {
        <Drafts/>
        {move || meshtastic_bytes().map(|bytes| view! {
            <p class="meshtastic-send" class:over=over_meshtastic data-testid="meshtastic-send">
                {format!("Goes out as plain Meshtastic text, not encrypted · {bytes}/200 bytes")}
            </p>
        })}
        <form class="composer" on:submit=move |event: ev::SubmitEvent| { event.prevent_default(); send(); }>
            <label class="attach" title="Photo from the camera or gallery">
                <input type="file" accept="image/*" multiple data-testid="attach-photo" on:change=move |event| client.attach(picked(&event))/>
                <CameraIcon/>
                <span class="visually-hidden">"Attach a photo"</span>
            </label>
            <label class="attach" title="Any file">
                <input type="file" multiple data-testid="attach-file" on:change=move |event| client.attach(picked(&event))/>
                <ClipIcon/>
                <span class="visually-hidden">"Attach a file"</span>
            </label>
            <button
                type="button"
                class="attach record"
                class:on=move || client.state.recording.with(Option::is_some)
                title="Hold to record a voice note"
                aria-label="Hold to record a voice note"
                data-testid="record-voice"
                on:pointerdown=move |event: ev::PointerEvent| {
                    event.prevent_default();
                    client.record_voice(true);
                }
                on:pointerup=move |_| client.record_voice(false)
                on:pointercancel=move |_| client.record_voice(false)
                on:pointerleave=move |_| client.record_voice(false)
                on:contextmenu=move |event: ev::MouseEvent| event.prevent_default()
                on:keydown=move |event: ev::KeyboardEvent| {
                    if (event.key() == " " || event.key() == "Enter") && !event.repeat() {
                        event.prevent_default();
                        client.record_voice(true);
                    }
                }
                on:keyup=move |event: ev::KeyboardEvent| {
                    if event.key() == " " || event.key() == "Enter" {
                        client.record_voice(false);
                    }
                }
            >
                <MicIcon/>
            </button>
            <button
                type="button"
                class="attach place"
                class:on=move || client.state.attach_place.get()
                title=move || if client.state.attach_place.get() { "Your position goes with your messages: tap to stop" } else { "Send your position with your messages" }
                aria-label="Send my position with messages"
                aria-pressed=move || client.state.attach_place.get().to_string()
                data-testid="attach-place"
                on:click=move |_| client.attach_place(!client.state.attach_place.get_untracked())
            >
                <PinIcon/>
            </button>
            <textarea
                node_ref=input
                data-testid="composer-input"
                rows="1"
                placeholder="Message"
                aria-label="Message"
                enterkeyhint=move || if client.state.touch.get() { "enter" } else { "send" }
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
                disabled=move || (draft.with(|d| d.trim().is_empty()) && !has_files()) || over_meshtastic()
                aria-label="Send"
            >
                "Send"
            </button>
        </form>
    }
}
