//! What an answer means for what a request carried: accepted (2xx);
//! refused, set aside (a redirect, or another status no retry changes); or
//! the webhook down for now (408, 429, 5xx, no answer at all), retried, not
//! before a 429's or 503's `Retry-After` is over. A pure reading of the
//! [`Answer`] the transport got, or of why it got none.
//!
//! The URL carries the webhook's token: no message from here holds more of
//! it than its scheme and host. A refusal quotes the first 200 bytes of the
//! answer's body, because a receiver's own words (`invalid_payload`,
//! `channel_is_archived`) are what tells an operator why; receivers echo the
//! request there too, so every word holding a piece of the URL's path, query
//! or userinfo is masked ([`Redactor`]) before the body is cut, and an
//! excerpt that still held one would be left out.

use std::fmt;
use std::io;
use std::time::Duration;

use super::http::{Answer, REQUEST_TIMEOUT};
use super::redact::Redactor;
use crate::config::WebhookFormat;
use crate::publish::sink::SinkError;
use crate::tls::SYSTEM_BUNDLE;
use crate::webhook::format::text::one_line;

/// The longest `Retry-After` asked of the publisher; a longer one is cut to it.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How much of an error answer's body a message quotes.
const QUOTED_BODY_BYTES: usize = 200;

/// Why one request did not deliver an event. Each names the webhook by its
/// scheme and host only.
#[derive(Debug)]
pub(crate) enum WebhookError {
    /// The webhook answered with a status other than 2xx or a redirect.
    Status {
        /// The webhook, as shown.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, on one line.
        body: String,
    },
    /// The webhook answered with a redirect, which is not followed.
    Redirect {
        /// The webhook, as shown.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// No complete answer within [`REQUEST_TIMEOUT`].
    Timeout {
        /// The webhook, as shown.
        url: String,
    },
    /// The TLS handshake failed: most often the server's certificate.
    Tls {
        /// The webhook, as shown.
        url: String,
        /// rustls's words.
        detail: String,
    },
    /// The host's name did not resolve.
    HostNotFound {
        /// The webhook, as shown.
        url: String,
    },
    /// The connection could not be made, or broke.
    Connection {
        /// The webhook, as shown.
        url: String,
        /// What went wrong, without the URL.
        detail: String,
    },
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::Status { url, status, body } => {
                write!(f, "{url} answered {status} {}", reason(*status))?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            WebhookError::Redirect { url, status } => write!(
                f,
                "{url} answered {status} {}, a redirect, which rtinspect does not follow: \
                 the webhook is misconfigured, or --webhook-url is not its final address",
                reason(*status)
            ),
            WebhookError::Timeout { url } => {
                write!(
                    f,
                    "no answer from {url} within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )
            }
            WebhookError::Tls { url, detail } => write!(
                f,
                "TLS with {url} failed: {detail} (is the server's CA in --webhook-ca-file, \
                 or in the system bundle {SYSTEM_BUNDLE}?)"
            ),
            WebhookError::HostNotFound { url } => write!(f, "cannot resolve the host of {url}"),
            WebhookError::Connection { url, detail } => {
                write!(f, "cannot reach {url}: {detail}")
            }
        }
    }
}

impl std::error::Error for WebhookError {}

/// What an answer's status means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: delivered.
    Accepted,
    /// 408, 429, 5xx: the webhook cannot take it now; retry the same event.
    Retry,
    /// 3xx: a redirect, not followed; this event is refused.
    Redirect,
    /// Any other status: this event is refused, and no retry changes that.
    Refused,
}

/// Classifies an answer's status.
pub(crate) fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        300..=399 => Verdict::Redirect,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Refused,
    }
}

/// The wait a `Retry-After` header asks for, in seconds (a fraction is
/// allowed: some rate limiters send one), cut to [`MAX_RETRY_AFTER`]. An
/// HTTP date, or anything else, is `None`: the publisher's backoff applies.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// What an answer means: the outcome for what the request carried, and the
/// wait it asks of the pace.
#[derive(Debug)]
pub(crate) struct Meaning {
    /// Accepted (its status), refused, or unavailable.
    pub(crate) outcome: Result<u16, SinkError>,
    /// A 429's or a 503's `Retry-After` (or the wait its body says): the
    /// one wait an answer's status asks of this client.
    pub(crate) retry_after: Option<Duration>,
}

/// What `answer`, from the webhook shown as `url` in the `format`, means.
pub(crate) fn meaning(
    answer: &Answer,
    format: WebhookFormat,
    url: &str,
    redactor: &Redactor,
) -> Meaning {
    let status = answer.status;
    let retry_after = answer.retry_after.as_deref().and_then(parse_retry_after);
    // Telegram says how long in the body, `{"ok":false,"error_code":429,
    // "parameters":{"retry_after":5}}`, as Discord does beside its
    // header, `{"message":"You are being rate limited.","retry_after":0.5}`.
    let retry_after = retry_after.or_else(|| {
        let v = (status == 429)
            .then(|| serde_json::from_slice::<serde_json::Value>(&answer.body).ok())
            .flatten()?;
        let secs = match format {
            WebhookFormat::Telegram => v["parameters"]["retry_after"].as_f64(),
            WebhookFormat::Discord => v["retry_after"].as_f64(),
            _ => None,
        }?;
        parse_retry_after(&secs.to_string())
    });
    // RFC 9110 §10.2.3 defines Retry-After for 503 and 3xx; 429 has it
    // from RFC 6585 §4. Only a 429's or a 503's is a wait asked of this
    // client.
    let retry_after = retry_after.filter(|_| matches!(status, 429 | 503));
    let url = url.to_owned();
    let outcome = match classify(status) {
        Verdict::Accepted => Ok(status),
        Verdict::Redirect => Err(SinkError::Refused(Box::new(WebhookError::Redirect {
            url,
            status,
        }))),
        Verdict::Refused => Err(SinkError::Refused(Box::new(WebhookError::Status {
            url,
            status,
            body: quote(redactor, &answer.body),
        }))),
        Verdict::Retry => {
            let error = Box::new(WebhookError::Status {
                url,
                status,
                body: quote(redactor, &answer.body),
            });
            // Reported, not slept here: the publisher waits it out in a
            // sleep that closing the outbox ends, where a sleep in the sink
            // would hold a shutdown for up to MAX_RETRY_AFTER.
            match retry_after {
                Some(wait) => Err(SinkError::UnavailableFor(wait, error)),
                None => Err(SinkError::Unavailable(error)),
            }
        }
    };
    Meaning {
        outcome,
        retry_after,
    }
}

/// The start of an answer's body, on one line, with every word that
/// holds a piece of the URL's path, query or userinfo masked (see
/// [`Redactor::redact`]); empty when the excerpt still holds one.
pub(crate) fn quote(redactor: &Redactor, body: &[u8]) -> String {
    // Masked before it is cut: a token cut in two is then hidden whole,
    // not left to be found as two pieces too short to match.
    let text = redactor.redact(&String::from_utf8_lossy(body));
    let quoted = one_line(&text, QUOTED_BODY_BYTES);
    // Cutting and flattening cannot make a piece of the token appear,
    // but if they ever did, nothing is quoted.
    if redactor.redact(&quoted) != quoted {
        return String::new();
    }
    quoted
}

/// A failed request, in words that hold no more of the URL (shown as
/// `url`) than its host: the webhook is down for now.
pub(crate) fn no_answer(e: ureq::Error, url: &str, redactor: &Redactor) -> WebhookError {
    let url = url.to_owned();
    match e {
        ureq::Error::Timeout(_) => WebhookError::Timeout { url },
        ureq::Error::HostNotFound => WebhookError::HostNotFound { url },
        ureq::Error::Rustls(e) => WebhookError::Tls {
            url,
            detail: e.to_string(),
        },
        ureq::Error::Tls(e) => WebhookError::Tls {
            url,
            detail: e.to_owned(),
        },
        ureq::Error::Io(e) => {
            // rustls reports a failed handshake as an io::Error around its own.
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return WebhookError::Tls {
                    url,
                    detail: tls.to_string(),
                };
            }
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                return WebhookError::Timeout { url };
            }
            WebhookError::Connection {
                url,
                detail: redactor.redact(&e.to_string()),
            }
        }
        other => WebhookError::Connection {
            url,
            detail: redactor.redact(&other.to_string()),
        },
    }
}

/// The reason phrase of a status, as the `http` crate knows it.
pub(crate) fn reason(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookUrl;

    /// What a sink of the URL quotes of a body.
    struct Quoting(Redactor);

    impl Quoting {
        fn quote(&self, body: &[u8]) -> String {
            quote(&self.0, body)
        }
    }

    #[test]
    fn status_classification_table() {
        use Verdict::*;
        let table = [
            (200, Accepted),
            (201, Accepted),
            (202, Accepted),
            (204, Accepted),
            (299, Accepted),
            (100, Refused),
            (101, Refused),
            (301, Redirect),
            (302, Redirect),
            (307, Redirect),
            (308, Redirect),
            (400, Refused),
            (401, Refused),
            (403, Refused),
            (404, Refused),
            (408, Retry),
            (409, Refused),
            (410, Refused),
            (413, Refused),
            (422, Refused),
            (429, Retry),
            (499, Refused),
            (500, Retry),
            (502, Retry),
            (503, Retry),
            (504, Retry),
            (599, Retry),
            (600, Refused),
        ];
        for (status, want) in table {
            assert_eq!(classify(status), want, "{status}");
        }
    }

    #[test]
    fn retry_after_table() {
        let table = [
            ("1", Some(Duration::from_secs(1))),
            (" 30 ", Some(Duration::from_secs(30))),
            ("0", Some(Duration::ZERO)),
            ("0.5", Some(Duration::from_millis(500))),
            ("3600", Some(MAX_RETRY_AFTER)),
            ("1e300", Some(MAX_RETRY_AFTER)),
            ("-1", None),
            ("NaN", None),
            ("inf", None),
            ("", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ];
        for (value, want) in table {
            assert_eq!(parse_retry_after(value), want, "{value:?}");
        }
    }

    fn url(u: &str) -> WebhookUrl {
        WebhookUrl::parse(u).unwrap()
    }

    #[test]
    fn errors_name_the_host_never_the_token() {
        let shown = url("https://hooks.slack.com/services/T0/B0/SECRETTOKEN")
            .shown()
            .to_owned();
        let errors = [
            WebhookError::Status {
                url: shown.clone(),
                status: 404,
                body: "no_service".into(),
            },
            WebhookError::Redirect {
                url: shown.clone(),
                status: 301,
            },
            WebhookError::Timeout { url: shown.clone() },
            WebhookError::Tls {
                url: shown.clone(),
                detail: "invalid peer certificate: UnknownIssuer".into(),
            },
            WebhookError::HostNotFound { url: shown.clone() },
        ];
        let want = [
            "https://hooks.slack.com/… answered 404 Not Found: no_service",
            "https://hooks.slack.com/… answered 301 Moved Permanently, a redirect, which rtinspect \
             does not follow: the webhook is misconfigured, or --webhook-url is not its final address",
            "no answer from https://hooks.slack.com/… within 10s",
            "TLS with https://hooks.slack.com/… failed: invalid peer certificate: UnknownIssuer \
             (is the server's CA in --webhook-ca-file, or in the system bundle \
             /etc/ssl/certs/ca-certificates.crt?)",
            "cannot resolve the host of https://hooks.slack.com/…",
        ];
        for (e, want) in errors.iter().zip(want) {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn a_quoted_body_loses_the_token() {
        let sink = Quoting(Redactor::for_url(
            "http://127.0.0.1:9/hook/SECRETTOKEN?sig=SECRETSIG",
        ));
        let quoted = sink.quote(b"unknown hook /hook/SECRETTOKEN?sig=SECRETSIG\n or SECRETTOKEN");
        assert!(!quoted.contains("SECRET"), "{quoted}");
        // A token across the end of the quote is hidden whole, not cut.
        for pad in 185..200 {
            let body = format!("{}SECRETTOKEN tail", "x".repeat(pad));
            let quoted = sink.quote(body.as_bytes());
            assert!(!quoted.contains("SECRET"), "{pad}: {quoted}");
        }
    }

    #[test]
    fn a_quoted_body_holds_no_part_of_the_token_however_echoed_or_cut() {
        let sink = Quoting(Redactor::for_url(
            "http://u:pw4Secret@127.0.0.1:9/services/T0AB/B0CD/Xk7Qz9wAbCd?key=k7Qz9w",
        ));
        let echoes = [
            "k7Qz9w",
            "K7QZ9W",
            "%6B%37%51%7A%39%77",
            "%6b%37%51%7a%39%77",
            "\\u006b7Qz9w",
            "Xk7Qz9wAbCd",
            "%2Fservices%2FT0AB%2FB0CD%2FXk7Qz9wAbCd%3Fkey%3Dk7Qz9w",
            "u:pw4Secret",
            "pw4S",
        ];
        for echo in echoes {
            // Every cut of the quote, the echo before, across and after it.
            for pad in 180..=QUOTED_BODY_BYTES {
                let body = format!("{} bad key {echo} (sent)", "x".repeat(pad));
                let quoted = sink.quote(body.as_bytes()).to_ascii_lowercase();
                let echo = echo.to_ascii_lowercase();
                for part in echo.as_bytes().windows(4) {
                    let part = std::str::from_utf8(part).unwrap();
                    assert!(!quoted.contains(part), "{echo} at {pad}: {quoted}");
                }
            }
        }
    }
}
