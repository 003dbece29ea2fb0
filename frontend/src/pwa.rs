//! The installable app: service worker registration and updates, persistent storage.
//!
//! A new release's service worker installs beside the running one and waits; the page offers a
//! reload, and only then does the new worker take over and the page reload, so one page never
//! runs a mix of old and new files.

use std::cell::RefCell;

use app::{ChatState, Notifications};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorkerContainer, ServiceWorkerRegistration, ServiceWorkerState};

use crate::js::{call, call_async, call_detached};

thread_local! {
    static REGISTRATION: RefCell<Option<ServiceWorkerRegistration>> = const { RefCell::new(None) };
}

fn container() -> Option<ServiceWorkerContainer> {
    let navigator = web_sys::window()?.navigator();
    // Service workers exist only in a secure context (HTTPS or localhost).
    js_sys::Reflect::has(&navigator, &"serviceWorker".into())
        .ok()?
        .then(|| navigator.service_worker())
}

/// Asks the browser not to evict this site's storage (the outbox and history) under pressure.
pub(crate) async fn persist_storage() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let navigator = window.navigator();
    if !js_sys::Reflect::has(&navigator, &"storage".into()).unwrap_or(false) {
        return;
    }
    if let Ok(promise) = navigator.storage().persist() {
        let granted = JsFuture::from(promise)
            .await
            .map(|v| v.is_truthy())
            .unwrap_or(false);
        leptos::logging::log!("persistent storage granted: {granted}");
    }
}

/// Registers `/sw.js` and shows the update banner when a new release is waiting.
pub(crate) async fn register(state: ChatState) {
    let Some(workers) = container() else {
        leptos::logging::warn!(
            "no service worker here (not a secure context): the app will not work offline"
        );
        return;
    };
    let Ok(registration) = JsFuture::from(workers.register("/sw.js")).await else {
        leptos::logging::warn!("service worker registration failed");
        return;
    };
    let registration: ServiceWorkerRegistration = registration.unchecked_into();
    let has_controller = workers.controller().is_some();
    if registration.waiting().is_some() && has_controller {
        state.update_ready.set(true);
    }

    let watched = registration.clone();
    let on_update = Closure::<dyn FnMut()>::new(move || {
        let Some(installing) = watched.installing() else {
            return;
        };
        let worker = installing.clone();
        let on_state = Closure::<dyn FnMut()>::new(move || {
            // "installed" with a page already controlled means an update waits; the first
            // install simply takes over.
            let controlled = container().and_then(|c| c.controller()).is_some();
            if worker.state() == ServiceWorkerState::Installed && controlled {
                state.update_ready.set(true);
            }
        });
        installing.set_onstatechange(Some(on_state.as_ref().unchecked_ref()));
        on_state.forget();
    });
    registration.set_onupdatefound(Some(on_update.as_ref().unchecked_ref()));
    on_update.forget();
    REGISTRATION.with(|r| *r.borrow_mut() = Some(registration));
}

/// Lets the waiting worker take over and reloads once it has.
pub(crate) fn apply_update() {
    let Some(workers) = container() else { return };
    let on_change = Closure::<dyn FnMut()>::new(|| {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    });
    workers.set_oncontrollerchange(Some(on_change.as_ref().unchecked_ref()));
    on_change.forget();
    let waiting = REGISTRATION.with(|r| {
        r.borrow()
            .as_ref()
            .and_then(ServiceWorkerRegistration::waiting)
    });
    match waiting {
        Some(worker) => {
            let _ = worker.post_message(&JsValue::from_str("skip-waiting"));
        }
        None => {
            if let Some(window) = web_sys::window() {
                let _ = window.location().reload();
            }
        }
    }
}

thread_local! {
    /// The browser's offer to install the app (`beforeinstallprompt`), kept for the button.
    static INSTALL_OFFER: RefCell<Option<web_sys::Event>> = const { RefCell::new(None) };
}

/// What this browser can do for the app: install it (the button shows when it offers to),
/// the iPhone's "Add to Home Screen" hint, and the share sheet.
pub(crate) fn watch_install(state: ChatState) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let navigator = window.navigator();
    state
        .can_share
        .set(js_sys::Reflect::has(&navigator, &"share".into()).unwrap_or(false));
    let standalone = window
        .match_media("(display-mode: standalone)")
        .ok()
        .flatten()
        .is_some_and(|query| query.matches())
        || js_sys::Reflect::get(&navigator, &"standalone".into()).is_ok_and(|v| v.is_truthy());
    let agent = navigator.user_agent().unwrap_or_default();
    let ios = agent.contains("iPhone") || agent.contains("iPad");
    state.ios_install_hint.set(ios && !standalone);
    let offer = window_event_listener_untyped("beforeinstallprompt", move |event| {
        // Keep the offer for the app's own button rather than the browser's mini bar.
        event.prevent_default();
        INSTALL_OFFER.with(|offer| *offer.borrow_mut() = Some(event));
        state.can_install.set(true);
    });
    std::mem::forget(offer);
    let installed = window_event_listener_untyped("appinstalled", move |_| {
        INSTALL_OFFER.with(|offer| offer.borrow_mut().take());
        state.can_install.set(false);
    });
    std::mem::forget(installed);
}

/// Shows the browser's install dialog (after the person tapped "Install app").
pub(crate) fn install(state: ChatState) {
    let Some(offer) = INSTALL_OFFER.with(|offer| offer.borrow_mut().take()) else {
        return;
    };
    state.can_install.set(false);
    call_detached(&offer, "prompt", &[]);
}

/// Copies `text` to the clipboard; `false` when the browser would not.
pub(crate) async fn copy(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let Ok(clipboard) = js_sys::Reflect::get(&window.navigator(), &"clipboard".into()) else {
        return false;
    };
    call_async(&clipboard, "writeText", &[text.into()])
        .await
        .is_ok()
}

/// Opens the phone's share sheet with `title` and `url`. A person closing the sheet is not
/// an error.
pub(crate) async fn share(title: &str, url: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let data = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&data, &"title".into(), &title.into());
    let _ = js_sys::Reflect::set(&data, &"url".into(), &url.into());
    let _ = call_async(&window.navigator(), "share", &[data.into()]).await;
}

/// Whether this browser can show notifications, and whether the person allowed them. They go
/// through the service worker (phones allow no other way), so none without one.
pub(crate) fn notifications() -> Notifications {
    let Some(class) = notification_class() else {
        return Notifications::Unsupported;
    };
    match js_sys::Reflect::get(&class, &"permission".into())
        .ok()
        .and_then(|p| p.as_string())
        .as_deref()
    {
        Some("granted") => Notifications::On,
        Some("denied") => Notifications::Blocked,
        _ => Notifications::Ask,
    }
}

fn notification_class() -> Option<JsValue> {
    let window: JsValue = web_sys::window()?.into();
    let class = js_sys::Reflect::get(&window, &"Notification".into()).ok()?;
    (!class.is_undefined() && container().is_some()).then_some(class)
}

/// Asks the person to allow notifications (after they tapped the button) and says how it went.
pub(crate) async fn ask_notifications() -> Notifications {
    if let Some(class) = notification_class() {
        let _ = call_async(&class, "requestPermission", &[]).await;
    }
    notifications()
}

/// Shows a notification through the service worker. One per room (`tag`): a newer one replaces
/// it, with a sound and a buzz only when `alert`. Tapping it opens the room (see `sw.js`).
pub(crate) fn notify(title: &str, body: &str, room: &str, alert: bool) {
    if notifications() != Notifications::On {
        return;
    }
    let Some(registration) = REGISTRATION.with(|r| r.borrow().clone()) else {
        leptos::logging::warn!("no notification: the service worker is not registered yet");
        return;
    };
    let options = js_sys::Object::new();
    let data = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&data, &"room".into(), &room.into());
    for (name, value) in [
        ("body", JsValue::from(body)),
        ("tag", room.into()),
        ("renotify", alert.into()),
        ("silent", (!alert).into()),
        ("icon", "/icons/icon-192.png".into()),
        ("data", data.into()),
    ] {
        let _ = js_sys::Reflect::set(&options, &name.into(), &value);
    }
    let (title, options) = (JsValue::from(title), JsValue::from(options));
    wasm_bindgen_futures::spawn_local(async move {
        let shown = call_async(&registration, "showNotification", &[title, options]).await;
        // In the console (no text): a notification missing later was shown, or never was.
        match shown {
            Ok(_) => leptos::logging::log!("a notification was shown (alert: {alert})"),
            Err(error) => {
                let why = crate::js::error_message(&error).unwrap_or_default();
                leptos::logging::warn!("the notification was not shown: {why}");
            }
        }
    });
    if alert {
        if let Some(window) = web_sys::window() {
            let _ = call(&window.navigator(), "vibrate", &[200.into()]);
        }
    }
}

/// Unread messages in the title ("(3) FieldMesh") and on the app's icon where the system has
/// badges.
pub(crate) fn show_unread(total: u32) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Some(document) = window.document() {
        document.set_title(&match app::unread_label(total) {
            None => "FieldMesh".to_string(),
            Some(count) => format!("({count}) FieldMesh"),
        });
    }
    let navigator = window.navigator();
    if js_sys::Reflect::has(&navigator, &"setAppBadge".into()).unwrap_or(false) {
        match total {
            0 => call_detached(&navigator, "clearAppBadge", &[]),
            n => call_detached(&navigator, "setAppBadge", &[n.into()]),
        }
    }
}

/// Calls `open` with the room of a tapped notification (the service worker tells the page).
pub(crate) fn on_notification_tap(open: impl Fn(String) + 'static) {
    let Some(workers) = container() else { return };
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let data = js_sys::Reflect::get(&event, &"data".into()).unwrap_or(JsValue::NULL);
        let kind = js_sys::Reflect::get(&data, &"type".into())
            .ok()
            .and_then(|t| t.as_string());
        let room = js_sys::Reflect::get(&data, &"room".into())
            .ok()
            .and_then(|r| r.as_string());
        if let (Some("fieldmesh-open-room"), Some(room)) = (kind.as_deref(), room) {
            open(room);
        }
    });
    workers.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
}
