//! How a message's text is shown: web addresses as links (http and https only), the rest as
//! plain text, never as markup.

/// A piece of a message's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Shown as it is.
    Text(String),
    /// An `http://` or `https://` address, shown as a link to itself.
    Link(String),
}

/// Punctuation that ends a sentence rather than an address ("see https://x.org/a.").
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', '"', ')', ']', '}', '>'];

/// Splits `text` into plain pieces and web addresses. Only `http://` and `https://` become
/// links (no `javascript:`, `data:` or other schemes); trailing sentence punctuation stays
/// text, and a closing bracket stays in the address only when it opened there.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = find_scheme(rest) {
        let (before, from) = rest.split_at(start);
        plain.push_str(before);
        let end = from.find(char::is_whitespace).unwrap_or(from.len());
        let mut link = &from[..end];
        while let Some(last) = link.chars().last() {
            let balanced = match last {
                ')' => link.matches('(').count() >= link.matches(')').count(),
                ']' => link.matches('[').count() >= link.matches(']').count(),
                _ => false,
            };
            if TRAILING.contains(&last) && !balanced {
                link = &link[..link.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        let bare = ["https://", "http://"]
            .iter()
            .any(|scheme| link.len() <= scheme.len() && scheme.eq_ignore_ascii_case(link));
        if bare || link.len() <= "http://".len() {
            plain.push_str(link);
        } else {
            if !plain.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut plain)));
            }
            out.push(Piece::Link(link.to_string()));
        }
        rest = &from[link.len()..];
    }
    plain.push_str(rest);
    if !plain.is_empty() {
        out.push(Piece::Text(plain));
    }
    out
}

/// Where the next `http://` or `https://` starts (any case), at the start of a word.
fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let at = from + found;
        let after = &lower[at..];
        let starts_word = text[..at]
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric());
        if starts_word && (after.starts_with("http://") || after.starts_with("https://")) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// Whether a message is long enough to be folded behind "Show more" (it would fill a phone's
/// screen).
pub fn is_long(text: &str) -> bool {
    text.chars().count() > 600 || text.lines().count() > 12
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(s: &str) -> Piece {
        Piece::Link(s.into())
    }
    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }

    #[test]
    fn web_addresses_become_links_and_the_rest_stays_text() {
        assert_eq!(
            pieces("map at https://camp.local/map?x=1 now"),
            [
                text("map at "),
                link("https://camp.local/map?x=1"),
                text(" now")
            ]
        );
        assert_eq!(pieces("HTTP://A.B"), [link("HTTP://A.B")]);
        assert_eq!(pieces("no links here"), [text("no links here")]);
        assert_eq!(pieces(""), Vec::<Piece>::new());
    }

    #[test]
    fn only_http_and_https_are_links() {
        for hostile in [
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "file:///etc/passwd",
            "xhttps://evil.example",
            "https://",
            "http:/x",
        ] {
            assert_eq!(pieces(hostile), [text(hostile)], "{hostile}");
        }
    }

    #[test]
    fn sentence_punctuation_stays_outside_and_brackets_balance() {
        assert_eq!(
            pieces("see https://a.org/x."),
            [text("see "), link("https://a.org/x"), text(".")]
        );
        assert_eq!(
            pieces("(https://a.org/x)"),
            [text("("), link("https://a.org/x"), text(")")]
        );
        assert_eq!(
            pieces("https://en.wikipedia.org/wiki/Ford_(car)"),
            [link("https://en.wikipedia.org/wiki/Ford_(car)")]
        );
        assert_eq!(
            pieces("two: http://a.b, https://c.d!"),
            [
                text("two: "),
                link("http://a.b"),
                text(", "),
                link("https://c.d"),
                text("!")
            ]
        );
    }

    #[test]
    fn long_messages_fold() {
        assert!(!is_long("short"));
        assert!(is_long(&"x".repeat(601)));
        assert!(is_long(&"line\n".repeat(13)));
    }
}
