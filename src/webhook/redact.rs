//! Token masking: the webhook's URL carries its token, and a receiver's
//! answer often echoes the request. [`Redactor`] is built from the URL by
//! the sink and masks, in any text the URL's server wrote (an error body, a
//! connection error), every word that holds a piece of the URL's path, query,
//! userinfo or fragment, as written or however it is escaped.

use std::collections::BTreeSet;

/// Masks the pieces of one URL that may be its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redactor {
    /// Every four bytes in a row of a part that may be the token, folded.
    hidden: BTreeSet<[u8; 4]>,
}

impl Redactor {
    /// The redactor for `url`, an absolute URL (as [`crate::config::WebhookUrl`]
    /// has checked it is): everything but its scheme and host may be the token.
    pub(crate) fn for_url(url: &str) -> Redactor {
        let Ok(uri) = url.parse::<ureq::http::Uri>() else {
            // Not a URL after all: hide every part of it that could be one.
            return Redactor::of_parts(url.split(['/', '?', '&', '=', ';', '@', ':', '#']));
        };
        let authority = uri.authority().map_or("", |a| a.as_str());
        // Whatever is not the scheme and host may be the token: the path and
        // query whole and each of their parts, the userinfo whole and each
        // half, as written and decoded.
        let mut parts: Vec<&str> = Vec::new();
        if let Some(pq) = uri.path_and_query().map(|p| p.as_str()) {
            parts.push(pq);
            parts.extend(pq.split(['/', '?', '&', '=', ';']));
        }
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            parts.push(userinfo);
            parts.extend(userinfo.split(':'));
        }
        if let Some((_, fragment)) = url.split_once('#') {
            parts.push(fragment);
        }
        Redactor::of_parts(parts)
    }

    /// The redactor hiding each of `parts`, as written and decoded.
    fn of_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut hidden = BTreeSet::new();
        for part in parts {
            for view in views(&units(part)) {
                let folded: Vec<u8> = view.iter().map(|u| fold(u.byte)).collect();
                for w in folded.windows(GRAM) {
                    hidden.insert([w[0], w[1], w[2], w[3]]);
                }
            }
        }
        Redactor { hidden }
    }

    /// `text` with every word that holds four bytes in a row (characters,
    /// in ASCII) of a part of the URL that may be the token replaced by `…`:
    /// for text the URL's server wrote, such as an error body.
    ///
    /// The text is searched as written and decoded up to three
    /// times (percent-encoding in either case, JSON and C escapes, HTML
    /// character references), case and `+`/space folded, so an echo of the
    /// token in any of these forms, or a cut piece of it four characters long,
    /// is found; the whole word around it goes, so that no piece of it is
    /// left beside the mark. Three characters of a token may be left: an
    /// excerpt cannot tell them from ordinary text.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.hidden.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let mut masked = vec![false; bytes.len()];
        for view in views(&units(text)) {
            for w in view.windows(GRAM) {
                let gram = [
                    fold(w[0].byte),
                    fold(w[1].byte),
                    fold(w[2].byte),
                    fold(w[3].byte),
                ];
                if self.hidden.contains(&gram) {
                    masked[w[0].from..w[GRAM - 1].to].fill(true);
                }
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        while let Some(start) = masked[at..].iter().position(|m| *m).map(|p| p + at) {
            let mut end = start + masked[start..].iter().take_while(|m| **m).count();
            let mut start = start;
            while start > at && is_word(bytes[start - 1]) {
                start -= 1;
            }
            while end < bytes.len() && (masked[end] || is_word(bytes[end])) {
                end += 1;
            }
            // A decoded byte of a multi-byte character may start or end a match.
            start = text.floor_char_boundary(start);
            end = text.ceil_char_boundary(end);
            out.push_str(&text[at..start]);
            out.push('…');
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// How many characters in a row of a part of the URL [`Redactor::redact`]
/// takes for a piece of the token: shorter parts are not taken for one, and a
/// token cut shorter is not found.
const GRAM: usize = 4;

/// How many times [`Redactor::redact`] decodes a text: enough for a token
/// percent-encoded twice, then put in a JSON string.
const DECODE_ROUNDS: usize = 3;

/// One byte of a text, as written or decoded, and the bytes of the text it
/// stands for.
#[derive(Debug, Clone, Copy)]
struct Unit {
    byte: u8,
    from: usize,
    to: usize,
}

/// The bytes of `text`, each for itself.
fn units(text: &str) -> Vec<Unit> {
    text.bytes()
        .enumerate()
        .map(|(i, byte)| Unit {
            byte,
            from: i,
            to: i + 1,
        })
        .collect()
}

/// `text` as written, then decoded again and again while decoding changes it.
fn views(text: &[Unit]) -> Vec<Vec<Unit>> {
    let mut views = Vec::new();
    let mut view = text.to_vec();
    for _ in 0..DECODE_ROUNDS {
        let next = decode(&view);
        if next.len() == view.len() {
            break;
        }
        views.push(std::mem::replace(&mut view, next));
    }
    views.push(view);
    views
}

/// One round of decoding: `%XX`, `\xXX` (bytes), `\uXXXX`, `&#N;`, `&#xN;`
/// and the few named references of HTML that a URL can need (characters),
/// and a backslash before punctuation. Each decoded byte stands for all the
/// bytes of its escape.
fn decode(text: &[Unit]) -> Vec<Unit> {
    let bytes: Vec<u8> = text.iter().map(|u| u.byte).collect();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let Some((decoded, len)) = escape_at(&bytes[i..]) else {
            out.push(text[i]);
            i += 1;
            continue;
        };
        let (from, to) = (text[i].from, text[i + len - 1].to);
        let mut buf = [0; 4];
        let decoded = match decoded {
            Decoded::Byte(b) => std::slice::from_ref(&b).to_vec(),
            Decoded::Char(c) => c.encode_utf8(&mut buf).as_bytes().to_vec(),
        };
        out.extend(decoded.into_iter().map(|byte| Unit { byte, from, to }));
        i += len;
    }
    out
}

/// What an escape stands for.
enum Decoded {
    /// A byte (`%XX`, `\xXX`), maybe of a multi-byte character.
    Byte(u8),
    /// A character (`\uXXXX`, an HTML reference, a backslashed one).
    Char(char),
}

/// What an escape at the start of `b` stands for, and its length.
fn escape_at(b: &[u8]) -> Option<(Decoded, usize)> {
    let hex = |digits: &[u8]| {
        std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|d| u32::from_str_radix(d, 16).ok())
    };
    let byte = |digits: &[u8], len: usize| {
        hex(digits)
            .and_then(|n| u8::try_from(n).ok())
            .map(|b| (Decoded::Byte(b), len))
    };
    let char_of = |n: u32, len: usize| char::from_u32(n).map(|c| (Decoded::Char(c), len));
    match b {
        [b'%', rest @ ..] if rest.len() >= 2 => byte(&rest[..2], 3),
        [b'\\', b'x', rest @ ..] if rest.len() >= 2 => byte(&rest[..2], 4),
        [b'\\', b'u', rest @ ..] if rest.len() >= 4 => char_of(hex(&rest[..4])?, 6),
        [b'\\', c, ..] if c.is_ascii_punctuation() => Some((Decoded::Char(char::from(*c)), 2)),
        [b'&', rest @ ..] => {
            let end = rest.iter().take(10).position(|c| *c == b';')?;
            let c = match &rest[..end] {
                [b'#', b'x' | b'X', digits @ ..] => char::from_u32(hex(digits)?)?,
                [b'#', digits @ ..] => {
                    char::from_u32(std::str::from_utf8(digits).ok()?.parse().ok()?)?
                }
                b"amp" => '&',
                b"quot" => '"',
                b"apos" => '\'',
                b"lt" => '<',
                b"gt" => '>',
                _ => return None,
            };
            Some((Decoded::Char(c), end + 2))
        }
        _ => None,
    }
}

/// A byte as compared: ASCII case folded, and `+` taken for the space it
/// stands for in a query.
fn fold(b: u8) -> u8 {
    match b {
        b'+' => b' ',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `b` may be part of a token's word: what URLs carry unescaped,
/// and the `%` and `\\` of escapes.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%' | b'+' | b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_part_that_may_be_the_token() {
        let u = Redactor::for_url(
            "https://bot:SECRETPASS@discord.com/api/webhooks/123456789012345678/SECRETTOKEN/slack?x=SECRETQUERY",
        );
        let text = "bad /api/webhooks/123456789012345678/SECRETTOKEN/slack?x=SECRETQUERY, \
                    SECRETTOKEN, 123456789012345678, SECRETQUERY, bot:SECRETPASS, api/webhooks";
        let r = u.redact(text);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(!r.contains("123456789012345678"), "{r}");
        assert_eq!(r, "bad …, …, …, …, …, …", "every part goes, short ones too");
        assert_eq!(u.redact("nothing to hide"), "nothing to hide");
    }

    #[test]
    fn redact_masks_every_part_raw_decoded_recased_escaped_or_cut() {
        let u = Redactor::for_url(
            "https://bot:p4ssW0rd9@discord.com/api/webhooks/123456789012345678/\
             Tk7Qz9wAbCdEfGh/slack?key=k7Qz9w&sig=Zx%2F9%2BqR+Lm",
        );
        // (what the webhook answered, what may be quoted of it)
        let table = [
            ("bad key k7Qz9w", "bad key …"),
            ("bad key K7QZ9W", "bad key …"),
            ("bad key %6B%37%51%7A%39%77", "bad key …"),
            ("bad key %6b%37%51%7a%39%77", "bad key …"),
            ("bad key %256B7Qz9w", "bad key …"),
            ("bad key &#x6b;7Qz9w and &#107;7Qz9w", "bad key … and …"),
            ("bad key k7Qz", "bad key …"),
            ("bad key k7Q", "bad key k7Q"),
            ("bad sig Zx%2F9%2BqR+Lm", "bad sig …"),
            ("bad sig Zx%2f9%2bqR Lm", "bad sig …"),
            ("bad sig Zx/9+qR Lm", "bad sig …"),
            ("bad sig Zx/9+qR+Lm", "bad sig …"),
            (
                r#"{"error":"bad key \u006b7Qz9w"}"#,
                r#"{"error":"bad key …"}"#,
            ),
            (r#"{"sig":"Zx\/9+qR Lm"}"#, r#"{"sig":"…"}"#),
            (
                r#"{"path":"\/api\/webhooks\/123456789012345678\/Tk7Qz9wAbCdEfGh\/slack"}"#,
                r#"{"path":"…"}"#,
            ),
            ("unknown token Tk7Qz9wAb (cut)", "unknown token … (cut)"),
            ("unknown token xTk7Qz9wAbCdEfGhx.", "unknown token …"),
            ("user bot:p4ssW0rd9 denied", "user … denied"),
            ("password p4ss%57%30rd9", "password …"),
            ("id 123456789012345678", "id …"),
            ("invalid_payload", "invalid_payload"),
            ("nothing to hide", "nothing to hide"),
            ("héllo wörld", "héllo wörld"),
        ];
        for (body, want) in table {
            assert_eq!(u.redact(body), want, "{body}");
        }
        // A token with a character that is not ASCII, percent-encoded in the URL.
        let u = Redactor::for_url("https://h/hook?t=caf%C3%A9Zq");
        let table = [
            ("bad t café", "bad t …"),
            ("bad t CAF%c3%a9", "bad t …"),
            ("bad t &#xe9;Zq", "bad t …"),
            ("bad t é", "bad t é"),
        ];
        for (body, want) in table {
            assert_eq!(u.redact(body), want, "{body}");
        }
    }
}
