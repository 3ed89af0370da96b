//! The adapters a command runs with, built from a [`Config`]: the Docker
//! client, the record source, the sinks, the state directory and the
//! incident tracker, and the way the inspector's events go out (through
//! the wait for log tails). Whatever the configuration names that cannot be used (a
//! CA file, the webhook's URL file, a host id) is a usage failure here,
//! before any thread starts.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, Database, HostId, Sink, SinkConfig};
use crate::docker::DockerClient;
use crate::event::DetailLevel;
use crate::failure::Failure;
use crate::incident::{Policy, Stamp, Tracker};
use crate::postgres::{Connector, HostFilter, PgRecords, PgSink};
use crate::publish::fanout::Emitter;
use crate::publish::sink::EventSink;
use crate::publish::stdout::StdoutSink;
use crate::publish::tails::{RoomSettings, TAIL_WAIT, Tails};
use crate::records::{LabelRecords, RecordSource};
use crate::silence::hold::Hold;
use crate::state::{OpenError, StateDir};
use crate::webhook::{WebhookSink, notify_file, url_file};
use crate::worker::{SilenceReader, SilencesFrom};

/// The configuration with every sink in it: the notification URLs of
/// `--notify-file` read now, after the sinks of `--sink` and `--notify`.
/// A bad file, or a bad URL in it, is bad configuration.
pub(crate) fn with_notify_file(config: &Config) -> Result<Cow<'_, Config>, Failure> {
    let Some(file) = &config.notify_file else {
        return Ok(Cow::Borrowed(config));
    };
    let more = notify_file::sinks(file, &config.sinks).map_err(Failure::usage)?;
    let mut all = config.clone();
    all.sinks.extend(more);
    all.notify_file = None;
    Ok(Cow::Owned(all))
}

/// Checks that a state directory a command was given to read or change
/// exists: a mistyped path must neither make a directory no daemon reads
/// nor read as a quiet night. Exit 64 naming it.
pub(crate) fn existing_state_dir(dir: &std::path::Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failure::usage(format!(
            "invalid --state-dir {:?}: not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::usage(format!(
            "invalid --state-dir {:?}: the directory does not exist (is it the one \
             rtinspect runs with?)",
            dir.display()
        ))),
        Err(e) => Err(Failure::runtime(
            format!("cannot use the state directory {}", dir.display()),
            e,
        )),
    }
}

/// The Docker client of a run: one kept-alive connection, with the details
/// incidents need.
pub(crate) fn docker_client(config: &Config) -> DockerClient {
    DockerClient::new(
        &config.docker_socket,
        config.docker_timeout,
        keep_idle(config.interval),
    )
    // Incidents carry what Docker said about why whatever `--details` says
    // of facts; the schedule leaves it out of facts when they are basic.
    .with_details(if config.incidents_wanted() {
        DetailLevel::Extended
    } else {
        config.details
    })
}

/// How long an idle Docker connection is kept: across one interval, so each
/// tick reuses the last tick's connection.
pub(crate) fn keep_idle(interval: Duration) -> Duration {
    (interval * 2 + Duration::from_secs(5)).min(Duration::from_secs(900))
}

/// The PostgreSQL connector, its CA file read now: a bad one is bad configuration.
pub(crate) fn pg_connector(db: &Database) -> Result<Connector, Failure> {
    Connector::new(db.clone()).map_err(Failure::usage)
}

/// What the PostgreSQL adapters of one process are built with, made once:
/// the connector (its CA file read) and this host's slice of the records.
pub(crate) struct PgParts {
    connector: Connector,
    host: Option<HostFilter>,
}

/// The PostgreSQL parts in PostgreSQL mode, `None` in label mode.
pub(crate) fn pg_parts(config: &Config) -> Result<Option<PgParts>, Failure> {
    let Some(db) = &config.database else {
        return Ok(None);
    };
    Ok(Some(PgParts {
        connector: pg_connector(db)?,
        host: host_filter(config)?,
    }))
}

/// This host's name as the chats say it: `--host-id`, else the hostname.
pub(crate) fn host_name(config: &Config) -> String {
    match &config.host {
        HostId::Given(id) => id.clone(),
        HostId::Hostname => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    }
}

/// This host's id as the envelope carries it (`host_id`), when it names
/// the host: `--host-id`, or the hostname with host scoping (an unusable
/// one is bad configuration); `None` otherwise, and the envelope stays as
/// it always was.
pub(crate) fn envelope_host(config: &Config) -> Result<Option<String>, Failure> {
    if !config.host_named() {
        return Ok(None);
    }
    config.host.resolve().map(Some).map_err(Failure::usage)
}

/// With host scoping, this host's slice of the records table, the hostname
/// read now when no id is set (an unusable one is bad configuration).
pub(crate) fn host_filter(config: &Config) -> Result<Option<HostFilter>, Failure> {
    let Some(scope) = &config.host_scope else {
        return Ok(None);
    };
    let host_id = scope.id.resolve().map_err(Failure::usage)?;
    Ok(Some(HostFilter {
        column: scope.column.clone(),
        host_id,
    }))
}

/// A sink built, with how `notify-test` names it: its kind, and a
/// webhook's format and URL (scheme and host only).
pub(crate) struct BuiltSink {
    pub(crate) sink: Box<dyn EventSink>,
    pub(crate) name: String,
}

/// The sink `sink`, with what it needs read now (its CA file, its URL
/// file); `name` is the sink's.
pub(crate) fn build_sink(
    config: &Config,
    SinkConfig { name, sink, .. }: &SinkConfig,
    pg: Option<&PgParts>,
) -> Result<BuiltSink, Failure> {
    let named = |sink: Box<dyn EventSink>| BuiltSink {
        sink,
        name: name.clone(),
    };
    Ok(match sink {
        Sink::Stdout => named(Box::new(StdoutSink::stdout())),
        // The records' connector: the sink's database is theirs, and its
        // CA file is read once.
        Sink::Postgres(database) => named(Box::new(PgSink::new(
            match pg {
                Some(pg) => pg.connector.clone(),
                None => pg_connector(database)?,
            },
            config.events_table.clone(),
            config.notify_channel.clone(),
            pg.and_then(|pg| pg.host.as_ref())
                .map(|h| h.host_id.clone()),
        ))),
        // The URL file and the CA file are read now: a bad one is bad
        // configuration.
        Sink::Webhook(settings) => {
            let webhook = url_file::settings(settings).map_err(Failure::usage)?;
            let sink = WebhookSink::new(&webhook)
                .map_err(Failure::usage)?
                .on_host(&host_name(config));
            log::info!(sink = name.as_str();
                "events go to the webhook {} in the {} format",
                webhook.url,
                webhook.format.as_str()
            );
            BuiltSink {
                sink: Box::new(sink),
                name: format!(
                    "{name} ({}, {})",
                    webhook.format.as_str(),
                    webhook.url.shown()
                ),
            }
        }
    })
}

pub(crate) fn build_source(
    config: &Config,
    docker: &DockerClient,
    pg: Option<&PgParts>,
) -> Box<dyn RecordSource + Send> {
    match pg {
        None => Box::new(LabelRecords::new(
            Box::new(docker.clone()),
            config.label.clone(),
        )),
        Some(pg) => {
            if let Some(h) = &pg.host {
                log::info!(column = h.column.as_str(), host_id = h.host_id.as_str();
                    "reading only this host's records");
            }
            let records = PgRecords::new(
                pg.connector.clone(),
                config.records_table.clone(),
                pg.host.clone(),
            );
            // Silences matter only to incidents.
            Box::new(match config.incidents_wanted() {
                true => records.with_silences(config.silences_table.clone()),
                false => records,
            })
        }
    }
}

/// Opens and locks the state directory; any failure is a runtime one (a full
/// disk, a directory held by another rtinspect), so systemd retries.
pub(crate) fn open_state(config: &Config) -> Result<Option<StateDir>, Failure> {
    let Some(dir) = &config.state_dir else {
        return Ok(None);
    };
    StateDir::open(dir).map(Some).map_err(|e| match e {
        OpenError::Locked { .. } => Failure::because(e),
        OpenError::Io(e) => Failure::runtime(
            "cannot use the state directory (--state-dir or STATE_DIRECTORY)",
            e,
        ),
    })
}

/// Where the silences are read from, when incidents are tracked: the
/// database's table, or the state directory's file (none without one:
/// `rtinspect silence` needs it in label mode).
pub(crate) fn silence_reader(config: &Config, state: Option<&StateDir>) -> Option<SilenceReader> {
    if !config.incidents_wanted() {
        return None;
    }
    match (&config.database, state) {
        (Some(_), _) => Some(SilenceReader::new(SilencesFrom::RecordSource)),
        (None, Some(state)) => Some(SilenceReader::new(SilencesFrom::File(
            state.path().to_owned(),
        ))),
        (None, None) => None,
    }
}

/// The incident tracker when the sink gets incidents, from the incidents
/// saved in the state directory, with what silences hold back of them.
pub(crate) fn incident_tracker(
    config: &Config,
    state: Option<&StateDir>,
) -> Result<Option<(Tracker, Hold)>, Failure> {
    if !config.incidents_wanted() {
        return Ok(None);
    }
    let rules = config.incidents;
    let policy = Policy {
        crash_loop_restarts: rules.crash_loop_restarts,
        crash_loop_window: rules.crash_loop_window,
        recover_after: rules.recover_after,
        remind: rules.remind,
    };
    let Some(state) = state else {
        log::warn!(
            "incidents are kept in memory only (no --state-dir): after a restart, \
             each open incident is opened again under a new id"
        );
        return Ok(Some((Tracker::new(policy), Hold::default())));
    };
    let (saved, held) = state
        .load_incidents()
        .map_err(|e| Failure::runtime("reading the saved incidents", e))?;
    let now = Stamp {
        wall: SystemTime::now(),
        mono: Instant::now(),
    };
    let tracker = Tracker::with_saved(policy, saved, now);
    if tracker.open_incidents() > 0 {
        log::info!(
            "{} open incidents restored from {}",
            tracker.open_incidents(),
            state.path().display()
        );
    }
    if !held.is_empty() {
        log::info!("{} incidents held back by silences", held.len());
    }
    Ok(Some((tracker, Hold::with_saved(held))))
}

/// Where the inspector's events go: through the wait for each incident's
/// log tail (`--log-lines`, read over a Docker connection of its own,
/// never the inspector's), or straight to the fanout when no incident is
/// tracked or no line is asked for.
pub(crate) fn tails(config: &Config, emitter: Emitter) -> Result<Arc<Tails>, Failure> {
    let lines = config.incidents.log_lines;
    if lines == 0 || !config.incidents_wanted() {
        return Ok(Tails::straight(emitter));
    }
    let reader = DockerClient::new(
        &config.docker_socket,
        config.docker_timeout,
        keep_idle(config.interval),
    );
    let settings = RoomSettings {
        lines,
        wait: TAIL_WAIT,
        read_bound: config.docker_timeout,
    };
    Tails::start(emitter, Box::new(reader), settings)
        .map_err(|e| Failure::runtime("cannot start the log tail threads", e))
}
