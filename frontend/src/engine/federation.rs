//! The server's link to other camps over IP: the bar's line, its "synced 4 min ago" kept
//! current.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use mesh::FederationStatus;

use super::Engine;

/// How often "synced 4 min ago" moves on.
const TICK: Duration = Duration::from_secs(30);

/// The federation part.
#[derive(Default)]
pub(super) struct Federation {
    status: RefCell<Option<FederationStatus>>,
    ticking: Cell<bool>,
}

impl Federation {
    /// The server said how its link stands.
    pub(super) fn on_status(&self, engine: &Rc<Engine>, status: FederationStatus) {
        *self.status.borrow_mut() = Some(status);
        self.show(engine);
        if self.ticking.replace(true) {
            return;
        }
        let weak = Rc::downgrade(engine);
        spawn_local(async move {
            loop {
                super::location::sleep(TICK).await;
                let Some(engine) = weak.upgrade() else { return };
                engine.federation.show(&engine);
            }
        });
    }

    fn show(&self, engine: &Engine) {
        let line = self
            .status
            .borrow()
            .as_ref()
            .map(|status| client::federation::line(status, js_sys::Date::now() as u64));
        engine.state.federation.set(line);
    }
}
