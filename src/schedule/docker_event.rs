//! A container event as the schedule takes it: which container, what
//! happened to it and when, with what Docker said of it (a game label, a
//! `die`'s exit code, a `kill`'s signal). The events reader makes it from
//! Docker's stream; the schedule decides what it asks for.

use std::time::SystemTime;

use crate::ending::Happened;

/// The container actions that may change a verdict, the record set, or
/// how a container's end is classified. `health_status` matches
/// `health_status: unhealthy` too (Docker's filter treats it as a prefix).
/// `create` only moves a game's record to its newest container (label
/// mode); it never asks for an inspect. `kill`, `stop`, `destroy` (Podman:
/// `remove`) say that a container's end was asked for through the engine's
/// API (`docker stop`, `docker kill`, `docker rm -f`, a deploy): they feed
/// the classifier of ends (`ending`), and ask for no inspect: the `die`
/// that ends the run does.
pub const ACTIONS: [&str; 10] = [
    "die",
    "oom",
    "health_status",
    "start",
    "restart",
    "create",
    "stop",
    "kill",
    "destroy",
    "remove",
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
    /// A `kill`'s `signal` attribute (Docker 20.10 says it as a number;
    /// Podman 4.3 says none).
    pub signal: Option<String>,
    /// Whether Podman sent it: every container event of Podman 4.3 carries
    /// a `podId` attribute, and its `restart` means what Docker's does not.
    pub podman: bool,
    /// Whether dockerd replayed it from `since` (it happened before the
    /// subscription): it tells how a container ended, and asks for nothing
    /// the full tick after each subscription does not do.
    pub replayed: bool,
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

    /// What the event tells the classifier of ends, if anything.
    pub fn happened(&self) -> Option<Happened<'_>> {
        Some(match self.action_label() {
            "start" => Happened::Start,
            "kill" => Happened::Kill {
                signal: self.signal.as_deref(),
            },
            "oom" => Happened::Oom,
            "die" => Happened::Die {
                exit_code: self.exit_code,
            },
            "stop" => Happened::Stop,
            "destroy" | "remove" => Happened::Destroy,
            "restart" => Happened::Restart {
                podman: self.podman,
            },
            _ => return None,
        })
    }
}
