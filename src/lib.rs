//! rtinspect watches the containers of game runtimes through the Docker Engine
//! API and publishes facts (`inspect_unhealthy` when one restarted, is not
//! running, or reports an unhealthy healthcheck) and incidents for people.
//!
//! The map (ARCHITECTURE.md walks it):
//! - the pure cores decide and do no I/O: `inspector` (the rules and the
//!   baselines), `tick` (every decision of a tick), `schedule` (every decision
//!   of the inspector loop), `incident` (when an incident opens, escalates,
//!   reminds and resolves);
//! - one module per outside system: `docker` (dockerd), `records` and
//!   `postgres` (where the list of runtimes lives), `postgres` and `webhook`
//!   (where events go, through the sink seam in `publish`), `state` (the
//!   state directory), `tls` (trusted CAs), `notify` (systemd), `metrics`
//!   (the listener);
//! - the shell: `worker` carries out the schedule's actions; `publish` takes
//!   an event from "the core decided" to "a sink has it";
//!   `inspector_loop` turns the schedule on its thread; `build` makes the
//!   adapters from a `config`; `daemon` runs them; `commands` are the
//!   one-shot commands; `failure` says why the process ends;
//! - shared leaves: `event`, `log_tail` (a container's last lines, cleaned
//!   and redacted), `telemetry`, `text`, `unix_socket`, `backoff`.
//!
//! There is no async runtime in this crate. Only what `main.rs`, the
//! integration tests and the benchmarks use is public.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// What nothing outside the crate can reach is pub(crate), so that `pub`
// says what main.rs and the tests use.
#![warn(unreachable_pub)]

/// A boxed error cause, kept so that `source()` can reach it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

pub(crate) mod backoff;
mod build;
mod commands;
pub mod config;
pub mod daemon;
pub mod docker;
pub(crate) mod ending;
pub mod event;
pub mod failure;
#[cfg(test)]
mod fakes;
mod history;
pub(crate) mod incident;
pub mod inspector;
mod inspector_loop;
pub mod log_tail;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod postgres;
mod publish;
pub mod records;
pub(crate) mod schedule;
pub(crate) mod shutdown;
pub(crate) mod silence;
pub(crate) mod state;
mod status;
pub mod telemetry;
mod text;
pub mod tick;
pub(crate) mod tls;
mod unix_socket;
pub(crate) mod webhook;
pub mod worker;
