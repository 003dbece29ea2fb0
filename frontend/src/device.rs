//! What this browser remembers between visits (localStorage) and the browser's clock and
//! randomness.

use mesh::{MessageId, SenderId};

const DEVICE_KEY: &str = "fieldmesh.device";
const NAME_KEY: &str = "fieldmesh.name";
const ROOM_KEY: &str = "fieldmesh.room";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

fn set(key: &str, value: Option<&str>) {
    if let Some(storage) = storage() {
        // Private browsing may refuse to store; the page still works for this visit.
        let _ = match value {
            Some(value) => storage.set_item(key, value),
            None => storage.remove_item(key),
        };
    }
}

/// Fills `buf` from the browser's cryptographic random source.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the browser provides crypto.getRandomValues");
    buf
}

/// A fresh, random message id.
pub(crate) fn new_message_id() -> MessageId {
    MessageId(random_bytes())
}

/// This browser's device id, made on first use and kept.
pub(crate) fn sender_id() -> SenderId {
    if let Some(id) = get(DEVICE_KEY).as_deref().and_then(SenderId::from_hex) {
        return id;
    }
    let id = SenderId(random_bytes());
    set(DEVICE_KEY, Some(&id.to_string()));
    id
}

/// The display name and room of the last visit, if the person was in a room.
pub(crate) fn remembered_session() -> (Option<String>, Option<String>) {
    (get(NAME_KEY), get(ROOM_KEY))
}

/// Remembers the display name, and the room (or that the person left it).
pub(crate) fn remember_session(name: &str, room: Option<&str>) {
    set(NAME_KEY, Some(name));
    set(ROOM_KEY, room);
}

/// Milliseconds since the Unix epoch by the browser's clock.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A time as people read it on this device: "14:05" today, "24 Nov 14:05" before.
pub(crate) fn format_time(ms: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let today = js_sys::Date::new_0();
    let clock = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    if date.to_date_string() == today.to_date_string() {
        clock
    } else {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS
            .get(date.get_month() as usize)
            .copied()
            .unwrap_or("?");
        format!("{} {month} {clock}", date.get_date())
    }
}
