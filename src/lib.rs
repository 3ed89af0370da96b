//! rtinspect watches the containers of game runtimes through the Docker Engine
//! API and publishes an `inspect_unhealthy` event when one restarted, is not
//! running, or reports an unhealthy healthcheck.
//!
//! The core decides and does no I/O: `inspector` holds the rules and the
//! baselines, `tick` every decision of a tick, `schedule` every decision of
//! the inspector loop (ticks, Docker events, the record set that follows
//! Docker). Each outside system has one module: `docker` (dockerd), `records`
//! and `postgres` (wherever the list of runtimes lives), `sink`, `postgres`
//! and `webhook` (where events go), `state` (the state directory), `tls`
//! (trusted CAs), `notify` (systemd). `publisher` runs the sink on a thread
//! of its own; `worker` is the shell of I/O around the schedule (it carries
//! out its actions, and logs and counts what the core decides);
//! `daemon` wires everything into threads and channels; `metrics` serves the
//! counters of `telemetry`. There is no async runtime in this crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// A boxed error cause, kept so that `source()` can reach it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

pub mod backoff;
mod build;
mod commands;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod event;
pub mod failure;
#[cfg(test)]
mod fakes;
pub mod incident;
pub mod inspector;
mod inspector_loop;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod postgres;
mod publish;
pub mod publisher;
pub mod records;
pub mod schedule;
pub mod shutdown;
pub mod sink;
pub mod state;
pub mod telemetry;
mod text;
pub mod tick;
pub mod tls;
pub mod webhook;
pub mod worker;
