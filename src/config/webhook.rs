//! The webhook settings, as plain values: the URL (a secret: it carries the
//! token of a Slack or Discord webhook), the body format, and where the
//! trusted CA certificates are.
//!
//! The URL is never shown whole: not in a usage error, not in a log line, not
//! in `Debug`. [`WebhookUrl`] shows only its scheme and host,
//! `https://hooks.slack.com/…`. The CA file is only named here; the webhook
//! sink reads it when it is built.

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
    /// The parts that may be the token, longest first: for [`WebhookUrl::redact`].
    hidden: Vec<String>,
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
        let mut hidden = vec![url.to_owned()];
        if let Some(pq) = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.len() > 1)
        {
            hidden.push(pq.to_owned());
            hidden.extend(
                pq.split(['/', '?', '&', '='])
                    .filter(|part| part.len() >= MIN_HIDDEN_PART)
                    .map(str::to_owned),
            );
        }
        if let Some((userinfo, _)) = authority.as_str().rsplit_once('@') {
            hidden.push(userinfo.to_owned());
        }
        hidden.sort_by_key(|h| std::cmp::Reverse(h.len()));
        hidden.dedup();
        Ok(WebhookUrl {
            url: url.to_owned(),
            shown: format!("{scheme}://{host}{port}{rest}"),
            https,
            hidden,
        })
    }

    /// `text` with every part of the URL that may be the token replaced by
    /// `…`: for text the URL's server wrote, such as an error body.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for part in &self.hidden {
            if text.contains(part.as_str()) {
                text = text.replace(part.as_str(), "…");
            }
        }
        text
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

/// A part of the URL's path or query at least this long is taken for a
/// token by [`WebhookUrl::redact`] (Slack's are 24 characters, Discord's 68).
const MIN_HIDDEN_PART: usize = 8;

/// What the webhook's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event's envelope, as every sink carries it.
    Envelope,
    /// `{"text": "…"}`, one readable line: Slack's incoming webhooks and
    /// Discord's Slack-compatible endpoint take it.
    Slack,
}

impl WebhookFormat {
    /// The `--webhook-format` value that names it.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Envelope => "envelope",
            WebhookFormat::Slack => "slack",
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
    format: &Given,
    ca: Option<&Given>,
) -> Result<Webhook, ConfigError> {
    let Some(url_given) = url else {
        return Err(ConfigError::new(format!(
            "{} needs a URL: set --webhook-url or RTINSPECT_WEBHOOK_URL",
            sink.described()
        )));
    };
    // `invalid` never shows the value of a secret option.
    let url = WebhookUrl::parse(&url_given.value).map_err(|why| {
        url_given.invalid(&format!(
            "{why} (the value is not shown: it may hold a token)"
        ))
    })?;
    let format = match format.value.as_str() {
        "envelope" => WebhookFormat::Envelope,
        "slack" => WebhookFormat::Slack,
        _ => return Err(format.invalid("expected envelope or slack")),
    };
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
        assert!(r.contains("api/…"), "short parts stay: {r}");
        assert_eq!(u.redact("nothing to hide"), "nothing to hide");
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
