//! What the terminal client keeps on disk, in a folder of its own (`--home`, else the user's
//! data directory): `device.json` (its identity, display name, servers, rooms and contacts;
//! 0600) and `outbox/` (one file per sealed message not yet stored by its server). Every file
//! is written whole or not at all (temporary file, sync, rename, folder sync), and changes to
//! `device.json` are made under a lock, so two commands at once (a script's `send` beside a
//! `read --follow`) never lose each other's changes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use client::people::Contacts;
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::{decode as unhex, encode as hex};
use mesh::{Envelope, MessageId, RoomId};
use serde::{Deserialize, Serialize};

use crate::tls::{Trust, SYSTEM};
use crate::Exit;

/// Largest `device.json` read (a few hundred rooms and contacts fit many times over).
const MAX_DEVICE_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most messages the outbox holds: a script that runs for weeks with the server away stops
/// there, with a clear error, instead of filling the disk.
pub const MAX_OUTBOX_ENTRIES: usize = 10_000;

/// The client's folder.
pub struct Home {
    dir: PathBuf,
}

/// What `device.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Device {
    /// The identity's 64-byte seed, hex. Secret: the file is the user's alone.
    pub seed: String,
    /// The display name others see.
    pub name: String,
    /// Servers this device has joined rooms on.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Rooms, in the order joined.
    #[serde(default)]
    pub rooms: Vec<Room>,
    /// People seen in rooms (the app's own form: trust on first use, verified marks).
    #[serde(default)]
    pub contacts: String,
    /// On which server each person (sender id, hex) was last seen: where private messages
    /// to them go.
    #[serde(default)]
    pub seen_on: std::collections::BTreeMap<String, String>,
}

/// A server, as the client reaches it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Server {
    /// `https://host:port` or `http://host:port`.
    pub origin: String,
    /// The device token its join code gave, hex.
    #[serde(default)]
    pub token: Option<String>,
    /// What its certificates are checked against: a certificate authority (DER, hex), given
    /// with `--ca` or pinned on first use; "system" for the system's roots; none before the
    /// first connection.
    #[serde(default)]
    pub ca: Option<String>,
}

impl Server {
    /// What its certificates are checked against.
    pub fn trust(&self) -> Result<Trust, Exit> {
        match self.ca.as_deref() {
            None => Ok(Trust::FirstUse),
            Some(SYSTEM) => Ok(Trust::System),
            Some(text) => unhex_vec(text).map(Trust::Authority).ok_or_else(|| {
                Exit::broken(format!(
                    "the certificate authority kept for {} is damaged; join again with --ca FILE",
                    self.origin
                ))
            }),
        }
    }
}

/// A room this device is in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    /// Its name as shown ("@Ana" for a private conversation).
    pub name: String,
    /// Its key, hex.
    pub key: String,
    /// The server it is on (an origin in [`Device::servers`]).
    pub server: String,
    /// A private conversation with one person.
    #[serde(default)]
    pub direct: bool,
}

impl Room {
    /// Its key.
    pub fn key(&self) -> RoomKey {
        RoomKey::from_bytes(unhex::<32>(&self.key).unwrap_or_default())
    }

    /// Its id.
    pub fn id(&self) -> RoomId {
        self.key().room_id()
    }
}

impl Device {
    /// The device's identity.
    pub fn identity(&self) -> Result<Identity, Exit> {
        let seed = unhex::<64>(&self.seed)
            .ok_or_else(|| Exit::broken("device.json's identity is damaged"))?;
        Ok(Identity::from_seed(&seed))
    }

    /// The room called `name` (any case) or whose id starts with `name` (hex, 8 digits or
    /// more).
    pub fn room(&self, name: &str) -> Result<&Room, Exit> {
        let wanted = name.trim();
        let lower = wanted.to_lowercase();
        self.rooms
            .iter()
            .find(|r| r.name.to_lowercase() == lower)
            .or_else(|| {
                (wanted.len() >= 8)
                    .then(|| {
                        self.rooms
                            .iter()
                            .find(|r| hex(&r.id().0).starts_with(&lower))
                    })
                    .flatten()
            })
            .ok_or_else(|| {
                let known = self
                    .rooms
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Exit::usage(if known.is_empty() {
                    format!("No room called {wanted:?}: join one first (fieldmesh-cli join INVITE-LINK).")
                } else {
                    format!("No room called {wanted:?}. Rooms here: {known}.")
                })
            })
    }

    /// The server record for `origin`.
    pub fn server(&self, origin: &str) -> Server {
        self.servers
            .iter()
            .find(|s| s.origin == origin)
            .cloned()
            .unwrap_or_else(|| Server {
                origin: origin.to_string(),
                ..Server::default()
            })
    }

    /// Keeps `server` (replacing the record of its origin).
    pub fn keep_server(&mut self, server: Server) {
        match self.servers.iter_mut().find(|s| s.origin == server.origin) {
            Some(known) => *known = server,
            None => self.servers.push(server),
        }
    }

    /// Keeps `room` (replacing a room with its id).
    pub fn keep_room(&mut self, room: Room) {
        let id = room.id();
        match self.rooms.iter_mut().find(|r| r.id() == id) {
            Some(known) => *known = room,
            None => self.rooms.push(room),
        }
    }

    /// The people seen.
    pub fn contacts(&self) -> Contacts {
        Contacts::parse(&self.contacts)
    }
}

/// A sealed message waiting for its server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Queued {
    /// The server it goes to.
    pub server: String,
    /// The encoded envelope, hex.
    pub envelope: String,
    /// Its radio form, hex (empty: none).
    #[serde(default)]
    pub radio: String,
}

impl Queued {
    /// The envelope.
    pub fn envelope(&self) -> Option<Envelope> {
        let bytes = unhex_vec(&self.envelope)?;
        Envelope::decode(&bytes).ok()
    }

    /// The radio form.
    pub fn radio(&self) -> Vec<u8> {
        unhex_vec(&self.radio).unwrap_or_default()
    }
}

/// Any-length hex.
pub fn unhex_vec(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An entry of the outbox, as listed.
pub struct Entry {
    /// Its file.
    pub path: PathBuf,
    /// What it holds.
    pub queued: Queued,
    /// The message id.
    pub id: MessageId,
}

/// Where an outbox entry went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// In the outbox.
    Waiting,
    /// Set aside as refused.
    Refused,
    /// Set aside as unreadable.
    Damaged,
    /// Stored by its server.
    Delivered,
}

/// Holds the lock on `device.json` while alive.
pub struct Locked {
    _file: File,
}

impl Home {
    /// The folder `dir` (made, 0700, when missing).
    pub fn open(dir: PathBuf) -> Result<Self, Exit> {
        make_private_dir(&dir)?;
        make_private_dir(&dir.join("outbox"))?;
        Ok(Self { dir })
    }

    fn device_path(&self) -> PathBuf {
        self.dir.join("device.json")
    }

    /// Waits for the lock on `device.json`.
    pub fn lock(&self) -> Result<Locked, Exit> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("device.lock"))
            .map_err(|e| Exit::broken(format!("cannot open the lock file: {e}")))?;
        file.lock()
            .map_err(|e| Exit::broken(format!("cannot lock device.json: {e}")))?;
        Ok(Locked { _file: file })
    }

    /// The device, when one was made here.
    pub fn load(&self) -> Result<Option<Device>, Exit> {
        let path = self.device_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Exit::broken(format!("cannot read {}: {e}", path.display()))),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_DEVICE_FILE_BYTES {
            return Err(Exit::broken(format!(
                "{} is larger than {MAX_DEVICE_FILE_BYTES} bytes: not a FieldMesh device file",
                path.display()
            )));
        }
        let device: Device = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| Exit::broken(format!("{} is damaged: {e}", path.display())))?;
        device.identity()?;
        if let Some(room) = device.rooms.iter().find(|r| unhex::<32>(&r.key).is_none()) {
            return Err(Exit::broken(format!(
                "{} is damaged: the key of room {:?} is not 64 hex digits",
                path.display(),
                room.name
            )));
        }
        Ok(Some(device))
    }

    /// The device; `Err` telling how to make one when there is none.
    pub fn device(&self) -> Result<Device, Exit> {
        self.load()?.ok_or_else(|| {
            Exit::usage(format!(
                "No FieldMesh device in {} yet: join a room first (fieldmesh-cli join INVITE-LINK --name NAME).",
                self.dir.display()
            ))
        })
    }

    /// Writes `device` whole (call it holding the lock).
    pub fn save(&self, device: &Device) -> Result<(), Exit> {
        let bytes = serde_json::to_vec_pretty(device).expect("plain fields always serialise");
        write_whole(&self.device_path(), &bytes)
    }

    /// Loads the device under the lock, lets `change` edit it, and saves it.
    pub fn update<T>(&self, change: impl FnOnce(&mut Device) -> T) -> Result<T, Exit> {
        let _lock = self.lock()?;
        let mut device = self.device()?;
        let result = change(&mut device);
        self.save(&device)?;
        Ok(result)
    }

    fn outbox_dir(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Puts a sealed message in the outbox, durably, before anything is sent. Returns its file.
    pub fn enqueue(
        &self,
        envelope: &Envelope,
        radio: &[u8],
        server: &str,
    ) -> Result<PathBuf, Exit> {
        if self.outbox()?.len() >= MAX_OUTBOX_ENTRIES {
            return Err(Exit::broken(format!(
                "the outbox already holds {MAX_OUTBOX_ENTRIES} messages that {server} has not taken: nothing more is queued until it has"
            )));
        }
        let queued = Queued {
            server: server.to_string(),
            envelope: hex(&envelope.encode().map_err(|e| Exit::usage(e.to_string()))?),
            radio: hex(radio),
        };
        let name = format!(
            "{:016}-{}.json",
            envelope.created_at_ms,
            hex(&envelope.id.0)
        );
        let bytes = serde_json::to_vec(&queued).expect("plain fields always serialise");
        let path = self.outbox_dir().join(name);
        write_whole(&path, &bytes)?;
        Ok(path)
    }

    /// Where the entry whose file was `path` is now: still waiting, refused, or gone (only
    /// an acknowledgement takes an entry out: another process of this device delivered it).
    pub fn whereabouts(&self, path: &Path) -> Whereabouts {
        let aside = |folder: &str| {
            path.file_name()
                .is_some_and(|name| self.outbox_dir().join(folder).join(name).exists())
        };
        if path.exists() {
            Whereabouts::Waiting
        } else if aside("failed") {
            Whereabouts::Refused
        } else if aside("damaged") {
            Whereabouts::Damaged
        } else {
            Whereabouts::Delivered
        }
    }

    /// The outbox, oldest first. Entries that do not read are set aside in `outbox/damaged/`.
    pub fn outbox(&self) -> Result<Vec<Entry>, Exit> {
        let dir = self.outbox_dir();
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| Exit::broken(format!("cannot read the outbox: {e}")))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut entries = Vec::new();
        for path in paths {
            // A file that cannot be read now (another command just sent it, a busy disk)
            // stays where it is; only one that reads but is not an entry is set aside.
            let Ok(bytes) = fs::read(&path) else { continue };
            let queued = Some(bytes)
                .filter(|bytes| bytes.len() <= 64 * 1024)
                .and_then(|bytes| serde_json::from_slice::<Queued>(&bytes).ok());
            match queued.and_then(|q| Some((q.envelope()?.id, q))) {
                Some((id, queued)) => entries.push(Entry { path, queued, id }),
                None => {
                    self.set_aside(&path, "damaged");
                    eprintln!(
                        "fieldmesh-cli: an outbox entry did not read; moved to outbox/damaged/"
                    );
                }
            }
        }
        Ok(entries)
    }

    /// The outbox entries for the server at `origin`, oldest first.
    pub fn outbox_for(&self, origin: &str) -> Result<Vec<Entry>, Exit> {
        let mut entries = self.outbox()?;
        entries.retain(|e| e.queued.server == origin);
        Ok(entries)
    }

    /// How many messages wait for the server at `origin`.
    pub fn waiting_for(&self, origin: &str) -> Result<usize, Exit> {
        Ok(self.outbox_for(origin)?.len())
    }

    /// The server stored the entry: it leaves the outbox.
    pub fn done(&self, entry: &Entry) {
        let _ = fs::remove_file(&entry.path);
        let _ = sync_dir(&self.outbox_dir());
    }

    /// The server refused the entry for good: it moves to `outbox/failed/`.
    pub fn failed(&self, entry: &Entry) {
        self.set_aside(&entry.path, "failed");
    }

    fn set_aside(&self, path: &Path, folder: &str) {
        let dir = self.outbox_dir().join(folder);
        let _ = make_private_dir(&dir);
        if let Some(name) = path.file_name() {
            let _ = fs::rename(path, dir.join(name));
        }
        let _ = sync_dir(&self.outbox_dir());
    }
}

fn make_private_dir(dir: &Path) -> Result<(), Exit> {
    fs::create_dir_all(dir)
        .map_err(|e| Exit::broken(format!("cannot make {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Exit::broken(format!("cannot protect {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all, readable by the user alone.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), Exit> {
    let failed = |e: std::io::Error| Exit::broken(format!("cannot write {}: {e}", path.display()));
    let temporary = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.create(true).truncate(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    fs::rename(&temporary, path).map_err(failed)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(failed)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
