//! Icons drawn as SVG in the text colour: they look the same on every device, with or
//! without an emoji font.
// `#[component]` turns each function into a public props struct and function; crate-private
// components are still reported as unreachable `pub` items.
#![allow(unreachable_pub)]

use leptos::prelude::*;

/// A magnifying glass.
#[component]
pub(super) fn SearchIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round">
            <circle cx="10.5" cy="10.5" r="6.5"/>
            <path d="M15.5 15.5 21 21"/>
        </svg>
    }
}

/// Three dots: more actions.
#[component]
pub(super) fn MoreIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="currentColor">
            <circle cx="12" cy="5" r="2.2"/>
            <circle cx="12" cy="12" r="2.2"/>
            <circle cx="12" cy="19" r="2.2"/>
        </svg>
    }
}

/// A bell struck through: muted.
#[component]
pub(super) fn MutedIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg small" viewBox="0 0 24 24" role="img" aria-label="muted" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
            <path d="M6 16V11a6 6 0 0 1 10.4-4.1M18 11v5l2 2H4l2-2"/>
            <path d="M10 20a2 2 0 0 0 4 0"/>
            <path d="M3 3 21 21"/>
        </svg>
    }
}

/// A camera: attach a photo.
#[component]
pub(super) fn CameraIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round">
            <path d="M4 8h3l2-3h6l2 3h3v11H4z"/>
            <circle cx="12" cy="13" r="3.5"/>
        </svg>
    }
}

/// A paper clip: attach any file.
#[component]
pub(super) fn ClipIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">
            <path d="M20 11.5 12.3 19.2a5 5 0 0 1-7.1-7.1l8.1-8.1a3.3 3.3 0 0 1 4.7 4.7l-8 8a1.7 1.7 0 0 1-2.4-2.4l7.3-7.3"/>
        </svg>
    }
}

/// A sheet of paper: a file.
#[component]
pub(super) fn FileIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg small" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round">
            <path d="M6 3h8l4 4v14H6z"/>
            <path d="M14 3v4h4"/>
        </svg>
    }
}

/// A microphone: hold to record a voice note.
#[component]
pub(super) fn MicIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">
            <rect x="9" y="3" width="6" height="11" rx="3"/>
            <path d="M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21"/>
        </svg>
    }
}

/// A map pin: a place.
#[component]
pub(super) fn PinIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linejoin="round">
            <path d="M12 21s-6.5-6.2-6.5-11.2a6.5 6.5 0 0 1 13 0C18.5 14.8 12 21 12 21Z"/>
            <circle cx="12" cy="9.8" r="2.3"/>
        </svg>
    }
}

/// A telephone handset: call.
#[component]
pub(super) fn PhoneIcon() -> impl IntoView {
    view! {
        <svg class="icon-svg" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
            <path d="M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2"/>
        </svg>
    }
}
