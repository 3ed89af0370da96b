//! Counters shared by the inspector and publisher threads, and what the
//! ticks' outcome says about whether rtinspect can see.
//!
//! Plain counters are atomics, so the hot path of a tick or a publish costs one
//! relaxed add. A histogram (the tick count is the tick-duration histogram's
//! count), and the outcome of ticks (the last success, the failure streak
//! under way), each sit behind a mutex taken once per tick (or delivery) and
//! once per scrape or `/healthz`, never across I/O. The metrics listener only
//! reads. A sink's counters and how its deliveries went lately are
//! `sink`'s; the histogram is `histogram`'s.

mod histogram;
mod sink;

use crate::incident::{Change, Kind};
use crate::schedule::ContainerAction;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime};

pub(crate) use histogram::{Histogram, HistogramCounts, TICK_BUCKETS};
pub(crate) use sink::SinkCounters;

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
    /// Changes of incidents a silence held back (each once, when made).
    pub incidents_silenced: AtomicU64,
    /// Restarts the looks showed: a container's `RestartCount` risen since
    /// the last look at it (counted with a metrics listener only).
    pub container_restarts: AtomicU64,
    /// Each sink's delivery, in the order the sinks were given.
    pub sinks: Vec<SinkCounters>,
    /// Incidents' changes, whatever the sinks: `[kind][change]`, indexed as
    /// [`INCIDENT_KINDS`] and [`INCIDENT_CHANGES`].
    incidents: [[AtomicU64; INCIDENT_CHANGES.len()]; INCIDENT_KINDS.len()],
}

/// The `kind` labels of `rtinspect_incidents_total`, in the order of the
/// counter.
pub(crate) const INCIDENT_KINDS: [Kind; 4] = [
    Kind::Restarted,
    Kind::Unhealthy,
    Kind::NotRunning,
    Kind::CrashLoop,
];

/// The `change` labels of `rtinspect_incidents_total`, in the order of
/// the counter.
pub(crate) const INCIDENT_CHANGES: [(Change, &str); 4] = [
    (Change::Opened, "opened"),
    (Change::Escalated, "escalated"),
    (Change::Reminder, "reminder"),
    (Change::Resolved, "resolved"),
];

/// The `action` labels of `rtinspect_docker_events_total`: the actions the
/// events reader follows (in the order of [`ContainerAction::ALL`]), and
/// `other`, which the reader never counts (it decodes no other action).
pub const DOCKER_EVENT_ACTIONS: [&str; ContainerAction::ALL.len() + 1] = {
    let mut labels = ["other"; ContainerAction::ALL.len() + 1];
    let mut i = 0;
    while i < ContainerAction::ALL.len() {
        labels[i] = ContainerAction::ALL[i].as_str();
        i += 1;
    }
    labels
};

impl Telemetry {
    /// Counts one Docker event of `action`.
    pub(crate) fn docker_event(&self, action: ContainerAction) {
        self.docker_events[action as usize].fetch_add(1, Relaxed);
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
    pub(crate) fn label(self) -> &'static str {
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
pub(crate) struct FailureStreak {
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
pub(crate) struct TickOutcome {
    /// Monotonic and wall time of the last successful tick.
    pub last_success: Option<(Instant, SystemTime)>,
    /// The failures since the last success, if the last tick failed.
    pub failing: Option<FailureStreak>,
}

/// Unix time now, in milliseconds.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Telemetry {
    /// The counters of a process whose events go to the sinks `names`.
    pub(crate) fn for_sinks(names: &[&str]) -> Telemetry {
        Telemetry {
            sinks: names
                .iter()
                .map(|&name| SinkCounters::named(name))
                .collect(),
            ..Telemetry::default()
        }
    }

    /// The counters of the sink `index` (its place in [`Telemetry::sinks`]).
    pub(crate) fn sink(&self, index: usize) -> &SinkCounters {
        &self.sinks[index]
    }

    /// A tick listed its records and reached dockerd; ends any failure streak.
    pub(crate) fn tick_succeeded(&self, now: Instant, wall: SystemTime) {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        outcome.last_success = Some((now, wall));
        outcome.failing = None;
    }

    /// A tick failed at `stage`; `what` is e.g. "cannot reach dockerd at
    /// /var/run/docker.sock" or "cannot read records", `detail` the error
    /// ("connection refused"). Counts `rtinspect_tick_failures_total{stage}`;
    /// the streak's start time is kept until a success.
    pub(crate) fn tick_failed(
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
    pub(crate) fn busy_with(&self, what: Option<&'static str>, now: Instant) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = what.map(|w| (w, now));
    }

    /// What the tick is doing and since when, if anything.
    pub(crate) fn busy(&self) -> Option<(&'static str, Instant)> {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last success and the failure streak under way, read together.
    pub(crate) fn tick_outcome(&self) -> TickOutcome {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The count of failed ticks at `stage`.
    pub(crate) fn tick_failures_of(&self, stage: Stage) -> u64 {
        self.tick_failures[stage.index()].load(Relaxed)
    }

    /// Counts one inspect error of `kind` (one of [`INSPECT_ERROR_KINDS`]).
    pub(crate) fn inspect_error(&self, kind: &str) {
        if let Some(i) = INSPECT_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.inspect_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts an incident's `change` of `kind`, whatever the sinks.
    pub(crate) fn incident(&self, kind: Kind, change: Change) {
        let k = INCIDENT_KINDS.iter().position(|k| *k == kind);
        let c = INCIDENT_CHANGES.iter().position(|(c, _)| *c == change);
        if let (Some(k), Some(c)) = (k, c) {
            self.incidents[k][c].fetch_add(1, Relaxed);
        }
    }

    /// The count of incidents' `change` of `kind`.
    pub(crate) fn incidents_of(&self, kind: Kind, change: Change) -> u64 {
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
    use std::time::Duration;

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
