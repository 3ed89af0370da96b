//! Counters shared by the inspector and publisher threads, and what the
//! ticks' outcome says about whether rtinspect can see.
//!
//! Plain counters are atomics, so the hot path of a tick or a publish costs one
//! relaxed add. A histogram (the tick count is the tick-duration histogram's
//! count), and the outcome of ticks (the last success, the failure streak
//! under way), each sit behind a mutex taken once per tick (or delivery) and
//! once per scrape or `/healthz`, never across I/O. The metrics listener only
//! reads.

use crate::incident::{Change, Kind};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

/// The inspect error kinds, in the order of [`Telemetry::inspect_errors`].
pub const INSPECT_ERROR_KINDS: [&str; 4] = ["not_found", "timeout", "docker", "invalid_id"];

/// All counters and gauges of one process.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Records in the last tick whose listing succeeded.
    pub records: AtomicU64,
    /// Inspect errors by kind, indexed as [`INSPECT_ERROR_KINDS`].
    pub inspect_errors: [AtomicU64; 4],
    /// Unix time, in milliseconds, at which the last tick finished; 0 before.
    pub last_tick_unix_ms: AtomicU64,
    /// How long ticks take; its count is the number of ticks finished
    /// (listing failed or not).
    pub tick_duration: Histogram,
    /// Failed ticks by stage, indexed as [`Stage::ALL`].
    pub tick_failures: [AtomicU64; 2],
    /// The last success and the failure streak under way.
    outcome: Mutex<TickOutcome>,
    /// The outside call a tick is in, and since when: what `/healthz` names
    /// when ticks stop finishing without failing (a call that hangs).
    busy: Mutex<Option<(&'static str, Instant)>>,
    /// Docker events read, by action, indexed as [`DOCKER_EVENT_ACTIONS`].
    pub docker_events: [AtomicU64; DOCKER_EVENT_ACTIONS.len()],
    /// Subscriptions of the events stream that got their response head
    /// after an earlier one broke or failed.
    pub stream_reconnects: AtomicU64,
    /// Subscriptions of the events stream tried, the failed ones included.
    pub stream_attempts: AtomicU64,
    /// Refused events dropped from the older `rejected.jsonl.1` when the file rotated.
    pub rejected_dropped: AtomicU64,
    /// Writes of `baselines.json` or `incidents.json` that failed (each is
    /// tried again at the end of the next tick).
    pub state_save_failures: AtomicU64,
    /// Each sink's delivery, in the order the sinks were given.
    pub sinks: Vec<SinkCounters>,
    /// Incidents' changes, whatever the sinks: `[kind][change]`, indexed as
    /// [`INCIDENT_KINDS`] and [`INCIDENT_CHANGES`].
    incidents: [[AtomicU64; INCIDENT_CHANGES.len()]; INCIDENT_KINDS.len()],
}

/// The `kind` labels of `rtinspect_incidents_total`, in the order of the
/// counter.
pub const INCIDENT_KINDS: [Kind; 4] = [
    Kind::Restarted,
    Kind::Unhealthy,
    Kind::NotRunning,
    Kind::CrashLoop,
];

/// The `change` labels of `rtinspect_incidents_total`, in the order of
/// the counter.
pub const INCIDENT_CHANGES: [(Change, &str); 4] = [
    (Change::Opened, "opened"),
    (Change::Escalated, "escalated"),
    (Change::Reminder, "reminder"),
    (Change::Resolved, "resolved"),
];

/// How far back `/healthz` looks at a sink's deliveries: a sink that
/// refused every event it was given over this span (at least
/// [`REFUSALS_FOR_TROUBLE`]), or failed to deliver for all of it, is
/// unhealthy.
pub const SINK_TROUBLE_AFTER: Duration = Duration::from_secs(5 * 60);

/// The fewest refused events that make a sink refusing everything.
pub const REFUSALS_FOR_TROUBLE: usize = 3;

/// How a sink's deliveries went lately, on the monotonic clock.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deliveries {
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
    pub fn trouble(&self, now: Instant) -> Option<String> {
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
    /// The sink's name (`stdout`, `postgres`, `webhook`).
    pub name: &'static str,
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
    /// The sink accepted an event of `event_type`.
    pub fn published(&self, event_type: &str) {
        count_by_type(&self.events_published, event_type);
    }

    /// An event of `event_type` was dropped for a full queue.
    pub fn dropped(&self, event_type: &str) {
        count_by_type(&self.events_dropped, event_type);
    }
}

/// Counts one event of `event_type` in `counts`, indexed as
/// [`crate::event::EVENT_TYPES`].
fn count_by_type(counts: &[AtomicU64; crate::event::EVENT_TYPES.len()], event_type: &str) {
    // Every event is made with one of these types, a spooled one included
    // (`from_envelope` refuses any other).
    if let Some(i) = crate::event::EVENT_TYPES
        .iter()
        .position(|t| *t == event_type)
    {
        counts[i].fetch_add(1, Relaxed);
    }
}

impl SinkCounters {
    /// The sink accepted events at `now`: a failure streak ends.
    pub fn delivered(&self, now: Instant) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        d.last_accepted = Some(now);
        d.failing = None;
    }

    /// The sink refused `events` events at `now`, for `why`.
    pub fn refused(&self, events: usize, why: &dyn std::fmt::Display, now: Instant) {
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
    pub fn failed(&self, why: &dyn std::fmt::Display, now: Instant) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        let since = d.failing.as_ref().map_or(now, |(since, _)| *since);
        d.failing = Some((since, why.to_string()));
    }

    /// How its deliveries went lately.
    pub fn deliveries(&self) -> Deliveries {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `action` labels of `rtinspect_docker_events_total`: the actions the
/// events reader follows (in its order), and `other`.
pub const DOCKER_EVENT_ACTIONS: [&str; 9] = [
    "die",
    "oom",
    "health_status",
    "start",
    "restart",
    "create",
    "stop",
    "kill",
    "other",
];

impl Telemetry {
    /// Counts one Docker event of `action` (`other` when not followed).
    pub fn docker_event(&self, action: &str) {
        let i = DOCKER_EVENT_ACTIONS
            .iter()
            .position(|a| *a == action)
            .unwrap_or(DOCKER_EVENT_ACTIONS.len() - 1);
        self.docker_events[i].fetch_add(1, Relaxed);
    }
}

/// Which part of a tick failed; `stage as usize` indexes
/// [`Telemetry::tick_failures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Listing the records (the database, or the label query to dockerd).
    Records = 0,
    /// Reaching dockerd.
    Docker = 1,
}

impl Stage {
    /// Every stage, in the order of [`Telemetry::tick_failures`].
    pub const ALL: [Stage; 2] = [Stage::Records, Stage::Docker];

    /// The value of the `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Records => "records",
            Stage::Docker => "docker",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A run of failed ticks with no success between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureStreak {
    /// The stage that failed last.
    pub stage: Stage,
    /// What fails, in one line ("cannot reach dockerd at /var/run/docker.sock").
    pub what: String,
    /// The last error ("connection refused").
    pub detail: String,
    /// Monotonic time of the first failure of the streak.
    pub since: Instant,
    /// Wall time of the first failure of the streak, for people to read.
    pub since_wall: SystemTime,
}

/// What the ticks so far say, as one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Monotonic and wall time of the last successful tick.
    pub last_success: Option<(Instant, SystemTime)>,
    /// The failures since the last success, if the last tick failed.
    pub failing: Option<FailureStreak>,
}

/// Unix time now, in milliseconds.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Upper bounds of the tick-duration buckets, in seconds: 1 ms to 60 s.
pub const TICK_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram over [`TICK_BUCKETS`]. Its counts sit behind one
/// mutex, taken once per observation and once per scrape, so a scrape never
/// shows a count that disagrees with its buckets.
#[derive(Debug, Default)]
pub struct Histogram(Mutex<HistogramCounts>);

/// The counts of a [`Histogram`] at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HistogramCounts {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [u64; TICK_BUCKETS.len() + 1],
    /// Sum of all observations, in microseconds.
    pub sum_micros: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = TICK_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(TICK_BUCKETS.len());
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.buckets[i] += 1;
        counts.sum_micros += d.as_micros() as u64;
        counts.count += 1;
    }

    /// The counts now, all taken together.
    pub fn snapshot(&self) -> HistogramCounts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl HistogramCounts {
    /// Cumulative counts per bucket, `+Inf` last, as Prometheus wants them.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|b| {
                total += b;
                total
            })
            .collect()
    }
}

impl Telemetry {
    /// The counters of a process whose events go to the sinks `names`.
    pub fn for_sinks(names: &[&'static str]) -> Telemetry {
        Telemetry {
            sinks: names
                .iter()
                .map(|&name| SinkCounters {
                    name,
                    ..SinkCounters::default()
                })
                .collect(),
            ..Telemetry::default()
        }
    }

    /// The counters of the sink `index` (its place in [`Telemetry::sinks`]).
    pub fn sink(&self, index: usize) -> &SinkCounters {
        &self.sinks[index]
    }

    /// A tick listed its records and reached dockerd; ends any failure streak.
    pub fn tick_succeeded(&self, now: Instant, wall: SystemTime) {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        outcome.last_success = Some((now, wall));
        outcome.failing = None;
    }

    /// A tick failed at `stage`; `what` is e.g. "cannot reach dockerd at
    /// /var/run/docker.sock" or "cannot read records", `detail` the error
    /// ("connection refused"). Counts `rtinspect_tick_failures_total{stage}`;
    /// the streak's start time is kept until a success.
    pub fn tick_failed(
        &self,
        stage: Stage,
        what: &str,
        detail: &str,
        now: Instant,
        wall: SystemTime,
    ) {
        self.tick_failures[stage.index()].fetch_add(1, Relaxed);
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        let (since, since_wall) = outcome
            .failing
            .as_ref()
            .map_or((now, wall), |f| (f.since, f.since_wall));
        outcome.failing = Some(FailureStreak {
            stage,
            what: what.to_owned(),
            detail: detail.to_owned(),
            since,
            since_wall,
        });
    }

    /// The tick starts `what` ("reading the records", "inspecting the
    /// containers"); `None` when it is done with it.
    pub fn busy_with(&self, what: Option<&'static str>, now: Instant) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = what.map(|w| (w, now));
    }

    /// What the tick is doing and since when, if anything.
    pub fn busy(&self) -> Option<(&'static str, Instant)> {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last success and the failure streak under way, read together.
    pub fn tick_outcome(&self) -> TickOutcome {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The count of failed ticks at `stage`.
    pub fn tick_failures_of(&self, stage: Stage) -> u64 {
        self.tick_failures[stage.index()].load(Relaxed)
    }

    /// Counts one inspect error of `kind` (one of [`INSPECT_ERROR_KINDS`]).
    pub fn inspect_error(&self, kind: &str) {
        if let Some(i) = INSPECT_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.inspect_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts an incident's `change` of `kind`, whatever the sinks.
    pub fn incident(&self, kind: Kind, change: Change) {
        let k = INCIDENT_KINDS.iter().position(|k| *k == kind);
        let c = INCIDENT_CHANGES.iter().position(|(c, _)| *c == change);
        if let (Some(k), Some(c)) = (k, c) {
            self.incidents[k][c].fetch_add(1, Relaxed);
        }
    }

    /// The count of incidents' `change` of `kind`.
    pub fn incidents_of(&self, kind: Kind, change: Change) -> u64 {
        let k = INCIDENT_KINDS.iter().position(|k| *k == kind);
        let c = INCIDENT_CHANGES.iter().position(|(c, _)| *c == change);
        match (k, c) {
            (Some(k), Some(c)) => self.incidents[k][c].load(Relaxed),
            _ => 0,
        }
    }

    /// The count of inspect errors of `kind`.
    pub fn inspect_errors_of(&self, kind: &str) -> u64 {
        INSPECT_ERROR_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.inspect_errors[i].load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_last() {
        let h = Histogram::default();
        for ms in [0, 1, 2, 40, 70_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        let c = s.cumulative();
        assert_eq!(c.len(), 16);
        assert_eq!(c[0], 2, "0 ms and 1 ms are <= 1 ms");
        assert_eq!(c[1], 3, "2 ms is <= 2.5 ms");
        assert_eq!(c[5], 4, "40 ms is <= 50 ms");
        assert_eq!(c[14], 4, "70 s is over 60 s");
        assert_eq!(c[15], 5);
        assert_eq!(s.count, 5);
        assert_eq!(s.sum_micros, 70_043_000);
    }

    #[test]
    fn a_failure_streak_keeps_its_start_until_a_success() {
        let t = Telemetry::default();
        let t0 = Instant::now();
        let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(t.tick_outcome(), TickOutcome::default());

        t.tick_failed(Stage::Docker, "cannot reach dockerd", "refused", t0, wall0);
        let later = t0 + Duration::from_secs(5);
        t.tick_failed(
            Stage::Records,
            "cannot read records",
            "timeout",
            later,
            wall0 + Duration::from_secs(5),
        );
        let failing = t.tick_outcome().failing.unwrap();
        assert_eq!(failing.stage, Stage::Records);
        assert_eq!(failing.what, "cannot read records");
        assert_eq!(failing.detail, "timeout");
        assert_eq!((failing.since, failing.since_wall), (t0, wall0));
        assert_eq!(t.tick_failures_of(Stage::Docker), 1);
        assert_eq!(t.tick_failures_of(Stage::Records), 1);

        let wall = wall0 + Duration::from_secs(6);
        t.tick_succeeded(later, wall);
        let outcome = t.tick_outcome();
        assert_eq!(outcome.last_success, Some((later, wall)));
        assert_eq!(outcome.failing, None);

        t.tick_failed(
            Stage::Docker,
            "cannot reach dockerd",
            "refused",
            later,
            wall,
        );
        assert_eq!(
            t.tick_outcome().failing.unwrap().since,
            later,
            "a new streak"
        );
        assert_eq!(t.tick_outcome().last_success, Some((later, wall)));
    }

    #[test]
    fn stage_labels_follow_the_counter_order() {
        let labels: Vec<&str> = Stage::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["records", "docker"]);
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(stage.index(), i);
        }
    }

    #[test]
    fn unknown_inspect_error_kind_is_ignored() {
        let t = Telemetry::default();
        t.inspect_error("timeout");
        t.inspect_error("bogus");
        assert_eq!(t.inspect_errors_of("timeout"), 1);
        assert_eq!(
            t.inspect_errors
                .iter()
                .map(|a| a.load(Relaxed))
                .sum::<u64>(),
            1
        );
    }
}
