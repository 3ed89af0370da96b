//! A container event as the schedule takes it: which container, what
//! happened to it and when, with what Docker said of it (a game label, a
//! `die`'s exit code, a `kill`'s signal). The events reader makes it from
//! Docker's stream; the schedule decides what it asks for.

use std::time::SystemTime;

/// The container actions that may change a verdict, or the record set.
/// `health_status` matches `health_status: unhealthy` too (Docker's filter
/// treats it as a prefix). `create` only moves a game's record to its newest
/// container (label mode); it never asks for an inspect. `stop` and `kill`
/// never ask for one either: they say that a container's end, which its
/// `die` reports, was asked for through Docker's API (`docker stop`, `docker
/// kill`, `docker rm -f`, a deploy), so that replacing it is no crash.
pub const ACTIONS: [&str; 8] = [
    "die",
    "oom",
    "health_status",
    "start",
    "restart",
    "create",
    "stop",
    "kill",
];

/// One container event, reduced to what the inspector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's full id.
    pub id: String,
    /// Its name, when Docker says (without the leading `/`).
    pub name: Option<String>,
    /// `die`, `oom`, `health_status: unhealthy`, …
    pub action: String,
    /// When dockerd says it happened.
    pub at: SystemTime,
    /// Label mode: the value of the game label, when the container carries
    /// it. Docker copies every label of the container into a container
    /// event's `Actor.Attributes` (moby `daemon/events.go`, `copyAttributes`;
    /// seen on Docker 20.10 for `create`, `start` and `die`, and the same in
    /// Docker 29), and so does Podman 4.3's Docker API (beside its own
    /// `podId` and `containerExitCode`): an event without the label is of a
    /// container that is not a game's. `None` in PostgreSQL mode.
    pub game: Option<String>,
    /// A `die`'s `exitCode` attribute: how the container ended, which is
    /// all there is to say of one removed as it died (`--rm`).
    pub exit_code: Option<i64>,
    /// A `kill`'s `signal` attribute (Docker 20.10 says it as a number).
    pub signal: Option<String>,
}

impl ContainerEvent {
    /// The action's label for `rtinspect_docker_events_total{action}`: one of
    /// [`ACTIONS`], `health_status` for every health change.
    pub fn action_label(&self) -> &'static str {
        ACTIONS
            .iter()
            .find(|a| {
                self.action
                    .strip_prefix(**a)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
            })
            .copied()
            .unwrap_or("other")
    }

    /// Whether this event ends the container through Docker's API: a
    /// `stop`, or a `kill` with `SIGKILL` or `SIGTERM` (what `docker stop`,
    /// `docker kill` and `docker rm -f` send; Docker 20.10 sends `kill`
    /// before the `die`, and `stop` after it or before: moby#50220) or
    /// with no signal said. A `kill` with another signal (`docker kill -s
    /// USR1`) is often survived, and ends nothing.
    pub fn ends_by_api(&self) -> bool {
        match self.action_label() {
            "stop" => true,
            "kill" => self.signal.as_deref().is_none_or(|s| {
                matches!(s.trim_start_matches("SIG"), "9" | "15" | "KILL" | "TERM")
            }),
            _ => false,
        }
    }
}
