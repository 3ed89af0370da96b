//! Text cut to a size: a shared leaf for every adapter that bounds what it
//! sends or keeps (Docker's free texts, a chat's message), so that none
//! borrows it from another.

/// `text` cut to at most `max` bytes without splitting a UTF-8 character.
pub(crate) fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    // `floor_char_boundary` gives the largest boundary not above `max`, and
    // the length for a `max` past the end: the whole text.
    &text[..text.floor_char_boundary(max)]
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
}
