//! Telling a poison event from an outage by what the others do.
//!
//! A sink's failure does not always say whose fault it is: a database
//! trigger's `RAISE EXCEPTION` (SQLSTATE P0001), a permission missing on one
//! partition, a row-level check in a function are server errors like a full
//! disk or a fenced primary, yet they refuse one event and take the rest.
//! Retried first for ever, such an event held up every other game, and the
//! spool replayed it first after a restart.
//!
//! So for a sink that asks for it ([`EventSink::sets_poison_aside`]), an
//! event whose send has failed [`POISON_TRIES`] times in a row lets the
//! event behind it be tried. Stored, it shows the sink takes events: the
//! failing one is tried once more, and if that fails too it is set aside as
//! refused (the rows it would have made and what the sink said go to
//! `rejected.jsonl`). Failed too, it shows an outage: the queue is held, the
//! failing event retried first with backoff, and the one behind it tried
//! again only after as many more failures. A sink's asked-for wait (a 429)
//! never counts: that is the sink's pace, not the event.

use crate::event::HealthEvent;
use crate::sink::{Cause, EventSink, SinkError};

use super::Outbox;

/// How many failed sends of one event in a row let the event behind it be
/// tried.
pub(crate) const POISON_TRIES: u32 = 3;

/// The failures of the send under way, while it is one event.
#[derive(Debug, Default)]
pub(super) struct Suspect {
    /// Failed sends in a row.
    tries: u32,
    /// `tries` when the event behind it was last tried.
    behind_tried_at: u32,
}

impl Suspect {
    /// Counts a failed send of `batch`; true when the event behind it is to
    /// be tried now.
    pub(super) fn failed(
        &mut self,
        sink: &dyn EventSink,
        batch: &[HealthEvent],
        e: &SinkError,
    ) -> bool {
        if !sink.sets_poison_aside() || batch.len() != 1 || !matches!(e, SinkError::Unavailable(_))
        {
            return false;
        }
        self.tries += 1;
        if self.tries >= POISON_TRIES && self.tries - self.behind_tried_at >= POISON_TRIES {
            self.behind_tried_at = self.tries;
            return true;
        }
        false
    }

    /// The failed sends so far.
    pub(super) fn tries(&self) -> u32 {
        self.tries
    }
}

/// What trying the event behind the failing one showed.
#[derive(Debug)]
pub(super) enum Behind {
    /// It was stored: the sink takes events.
    Stored(HealthEvent),
    /// It was refused on its own: it is to be set aside; nothing is shown.
    Refused(HealthEvent, SinkError),
    /// It failed too, or none waits: nothing is shown.
    NotShown,
    /// The outbox was closed meanwhile: the publisher ends.
    Closed,
}

/// Tries the event behind the send under way, once, without waiting for a
/// pace (a sink that sets poison aside has none).
pub(super) fn try_behind(sink: &mut dyn EventSink, outbox: &Outbox) -> Behind {
    let Some(next) = outbox.take_behind() else {
        return Behind::NotShown;
    };
    let sent = sink.publish(&next);
    if !outbox.behind_done(!matches!(
        sent,
        Err(SinkError::Unavailable(_) | SinkError::UnavailableFor(..))
    )) {
        return Behind::Closed;
    }
    match sent {
        Ok(()) => Behind::Stored(next),
        Err(e @ SinkError::Refused(_)) => Behind::Refused(next, e),
        Err(_) => Behind::NotShown,
    }
}

/// An event that failed while the one behind it was stored: what its
/// last failure said, and how many sends failed.
#[derive(Debug)]
pub(super) struct Poisoned {
    pub(super) tries: u32,
    pub(super) cause: Cause,
}

impl std::fmt::Display for Poisoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (failed {} times while the event behind it was stored: this event, not the sink)",
            self.cause, self.tries
        )
    }
}

impl std::error::Error for Poisoned {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// The last try of a suspect event, once the one behind it was stored: a
/// failure of any kind is now a refusal of this event.
pub(super) fn last_try(
    sink: &mut dyn EventSink,
    batch: &[HealthEvent],
    tries: u32,
) -> Result<(), SinkError> {
    match sink.publish_batch(batch) {
        Err(SinkError::Unavailable(cause) | SinkError::UnavailableFor(_, cause)) => {
            Err(SinkError::Refused(Box::new(Poisoned {
                tries: tries + 1,
                cause,
            })))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::event::stopped_event as event;
    use crate::publisher::{Backoff, Rejects, spawn};
    use crate::telemetry::Telemetry;

    /// A sink that fails every send of the games in `fails` (a trigger on
    /// their rows), and is down for its first `down` calls whatever the
    /// game; it notes each call's game, and what it accepted.
    struct Picky {
        fails: Vec<&'static str>,
        down: usize,
        poison: bool,
        calls: Arc<Mutex<Vec<String>>>,
        accepted: Arc<Mutex<Vec<String>>>,
    }

    impl EventSink for Picky {
        fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(event.game_id.clone());
            if calls.len() <= self.down || self.fails.contains(&event.game_id.as_str()) {
                return Err(SinkError::unavailable("trigger says no (SQLSTATE P0001)"));
            }
            self.accepted.lock().unwrap().push(event.game_id.clone());
            Ok(())
        }

        fn sets_poison_aside(&self) -> bool {
            self.poison
        }
    }

    struct Outcome {
        calls: Vec<String>,
        accepted: Vec<String>,
        telemetry: Arc<Telemetry>,
    }

    /// Publishes `games` in order through `sink`, every sender then gone.
    fn deliver(sink: Picky, games: &[&str]) -> Outcome {
        let (calls, accepted) = (sink.calls.clone(), sink.accepted.clone());
        sink.calls.lock().unwrap().clear();
        let (tx, outbox) = Outbox::new(games.iter().map(|g| event(g)).collect());
        drop(tx);
        let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
        let fast = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
        let p = spawn(
            Box::new(sink),
            outbox.clone(),
            Rejects::new(None, 0),
            fast,
            telemetry.clone(),
        )
        .unwrap();
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        p.join_if_ended();
        assert!(outbox.is_empty());
        let calls = calls.lock().unwrap().clone();
        let accepted = accepted.lock().unwrap().clone();
        Outcome {
            calls,
            accepted,
            telemetry,
        }
    }

    fn picky(fails: &[&'static str], down: usize) -> Picky {
        Picky {
            fails: fails.to_vec(),
            down,
            poison: true,
            calls: Arc::default(),
            accepted: Arc::default(),
        }
    }

    #[test]
    fn an_event_failing_while_the_one_behind_it_is_stored_is_set_aside_after_three_tries() {
        let out = deliver(picky(&["bad"], 0), &["bad", "a", "bad", "b"]);
        assert_eq!(out.accepted, ["a", "b"]);
        assert_eq!(
            out.calls,
            [
                "bad", "bad", "bad", "a", "bad", "bad", "bad", "bad", "b", "bad"
            ],
            "three tries, the one behind, a last try; each bad one alike"
        );
        let counters = out.telemetry.sink(0);
        assert_eq!(counters.events_rejected.load(Relaxed), 2);
        assert_eq!(counters.events_published[0].load(Relaxed), 2);
    }

    #[test]
    fn a_failure_of_every_event_is_an_outage_that_holds_the_queue_in_order() {
        // Down for six calls: x three times, y behind it, x twice more.
        let out = deliver(picky(&[], 6), &["x", "y"]);
        assert_eq!(out.calls, ["x", "x", "x", "y", "x", "x", "x", "y"]);
        assert_eq!(out.accepted, ["x", "y"], "in order");
        assert_eq!(out.telemetry.sink(0).events_rejected.load(Relaxed), 0);
    }

    #[test]
    fn an_outage_that_ends_just_before_the_one_behind_is_tried_sets_nothing_aside() {
        // Down for x's three tries only: y behind it is stored, and x's last
        // try is too.
        let out = deliver(picky(&[], 3), &["x", "y"]);
        assert_eq!(out.calls, ["x", "x", "x", "y", "x"]);
        assert_eq!(out.accepted, ["y", "x"]);
        assert_eq!(out.telemetry.sink(0).events_rejected.load(Relaxed), 0);
    }

    #[test]
    fn a_sink_that_does_not_ask_for_it_holds_the_queue_on_any_failure() {
        let mut sink = picky(&[], 8);
        sink.poison = false;
        let out = deliver(sink, &["x", "y"]);
        let mut calls = vec!["x"; 9];
        calls.push("y");
        assert_eq!(out.calls, calls, "x first until it is stored");
        assert_eq!(out.accepted, ["x", "y"]);
    }
}
