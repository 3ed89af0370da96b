//! A log line made printable: bytes that are not UTF-8 replaced (`�`),
//! terminal escapes (colours, cursor moves, titles) and control characters
//! removed, a tab made a space, and what a carriage return overwrote on a
//! terminal (a progress bar's earlier states) left out. Invisible Unicode
//! formatting (zero-width characters, direction overrides) goes too: it
//! could hide a word from the redaction that follows, or turn a chat
//! message around.

use crate::text::is_invisible;

/// `bytes` as one printable line.
pub(super) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    // A terminal shows what follows the last carriage return of a line (a
    // TTY's `\r\n` ends in one: that one is no overwrite).
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let text = match text.rfind('\r') {
        Some(at) if !text[at + 1..].trim().is_empty() => &text[at + 1..],
        _ => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1's CSI and OSC introducers start sequences as ESC [ and ESC ] do.
            '\u{9b}' => skip_until_final(&mut chars),
            '\u{9d}' => skip_string(&mut chars),
            '\t' => out.push(' '),
            '\\' => match json_escaped_word_char(&mut chars) {
                Some(c) => out.push(c),
                None => out.push('\\'),
            },
            c if c.is_control() || is_invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// After a backslash: a JSON `\uXXXX` that writes a letter, a digit, `_`
/// or `-` (taken from `chars`), which is how a key such as
/// `pass\u0077ord` would hide from the redaction; `None` leaves `chars`
/// as it was.
fn json_escaped_word_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let mut ahead = chars.clone();
    if ahead.next()? != 'u' {
        return None;
    }
    let hex: String = ahead.by_ref().take(4).collect();
    let code = (hex.len() == 4).then(|| u32::from_str_radix(&hex, 16).ok())??;
    let c = char::from_u32(code).filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))?;
    *chars = ahead;
    Some(c)
}

/// Skips the rest of an escape sequence whose ESC was just read: CSI
/// (`ESC [` … a final byte in `@`–`~`), OSC and the other strings (`ESC ]`,
/// `ESC P`, `ESC X`, `ESC ^`, `ESC _` … BEL or `ESC \`), or a two-character
/// escape.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_until_final(chars),
        Some(']' | 'P' | 'X' | '^' | '_') => skip_string(chars),
        // ESC ( B and the other character-set choices take one more.
        Some('(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' | '%') => {
            chars.next();
        }
        _ => {}
    }
}

/// A CSI's parameters and intermediates, through its final byte.
fn skip_until_final(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            return;
        }
        // A CSI holds only parameter and intermediate bytes before its end:
        // anything else ends a broken one, and is dropped with it.
        if !(' '..='?').contains(&c) {
            return;
        }
    }
}

/// An OSC or other string, through BEL or ST (`ESC \`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_control_characters_are_removed() {
        // (bytes, printable)
        let table: &[(&[u8], &str)] = &[
            (b"plain", "plain"),
            (b"\x1b[31mred\x1b[0m", "red"),
            (b"\x1b[1;38;5;196mbold\x1b[m!", "bold!"),
            (b"\x1b]0;title\x07after", "after"),
            (b"\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\", "link"),
            (b"\x1b(Bcharset", "charset"),
            (b"\x1b7saved\x1b8", "saved"),
            (b"a\x00b\x07c\x08d\x7fe", "abcde"),
            (b"tab\there", "tab here"),
            (b"line\r", "line"),
            (b"10%\r50%\r100%", "100%"),
            (b"kept\r  ", "kept  "),
            (b"\xff\xfebad", "\u{fffd}\u{fffd}bad"),
            (b"\xc3(", "\u{fffd}("),
            ("pass\u{200b}word".as_bytes(), "password"),
            ("\u{202e}txet".as_bytes(), "txet"),
            ("c1 \u{9b}31mcsi".as_bytes(), "c1 csi"),
            ("\u{85}next".as_bytes(), "next"),
            (b"\x1b[", ""),
            (b"\x1b", ""),
            (b"broken \x1b[12\nrest", "broken rest"),
            ("é ü 😀".as_bytes(), "é ü 😀"),
        ];
        for (bytes, want) in table {
            assert_eq!(printable(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn nothing_printable_is_left_of_any_byte_sequence() {
        // Every pair of bytes, and each with an escape before it.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for input in [[a, b, b'x'], [0x1b, a, b]] {
                    let out = printable(&input);
                    assert!(
                        !out.chars().any(|c| c.is_control() || is_invisible(c)),
                        "{input:?} gave {out:?}"
                    );
                }
            }
        }
    }
}
