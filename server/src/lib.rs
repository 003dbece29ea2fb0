//! FieldMesh server: serves the web app, stores every message in SQLite and relays messages
//! between connected clients.

pub mod config;
pub mod error;
pub mod hub;
pub mod site;
pub mod store;
pub mod ws;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use error::ServerError;
use hub::Hub;
use site::Site;
use store::Store;

/// Everything a request handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Where the built web app lives and what it is called.
    pub leptos_options: LeptosOptions,
    /// The message database.
    pub store: Store,
    /// Live followers of each room.
    pub hub: Hub,
    /// Messages sent on join.
    pub history_page: u16,
    /// Turns `true` when the server is shutting down; connections close.
    pub shutdown: watch::Receiver<bool>,
    /// The built web app.
    pub site: Arc<Site>,
}

impl FromRef<AppState> for Arc<Site> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.site)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Opens the store and describes the web app according to `config`. The returned sender
    /// starts a graceful shutdown when it sends `true`.
    pub fn new(config: &Config) -> Result<(Self, watch::Sender<bool>), ServerError> {
        let store = Store::open(&config.data_dir)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("fieldmesh")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(config.listen)
            .build();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let site = Arc::new(Site::load(&config.site_root));
        tracing::info!(build = %site.build_id, "web app loaded");
        let state = Self {
            leptos_options,
            store,
            hub: Hub::default(),
            history_page: config.history_page,
            shutdown,
            site,
        };
        Ok((state, shutdown_tx))
    }
}

/// The whole HTTP application: the page, its assets, and the WebSocket.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/sw.js", get(site::service_worker))
        .leptos_routes(&state, routes, move || app::shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .with_state(state)
        .layer(TraceLayer::new_for_http())
}
