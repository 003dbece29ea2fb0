//! Files (photos, documents, voice notes), sealed on the phone so the server stores and serves
//! only ciphertext.
//!
//! Each file gets a key of its own, made from fresh randomness and never used for another
//! file. Its bytes are cut into [`CHUNK_BYTES`] pieces, each sealed with XChaCha20-Poly1305 in
//! the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, "Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", as `aead::stream` provides
//! it): the chunk's position and a "last chunk" flag are in its nonce, so chunks cannot be
//! reordered, dropped from the end or taken from another place in the file. A chunk is named
//! by the SHA-256 of its ciphertext ([`ChunkId`]): uploads are idempotent and the server checks
//! what it is given against the name, without any key.
//!
//! The file's [`Manifest`] (key, size, chunk names) travels inside the normal sealed and
//! signed message; a reader checks each fetched chunk against the manifest before opening it.
//! Chunks are sealed and opened one at a time and in any order, so a phone never holds more
//! than one chunk of a large file in memory and a transfer resumes where it stopped.

use std::fmt;

use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::XChaCha20Poly1305;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::TAG_BYTES;

/// Plaintext bytes in every chunk but the last (which holds the rest, possibly nothing).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Bytes of a sealed full chunk.
pub const SEALED_CHUNK_BYTES: usize = CHUNK_BYTES + TAG_BYTES;
/// The largest file the protocol describes (servers set their own, lower limit).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// The largest file a phone sends unless its server says otherwise (`--max-file-mb`).
pub const DEFAULT_MAX_SEND_BYTES: u64 = 25 * 1_000_000;

/// The name of a sealed chunk: the SHA-256 of its ciphertext.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The name of these sealed bytes.
    pub fn of(sealed: &[u8]) -> Self {
        Self(Sha256::digest(sealed).into())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// What a reader needs to fetch, check and open a file: it travels only inside a sealed
/// message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file's own key.
    pub key: [u8; 32],
    /// The file's size in bytes (plaintext).
    pub size: u64,
    /// The names of its sealed chunks, in order.
    pub chunks: Vec<ChunkId>,
}

impl fmt::Debug for Manifest {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("size", &self.size)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

/// How many chunks a file of `size` bytes has: at least one (an empty file is one empty
/// chunk, so even it is authenticated).
pub fn chunk_count(size: u64) -> usize {
    (size.div_ceil(CHUNK_BYTES as u64)).max(1) as usize
}

/// Plaintext bytes of chunk `index` of a file of `size` bytes.
fn chunk_len(size: u64, index: usize) -> usize {
    let start = index as u64 * CHUNK_BYTES as u64;
    size.saturating_sub(start).min(CHUNK_BYTES as u64) as usize
}

/// Checks that chunk `index` of a file of `size` bytes holds `len` plaintext bytes.
fn check_len(size: u64, index: usize, len: usize) -> Result<(), FileError> {
    let expected = chunk_len(size, index);
    if len != expected {
        return Err(FileError::WrongChunkLength {
            index,
            len,
            expected,
        });
    }
    Ok(())
}

/// Seals a file held whole in memory (at most `max` bytes) under a key made from `random`: its
/// manifest and its sealed pieces in order. A phone seals piece by piece instead
/// ([`FileSealer`]), so a large file is never all in memory.
pub fn seal_whole(
    data: &[u8],
    random: [u8; 32],
    max: u64,
) -> Result<(Manifest, Vec<Vec<u8>>), FileError> {
    let sealer = FileSealer::new(random, data.len() as u64, max)?;
    let mut names = Vec::with_capacity(sealer.chunk_count());
    let mut pieces = Vec::with_capacity(sealer.chunk_count());
    for index in 0..sealer.chunk_count() {
        let range = sealer.chunk_range(index);
        let (name, piece) = sealer.seal(index, &data[range.start as usize..range.end as usize])?;
        names.push(name);
        pieces.push(piece);
    }
    Ok((sealer.manifest(names)?, pieces))
}

/// Why a file could not be sealed or opened. None of these shows any of the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileError {
    /// The file (or the size a manifest claims) is larger than allowed.
    #[error("the file is {size} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A manifest's chunk list does not match its size: it lies, and nothing of it is fetched.
    #[error("the file's description lists {listed} pieces where its size needs {needed}")]
    WrongChunkCount {
        /// Chunks listed.
        listed: usize,
        /// Chunks its size needs.
        needed: usize,
    },
    /// There is no chunk at this position.
    #[error("the file has no piece {0}")]
    NoSuchChunk(usize),
    /// A chunk's plaintext has the wrong length for its place.
    #[error("piece {index} holds {len} bytes where {expected} belong")]
    WrongChunkLength {
        /// Its position.
        index: usize,
        /// Its length.
        len: usize,
        /// The length its place needs.
        expected: usize,
    },
    /// The bytes fetched are not the chunk the manifest names (damaged, truncated, or another).
    #[error("piece {0} is not the one the message names (damaged or replaced)")]
    WrongChunk(usize),
    /// The chunk has the right name but does not open under the file's key at its place.
    #[error("piece {0} does not open with this file's key")]
    Unopenable(usize),
}

/// Seals one file, chunk by chunk, in any order.
pub struct FileSealer {
    key: Zeroizing<[u8; 32]>,
    size: u64,
    stream: StreamBE32<XChaCha20Poly1305>,
}

impl FileSealer {
    /// A sealer for a file of `size` bytes under a new key made from `random` (32 fresh random
    /// bytes, which must not be used for anything else).
    pub fn new(random: [u8; 32], size: u64, max: u64) -> Result<Self, FileError> {
        let max = max.min(MAX_FILE_BYTES);
        if size > max {
            return Err(FileError::TooLarge { size, max });
        }
        let key = Zeroizing::new(random);
        let stream = stream(&key);
        Ok(Self { key, size, stream })
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> usize {
        chunk_count(self.size)
    }

    /// Which bytes of the file chunk `index` holds.
    pub fn chunk_range(&self, index: usize) -> std::ops::Range<u64> {
        let start = index as u64 * CHUNK_BYTES as u64;
        start..start + chunk_len(self.size, index) as u64
    }

    /// Seals chunk `index` (its plaintext must be exactly [`Self::chunk_range`] of the file):
    /// its name and sealed bytes.
    pub fn seal(&self, index: usize, plaintext: &[u8]) -> Result<(ChunkId, Vec<u8>), FileError> {
        let count = self.chunk_count();
        if index >= count {
            return Err(FileError::NoSuchChunk(index));
        }
        check_len(self.size, index, plaintext.len())?;
        let sealed = self
            .stream
            .encrypt(position(index), index + 1 == count, plaintext)
            .expect("XChaCha20-Poly1305 seals a chunk of any length we allow");
        Ok((ChunkId::of(&sealed), sealed))
    }

    /// The manifest, once every chunk's name is known (in order).
    pub fn manifest(&self, chunks: Vec<ChunkId>) -> Result<Manifest, FileError> {
        let manifest = Manifest {
            key: *self.key,
            size: self.size,
            chunks,
        };
        manifest.check(MAX_FILE_BYTES)?;
        Ok(manifest)
    }
}

impl Manifest {
    /// Checks that the manifest describes a file of at most `max` bytes and lists exactly the
    /// chunks its size needs: what a reader does before fetching anything.
    pub fn check(&self, max: u64) -> Result<(), FileError> {
        let max = max.min(MAX_FILE_BYTES);
        if self.size > max {
            return Err(FileError::TooLarge {
                size: self.size,
                max,
            });
        }
        let needed = chunk_count(self.size);
        if self.chunks.len() != needed {
            return Err(FileError::WrongChunkCount {
                listed: self.chunks.len(),
                needed,
            });
        }
        Ok(())
    }

    /// Opens chunk `index` from its fetched bytes: they must be the chunk the manifest names,
    /// open under the file's key at this place, and hold as many bytes as the place needs.
    pub fn open(&self, index: usize, sealed: &[u8]) -> Result<Vec<u8>, FileError> {
        self.check(MAX_FILE_BYTES)?;
        let Some(id) = self.chunks.get(index) else {
            return Err(FileError::NoSuchChunk(index));
        };
        if ChunkId::of(sealed) != *id {
            return Err(FileError::WrongChunk(index));
        }
        let key = Zeroizing::new(self.key);
        let last = index + 1 == self.chunks.len();
        let plaintext = stream(&key)
            .decrypt(position(index), last, sealed)
            .map_err(|_| FileError::Unopenable(index))?;
        check_len(self.size, index, plaintext.len())?;
        Ok(plaintext)
    }
}

/// The STREAM over XChaCha20-Poly1305 under a file key. The nonce prefix is fixed: the key is
/// the file's own and seals nothing else.
fn stream(key: &[u8; 32]) -> StreamBE32<XChaCha20Poly1305> {
    let cipher = XChaCha20Poly1305::new(key.as_slice().into());
    StreamBE32::from_aead(cipher, &Default::default())
}

/// A chunk's position in the STREAM. A file of at most [`MAX_FILE_BYTES`] has far fewer than
/// 2³² chunks.
fn position(index: usize) -> u32 {
    u32::try_from(index).expect("a file of at most MAX_FILE_BYTES has fewer than 2^32 chunks")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 25 * 1024 * 1024;

    /// A file of `size` bytes that differ from chunk to chunk.
    fn file(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    /// Seals `data` whole: the manifest and the sealed chunks in order.
    fn seal_all(data: &[u8], random: u8) -> (Manifest, Vec<Vec<u8>>) {
        seal_whole(data, [random; 32], LIMIT).unwrap()
    }

    fn open_all(manifest: &Manifest, sealed: &[Vec<u8>]) -> Result<Vec<u8>, FileError> {
        let mut out = Vec::new();
        for (index, bytes) in sealed.iter().enumerate() {
            out.extend(manifest.open(index, bytes)?);
        }
        Ok(out)
    }

    #[test]
    fn files_of_every_awkward_size_come_back_whole() {
        for size in [
            0,
            1,
            CHUNK_BYTES - 1,
            CHUNK_BYTES,
            CHUNK_BYTES + 1,
            3 * CHUNK_BYTES + 12_345,
        ] {
            let data = file(size);
            let (manifest, sealed) = seal_all(&data, 9);
            assert_eq!(manifest.chunks.len(), chunk_count(size as u64), "{size}");
            assert_eq!(sealed.len(), manifest.chunks.len());
            for bytes in &sealed[..sealed.len() - 1] {
                assert_eq!(bytes.len(), SEALED_CHUNK_BYTES);
            }
            assert_eq!(open_all(&manifest, &sealed).unwrap(), data, "{size}");
        }
    }

    #[test]
    fn the_sealed_chunks_show_none_of_the_file_and_two_keys_seal_differently() {
        let data = vec![b'A'; CHUNK_BYTES + 100];
        let (first, sealed) = seal_all(&data, 1);
        let (second, _) = seal_all(&data, 2);
        for bytes in &sealed {
            assert!(!bytes.windows(32).any(|w| w == &data[..32]));
        }
        assert_ne!(first.chunks, second.chunks);
    }

    #[test]
    fn a_damaged_truncated_or_swapped_chunk_is_refused() {
        let data = file(2 * CHUNK_BYTES + 10);
        let (manifest, sealed) = seal_all(&data, 3);
        let mut damaged = sealed[1].clone();
        damaged[100] ^= 1;
        assert_eq!(manifest.open(1, &damaged), Err(FileError::WrongChunk(1)));
        let truncated = &sealed[2][..sealed[2].len() - 1];
        assert_eq!(manifest.open(2, truncated), Err(FileError::WrongChunk(2)));
        assert_eq!(manifest.open(0, &sealed[1]), Err(FileError::WrongChunk(0)));
        assert_eq!(manifest.open(3, &sealed[2]), Err(FileError::NoSuchChunk(3)));
    }

    #[test]
    fn a_manifest_that_reorders_or_drops_chunks_cannot_open_them() {
        let data = file(3 * CHUNK_BYTES);
        let (manifest, sealed) = seal_all(&data, 4);
        // Chunks 0 and 1 swapped, names and all: each is where the manifest says, but not
        // where it was sealed.
        let mut swapped = manifest.clone();
        swapped.chunks.swap(0, 1);
        assert_eq!(swapped.open(0, &sealed[1]), Err(FileError::Unopenable(0)));
        // The last chunk dropped, the size cut to match: chunk 1 was not sealed as the last.
        let cut = Manifest {
            size: 2 * CHUNK_BYTES as u64,
            chunks: manifest.chunks[..2].to_vec(),
            ..manifest.clone()
        };
        assert_eq!(cut.open(1, &sealed[1]), Err(FileError::Unopenable(1)));
        // Another file's chunk under this file's name list: refused by name, then by key.
        let (other, other_sealed) = seal_all(&data, 5);
        assert_eq!(
            manifest.open(0, &other_sealed[0]),
            Err(FileError::WrongChunk(0))
        );
        let mixed = Manifest {
            chunks: vec![other.chunks[0], manifest.chunks[1], manifest.chunks[2]],
            ..manifest
        };
        assert_eq!(
            mixed.open(0, &other_sealed[0]),
            Err(FileError::Unopenable(0))
        );
    }

    #[test]
    fn a_manifest_that_lies_about_its_size_is_refused_before_anything_is_fetched() {
        let data = file(CHUNK_BYTES + 1);
        let (manifest, sealed) = seal_all(&data, 6);
        let bigger = Manifest {
            size: 5 * CHUNK_BYTES as u64,
            ..manifest.clone()
        };
        assert_eq!(
            bigger.check(LIMIT),
            Err(FileError::WrongChunkCount {
                listed: 2,
                needed: 5
            })
        );
        // Same chunk count, wrong length for the last: opens, but its length is refused.
        let shorter = Manifest {
            size: CHUNK_BYTES as u64 + 1_000,
            ..manifest.clone()
        };
        assert_eq!(
            shorter.open(1, &sealed[1]),
            Err(FileError::WrongChunkLength {
                index: 1,
                len: 1,
                expected: 1_000
            })
        );
        let huge = Manifest {
            size: LIMIT + 1,
            ..manifest
        };
        assert_eq!(
            huge.check(LIMIT),
            Err(FileError::TooLarge {
                size: LIMIT + 1,
                max: LIMIT
            })
        );
    }

    #[test]
    fn a_sealer_refuses_a_file_over_the_limit_and_chunks_of_the_wrong_length() {
        assert_eq!(
            FileSealer::new([0; 32], LIMIT + 1, LIMIT).err(),
            Some(FileError::TooLarge {
                size: LIMIT + 1,
                max: LIMIT
            })
        );
        let sealer = FileSealer::new([0; 32], 10, LIMIT).unwrap();
        assert_eq!(
            sealer.seal(0, &[0; 9]).err(),
            Some(FileError::WrongChunkLength {
                index: 0,
                len: 9,
                expected: 10
            })
        );
        assert_eq!(sealer.seal(1, &[]).err(), Some(FileError::NoSuchChunk(1)));
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let (manifest, _) = seal_all(b"secret", 0xAB);
        let shown = format!("{manifest:?}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("size: 6"));
    }
}
