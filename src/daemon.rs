//! The wiring layer: builds the adapters from the configuration, runs the
//! inspector loop (a [`Worker`] on a thread of its own, turned by the tick
//! timer and the Docker events stream), a publisher for each sink and the
//! events reader on named threads, tells systemd how it goes, and bounds the
//! exit.
//!
//! Exit is bounded whatever the sink or dockerd is doing: after SIGTERM the
//! inspector stops between records, delivery goes on for at most
//! [`DRAIN`], then everything undelivered — the event in flight included —
//! is spooled, and the process exits without waiting for a thread that is
//! still blocked in a call.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::Cause;
use crate::config::{Command, Config, Database, Report, Sink, SinkConfig};
use crate::docker::DockerClient;
use crate::docker::events::{self, Nudge, ReaderParts};
use crate::event::DetailLevel;
use crate::event::HealthEvent;
use crate::incident::{Policy, Tracker};
use crate::inspector::Inspector;
use crate::metrics::{self, HealthInputs};
use crate::notify::Notifier;
use crate::postgres::{Connector, HostFilter, PgRecords, PgSink};
use crate::publisher::{self, Backoff, Outbox, Rejects};
use crate::records::{LabelRecords, RecordSource};
use crate::schedule::{Action, Follow, Input, Schedule, Settings};
use crate::shutdown::{self, Shutdown};
use crate::sink::{EventSink, StdoutSink};
use crate::state::{LoadedSpool, OpenError, StateDir};
use crate::telemetry::Telemetry;
use crate::webhook::WebhookSink;
use crate::worker::{Carried, Worker};

/// How long, after shutdown begins, delivery may go on before what is left
/// is spooled: systemd's stop timeout must never have to kill rtinspect.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Docker events waiting for the inspector before they merge into a resync.
const NUDGE_CAPACITY: usize = 256;

/// Why the process ends unsuccessfully. The variant says whose fault it is,
/// and so the exit status; each keeps the error that caused it.
///
/// Like every error of this crate, its text ends with its cause's text, so
/// it is said whole, on one line, by printing it once: whoever also walks
/// [`source`](std::error::Error::source) would say each cause twice.
#[derive(Debug)]
pub enum Failure {
    /// Exit 64: the configuration cannot work (a CA file that cannot be
    /// read, a hostname that cannot be a host id): the operator must change
    /// it. The cause names the option.
    Usage(Cause),
    /// Exit 1: the work failed (a database, a disk, a thread the system
    /// would not start): retrying may cure it.
    Runtime {
        /// What could not be done, when the cause does not say it itself.
        context: Option<String>,
        /// Why: an error from outside, or a plain message when rtinspect
        /// itself gave up (events left undelivered at the deadline).
        source: Cause,
    },
}

impl Failure {
    /// A runtime failure: `context` could not be done because of `source`.
    fn runtime(context: impl Into<String>, source: impl Into<Cause>) -> Failure {
        Failure::Runtime {
            context: Some(context.into()),
            source: source.into(),
        }
    }

    /// A runtime failure whose cause says itself what could not be done.
    fn because(source: impl Into<Cause>) -> Failure {
        Failure::Runtime {
            context: None,
            source: source.into(),
        }
    }

    /// A usage failure: the configuration cannot work because of `source`.
    fn usage(source: impl Into<Cause>) -> Failure {
        Failure::Usage(source.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(source)
            | Failure::Runtime {
                context: None,
                source,
            } => source.fmt(f),
            Failure::Runtime {
                context: Some(context),
                source,
            } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Runtime {
                context: Some(_),
                source,
            } => Some(source.as_ref()),
            // Its text is the cause's own: the chain goes on below it.
            Failure::Usage(source)
            | Failure::Runtime {
                context: None,
                source,
            } => source.source(),
        }
    }
}

/// How long an idle Docker connection is kept: across one interval, so each
/// tick reuses the last tick's connection.
fn keep_idle(interval: Duration) -> Duration {
    (interval * 2 + Duration::from_secs(5)).min(Duration::from_secs(900))
}

/// The PostgreSQL connector, its CA file read now: a bad one is bad configuration.
fn pg_connector(db: &Database) -> Result<Connector, Failure> {
    Connector::new(db.clone()).map_err(Failure::usage)
}

/// What the PostgreSQL adapters of one process are built with, made once:
/// the connector (its CA file read) and this host's slice of the records.
struct PgParts {
    connector: Connector,
    host: Option<HostFilter>,
}

/// The PostgreSQL parts in PostgreSQL mode, `None` in label mode.
fn pg_parts(config: &Config) -> Result<Option<PgParts>, Failure> {
    let Some(db) = &config.database else {
        return Ok(None);
    };
    Ok(Some(PgParts {
        connector: pg_connector(db)?,
        host: host_filter(config)?,
    }))
}

/// With host scoping, this host's slice of the records table, the hostname
/// read now when no id is set (an unusable one is bad configuration).
fn host_filter(config: &Config) -> Result<Option<HostFilter>, Failure> {
    let Some(scope) = &config.host_scope else {
        return Ok(None);
    };
    let host_id = scope.id.resolve().map_err(Failure::usage)?;
    Ok(Some(HostFilter {
        column: scope.column.clone(),
        host_id,
    }))
}

fn build_sink(
    config: &Config,
    sink: &Sink,
    pg: Option<&PgParts>,
) -> Result<Box<dyn EventSink>, Failure> {
    Ok(match sink {
        Sink::Stdout => Box::new(StdoutSink::stdout()),
        // The records' connector: the sink's database is theirs, and its
        // CA file is read once.
        Sink::Postgres(database) => Box::new(PgSink::new(
            match pg {
                Some(pg) => pg.connector.clone(),
                None => pg_connector(database)?,
            },
            config.events_table.clone(),
            config.notify_channel.clone(),
            pg.and_then(|pg| pg.host.as_ref())
                .map(|h| h.host_id.clone()),
        )),
        // The CA file is read now: a bad one is bad configuration.
        Sink::Webhook(webhook) => {
            let sink = WebhookSink::new(webhook).map_err(Failure::usage)?;
            log::info!(
                "events go to the webhook {} in the {} format",
                webhook.url,
                webhook.format.as_str()
            );
            Box::new(sink)
        }
    })
}

fn build_source(
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
            Box::new(PgRecords::new(
                pg.connector.clone(),
                config.records_table.clone(),
                pg.host.clone(),
            ))
        }
    }
}

/// `rtinspect migrate`: creates what is missing and says what it did on stdout.
fn migrate(config: &Config, db: &Database) -> Result<(), Failure> {
    let steps = crate::postgres::migrate(
        &pg_connector(db)?,
        &config.records_table,
        &config.events_table,
        config.host_scope.as_ref().map(|s| s.column.as_str()),
    )
    .map_err(Failure::because)?;
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    print_out(&text)
}

/// `text` on stdout; a closed stdout is a failure to report, not a panic
/// (as `println!` would make it).
fn print_out(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::runtime("cannot write to stdout", e))
}

/// `rtinspect notify-test`: one test message through every sink, in turn,
/// each result on stdout (what the sink answered, and how long it took);
/// a failure when any sink failed.
fn notify_test(config: &Config) -> Result<(), Failure> {
    let pg = pg_parts(config)?;
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mut failed = Vec::new();
    for SinkConfig { sink: chosen, .. } in &config.sinks {
        let mut sink = build_sink(config, chosen, pg.as_ref())?;
        let event = HealthEvent::notify_test(&host, SystemTime::now());
        let name = match chosen {
            Sink::Webhook(w) => format!("webhook ({}, {})", w.format.as_str(), w.url.shown()),
            _ => chosen.kind().as_str().to_owned(),
        };
        let started = Instant::now();
        let tried = sink.trial(&event);
        let took = started.elapsed().as_millis();
        let line = match tried {
            Ok(answer) if answer.is_empty() => format!("{name}: ok in {took} ms\n"),
            Ok(answer) => format!("{name}: ok in {took} ms: {answer}\n"),
            Err(e) => {
                failed.push(chosen.kind().as_str());
                format!("{name}: FAILED in {took} ms: {e}\n")
            }
        };
        print_out(&line)?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure::because(format!(
        "the test message did not go through: {} of {} sinks failed ({})",
        failed.len(),
        config.sinks.len(),
        failed.join(", ")
    )))
}

/// `rtinspect prune-events`: deletes old events in batches, says how many on stdout.
fn prune_events(config: &Config, db: &Database, older_than: Duration) -> Result<(), Failure> {
    let table = &config.events_table;
    let pruned = crate::postgres::prune_events(
        &pg_connector(db)?,
        table,
        older_than,
        crate::postgres::PRUNE_BATCH,
        &mut |n| log::debug!("deleted a batch of {n} events from {table}"),
    )
    .map_err(Failure::because)?;
    // A closed stdout is a failure to report, not a panic (println! would).
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "deleted {} events recorded before {} from {table}",
        pruned.deleted,
        crate::event::rfc3339_micros(pruned.before)
    )
    .and_then(|()| out.flush())
    .map_err(|e| {
        Failure::runtime(
            format!(
                "deleted {} events, but cannot write to stdout",
                pruned.deleted
            ),
            e,
        )
    })
}

/// Opens and locks the state directory; any failure is a runtime one (a full
/// disk, a directory held by another rtinspect), so systemd retries.
fn open_state(config: &Config) -> Result<Option<StateDir>, Failure> {
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

/// Each sink's spooled events to publish first, in the order of the sinks;
/// lines that do not parse are set aside. The spool of a version that had
/// one sink (`spool.jsonl`) goes, event by event, to every sink that gets
/// such events now (its facts to the sinks of facts, its incidents to the
/// sinks of incidents); an event no sink gets now is set aside. Spools of
/// sinks no longer configured are kept, and said so.
fn spooled(
    config: &Config,
    state: Option<&StateDir>,
    telemetry: &Telemetry,
) -> Result<Vec<Vec<HealthEvent>>, Failure> {
    let mut backlogs = vec![Vec::new(); config.sinks.len()];
    let Some(state) = state else {
        return Ok(backlogs);
    };
    let read = |e| Failure::runtime("reading the spool", e);
    let old = state.load_old_spool().map_err(read)?;
    said_aside(state, &old, "spool.jsonl", telemetry);
    let mut no_sink = Vec::new();
    for event in &old.events {
        let incident = event.incident.is_some();
        let mut taken = false;
        for (backlog, sink) in backlogs.iter_mut().zip(&config.sinks) {
            if sink.report.wants(incident) {
                backlog.push(event.clone());
                taken = true;
            }
        }
        if !taken {
            no_sink.push(event.clone());
        }
    }
    // Every sink's own spool is read before anything is written: a start
    // that fails here leaves the files as they were.
    let mut own_spools = Vec::with_capacity(backlogs.len());
    for index in 0..backlogs.len() {
        let counters = telemetry.sink(index);
        let own = state.load_spool(counters.name).map_err(read)?;
        said_aside(state, &own, counters.name, telemetry);
        counters
            .events_rejected
            .fetch_add((own.bad + own.over_limit) as u64, Relaxed);
        own_spools.push(own.events);
    }
    for (index, (backlog, own)) in backlogs.iter_mut().zip(own_spools).enumerate() {
        let counters = telemetry.sink(index);
        // An event already in the sink's spool (a start that failed after
        // saving it, before the old spool went) is not taken twice.
        let spooled: std::collections::HashSet<&str> =
            own.iter().map(|o| o.event_id.as_str()).collect();
        backlog.retain(|e| !spooled.contains(e.event_id.as_str()));
        let adopted = backlog.len();
        backlog.extend(own);
        if adopted > 0 {
            // In the sink's own spool before the old one goes.
            state.save_spool(counters.name, backlog).map_err(read)?;
            log::info!(sink = counters.name;
                "{adopted} events of spool.jsonl, from an earlier version, go to this sink");
        }
        if !backlog.is_empty() {
            log::info!(sink = counters.name;
                "publishing {} spooled events first", backlog.len());
        }
    }
    if !no_sink.is_empty() {
        let reason = "spooled by an earlier version; no sink configured now gets it (--report)";
        state
            .append_rejected_events("spool.jsonl", &no_sink, reason)
            .map_err(read)?;
        log::error!(
            "{} events of spool.jsonl, from an earlier version, go to no sink configured now \
             (--report); set aside in {}",
            no_sink.len(),
            state.path().join("rejected.jsonl").display()
        );
    }
    // Every event of it is now in a sink's spool or set aside.
    state.remove_old_spool().map_err(read)?;
    let names: Vec<&str> = telemetry.sinks.iter().map(|s| s.name).collect();
    for (path, bytes) in state.other_spools(&names).map_err(read)? {
        log::warn!(
            "{} ({bytes} bytes) holds events for a sink not configured now; they stay \
             there until it is",
            path.display()
        );
    }
    Ok(backlogs)
}

/// Says what reading a spool set aside (and counts the lines a rotation of
/// `rejected.jsonl` dropped meanwhile).
fn said_aside(state: &StateDir, loaded: &LoadedSpool, spool: &str, telemetry: &Telemetry) {
    if loaded.bad + loaded.over_limit > 0 {
        log::error!(spool = spool;
            "{} spool lines did not parse and {} events were past the spool's {} limit; \
             set aside in {}",
            loaded.bad,
            loaded.over_limit,
            crate::state::SPOOL_LIMIT,
            state.path().join("rejected.jsonl").display()
        );
    }
    if loaded.rejected_dropped > 0 {
        telemetry
            .rejected_dropped
            .fetch_add(loaded.rejected_dropped, Relaxed);
        log::error!(
            "{} older refused events were dropped as rejected.jsonl rotated",
            loaded.rejected_dropped
        );
    }
}

/// The incident tracker when the sink gets incidents, from the incidents
/// saved in the state directory.
fn incident_tracker(config: &Config, state: Option<&StateDir>) -> Result<Option<Tracker>, Failure> {
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
        return Ok(Some(Tracker::new(policy)));
    };
    let saved = state
        .load_incidents()
        .map_err(|e| Failure::runtime("reading the saved incidents", e))?;
    let tracker = Tracker::with_saved(policy, saved);
    if tracker.open_incidents() > 0 {
        log::info!(
            "{} open incidents restored from {}",
            tracker.open_incidents(),
            state.path().display()
        );
    }
    Ok(Some(tracker))
}

/// A sink's final spool, written once: by the main thread at the end of the
/// drain, or by the signal thread on a second signal, whichever comes first;
/// events that come later (from an inspect still under way then) are added
/// to it.
struct FinalSpool {
    /// The sink's name.
    sink: &'static str,
    outbox: Arc<Outbox>,
    state: Option<StateDir>,
    /// What was spooled, once it was.
    written: Mutex<Option<Vec<HealthEvent>>>,
}

impl FinalSpool {
    /// Closes the outbox and keeps what it held; the count of events spooled.
    fn write(&self) -> Result<usize, Failure> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(events) = &*written {
            return Ok(events.len());
        }
        let undelivered = self.outbox.close();
        let n = keep_undelivered(self.sink, &undelivered, self.state.as_ref())?;
        *written = Some(undelivered);
        Ok(n)
    }

    /// Keeps an event that came after the outbox closed: the spool is
    /// written again with it, or, without one, its envelope is logged whole.
    fn keep_late(&self, event: HealthEvent) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let mut events = written.take().unwrap_or_default();
        events.push(event);
        let kept = match &self.state {
            Some(state) => keep_undelivered(self.sink, &events, Some(state)),
            None => keep_undelivered(self.sink, &events[events.len() - 1..], None),
        };
        if let Err(e) = kept {
            log::error!("{e}");
        }
        *written = Some(events);
    }

    /// How many events were spooled, late ones included; waits for one
    /// being spooled right now.
    fn count(&self) -> usize {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.as_ref().map_or(0, Vec::len)
    }
}

/// Runs `run`, `once`, `migrate`, `prune-events` or `notify-test` with the
/// given configuration until done.
pub fn run(config: &Config) -> Result<(), Failure> {
    match &config.command {
        Command::Migrate { database } => return migrate(config, database),
        Command::PruneEvents {
            database,
            older_than,
        } => return prune_events(config, database, *older_than),
        Command::NotifyTest => return notify_test(config),
        Command::Run | Command::Once => {}
    }
    // Signals first: a SIGTERM while the start reads a long spool must stop
    // it cleanly. Until the outbox exists, a second signal has nothing to
    // spool (the spool file is still there) and only exits.
    let (trigger, shutdown) = shutdown::channel();
    let at_exit: Arc<std::sync::OnceLock<Vec<Arc<FinalSpool>>>> = Arc::default();
    let on_second = at_exit.clone();
    let signals = shutdown::watch_signals(
        trigger.clone(),
        Box::new(move || {
            for spool in on_second.get().into_iter().flatten() {
                let _ = spool.write();
            }
        }),
    )
    .map_err(|e| Failure::runtime("cannot start the signal thread", e))?;
    let notifier = Notifier::from_env(&|k| std::env::var_os(k));
    let state = open_state(config)?;
    let names: Vec<&'static str> = config
        .sinks
        .iter()
        .map(|s| s.sink.kind().as_str())
        .collect();
    let telemetry = Arc::new(Telemetry::for_sinks(&names));
    let docker = DockerClient::new(
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
    });
    let events_client = docker.clone();
    let pg = pg_parts(config)?;
    let source = build_source(config, &docker, pg.as_ref());
    let sinks = config
        .sinks
        .iter()
        .map(|s| build_sink(config, &s.sink, pg.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let backlogs = spooled(config, state.as_ref(), &telemetry)?;
    let mut worker = Worker::new(
        source,
        Box::new(docker),
        telemetry.clone(),
        &config.docker_socket,
    );
    let mut baselines = Inspector::new();
    if let Some(state) = &state {
        (worker, baselines) = worker
            .with_state(state.clone())
            .map_err(|e| Failure::runtime("reading the saved baselines", e))?;
    }
    let incidents = incident_tracker(config, state.as_ref())?;

    let outlets: Vec<Outlet> = config
        .sinks
        .iter()
        .zip(backlogs)
        .enumerate()
        .map(|(index, (SinkConfig { report, .. }, backlog))| {
            let (events, outbox) = Outbox::new(backlog);
            let spool = Arc::new(FinalSpool {
                sink: names[index],
                outbox: outbox.clone(),
                state: state.clone(),
                written: Mutex::new(None),
            });
            Outlet {
                index,
                report: *report,
                events,
                outbox,
                spool,
            }
        })
        .collect();
    let _ = at_exit.set(outlets.iter().map(|o| o.spool.clone()).collect());
    let metrics = match config.metrics_addr {
        None => None,
        Some(addr) => {
            let outboxes: Vec<Arc<Outbox>> = outlets.iter().map(|o| o.outbox.clone()).collect();
            let inputs = HealthInputs {
                interval: config.interval,
                started: Instant::now(),
                queue_depths: Box::new(move || outboxes.iter().map(|o| o.len()).collect()),
            };
            Some(metrics::serve(addr, telemetry.clone(), inputs).map_err(Failure::because)?)
        }
    };
    let mut publishers = Vec::with_capacity(sinks.len());
    for (sink, outlet) in sinks.into_iter().zip(&outlets) {
        let publisher = publisher::spawn(
            sink,
            outlet.outbox.clone(),
            Rejects::new(state.clone(), outlet.index),
            Backoff::default(),
            telemetry.clone(),
        )
        .map_err(|e| Failure::runtime("cannot start a publisher thread", e))?;
        publishers.push(publisher);
    }

    notifier.ready();
    if matches!(config.command, Command::Run) {
        log::info!(interval:? = config.interval, socket:% = config.docker_socket.display();
            "rtinspect {} started", env!("CARGO_PKG_VERSION"));
    }
    let notifier = Arc::new(notifier);
    // Subscribe before the first tick: the reader starts first.
    let (reader, nudges) = if config.events && matches!(config.command, Command::Run) {
        let (sender, receiver) = crossbeam_channel::bounded(NUDGE_CAPACITY);
        let overflow = Arc::new(AtomicBool::new(false));
        let reader = events::spawn(ReaderParts {
            socket: config.docker_socket.clone(),
            client: events_client,
            timeout: config.docker_timeout,
            nudges: sender,
            overflow: overflow.clone(),
            counters: telemetry.clone(),
            silence: events::SILENCE,
            label: config.database.is_none().then(|| config.label.clone()),
        })
        .map_err(|e| Failure::runtime("cannot start the Docker events thread", e))?;
        (Some(reader), Some(Nudges { receiver, overflow }))
    } else {
        (None, None)
    };
    let once = matches!(config.command, Command::Once);
    let schedule = Schedule::new(
        Settings {
            interval: config.interval,
            once,
            events: nudges.is_some(),
            extended_facts: config.details == DetailLevel::Extended,
            follow: if config.database.is_some() {
                Follow::Database
            } else {
                Follow::Labels
            },
        },
        baselines,
        Instant::now(),
    );
    let schedule = match incidents {
        Some(tracker) => schedule.with_incidents(tracker),
        None => schedule,
    };
    let emitter = Emitter {
        outlets: outlets.clone(),
        telemetry: telemetry.clone(),
        // `once` has no next tick to protect: it waits for queue room rather
        // than drop, but not past the drain (a sink that is down and more
        // events than the queue holds): then into the spool.
        once_deadline: once.then(|| Instant::now() + DRAIN),
    };
    let inspector = spawn_inspector(
        worker,
        schedule,
        emitter,
        Turns {
            once,
            shutdown: shutdown.clone(),
            notifier: notifier.clone(),
            nudges,
        },
    )
    .map_err(|e| Failure::runtime("cannot start the inspector thread", e))?;

    // Until a signal, or the end of `once`'s tick.
    crossbeam_channel::select! {
        recv(shutdown.receiver()) -> _ => {},
        recv(inspector.ended) -> _ => {},
    }
    trigger.trigger();
    notifier.stopping();
    let deadline = Instant::now() + DRAIN;

    // The inspector stops between two records; a call it is blocked in is
    // left behind at the deadline.
    let inspector_done = matches!(
        inspector.ended.recv_deadline(deadline),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    );
    let work = if inspector_done {
        join(inspector.handle)
    } else {
        log::warn!("the inspector is blocked in a call; leaving it behind");
        Ok(())
    };
    // With the inspector gone the queues' last senders are gone, and each
    // publisher ends once it has delivered everything; else wait while
    // anything is left to deliver.
    drop(outlets);
    if inspector_done {
        for publisher in &publishers {
            publisher.wait_until(deadline);
        }
    } else {
        let spools = at_exit.get().map_or(&[][..], Vec::as_slice);
        while let Some(i) = spools.iter().position(|s| !s.outbox.is_empty())
            && Instant::now() < deadline
        {
            publishers[i].wait_until((Instant::now() + Duration::from_millis(20)).min(deadline));
        }
    }
    // Every sink's spool is written, even after one could not be.
    let mut written = Ok(0);
    for spool in at_exit.get().into_iter().flatten() {
        if let Err(e) = spool.write() {
            written = Err(e);
        }
    }
    written?;
    for publisher in publishers {
        publisher.join_if_ended();
    }
    if let Some(reader) = reader {
        reader.stop();
    }
    signals.stop();
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    // An event being spooled late right now is waited for, and counted.
    let spooled: Vec<String> = at_exit
        .get()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let n = s.count();
            (n > 0).then(|| format!("the {} sink {n}", s.sink))
        })
        .collect();
    if !spooled.is_empty() && matches!(config.command, Command::Once) {
        return Err(Failure::because(format!(
            "events not taken before the deadline ({}); they are spooled for the next start",
            spooled.join(", ")
        )));
    }
    work
}

/// How the inspector loop turns.
struct Turns {
    /// One tick, then return (`rtinspect once`).
    once: bool,
    shutdown: Shutdown,
    notifier: Arc<Notifier>,
    /// Docker's events, when the events stream is on.
    nudges: Option<Nudges>,
}

/// The inspector's end of the events stream.
pub struct Nudges {
    /// The reader's nudges.
    pub receiver: Receiver<Nudge>,
    /// Set by the reader when a nudge did not fit: resync.
    pub overflow: Arc<AtomicBool>,
}

/// Nudges taken from the channel in one turn at most, so that a flood of
/// events never keeps the loop from its next action.
const NUDGES_PER_TURN: usize = 64;

/// One sink's end of the inspector: what it gets, its queue, its spool.
#[derive(Clone)]
struct Outlet {
    /// The sink's place in [`Telemetry::sinks`].
    index: usize,
    /// Facts, incidents or both.
    report: Report,
    events: Sender<HealthEvent>,
    outbox: Arc<Outbox>,
    spool: Arc<FinalSpool>,
}

/// Where the inspector's events go: to each sink that gets them, its
/// publisher's queue while its outbox is open, its spool once it is closed
/// (an inspect that was still under way when the drain ended), never a
/// channel nobody reads.
struct Emitter {
    outlets: Vec<Outlet>,
    telemetry: Arc<Telemetry>,
    /// `once`: wait for queue room until then rather than drop.
    once_deadline: Option<Instant>,
}

impl Emitter {
    fn emit(&self, event: HealthEvent) {
        // Only to the sinks that are to get it (`--report`).
        let incident = event.incident.is_some();
        for outlet in &self.outlets {
            if !outlet.report.wants(incident) {
                continue;
            }
            let (outbox, events, event) = (&outlet.outbox, &outlet.events, event.clone());
            let offered = match self.once_deadline {
                Some(deadline) => publisher::offer_until(outbox, events, event, deadline),
                None => {
                    let counters = self.telemetry.sink(outlet.index);
                    publisher::offer(outbox, events, event, counters)
                }
            };
            if let Err(late) = offered {
                outlet.spool.keep_late(*late);
            }
        }
    }
}

/// The running inspector thread.
struct InspectorThread {
    handle: JoinHandle<Result<(), Failure>>,
    /// Disconnects when the thread ends, however it ends.
    ended: Receiver<()>,
}

/// Starts the inspector thread.
fn spawn_inspector(
    mut worker: Worker,
    mut schedule: Schedule,
    emitter: Emitter,
    turns: Turns,
) -> std::io::Result<InspectorThread> {
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("inspector".into())
        .spawn(move || {
            let _alive = alive;
            inspect_loop(&mut worker, &mut schedule, &emitter, &turns)
        })?;
    Ok(InspectorThread { handle, ended })
}

/// The inspector loop: carries out what the schedule decides, tells it what
/// happened (answers, Docker events, shutdown), waits when it says wait, and
/// feeds the watchdog at every turn. It decides nothing itself.
fn inspect_loop(
    worker: &mut Worker,
    schedule: &mut Schedule,
    emitter: &Emitter,
    turns: &Turns,
) -> Result<(), Failure> {
    let never = crossbeam_channel::never();
    let mut nudges = turns.nudges.as_ref().map_or(&never, |n| &n.receiver);
    let mut listed = true;
    loop {
        let input = match schedule.next(Instant::now()) {
            Action::Stop => break,
            Action::Wait(until) => {
                let now = Instant::now();
                let mut wait = until.saturating_duration_since(now);
                if let Some(w) = turns.notifier.watchdog_every() {
                    wait = wait.min(w);
                }
                crossbeam_channel::select! {
                    recv(turns.shutdown.receiver()) -> _ => Some(Input::Shutdown),
                    recv(nudges) -> nudge => match nudge {
                        Ok(nudge) => Some(from_nudge(nudge)),
                        // The reader is gone; the poll goes on.
                        Err(_) => {
                            nudges = &never;
                            None
                        }
                    },
                    default(wait) => None,
                }
            }
            action => match worker.carry_out(action, schedule, &mut |e| emitter.emit(e)) {
                Carried::Answer(input) => Some(input),
                Carried::TickEnded { status, listed: l } => {
                    listed = l;
                    turns.notifier.status(&status);
                    None
                }
                Carried::Nothing => None,
            },
        };
        if let Some(input) = input {
            schedule.on(input, Instant::now());
        }
        for nudge in nudges.try_iter().take(NUDGES_PER_TURN) {
            schedule.on(from_nudge(nudge), Instant::now());
        }
        if let Some(n) = &turns.nudges
            && n.overflow.swap(false, Relaxed)
        {
            schedule.on(Input::Overflowed, Instant::now());
        }
        if turns.shutdown.is_requested() {
            schedule.on(Input::Shutdown, Instant::now());
        }
        turns.notifier.watchdog();
    }
    if turns.shutdown.is_requested() {
        log::info!("inspector stopped");
    }
    // `once` fails when its tick could not list the records; `run` stopped
    // by a signal during an outage has done its job.
    match worker.take_list_error() {
        Some(e) if turns.once && !listed => Err(Failure::because(e)),
        _ => Ok(()),
    }
}

/// What the reader said, as the schedule's input, stamped with when the
/// inspector took it.
fn from_nudge(nudge: Nudge) -> Input {
    match nudge {
        Nudge::Container(e) => Input::Docker(e, SystemTime::now()),
        Nudge::Resync => {
            log::debug!("events stream subscribed: inspecting every record");
            Input::Subscribed
        }
    }
}

/// Joins a thread, re-raising its panic rather than swallowing it.
fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Saves what could not be delivered to the spool (and clears a spool whose
/// events were all delivered); without a state directory, or when the spool
/// cannot be written, each envelope goes to the error log whole and the exit
/// is a failure. Returns how many events were spooled.
fn keep_undelivered(
    sink: &str,
    undelivered: &[HealthEvent],
    state: Option<&StateDir>,
) -> Result<usize, Failure> {
    if let Some(state) = state {
        match state.save_spool(sink, undelivered) {
            Ok(()) => {
                if !undelivered.is_empty() {
                    log::warn!(sink = sink;
                        "{} undelivered events spooled to {}; they are published at the next start",
                        undelivered.len(),
                        state.path().display()
                    );
                }
                return Ok(undelivered.len());
            }
            Err(e) => log::error!(sink = sink, err:% = e; "cannot write the spool"),
        }
    }
    if undelivered.is_empty() {
        return Ok(0);
    }
    // Nothing is dropped silently: each envelope goes to the log, whole.
    for event in undelivered {
        log::error!(sink = sink, game_id = event.game_id.as_str(),
            container_id = event.container_id.as_str(),
            event_type = event.event_type, envelope = event.envelope.as_str();
            "event not delivered before exit");
    }
    Err(Failure::because(format!(
        "{} events could not be delivered before the drain deadline (their envelopes are in the log)",
        undelivered.len()
    )))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::state::StateError;

    #[test]
    fn a_runtime_failure_says_what_failed_then_why_and_keeps_the_cause() {
        let f = Failure::runtime(
            "cannot start the publisher thread",
            io::Error::other("Resource temporarily unavailable"),
        );
        assert_eq!(
            f.to_string(),
            "cannot start the publisher thread: Resource temporarily unavailable"
        );
        let cause = f.source().expect("the cause is kept");
        assert!(cause.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn a_failure_whose_cause_says_it_all_is_that_cause_and_its_chain_names_each_error_once() {
        let state = || StateError {
            path: PathBuf::from("/var/lib/rtinspect/spool.jsonl"),
            source: io::Error::other("No space left on device"),
        };
        for f in [Failure::because(state()), Failure::usage(state())] {
            assert_eq!(
                f.to_string(),
                "/var/lib/rtinspect/spool.jsonl: No space left on device"
            );
            // Below it, the cause's own cause: not the cause a second time.
            let below = f.source().expect("the chain is kept");
            assert_eq!(below.to_string(), "No space left on device");
            assert!(below.source().is_none());
        }
    }

    #[test]
    fn a_failure_rtinspect_itself_gives_is_its_message() {
        let f = Failure::because("2 events could not be delivered");
        assert_eq!(f.to_string(), "2 events could not be delivered");
        assert!(f.source().is_none());
        assert!(matches!(f, Failure::Runtime { context: None, .. }));
    }
}
