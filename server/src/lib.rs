//! FieldMesh server: serves the web app, stores every message in SQLite and relays messages
//! between connected clients.

pub mod access;
pub mod admit;
pub mod archive;
pub mod config;
pub mod error;
pub mod federation;
pub mod files;
pub mod hub;
pub mod landing;
pub mod map;
pub mod radio;
pub mod serve;
pub mod site;
pub mod store;
pub mod tls;
pub mod ws;

use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use leptos::prelude::LeptosOptions;
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
    /// What the page's hydration scripts are called.
    pub leptos_options: LeptosOptions,
    /// The message database.
    pub store: Store,
    /// Live followers of each room.
    pub hub: Hub,
    /// Messages sent on join.
    pub history_page: u16,
    /// Most bytes of messages one room may hold (`--room-quota-mb`).
    pub room_quota_bytes: u64,
    /// Turns `true` when the server is shutting down; connections close.
    pub shutdown: watch::Receiver<bool>,
    /// The web app's files.
    pub site: Arc<Site>,
    /// Join code and rate limits.
    pub access: Arc<access::Access>,
    /// The LoRa radio bridge (a no-op without `--radio`).
    pub radio: radio::Radio,
    /// The sealed pieces of shared files.
    pub chunks: files::ChunkStore,
    /// Largest file phones may send (`--max-file-mb`), told to each on connecting.
    pub max_file_bytes: u64,
    /// The operator's regional map (`--map`), opened once the server runs.
    pub map: Option<Arc<map::RegionalMap>>,
    /// The link to other camps over IP (`--federation`), started once the server runs.
    pub federation: Option<federation::Federation>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Arc<Site> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.site)
    }
}

impl AppState {
    /// Opens the store in `data_dir` and loads the web app according to `config`. The returned
    /// sender starts a graceful shutdown when it sends `true`.
    pub fn new(
        config: &Config,
        data_dir: &Path,
    ) -> Result<(Self, watch::Sender<bool>), ServerError> {
        let store = Store::open(data_dir)?;
        let mib = |mb: u32| u64::from(mb) * 1024 * 1024;
        let chunks = files::ChunkStore::open(
            data_dir,
            files::FileQuotas {
                total: mib(config.files_quota_mb),
                room: mib(config.files_room_quota_mb),
                device: mib(config.files_device_quota_mb),
            },
        )?;
        let site = Arc::new(match &config.site_root {
            Some(root) => Site::from_dir(root),
            None => Site::embedded(),
        });
        tracing::info!(build = %site.build_id, from = %site.origin, "web app loaded");
        let leptos_options = LeptosOptions::builder()
            .output_name("fieldmesh")
            .site_root(
                config
                    .site_root
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .to_string_lossy()
                    .into_owned(),
            )
            .site_pkg_dir("pkg")
            .site_addr(config.listen)
            .build();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let join_code = config.join_code()?;
        if config.radio_lend && join_code.is_none() {
            return Err(ServerError::Refused(
                "--radio-lend needs --join-code (or --join-code-file): otherwise anyone on the \
                 network could become this camp's radio"
                    .into(),
            ));
        }
        let code = match join_code {
            Some(code) => Some(access::JoinCode::set_up(&code, data_dir)?),
            None => None,
        };
        let access = access::Access::new(
            code,
            config.phones_per_address,
            config.trusted_proxies.clone(),
        );
        let hub = Hub::default();
        let options = radio::RadioOptions {
            lend_allowed: config.radio_lend,
            network: radio::network::load(config, data_dir)?,
            camp: config.camp_name(),
        };
        let radio = radio::Radio::start(config.radio(), options, store.clone(), hub.clone());
        let state = Self {
            max_file_bytes: u64::from(config.max_file_mb) * 1_000_000,
            leptos_options,
            store,
            hub,
            radio,
            history_page: config.history_page,
            room_quota_bytes: u64::from(config.room_quota_mb) * 1024 * 1024,
            shutdown,
            site,
            access,
            chunks,
            map: None,
            federation: None,
        };
        Ok((state, shutdown_tx))
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The whole app: the page, its files, and the WebSocket.
pub fn app(state: AppState) -> Router {
    // Rendering the page spawns tasks on Leptos's executor: tokio's (set once; a second call
    // finds it set).
    let _ = any_spawner::Executor::init_tokio();
    let options = state.leptos_options.clone();
    let context = options.clone();
    // The one page: the app at `/` (any other path is a file or not found).
    let page = leptos_axum::render_app_to_stream_with_context(
        move || leptos::prelude::provide_context(context.clone()),
        move || app::shell(options.clone()),
    );
    let router = Router::new()
        .route("/", get(page))
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .merge(files::routes())
        .merge(map::routes())
        .fallback(site::serve_asset)
        .with_state(state);
    protective_headers(router, DEFAULT_POLICY).layer(TraceLayer::new_for_http())
}

/// The policy of every response that sets none of its own (the page sends one with its
/// nonce): only this origin, never framed.
const DEFAULT_POLICY: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'";

/// Headers every response carries, so no other site can frame the app (and make a person
/// click "Codes match" or "Lend this radio" through a disguise), files are never taken for
/// another type, and no address leaks in a Referer; `policy` is the Content-Security-Policy
/// for responses that set none.
pub fn protective_headers(router: Router, policy: &'static str) -> Router {
    use axum::http::{header, HeaderValue};
    use tower_http::set_header::SetResponseHeaderLayer;
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}
