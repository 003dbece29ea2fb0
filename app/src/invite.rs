//! Invite links: `https://<server>/#room=<name>&key=<hex>`. Everything after `#` stays in the
//! browser (it is never sent to a server), so the room key travels only person to person.

/// What an invite link carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// The room's name, for people.
    pub room: String,
    /// The room key in hex (64 characters), when the link carries one.
    pub key: Option<String>,
}

fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let hex = [input.next()?, input.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok()
}

/// The fragment (after `#`) of an invite to `room` with the hex `key`.
pub fn fragment(room: &str, key_hex: &str) -> String {
    format!("room={}&key={key_hex}", encode(room))
}

/// Reads an invite from a URL fragment (with or without the `#`).
pub fn parse(fragment: &str) -> Option<Invite> {
    let mut room = None;
    let mut key = None;
    for part in fragment.trim_start_matches('#').split('&') {
        if let Some(value) = part.strip_prefix("room=") {
            room = decode(value);
        } else if let Some(value) = part.strip_prefix("key=") {
            key = Some(value.to_ascii_lowercase())
                .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    let room = room.filter(|room| !room.trim().is_empty())?;
    Some(Invite { room, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invites_carry_the_room_and_key_and_back() {
        let key = "ab".repeat(32);
        let fragment = fragment("Camp Nörth & co", &key);
        assert_eq!(
            fragment,
            format!("room=Camp%20N%C3%B6rth%20%26%20co&key={key}")
        );
        assert_eq!(
            parse(&format!("#{fragment}")),
            Some(Invite {
                room: "Camp Nörth & co".into(),
                key: Some(key)
            })
        );
        assert_eq!(
            parse("#room=Camp&key=nothex"),
            Some(Invite {
                room: "Camp".into(),
                key: None
            })
        );
        assert_eq!(parse("#other=1"), None);
        assert_eq!(parse("#room=%zz"), None);
        assert_eq!(parse("#room=%E"), None);
    }
}
