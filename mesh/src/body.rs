//! Body formats. Only the readers of a room decode a body; the server stores it as bytes.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::geo::Position;
use crate::{DecodeError, EncodeError, MAX_BODY_BYTES};

/// Format version of an encoded [`TextBody`] without attachments (what every build reads).
pub const TEXT_BODY_VERSION: u8 = 1;
/// Format version of an encoded [`TextBody`] with attachments.
pub const FILES_BODY_VERSION: u8 = 2;
/// Format version of an encoded [`TextBody`] with a position or a [`Signal`] (and perhaps
/// files): what builds before locations cannot read, so it is used only then.
pub const PLACE_BODY_VERSION: u8 = 3;
/// Most files one message carries (more go in further messages).
pub const MAX_ATTACHMENTS: usize = 10;
/// Largest thumbnail inside a message: ten of them fit a message with room to spare.
pub const MAX_THUMBNAIL_BYTES: usize = 1200;
/// Longest file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 120;
/// Longest media type ("image/webp"), in bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 80;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 40;
/// Longest chat message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Why a text message cannot be sent as typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but whitespace.
    #[error("the message is empty")]
    Empty,
    /// Longer than [`MAX_TEXT_CHARS`].
    #[error("the message is {0} characters long; the limit is {MAX_TEXT_CHARS}")]
    TooLong(usize),
    /// The display name is empty or longer than [`MAX_DISPLAY_NAME_CHARS`].
    #[error("a display name needs 1 to {MAX_DISPLAY_NAME_CHARS} characters")]
    BadName,
    /// More than [`MAX_ATTACHMENTS`] files.
    #[error("a message carries at most {MAX_ATTACHMENTS} files; this one has {0}")]
    TooManyFiles(usize),
    /// A file's description breaks a limit (named).
    #[error("a file cannot be sent: {0}")]
    BadAttachment(&'static str),
}

/// The body of a [`crate::Kind::Text`] message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextBody {
    /// Display name the author chose.
    pub author: String,
    /// What they wrote (with files, their caption, possibly empty). Always shown as text,
    /// never as markup.
    pub text: String,
    /// Files sent with it (photos, voice notes, documents), in order.
    pub attachments: Vec<Attachment>,
    /// Where the author was when they sent it, when they chose to say.
    pub position: Option<Position>,
    /// What the message does beyond its text: an SOS, its end or answer, a live position.
    pub signal: Option<Signal>,
}

/// What a message does beyond its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    /// A call for help: everyone who receives it is alerted until the author is safe or
    /// someone is on their way.
    Sos,
    /// The author's SOS (named by the first six bytes of its id, as the radio names it) is
    /// over: they are safe.
    Safe {
        /// The SOS.
        of: [u8; 6],
    },
    /// The author is on their way to the SOS named.
    Coming {
        /// The SOS.
        of: [u8; 6],
    },
    /// The author's position, shared live until `until_s` (Unix seconds; 0: sharing
    /// stopped). Not a message people read: it moves the author on the room's map.
    Live {
        /// When sharing ends.
        until_s: u32,
    },
}

impl Signal {
    /// An SOS or its answer: goes before other messages, over the radio too.
    pub fn is_urgent(&self) -> bool {
        !matches!(self, Signal::Live { .. })
    }
}

/// The first body format: text alone.
#[derive(Serialize, Deserialize)]
struct TextOnly {
    author: String,
    text: String,
}

/// The second: text and files.
#[derive(Serialize, Deserialize)]
struct WithFiles {
    author: String,
    text: String,
    attachments: Vec<Attachment>,
}

/// The third: text, files, a position and a signal.
#[derive(Serialize, Deserialize)]
struct WithPlace {
    author: String,
    text: String,
    attachments: Vec<Attachment>,
    position: Option<Position>,
    signal: Option<Signal>,
}

/// A file sent with a message: what it is, and how to fetch, check and open it. It travels
/// only inside the sealed message; the server stores the file's sealed pieces by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What kind of file, for how the room shows it.
    pub what: FileKind,
    /// Its media type as the sending browser named it ("image/webp", "audio/ogg").
    pub media_type: String,
    /// Its name, without any folder.
    pub name: String,
    /// Its key, size and pieces.
    pub file: crate::file::Manifest,
    /// A tiny preview image (empty when there is none), shown at once.
    pub thumbnail: Vec<u8>,
}

/// What kind of file an attachment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A photo, with its size in pixels.
    Photo {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// A voice note of this many milliseconds.
    Voice {
        /// Its length.
        millis: u32,
    },
    /// Any other file.
    Document,
}

impl Attachment {
    /// Checks the limits a reader relies on (and cleans the name as it will be shown).
    pub fn check(mut self) -> Result<Self, TextError> {
        self.name = clean_file_name(&self.name)
            .ok_or(TextError::BadAttachment("its name is empty or too long"))?;
        if !is_media_type(&self.media_type) {
            return Err(TextError::BadAttachment("its type is not a media type"));
        }
        if self.thumbnail.len() > MAX_THUMBNAIL_BYTES {
            return Err(TextError::BadAttachment("its preview is too large"));
        }
        self.file.check(crate::file::MAX_FILE_BYTES).map_err(|_| {
            TextError::BadAttachment("its description of pieces does not match its size")
        })?;
        Ok(self)
    }
}

impl Attachment {
    /// A short line that says what the file is, for places that cannot show the file (the
    /// radio, a notification): "photo, 180 KB", "voice note, 0:42", "list.pdf, 1.2 MB".
    pub fn marker(&self) -> String {
        let size = human_size(self.file.size);
        match self.what {
            FileKind::Photo { .. } => format!("photo, {size}"),
            FileKind::Voice { millis } => format!("voice note, {}", duration(millis)),
            FileKind::Document => format!("{}, {size}", self.name),
        }
    }
}

/// Whether `media` is a media type as attachments carry it: "kind/sub", lower-case letters,
/// digits and `+-.`, without parameters.
pub fn is_media_type(media: &str) -> bool {
    media.len() <= MAX_MEDIA_TYPE_BYTES
        && media.split_once('/').is_some_and(|(kind, sub)| {
            let token = |t: &str| {
                !t.is_empty()
                    && t.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)
                    })
            };
            token(kind) && token(sub)
        })
}

/// A length as people read it: "0:42", "1:05".
pub fn duration(millis: u32) -> String {
    let seconds = millis / 1000;
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// A size as people read it: "950 bytes", "180 KB", "1.2 MB" (decimal units, as phones show
/// file sizes).
pub fn human_size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..999_500 => format!("{} KB", (bytes + 500) / 1_000),
        _ => {
            let tenths = (bytes + 50_000) / 100_000;
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    }
}

impl TextBody {
    /// The text with a line per file ("[photo, 180 KB]"), for places that show text alone.
    pub fn text_with_markers(&self) -> String {
        with_markers(&self.text, &self.attachments)
    }
}

/// What a message with files says over the radio, which carries no files: the text and a line
/// per file saying where it is ("[photo, 180 KB · at North]"), or, when `compact`, one
/// line for all of them ("[3 files, 2.4 MB · at North]").
pub fn radio_text(
    text: &str,
    attachments: &[Attachment],
    camp: Option<&str>,
    compact: bool,
) -> String {
    let at = camp.map(|c| format!(" · at {c}")).unwrap_or_default();
    let mut lines: Vec<String> = Vec::new();
    if !text.is_empty() {
        lines.push(text.to_owned());
    }
    match attachments {
        [] => {}
        each if !compact => lines.extend(each.iter().map(|a| format!("[{}{at}]", a.marker()))),
        many => {
            let size: u64 = many.iter().map(|a| a.file.size).sum();
            let what = match many.len() {
                1 => "1 file".to_owned(),
                n => format!("{n} files"),
            };
            lines.push(format!("[{what}, {}{at}]", human_size(size)));
        }
    }
    lines.join("\n")
}

/// Files' descriptions as bytes, for a device's own store (keys included: the store never
/// leaves the device). Empty for none.
pub fn encode_attachments(files: &[Attachment]) -> Vec<u8> {
    if files.is_empty() {
        return Vec::new();
    }
    postcard::to_allocvec(files).unwrap_or_default()
}

/// Files' descriptions kept by [`encode_attachments`]; none when the bytes do not decode or a
/// description breaks a limit.
pub fn decode_attachments(bytes: &[u8]) -> Vec<Attachment> {
    if bytes.is_empty() || bytes.len() > MAX_BODY_BYTES {
        return Vec::new();
    }
    postcard::from_bytes::<Vec<Attachment>>(bytes)
        .ok()
        .filter(|files| files.len() <= MAX_ATTACHMENTS)
        .and_then(|files| files.into_iter().map(|f| f.check().ok()).collect())
        .unwrap_or_default()
}

/// `text` with a line per file ("[photo, 180 KB]"), for places that show text alone.
pub fn with_markers(text: &str, attachments: &[Attachment]) -> String {
    let mut lines: Vec<String> = Vec::new();
    if !text.is_empty() {
        lines.push(text.to_owned());
    }
    lines.extend(attachments.iter().map(|a| format!("[{}]", a.marker())));
    lines.join("\n")
}

/// A file name as it will be shown and saved: the last part of any path, without hidden or
/// control characters, trimmed. `None` when nothing is left or it is too long.
pub fn clean_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !is_hidden(*c)).collect();
    let cleaned = cleaned.trim();
    let chars = cleaned.chars().count();
    (chars > 0 && chars <= MAX_FILE_NAME_CHARS && cleaned != "." && cleaned != "..")
        .then(|| cleaned.to_string())
}

impl TextBody {
    /// Makes a body from what a person typed, trimming the edges and checking the limits.
    pub fn new(author: &str, text: &str) -> Result<Self, TextError> {
        let author = clean_display_name(author).ok_or(TextError::BadName)?;
        let text = text.trim();
        let chars = text.chars().count();
        if chars == 0 {
            return Err(TextError::Empty);
        }
        if chars > MAX_TEXT_CHARS {
            return Err(TextError::TooLong(chars));
        }
        Ok(Self {
            author,
            text: text.to_owned(),
            attachments: Vec::new(),
            position: None,
            signal: None,
        })
    }

    /// A body that is only a position or a signal (an SOS may say nothing more; a live
    /// position never does), with an optional text.
    pub fn place(
        author: &str,
        text: &str,
        position: Option<Position>,
        signal: Option<Signal>,
    ) -> Result<Self, TextError> {
        let author = clean_display_name(author).ok_or(TextError::BadName)?;
        let text = text.trim();
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(TextError::TooLong(chars));
        }
        if chars == 0 && position.is_none() && signal.is_none() {
            return Err(TextError::Empty);
        }
        Ok(Self {
            author,
            text: text.to_owned(),
            attachments: Vec::new(),
            position,
            signal,
        })
    }

    /// The same body, saying where the author is.
    pub fn at(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    /// Makes a body of files with a caption (which may be empty).
    pub fn with_files(
        author: &str,
        caption: &str,
        attachments: Vec<Attachment>,
    ) -> Result<Self, TextError> {
        if attachments.is_empty() {
            return Self::new(author, caption);
        }
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(TextError::TooManyFiles(attachments.len()));
        }
        let author = clean_display_name(author).ok_or(TextError::BadName)?;
        let text = caption.trim();
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(TextError::TooLong(chars));
        }
        let attachments = attachments
            .into_iter()
            .map(Attachment::check)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            author,
            text: text.to_owned(),
            attachments,
            position: None,
            signal: None,
        })
    }

    /// Encodes the body as the bytes of an envelope, in the oldest format that holds it (the
    /// first when there is only text), so every build that can show it reads it.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.position.is_some() || self.signal.is_some() {
            let body = WithPlace {
                author: self.author.clone(),
                text: self.text.clone(),
                attachments: self.attachments.clone(),
                position: self.position,
                signal: self.signal,
            };
            return encode_versioned(PLACE_BODY_VERSION, &body, MAX_BODY_BYTES);
        }
        if self.attachments.is_empty() {
            let body = TextOnly {
                author: self.author.clone(),
                text: self.text.clone(),
            };
            return encode_versioned(TEXT_BODY_VERSION, &body, MAX_BODY_BYTES);
        }
        let body = WithFiles {
            author: self.author.clone(),
            text: self.text.clone(),
            attachments: self.attachments.clone(),
        };
        encode_versioned(FILES_BODY_VERSION, &body, MAX_BODY_BYTES)
    }

    /// Decodes a body made by [`TextBody::encode`]. Files are checked against the limits
    /// before anything of them is used, and a position is in range.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let checked = |attachments: Vec<Attachment>| -> Result<Vec<Attachment>, DecodeError> {
            if attachments.len() > MAX_ATTACHMENTS {
                return Err(DecodeError::Malformed("a message with too many files"));
            }
            attachments
                .into_iter()
                .map(Attachment::check)
                .collect::<Result<_, _>>()
                .map_err(|_| DecodeError::Malformed("a file's description breaks a limit"))
        };
        match bytes.first() {
            Some(&PLACE_BODY_VERSION) => {
                let body: WithPlace = decode_versioned(PLACE_BODY_VERSION, bytes, MAX_BODY_BYTES)?;
                if body.position.is_none() && body.signal.is_none() {
                    return Err(DecodeError::Malformed(
                        "a place message with no position and no signal",
                    ));
                }
                Ok(Self {
                    author: body.author,
                    text: body.text,
                    attachments: checked(body.attachments)?,
                    position: body.position,
                    signal: body.signal,
                })
            }
            Some(&FILES_BODY_VERSION) => {
                let body: WithFiles = decode_versioned(FILES_BODY_VERSION, bytes, MAX_BODY_BYTES)?;
                if body.attachments.is_empty() {
                    return Err(DecodeError::Malformed("a files message with no files"));
                }
                Ok(Self {
                    author: body.author,
                    text: body.text,
                    attachments: checked(body.attachments)?,
                    position: None,
                    signal: None,
                })
            }
            _ => {
                let body: TextOnly = decode_versioned(TEXT_BODY_VERSION, bytes, MAX_BODY_BYTES)?;
                Ok(Self {
                    author: body.author,
                    text: body.text,
                    attachments: Vec::new(),
                    position: None,
                    signal: None,
                })
            }
        }
    }
}

/// A display name as it will be shown: NFKC-normalised (so look-alike compatibility forms
/// become plain letters), with control, format and bidirectional-override characters removed
/// (a zero-width space or a right-to-left override cannot hide in a name), inner whitespace
/// collapsed and the edges trimmed. `None` when nothing is left or it is too long.
pub fn clean_display_name(name: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let normalised: String = name.nfkc().filter(|c| !is_hidden(*c)).collect();
    let cleaned = normalised.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = cleaned.chars().count();
    (chars > 0 && chars <= MAX_DISPLAY_NAME_CHARS).then_some(cleaned)
}

/// Characters that change how text runs or joins but show nothing of their own: controls,
/// zero-width spaces and joiners, bidirectional marks, overrides and isolates, and other
/// default-ignorable code points.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// What a name looks like, for telling whether two names could be taken for each other: its
/// confusable skeleton (Unicode TS #39: a Cyrillic "А" is a Latin "A"), without combining marks
/// and case. Two names with the same key are one name to a reader.
pub fn name_key(name: &str) -> String {
    let cleaned = clean_display_name(name).unwrap_or_default();
    unicode_security::confusable_detection::skeleton(&cleaned)
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Combining marks (accents that stack on the letter before), by their blocks.
pub fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{seal_whole, Manifest};

    /// A photo's attachment: a sealed file of `size` bytes and a preview of `thumbnail` bytes.
    fn photo(name: &str, size: usize, thumbnail: usize) -> Attachment {
        let (file, _) = seal_whole(&vec![7u8; size], [size as u8; 32], 25 << 20).unwrap();
        Attachment {
            what: FileKind::Photo {
                width: 1280,
                height: 960,
            },
            media_type: "image/webp".into(),
            name: name.into(),
            file,
            thumbnail: vec![0xAA; thumbnail],
        }
    }

    #[test]
    fn over_the_radio_files_are_lines_that_say_where_they_are() {
        let files = vec![
            photo("road.webp", 180_000, 0),
            photo("b.webp", 2_200_000, 0),
        ];
        assert_eq!(
            radio_text("road blocked", &files[..1], Some("North"), false),
            "road blocked\n[photo, 180 KB · at North]"
        );
        assert_eq!(
            radio_text("", &files, None, false),
            "[photo, 180 KB]\n[photo, 2.2 MB]"
        );
        assert_eq!(
            radio_text("road", &files, Some("North"), true),
            "road\n[2 files, 2.4 MB · at North]"
        );
        assert_eq!(radio_text("hi", &[], Some("North"), true), "hi");
    }

    #[test]
    fn files_kept_on_a_device_come_back_and_bad_bytes_give_none() {
        let files = vec![photo("road.webp", 300_000, 900), photo("b.webp", 10, 0)];
        let bytes = encode_attachments(&files);
        assert_eq!(decode_attachments(&bytes), files);
        assert!(encode_attachments(&[]).is_empty());
        assert!(decode_attachments(&[]).is_empty());
        assert!(decode_attachments(&bytes[..bytes.len() / 2]).is_empty());
        assert!(decode_attachments(&[0xff; 64]).is_empty());
        // A description that breaks a limit is not used.
        let mut bad = photo("x.webp", 10, 0);
        bad.thumbnail = vec![0; MAX_THUMBNAIL_BYTES + 1];
        assert!(decode_attachments(&encode_attachments(&[bad])).is_empty());
    }

    #[test]
    fn a_message_with_files_round_trips_and_one_without_keeps_the_first_format() {
        let body = TextBody::with_files(
            "Ana",
            " road blocked ",
            vec![
                photo("road.webp", 300_000, 900),
                photo("bridge.webp", 10, 0),
            ],
        )
        .unwrap();
        assert_eq!(body.text, "road blocked");
        let bytes = body.encode().unwrap();
        assert_eq!(bytes[0], FILES_BODY_VERSION);
        assert_eq!(TextBody::decode(&bytes).unwrap(), body);
        // A caption may be empty when there are files.
        assert!(TextBody::with_files("Ana", "", vec![photo("a.webp", 1, 0)]).is_ok());

        let plain = TextBody::new("Ana", "hello").unwrap();
        let bytes = plain.encode().unwrap();
        assert_eq!(bytes[0], TEXT_BODY_VERSION, "older builds still read text");
        assert_eq!(TextBody::decode(&bytes).unwrap(), plain);
    }

    #[test]
    fn ten_photos_with_previews_fit_one_message() {
        let photos = (0..MAX_ATTACHMENTS)
            .map(|i| photo(&format!("IMG_{i:04}.webp"), 200_000, MAX_THUMBNAIL_BYTES))
            .collect();
        let body = TextBody::with_files("Ana", &"x".repeat(500), photos).unwrap();
        let bytes = body.encode().unwrap();
        assert!(bytes.len() <= MAX_BODY_BYTES, "{}", bytes.len());
        let mut eleven = body.attachments.clone();
        eleven.push(photo("one-more.webp", 1, 0));
        assert_eq!(
            TextBody::with_files("Ana", "", eleven),
            Err(TextError::TooManyFiles(11))
        );
    }

    #[test]
    fn files_are_named_in_a_line_where_they_cannot_be_shown() {
        let mut voice = photo("voice.ogg", 30_000, 0);
        voice.what = FileKind::Voice { millis: 42_900 };
        let mut list = photo("names.pdf", 1_234_567, 0);
        list.what = FileKind::Document;
        let body = TextBody::with_files(
            "Ana",
            "from the school",
            vec![photo("a.webp", 180_400, 0), voice, list],
        )
        .unwrap();
        assert_eq!(
            body.text_with_markers(),
            "from the school\n[photo, 180 KB]\n[voice note, 0:42]\n[names.pdf, 1.2 MB]"
        );
        assert_eq!(human_size(950), "950 bytes");
        assert_eq!(human_size(999_499), "999 KB");
        assert_eq!(human_size(999_500), "1.0 MB");
        assert_eq!(human_size(25 << 20), "26.2 MB");
        let plain = TextBody::new("Ana", "hi").unwrap();
        assert_eq!(plain.text_with_markers(), "hi");
    }

    #[test]
    fn file_names_lose_folders_and_hidden_characters() {
        for (typed, shown) in [
            ("../../etc/passwd", Some("passwd")),
            ("C:\\Users\\ana\\list.pdf", Some("list.pdf")),
            ("photo\u{202E}gpj.exe", Some("photogpj.exe")),
            ("  names.txt ", Some("names.txt")),
            ("folder/", None),
            ("..", None),
        ] {
            assert_eq!(clean_file_name(typed).as_deref(), shown, "{typed:?}");
        }
        assert_eq!(clean_file_name(&"n".repeat(MAX_FILE_NAME_CHARS + 1)), None);
        let body = TextBody::with_files("Ana", "", vec![photo("../x/road.webp", 5, 0)]).unwrap();
        assert_eq!(body.attachments[0].name, "road.webp");
    }

    #[test]
    fn damaged_bodies_never_panic_and_what_decodes_is_within_the_limits() {
        let body =
            TextBody::with_files("Ana", "road", vec![photo("road.webp", 300_000, 40)]).unwrap();
        let bytes = body.encode().unwrap();
        let (mut accepted, mut refused) = (0, 0);
        let mut variants: Vec<Vec<u8>> =
            (0..bytes.len()).map(|len| bytes[..len].to_vec()).collect();
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                variants.push(damaged);
            }
        }
        for damaged in variants {
            match TextBody::decode(&damaged) {
                Ok(read) => {
                    accepted += 1;
                    assert!(read.attachments.len() <= MAX_ATTACHMENTS);
                    for attachment in &read.attachments {
                        assert!(attachment.thumbnail.len() <= MAX_THUMBNAIL_BYTES);
                        assert!(attachment.file.check(crate::file::MAX_FILE_BYTES).is_ok());
                    }
                    assert_eq!(TextBody::decode(&read.encode().unwrap()).unwrap(), read);
                }
                Err(_) => refused += 1,
            }
        }
        // Both outcomes were exercised (a flipped letter of the caption still decodes).
        assert!(
            accepted > 10 && refused > 10,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn a_file_that_breaks_a_limit_is_refused_when_sent_and_when_read() {
        let mut bad_type = photo("a.webp", 5, 0);
        bad_type.media_type = "image/<script>".into();
        let mut big_preview = photo("a.webp", 5, 0);
        big_preview.thumbnail = vec![0; MAX_THUMBNAIL_BYTES + 1];
        let mut lying = photo("a.webp", 5, 0);
        lying.file = Manifest {
            size: 10 << 20,
            ..lying.file
        };
        let mut no_name = photo("a.webp", 5, 0);
        no_name.name = "\u{200B}".into();
        for attachment in [bad_type, big_preview, lying, no_name] {
            assert!(matches!(
                TextBody::with_files("Ana", "", vec![attachment.clone()]),
                Err(TextError::BadAttachment(_))
            ));
            // A sender that skips the checks: the reader refuses the message.
            let crafted = encode_versioned(
                FILES_BODY_VERSION,
                &WithFiles {
                    author: "Mallory".into(),
                    text: String::new(),
                    attachments: vec![attachment],
                },
                MAX_BODY_BYTES,
            )
            .unwrap();
            assert!(matches!(
                TextBody::decode(&crafted),
                Err(DecodeError::Malformed(_))
            ));
        }
        let empty = encode_versioned(
            FILES_BODY_VERSION,
            &WithFiles {
                author: "Mallory".into(),
                text: "hi".into(),
                attachments: vec![],
            },
            MAX_BODY_BYTES,
        )
        .unwrap();
        assert!(matches!(
            TextBody::decode(&empty),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn a_position_and_a_signal_round_trip_in_the_third_format_and_only_then() {
        let here = Position::new(-33.856_784, 151.215_297, 8.0).unwrap();
        let text = TextBody::new("Ana", "at the bridge").unwrap();
        assert_eq!(text.encode().unwrap()[0], TEXT_BODY_VERSION);
        let placed = text.clone().at(Some(here));
        let bytes = placed.encode().unwrap();
        assert_eq!(bytes[0], PLACE_BODY_VERSION);
        assert_eq!(TextBody::decode(&bytes).unwrap(), placed);
        // What the position adds to the body: its ten bytes at most, and the flag bytes.
        let added = bytes.len() - text.encode().unwrap().len();
        assert!(added <= crate::geo::POSITION_BYTES + 4, "{added} bytes");

        let sos = TextBody::place("Ana", "", Some(here), Some(Signal::Sos)).unwrap();
        assert_eq!(TextBody::decode(&sos.encode().unwrap()).unwrap(), sos);
        let safe = TextBody::place("Ana", "", None, Some(Signal::Safe { of: [3; 6] })).unwrap();
        assert_eq!(TextBody::decode(&safe.encode().unwrap()).unwrap(), safe);
        let live =
            TextBody::place("Ana", "", Some(here), Some(Signal::Live { until_s: 9 })).unwrap();
        assert_eq!(TextBody::decode(&live.encode().unwrap()).unwrap(), live);
        assert_eq!(
            TextBody::place("Ana", " ", None, None),
            Err(TextError::Empty)
        );

        // A third-format body that says nothing of a place is not one.
        let empty = WithPlace {
            author: "Ana".into(),
            text: "hi".into(),
            attachments: Vec::new(),
            position: None,
            signal: None,
        };
        let bytes = encode_versioned(PLACE_BODY_VERSION, &empty, MAX_BODY_BYTES).unwrap();
        assert!(TextBody::decode(&bytes).is_err());
        // A position out of range does not decode (north of the pole).
        #[derive(Serialize)]
        struct Raw {
            lat_e7: i32,
            lon_e7: i32,
            accuracy_m: u16,
        }
        #[derive(Serialize)]
        struct RawPlace {
            author: String,
            text: String,
            attachments: Vec<Attachment>,
            position: Option<Raw>,
            signal: Option<Signal>,
        }
        let north_of_the_pole = RawPlace {
            author: "Ana".into(),
            text: "".into(),
            attachments: Vec::new(),
            position: Some(Raw {
                lat_e7: 900_000_001,
                lon_e7: 0,
                accuracy_m: 1,
            }),
            signal: None,
        };
        let bytes =
            encode_versioned(PLACE_BODY_VERSION, &north_of_the_pole, MAX_BODY_BYTES).unwrap();
        assert!(TextBody::decode(&bytes).is_err());
    }

    #[test]
    fn text_body_round_trips() {
        let body = TextBody::new("Ana", "  water at the school <b>now</b>  ").unwrap();
        assert_eq!(body.text, "water at the school <b>now</b>");
        assert_eq!(TextBody::decode(&body.encode().unwrap()).unwrap(), body);
    }

    #[test]
    fn text_limits_are_enforced() {
        assert_eq!(TextBody::new("Ana", " \n "), Err(TextError::Empty));
        assert_eq!(
            TextBody::new("Ana", &"a".repeat(MAX_TEXT_CHARS + 1)),
            Err(TextError::TooLong(MAX_TEXT_CHARS + 1))
        );
        assert!(TextBody::new("Ana", &"ü".repeat(MAX_TEXT_CHARS))
            .unwrap()
            .encode()
            .is_ok());
        assert_eq!(TextBody::new("  ", "hi"), Err(TextError::BadName));
    }

    #[test]
    fn hidden_characters_and_compatibility_forms_leave_names() {
        assert_eq!(clean_display_name("Ana\u{200B}"), Some("Ana".into()));
        assert_eq!(clean_display_name("\u{202E}anA"), Some("anA".into()));
        assert_eq!(
            clean_display_name("Ａｎａ"),
            Some("Ana".into()),
            "fullwidth letters"
        );
        assert_eq!(
            clean_display_name("\u{2066}\u{200D}"),
            None,
            "nothing visible"
        );
    }

    #[test]
    fn names_a_reader_would_take_for_each_other_share_a_key() {
        let ana = name_key("Ana");
        for lookalike in [
            "ana",
            "ANA",
            "\u{0410}na",         // Cyrillic capital A
            "An\u{0430}",         // Cyrillic small a
            "Ana\u{200B}",        // zero-width space
            "\u{202E}Ana",        // right-to-left override
            "An\u{0061}\u{0301}", // a combining accent
            "Ａｎａ",             // fullwidth
        ] {
            assert_eq!(name_key(lookalike), ana, "{lookalike:?}");
        }
        assert_ne!(name_key("Ben"), ana);
        assert_ne!(name_key("Anna"), ana);
    }

    #[test]
    fn display_names_are_cleaned() {
        assert_eq!(
            clean_display_name("  Ana \t María "),
            Some("Ana María".into())
        );
        assert_eq!(clean_display_name("a\u{7}b"), Some("ab".into()));
        assert_eq!(
            clean_display_name(&"n".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            None
        );
    }
}
