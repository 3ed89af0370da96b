//! How often a chat destination may be posted to: a pure pacer, told the
//! time, that says how long the next request must wait.
//!
//! A destination's pace is one or more token buckets (its published limits,
//! kept below) and a "not before" instant that the answers set: Discord's
//! `X-RateLimit-Remaining: 0` with its `X-RateLimit-Reset-After`, a 429's
//! `Retry-After`. A token is taken when a request goes out, whatever comes
//! back: a request that failed on the way may still have been counted.
//!
//! The envelope format goes to machines, which take what they are sent or
//! say otherwise with a 429: it has no bucket, only what its answers ask.

use std::time::{Duration, Instant};

use super::answer::{MAX_RETRY_AFTER, parse_retry_after};
use crate::config::WebhookFormat;

/// A token bucket: up to `capacity` requests at once, then one more each
/// `period`. In any span of time it lets through at most `capacity` plus one
/// for each whole `period` in the span.
///
/// It is kept as the instant it is full again (the "theoretical arrival
/// time" of the generic cell rate algorithm): no ticking, no fractions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    capacity: u32,
    period: Duration,
    /// When the bucket is full again; `None` while it is full.
    full_at: Option<Instant>,
}

impl Bucket {
    /// A full bucket of `capacity` tokens (at least one), one back each `period`.
    pub(crate) const fn new(capacity: u32, period: Duration) -> Bucket {
        Bucket {
            capacity: if capacity == 0 { 1 } else { capacity },
            period,
            full_at: None,
        }
    }

    /// How long until a token is there; zero when one is.
    pub(crate) fn ready_in(&self, now: Instant) -> Duration {
        let Some(full_at) = self.full_at else {
            return Duration::ZERO;
        };
        // A token is there while fewer than `capacity` are missing.
        let lenience = self.period * (self.capacity - 1);
        full_at
            .saturating_duration_since(now)
            .saturating_sub(lenience)
    }

    /// A request went out at `now`: one token fewer. A request sent without
    /// waiting for a token empties the bucket, no further: the service
    /// refused what it had no room for, and a refusal costs no token.
    pub(crate) fn take(&mut self, now: Instant) {
        let from = self.full_at.map_or(now, |at| at.max(now));
        let empty_at = now + self.period * self.capacity;
        self.full_at = Some((from + self.period).min(empty_at));
    }
}

/// Slack: "Posting messages: 1 per second. Short bursts >1 allowed. If you
/// attempt bursts, there is no guarantee that messages will be delivered"
/// (its rate limits, incoming webhooks included): one a second, no burst.
pub(crate) const SLACK: Bucket = Bucket::new(1, Duration::from_secs(1));

/// Telegram, in any chat: "avoid sending more than one message per second"
/// (the Bots FAQ).
pub(crate) const TELEGRAM_CHAT: Bucket = Bucket::new(1, Duration::from_secs(1));

/// Telegram, in a group or a channel besides: "your bot will not be able to
/// send more than 20 messages per minute to the same group" (the Bots FAQ).
/// Ten at once and one each 6 s: never more than 20 in a minute, ends
/// included, with [`TELEGRAM_CHAT`] spacing them a second apart.
pub(crate) const TELEGRAM_GROUP: Bucket = Bucket::new(10, Duration::from_secs(6));

/// ntfy's default limit per visitor is a bucket of 60 requests, one back
/// every 5 s (`visitor-request-limit-burst: 60`,
/// `visitor-request-limit-replenish: 5s`). Ten are left to whatever else
/// this host posts there (a visitor is an IP address), which also covers a
/// clock running apart from the server's.
pub(crate) const NTFY: Bucket = Bucket::new(50, Duration::from_secs(5));

/// Whether a Telegram `chat_id` names a group or a channel: their ids are
/// negative (`-100…` for supergroups and channels), and a channel may be
/// named by its `@username`; a private chat's id is positive.
pub(crate) fn is_telegram_group(chat_id: &str) -> bool {
    chat_id.starts_with(['-', '@'])
}

/// The wait an answer asks for before the next request, if it asks: a
/// `Retry-After` (of a 429 or a 503, as the caller read it), or Discord's
/// `X-RateLimit-Reset-After` once `X-RateLimit-Remaining` is 0 ("the total
/// time (in seconds) of when the current rate limit bucket will reset. Can
/// have decimals"). The longer of the two, cut to [`MAX_RETRY_AFTER`].
pub(crate) fn asked_wait(
    retry_after: Option<Duration>,
    remaining: Option<&str>,
    reset_after: Option<&str>,
) -> Option<Duration> {
    let spent = remaining.is_some_and(|r| r.trim().parse::<f64>() == Ok(0.0));
    let reset = reset_after.filter(|_| spent).and_then(parse_retry_after);
    match (retry_after, reset) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
    .map(|wait| wait.min(MAX_RETRY_AFTER))
}

/// A destination's pace: its buckets, and the instant its last answers
/// asked to wait for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pace {
    buckets: Vec<Bucket>,
    not_before: Option<Instant>,
}

impl Pace {
    /// The pace of a destination in `format`; `chat_id` is Telegram's chat.
    /// Discord has no bucket here: "rate limits should not be hard coded
    /// into your app" (its rate limits); its headers say when to wait.
    pub(crate) fn for_destination(format: WebhookFormat, chat_id: Option<&str>) -> Pace {
        let buckets = match format {
            WebhookFormat::Envelope | WebhookFormat::Discord => Vec::new(),
            WebhookFormat::Slack => vec![SLACK],
            WebhookFormat::Ntfy => vec![NTFY],
            WebhookFormat::Telegram if chat_id.is_some_and(is_telegram_group) => {
                vec![TELEGRAM_CHAT, TELEGRAM_GROUP]
            }
            WebhookFormat::Telegram => vec![TELEGRAM_CHAT],
        };
        Pace {
            buckets,
            not_before: None,
        }
    }

    /// How long the next request must wait; zero when it may go now.
    pub(crate) fn ready_in(&self, now: Instant) -> Duration {
        let asked = self
            .not_before
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        self.buckets
            .iter()
            .map(|b| b.ready_in(now))
            .fold(asked, Duration::max)
    }

    /// A request went out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        for bucket in &mut self.buckets {
            bucket.take(now);
        }
    }

    /// An answer read at `now` asked to wait `wait` (see [`asked_wait`])
    /// before the next request; a later instant already asked for stays.
    pub(crate) fn hold(&mut self, now: Instant, wait: Duration) {
        let until = now + wait.min(MAX_RETRY_AFTER);
        self.not_before = Some(self.not_before.map_or(until, |at| at.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// Asks `pace` at each time (ms after the start) how long to wait, and
    /// sends when the answer is zero: the waits, and the times it sent.
    fn run(mut pace: Pace, at_ms: &[u64]) -> (Vec<Duration>, Vec<u64>) {
        let start = Instant::now();
        let mut waits = Vec::new();
        let mut sent = Vec::new();
        for &ms in at_ms {
            let now = start + MS * ms as u32;
            let wait = pace.ready_in(now);
            if wait.is_zero() {
                pace.sent(now);
                sent.push(ms);
            }
            waits.push(wait);
        }
        (waits, sent)
    }

    /// Sends as soon as `pace` allows, `n` times: the times, in ms.
    fn as_fast_as_allowed(mut pace: Pace, n: usize) -> Vec<u64> {
        let start = Instant::now();
        let mut now = start;
        (0..n)
            .map(|_| {
                now += pace.ready_in(now);
                assert!(pace.ready_in(now).is_zero());
                pace.sent(now);
                (now - start).as_millis() as u64
            })
            .collect()
    }

    fn pace(format: WebhookFormat, chat: Option<&str>) -> Pace {
        Pace::for_destination(format, chat)
    }

    #[test]
    fn each_format_is_paced_below_its_services_limit() {
        use WebhookFormat::*;
        // (format, chat, sends, the times they go at, in ms)
        let table: [(WebhookFormat, Option<&str>, usize, Vec<u64>); 7] = [
            (Envelope, None, 5, vec![0; 5]),
            (Discord, None, 5, vec![0; 5]),
            (Slack, None, 4, vec![0, 1000, 2000, 3000]),
            (Telegram, Some("42"), 3, vec![0, 1000, 2000]),
            (Telegram, Some("-100123"), 13, {
                // A second apart while the group's ten last (and the one
                // back at 6 s), then one each 6 s.
                let mut v: Vec<u64> = (0..=10).map(|n| n * 1000).collect();
                v.extend([12000, 18000]);
                v
            }),
            (Telegram, Some("@ops_alerts"), 12, {
                let mut v: Vec<u64> = (0..=10).map(|n| n * 1000).collect();
                v.push(12000);
                v
            }),
            (Ntfy, None, 53, {
                let mut v = vec![0; 50];
                v.extend([5000, 10000, 15000]);
                v
            }),
        ];
        for (format, chat, n, want) in table {
            assert_eq!(
                as_fast_as_allowed(pace(format, chat), n),
                want,
                "{format:?} {chat:?}"
            );
        }
    }

    #[test]
    fn a_telegram_group_never_gets_more_than_20_in_a_minute() {
        let sent = as_fast_as_allowed(pace(WebhookFormat::Telegram, Some("-1001")), 200);
        for (i, first) in sent.iter().enumerate() {
            let in_a_minute = sent[i..].iter().take_while(|t| **t <= first + 60_000);
            assert!(in_a_minute.count() <= 20, "from {first} ms: {sent:?}");
        }
        // And one a second in a private chat, never two.
        let sent = as_fast_as_allowed(pace(WebhookFormat::Telegram, Some("1001")), 20);
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= 1000), "{sent:?}");
    }

    #[test]
    fn the_slack_bucket_refills_one_a_second_and_keeps_no_credit() {
        // (ms after the start, the wait asked then)
        let at = [0, 200, 999, 1000, 1500, 5000, 5001, 6000];
        let (waits, sent) = run(pace(WebhookFormat::Slack, None), &at);
        assert_eq!(sent, [0, 1000, 5000, 6000]);
        assert_eq!(
            waits,
            [
                Duration::ZERO,
                800 * MS,
                MS,
                Duration::ZERO,
                500 * MS,
                // Idle for 3.5 s: still only one at once.
                Duration::ZERO,
                999 * MS,
                Duration::ZERO,
            ]
        );
    }

    #[test]
    fn the_ntfy_bucket_fills_back_one_each_5_s_up_to_50() {
        let mut p = pace(WebhookFormat::Ntfy, None);
        let start = Instant::now();
        for _ in 0..50 {
            assert!(p.ready_in(start).is_zero());
            p.sent(start);
        }
        assert_eq!(p.ready_in(start), 5 * S);
        assert_eq!(p.ready_in(start + 2 * S), 3 * S);
        // After 100 s idle, 20 are back, not more.
        let later = start + 100 * S;
        for _ in 0..20 {
            assert!(p.ready_in(later).is_zero());
            p.sent(later);
        }
        assert_eq!(p.ready_in(later), 5 * S);
    }

    #[test]
    fn a_send_without_waiting_empties_the_bucket_and_no_more() {
        let start = Instant::now();
        let mut b = SLACK;
        for _ in 0..100 {
            b.take(start);
        }
        assert_eq!(b.ready_in(start), S, "one second, not a hundred");
        let mut b = NTFY;
        for _ in 0..500 {
            b.take(start);
        }
        assert_eq!(b.ready_in(start), 5 * S);
        assert_eq!(b.ready_in(start + 250 * S), Duration::ZERO);
    }

    #[test]
    fn asked_wait_table() {
        let table = [
            // (Retry-After, X-RateLimit-Remaining, X-RateLimit-Reset-After, wait)
            (None, None, None, None),
            (None, Some("4"), Some("1.5"), None),
            (None, Some("0"), Some("1.5"), Some(1500 * MS)),
            (None, Some(" 0 "), Some("0.25"), Some(250 * MS)),
            (None, Some("0"), None, None),
            (None, Some("0"), Some("soon"), None),
            (None, Some("0"), Some("-1"), None),
            (None, Some("0"), Some("3600"), Some(MAX_RETRY_AFTER)),
            (None, Some("0"), Some("1e308"), Some(MAX_RETRY_AFTER)),
            (None, Some("0"), Some("NaN"), None),
            (None, Some("0"), Some("inf"), None),
            (None, Some("-0"), Some("2"), Some(2 * S)),
            (None, Some("x"), Some("2"), None),
            (Some(2 * S), None, None, Some(2 * S)),
            (Some(2 * S), Some("0"), Some("1.5"), Some(2 * S)),
            (Some(S), Some("0"), Some("1.5"), Some(1500 * MS)),
            (Some(3600 * S), None, None, Some(MAX_RETRY_AFTER)),
        ];
        for (retry_after, remaining, reset_after, want) in table {
            assert_eq!(
                asked_wait(retry_after, remaining, reset_after),
                want,
                "{retry_after:?} {remaining:?} {reset_after:?}"
            );
        }
    }

    #[test]
    fn discord_waits_only_when_its_headers_say_so() {
        let start = Instant::now();
        let mut p = pace(WebhookFormat::Discord, None);
        // Four answers with some left: no wait.
        for n in 0..4 {
            let now = start + MS * n;
            assert!(p.ready_in(now).is_zero());
            p.sent(now);
            if let Some(wait) = asked_wait(None, Some(&(4 - n).to_string()), Some("2")) {
                p.hold(now, wait);
            }
        }
        // The fifth says none is left, the bucket resets in 1.996 s.
        let now = start + MS * 4;
        p.sent(now);
        p.hold(now, asked_wait(None, Some("0"), Some("1.996")).unwrap());
        assert_eq!(p.ready_in(now), 1996 * MS);
        assert_eq!(p.ready_in(start + S), 1000 * MS);
        assert!(p.ready_in(start + 2 * S).is_zero());
        // A shorter wait asked later does not cut the longer one short.
        p.hold(start + S, 10 * MS);
        assert_eq!(p.ready_in(start + S), 1000 * MS);
        // A wait is bounded, as a Retry-After is.
        p.hold(start, 3600 * S);
        assert_eq!(p.ready_in(start), MAX_RETRY_AFTER);
    }

    #[test]
    fn an_asked_wait_and_the_buckets_add_up_to_the_longer() {
        let start = Instant::now();
        let mut p = pace(WebhookFormat::Slack, None);
        p.sent(start);
        p.hold(start, 300 * MS);
        assert_eq!(p.ready_in(start), S, "the bucket is the longer");
        p.hold(start, 3 * S);
        assert_eq!(p.ready_in(start + S), 2 * S, "the 429 is the longer");
        // The envelope format has no bucket, but a 429 still holds it.
        let mut p = pace(WebhookFormat::Envelope, None);
        p.sent(start);
        assert!(p.ready_in(start).is_zero());
        p.hold(start, 2 * S);
        assert_eq!(p.ready_in(start + S), S);
    }

    #[test]
    fn telegram_groups_and_channels_are_told_apart_by_their_id() {
        for (chat, group) in [
            ("-1001234567890", true),
            ("-4242", true),
            ("@ops_alerts", true),
            ("123456789", false),
            ("", false),
        ] {
            assert_eq!(is_telegram_group(chat), group, "{chat:?}");
        }
    }
}
