//! Values in a log line that look like secrets, replaced by `…` before the
//! line leaves the process: the value of a key naming a password, a
//! secret, a token or an API key (`password=hunter2`, `"token": "x"`,
//! `DB_PASSWORD: x`, `--password x`), an `Authorization:` header's whole
//! value, a `Bearer` or `Basic` credential anywhere, and a URL's userinfo
//! (`postgres://app:pw@db` → `postgres://…@db`). It errs on the side of
//! hiding: `tokenizer=bert` loses its value too.

/// The words that make a key's value a secret, matched anywhere in the
/// key, whatever its case.
const SECRET_WORDS: [&str; 7] = [
    "password", "passwd", "secret", "token", "api_key", "apikey", "api-key",
];

/// A key whose value is a whole header value (it holds a space).
const HEADER_WORDS: [&str; 2] = ["authorization", "cookie"];

/// Schemes of a credential that follows them after a space.
const CREDENTIAL_SCHEMES: [&str; 2] = ["bearer", "basic"];

const HIDDEN: &str = "…";

/// `line` with every value that looks like a secret replaced by `…`.
pub(super) fn redact(line: &str) -> String {
    let line = redact_userinfo(line);
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) || (i > 0 && is_key_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // A word starts at `i`.
        let end = i + bytes[i..].iter().take_while(|b| is_key_byte(**b)).count();
        let word = &line[i..end];
        let lower = word.to_ascii_lowercase();
        let hidden = if HEADER_WORDS.iter().any(|w| lower.contains(w)) {
            value_after_key(bytes, end, true)
        } else if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            value_after_key(bytes, end, false).or_else(|| {
                // `--password hunter2`: a flag and its value.
                word.starts_with("--")
                    .then(|| value_after_space(bytes, end))
                    .flatten()
            })
        } else if CREDENTIAL_SCHEMES.contains(&lower.as_str()) {
            value_after_space(bytes, end).filter(|v| v.len() >= 8)
        } else {
            None
        };
        match hidden {
            Some(value) => {
                out.push_str(&line[copied..value.start]);
                out.push_str(HIDDEN);
                copied = value.end;
                i = value.end.max(end);
            }
            None => i = end,
        }
    }
    out.push_str(&line[copied..]);
    out
}

/// Bytes of a key: letters, digits, `_`, `-` and `.`.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where the value of the key ending at `end` lies: after an optional
/// closing quote of the key, spaces, `=` or `:` (`:=` too), spaces, and an
/// optional opening quote, through the matching quote, or, unquoted, to
/// the next space, `&` or quote (a header's value: to the end of the line
/// or its quote). `None` when no separator follows, or no value.
fn value_after_key(bytes: &[u8], end: usize, header: bool) -> Option<std::ops::Range<usize>> {
    let mut at = end;
    // The key's closing quote, plain or escaped (`\"password\":\"x\"`).
    if bytes.get(at) == Some(&b'\\') && matches!(bytes.get(at + 1), Some(b'"' | b'\'')) {
        at += 2;
    } else if matches!(bytes.get(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    at += spaces(&bytes[at..]);
    match bytes.get(at) {
        Some(b'=') => at += 1,
        Some(b':') => {
            at += 1;
            if bytes.get(at) == Some(&b'=') {
                at += 1;
            }
            // `://` is a URL's scheme, not a key's value.
            if bytes[at..].starts_with(b"//") {
                return None;
            }
        }
        _ => return None,
    }
    at += spaces(&bytes[at..]);
    let escaped = bytes.get(at) == Some(&b'\\') && matches!(bytes.get(at + 1), Some(b'"' | b'\''));
    if escaped {
        at += 1;
    }
    let value = match bytes.get(at) {
        Some(&q @ (b'"' | b'\'')) => {
            // To the closing quote: a `\"` closes a value opened by one (a
            // JSON text inside a string); in one opened by a plain quote, a
            // backslash escapes what follows, which stays in the value.
            let start = at + 1;
            let mut end = start;
            while let Some(&b) = bytes.get(end) {
                match b {
                    b'\\' if escaped => break,
                    b'\\' => end = (end + 2).min(bytes.len()),
                    b if b == q => break,
                    _ => end += 1,
                }
            }
            start..end
        }
        _ if header => at..bytes.len(),
        _ => {
            let len = bytes[at..]
                .iter()
                .take_while(|b| !b.is_ascii_whitespace() && !matches!(b, b'&' | b'"' | b'\''))
                .count();
            at..at + len
        }
    };
    (!value.is_empty()).then_some(value)
}

/// A value after one or more spaces: to the next space or quote.
fn value_after_space(bytes: &[u8], end: usize) -> Option<std::ops::Range<usize>> {
    let n = spaces(&bytes[end..]);
    if n == 0 {
        return None;
    }
    let start = end + n;
    let len = bytes[start..]
        .iter()
        .take_while(|b| !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\''))
        .count();
    (len > 0).then_some(start..start + len)
}

fn spaces(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()
}

/// Every URL's userinfo (`scheme://userinfo@host`) replaced by `…`.
fn redact_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_len = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        match after[..authority_len].rfind('@') {
            Some(user_end) if user_end > 0 => {
                out.push_str(HIDDEN);
                rest = &after[user_end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_look_like_secrets_are_redacted() {
        // (line, redacted)
        let table: &[(&str, &str)] = &[
            ("password=hunter2", "password=…"),
            (
                "login ok password=hunter2 user=bob",
                "login ok password=… user=bob",
            ),
            ("PASSWORD = hunter2", "PASSWORD = …"),
            ("DB_PASSWORD=hunter2", "DB_PASSWORD=…"),
            ("passwd: hunter2", "passwd: …"),
            ("client_secret=hunter2&x=1", "client_secret=…&x=1"),
            ("?token=hunter2&page=2", "?token=…&page=2"),
            ("access_token:=hunter2", "access_token:=…"),
            ("api_key=hunter2", "api_key=…"),
            ("apiKey: hunter2", "apiKey: …"),
            ("X-Api-Key: hunter2", "X-Api-Key: …"),
            (
                r#"{"password":"hunter 2","user":"bob"}"#,
                r#"{"password":"…","user":"bob"}"#,
            ),
            (r#"{"token": 'hunter2'}"#, r#"{"token": '…'}"#),
            (
                r#"{"password":"hun\"ter2","user":"bob"}"#,
                r#"{"password":"…","user":"bob"}"#,
            ),
            (r#"{"password":"hunter2\\"}"#, r#"{"password":"…"}"#),
            (
                r#"msg="{\"secret\":\"hunter2\"}""#,
                r#"msg="{\"secret\":\"…\"}""#,
            ),
            ("Authorization: Bearer hunter2hunter2", "Authorization: …"),
            (
                "proxy-authorization:Basic aHVudGVyMg==",
                "proxy-authorization:…",
            ),
            ("Cookie: session=hunter2; id=1", "Cookie: …"),
            (
                "sent Bearer hunter2hunter2 upstream",
                "sent Bearer … upstream",
            ),
            (
                "mysqld --password hunter2 --user x",
                "mysqld --password … --user x",
            ),
            ("postgres://app:hunter2@db:5432/x", "postgres://…@db:5432/x"),
            (
                "see https://user@host/p and ftp://a:b@c",
                "see https://…@host/p and ftp://…@c",
            ),
            ("https://host/p?q=a@b", "https://host/p?q=a@b"),
            ("token=", "token="),
            ("password is required", "password is required"),
            ("no secrets here: 42", "no secrets here: 42"),
            ("a basic idea", "a basic idea"),
            ("secret_url=https://x.test/a", "secret_url=…"),
            ("tokenizer=bert", "tokenizer=…"),
            ("é password=hunter2 ü", "é password=… ü"),
        ];
        for (line, want) in table {
            assert_eq!(redact(line), *want, "{line}");
            if want.contains('…') {
                assert!(!redact(line).contains("hunter"), "{line}");
            }
        }
    }

    #[test]
    fn redaction_never_panics_on_cut_lines() {
        let line = r#"x "password" : "hunter2" Authorization: Basic abc postgres://a:b@c"#;
        for end in 0..=line.len() {
            for start in 0..=end {
                if let Some(part) = line.get(start..end) {
                    let _ = redact(part);
                }
            }
        }
    }
}
