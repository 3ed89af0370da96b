//! Text cut to a size, and durations and times read from text: a shared
//! leaf for every adapter that bounds what it sends or keeps (Docker's free
//! texts, a chat's message), so that none borrows it from another; the characters
//! that hide in text, which a log line and a chat message drop alike; and
//! the two small hands the answers of `status` and `history` are written
//! with: a JSON string, and an order.

mod duration;
mod time;

pub(crate) use duration::{Units, parse_duration};
pub(crate) use time::parse_rfc3339;

/// `text` cut to at most `max` bytes without splitting a UTF-8 character.
pub(crate) fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    // `floor_char_boundary` gives the largest boundary not above `max`, and
    // the length for a `max` past the end: the whole text.
    &text[..text.floor_char_boundary(max)]
}

/// The format characters that change how text reads without showing
/// themselves: the zero-width ones, the bidi marks, embeddings, overrides
/// and isolates (Unicode's `Bidi_Control`), the word joiner and its kin,
/// the byte order mark; the tag characters (which spell hidden ASCII
/// behind an emoji), the soft hyphen and the combining grapheme joiner;
/// the Hangul fillers, which show as blank space a name can hide behind;
/// and the variation selectors. One list for a log line and a chat
/// message: a character the chat drops must not have hidden a secret's
/// key from the log tail's redaction.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Appends `text` as a JSON string, quoted and escaped (RFC 8259): the
/// answers of `status` and `history` are written by hand, which costs the
/// binary far less than a serializer for each of their shapes.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The order of `n` items that `cmp` compares by index, ties kept in the
/// order given: one sort in the binary for every list ordered here (each
/// `sort_by` of another item type is another 4 KB of it).
pub(crate) fn order(n: usize, cmp: &dyn Fn(usize, usize) -> std::cmp::Ordering) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    indices.sort_unstable_by(|a, b| cmp(*a, *b).then(a.cmp(b)));
    indices
}

/// `items` in the order of `indices` (a permutation of them).
pub(crate) fn reordered<T>(items: Vec<T>, indices: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    indices.iter().filter_map(|&i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::MAX_TEXT_BYTES;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        // (text, limit, kept)
        let table: &[(&str, usize, &str)] = &[
            ("", 4, ""),
            ("abc", 4, "abc"),
            ("abcd", 4, "abcd"),
            ("abcde", 4, "abcd"),
            ("é", 1, ""),
            ("aé", 2, "a"),
            ("aé", 3, "aé"),
            ("€uro", 1, ""),
            ("€uro", 2, ""),
            ("€uro", 3, "€"),
            ("a😀", 4, "a"),
            ("a😀", 5, "a😀"),
            ("😀😀", 7, "😀"),
        ];
        for (text, max, kept) in table {
            assert_eq!(cut_at_char_boundary(text, *max), *kept, "{text:?} at {max}");
        }
        let long = "ü".repeat(400);
        let cut = cut_at_char_boundary(&long, MAX_TEXT_BYTES);
        assert_eq!(cut.len(), MAX_TEXT_BYTES);
        let odd = format!("a{long}");
        assert_eq!(
            cut_at_char_boundary(&odd, MAX_TEXT_BYTES).len(),
            MAX_TEXT_BYTES - 1
        );
    }

    #[test]
    fn json_strings_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "q\"b\\s",
            "\n\r\t\u{0}\u{1f}\u{7f}",
            "é😀\u{2028}",
            "</script>",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn an_order_is_stable_and_whole() {
        let items = [3, 1, 2, 1, 3, 0];
        let idx = order(items.len(), &|a, b| items[a].cmp(&items[b]));
        assert_eq!(idx, [5, 1, 3, 2, 0, 4]);
        assert_eq!(reordered(items.to_vec(), &idx), [0, 1, 1, 2, 3, 3]);
    }
}
