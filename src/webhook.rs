//! The webhook sink: each event is one `POST` to `--webhook-url`, its body
//! the envelope, a one-line `{"text": …}` that Slack's incoming webhooks
//! and Discord's Slack-compatible endpoint take, or a chat's own request:
//! a Discord embed, an ntfy message, a Telegram `sendMessage`. Each body is
//! built by a pure function of the event, cut to the chat's limits.
//!
//! A chat is paced below its service's published limit ([`pace`]), and the
//! events that wait meanwhile go together in one `POST`, a digest
//! ([`digest`]). The envelope format posts each event on its own, held back
//! only when an answer asks.
//!
//! The answer decides what the publisher does with the event (with every
//! event of a digest alike): 2xx is delivered; 408, 429 and 5xx (and no
//! answer at all) mean the webhook is down, and the same event is retried,
//! not before a 429's or 503's `Retry-After` is over (the publisher waits it
//! out, so that a shutdown can end the wait); any other status (a redirect
//! included: a webhook that redirects is misconfigured, and its target is
//! not trusted with the event) refuses this event, which is set aside.
//! Every request is bounded by [`REQUEST_TIMEOUT`], and runs on the
//! publisher's thread: the agent's resolver looks names up in that thread,
//! without starting one per request.
//!
//! The URL carries the webhook's token: no message from here holds more of
//! it than its scheme and host. A refusal quotes the first 200 bytes of the
//! answer's body, because a receiver's own words (`invalid_payload`,
//! `channel_is_archived`) are what tells an operator why; receivers echo the
//! request there too, so every word holding a piece of the URL's path, query
//! or userinfo (as written, decoded, or in another case) is masked before
//! the body is cut, and an excerpt that still held one would be left out.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::{Webhook, WebhookFormat, WebhookUrl};
use crate::docker::cut_at_char_boundary;
use crate::event::HealthEvent;
use crate::inspector::restart_under_way;
use crate::sink::{EventSink, SinkError};
use crate::tls::{CaError, SYSTEM_BUNDLE, load_roots};

pub mod digest;
pub mod pace;

use digest::Digest;
use pace::Pace;

/// Bound on one request, whole: connecting, TLS, sending, the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `Retry-After` asked of the publisher; a longer one is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How much of an answer's body is read (to the end, so the connection can
/// be kept); a longer one costs the connection.
const BODY_LIMIT: u64 = 64 * 1024;

/// How much of an error answer's body a message quotes.
const QUOTED_BODY_BYTES: usize = 200;

/// How long a name's addresses are reused: the resolver runs before every
/// request, a pooled connection's included.
const LOOKUP_TTL: Duration = Duration::from_secs(60);

/// Why the webhook sink could not be built: its CA certificates. A start-up
/// usage error, named after the option (or the system bundle).
pub type SetupError = CaError;

/// Why one request did not deliver an event. Each names the webhook by its
/// scheme and host only.
#[derive(Debug)]
pub enum WebhookError {
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
pub enum Verdict {
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
pub fn classify(status: u16) -> Verdict {
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
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// How long a chat's message waits for the events of the same burst (a
/// tick's, or Docker's events of a reboot) to go with it as one digest.
pub const DIGEST_WAIT: Duration = Duration::from_secs(2);

/// Posts each event to a webhook.
pub struct WebhookSink {
    agent: Agent,
    url: WebhookUrl,
    format: WebhookFormat,
    /// Where requests go: the URL, less what a format sends otherwise (ntfy's
    /// userinfo, Telegram's `chat_id`). A secret, as the URL is.
    target: String,
    /// ntfy's `Authorization`, from the URL's userinfo. A secret.
    authorization: Option<String>,
    /// Telegram's chat, from the URL's query.
    chat_id: Option<String>,
    /// How often the destination may be posted to.
    pace: Pace,
    /// This machine's name, as a digest names it.
    host: String,
    lookup: Arc<Lookup>,
}

/// One request to send: its body, the key the receiver de-duplicates on,
/// and the format's own headers.
struct Outgoing<'a> {
    body: Cow<'a, str>,
    /// `Idempotency-Key`: the event's id, or a digest's key.
    key: Cow<'a, str>,
    headers: Vec<(&'static str, String)>,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &self.url)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// The sink for `webhook`; for an `https://` URL its CA file (else the
    /// system bundle) is read now, so a bad one stops the start.
    pub fn new(webhook: &Webhook) -> Result<WebhookSink, SetupError> {
        let roots = if webhook.url.is_https() {
            load_roots(
                webhook.ca_file.as_ref(),
                "the system bundle (no --webhook-ca-file)",
            )?
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
        } else {
            Vec::new()
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::from(roots))
            // ring, as for PostgreSQL: no second crypto library in the binary.
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = Agent::config_builder()
            // Every status is an answer this sink classifies itself.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // Shorter than the idle timeout of the usual front ends (60 s).
            .max_idle_age(Duration::from_secs(30))
            .proxy(None)
            .user_agent(concat!("rtinspect/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        let lookup = Arc::new(Lookup::default());
        let agent = Agent::with_parts(
            config,
            DefaultConnector::new(),
            SharedLookup(lookup.clone()),
        );
        let url = &webhook.url;
        let (target, authorization, chat_id) = match webhook.format {
            // ntfy takes a token as `Bearer`; a token left in the URL would
            // go as `Basic` with an empty user, and in a proxy's log.
            WebhookFormat::Ntfy => (
                url.secret_without_userinfo(),
                url.userinfo()
                    .map(|(user, pass)| authorization(&user, pass.as_deref())),
                None,
            ),
            // Telegram reads `chat_id` from the query or the body; sent in
            // the body alone, it is never read from two places.
            WebhookFormat::Telegram => match url.take_query("chat_id") {
                Some((chat, rest)) => (rest, None, Some(chat)),
                None => (url.secret().to_owned(), None, None),
            },
            _ => (url.secret().to_owned(), None, None),
        };
        let pace = Pace::for_destination(webhook.format, chat_id.as_deref());
        Ok(WebhookSink {
            agent,
            url: webhook.url.clone(),
            format: webhook.format,
            target,
            authorization,
            chat_id,
            pace,
            host: digest::host_label(&rustix::system::uname().nodename().to_string_lossy()),
            lookup,
        })
    }

    /// One event in one request; the status of the answer that accepted it.
    fn post(&mut self, event: &HealthEvent) -> Result<u16, SinkError> {
        let mut headers = Vec::new();
        let body = match self.format {
            WebhookFormat::Envelope => Cow::Borrowed(event.envelope.as_str()),
            WebhookFormat::Slack => Cow::Owned(slack_body(event)),
            WebhookFormat::Discord => Cow::Owned(discord_body(event)),
            WebhookFormat::Ntfy => {
                let m = ntfy_message(event);
                self.ntfy_headers(m.title, m.priority, m.tags, &mut headers);
                Cow::Owned(m.body)
            }
            WebhookFormat::Telegram => {
                Cow::Owned(telegram_body(event, self.chat_id.as_deref().unwrap_or("")))
            }
        };
        self.send(Outgoing {
            body,
            key: Cow::Borrowed(&event.event_id),
            headers,
        })
    }

    /// `rtinspect notify-test`'s message, in the format's own shape: it
    /// says where it comes from and that alerts reach whoever reads it.
    fn post_test(&mut self, event: &HealthEvent) -> Result<u16, SinkError> {
        let title = format!("rtinspect: test message from {}", self.host);
        let line =
            "Sent by rtinspect notify-test: if you read this, rtinspect's alerts reach you here.";
        let mut headers = Vec::new();
        let body = match self.format {
            WebhookFormat::Envelope => event.envelope.clone(),
            WebhookFormat::Slack => {
                serde_json::json!({ "text": format!("{title}\n{line}") }).to_string()
            }
            WebhookFormat::Discord => serde_json::json!({
                "embeds": [{
                    "title": title,
                    "description": line,
                    "color": discord_color(Kind::Resolved),
                    "timestamp": event.occurred_at,
                }],
                "allowed_mentions": { "parse": [] },
            })
            .to_string(),
            WebhookFormat::Ntfy => {
                self.ntfy_headers(ntfy_title(&title), 3, "white_check_mark", &mut headers);
                line.to_owned()
            }
            WebhookFormat::Telegram => serde_json::json!({
                "chat_id": telegram_chat(self.chat_id.as_deref().unwrap_or("")),
                "text": format!("<b>{title}</b>\n{line}"),
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            })
            .to_string(),
        };
        self.send(Outgoing {
            body: Cow::Owned(body),
            key: Cow::Borrowed(&event.event_id),
            headers,
        })
    }

    /// Several events in one digest, in the format's own shape; the
    /// envelope format posts them one by one, as machines take them.
    fn post_digest(&mut self, events: &[HealthEvent]) -> Result<u16, SinkError> {
        let digest = Digest::of(events);
        let mut headers = Vec::new();
        let body = match self.format {
            // Machines take one envelope a request, never a digest.
            WebhookFormat::Envelope => return events.iter().try_fold(0, |_, e| self.post(e)),
            WebhookFormat::Slack => digest::slack_body(&digest, &self.host),
            WebhookFormat::Discord => digest::discord_body(&digest, &self.host),
            WebhookFormat::Ntfy => {
                let m = digest::ntfy_message(&digest, &self.host);
                self.ntfy_headers(m.title, m.priority, m.tags, &mut headers);
                m.body
            }
            WebhookFormat::Telegram => {
                digest::telegram_body(&digest, &self.host, self.chat_id.as_deref().unwrap_or(""))
            }
        };
        self.send(Outgoing {
            body: Cow::Owned(body),
            key: Cow::Owned(digest.key()),
            headers,
        })
    }

    /// ntfy's headers for a message, and the token if there is one.
    fn ntfy_headers(
        &self,
        title: String,
        priority: u8,
        tags: &str,
        headers: &mut Vec<(&'static str, String)>,
    ) {
        headers.extend([
            ("Title", title),
            ("Priority", priority.to_string()),
            ("Tags", tags.to_owned()),
        ]);
        if let Some(a) = &self.authorization {
            headers.push(("Authorization", a.clone()));
        }
    }

    /// One request; what its answer means for what it carries (accepted:
    /// its status). The pace counts it as it goes, and takes from every
    /// answer the wait it asks.
    fn send(&mut self, out: Outgoing<'_>) -> Result<u16, SinkError> {
        let content_type = match self.format {
            WebhookFormat::Ntfy => "text/plain; charset=utf-8",
            _ => "application/json",
        };
        let mut request = self
            .agent
            .post(&self.target)
            .header("Content-Type", content_type)
            // Delivery is at least once: the receiver de-duplicates on it.
            .header("Idempotency-Key", out.key.as_ref());
        for (name, value) in out.headers {
            request = request.header(name, value);
        }
        // Counted whatever comes back: a request that failed on the way
        // may still have reached the service.
        self.pace.sent(Instant::now());
        let sent = request.send(out.body.as_bytes());
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                // The next attempt looks the name up afresh.
                self.lookup.forget();
                return Err(SinkError::Unavailable(Box::new(self.failure(e))));
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        // Discord says how many requests are left and when its bucket
        // resets on every answer, a 2xx's included.
        let remaining = header("x-ratelimit-remaining");
        let reset_after = header("x-ratelimit-reset-after");
        // Read to the end, so the connection is kept; a 2xx whose body
        // breaks off was still accepted.
        let mut text = Vec::new();
        let _ = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .reader()
            .read_to_end(&mut text);
        // Telegram says how long in the body, `{"ok":false,"error_code":429,
        // "parameters":{"retry_after":5}}`, as Discord does beside its
        // header, `{"message":"You are being rate limited.","retry_after":0.5}`.
        let retry_after = retry_after.or_else(|| {
            let v = (status == 429)
                .then(|| serde_json::from_slice::<serde_json::Value>(&text).ok())
                .flatten()?;
            let secs = match self.format {
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
        if let Some(wait) =
            pace::asked_wait(retry_after, remaining.as_deref(), reset_after.as_deref())
        {
            self.pace.hold(Instant::now(), wait);
            // A 429's or a 503's wait is in the publisher's warning; an
            // accepted request's long one is said here, once per answer.
            if classify(status) == Verdict::Accepted && wait >= Duration::from_secs(5) {
                log::info!(
                    "{} answered {status} and asks to wait {:.1}s before the next request",
                    self.url.shown(),
                    wait.as_secs_f64()
                );
            }
        }
        let url = self.url.shown().to_owned();
        match classify(status) {
            Verdict::Accepted => Ok(status),
            Verdict::Redirect => Err(SinkError::Refused(Box::new(WebhookError::Redirect {
                url,
                status,
            }))),
            Verdict::Refused => Err(SinkError::Refused(Box::new(WebhookError::Status {
                url,
                status,
                body: self.quote(&text),
            }))),
            Verdict::Retry => {
                let error = Box::new(WebhookError::Status {
                    url,
                    status,
                    body: self.quote(&text),
                });
                // Reported, not slept here: the publisher waits it out in a
                // sleep that closing the outbox ends, where a sleep in this
                // call would hold a shutdown for up to MAX_RETRY_AFTER.
                match retry_after {
                    Some(wait) => Err(SinkError::UnavailableFor(wait, error)),
                    None => Err(SinkError::Unavailable(error)),
                }
            }
        }
    }

    /// The start of an answer's body, on one line, with every word that
    /// holds a piece of the URL's path, query or userinfo masked (see
    /// [`WebhookUrl::redact`]); empty when the excerpt still holds one.
    fn quote(&self, body: &[u8]) -> String {
        // Masked before it is cut: a token cut in two is then hidden whole,
        // not left to be found as two pieces too short to match.
        let text = self.url.redact(&String::from_utf8_lossy(body));
        let quoted = one_line(&text, QUOTED_BODY_BYTES);
        // Cutting and flattening cannot make a piece of the token appear,
        // but if they ever did, nothing is quoted.
        if self.url.redact(&quoted) != quoted {
            return String::new();
        }
        quoted
    }

    /// A failed request, in words that hold no more of the URL than its host.
    fn failure(&self, e: ureq::Error) -> WebhookError {
        let url = self.url.shown().to_owned();
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
                    detail: self.url.redact(&e.to_string()),
                }
            }
            other => WebhookError::Connection {
                url,
                detail: self.url.redact(&other.to_string()),
            },
        }
    }
}

impl EventSink for WebhookSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        self.post(event).map(drop)
    }

    fn trial(&mut self, event: &HealthEvent) -> Result<String, SinkError> {
        let status = self.post_test(event)?;
        Ok(format!("answered {status} {}", reason(status)))
    }

    fn ready_in(&mut self, now: Instant) -> Duration {
        self.pace.ready_in(now)
    }

    /// A chat's first message of a burst waits [`DIGEST_WAIT`] for the
    /// rest: a host's reboot is one digest, whatever the pace lets through.
    fn gather(&self) -> Duration {
        match self.format {
            WebhookFormat::Envelope => Duration::ZERO,
            _ => DIGEST_WAIT,
        }
    }

    /// One for the envelope format: each machine receiver takes one
    /// envelope a request, under its own `Idempotency-Key`. A chat takes a
    /// digest of up to [`digest::DIGEST_EVENTS`].
    fn batch_limit(&self) -> usize {
        match self.format {
            WebhookFormat::Envelope => 1,
            _ => digest::DIGEST_EVENTS,
        }
    }

    fn publish_batch(&mut self, events: &[HealthEvent]) -> Result<(), SinkError> {
        match events {
            [] => Ok(()),
            [event] => self.post(event).map(drop),
            _ => self.post_digest(events).map(drop),
        }
    }
}

/// ntfy's or another's `Authorization` for a URL's userinfo: a user alone,
/// or an empty user with a password, is a token (`Bearer`), a user and a
/// password are `Basic`.
fn authorization(user: &str, pass: Option<&str>) -> String {
    match pass {
        None => format!("Bearer {user}"),
        Some(token) if user.is_empty() => format!("Bearer {token}"),
        Some(pass) => format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What an event is about, as the chat formats tell it apart; the worst
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A crash loop: restarts in the window.
    CrashLoop,
    /// Not running.
    NotRunning,
    /// The healthcheck fails.
    Unhealthy,
    /// It restarted.
    Restarted,
    /// An incident ended.
    Resolved,
}

/// What changed, in a few words (`crash loop`, `still unhealthy`,
/// `resolved`), and the kind. A fact's kind is read from what was seen: not
/// running, else unhealthy, else the restart that made it a fact.
pub fn what_changed(event: &HealthEvent) -> (Kind, String, bool) {
    let Some(i) = event.incident.as_deref() else {
        let kind = if restart_under_way(&event.state) {
            Kind::Restarted
        } else if event.state != "running" {
            Kind::NotRunning
        } else if event.health == "unhealthy" {
            Kind::Unhealthy
        } else {
            Kind::Restarted
        };
        let what = match kind {
            Kind::NotRunning => "not running",
            Kind::Unhealthy => "unhealthy",
            _ => "restarted",
        };
        return (kind, what.to_owned(), false);
    };
    let (kind, name, state) = match i.kind.as_str() {
        "crash_loop" => (Kind::CrashLoop, "crash loop", "a crash loop"),
        "not_running" => (Kind::NotRunning, "not running", "not running"),
        "unhealthy" => (Kind::Unhealthy, "unhealthy", "unhealthy"),
        _ => (Kind::Restarted, "restarted", "open (restarted)"),
    };
    match event.event_type {
        "incident_resolved" => (Kind::Resolved, "resolved".to_owned(), false),
        "incident_escalated" => (kind, format!("now {state}"), false),
        "incident_reminder" => (kind, format!("still {state}"), true),
        _ => (kind, name.to_owned(), false),
    }
}

/// `text` cut to at most `max` characters (not bytes), with `…` as the last
/// when it was cut.
fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        cut.push('…');
    }
    cut
}

/// Discord's limits on an embed, in characters: "the combined sum of
/// characters in all title, description, field.name, field.value,
/// footer.text, and author.name fields across all embeds attached to a
/// message must not exceed 6000 characters" (its Embed Limits).
pub mod discord_limits {
    /// `title`.
    pub const TITLE: usize = 256;
    /// `description`.
    pub const DESCRIPTION: usize = 4096;
    /// A field's `name`.
    pub const FIELD_NAME: usize = 256;
    /// A field's `value`.
    pub const FIELD_VALUE: usize = 1024;
    /// Fields in an embed.
    pub const FIELDS: usize = 25;
    /// All of the above together.
    pub const TOTAL: usize = 6000;
}

/// The body of the discord format: Discord's execute-webhook JSON with one
/// embed (what changed and the game as its title, a colour by kind, the
/// facts as fields, the probe's output in a code block), every text cut to
/// Discord's limits, and `allowed_mentions` empty so that nothing in it,
/// `@everyone` in a game id included, pings anyone.
pub fn discord_body(event: &HealthEvent) -> String {
    use discord_limits as limit;
    let (kind, what, _) = what_changed(event);
    let color = discord_color(kind);
    let game = discord_text(&event.game_id);
    let mut what = what;
    if let Some(first) = what.get(..1) {
        what = format!("{}{}", first.to_ascii_uppercase(), &what[1..]);
    }
    let title = cut_chars(&format!("{what}: {game}"), limit::TITLE);
    let x = event.details.as_deref();
    let incident = event.incident.as_deref();
    let mut fields: Vec<(&str, String)> = vec![
        ("Game", game),
        (
            "Container",
            cut_at_char_boundary(&event.container_id, 12).to_owned(),
        ),
        ("State", discord_text(&event.state)),
        (
            "Health",
            if event.health.is_empty() {
                "no healthcheck".to_owned()
            } else {
                discord_text(&event.health)
            },
        ),
    ];
    if let Some(code) = x.and_then(|x| x.exit_code) {
        fields.push(("Exit code", code.to_string()));
    }
    // Either says so: an incident's `oom` counts the runs it saw end, the
    // details the last exit, which may be before the incident opened.
    let oom = [incident.map(|i| i.oom), x.and_then(|x| x.oom_killed)]
        .into_iter()
        .flatten()
        .reduce(|a, b| a || b);
    if let Some(oom) = oom {
        fields.push(("OOM", if oom { "yes" } else { "no" }.to_owned()));
    }
    fields.push(("Restarts", event.restart_count.to_string()));
    if let Some(i) = incident {
        fields.push(("Restarts in window", i.restarts_in_window.to_string()));
        fields.push(("Since", discord_text(&i.started_at)));
    }
    if let Some(error) = x.and_then(|x| x.error.as_deref()) {
        fields.push(("Error", discord_text(error)));
    }
    // Title first, the fields in order, the output with what is left.
    let mut left = limit::TOTAL - title.chars().count();
    let mut embed_fields = Vec::new();
    for (name, value) in fields.into_iter().take(limit::FIELDS) {
        let name = cut_chars(name, limit::FIELD_NAME);
        let room = left
            .saturating_sub(name.chars().count())
            .min(limit::FIELD_VALUE);
        let value = cut_chars(&value, room);
        if value.is_empty() {
            // Discord refuses an empty value.
            continue;
        }
        left -= name.chars().count() + value.chars().count();
        embed_fields.push(serde_json::json!({ "name": name, "value": value, "inline": true }));
    }
    let mut embed = serde_json::json!({
        "title": title,
        "color": color,
        "fields": embed_fields,
        "timestamp": event.occurred_at,
    });
    let output = x.and_then(|x| {
        x.health_output
            .as_deref()
            .or(x.health_log.last().map(String::as_str))
    });
    if let Some(output) = output.map(str::trim).filter(|o| !o.is_empty()) {
        // A backtick with a zero-width space after it cannot close the block.
        let inner = output.replace('`', "`\u{200B}");
        const FENCES: usize = "```\n\n```".len();
        let room = left.min(limit::DESCRIPTION).saturating_sub(FENCES);
        if room > 0 {
            embed["description"] = format!("```\n{}\n```", cut_chars(&inner, room)).into();
        }
    }
    serde_json::json!({
        "embeds": [embed],
        "allowed_mentions": { "parse": [] },
    })
    .to_string()
}

/// An embed's colour by kind: red, orange, yellow, green.
fn discord_color(kind: Kind) -> u32 {
    match kind {
        Kind::CrashLoop | Kind::NotRunning => 0xD9_30_25,
        Kind::Unhealthy => 0xF5_7C_00,
        Kind::Restarted => 0xF9_C7_00,
        Kind::Resolved => 0x2E_A0_43,
    }
}

/// `text` on one line: control characters, line and paragraph separators
/// and the invisible formatting characters (a right-to-left override
/// turns a name around) as spaces, trimmed.
fn flat(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || is_invisible(c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Unicode's line and paragraph separators and the format characters that
/// change how text reads without showing themselves.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Outside text as Discord shows it inert: on one line, every Markdown
/// character escaped (a game id `[runbook](https://…)` is no link, `**` no
/// bold), and `@` followed by a zero-width space (no mention).
fn discord_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in flat(text).chars() {
        match c {
            '\\' | '*' | '_' | '~' | '|' | '`' | '>' | '#' | '[' | ']' | '(' | ')' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            c => out.push(c),
        }
    }
    out
}

/// One ntfy message: the body and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyMessage {
    /// `Title`: what changed and the game, in printable ASCII.
    pub title: String,
    /// `Priority`, 1 (min) to 5 (max).
    pub priority: u8,
    /// `Tags`: emoji short codes ntfy shows before the title.
    pub tags: &'static str,
    /// The readable line, as plain text.
    pub body: String,
}

/// The longest ntfy `Title`, in characters: a phone's notification shows
/// less.
pub const NTFY_TITLE_CHARS: usize = 100;

/// The ntfy format's message: the readable line as the body, and as
/// headers a short title, a priority by kind (a reminder one lower) and a
/// tag. A header value holds printable ASCII only (a game id's other
/// characters are `?`): HTTP header values are not UTF-8, and a CR or LF
/// would end the header.
pub fn ntfy_message(event: &HealthEvent) -> NtfyMessage {
    let (_, what, _) = what_changed(event);
    let (priority, tags) = ntfy_priority(event);
    let title = ntfy_title(&format!("rtinspect: {what} {}", event.game_id));
    NtfyMessage {
        title,
        priority,
        tags,
        body: readable_line(event, flat),
    }
}

/// An event's ntfy `Priority` by kind, a reminder one lower, and its `Tags`.
fn ntfy_priority(event: &HealthEvent) -> (u8, &'static str) {
    let (kind, _, reminder) = what_changed(event);
    let (priority, tags) = match kind {
        Kind::CrashLoop => (5, "rotating_light"),
        Kind::NotRunning => (4, "rotating_light"),
        Kind::Unhealthy | Kind::Restarted => (3, "warning"),
        Kind::Resolved => (2, "white_check_mark"),
    };
    (if reminder { priority - 1 } else { priority }, tags)
}

/// `text` as ntfy's `Title`: a header value of at most [`NTFY_TITLE_CHARS`].
fn ntfy_title(text: &str) -> String {
    let mut title = header_value(text);
    if title.len() > NTFY_TITLE_CHARS {
        // ASCII: bytes are characters.
        title.truncate(NTFY_TITLE_CHARS - 3);
        title.push_str("...");
    }
    title
}

/// `text` as a header value: printable ASCII, a control character a space,
/// any other `?`, trimmed.
fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The longest Telegram message text, in characters after its entities
/// are parsed; counted here before, escapes whole, to be safe.
pub const TELEGRAM_TEXT_CHARS: usize = 4096;

/// The body of the telegram format: `sendMessage` to `chat_id` (a number
/// when it is one, else a `@channel` name), the readable line as HTML with
/// `&`, `<`, `>` escaped and an `@` that cannot mention anyone, at most
/// [`TELEGRAM_TEXT_CHARS`], cut between escapes.
pub fn telegram_body(event: &HealthEvent, chat_id: &str) -> String {
    serde_json::json!({
        "chat_id": telegram_chat(chat_id),
        "text": telegram_text(&readable_line(event, flat)),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
    .to_string()
}

/// A `chat_id` as Telegram takes it: a number when it is one, else a
/// `@channel` name.
fn telegram_chat(chat_id: &str) -> serde_json::Value {
    match chat_id.parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(chat_id),
    }
}

/// What stands for `c` in Telegram HTML when it is not itself: `&`, `<`,
/// `>` escaped, and `@` that cannot mention anyone.
fn telegram_escape(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '@' => Some("@\u{200B}"),
        _ => None,
    }
}

/// `text` as Telegram HTML, uncut.
fn telegram_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match telegram_escape(c) {
            Some(piece) => out.push_str(piece),
            None => out.push(c),
        }
    }
    out
}

/// `line` as Telegram HTML, cut to [`TELEGRAM_TEXT_CHARS`] with `…`.
fn telegram_text(line: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let mut buf = [0; 4];
        let piece = match telegram_escape(c) {
            Some(piece) => piece,
            None => &*c.encode_utf8(&mut buf),
        };
        let n = piece.chars().count();
        // Room for `…` unless this is the last.
        let reserve = usize::from(chars.peek().is_some());
        if count + n + reserve > TELEGRAM_TEXT_CHARS {
            out.push('…');
            break;
        }
        out.push_str(piece);
        count += n;
    }
    out
}

/// The `{"text": …}` body of the slack format.
pub fn slack_body(event: &HealthEvent) -> String {
    serde_json::json!({ "text": slack_line(event) }).to_string()
}

/// One readable line: the game, the short container id, the state, the
/// health, the restart count, and with extended details the exit, the error
/// and the last probe's output.
///
/// Text that comes from outside (the game id, Docker's error and probe
/// output) is made inert: Slack's `&`, `<`, `>` escaped so that `<!channel>`
/// pings no one, a zero-width space after `@` so that Discord's `@everyone`
/// does not either, backticks taken out of code spans, all on one line.
pub fn slack_line(event: &HealthEvent) -> String {
    readable_line(event, inert)
}

/// The readable line, every text from outside passed through `text`.
fn readable_line(event: &HealthEvent, text: fn(&str) -> String) -> String {
    let x = event.details.as_deref();
    let mut state = event.state.clone();
    let exit = x
        .and_then(|x| x.exit_code)
        .map(|c| format!("exit code {c}"));
    let oom = x.and_then(|x| x.oom_killed) == Some(true);
    match (exit, oom) {
        (Some(exit), true) => state.push_str(&format!(" ({exit}, OOM-killed)")),
        (Some(exit), false) => state.push_str(&format!(" ({exit})")),
        (None, true) => state.push_str(" (OOM-killed)"),
        (None, false) => {}
    }
    let mut health = if event.health.is_empty() {
        "no healthcheck".to_owned()
    } else {
        format!("health {}", event.health)
    };
    let streak = x.and_then(|x| x.health_failing_streak).filter(|n| *n > 0);
    let output = x
        .and_then(|x| x.health_output.as_deref())
        .map(|o| one_line(o, 120));
    match (streak, output.filter(|o| !o.is_empty())) {
        (Some(n), Some(o)) => {
            health.push_str(&format!(" ({n} failed probes, last said \"{}\")", text(&o)))
        }
        (Some(n), None) => health.push_str(&format!(" ({n} failed probes)")),
        (None, Some(o)) => health.push_str(&format!(" (last probe said \"{}\")", text(&o))),
        (None, None) => {}
    }
    let mut line = match event.incident.as_deref() {
        None => "rtinspect: ".to_owned(),
        Some(i) => incident_prefix(event, i),
    };
    line.push_str(&format!(
        "game `{}` container `{}`: {}, {}, restart count {}",
        text(&event.game_id).replace('`', "'"),
        cut_at_char_boundary(&event.container_id, 12),
        text(&state),
        text(&health),
        event.restart_count,
    ));
    if let Some(error) = x.and_then(|x| x.error.as_deref()) {
        line.push_str(&format!(", error \"{}\"", text(&one_line(error, 160))));
    }
    line
}

/// What an incident's message starts with: what changed, what it is, for
/// how long, and the incident's id to group on.
fn incident_prefix(event: &HealthEvent, i: &crate::event::IncidentFacts) -> String {
    let (_, what, _) = what_changed(event);
    let mut prefix = format!("rtinspect: [{what}] ");
    if i.restarts_in_window > 0 {
        prefix.push_str(&format!(
            "{} restarts in the window, ",
            i.restarts_in_window
        ));
    }
    if i.oom {
        prefix.push_str("out of memory, ");
    }
    // The id's last digits: a UUID v7 begins with its time, the same for
    // every incident opened in the same minute.
    let id = &i.incident_id;
    prefix.push_str(&format!(
        "since {} (incident …{}); ",
        i.started_at,
        &id[id.ceil_char_boundary(id.len().saturating_sub(8))..]
    ));
    prefix
}

/// `text` on one line (control characters as spaces, trimmed), cut to at
/// most `max` bytes, with `…` where it was cut.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    let cut = cut_at_char_boundary(flat, max);
    if cut.len() < flat.len() {
        format!("{}…", cut.trim_end())
    } else {
        cut.to_owned()
    }
}

/// Text that cannot address anyone or break out of Slack's markup.
fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The reason phrase of a status, as the `http` crate knows it.
fn reason(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Name lookups for the agent, in the calling thread and remembered for
/// [`LOOKUP_TTL`].
///
/// ureq's default resolver starts a thread for each lookup when a timeout is
/// set, and panics if it cannot; under the unit's `TasksMax` that is a crash
/// waiting for a busy day. Here the lookup runs in the publisher's thread,
/// bounded by the C library's resolver timeouts (musl: 5 s, 2 attempts, the
/// name servers asked in parallel), and its answer is kept: the resolver is
/// asked before every request, a pooled connection's included.
#[derive(Debug, Default)]
struct Lookup {
    cached: Mutex<Option<(String, Instant, Vec<SocketAddr>)>>,
}

impl Lookup {
    fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn addresses(&self, host_port: &str) -> io::Result<Vec<SocketAddr>> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((key, at, addrs)) = cached.as_ref()
            && key == host_port
            && at.elapsed() < LOOKUP_TTL
        {
            return Ok(addrs.clone());
        }
        let addrs: Vec<SocketAddr> = host_port.to_socket_addrs()?.collect();
        *cached = Some((host_port.to_owned(), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

/// The agent's handle on the shared [`Lookup`].
#[derive(Debug)]
struct SharedLookup(Arc<Lookup>);

impl Resolver for SharedLookup {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri("no host".into()))?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host_port = format!("{}:{port}", authority.host());
        let found = self.0.addresses(&host_port).map_err(|e| {
            log::debug!(err:% = e; "looking up {} failed", authority.host());
            ureq::Error::HostNotFound
        })?;
        let mut addrs = self.empty();
        for addr in config.ip_family().keep_wanted(found.into_iter()).take(16) {
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_inert_in_a_discord_embed() {
        let table = [
            (
                "[runbook](https://evil.example/login)",
                "\\[runbook\\]\\(https://evil.example/login\\)",
            ),
            (
                "**bold** ||spoiler|| `code`",
                "\\*\\*bold\\*\\* \\|\\|spoiler\\|\\| \\`code\\`",
            ),
            ("@everyone", "@\u{200B}everyone"),
            ("game\u{202E}1\u{2028}2", "game 1 2"),
            ("g-42", "g-42"),
        ];
        for (text, want) in table {
            assert_eq!(discord_text(text), want, "{text:?}");
        }
    }

    #[test]
    fn an_incident_line_says_what_changed_first() {
        let seen = crate::event::stopped_event("g-7");
        let facts = crate::event::IncidentFacts {
            incident_id: "019ae1c5-aaaa-7000-8000-000000000000".into(),
            kind: "crash_loop".into(),
            started_at: "2026-12-02T15:40:13.104861Z".into(),
            restarts_in_window: 4,
            oom: true,
        };
        let observation = crate::inspector::Observation {
            container_id: seen.container_id.clone(),
            restart_count: 4,
            status: "running".into(),
            health: String::new(),
            details: None,
        };
        let table = [
            ("incident_opened", "rtinspect: [crash loop] 4 restarts"),
            (
                "incident_escalated",
                "rtinspect: [now a crash loop] 4 restarts",
            ),
            (
                "incident_reminder",
                "rtinspect: [still a crash loop] 4 restarts",
            ),
            ("incident_resolved", "rtinspect: [resolved] 4 restarts"),
        ];
        for (event_type, start) in table {
            let e = HealthEvent::for_incident(
                event_type,
                facts.clone(),
                "g-7".into(),
                observation.clone(),
                std::time::SystemTime::UNIX_EPOCH,
            );
            let line = slack_line(&e);
            assert!(line.starts_with(start), "{line}");
            assert!(
                line.contains(
                    "out of memory, since 2026-12-02T15:40:13.104861Z (incident …00000000); \
                     game `g-7`"
                ),
                "{line}"
            );
        }
    }
    use crate::config::CaFile;
    use crate::inspector::{Finding, Observation, Reason, StateDetails};
    use std::time::SystemTime;

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

    fn event(game: &str, status: &str, health: &str, details: Option<StateDetails>) -> HealthEvent {
        HealthEvent::with_id(
            "0193a1b2-0000-7000-8000-000000000000".into(),
            Finding {
                game_id: game.into(),
                observation: Observation {
                    container_id:
                        "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee".into(),
                    restart_count: 3,
                    status: status.into(),
                    health: health.into(),
                    details: details.map(Box::new),
                },
                reasons: vec![Reason::NotRunning],
            },
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn the_slack_line_table() {
        let table = [
            (
                event("g-42", "exited", "", None),
                "rtinspect: game `g-42` container `d3c207677dd0`: exited, no healthcheck, restart count 3",
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "rtinspect: game `g-42` container `d3c207677dd0`: running, health unhealthy, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "exited",
                    "",
                    Some(StateDetails {
                        exit_code: Some(137),
                        oom_killed: Some(true),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect: game `g-42` container `d3c207677dd0`: exited (exit code 137, OOM-killed), \
                 no healthcheck, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "exited",
                    "",
                    Some(StateDetails {
                        exit_code: Some(3),
                        oom_killed: Some(false),
                        finished_at: Some("2026-11-27T09:42:58Z".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect: game `g-42` container `d3c207677dd0`: exited (exit code 3), \
                 no healthcheck, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "running",
                    "unhealthy",
                    Some(StateDetails {
                        health_failing_streak: Some(3),
                        health_output: Some("probe says no\n".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect: game `g-42` container `d3c207677dd0`: running, health unhealthy \
                 (3 failed probes, last said \"probe says no\"), restart count 3",
            ),
            (
                event(
                    "g-42",
                    "created",
                    "",
                    Some(StateDetails {
                        exit_code: Some(127),
                        error: Some("exec: \"/x\": no such file\n".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect: game `g-42` container `d3c207677dd0`: created (exit code 127), \
                 no healthcheck, restart count 3, error \"exec: \"/x\": no such file\"",
            ),
            (
                event("<!channel> @everyone `x`\n&", "exited", "", None),
                "rtinspect: game `&lt;!channel&gt; @\u{200B}everyone 'x' &amp;` container \
                 `d3c207677dd0`: exited, no healthcheck, restart count 3",
            ),
        ];
        for (event, want) in table {
            assert_eq!(slack_line(&event), want);
        }
    }

    #[test]
    fn the_slack_body_is_one_json_text() {
        let e = event("g\"1", "exited", "", None);
        let v: serde_json::Value = serde_json::from_str(&slack_body(&e)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["text"], slack_line(&e));
    }

    #[test]
    fn long_texts_are_cut_with_an_ellipsis_on_one_line() {
        assert_eq!(one_line("  a\nb\tc  ", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab  cdef", 4), "ab…");
        assert_eq!(one_line("éé", 3), "é…");
        let e = event(
            "g",
            "running",
            "unhealthy",
            Some(StateDetails {
                health_output: Some("x".repeat(512)),
                ..StateDetails::default()
            }),
        );
        let line = slack_line(&e);
        assert!(
            line.contains(&format!("(last probe said \"{}…\")", "x".repeat(120))),
            "{line}"
        );
    }

    /// An incident's event: `kind`, changed as `event_type`, on `game`.
    fn incident(event_type: &'static str, kind: &str, game: &str) -> HealthEvent {
        HealthEvent::for_incident(
            event_type,
            crate::event::IncidentFacts {
                incident_id: "019ae1c5-aaaa-7000-8000-000000000000".into(),
                kind: kind.into(),
                started_at: "2026-12-02T15:40:13.104861Z".into(),
                restarts_in_window: 4,
                oom: false,
            },
            game.into(),
            Observation {
                container_id: "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee"
                    .into(),
                restart_count: 7,
                status: "running".into(),
                health: String::new(),
                details: None,
            },
            SystemTime::UNIX_EPOCH,
        )
    }

    /// A fact whose probe said `output` and whose game is `game`. The
    /// output is set after the envelope is made, which would leave out one
    /// this long: the builders must cope with any.
    fn probed(game: &str, output: &str) -> HealthEvent {
        let mut e = event(game, "running", "unhealthy", None);
        e.details = Some(Box::new(StateDetails {
            health_failing_streak: Some(3),
            health_output: Some(output.into()),
            ..StateDetails::default()
        }));
        e
    }

    /// Events with the worst of what may come from outside.
    fn hostile() -> Vec<HealthEvent> {
        let long_game = "g".repeat(300);
        let mut all = vec![
            probed(&long_game, &"x".repeat(10 * 1024)),
            probed("@everyone <script>alert(1)</script>", "```\n@here & <b>"),
            probed("g-42\r\nX-Injected: 1", "line\r\nline"),
            probed("jeu-été-ゲーム", &"é".repeat(10 * 1024)),
        ];
        let mut e = event(&"@everyone".repeat(40), "exited", "", None);
        e.details = Some(Box::new(StateDetails {
            error: Some("e".repeat(5000)),
            health_output: Some("o".repeat(10 * 1024)),
            exit_code: Some(137),
            oom_killed: Some(true),
            ..StateDetails::default()
        }));
        all.push(e);
        all.push(incident("incident_opened", "crash_loop", &long_game));
        all
    }

    #[test]
    fn what_changed_table() {
        use Kind::*;
        let table = [
            (
                event("g", "exited", "", None),
                NotRunning,
                "not running",
                false,
            ),
            (
                event("g", "running", "unhealthy", None),
                Unhealthy,
                "unhealthy",
                false,
            ),
            (
                event("g", "running", "", None),
                Restarted,
                "restarted",
                false,
            ),
            (
                incident("incident_opened", "crash_loop", "g"),
                CrashLoop,
                "crash loop",
                false,
            ),
            (
                incident("incident_escalated", "crash_loop", "g"),
                CrashLoop,
                "now a crash loop",
                false,
            ),
            (
                incident("incident_reminder", "unhealthy", "g"),
                Unhealthy,
                "still unhealthy",
                true,
            ),
            (
                incident("incident_resolved", "not_running", "g"),
                Resolved,
                "resolved",
                false,
            ),
        ];
        for (e, kind, what, reminder) in table {
            assert_eq!(
                what_changed(&e),
                (kind, what.to_owned(), reminder),
                "{what}"
            );
        }
    }

    fn discord(e: &HealthEvent) -> serde_json::Value {
        serde_json::from_str(&discord_body(e)).unwrap()
    }

    #[test]
    fn the_discord_body_is_one_embed_by_kind_with_mentions_off() {
        // (event, title, colour)
        let table = [
            (
                incident("incident_opened", "crash_loop", "g-42"),
                "Crash loop: g-42",
                0xD93025,
            ),
            (
                incident("incident_resolved", "crash_loop", "g-42"),
                "Resolved: g-42",
                0x2EA043,
            ),
            (
                event("g-42", "exited", "", None),
                "Not running: g-42",
                0xD93025,
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "Unhealthy: g-42",
                0xF57C00,
            ),
            (
                event("g-42", "running", "", None),
                "Restarted: g-42",
                0xF9C700,
            ),
            (
                incident("incident_reminder", "not_running", "g-42"),
                "Still not running: g-42",
                0xD93025,
            ),
        ];
        for (e, title, color) in table {
            let v = discord(&e);
            assert_eq!(v["allowed_mentions"], serde_json::json!({ "parse": [] }));
            assert_eq!(v["embeds"].as_array().unwrap().len(), 1);
            assert_eq!(v["embeds"][0]["title"], title);
            assert_eq!(v["embeds"][0]["color"], color, "{title}");
        }
        let v = discord(&event(
            "g-42",
            "exited",
            "",
            Some(StateDetails {
                exit_code: Some(137),
                oom_killed: Some(true),
                health_output: Some("probe says no\n".into()),
                ..StateDetails::default()
            }),
        ));
        let fields: Vec<(String, String)> = v["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().into(),
                    f["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("Game", "g-42"),
            ("Container", "d3c207677dd0"),
            ("State", "exited"),
            ("Health", "no healthcheck"),
            ("Exit code", "137"),
            ("OOM", "yes"),
            ("Restarts", "3"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(fields, want);
        assert_eq!(v["embeds"][0]["description"], "```\nprobe says no\n```");
        let v = discord(&incident("incident_opened", "crash_loop", "g-42"));
        let fields = v["embeds"][0]["fields"].to_string();
        assert!(
            fields.contains(r#"{"inline":true,"name":"Restarts in window","value":"4"}"#),
            "{fields}"
        );
    }

    #[test]
    fn the_discord_body_keeps_to_discords_limits_whatever_comes_in() {
        use discord_limits as limit;
        let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        for e in hostile() {
            let v = discord(&e);
            let embed = &v["embeds"][0];
            let fields = embed["fields"].as_array().unwrap();
            assert!(chars(&embed["title"]) <= limit::TITLE);
            assert!(chars(&embed["description"]) <= limit::DESCRIPTION);
            assert!(fields.len() <= limit::FIELDS);
            let mut total = chars(&embed["title"]) + chars(&embed["description"]);
            for f in fields {
                assert!(chars(&f["name"]) <= limit::FIELD_NAME);
                assert!(
                    (1..=limit::FIELD_VALUE).contains(&chars(&f["value"])),
                    "{f}"
                );
                total += chars(&f["name"]) + chars(&f["value"]);
            }
            assert!(total <= limit::TOTAL, "{total}");
            assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
            let title = embed["title"].as_str().unwrap();
            assert!(!title.contains(['\r', '\n']), "{title}");
            // The probe's output stays inside its block.
            if let Some(d) = embed["description"].as_str() {
                assert!(d.starts_with("```\n") && d.ends_with("\n```"), "{d}");
                assert_eq!(d.matches("```").count(), 2, "{d}");
            }
        }
        let v = discord(&probed("g", &"x".repeat(10 * 1024)));
        let d = v["embeds"][0]["description"].as_str().unwrap();
        assert!(d.ends_with("x…\n```"), "cut with a mark");
    }

    #[test]
    fn the_ntfy_message_table() {
        // (event, title, priority, tags)
        let table = [
            (
                incident("incident_opened", "crash_loop", "g-42"),
                "rtinspect: crash loop g-42",
                5,
                "rotating_light",
            ),
            (
                incident("incident_reminder", "crash_loop", "g-42"),
                "rtinspect: still a crash loop g-42",
                4,
                "rotating_light",
            ),
            (
                event("g-42", "exited", "", None),
                "rtinspect: not running g-42",
                4,
                "rotating_light",
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "rtinspect: unhealthy g-42",
                3,
                "warning",
            ),
            (
                event("g-42", "running", "", None),
                "rtinspect: restarted g-42",
                3,
                "warning",
            ),
            (
                incident("incident_resolved", "unhealthy", "g-42"),
                "rtinspect: resolved g-42",
                2,
                "white_check_mark",
            ),
            (
                incident("incident_reminder", "unhealthy", "g-42"),
                "rtinspect: still unhealthy g-42",
                2,
                "warning",
            ),
        ];
        for (e, title, priority, tags) in table {
            let m = ntfy_message(&e);
            assert_eq!(
                (m.title.as_str(), m.priority, m.tags),
                (title, priority, tags)
            );
        }
        let m = ntfy_message(&event("<b>@everyone</b> & `x`", "exited", "", None));
        assert_eq!(
            m.body,
            "rtinspect: game `<b>@everyone</b> & 'x'` container `d3c207677dd0`: exited, \
             no healthcheck, restart count 3",
            "plain text: nothing escaped"
        );
    }

    #[test]
    fn ntfy_headers_are_printable_ascii_and_short() {
        for e in hostile() {
            let m = ntfy_message(&e);
            assert!(
                m.title.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{:?}",
                m.title
            );
            assert!(m.title.chars().count() <= NTFY_TITLE_CHARS, "{}", m.title);
            assert!(!m.body.contains(['\r', '\n']), "{:?}", m.body);
        }
        let m = ntfy_message(&event("g-42\r\nX-Injected: 1", "exited", "", None));
        assert_eq!(m.title, "rtinspect: not running g-42  X-Injected: 1");
        let m = ntfy_message(&event("jeu-été", "exited", "", None));
        assert_eq!(m.title, "rtinspect: not running jeu-?t?");
    }

    #[test]
    fn a_userinfo_becomes_a_bearer_token_or_basic() {
        assert_eq!(authorization("", Some("tk_abc")), "Bearer tk_abc");
        assert_eq!(authorization("tk_abc", None), "Bearer tk_abc");
        // RFC 7617's example.
        assert_eq!(
            authorization("Aladdin", Some("open sesame")),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for (bytes, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(bytes.as_bytes()), want);
        }
    }

    fn telegram(e: &HealthEvent, chat: &str) -> serde_json::Value {
        serde_json::from_str(&telegram_body(e, chat)).unwrap()
    }

    #[test]
    fn the_telegram_body_is_escaped_html_to_the_chat() {
        let v = telegram(
            &event("<script>&@everyone", "exited", "", None),
            "-1001234567890",
        );
        assert_eq!(
            v,
            serde_json::json!({
                "chat_id": -1001234567890_i64,
                "text": "rtinspect: game `&lt;script&gt;&amp;@\u{200B}everyone` container \
                         `d3c207677dd0`: exited, no healthcheck, restart count 3",
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            })
        );
        assert_eq!(
            telegram(&event("g", "exited", "", None), "@ops")["chat_id"],
            "@ops"
        );
        let v = telegram(&incident("incident_resolved", "crash_loop", "g-42"), "1");
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .starts_with("rtinspect: [resolved] 4 restarts"),
            "{v}"
        );
    }

    #[test]
    fn the_telegram_text_is_cut_to_4096_between_escapes() {
        for e in hostile() {
            let text = telegram(&e, "1")["text"].as_str().unwrap().to_owned();
            assert!(
                text.chars().count() <= TELEGRAM_TEXT_CHARS,
                "{}",
                text.chars().count()
            );
            assert!(!text.contains(['\r', '\n', '<', '>']), "{text}");
        }
        // Cut at every place around the limit, an escape never split.
        for pad in 4080..4100 {
            let line = format!("{}{}", "x".repeat(pad), "<&>".repeat(10));
            let text = telegram_text(&line);
            assert!(text.chars().count() <= TELEGRAM_TEXT_CHARS, "{pad}");
            let body = text.trim_end_matches('…');
            let body = body.trim_start_matches('x');
            assert!(
                body.is_empty()
                    || body
                        .replace("&lt;", "")
                        .replace("&amp;", "")
                        .replace("&gt;", "")
                        .is_empty(),
                "{pad}: {body}"
            );
        }
        assert_eq!(telegram_text("a<b"), "a&lt;b");
        assert_eq!(telegram_text(&"é".repeat(4096)), "é".repeat(4096));
        assert_eq!(
            telegram_text(&"é".repeat(4097)),
            format!("{}…", "é".repeat(4095))
        );
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
        let sink = WebhookSink::new(&Webhook {
            url: url("http://127.0.0.1:9/hook/SECRETTOKEN?sig=SECRETSIG"),
            format: WebhookFormat::Envelope,
            ca_file: None,
        })
        .unwrap();
        let quoted = sink.quote(b"unknown hook /hook/SECRETTOKEN?sig=SECRETSIG\n or SECRETTOKEN");
        assert!(!quoted.contains("SECRET"), "{quoted}");
        assert!(!format!("{sink:?}").contains("SECRET"));
        // A token across the end of the quote is hidden whole, not cut.
        for pad in 185..200 {
            let body = format!("{}SECRETTOKEN tail", "x".repeat(pad));
            let quoted = sink.quote(body.as_bytes());
            assert!(!quoted.contains("SECRET"), "{pad}: {quoted}");
        }
    }

    #[test]
    fn a_quoted_body_holds_no_part_of_the_token_however_echoed_or_cut() {
        let sink = WebhookSink::new(&Webhook {
            url: url("http://u:pw4Secret@127.0.0.1:9/services/T0AB/B0CD/Xk7Qz9wAbCd?key=k7Qz9w"),
            format: WebhookFormat::Slack,
            ca_file: None,
        })
        .unwrap();
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

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("rtinspect-webhook-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let fifo = dir.join("fifo.pem");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let table = [
            (
                dir.join("missing.pem"),
                "--webhook-ca-file",
                "cannot read CA certificates",
            ),
            (dir.clone(), "--webhook-ca-file", "not a regular file"),
            (fifo, "--webhook-ca-file", "not a regular file"),
            (empty, "--webhook-ca-file", "no CA certificate in it"),
            (garbage, "--webhook-ca-file", "not PEM CA certificates"),
        ];
        for (path, named_by, want) in table {
            let e = WebhookSink::new(&Webhook {
                url: url("https://example.org/SECRETTOKEN"),
                format: WebhookFormat::Envelope,
                ca_file: Some(CaFile {
                    path: path.clone(),
                    named_by: named_by.into(),
                }),
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with(&format!("{named_by} {}", path.display())),
                "{e}"
            );
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A webhook on 127.0.0.1 answering every request with `head` (a status
    /// and its headers) and no body; its URL, and how many it answered.
    fn answering(head: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let (url, answered, _) = recording(head);
        (url, answered)
    }

    /// Each request's `Idempotency-Key` and body, in order.
    type Received = Arc<Mutex<Vec<(String, String)>>>;

    /// [`answering`], and what it received.
    fn recording(head: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>, Received) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let received = Received::default();
        let count = answered.clone();
        let requests = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let count = count.clone();
                let requests = requests.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    // One request after another on the kept connection.
                    loop {
                        let mut length = 0;
                        let mut key = String::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end().to_ascii_lowercase();
                            if line.is_empty() {
                                break;
                            }
                            if let Some(v) = line.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                            if let Some(v) = line.strip_prefix("idempotency-key:") {
                                key = v.trim().to_owned();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let body = String::from_utf8(body).unwrap();
                        requests.lock().unwrap().push((key, body));
                        let answer = format!("HTTP/1.1 {head}\r\nContent-Length: 0\r\n\r\n");
                        writer.write_all(answer.as_bytes()).unwrap();
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        (url, answered, received)
    }

    fn sink_for(url: &str) -> WebhookSink {
        WebhookSink::new(&Webhook {
            url: WebhookUrl::parse(url).unwrap(),
            format: WebhookFormat::Envelope,
            ca_file: None,
        })
        .unwrap()
    }

    #[test]
    fn a_retry_after_is_reported_to_the_publisher_not_slept() {
        let table: [(&'static str, Option<Duration>); 6] = [
            (
                "429 Too Many Requests\r\nRetry-After: 30",
                Some(Duration::from_secs(30)),
            ),
            (
                "503 Service Unavailable\r\nRetry-After: 0.5",
                Some(Duration::from_millis(500)),
            ),
            (
                "429 Too Many Requests\r\nRetry-After: 3600",
                Some(MAX_RETRY_AFTER),
            ),
            (
                "429 Too Many Requests\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT",
                None,
            ),
            // Only a 429's or a 503's is a wait asked of this client.
            ("500 Internal Server Error\r\nRetry-After: 30", None),
            ("408 Request Timeout", None),
        ];
        for (head, want) in table {
            let (url, _) = answering(head);
            let started = Instant::now();
            let e = sink_for(&url)
                .publish(&crate::event::stopped_event("a"))
                .unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(5), "{head}: slept");
            assert!(
                matches!(e, SinkError::Unavailable(_) | SinkError::UnavailableFor(..)),
                "{head}: {e}"
            );
            assert_eq!(e.retry_after(), want, "{head}: {e}");
            assert!(!e.to_string().contains("waited"), "{e}");
        }
    }

    #[test]
    fn close_ends_the_wait_a_429_asked_for_at_once() {
        use crate::publisher::{Backoff, Outbox, Rejects, spawn};
        let (url, answered) = answering("429 Too Many Requests\r\nRetry-After: 60");
        let (tx, outbox) = Outbox::new(Vec::new());
        let p = spawn(
            Box::new(sink_for(&url)),
            outbox.clone(),
            Rejects::new(None, 0),
            Backoff::default(),
            Arc::new(crate::telemetry::Telemetry::for_sinks(&["webhook"])),
        )
        .unwrap();
        tx.send(crate::event::stopped_event("a")).unwrap();
        crate::fakes::wait_for(|| answered.load(std::sync::atomic::Ordering::SeqCst) == 1);
        let closing = Instant::now();
        assert_eq!(outbox.close().len(), 1, "the event goes back for the spool");
        assert!(
            p.wait_until(closing + Duration::from_millis(200)),
            "the publisher still waits out the 60 s"
        );
        eprintln!(
            "publisher ended {:?} after a close during a 60 s Retry-After",
            closing.elapsed()
        );
        p.join_if_ended();
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn sink_as(url: &str, format: WebhookFormat) -> WebhookSink {
        WebhookSink::new(&Webhook {
            url: WebhookUrl::parse(url).unwrap(),
            format,
            ca_file: None,
        })
        .unwrap()
    }

    #[test]
    fn a_batch_of_one_is_the_single_request_and_more_are_one_digest() {
        use crate::event::stopped_event;
        let events = [
            stopped_event("g-1"),
            stopped_event("g-2"),
            stopped_event("g-3"),
        ];
        let (url, _, received) = recording("200 OK");
        let mut sink = sink_as(&url, WebhookFormat::Slack);
        assert_eq!(sink.batch_limit(), digest::DIGEST_EVENTS);
        sink.publish_batch(&events[..1]).unwrap();
        sink.publish_batch(&events).unwrap();
        let got = received.lock().unwrap().clone();
        let digest = Digest::of(&events);
        assert_eq!(
            got,
            [
                (events[0].event_id.clone(), slack_body(&events[0])),
                (digest.key(), digest::slack_body(&digest, &sink.host)),
            ]
        );
        assert!(got[1].1.contains("3 games not running on "), "{}", got[1].1);

        // A machine takes one envelope a request, under its own key.
        let (url, _, received) = recording("200 OK");
        let mut sink = sink_as(&url, WebhookFormat::Envelope);
        assert_eq!(sink.batch_limit(), 1);
        sink.publish_batch(&events[..2]).unwrap();
        let got = received.lock().unwrap().clone();
        let want: Vec<(String, String)> = events[..2]
            .iter()
            .map(|e| (e.event_id.clone(), e.envelope.clone()))
            .collect();
        assert_eq!(got, want);
        for format in [
            WebhookFormat::Discord,
            WebhookFormat::Ntfy,
            WebhookFormat::Telegram,
        ] {
            let sink = sink_as("http://127.0.0.1:9/bot/x?chat_id=-1", format);
            assert_eq!(sink.batch_limit(), digest::DIGEST_EVENTS, "{format:?}");
        }
    }

    #[test]
    fn every_answer_tells_the_pace_how_long_to_wait() {
        // (format, the answer, the wait it leaves, to the second)
        let table = [
            (
                WebhookFormat::Discord,
                "200 OK\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 30.5",
                30,
            ),
            (
                WebhookFormat::Discord,
                "204 No Content\r\nX-RateLimit-Remaining: 3\r\nX-RateLimit-Reset-After: 30",
                0,
            ),
            (
                WebhookFormat::Discord,
                "429 Too Many Requests\r\nRetry-After: 20\r\nX-RateLimit-Remaining: 0\r\n\
                 X-RateLimit-Reset-After: 2",
                19,
            ),
            (
                WebhookFormat::Envelope,
                "429 Too Many Requests\r\nRetry-After: 3600",
                59,
            ),
            (WebhookFormat::Envelope, "200 OK", 0),
            // Slack's own bucket: one a second.
            (WebhookFormat::Slack, "200 OK", 0),
        ];
        for (format, head, want) in table {
            let (url, _) = answering(head);
            let mut sink = sink_as(&url, format);
            assert!(sink.ready_in(Instant::now()).is_zero(), "{head}");
            let _ = sink.publish(&crate::event::stopped_event("a"));
            let wait = sink.ready_in(Instant::now());
            assert_eq!(wait.as_secs(), want, "{head}: {wait:?}");
            if format == WebhookFormat::Slack {
                assert!(wait > Duration::from_millis(500), "{wait:?}");
            }
        }
    }

    #[test]
    fn an_http_webhook_reads_no_ca_file() {
        WebhookSink::new(&Webhook {
            url: url("http://127.0.0.1:9/x"),
            format: WebhookFormat::Slack,
            ca_file: None,
        })
        .unwrap();
    }
}
