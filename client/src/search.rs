//! Searching the messages on this device: which match a query, and the part of each to show,
//! with the matches marked. Every word of the query must appear, in any order; case and
//! accents do not matter ("cafe" finds "Café").

use std::ops::Range;

use mesh::body::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Most words a query keeps.
pub const MAX_WORDS: usize = 8;
/// Longest word a query keeps, in characters.
pub const MAX_WORD_CHARS: usize = 64;

/// A search query: its words, folded (lower case, no accents).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    words: Vec<String>,
}

impl Query {
    /// The query for what was typed; `None` when it has no words.
    pub fn new(typed: &str) -> Option<Self> {
        let mut words: Vec<String> = Vec::new();
        for word in typed.split_whitespace() {
            let word: String = word.chars().take(MAX_WORD_CHARS).collect();
            let folded = fold(&word).0;
            if !folded.is_empty() && !words.contains(&folded) {
                words.push(folded);
            }
            if words.len() == MAX_WORDS {
                break;
            }
        }
        (!words.is_empty()).then_some(Self { words })
    }

    /// Whether `text` holds every word.
    pub fn matches(&self, text: &str) -> bool {
        let folded = fold(text).0;
        self.words.iter().all(|word| folded.contains(word.as_str()))
    }

    /// Where the words occur in `text`, as byte ranges of `text`, in order and merged.
    pub fn ranges(&self, text: &str) -> Vec<Range<usize>> {
        let (folded, origin) = fold(text);
        let mut ranges: Vec<Range<usize>> = Vec::new();
        for word in &self.words {
            for (at, _) in folded.match_indices(word.as_str()) {
                let start = origin[at];
                let end = origin[at + word.len()];
                // A folded match inside one character (a ligature) marks all of it.
                let end = if end > start {
                    end
                } else {
                    next_boundary(text, start)
                };
                ranges.push(start..end);
            }
        }
        ranges.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<usize>> = Vec::new();
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }

    /// The part of `text` to show: from up to `radius` characters before the first match to
    /// `2 × radius` after it (with "…" where text was left out), as pieces marked `true` where
    /// they match.
    pub fn excerpt(&self, text: &str, radius: usize) -> Vec<(String, bool)> {
        let ranges = self.ranges(text);
        let first = ranges.first().map_or(0, |r| r.start);
        let before: Vec<usize> = text[..first].char_indices().map(|(at, _)| at).collect();
        let start = before
            .len()
            .checked_sub(radius)
            .map_or(0, |n| before.get(n).copied().unwrap_or(first));
        let end = text[first..]
            .char_indices()
            .nth(3 * radius)
            .map_or(text.len(), |(at, _)| first + at);
        let mut pieces = Vec::new();
        let mut at = start;
        if start > 0 {
            pieces.push(("…".to_string(), false));
        }
        for range in ranges.iter().filter(|r| r.end > start && r.start < end) {
            let (from, to) = (range.start.max(start), range.end.min(end));
            if from > at {
                pieces.push((text[at..from].to_string(), false));
            }
            pieces.push((text[from..to].to_string(), true));
            at = to;
        }
        if end > at {
            pieces.push((text[at..end].to_string(), false));
        }
        if end < text.len() {
            pieces.push(("…".to_string(), false));
        }
        pieces
    }
}

/// `text` folded for comparing (lower case, accents off), and for each byte of it the byte
/// of `text` its character came from (plus one past the end).
fn fold(text: &str) -> (String, Vec<usize>) {
    let mut folded = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len() + 1);
    for (at, c) in text.char_indices() {
        for base in std::iter::once(c).nfd().filter(|d| !is_combining_mark(*d)) {
            for lower in base.to_lowercase() {
                folded.push(lower);
                origin.extend(std::iter::repeat_n(at, lower.len_utf8()));
            }
        }
    }
    origin.push(text.len());
    (folded, origin)
}

fn next_boundary(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(query: &str, text: &str, radius: usize) -> String {
        Query::new(query)
            .unwrap()
            .excerpt(text, radius)
            .into_iter()
            .map(|(piece, hit)| if hit { format!("[{piece}]") } else { piece })
            .collect()
    }

    #[test]
    fn every_word_must_appear_in_any_order_case_and_accents_aside() {
        let query = Query::new("  WATER   school ").unwrap();
        assert!(query.matches("The school has clean water"));
        assert!(!query.matches("water at the well"));
        assert!(Query::new("cafe").unwrap().matches("Meet at the Café"));
        assert!(Query::new("ÉCOLE").unwrap().matches("l'école est ouverte"));
        assert!(Query::new("straße").unwrap().matches("STRAßE 5"));
        assert_eq!(Query::new(" \t "), None);
    }

    #[test]
    fn matches_are_marked_in_the_original_text() {
        assert_eq!(
            marked("cafe water", "Water at the Café, water!", 100),
            "[Water] at the [Café], [water]!"
        );
        // Overlapping words merge into one mark.
        assert_eq!(marked("wat ater", "water", 100), "[water]");
        // Right-to-left and other scripts are marked as typed.
        assert_eq!(marked("ماء", "لدينا ماء نظيف", 100), "لدينا [ماء] نظيف");
    }

    #[test]
    fn a_long_message_shows_the_part_around_the_first_match() {
        let text = format!("{} the well is dry {}", "a".repeat(300), "b".repeat(300));
        let shown = marked("well", &text, 10);
        assert_eq!(
            shown,
            format!("…{} the [well] is dry {}…", "a".repeat(5), "b".repeat(18))
        );
        assert!(shown.chars().count() < 50);
        // At the start, nothing is left out before.
        assert_eq!(marked("the", "the well", 10), "[the] well");
    }

    #[test]
    fn queries_are_bounded() {
        let long = "x".repeat(1_000);
        let many = (0..50)
            .map(|n| format!("w{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Query::new(&long).unwrap().words[0].len(), MAX_WORD_CHARS);
        assert_eq!(Query::new(&many).unwrap().words.len(), MAX_WORDS);
    }
}
