//! Invite links: `https://<server>/#room=<name>&key=<hex>`. Everything after `#` stays in the
//! browser (it is never sent to a server), so the room key travels only person to person.

use mesh::hex::decode as unhex;

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

/// A whole invite link, as a terminal client takes it: where the server is, and the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The server's origin, `http(s)://host[:port]`, without a path.
    pub server: String,
    /// Whether the server speaks TLS.
    pub tls: bool,
    /// The room's name, for people.
    pub room: String,
    /// The room key.
    pub key: [u8; 32],
}

/// Reads a whole invite link (`https://host:port/#room=…&key=…`). `Err` with a sentence that
/// says what is wrong with it.
pub fn parse_link(link: &str) -> Result<Link, String> {
    let link = link.trim();
    let (address, fragment) = link
        .split_once('#')
        .ok_or("That is not an invite link: it has no room part (after #).")?;
    let (tls, rest) = if let Some(rest) = address.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = address.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("That is not an invite link: it must start with https:// or http://.".into());
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        return Err("That is not an invite link: the server's address is missing or odd.".into());
    }
    let invite = parse(fragment).ok_or("That invite link names no room.")?;
    let key = invite
        .key
        .as_deref()
        .and_then(unhex::<32>)
        .ok_or("That invite link carries no room key (64 hex digits after key=).")?;
    let scheme = if tls { "https" } else { "http" };
    Ok(Link {
        server: format!("{scheme}://{host}"),
        tls,
        room: invite.room,
        key,
    })
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

    #[test]
    fn whole_links_name_the_server_and_refuse_what_is_not_one() {
        let key = "cd".repeat(32);
        let link = parse_link(&format!(
            " https://10.0.0.2:8443/#room=Camp%20A&key={key}\n"
        ))
        .unwrap();
        assert_eq!(link.server, "https://10.0.0.2:8443");
        assert!(link.tls);
        assert_eq!(link.room, "Camp A");
        assert_eq!(link.key, [0xcd; 32]);
        let plain = parse_link(&format!("http://camp.local/#room=B&key={key}")).unwrap();
        assert_eq!(
            (plain.server.as_str(), plain.tls),
            ("http://camp.local", false)
        );
        for bad in [
            "https://10.0.0.2/".to_string(),
            format!("ftp://x/#room=A&key={key}"),
            format!("https:///#room=A&key={key}"),
            format!("https://a b/#room=A&key={key}"),
            "https://x/#room=A&key=12".to_string(),
            format!("https://x/#key={key}"),
        ] {
            assert!(parse_link(&bad).is_err(), "{bad}");
        }
    }
}
