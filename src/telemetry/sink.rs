//! The counters of one sink's delivery, and how its deliveries went lately
//! (last accepted, the refusals, a failure streak under way): what
//! `/healthz` reads to say a sink is in trouble.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::histogram::Histogram;
use crate::event::EventType;

/// How far back `/healthz` looks at a sink's deliveries: a sink that
/// refused every event it was given over this span (at least
/// [`REFUSALS_FOR_TROUBLE`]), or failed to deliver for all of it, is
/// unhealthy.
pub(crate) const SINK_TROUBLE_AFTER: Duration = Duration::from_secs(5 * 60);

/// The fewest refused events that make a sink refusing everything.
pub(crate) const REFUSALS_FOR_TROUBLE: usize = 3;

/// How a sink's deliveries went lately, on the monotonic clock.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Deliveries {
    /// When the sink last accepted events.
    last_accepted: Option<Instant>,
    /// When each of its last [`REFUSALS_FOR_TROUBLE`] refused events was
    /// refused, the newest last.
    refused: VecDeque<Instant>,
    /// Why the last refusal, as the sink said it.
    last_refusal: String,
    /// The first failed attempt since the last acceptance, and the last
    /// failure's words.
    failing: Option<(Instant, String)>,
}

impl Deliveries {
    /// What is wrong with the sink's deliveries at `now`, in words, if
    /// anything: it refused every event it was given over the last
    /// [`SINK_TROUBLE_AFTER`] (at least [`REFUSALS_FOR_TROUBLE`]), or failed
    /// to deliver for that long.
    pub(crate) fn trouble(&self, now: Instant) -> Option<String> {
        let within = |at: Instant| now.saturating_duration_since(at) <= SINK_TROUBLE_AFTER;
        let minutes = SINK_TROUBLE_AFTER.as_secs() / 60;
        if let Some((since, why)) = &self.failing
            && !within(*since)
        {
            return Some(format!(
                "has failed to deliver for {:.0}s (over {minutes} minutes): {why}",
                now.saturating_duration_since(*since).as_secs_f64()
            ));
        }
        let refused_all = self.refused.len() >= REFUSALS_FOR_TROUBLE
            && self.refused.iter().all(|at| within(*at))
            && !self.last_accepted.is_some_and(within);
        refused_all.then(|| {
            format!(
                "has refused every event it was given over the last {minutes} minutes \
                 (at least {REFUSALS_FOR_TROUBLE}, none accepted): {}",
                self.last_refusal
            )
        })
    }
}

/// The counters of one sink's delivery, labelled with its name.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// The sink's name (`stdout`, `postgres`, `webhook`, a notification
    /// URL's).
    pub name: String,
    /// Events the sink accepted, by type, indexed as [`crate::event::EVENT_TYPES`].
    pub events_published: [AtomicU64; crate::event::EVENT_TYPES.len()],
    /// Failed publish attempts (each retry counts).
    pub publish_failures: AtomicU64,
    /// Events dropped because the sink's queue was full (and its overflow,
    /// with a state directory), by type, indexed as
    /// [`crate::event::EVENT_TYPES`].
    pub events_dropped: [AtomicU64; crate::event::EVENT_TYPES.len()],
    /// Events written to the sink's overflow file because its queue was full.
    pub events_overflowed: AtomicU64,
    /// Whether the sink's publisher thread is running.
    pub publisher_alive: AtomicBool,
    /// Events the sink refused for good and set aside in `rejected.jsonl`.
    pub events_rejected: AtomicU64,
    /// From a Docker event's time to the sink accepting the health event it led to.
    pub detection_latency: Histogram,
    /// How its deliveries went lately: what `/healthz` reads.
    deliveries: Mutex<Deliveries>,
}

impl SinkCounters {
    /// The counters of the sink `name`, all zero.
    pub(super) fn named(name: &str) -> SinkCounters {
        SinkCounters {
            name: name.to_owned(),
            ..SinkCounters::default()
        }
    }

    /// The sink accepted an event of `event_type`.
    pub(crate) fn published(&self, event_type: EventType) {
        count_by_type(&self.events_published, event_type);
    }

    /// An event of `event_type` was dropped for a full queue.
    pub(crate) fn dropped(&self, event_type: EventType) {
        count_by_type(&self.events_dropped, event_type);
    }
}

/// Counts one event of `event_type` in `counts`, indexed as
/// [`EventType::PUBLISHED`] (the order of [`crate::event::EVENT_TYPES`]).
fn count_by_type(counts: &[AtomicU64; crate::event::EVENT_TYPES.len()], event_type: EventType) {
    // Every event is made with one of these types, a spooled one included
    // (`from_envelope` refuses any other).
    if let Some(i) = EventType::PUBLISHED.iter().position(|t| *t == event_type) {
        counts[i].fetch_add(1, Relaxed);
    }
}

impl SinkCounters {
    /// The sink accepted events at `now`: a failure streak ends.
    pub(crate) fn delivered(&self, now: Instant) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        d.last_accepted = Some(now);
        d.failing = None;
    }

    /// The sink refused `events` events at `now`, for `why`.
    pub(crate) fn refused(&self, events: usize, why: &dyn std::fmt::Display, now: Instant) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..events.min(REFUSALS_FOR_TROUBLE) {
            if d.refused.len() == REFUSALS_FOR_TROUBLE {
                d.refused.pop_front();
            }
            d.refused.push_back(now);
        }
        d.last_refusal = why.to_string();
    }

    /// An attempt to deliver failed at `now` (the sink is down), for `why`.
    pub(crate) fn failed(&self, why: &dyn std::fmt::Display, now: Instant) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        let since = d.failing.as_ref().map_or(now, |(since, _)| *since);
        d.failing = Some((since, why.to_string()));
    }

    /// How its deliveries went lately.
    pub(crate) fn deliveries(&self) -> Deliveries {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
