//! Joining: which name and key a room typed into the join form opens.

use mesh::crypto::RoomKey;
use mesh::envelope::MAX_ROOM_NAME_CHARS;
pub use mesh::serial::meshtastic::{meshtastic_channel_of, MESHTASTIC_ROOM_PREFIX};

/// The public room for strangers: its key is published.
pub const EMERGENCY: &str = "Emergency";
/// The room a join opens.
pub struct RoomChoice {
    /// Its name as shown.
    pub name: String,
    /// Its key.
    pub key: RoomKey,
    /// Anyone can read it (its key is published).
    pub public: bool,
}

/// A room name as typed, cleaned: inner whitespace collapsed. `Err` with a sentence when it
/// is empty or too long.
pub fn clean_room_name(typed: &str) -> Result<String, String> {
    let name = typed.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_ROOM_NAME_CHARS {
        return Err(format!(
            "Choose a room name of 1 to {MAX_ROOM_NAME_CHARS} characters."
        ));
    }
    Ok(name)
}

/// Which key `name` opens: the public Emergency room's; the invite's (when the page was
/// opened with an invite to this room); a room of this name the device already has; or
/// `fresh` random bytes (a new private room).
pub fn choose_room(
    name: &str,
    invite_key: Option<[u8; 32]>,
    known: Option<([u8; 32], bool)>,
    fresh: [u8; 32],
) -> RoomChoice {
    if name.eq_ignore_ascii_case(EMERGENCY) {
        return RoomChoice {
            name: EMERGENCY.into(),
            key: RoomKey::emergency(),
            public: true,
        };
    }
    // A Meshtastic channel's room: its key comes from the channel's name, as at every camp.
    if let Some(channel) = meshtastic_channel_of(name) {
        return RoomChoice {
            name: format!("{MESHTASTIC_ROOM_PREFIX}{channel}"),
            key: RoomKey::meshtastic_channel(channel),
            public: true,
        };
    }
    let (key, public) = match (invite_key, known) {
        (Some(key), _) => (key, false),
        (None, Some((key, public))) => (key, public),
        (None, None) => (fresh, false),
    };
    RoomChoice {
        name: name.to_string(),
        key: RoomKey::from_bytes(key),
        public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meshtastic_channels_room_has_the_key_every_camp_derives_from_its_name() {
        let choice = choose_room(
            "meshtastic:  FieldMesh",
            None,
            Some(([9; 32], false)),
            [1; 32],
        );
        assert_eq!(choice.name, "Meshtastic: FieldMesh");
        assert!(choice.public);
        assert_eq!(
            choice.key.room_id(),
            RoomKey::meshtastic_channel("fieldmesh").room_id()
        );
        assert_eq!(meshtastic_channel_of("Meshtastic: "), None);
        assert_eq!(meshtastic_channel_of("Mesh"), None);
        assert_eq!(meshtastic_channel_of("Camp"), None);
        assert_eq!(
            mesh::serial::meshtastic::text_bytes("Ana", " On our way "),
            15
        );
    }

    #[test]
    fn emergency_in_any_case_is_the_public_room() {
        let room = choose_room("eMERGENCY", Some([1; 32]), None, [2; 32]);
        assert_eq!(room.name, "Emergency");
        assert!(room.public);
        assert_eq!(room.key.room_id(), RoomKey::emergency().room_id());
    }

    #[test]
    fn an_invite_wins_over_a_known_room_which_wins_over_a_new_key() {
        let invite = choose_room("Camp", Some([1; 32]), Some(([3; 32], false)), [2; 32]);
        assert_eq!(invite.key.as_bytes(), &[1; 32]);
        let known = choose_room("Camp", None, Some(([3; 32], false)), [2; 32]);
        assert_eq!(known.key.as_bytes(), &[3; 32]);
        let new = choose_room("Camp", None, None, [2; 32]);
        assert_eq!(new.key.as_bytes(), &[2; 32]);
        assert!(!new.public);
    }

    #[test]
    fn room_names_are_cleaned_and_bounded() {
        assert_eq!(clean_room_name("  Camp \t North ").unwrap(), "Camp North");
        assert!(clean_room_name("   ").is_err());
        assert!(clean_room_name(&"x".repeat(MAX_ROOM_NAME_CHARS + 1)).is_err());
    }
}
