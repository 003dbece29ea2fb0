//! A room's messages as a person takes them away: JSON Lines for tools and a printable HTML
//! transcript for a report or a handover. Made on the device from messages it opened with
//! its own keys (the page's "Export this room" and `fieldmesh-cli export`); nothing here
//! talks to a server.

use mesh::body::{FileKind, Signal};
use mesh::hex::encode as hex;
use serde::Serialize;

use crate::message::Opened;
use crate::people::Contacts;
use crate::sos::RADIO_SENDER;

/// One message as exported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exported {
    /// Message id, hex.
    pub id: String,
    /// Sequence number on the server it came from.
    pub seq: u64,
    /// When its author wrote it (their clock), ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The same, as a UTC time ("2026-11-28T19:42:03Z").
    pub time: String,
    /// The author's name as they gave it.
    pub author: String,
    /// The signing device's public key, hex; absent for a message heard over the radio
    /// (unsigned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The exporting device's person compared safety codes with the sender.
    pub verified: bool,
    /// Came over the radio: the name is what the author said, not proven by a signature.
    pub via_radio: bool,
    /// The text (a caption, for files).
    pub text: String,
    /// Where the author was, when they said: latitude, longitude, accuracy in metres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The files sent with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ExportedFile>,
    /// "sos", "safe", "coming" or "live" when the message does more than say something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'static str>,
    /// For the exporting device's own messages the server has not stored: "waiting" (in its
    /// outbox) or "refused".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// A place, as exported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Location {
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
    /// How sure, in metres.
    pub accuracy_m: u16,
}

/// A file, as exported: what it was, not its bytes (they stay sealed on the server).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportedFile {
    /// "photo", "voice" or "document".
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// "photo, 180 KB", "voice note, 0:42", "list.pdf, 1.2 MB".
    pub marker: String,
}

/// `opened` as exported; `contacts` says who is verified on this device, and names a known
/// sender as the room shows them (see [`Contacts::label`]).
pub fn exported(opened: &Opened, contacts: &Contacts) -> Exported {
    let sender = opened.sender.map(|s| hex(&s.0));
    let author = contacts.label(
        &opened.body.author,
        sender.as_deref().unwrap_or(RADIO_SENDER),
        sender.is_some(),
    );
    let verified = sender
        .as_deref()
        .and_then(|id| contacts.get(id))
        .is_some_and(|c| c.verified);
    Exported {
        id: hex(&opened.id.0),
        seq: opened.seq,
        created_at_ms: opened.created_at_ms,
        time: utc(opened.created_at_ms),
        author,
        via_radio: sender.is_none(),
        sender,
        verified,
        text: opened.body.text.clone(),
        location: opened.body.position.map(|p| Location {
            lat: p.latitude(),
            lon: p.longitude(),
            accuracy_m: p.accuracy_m(),
        }),
        files: opened
            .body
            .attachments
            .iter()
            .map(|file| ExportedFile {
                kind: match file.what {
                    FileKind::Photo { .. } => "photo",
                    FileKind::Voice { .. } => "voice",
                    FileKind::Document => "document",
                },
                name: file.name.clone(),
                size: file.file.size,
                media_type: file.media_type.clone(),
                marker: file.marker(),
            })
            .collect(),
        signal: opened.body.signal.map(|signal| match signal {
            Signal::Sos => "sos",
            Signal::Safe { .. } => "safe",
            Signal::Coming { .. } => "coming",
            Signal::Live { .. } => "live",
        }),
        status: None,
    }
}

/// One message as a JSON object on one line. Besides what JSON requires, the C1 control
/// characters are written as `\u` escapes, so the line is safe to show on a terminal.
pub fn json_line(message: &Exported) -> String {
    let json = serde_json::to_string(message).expect("plain fields always serialise");
    json.chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// The messages as JSON Lines: one object per line, oldest first.
pub fn json_lines(messages: &[Exported]) -> String {
    messages.iter().map(|m| json_line(m) + "\n").collect()
}

/// A printable HTML transcript of `room`'s messages, made at `now_ms`. Everything a sender
/// wrote is escaped: it is text, never markup.
pub fn html(room: &str, messages: &[Exported], now_ms: u64) -> String {
    let mut out = String::new();
    let title = format!("FieldMesh · {}", escape(room));
    out.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p class=\"about\">{} {}, \
         exported {} (times in UTC, by each author's clock). ✓ marks a sender whose safety code \
         was compared on the exporting device; (radio) a message heard over the radio, whose \
         name is not proven by a signature.</p>\n<table>\n<thead><tr><th>Time</th><th>From</th>\
         <th>Message</th></tr></thead>\n<tbody>\n",
        messages.len(),
        if messages.len() == 1 {
            "message"
        } else {
            "messages"
        },
        utc(now_ms).replace('T', " ").replace('Z', " UTC"),
    ));
    for m in messages {
        let mut from = escape(&m.author);
        if m.verified {
            from.push_str(" <span class=\"mark\" title=\"verified\">✓</span>");
        }
        if m.via_radio {
            from.push_str(" <span class=\"mark\" title=\"heard over the radio\">(radio)</span>");
        }
        let mut text = String::new();
        if let Some(signal) = m.signal {
            text.push_str(&format!("<strong>[{}]</strong> ", signal.to_uppercase()));
        }
        text.push_str(&escape(&m.text).replace('\n', "<br>"));
        match m.status {
            Some("waiting") => text.push_str(" <em>(not sent yet)</em>"),
            Some(_) => text.push_str(" <em>(refused by the server)</em>"),
            None => {}
        }
        for file in &m.files {
            text.push_str(&format!(
                "<div class=\"file\">File: {}</div>",
                escape(&file_line(file))
            ));
        }
        if let Some(place) = &m.location {
            text.push_str(&format!(
                "<div class=\"place\">Place: {:.5}, {:.5} (±{} m)</div>",
                place.lat, place.lon, place.accuracy_m
            ));
        }
        out.push_str(&format!(
            "<tr><td class=\"time\">{}</td><td class=\"from\">{from}</td><td>{text}</td></tr>\n",
            m.time.replace('T', " ").trim_end_matches('Z'),
        ));
    }
    out.push_str("</tbody>\n</table>\n</body></html>\n");
    out
}

fn file_line(file: &ExportedFile) -> String {
    match file.kind {
        "document" => file.marker.clone(),
        _ => format!("{} ({})", file.name, file.marker),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}\
h1{font-size:1.3em;margin:0 0 .3em}.about{color:#555;font-size:.9em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;\
padding:.35em .5em;border-bottom:1px solid #ddd}th{border-bottom:2px solid #999}\
.time{white-space:nowrap;color:#444;font-variant-numeric:tabular-nums}.from{white-space:nowrap;\
font-weight:600}.mark{font-weight:400}.file,.place{color:#333;font-size:.92em}\
@media print{body{margin:0}tr{break-inside:avoid}}";

/// `&`, `<`, `>`, `"` and `'` as entities; control characters (but new lines and tabs) as
/// "�", so the page is also safe to show on a terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `ms` since the Unix epoch as a UTC time, "2026-11-28T19:42:03Z".
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (H. Hinnant's algorithm, for days after 1970).
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{seal_body, Fresh};
    use crate::message::open;
    use mesh::crypto::{Identity, RoomKey};
    use mesh::geo::Position;
    use mesh::{StoredMessage, TextBody};

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_894_923_000), "2026-11-28T19:42:03Z");
    }

    #[test]
    fn a_message_exports_as_json_and_as_escaped_html_with_its_marks() {
        let identity = Identity::from_seed(&[1; 64]);
        let key = RoomKey::from_bytes([2; 32]);
        let body = TextBody::new("Ana", "Bridge out & <script>alert(1)</script>")
            .unwrap()
            .at(Some(Position::new(48.85837, 2.29448, 12.0).unwrap()));
        let fresh = Fresh {
            id: [3; 16],
            nonce: [4; 24],
            now_ms: 1_795_894_923_000,
        };
        let sealed = seal_body(&identity, &key, &body, None, fresh).unwrap();
        let stored = StoredMessage {
            seq: 1,
            received_at_ms: 1,
            envelope: sealed.envelope,
        };
        let opened = open(&stored, &key).unwrap();
        let mut contacts = Contacts::default();
        let card =
            mesh::presence::PresenceCard::sign(&identity, key.room_id(), &[0; 32], "Ana <b>");
        contacts.observe(&card, false);
        assert!(contacts.verify(&hex(&identity.sender().0)));
        let line = exported(&opened, &contacts);
        assert!(line.verified && !line.via_radio);
        let json = json_lines(std::slice::from_ref(&line));
        let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(value["text"], "Bridge out & <script>alert(1)</script>");
        assert_eq!(value["time"], "2026-11-28T19:42:03Z");
        assert_eq!(value["location"]["accuracy_m"], 12);
        assert_eq!(value["sender"], hex(&identity.sender().0));
        let page = html("Camp <North>", &[line], 1_795_894_923_000);
        assert!(page.contains("FieldMesh · Camp &lt;North&gt;"));
        assert!(page.contains("Bridge out &amp; &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
        let hostile = Exported {
            text: "a\u{1b}[2J\u{9b}31m b".into(),
            ..line_for_hostile_test()
        };
        let one = json_line(&hostile);
        assert!(!one.chars().any(char::is_control), "{one:?}");
        let back: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(back["text"], "a\u{1b}[2J\u{9b}31m b", "the data is kept");
        let hostile_page = html("R", &[hostile], 0);
        assert!(!hostile_page.contains('\u{1b}'));
        assert!(hostile_page.contains("<em>(not sent yet)</em>"));
        assert!(page.contains("Ana &lt;b&gt; <span class=\"mark\" title=\"verified\">✓</span>"));
        assert!(page.contains("Place: 48.85837, 2.29448 (±12 m)"));
        assert!(page.contains("2026-11-28 19:42:03"));
    }

    #[test]
    fn files_are_listed_by_name_and_radio_messages_are_marked() {
        use mesh::body::{Attachment, FileKind};
        use mesh::file::{ChunkId, Manifest};
        let file = |what, media: &str, name: &str| Attachment {
            what,
            media_type: media.into(),
            name: name.into(),
            file: Manifest {
                key: [1; 32],
                size: 184_320,
                chunks: vec![ChunkId([2; 32])],
            },
            thumbnail: Vec::new(),
        };
        let opened = Opened {
            id: mesh::MessageId([5; 16]),
            seq: 3,
            received_at_ms: 0,
            created_at_ms: 0,
            sender: None,
            body: TextBody {
                author: "Rui".into(),
                text: "Map of the ford".into(),
                attachments: vec![
                    file(
                        FileKind::Photo {
                            width: 800,
                            height: 600,
                        },
                        "image/jpeg",
                        "ford.jpg",
                    ),
                    file(FileKind::Document, "application/pdf", "route.pdf"),
                ],
                position: None,
                signal: Some(Signal::Sos),
            },
            live: false,
        };
        let line = exported(&opened, &Contacts::default());
        assert!(line.via_radio && !line.verified && line.sender.is_none());
        assert_eq!(line.signal, Some("sos"));
        let page = html("Ford", &[line], 0);
        assert!(page.contains("1 message, exported 1970-01-01 00:00:00 UTC"));
        assert!(page.contains("File: ford.jpg (photo, 184 KB)"), "{page}");
        assert!(page.contains("File: route.pdf, 184 KB"), "{page}");
        assert!(page.contains(
            "Rui (unconfirmed) <span class=\"mark\" title=\"heard over the radio\">(radio)</span>"
        ));
        assert!(page.contains("<strong>[SOS]</strong> Map of the ford"));
    }

    fn line_for_hostile_test() -> Exported {
        Exported {
            id: "00".into(),
            seq: 1,
            created_at_ms: 0,
            time: utc(0),
            author: "Eve".into(),
            sender: None,
            verified: false,
            via_radio: true,
            text: String::new(),
            location: None,
            files: Vec::new(),
            signal: None,
            status: Some("waiting"),
        }
    }
}
