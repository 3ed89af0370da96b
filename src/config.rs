//! Configuration: flags and environment variables in, one validated [`Config`] out.
//!
//! Two stages, as in ripgrep: [`RawArgs`] holds the command line as given, and
//! the environment is read beside it (a flag wins over its variable; anything
//! not UTF-8 is refused, naming where it came from); then [`Config::from_raw`]
//! checks every value and builds plain ones. Every option is a row of one
//! table ([`OPTIONS`]) that the parser and `--help` both use. Config is values
//! only: no file is read and no connection state is built here; the adapters
//! do that when they are built. Every error names the option and the bad
//! value, except the database URL and the webhook URL, whose values may hold
//! a password or a token.

mod database;
mod error;
mod host;
mod names;
mod options;
mod raw;
mod webhook;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use database::{CaFile, Database, SplitUrl, SslMode, split_tls_params};
pub use error::ConfigError;
pub use host::{HostId, HostScope, MAX_HOST_ID};
pub use names::{TableName, is_identifier};
pub use options::{Mode, OPTIONS, Opt, OptionDefault, OptionSpec, usage};
pub use raw::RawArgs;
pub use webhook::{Webhook, WebhookFormat, WebhookUrl};

pub use crate::event::DetailLevel;

use raw::{Given, Inputs, Resolved};

/// What the process was asked to do, once the configuration is valid; a
/// command that works on the database carries it.
#[derive(Debug, Clone)]
pub enum Command {
    /// The loop, until SIGTERM or SIGINT.
    Run,
    /// One tick, then exit once its events are delivered.
    Once,
    /// Create the tables and their indexes if missing.
    Migrate {
        /// Where they are created.
        database: Database,
    },
    /// Delete the events recorded longer ago than this.
    PruneEvents {
        /// Where the events are.
        database: Database,
        /// The age beyond which an event goes.
        older_than: Duration,
    },
    /// Send one test message through every sink.
    NotifyTest,
}

/// The command as asked for, before it is known to have what it needs.
enum Asked {
    Run,
    Once,
    Migrate,
    PruneEvents { older_than: Duration },
    NotifyTest,
}

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

/// Where events go, with what that sink needs.
#[derive(Debug, Clone)]
pub enum Sink {
    /// One envelope per line on standard output.
    Stdout,
    /// A row in the events table plus `pg_notify`, in this database: the
    /// one the records come from (boxed: it is large, stdout is nothing).
    Postgres(Box<Database>),
    /// A `POST` to a webhook.
    Webhook(Webhook),
}

impl Sink {
    /// Which sink it is.
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Stdout => SinkKind::Stdout,
            Sink::Postgres(_) => SinkKind::Postgres,
            Sink::Webhook(_) => SinkKind::Webhook,
        }
    }
}

/// A sink and what it gets.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where the events go.
    pub sink: Sink,
    /// Facts, incidents or both (`--report`).
    pub report: Report,
}

/// Which sink events go to, as `--sink` names it (and the option table
/// says which sink reads an option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// One envelope per line on standard output.
    Stdout,
    /// A row in the events table plus `pg_notify`.
    Postgres,
    /// A `POST` to a webhook.
    Webhook,
}

impl SinkKind {
    /// The `--sink` value that names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::Postgres => "postgres",
            SinkKind::Webhook => "webhook",
        }
    }
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
    pub command: Command,
    /// Path of dockerd's Unix socket.
    pub docker_socket: PathBuf,
    /// The database, in PostgreSQL mode; `None` is label mode.
    pub database: Option<Database>,
    /// Time between ticks.
    pub interval: Duration,
    /// Bound on each Docker request.
    pub docker_timeout: Duration,
    /// The runtime records table.
    pub records_table: TableName,
    /// The health events table.
    pub events_table: TableName,
    /// The NOTIFY channel; `None` when NOTIFY is disabled.
    pub notify_channel: Option<String>,
    /// Where events go: one sink of each kind at most, in the order given.
    pub sinks: Vec<SinkConfig>,
    /// The Docker label that marks records in label mode.
    pub label: String,
    /// Address of the metrics listener, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the spool and saved baselines live, when enabled.
    pub state_dir: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Whether Docker's events stream nudges the inspector between ticks.
    pub events: bool,
    /// How much an event's details carry.
    pub details: DetailLevel,
    /// Host scoping of the records (PostgreSQL mode), when configured.
    pub host_scope: Option<HostScope>,
    /// When incidents open, escalate, are reminded of and end.
    pub incidents: IncidentRules,
    /// What was set and is ignored, in words for a debug line: the prune
    /// age in the defaults file every command reads, an option set to its
    /// default where nothing reads it.
    pub ignored: Vec<String>,
}

/// What a sink gets (`--report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `inspect_unhealthy` every tick for every record in trouble.
    Facts,
    /// `incident_*` events: one per change of an incident.
    Incidents,
    /// Both.
    Both,
}

impl Report {
    /// Whether facts go to the sink.
    pub fn facts(self) -> bool {
        self != Report::Incidents
    }

    /// Whether incidents go to the sink.
    pub fn incidents(self) -> bool {
        self != Report::Facts
    }

    /// Whether an event goes to the sink: an incident's (`incident`), or a fact.
    pub fn wants(self, incident: bool) -> bool {
        if incident {
            self.incidents()
        } else {
            self.facts()
        }
    }
}

/// The incident rules (`--crash-loop-restarts`, `--crash-loop-window`,
/// `--recover-after`, `--remind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentRules {
    /// Restarts within the window that make a crash loop.
    pub crash_loop_restarts: u32,
    /// The window restarts are counted in.
    pub crash_loop_window: Duration,
    /// How long a container runs clean before its incident is resolved.
    pub recover_after: Duration,
    /// How often an open incident is reported again; `None`: never.
    pub remind: Option<Duration>,
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

    /// Validates every value of `raw` and of the environment at once.
    pub fn from_raw(
        raw: RawArgs,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Invocation, ConfigError> {
        let (command, mut inputs) = match raw.resolve(env)? {
            Resolved::Help => return Ok(Invocation::Help),
            Resolved::Version => return Ok(Invocation::Version),
            Resolved::Command { command, inputs } => (command, inputs),
        };
        let command = match command.as_deref() {
            None | Some("run") => Asked::Run,
            Some("once") => Asked::Once,
            Some("migrate") => Asked::Migrate,
            Some("prune-events") => Asked::PruneEvents {
                older_than: older_than(&inputs)?,
            },
            Some("notify-test") => Asked::NotifyTest,
            Some(other) => {
                return Err(ConfigError::new(format!(
                    "unknown command {other:?}; expected run, once, migrate, prune-events \
                     or notify-test"
                )));
            }
        };
        let mut ignored = Vec::new();
        if let (false, Some(given)) = (
            matches!(command, Asked::PruneEvents { .. }),
            inputs.given(Opt::OlderThan),
        ) {
            // The variable may sit in the defaults file every command reads;
            // the flag on another command is a mistake.
            if matches!(given.source, raw::Source::Flag(_)) {
                return Err(ConfigError::new(format!(
                    "{} has no effect: only prune-events reads it; remove it",
                    given.described()
                )));
            }
            ignored.push(format!(
                "{} is ignored: only prune-events reads it",
                given.described()
            ));
            inputs.ignore(Opt::OlderThan);
        }
        let docker_socket = docker_socket(&inputs.with_default(Opt::DockerHost)?)?;
        let database = match inputs.given(Opt::DatabaseUrl) {
            None => None,
            Some(url) => Some(database::database(url, inputs.given(Opt::DatabaseCaFile))?),
        };
        // Said once every value below is valid: a bad value first, then an
        // option that has no effect, then what a sink or the command lacks.
        let sinks = sinks(inputs.given(Opt::Sink), database.as_ref()).and_then(|chosen| {
            check_mode(&inputs, database.is_some(), &mut ignored)?;
            check_sinks(&inputs, &chosen, &mut ignored)?;
            let reports = reports(inputs.given(Opt::Report), &chosen)?;
            chosen
                .into_iter()
                .zip(reports)
                .map(|(chosen, report)| {
                    Ok(SinkConfig {
                        sink: chosen.build(&inputs)?,
                        report,
                    })
                })
                .collect::<Result<Vec<_>, ConfigError>>()
        });
        let command = with_database(command, database.as_ref());
        let config = Config {
            docker_socket,
            interval: duration(
                &inputs.with_default(Opt::Interval)?,
                Duration::from_secs(24 * 3600),
            )?,
            docker_timeout: duration(
                &inputs.with_default(Opt::DockerTimeout)?,
                Duration::from_secs(600),
            )?,
            records_table: table(&inputs.with_default(Opt::RecordsTable)?)?,
            events_table: table(&inputs.with_default(Opt::EventsTable)?)?,
            notify_channel: notify_channel(&inputs.with_default(Opt::NotifyChannel)?)?,
            label: label(&inputs.with_default(Opt::Label)?)?,
            metrics_addr: inputs
                .given(Opt::MetricsAddr)
                .map(metrics_addr)
                .transpose()?,
            state_dir: state_dir(&inputs)?,
            log_format: log_format(&inputs.with_default(Opt::LogFormat)?)?,
            events: on_off(&inputs.with_default(Opt::Events)?)?,
            details: details(&inputs.with_default(Opt::Details)?)?,
            host_scope: host_scope(&inputs)?,
            incidents: IncidentRules {
                crash_loop_restarts: count(
                    &inputs.with_default(Opt::CrashLoopRestarts)?,
                    1..=1000,
                )?,
                crash_loop_window: duration(
                    &inputs.with_default(Opt::CrashLoopWindow)?,
                    Duration::from_secs(7 * 24 * 3600),
                )?,
                recover_after: duration(
                    &inputs.with_default(Opt::RecoverAfter)?,
                    Duration::from_secs(24 * 3600),
                )?,
                remind: remind(&inputs.with_default(Opt::Remind)?)?,
            },
            sinks: sinks?,
            command: command?,
            database,
            ignored,
        };
        Ok(Invocation::Command(Box::new(config)))
    }

    /// Whether any sink gets incidents: then they are tracked.
    pub fn incidents_wanted(&self) -> bool {
        self.sinks.iter().any(|s| s.report.incidents())
    }
}

/// Refuses an option set (by flag or environment) for the mode that does not
/// read it: an operator who sets `--records-table` without a database, or
/// `--label` with one, expects it to matter, and ignoring it hides the mistake.
///
/// An option set to its default value is harmless either way (a defaults
/// file may hold every default uncommented): it is ignored, and said in
/// `ignored`.
fn check_mode(
    inputs: &Inputs,
    database: bool,
    ignored: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let (unused, why) = if database {
        (
            Mode::Label,
            "the records come from the database (--database-url or RTINSPECT_DATABASE_URL), \
             not from labels",
        )
    } else {
        (
            Mode::Postgres,
            "label mode uses no database (set --database-url or RTINSPECT_DATABASE_URL \
             for PostgreSQL mode)",
        )
    };
    let unread = OPTIONS.iter().filter(|spec| spec.mode == unused);
    let set_for_the_other_mode = not_default(inputs, unread, ignored, "the other mode reads it")
        .next()
        .map(|(_, given)| given);
    match set_for_the_other_mode {
        None => Ok(()),
        Some(given) => Err(ConfigError::new(format!(
            "{} has no effect: {why}; remove it",
            given.described()
        ))),
    }
}

/// Refuses an option that only a sink not chosen reads (`--webhook-url`
/// with the stdout sink, say), for the same reason as [`check_mode`].
/// The fix is named beside the removal: the sink that reads it added to
/// `--sink`, in the form the operator used.
fn check_sinks(
    inputs: &Inputs,
    chosen: &[Chosen<'_>],
    ignored: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let unread = OPTIONS.iter().filter(|spec| {
        spec.sink
            .is_some_and(|k| chosen.iter().all(|c| c.kind() != k))
    });
    let set_for_another_sink =
        not_default(inputs, unread, ignored, "no sink chosen reads it").next();
    let Some((spec, given)) = set_for_another_sink else {
        return Ok(());
    };
    let wanted = spec.sink.map_or("", SinkKind::as_str);
    let mut names: Vec<&str> = chosen.iter().map(|c| c.kind().as_str()).collect();
    // The sinks as given, and the one wanted: `stdout,webhook`.
    let as_given = inputs.given(Opt::Sink);
    let env = match as_given {
        Some(sink) => !matches!(sink.source, raw::Source::Flag(_)),
        None => !matches!(given.source, raw::Source::Flag(_)),
    };
    // The default stdout sink gives way; a database's postgres sink stays.
    if as_given.is_none() && names == ["stdout"] {
        names.clear();
    }
    names.push(wanted);
    let fix = if env {
        format!("RTINSPECT_SINK={}", names.join(","))
    } else {
        format!("--sink {}", names.join(","))
    };
    Err(ConfigError::new(format!(
        "{} has no effect: events go to {}, and only --sink {wanted} reads it; \
         add `{fix}`, or remove it",
        given.described(),
        sinks_named(chosen),
    )))
}

/// The options of `unread` set to another value than their default, with
/// their values; those set to their default are ignored, and said in
/// `ignored` (`why`: why nothing reads them).
fn not_default<'a, 'b>(
    inputs: &'b Inputs,
    unread: impl Iterator<Item = &'a options::OptionSpec>,
    ignored: &mut Vec<String>,
    why: &str,
) -> std::vec::IntoIter<(&'a options::OptionSpec, &'b Given)> {
    let mut set = Vec::new();
    for spec in unread {
        let Some(given) = inputs.given(spec.key) else {
            continue;
        };
        match spec.default {
            OptionDefault::Value(default) if given.value == default => ignored.push(format!(
                "{} is ignored: it is the default, and {why}",
                given.described()
            )),
            _ => set.push((spec, given)),
        }
    }
    set.into_iter()
}

/// "the stdout sink", "the postgres and webhook sinks".
fn sinks_named(chosen: &[Chosen<'_>]) -> String {
    let names: Vec<&str> = chosen.iter().map(|c| c.kind().as_str()).collect();
    match names.split_last() {
        Some((last, [])) => format!("the {last} sink"),
        Some((last, rest)) => format!("the {} and {last} sinks", rest.join(", ")),
        None => "no sink".to_owned(),
    }
}

/// `unix:///path` → the socket's path.
fn docker_socket(given: &Given) -> Result<PathBuf, ConfigError> {
    match given.value.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => {
            Err(given
                .invalid("expected unix:///path/to/docker.sock (only Unix sockets are supported)"))
        }
    }
}

/// Parses `250ms`, `15s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// `--older-than`: a duration as [`parse_duration`] reads it, or whole days
/// (`30d`); greater than zero, at most 10000 days (27 years: the cutoff stays after 1970).
fn older_than(inputs: &Inputs) -> Result<Duration, ConfigError> {
    let Some(given) = inputs.given(Opt::OlderThan) else {
        return Err(ConfigError::new(
            "prune-events needs --older-than (or RTINSPECT_PRUNE_OLDER_THAN), e.g. --older-than 30d",
        ));
    };
    let age = match given.value.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs),
        _ => parse_duration(&given.value),
    }
    .ok_or_else(|| given.invalid("expected a duration such as 12h or 30d"))?;
    if age.is_zero() {
        return Err(given.invalid("must be greater than zero"));
    }
    if age > Duration::from_secs(10_000 * 86_400) {
        return Err(given.invalid("must be at most 10000d"));
    }
    Ok(age)
}

/// `--host-column` and `--host-id`; the id alone would scope nothing.
fn host_scope(inputs: &Inputs) -> Result<Option<HostScope>, ConfigError> {
    let id = inputs.given(Opt::HostId).map(host::host_id).transpose()?;
    let Some(column) = inputs.given(Opt::HostColumn) else {
        return match inputs.given(Opt::HostId) {
            Some(given) => Err(ConfigError::new(format!(
                "{} has no effect without --host-column (or RTINSPECT_HOST_COLUMN); \
                 set the column or remove it",
                given.described()
            ))),
            None => Ok(None),
        };
    };
    if !is_identifier(&column.value) {
        return Err(column.invalid(
            "expected a column name of letters, digits, _ and $ (at most 63), \
             not starting with a digit or $",
        ));
    }
    Ok(Some(HostScope {
        column: column.value.clone(),
        id: id.unwrap_or(HostId::Hostname),
    }))
}

/// A duration greater than zero and at most `max`.
fn duration(given: &Given, max: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(&given.value)
        .ok_or_else(|| given.invalid("expected a duration such as 250ms, 15s, 2m or 1h"))?;
    if d.is_zero() {
        return Err(given.invalid("must be greater than zero"));
    }
    if d > max {
        return Err(given.invalid(&format!("must be at most {}s", max.as_secs())));
    }
    Ok(d)
}

fn table(given: &Given) -> Result<TableName, ConfigError> {
    TableName::parse(&given.value).ok_or_else(|| {
        given.invalid(
            "expected a table name such as runtime_records or schema.runtime_records \
             (letters, digits, _ and $, at most 63 each)",
        )
    })
}

/// A channel name, or empty to disable NOTIFY.
fn notify_channel(given: &Given) -> Result<Option<String>, ConfigError> {
    if given.value.is_empty() {
        return Ok(None);
    }
    if !is_identifier(&given.value) {
        return Err(given.invalid(
            "expected a channel name of letters, digits, _ and $ (at most 63), or empty",
        ));
    }
    Ok(Some(given.value.clone()))
}

/// A sink chosen, with where its settings come from.
enum Chosen<'a> {
    Stdout,
    Postgres(&'a Database),
    /// Only a given `--sink` chooses the webhook.
    Webhook(&'a Given),
}

impl Chosen<'_> {
    fn kind(&self) -> SinkKind {
        match self {
            Chosen::Stdout => SinkKind::Stdout,
            Chosen::Postgres(_) => SinkKind::Postgres,
            Chosen::Webhook(_) => SinkKind::Webhook,
        }
    }

    /// The sink with its settings: the webhook's are read now, once
    /// [`check_sink`] has refused every webhook option for another sink.
    fn build(self, inputs: &Inputs) -> Result<Sink, ConfigError> {
        Ok(match self {
            Chosen::Stdout => Sink::Stdout,
            Chosen::Postgres(database) => Sink::Postgres(Box::new(database.clone())),
            Chosen::Webhook(sink) => Sink::Webhook(webhook::webhook(
                sink,
                inputs.given(Opt::WebhookUrl),
                inputs.given(Opt::WebhookUrlFile),
                &inputs.with_default(Opt::WebhookFormat)?,
                inputs.given(Opt::WebhookCaFile),
            )?),
        })
    }
}

/// The sinks asked for (`--sink postgres,webhook`, or the flag given once
/// for each), else the mode's default: postgres with a database.
fn sinks<'a>(
    given: Option<&'a Given>,
    database: Option<&'a Database>,
) -> Result<Vec<Chosen<'a>>, ConfigError> {
    let Some(given) = given else {
        return Ok(vec![match database {
            Some(database) => Chosen::Postgres(database),
            None => Chosen::Stdout,
        }]);
    };
    let mut chosen: Vec<Chosen<'a>> = Vec::new();
    for name in given.value.split(',').map(str::trim) {
        let sink =
            match (name, database) {
                ("", _) => {
                    return Err(given.invalid(
                        "an empty sink name (a comma at an end, two in a row, or an empty --sink)",
                    ));
                }
                ("stdout", _) => Chosen::Stdout,
                ("webhook", _) => Chosen::Webhook(given),
                ("postgres", Some(database)) => Chosen::Postgres(database),
                ("postgres", None) => {
                    return Err(given.invalid("the postgres sink needs --database-url"));
                }
                _ => return Err(given.invalid(
                    "expected stdout, postgres or webhook, or several of them separated by commas",
                )),
            };
        if chosen.iter().any(|c| c.kind() == sink.kind()) {
            return Err(given.invalid(&format!(
                "the {name} sink is named twice; each sink can be used once"
            )));
        }
        chosen.push(sink);
    }
    Ok(chosen)
}

/// The command, with the database it works on: `migrate` and
/// `prune-events` need one.
fn with_database(asked: Asked, database: Option<&Database>) -> Result<Command, ConfigError> {
    let needs_database = |name: &str| {
        database.cloned().ok_or_else(|| {
            ConfigError::new(format!(
                "{name} needs a database: set --database-url or RTINSPECT_DATABASE_URL"
            ))
        })
    };
    Ok(match asked {
        Asked::Run => Command::Run,
        Asked::Once => Command::Once,
        Asked::Migrate => Command::Migrate {
            database: needs_database("migrate")?,
        },
        Asked::PruneEvents { older_than } => Command::PruneEvents {
            database: needs_database("prune-events")?,
            older_than,
        },
        Asked::NotifyTest => Command::NotifyTest,
    })
}

fn label(given: &Given) -> Result<String, ConfigError> {
    let v = &given.value;
    if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) || v.trim() != v {
        return Err(given.invalid(
            "expected a Docker label key without spaces at the ends or control characters",
        ));
    }
    Ok(v.clone())
}

fn metrics_addr(given: &Given) -> Result<SocketAddr, ConfigError> {
    given
        .value
        .parse()
        .map_err(|_| given.invalid("expected HOST:PORT such as 127.0.0.1:9464"))
}

/// `--state-dir`, else the first directory of systemd's `STATE_DIRECTORY`.
fn state_dir(inputs: &Inputs) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(given) = inputs.given(Opt::StateDir) {
        if !given.value.starts_with('/') {
            return Err(given.invalid("expected an absolute directory path"));
        }
        return Ok(Some(PathBuf::from(&given.value)));
    }
    // systemd's StateDirectory= sets STATE_DIRECTORY, colon-separated when
    // the unit names several; the first one is ours.
    Ok(inputs
        .state_directory()
        .and_then(|g| g.value.split(':').next())
        .filter(|v| v.starts_with('/'))
        .map(PathBuf::from))
}

fn on_off(given: &Given) -> Result<bool, ConfigError> {
    match given.value.as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(given.invalid("expected on or off")),
    }
}

fn details(given: &Given) -> Result<DetailLevel, ConfigError> {
    match given.value.as_str() {
        "basic" => Ok(DetailLevel::Basic),
        "extended" => Ok(DetailLevel::Extended),
        _ => Err(given.invalid("expected basic or extended")),
    }
}

/// Each chosen sink's `--report`: one value for every sink
/// (`incidents`), or one per sink (`postgres=facts,webhook=incidents`);
/// a sink not named gets its default: a table and a stdout stream are read
/// by programs (facts), a webhook by people (incidents).
fn reports(given: Option<&Given>, chosen: &[Chosen<'_>]) -> Result<Vec<Report>, ConfigError> {
    let default = |kind: SinkKind| match kind {
        SinkKind::Webhook => Report::Incidents,
        SinkKind::Stdout | SinkKind::Postgres => Report::Facts,
    };
    let mut reports: Vec<Report> = chosen.iter().map(|c| default(c.kind())).collect();
    let Some(given) = given else {
        return Ok(reports);
    };
    let report = |value: &str| match value {
        "facts" => Ok(Report::Facts),
        "incidents" => Ok(Report::Incidents),
        "both" => Ok(Report::Both),
        _ => Err(given.invalid(
            "expected facts, incidents or both, or SINK=REPORT for each sink \
             (postgres=facts,webhook=incidents)",
        )),
    };
    if !given.value.contains('=') {
        let report = report(given.value.trim())?;
        return Ok(vec![report; chosen.len()]);
    }
    let mut named = Vec::new();
    for part in given.value.split(',') {
        let Some((name, value)) = part.split_once('=') else {
            return Err(given.invalid(&format!(
                "{:?} is not SINK=REPORT; once one sink is named, name each \
                 (postgres=facts,webhook=incidents)",
                part.trim()
            )));
        };
        let (name, value) = (name.trim(), value.trim());
        if named.contains(&name) {
            return Err(given.invalid(&format!("the {name} sink is named twice")));
        }
        named.push(name);
        let Some(i) = chosen.iter().position(|c| c.kind().as_str() == name) else {
            return Err(given.invalid(&format!(
                "{name:?} is not a sink events go to ({})",
                chosen
                    .iter()
                    .map(|c| c.kind().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        reports[i] = report(value)?;
    }
    Ok(reports)
}

/// A whole number within `range`.
fn count(given: &Given, range: std::ops::RangeInclusive<u32>) -> Result<u32, ConfigError> {
    match given.value.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(given.invalid(&format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// `--remind`: a duration, or `0` for no reminders.
fn remind(given: &Given) -> Result<Option<Duration>, ConfigError> {
    if given.value == "0" {
        return Ok(None);
    }
    duration(given, Duration::from_secs(30 * 24 * 3600)).map(Some)
}

fn log_format(given: &Given) -> Result<LogFormat, ConfigError> {
    match given.value.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(given.invalid("expected text or json")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(args.iter().copied(), &|k| env.get(k).cloned())
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse(args, env) {
            Ok(Invocation::Command(c)) => *c,
            other => panic!("{args:?} {env:?}: expected a command, got {other:?}"),
        }
    }

    fn err(args: &[&str], env: &[(&str, &str)]) -> String {
        match parse(args, env) {
            Err(e) => e.message,
            Ok(other) => panic!("{args:?} {env:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_label_mode_on_stdout() {
        let c = config(&[], &[]);
        assert!(matches!(c.command, Command::Run), "{:?}", c.command);
        assert_eq!(c.docker_socket, PathBuf::from("/var/run/docker.sock"));
        assert!(c.database.is_none());
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.docker_timeout, Duration::from_secs(10));
        assert_eq!(c.records_table.quoted(), "\"runtime_records\"");
        assert_eq!(c.events_table.to_string(), "runtime_health_events");
        assert_eq!(c.notify_channel.as_deref(), Some("runtime_health_events"));
        assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
        assert_eq!(c.label, "rtinspect.game-id");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.state_dir, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.events);
    }

    #[test]
    fn flag_wins_over_environment() {
        let c = config(
            &["once", "--interval", "2m", "--label=team.game"],
            &[
                ("RTINSPECT_INTERVAL", "5s"),
                ("RTINSPECT_LABEL", "x"),
                ("RTINSPECT_DOCKER_TIMEOUT", "250ms"),
            ],
        );
        assert!(matches!(c.command, Command::Once), "{:?}", c.command);
        assert_eq!(c.interval, Duration::from_secs(120));
        assert_eq!(c.label, "team.game");
        assert_eq!(c.docker_timeout, Duration::from_millis(250));
    }

    #[test]
    fn database_selects_postgres_sink_by_default() {
        let c = config(
            &[],
            &[(
                "RTINSPECT_DATABASE_URL",
                "postgres://u:secret@db.example/rt",
            )],
        );
        assert!(c.database.is_some());
        let Sink::Postgres(db) = &c.sinks[0].sink else {
            panic!("{:?}", c.sinks[0].sink);
        };
        assert_eq!(db.config.get_dbname(), Some("rt"), "the records' database");
        let c = config(
            &["--sink", "stdout", "--database-url", "host=/run/pg user=rt"],
            &[],
        );
        assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
        assert!(matches!(c.command, Command::Run), "{:?}", c.command);
        let c = config(&["migrate", "--database-url", "host=db"], &[]);
        let Command::Migrate { database } = &c.command else {
            panic!("{:?}", c.command);
        };
        assert_eq!(
            database.config.get_hosts(),
            c.database.unwrap().config.get_hosts()
        );
    }

    #[test]
    fn durations_table() {
        let table = [
            ("250ms", Some(250)),
            ("15s", Some(15_000)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("0s", Some(0)),
            ("15", None),
            ("s", None),
            ("1.5s", None),
            ("-1s", None),
            ("1d", None),
            ("99999999999999999999h", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_duration(s), want.map(Duration::from_millis), "{s}");
        }
    }

    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn bad_values_name_the_option_and_value() {
        let table: &[Case] = &[
            (
                &["--interval", "0s"],
                &[],
                "invalid --interval \"0s\": must be greater than zero",
            ),
            (
                &[],
                &[("RTINSPECT_INTERVAL", "soon")],
                "invalid RTINSPECT_INTERVAL \"soon\"",
            ),
            (&["--interval", "25h"], &[], "must be at most 86400s"),
            (
                &["--docker-timeout", "0ms"],
                &[],
                "invalid --docker-timeout \"0ms\"",
            ),
            (
                &["--docker-host", "tcp://1.2.3.4:2375"],
                &[],
                "invalid --docker-host \"tcp://1.2.3.4:2375\"",
            ),
            (
                &[],
                &[("DOCKER_HOST", "unix://relative")],
                "invalid DOCKER_HOST",
            ),
            (
                &["--records-table", "x; drop table y"],
                &[],
                "invalid --records-table \"x; drop table y\"",
            ),
            (
                &["--events-table", "a.b.c"],
                &[],
                "invalid --events-table \"a.b.c\"",
            ),
            (&["--records-table", "1abc"], &[], "invalid --records-table"),
            (
                &["--notify-channel", "bad channel"],
                &[],
                "invalid --notify-channel",
            ),
            (
                &["--sink", "kafka"],
                &[],
                "invalid --sink \"kafka\": expected stdout, postgres or webhook",
            ),
            (
                &["--sink", "postgres"],
                &[],
                "the postgres sink needs --database-url",
            ),
            (&["--label", "a\nb"], &[], "invalid --label"),
            (&["--label", ""], &[], "invalid --label"),
            (
                &["--metrics-addr", "localhost"],
                &[],
                "invalid --metrics-addr \"localhost\"",
            ),
            (&["--state-dir", "rel/dir"], &[], "invalid --state-dir"),
            (
                &["--log-format", "xml"],
                &[],
                "invalid --log-format \"xml\"",
            ),
            (&["--bogus"], &[], "unknown option \"--bogus\""),
            (&["-x"], &[], "unknown option \"-x\""),
            (&["--interval"], &[], "option --interval needs a value"),
            (&["start"], &[], "unknown command \"start\""),
            (&["once", "extra"], &[], "unexpected argument \"extra\""),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains('\n'), "{got:?}");
        }
    }

    #[test]
    fn database_url_errors_never_echo_the_password() {
        for url in [
            "postgres://user:hunter2@host:notaport/db",
            "host=x password=hunter2 bogus_option=1",
            "password=hunter2 user=x",
        ] {
            let got = err(&["--database-url", url], &[]);
            assert!(got.starts_with("invalid --database-url"), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }

    #[test]
    fn sslmode_comes_from_the_url_in_either_form() {
        let db = |url: &str| config(&["--database-url", url], &[]).database.unwrap();
        assert_eq!(
            db("postgres://u@db/x?sslmode=require").ssl_mode,
            SslMode::Require
        );
        assert_eq!(db("host=db sslmode=disable").ssl_mode, SslMode::Disable);
        assert_eq!(db("host=db").ssl_mode, SslMode::Prefer);
        let e = err(&["--database-url", "host=db sslmode=sometimes"], &[]);
        assert!(e.contains("sslmode \"sometimes\""), "{e}");
    }

    #[test]
    fn the_ca_file_is_a_path_named_by_its_option_and_not_read_here() {
        let ca = |args: &[&str], env: &[(&str, &str)]| config(args, env).database.unwrap().ca_file;
        let url = "host=db sslmode=verify-full";
        assert_eq!(
            ca(
                &[
                    "--database-url",
                    url,
                    "--database-ca-file",
                    "/nonexistent.pem"
                ],
                &[]
            ),
            Some(CaFile {
                path: PathBuf::from("/nonexistent.pem"),
                named_by: "--database-ca-file".into()
            })
        );
        assert_eq!(
            ca(
                &["--database-url", url],
                &[("RTINSPECT_DATABASE_CA_FILE", "/etc/db-ca.pem")]
            )
            .map(|c| c.named_by),
            Some("RTINSPECT_DATABASE_CA_FILE".into())
        );
        assert_eq!(
            ca(
                &[],
                &[(
                    "RTINSPECT_DATABASE_URL",
                    "postgres://db/x?sslmode=verify-ca&sslrootcert=/r.pem"
                )]
            ),
            Some(CaFile {
                path: PathBuf::from("/r.pem"),
                named_by: "sslrootcert in RTINSPECT_DATABASE_URL".into()
            })
        );
        // The flag wins over the URL's sslrootcert.
        let c = ca(
            &[
                "--database-url",
                "host=db sslmode=verify-ca sslrootcert=/r.pem",
                "--database-ca-file=/f.pem",
            ],
            &[],
        );
        assert_eq!(c.map(|c| c.path), Some(PathBuf::from("/f.pem")));
        assert_eq!(ca(&["--database-url", url], &[]), None);
    }

    #[test]
    fn a_ca_file_with_a_mode_that_does_not_verify_is_refused() {
        let table: &[Case] = &[
            (
                &["--database-url", "host=db", "--database-ca-file", "/ca.pem"],
                &[],
                "--database-ca-file \"/ca.pem\" has no effect with sslmode prefer (the default)",
            ),
            (
                &["--database-url", "host=db sslmode=require"],
                &[("RTINSPECT_DATABASE_CA_FILE", "/ca.pem")],
                "RTINSPECT_DATABASE_CA_FILE \"/ca.pem\" has no effect with sslmode require,",
            ),
            (
                &[
                    "--database-url",
                    "postgres://u:hunter2@db/x?sslmode=disable&sslrootcert=/ca.pem",
                ],
                &[],
                "sslrootcert in --database-url \"/ca.pem\" has no effect with sslmode disable,",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
            assert!(got.contains("verify-ca or verify-full"), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }

    #[test]
    fn an_option_the_mode_does_not_read_is_refused() {
        let table: &[Case] = &[
            (
                &["--records-table", "ops.rt"],
                &[],
                "--records-table \"ops.rt\" has no effect: label mode uses no database",
            ),
            (
                &[],
                &[("RTINSPECT_EVENTS_TABLE", "ev")],
                "RTINSPECT_EVENTS_TABLE \"ev\" has no effect",
            ),
            (
                &["--notify-channel", ""],
                &[],
                "--notify-channel \"\" has no effect",
            ),
            (
                &["once", "--database-ca-file", "/ca.pem"],
                &[],
                "--database-ca-file \"/ca.pem\" has no effect: label mode",
            ),
            (
                &["--database-url", "host=db", "--label", "team.game"],
                &[],
                "--label \"team.game\" has no effect: the records come from the database",
            ),
            (
                &[],
                &[
                    ("RTINSPECT_DATABASE_URL", "host=db"),
                    ("RTINSPECT_LABEL", "team.game"),
                ],
                "RTINSPECT_LABEL \"team.game\" has no effect",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
        }
        // Defaults are not "set": each mode runs with the other's defaults untouched.
        config(&[], &[]);
        config(&["--database-url", "host=db"], &[]);
        // Empty variables count as unset, so a blanked line in the defaults file is fine.
        config(&[], &[("RTINSPECT_RECORDS_TABLE", "")]);
        // The stdout sink with a database still takes the events table and
        // channel: `migrate` creates the table whatever the sink.
        config(
            &["--database-url", "host=db", "--sink", "stdout"],
            &[
                ("RTINSPECT_EVENTS_TABLE", "ev"),
                ("RTINSPECT_NOTIFY_CHANNEL", "ch"),
            ],
        );
    }

    const SLACK: &str = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN";

    #[test]
    fn the_webhook_sink_takes_its_url_format_and_ca_file() {
        let c = config(&["--sink", "webhook", "--webhook-url", SLACK], &[]);
        let Sink::Webhook(w) = &c.sinks[0].sink else {
            panic!("{:?}", c.sinks[0].sink);
        };
        assert_eq!(w.url.secret(), SLACK);
        assert_eq!(w.format, WebhookFormat::Envelope);
        assert_eq!(w.ca_file, None);
        assert!(!format!("{c:?}").contains("SECRETTOKEN"), "{c:?}");

        let c = config(
            &[
                "--webhook-format=slack",
                "--webhook-ca-file",
                "/etc/rt/ca.pem",
            ],
            &[
                ("RTINSPECT_SINK", "webhook"),
                ("RTINSPECT_WEBHOOK_URL", SLACK),
                ("RTINSPECT_DATABASE_URL", "host=db"),
            ],
        );
        let Sink::Webhook(w) = &c.sinks[0].sink else {
            panic!("{:?}", c.sinks[0].sink);
        };
        assert_eq!(w.format, WebhookFormat::Slack);
        assert_eq!(
            w.ca_file,
            Some(CaFile {
                path: PathBuf::from("/etc/rt/ca.pem"),
                named_by: "--webhook-ca-file".into()
            })
        );
        assert!(
            c.database.is_some(),
            "records from the database, events to a webhook"
        );
        assert_eq!(config(&[], &[]).sinks[0].sink.kind(), SinkKind::Stdout);
    }

    #[test]
    fn an_option_no_sink_reads_names_the_sink_to_add() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let url = ("RTINSPECT_WEBHOOK_URL", SLACK);
        let format = ("RTINSPECT_WEBHOOK_FORMAT", "discord");
        let table: &[Case] = &[
            // The defaults file's Discord block, uncommented alone.
            (
                &[],
                &[url, format],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `RTINSPECT_SINK=webhook`, or remove it",
            ),
            (
                &[],
                &[db, url],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the postgres sink, and only \
                 --sink webhook reads it; add `RTINSPECT_SINK=postgres,webhook`, or remove it",
            ),
            (
                &[],
                &[("RTINSPECT_SINK", "stdout"), format],
                "RTINSPECT_WEBHOOK_FORMAT \"discord\" has no effect: events go to the stdout \
                 sink, and only --sink webhook reads it; add `RTINSPECT_SINK=stdout,webhook`, \
                 or remove it",
            ),
            (
                &["--sink", "stdout"],
                &[url],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `--sink stdout,webhook`, or remove it",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert_eq!(&got, want, "{args:?} {env:?}");
            assert!(!got.contains("SECRET"), "{got}");
        }
    }

    #[test]
    fn an_option_set_to_its_default_where_nothing_reads_it_is_ignored() {
        // Each as the defaults file has it, uncommented alone, in label mode.
        for (name, value) in [
            ("RTINSPECT_WEBHOOK_FORMAT", "envelope"),
            ("RTINSPECT_RECORDS_TABLE", "runtime_records"),
            ("RTINSPECT_EVENTS_TABLE", "runtime_health_events"),
            ("RTINSPECT_NOTIFY_CHANNEL", "runtime_health_events"),
        ] {
            let c = config(&["run"], &[(name, value)]);
            assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
            assert_eq!(c.ignored.len(), 1, "{name}: {:?}", c.ignored);
            assert!(
                c.ignored[0]
                    .starts_with(&format!("{name} \"{value}\" is ignored: it is the default")),
                "{:?}",
                c.ignored
            );
        }
        // In PostgreSQL mode, the label's default alike.
        let c = config(
            &[],
            &[
                ("RTINSPECT_DATABASE_URL", "host=db"),
                ("RTINSPECT_LABEL", "rtinspect.game-id"),
            ],
        );
        assert_eq!(c.ignored.len(), 1, "{:?}", c.ignored);
        // Another value still has no effect, and says so.
        assert!(
            err(&[], &[("RTINSPECT_RECORDS_TABLE", "ops.rt")])
                .starts_with("RTINSPECT_RECORDS_TABLE \"ops.rt\" has no effect: label mode")
        );
    }

    #[test]
    fn the_prune_age_in_the_environment_is_ignored_by_every_other_command() {
        let age = ("RTINSPECT_PRUNE_OLDER_THAN", "30d");
        for command in ["run", "once", "notify-test"] {
            // Label mode, where no command reads a database.
            let c = config(&[command], &[age]);
            assert_eq!(
                c.ignored,
                ["RTINSPECT_PRUNE_OLDER_THAN \"30d\" is ignored: only prune-events reads it"],
                "{command}"
            );
            let c = config(&[command], &[age, ("RTINSPECT_DATABASE_URL", "host=db")]);
            assert_eq!(c.ignored.len(), 1, "{command}");
        }
        let c = config(&["migrate"], &[age, ("RTINSPECT_DATABASE_URL", "host=db")]);
        assert_eq!(c.ignored.len(), 1);
        // A bad value is no matter where it is ignored.
        let c = config(&["run"], &[("RTINSPECT_PRUNE_OLDER_THAN", "soon")]);
        assert_eq!(c.ignored.len(), 1);
        // The flag on another command is a mistake, said as before.
        assert!(
            err(&["run", "--older-than", "30d"], &[])
                .starts_with("--older-than \"30d\" has no effect: only prune-events reads it")
        );
    }

    #[test]
    fn webhook_options_without_the_webhook_sink_are_refused_without_the_url() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let table: &[Case] = &[
            (
                &["--sink", "webhook"],
                &[],
                "--sink \"webhook\" needs a URL: set --webhook-url or RTINSPECT_WEBHOOK_URL",
            ),
            (
                &[],
                &[("RTINSPECT_SINK", "webhook"), ("RTINSPECT_WEBHOOK_URL", "")],
                "RTINSPECT_SINK \"webhook\" needs a URL",
            ),
            (
                &["--webhook-url", SLACK],
                &[],
                "--webhook-url has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `--sink webhook`, or remove it",
            ),
            (
                &[],
                &[db, ("RTINSPECT_WEBHOOK_URL", SLACK)],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the postgres sink",
            ),
            (
                &["--sink", "stdout", "--webhook-format", "slack"],
                &[],
                "--webhook-format \"slack\" has no effect: events go to the stdout sink",
            ),
            (
                &["--webhook-ca-file", "/ca.pem"],
                &[],
                "--webhook-ca-file \"/ca.pem\" has no effect: events go to the stdout sink",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url=http://10.0.0.1/SECRETTOKEN",
                    "--webhook-ca-file=/ca.pem",
                ],
                &[],
                "--webhook-ca-file \"/ca.pem\" has no effect: --webhook-url is an http:// URL, \
                 which uses no TLS; remove it",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    SLACK,
                    "--webhook-ca-file=ca.pem",
                ],
                &[],
                "invalid --webhook-ca-file \"ca.pem\": expected an absolute path",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    SLACK,
                    "--webhook-format=teams",
                ],
                &[],
                "invalid --webhook-format \"teams\": expected envelope or slack",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    "hooks.slack.com/SECRETTOKEN",
                ],
                &[],
                "invalid --webhook-url: expected an http:// or https:// URL",
            ),
            (
                &["--sink=webhook"],
                &[("RTINSPECT_WEBHOOK_URL", "ftp://x/SECRETTOKEN")],
                "invalid RTINSPECT_WEBHOOK_URL: the scheme must be http or https (the value \
                 is not shown: it may hold a token)",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains("SECRETTOKEN"), "{got}");
        }
    }

    #[test]
    fn a_chat_url_that_cannot_be_sent_is_refused_at_start() {
        let hook = |format: &str, url: &str| {
            err(
                &[
                    "--sink",
                    "webhook",
                    "--webhook-format",
                    format,
                    "--webhook-url",
                    url,
                ],
                &[],
            )
        };
        for url in [
            "https://:@ntfy.sh/alerts",
            "https://:tk%0D%0AInjected@ntfy.sh/alerts",
            "https://:tk%FF@ntfy.sh/alerts",
            "https://:tk%20x@ntfy.sh/alerts",
        ] {
            let e = hook("ntfy", url);
            assert!(e.contains("the ntfy format sends"), "{url}: {e}");
            assert!(!e.contains("tk"), "the value is not shown: {e}");
        }
        for url in [
            "https://:tk_abc@ntfy.sh/alerts",
            "https://ops:pa%20ss@ntfy.sh/alerts",
        ] {
            let args = [
                "--sink",
                "webhook",
                "--webhook-format",
                "ntfy",
                "--webhook-url",
                url,
            ];
            assert!(parse(&args, &[]).is_ok(), "{url}");
        }
        let twice = hook(
            "telegram",
            "https://api.telegram.org/botT:K/sendMessage?chat_id=1&chat_id=2",
        );
        assert!(twice.contains("takes one chat_id"), "{twice}");
    }

    /// The sinks' names and reports.
    fn sinks_of(c: &Config) -> Vec<(&'static str, Report)> {
        c.sinks
            .iter()
            .map(|s| (s.sink.kind().as_str(), s.report))
            .collect()
    }

    #[test]
    fn several_sinks_each_with_its_report() {
        let db = ["--database-url", "host=db"];
        let hook = ["--webhook-url", "https://h.example/x"];
        let both = [("postgres", Report::Facts), ("webhook", Report::Incidents)];
        let flags = config(
            &[
                &db[..],
                &hook[..],
                &["--sink", "postgres", "--sink", "webhook"],
            ]
            .concat(),
            &[],
        );
        assert_eq!(sinks_of(&flags), both);
        let listed = config(
            &[&db[..], &hook[..], &["--sink=postgres,webhook"]].concat(),
            &[],
        );
        assert_eq!(sinks_of(&listed), both);
        for var in ["RTINSPECT_SINKS", "RTINSPECT_SINK"] {
            let c = config(
                &[&db[..], &hook[..]].concat(),
                &[(var, "postgres, webhook")],
            );
            assert_eq!(sinks_of(&c), both, "{var}");
        }
        // The flag wins over the variable, as for every option.
        let c = config(
            &[&db[..], &["--sink", "stdout"]].concat(),
            &[("RTINSPECT_SINKS", "postgres,webhook")],
        );
        assert_eq!(sinks_of(&c), [("stdout", Report::Facts)]);
        let per_sink = config(
            &[&db[..], &hook[..], &["--sink", "webhook,postgres"]].concat(),
            &[("RTINSPECT_REPORT", "postgres=both")],
        );
        assert_eq!(
            sinks_of(&per_sink),
            [("webhook", Report::Incidents), ("postgres", Report::Both)]
        );
        let all = config(
            &[
                &db[..],
                &hook[..],
                &["--sink", "webhook,postgres", "--report", "facts"],
            ]
            .concat(),
            &[],
        );
        assert_eq!(
            sinks_of(&all),
            [("webhook", Report::Facts), ("postgres", Report::Facts)]
        );
        assert!(!all.incidents_wanted() && per_sink.incidents_wanted());
    }

    #[test]
    fn the_webhook_url_can_come_from_a_file_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rtinspect-urlfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        let path = file.to_str().unwrap();
        let write = |text: &[u8], mode: u32| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let hook = ["--sink", "webhook", "--webhook-url-file", path];
        write(b"https://h.example/hook/SECRET\n", 0o600);
        let c = config(&hook, &[]);
        let Sink::Webhook(w) = &c.sinks[0].sink else {
            panic!("{:?}", c.sinks);
        };
        assert_eq!(w.url.secret(), "https://h.example/hook/SECRET");
        let c = config(
            &["--sink", "webhook"],
            &[("RTINSPECT_WEBHOOK_URL_FILE", path)],
        );
        assert_eq!(c.sinks[0].sink.kind(), SinkKind::Webhook);
        for (text, mode, expected) in [
            (
                &b"https://h.example/hook/SECRET"[..],
                0o640,
                "others than its owner may use it (mode 0640); it holds a token: chmod 600 it",
            ),
            (b"https://h.example/hook/SECRET", 0o604, "(mode 0604)"),
            (b"  \n", 0o600, "empty; expected one URL"),
            (
                b"https://h.example/SECRET\nhttps://h.example/SECRET2",
                0o600,
                "more than one line",
            ),
            (b"https://h.example/\xffSECRET", 0o600, "not UTF-8"),
            (b"ftp://h.example/SECRET", 0o600, "(the value is not shown"),
        ] {
            write(text, mode);
            let message = err(&hook, &[]);
            assert!(
                message.starts_with(&format!("invalid --webhook-url-file {path:?}: ")),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
        write(&vec![b'a'; 9000], 0o600);
        assert!(err(&hook, &[]).contains("over 8192 bytes"));
        // Another user's file, however private.
        write(b"https://h.example/hook/SECRET", 0o600);
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(&file, Some(rustix::process::Uid::from_raw(65534)), None).unwrap();
            let message = err(&hook, &[]);
            assert!(
                message.contains("owned by uid 65534, not by the user rtinspect runs as (uid 0)"),
                "{message}"
            );
            rustix::fs::chown(&file, Some(rustix::process::Uid::ROOT), None).unwrap();
        }
        let fifo = dir.join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for (args, expected) in [
            (
                vec!["--sink", "webhook", "--webhook-url-file", "relative/url"],
                "invalid --webhook-url-file \"relative/url\": expected an absolute path",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    "/nonexistent/url",
                ],
                "invalid --webhook-url-file \"/nonexistent/url\": cannot read it: No such file",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    dir.to_str().unwrap(),
                ],
                "not a regular file",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    path,
                    "--webhook-url",
                    "https://h.example/x",
                ],
                "--webhook-url and --webhook-url-file are both set; set one",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    fifo.to_str().unwrap(),
                ],
                "not a regular file",
            ),
            (vec!["--webhook-url-file", path], "--webhook-url-file \""),
        ] {
            let message = err(&args, &[]);
            assert!(message.contains(expected), "{args:?}: {message}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_list_of_sinks_is_refused_naming_what_is_wrong() {
        let db = ["--database-url", "host=db"];
        for (args, env, expected) in [
            (
                &["--sink", "stdout", "--sink", "stdout"][..],
                &[][..],
                "invalid --sink \"stdout,stdout\": the stdout sink is named twice; each sink can be used once",
            ),
            (
                &["--sink", "stdout,"],
                &[],
                "invalid --sink \"stdout,\": an empty sink name",
            ),
            (
                &["--sink", "stdout,kafka"],
                &[],
                "invalid --sink \"stdout,kafka\": expected stdout, postgres or webhook",
            ),
            (
                &[],
                &[("RTINSPECT_SINKS", "stdout"), ("RTINSPECT_SINK", "stdout")],
                "RTINSPECT_SINK and RTINSPECT_SINKS are both set; set one",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "webhook=facts"],
                &[],
                "invalid --report \"webhook=facts\": \"webhook\" is not a sink events go to (stdout, postgres)",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "stdout=facts,both"],
                &[],
                "invalid --report \"stdout=facts,both\": \"both\" is not SINK=REPORT",
            ),
            (
                &[
                    "--sink",
                    "stdout,postgres",
                    "--report",
                    "stdout=facts,stdout=both",
                ],
                &[],
                "invalid --report \"stdout=facts,stdout=both\": the stdout sink is named twice",
            ),
            (
                &["--sink", "stdout", "--sink", ""],
                &[],
                "invalid --sink \"stdout,\": an empty sink name",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "postgres=all"],
                &[],
                "invalid --report \"postgres=all\": expected facts, incidents or both",
            ),
            (
                &["--sink", "stdout,postgres", "--webhook-format", "slack"],
                &[],
                "--webhook-format \"slack\" has no effect: events go to the stdout and postgres sinks",
            ),
        ] {
            let message = err(&[&db[..], args].concat(), env);
            assert!(message.starts_with(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn the_report_defaults_to_facts_for_programs_and_incidents_for_people() {
        assert_eq!(config(&[], &[]).sinks[0].report, Report::Facts);
        let hook = ["--sink", "webhook", "--webhook-url", "https://h.example/x"];
        assert_eq!(config(&hook, &[]).sinks[0].report, Report::Incidents);
        let both = config(&[], &[("RTINSPECT_REPORT", "both")]).sinks[0].report;
        assert!(both.facts() && both.incidents());
        assert!(
            err(&["--report", "all"], &[])
                .contains("invalid --report \"all\": expected facts, incidents or both")
        );
        let rules = config(&[], &[]).incidents;
        assert_eq!(
            (
                rules.crash_loop_restarts,
                rules.crash_loop_window,
                rules.recover_after,
                rules.remind
            ),
            (
                3,
                Duration::from_secs(600),
                Duration::from_secs(30),
                Some(Duration::from_secs(4 * 3600))
            )
        );
        assert_eq!(config(&["--remind", "0"], &[]).incidents.remind, None);
        assert!(err(&["--crash-loop-restarts", "0"], &[]).contains("from 1 to 1000"));
        assert!(err(&["--recover-after", "0s"], &[]).contains("greater than zero"));
    }

    #[test]
    fn details_are_basic_unless_extended_is_asked_for() {
        assert_eq!(config(&[], &[]).details, DetailLevel::Basic);
        let c = config(&[], &[("RTINSPECT_DETAILS", "extended")]);
        assert_eq!(c.details, DetailLevel::Extended);
        let c = config(
            &["--details", "basic"],
            &[("RTINSPECT_DETAILS", "extended")],
        );
        assert_eq!(c.details, DetailLevel::Basic);
        assert!(
            err(&["--details", "full"], &[])
                .contains("invalid --details \"full\": expected basic or extended")
        );
    }

    #[test]
    fn host_scoping_takes_a_column_and_defaults_the_id_to_the_hostname() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        assert_eq!(config(&[], &[db]).host_scope, None);
        let c = config(&["--host-column", "host_name"], &[db]);
        assert_eq!(
            c.host_scope,
            Some(HostScope {
                column: "host_name".into(),
                id: HostId::Hostname
            })
        );
        let c = config(
            &["--host-id", "game-7.eu"],
            &[db, ("RTINSPECT_HOST_COLUMN", "host")],
        );
        assert_eq!(
            c.host_scope.map(|s| s.id),
            Some(HostId::Given("game-7.eu".into()))
        );
    }

    #[test]
    fn bad_host_scoping_is_refused_by_name() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let long = "h".repeat(256);
        let table: &[Case] = &[
            (
                &["--host-column", "host; drop table x"],
                &[db],
                "invalid --host-column \"host; drop table x\": expected a column name",
            ),
            (
                &["--host-column", "a.b"],
                &[db],
                "invalid --host-column \"a.b\"",
            ),
            (
                &["--host-column", "host", "--host-id", &long],
                &[db],
                "invalid --host-id",
            ),
            (
                &["--host-column", "host"],
                &[db, ("RTINSPECT_HOST_ID", "a\u{1}b")],
                "invalid RTINSPECT_HOST_ID \"a\\u{1}b\": it holds a control character",
            ),
            (
                &["--host-id", "h1"],
                &[db],
                "--host-id \"h1\" has no effect without --host-column",
            ),
            (
                &["--host-column", "host"],
                &[],
                "--host-column \"host\" has no effect: label mode uses no database",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
        // An empty variable counts as unset: no scoping, no error.
        let c = config(&[], &[db, ("RTINSPECT_HOST_ID", "")]);
        assert_eq!(c.host_scope, None);
    }

    #[test]
    fn prune_events_takes_an_age_in_days_or_as_an_interval() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let age = |args: &[&str], env: &[(&str, &str)]| match config(args, env).command {
            Command::PruneEvents { older_than, .. } => older_than,
            other => panic!("{other:?}"),
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            age(&["prune-events", "--older-than", "30d"], &[db]),
            day * 30
        );
        assert_eq!(age(&["prune-events", "--older-than=12h"], &[db]), day / 2);
        assert_eq!(
            age(
                &["prune-events"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "90m")]
            ),
            Duration::from_secs(5400)
        );
        assert_eq!(
            age(
                &["prune-events", "--older-than", "1d"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "90m")]
            ),
            day
        );
        assert_eq!(
            age(&["prune-events", "--older-than", "10000d"], &[db]),
            day * 10_000
        );
        // The variable may live in the defaults file the daemon reads too.
        let c = config(&["run"], &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "30d")]);
        assert!(matches!(c.command, Command::Run), "{:?}", c.command);
    }

    #[test]
    fn bad_prune_ages_are_refused_by_name() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let table: &[Case] = &[
            (&["prune-events"], &[db], "prune-events needs --older-than"),
            (
                &["prune-events", "--older-than", "0d"],
                &[db],
                "invalid --older-than \"0d\": must be greater than zero",
            ),
            (
                &["prune-events", "--older-than", "10001d"],
                &[db],
                "must be at most 10000d",
            ),
            (
                &["prune-events", "--older-than", "99999999999999999999d"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events", "--older-than", "d"],
                &[db],
                "expected a duration such as 12h or 30d",
            ),
            (
                &["prune-events", "--older-than", "-3d"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events", "--older-than", "1w"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "soon")],
                "invalid RTINSPECT_PRUNE_OLDER_THAN \"soon\"",
            ),
            (
                &["run", "--older-than", "30d"],
                &[db],
                "--older-than \"30d\" has no effect: only prune-events reads it",
            ),
            (
                &["prune-events", "--older-than", "30d"],
                &[],
                "--older-than \"30d\" has no effect: label mode uses no database",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn the_database_commands_are_refused_without_a_database_after_the_options() {
        let table: &[Case] = &[
            (
                &["migrate"],
                &[],
                "migrate needs a database: set --database-url or RTINSPECT_DATABASE_URL",
            ),
            // A bad value, then an option with no effect, come first.
            (&["migrate", "--interval", "0s"], &[], "invalid --interval"),
            (
                &["migrate", "--records-table", "rt"],
                &[],
                "--records-table \"rt\" has no effect: label mode uses no database",
            ),
            (
                &["migrate", "--sink", "postgres"],
                &[],
                "the postgres sink needs --database-url",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
        let db = ("RTINSPECT_DATABASE_URL", "host=db dbname=rt");
        let c = config(&["prune-events", "--older-than", "30d"], &[db]);
        let Command::PruneEvents { database, .. } = &c.command else {
            panic!("{:?}", c.command);
        };
        assert_eq!(database.config.get_dbname(), Some("rt"));
    }

    #[test]
    fn empty_notify_channel_disables_notify() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let c = config(&["--notify-channel", ""], &[db]);
        assert_eq!(c.notify_channel, None);
        let c = config(&[], &[db, ("RTINSPECT_NOTIFY_CHANNEL", "")]);
        assert_eq!(c.notify_channel, None);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let c = config(
            &[],
            &[("RTINSPECT_DATABASE_URL", ""), ("RTINSPECT_INTERVAL", "")],
        );
        assert!(c.database.is_none());
        assert_eq!(c.interval, Duration::from_secs(15));
    }

    #[test]
    fn state_dir_defaults_to_systemd_state_directory() {
        let c = config(
            &[],
            &[("STATE_DIRECTORY", "/var/lib/rtinspect:/var/lib/other")],
        );
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/rtinspect")));
        let c = config(
            &["--state-dir", "/srv/rt"],
            &[("STATE_DIRECTORY", "/var/lib/rtinspect")],
        );
        assert_eq!(c.state_dir, Some(PathBuf::from("/srv/rt")));
    }

    #[test]
    fn help_and_version_win_over_everything() {
        let help: &[Case] = &[
            (&["once", "--help"], &[], ""),
            (
                &["--interval", "0s", "--help"],
                &[("RTINSPECT_SINK", "x")],
                "",
            ),
            (&["help"], &[], ""),
            (&["--bogus", "-h"], &[], ""),
            (&["--help", "--interval"], &[], ""),
            (
                &["help", "once", "extra"],
                &[("DOCKER_HOST", "tcp://x")],
                "",
            ),
        ];
        for (args, env, _) in help {
            assert!(matches!(parse(args, env), Ok(Invocation::Help)), "{args:?}");
        }
        assert!(matches!(parse(&["-V"], &[]), Ok(Invocation::Version)));
        assert!(matches!(
            parse(&["--version", "start"], &[("RTINSPECT_INTERVAL", "0s")]),
            Ok(Invocation::Version)
        ));
    }

    #[test]
    fn every_default_in_the_table_is_valid() {
        // Each mode with nothing set validates every Value default of the table.
        for spec in OPTIONS {
            if let OptionDefault::Value(v) = spec.default {
                assert!(!v.is_empty(), "{spec:?}");
            }
        }
        config(&[], &[]);
        config(&["--database-url", "host=db"], &[]);
    }
}
