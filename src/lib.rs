//! rtinspect watches the containers of game runtimes through the Docker Engine
//! API and publishes an `inspect_unhealthy` event when one restarted, is not
//! running, or reports an unhealthy healthcheck.
//!
//! The inspector core (`inspector`) decides; everything else talks to one
//! outside system each: `docker` to dockerd, `records` and `postgres` to wherever the
//! list of runtimes lives, `publisher` to the event sink. `daemon` wires them into
//! threads and channels; `metrics` serves the counters of `telemetry`. There is
//! no async runtime in this crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod daemon;
pub mod docker;
pub mod event;
pub mod inspector;
pub mod logging;
pub mod metrics;
pub mod postgres;
pub mod publisher;
pub mod records;
pub mod shutdown;
pub mod state;
pub mod telemetry;
