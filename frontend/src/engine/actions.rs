//! The actions the views call, each handed to the part it belongs to.

use std::rc::Rc;

use app::{ChatActions, RadioSettings};
use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::ClientFrame;

use super::Engine;
use crate::pwa;

/// The engine as the views see it.
pub(super) struct Actions(pub(super) Rc<Engine>);

impl ChatActions for Actions {
    fn join(&self, name: &str, room: &str) -> Result<(), String> {
        self.0.session.join(&self.0, name, room)
    }

    fn leave(&self) {
        self.0.session.leave(&self.0);
    }

    fn open_room(&self, name: &str, id: &str) -> Result<(), String> {
        self.0.session.open_room(&self.0, name, id)
    }

    fn forget_room(&self, id: &str) {
        self.0.session.forget_room(&self.0, id);
    }

    fn open_invite(&self, name: &str, link: &str) -> Result<(), String> {
        self.0.session.open_invite(&self.0, name, link)
    }

    fn enable_notifications(&self) {
        let state = self.0.state;
        spawn_local(async move { state.notifications.set(pwa::ask_notifications().await) });
    }

    fn set_muted(&self, muted: bool) {
        self.0.session.set_muted(&self.0, muted);
    }

    fn search(&self, query: &str, here: bool) {
        self.0.search.run(&self.0, query, here);
    }

    fn open_found(&self, room: &str, id: &str) {
        self.0.search.open(&self.0, room, id);
    }

    fn install(&self) {
        pwa::install(self.0.state);
    }

    fn copy(&self, text: &str, done: Box<dyn FnOnce(bool)>) {
        let text = text.to_string();
        spawn_local(async move { done(pwa::copy(&text).await) });
    }

    fn share(&self, title: &str, url: &str) {
        let (title, url) = (title.to_string(), url.to_string());
        spawn_local(async move { pwa::share(&title, &url).await });
    }

    fn export_room(&self, html: bool) {
        super::export::export_room(&self.0, html);
    }

    fn send(&self, text: &str) -> Result<(), String> {
        self.0.outbox.write(&self.0, text)
    }

    fn load_older(&self) {
        self.0.inbox.load_older(&self.0);
    }

    fn retry(&self, id: &str) {
        self.0.outbox.retry(&self.0, id.to_string());
    }

    fn typing(&self) {
        self.0.people.send_typing(&self.0);
    }

    fn apply_update(&self) {
        pwa::apply_update();
    }

    fn unlock(&self, code: &str) -> Result<(), String> {
        let code = code.trim();
        if code.is_empty() {
            return Err("Enter the join code.".into());
        }
        let Some(device) = self.0.session.sender() else {
            return Err("The app is still starting; try again in a moment.".into());
        };
        if !self.0.connection.send(&ClientFrame::Unlock {
            code: code.to_string(),
            device,
        }) {
            return Err("The server is not reachable right now; try again when it is.".into());
        }
        self.0.state.code_error.set(None);
        Ok(())
    }

    fn verify(&self, id: &str) {
        self.0.people.verify(&self.0, id);
    }

    fn open_direct(&self, id: &str) {
        self.0.session.open_direct(&self.0, id);
    }

    fn radio_connect(&self, settings: RadioSettings) {
        self.0.radio.connect(&self.0, settings);
    }

    fn radio_disconnect(&self) {
        self.0.radio.disconnect(&self.0);
    }

    fn radio_lend(&self, lend: bool) {
        self.0.radio.lend(&self.0, lend);
    }

    fn attach(&self, files: Vec<web_sys::File>) {
        self.0.files.attach(&self.0, files);
    }

    fn unattach(&self, id: u32) {
        self.0.files.unattach(&self.0, id);
    }

    fn open_file(&self, key: &str) {
        self.0.files.open(&self.0, key);
    }

    fn share_file(&self, key: &str) {
        self.0.files.share(&self.0, key);
    }

    fn record_voice(&self, start: bool) {
        if start {
            self.0.voice.start(&self.0);
        } else {
            self.0.voice.stop(&self.0);
        }
    }

    fn attach_place(&self, on: bool) {
        self.0.location.set_attach(&self.0, on);
    }

    fn send_sos(&self, note: &str) {
        self.0.alerts.send(&self.0, note);
    }

    fn answer_sos(&self, key: &str) {
        self.0.alerts.answer(&self.0, key);
    }

    fn open_sos(&self, key: &str) {
        self.0.alerts.open(&self.0, key);
    }

    fn share_live(&self, minutes: Option<u32>) {
        self.0.location.share_live(&self.0, minutes);
    }

    fn stop_live(&self) {
        self.0.location.stop_live(&self.0);
    }

    fn watch_nearby(&self, open: bool) {
        self.0.location.watch_nearby(&self.0, open);
    }

    fn show_map(&self, element: web_sys::HtmlElement) {
        self.0.map.show(&self.0, element);
    }

    fn update_map(&self, markers: Vec<app::MapMarker>, focus: String) {
        self.0.map.update(markers, focus);
    }

    fn close_map(&self) {
        self.0.map.close();
    }

    fn call(&self, action: app::CallAction) {
        self.0.calls.act(&self.0, action);
    }

    fn call_media(&self, id: &str, element: web_sys::HtmlElement) {
        self.0.calls.media(id, element);
    }
}
