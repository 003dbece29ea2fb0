//! Federation: camps with any IP path between them share every message through NATS
//! JetStream, so history, files and news travel whenever a link exists.
//!
//! Each camp talks to a NATS server with JetStream in a domain of its own: usually its own
//! leaf server ([`leaf`], started and watched by this server), linked to a hub. Streams:
//!
//! - `FM_OUT_<camp>`, in the camp's domain: every envelope stored here (written by a phone
//!   or heard by radio), published as it is stored. The camp's own server holds it, so
//!   storing never waits on a link.
//! - `FM_ALL`, in the hub's domain: sources every camp's `FM_OUT_…` (each camp adds itself)
//!   and, after an outage, carries on from where each source stopped.
//!
//! Each camp reads `FM_ALL` from the sequence after the last one it took (kept in its own
//! database, so a camp restarted from an empty database reads it all again), checks every
//! envelope as it checks a phone's, and stores it idempotently. What came from federation is
//! never published back. NATS holds ciphertext only: what the server itself holds.

pub mod leaf;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use mesh::file::{ChunkId, SEALED_CHUNK_BYTES};
use mesh::{Envelope, Kind, RoomId, MAX_BODY_BYTES, MAX_ENVELOPE_BYTES};
use tokio::sync::watch;

use crate::error::ServerError;
use crate::files::ChunkStore;
use crate::hub::Hub;
use crate::store::{Origin, Store};

/// The hub's stream of every camp's messages.
pub const ALL_STREAM: &str = "FM_ALL";
/// How often a camp says it is there, and checks that it is still among `FM_ALL`'s sources.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// A camp not heard for this long is no longer counted as linked.
const LINKED_FOR: Duration = Duration::from_secs(16);
/// How long a reader waits for news before it asks the hub whether it is still up to date.
const SYNC_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Most envelopes stored in one transaction.
const BATCH: usize = 256;
/// Most camps remembered as heard.
const MAX_CAMPS: usize = 1_000;
/// Longest camp name taken from an announcement.
const MAX_CAMP_NAME_BYTES: usize = 64;

/// How this server reaches NATS.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// The NATS server of this camp (or the hub), unless [`FederationConfig::leaf`] starts one.
    pub url: String,
    /// How to log in to it.
    pub credentials: Option<Credentials>,
    /// Start and watch this camp's own leaf server, linked to a hub.
    pub leaf: Option<leaf::LeafConfig>,
    /// The hub's JetStream domain.
    pub hub_domain: String,
    /// Most bytes each stream keeps (the oldest go first).
    pub max_bytes: i64,
    /// Most bytes of messages one room may hold here (`--room-quota-mb`), for what comes in.
    pub room_quota_bytes: u64,
    /// This camp's name, as other camps see it.
    pub camp: String,
}

/// How to log in to a NATS server.
#[derive(Clone)]
pub enum Credentials {
    /// A user name and password.
    Password {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A NATS credentials file (a user JWT and its key).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
            Self::CredsFile(path) => write!(f, "CredsFile({})", path.display()),
        }
    }
}

impl Credentials {
    /// Reads `path`: a NATS `.creds` file, or "USER:PASSWORD" on the first line.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
            context: format!("cannot read the federation credentials {}", path.display()),
            source,
        })?;
        if text.contains("-----BEGIN NATS USER JWT-----") {
            return Ok(Self::CredsFile(path.to_path_buf()));
        }
        let line = text.lines().next().unwrap_or_default().trim();
        match line.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok(Self::Password {
                    user: user.to_string(),
                    password: password.to_string(),
                })
            }
            _ => Err(ServerError::Refused(format!(
                "{} holds neither a NATS .creds file nor \"USER:PASSWORD\" on its first line",
                path.display()
            ))),
        }
    }

    async fn apply(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, ServerError> {
        match self {
            Self::Password { user, password } => {
                Ok(options.user_and_password(user.clone(), password.clone()))
            }
            Self::CredsFile(path) => {
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| ServerError::Io {
                        context: format!("cannot use the NATS credentials {}", path.display()),
                        source,
                    })
            }
        }
    }
}

pub use mesh::FederationStatus;

/// Most pieces of files asked of other camps at once.
const FETCHES_AT_ONCE: usize = 8;
/// Most pieces sent to other camps at once (more requests wait for a later ask).
const SENDS_AT_ONCE: usize = 4;
/// How long other camps get to send a piece.
const FETCH_WITHIN: Duration = Duration::from_secs(5);

/// The running federation link. Cheap to clone.
#[derive(Clone)]
pub struct Federation {
    client: async_nats::Client,
    fetches: Arc<tokio::sync::Semaphore>,
    status: watch::Receiver<FederationStatus>,
    /// The camp's leaf server, kept alive as long as the federation is.
    _leaf: Option<Arc<leaf::Leaf>>,
}

impl Federation {
    /// Starts linking this camp: the leaf server first (when asked), then the NATS client and
    /// its tasks. Fails only on what the operator must fix (no `nats-server`, bad
    /// credentials file); an unreachable hub is retried for ever.
    pub async fn start(
        config: FederationConfig,
        data_dir: &Path,
        store: Store,
        hub: Hub,
        radio: crate::radio::Radio,
        chunks: ChunkStore,
    ) -> Result<Self, ServerError> {
        let camp_id = mesh::hex::encode(&store.id[..5]);
        let (url, credentials, leaf) = match &config.leaf {
            Some(leaf_config) => {
                let leaf = leaf::Leaf::start(leaf_config, data_dir, &camp_id).await?;
                let url = leaf.url();
                let credentials = Some(leaf.credentials());
                (url, credentials, Some(Arc::new(leaf)))
            }
            None => (config.url.clone(), config.credentials.clone(), None),
        };
        let (status_tx, status) = watch::channel(FederationStatus::default());
        let shared = Arc::new(Shared {
            store,
            hub,
            radio,
            camp_id,
            config,
            status: status_tx,
            camps: Mutex::default(),
            last_synced_ms: Mutex::default(),
            problem: Mutex::default(),
        });
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("fieldmesh {}", shared.camp_id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((250 * attempt.min(20) as u64).max(250))
            });
        if let Some(credentials) = &credentials {
            options = credentials.apply(options).await?;
        }
        let client = options
            .connect(url.as_str())
            .await
            .map_err(|error| ServerError::Refused(format!("federation: {error}")))?;
        tracing::info!(%url, camp = %shared.camp_id, "federation: linking this camp");
        tokio::spawn(Arc::clone(&shared).run(client.clone()));
        tokio::spawn(send_chunks(client.clone(), chunks));
        Ok(Self {
            client,
            fetches: Arc::new(tokio::sync::Semaphore::new(FETCHES_AT_ONCE)),
            status,
            _leaf: leaf,
        })
    }

    /// What the app shows, as it changes.
    pub fn status(&self) -> watch::Receiver<FederationStatus> {
        self.status.clone()
    }

    /// Asks the linked camps for the piece `id`; the first that has it answers. `None` when
    /// none answered in time, or what came is not that piece.
    pub async fn fetch_chunk(&self, id: ChunkId) -> Option<axum::body::Bytes> {
        let _turn = self.fetches.acquire().await.ok()?;
        let asked = self
            .client
            .request(format!("fieldmesh.chunk.{id}"), axum::body::Bytes::new());
        let reply = match tokio::time::timeout(FETCH_WITHIN, asked).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                tracing::debug!(%error, "federation: no camp sent a piece");
                return None;
            }
            Err(_) => return None,
        };
        let valid = reply.payload.len() <= SEALED_CHUNK_BYTES && ChunkId::of(&reply.payload) == id;
        if !valid {
            tracing::warn!("federation: a camp sent a piece that does not match its name");
        }
        valid.then_some(reply.payload)
    }
}

/// Answers other camps' asks for pieces this camp has (camps that lack one stay quiet).
async fn send_chunks(client: async_nats::Client, chunks: ChunkStore) {
    let sends = Arc::new(tokio::sync::Semaphore::new(SENDS_AT_ONCE));
    let mut backoff = Backoff::default();
    loop {
        match client.subscribe("fieldmesh.chunk.*").await {
            Ok(mut asks) => {
                backoff.reset();
                while let Some(ask) = asks.next().await {
                    let (Some(reply), Some(id)) = (
                        ask.reply,
                        ask.subject
                            .strip_prefix("fieldmesh.chunk.")
                            .and_then(mesh::hex::decode::<32>)
                            .map(ChunkId),
                    ) else {
                        continue;
                    };
                    if !chunks.has(&id) {
                        continue;
                    }
                    let Ok(turn) = Arc::clone(&sends).try_acquire_owned() else {
                        continue;
                    };
                    let (client, path) = (client.clone(), chunks.path(&id));
                    tokio::spawn(async move {
                        let _turn = turn;
                        match tokio::fs::read(&path).await {
                            Ok(bytes) if bytes.len() <= SEALED_CHUNK_BYTES => {
                                if let Err(error) = client.publish(reply, bytes.into()).await {
                                    tracing::debug!(%error, "federation: could not send a piece");
                                }
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "federation: could not read a piece")
                            }
                        }
                    });
                }
            }
            Err(error) => tracing::debug!(%error, "federation: cannot hear asks for pieces"),
        }
        backoff.wait().await;
    }
}

/// What the federation's tasks share.
struct Shared {
    store: Store,
    hub: Hub,
    /// The radio bridge: told what came over IP, so the radio keeps its airtime for what
    /// has no other path.
    radio: crate::radio::Radio,
    /// This camp's id among camps (from its database's id).
    camp_id: String,
    config: FederationConfig,
    status: watch::Sender<FederationStatus>,
    /// Camps heard lately: id → (name, when).
    camps: Mutex<HashMap<String, (String, Instant)>>,
    last_synced_ms: Mutex<Option<u64>>,
    problem: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error of one attempt; the task logs it, shows it and tries again.
type Failed = Box<dyn std::error::Error + Send + Sync>;

impl Shared {
    fn out_stream(&self) -> String {
        format!("FM_OUT_{}", self.camp_id.to_uppercase())
    }

    fn out_subject(&self) -> String {
        format!("fieldmesh.out.{}", self.camp_id)
    }

    async fn run(self: Arc<Self>, client: async_nats::Client) {
        let local = jetstream::new(client.clone());
        // This camp's JetStream domain: the hub reaches its stream through it.
        let domain = loop {
            match jetstream_domain(&client).await {
                Ok(domain) => match domain {
                    Some(domain) => break domain,
                    None => self.trouble(
                        "the NATS server has no JetStream domain: give it one (jetstream { \
                         domain: … }), or let FieldMesh start it with --federation-hub"
                            .into(),
                    ),
                },
                Err(error) => self.trouble(format!("no JetStream at the NATS server: {error}")),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let hub = if domain == self.config.hub_domain {
            local.clone()
        } else {
            jetstream::with_domain(client.clone(), &self.config.hub_domain)
        };
        let source = stream::Source {
            name: self.out_stream(),
            external: (domain != self.config.hub_domain).then(|| stream::External {
                api_prefix: format!("$JS.{domain}.API"),
                delivery_prefix: None,
            }),
            ..Default::default()
        };
        tracing::info!(%domain, hub = %self.config.hub_domain, "federation: JetStream found");
        tokio::spawn(Arc::clone(&self).publish_loop(local));
        tokio::spawn(Arc::clone(&self).read_loop(client.clone(), hub.clone()));
        tokio::spawn(Arc::clone(&self).announce_loop(client.clone(), hub, source));
        Arc::clone(&self).listen_loop(client).await;
    }

    /// Says what is wrong (logged once per change, shown in the app).
    fn trouble(&self, problem: String) {
        let mut current = lock(&self.problem);
        if current.as_deref() != Some(problem.as_str()) {
            tracing::warn!("federation: {problem}");
            *current = Some(problem);
        }
        drop(current);
        self.show();
    }

    fn fine(&self) {
        lock(&self.problem).take();
        self.show();
    }

    /// Sends the app's view when it changed.
    fn show(&self) {
        let now = Instant::now();
        let mut camps: Vec<String> = lock(&self.camps)
            .iter()
            .filter(|(id, (_, heard))| {
                **id != self.camp_id && now.duration_since(*heard) < LINKED_FOR
            })
            .map(|(_, (name, _))| name.clone())
            .collect();
        camps.sort();
        camps.truncate(mesh::wire::MAX_FEDERATION_CAMPS);
        let status = FederationStatus {
            camps,
            last_synced_ms: *lock(&self.last_synced_ms),
            problem: lock(&self.problem).clone(),
        };
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    fn synced(&self) {
        *lock(&self.last_synced_ms) = Some(crate::now_ms());
        self.fine();
    }

    // ---- out: what is stored here goes to this camp's stream ----

    async fn publish_loop(self: Arc<Self>, js: jetstream::Context) {
        let mut backoff = Backoff::default();
        loop {
            match self.publish_round(&js).await {
                Ok(0) => {
                    backoff.reset();
                    // New messages wake it; the timeout catches a wake-up lost to an error.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), self.store.stored.notified())
                            .await;
                }
                Ok(_) => backoff.reset(),
                Err(error) => {
                    self.trouble(format!("could not hand messages to NATS: {error}"));
                    backoff.wait().await;
                }
            }
        }
    }

    /// Publishes the next batch of this camp's messages; returns how many.
    async fn publish_round(&self, js: &jetstream::Context) -> Result<usize, Failed> {
        let name = self.out_stream();
        let mut out = match js.get_stream(&name).await {
            Ok(out) => out,
            Err(_) => {
                js.get_or_create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![self.out_subject()],
                    max_bytes: self.config.max_bytes,
                    discard: stream::DiscardPolicy::Old,
                    storage: stream::StorageType::File,
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                })
                .await?
            }
        };
        let created = out.info().await?.created.unix_timestamp_nanos().to_string();
        let cursor = self.cursor("federation.out", &created).await?;
        let batch = self
            .store
            .run(move |s| s.own_after_blocking(cursor, BATCH as u16))
            .await?;
        let Some(last) = batch.last().map(|m| m.seq) else {
            return Ok(0);
        };
        let mut acks = Vec::with_capacity(batch.len());
        for message in &batch {
            let envelope = &message.envelope;
            let mut headers = async_nats::HeaderMap::new();
            let id = format!(
                "{}{}",
                mesh::hex::encode(&envelope.room.0),
                mesh::hex::encode(&envelope.id.0)
            );
            headers.insert("Nats-Msg-Id", id.as_str());
            let bytes = envelope.encode()?;
            acks.push(
                js.publish_with_headers(self.out_subject(), headers, bytes.into())
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        self.set_cursor("federation.out", &created, last).await?;
        tracing::debug!(count = batch.len(), last, "federation: published");
        Ok(batch.len())
    }

    /// The sequence number kept under `key`, if it was kept for the stream created at
    /// `created` (a stream made anew starts again from 0).
    async fn cursor(&self, key: &'static str, created: &str) -> Result<u64, ServerError> {
        let kept = self.store.run(move |s| s.meta_blocking(key)).await?;
        let kept = kept.and_then(|bytes| String::from_utf8(bytes).ok());
        Ok(kept
            .as_deref()
            .and_then(|kept| kept.split_once(' '))
            .filter(|(stream, _)| *stream == created)
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or(0))
    }

    async fn set_cursor(
        &self,
        key: &'static str,
        created: &str,
        seq: u64,
    ) -> Result<(), ServerError> {
        let value = format!("{created} {seq}");
        self.store
            .run(move |s| s.set_meta_blocking(key, value.as_bytes()))
            .await
    }

    // ---- in: what every camp published comes here ----

    async fn read_loop(self: Arc<Self>, client: async_nats::Client, hub: jetstream::Context) {
        let mut backoff = Backoff::default();
        loop {
            if let Err(error) = self.read(&client, &hub).await {
                if error.is::<NoStreamYet>() {
                    // The first camp to register makes it (this one, in a moment).
                    tracing::debug!("federation: the hub has no {ALL_STREAM} yet");
                } else {
                    self.trouble(format!("cannot read from the hub: {error}"));
                }
                backoff.wait().await;
            } else {
                backoff.reset();
            }
        }
    }

    /// Reads `FM_ALL` from where this camp stopped until something fails.
    async fn read(
        &self,
        client: &async_nats::Client,
        hub: &jetstream::Context,
    ) -> Result<(), Failed> {
        let mut all = hub
            .get_stream(ALL_STREAM)
            .await
            .map_err(|error| -> Failed {
                if not_found(&error) {
                    Box::new(NoStreamYet)
                } else {
                    error.into()
                }
            })?;
        let info = all.info().await?.clone();
        let created = info.created.unix_timestamp_nanos().to_string();
        let mut cursor = self.cursor("federation.all", &created).await?;
        let consumer = all
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: cursor + 1,
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        if info.state.last_sequence <= cursor {
            self.synced();
        }
        loop {
            let first = match tokio::time::timeout(SYNC_CHECK_EVERY, messages.next()).await {
                Ok(Some(message)) => message?,
                Ok(None) => return Err("the hub ended the stream".into()),
                Err(_) => {
                    // Quiet: still linked, and nothing missed?
                    let last = all.info().await?.state.last_sequence;
                    if last <= cursor {
                        self.synced();
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match futures::FutureExt::now_or_never(messages.next()) {
                    Some(Some(message)) => batch.push(message?),
                    _ => break,
                }
            }
            let mut pending = 0;
            let mut envelopes = Vec::with_capacity(batch.len());
            for message in &batch {
                let info = message.info()?;
                cursor = cursor.max(info.stream_sequence);
                pending = info.pending;
                envelopes.push(message.payload.clone());
            }
            let stored = self.take(envelopes).await?;
            self.set_cursor("federation.all", &created, cursor).await?;
            tracing::debug!(count = batch.len(), stored, cursor, "federation: read");
            if pending == 0 {
                self.synced();
            }
        }
    }

    /// Checks what other camps sent as a phone's messages are checked, and stores the valid
    /// ones (each id once, whatever way it came); returns how many were new.
    async fn take(&self, payloads: Vec<axum::body::Bytes>) -> Result<usize, ServerError> {
        let hub = self.hub.clone();
        let radio = self.radio.clone();
        let quota = self.config.room_quota_bytes;
        self.store
            .run(move |store| {
                let mut sizes: HashMap<RoomId, u64> = HashMap::new();
                let mut valid = Vec::with_capacity(payloads.len());
                for payload in payloads {
                    let Some(envelope) = check(&payload) else {
                        tracing::warn!(bytes = payload.len(), "federation: refused a message that is not valid");
                        continue;
                    };
                    let size = match sizes.get_mut(&envelope.room) {
                        Some(size) => size,
                        None => sizes
                            .entry(envelope.room)
                            .or_insert(store.room_bytes_blocking(envelope.room)?),
                    };
                    let bytes = envelope.body.len() as u64 + 256;
                    if *size + bytes > quota {
                        tracing::warn!("federation: a room is full (--room-quota-mb); a message from another camp was not stored");
                        continue;
                    }
                    *size += bytes;
                    valid.push(envelope);
                }
                let stored = store.insert_many_from_blocking(
                    &valid,
                    crate::now_ms(),
                    Origin::Federation,
                    |message| {
                        hub.publish(message);
                        let envelope = &message.envelope;
                        if envelope.kind != Kind::Radio {
                            radio.held_elsewhere(envelope.room, envelope.id, envelope.created_at_ms);
                        }
                    },
                )?;
                Ok(stored
                    .iter()
                    .filter(|s| !s.duplicate && !s.conflict)
                    .count())
            })
            .await
    }

    // ---- camps: who is linked, and FM_ALL's sources ----

    /// Says every few seconds that this camp is here, and makes sure the hub's stream takes
    /// this camp's messages.
    async fn announce_loop(
        self: Arc<Self>,
        client: async_nats::Client,
        hub: jetstream::Context,
        source: stream::Source,
    ) {
        let mut every = tokio::time::interval(ANNOUNCE_EVERY);
        let mut registered = false;
        loop {
            every.tick().await;
            let name: String = self
                .config
                .camp
                .chars()
                .take(MAX_CAMP_NAME_BYTES / 4)
                .collect();
            let subject = format!("fieldmesh.camp.{}", self.camp_id);
            if let Err(error) = client.publish(subject, name.into_bytes().into()).await {
                tracing::debug!(%error, "federation: could not announce this camp");
            }
            if !registered {
                match self.register(&hub, &source).await {
                    Ok(()) => {
                        tracing::info!(stream = %source.name, "federation: the hub takes this camp's messages");
                        registered = true;
                    }
                    Err(error) => self.trouble(format!("the hub is not reachable: {error}")),
                }
            } else if let Err(error) = self.register(&hub, &source).await {
                // Checked again each time: two camps adding themselves at once may lose one.
                tracing::debug!(%error, "federation: could not check the hub's sources");
            }
            self.show();
        }
    }

    /// Adds this camp's stream to `FM_ALL`'s sources (making `FM_ALL` when it is not there).
    async fn register(
        &self,
        hub: &jetstream::Context,
        source: &stream::Source,
    ) -> Result<(), Failed> {
        match hub.get_stream(ALL_STREAM).await {
            Ok(mut all) => {
                let info = all.info().await?;
                if info
                    .config
                    .sources
                    .iter()
                    .flatten()
                    .any(|s| s.name == source.name)
                {
                    return Ok(());
                }
                let mut config = info.config.clone();
                config
                    .sources
                    .get_or_insert_with(Vec::new)
                    .push(source.clone());
                hub.update_stream(config).await?;
            }
            Err(error) if not_found(&error) => {
                hub.create_stream(stream::Config {
                    name: ALL_STREAM.into(),
                    sources: Some(vec![source.clone()]),
                    max_bytes: self.config.max_bytes,
                    discard: stream::DiscardPolicy::Old,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// Hears which camps are linked.
    async fn listen_loop(self: Arc<Self>, client: async_nats::Client) {
        let mut backoff = Backoff::default();
        loop {
            match client.subscribe("fieldmesh.camp.*").await {
                Ok(mut camps) => {
                    backoff.reset();
                    while let Some(message) = camps.next().await {
                        let Some(id) = message.subject.strip_prefix("fieldmesh.camp.") else {
                            continue;
                        };
                        if id.len() > 32 {
                            continue;
                        }
                        let name = String::from_utf8_lossy(
                            &message.payload[..message.payload.len().min(MAX_CAMP_NAME_BYTES)],
                        );
                        let name =
                            mesh::body::clean_display_name(&name).unwrap_or_else(|| id.to_string());
                        let mut camps = lock(&self.camps);
                        if camps.len() >= MAX_CAMPS && !camps.contains_key(id) {
                            let now = Instant::now();
                            camps.retain(|_, (_, heard)| now.duration_since(*heard) < LINKED_FOR);
                            if camps.len() >= MAX_CAMPS {
                                continue;
                            }
                        }
                        camps.insert(id.to_string(), (name, Instant::now()));
                        drop(camps);
                        self.show();
                    }
                }
                Err(error) => tracing::debug!(%error, "federation: cannot hear other camps"),
            }
            backoff.wait().await;
        }
    }
}

/// The hub's stream of all camps is not there yet: no camp has registered.
#[derive(Debug)]
struct NoStreamYet;

impl std::fmt::Display for NoStreamYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the hub has no {ALL_STREAM} yet")
    }
}

impl std::error::Error for NoStreamYet {}

/// Whether asking for a stream failed because there is none.
fn not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(ref e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// The JetStream domain of the server `client` talks to (`None` when it has none). Asked
/// directly: async-nats's account query expects fields Debian's nats-server 2.9 lacks.
async fn jetstream_domain(client: &async_nats::Client) -> Result<Option<String>, Failed> {
    #[derive(serde::Deserialize)]
    struct Answer {
        domain: Option<String>,
        error: Option<serde_json::Value>,
    }
    let answer = client.request("$JS.API.INFO", "".into()).await?;
    let answer: Answer = serde_json::from_slice(&answer.payload)?;
    if let Some(error) = answer.error {
        return Err(format!("{error}").into());
    }
    Ok(answer.domain)
}

/// The envelope in `payload`, if it is one a phone could have published here (or a radio
/// message a camp heard), within every limit and signed by its sender.
pub fn check(payload: &[u8]) -> Option<Envelope> {
    if payload.len() > MAX_ENVELOPE_BYTES {
        return None;
    }
    let envelope = Envelope::decode(payload).ok()?;
    if envelope.body.len() > MAX_BODY_BYTES {
        return None;
    }
    let valid = if envelope.kind == Kind::Radio {
        envelope.body.len() <= mesh::radio::MAX_PAYLOAD_BYTES
            && mesh::radio::RadioMessage::from_envelope(&envelope).is_some()
    } else {
        envelope.verify_signature().is_ok()
    };
    valid.then_some(envelope)
}

/// Waits longer after each failure: 2, 4, then 8 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    async fn wait(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let seconds = 1u64 << self.failures.min(3);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
