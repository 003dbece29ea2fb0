use thiserror::Error;

/// Why bytes could not be turned into a protocol value. Each variant says what the caller does
/// next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input stopped before the value was complete. A stream reader waits for more bytes;
    /// a reader of whole frames (WebSocket, SQLite row) drops the frame.
    #[error("input ended early: the frame is truncated")]
    Truncated,
    /// The input is longer than the protocol allows. Drop it without reading further.
    #[error("{len} bytes is more than the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// The first byte names a format version this build does not know. Drop it; the sender
    /// runs a newer (or broken) build.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The bytes do not form a valid value (bad tag, bad UTF-8, trailing bytes). Drop it.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
}

/// Why a value could not be encoded. Only oversized values fail; the caller must not send them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoded value would exceed the protocol limit.
    #[error("{len} bytes is more than the limit of {max}")]
    TooLarge {
        /// Length the encoding reached (or would have reached).
        len: usize,
        /// The limit it broke.
        max: usize,
    },
}
