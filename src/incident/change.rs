//! What the tracker tells: the kind of an incident, what happened to it,
//! how it ended when no clean run ended it, and the event of each change.

use std::time::SystemTime;

use crate::ending::EndReason;

/// What is wrong with a game, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The container restarted (or was replaced) and runs again.
    Restarted,
    /// The healthcheck reports `unhealthy`.
    Unhealthy,
    /// `State.Status` is not `running`.
    NotRunning,
    /// The container restarted at least `crash_loop_restarts` times without
    /// running clean for `crash_loop_window` in between.
    CrashLoop,
}

impl Kind {
    /// The name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Restarted => "restarted",
            Kind::Unhealthy => "unhealthy",
            Kind::NotRunning => "not_running",
            Kind::CrashLoop => "crash_loop",
        }
    }
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A condition first held: the incident begins.
    Opened,
    /// The incident's kind got worse.
    Escalated,
    /// The incident is still open after another reminder period.
    Reminder,
    /// The container ran clean long enough: the incident is over.
    Resolved,
}

/// How an incident ended when no clean run of its container ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The game left the records, or its container has been gone (404) for
    /// `--recover-after`.
    Removed,
    /// The game's container was stopped through the engine's API, while it
    /// ran or in the restart back-off: the operator took over.
    Stopped,
}

impl Resolution {
    /// The name in events: `removed` or `stopped`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resolution::Removed => "removed",
            Resolution::Stopped => "stopped",
        }
    }
}

/// A change of an incident: the material of an `incident_*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncidentEvent {
    /// What happened.
    pub change: Change,
    /// The game the incident is about.
    pub game_id: String,
    /// The container of the look that made the change (for a game that
    /// left, the last container seen).
    pub container_id: String,
    /// The incident's id (a UUID v7 of when it opened), the same for all its events.
    pub incident_id: String,
    /// The incident's kind after the change.
    pub kind: Kind,
    /// When the incident opened.
    pub started_at: SystemTime,
    /// The restarts counted in the current crash-loop window.
    pub restarts_in_window: u32,
    /// Whether the kernel's OOM killer ended the container during the incident.
    pub oom: bool,
    /// When the look that made the change was made.
    pub at: SystemTime,
    /// How the container last ended, when the change is about an end (the
    /// look found it down, or restarted since the last look).
    pub reason: Option<EndReason>,
    /// A resolution that no clean run made: the game is gone, or its
    /// container was stopped through the API. `Removed` has no look behind it.
    pub resolution: Option<Resolution>,
}
