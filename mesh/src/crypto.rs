//! End-to-end encryption, the same code in the browser (Wasm), the server and the radio path.
//!
//! - A device's [`Identity`] is an Ed25519 signing key and an X25519 agreement key, made from
//!   64 random bytes on first start. Its public half ([`PublicIdentity`]) has a short
//!   [safety code](PublicIdentity::safety_code) people compare to verify each other.
//! - A room is a 32-byte [`RoomKey`]. The room id on the wire is a hash of the key, so the
//!   server routes and stores without knowing it. Message bodies are sealed with
//!   XChaCha20-Poly1305 (random 192-bit nonces: never reused in practice) under a key derived
//!   from the room key with HKDF-SHA256, with the envelope header as associated data.
//! - Every envelope carries the sender's Ed25519 signature over header and ciphertext. The
//!   server checks it with the public key alone; readers check it before showing anything.
//! - A direct message room's key comes from X25519 agreement between the two identities and
//!   HKDF, so only the two devices can compute it.
//!
//! Randomness comes in through parameters (the browser passes `crypto.getRandomValues`, the
//! server the OS), so this module has no I/O and tests are reproducible.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as AgreementKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{Envelope, Kind, MessageId, RoomId, SenderId, Signature, MAX_BODY_BYTES};

/// Bytes of an XChaCha20-Poly1305 nonce.
pub const NONCE_BYTES: usize = 24;
/// Bytes of the Poly1305 authentication tag added to every body.
pub const TAG_BYTES: usize = 16;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

const SIGNATURE_DOMAIN: &[u8] = b"fieldmesh/envelope/v2\0";
const MESSAGE_KEY_INFO: &[u8] = b"fieldmesh/message-key/v1";
const ROOM_ID_DOMAIN: &[u8] = b"fieldmesh/room-id/v1\0";
const DM_KEY_INFO: &[u8] = b"fieldmesh/dm-key/v1";
const SAFETY_DOMAIN: &[u8] = b"fieldmesh/safety-code/v1\0";
const EMERGENCY_DOMAIN: &[u8] = b"fieldmesh/emergency-room/v1";
const MESHTASTIC_CHANNEL_DOMAIN: &[u8] = b"fieldmesh/meshtastic-channel-room/v1";
const ROOM_ACCESS_INFO: &[u8] = b"fieldmesh/room-access/v1";
const ROOM_PROOF_DOMAIN: &[u8] = b"fieldmesh/room-proof/v1\0";

/// Proof that a connection holds a room's key, for the server, which never learns the key: a
/// signature over the connection's challenge by the room's *access key*, an Ed25519 key made
/// from the room key. The server keeps each room's access key (the first one proven for the
/// room, or computed for the public Emergency room) and lets only connections that prove it
/// follow the room, page its history or see who is in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomProof {
    /// The room's access key (public).
    pub access: [u8; 32],
    /// Its signature over the room and the connection's challenge.
    pub signature: Signature,
}

fn proof_bytes(room: RoomId, challenge: &[u8; 32]) -> Vec<u8> {
    let mut bytes = ROOM_PROOF_DOMAIN.to_vec();
    bytes.extend_from_slice(&room.0);
    bytes.extend_from_slice(challenge);
    bytes
}

impl RoomProof {
    /// Whether this proves the room's access key `access` for `room` on the connection whose
    /// challenge is `challenge`.
    pub fn verify(&self, room: RoomId, challenge: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.access) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&proof_bytes(room, challenge), &signature)
            .is_ok()
    }
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The plaintext is larger than a body may be once sealed.
    #[error("the message is {0} bytes; the limit is {max}", max = MAX_BODY_BYTES - TAG_BYTES)]
    TooLarge(usize),
}

/// Why an envelope was not opened. Either way the message is not shown as from its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The signature does not match the sender's key over this header and body: forged,
    /// altered, or claiming someone else's name.
    #[error("the signature does not match the sender")]
    BadSignature,
    /// The envelope belongs to another room than this key's.
    #[error("the message belongs to another room")]
    WrongRoom,
    /// The body does not decrypt under this room's key (altered, or another key).
    #[error("the message does not decrypt with this room's key")]
    Undecryptable,
}

/// A device's secret keys. They never leave the device and are never logged.
pub struct Identity {
    signing: SigningKey,
    agreement: StaticSecret,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.sender())
    }
}

impl Identity {
    /// The identity whose secret keys are these 64 bytes (32 for Ed25519, 32 for X25519).
    /// Pass 64 fresh random bytes to make a new one.
    pub fn from_seed(seed: &[u8; 64]) -> Self {
        let mut signing = Zeroizing::new([0u8; 32]);
        let mut agreement = Zeroizing::new([0u8; 32]);
        signing.copy_from_slice(&seed[..32]);
        agreement.copy_from_slice(&seed[32..]);
        Self {
            signing: SigningKey::from_bytes(&signing),
            agreement: StaticSecret::from(*agreement),
        }
    }

    /// The 64 secret bytes, for storing on the device.
    pub fn to_seed(&self) -> Zeroizing<[u8; 64]> {
        let mut seed = Zeroizing::new([0u8; 64]);
        seed[..32].copy_from_slice(&self.signing.to_bytes());
        seed[32..].copy_from_slice(&self.agreement.to_bytes());
        seed
    }

    /// The public half, to share.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            signing: self.signing.verifying_key().to_bytes(),
            agreement: AgreementKey::from(&self.agreement).to_bytes(),
        }
    }

    /// The sender id of this device's messages (its Ed25519 public key).
    pub fn sender(&self) -> SenderId {
        SenderId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message` with the device's Ed25519 key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// The key of the direct-message room between this device and `peer`: the same on both
    /// sides, unknown to everyone else.
    /// `None` when the peer's agreement key is a degenerate point that would make the shared
    /// secret predictable.
    pub fn dm_key(&self, peer: &PublicIdentity) -> Option<RoomKey> {
        let shared = self
            .agreement
            .diffie_hellman(&AgreementKey::from(peer.agreement));
        if !shared.was_contributory() {
            return None;
        }
        let shared = Zeroizing::new(shared.to_bytes());
        let own = self.public().signing;
        let (low, high) = if own <= peer.signing {
            (own, peer.signing)
        } else {
            (peer.signing, own)
        };
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(&low);
        salt[32..].copy_from_slice(&high);
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&salt), shared.as_slice())
            .expand(DM_KEY_INFO, key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Some(RoomKey(key))
    }
}

/// A device's public keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicIdentity {
    /// Ed25519 public key: verifies the device's messages; also its [`SenderId`].
    pub signing: [u8; 32],
    /// X25519 public key: for direct-message keys.
    pub agreement: [u8; 32],
}

impl PublicIdentity {
    /// The sender id of this identity's messages.
    pub fn sender(&self) -> SenderId {
        SenderId(self.signing)
    }

    /// A short code derived from both public keys, shown as five groups of four digits. Two
    /// people who see the same code for each other have each other's real keys.
    pub fn safety_code(&self) -> String {
        let digest = Sha256::new()
            .chain_update(SAFETY_DOMAIN)
            .chain_update(self.signing)
            .chain_update(self.agreement)
            .finalize();
        digest[..10]
            .chunks(2)
            .map(|pair| format!("{:04}", u16::from_be_bytes([pair[0], pair[1]]) % 10_000))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A room's secret: 32 bytes that travel only in invite links' fragments and QR codes.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomKey(for {})", self.room_id())
    }
}

impl RoomKey {
    /// A room key from its bytes (pass 32 fresh random bytes to make a new room).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, for storing on the device or putting in an invite link.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public "Emergency" room's key. It is published, so that room is readable by anyone
    /// and must be marked as not private.
    pub fn emergency() -> Self {
        Self::from_bytes(Sha256::digest(EMERGENCY_DOMAIN).into())
    }

    /// The key of the room that carries a Meshtastic channel's plain text (named after the
    /// channel, case ignored). Anyone can compute it, as anyone with the channel key reads the
    /// channel: the room is not private, and servers read it to send its messages as plain
    /// Meshtastic text.
    pub fn meshtastic_channel(channel: &str) -> Self {
        Self::from_bytes(
            Sha256::new()
                .chain_update(MESHTASTIC_CHANNEL_DOMAIN)
                .chain_update(channel.trim().to_lowercase().as_bytes())
                .finalize()
                .into(),
        )
    }

    /// The room id the server sees: a hash of the key, which does not reveal it.
    pub fn room_id(&self) -> RoomId {
        let digest = Sha256::new()
            .chain_update(ROOM_ID_DOMAIN)
            .chain_update(self.0.as_slice())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        RoomId(id)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        self.derived_cipher(MESSAGE_KEY_INFO)
    }

    fn access_signing_key(&self) -> SigningKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.0.as_slice())
            .expand(ROOM_ACCESS_INFO, seed.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SigningKey::from_bytes(&seed)
    }

    /// The room's access key (public), which the server checks proofs against.
    pub fn access_key(&self) -> [u8; 32] {
        self.access_signing_key().verifying_key().to_bytes()
    }

    /// Proves, on the connection whose challenge is `challenge`, that this device holds the key.
    pub fn prove(&self, challenge: &[u8; 32]) -> RoomProof {
        let signing = self.access_signing_key();
        RoomProof {
            access: signing.verifying_key().to_bytes(),
            signature: Signature(
                signing
                    .sign(&proof_bytes(self.room_id(), challenge))
                    .to_bytes(),
            ),
        }
    }

    /// An XChaCha20-Poly1305 cipher under a subkey of the room key, one per use (`info`).
    pub(crate) fn derived_cipher(&self, info: &[u8]) -> XChaCha20Poly1305 {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.0.as_slice())
            .expand(info, key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        XChaCha20Poly1305::new(key.as_slice().into())
    }

    /// Encrypts `plaintext` with a fresh `nonce` (24 random bytes) and `associated` data the
    /// ciphertext is bound to. For small payloads outside envelopes (presence cards).
    pub fn encrypt(
        &self,
        nonce: [u8; NONCE_BYTES],
        associated: &[u8],
        plaintext: &[u8],
    ) -> Vec<u8> {
        let mut out = nonce.to_vec();
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length we allow");
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`RoomKey::encrypt`] made.
    pub fn decrypt(&self, associated: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(OpenError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| OpenError::Undecryptable)
    }
}

/// Everything of an envelope but its body and signature: the associated data of the body and
/// the start of what the signature covers.
#[derive(Serialize)]
struct Header<'a> {
    version: u8,
    id: &'a MessageId,
    room: &'a RoomId,
    sender: &'a SenderId,
    created_at_ms: u64,
    kind: Kind,
    nonce: &'a [u8; NONCE_BYTES],
}

fn header_bytes(envelope: &Envelope) -> Vec<u8> {
    let header = Header {
        version: crate::envelope::ENVELOPE_VERSION,
        id: &envelope.id,
        room: &envelope.room,
        sender: &envelope.sender,
        created_at_ms: envelope.created_at_ms,
        kind: envelope.kind,
        nonce: &envelope.nonce,
    };
    postcard::to_allocvec(&header).expect("plain protocol types always serialise")
}

fn signed_bytes(envelope: &Envelope) -> Vec<u8> {
    let mut bytes = SIGNATURE_DOMAIN.to_vec();
    bytes.extend_from_slice(&header_bytes(envelope));
    bytes.extend_from_slice(&envelope.body);
    bytes
}

/// What to seal into an envelope.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    /// The sender-made message id (16 random bytes).
    pub id: MessageId,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// What the plaintext is.
    pub kind: Kind,
    /// The plaintext body.
    pub plaintext: &'a [u8],
}

/// Seals a message for `key`'s room, signed by `identity`. `nonce` must be 24 fresh random
/// bytes.
pub fn seal(
    identity: &Identity,
    key: &RoomKey,
    draft: Draft<'_>,
    nonce: [u8; NONCE_BYTES],
) -> Result<Envelope, SealError> {
    if draft.plaintext.len() + TAG_BYTES > MAX_BODY_BYTES {
        return Err(SealError::TooLarge(draft.plaintext.len()));
    }
    let mut envelope = Envelope {
        id: draft.id,
        room: key.room_id(),
        sender: identity.sender(),
        created_at_ms: draft.created_at_ms,
        kind: draft.kind,
        nonce,
        body: Vec::new(),
        signature: Signature([0; SIGNATURE_BYTES]),
    };
    let aad = header_bytes(&envelope);
    envelope.body = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: draft.plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any length we allow");
    envelope.signature = identity.sign(&signed_bytes(&envelope));
    Ok(envelope)
}

impl Envelope {
    /// Checks the sender's signature over header and body, with public keys only. What the
    /// server does for every message, and readers before anything else.
    pub fn verify_signature(&self) -> Result<(), OpenError> {
        let key = VerifyingKey::from_bytes(&self.sender.0).map_err(|_| OpenError::BadSignature)?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&signed_bytes(self), &signature)
            .map_err(|_| OpenError::BadSignature)
    }

    /// Verifies and decrypts the body with the room's key.
    pub fn open(&self, key: &RoomKey) -> Result<Vec<u8>, OpenError> {
        self.verify_signature()?;
        if self.room != key.room_id() {
            return Err(OpenError::WrongRoom);
        }
        key.cipher()
            .decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.body,
                    aad: &header_bytes(self),
                },
            )
            .map_err(|_| OpenError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u8) -> Identity {
        Identity::from_seed(&[n; 64])
    }

    fn draft(plaintext: &[u8]) -> Draft<'_> {
        Draft {
            id: MessageId([1; 16]),
            created_at_ms: 1_764_000_000_000,
            kind: Kind::Text,
            plaintext,
        }
    }

    fn sealed() -> (Identity, RoomKey, Envelope) {
        let ana = identity(1);
        let key = RoomKey::from_bytes([9; 32]);
        let envelope = seal(&ana, &key, draft(b"water at the school"), [5; NONCE_BYTES]).unwrap();
        (ana, key, envelope)
    }

    #[test]
    fn room_proofs_need_the_key_and_hold_for_one_room_and_one_challenge() {
        let key = RoomKey::from_bytes([3; 32]);
        let room = key.room_id();
        let proof = key.prove(&[1; 32]);
        assert!(proof.verify(room, &[1; 32]));
        assert_eq!(proof.access, key.access_key());
        // Another connection's challenge, another room: no.
        assert!(!proof.verify(room, &[2; 32]));
        assert!(!proof.verify(RoomKey::from_bytes([4; 32]).room_id(), &[1; 32]));
        // Someone without the key who knows the room id makes a proof of their own key only.
        let stranger = RoomKey::from_bytes([5; 32]);
        let mut forged = stranger.prove(&[1; 32]);
        assert_ne!(forged.access, key.access_key());
        forged.access = key.access_key();
        assert!(!forged.verify(room, &[1; 32]));
    }

    #[test]
    fn sealed_messages_open_with_the_room_key_and_only_with_it() {
        let (ana, key, envelope) = sealed();
        assert_eq!(envelope.sender, ana.sender());
        assert_eq!(envelope.room, key.room_id());
        assert_eq!(envelope.open(&key).unwrap(), b"water at the school");
        assert!(
            !envelope.body.windows(5).any(|w| w == b"water"),
            "the body is not plaintext"
        );
        let other = RoomKey::from_bytes([8; 32]);
        assert_eq!(envelope.open(&other), Err(OpenError::WrongRoom));
        let mut moved = envelope.clone();
        moved.room = other.room_id();
        assert_eq!(
            moved.open(&other),
            Err(OpenError::BadSignature),
            "the room id is signed"
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_is_rejected() {
        let (_, key, envelope) = sealed();
        let bytes = envelope.encode().unwrap();
        for at in 1..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = bytes.clone();
                tampered[at] ^= bit;
                // Either it no longer decodes, or it decodes and fails to open.
                if let Ok(decoded) = Envelope::decode(&tampered) {
                    assert!(
                        decoded.open(&key).is_err(),
                        "flip at byte {at} bit {bit:#x} went unnoticed"
                    );
                    assert!(
                        decoded.verify_signature().is_err(),
                        "flip at byte {at} passed the server check"
                    );
                }
            }
        }
    }

    #[test]
    fn a_message_signed_by_a_claiming_to_be_from_b_is_rejected() {
        let (_, key, mut envelope) = sealed();
        let ben = identity(2);
        envelope.sender = ben.sender();
        assert_eq!(envelope.verify_signature(), Err(OpenError::BadSignature));
        assert_eq!(envelope.open(&key), Err(OpenError::BadSignature));
        // Not a valid point at all: refused, not a panic.
        envelope.sender = SenderId([0xff; 32]);
        assert_eq!(envelope.verify_signature(), Err(OpenError::BadSignature));
    }

    #[test]
    fn direct_message_keys_agree_on_both_sides_and_differ_per_pair() {
        let (ana, ben, cleo) = (identity(1), identity(2), identity(3));
        let ab = ana.dm_key(&ben.public()).unwrap();
        assert_eq!(ab, ben.dm_key(&ana.public()).unwrap());
        let ac = ana.dm_key(&cleo.public()).unwrap();
        assert_ne!(ab, ac);
        assert_ne!(ab.room_id(), ac.room_id());
        // A degenerate agreement key (the identity point) is refused, not turned into a key.
        let bogus = PublicIdentity {
            signing: ben.public().signing,
            agreement: [0; 32],
        };
        assert_eq!(ana.dm_key(&bogus), None);
    }

    #[test]
    fn identities_round_trip_and_safety_codes_are_stable() {
        let ana = identity(1);
        let again = Identity::from_seed(&ana.to_seed());
        assert_eq!(again.public(), ana.public());
        let code = ana.public().safety_code();
        assert_eq!(code.len(), 24);
        assert_eq!(code, again.public().safety_code());
        assert_ne!(code, identity(2).public().safety_code());
        assert!(!format!("{ana:?}").contains(&format!("{:?}", &ana.to_seed()[..4])));
    }

    #[test]
    fn presence_cards_encrypt_with_associated_data() {
        let key = RoomKey::from_bytes([3; 32]);
        let sealed = key.encrypt([1; NONCE_BYTES], b"room", b"Ana");
        assert_eq!(key.decrypt(b"room", &sealed).unwrap(), b"Ana");
        assert_eq!(
            key.decrypt(b"other", &sealed),
            Err(OpenError::Undecryptable)
        );
        assert_eq!(
            key.decrypt(b"room", &sealed[..10]),
            Err(OpenError::Undecryptable)
        );
    }

    #[test]
    fn oversized_plaintext_is_refused() {
        let big = vec![0; MAX_BODY_BYTES];
        assert!(matches!(
            seal(&identity(1), &RoomKey::emergency(), draft(&big), [0; 24]),
            Err(SealError::TooLarge(_))
        ));
    }

    // Known-answer vectors from the standards, run through the exact crates used above.

    #[test]
    fn ed25519_matches_rfc8032_test_1() {
        let secret = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(
            key.verifying_key().to_bytes(),
            hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let signature = key.sign(b"").to_bytes();
        assert_eq!(
            hex(&signature),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn x25519_matches_rfc7748_section_6_1() {
        let alice = StaticSecret::from(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob_public = AgreementKey::from(hex32(
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
        ));
        assert_eq!(
            AgreementKey::from(&alice).to_bytes(),
            hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            alice.diffie_hellman(&bob_public).to_bytes(),
            hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    #[test]
    fn hkdf_sha256_matches_rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            hex(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn xchacha20poly1305_matches_the_draft_irtf_cfrg_xchacha_vector() {
        let key = hex32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: Vec<u8> = (0x40..=0x57).collect();
        let aad = decode_hex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = XChaCha20Poly1305::new(&key.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap();
        let (ciphertext, tag) = sealed.split_at(plaintext.len());
        assert_eq!(&hex(ciphertext)[..32], "bd6d179d3e83d43b9576579493c0e939");
        assert_eq!(hex(tag), "c0875924c1c7987947deafd8780acf49");
    }

    fn decode_hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex32(text: &str) -> [u8; 32] {
        decode_hex(text).try_into().unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
