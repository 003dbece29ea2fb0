//! The one binary codec: a format-version byte followed by the postcard encoding.

use serde::{de::DeserializeOwned, Serialize};

use crate::{DecodeError, EncodeError};

/// Encodes `value` as `[version] ++ postcard(value)`, refusing results above `max` bytes.
pub(crate) fn encode_versioned<T: Serialize>(
    version: u8,
    value: &T,
    max: usize,
) -> Result<Vec<u8>, EncodeError> {
    // postcard only fails to serialise when a writer runs out of room or a type cannot be
    // represented; our types are plain data, so `to_extend` into a Vec cannot fail.
    let out =
        postcard::to_extend(value, vec![version]).expect("plain protocol types always serialise");
    if out.len() > max {
        return Err(EncodeError::TooLarge {
            len: out.len(),
            max,
        });
    }
    Ok(out)
}

/// Decodes `[version] ++ postcard(value)`. The length is checked before anything is parsed, and
/// trailing bytes are an error so one value has exactly one encoding.
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    version: u8,
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (&first, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    if first != version {
        return Err(DecodeError::UnknownVersion(first));
    }
    match postcard::take_from_bytes::<T>(rest) {
        Ok((value, [])) => Ok(value),
        Ok((_, _trailing)) => Err(DecodeError::Malformed("trailing bytes after the value")),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
        Err(postcard::Error::DeserializeBadUtf8) => {
            Err(DecodeError::Malformed("text is not UTF-8"))
        }
        Err(postcard::Error::DeserializeBadEnum) => Err(DecodeError::Malformed("unknown variant")),
        Err(_) => Err(DecodeError::Malformed("not a valid encoding")),
    }
}
