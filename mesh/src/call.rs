//! Call signalling: what pages tell each other to set up the voice and video calls and the
//! walkie-talkie of a room (WebRTC peer connections on the camp's Wi-Fi).
//!
//! A signal travels over the server's WebSocket ([`crate::ClientFrame::Signal`]), sealed with
//! the room key, so the server learns only that members of a room are calling, never the
//! session descriptions (addresses, media keys' fingerprints) inside. It is also signed by
//! its sender for the pair of connections it goes between: the server names the connection
//! a signal came from, so a member cannot pass a signal off as another member's, and a signal
//! captured on one connection does not open on another. (Within one pair of connections a
//! signal carries no counter: the relaying server could repeat one, which at worst restarts
//! a connection or holds the walkie-talkie until its press times out.) The server stores none
//! of it.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::crypto::{Identity, RoomKey, NONCE_BYTES, TAG_BYTES};
use crate::{DecodeError, EncodeError, RoomId, SenderId, Signature};

/// Format version of an encoded signal.
const SIGNAL_VERSION: u8 = 1;
/// Domain of the signal signature, so it can never be taken for another signed thing.
const SIGNAL_DOMAIN: &[u8] = b"fieldmesh/call-signal/v1\0";
/// Longest session description a signal carries (a browser's offer with audio, video and a
/// few host candidates is 3 to 6 KiB).
pub const MAX_SDP_BYTES: usize = 10 * 1024;
/// Largest sealed signal: the longest description, its framing, signature, nonce and tag.
pub const MAX_SIGNAL_BYTES: usize = MAX_SDP_BYTES + 512;
/// Most people in one call or listening to one walkie-talkie (each page keeps a connection
/// to every other: five uploads of its voice and camera are what a phone on Wi-Fi manages).
pub const MAX_CALL_PEOPLE: usize = 6;

/// Which of a room's voice channels a signal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Line {
    /// A call, named by the random id its caller gave it.
    Call([u8; 16]),
    /// The room's walkie-talkie: everyone listening hears whoever holds the button.
    Talk,
}

/// What one page tells another (or the whole room) about a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    /// "I am in this line": sent to the room when starting or joining, again every few
    /// seconds while in it (so a page that opens the room later sees the call), and to one
    /// page in answer to its `Here`. Whoever of two pages has the smaller connection
    /// challenge offers.
    Here {
        /// The sender's camera is on (a call that started with video rings as one).
        video: bool,
    },
    /// The sender will not join this call (sent to the room; those in the call are told).
    Decline,
    /// A session description offering a connection (ICE candidates included).
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// The answer to an offer.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// The sender left the line (hung up, or stopped listening).
    Leave,
    /// Walkie-talkie: the sender pressed (`true`) or released (`false`) the talk button.
    /// `pressed_ms` (sender clock) settles two presses at once: the earlier one speaks.
    Floor {
        /// Pressed or released.
        holding: bool,
        /// When it was pressed, ms since the epoch on the sender's clock.
        pressed_ms: u64,
    },
}

impl Signal {
    fn check(&self) -> Result<(), EncodeError> {
        match self {
            Signal::Offer { sdp } | Signal::Answer { sdp } if sdp.len() > MAX_SDP_BYTES => {
                Err(EncodeError::TooLarge {
                    len: sdp.len(),
                    max: MAX_SDP_BYTES,
                })
            }
            _ => Ok(()),
        }
    }
}

/// A signal with the line it is about: what is sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSignal {
    /// The line.
    pub line: Line,
    /// What is said.
    pub signal: Signal,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    signal: CallSignal,
    signature: Signature,
}

/// Where a signal goes between: the connection it came from (its challenge, named by the
/// server) and the one it is for (`None`: every follower of the room).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The room.
    pub room: RoomId,
    /// The sending connection's challenge.
    pub from: [u8; 32],
    /// The receiving connection's challenge, for a signal to one page.
    pub to: Option<[u8; 32]>,
}

impl Route {
    fn bound(&self, sender: SenderId) -> Vec<u8> {
        let mut bytes = SIGNAL_DOMAIN.to_vec();
        bytes.extend_from_slice(&self.room.0);
        bytes.extend_from_slice(&sender.0);
        bytes.extend_from_slice(&self.from);
        match self.to {
            Some(to) => {
                bytes.push(1);
                bytes.extend_from_slice(&to);
            }
            None => bytes.push(0),
        }
        bytes
    }
}

impl CallSignal {
    /// Signs the signal as `identity` for `route` and seals it with the room key. `nonce` is
    /// 24 fresh random bytes. Fails only for a description over [`MAX_SDP_BYTES`].
    pub fn seal(
        &self,
        identity: &Identity,
        key: &RoomKey,
        route: &Route,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<Vec<u8>, EncodeError> {
        self.signal.check()?;
        let bound = route.bound(identity.sender());
        let plain = encode_versioned(SIGNAL_VERSION, self, MAX_SIGNAL_BYTES)?;
        let mut signed = bound.clone();
        signed.extend_from_slice(&plain);
        let body = encode_versioned(
            SIGNAL_VERSION,
            &Signed {
                signal: self.clone(),
                signature: identity.sign(&signed),
            },
            MAX_SIGNAL_BYTES,
        )?;
        let sealed = key.encrypt(nonce, &bound, &body);
        debug_assert!(sealed.len() <= MAX_SIGNAL_BYTES);
        Ok(sealed)
    }

    /// Opens a signal `sender` sealed for `route` (as the server delivered it). `None` when it
    /// is not sealed with this room's key for this route, is not signed by `sender`, or is
    /// damaged or oversized: such a signal is dropped.
    pub fn open(key: &RoomKey, sender: SenderId, route: &Route, sealed: &[u8]) -> Option<Self> {
        if sealed.len() > MAX_SIGNAL_BYTES || sealed.len() < NONCE_BYTES + TAG_BYTES {
            return None;
        }
        let bound = route.bound(sender);
        let body = key.decrypt(&bound, sealed).ok()?;
        let Signed { signal, signature } =
            decode_versioned::<Signed>(SIGNAL_VERSION, &body, MAX_SIGNAL_BYTES).ok()?;
        signal.signal.check().ok()?;
        let plain = encode_versioned(SIGNAL_VERSION, &signal, MAX_SIGNAL_BYTES).ok()?;
        let mut signed = bound;
        signed.extend_from_slice(&plain);
        let verifying = VerifyingKey::from_bytes(&sender.0).ok()?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        verifying.verify_strict(&signed, &signature).ok()?;
        Some(signal)
    }
}

/// Decodes what a signal's body holds, for the fuzzer: never panics, whatever the bytes.
pub fn decode_signal_body(bytes: &[u8]) -> Result<CallSignal, DecodeError> {
    decode_versioned::<Signed>(SIGNAL_VERSION, bytes, MAX_SIGNAL_BYTES).map(|s| s.signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u8) -> Identity {
        Identity::from_seed(&[n; 64])
    }

    fn route(to: Option<[u8; 32]>) -> Route {
        Route {
            room: RoomKey::from_bytes([3; 32]).room_id(),
            from: [7; 32],
            to,
        }
    }

    fn offer() -> CallSignal {
        CallSignal {
            line: Line::Call([9; 16]),
            signal: Signal::Offer {
                sdp: "v=0\r\no=- 1 2 IN IP4 192.168.1.20\r\n".into(),
            },
        }
    }

    #[test]
    fn a_signal_opens_only_for_its_room_sender_and_route() {
        let key = RoomKey::from_bytes([3; 32]);
        let ana = identity(1);
        let to_ben = route(Some([8; 32]));
        let sealed = offer().seal(&ana, &key, &to_ben, [5; NONCE_BYTES]).unwrap();
        assert_eq!(
            CallSignal::open(&key, ana.sender(), &to_ben, &sealed),
            Some(offer())
        );
        // The server sees no description.
        assert!(!sealed.windows(3).any(|w| w == b"v=0"));
        // Another room's key, another claimed sender, another sending connection (a replay
        // by someone else), another receiver, or sent to everyone: none opens.
        assert!(CallSignal::open(
            &RoomKey::from_bytes([4; 32]),
            ana.sender(),
            &to_ben,
            &sealed
        )
        .is_none());
        assert!(CallSignal::open(&key, identity(2).sender(), &to_ben, &sealed).is_none());
        let replayed = Route {
            from: [6; 32],
            ..to_ben
        };
        assert!(CallSignal::open(&key, ana.sender(), &replayed, &sealed).is_none());
        assert!(CallSignal::open(&key, ana.sender(), &route(Some([9; 32])), &sealed).is_none());
        assert!(CallSignal::open(&key, ana.sender(), &route(None), &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(CallSignal::open(&key, ana.sender(), &to_ben, &bad).is_none());
        }
    }

    #[test]
    fn a_member_cannot_sign_for_another() {
        // Ben holds the room key and seals a signal naming Ana as its sender: her signature
        // is missing, so it does not open as hers.
        let key = RoomKey::from_bytes([3; 32]);
        let ana = identity(1);
        let ben = identity(2);
        let to_all = route(None);
        let bound = to_all.bound(ana.sender());
        let mut signed = bound.clone();
        signed.extend_from_slice(
            &encode_versioned(SIGNAL_VERSION, &offer(), MAX_SIGNAL_BYTES).unwrap(),
        );
        let body = encode_versioned(
            SIGNAL_VERSION,
            &Signed {
                signal: offer(),
                signature: ben.sign(&signed),
            },
            MAX_SIGNAL_BYTES,
        )
        .unwrap();
        let forged = key.encrypt([5; NONCE_BYTES], &bound, &body);
        assert!(CallSignal::open(&key, ana.sender(), &to_all, &forged).is_none());
    }

    #[test]
    fn oversized_descriptions_are_refused_both_ways() {
        let key = RoomKey::from_bytes([3; 32]);
        let long = CallSignal {
            line: Line::Talk,
            signal: Signal::Answer {
                sdp: "a".repeat(MAX_SDP_BYTES + 1),
            },
        };
        assert!(long
            .seal(&identity(1), &key, &route(None), [5; NONCE_BYTES])
            .is_err());
        let longest = CallSignal {
            line: Line::Talk,
            signal: Signal::Answer {
                sdp: "a".repeat(MAX_SDP_BYTES),
            },
        };
        let sealed = longest
            .seal(&identity(1), &key, &route(None), [5; NONCE_BYTES])
            .unwrap();
        assert!(sealed.len() <= MAX_SIGNAL_BYTES);
        assert!(CallSignal::open(&key, identity(1).sender(), &route(None), &sealed).is_some());
        assert!(CallSignal::open(&key, identity(1).sender(), &route(None), &[0; 20]).is_none());
    }
}
