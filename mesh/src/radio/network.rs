//! The mesh network key: what makes a frame on the air one of ours.
//!
//! Every frame (data, fragment, acknowledgement) ends with an 8-byte tag, HMAC-SHA256 under a
//! key all camps of one mesh share, over the whole frame before it (header, hop limit and
//! payload) and the current ten-minute period of the wall clock. A node checks the tag before
//! anything else, so a frame from someone without the key changes no state at all, and a frame
//! recorded earlier stops being accepted within twenty minutes, whatever the dedupe memory
//! holds by then. Relays hold the key too: they lower the hop limit and tag the frame anew.
//!
//! The key is 16 random bytes, shown to people as 12 words (the BIP 39 English list, whose
//! last word carries a checksum, so a mistyped word is caught). An *open* mesh uses a key
//! everyone knows: it reaches camps that were never given a key, and gives up keeping
//! strangers' frames out.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::RadioError;

/// Bytes of a network key.
pub const NETWORK_KEY_BYTES: usize = 16;
/// Bytes of the tag at the end of every frame.
pub const FRAME_TAG_BYTES: usize = 8;
/// Length of the time period a tag is made for, in seconds.
pub const PERIOD_S: u64 = 10 * 60;
/// A frame tagged in the period before or after the receiver's own is still accepted: clocks
/// may be up to one period apart, and a frame is accepted up to two periods after it was tagged.
pub const PERIOD_SLACK: u64 = 1;
/// How far (in periods, either way) a receiver looks to tell a sender with a wrong clock from
/// a forger: two days.
pub const SKEW_SEARCH_PERIODS: u64 = 2 * 24 * 6;

const KEY_INFO: &[u8] = b"fieldmesh/radio-network/v2";
const OPEN_DOMAIN: &[u8] = b"fieldmesh/open-mesh/v2";

type HmacSha256 = Hmac<Sha256>;

/// Why a network key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkKeyError {
    /// Not 12 words from the list, or the checksum word does not match.
    #[error("a network key is 12 words from the list, and these are not: {0}")]
    Words(String),
}

/// A mesh network key. Its `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct NetworkKey {
    bytes: [u8; NETWORK_KEY_BYTES],
    mac: HmacSha256,
}

impl PartialEq for NetworkKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for NetworkKey {}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkKey({})", self.fingerprint())
    }
}

impl Default for NetworkKey {
    /// The open mesh's key.
    fn default() -> Self {
        Self::open_mesh()
    }
}

impl NetworkKey {
    /// The key of these 16 bytes (random ones make a new mesh).
    pub fn from_bytes(bytes: [u8; NETWORK_KEY_BYTES]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, &bytes);
        let mut mac_key = zeroize::Zeroizing::new([0u8; 32]);
        hkdf.expand(KEY_INFO, mac_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mac = <HmacSha256 as Mac>::new_from_slice(mac_key.as_ref())
            .expect("HMAC takes a key of any length");
        Self { bytes, mac }
    }

    /// The open mesh's key, which everyone knows.
    pub fn open_mesh() -> Self {
        let digest = Sha256::digest(OPEN_DOMAIN);
        let mut bytes = [0u8; NETWORK_KEY_BYTES];
        bytes.copy_from_slice(&digest[..NETWORK_KEY_BYTES]);
        Self::from_bytes(bytes)
    }

    /// Whether this is the open mesh's key.
    pub fn is_open_mesh(&self) -> bool {
        *self == Self::open_mesh()
    }

    /// The key's bytes, to store.
    pub fn to_bytes(&self) -> [u8; NETWORK_KEY_BYTES] {
        self.bytes
    }

    /// The key as 12 words separated by spaces, to read out, write down or show as a QR code.
    pub fn to_words(&self) -> String {
        let mnemonic = bip39::Mnemonic::from_entropy(&self.bytes)
            .expect("16 bytes is a valid BIP 39 entropy length");
        let words: Vec<&str> = mnemonic.words().collect();
        words.join(" ")
    }

    /// Reads 12 words, in any case, separated by spaces, commas, dashes or new lines.
    pub fn from_words(words: &str) -> Result<Self, NetworkKeyError> {
        let cleaned = words
            .split(|c: char| c.is_whitespace() || c == ',' || c == '-' || c == '.')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &cleaned)
            .map_err(|e| NetworkKeyError::Words(e.to_string()))?;
        let (entropy, len) = mnemonic.to_entropy_array();
        let bytes: [u8; NETWORK_KEY_BYTES] = entropy[..len]
            .try_into()
            .map_err(|_| NetworkKeyError::Words(format!("{} words", cleaned.split(' ').count())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A short name of the key that reveals nothing of it, for logs and to compare by eye.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"fieldmesh/network-fingerprint/v2\0")
            .chain_update(self.bytes)
            .finalize();
        format!(
            "{:02x}{:02x}-{:02x}{:02x}",
            digest[0], digest[1], digest[2], digest[3]
        )
    }

    fn mac(&self, period: u64, frame: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(&period.to_be_bytes());
        mac.update(frame);
        mac
    }

    /// `frame` with its tag for the period of `now_ms` (wall-clock milliseconds) appended.
    pub fn seal(&self, now_ms: u64, mut frame: Vec<u8>) -> Vec<u8> {
        let tag = self.mac(period_of(now_ms), &frame).finalize().into_bytes();
        frame.extend_from_slice(&tag[..FRAME_TAG_BYTES]);
        frame
    }

    /// The frame without its tag, if the tag is right for a period near `now_ms`.
    ///
    /// A frame whose tag is right for a period further off (up to two days) is refused with
    /// [`RadioError::ClockSkew`], so a camp whose clock is wrong learns why it is not heard.
    pub fn open<'a>(&self, now_ms: u64, bytes: &'a [u8]) -> Result<&'a [u8], RadioError> {
        let split = bytes
            .len()
            .checked_sub(FRAME_TAG_BYTES)
            .ok_or(RadioError::Truncated)?;
        let (frame, tag) = bytes.split_at(split);
        let now = period_of(now_ms);
        let fits = |period: u64| self.mac(period, frame).verify_truncated_left(tag).is_ok();
        if (now.saturating_sub(PERIOD_SLACK)..=now + PERIOD_SLACK).any(fits) {
            return Ok(frame);
        }
        for distance in PERIOD_SLACK + 1..=SKEW_SEARCH_PERIODS {
            if fits(now + distance) {
                return Err(RadioError::ClockSkew {
                    minutes: (distance * PERIOD_S / 60) as i64,
                });
            }
            if now >= distance && fits(now - distance) {
                return Err(RadioError::ClockSkew {
                    minutes: -((distance * PERIOD_S / 60) as i64),
                });
            }
        }
        Err(RadioError::Unauthenticated)
    }
}

fn period_of(now_ms: u64) -> u64 {
    now_ms / 1000 / PERIOD_S
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: u64 = 60_000;

    #[test]
    fn words_round_trip_and_catch_typos() {
        let key = NetworkKey::from_bytes([42; 16]);
        let words = key.to_words();
        assert_eq!(words.split(' ').count(), 12);
        assert_eq!(NetworkKey::from_words(&words), Ok(key.clone()));
        // Any case, any separator.
        let shouted = words.to_uppercase().replace(' ', "-");
        assert_eq!(NetworkKey::from_words(&shouted), Ok(key.clone()));
        // One word swapped for another list word fails the checksum (or is another key).
        let mut typo: Vec<&str> = words.split(' ').collect();
        typo[3] = if typo[3] == "zoo" { "abandon" } else { "zoo" };
        assert_ne!(NetworkKey::from_words(&typo.join(" ")), Ok(key.clone()));
        assert!(NetworkKey::from_words("not a key").is_err());
        assert!(NetworkKey::from_words("").is_err());
        // 24 words are another length: refused, not cut.
        let long = format!("{words} {words}");
        assert!(NetworkKey::from_words(&long).is_err());
    }

    #[test]
    fn the_debug_form_and_fingerprint_hide_the_key() {
        let key = NetworkKey::from_bytes([7; 16]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_words()));
        assert!(!shown.contains("7, 7"));
        assert_eq!(shown, format!("NetworkKey({})", key.fingerprint()));
        assert!(NetworkKey::open_mesh().is_open_mesh());
        assert!(!key.is_open_mesh());
    }

    #[test]
    fn tags_are_checked_for_key_bytes_and_time() {
        let key = NetworkKey::from_bytes([1; 16]);
        let now = 1_800_000_000_000;
        let sealed = key.seal(now, b"hello radio".to_vec());
        assert_eq!(sealed.len(), 11 + FRAME_TAG_BYTES);
        assert_eq!(key.open(now, &sealed), Ok(&b"hello radio"[..]));
        // Another key, a flipped bit anywhere, a cut tag: refused.
        let other = NetworkKey::from_bytes([2; 16]);
        assert_eq!(other.open(now, &sealed), Err(RadioError::Unauthenticated));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(key.open(now, &bad).is_err(), "byte {i} flipped");
        }
        assert!(key.open(now, &sealed[..sealed.len() - 1]).is_err());
        assert_eq!(key.open(now, &[0; 3]), Err(RadioError::Truncated));
        // Ten minutes late or early is accepted; an hour late is a replay or a wrong clock.
        assert!(key.open(now + 10 * MINUTE_MS, &sealed).is_ok());
        assert!(key.open(now - 10 * MINUTE_MS, &sealed).is_ok());
        assert!(matches!(
            key.open(now + 60 * MINUTE_MS, &sealed),
            Err(RadioError::ClockSkew { minutes }) if (-70..=-50).contains(&minutes)
        ));
        assert!(matches!(
            key.open(now - 3 * 60 * MINUTE_MS, &sealed),
            Err(RadioError::ClockSkew { minutes }) if (170..=190).contains(&minutes)
        ));
        // Older than two days: just refused.
        assert_eq!(
            key.open(now + 3 * 24 * 60 * MINUTE_MS, &sealed),
            Err(RadioError::Unauthenticated)
        );
    }
}
