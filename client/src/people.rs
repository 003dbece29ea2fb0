//! The people this device has seen, and how far to trust them: trust on first use, loudly
//! flagged when a known name turns up with other keys, and verified once two people compared
//! safety codes.

use mesh::body::name_key;
use mesh::crypto::PublicIdentity;
use mesh::hex::{decode as unhex, encode as hex};
use mesh::presence::PresenceCard;

/// Someone this device has seen in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Their sender id (public signing key), hex.
    pub id: String,
    /// Their X25519 public key, hex (for the private-conversation key).
    pub agreement: String,
    /// The name their signed card gave last.
    pub name: String,
    /// This device's person compared safety codes with them.
    pub verified: bool,
}

impl Contact {
    /// Their public keys.
    pub fn public(&self) -> Option<PublicIdentity> {
        Some(PublicIdentity {
            signing: unhex(&self.id)?,
            agreement: unhex(&self.agreement)?,
        })
    }
}

/// One member of a room, as the roster shows them after [`Contacts::observe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Their sender id, hex.
    pub id: String,
    /// Their name.
    pub name: String,
    /// Their safety code.
    pub code: String,
    /// Verified on this device.
    pub verified: bool,
    /// Someone else had this name before, and they are not verified: possibly an impostor.
    pub keys_changed: bool,
    /// A warning to show loudly, if any.
    pub warning: Option<String>,
}

/// Everyone this device has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    list: Vec<Contact>,
    changed: bool,
}

impl Contacts {
    /// Reads the stored form (one tab-separated line per contact); bad lines are skipped.
    pub fn parse(text: &str) -> Self {
        let list = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(4, '\t');
                let id = parts.next()?.to_string();
                let verified = parts.next()? == "1";
                let agreement = parts.next()?.to_string();
                let name = parts.next()?.to_string();
                (id.len() == 64).then_some(Contact {
                    id,
                    agreement,
                    name,
                    verified,
                })
            })
            .collect();
        Self {
            list,
            changed: false,
        }
    }

    /// The stored form.
    pub fn to_text(&self) -> String {
        self.list
            .iter()
            .map(|c| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    c.id,
                    u8::from(c.verified),
                    c.agreement,
                    c.name
                )
            })
            .collect()
    }

    /// Whether contacts changed since the last call (then they need saving), and resets it.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Everyone, in the order they were first seen.
    pub fn list(&self) -> &[Contact] {
        &self.list
    }

    /// The contact with sender id `id` (hex).
    pub fn get(&self, id: &str) -> Option<&Contact> {
        self.list.iter().find(|c| c.id == id)
    }

    /// A member's opened card: remembers them (trust on first use) and says how to show them.
    /// `you` is this device's own card.
    pub fn observe(&mut self, card: &PresenceCard, you: bool) -> Seen {
        let id = hex(&card.identity.signing);
        let agreement = hex(&card.identity.agreement);
        // A name seen before with other keys may be someone else using that name, or one a
        // reader would take for it (look-alike letters, hidden characters, accents).
        let key = name_key(&card.name);
        let name_taken = !you
            && self
                .list
                .iter()
                .any(|c| c.id != id && name_key(&c.name) == key);
        let mut warning = None;
        let verified = match self.list.iter_mut().find(|c| c.id == id) {
            Some(contact) => {
                if contact.agreement != agreement {
                    // Same signing key, new agreement key (a reinstall keeps neither, so this
                    // is odd): verify again before private messages.
                    contact.verified = false;
                    warning = Some(format!(
                        "⚠ {} shows a new key for private messages. Compare safety codes again \
                         before writing privately.",
                        card.name
                    ));
                }
                if contact.name != card.name || contact.agreement != agreement {
                    contact.name = card.name.clone();
                    contact.agreement = agreement;
                    self.changed = true;
                }
                contact.verified
            }
            None => {
                if !you {
                    self.list.push(Contact {
                        id: id.clone(),
                        agreement,
                        name: card.name.clone(),
                        verified: false,
                    });
                    self.changed = true;
                }
                false
            }
        };
        let keys_changed = name_taken && !verified;
        if keys_changed {
            warning = Some(format!(
                "⚠ {0} now has different keys than before. If {0} did not get a new phone or \
                 reinstall, someone may be pretending to be {0}: compare safety codes first.",
                card.name
            ));
        }
        Seen {
            id,
            name: card.name.clone(),
            code: card.identity.safety_code(),
            verified,
            keys_changed,
            warning,
        }
    }

    /// These contacts (as kept) with what `newer` (another holder of them, working since
    /// they were read) learned: its names and new people. A verified mark made here meanwhile
    /// stays; someone whose keys `newer` saw change takes `newer`'s record, unverified.
    pub fn merged(&self, newer: &Contacts) -> Contacts {
        let mut list: Vec<Contact> = self
            .list
            .iter()
            .map(|kept| match newer.get(&kept.id) {
                Some(seen) if seen.agreement != kept.agreement => seen.clone(),
                Some(seen) => Contact {
                    name: seen.name.clone(),
                    verified: kept.verified || seen.verified,
                    ..kept.clone()
                },
                None => kept.clone(),
            })
            .collect();
        list.extend(
            newer
                .list
                .iter()
                .filter(|c| self.get(&c.id).is_none())
                .cloned(),
        );
        Contacts {
            list,
            changed: false,
        }
    }

    /// The person compared codes with `id`: verified. `false` when unknown.
    pub fn verify(&mut self, id: &str) -> bool {
        match self.list.iter_mut().find(|c| c.id == id) {
            Some(contact) => {
                contact.verified = true;
                self.changed = true;
                true
            }
            None => false,
        }
    }

    /// The name to show on a message from `sender` (hex) whose writer typed `typed`. The name
    /// from their signed card when known, so nobody can post as someone else. Otherwise a
    /// `signed` message (its sender's key signed the name with the text) shows the typed name,
    /// unless someone else known goes by that name (or one a reader would take for it): then,
    /// like an unsigned radio message, it is marked unconfirmed.
    pub fn label(&self, typed: &str, sender: &str, signed: bool) -> String {
        let typed = typed.trim_end_matches(" (unconfirmed)");
        if let Some(contact) = self.get(sender) {
            return contact.name.clone();
        }
        let key = name_key(typed);
        let taken = self.list.iter().any(|c| name_key(&c.name) == key);
        if signed && !taken {
            typed.to_string()
        } else {
            format!("{typed} (unconfirmed)")
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh::crypto::Identity;
    use mesh::RoomId;

    use super::*;

    fn card(seed: u8, name: &str) -> PresenceCard {
        PresenceCard::sign(
            &Identity::from_seed(&[seed; 64]),
            RoomId([1; 16]),
            &[0; 32],
            name,
        )
    }

    #[test]
    fn first_sight_is_trusted_quietly_and_remembered() {
        let mut contacts = Contacts::default();
        let seen = contacts.observe(&card(1, "Ana"), false);
        assert!(!seen.verified && !seen.keys_changed && seen.warning.is_none());
        assert!(contacts.take_changed());
        let again = contacts.observe(&card(1, "Ana"), false);
        assert_eq!(again.warning, None);
        assert!(!contacts.take_changed(), "nothing new");
        assert_eq!(contacts.label("Whoever", &seen.id, true), "Ana");
        assert_eq!(
            contacts.label("Ben", &"00".repeat(32), false),
            "Ben (unconfirmed)"
        );
        assert_eq!(
            contacts.label("Ben (unconfirmed)", &"00".repeat(32), false),
            "Ben (unconfirmed)",
            "labelled once"
        );
        // A signed message from someone not seen yet (they left before this device came):
        // their name, unless it is a known person's.
        assert_eq!(contacts.label("Ben", &"00".repeat(32), true), "Ben");
        assert_eq!(
            contacts.label("ana", &"00".repeat(32), true),
            "ana (unconfirmed)",
            "Ana is someone else"
        );
    }

    #[test]
    fn a_known_name_with_other_keys_is_flagged_until_verified() {
        let mut contacts = Contacts::default();
        contacts.observe(&card(1, "Ana"), false);
        let impostor = contacts.observe(&card(2, "ana"), false);
        assert!(impostor.keys_changed);
        assert!(impostor.warning.unwrap().contains("pretending"));
        assert!(contacts.verify(&impostor.id));
        let verified = contacts.observe(&card(2, "ana"), false);
        assert!(verified.verified && !verified.keys_changed && verified.warning.is_none());
        assert!(
            !contacts.verify(&"11".repeat(32)),
            "unknown people cannot be verified"
        );
    }

    #[test]
    fn a_look_alike_name_with_other_keys_is_flagged_too() {
        for lookalike in [
            "\u{0410}na",
            "Ana\u{200B}",
            "\u{202E}Ana",
            "Ana\u{0301}",
            "ＡＮＡ",
        ] {
            let mut contacts = Contacts::default();
            contacts.observe(&card(1, "Ana"), false);
            let seen = contacts.observe(&card(2, lookalike), false);
            assert!(seen.keys_changed, "{lookalike:?} passed as a new name");
        }
    }

    #[test]
    fn a_new_agreement_key_undoes_verification() {
        let mut contacts = Contacts::default();
        let ana = contacts.observe(&card(1, "Ana"), false);
        contacts.verify(&ana.id);
        let mut changed = card(1, "Ana");
        changed.identity.agreement = card(3, "x").identity.agreement;
        let seen = contacts.observe(&changed, false);
        assert!(!seen.verified);
        assert!(seen
            .warning
            .unwrap()
            .contains("new key for private messages"));
    }

    #[test]
    fn this_device_is_never_its_own_contact_and_contacts_survive_storage() {
        let mut contacts = Contacts::default();
        contacts.observe(&card(5, "Me"), true);
        assert_eq!(contacts.to_text(), "");
        let ana = contacts.observe(&card(1, "Ana\tTab"), false);
        contacts.verify(&ana.id);
        let text = contacts.to_text() + "garbage line\n";
        let back = Contacts::parse(&text);
        assert_eq!(back.get(&ana.id), contacts.get(&ana.id));
        assert!(back.get(&ana.id).unwrap().verified);
        assert_eq!(
            back.get(&ana.id).unwrap().public(),
            Some(card(1, "x").identity)
        );
    }

    #[test]
    fn a_merge_keeps_marks_made_meanwhile_and_takes_new_keys_unverified() {
        let line = |id: char, verified: bool, agreement: char, name: &str| {
            format!(
                "{}\t{}\t{}\t{name}\n",
                id.to_string().repeat(64),
                u8::from(verified),
                agreement.to_string().repeat(64)
            )
        };
        let kept = Contacts::parse(&(line('a', true, '1', "Ana") + &line('b', true, '2', "Bo")));
        let newer = Contacts::parse(
            &(line('a', false, '1', "Ana M")
                + &line('b', false, '9', "Bo")
                + &line('c', false, '3', "Cy")),
        );
        let merged = kept.merged(&newer);
        let a = merged.get(&"a".repeat(64)).unwrap();
        assert!(a.verified, "a mark made meanwhile stays");
        assert_eq!(a.name, "Ana M");
        assert!(
            !merged.get(&"b".repeat(64)).unwrap().verified,
            "new keys: verify again"
        );
        assert_eq!(merged.list().len(), 3);
    }
}
