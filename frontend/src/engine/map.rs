//! The map: its code (Leaflet and `map.js`, served by this server from `/map/`) is fetched the
//! first time the map opens, never before, and the service worker keeps it for offline use.

use std::cell::RefCell;
use std::rc::Rc;

use app::MapMarker;
use js_sys::{Array, Function, Object, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::Engine;
use crate::js;

/// What the map needs, in order: its style, Leaflet, then FieldMesh's part.
const STYLE: &str = "/map/leaflet.css";
const SCRIPTS: [&str; 2] = ["/map/leaflet.js", "/map/map.js"];

/// The map part.
#[derive(Default)]
pub(super) struct Map {
    open: RefCell<Option<Open>>,
    /// The last markers, for a map that finishes loading after they were given.
    markers: RefCell<(Vec<MapMarker>, String)>,
}

/// A map on the screen.
struct Open {
    /// `null` while its code loads.
    handle: JsValue,
    _on_select: Closure<dyn FnMut(JsValue)>,
}

impl Map {
    /// Draws the map into `element`, fetching its code the first time.
    pub(super) fn show(&self, engine: &Rc<Engine>, element: web_sys::HtmlElement) {
        let weak = Rc::downgrade(engine);
        let on_select = Closure::<dyn FnMut(JsValue)>::new(move |id: JsValue| {
            let (Some(engine), Some(id)) = (weak.upgrade(), id.as_string()) else {
                return;
            };
            engine.map.selected(&engine, &id);
        });
        let select: JsValue = on_select
            .as_ref()
            .unchecked_ref::<Function>()
            .clone()
            .into();
        *self.open.borrow_mut() = Some(Open {
            handle: JsValue::NULL,
            _on_select: on_select,
        });
        let engine = Rc::clone(engine);
        spawn_local(async move {
            if let Err(error) = load().await {
                engine.notice(format!(
                    "The map could not be loaded: {}",
                    js::error_message(&error).unwrap_or_else(|| "its files are missing".into())
                ));
                engine.state.map.set(None);
                return;
            }
            let Some(api) = web_sys::window()
                .and_then(|w| Reflect::get(&w, &"fieldmeshMap".into()).ok())
                .filter(|a| !a.is_undefined())
            else {
                return;
            };
            // Closed while its code loaded.
            if engine.map.open.borrow().is_none() {
                return;
            }
            match js::call(&api, "open", &[element.into(), select]) {
                Ok(handle) => {
                    if let Some(open) = engine.map.open.borrow_mut().as_mut() {
                        open.handle = handle;
                    }
                    engine.map.draw();
                }
                Err(error) => engine.notice(format!(
                    "The map could not be shown: {}",
                    js::error_message(&error).unwrap_or_default()
                )),
            }
        });
    }

    /// Puts `markers` on the map (once it is drawn).
    pub(super) fn update(&self, markers: Vec<MapMarker>, focus: String) {
        *self.markers.borrow_mut() = (markers, focus);
        self.draw();
    }

    /// The map closed.
    pub(super) fn close(&self) {
        if let Some(open) = self.open.borrow_mut().take() {
            if !open.handle.is_null() {
                let _ = js::call(&open.handle, "close", &[]);
            }
        }
    }

    fn draw(&self) {
        let open = self.open.borrow();
        let Some(handle) = open.as_ref().map(|o| &o.handle).filter(|h| !h.is_null()) else {
            return;
        };
        let (markers, focus) = &*self.markers.borrow();
        let list: Array = markers
            .iter()
            .map(|marker| {
                let object = Object::new();
                for (name, value) in [
                    ("id", JsValue::from(marker.id.as_str())),
                    ("kind", marker.kind.into()),
                    ("lat", marker.position.latitude().into()),
                    ("lon", marker.position.longitude().into()),
                    ("accuracy", f64::from(marker.position.accuracy_m()).into()),
                    ("label", marker.label.as_str().into()),
                ] {
                    let _ = Reflect::set(&object, &name.into(), &value);
                }
                JsValue::from(object)
            })
            .collect();
        let update = Object::new();
        let _ = Reflect::set(&update, &"markers".into(), &list);
        let _ = Reflect::set(&update, &"focus".into(), &focus.as_str().into());
        let _ = js::call(handle, "update", &[update.into()]);
    }

    /// A marker was tapped: its message opens (the map closes), or its SOS.
    fn selected(&self, engine: &Rc<Engine>, id: &str) {
        if let Some(message) = id.strip_prefix("message:") {
            if let Some((_, room, _)) = engine.session.current_room() {
                engine.state.map.set(None);
                engine.search.open(engine, &room, message);
            }
        } else if let Some(key) = id.strip_prefix("sos:") {
            engine.state.map.set(None);
            engine.alerts.open(engine, key);
        }
    }
}

/// Adds the map's style and scripts to the page, once; resolves when they ran.
async fn load() -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or(JsValue::NULL)?;
    let loaded = |id: &str| document.get_element_by_id(id).is_some();
    if !loaded("fieldmesh-map-style") {
        let link = document.create_element("link")?;
        link.set_id("fieldmesh-map-style");
        link.set_attribute("rel", "stylesheet")?;
        link.set_attribute("href", STYLE)?;
        document.head().ok_or(JsValue::NULL)?.append_child(&link)?;
    }
    for (n, src) in SCRIPTS.iter().enumerate() {
        let id = format!("fieldmesh-map-script-{n}");
        if let Some(existing) = document.get_element_by_id(&id) {
            // Loaded, or loading (a second open while the first loads waits for it).
            if existing.get_attribute("data-loaded").is_some() {
                continue;
            }
            wait_for(&existing).await?;
            continue;
        }
        let script = document.create_element("script")?;
        script.set_id(&id);
        script.set_attribute("src", src)?;
        document
            .head()
            .ok_or(JsValue::NULL)?
            .append_child(&script)?;
        wait_for(&script).await?;
        script.set_attribute("data-loaded", "")?;
    }
    Ok(())
}

/// Resolves when `element` (a script) loaded, fails when it could not.
async fn wait_for(element: &web_sys::Element) -> Result<(), JsValue> {
    let element = element.clone();
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let _ = element.add_event_listener_with_callback("load", &resolve);
        let _ = element.add_event_listener_with_callback("error", &reject);
    });
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map(|_| ())
}
