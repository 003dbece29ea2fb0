//! Lowercase hex for ids and keys (how they appear in logs, links and the device's store).

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2N` hex digits (either case); `None` for anything else.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips_and_refuses_the_wrong_length_or_digits() {
        assert_eq!(super::encode(&[0xab, 0x01]), "ab01");
        assert_eq!(super::decode::<2>("AB01"), Some([0xab, 0x01]));
        assert_eq!(super::decode::<2>("ab0"), None);
        assert_eq!(super::decode::<2>("zz01"), None);
        assert_eq!(super::decode::<1>("é"), None);
    }
}
