//! The Docker Engine API: the client (version negotiation, container inspect
//! and the labelled-container list, over the daemon's Unix socket), the
//! decoding of its bodies, its errors, the events stream and a container's
//! last log lines (`logs`).
//!
//! Only the fields rtinspect needs are decoded; every body is read to its end
//! (or the pooled keep-alive connection would be lost) under a size limit, so a
//! hostile or broken daemon costs an error, not an allocation.

mod api;
mod client;
mod decode;
mod error;
pub mod events;
mod logs;
#[cfg(test)]
mod tests;

/// The rule for a container id or name lives with the records' rules.
pub use crate::inspector::is_valid_container_ref;
pub use api::{
    ApiVersion, ContainerInspector, ContainerLister, INSPECT_BODY_LIMIT, LIST_BODY_LIMIT, MAX_API,
    MIN_API,
};
pub use client::DockerClient;
pub use decode::{
    CreatedAt, LabelledContainer, MAX_TEXT_BYTES, PROBES_KEPT, decode_inspect, decode_inspect_with,
    decode_list,
};
pub use error::DockerError;
pub use logs::LOG_READ_BOUND;
