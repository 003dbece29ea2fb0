//! Browser APIs reached by name through `Reflect`, so the page works where one is missing and
//! an object injected by a test works like the real one.

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Calls `object.name(args…)`.
pub(crate) fn call(object: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &name.into())?.dyn_into()?;
    function.apply(object, &args.iter().collect::<Array>())
}

/// Calls `object.name(args…)` and awaits the promise it returns.
pub(crate) async fn call_async(
    object: &JsValue,
    name: &str,
    args: &[JsValue],
) -> Result<JsValue, JsValue> {
    let promise: Promise = call(object, name, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

/// A JavaScript error's message (or the thrown string), if it has one.
pub(crate) fn error_message(error: &JsValue) -> Option<String> {
    Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
}

/// `new File(parts, name, {type: media_type})`: bytes the page holds as a file it can show,
/// play, save or share.
pub(crate) fn new_file(parts: &Array, name: &str, media_type: &str) -> Result<JsValue, JsValue> {
    let options = js_sys::Object::new();
    Reflect::set(&options, &"type".into(), &media_type.into())?;
    let class: Function = Reflect::get(&js_sys::global(), &"File".into())?.dyn_into()?;
    Reflect::construct(&class, &Array::of3(parts, &name.into(), &options))
}

/// Calls `object.name(args…)` and lets its promise, if any, settle on its own: a refusal is
/// not an error for the caller (and not an unhandled rejection).
pub(crate) fn call_detached(object: &JsValue, name: &str, args: &[JsValue]) {
    if let Ok(promise) = call(object, name, args).and_then(|p| p.dyn_into::<Promise>()) {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
    }
}
