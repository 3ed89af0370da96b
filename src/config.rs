//! Configuration: flags and environment variables in, one validated [`Config`] out.
//!
//! Two stages, as in ripgrep: `raw` holds the command line as given, and
//! the environment is read beside it (a flag wins over its variable; anything
//! not UTF-8 is refused, naming where it came from); then `validate` checks
//! every value and builds plain ones. Every option is a row of one table
//! ([`OPTIONS`]) that the parser and `--help` ([`usage`]) both use. Config is
//! values only: no connection state is built here and no file is read but,
//! for `status` and `history`, the service's settings file, which stands
//! beneath the environment (`defaults_file`); the adapters read the files
//! the options name (CA files, the webhook's URL file) when they are built,
//! and one they cannot use stops the start with exit status 64 like a bad
//! value. Every error names the option and the bad value,
//! except the database URL and the webhook URL, whose values may hold a
//! password or a token.
//!
//! This file holds the values; each family of options has a file of its own:
//! `command`, `database`, `host`, `incidents`, `sinks`, `webhook` and
//! `notify` (the notification URLs, each read by `notify_url`), with
//! `durations`, `names` and `route` for the values they share, and `unread`
//! for an option set where nothing reads it; `silence` and `args` check the
//! flags of commands of their own (`--game`, `--json`, …), which are not
//! options.

mod args;
mod command;
mod database;
mod defaults_file;
mod durations;
mod error;
mod host;
mod incidents;
mod mask;
mod names;
mod notify;
mod notify_url;
mod options;
mod raw;
mod route;
mod row;
mod silence;
mod sinks;
mod unread;
mod usage;
mod validate;
mod webhook;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) use command::Command;
pub(crate) use silence::SilenceCommand;
// `pub` only while the PostgreSQL adapter, `tls` and the webhook sink name
// them in public signatures; the rest of the library uses them, not main.rs
// or tests/.
pub(crate) use database::{CaFile, Database, SslMode};
pub(crate) use error::ConfigError;
pub(crate) use host::{HostId, HostScope};
pub(crate) use incidents::IncidentRules;
pub use names::TableName;
pub(crate) use notify::{NOTIFY_FILE_LIMIT, NotifyFile};
pub use options::{OPTIONS, OptionSpec};
pub(crate) use route::Route;
#[cfg(test)]
pub(crate) use route::{Glob, Report};
pub use row::{Mode, OptionDefault};
pub(crate) use sinks::{Sink, SinkConfig};
pub use usage::usage;
pub use webhook::Webhook;
pub(crate) use webhook::{UrlFile, WebhookFormat, WebhookSettings, WebhookUrl};

use crate::event::DetailLevel;
use raw::RawArgs;

/// What the command line asks for: help and the version need no configuration.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// Print [`usage`].
    Help,
    /// Print the version.
    Version,
    /// Run a command with this configuration (boxed: it is large, help is not).
    Command(Box<Config>),
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` text.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole validated configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The command.
    pub(crate) command: Command,
    /// Path of dockerd's Unix socket.
    pub(crate) docker_socket: PathBuf,
    /// The database, in PostgreSQL mode; `None` is label mode.
    pub(crate) database: Option<Database>,
    /// Time between ticks.
    pub(crate) interval: Duration,
    /// Bound on each Docker request.
    pub(crate) docker_timeout: Duration,
    /// The runtime records table.
    pub(crate) records_table: TableName,
    /// The health events table.
    pub(crate) events_table: TableName,
    /// The silences table.
    pub(crate) silences_table: TableName,
    /// The NOTIFY channel; `None` when NOTIFY is disabled.
    pub(crate) notify_channel: Option<String>,
    /// Where events go: the sinks of `--sink` (one of each kind at most),
    /// in the order given, then the notification URLs of `--notify`.
    pub(crate) sinks: Vec<SinkConfig>,
    /// `--notify-file`: more notification URLs, read when the sinks are built.
    pub(crate) notify_file: Option<NotifyFile>,
    /// The Docker label that marks records in label mode.
    pub(crate) label: String,
    /// Address of the metrics listener, when enabled.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Where the spool and saved baselines live, when enabled.
    pub(crate) state_dir: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Whether Docker's events stream nudges the inspector between ticks.
    pub(crate) events: bool,
    /// How much an event's details carry.
    pub(crate) details: DetailLevel,
    /// This host's id: `--host-id`, else the hostname.
    pub(crate) host: HostId,
    /// Host scoping of the records (PostgreSQL mode), when configured.
    pub(crate) host_scope: Option<HostScope>,
    /// When incidents open, escalate, are reminded of and end.
    pub(crate) incidents: IncidentRules,
    /// What was set and is ignored, in words for a debug line: the prune
    /// age in the defaults file every command reads, an option set to its
    /// default where nothing reads it.
    pub ignored: Vec<String>,
}

impl Config {
    /// Parses the command line (without the program name) and the environment.
    pub fn parse<A, V>(
        args: impl IntoIterator<Item = A>,
        env: &dyn Fn(&str) -> Option<V>,
    ) -> Result<Invocation, ConfigError>
    where
        A: Into<OsString>,
        V: Into<OsString>,
    {
        Config::from_raw(RawArgs::parse(args), &|name| env(name).map(Into::into))
    }

    /// Whether the command answers on stdout, for a person or a script
    /// (`status`, `history`): its log says only warnings and errors unless
    /// `RUST_LOG` asks for more.
    pub fn answers(&self) -> bool {
        matches!(
            self.command,
            Command::Status { .. } | Command::History { .. }
        )
    }

    /// Whether the envelope names the host (`host_id`): when `--host-id` is
    /// given, or host scoping is on; otherwise it stays as it always was.
    pub(crate) fn host_named(&self) -> bool {
        matches!(self.host, HostId::Given(_)) || self.host_scope.is_some()
    }

    /// Whether any sink gets incidents: then they are tracked.
    pub(crate) fn incidents_wanted(&self) -> bool {
        self.sinks.iter().any(|s| s.route.report.incidents())
    }
}

#[cfg(test)]
mod tests;
