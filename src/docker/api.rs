//! What the Docker Engine API is to rtinspect: the versions it speaks, the
//! size limits of a body, a container of the list, and the two seams the
//! rest of the crate talks to (inspect one container, list the labelled
//! ones). Every other file of `docker/` builds on these.

use std::fmt;

use super::decode::{CreatedAt, LabelledContainer};
use super::error::DockerError;
use crate::inspector::Observation;

/// The highest API version this client speaks. The fields read here have kept
/// their shape from 1.24 on; Docker 29 refuses anything below 1.44.
pub const MAX_API: ApiVersion = ApiVersion {
    major: 1,
    minor: 51,
};

/// The lowest API version whose inspect body has `State.Health` (Docker 1.12).
pub const MIN_API: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};

/// An inspect body is about 4.5 KB; anything over this is not one.
pub const INSPECT_BODY_LIMIT: u64 = 1024 * 1024;

/// A list body is about 1.5 KB per container; this allows some 5,000, far
/// more than a small host runs, and keeps a hostile answer well inside the
/// unit's `MemoryMax=64M` (the decoded list costs about as much again).
pub const LIST_BODY_LIMIT: u64 = 8 * 1024 * 1024;

/// Error bodies are `{"message": "..."}`; only that much is read.
pub(super) const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A Docker Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u16,
    /// The part that moves.
    pub minor: u16,
}

impl ApiVersion {
    /// Parses `"1.41"`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.trim().split_once('.')?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Inspects one container. The seam the tick core talks to.
pub trait ContainerInspector {
    /// `GET /containers/<id>/json`, reduced to an [`Observation`].
    fn inspect(&self, container: &str) -> Result<Observation, DockerError>;

    /// `GET /_ping`: whether dockerd answers, for a tick with no records.
    fn ping(&self) -> Result<(), DockerError>;
}

/// Lists the containers that carry a label. The seam label mode reads.
pub trait ContainerLister {
    /// Every container, in any state, that carries `label`.
    fn list_labelled(&self, label: &str) -> Result<Vec<LabelledContainer>, DockerError>;

    /// A container's creation time to the nanosecond (the inspect's
    /// `Created`): the list says it in whole seconds only, and a game
    /// replaced within the second it was created has two containers of the
    /// same second.
    fn created(&self, container: &str) -> Result<CreatedAt, DockerError>;
}
