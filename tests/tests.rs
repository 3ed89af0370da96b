//! The integration tests, one binary: the fake engine for what a real daemon
//! cannot be made to do, the real dockerd for everything else, and the CLI.

mod booting;
mod cli;
/// The database path: each way an event was once lost or held up on its way
/// into PostgreSQL, and what now keeps it.
mod database_path;
/// The packaged defaults file: each example block starts the service alone.
mod defaults;
mod details;
mod docker_client;
mod documented;
mod events;
mod faults;
mod fleets;
mod incidents;
mod listener;
mod live_docker;
mod notify;
mod nudges;
mod observe;
mod podman;
mod postgres_mode;
mod sinks;
mod tick;
mod tls;
mod util;
mod webhook;
mod wedge;
