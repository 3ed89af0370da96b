//! The incident tracker: the rules that turn the looks at a game's container
//! into incidents a person can follow — opened once, escalated when worse,
//! reminded now and then, resolved once — where the inspector reports every
//! look in trouble.
//!
//! It is a plain state machine over per-game memory and does no I/O: every
//! successful inspect (a tick's or a Docker event's) is fed to
//! [`Tracker::look`] with the time it was made, and the changes come back as
//! [`IncidentEvent`]s. Its memory of each game is a few fields (no history of
//! looks or restart times), and [`Tracker::saved`] is what `state` writes so
//! that an incident outlives a restart of rtinspect with the same id.
//!
//! Restarts are counted from the tracker's own memory of each game's
//! container and `RestartCount`, apart from the inspector's baselines. A crash
//! loop is a count, not a sliding window: the count grows with every restart
//! and is cleared only once the container has run clean for the whole
//! crash-loop window, so that restarts spaced out by a back-off never fall out
//! of it one by one.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

pub(crate) use crate::ending::EndReason;

mod change;
mod clock;
mod docker_events;
mod game;
mod gone;
mod look;
mod saved;

pub(crate) use change::{Change, IncidentEvent, Kind, Resolution};
use game::GameState;
pub(crate) use saved::SavedIncidents;

/// How long an `oom` event waits for an incident of its game to open and take
/// it; the `die` that follows an OOM kill comes within moments.
pub(crate) const OOM_GRACE: Duration = Duration::from_secs(60);

/// The most restarts one look counts from a jump of `RestartCount`.
pub(crate) const MAX_RESTARTS_PER_LOOK: u64 = 64;

/// When incidents open, escalate, remind and resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The restarts that make a crash loop, counted until the container has
    /// run clean for `crash_loop_window`.
    pub crash_loop_restarts: u32,
    /// How long a container must run clean for its restart count to be cleared.
    pub crash_loop_window: Duration,
    /// How long a container must run clean for its incident to resolve.
    pub recover_after: Duration,
    /// How often an open incident is recalled; `None` never.
    pub remind: Option<Duration>,
}

impl Default for Policy {
    /// Three restarts within ten minutes, 30 s clean to resolve, a reminder every 4 h.
    fn default() -> Self {
        Policy {
            crash_loop_restarts: 3,
            crash_loop_window: Duration::from_secs(10 * 60),
            recover_after: Duration::from_secs(30),
            remind: Some(Duration::from_secs(4 * 60 * 60)),
        }
    }
}

impl Policy {
    /// How long a container must run clean for an incident of `kind` to resolve.
    ///
    /// A crash loop ends when its restart count is cleared, not 30 s after
    /// each restart: otherwise a game crashing every few minutes would open
    /// and resolve an incident for each crash, and a resolved incident would
    /// reopen straight as a crash loop.
    pub(crate) fn clean_to_resolve(&self, kind: Kind) -> Duration {
        match kind {
            Kind::CrashLoop => self.recover_after.max(self.crash_loop_window),
            _ => self.recover_after,
        }
    }

    /// The reminder period, if reminders are on (a zero period turns them off).
    fn remind_every(&self) -> Option<Duration> {
        self.remind.filter(|d| !d.is_zero())
    }
}

/// A moment as both clocks tell it: the wall clock for what is reported
/// (an event's time, an incident's opening), the monotonic clock for every
/// age, window and reminder, so that a step of the wall clock neither
/// resolves nor holds nor skips anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The wall clock.
    pub wall: SystemTime,
    /// The monotonic clock.
    pub mono: Instant,
}

/// One successful inspect of a game's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look<'a> {
    /// The game the container runs.
    pub game_id: &'a str,
    /// The full container id Docker answered with.
    pub container_id: &'a str,
    /// Docker's `RestartCount`.
    pub restart_count: u64,
    /// `State.Status`.
    pub status: &'a str,
    /// `State.Health.Status`, or `""` when the container has no healthcheck.
    pub health: &'a str,
    /// `State.StartedAt`, when Docker reports it: a start that no restart
    /// count shows (`docker start`, `docker restart`, the API's) changes it.
    pub started_at: Option<&'a str>,
    /// How the container last ended, as the classifier of ends tells it
    /// after this look (`None`: it never ended, as far as anything told).
    /// A `stopped` end opens nothing, and a start after it counts nothing.
    pub end: Option<EndReason>,
    /// The container is down and the events that tell how it ended are
    /// still on their way (see `ending::Endings::settling`): its end opens
    /// nothing yet.
    pub settling: bool,
    /// When the inspect was made.
    pub at: Stamp,
}

/// The incidents of every game, and the memory of each game behind them.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    policy: Policy,
    games: HashMap<String, GameState>,
    /// Whether the saved state changed since [`Tracker::take_changed`].
    changed: bool,
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub(crate) fn new(policy: Policy) -> Tracker {
        Tracker {
            policy,
            games: HashMap::new(),
            changed: false,
        }
    }

    /// Whether the state changed since the last call (so it needs saving).
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The number of incidents open now.
    pub(crate) fn open_incidents(&self) -> usize {
        self.games.values().filter(|g| g.incident.is_some()).count()
    }

    /// The incident open for `game_id` as it stands, as its `change` at
    /// `at`: what a silence held back, said once it is over.
    pub(crate) fn open_incident(
        &self,
        game_id: &str,
        change: Change,
        at: SystemTime,
    ) -> Option<IncidentEvent> {
        let game = self.games.get(game_id)?;
        let incident = game.incident.as_ref()?;
        Some(game.event(game_id, incident, change, incident.reason, at))
    }
}

#[cfg(test)]
mod tests;
