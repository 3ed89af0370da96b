//! Stage two of the configuration, as ripgrep's `hiargs`: every value of
//! stage one checked at once and built into plain ones, one [`Config`].
//!
//! The order of the checks is the order of the messages an operator meets:
//! the command, then each value on its own, then an option that has no
//! effect, then what a sink or the command lacks. The option families with
//! rules of their own have their own files (`command`, `database`, `host`,
//! `incidents`, `sinks`, `webhook`); the plain values are checked here.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::durations::duration;
use super::error::ConfigError;
use super::names::{TableName, is_identifier};
use super::options::Opt;
use super::raw::{Given, Inputs, RawArgs, Resolved};
use super::sinks::{Route, SinkConfig, reports, sinks};
use super::{
    Config, Invocation, LogFormat, command, database, defaults_file, host, incidents, notify,
    unread,
};
use crate::event::DetailLevel;

impl Config {
    /// Validates every value of `raw` and of the environment at once.
    pub(crate) fn from_raw(
        raw: RawArgs,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Invocation, ConfigError> {
        // `status` and `history` see what the service sees: its settings
        // file beneath the environment.
        let service_settings = match raw.command() {
            Some("status" | "history") => Some(defaults_file::read(env)?),
            _ => None,
        };
        let env =
            &|name: &str| env(name).or_else(|| service_settings.as_ref().and_then(|s| s.get(name)));
        let (command, mut inputs) = match raw.resolve(env)? {
            Resolved::Help => return Ok(Invocation::Help),
            Resolved::Version => return Ok(Invocation::Version),
            Resolved::Command { command, inputs } => (command, inputs),
        };
        let mut ignored = Vec::new();
        let command = command::asked(command.as_deref(), &mut inputs, &mut ignored)?;
        let docker_socket = docker_socket(&inputs.with_default(Opt::DockerHost)?)?;
        let database = match inputs.given(Opt::DatabaseUrl) {
            None => None,
            Some(url) => Some(database::database(url, inputs.given(Opt::DatabaseCaFile))?),
        };
        // Said once every value below is valid: a bad value first, then an
        // option that has no effect, then what a sink or the command lacks.
        let notified =
            inputs.given(Opt::Notify).is_some() || inputs.given(Opt::NotifyFile).is_some();
        let sinks =
            sinks(inputs.given(Opt::Sink), database.as_ref(), notified).and_then(|chosen| {
                unread::check_mode(&inputs, database.is_some(), &mut ignored)?;
                unread::check_sinks(&inputs, &chosen, &mut ignored)?;
                let reports = reports(inputs.given(Opt::Report), &chosen)?;
                let mut sinks = chosen
                    .into_iter()
                    .zip(reports)
                    .map(|(chosen, report)| {
                        Ok(SinkConfig {
                            name: chosen.kind().as_str().to_owned(),
                            sink: chosen.build(&inputs)?,
                            route: Route::all(report),
                            notify: false,
                        })
                    })
                    .collect::<Result<Vec<_>, ConfigError>>()?;
                let urls = notify::notify_sinks(inputs.given(Opt::Notify), &sinks)?;
                sinks.extend(urls);
                Ok(sinks)
            });
        let command = command::with_database(command, database.as_ref());
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
            silences_table: table(&inputs.with_default(Opt::SilencesTable)?)?,
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
            host: host::host_id(&inputs)?,
            host_scope: host::host_scope(&inputs)?,
            incidents: incidents::rules(&inputs)?,
            sinks: sinks?,
            notify_file: notify::notify_file(inputs.given(Opt::NotifyFile))?,
            command: command?,
            database,
            ignored,
        };
        Ok(Invocation::Command(Box::new(config)))
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

fn log_format(given: &Given) -> Result<LogFormat, ConfigError> {
    match given.value.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(given.invalid("expected text or json")),
    }
}
