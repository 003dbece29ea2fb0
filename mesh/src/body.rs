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

/// A display name as it will be shown: trimmed, inner whitespace collapsed, control characters
/// removed. `None` when nothing is left or it is too long.
pub fn clean_display_name(name: &str) -> Option<String> {
    let cleaned = name
        .split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let chars = cleaned.chars().count();
    (chars > 0 && chars <= MAX_DISPLAY_NAME_CHARS).then_some(cleaned)
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
