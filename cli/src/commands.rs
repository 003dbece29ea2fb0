//! What each command does.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use client::compose::{seal_body, Fresh};
use client::export::{exported, Exported};
use client::outbox::{OutboxBook, Refusal};
use client::people::Contacts;
use mesh::body::{clean_display_name, name_key};
use mesh::crypto::{Identity, RoomKey};
use mesh::hex::encode as hex;
use mesh::presence::PresenceCard;
use mesh::wire::MAX_HISTORY_PAGE;
use mesh::{ErrorCode, Member, MessageId, ServerFrame, StoredMessage, TextBody};

use crate::home::{Device, Home, Room, Whereabouts};
use crate::link::Link;
use crate::{random, Exit};

/// A follower pings a quiet server this often...
const PING_EVERY: Duration = Duration::from_secs(10);
/// ...and takes this much silence for a lost connection.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// How long a command waits for one answer from a connected server.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// Most bytes read from standard input for one message.
const MAX_STDIN_BYTES: u64 = 64 * 1024;
/// Most messages an export or a read gathers.
const MAX_GATHERED: usize = 200_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn fresh() -> Fresh {
    Fresh {
        id: random(),
        nonce: random(),
        now_ms: now_ms(),
    }
}

/// The room called `name`; "@NAME" is the private conversation with someone seen in a room.
fn room_named(device: &Device, name: &str) -> Result<Room, Exit> {
    match device.room(name) {
        Ok(room) => Ok(room.clone()),
        Err(exit) => match name.trim().strip_prefix('@') {
            Some(person) => direct_room(device, person),
            None => Err(exit),
        },
    }
}

/// The private conversation with `person`: its key is made from both people's keys.
fn direct_room(device: &Device, person: &str) -> Result<Room, Exit> {
    let contacts = device.contacts();
    let contact = find(&contacts, person)?;
    let public = contact
        .public()
        .ok_or_else(|| Exit::broken("that contact's keys are damaged"))?;
    let key = device
        .identity()?
        .dm_key(&public)
        .ok_or_else(|| Exit::refused("that person's keys cannot make a private conversation"))?;
    // Where they were last seen; else the server of the room joined last.
    let server = device
        .seen_on
        .get(&contact.id)
        .cloned()
        .or_else(|| {
            device
                .rooms
                .iter()
                .rev()
                .find(|r| !r.direct)
                .map(|r| r.server.clone())
        })
        .ok_or_else(|| Exit::usage("join a room first"))?;
    Ok(Room {
        name: format!("@{}", contact.name),
        key: hex(key.as_bytes()),
        server,
        direct: true,
    })
}

/// A room, this device's part in it, and a connection to its server.
struct InRoom {
    device: Device,
    room: Room,
    key: RoomKey,
    identity: Identity,
    roster: Roster,
    link: Link,
}

/// Connects to the server of the room called `name`.
async fn enter(home: &Home, name: &str) -> Result<InRoom, Exit> {
    let device = home.device()?;
    let room = room_named(&device, name)?;
    let link = Link::connect(&device.server(&room.server), None).await?;
    keep_learned(home, &link)?;
    Ok(InRoom {
        key: room.key(),
        identity: device.identity()?,
        roster: Roster {
            contacts: device.contacts(),
            seen: Default::default(),
            origin: room.server.clone(),
        },
        device,
        room,
        link,
    })
}

/// Keeps what a connection learned about its server (a token, what to trust), field by
/// field, so what another command kept meanwhile stays.
fn keep_learned(home: &Home, link: &Link) -> Result<(), Exit> {
    if link.learned_token.is_none() && link.learned_trust.is_none() {
        return Ok(());
    }
    home.update(|device| {
        let mut server = device.server(&link.origin);
        if let Some(token) = &link.learned_token {
            server.token = Some(token.clone());
        }
        if server.ca.is_none() {
            server.ca = link.learned_trust.clone();
        }
        device.keep_server(server);
    })
}

pub async fn join(
    home: &Home,
    link: &str,
    name: Option<String>,
    code: Option<String>,
    ca: Option<PathBuf>,
) -> Result<(), Exit> {
    let invite = client::invite::parse_link(link).map_err(Exit::usage)?;
    let room_name = client::session::clean_room_name(&invite.room).map_err(Exit::usage)?;
    let name = name
        .map(|typed| {
            clean_display_name(&typed)
                .ok_or_else(|| Exit::usage("Choose a display name of 1 to 40 characters."))
        })
        .transpose()?;
    let ca = ca
        .map(|path| {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::from_pem_file(&path)
                .map(|der| hex(&der))
                .map_err(|e| {
                    Exit::usage(format!("{} is not a PEM certificate: {e}", path.display()))
                })
        })
        .transpose()?;
    let choice = client::session::choose_room(&room_name, Some(invite.key), None, random());
    let room = Room {
        name: choice.name.clone(),
        key: hex(choice.key.as_bytes()),
        server: invite.server.clone(),
        direct: false,
    };
    let device = {
        let _lock = home.lock()?;
        let mut device = match home.load()? {
            Some(device) => device,
            None => {
                if name.is_none() {
                    return Err(Exit::usage(
                        "Give your display name the first time: --name NAME.",
                    ));
                }
                Device {
                    seed: hex(&random::<64>()),
                    ..Device::default()
                }
            }
        };
        if let Some(name) = name {
            device.name = name;
        }
        let mut server = device.server(&invite.server);
        if ca.is_some() {
            server.ca = ca;
        }
        device.keep_server(server);
        device.keep_room(room.clone());
        home.save(&device)?;
        device
    };
    let identity = device.identity()?;
    let server = device.server(&invite.server);
    let mut link = Link::connect(&server, code.as_deref())
        .await
        .map_err(|exit| match exit.code {
            3 => Exit {
                message: format!(
                    "{} The room is kept: what you send waits in the outbox until the server is \
                     back.",
                    exit.message
                ),
                ..exit
            },
            _ => exit,
        })?;
    keep_learned(home, &link)?;
    link.join(&identity, &device.name, &room.key(), None)
        .await?;
    loop {
        match link.next_within(ANSWER_WAIT).await? {
            Some(ServerFrame::History { room: id, .. }) if id == room.id() => break,
            Some(ServerFrame::Error { detail, code, .. }) if code != ErrorCode::RateLimited => {
                return Err(Exit::refused(detail))
            }
            Some(_) => continue,
            None => return Err(Exit::unreachable("the server closed the connection")),
        }
    }
    let pending = flush_on(home, &mut link, Duration::from_secs(5)).await;
    link.close().await;
    println!(
        "Joined {} on {} as {}.\nYour safety code: {}",
        clean(&room.name),
        invite.server,
        device.name,
        identity.public().safety_code()
    );
    if let Ok(flushed) = pending {
        if !flushed.stored.is_empty() {
            println!("{} waiting messages sent.", flushed.stored.len());
        }
    }
    Ok(())
}

pub fn rooms(home: &Home) -> Result<(), Exit> {
    let device = home.device()?;
    let outbox = home.outbox()?;
    for room in &device.rooms {
        let id = room.id();
        let waiting = outbox
            .iter()
            .filter(|e| e.queued.envelope().is_some_and(|env| env.room == id))
            .count();
        let waiting = if waiting > 0 {
            format!("  ({waiting} waiting to be sent)")
        } else {
            String::new()
        };
        println!(
            "{}\t{}\t{}{waiting}",
            clean(&room.name),
            hex(&id.0),
            room.server
        );
    }
    if device.rooms.is_empty() {
        println!("No rooms yet: fieldmesh-cli join INVITE-LINK");
    }
    Ok(())
}

pub fn invite(home: &Home, room: &str) -> Result<(), Exit> {
    let device = home.device()?;
    let room = device.room(room)?;
    if room.direct {
        return Err(Exit::usage(
            "A private conversation has no invite: its key is made from both people's keys.",
        ));
    }
    println!(
        "{}/#{}",
        room.server,
        client::invite::fragment(&room.name, &room.key)
    );
    Ok(())
}

/// The words given, or standard input (when none, or "-"), trimmed.
fn text_of(words: &[String]) -> Result<String, Exit> {
    let text = if words.is_empty() || words == ["-"] {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Exit::usage(format!("cannot read standard input: {e}")))?;
        if bytes.len() as u64 > MAX_STDIN_BYTES {
            return Err(Exit::usage(format!(
                "standard input holds more than {MAX_STDIN_BYTES} bytes: that is not one message"
            )));
        }
        String::from_utf8(bytes).map_err(|_| Exit::usage("standard input is not UTF-8 text"))?
    } else {
        words.join(" ")
    };
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.trim().is_empty() {
        return Err(Exit::usage("Nothing to send: the text is empty."));
    }
    Ok(text)
}

/// Seals `text` into `room`, queues it, and tries to deliver the outbox of its server.
async fn send_to(
    home: &Home,
    device: &Device,
    room: &Room,
    text: &str,
    wait: u64,
) -> Result<(), Exit> {
    let body =
        TextBody::new(&device.name, text).map_err(|e| Exit::usage(format!("Not sent: {e}.")))?;
    let sealed =
        seal_body(&device.identity()?, &room.key(), &body, None, fresh()).map_err(Exit::usage)?;
    let path = home.enqueue(&sealed.envelope, &sealed.radio, &room.server)?;
    let id = sealed.envelope.id;
    let flushed = flush(home, &room.server, Duration::from_secs(wait)).await;
    let name = clean(&room.name);
    let later = format!(
        "it waits in the outbox and goes out, once, with the next command that reaches {} \
         (or: fieldmesh-cli sync)",
        room.server
    );
    if let Ok(Some(seq)) = flushed.as_ref().map(|f| f.stored.get(&id)) {
        println!("Sent to {name}: stored on the server as #{seq}.");
        return Ok(());
    }
    if let Ok(Some((_, detail))) = flushed
        .as_ref()
        .map(|f| f.failed.iter().find(|(failed, _)| *failed == id))
    {
        return Err(Exit::refused(format!(
            "The server refused the message: {detail} (kept in outbox/failed/)"
        )));
    }
    // Another command of this device (a `read --follow`) may have sent it meanwhile.
    match home.whereabouts(&path) {
        Whereabouts::Delivered => {
            println!("Sent to {name}: stored on the server.");
            return Ok(());
        }
        Whereabouts::Refused => {
            return Err(Exit::refused(
                "The server refused the message (kept in outbox/failed/).",
            ))
        }
        Whereabouts::Damaged => {
            return Err(Exit::broken(
                "The message's outbox file could not be read (moved to outbox/damaged/).",
            ))
        }
        Whereabouts::Waiting => {}
    }
    match flushed {
        Ok(flushed) => Err(Exit::queued(format!(
            "Not sent yet ({}): {later}.",
            flushed.reason.unwrap_or_else(|| "no answer".into())
        ))),
        Err(exit) if exit.code == 3 => Err(Exit::queued(format!(
            "Not sent yet: {}. It {later}.",
            exit.message.trim_end_matches('.')
        ))),
        // Not a matter of waiting (a refused certificate, a wrong join code): say so.
        Err(exit) => Err(Exit {
            message: format!(
                "{}. The message is kept in the outbox; it goes out once this is mended.",
                exit.message.trim_end_matches('.')
            ),
            ..exit
        }),
    }
}

pub async fn send(home: &Home, room: &str, words: &[String], wait: u64) -> Result<(), Exit> {
    let device = home.device()?;
    let room = room_named(&device, room)?;
    let text = text_of(words)?;
    send_to(home, &device, &room, &text, wait).await
}

pub async fn sync(home: &Home, wait: u64) -> Result<(), Exit> {
    let servers: std::collections::BTreeSet<String> = home
        .outbox()?
        .into_iter()
        .map(|e| e.queued.server)
        .collect();
    let (mut sent, mut left, mut failed) = (0, 0, 0);
    let mut problem: Option<Exit> = None;
    for server in servers {
        match flush(home, &server, Duration::from_secs(wait)).await {
            Ok(flushed) => {
                sent += flushed.stored.len();
                failed += flushed.failed.len();
                for (_, detail) in &flushed.failed {
                    eprintln!("fieldmesh-cli: refused by {server}: {}", clean(detail));
                }
                left += flushed.left;
                if let Some(reason) = flushed.reason {
                    problem.get_or_insert(Exit::queued(reason));
                }
            }
            Err(exit) => {
                left += home.waiting_for(&server)?;
                // One that waiting does not mend (a refused certificate) wins.
                if problem.as_ref().is_none_or(|p| p.code == 75) {
                    problem = Some(if exit.code == 3 {
                        Exit::queued(exit.message)
                    } else {
                        exit
                    });
                }
            }
        }
    }
    println!("{sent} sent, {left} waiting, {failed} refused.");
    match (left, problem) {
        (0, _) if failed > 0 => Err(Exit::refused(
            "some messages were refused (kept in outbox/failed/)",
        )),
        (0, _) => Ok(()),
        (_, Some(problem)) => Err(problem),
        (_, None) => Err(Exit::queued("some messages still wait")),
    }
}

/// What a pass over the outbox did.
#[derive(Default)]
pub struct Flushed {
    /// Stored by the server: id and sequence number.
    pub stored: HashMap<MessageId, u64>,
    /// Refused for good: id and the server's reason.
    pub failed: Vec<(MessageId, String)>,
    /// Still waiting.
    pub left: usize,
    /// Why some still wait.
    pub reason: Option<String>,
}

/// Connects to `origin` and delivers its outbox entries (nothing to do: no connection).
async fn flush(home: &Home, origin: &str, wait: Duration) -> Result<Flushed, Exit> {
    if home.waiting_for(origin)? == 0 {
        return Ok(Flushed::default());
    }
    let server = home.device()?.server(origin);
    let mut link =
        Link::connect_within(&server, None, wait.min(crate::link::CONNECT_TIMEOUT)).await?;
    keep_learned(home, &link)?;
    let flushed = flush_on(home, &mut link, wait).await;
    link.close().await;
    flushed
}

/// Delivers the outbox entries of `link`'s server on it, in order, each once; an entry
/// leaves the outbox when the server acknowledges it. Refusals that are not the message's
/// fault (rate limit, storage trouble) are waited out within `wait`.
async fn flush_on(home: &Home, link: &mut Link, wait: Duration) -> Result<Flushed, Exit> {
    let origin = link.origin.clone();
    let deadline = Instant::now() + wait;
    let mut book = OutboxBook::default();
    let mut flushed = Flushed::default();
    let mut in_flight: HashSet<MessageId> = HashSet::new();
    loop {
        let entries = home.outbox_for(&origin)?;
        if entries.is_empty() {
            return Ok(flushed);
        }
        let ids: Vec<MessageId> = entries.iter().map(|e| e.id).collect();
        let to_send = book.plan(&ids);
        if Instant::now() >= deadline {
            flushed.left = entries.len();
            flushed.reason = Some("the time to wait ran out".into());
            return Ok(flushed);
        }
        if to_send.is_empty() {
            // Only entries answered already whose files would not go away: nothing to do.
            flushed.left = entries.len();
            flushed.reason = Some("answered, but their outbox files could not be removed".into());
            return Ok(flushed);
        }
        for entry in entries.iter().filter(|e| to_send.contains(&e.id)) {
            let Some(envelope) = entry.queued.envelope() else {
                continue;
            };
            let room = envelope.room;
            link.send(&mesh::ClientFrame::Publish(envelope)).await?;
            book.mark_sent(entry.id);
            in_flight.insert(entry.id);
            let radio = entry.queued.radio();
            if !radio.is_empty() {
                // A server with a radio carries it to other camps; one without ignores it.
                link.send(&mesh::ClientFrame::SendRadio {
                    room,
                    id: entry.id,
                    payload: radio,
                })
                .await?;
            }
        }
        // Every answer is read before anything goes again.
        let mut pause: Option<(u32, String)> = None;
        while !in_flight.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match link.next_within(left).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err(Exit::unreachable("the server closed the connection")),
                Err(exit) => {
                    flushed.left = home.waiting_for(&origin)?;
                    flushed.reason = Some(exit.message);
                    return Ok(flushed);
                }
            };
            match frame {
                ServerFrame::Ack { id, seq, .. } if book.stored(id) => {
                    in_flight.remove(&id);
                    if let Some(entry) = entries.iter().find(|e| e.id == id) {
                        home.done(entry);
                    }
                    flushed.stored.insert(id, seq);
                }
                ServerFrame::Error {
                    id: Some(id),
                    code,
                    detail,
                    retry_after_ms,
                } => match book.refused(id, code, retry_after_ms) {
                    Refusal::NotOurs => {}
                    Refusal::RetryAfter(ms) => {
                        in_flight.remove(&id);
                        if pause.as_ref().is_none_or(|(longest, _)| ms > *longest) {
                            pause = Some((ms, detail));
                        }
                    }
                    Refusal::Failed => {
                        in_flight.remove(&id);
                        if let Some(entry) = entries.iter().find(|e| e.id == id) {
                            home.failed(entry);
                        }
                        flushed.failed.push((id, detail));
                    }
                },
                _ => {}
            }
        }
        if let Some((ms, detail)) = pause {
            let until = Instant::now() + Duration::from_millis(u64::from(ms));
            if until > deadline {
                flushed.left = home.waiting_for(&origin)?;
                flushed.reason = Some(detail);
                return Ok(flushed);
            }
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// A room's messages as a reader gathers them: the newest page on joining, then older pages
/// until `limit`.
async fn gather(
    link: &mut Link,
    device: &Device,
    room: &Room,
    limit: usize,
    roster: &mut Roster,
) -> Result<Vec<StoredMessage>, Exit> {
    let identity = device.identity()?;
    let key = room.key();
    link.join(&identity, &device.name, &key, None).await?;
    let mut gathered: Vec<StoredMessage> = Vec::new();
    // What is stored while older pages are fetched comes live: kept, not lost.
    let mut live: Vec<StoredMessage> = Vec::new();
    // A long gathering (an export of a big room) says how far it is, on a terminal.
    let progress = limit > 1_000 && std::io::stderr().is_terminal();
    let mut asked: Option<(u64, u16)> = None;
    loop {
        match link.next_within(ANSWER_WAIT).await? {
            Some(ServerFrame::History {
                room: id,
                messages,
                has_more,
            }) if id == room.id() => {
                let mut page = messages;
                page.append(&mut gathered);
                gathered = page;
                if progress {
                    eprint!("\rFetched {} messages…", gathered.len());
                }
                let oldest = gathered.first().map(|m| m.seq);
                match oldest {
                    Some(oldest) if has_more && gathered.len() < limit => {
                        let want = (limit - gathered.len()).min(usize::from(MAX_HISTORY_PAGE));
                        asked = Some((oldest, want as u16));
                        link.history(&key, oldest, want as u16).await?;
                    }
                    Some(_) if has_more => {
                        eprintln!(
                            "fieldmesh-cli: only the newest {limit} messages of {} were fetched",
                            clean(&room.name)
                        );
                        break;
                    }
                    _ => break,
                }
            }
            Some(ServerFrame::Message(stored)) if stored.envelope.room == room.id() => {
                live.push(stored);
            }
            Some(ServerFrame::Presence { room: id, members }) if id == room.id() => {
                roster.observe(&key, &identity, &members);
            }
            // Paging too fast for the server's allowance: wait as it says, then ask again.
            Some(ServerFrame::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                id: None,
                ..
            }) => {
                let pause = u64::from(retry_after_ms.unwrap_or(1_000));
                tokio::time::sleep(Duration::from_millis(pause)).await;
                match asked {
                    Some((before, want)) => link.history(&key, before, want).await?,
                    None => link.join(&identity, &device.name, &key, None).await?,
                }
            }
            Some(ServerFrame::Error { detail, code, .. }) if code != ErrorCode::RateLimited => {
                return Err(Exit::refused(detail));
            }
            Some(_) => {}
            None => return Err(Exit::unreachable("the server closed the connection")),
        }
    }
    if progress {
        eprintln!();
    }
    let newest_held = gathered.last().map(|m| m.seq);
    gathered.extend(live.into_iter().filter(|m| Some(m.seq) > newest_held));
    let skip = gathered.len().saturating_sub(limit);
    Ok(gathered.split_off(skip))
}

/// The newest sequence number of `messages`, or `known`.
fn newest(messages: &[StoredMessage], known: Option<u64>) -> Option<u64> {
    messages.iter().map(|m| m.seq).max().max(known)
}

/// The people seen in a room on one server, and what the device knew of them.
struct Roster {
    contacts: Contacts,
    /// Who was seen here and not yet noted as seen on this server (sender ids, hex).
    seen: Vec<String>,
    /// The server.
    origin: String,
}

impl Roster {
    /// Remembers the members whose cards open (trust on first use); returns how each shows.
    fn observe(
        &mut self,
        key: &RoomKey,
        identity: &Identity,
        members: &[Member],
    ) -> Vec<client::people::Seen> {
        members
            .iter()
            .filter_map(|member| PresenceCard::open(key, member))
            .map(|card| {
                let you = card.identity.sender() == identity.sender();
                let seen = self.contacts.observe(&card, you);
                if !you {
                    self.seen.push(seen.id.clone());
                }
                seen
            })
            .collect()
    }

    /// Keeps what was learned, merged with what another command may have kept meanwhile.
    fn save(&mut self, home: &Home) -> Result<(), Exit> {
        let changed = self.contacts.take_changed();
        if !changed && self.seen.is_empty() {
            return Ok(());
        }
        let seen = std::mem::take(&mut self.seen);
        let merged = home.update(|device| {
            device.contacts = device.contacts().merged(&self.contacts).to_text();
            for id in seen {
                device.seen_on.insert(id, self.origin.clone());
            }
            device.contacts()
        })?;
        self.contacts = merged;
        Ok(())
    }
}

/// A sender's text made safe for a terminal: control characters (escape sequences could
/// rewrite the screen or the window title) become "�"; new lines are indented.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\n    ".to_string(),
            '\t' => "\t".to_string(),
            c if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                '\u{fffd}'.to_string()
            }
            c => c.to_string(),
        })
        .collect()
}

/// One message as a line of text.
fn text_line(m: &Exported) -> String {
    let mut line = format!(
        "[{}] {}",
        m.time.replace('T', " ").trim_end_matches('Z'),
        clean(&m.author)
    );
    if m.verified {
        line.push_str(" ✓");
    }
    if m.via_radio {
        line.push_str(" (radio)");
    }
    line.push_str(": ");
    if let Some(signal) = m.signal {
        line.push_str(&format!("[{}] ", signal.to_uppercase()));
    }
    line.push_str(&clean(&m.text));
    for file in &m.files {
        line.push_str(&format!(" [{}]", clean(&file.marker)));
    }
    if let Some(place) = &m.location {
        line.push_str(&format!(
            " 📍 {:.5}, {:.5} (±{} m)",
            place.lat, place.lon, place.accuracy_m
        ));
    }
    line
}

/// Prints the messages that open (live positions are not news). `Err` when standard output
/// is gone or full.
fn print_messages(
    messages: &[StoredMessage],
    key: &RoomKey,
    contacts: &Contacts,
    json: bool,
) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    for stored in messages {
        let Some(opened) = client::message::open(stored, key) else {
            continue;
        };
        if opened.live {
            continue;
        }
        let line = exported(&opened, contacts);
        let text = if json {
            client::export::json_line(&line)
        } else {
            text_line(&line)
        };
        writeln!(out, "{text}").map_err(output_failed)?;
    }
    out.flush().map_err(output_failed)
}

/// Standard output could not be written.
fn output_failed(error: std::io::Error) -> Exit {
    Exit::broken(format!("cannot write to standard output: {error}"))
}

pub async fn read(
    home: &Home,
    room: &str,
    follow: bool,
    json: bool,
    limit: usize,
) -> Result<(), Exit> {
    let InRoom {
        device,
        room,
        key,
        identity,
        mut roster,
        mut link,
    } = enter(home, room).await?;
    if let Err(exit) = flush_on(home, &mut link, Duration::from_secs(5)).await {
        eprintln!("fieldmesh-cli: the outbox waits: {}", clean(&exit.message));
    }
    // Always the newest page, so a follower knows where the room is even when it prints none.
    let messages = gather(
        &mut link,
        &device,
        &room,
        limit.clamp(1, MAX_GATHERED),
        &mut roster,
    )
    .await?;
    let skip = messages.len().saturating_sub(limit);
    print_messages(&messages[skip..], &key, &roster.contacts, json)?;
    let mut last = newest(&messages, None);
    roster.save(home)?;
    if !follow {
        link.close().await;
        return Ok(());
    }
    let mut store_id = link.store_id;
    let mut backoff = client::connection::Backoff::default();
    loop {
        // Follow until the connection goes, or falls silent (a Wi-Fi that drops can leave it
        // open on this side): a ping every 10 s, and 30 s of silence is a lost connection.
        loop {
            let frame = match tokio::time::timeout(PING_EVERY, link.next()).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None) | Err(_)) => break,
                Err(_) if link.silent_for() > SILENCE_LIMIT => break,
                Err(_) => {
                    let nonce = u64::from_le_bytes(random());
                    if link.send(&mesh::ClientFrame::Ping { nonce }).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            match frame {
                ServerFrame::Message(stored) if stored.envelope.room == room.id() => {
                    let fresh: Vec<_> = [stored]
                        .into_iter()
                        .filter(|m| Some(m.seq) > last)
                        .collect();
                    print_messages(&fresh, &key, &roster.contacts, json)?;
                    last = newest(&fresh, last);
                }
                // After a reconnect: what came meanwhile (a page of it when the server's
                // store is another one), each message once.
                ServerFrame::CatchUp {
                    room: id, messages, ..
                }
                | ServerFrame::History {
                    room: id, messages, ..
                } if id == room.id() => {
                    let fresh: Vec<_> = messages
                        .into_iter()
                        .filter(|m| Some(m.seq) > last)
                        .collect();
                    print_messages(&fresh, &key, &roster.contacts, json)?;
                    last = newest(&fresh, last);
                }
                ServerFrame::Presence { room: id, members } if id == room.id() => {
                    roster.observe(&key, &identity, &members);
                    roster.save(home)?;
                }
                ServerFrame::PresenceChanged {
                    room: id, joined, ..
                } if id == room.id() => {
                    roster.observe(&key, &identity, &joined);
                    roster.save(home)?;
                }
                _ => {}
            }
        }
        eprintln!("fieldmesh-cli: lost the server; reconnecting…");
        link = loop {
            let delay = backoff.next_delay(u32::from_le_bytes(random()));
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
            let server = home.device()?.server(&room.server);
            let mut link = match Link::connect(&server, None).await {
                Ok(link) => link,
                Err(exit) if exit.code == 3 => continue,
                Err(exit) => return Err(exit),
            };
            keep_learned(home, &link)?;
            if let Err(exit) = flush_on(home, &mut link, Duration::from_secs(5)).await {
                eprintln!("fieldmesh-cli: the outbox waits: {}", clean(&exit.message));
            }
            // Another store (the server's data was replaced): start from its newest page.
            let after = if link.store_id == store_id {
                Some(last.unwrap_or(0))
            } else {
                None
            };
            if link
                .join(&identity, &device.name, &key, after)
                .await
                .is_ok()
            {
                if after.is_none() {
                    last = None;
                }
                store_id = link.store_id;
                break link;
            }
        };
        backoff.reset();
        eprintln!("fieldmesh-cli: reconnected.");
    }
}

pub async fn people(home: &Home, room: &str) -> Result<(), Exit> {
    let InRoom {
        device,
        room,
        key,
        identity,
        mut roster,
        mut link,
    } = enter(home, room).await?;
    link.join(&identity, &device.name, &key, None).await?;
    let members = loop {
        match link.next_within(ANSWER_WAIT).await? {
            Some(ServerFrame::Presence { room: id, members }) if id == room.id() => break members,
            Some(ServerFrame::Error { detail, code, .. }) if code != ErrorCode::RateLimited => {
                return Err(Exit::refused(detail))
            }
            Some(_) => {}
            None => return Err(Exit::unreachable("the server closed the connection")),
        }
    };
    link.close().await;
    let seen = roster.observe(&key, &identity, &members);
    roster.save(home)?;
    println!(
        "You ({}): {}",
        clean(&device.name),
        identity.public().safety_code()
    );
    let own = hex(&identity.sender().0);
    let mut shown = HashSet::new();
    for person in seen.iter().filter(|p| p.id != own) {
        if !shown.insert(person.id.clone()) {
            continue;
        }
        let mark = if person.verified {
            "verified"
        } else {
            "not verified"
        };
        println!(
            "{}: {}  ({mark}; key {})",
            clean(&person.name),
            person.code,
            &person.id[..12]
        );
        if let Some(warning) = &person.warning {
            println!("  {}", clean(warning));
        }
    }
    let unknown = members.len() - seen.len();
    if unknown > 0 {
        println!("{unknown} more whose card does not open with this room's key.");
    }
    if shown.is_empty() {
        println!("Nobody else is in {} right now.", clean(&room.name));
    }
    Ok(())
}

/// The contacts called `who` (by name, or the start of their key).
fn find<'a>(contacts: &'a Contacts, who: &str) -> Result<&'a client::people::Contact, Exit> {
    let wanted = name_key(who);
    let lower = who.to_lowercase();
    let matches: Vec<_> = contacts
        .list()
        .iter()
        .filter(|c| name_key(&c.name) == wanted || (lower.len() >= 8 && c.id.starts_with(&lower)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Exit::usage(format!(
            "Nobody called {who:?} was seen yet: run fieldmesh-cli people ROOM while they are in a room with you."
        ))),
        many => Err(Exit::usage(format!(
            "{} people are called {who:?}; name one by the start of their key: {}.",
            many.len(),
            many.iter().map(|c| &c.id[..12]).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub fn verify(home: &Home, who: &str) -> Result<(), Exit> {
    let outcome = home.update(|device| {
        let mut contacts = device.contacts();
        let found = find(&contacts, who).map(|c| (c.id.clone(), c.name.clone()))?;
        contacts.verify(&found.0);
        device.contacts = contacts.to_text();
        Ok::<_, Exit>(found)
    })??;
    println!(
        "{} is verified on this device (only do this after comparing safety codes in person).",
        clean(&outcome.1)
    );
    Ok(())
}

pub async fn dm(home: &Home, name: &str, words: &[String], wait: u64) -> Result<(), Exit> {
    let room = direct_room(&home.device()?, name)?;
    let text = text_of(words)?;
    let device = home.update(|device| {
        device.keep_room(room.clone());
        device.clone()
    })?;
    send_to(home, &device, &room, &text, wait).await
}

pub async fn export(
    home: &Home,
    room: &str,
    html: bool,
    output: Option<PathBuf>,
) -> Result<(), Exit> {
    let InRoom {
        device,
        room,
        key,
        mut roster,
        mut link,
        ..
    } = enter(home, room).await?;
    let messages = gather(&mut link, &device, &room, MAX_GATHERED, &mut roster).await?;
    link.close().await;
    roster.save(home)?;
    let lines: Vec<Exported> = messages
        .iter()
        .filter_map(|m| client::message::open(m, &key))
        .filter(|opened| !opened.live)
        .map(|opened| exported(&opened, &roster.contacts))
        .collect();
    let text = if html {
        client::export::html(&room.name, &lines, now_ms())
    } else {
        client::export::json_lines(&lines)
    };
    match output {
        Some(path) => {
            // The transcript is plaintext: readable by the user alone.
            let failed =
                |e: std::io::Error| Exit::broken(format!("cannot write {}: {e}", path.display()));
            let mut options = std::fs::OpenOptions::new();
            options.create(true).truncate(true).write(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(failed)?;
            file.write_all(text.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
            eprintln!(
                "{} messages of {} written to {}.",
                lines.len(),
                clean(&room.name),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).map_err(output_failed)?;
            out.flush().map_err(output_failed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_senders_escape_sequences_never_reach_the_terminal() {
        let cleaned = clean("hi\u{1b}]0;owned\u{7}\u{1b}[2J there\u{202e}\nnext");
        assert!(!cleaned.chars().any(|c| c.is_control() && c != '\n'));
        assert!(cleaned.contains("hi\u{fffd}]0;owned\u{fffd}\u{fffd}[2J there\u{fffd}\n    next"));
    }
}
