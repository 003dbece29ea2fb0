//! Presence cards: what a room member shows the others. Defined, signed, sealed and opened
//! here, for the page (which makes and reads them) and the tests (the server only relays
//! the sealed bytes, size-checked).
//!
//! A card holds the member's display name and public keys, signed by their own signing key
//! for one room, so nobody can attach another agreement key (and so read their private
//! messages) or another name to their identity. It travels sealed with the room key, bound to
//! the room and the member, so the server sees only ciphertext. It is also signed for one
//! connection (the challenge the server gave it): a card captured and replayed on another
//! connection, even by a room member, does not pass for its owner.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::body::clean_display_name;
use crate::codec::{decode_versioned, encode_versioned};
use crate::crypto::{Identity, PublicIdentity, RoomKey, NONCE_BYTES};
use crate::wire::Member;
use crate::{DecodeError, EncodeError, RoomId, SenderId, Signature, MAX_BODY_BYTES};

/// Format version of an encoded card.
const CARD_VERSION: u8 = 1;
/// Domain of the card signature, so it can never be taken for another signed thing.
const CARD_DOMAIN: &[u8] = b"fieldmesh/presence-card/v2\0";

/// A member's display name and public keys, signed by them for one room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceCard {
    /// Display name.
    pub name: String,
    /// The member's public keys (the signing key is also their sender id).
    pub identity: PublicIdentity,
    /// The member's Ed25519 signature over room, keys and name.
    pub signature: Signature,
}

fn signed_bytes(
    room: RoomId,
    challenge: &[u8; 32],
    identity: &PublicIdentity,
    name: &str,
) -> Vec<u8> {
    let mut bytes = CARD_DOMAIN.to_vec();
    bytes.extend_from_slice(&room.0);
    bytes.extend_from_slice(challenge);
    bytes.extend_from_slice(&identity.signing);
    bytes.extend_from_slice(&identity.agreement);
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// Associated data binding a sealed card to its room, member and connection.
fn sealed_context(room: RoomId, sender: SenderId, challenge: &[u8; 32]) -> Vec<u8> {
    let mut context = room.0.to_vec();
    context.extend_from_slice(&sender.0);
    context.extend_from_slice(challenge);
    context
}

impl PresenceCard {
    /// `identity`'s card for `room` under `name`, signed by it for the connection whose
    /// challenge is `challenge`.
    pub fn sign(identity: &Identity, room: RoomId, challenge: &[u8; 32], name: &str) -> Self {
        let public = identity.public();
        Self {
            name: name.to_string(),
            identity: public,
            signature: identity.sign(&signed_bytes(room, challenge, &public, name)),
        }
    }

    /// Whether the card was signed for `room` and the connection's `challenge` by the signing
    /// key it names.
    pub fn verify(&self, room: RoomId, challenge: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.identity.signing) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        let signed = signed_bytes(room, challenge, &self.identity, &self.name);
        key.verify_strict(&signed, &signature).is_ok()
    }

    /// Encodes the card for sealing.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(CARD_VERSION, self, MAX_BODY_BYTES)
    }

    /// Decodes an opened card.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned(CARD_VERSION, bytes, MAX_BODY_BYTES)
    }

    /// Signs and seals `identity`'s card for the room of `key` and the connection whose
    /// challenge is `challenge`: the [`Member`] a join carries. `nonce` is 24 fresh random
    /// bytes.
    pub fn seal(
        identity: &Identity,
        key: &RoomKey,
        challenge: [u8; 32],
        name: &str,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<Member, EncodeError> {
        let room = key.room_id();
        let sender = identity.sender();
        let card = Self::sign(identity, room, &challenge, name).encode()?;
        Ok(Member {
            sender,
            challenge,
            card: key.encrypt(nonce, &sealed_context(room, sender, &challenge), &card),
        })
    }

    /// Opens a member's sealed card with the room key. `None` when it is not sealed with this
    /// key for this member, is not signed by the keys it names, or its name is unusable: such
    /// a member is shown as unknown, never under a name.
    pub fn open(key: &RoomKey, member: &Member) -> Option<Self> {
        let room = key.room_id();
        let context = sealed_context(room, member.sender, &member.challenge);
        let plaintext = key.decrypt(&context, &member.card).ok()?;
        let card = Self::decode(&plaintext).ok()?;
        if card.identity.sender() != member.sender || !card.verify(room, &member.challenge) {
            return None;
        }
        let name = clean_display_name(&card.name)?;
        Some(Self { name, ..card })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u8) -> Identity {
        Identity::from_seed(&[n; 64])
    }

    #[test]
    fn cards_are_bound_to_room_keys_and_name() {
        let ana = identity(1);
        let room = RoomId([1; 16]);
        let card = PresenceCard::sign(&ana, room, &[7; 32], "Ana");
        assert!(card.verify(room, &[7; 32]));
        assert!(!card.verify(RoomId([2; 16]), &[7; 32]), "another room");
        assert!(!card.verify(room, &[8; 32]), "another connection");
        let mut renamed = card.clone();
        renamed.name = "Ben".into();
        assert!(!renamed.verify(room, &[7; 32]), "another name");
        let mut swapped = card.clone();
        swapped.identity.agreement = identity(9).public().agreement;
        assert!(
            !swapped.verify(room, &[7; 32]),
            "another agreement key: the DM attack"
        );
        let mut stolen = card;
        stolen.identity.signing = identity(2).public().signing;
        assert!(!stolen.verify(room, &[7; 32]), "someone else's signing key");
    }

    #[test]
    fn sealed_cards_open_only_with_the_room_key_for_their_member() {
        let key = RoomKey::from_bytes([3; 32]);
        let ana = identity(1);
        let member =
            PresenceCard::seal(&ana, &key, [7; 32], "  Ana  María ", [5; NONCE_BYTES]).unwrap();
        assert_eq!(member.sender, ana.sender());
        let card = PresenceCard::open(&key, &member).unwrap();
        assert_eq!(card.name, "Ana María", "shown cleaned");
        assert_eq!(card.identity, ana.public());
        // Another room's key does not open it.
        assert!(PresenceCard::open(&RoomKey::from_bytes([4; 32]), &member).is_none());
        // Ben cannot present Ana's sealed card as his own.
        let mut moved = member.clone();
        moved.sender = identity(2).sender();
        assert!(PresenceCard::open(&key, &moved).is_none());
        // A room member cannot make a card naming Ana's keys: it is not signed by her.
        let ben = identity(2);
        let mut forged = PresenceCard::sign(&ben, key.room_id(), &[7; 32], "Ana");
        forged.identity = ana.public();
        let sealed = Member {
            sender: ana.sender(),
            challenge: [7; 32],
            card: key.encrypt(
                [6; NONCE_BYTES],
                &sealed_context(key.room_id(), ana.sender(), &[7; 32]),
                &forged.encode().unwrap(),
            ),
        };
        assert!(PresenceCard::open(&key, &sealed).is_none());
        // Ana's card replayed on another connection: the challenge it was signed for is not
        // that connection's, and a room member re-sealing it for the new one cannot re-sign it.
        let mut replayed = member.clone();
        replayed.challenge = [8; 32];
        assert!(PresenceCard::open(&key, &replayed).is_none());
        let captured = PresenceCard::sign(&ana, key.room_id(), &[7; 32], "Ana");
        let resealed = Member {
            sender: ana.sender(),
            challenge: [8; 32],
            card: key.encrypt(
                [6; NONCE_BYTES],
                &sealed_context(key.room_id(), ana.sender(), &[8; 32]),
                &captured.encode().unwrap(),
            ),
        };
        assert!(PresenceCard::open(&key, &resealed).is_none());
        // Flipped bits anywhere never open.
        for i in 0..member.card.len() {
            let mut bad = member.clone();
            bad.card[i] ^= 1;
            assert!(PresenceCard::open(&key, &bad).is_none(), "byte {i}");
        }
    }

    #[test]
    fn a_card_with_an_unusable_name_is_not_shown() {
        let key = RoomKey::from_bytes([3; 32]);
        let member =
            PresenceCard::seal(&identity(1), &key, [7; 32], " \u{7} ", [5; NONCE_BYTES]).unwrap();
        assert!(PresenceCard::open(&key, &member).is_none());
    }
}
