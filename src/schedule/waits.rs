//! What waits on a Docker event: a record waiting for its nudged inspect
//! (one per game, however many events were merged into it), and an event
//! waiting for a read of the records.

use std::time::{Instant, SystemTime};

use super::docker_event::ContainerEvent;

/// A record waiting for a nudged inspect, with what it was nudged by.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) game_id: String,
    /// The record's container when it was nudged: if the game has moved to
    /// another container since, the nudge is stale.
    pub(super) container: String,
    pub(super) event: ContainerEvent,
    pub(super) read_at: SystemTime,
    /// Whether any merged event was a health change (Podman's bare
    /// `health_status` asks for a recheck when it still looked healthy).
    pub(super) health: bool,
    /// Whether a merged event was a `die`, and the exit code it said: a
    /// container removed as it died (`--rm`) is judged from it.
    pub(super) died: Option<Option<i64>>,
}

/// An event that waits for a read of the records.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) event: ContainerEvent,
    pub(super) read_at: SystemTime,
    pub(super) arrived: Instant,
    /// Whether a record named its container when it arrived.
    pub(super) known: bool,
}
