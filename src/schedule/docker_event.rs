//! A container event as the schedule takes it: which container, what
//! happened to it and when, with what Docker said of it (a game label, a
//! `die`'s exit code, a `kill`'s signal). The events reader makes it from
//! Docker's stream; the schedule decides what it asks for.

use std::time::SystemTime;

use crate::ending::Happened;

/// The container actions that may change a verdict, the record set, or
/// how a container's end is classified, decided once where Docker's line is
/// decoded ([`ContainerAction::parse`]). `health_status` matches
/// `health_status: unhealthy` too (Docker's filter treats it as a prefix).
/// `create` only moves a game's record to its newest container (label
/// mode); it never asks for an inspect. `kill`, `stop`, `destroy` (Podman:
/// `remove`) say that a container's end was asked for through the engine's
/// API (`docker stop`, `docker kill`, `docker rm -f`, a deploy): they feed
/// the classifier of ends (`ending`), and ask for no inspect: the `die`
/// that ends the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerAction {
    /// `die`.
    Die,
    /// `oom`.
    Oom,
    /// `health_status`, with or without Docker's `: unhealthy` suffix.
    HealthStatus,
    /// `start`.
    Start,
    /// `restart`.
    Restart,
    /// `create`.
    Create,
    /// `stop`.
    Stop,
    /// `kill`.
    Kill,
    /// `destroy`.
    Destroy,
    /// `remove` (Podman's `destroy`).
    Remove,
}

impl ContainerAction {
    /// Every action followed: the one list of them, in the order of the
    /// events filter and of the `action` labels of
    /// `rtinspect_docker_events_total`.
    pub const ALL: [ContainerAction; 10] = [
        ContainerAction::Die,
        ContainerAction::Oom,
        ContainerAction::HealthStatus,
        ContainerAction::Start,
        ContainerAction::Restart,
        ContainerAction::Create,
        ContainerAction::Stop,
        ContainerAction::Kill,
        ContainerAction::Destroy,
        ContainerAction::Remove,
    ];

    /// Its name, as Docker's filter and the metrics' label say it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContainerAction::Die => "die",
            ContainerAction::Oom => "oom",
            ContainerAction::HealthStatus => "health_status",
            ContainerAction::Start => "start",
            ContainerAction::Restart => "restart",
            ContainerAction::Create => "create",
            ContainerAction::Stop => "stop",
            ContainerAction::Kill => "kill",
            ContainerAction::Destroy => "destroy",
            ContainerAction::Remove => "remove",
        }
    }

    /// The action followed that Docker's `Action` names, with anything
    /// after a `:` (`health_status: unhealthy`); `None` for the others.
    pub fn parse(action: &str) -> Option<ContainerAction> {
        let name = action.split_once(':').map_or(action, |(name, _)| name);
        ContainerAction::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// One container event, reduced to what the inspector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's full id.
    pub id: String,
    /// Its name, when Docker says (without the leading `/`).
    pub name: Option<String>,
    /// What happened to it: `die`, `oom`, `health_status`, …
    pub action: ContainerAction,
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
    /// What the event tells the classifier of ends, if anything.
    pub fn happened(&self) -> Option<Happened<'_>> {
        Some(match self.action {
            ContainerAction::Start => Happened::Start,
            ContainerAction::Kill => Happened::Kill {
                signal: self.signal.as_deref(),
            },
            ContainerAction::Oom => Happened::Oom,
            ContainerAction::Die => Happened::Die {
                exit_code: self.exit_code,
            },
            ContainerAction::Stop => Happened::Stop,
            ContainerAction::Destroy | ContainerAction::Remove => Happened::Destroy,
            ContainerAction::Restart => Happened::Restart {
                podman: self.podman,
            },
            ContainerAction::HealthStatus | ContainerAction::Create => return None,
        })
    }
}
