//! Counters shared by the inspector and publisher threads, lock-free.
//!
//! Every counter is an atomic, so the hot path of a tick or a publish costs one
//! relaxed add. The metrics listener only reads them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The inspect error kinds, in the order of [`Telemetry::inspect_errors`].
pub const INSPECT_ERROR_KINDS: [&str; 4] = ["not_found", "timeout", "docker", "invalid_id"];

/// All counters and gauges of one process.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Events the sink accepted.
    pub events_published: AtomicU64,
    /// Ticks finished (listing failed or not).
    pub ticks: AtomicU64,
    /// Records in the last tick whose listing succeeded.
    pub records: AtomicU64,
    /// Inspect errors by kind, indexed as [`INSPECT_ERROR_KINDS`].
    pub inspect_errors: [AtomicU64; 4],
    /// Failed publish attempts (each retry counts).
    pub publish_failures: AtomicU64,
    /// Events dropped because the publish queue was full.
    pub events_dropped: AtomicU64,
    /// Unix time, in milliseconds, at which the last tick finished; 0 before.
    pub last_tick_unix_ms: AtomicU64,
    /// How long ticks take.
    pub tick_duration: Histogram,
    /// Whether the publisher thread is running.
    pub publisher_alive: AtomicBool,
    /// Events the sink refused for good and set aside.
    pub events_rejected: AtomicU64,
    /// Ticks that failed, by stage (records, docker).
    pub tick_failures: [AtomicU64; 2],
    /// Docker events read, by action, indexed as [`DOCKER_EVENT_ACTIONS`].
    pub docker_events: [AtomicU64; 6],
    /// Times the events stream was reconnected after a break.
    pub stream_reconnects: AtomicU64,
    /// From a Docker event's time to the sink accepting the health event it led to.
    pub detection_latency: Histogram,
}

/// The `action` labels of `rtinspect_docker_events_total`.
pub const DOCKER_EVENT_ACTIONS: [&str; 6] =
    ["die", "oom", "health_status", "start", "restart", "other"];

impl crate::docker::events::StreamCounters for Telemetry {
    fn event(&self, action: &'static str) {
        let i = DOCKER_EVENT_ACTIONS
            .iter()
            .position(|a| *a == action)
            .unwrap_or(DOCKER_EVENT_ACTIONS.len() - 1);
        self.docker_events[i].fetch_add(1, Relaxed);
    }

    fn reconnected(&self) {
        self.stream_reconnects.fetch_add(1, Relaxed);
    }
}

/// Which part of a tick failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The record list could not be read.
    Records,
    /// dockerd could not be reached.
    Docker,
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

/// A Prometheus histogram over [`TICK_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    pub buckets: [AtomicU64; TICK_BUCKETS.len() + 1],
    /// Sum of all observations, in microseconds.
    pub sum_micros: AtomicU64,
    /// Number of observations.
    pub count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = TICK_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(TICK_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Cumulative counts per bucket, `+Inf` last, as Prometheus wants them.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect()
    }
}

impl Telemetry {
    /// A tick listed its records and reached dockerd; ends any failure streak.
    pub fn tick_succeeded(&self, _now: std::time::Instant, _wall: std::time::SystemTime) {}

    /// A tick failed at `stage`.
    pub fn tick_failed(
        &self,
        stage: Stage,
        _what: &str,
        _detail: &str,
        _now: std::time::Instant,
        _wall: std::time::SystemTime,
    ) {
        self.tick_failures[stage as usize].fetch_add(1, Relaxed);
    }

    /// Counts one inspect error of `kind` (one of [`INSPECT_ERROR_KINDS`]).
    pub fn inspect_error(&self, kind: &str) {
        if let Some(i) = INSPECT_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.inspect_errors[i].fetch_add(1, Relaxed);
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
        let c = h.cumulative();
        assert_eq!(c.len(), 16);
        assert_eq!(c[0], 2, "0 ms and 1 ms are <= 1 ms");
        assert_eq!(c[1], 3, "2 ms is <= 2.5 ms");
        assert_eq!(c[5], 4, "40 ms is <= 50 ms");
        assert_eq!(c[14], 4, "70 s is over 60 s");
        assert_eq!(c[15], 5);
        assert_eq!(h.count.load(Relaxed), 5);
        assert_eq!(h.sum_micros.load(Relaxed), 70_043_000);
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
