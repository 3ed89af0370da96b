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
//! events behind it be tried, one after another, until one is stored (at
//! most [`SCAN_LIMIT`] of them). Stored, it shows the sink takes events:
//! the failing one is tried once more, and if that fails too it is set
//! aside as refused (the rows it would have made and what the sink said go
//! to `rejected.jsonl`); each one tried before it that failed keeps that
//! try counted, and is set aside in its turn once it has failed
//! [`POISON_TRIES`] times. None stored shows an outage: the queue is held,
//! the failing event retried first with backoff, and the ones behind it
//! tried again only after as many more failures. A failure that says the
//! sink itself is down ([`SinkError::is_outage`]: a connection lost, a
//! server that takes no writes or is shutting down) is never counted
//! against an event, nor is a sink's asked-for wait (a 429): that is the
//! sink, not the event.

use std::collections::VecDeque;

use crate::event::HealthEvent;
use crate::publish::sink::{Cause, EventSink, SinkError, is_outage};

use super::outbox::Outbox;

/// How many failed sends of one event in a row let the events behind it be
/// tried.
pub(crate) const POISON_TRIES: u32 = 3;

/// How many waiting events one look behind a failing event tries at most:
/// a bound on the sends an outage costs each time.
pub(crate) const SCAN_LIMIT: usize = 64;

/// What a failed send of the events under way calls for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Retry it, with backoff.
    Retry,
    /// Try the events behind it.
    TryBehind,
    /// Set it aside: it failed [`POISON_TRIES`] times, and an event behind
    /// it was stored.
    SetAside,
}

/// The failures of the send under way, while it is one event.
#[derive(Debug, Default)]
pub(super) struct Suspect {
    /// Failed sends counted against it.
    tries: u32,
    /// `tries` when the events behind it were last tried.
    behind_tried_at: u32,
    /// An event behind it was stored while it failed.
    shown: bool,
}

impl Suspect {
    /// Counts a failed send of `batch`: what it calls for.
    pub(super) fn failed(
        &mut self,
        sink: &dyn EventSink,
        batch: &[HealthEvent],
        e: &SinkError,
    ) -> Verdict {
        if !sink.sets_poison_aside()
            || batch.len() != 1
            || !matches!(e, SinkError::Unavailable(_))
            || e.is_outage()
        {
            return Verdict::Retry;
        }
        self.tries += 1;
        if self.tries < POISON_TRIES {
            return Verdict::Retry;
        }
        if self.shown {
            return Verdict::SetAside;
        }
        if self.tries - self.behind_tried_at >= POISON_TRIES {
            self.behind_tried_at = self.tries;
            return Verdict::TryBehind;
        }
        Verdict::Retry
    }

    /// The failed sends so far.
    pub(super) fn tries(&self) -> u32 {
        self.tries
    }
}

/// What trying the events behind the failing one showed.
#[derive(Debug)]
pub(super) enum Behind {
    /// One was stored: the sink takes events.
    Stored(Box<HealthEvent>),
    /// Each failed, or none waits: nothing is shown.
    NotShown,
    /// The outbox was closed meanwhile: the publisher ends.
    Closed,
}

/// The look behind a failing event: what it showed, and the events it met
/// that were refused on their own, to be set aside.
#[derive(Debug)]
pub(super) struct Scan {
    pub(super) behind: Behind,
    pub(super) refused: Vec<(HealthEvent, SinkError)>,
}

/// What the looks behind failing events learnt, from one send to the next.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// The events that failed once each while one further back was
    /// stored, in their order at the head of the queue.
    shown: VecDeque<HealthEvent>,
}

impl Watch {
    /// The suspect for a new send of `batch`: one of the events that failed
    /// while one behind it was stored starts with that try counted.
    pub(super) fn suspect(&mut self, batch: &[HealthEvent]) -> Suspect {
        if batch.len() == 1 && self.shown.front() == Some(&batch[0]) {
            self.shown.pop_front();
            return Suspect {
                tries: 1,
                behind_tried_at: 0,
                shown: true,
            };
        }
        self.shown.clear();
        Suspect::default()
    }

    /// Tries the events behind the send under way, once each, without
    /// waiting for a pace (a sink that sets poison aside has none), until
    /// one is stored, one fails as an outage, none waits, or
    /// [`SCAN_LIMIT`] were tried. Those that failed go back to their
    /// places at the head of the queue.
    pub(super) fn try_behind(&mut self, sink: &mut dyn EventSink, outbox: &Outbox) -> Scan {
        self.shown.clear();
        let mut failed = Vec::new();
        let mut refused = Vec::new();
        let mut behind = Behind::NotShown;
        while failed.len() + refused.len() < SCAN_LIMIT {
            let Some(next) = outbox.take_behind() else {
                break;
            };
            match sink.publish(&next) {
                Ok(()) => {
                    behind = if outbox.behind_done(true) {
                        Behind::Stored(Box::new(next))
                    } else {
                        Behind::Closed
                    };
                    break;
                }
                Err(e @ SinkError::Refused(_)) => {
                    if !outbox.behind_done(true) {
                        behind = Behind::Closed;
                        break;
                    }
                    refused.push((next, e));
                }
                Err(e) => {
                    failed.push(next);
                    if e.is_outage() || matches!(e, SinkError::UnavailableFor(..)) {
                        break;
                    }
                }
            }
        }
        // The last taken is the last in the send under way: handed back
        // last first, each goes back to its place.
        for _ in &failed {
            if !outbox.behind_done(false) {
                behind = Behind::Closed;
            }
        }
        if matches!(behind, Behind::Stored(_)) {
            self.shown = failed.into();
        }
        Scan { behind, refused }
    }

    /// The last try of a suspect event, once an event behind it was stored:
    /// a failure that does not say the sink is down is now a refusal of
    /// this event. An outage shows the store behind was no proof: the
    /// events that failed before it are no longer counted as shown.
    pub(super) fn last_try(
        &mut self,
        sink: &mut dyn EventSink,
        batch: &[HealthEvent],
        tries: u32,
    ) -> Result<(), SinkError> {
        let sent = set_aside(sink.publish_batch(batch), tries + 1);
        if matches!(
            sent,
            Err(SinkError::Unavailable(_) | SinkError::UnavailableFor(..))
        ) {
            self.shown.clear();
        }
        sent
    }
}

/// A failure of an event that failed `tries` times while an event behind it
/// was stored, as a refusal; a failure that says the sink is down (or asks
/// for a wait) stays what it is.
pub(super) fn set_aside(sent: Result<(), SinkError>, tries: u32) -> Result<(), SinkError> {
    match sent {
        Err(SinkError::Unavailable(cause)) if !is_outage(&cause) => {
            Err(SinkError::Refused(Box::new(Poisoned { tries, cause })))
        }
        other => other,
    }
}

/// An event that failed while an event behind it was stored: what its last
/// failure said, and how many sends failed.
#[derive(Debug)]
pub(super) struct Poisoned {
    pub(super) tries: u32,
    pub(super) cause: Cause,
}

impl std::fmt::Display for Poisoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (failed {} times while an event behind it was stored: this event, not the sink)",
            self.cause, self.tries
        )
    }
}

impl std::error::Error for Poisoned {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::backoff::Backoff;
    use crate::event::stopped_event as event;
    use crate::publish::publisher::spawn;
    use crate::publish::rejects::Rejects;
    use crate::publish::sink::Down;
    use crate::telemetry::Telemetry;

    /// A sink that fails every send of the games in `fails` (a trigger on
    /// their rows), and is down for its first `down` calls whatever the
    /// game; it notes each call's game, and what it accepted.
    struct Picky {
        fails: Vec<&'static str>,
        down: usize,
        /// The calls (1 for the first) that find the connection lost.
        lost: Vec<usize>,
        poison: bool,
        calls: Arc<Mutex<Vec<String>>>,
        accepted: Arc<Mutex<Vec<String>>>,
    }

    impl EventSink for Picky {
        fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(event.game_id.clone());
            if self.lost.contains(&calls.len()) {
                return Err(SinkError::Unavailable(Box::new(Down(
                    "inserting: server closed the connection unexpectedly".into(),
                ))));
            }
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
            lost: Vec::new(),
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
    fn two_bad_events_in_a_row_are_both_set_aside_once_an_event_behind_them_is_stored() {
        let out = deliver(picky(&["b1", "b2"], 0), &["b1", "b2", "a"]);
        assert_eq!(out.accepted, ["a"]);
        assert_eq!(
            out.calls,
            ["b1", "b1", "b1", "b2", "a", "b1", "b2", "b2"],
            "b1 three times, b2 and a behind it, b1's last try; b2 twice more"
        );
        let counters = out.telemetry.sink(0);
        assert_eq!(counters.events_rejected.load(Relaxed), 2);
        assert_eq!(counters.events_published[0].load(Relaxed), 1);
    }

    #[test]
    fn three_bad_events_in_a_row_are_all_set_aside_and_the_good_one_behind_is_stored() {
        let out = deliver(picky(&["b1", "b2", "b3"], 0), &["b1", "b2", "b3", "ok"]);
        assert_eq!(out.accepted, ["ok"]);
        assert_eq!(
            out.calls,
            [
                "b1", "b1", "b1", "b2", "b3", "ok", "b1", "b2", "b2", "b3", "b3"
            ],
            "each bad one tried three times in all"
        );
        assert_eq!(out.telemetry.sink(0).events_rejected.load(Relaxed), 3);
    }

    #[test]
    fn a_connection_lost_on_the_last_try_is_an_outage_not_a_refusal() {
        // x fails three times (a server error), y behind it is stored, and
        // x's last try finds the connection lost: x is retried, not set aside.
        let mut sink = picky(&[], 3);
        sink.lost = vec![5];
        let out = deliver(sink, &["x", "y"]);
        assert_eq!(out.calls, ["x", "x", "x", "y", "x", "x"]);
        assert_eq!(out.accepted, ["y", "x"]);
        assert_eq!(out.telemetry.sink(0).events_rejected.load(Relaxed), 0);
    }

    #[test]
    fn a_lost_connection_never_counts_against_the_event() {
        // Lost on x's calls 2 to 7: only the server errors of calls 1, 8
        // and 9 count, so y is tried only after the ninth call.
        let mut sink = picky(&["x"], 0);
        sink.lost = (2..=7).collect();
        let out = deliver(sink, &["x", "y"]);
        let mut calls = vec!["x"; 9];
        calls.extend(["y", "x"]);
        assert_eq!(out.calls, calls);
        assert_eq!(out.accepted, ["y"]);
        assert_eq!(out.telemetry.sink(0).events_rejected.load(Relaxed), 1);
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
