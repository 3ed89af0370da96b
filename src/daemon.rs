//! `run` and `once`: builds the adapters, starts the named threads (the
//! signal watcher, a publisher for each sink, the Docker events reader, the
//! metrics listener, the inspector), waits for a signal or the end of
//! `once`'s tick, and bounds the exit.
//!
//! Exit is bounded whatever the sink or dockerd is doing: after SIGTERM the
//! inspector stops between records, delivery goes on for at most
//! [`DRAIN`], then everything undelivered — the event in flight included —
//! is spooled, and the process exits without waiting for a thread that is
//! still blocked in a call.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::build;
use crate::commands;
use crate::config::{Command, Config};
use crate::docker::DockerClient;
use crate::docker::events::{self, ReaderParts};
use crate::event::DetailLevel;
use crate::failure::Failure;
use crate::incident::Tracker;
use crate::inspector::Inspector;
use crate::inspector_loop::{self, InspectorThread, Nudges, Turns};
use crate::metrics::{self, HealthInputs, MetricsServer};
use crate::notify::Notifier;
use crate::publish::fanout::{Emitter, Outlet};
use crate::publish::outbox::Outbox;
use crate::publish::publisher::{self, Publisher};
use crate::publish::rejects::Rejects;
use crate::publish::sink::EventSink;
use crate::publish::spools::{self, Spools};
use crate::publish::tails::Tails;
use crate::schedule::{Follow, Schedule, Settings};
use crate::shutdown::{self, ShutdownTrigger};
use crate::silence::hold::Hold;
use crate::state::StateDir;
use crate::telemetry::Telemetry;
use crate::worker::Worker;

/// How long, after shutdown begins, delivery may go on before what is left
/// is spooled: systemd's stop timeout must never have to kill rtinspect.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Docker events waiting for the inspector before they merge into a resync.
const NUDGE_CAPACITY: usize = 256;

/// Each sink's final spool, once the outboxes exist: what a second signal
/// writes, and what the exit writes.
type AtExit = Arc<OnceLock<Spools>>;

/// The events waiting for their log tail, once the inspector's way out
/// exists: a second signal sends them on before it writes the spools.
type Waiting = Arc<OnceLock<Arc<Tails>>>;

/// Runs `run`, `once`, `migrate`, `prune-events`, `notify-test` or
/// `silence` with the given configuration until done.
pub fn run(config: &Config) -> Result<(), Failure> {
    match &config.command {
        Command::Migrate { database } => return commands::migrate(config, database),
        Command::PruneEvents {
            database,
            older_than,
        } => return commands::prune_events(config, database, *older_than),
        Command::NotifyTest => return commands::notify_test(config),
        Command::Silence(silence) => return commands::silence(config, silence),
        Command::Status { json } => return crate::commands::status(config, *json),
        Command::History { game, since, json } => {
            return crate::commands::history(config, game.as_deref(), *since, *json);
        }
        Command::Run | Command::Once => {}
    }
    let config = &*build::with_notify_file(config)?;
    let once = matches!(config.command, Command::Once);
    // Signals first: a SIGTERM while the start reads a long spool must stop
    // it cleanly. Until the outbox exists, a second signal has nothing to
    // spool (the spool file is still there) and only exits.
    let (trigger, shutdown) = shutdown::channel();
    let at_exit = AtExit::default();
    let waiting = Waiting::default();
    let signals = watch_signals(trigger.clone(), at_exit.clone(), waiting.clone())?;
    let notifier = Notifier::from_env(&|k| std::env::var_os(k));
    let state = build::open_state(config)?;
    let names: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
    let telemetry = Arc::new(Telemetry::for_sinks(&names));
    let docker = build::docker_client(config);
    let events_client = docker.clone();
    let pg = build::pg_parts(config)?;
    let source = build::build_source(config, &docker, pg.as_ref());
    let sinks = config
        .sinks
        .iter()
        .map(|s| build::build_sink(config, s, pg.as_ref()).map(|built| built.sink))
        .collect::<Result<Vec<_>, _>>()?;
    let backlogs = spools::spooled(config, state.as_ref(), &telemetry)?;
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
    let incidents = build::incident_tracker(config, state.as_ref())?;
    if let Some(reader) = build::silence_reader(config, state.as_ref()) {
        worker = worker.with_silences(reader);
    }
    let (outlets, spools) = spools::open(config, backlogs, state.as_ref());
    let _ = at_exit.set(spools);
    let metrics = serve_metrics(config, &telemetry, &outlets)?;
    if let Some(m) = &metrics {
        worker = worker.with_live(m.board());
    }
    let publishers = spawn_publishers(sinks, &outlets, state.as_ref(), &telemetry)?;

    notifier.ready();
    if !once {
        log::info!(interval:? = config.interval, socket:% = config.docker_socket.display();
            "rtinspect {} started", env!("CARGO_PKG_VERSION"));
    }
    let notifier = Arc::new(notifier);
    // Subscribe before the first tick: the reader starts first.
    let (reader, nudges) = match config.events && !once {
        true => {
            // A bad events.json only loses the replay: the stream starts now.
            let resume_from = state
                .as_ref()
                .and_then(|s| s.load_event_cursor().ok().flatten());
            start_reader(config, events_client, &telemetry, resume_from)?
        }
        false => (None, None),
    };
    let schedule = schedule(config, baselines, incidents, nudges.is_some());
    let emitter = Emitter {
        outlets: outlets.clone(),
        telemetry: telemetry.clone(),
        // `once` has no next tick to protect: it waits for queue room rather
        // than drop, but not past the drain (a sink that is down and more
        // events than the queue holds): then into the spool.
        once_deadline: once.then(|| Instant::now() + DRAIN),
        host_id: build::envelope_host(config)?,
    };
    let tails = build::tails(config, emitter)?;
    let _ = waiting.set(tails.clone());
    let turns = Turns {
        once,
        shutdown: shutdown.clone(),
        notifier: notifier.clone(),
        nudges,
    };
    let inspector = inspector_loop::spawn_inspector(worker, schedule, tails.clone(), turns)
        .map_err(|e| Failure::runtime("cannot start the inspector thread", e))?;

    // Until a signal, or the end of `once`'s tick.
    crossbeam_channel::select! {
        recv(shutdown.receiver()) -> _ => {},
        recv(inspector.ended) -> _ => {},
    }
    trigger.trigger();
    notifier.stopping();
    let work = drain(inspector, &tails, outlets, &publishers, &at_exit)?;
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
    if once {
        said_undelivered(&at_exit, &telemetry)?;
    }
    work
}

/// The signal watcher: the first signal asks for shutdown; a second one
/// writes every sink's spool at once (the exit follows), with the events
/// that were waiting for their log tail.
fn watch_signals(
    trigger: ShutdownTrigger,
    at_exit: AtExit,
    waiting: Waiting,
) -> Result<shutdown::SignalWatcher, Failure> {
    shutdown::watch_signals(
        trigger,
        Box::new(move || {
            if let Some(tails) = waiting.get() {
                tails.release_now();
            }
            if let Some(spools) = at_exit.get() {
                let _ = spools.close();
            }
        }),
    )
    .map_err(|e| Failure::runtime("cannot start the signal thread", e))
}

/// The metrics listener, when `--metrics-addr` is set.
fn serve_metrics(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    outlets: &[Outlet],
) -> Result<Option<MetricsServer>, Failure> {
    let Some(addr) = config.metrics_addr else {
        return Ok(None);
    };
    let outboxes: Vec<Arc<Outbox>> = outlets.iter().map(|o| o.outbox.clone()).collect();
    let inputs = HealthInputs {
        interval: config.interval,
        started: Instant::now(),
        queue_depths: Box::new(move || outboxes.iter().map(|o| o.len()).collect()),
    };
    let host = crate::build::host_name(config);
    metrics::serve(addr, telemetry.clone(), inputs, host)
        .map(Some)
        .map_err(Failure::because)
}

/// A publisher thread for each sink, fed by its outlet's outbox.
fn spawn_publishers(
    sinks: Vec<Box<dyn EventSink>>,
    outlets: &[Outlet],
    state: Option<&StateDir>,
    telemetry: &Arc<Telemetry>,
) -> Result<Vec<Publisher>, Failure> {
    sinks
        .into_iter()
        .zip(outlets)
        .map(|(sink, outlet)| {
            publisher::spawn(
                sink,
                outlet.outbox.clone(),
                Rejects::new(state.cloned(), outlet.index),
                Backoff::default(),
                telemetry.clone(),
            )
            .map_err(|e| {
                let sink = &telemetry.sink(outlet.index).name;
                Failure::runtime(
                    format!("cannot start the publisher thread of the sink {sink}"),
                    e,
                )
            })
        })
        .collect()
}

/// The Docker events reader and the inspector's end of it.
fn start_reader(
    config: &Config,
    client: DockerClient,
    telemetry: &Arc<Telemetry>,
    resume_from: Option<std::time::SystemTime>,
) -> Result<(Option<events::EventsReader>, Option<Nudges>), Failure> {
    let (sender, receiver) = crossbeam_channel::bounded(NUDGE_CAPACITY);
    let overflow = Arc::new(AtomicBool::new(false));
    let reader = events::spawn(ReaderParts {
        socket: config.docker_socket.clone(),
        client,
        timeout: config.docker_timeout,
        nudges: sender,
        overflow: overflow.clone(),
        counters: telemetry.clone(),
        silence: events::SILENCE,
        label: config.database.is_none().then(|| config.label.clone()),
        resume_from,
    })
    .map_err(|e| Failure::runtime("cannot start the Docker events thread", e))?;
    Ok((Some(reader), Some(Nudges { receiver, overflow })))
}

/// The schedule of the inspector loop, with the tracker when incidents are wanted.
fn schedule(
    config: &Config,
    baselines: Inspector,
    incidents: Option<(Tracker, Hold)>,
    events: bool,
) -> Schedule {
    let schedule = Schedule::new(
        Settings {
            interval: config.interval,
            once: matches!(config.command, Command::Once),
            events,
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
    match incidents {
        Some((tracker, hold)) => schedule.with_incidents(tracker).with_hold(hold),
        None => schedule,
    }
}

/// The bounded exit: the inspector stops between two records (a call it is
/// blocked in is left behind at the deadline), delivery goes on until
/// everything is delivered or the deadline, and every sink's spool is
/// written. The inspector's own outcome.
fn drain(
    inspector: InspectorThread,
    tails: &Tails,
    outlets: Vec<Outlet>,
    publishers: &[Publisher],
    at_exit: &AtExit,
) -> Result<Result<(), Failure>, Failure> {
    let deadline = Instant::now() + DRAIN;
    let inspector_done = matches!(
        inspector.ended.recv_deadline(deadline),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    );
    let work = if inspector_done {
        inspector_loop::join(inspector.handle)
    } else {
        log::warn!("the inspector is blocked in a call; leaving it behind");
        Ok(())
    };
    // What waits for its log tail goes on (at most 250 ms), before the
    // queues are drained and the spools written.
    tails.finish(inspector_done);
    // With the inspector gone the queues' last senders are gone, and each
    // publisher ends once it has delivered everything; else wait while
    // anything is left to deliver.
    drop(outlets);
    if let Some(spools) = at_exit.get() {
        spools.drain(publishers, deadline, inspector_done);
        spools.close()?;
    }
    Ok(work)
}

/// `once` fails when events were not delivered: set aside rather than
/// stored (said first, with how many each sink refused), or left for the
/// next start (which sinks spooled how many; an event being spooled late
/// right now is waited for).
fn said_undelivered(at_exit: &AtExit, telemetry: &Telemetry) -> Result<(), Failure> {
    let aside: Vec<String> = telemetry
        .sinks
        .iter()
        .filter_map(|s| {
            let n = s.events_rejected.load(std::sync::atomic::Ordering::Relaxed);
            (n > 0).then(|| format!("the {} sink {n}", s.name))
        })
        .collect();
    let spooled: Vec<String> = at_exit
        .get()
        .into_iter()
        .flat_map(Spools::counts)
        .filter(|&(_, n)| n > 0)
        .map(|(sink, n)| format!("the {sink} sink {n}"))
        .collect();
    let mut said = Vec::new();
    if !aside.is_empty() {
        said.push(format!(
            "events set aside rather than delivered ({}); see rejected.jsonl, or the error log \
             without a state directory",
            aside.join(", ")
        ));
    }
    if !spooled.is_empty() {
        said.push(format!(
            "events not taken before the deadline ({}); they are spooled for the next start",
            spooled.join(", ")
        ));
    }
    if said.is_empty() {
        return Ok(());
    }
    Err(Failure::because(said.join("; ")))
}
