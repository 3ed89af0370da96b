//! What the tracker remembers of one game between looks: its open
//! incident, its container and restart count at the last look, the clean
//! run under way, and what Docker's events told of it. A few fields, no
//! history of looks or restart times.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::change::{Change, IncidentEvent, Kind, Resolution};
use crate::ending::EndReason;

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Incident {
    pub(super) id: String,
    pub(super) kind: Kind,
    /// When it opened, on the wall clock: reported, never measured.
    pub(super) started_at: SystemTime,
    pub(super) oom: bool,
    /// How the container last ended while it is open, as its looks said:
    /// what an incident a silence held says when it is let out.
    pub(super) reason: Option<EndReason>,
    /// When the next reminder is due; `None` when reminders are off.
    pub(super) next_reminder: Option<Instant>,
}

/// What the tracker remembers of one game. Every time in it is on the
/// monotonic clock, turned into wall-clock time only to be saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GameState {
    /// The container and its `RestartCount` at the last look; `None` before the first.
    pub(super) last: Option<(String, u64)>,
    /// The container's `State.StartedAt` at the last look, when known.
    pub(super) started: Option<String>,
    /// Restarts since the container last ran clean for the crash-loop window.
    pub(super) restarts: u32,
    /// When the restarts of the last hour were counted, oldest first (the
    /// newest [`RESTART_TIMES_KEPT`]): what `status` shows, whatever the
    /// crash-loop window.
    pub(super) restarted_at: VecDeque<Instant>,
    /// When the current run of clean looks began. Saved while an incident is
    /// open or restarts are counted (so that `once`, a look per run, can
    /// resolve one and clear the count): a streak that starts and ends at
    /// every flap of a game with neither must not rewrite the state file.
    pub(super) clean_since: Option<Instant>,
    pub(super) incident: Option<Incident>,
    /// An `oom` event waiting for an incident to open.
    pub(super) oom_at: Option<Instant>,
    /// A restart counted from a rise of `RestartCount` while the container
    /// was `restarting`: the start that ends the wait is that same restart,
    /// not another.
    pub(super) awaiting_start: bool,
    /// Whether the last look saw the container as nothing that could crash:
    /// running and not unhealthy, or created and never started. Replacing
    /// such a container is a deploy, not a crash.
    pub(super) last_fine: bool,
    /// Whether the last container's end was asked for through the engine's
    /// API (its end classified `stopped`) since it last started: that end
    /// opens nothing, and neither replacing it nor starting it again is a
    /// restart.
    pub(super) stopped_by_api: bool,
    /// Since when the game has been gone: left the records, or its container
    /// answered 404. A look ends it.
    pub(super) gone_since: Option<Instant>,
}

/// How far back `status` counts restarts.
pub(super) const RESTARTS_SHOWN_FOR: Duration = Duration::from_secs(3600);

/// The most restart times kept of a game: a game restarting more often
/// than this in an hour shows this many.
pub(super) const RESTART_TIMES_KEPT: usize = 256;

impl GameState {
    /// Counts `n` restarts at `now` for the last hour's count.
    pub(super) fn restarts_seen(&mut self, n: u64, now: Instant) {
        self.restarted_at
            .retain(|t| now.saturating_duration_since(*t) < RESTARTS_SHOWN_FOR);
        for _ in 0..n {
            if self.restarted_at.len() == RESTART_TIMES_KEPT {
                self.restarted_at.pop_front();
            }
            self.restarted_at.push_back(now);
        }
    }

    /// Ends the open incident with `resolution`, which no clean run made:
    /// its `incident_resolved`, for the game's last container. The one
    /// place an incident is closed without a clean look.
    pub(super) fn close(
        &mut self,
        game_id: &str,
        resolution: Resolution,
        reason: Option<EndReason>,
        at: SystemTime,
    ) -> Option<IncidentEvent> {
        let incident = self.incident.take()?;
        Some(IncidentEvent {
            resolution: Some(resolution),
            ..self.event(game_id, &incident, Change::Resolved, reason, at)
        })
    }

    /// The event of `change` to `incident` (the game's open one, or the
    /// one just closed), for the game's last container, with no resolution.
    pub(super) fn event(
        &self,
        game_id: &str,
        incident: &Incident,
        change: Change,
        reason: Option<EndReason>,
        at: SystemTime,
    ) -> IncidentEvent {
        IncidentEvent {
            change,
            game_id: game_id.to_owned(),
            container_id: self
                .last
                .as_ref()
                .map(|(c, _)| c.clone())
                .unwrap_or_default(),
            incident_id: incident.id.clone(),
            kind: incident.kind,
            started_at: incident.started_at,
            restarts_in_window: self.restarts,
            oom: incident.oom,
            at,
            reason,
            resolution: None,
        }
    }

    /// The operator took the game over (its end is `stopped`): the open
    /// incident resolves as `stopped`, and the restarts counted before no
    /// longer make a crash loop of the next.
    pub(super) fn stopped(&mut self, game_id: &str, at: SystemTime) -> Option<IncidentEvent> {
        self.restarts = 0;
        self.clean_since = None;
        self.close(game_id, Resolution::Stopped, Some(EndReason::Stopped), at)
    }

    /// The clean run's start as saved (see `clean_since`).
    pub(super) fn saved_clean_since(&self) -> Option<Instant> {
        self.clean_since
            .filter(|_| self.incident.is_some() || self.restarts > 0)
    }
}
