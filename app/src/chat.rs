//! The contract between the user interface and whatever moves messages (the browser's sync
//! engine in `frontend`): reactive state the views read, and actions they call.

use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;
use mesh::body::{FileKind, Signal};
use mesh::geo::Position;
use mesh::serial::Protocol;

/// Whether the page can reach its server right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Opening a connection.
    Connecting,
    /// Connected: messages go out as soon as they are written.
    Online,
    /// No connection; the page keeps trying and queues what is written.
    Offline,
    /// Connected, but the server wants its join code first.
    Locked,
}

/// Where one's own message is on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// In this device's outbox, not yet confirmed by the server (shown as "sending" while
    /// online, "queued" while offline).
    Queued,
    /// The server stored it.
    Stored,
    /// The server refused it (or it could not be saved); one tap sends it again.
    Failed,
    /// Stored, and another camp's radio was heard relaying it.
    Relayed,
    /// Someone else's message that came over the radio: sealed with the room key but not
    /// signed, so its name is not confirmed.
    ViaRadio,
}

/// This browser's own radio over Web Serial (Chromium on a computer or Android), for the
/// radio panel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebRadio {
    /// The browser has Web Serial at all.
    pub supported: bool,
    /// A port is open.
    pub connected: bool,
    /// What it is doing, for people: "connected", "configuring", "receiving", an error.
    pub status: String,
    /// The serial protocol it speaks.
    pub protocol: Protocol,
    /// Frames heard and sent, and frames or reads that failed.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Garbage frames and read errors.
    pub errors: u64,
    /// The radio is lent to the server (lend mode) rather than used by this page alone.
    pub lending: bool,
    /// What the server said about lending.
    pub lend_detail: Option<String>,
    /// The mesh network key this camp's server gave (12 words), to fill in for direct mode.
    pub camp_key_words: Option<String>,
    /// The mesh the connected radio is on, for people: "key 1a2b-3c4d" or "the open mesh".
    pub mesh: String,
    /// Frames heard from a clock far from this device's, in minutes (negative: behind), if any.
    pub clock_skew_minutes: Option<i64>,
}

/// Radio settings the person picks before connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioSettings {
    /// The serial protocol the radio speaks.
    pub protocol: Protocol,
    /// Serial speed.
    pub baud: u32,
    /// RNode: frequency, bandwidth, power, spreading factor and coding rate; the RNode is
    /// configured when set.
    pub rnode: Option<mesh::serial::RnodeSettings>,
    /// The mesh network key (see `mesh::radio::network`).
    pub network_key: [u8; mesh::radio::network::NETWORK_KEY_BYTES],
    /// Meshtastic: the node's channel that carries FieldMesh's frames, by name or index
    /// (empty: its primary channel).
    pub meshtastic_channel: String,
}

/// The server's radio, for the radio line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioLine {
    /// Connected and carrying messages.
    pub ready: bool,
    /// What the server says about it.
    pub text: String,
    /// Its Meshtastic channel, whose room phones may open (plain text, not encrypted).
    pub meshtastic_channel: Option<String>,
}

/// Progress of a long sync step, for the connection bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// What is being done.
    pub what: SyncStep,
    /// How many items are done.
    pub done: usize,
    /// How many items there are in all.
    pub total: usize,
}

/// The long sync steps the connection bar shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// Sending the outbox.
    Sending,
    /// Receiving messages missed while away.
    Receiving,
}

/// One message as the views show it. Text is always rendered as text, never as markup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// Message id in hex; unique and stable across reloads.
    pub id: String,
    /// Author's display name: the name from the sender's signed presence card when this
    /// device knows them, else the name in the message marked "(unconfirmed)".
    pub author: String,
    /// The sender's id (public signing key) in hex.
    pub sender: String,
    /// This device compared safety codes with the sender.
    pub verified: bool,
    /// What they wrote.
    pub text: String,
    /// Sender's time, already formatted for this device ("14:05").
    pub time: String,
    /// The server's sequence number once stored; orders the list.
    pub seq: Option<u64>,
    /// Sender's clock in milliseconds; orders messages not yet stored.
    pub created_at_ms: u64,
    /// Written on this device.
    pub own: bool,
    /// Delivery state (meaningful for own messages).
    pub delivery: Delivery,
    /// Camps whose phones confirmed (by radio receipt, with the room key) they have it.
    pub delivered_to: Vec<String>,
    /// Files sent with it (photos, voice notes, documents), in order.
    pub files: Vec<ChatFile>,
    /// Where the author was when they sent it, when they said.
    pub position: Option<Position>,
    /// An SOS, its end or answer.
    pub signal: Option<Signal>,
}

/// An SOS, as the red banner shows it until its sender is safe or someone is on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct SosAlert {
    /// `ROOM/ID`: the room (hex) and the SOS's radio id (hex of its first six bytes), which
    /// names it in every copy (the radio's included) and in its answers.
    pub key: String,
    /// The SOS message's id (hex), to show it.
    pub message: String,
    /// Its room (hex) and name.
    pub room: String,
    /// The room's name.
    pub room_name: String,
    /// Who sent it.
    pub author: String,
    /// Sent from this device.
    pub own: bool,
    /// Where they were, when the phone knew.
    pub position: Option<Position>,
    /// When it was sent (sender's clock, ms).
    pub at_ms: u64,
    /// How long ago, as people read it ("4 min ago"), kept current.
    pub age: String,
    /// What they added ("trapped, second floor").
    pub note: String,
    /// Who answered "on my way".
    pub coming: Vec<String>,
}

/// Someone's last known position in the room open now, for "People nearby".
#[derive(Clone, Debug, PartialEq)]
pub struct Nearby {
    /// Their name.
    pub name: String,
    /// Where they were.
    pub position: Position,
    /// How old the fix is ("4 min ago"), kept current.
    pub age: String,
    /// They share their position live now.
    pub live: bool,
}

/// A marker on the map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapMarker {
    /// What a tap opens: `message:ID` (in the room open now), `sos:KEY`, or empty (nothing).
    pub id: String,
    /// `me`, `person`, `message` or `sos`: how it is drawn.
    pub kind: &'static str,
    /// Where.
    pub position: Position,
    /// Its label ("Ana", "Ana: at the bridge").
    pub label: String,
}

/// A file sent with a message, as the room shows it. Its bytes are fetched and opened on
/// this device only when shown (photos) or asked for (the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatFile {
    /// Its transfer's key in [`ChatState::transfers`]: `MESSAGE/INDEX`.
    pub key: String,
    /// Photo (with its size in pixels), voice note (with its length) or other file.
    pub kind: FileKind,
    /// Its name, as sent.
    pub name: String,
    /// Its size as people read it ("180 KB").
    pub size: String,
    /// Its media type ("image/webp").
    pub media_type: String,
    /// A tiny preview (a `data:` address), shown before the file is fetched.
    pub thumbnail: Option<String>,
}

/// A file on its way up (the key is its message's id) or down (the file's key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes moved.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Moving now.
    pub running: bool,
    /// Why it stopped, for the person; they can try again.
    pub error: Option<String>,
    /// The opened file as an address this page can show, play or save (`blob:`).
    pub url: Option<String>,
}

impl Transfer {
    /// Done as a whole percentage, for the progress bar.
    pub fn percent(&self) -> u32 {
        if self.total == 0 {
            return 0;
        }
        (self.done.min(self.total) * 100 / self.total) as u32
    }
}

/// A file attached in the composer, not sent yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftFile {
    /// Its number in this composer, to take it out again.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its size as people read it.
    pub size: String,
    /// A picture: it is made small (as [`ChatState::photo_size`] says) before it is sealed.
    pub photo: bool,
    /// A preview of a picture (`blob:`), shown in the composer.
    pub preview: Option<String>,
}

/// How large a photo is sent: the longest side, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PhotoSize {
    /// 800 pixels: quick over a weak link (about 60 to 120 KB).
    Small,
    /// 1,600 pixels: detail enough to read a sign (about 200 to 400 KB).
    #[default]
    Medium,
    /// As taken (location data still removed).
    Original,
}

impl PhotoSize {
    /// The longest side in pixels (`None`: as taken).
    pub fn longest_side(self) -> Option<u32> {
        match self {
            Self::Small => Some(800),
            Self::Medium => Some(1600),
            Self::Original => None,
        }
    }

    /// Its name in the composer's choice.
    pub fn label(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Original => "original",
        }
    }
}

/// Someone in the room, as the roster shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// Their sender id (public signing key) in hex.
    pub id: String,
    /// Display name from their presence card.
    pub name: String,
    /// Their safety code: compare it with what their phone shows.
    pub code: String,
    /// This device marked them verified after comparing codes.
    pub verified: bool,
    /// Someone with this name was seen before with other keys: possibly an impostor.
    pub keys_changed: bool,
    /// This device.
    pub you: bool,
}

/// A room this device has, as the home screen lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomSummary {
    /// Room id in hex.
    pub id: String,
    /// The room's name (a private conversation's is the other person's).
    pub name: String,
    /// The last message, "Ana: the well is clean", or empty.
    pub last: String,
    /// When the last message was written, as this device shows times ("14:05").
    pub time: String,
    /// The public Emergency room.
    pub public: bool,
    /// A private conversation.
    pub direct: bool,
    /// When the last message was written (ms since the epoch; 0 without one): the list's order.
    pub at_ms: f64,
    /// Messages from others not read yet (at most 100: shown "99+").
    pub unread: u32,
    /// The person muted it: no notifications, and its count stays out of the title.
    pub muted: bool,
}

/// An unread count as shown: none for 0, "99+" from 100 (counts stop there).
pub fn unread_label(count: u32) -> Option<String> {
    match count {
        0 => None,
        n if n >= 100 => Some("99+".into()),
        n => Some(n.to_string()),
    }
}

/// A message a search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    /// Its room's id, hex.
    pub room: String,
    /// Its room's name.
    pub room_name: String,
    /// The message id, hex.
    pub id: String,
    /// Who wrote it, as the list names them.
    pub author: String,
    /// When, as this device shows times.
    pub time: String,
    /// The part of its text to show, `true` where it matches.
    pub excerpt: Vec<(String, bool)>,
}

/// A search of the messages on this device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchState {
    /// Newest first.
    pub hits: Vec<SearchHit>,
    /// "Searching… 1,200 messages", "3 found in 4,100 messages", or empty before a search.
    pub status: String,
    /// Still reading.
    pub running: bool,
}

/// Whether this browser may show notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Notifications {
    /// The browser has none (or not here, outside a secure context).
    #[default]
    Unsupported,
    /// Not asked yet: the person can turn them on.
    Ask,
    /// Allowed.
    On,
    /// The person said no (only the browser's settings can change it).
    Blocked,
}

/// Who the person is and which room they are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Display name.
    pub name: String,
    /// Room name as typed.
    pub room: String,
    /// The fragment of this room's invite link (`room=…&key=…`): holds the room key, so it is
    /// only ever put after `#`, which browsers never send to a server.
    pub invite: String,
    /// The room's key is published (the Emergency room): anyone can read it.
    pub public: bool,
    /// A private conversation with one person (its key comes from both devices' keys and is
    /// never shared, so the room has no invite).
    pub direct: bool,
    /// The person muted the room.
    pub muted: bool,
}

/// One person's tile in a call (or chip on the walkie-talkie).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTile {
    /// Their device (hex), stable while they are in the call.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// "connecting…", "reconnecting…", "left", or empty when media flows.
    pub state: String,
    /// Their voice is heard now.
    pub speaking: bool,
    /// Their camera's picture arrives.
    pub video: bool,
    /// Bytes of their voice and picture received so far (the connection's statistics).
    pub audio_bytes: u64,
    /// See `audio_bytes`.
    pub video_bytes: u64,
}

/// A call in the room this page is in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallView {
    /// The others.
    pub tiles: Vec<CallTile>,
    /// This page's microphone is muted.
    pub muted: bool,
    /// This page's camera is on.
    pub camera: bool,
    /// The others are heard (off: silenced here).
    pub speaker: bool,
    /// This page's own voice is heard now.
    pub speaking: bool,
    /// Something is being set up ("Opening the microphone…").
    pub status: Option<String>,
}

/// A call going on in the room that this page is not in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInvite {
    /// The call's id (hex).
    pub id: String,
    /// Who started it.
    pub caller: String,
    /// How many are in it.
    pub people: usize,
    /// It started with a camera on.
    pub video: bool,
    /// This page declined it: shown quietly.
    pub declined: bool,
    /// It has six people already.
    pub full: bool,
}

/// The room's walkie-talkie, while this page listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TalkView {
    /// The others listening.
    pub listeners: Vec<CallTile>,
    /// Who speaks now ("you" when this page holds the button).
    pub speaking: Option<String>,
    /// This page holds the button and is heard.
    pub holding: bool,
    /// Something is being set up or went wrong ("Opening the microphone…").
    pub status: Option<String>,
}

/// What the views ask of a call or the walkie-talkie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Start a call in the room open now, with the camera on or not.
    Start {
        /// Camera on.
        video: bool,
    },
    /// Join a call going on (by id).
    Join {
        /// The call.
        id: String,
        /// Camera on.
        video: bool,
    },
    /// Say no to a call (by id).
    Decline(String),
    /// Leave the call.
    HangUp,
    /// Mute this page's microphone, or not.
    Mute(bool),
    /// Turn the camera on or off.
    Camera(bool),
    /// Hear the others, or silence them here.
    Speaker(bool),
    /// Listen to the room's walkie-talkie, or stop.
    Listen(bool),
    /// The talk button went down (`true`) or up.
    Talk(bool),
}

/// Everything the views read. Written by the sync engine.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// The current person and room; `None` shows the join form.
    pub session: RwSignal<Option<Session>>,
    /// The room's messages, oldest first.
    pub messages: RwSignal<Vec<ChatMessage>>,
    /// Connection to the server.
    pub connection: RwSignal<Connection>,
    /// Whether the server has older messages than the first one shown.
    pub has_older: RwSignal<bool>,
    /// An older page has been asked for and has not arrived.
    pub loading_older: RwSignal<bool>,
    /// A sentence to show the person (an error or a refusal), until they dismiss it.
    pub notice: RwSignal<Option<String>>,
    /// Messages in this device's outbox (all rooms), waiting for the server.
    pub queued: RwSignal<usize>,
    /// A long sync step under way.
    pub progress: RwSignal<Option<SyncProgress>>,
    /// Display names of the people in the room now (this device included).
    pub members: RwSignal<Vec<String>>,
    /// Display names of the people typing now.
    pub typing: RwSignal<Vec<String>>,
    /// A new version of the app is downloaded and waits for a reload.
    pub update_ready: RwSignal<bool>,
    /// The display name this device used last, to prefill the join form.
    pub last_name: RwSignal<String>,
    /// The server asks for its join code before this device may read or send.
    pub code_needed: RwSignal<bool>,
    /// Why the last code was not accepted.
    pub code_error: RwSignal<Option<String>>,
    /// Seconds until the server takes another try at the code (counts down; 0: now).
    pub code_wait_s: RwSignal<u32>,
    /// This device's safety code, for others to compare.
    pub own_code: RwSignal<String>,
    /// The people in the room, with their safety codes.
    pub roster: RwSignal<Vec<RosterEntry>>,
    /// A loud warning: a known name came with new keys.
    pub key_warning: RwSignal<Option<String>>,
    /// Someone wrote privately: `(their id, their name)`.
    pub direct_alert: RwSignal<Option<(String, String)>>,
    /// The server's LoRa radio, when it has one.
    pub radio: RwSignal<Option<RadioLine>>,
    /// The server's link to other camps over IP, when it has one: `(linked now, the line)`.
    pub federation: RwSignal<Option<(bool, String)>>,
    /// The room named by the invite link this page was opened with (its key was taken out of
    /// the address bar at once), to fill in the join form.
    pub invite_room: RwSignal<Option<String>>,
    /// This browser's own radio.
    pub web_radio: RwSignal<WebRadio>,
    /// The device's main pointer is a finger (a phone or tablet): Enter makes a new line.
    pub touch: RwSignal<bool>,
    /// The browser offers to install the app: the "Install app" button shows.
    pub can_install: RwSignal<bool>,
    /// An iPhone or iPad browser, not yet installed: "Add to Home Screen" is explained.
    pub ios_install_hint: RwSignal<bool>,
    /// The browser has a share sheet (phones).
    pub can_share: RwSignal<bool>,
    /// The rooms this device has, newest message first, for the home screen.
    pub rooms: RwSignal<Vec<RoomSummary>>,
    /// What was typed into the join form before the app was ready (name, room), to put back.
    pub early_join: RwSignal<Option<(String, String)>>,
    /// Whether new messages can be announced with notifications.
    pub notifications: RwSignal<Notifications>,
    /// The search sheet is open.
    pub search_open: RwSignal<bool>,
    /// The last search's results.
    pub search: RwSignal<SearchState>,
    /// A message to bring into view and mark (a search result that was opened), by id.
    pub focus: RwSignal<Option<String>>,
    /// Files attached in the composer, not sent yet.
    pub drafts: RwSignal<Vec<DraftFile>>,
    /// The size photos are sent at.
    pub photo_size: RwSignal<PhotoSize>,
    /// Uploads (by message id) and downloads (by file key) under way or done.
    pub transfers: RwSignal<HashMap<String, Transfer>>,
    /// Attached files being prepared (made small, sealed): "Preparing 2 of 3…".
    pub preparing: RwSignal<Option<String>>,
    /// A voice note is being recorded: for how many seconds so far.
    pub recording: RwSignal<Option<u32>>,
    /// A caption to put back in the composer: its files could not be sent.
    pub caption_back: RwSignal<Option<String>>,
    /// The person chose to send their position with their messages (the phone's GPS is
    /// watched while this is on, and only then).
    pub attach_place: RwSignal<bool>,
    /// This phone's latest position and when it was taken (ms), while it is watched.
    pub my_position: RwSignal<Option<(Position, u64)>>,
    /// SOS calls received (and this device's own), newest first, until resolved.
    pub alerts: RwSignal<Vec<SosAlert>>,
    /// The SOS sheet is open.
    pub sos_open: RwSignal<bool>,
    /// How sending an SOS goes ("Finding your position…", "SOS sent to …").
    pub sos_status: RwSignal<Option<String>>,
    /// This device shares its position live in the room open now: until when ("until 14:35",
    /// "until you stop").
    pub live_sharing: RwSignal<Option<String>>,
    /// The last known positions of the people of the room open now (not this device).
    pub nearby: RwSignal<Vec<Nearby>>,
    /// Which way the phone points, in degrees from north, where it says.
    pub heading: RwSignal<Option<f64>>,
    /// The map is open, centred on this marker (`Some("")`: on everyone).
    pub map: RwSignal<Option<String>>,
    /// The call this page is in.
    pub call: RwSignal<Option<CallView>>,
    /// Calls going on in the room open now that this page is not in.
    pub call_invites: RwSignal<Vec<CallInvite>>,
    /// The room's walkie-talkie, while this page listens.
    pub talk: RwSignal<Option<TalkView>>,
}

impl ChatState {
    /// Fresh state: nobody joined, nothing loaded, connecting.
    pub fn new() -> Self {
        Self {
            session: RwSignal::new(None),
            messages: RwSignal::new(Vec::new()),
            connection: RwSignal::new(Connection::Connecting),
            has_older: RwSignal::new(false),
            loading_older: RwSignal::new(false),
            notice: RwSignal::new(None),
            queued: RwSignal::new(0),
            progress: RwSignal::new(None),
            members: RwSignal::new(Vec::new()),
            typing: RwSignal::new(Vec::new()),
            update_ready: RwSignal::new(false),
            last_name: RwSignal::new(String::new()),
            code_needed: RwSignal::new(false),
            code_error: RwSignal::new(None),
            code_wait_s: RwSignal::new(0),
            own_code: RwSignal::new(String::new()),
            roster: RwSignal::new(Vec::new()),
            key_warning: RwSignal::new(None),
            direct_alert: RwSignal::new(None),
            radio: RwSignal::new(None),
            federation: RwSignal::new(None),
            invite_room: RwSignal::new(None),
            web_radio: RwSignal::new(WebRadio::default()),
            touch: RwSignal::new(false),
            can_install: RwSignal::new(false),
            ios_install_hint: RwSignal::new(false),
            can_share: RwSignal::new(false),
            rooms: RwSignal::new(Vec::new()),
            early_join: RwSignal::new(None),
            notifications: RwSignal::new(Notifications::Unsupported),
            search_open: RwSignal::new(false),
            search: RwSignal::new(SearchState::default()),
            focus: RwSignal::new(None),
            drafts: RwSignal::new(Vec::new()),
            photo_size: RwSignal::new(PhotoSize::default()),
            transfers: RwSignal::new(HashMap::new()),
            preparing: RwSignal::new(None),
            recording: RwSignal::new(None),
            caption_back: RwSignal::new(None),
            attach_place: RwSignal::new(false),
            my_position: RwSignal::new(None),
            alerts: RwSignal::new(Vec::new()),
            sos_open: RwSignal::new(false),
            sos_status: RwSignal::new(None),
            live_sharing: RwSignal::new(None),
            nearby: RwSignal::new(Vec::new()),
            heading: RwSignal::new(None),
            map: RwSignal::new(None),
            call: RwSignal::new(None),
            call_invites: RwSignal::new(Vec::new()),
            talk: RwSignal::new(None),
        }
    }
}

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}

/// What the views can ask for. Errors are sentences to show the person.
pub trait ChatActions {
    /// Enter a room under a display name.
    fn join(&self, name: &str, room: &str) -> Result<(), String>;
    /// Leave the room and go back to the home screen.
    fn leave(&self);
    /// Open a room this device has (by id) under a display name.
    fn open_room(&self, name: &str, id: &str) -> Result<(), String>;
    /// Forget a room (by id): its key and messages leave this device.
    fn forget_room(&self, id: &str);
    /// Join the room of a pasted invite link under a display name.
    fn open_invite(&self, name: &str, link: &str) -> Result<(), String>;
    /// Show the browser's install dialog.
    fn install(&self);
    /// Copy text to the clipboard; `done` is told whether it worked.
    fn copy(&self, text: &str, done: Box<dyn FnOnce(bool)>);
    /// Open the share sheet for a link.
    fn share(&self, title: &str, url: &str);
    /// Send a message to the current room.
    fn send(&self, text: &str) -> Result<(), String>;
    /// Save the current room's messages as this device holds them: a printable transcript
    /// (`html`) or JSON Lines.
    fn export_room(&self, html: bool);
    /// Ask for the page of history before the oldest message shown.
    fn load_older(&self);
    /// Send a failed message again.
    fn retry(&self, id: &str);
    /// The person is typing in the composer.
    fn typing(&self);
    /// Reload into the new version of the app.
    fn apply_update(&self);
    /// Send the operator's join code.
    fn unlock(&self, code: &str) -> Result<(), String>;
    /// Mark a person (by id) as verified after comparing safety codes.
    fn verify(&self, id: &str);
    /// Open the private conversation with a person (by id).
    fn open_direct(&self, id: &str);
    /// Asks for a USB radio (Web Serial's port picker; needs a click) and connects to it.
    fn radio_connect(&self, settings: RadioSettings);
    /// Closes this browser's radio.
    fn radio_disconnect(&self);
    /// Lends this browser's radio to the server (`true`) or takes it back.
    fn radio_lend(&self, lend: bool);
    /// Asks the browser to allow notifications (needs a tap).
    fn enable_notifications(&self);
    /// Mutes the current room (`true`) or unmutes it.
    fn set_muted(&self, muted: bool);
    /// Searches the messages on this device: the current room's only when `here`.
    fn search(&self, query: &str, here: bool);
    /// Opens a found message (by id) in its room (by id).
    fn open_found(&self, room: &str, id: &str);
    /// Attaches files to the message being written.
    fn attach(&self, files: Vec<web_sys::File>);
    /// Takes an attached file (by its draft id) out again.
    fn unattach(&self, id: u32);
    /// Fetches and opens a file of a message (by its key, see [`ChatFile::key`]).
    fn open_file(&self, key: &str);
    /// Opens the share sheet with an opened file (by its key).
    fn share_file(&self, key: &str);
    /// Starts recording a voice note (the button is held down), or stops and attaches it.
    fn record_voice(&self, start: bool);
    /// Sends this device's position with its messages from now on (asking the phone for it),
    /// or no longer.
    fn attach_place(&self, on: bool);
    /// Sends an SOS with this phone's position and `note` to the room open now and to the
    /// public Emergency room.
    fn send_sos(&self, note: &str);
    /// Answers the SOS `key`: "I am safe" when it is this device's own, else "On my way".
    fn answer_sos(&self, key: &str);
    /// Opens the room of the SOS `key` at its message.
    fn open_sos(&self, key: &str);
    /// Shares this device's position live in the room open now, for `minutes` (`None`: until
    /// stopped).
    fn share_live(&self, minutes: Option<u32>);
    /// Stops sharing the position live in the room open now: it disappears from the others.
    fn stop_live(&self);
    /// "People nearby" opened (`true`) or closed: where this phone is (when the person
    /// allowed it) and which way it points are followed while it is open.
    fn watch_nearby(&self, open: bool);
    /// Draws the map into `element` (its code is fetched the first time).
    fn show_map(&self, element: web_sys::HtmlElement);
    /// Puts `markers` on the map, centred on `focus` when it names one.
    fn update_map(&self, markers: Vec<MapMarker>, focus: String);
    /// The map closed.
    fn close_map(&self);
    /// Does what the call's or walkie-talkie's controls ask.
    fn call(&self, action: CallAction);
    /// Shows the picture of a person in the call (by tile id; this page's own is "you")
    /// inside `element`.
    fn call_media(&self, id: &str, element: web_sys::HtmlElement);
}

/// Handle the views use: the state and the actions. Cheap to copy.
#[derive(Clone, Copy)]
pub struct ChatClient {
    /// State to read.
    pub state: ChatState,
    /// `None` on the server: a thread-local value made there could be dropped on another
    /// worker thread when the page's render finishes, which panics.
    actions: Option<StoredValue<Rc<dyn ChatActions>, LocalStorage>>,
}

impl ChatClient {
    /// A client backed by `actions` (the browser's sync engine).
    pub fn new(state: ChatState, actions: Rc<dyn ChatActions>) -> Self {
        Self {
            state,
            actions: Some(StoredValue::new_local(actions)),
        }
    }

    /// A client that does nothing: what the server renders with.
    pub fn inert() -> Self {
        Self {
            state: ChatState::new(),
            actions: None,
        }
    }

    fn with_actions<T>(&self, f: impl FnOnce(&dyn ChatActions) -> T) -> Option<T> {
        self.actions
            .and_then(|actions| actions.try_with_value(|actions| f(actions.as_ref())))
    }

    /// See [`ChatActions::join`].
    pub fn join(&self, name: &str, room: &str) -> Result<(), String> {
        self.with_actions(|a| a.join(name, room))
            .unwrap_or_else(|| Err("The page is still loading; try again in a moment.".into()))
    }

    /// See [`ChatActions::leave`].
    pub fn leave(&self) {
        self.with_actions(|a| a.leave());
    }

    /// See [`ChatActions::open_room`].
    pub fn open_room(&self, name: &str, id: &str) -> Result<(), String> {
        self.with_actions(|a| a.open_room(name, id))
            .unwrap_or_else(|| Err("The page is still loading; try again in a moment.".into()))
    }

    /// See [`ChatActions::forget_room`].
    pub fn forget_room(&self, id: &str) {
        self.with_actions(|a| a.forget_room(id));
    }

    /// See [`ChatActions::open_invite`].
    pub fn open_invite(&self, name: &str, link: &str) -> Result<(), String> {
        self.with_actions(|a| a.open_invite(name, link))
            .unwrap_or_else(|| Err("The page is still loading; try again in a moment.".into()))
    }

    /// See [`ChatActions::install`].
    pub fn install(&self) {
        self.with_actions(|a| a.install());
    }

    /// See [`ChatActions::copy`].
    pub fn copy(&self, text: &str, done: impl FnOnce(bool) + 'static) {
        self.with_actions(|a| a.copy(text, Box::new(done)));
    }

    /// See [`ChatActions::share`].
    pub fn share(&self, title: &str, url: &str) {
        self.with_actions(|a| a.share(title, url));
    }

    /// See [`ChatActions::export_room`].
    pub fn export_room(&self, html: bool) {
        self.with_actions(|a| a.export_room(html));
    }

    /// See [`ChatActions::send`].
    pub fn send(&self, text: &str) -> Result<(), String> {
        self.with_actions(|a| a.send(text))
            .unwrap_or_else(|| Err("The page is still loading; try again in a moment.".into()))
    }

    /// See [`ChatActions::load_older`].
    pub fn load_older(&self) {
        self.with_actions(|a| a.load_older());
    }

    /// See [`ChatActions::retry`].
    pub fn retry(&self, id: &str) {
        self.with_actions(|a| a.retry(id));
    }

    /// See [`ChatActions::typing`].
    pub fn typing(&self) {
        self.with_actions(|a| a.typing());
    }

    /// See [`ChatActions::apply_update`].
    pub fn apply_update(&self) {
        self.with_actions(|a| a.apply_update());
    }

    /// See [`ChatActions::verify`].
    pub fn verify(&self, id: &str) {
        self.with_actions(|a| a.verify(id));
    }

    /// See [`ChatActions::open_direct`].
    pub fn open_direct(&self, id: &str) {
        self.with_actions(|a| a.open_direct(id));
    }

    /// See [`ChatActions::radio_connect`].
    pub fn radio_connect(&self, settings: RadioSettings) {
        self.with_actions(|a| a.radio_connect(settings));
    }

    /// See [`ChatActions::radio_disconnect`].
    pub fn radio_disconnect(&self) {
        self.with_actions(|a| a.radio_disconnect());
    }

    /// See [`ChatActions::radio_lend`].
    pub fn radio_lend(&self, lend: bool) {
        self.with_actions(|a| a.radio_lend(lend));
    }

    /// See [`ChatActions::enable_notifications`].
    pub fn enable_notifications(&self) {
        self.with_actions(|a| a.enable_notifications());
    }

    /// See [`ChatActions::set_muted`].
    pub fn set_muted(&self, muted: bool) {
        self.with_actions(|a| a.set_muted(muted));
    }

    /// See [`ChatActions::search`].
    pub fn search(&self, query: &str, here: bool) {
        self.with_actions(|a| a.search(query, here));
    }

    /// See [`ChatActions::open_found`].
    pub fn open_found(&self, room: &str, id: &str) {
        self.with_actions(|a| a.open_found(room, id));
    }

    /// See [`ChatActions::attach`].
    pub fn attach(&self, files: Vec<web_sys::File>) {
        self.with_actions(|a| a.attach(files));
    }

    /// See [`ChatActions::unattach`].
    pub fn unattach(&self, id: u32) {
        self.with_actions(|a| a.unattach(id));
    }

    /// See [`ChatActions::open_file`].
    pub fn open_file(&self, key: &str) {
        self.with_actions(|a| a.open_file(key));
    }

    /// See [`ChatActions::share_file`].
    pub fn share_file(&self, key: &str) {
        self.with_actions(|a| a.share_file(key));
    }

    /// See [`ChatActions::record_voice`].
    pub fn record_voice(&self, start: bool) {
        self.with_actions(|a| a.record_voice(start));
    }

    /// See [`ChatActions::attach_place`].
    pub fn attach_place(&self, on: bool) {
        self.with_actions(|a| a.attach_place(on));
    }

    /// See [`ChatActions::send_sos`].
    pub fn send_sos(&self, note: &str) {
        self.with_actions(|a| a.send_sos(note));
    }

    /// See [`ChatActions::answer_sos`].
    pub fn answer_sos(&self, key: &str) {
        self.with_actions(|a| a.answer_sos(key));
    }

    /// See [`ChatActions::open_sos`].
    pub fn open_sos(&self, key: &str) {
        self.with_actions(|a| a.open_sos(key));
    }

    /// See [`ChatActions::share_live`].
    pub fn share_live(&self, minutes: Option<u32>) {
        self.with_actions(|a| a.share_live(minutes));
    }

    /// See [`ChatActions::stop_live`].
    pub fn stop_live(&self) {
        self.with_actions(|a| a.stop_live());
    }

    /// See [`ChatActions::watch_nearby`].
    pub fn watch_nearby(&self, open: bool) {
        self.with_actions(|a| a.watch_nearby(open));
    }

    /// See [`ChatActions::call`].
    pub fn call(&self, action: CallAction) {
        self.with_actions(|a| a.call(action));
    }

    /// See [`ChatActions::call_media`].
    pub fn call_media(&self, id: &str, element: web_sys::HtmlElement) {
        self.with_actions(|a| a.call_media(id, element));
    }

    /// See [`ChatActions::show_map`].
    pub fn show_map(&self, element: web_sys::HtmlElement) {
        self.with_actions(|a| a.show_map(element));
    }

    /// See [`ChatActions::update_map`].
    pub fn update_map(&self, markers: Vec<MapMarker>, focus: String) {
        self.with_actions(|a| a.update_map(markers, focus));
    }

    /// See [`ChatActions::close_map`].
    pub fn close_map(&self) {
        self.with_actions(|a| a.close_map());
    }

    /// See [`ChatActions::unlock`].
    pub fn unlock(&self, code: &str) -> Result<(), String> {
        self.with_actions(|a| a.unlock(code))
            .unwrap_or_else(|| Err("The page is still loading; try again in a moment.".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_counts_show_up_to_99_then_99_plus() {
        assert_eq!(unread_label(0), None);
        assert_eq!(unread_label(7).as_deref(), Some("7"));
        assert_eq!(unread_label(99).as_deref(), Some("99"));
        assert_eq!(
            unread_label(mesh::wire::MAX_UNREAD_COUNT).as_deref(),
            Some("99+")
        );
    }
}
