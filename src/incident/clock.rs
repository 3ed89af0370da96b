//! Ages and due times on the monotonic clock, which the tracker measures
//! every window, grace and reminder with.

use std::time::{Duration, Instant};

/// How long from `since` to `at` on the monotonic clock.
pub(super) fn elapsed(since: Instant, at: Instant) -> Duration {
    at.saturating_duration_since(since)
}

/// The first due time of the grid `due + k * every` that is after `at`;
/// `None` past the end of time.
pub(super) fn next_due(due: Instant, every: Duration, at: Instant) -> Option<Instant> {
    let missed = elapsed(due, at).as_nanos() / every.as_nanos();
    let steps = u32::try_from(missed + 1).ok()?;
    due.checked_add(every.checked_mul(steps)?)
}
