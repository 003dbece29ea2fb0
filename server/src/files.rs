//! The chunks of files people share (see [`mesh::file`]): sealed on the phones, stored here as
//! they came, one file each under `DATA_DIR/chunks/`, named by the SHA-256 of their bytes.
//!
//! The server holds no key: it checks a chunk against its name, keeps it whole or not at all
//! (written beside, synced, then renamed into place), and never stores more than its quota.
//! Storing a chunk it has already is a no-op, so a phone resumes an upload by sending again
//! what the server lacks.
//!
//! Each new piece is charged to the device that sent it (its pass with a join code, else its
//! network address) and, when its upload carried a room ticket (asked for over the WebSocket
//! with the room's key), to that room; both have quotas. The charge is kept beside the piece
//! (`ID.owner`) and counted again at start.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use mesh::file::{ChunkId, SEALED_CHUNK_BYTES};
use mesh::RoomId;
use thiserror::Error;

use crate::access::RetryAfter;
use crate::error::ServerError;
use crate::AppState;

/// Most chunk names one "which do you lack" question may list: a 256 MiB file's worth.
pub const MAX_ASKED: usize = 1024;
/// Uploads read into memory at once, server-wide (each at most a sealed chunk: 8 MiB in all);
/// more wait their turn.
const UPLOADS_AT_ONCE: usize = 32;
/// Uploads under way at once from one address (a phone sends one or two at a time); more are
/// refused, so one address that drips its bodies cannot hold every turn.
const UPLOADS_PER_ADDRESS: usize = 4;
/// How long a room ticket is good for, in seconds.
const TICKET_LIFETIME_S: u64 = 60 * 60;
/// Pieces uploaded without a room ticket share one room's quota: leaving the ticket out
/// does not get around it.
const NO_ROOM: RoomId = RoomId([0; 16]);
/// The header an upload names its room ticket in (hex).
pub const TICKET_HEADER: &str = "fieldmesh-room-ticket";
/// Suffix of the file beside a piece that says whom it is charged to.
const OWNER_SUFFIX: &str = ".owner";

/// How long one piece may take to arrive (256 KiB in 30 s is 70 kbit/s).
const BODY_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The chunk store. Cheap to clone.
#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

/// The limits on stored pieces, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct FileQuotas {
    /// In all (`--files-quota-mb`).
    pub total: u64,
    /// Per room (`--files-room-quota-mb`).
    pub room: u64,
    /// Per device (`--files-device-quota-mb`).
    pub device: u64,
}

/// Whom a piece is charged to: the device that sent it (16 bytes: a hash of its pass, or its
/// network address) and its room when the upload named one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The device.
    pub owner: [u8; 16],
    /// The room, from the upload's ticket.
    pub room: Option<RoomId>,
}

/// Whom pieces fetched from other camps are charged to: no device and no room, so only the
/// server's whole room for files bounds them.
const FETCHED: [u8; 16] = *b"federation-fetch";

impl Charge {
    /// The charge of a piece fetched from another camp.
    pub fn fetched() -> Self {
        Self {
            owner: FETCHED,
            room: None,
        }
    }

    fn is_fetched(&self) -> bool {
        self.owner == FETCHED && self.room.is_none()
    }

    /// The room quota it counts towards: its room's, or the one all ticketless pieces share.
    fn bucket(&self) -> RoomId {
        self.room.unwrap_or(NO_ROOM)
    }

    fn encode(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[..16].copy_from_slice(&self.owner);
        if let Some(room) = self.room {
            out[16] = 1;
            out[17..].copy_from_slice(&room.0);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 33] = bytes.try_into().ok()?;
        let owner = bytes[..16].try_into().ok()?;
        let room = (bytes[16] == 1).then(|| RoomId(bytes[17..].try_into().unwrap_or_default()));
        Some(Self { owner, room })
    }
}

/// Bytes stored per room and per device.
#[derive(Default)]
struct Usage {
    rooms: std::collections::HashMap<RoomId, u64>,
    owners: std::collections::HashMap<[u8; 16], u64>,
}

impl Usage {
    fn add(&mut self, charge: &Charge, len: u64) {
        *self.owners.entry(charge.owner).or_default() += len;
        if !charge.is_fetched() {
            *self.rooms.entry(charge.bucket()).or_default() += len;
        }
    }

    fn remove(&mut self, charge: &Charge, len: u64) {
        take(&mut self.owners, charge.owner, len);
        if !charge.is_fetched() {
            take(&mut self.rooms, charge.bucket(), len);
        }
    }
}

/// `len` bytes less for `key` (forgotten at none).
fn take<K: std::hash::Hash + Eq>(map: &mut std::collections::HashMap<K, u64>, key: K, len: u64) {
    if let Some(used) = map.get_mut(&key) {
        *used = used.saturating_sub(len);
        if *used == 0 {
            map.remove(&key);
        }
    }
}

struct Inner {
    dir: PathBuf,
    quota_bytes: u64,
    quotas: FileQuotas,
    usage: std::sync::Mutex<Usage>,
    /// Signs room tickets (a ticket is its room, its end and this key's tag: nothing to
    /// keep); made at start, so a restart makes every ticket unknown.
    ticket_key: [u8; 32],
    used_bytes: AtomicU64,
    uploads: tokio::sync::Semaphore,
    /// Uploads under way, by address (as access limits count them).
    under_way: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// Whether the pieces stored before the start are counted yet.
    scanned: (std::sync::Mutex<bool>, std::sync::Condvar),
}

/// One upload's place among those under way from its address; given back when dropped.
struct UnderWay<'a> {
    inner: &'a Inner,
    address: IpAddr,
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        let mut under_way = self.inner.lock_under_way();
        if let Some(count) = under_way.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                under_way.remove(&self.address);
            }
        }
    }
}

impl Inner {
    fn lock_usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_under_way(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, usize>> {
        self.under_way
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more upload from `address`, if it has fewer than
    /// [`UPLOADS_PER_ADDRESS`] under way.
    fn start_upload(&self, address: IpAddr) -> Option<UnderWay<'_>> {
        let address = crate::access::network(address);
        let mut under_way = self.lock_under_way();
        let count = under_way.entry(address).or_default();
        if *count >= UPLOADS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(UnderWay {
            inner: self,
            address,
        })
    }
}

/// What storing a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It is stored now.
    New,
    /// It was stored already.
    Had,
}

/// Why a chunk was not stored. The phone shows the message.
#[derive(Debug, Error)]
pub enum ChunkError {
    /// Larger than any sealed chunk.
    #[error("a piece of a file is at most {max} bytes; this one is {len}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the chunk of that name (damaged or cut short on the way).
    #[error("the piece does not match its name: it was damaged or cut short on the way")]
    WrongHash,
    /// The server's room for files is used up.
    #[error("this server's room for files ({quota_mb} MB) is full; ask the operator")]
    Full {
        /// The quota, in MiB.
        quota_mb: u64,
    },
    /// The room's share of the server's room for files is used up.
    #[error("this room's files have reached the server's limit for one room ({quota_mb} MB); ask the operator")]
    RoomFull {
        /// The quota, in MiB.
        quota_mb: u64,
    },
    /// The device's share is used up.
    #[error("this device has sent the most files the server keeps from one device ({quota_mb} MB); ask the operator")]
    DeviceFull {
        /// The quota, in MiB.
        quota_mb: u64,
    },
    /// The disk failed.
    #[error("could not store the piece: {0}")]
    Io(#[from] std::io::Error),
}

impl ChunkStore {
    /// Opens (or makes) the chunk folder in `data_dir`, holding at most `quota_bytes`. Pieces
    /// of a write cut short by a crash are removed.
    pub fn open(data_dir: &Path, quotas: FileQuotas) -> Result<Self, ServerError> {
        let quota_bytes = quotas.total;
        let mut ticket_key = [0u8; 32];
        getrandom::fill(&mut ticket_key).map_err(|error| ServerError::Io {
            context: "no randomness for the room tickets' key".into(),
            source: std::io::Error::other(error.to_string()),
        })?;
        let dir = data_dir.join("chunks");
        std::fs::create_dir_all(&dir).map_err(|source| ServerError::Io {
            context: format!("cannot create {}", dir.display()),
            source,
        })?;
        let store = Self {
            inner: Arc::new(Inner {
                dir,
                quota_bytes,
                quotas,
                usage: Default::default(),
                ticket_key,
                used_bytes: AtomicU64::new(0),
                uploads: tokio::sync::Semaphore::new(UPLOADS_AT_ONCE),
                under_way: Default::default(),
                scanned: (std::sync::Mutex::new(false), std::sync::Condvar::new()),
            }),
        };
        // Counting what is stored reads every piece's size (16,000 pieces: 50 ms, 200 ms from
        // a cold disk): the server listens meanwhile, and stores nothing until it is done.
        let scanning = store.clone();
        std::thread::Builder::new()
            .name("fieldmesh-chunks".into())
            .spawn(move || scanning.scan())
            .map_err(|source| ServerError::Io {
                context: "cannot start counting the stored file pieces".into(),
                source,
            })?;
        Ok(store)
    }

    /// Counts the stored pieces' bytes and removes pieces of writes a crash cut short.
    fn scan(&self) {
        let mut used = 0;
        let mut usage = Usage::default();
        for entry in self.files() {
            if is_part(&entry) {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(piece) = owner_of(&entry) {
                // Whom a piece is charged to: counted with the piece's size, or removed when
                // its piece is gone.
                match (std::fs::metadata(&piece), std::fs::read(entry.path())) {
                    (Ok(meta), Ok(bytes)) => {
                        if let Some(charge) = Charge::decode(&bytes) {
                            usage.add(&charge, meta.len());
                        }
                    }
                    _ => {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            } else if let Ok(meta) = entry.metadata() {
                used += meta.len();
            }
        }
        self.inner.used_bytes.fetch_add(used, Ordering::SeqCst);
        {
            let mut kept = self.inner.lock_usage();
            for (room, bytes) in usage.rooms {
                *kept.rooms.entry(room).or_default() += bytes;
            }
            for (owner, bytes) in usage.owners {
                *kept.owners.entry(owner).or_default() += bytes;
            }
        }
        let (done, counted) = &self.inner.scanned;
        *done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        counted.notify_all();
    }

    /// Waits until the stored pieces are counted (at once, but right after a start).
    fn wait_scanned(&self) {
        let (done, counted) = &self.inner.scanned;
        let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*done {
            done = counted
                .wait(done)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Bytes of chunks stored. Blocking right after a start, until they are counted.
    pub fn used_bytes(&self) -> u64 {
        self.wait_scanned();
        self.inner.used_bytes.load(Ordering::Relaxed)
    }

    /// Where chunk `id` is kept (two hex digits of folder keep folders small).
    pub fn path(&self, id: &ChunkId) -> PathBuf {
        let name = id.to_string();
        self.inner.dir.join(&name[..2]).join(name)
    }

    /// Whether chunk `id` is stored.
    pub fn has(&self, id: &ChunkId) -> bool {
        self.path(id).is_file()
    }

    /// Which of `ids` are not stored, in the order asked.
    pub fn missing(&self, ids: &[ChunkId]) -> Vec<ChunkId> {
        ids.iter().filter(|id| !self.has(id)).copied().collect()
    }

    /// Deletes the chunks stored before `cutoff` (the operator's retention, as for messages):
    /// how many, and their bytes. Blocking.
    pub fn forget_older_than_blocking(
        &self,
        cutoff: std::time::SystemTime,
    ) -> std::io::Result<(usize, u64)> {
        self.wait_scanned();
        let (mut count, mut bytes) = (0, 0);
        for entry in self
            .files()
            .filter(|entry| !is_part(entry) && owner_of(entry).is_none())
        {
            let meta = entry.metadata()?;
            if meta.modified()? >= cutoff {
                continue;
            }
            // Whom it was charged to is read first: an upload of the same piece right after
            // writes its own charge beside it, which must stay.
            let charge = std::fs::read(owner_path(&entry.path()))
                .ok()
                .and_then(|bytes| Charge::decode(&bytes));
            std::fs::remove_file(entry.path())?;
            self.release_charge(&entry.path(), charge, meta.len());
            count += 1;
            bytes += meta.len();
            self.inner
                .used_bytes
                .fetch_sub(meta.len(), Ordering::SeqCst);
        }
        Ok((count, bytes))
    }

    /// A piece of `len` bytes at `path`, charged as `charge` said, is gone: its charge goes
    /// too (and the file that said it, unless the piece was stored again meanwhile).
    fn release_charge(&self, path: &Path, charge: Option<Charge>, len: u64) {
        if let Some(charge) = charge {
            self.inner.lock_usage().remove(&charge, len);
        }
        if !path.exists() {
            let _ = std::fs::remove_file(owner_path(path));
        }
    }

    /// A ticket for uploading pieces of `room`'s files (the caller checked the room's key):
    /// the room, when it ends, and a tag over both under this server's ticket key.
    pub fn issue_ticket(&self, room: RoomId) -> [u8; 32] {
        use hmac::Mac;
        let until = unix_seconds().saturating_add(TICKET_LIFETIME_S) as u32;
        let mut ticket = [0u8; 32];
        ticket[..16].copy_from_slice(&room.0);
        ticket[16..20].copy_from_slice(&until.to_be_bytes());
        let tag = self.ticket_mac().chain_update(&ticket[..20]).finalize();
        ticket[20..].copy_from_slice(&tag.into_bytes()[..12]);
        ticket
    }

    /// The room of a ticket this server made, while it is good.
    pub fn ticket_room(&self, ticket: &[u8; 32]) -> Option<RoomId> {
        use hmac::Mac;
        self.ticket_mac()
            .chain_update(&ticket[..20])
            .verify_truncated_left(&ticket[20..])
            .ok()?;
        let until = u32::from_be_bytes(ticket[16..20].try_into().ok()?);
        let room = RoomId(ticket[..16].try_into().ok()?);
        (u64::from(until) > unix_seconds()).then_some(room)
    }

    fn ticket_mac(&self) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.inner.ticket_key)
            .expect("HMAC takes keys of any length")
    }

    /// Bytes stored for `room` and from `owner`.
    pub fn charged(&self, room: &RoomId, owner: &[u8; 16]) -> (u64, u64) {
        self.wait_scanned();
        let usage = self.inner.lock_usage();
        (
            usage.rooms.get(room).copied().unwrap_or(0),
            usage.owners.get(owner).copied().unwrap_or(0),
        )
    }

    /// Every file in the chunk folders (pieces, and pieces being written); what cannot be read
    /// is passed over.
    fn files(&self) -> impl Iterator<Item = std::fs::DirEntry> {
        std::fs::read_dir(&self.inner.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|shard| shard.file_type().is_ok_and(|t| t.is_dir()))
            .flat_map(|shard| {
                std::fs::read_dir(shard.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
    }

    /// Stores `bytes` as chunk `id`, whole or not at all. Blocking: call it off the async
    /// threads.
    pub fn put_blocking(
        &self,
        id: &ChunkId,
        bytes: &[u8],
        charge: &Charge,
    ) -> Result<Stored, ChunkError> {
        if bytes.len() > SEALED_CHUNK_BYTES {
            return Err(ChunkError::TooLarge {
                len: bytes.len(),
                max: SEALED_CHUNK_BYTES,
            });
        }
        if ChunkId::of(bytes) != *id {
            return Err(ChunkError::WrongHash);
        }
        let path = self.path(id);
        if path.is_file() {
            return Ok(Stored::Had);
        }
        self.wait_scanned();
        let len = bytes.len() as u64;
        // Reserve the room first, so two uploads at once cannot both squeeze past the quota.
        let reserved =
            self.inner
                .used_bytes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                    (used + len <= self.inner.quota_bytes).then_some(used + len)
                });
        if reserved.is_err() {
            return Err(ChunkError::Full {
                quota_mb: self.inner.quota_bytes / (1024 * 1024),
            });
        }
        if let Err(error) = self.reserve(charge, len) {
            self.inner.used_bytes.fetch_sub(len, Ordering::SeqCst);
            return Err(error);
        }
        let written = write_whole(&path, bytes);
        match written {
            Ok(Stored::New) => {
                // Whom it is charged to, beside it; a crash before this leaves it charged to
                // nobody (the total still counts it).
                let _ = std::fs::write(owner_path(&path), charge.encode());
                Ok(Stored::New)
            }
            other => {
                // Not stored by this call (failed, or another upload got there first).
                self.inner.used_bytes.fetch_sub(len, Ordering::SeqCst);
                self.inner.lock_usage().remove(charge, len);
                other.map_err(ChunkError::Io)
            }
        }
    }

    /// Stores a piece fetched from another camp (federation): checked against its name, and
    /// counted in the server's whole room for files (no phone or room sent it here).
    pub fn put_fetched_blocking(&self, id: &ChunkId, bytes: &[u8]) -> Result<Stored, ChunkError> {
        self.put_blocking(id, bytes, &Charge::fetched())
    }

    /// Takes `len` bytes of the room's and the device's quotas, if both have them.
    fn reserve(&self, charge: &Charge, len: u64) -> Result<(), ChunkError> {
        let quotas = self.inner.quotas;
        let mut usage = self.inner.lock_usage();
        if charge.is_fetched() {
            usage.add(charge, len);
            return Ok(());
        }
        let owner = usage.owners.get(&charge.owner).copied().unwrap_or(0);
        if owner + len > quotas.device {
            return Err(ChunkError::DeviceFull {
                quota_mb: quotas.device / (1024 * 1024),
            });
        }
        if usage.rooms.get(&charge.bucket()).copied().unwrap_or(0) + len > quotas.room {
            return Err(ChunkError::RoomFull {
                quota_mb: quotas.room / (1024 * 1024),
            });
        }
        usage.add(charge, len);
        Ok(())
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The file that says whom the piece at `path` is charged to.
fn owner_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(OWNER_SUFFIX);
    PathBuf::from(name)
}

/// When `entry` says whom a piece is charged to: that piece's path.
fn owner_of(entry: &std::fs::DirEntry) -> Option<PathBuf> {
    let name = entry.file_name();
    let piece = name.to_str()?.strip_suffix(OWNER_SUFFIX)?;
    Some(entry.path().with_file_name(piece))
}

/// Whether `entry` is a piece being written (or one a crash cut short).
fn is_part(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().ends_with(".part")
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced before it is
/// renamed into place: a reader (or a restart) sees the whole chunk or none of it.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<Stored> {
    let folder = path.parent().expect("a chunk path has a folder");
    std::fs::create_dir_all(folder)?;
    let mut part = tempfile::Builder::new()
        .suffix(".part")
        .tempfile_in(folder)?;
    part.write_all(bytes)?;
    part.as_file().sync_all()?;
    match part.persist_noclobber(path) {
        Ok(_) => {}
        Err(error) if path.is_file() => {
            drop(error);
            return Ok(Stored::Had);
        }
        Err(error) => return Err(error.error),
    }
    // The rename is durable once the folder is synced.
    std::fs::File::open(folder)?.sync_all()?;
    Ok(Stored::New)
}

/// The chunk routes: `PUT /chunks/ID` stores a sealed piece (201 new, 200 had it),
/// `GET /chunks/ID` serves one (immutable: a name is its content), and `POST /chunks/missing`
/// answers which of the names in its body (32 bytes each) the server lacks, in the same form.
/// With a join code, storing and asking need the device's pass (`Authorization: Bearer HEX`);
/// fetching does not: a name is learned only from a sealed message, and what it names is
/// ciphertext.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chunks/missing", post(missing))
        .route("/chunks/{id}", get(fetch).put(upload))
}

/// A plain-text answer the phone shows.
fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

fn too_many(retry: RetryAfter) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry.seconds().to_string())],
        format!(
            "Too many pieces of files at once; try again in {} s.",
            retry.seconds()
        ),
    )
        .into_response()
}

/// The device an upload is charged to: its pass (hashed) with a join code, else its network
/// address (an IPv6 address by its /64).
fn owner_of_request(pass: Option<[u8; 32]>, address: IpAddr) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    match pass {
        Some(token) => {
            let digest = Sha256::digest(token);
            let mut owner = [0u8; 16];
            owner.copy_from_slice(&digest[..16]);
            owner
        }
        None => match crate::access::network(address) {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        },
    }
}

fn parse_id(name: &str) -> Option<ChunkId> {
    mesh::hex::decode::<32>(name).map(ChunkId)
}

/// With a join code, the request must carry a pass the server handed out under it.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Option<[u8; 32]>, Response> {
    if state.access.code.is_none() {
        return Ok(None);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|hex| mesh::hex::decode::<32>(hex.trim()));
    let refused = || {
        answer(
            StatusCode::UNAUTHORIZED,
            "This server needs its join code: open FieldMesh on this device and enter it.",
        )
    };
    let Some(token) = token else {
        return Err(refused());
    };
    match state.access.authenticate(&state.store, token).await {
        Ok(true) => Ok(Some(token)),
        Ok(false) => Err(refused()),
        Err(error) => {
            tracing::error!(%error, "could not check a device pass");
            Err(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not check this device's pass; try again.",
            ))
        }
    }
}

async fn upload(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let address = state.access.request_address(peer.ip(), &headers);
    let pass = match authorize(&state, &headers).await {
        Ok(pass) => pass,
        Err(refused) => return refused,
    };
    let room = match headers.get(TICKET_HEADER) {
        None => None,
        Some(value) => match value
            .to_str()
            .ok()
            .and_then(|hex| mesh::hex::decode::<32>(hex.trim()))
            .and_then(|ticket| state.chunks.ticket_room(&ticket))
        {
            Some(room) => Some(room),
            None => {
                return answer(
                    StatusCode::PRECONDITION_FAILED,
                    "The room ticket is unknown or expired; ask for a new one.",
                )
            }
        },
    };
    let charge = Charge {
        owner: owner_of_request(pass, address),
        room,
    };
    let device = pass.is_some().then_some(charge.owner);
    if let Err(retry) = state.access.limits.chunk_upload(address, device) {
        return too_many(retry);
    }
    let Some(id) = parse_id(&name) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "A piece is named by 64 hexadecimal digits.",
        );
    };
    let Some(_place) = state.chunks.inner.start_upload(address) else {
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "At most {UPLOADS_PER_ADDRESS} pieces of files go up at once from one address; \
                 send the next when one is done."
            ),
        );
    };
    // Bounded memory: at most UPLOADS_AT_ONCE bodies are read at a time.
    let Ok(_turn) = state.chunks.inner.uploads.acquire().await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "The server is stopping.");
    };
    // A body that drips in would hold its turn: it has a time limit.
    let Ok(read) = tokio::time::timeout(BODY_TIME_LIMIT, to_bytes(body, SEALED_CHUNK_BYTES)).await
    else {
        return answer(
            StatusCode::REQUEST_TIMEOUT,
            "The piece came too slowly; nothing was stored. Try again.",
        );
    };
    let Ok(bytes) = read else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "A piece of a file is at most {SEALED_CHUNK_BYTES} bytes (or the upload was cut \
                 short); nothing was stored."
            ),
        );
    };
    let chunks = state.chunks.clone();
    match tokio::task::spawn_blocking(move || chunks.put_blocking(&id, &bytes, &charge)).await {
        Ok(Ok(Stored::New)) => answer(StatusCode::CREATED, "stored"),
        Ok(Ok(Stored::Had)) => answer(StatusCode::OK, "stored already"),
        Ok(Err(error @ ChunkError::TooLarge { .. })) => {
            answer(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
        }
        Ok(Err(error @ ChunkError::WrongHash)) => {
            answer(StatusCode::BAD_REQUEST, error.to_string())
        }
        Ok(Err(
            error @ (ChunkError::Full { .. }
            | ChunkError::RoomFull { .. }
            | ChunkError::DeviceFull { .. }),
        )) => {
            tracing::warn!(%error, "a piece of a file was refused");
            answer(StatusCode::INSUFFICIENT_STORAGE, error.to_string())
        }
        Ok(Err(ChunkError::Io(error))) => {
            tracing::error!(%error, "could not store a piece of a file");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not store the piece; try again.",
            )
        }
        Err(error) => {
            tracing::error!(%error, "storing a piece of a file failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not store the piece; try again.",
            )
        }
    }
}

/// Serves a piece from its file as it is read (not whole in memory: a thousand phones fetching
/// at once cost their sockets' buffers, not 256 KiB each).
async fn fetch(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    use tower::ServiceExt;
    let Some(id) = parse_id(&name) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "A piece is named by 64 hexadecimal digits.",
        );
    };
    let served = tower_http::services::ServeFile::new_with_mime(
        state.chunks.path(&id),
        &"application/octet-stream"
            .parse()
            .expect("a valid media type"),
    )
    .oneshot(request)
    .await;
    let Ok(mut response) = served;
    match response.status() {
        StatusCode::NOT_FOUND => match &state.federation {
            Some(federation) => from_other_camps(&state, federation, id).await,
            None => answer(
                StatusCode::NOT_FOUND,
                "This server does not have that piece (yet).",
            ),
        },
        status if status.is_success() || status == StatusCode::NOT_MODIFIED => {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            response.map(Body::new)
        }
        status => {
            tracing::error!(%status, "could not read a piece of a file");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not read the piece; try again.",
            )
        }
    }
}

/// Asks the linked camps for a piece this server lacks; keeps it (checked against its name)
/// and serves it.
async fn from_other_camps(
    state: &AppState,
    federation: &crate::federation::Federation,
    id: ChunkId,
) -> Response {
    let Some(bytes) = federation.fetch_chunk(id).await else {
        return answer(
            StatusCode::NOT_FOUND,
            "Neither this server nor a linked camp has that piece (yet).",
        );
    };
    let chunks = state.chunks.clone();
    let kept = bytes.clone();
    match tokio::task::spawn_blocking(move || chunks.put_fetched_blocking(&id, &kept)).await {
        Ok(Ok(_)) => {}
        // Served all the same: the phone gets its file, the server just does not keep it.
        Ok(Err(error)) => tracing::warn!(%error, "a piece from another camp was not kept"),
        Err(error) => tracing::error!(%error, "a piece from another camp was not kept"),
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response()
}

async fn missing(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err(refused) = authorize(&state, &headers).await {
        return refused;
    }
    let max = MAX_ASKED * 32;
    let bytes = match to_bytes(body, max).await {
        Ok(bytes) if bytes.len() % 32 == 0 => bytes,
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("Ask for at most {MAX_ASKED} pieces, 32 bytes each."),
            )
        }
    };
    let ids: Vec<ChunkId> = bytes
        .chunks_exact(32)
        .map(|name| ChunkId(name.try_into().expect("32-byte pieces")))
        .collect();
    let chunks = state.chunks.clone();
    match tokio::task::spawn_blocking(move || chunks.missing(&ids)).await {
        Ok(lacking) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            lacking.iter().flat_map(|id| id.0).collect::<Vec<u8>>(),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "could not look for pieces of files");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not look; try again.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: Charge = Charge {
        owner: [1; 16],
        room: None,
    };

    fn quotas(total: u64) -> FileQuotas {
        FileQuotas {
            total,
            room: total,
            device: total,
        }
    }

    fn chunk(fill: u8, len: usize) -> (ChunkId, Vec<u8>) {
        let bytes = vec![fill; len];
        (ChunkId::of(&bytes), bytes)
    }

    #[test]
    fn a_chunk_is_stored_once_under_its_name_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), quotas(1 << 20)).unwrap();
        let (id, bytes) = chunk(7, 1000);
        assert_eq!(store.missing(&[id]), vec![id]);
        assert_eq!(store.put_blocking(&id, &bytes, &ANA).unwrap(), Stored::New);
        assert_eq!(store.put_blocking(&id, &bytes, &ANA).unwrap(), Stored::Had);
        assert_eq!(std::fs::read(store.path(&id)).unwrap(), bytes);
        assert!(store.missing(&[id]).is_empty());
        assert_eq!(store.used_bytes(), 1000);
        // Counted again after a restart; a write cut short by a crash is cleared away.
        let part = store.path(&id).with_extension("part");
        std::fs::write(&part, b"half").unwrap();
        let again = ChunkStore::open(dir.path(), quotas(1 << 20)).unwrap();
        assert_eq!(again.used_bytes(), 1000);
        assert!(!part.exists());
    }

    #[test]
    fn rooms_and_devices_have_quotas_counted_again_after_a_restart_and_freed_by_retention() {
        let dir = tempfile::tempdir().unwrap();
        let limits = FileQuotas {
            total: 10_000,
            room: 3_000,
            device: 5_000,
        };
        let store = ChunkStore::open(dir.path(), limits).unwrap();
        let north = RoomId([7; 16]);
        let ana = Charge {
            owner: [1; 16],
            room: Some(north),
        };
        let ben = Charge {
            owner: [2; 16],
            room: Some(north),
        };
        let (a, a_bytes) = chunk(1, 2000);
        let (b, b_bytes) = chunk(2, 2000);
        store.put_blocking(&a, &a_bytes, &ana).unwrap();
        // The room is full for everyone in it, whoever sends.
        assert!(matches!(
            store.put_blocking(&b, &b_bytes, &ben),
            Err(ChunkError::RoomFull { .. })
        ));
        // Another room is not; a device's quota holds across rooms.
        let south = Charge {
            owner: [1; 16],
            room: Some(RoomId([8; 16])),
        };
        store.put_blocking(&b, &b_bytes, &south).unwrap();
        let (c, c_bytes) = chunk(3, 2000);
        assert!(matches!(
            store.put_blocking(&c, &c_bytes, &Charge { room: None, ..ana }),
            Err(ChunkError::DeviceFull { .. })
        ));
        assert_eq!(store.charged(&north, &[1; 16]), (2000, 4000));
        assert_eq!(store.used_bytes(), 4000);

        // Counted again after a restart.
        let again = ChunkStore::open(dir.path(), limits).unwrap();
        assert_eq!(again.charged(&north, &[1; 16]), (2000, 4000));
        assert_eq!(
            again.used_bytes(),
            4000,
            "what says whom is charged is not a piece"
        );
        assert!(matches!(
            again.put_blocking(&c, &c_bytes, &ben),
            Err(ChunkError::RoomFull { .. })
        ));

        // The retention frees the room's and the device's share.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(again.path(&a))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        assert_eq!(again.forget_older_than_blocking(cutoff).unwrap(), (1, 2000));
        assert_eq!(again.charged(&north, &[1; 16]), (0, 2000));
        again.put_blocking(&c, &c_bytes, &ben).unwrap();
    }

    #[test]
    fn tickets_name_their_room_and_unknown_ones_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), quotas(1000)).unwrap();
        let room = RoomId([3; 16]);
        let ticket = store.issue_ticket(room);
        assert_eq!(store.ticket_room(&ticket), Some(room));
        assert_eq!(store.ticket_room(&[0; 32]), None);
        // Another room's name under this tag, or a later end, is refused.
        let mut forged = ticket;
        forged[0] ^= 1;
        assert_eq!(store.ticket_room(&forged), None);
        let mut longer = ticket;
        longer[19] ^= 1;
        assert_eq!(store.ticket_room(&longer), None);
        // Another server's (or this one's before a restart) ticket is unknown.
        let other = ChunkStore::open(dir.path(), quotas(1000)).unwrap();
        assert_eq!(other.ticket_room(&ticket), None);
    }

    #[test]
    fn the_retention_deletes_old_chunks_and_frees_their_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), quotas(1 << 20)).unwrap();
        let (old, old_bytes) = chunk(1, 700);
        let (new, new_bytes) = chunk(2, 300);
        store.put_blocking(&old, &old_bytes, &ANA).unwrap();
        store.put_blocking(&new, &new_bytes, &ANA).unwrap();
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        let now = std::time::SystemTime::now();
        std::fs::File::options()
            .write(true)
            .open(store.path(&old))
            .unwrap()
            .set_modified(now - 10 * day)
            .unwrap();
        assert_eq!(
            store.forget_older_than_blocking(now - 5 * day).unwrap(),
            (1, 700)
        );
        assert_eq!(store.missing(&[old, new]), vec![old]);
        assert_eq!(store.used_bytes(), 300);
    }

    #[test]
    fn damaged_oversized_and_over_quota_chunks_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), quotas(3000)).unwrap();
        let (id, mut bytes) = chunk(1, 2000);
        bytes[5] ^= 1;
        assert!(matches!(
            store.put_blocking(&id, &bytes, &ANA),
            Err(ChunkError::WrongHash)
        ));
        assert!(matches!(
            store.put_blocking(&id, &bytes[..1999], &ANA),
            Err(ChunkError::WrongHash)
        ));
        let (big_id, big) = chunk(2, SEALED_CHUNK_BYTES + 1);
        assert!(matches!(
            store.put_blocking(&big_id, &big, &ANA),
            Err(ChunkError::TooLarge { .. })
        ));
        let (first, first_bytes) = chunk(3, 2000);
        store.put_blocking(&first, &first_bytes, &ANA).unwrap();
        let (second, second_bytes) = chunk(4, 2000);
        assert!(matches!(
            store.put_blocking(&second, &second_bytes, &ANA),
            Err(ChunkError::Full { .. })
        ));
        assert_eq!(store.used_bytes(), 2000);
        assert_eq!(
            store.missing(&[id, big_id, first, second]),
            vec![id, big_id, second]
        );
    }
}
