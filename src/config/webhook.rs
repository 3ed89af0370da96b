//! The webhook settings, as plain values: the URL (a secret: it carries the
//! token of a Slack or Discord webhook), the body format, and where the
//! trusted CA certificates are.
//!
//! The URL is never shown whole: not in a usage error, not in a log line, not
//! in `Debug`. [`WebhookUrl`] shows only its scheme and host,
//! `https://hooks.slack.com/…`. Text its server wrote (an error body) is
//! passed through [`WebhookUrl::redact`], which masks every piece of the path,
//! query and userinfo however it is echoed. The CA file is only named here;
//! the webhook sink reads it when it is built.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use super::database::CaFile;
use super::error::ConfigError;
use super::raw::Given;

/// The webhook's URL. Only [`WebhookUrl::secret`] gives it whole; `Display`
/// and `Debug` show the scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    shown: String,
    https: bool,
    /// Every four bytes in a row of a part that may be the token, folded:
    /// for [`WebhookUrl::redact`].
    hidden: BTreeSet<[u8; 4]>,
}

impl WebhookUrl {
    /// Checks that `url` is an absolute `http://` or `https://` URL with a
    /// host. The error says what is wrong without repeating the URL.
    pub fn parse(url: &str) -> Result<WebhookUrl, &'static str> {
        const EXPECTED: &str = "expected an http:// or https:// URL";
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let https = match scheme.as_deref() {
            Some("https") => true,
            Some("http") => false,
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                return Err("the scheme must be http or https");
            }
            _ => return Err(EXPECTED),
        };
        let uri: ureq::http::Uri = url.parse().map_err(|_| EXPECTED)?;
        let Some(authority) = uri.authority() else {
            return Err("the URL has no host");
        };
        let host = authority.host();
        if host.is_empty() {
            return Err("the URL has no host");
        }
        // `Uri` takes a port it cannot read (`:99999`) as no port at all.
        let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
        if let Some((_, p)) = host_port
            .rsplit_once(':')
            .filter(|_| !host_port.ends_with(']'))
            && !p.is_empty()
            && !p.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err("the port must be a number from 1 to 65535");
        }
        let port = authority
            .port_u16()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let scheme = if https { "https" } else { "http" };
        // Whatever follows the host may be the token: a path, a query.
        let rest = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") | Some("/") => "/",
            Some(_) => "/…",
        };
        // Whatever is not the scheme and host may be the token: the path and
        // query whole and each of their parts, the userinfo whole and each
        // half, as written and decoded.
        let mut parts: Vec<&str> = Vec::new();
        if let Some(pq) = uri.path_and_query().map(|p| p.as_str()) {
            parts.push(pq);
            parts.extend(pq.split(['/', '?', '&', '=', ';']));
        }
        if let Some((userinfo, _)) = authority.as_str().rsplit_once('@') {
            parts.push(userinfo);
            parts.extend(userinfo.split(':'));
        }
        if let Some((_, fragment)) = url.split_once('#') {
            parts.push(fragment);
        }
        let mut hidden = BTreeSet::new();
        for part in parts {
            for view in views(&units(part)) {
                let folded: Vec<u8> = view.iter().map(|u| fold(u.byte)).collect();
                for w in folded.windows(GRAM) {
                    hidden.insert([w[0], w[1], w[2], w[3]]);
                }
            }
        }
        Ok(WebhookUrl {
            url: url.to_owned(),
            shown: format!("{scheme}://{host}{port}{rest}"),
            https,
            hidden,
        })
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
    pub fn redact(&self, text: &str) -> String {
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

    /// The whole URL, token included: for the request, and nothing else.
    pub fn secret(&self) -> &str {
        &self.url
    }

    /// The scheme and host, safe for logs and messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The userinfo before the host, percent-decoded: the user, and the
    /// password when there is a `:`. `None` without an `@`.
    pub fn userinfo(&self) -> Option<(String, Option<String>)> {
        let (_, after) = self.url.split_once("://")?;
        let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        let (userinfo, _) = authority.rsplit_once('@')?;
        Some(match userinfo.split_once(':') {
            Some((user, pass)) => (percent_decode(user), Some(percent_decode(pass))),
            None => (percent_decode(userinfo), None),
        })
    }

    /// The whole URL without its userinfo (token included: for the
    /// request, and nothing else), for a format that sends the userinfo as
    /// a header of its own.
    pub fn secret_without_userinfo(&self) -> String {
        let Some((scheme, after)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let host = match after[..end].rsplit_once('@') {
            Some((_, host)) => host,
            None => &after[..end],
        };
        format!("{scheme}://{host}{}", &after[end..])
    }

    /// The first value of `name` in the query, percent-decoded (`+` as a
    /// space), and the whole URL without that parameter (token included:
    /// for the request, and nothing else).
    pub fn take_query(&self, name: &str) -> Option<(String, String)> {
        let (before_fragment, fragment) = match self.url.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (self.url.as_str(), None),
        };
        let (base, query) = before_fragment.split_once('?')?;
        let mut value = None;
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if value.is_none() && percent_decode(key) == name {
                let v = pair.split_once('=').map_or("", |(_, v)| v);
                value = Some(percent_decode(&v.replace('+', " ")));
            } else if !pair.is_empty() {
                kept.push(pair);
            }
        }
        let mut rest = base.to_owned();
        if !kept.is_empty() {
            rest.push('?');
            rest.push_str(&kept.join("&"));
        }
        if let Some(f) = fragment {
            rest.push('#');
            rest.push_str(f);
        }
        Some((value?, rest))
    }
}

/// `text` with each `%XX` decoded; bytes that are not UTF-8 replaced.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({:?})", self.shown)
    }
}

/// How many characters in a row of a part of the URL [`WebhookUrl::redact`]
/// takes for a piece of the token: shorter parts are not taken for one, and a
/// token cut shorter is not found.
const GRAM: usize = 4;

/// How many times [`WebhookUrl::redact`] decodes a text: enough for a token
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

/// What the webhook's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event's envelope, as every sink carries it.
    Envelope,
    /// `{"text": "…"}`, one readable line: Slack's incoming webhooks and
    /// Discord's Slack-compatible endpoint take it.
    Slack,
    /// Discord's execute-webhook JSON: one embed, mentions off.
    Discord,
    /// ntfy: the readable line as a plain-text body, title, priority and
    /// tags as headers, the URL's userinfo as an `Authorization` header.
    Ntfy,
    /// Telegram's `sendMessage`: the readable line as HTML, to the
    /// `chat_id` of the URL's query.
    Telegram,
}

impl WebhookFormat {
    /// The `--webhook-format` value that names it.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Envelope => "envelope",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Discord => "discord",
            WebhookFormat::Ntfy => "ntfy",
            WebhookFormat::Telegram => "telegram",
        }
    }
}

/// The settings of the webhook sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where events are posted.
    pub url: WebhookUrl,
    /// The body of each request.
    pub format: WebhookFormat,
    /// The trusted CAs for an `https://` URL; `None` means the system bundle.
    /// Always `None` for an `http://` URL.
    pub ca_file: Option<CaFile>,
}

/// Validates the webhook options of a process whose sink is the webhook.
/// `sink` is the `--sink` value that chose it, to name it in a message.
pub(super) fn webhook(
    sink: &Given,
    url: Option<&Given>,
    url_file: Option<&Given>,
    format: &Given,
    ca: Option<&Given>,
) -> Result<Webhook, ConfigError> {
    let (url_given, url_text) = match (url, url_file) {
        (None, None) => {
            return Err(ConfigError::new(format!(
                "{} needs a URL: set --webhook-url or RTINSPECT_WEBHOOK_URL, \
                 or --webhook-url-file",
                sink.described()
            )));
        }
        (Some(url), Some(file)) => {
            return Err(ConfigError::new(format!(
                "{} and {} are both set; set one",
                url.source, file.source
            )));
        }
        (Some(url), None) => (url, url.value.clone()),
        (None, Some(file)) => (file, read_url_file(file)?),
    };
    // `invalid` never shows the value of a secret option; of the file, only
    // its path.
    let url = WebhookUrl::parse(&url_text).map_err(|why| {
        url_given.invalid(&format!(
            "{why} (the value is not shown: it may hold a token)"
        ))
    })?;
    let format = match format.value.as_str() {
        "envelope" => WebhookFormat::Envelope,
        "slack" => WebhookFormat::Slack,
        "discord" => WebhookFormat::Discord,
        "ntfy" => WebhookFormat::Ntfy,
        "telegram" => WebhookFormat::Telegram,
        _ => {
            return Err(format.invalid(
                "expected envelope or slack, or a chat's own: discord, ntfy or telegram",
            ));
        }
    };
    // The chat is the request's: without it every message is refused, so
    // the start is.
    // One chat, read from one place: a second `chat_id` would stay in the
    // query beside the body's.
    if format == WebhookFormat::Telegram
        && url
            .take_query("chat_id")
            .is_some_and(|(_, rest)| rest.contains("chat_id=") || rest.contains("chat%5Fid="))
    {
        return Err(url_given.invalid(
            "the telegram format takes one chat_id in the query \
             (the value is not shown: it may hold a token)",
        ));
    }
    // ntfy's login goes in a header of its own: one that cannot be sent is
    // bad configuration, not an outage to retry for ever.
    if format == WebhookFormat::Ntfy
        && let Some((user, pass)) = url.userinfo()
    {
        let token_like = |t: &str| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b));
        let usable = match pass {
            None => token_like(&user),
            Some(pass) if user.is_empty() => token_like(&pass),
            Some(pass) => {
                !user.contains(':')
                    && !format!("{user}{pass}")
                        .chars()
                        .any(|c| c.is_control() || c == '\u{FFFD}')
            }
        };
        if !usable {
            return Err(url_given.invalid(
                "the ntfy format sends the URL's user:password or :token as its \
                 Authorization header, and this one is empty, not UTF-8, or holds a \
                 space or control character (the value is not shown)",
            ));
        }
    }
    if format == WebhookFormat::Telegram
        && url
            .take_query("chat_id")
            .is_none_or(|(id, _)| id.is_empty())
    {
        return Err(url_given.invalid(
            "the telegram format needs the chat in the query: \
             https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID> \
             (the value is not shown: it may hold a token)",
        ));
    }
    let ca_file = match ca {
        None => None,
        Some(given) if !url.is_https() => {
            return Err(ConfigError::new(format!(
                "{} has no effect: {} is an http:// URL, which uses no TLS; remove it",
                given.described(),
                url_given.source
            )));
        }
        Some(given) if !given.value.starts_with('/') => {
            return Err(given.invalid("expected an absolute path to a PEM file"));
        }
        Some(given) => Some(CaFile {
            path: PathBuf::from(&given.value),
            named_by: given.source.to_string(),
        }),
    };
    Ok(Webhook {
        url,
        format,
        ca_file,
    })
}

/// The most a URL file may hold.
const URL_FILE_LIMIT: u64 = 8192;

/// The URL in `--webhook-url-file`: one line, in a file of the user
/// rtinspect runs as that only this user may read or write (it holds a
/// token); never shown in a message.
fn read_url_file(file: &Given) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    if !file.value.starts_with('/') {
        return Err(file.invalid("expected an absolute path"));
    }
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| file.invalid(&format!("cannot read it: {e}"));
    // Opened without waiting (a FIFO would wait for a writer), then looked at.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&file.value)
        .map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(file.invalid("not a regular file"));
    }
    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Err(file.invalid(&format!(
            "owned by uid {}, not by the user rtinspect runs as (uid {user}); it holds a \
             token: chown it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(file.invalid(&format!(
            "others than its owner may use it (mode {:04o}); it holds a token: chmod 600 it",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    f.take(URL_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > URL_FILE_LIMIT {
        return Err(file.invalid(&format!("over {URL_FILE_LIMIT} bytes; expected one URL")));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| file.invalid("not UTF-8 (the content is not shown: it may hold a token)"))?;
    let url = text.trim();
    if url.is_empty() {
        return Err(file.invalid("empty; expected one URL"));
    }
    if url.contains(['\n', '\r']) {
        return Err(file.invalid(
            "more than one line; expected one URL (the content is not shown: it may hold a token)",
        ));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_shown_as_scheme_and_host_only() {
        // (URL, shown)
        let table = [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/…",
            ),
            (
                "https://discord.com/api/webhooks/123/SECRETTOKEN/slack",
                "https://discord.com/…",
            ),
            (
                "http://127.0.0.1:8080/hook?token=SECRET",
                "http://127.0.0.1:8080/…",
            ),
            (
                "http://127.0.0.1:8080?token=SECRET",
                "http://127.0.0.1:8080/…",
            ),
            ("https://user:SECRET@example.org/x", "https://example.org/…"),
            ("https://example.org", "https://example.org/"),
            ("https://example.org/", "https://example.org/"),
            ("http://[::1]:9/SECRET", "http://[::1]:9/…"),
            ("http://[::1]/SECRET", "http://[::1]/…"),
            ("http://h:/SECRET", "http://h/…"),
            ("https://h/SECRET#part", "https://h/…"),
            ("HTTPS://Example.org/SECRET", "https://Example.org/…"),
        ];
        for (url, shown) in table {
            let u = WebhookUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(u.shown(), shown, "{url}");
            assert_eq!(u.to_string(), shown);
            assert!(!format!("{u:?}").contains("SECRET"), "{u:?}");
            assert_eq!(u.secret(), url);
        }
    }

    #[test]
    fn redact_hides_every_part_that_may_be_the_token() {
        let u = WebhookUrl::parse(
            "https://bot:SECRETPASS@discord.com/api/webhooks/123456789012345678/SECRETTOKEN/slack?x=SECRETQUERY",
        )
        .unwrap();
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
        let u = WebhookUrl::parse(
            "https://bot:p4ssW0rd9@discord.com/api/webhooks/123456789012345678/\
             Tk7Qz9wAbCdEfGh/slack?key=k7Qz9w&sig=Zx%2F9%2BqR+Lm",
        )
        .unwrap();
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
        let u = WebhookUrl::parse("https://h/hook?t=caf%C3%A9Zq").unwrap();
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

    #[test]
    fn userinfo_is_decoded_and_can_be_left_out_of_the_url() {
        // (URL, userinfo, the URL without it)
        let table = [
            (
                "https://:tk_SECRET@ntfy.sh/alerts",
                Some(("", Some("tk_SECRET"))),
                "https://ntfy.sh/alerts",
            ),
            (
                "https://ops:p%40ss@ntfy.example:8443/a?x=1#f",
                Some(("ops", Some("p@ss"))),
                "https://ntfy.example:8443/a?x=1#f",
            ),
            (
                "https://tk_SECRET@ntfy.sh",
                Some(("tk_SECRET", None)),
                "https://ntfy.sh",
            ),
            ("https://ntfy.sh/a@b", None, "https://ntfy.sh/a@b"),
        ];
        for (url, userinfo, without) in table {
            let u = WebhookUrl::parse(url).unwrap();
            let got = u.userinfo();
            let got = got
                .as_ref()
                .map(|(user, pass)| (user.as_str(), pass.as_deref()));
            assert_eq!(got, userinfo, "{url}");
            assert_eq!(u.secret_without_userinfo(), without, "{url}");
        }
    }

    #[test]
    fn a_query_parameter_is_taken_out_of_the_url() {
        // (URL, chat_id, the URL without it)
        let table = [
            (
                "https://api.telegram.org/botT:K/sendMessage?chat_id=-100123",
                Some(("-100123", "https://api.telegram.org/botT:K/sendMessage")),
            ),
            (
                "https://h/bot1/sendMessage?a=1&chat_id=%40ops+room&b=2",
                Some(("@ops room", "https://h/bot1/sendMessage?a=1&b=2")),
            ),
            ("https://h/bot1/sendMessage?chat=1", None),
            ("https://h/bot1/sendMessage", None),
        ];
        for (url, want) in table {
            let got = WebhookUrl::parse(url).unwrap().take_query("chat_id");
            let got = got.as_ref().map(|(v, rest)| (v.as_str(), rest.as_str()));
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_are_taken() {
        for (url, why) in [
            ("", "expected an http:// or https:// URL"),
            (
                "hooks.slack.com/services/SECRET",
                "expected an http:// or https:// URL",
            ),
            ("/services/SECRET", "expected an http:// or https:// URL"),
            (
                "ftp://example.org/SECRET",
                "the scheme must be http or https",
            ),
            ("unix:///run/x.sock", "the scheme must be http or https"),
            ("://x/SECRET", "expected an http:// or https:// URL"),
            (
                "https://exa mple.org/SECRET",
                "expected an http:// or https:// URL",
            ),
            ("https:///SECRET", "expected an http:// or https:// URL"),
            (
                "https://h:99999/SECRET",
                "the port must be a number from 1 to 65535",
            ),
            (
                "https://h:0/SECRET",
                "the port must be a number from 1 to 65535",
            ),
            (
                "https://u:p@h:70000/SECRET",
                "the port must be a number from 1 to 65535",
            ),
        ] {
            let got = WebhookUrl::parse(url).map(|u| u.shown().to_owned());
            match got {
                Err(e) => assert!(e.starts_with(why), "{url:?}: {e}"),
                Ok(shown) => panic!("{url:?} was taken as {shown}"),
            }
        }
    }
}
