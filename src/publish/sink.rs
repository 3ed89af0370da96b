//! The event sink seam: where events go, and the one thing a sink must say
//! when it fails — whether the sink is down (retry the same event, after the
//! wait it asked for if it asked for one) or this event is refused for good
//! (set it aside and go on).
//!
//! The sinks live with what they write to: stdout in [`super::stdout`],
//! PostgreSQL in `postgres`, the webhook in `webhook`.

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use crate::event::HealthEvent;

pub(crate) use crate::Cause;

/// Why a sink did not accept an event.
#[derive(Debug)]
pub(crate) enum SinkError {
    /// The sink cannot take events now (unreachable, timeout, server error):
    /// the same event is retried, in order, with backoff.
    Unavailable(Cause),
    /// The sink cannot take events now, and said how long to wait before the
    /// next try (an HTTP 429's or 503's `Retry-After`, bounded by the sink):
    /// retried as for `Unavailable`, not before that wait is over. The wait
    /// is the publisher's, not the sink's, so that a shutdown can end it.
    UnavailableFor(Duration, Cause),
    /// The sink refused this event, and no retry can change that (a value it
    /// rejects, a NOTIFY payload over its limit): the event is set aside.
    Refused(Cause),
}

impl SinkError {
    /// A refusal whose cause is only a message (the fakes' and tests' shorthand).
    #[cfg(test)]
    pub(crate) fn refused(message: impl Into<String>) -> SinkError {
        SinkError::Refused(message.into().into())
    }

    /// An outage whose cause is only a message (the fakes' and tests' shorthand).
    #[cfg(test)]
    pub(crate) fn unavailable(message: impl Into<String>) -> SinkError {
        SinkError::Unavailable(message.into().into())
    }

    /// Whether this failure says the sink itself is down or going away,
    /// nothing about the event: its cause is a [`Down`] (the PostgreSQL sink
    /// says so of a connection lost, or of a server that takes no writes,
    /// 25006, or is shutting down or starting, 57P01 to 57P03).
    pub(crate) fn is_outage(&self) -> bool {
        match self {
            SinkError::Unavailable(cause) | SinkError::UnavailableFor(_, cause) => is_outage(cause),
            SinkError::Refused(_) => false,
        }
    }

    /// The wait the sink asked for before the next try, if it asked.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::UnavailableFor(wait, _) => Some(*wait),
            SinkError::Unavailable(_) | SinkError::Refused(_) => None,
        }
    }
}

/// Whether a failure's cause says the sink is down: see
/// [`SinkError::is_outage`].
pub(crate) fn is_outage(cause: &Cause) -> bool {
    cause.is::<Down>()
}

/// A failure's cause that says the sink itself is down or going away,
/// nothing about the event, so that it never counts against the event (see
/// `poison`). The sink that knows it wraps its cause in it; it reads as
/// that cause, in its words and its source.
#[derive(Debug)]
pub(crate) struct Down(pub(crate) Cause);

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for Down {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Unavailable(e) => write!(f, "sink unavailable: {e}"),
            SinkError::UnavailableFor(wait, e) => {
                write!(f, "sink unavailable for {}s: {e}", wait.as_secs_f32())
            }
            SinkError::Refused(e) => write!(f, "event refused: {e}"),
        }
    }
}

impl Error for SinkError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SinkError::Unavailable(e) | SinkError::UnavailableFor(_, e) | SinkError::Refused(e) => {
                Some(e.as_ref())
            }
        }
    }
}

/// Where events go. `publish` returns only once the event is durably handed
/// over (written and flushed, or committed).
///
/// A sink read by people may pace itself and gather what waits into one
/// message: the publisher lets the first event of a send wait
/// [`EventSink::gather`], asks [`EventSink::ready_in`] before the send, and
/// hands [`EventSink::publish_batch`] up to [`EventSink::batch_limit`] events
/// that are waiting by then.
pub(crate) trait EventSink: Send {
    /// Publishes one event.
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError>;

    /// How long to wait before the next send keeps to the destination's
    /// pace; zero when it may go now. The publisher does the waiting, in a
    /// sleep a shutdown ends.
    fn ready_in(&mut self, _now: Instant) -> Duration {
        Duration::ZERO
    }

    /// How long the first event of a send waits for others to join it (a
    /// burst becomes one message even when the pace lets each go at once);
    /// zero for a sink that takes each event on its own.
    fn gather(&self) -> Duration {
        Duration::ZERO
    }

    /// How many waiting events one send may carry; 1 for a sink that takes
    /// each event on its own.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Whether an event whose send keeps failing while the event behind it
    /// is stored is set aside as refused (`publisher::poison`): true for a
    /// sink whose failures may be one event's (a database trigger that
    /// raises on one game's rows) as well as the sink's own; false by
    /// default, where every failure is an outage that holds the queue.
    fn sets_poison_aside(&self) -> bool {
        false
    }

    /// Sends `event` as a test of the way to this sink (`rtinspect
    /// notify-test`) and says what the sink answered; a sink may prove the
    /// way without keeping the event (a table's row rolled back).
    fn trial(&mut self, event: &HealthEvent) -> Result<String, SinkError> {
        self.publish(event).map(|()| String::new())
    }

    /// Publishes `events` (at least one, at most [`EventSink::batch_limit`])
    /// in one send: one of them on its own, several as a digest. What it
    /// returns is for the whole batch: retried or set aside whole (by
    /// default, each is published in turn, so a failure part-way sends the
    /// first ones again: delivery is at least once).
    fn publish_batch(&mut self, events: &[HealthEvent]) -> Result<(), SinkError> {
        for event in events {
            self.publish(event)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_errors_say_whose_fault_and_keep_the_cause() {
        let e = SinkError::Unavailable(Box::new(std::io::Error::other("broken pipe")));
        assert_eq!(e.to_string(), "sink unavailable: broken pipe");
        assert_eq!(e.source().unwrap().to_string(), "broken pipe");
        assert_eq!(
            SinkError::refused("payload string too long").to_string(),
            "event refused: payload string too long"
        );
        let e = SinkError::UnavailableFor(Duration::from_millis(1500), "answered 429".into());
        assert_eq!(e.to_string(), "sink unavailable for 1.5s: answered 429");
        assert_eq!(e.source().unwrap().to_string(), "answered 429");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(SinkError::unavailable("down").retry_after(), None);
    }
}
