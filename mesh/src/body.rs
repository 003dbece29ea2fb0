//! Body formats. Only the readers of a room decode a body; the server stores it as bytes.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::{DecodeError, EncodeError, MAX_BODY_BYTES};

/// Format version of an encoded [`TextBody`].
pub const TEXT_BODY_VERSION: u8 = 1;
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
}

/// The body of a [`crate::Kind::Text`] message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBody {
    /// Display name the author chose.
    pub author: String,
    /// What they wrote. Always shown as text, never as markup.
    pub text: String,
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
        })
    }

    /// Encodes the body as the bytes of an envelope.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(TEXT_BODY_VERSION, self, MAX_BODY_BYTES)
    }

    /// Decodes a body made by [`TextBody::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned(TEXT_BODY_VERSION, bytes, MAX_BODY_BYTES)
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
