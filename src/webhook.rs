//! The webhook sink: each event is one `POST` to `--webhook-url`, its body
//! the envelope, or a chat's own message in the chosen format (`format`).
//! The sink picks the format, asks the pace (`pace`) how long to wait,
//! sends (`http`), and hands the publisher what the answer means
//! (`answer`), the token masked in any words it quotes (`redact`).
//!
//! A chat is paced below its service's published limit, and the events that
//! wait meanwhile go together in one `POST`, a digest. The envelope format
//! posts each event on its own, held back only when an answer asks.
//!
//! Every request is bounded by `http::REQUEST_TIMEOUT` (10 s), and runs on the
//! publisher's thread: the agent's resolver looks names up in that thread,
//! without starting one per request.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant};

use crate::config::{Webhook, WebhookFormat, WebhookUrl};
use crate::event::HealthEvent;
use crate::publish::sink::{EventSink, SinkError};

pub(crate) mod answer;
pub(crate) mod format;
pub(crate) mod http;
pub(crate) mod notify_file;
pub(crate) mod pace;
pub(crate) mod redact;
pub(crate) mod url_file;

use format::digest::{self, Digest};
use format::{discord, ntfy, slack, telegram};
use http::{Http, Request, SetupError, authorization};
use pace::Pace;
use redact::Redactor;

/// How long a chat's message waits for the events of the same burst (a
/// tick's, or Docker's events of a reboot) to go with it as one digest.
pub(crate) const DIGEST_WAIT: Duration = Duration::from_secs(2);

/// Posts each event to a webhook.
pub(crate) struct WebhookSink {
    http: Http,
    url: WebhookUrl,
    /// Masks the URL's token in what its server writes back.
    redactor: Redactor,
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
    pub(crate) fn new(webhook: &Webhook) -> Result<WebhookSink, SetupError> {
        let http = Http::new(webhook.url.is_https(), webhook.ca_file.as_ref())?;
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
            http,
            url: webhook.url.clone(),
            redactor: Redactor::for_url(url.secret()),
            format: webhook.format,
            target,
            authorization,
            chat_id,
            pace,
            host: digest::host_label(&rustix::system::uname().nodename().to_string_lossy()),
        })
    }

    /// The sink on the host `host` (`--host-id`, else the hostname): every
    /// message and digest names it, as a label no chat can misread.
    pub(crate) fn on_host(mut self, host: &str) -> WebhookSink {
        self.host = digest::host_label(host);
        self
    }

    /// Telegram's chat, `""` when the URL names none.
    fn chat(&self) -> &str {
        self.chat_id.as_deref().unwrap_or("")
    }

    /// One event in one request; the status of the answer that accepted it.
    fn post(&mut self, event: &HealthEvent) -> Result<u16, SinkError> {
        let mut headers = Vec::new();
        let body = match self.format {
            WebhookFormat::Envelope => event.envelope().into_cow(),
            WebhookFormat::Slack => Cow::Owned(slack::slack_body(event, &self.host)),
            WebhookFormat::Discord => Cow::Owned(discord::discord_body(event, &self.host)),
            WebhookFormat::Ntfy => {
                let m = ntfy::ntfy_message(event, &self.host);
                headers = m.headers();
                Cow::Owned(m.body)
            }
            WebhookFormat::Telegram => {
                Cow::Owned(telegram::telegram_body(event, &self.host, self.chat()))
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
        let (title, line) = format::text::test_words(&self.host);
        let mut headers = Vec::new();
        let body = match self.format {
            WebhookFormat::Envelope => event.envelope().into_cow().into_owned(),
            WebhookFormat::Slack => slack::test_body(&title, line),
            WebhookFormat::Discord => discord::test_body(&title, line, event),
            WebhookFormat::Ntfy => {
                let m = ntfy::test_message(&title, line);
                headers = m.headers();
                m.body
            }
            WebhookFormat::Telegram => telegram::test_body(&title, line, self.chat()),
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
        let host = &self.host;
        let body = match self.format {
            // Machines take one envelope a request, never a digest.
            WebhookFormat::Envelope => return events.iter().try_fold(0, |_, e| self.post(e)),
            WebhookFormat::Slack => slack::digest_body(&digest, host),
            WebhookFormat::Discord => discord::digest_body(&digest, host),
            WebhookFormat::Ntfy => {
                let m = ntfy::digest_message(&digest, host);
                headers = m.headers();
                m.body
            }
            WebhookFormat::Telegram => telegram::digest_body(&digest, host, self.chat()),
        };
        self.send(Outgoing {
            body: Cow::Owned(body),
            key: Cow::Owned(digest.key()),
            headers,
        })
    }

    /// One request; what its answer means for what it carries (accepted:
    /// its status). The pace counts it as it goes, and takes from every
    /// answer the wait it asks.
    fn send(&mut self, out: Outgoing<'_>) -> Result<u16, SinkError> {
        let content_type = match self.format {
            WebhookFormat::Ntfy => "text/plain; charset=utf-8",
            _ => "application/json",
        };
        let mut headers = out.headers;
        if let Some(a) = &self.authorization {
            headers.push(("Authorization", a.clone()));
        }
        // Counted whatever comes back: a request that failed on the way
        // may still have reached the service.
        self.pace.sent(Instant::now());
        let sent = self.http.post(
            &self.target,
            Request {
                content_type,
                key: &out.key,
                headers,
                body: out.body.as_bytes(),
            },
        );
        let got = match sent {
            Ok(got) => got,
            Err(e) => {
                let e = answer::no_answer(e, self.url.shown(), &self.redactor);
                return Err(SinkError::Unavailable(Box::new(e)));
            }
        };
        let meaning = answer::meaning(&got, self.format, self.url.shown(), &self.redactor);
        if let Some(wait) = pace::asked_wait(
            meaning.retry_after,
            got.remaining.as_deref(),
            got.reset_after.as_deref(),
        ) {
            self.pace.hold(Instant::now(), wait);
            // A 429's or a 503's wait is in the publisher's warning; an
            // accepted request's long one is said here, once per answer.
            if meaning.outcome.is_ok() && wait >= Duration::from_secs(5) {
                log::info!(
                    "{} answered {} and asks to wait {:.1}s before the next request",
                    self.url.shown(),
                    got.status,
                    wait.as_secs_f64()
                );
            }
        }
        meaning.outcome
    }
}

impl EventSink for WebhookSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        self.post(event).map(drop)
    }

    fn trial(&mut self, event: &HealthEvent) -> Result<String, SinkError> {
        let status = self.post_test(event)?;
        Ok(format!("answered {status} {}", answer::reason(status)))
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
    /// digest of up to `DIGEST_EVENTS` (500).
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

#[cfg(test)]
mod tests;
