//! The integration tests, one binary: the fake engine for what a real daemon
//! cannot be made to do, the real dockerd for everything else, and the CLI.
//! Each file below holds one kind of test; a new test goes where its line
//! says, and a fixture two files share goes to `support/`.

/// Games that boot after the daemon ticked: the record set follows Docker.
mod booting;
/// The chat formats against receivers started here: what each is posted,
/// a chat's own waits, Discord's rate and size limits kept with digests.
mod chat;
/// The binary as an operator meets it: help, exit codes, streams, signals.
mod cli;
/// The Grafana dashboard against a real Prometheus and the events table.
mod dashboard;
/// The database path: each way an event was once lost or held up on its way
/// into PostgreSQL, and what now keeps it.
mod database_path;
/// The packaged defaults file: each example block starts the service alone.
mod defaults;
/// `--details extended` on the real dockerd: each way a container fails.
mod details;
/// The Docker client against a fake engine: hangs, resets, garbage, refusals.
mod docker_client;
/// The documentation against the code: the options, the commands, the man
/// page, every link, the README's size, the tests the guarantees name.
mod documented;
/// Only failures page people: how each end of a container is classified,
/// and what a stop through the API does to incidents, on the real dockerd.
mod ends;
/// Docker events beside the poll, and a stream that breaks or falls silent.
mod events;
/// Faults across restarts: the spool, baselines after kill -9, a hostile engine.
mod faults;
/// Fleets on one records table: host scoping and its index.
mod fleets;
/// `rtinspect history`: a crash loop and its end, in both modes.
mod history;
/// Incidents that cannot lie: each way an alert was once false, lost or
/// doubled, and the fake dockerd (or the real one) that shows it fixed.
mod incident_truth;
/// Incidents on the real dockerd: opened, crash loop, resolved.
mod incidents;
/// The metrics listener under abuse: idle floods, slow clients, limits.
mod listener;
/// Against the real dockerd: what each state of a real container gives.
mod live_docker;
/// The log tail an incident carries: the Docker client's read against a
/// fake engine and the real dockerd, and the whole path to the event.
mod log_tail;
/// systemd's notify protocol: ready, status, watchdog, stopping.
mod notify;
/// Notification URLs: several chats from `--notify` and `--notify-file`,
/// each a sink with its own route; bad ones refused, masked.
mod notify_limits;
mod notify_urls;
/// The events path under attack: floods of nudges, restarts found by events.
mod nudges;
/// Observability: /metrics checked by promtool, /healthz, JSON logs, and
/// both when events go only to a chat.
mod observe;
/// The status page: escaped, in headless Chromium, under idle connections.
mod page;
/// PgBouncer in transaction mode: every event stored once through it, and
/// a locked records table bounded by the statement timeout.
mod pgbouncer;
/// Against Podman's Docker-compatible API.
mod podman;
/// PostgreSQL mode on a real server: migrate, records in, rows and NOTIFY out.
mod postgres_mode;
/// `rtinspect prune-events`: the events table's retention, in batches.
mod prune_events;
/// Writes of the state directory: a failed save tried again until it
/// succeeds, and a burst of events paid in a few writes, not one a change.
mod saves;
/// What a silence does to incidents on the real dockerd, in both modes.
mod silence_hold;
/// `rtinspect silence` in both modes: add, list, end, bad input.
mod silences;
/// Several sinks at once, each with its own queue, retries, spool, metrics.
mod sinks;
/// `rtinspect status` on the real dockerd: worst first, exit status, JSON.
mod status;
/// Shared fixtures, one file each (engine, docker, postgres, receiver, …).
mod support;
/// One tick through the real Docker client against a fake engine.
mod tick;
/// House rules read off the source: the pure cores stay pure.
mod tidy;
/// TLS to a real PostgreSQL: each sslmode does what libpq's does.
mod tls;
/// The webhook sink against receivers started here: the envelope, each
/// answer, TLS, bounded requests and exits, the token kept out of the log.
mod webhook;
/// Never wedged: refusals for good, frozen sinks, full backlogs at SIGTERM.
mod wedge;
