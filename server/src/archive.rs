//! The operator's archive of a room: `fieldmesh export` writes what the server stores of it
//! (ids, times, senders' public keys, sizes and the sealed envelopes, exactly as stored) for
//! keeping or for handing to another camp, and `fieldmesh import` loads such a file into
//! another server. The operator has no room key, so an archive holds ciphertext only, like the
//! database it came from.
//!
//! The format is JSON Lines: a header line, then one line per message, oldest first. Import
//! checks the whole file first (the header, every line's envelope and signature, that the
//! line's fields match its envelope, the count) and stores nothing unless all of it is sound;
//! then it reads it again and stores the messages a thousand per transaction, idempotently (a
//! message the server holds already is skipped), keeping each message's first-stored time.
//! Neither reading holds more than a thousand messages in memory.

use std::io::{BufRead, Seek, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mesh::hex::encode as hex;
use mesh::{Envelope, Kind, RoomId};
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::store::{LogStep, Origin, Store};

/// The archive format's version.
pub const ARCHIVE_VERSION: u32 = 1;
/// Longest line read (a whole envelope in base64 with its fields fits many times over).
const MAX_LINE_BYTES: u64 = 64 * 1024;
/// Most messages one archive may hold.
pub const MAX_ARCHIVE_MESSAGES: u64 = 10_000_000;
/// Messages stored per transaction on import (the whole import is still checked first).
const IMPORT_BATCH: usize = 1_000;

/// The first line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    fieldmesh_archive: u32,
    /// The room, hex.
    room: String,
    /// How many message lines follow.
    messages: u64,
    /// When it was written, ms since the epoch.
    exported_at_ms: u64,
    /// The store it came from, hex.
    store_id: String,
}

/// One message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// Its sequence number on the exporting server.
    seq: u64,
    /// When that server first stored it.
    received_at_ms: u64,
    /// Its id, hex.
    id: String,
    /// The sender's public signing key, hex (for a radio copy: the radio's stand-in).
    sender: String,
    /// The sender's clock when written.
    created_at_ms: u64,
    /// "text", "radio" or "live".
    kind: String,
    /// Bytes of the sealed body.
    size: usize,
    /// The envelope as stored, base64.
    envelope: String,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Radio => "radio",
        Kind::Live => "live",
    }
}

/// What an export or import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages written or read.
    pub messages: u64,
    /// On import: stored anew.
    pub stored: u64,
    /// On import: not stored, because the room holds another message under the same id.
    pub conflicts: u64,
}

/// Writes the archive of `room` from `store` to `out`, one message in memory at a time, from
/// one snapshot of the store (the header's count is then exact while the server stores more).
pub fn export(store: &Store, room: RoomId, out: &mut impl Write) -> Result<Summary, ServerError> {
    let io = |source| ServerError::Io {
        context: "cannot write the archive".into(),
        source,
    };
    let messages = store.room_log_blocking(room, |step| {
        let json = match step {
            LogStep::Count(messages) => serde_json::to_string(&Header {
                fieldmesh_archive: ARCHIVE_VERSION,
                room: hex(&room.0),
                messages,
                exported_at_ms: crate::now_ms(),
                store_id: hex(&store.id),
            }),
            LogStep::Message(message) => {
                let envelope = &message.envelope;
                serde_json::to_string(&Line {
                    seq: message.seq,
                    received_at_ms: message.received_at_ms,
                    id: hex(&envelope.id.0),
                    sender: hex(&envelope.sender.0),
                    created_at_ms: envelope.created_at_ms,
                    kind: kind_name(envelope.kind).into(),
                    size: envelope.body.len(),
                    envelope: BASE64.encode(envelope.encode()?),
                })
            }
        };
        writeln!(out, "{}", json.expect("plain fields")).map_err(io)
    })?;
    out.flush().map_err(io)?;
    Ok(Summary {
        messages,
        ..Summary::default()
    })
}

/// Why an archive was not loaded.
fn bad(line: u64, why: impl std::fmt::Display) -> ServerError {
    ServerError::Archive(format!("line {line}: {why}; nothing was imported"))
}

/// Lines of an archive, counted, each at most [`MAX_LINE_BYTES`].
struct Lines<'a, R> {
    input: &'a mut R,
    number: u64,
}

impl<R: BufRead> Lines<'_, R> {
    fn next(&mut self) -> Result<Option<String>, ServerError> {
        self.number += 1;
        let mut bytes = Vec::new();
        std::io::Read::take(&mut *self.input, MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| bad(self.number, format!("cannot read: {e}")))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.len() as u64 > MAX_LINE_BYTES {
            return Err(bad(self.number, "the line is too long for an archive"));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| bad(self.number, "not UTF-8 text"))
    }
}

/// Reads and checks a whole archive, handing its messages (each with its first-stored time)
/// to `batch` a thousand at a time, so memory stays bounded whatever its size. Returns its
/// room and how many messages it holds.
fn read(
    input: &mut impl BufRead,
    mut batch: impl FnMut(&[Envelope], &[u64]) -> Result<(), ServerError>,
) -> Result<(RoomId, u64), ServerError> {
    let mut lines = Lines { input, number: 0 };
    let header = lines.next()?.ok_or_else(|| bad(1, "the file is empty"))?;
    let header: Header = serde_json::from_str(&header)
        .map_err(|e| bad(1, format!("not a FieldMesh archive ({e})")))?;
    if header.fieldmesh_archive != ARCHIVE_VERSION {
        return Err(bad(
            1,
            format!(
                "archive version {} is not one this server reads",
                header.fieldmesh_archive
            ),
        ));
    }
    let room =
        RoomId::from_hex(&header.room).ok_or_else(|| bad(1, "the room id is not 32 hex digits"))?;
    if header.messages > MAX_ARCHIVE_MESSAGES {
        return Err(bad(1, "it claims more messages than an archive may hold"));
    }
    let (mut envelopes, mut times) = (Vec::new(), Vec::new());
    let mut count = 0u64;
    while let Some(text) = lines.next()? {
        let number = lines.number;
        if text.trim().is_empty() {
            continue;
        }
        if count >= header.messages {
            return Err(bad(number, "more messages than the header says"));
        }
        let line: Line = serde_json::from_str(&text)
            .map_err(|e| bad(number, format!("not a message line ({e})")))?;
        let bytes = BASE64
            .decode(line.envelope.trim())
            .map_err(|_| bad(number, "the envelope is not base64"))?;
        let envelope = crate::federation::check(&bytes).ok_or_else(|| {
            bad(
                number,
                "the envelope does not decode or its signature fails",
            )
        })?;
        let matches = envelope.room == room
            && hex(&envelope.id.0) == line.id.to_ascii_lowercase()
            && hex(&envelope.sender.0) == line.sender.to_ascii_lowercase()
            && envelope.created_at_ms == line.created_at_ms
            && kind_name(envelope.kind) == line.kind
            && envelope.body.len() == line.size;
        if !matches {
            return Err(bad(
                number,
                "its fields do not match its envelope (or another room's)",
            ));
        }
        count += 1;
        envelopes.push(envelope);
        // A time from the future (or past what the store keeps) is taken as now: retention
        // counts from it.
        times.push(line.received_at_ms.min(crate::now_ms()));
        if envelopes.len() == IMPORT_BATCH {
            batch(&envelopes, &times)?;
            envelopes.clear();
            times.clear();
        }
    }
    if count != header.messages {
        return Err(bad(
            lines.number,
            format!(
                "the file ends after {count} of the {} messages its header names (cut short?)",
                header.messages
            ),
        ));
    }
    if !envelopes.is_empty() {
        batch(&envelopes, &times)?;
    }
    Ok((room, count))
}

/// Checks the archive in `input` whole (a first reading, which keeps nothing), then reads it
/// again and stores its messages in `store`, a thousand per transaction.
pub fn import(
    store: &Store,
    input: &mut (impl BufRead + Seek),
) -> Result<(RoomId, Summary), ServerError> {
    fn rewind(input: &mut impl Seek) -> Result<(), ServerError> {
        input.rewind().map_err(|source| ServerError::Io {
            context: "cannot read the archive again".into(),
            source,
        })
    }
    rewind(input)?;
    read(input, |_, _| Ok(()))?;
    rewind(input)?;
    let (mut stored, mut conflicts) = (0, 0);
    let (room, messages) = read(input, |envelopes, times| {
        let results = store.insert_timed_blocking(envelopes, times, Origin::Here, |_| {})?;
        stored += results
            .iter()
            .filter(|s| !s.duplicate && !s.conflict)
            .count() as u64;
        conflicts += results.iter().filter(|s| s.conflict).count() as u64;
        Ok(())
    })?;
    Ok((
        room,
        Summary {
            messages,
            stored,
            conflicts,
        },
    ))
}

/// `fieldmesh export`: the archive of `room` (hex) in the store of `data_dir`, to `output`
/// (standard output when `None`). Without a room: the rooms there are, to choose from.
pub fn export_command(
    data_dir: &Path,
    room: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if !data_dir.join("messages.sqlite3").exists() {
        anyhow::bail!("{} holds no FieldMesh messages", data_dir.display());
    }
    let store = Store::open(data_dir)?;
    let Some(room) = room else {
        let rooms = store.room_summaries_blocking()?;
        println!("Rooms stored in {} (busiest first):", data_dir.display());
        for (room, count, bytes, newest) in &rooms {
            println!(
                "  {}  {count} messages, {}, newest {} UTC",
                hex(&room.0),
                mesh::body::human_size(*bytes),
                client::export::utc(*newest)
                    .replace('T', " ")
                    .trim_end_matches('Z')
            );
        }
        anyhow::bail!("name the room to export: fieldmesh export --room ID");
    };
    let room = RoomId::from_hex(room.trim()).context(
        "--room takes a room id: 32 hex digits (fieldmesh export without --room lists them)",
    )?;
    if store.after_blocking(room, 0, 1)?.is_empty() {
        anyhow::bail!("this server stores no messages of room {}", hex(&room.0));
    }
    let summary = match output {
        Some(path) => {
            let temporary = path.with_extension("part");
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&temporary)
                    .with_context(|| format!("cannot write {}", temporary.display()))?,
            );
            let summary = export(&store, room, &mut file)?;
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", temporary.display()))?;
            std::fs::rename(&temporary, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            summary
        }
        None => export(&store, room, &mut std::io::stdout().lock())?,
    };
    eprintln!(
        "Exported {} messages of room {} (sealed: no room key was used or needed).",
        summary.messages,
        hex(&room.0)
    );
    Ok(())
}

/// `fieldmesh import`: loads the archive at `file` into the store of `data_dir`.
pub fn import_command(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    if !data_dir.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give the data folder of the server to load into (it is made \
             when the server first starts)",
            data_dir.display()
        );
    }
    let opened =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = Store::open(data_dir)?;
    let (room, summary) = import(&store, &mut std::io::BufReader::new(opened))?;
    eprintln!(
        "Imported room {}: {} messages read, {} stored anew, {} already here.",
        hex(&room.0),
        summary.messages,
        summary.stored,
        summary.messages - summary.stored - summary.conflicts
    );
    if summary.conflicts > 0 {
        eprintln!(
            "{} not stored: this server holds other messages under their ids.",
            summary.conflicts
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::crypto::{seal, Draft, Identity, RoomKey};
    use mesh::{Kind, MessageId, TextBody};

    fn archive_of(store: &Store, room: RoomId) -> Vec<u8> {
        let mut bytes = Vec::new();
        export(store, room, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn damaged_archives_never_panic_and_store_nothing_unless_whole() {
        let folder = tempfile::tempdir().unwrap();
        let source = Store::open(&folder.path().join("a")).unwrap();
        let key = RoomKey::from_bytes([4; 32]);
        let identity = Identity::from_seed(&[8; 64]);
        let envelopes: Vec<Envelope> = (0..4u8)
            .map(|i| {
                let body = TextBody::new("Ana", &format!("message {i}"))
                    .unwrap()
                    .encode()
                    .unwrap();
                let draft = Draft {
                    id: MessageId([i; 16]),
                    created_at_ms: 1_000 + u64::from(i),
                    kind: Kind::Text,
                    plaintext: &body,
                };
                seal(&identity, &key, draft, [i; 24]).unwrap()
            })
            .collect();
        source.insert_many_blocking(&envelopes, 7, |_| {}).unwrap();
        let good = archive_of(&source, key.room_id());
        let target = Store::open(&folder.path().join("b")).unwrap();
        // A small deterministic generator: the same cases on every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut refused = 0;
        for case in 0..3_000 {
            let mut bytes = good.clone();
            match case % 4 {
                0 => {
                    let at = next() as usize % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
                1 => bytes.truncate(next() as usize % bytes.len()),
                2 => {
                    let at = next() as usize % bytes.len();
                    bytes.insert(at, next() as u8);
                }
                _ => {
                    let at = next() as usize % bytes.len();
                    let len = (next() as usize % 64).min(bytes.len() - at);
                    bytes.drain(at..at + len);
                }
            }
            match import(&target, &mut std::io::Cursor::new(bytes.as_slice())) {
                Ok((room, summary)) => {
                    // Only an archive that is still whole and sound goes in (a flipped digit
                    // of a time in the header, say), and then all of it.
                    assert_eq!(room, key.room_id());
                    assert_eq!(summary.messages, 4);
                }
                Err(ServerError::Archive(_)) => {
                    refused += 1;
                    assert!(matches!(target.count_blocking().unwrap(), 0 | 4));
                }
                Err(other) => panic!("case {case}: {other}"),
            }
        }
        assert!(
            refused > 2_500,
            "only {refused} of 3,000 damaged archives were refused"
        );
        // Every message went in at most once.
        assert!(target.count_blocking().unwrap() <= 4);
    }

    #[test]
    fn a_room_larger_than_one_batch_moves_whole_with_its_order() {
        let folder = tempfile::tempdir().unwrap();
        let source = Store::open(&folder.path().join("a")).unwrap();
        let key = RoomKey::from_bytes([6; 32]);
        let identity = Identity::from_seed(&[9; 64]);
        let body = TextBody::new("Ana", "count").unwrap().encode().unwrap();
        let envelopes: Vec<Envelope> = (0..2_500u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                let draft = Draft {
                    id: MessageId(id),
                    created_at_ms: u64::from(i),
                    kind: Kind::Text,
                    plaintext: &body,
                };
                seal(&identity, &key, draft, [1; 24]).unwrap()
            })
            .collect();
        for (i, chunk) in envelopes.chunks(700).enumerate() {
            source
                .insert_many_blocking(chunk, i as u64, |_| {})
                .unwrap();
        }
        let bytes = archive_of(&source, key.room_id());
        let target = Store::open(&folder.path().join("b")).unwrap();
        let (_, summary) = import(&target, &mut std::io::Cursor::new(bytes.as_slice())).unwrap();
        assert_eq!((summary.messages, summary.stored), (2_500, 2_500));
        let moved = target.after_blocking(key.room_id(), 0, 3_000).unwrap();
        let ids: Vec<MessageId> = moved.iter().map(|m| m.envelope.id).collect();
        assert_eq!(ids, envelopes.iter().map(|e| e.id).collect::<Vec<_>>());
        assert_eq!(moved[2_499].received_at_ms, 3, "times kept");
    }
}
