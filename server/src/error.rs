//! The server's error type.

use thiserror::Error;

/// Everything that can go wrong inside the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The SQLite database failed. Clients see a generic "try again" error; details are logged.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored row (this sequence number) no longer decodes: disk corruption or a downgrade.
    #[error("stored message {0} is unreadable")]
    CorruptRow(u64),
    /// An envelope over the protocol limits reached the store; callers validate first.
    #[error("message over the size limit: {0}")]
    TooLarge(#[from] mesh::EncodeError),
    /// Making or loading TLS certificates failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Hashing or randomness failed (should not happen on a working machine).
    #[error("crypto: {0}")]
    Crypto(String),
    /// A background task died (a panic in a blocking database call). Treated like a database
    /// failure.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The configuration asks for something unsafe or impossible; the sentence says what.
    #[error("{0}")]
    Refused(String),
    /// An archive to import is not sound (the sentence names its line and why).
    #[error("{0}")]
    Archive(String),
    /// Reading or writing a file failed (the data directory, mostly).
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
