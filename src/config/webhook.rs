//! The webhook settings, as plain values: the URL (a secret: it carries the
//! token of a Slack or Discord webhook), the body format, and where the
//! trusted CA certificates are.
//!
//! The URL is never shown whole: not in a usage error, not in a log line, not
//! in `Debug`. [`WebhookUrl`] shows only its scheme and host,
//! `https://hooks.slack.com/…`; the sink masks the pieces of the token in
//! what the URL's server writes back. The CA file is only named here; the
//! webhook sink reads it when it is built.
//!
//! The URL file (`--webhook-url-file`) is only named here too ([`UrlFile`]):
//! the webhook sink reads it when it is built, at start, and its URL is then
//! checked against the format like a given one (a Telegram chat, an ntfy
//! login, a CA file for an `http://` URL), each failure exit status 64,
//! naming the option and the path, never the content.

use std::fmt;
use std::path::PathBuf;

use super::database::CaFile;
use super::error::ConfigError;
use super::raw::Given;

/// The webhook's URL. Only [`WebhookUrl::secret`] gives it whole; `Display`
/// and `Debug` show the scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookUrl {
    url: String,
    shown: String,
    https: bool,
}

impl WebhookUrl {
    /// Checks that `url` is an absolute `http://` or `https://` URL with a
    /// host. The error says what is wrong without repeating the URL.
    pub(crate) fn parse(url: &str) -> Result<WebhookUrl, &'static str> {
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
        Ok(WebhookUrl {
            url: url.to_owned(),
            shown: format!("{scheme}://{host}{port}{rest}"),
            https,
        })
    }

    /// The whole URL, token included: for the request, and nothing else.
    pub(crate) fn secret(&self) -> &str {
        &self.url
    }

    /// The scheme and host, safe for logs and messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the URL is `https://`.
    pub(crate) fn is_https(&self) -> bool {
        self.https
    }

    /// The userinfo before the host, percent-decoded: the user, and the
    /// password when there is a `:`. `None` without an `@`.
    pub(crate) fn userinfo(&self) -> Option<(String, Option<String>)> {
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
    pub(crate) fn secret_without_userinfo(&self) -> String {
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
    pub(crate) fn take_query(&self, name: &str) -> Option<(String, String)> {
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
pub(super) fn percent_decode(text: &str) -> String {
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

/// What the webhook's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookFormat {
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
    /// The format a `--webhook-format` (or `format=`) value names.
    pub(crate) fn parse(value: &str) -> Option<WebhookFormat> {
        Some(match value {
            "envelope" => WebhookFormat::Envelope,
            "slack" => WebhookFormat::Slack,
            "discord" => WebhookFormat::Discord,
            "ntfy" => WebhookFormat::Ntfy,
            "telegram" => WebhookFormat::Telegram,
            _ => return None,
        })
    }

    /// The `--webhook-format` value that names it.
    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) url: WebhookUrl,
    /// The body of each request.
    pub(crate) format: WebhookFormat,
    /// The trusted CAs for an `https://` URL; `None` means the system bundle.
    /// Always `None` for an `http://` URL.
    pub(crate) ca_file: Option<CaFile>,
}

/// The webhook sink as configured: its settings whole, or with the URL
/// still in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WebhookSettings {
    /// The URL was given (`--webhook-url`): every setting is checked.
    Given(Webhook),
    /// The URL is in a file (`--webhook-url-file`), which the sink reads
    /// when it is built.
    InFile(UrlFile),
}

/// Where the webhook's URL is (`--webhook-url-file`: an absolute path), with
/// what the URL is checked against once read: the format (already valid)
/// and the CA file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlFile {
    file: Given,
    format: WebhookFormat,
    ca: Option<Given>,
}

impl UrlFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &str {
        &self.file.value
    }

    /// `invalid --webhook-url-file "PATH": <why>`: what is wrong with the
    /// file, never with what it holds.
    pub(crate) fn invalid(&self, why: &str) -> ConfigError {
        self.file.invalid(why)
    }

    /// The settings whole with `url`, the file's one line, checked as a
    /// given URL is and named by the file's option, never shown.
    pub(crate) fn with_url(&self, url: &str) -> Result<Webhook, ConfigError> {
        let url = checked_url(&self.file, url)?;
        webhook_with(&self.file, url, self.format, self.ca.as_ref())
    }
}

/// Validates the webhook options of a process whose sink is the webhook.
/// `sink` is the `--sink` value that chose it, to name it in a message.
pub(super) fn webhook(
    sink: &Given,
    url: Option<&Given>,
    url_file: Option<&Given>,
    format: &Given,
    ca: Option<&Given>,
) -> Result<WebhookSettings, ConfigError> {
    match (url, url_file) {
        (None, None) => Err(ConfigError::new(format!(
            "{} needs a URL: set --webhook-url or RTINSPECT_WEBHOOK_URL, \
             or --webhook-url-file",
            sink.described()
        ))),
        (Some(url), Some(file)) => Err(ConfigError::new(format!(
            "{} and {} are both set; set one",
            url.source, file.source
        ))),
        (Some(url_given), None) => {
            let url = checked_url(url_given, &url_given.value)?;
            let format = webhook_format(format)?;
            webhook_with(url_given, url, format, ca).map(WebhookSettings::Given)
        }
        (None, Some(file)) => {
            if !file.value.starts_with('/') {
                return Err(file.invalid("expected an absolute path"));
            }
            Ok(WebhookSettings::InFile(UrlFile {
                file: file.clone(),
                format: webhook_format(format)?,
                ca: ca.cloned(),
            }))
        }
    }
}

/// `url_text` as a URL; `url_given` names it in a message. `invalid` never
/// shows the value of a secret option; of the file, only its path.
fn checked_url(url_given: &Given, url_text: &str) -> Result<WebhookUrl, ConfigError> {
    WebhookUrl::parse(url_text).map_err(|why| {
        url_given.invalid(&format!(
            "{why} (the value is not shown: it may hold a token)"
        ))
    })
}

/// The `--webhook-format` value.
fn webhook_format(format: &Given) -> Result<WebhookFormat, ConfigError> {
    WebhookFormat::parse(&format.value).ok_or_else(|| {
        format.invalid("expected envelope or slack, or a chat's own: discord, ntfy or telegram")
    })
}

/// Why `url` cannot carry `format`, if it cannot: Telegram's chat is read
/// from one `chat_id` of the query, ntfy's login from a userinfo that can
/// be sent as a header. The words never hold the URL.
pub(crate) fn unfit_for(url: &WebhookUrl, format: WebhookFormat) -> Option<&'static str> {
    // The chat is the request's: without it every message is refused, so
    // the start is.
    // One chat, read from one place: a second `chat_id` would stay in the
    // query beside the body's.
    if format == WebhookFormat::Telegram
        && url
            .take_query("chat_id")
            .is_some_and(|(_, rest)| rest.contains("chat_id=") || rest.contains("chat%5Fid="))
    {
        return Some(
            "the telegram format takes one chat_id in the query \
             (the value is not shown: it may hold a token)",
        );
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
            return Some(
                "the ntfy format sends the URL's user:password or :token as its \
                 Authorization header, and this one is empty, not UTF-8, or holds a \
                 space or control character (the value is not shown)",
            );
        }
    }
    if format == WebhookFormat::Telegram
        && url
            .take_query("chat_id")
            .is_none_or(|(id, _)| id.is_empty())
    {
        return Some(
            "the telegram format needs the chat in the query: \
             https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID> \
             (the value is not shown: it may hold a token)",
        );
    }
    None
}

/// The settings whole: `url` checked against `format` (a chat it can be
/// sent to) and `ca` (only for an `https://` URL); `url_given` names the URL
/// in a message.
fn webhook_with(
    url_given: &Given,
    url: WebhookUrl,
    format: WebhookFormat,
    ca: Option<&Given>,
) -> Result<Webhook, ConfigError> {
    if let Some(why) = unfit_for(&url, format) {
        return Err(url_given.invalid(why));
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

#[cfg(test)]
mod tests;
