//! The integration tests, one binary: the fake engine for what a real daemon
//! cannot be made to do, the real dockerd for everything else, and the CLI.

mod cli;
mod docker_client;
mod documented;
mod faults;
mod fleets;
mod live_docker;
mod notify;
mod observe;
mod postgres_mode;
mod tick;
mod tls;
mod util;
mod wedge;
