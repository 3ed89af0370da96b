//! Why an inspect brought no observation, as the cores tell it apart: a
//! container gone (404), an id the engine would not take, or a failure, with
//! how it failed — which decides whether the tick gives up on dockerd, asks
//! its `/_ping`, or only skips the record — and the adapter's own words for
//! the log. The shell (`worker`) makes it from the Docker client's error, so
//! that no core names an adapter's type.

use std::fmt;

use crate::inspector::Observation;

/// An inspect's answer, as the cores take it.
pub(crate) type InspectAnswer = Result<Observation, InspectError>;

/// Why an inspect brought no observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// 404: no such container; its baseline is kept.
    NotFound,
    /// The id is not a Docker id or name; no request was made.
    InvalidId,
    /// Any other failure: the record is skipped this time.
    Failed(Failure),
}

/// An inspect that failed: how, and what the adapter said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// How it failed.
    pub kind: FailureKind,
    /// The adapter's words, for the log and the status line.
    pub message: String,
}

/// How an inspect failed, as far as a tick must tell it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The socket could not be connected to (missing, refused, permission
    /// denied): dockerd is down, the rest of the tick is skipped.
    NoSocket,
    /// The socket accepted nothing within the timeout (its listen backlog
    /// is full: dockerd is wedged); the rest of the tick is skipped too.
    SocketSilent,
    /// No complete answer within the per-request timeout: this container's
    /// lock or a hung dockerd, which a few in a row and a `/_ping` tell apart.
    Timeout,
    /// The connection broke off (reset, truncated body, bad HTTP).
    Broken,
    /// dockerd answered, but not with an observation (an error status, a
    /// body too large or malformed, an API version refused).
    BadAnswer,
}

impl Failure {
    /// A failure of `kind`, said as `message`.
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The short cause: the `kind` label of `rtinspect_inspect_errors_total`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self.kind {
            FailureKind::Timeout | FailureKind::SocketSilent => "timeout",
            FailureKind::NoSocket | FailureKind::Broken | FailureKind::BadAnswer => "docker",
        }
    }

    /// Whether dockerd gave no answer at all: any HTTP answer, an error
    /// status included, shows it reachable.
    pub(crate) fn means_unreachable(&self) -> bool {
        self.kind != FailureKind::BadAnswer
    }

    /// Whether the socket itself failed: dockerd's, not this container's.
    pub(crate) fn is_the_socket(&self) -> bool {
        matches!(self.kind, FailureKind::NoSocket | FailureKind::SocketSilent)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
