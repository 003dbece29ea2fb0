//! The installable app: service worker registration and updates, persistent storage.
//!
//! A new release's service worker installs beside the running one and waits; the page offers a
//! reload, and only then does the new worker take over and the page reload, so one page never
//! runs a mix of old and new files.

use std::cell::RefCell;

use app::ChatState;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorkerContainer, ServiceWorkerRegistration, ServiceWorkerState};

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
