//! Counters shared by the inspector and publisher threads, lock-free.
//!
//! Every counter is an atomic, so the hot path of a tick or a publish costs one
//! relaxed add. The metrics listener only reads them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl Telemetry {
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
