//! The browser's clock and randomness, and whether the app is in sight.

/// Bytes from the browser's cryptographic random source.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the browser provides crypto.getRandomValues");
    buf
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

/// Whether the app is out of sight (another app or tab in front, or the screen off).
pub(crate) fn hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden)
}
