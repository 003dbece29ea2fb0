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

/// Calls `object.name(args…)` and lets its promise, if any, settle on its own: a refusal is
/// not an error for the caller (and not an unhandled rejection).
pub(crate) fn call_detached(object: &JsValue, name: &str, args: &[JsValue]) {
    if let Ok(promise) = call(object, name, args).and_then(|p| p.dyn_into::<Promise>()) {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
    }
}
