//! Presence cards: what a room member shows the others. Defined, signed, sealed and opened
//! here, for the page (which makes and reads them) and the tests (the server only relays
//! the sealed bytes, size-checked).
//!
//! A card holds the member's display name and public keys, signed by their own signing key
//! for one room, so nobody can attach another agreement key (and so read their private
//! messages) or another name to their identity. It travels sealed with the room key, bound to
//! the room and the member, so the server sees only ciphertext.

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
const CARD_DOMAIN: &[u8] = b"fieldmesh/presence-card/v1\0";

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

fn signed_bytes(room: RoomId, identity: &PublicIdentity, name: &str) -> Vec<u8> {
    let mut bytes = CARD_DOMAIN.to_vec();
    bytes.extend_from_slice(&room.0);
    bytes.extend_from_slice(&identity.signing);
    bytes.extend_from_slice(&identity.agreement);
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// Associated data binding a sealed card to its room and member.
fn sealed_context(room: RoomId, sender: SenderId) -> Vec<u8> {
    let mut context = room.0.to_vec();
    context.extend_from_slice(&sender.0);
    context
}

impl PresenceCard {
    /// `identity`'s card for `room` under `name`, signed by it.
    pub fn sign(identity: &Identity, room: RoomId, name: &str) -> Self {
        let public = identity.public();
        Self {
            name: name.to_string(),
            identity: public,
            signature: identity.sign(&signed_bytes(room, &public, name)),
        }
    }

    /// Whether the card was signed for `room` by the signing key it names.
    pub fn verify(&self, room: RoomId) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.identity.signing) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&signed_bytes(room, &self.identity, &self.name), &signature)
            .is_ok()
    }

    /// Encodes the card for sealing.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(CARD_VERSION, self, MAX_BODY_BYTES)
    }

    /// Decodes an opened card.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned(CARD_VERSION, bytes, MAX_BODY_BYTES)
    }

    /// Signs and seals `identity`'s card for the room of `key`: the [`Member`] a join carries.
    /// `nonce` is 24 fresh random bytes.
    pub fn seal(
        identity: &Identity,
        key: &RoomKey,
        name: &str,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<Member, EncodeError> {
        let room = key.room_id();
        let sender = identity.sender();
        let card = Self::sign(identity, room, name).encode()?;
        Ok(Member {
            sender,
            card: key.encrypt(nonce, &sealed_context(room, sender), &card),
        })
    }

    /// Opens a member's sealed card with the room key. `None` when it is not sealed with this
    /// key for this member, is not signed by the keys it names, or its name is unusable: such
    /// a member is shown as unknown, never under a name.
    pub fn open(key: &RoomKey, member: &Member) -> Option<Self> {
        let room = key.room_id();
        let plaintext = key
            .decrypt(&sealed_context(room, member.sender), &member.card)
            .ok()?;
        let card = Self::decode(&plaintext).ok()?;
        if card.identity.sender() != member.sender || !card.verify(room) {
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
        let card = PresenceCard::sign(&ana, room, "Ana");
        assert!(card.verify(room));
        assert!(!card.verify(RoomId([2; 16])), "another room");
        let mut renamed = card.clone();
        renamed.name = "Ben".into();
        assert!(!renamed.verify(room), "another name");
        let mut swapped = card.clone();
        swapped.identity.agreement = identity(9).public().agreement;
        assert!(
            !swapped.verify(room),
            "another agreement key: the DM attack"
        );
        let mut stolen = card;
        stolen.identity.signing = identity(2).public().signing;
        assert!(!stolen.verify(room), "someone else's signing key");
    }

    #[test]
    fn sealed_cards_open_only_with_the_room_key_for_their_member() {
        let key = RoomKey::from_bytes([3; 32]);
        let ana = identity(1);
        let member = PresenceCard::seal(&ana, &key, "  Ana  María ", [5; NONCE_BYTES]).unwrap();
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
        let mut forged = PresenceCard::sign(&ben, key.room_id(), "Ana");
        forged.identity = ana.public();
        let sealed = Member {
            sender: ana.sender(),
            card: key.encrypt(
                [6; NONCE_BYTES],
                &sealed_context(key.room_id(), ana.sender()),
                &forged.encode().unwrap(),
            ),
        };
        assert!(PresenceCard::open(&key, &sealed).is_none());
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
        let member = PresenceCard::seal(&identity(1), &key, " \u{7} ", [5; NONCE_BYTES]).unwrap();
        assert!(PresenceCard::open(&key, &member).is_none());
    }
}
