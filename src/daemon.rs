//! The daemon: one tick over the three seams (record source, Docker, publish
//! queue), the inspector loop, and the threads of `run` and `once`.
//!
//! Inspections are sequential on purpose: fanning out against the Docker
//! daemon would make the watcher the noisiest client on a small host.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, TrySendError};

use crate::config::{Command, Config, SinkKind};
use crate::docker::{ContainerInspector, DockerClient, DockerError};
use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::inspector::{Inspector, RuntimeRecord};
use crate::logging::WarnLimiter;
use crate::metrics::{self, HealthInputs};
use crate::postgres::{Connector, PgRecords, PgSink};
use crate::publisher::{self, Delivery, EventSink, PublisherOptions, StdoutSink};
use crate::records::{LabelRecords, RecordError, RecordSource};
use crate::shutdown::{self, Shutdown};
use crate::state::StateDir;
use crate::telemetry::Telemetry;

/// How many events may wait for the sink before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// After this many timeouts in a row the daemon is taken to be hung, and the
/// rest of the tick is skipped: a tick costs a few timeouts, not one per record.
const TIMEOUTS_BEFORE_GIVING_UP: usize = 3;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Records listed.
    pub records: usize,
    /// Events emitted.
    pub events: usize,
    /// Records skipped because their container is gone (404).
    pub missing: usize,
    /// Records skipped for any other error, invalid ids included.
    pub errors: usize,
    /// Records not inspected because shutdown was requested or Docker failed.
    pub skipped: usize,
}

impl std::fmt::Display for TickReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records, {} events, {} missing, {} errors",
            self.records, self.events, self.missing, self.errors
        )
    }
}

/// The inspector with its record source, its Docker client and its counters.
pub struct Worker {
    inspector: Inspector,
    source: Box<dyn RecordSource + Send>,
    docker: Box<dyn ContainerInspector + Send>,
    shutdown: Shutdown,
    telemetry: Arc<Telemetry>,
    /// Inspect failures, per game.
    warnings: WarnLimiter,
    /// Failures of a whole service: Docker not answering, baselines not saved.
    service_warnings: WarnLimiter,
    /// Where baselines are saved after each tick that changed them.
    state: Option<StateDir>,
}

/// One warning a minute per cause while it lasts.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

impl Worker {
    /// A worker with no baselines yet.
    pub fn new(
        source: Box<dyn RecordSource + Send>,
        docker: Box<dyn ContainerInspector + Send>,
        shutdown: Shutdown,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Worker {
            inspector: Inspector::new(),
            source,
            docker,
            shutdown,
            telemetry,
            warnings: WarnLimiter::new(WARNING_PERIOD),
            service_warnings: WarnLimiter::new(WARNING_PERIOD),
            state: None,
        }
    }

    /// Starts from the baselines saved in `state`, and saves them there after
    /// every tick that changed them: a restart that happens while rtinspect
    /// is down is then reported when it comes back.
    pub fn with_state(mut self, state: StateDir) -> Result<Self, crate::state::StateError> {
        let saved = state.load_baselines()?;
        if !saved.is_empty() {
            log::info!(
                "{} baselines restored from {}",
                saved.len(),
                state.path().display()
            );
        }
        self.inspector = Inspector::with_baselines(saved);
        self.state = Some(state);
        Ok(self)
    }

    /// The inspector state, for tests and persistence.
    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// One tick, per the SPEC: list, prune, inspect each record in order,
    /// hand each event to `emit`. A listing failure ends the tick untouched.
    pub fn tick(&mut self, emit: &mut dyn FnMut(HealthEvent)) -> Result<TickReport, RecordError> {
        let started = Instant::now();
        let result = self.tick_inner(emit);
        self.save_baselines();
        self.telemetry.tick_duration.observe(started.elapsed());
        self.telemetry.ticks.fetch_add(1, Relaxed);
        self.telemetry
            .last_tick_unix_ms
            .store(crate::telemetry::unix_ms_now(), Relaxed);
        result
    }

    fn save_baselines(&mut self) {
        let Some(state) = &self.state else { return };
        if !self.inspector.take_changed() {
            return;
        }
        if let Err(e) = state.save_baselines(self.inspector.baselines()) {
            if let Some(held) = self.service_warnings.allow("state", Instant::now()) {
                log::warn!(err:% = e; "cannot save the baselines{}", held_back(held));
            }
        }
    }

    fn tick_inner(&mut self, emit: &mut dyn FnMut(HealthEvent)) -> Result<TickReport, RecordError> {
        let records = self.source.records()?;
        self.telemetry.records.store(records.len() as u64, Relaxed);
        self.inspector.prune(&records);

        let mut report = TickReport {
            records: records.len(),
            ..TickReport::default()
        };
        let mut timeouts_in_a_row = 0;
        for (i, record) in records.iter().enumerate() {
            if self.shutdown.is_requested() {
                report.skipped = records.len() - i;
                break;
            }
            match self.inspect(record) {
                Inspected::Event(event) => {
                    report.events += 1;
                    timeouts_in_a_row = 0;
                    emit(event);
                }
                Inspected::Healthy => timeouts_in_a_row = 0,
                Inspected::Missing => {
                    report.missing += 1;
                    timeouts_in_a_row = 0;
                }
                Inspected::Failed(e) => {
                    report.errors += 1;
                    let unreachable = matches!(e, DockerError::Unreachable { .. });
                    if matches!(e, DockerError::Timeout(_)) {
                        timeouts_in_a_row += 1;
                    }
                    if unreachable || timeouts_in_a_row >= TIMEOUTS_BEFORE_GIVING_UP {
                        report.skipped = records.len() - i - 1;
                        if let Some(held) = self.service_warnings.allow("docker", Instant::now()) {
                            log::warn!(err:% = e;
                                "Docker is not answering; skipping the {} remaining records of this tick{}",
                                report.skipped, held_back(held));
                        }
                        break;
                    }
                }
                Inspected::Invalid => report.errors += 1,
            }
        }
        Ok(report)
    }

    fn inspect(&mut self, record: &RuntimeRecord) -> Inspected {
        let game_id = record.game_id.as_str();
        let container_id = record.container_id.as_str();
        let result = self.docker.inspect(container_id);
        if result.is_ok() || matches!(result, Err(DockerError::NotFound)) {
            if self.warnings.clear(game_id) {
                log::info!(game_id, container_id; "inspect works again");
            }
            if self.service_warnings.clear("docker") {
                log::info!("Docker answers again");
            }
        }
        match result {
            Ok(observation) => match self.inspector.observe(game_id, observation) {
                Some(finding) => {
                    let reasons: Vec<&str> = finding.reasons.iter().map(|r| r.as_str()).collect();
                    log::debug!(game_id, container_id, event_type = INSPECT_UNHEALTHY;
                        "unhealthy: {}", reasons.join(","));
                    Inspected::Event(HealthEvent::from_finding(finding, SystemTime::now()))
                }
                None => Inspected::Healthy,
            },
            Err(DockerError::NotFound) => {
                self.telemetry.inspect_error("not_found");
                log::debug!(game_id, container_id; "container missing");
                Inspected::Missing
            }
            Err(DockerError::InvalidId(_)) => {
                self.telemetry.inspect_error("invalid_id");
                log::warn!(game_id, container_id; "record skipped: container id is empty or not a Docker id or name");
                Inspected::Invalid
            }
            Err(e) => {
                self.telemetry.inspect_error(e.kind());
                if let Some(held) = self.warnings.allow(game_id, Instant::now()) {
                    log::warn!(game_id, container_id, err:% = e; "inspect failed{}", held_back(held));
                }
                Inspected::Failed(e)
            }
        }
    }
}

/// ` (N like it held back)` for a rate-limited warning, or nothing.
fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it held back)")
    }
}

enum Inspected {
    Event(HealthEvent),
    Healthy,
    Missing,
    Invalid,
    Failed(DockerError),
}

/// Why the process ends unsuccessfully; each maps to an exit status.
#[derive(Debug)]
pub enum Failure {
    /// Exit 64: the configuration cannot work.
    Usage(String),
    /// Exit 1: the work failed.
    Runtime(String),
}

/// How long an idle Docker connection is kept: across one interval, so each
/// tick reuses the last tick's connection.
fn keep_idle(interval: Duration) -> Duration {
    (interval * 2 + Duration::from_secs(5)).min(Duration::from_secs(900))
}

/// The PostgreSQL connector, its CA file read now: a bad one is bad configuration.
fn pg_connector(db: &crate::config::Database) -> Result<Connector, Failure> {
    Connector::new(db.clone()).map_err(|e| Failure::Usage(e.to_string()))
}

fn build_sink(config: &Config) -> Result<Box<dyn EventSink>, Failure> {
    Ok(match (config.sink, &config.database) {
        (SinkKind::Postgres, Some(db)) => Box::new(PgSink::new(
            pg_connector(db)?,
            config.events_table.clone(),
            config.notify_channel.clone(),
        )),
        // Config validation refuses the postgres sink without a database.
        _ => Box::new(StdoutSink::stdout()),
    })
}

fn build_source(
    config: &Config,
    docker: &DockerClient,
) -> Result<Box<dyn RecordSource + Send>, Failure> {
    Ok(match &config.database {
        None => Box::new(LabelRecords::new(docker.clone(), config.label.clone())),
        Some(db) => Box::new(PgRecords::new(
            pg_connector(db)?,
            config.records_table.clone(),
        )),
    })
}

/// `rtinspect migrate`: creates what is missing and says what it did on stdout.
fn migrate(config: &Config) -> Result<(), Failure> {
    let Some(db) = &config.database else {
        return Err(Failure::Usage(
            "migrate needs a database: set --database-url or RTINSPECT_DATABASE_URL".into(),
        ));
    };
    let steps = crate::postgres::migrate(
        &pg_connector(db)?,
        &config.records_table,
        &config.events_table,
    )
    .map_err(|e| Failure::Runtime(e.to_string()))?;
    for step in steps {
        println!("{step}");
    }
    Ok(())
}

/// Runs `run`, `once` or `migrate` with the given configuration until done.
pub fn run(config: &Config) -> Result<(), Failure> {
    if config.command == Command::Migrate {
        return migrate(config);
    }
    let telemetry = Arc::new(Telemetry::default());
    let docker = DockerClient::new(
        &config.docker_socket,
        config.docker_timeout,
        keep_idle(config.interval),
    );
    let source = build_source(config, &docker)?;
    let sink = build_sink(config)?;
    let state = match &config.state_dir {
        None => None,
        Some(dir) => Some(StateDir::open(dir).map_err(|e| {
            Failure::Usage(format!(
                "invalid state directory (--state-dir or STATE_DIRECTORY): {e}"
            ))
        })?),
    };

    let (trigger, shutdown) = shutdown::channel();
    let signals = shutdown::watch_signals(trigger.clone())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let (events, queue) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let metrics = match config.metrics_addr {
        None => None,
        Some(addr) => {
            let depth = queue.clone();
            let inputs = HealthInputs {
                interval: config.interval,
                started_unix_ms: crate::telemetry::unix_ms_now(),
                queue_depth: Box::new(move || depth.len()),
            };
            Some(metrics::serve(addr, telemetry.clone(), inputs).map_err(Failure::Runtime)?)
        }
    };
    let publisher = publisher::spawn(
        sink,
        queue,
        shutdown.clone(),
        PublisherOptions::default(),
        telemetry.clone(),
    )
    .map_err(|e| Failure::Runtime(format!("cannot start the publisher thread: {e}")))?;
    let mut worker = Worker::new(
        source,
        Box::new(docker),
        shutdown.clone(),
        telemetry.clone(),
    );
    if let Some(state) = &state {
        worker = worker
            .with_state(state.clone())
            .map_err(|e| Failure::Runtime(format!("reading the saved baselines: {e}")))?;
        let spooled = state
            .load_spool()
            .map_err(|e| Failure::Runtime(format!("reading the spool: {e}")))?;
        if !spooled.is_empty() {
            log::info!("publishing {} spooled events first", spooled.len());
        }
        for event in spooled {
            // The publisher is running: this waits for room, it cannot block for good.
            let _ = events.send(event);
        }
    }

    let work = match config.command {
        Command::Once => once(&mut worker, events),
        _ => {
            log::info!(interval:? = config.interval, socket:% = config.docker_socket.display();
                "rtinspect {} started", env!("CARGO_PKG_VERSION"));
            let inspector = spawn_inspector(worker, events, config.interval)
                .map_err(|e| Failure::Runtime(format!("cannot start the inspector thread: {e}")))?;
            join(inspector);
            Ok(())
        }
    };

    // The inspector is done: whatever is queued now gets the drain deadline.
    trigger.trigger();
    let delivery = join(publisher);
    signals.stop();
    if let Some(metrics) = metrics {
        metrics.stop();
    }
    let spooled = keep_undelivered(&delivery, state.as_ref())?;
    if spooled > 0 && config.command == Command::Once {
        return Err(Failure::Runtime(format!(
            "the sink refused {spooled} events; they are spooled for the next start"
        )));
    }
    work
}

fn once(worker: &mut Worker, events: Sender<HealthEvent>) -> Result<(), Failure> {
    // `once` has no next tick to protect: it waits for queue room rather than drop.
    let mut emit = |event: HealthEvent| {
        let _ = events.send(event);
    };
    match worker.tick(&mut emit) {
        Ok(report) => {
            log::info!("tick: {report}");
            Ok(())
        }
        Err(e) => Err(Failure::Runtime(e.to_string())),
    }
}

fn spawn_inspector(
    mut worker: Worker,
    events: Sender<HealthEvent>,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("inspector".into())
        .spawn(move || {
            let telemetry = worker.telemetry.clone();
            let mut emit = |event: HealthEvent| offer(&events, event, &telemetry);
            let mut last_records = None;
            let mut listing = WarnLimiter::new(WARNING_PERIOD);
            loop {
                let started = Instant::now();
                match worker.tick(&mut emit) {
                    Ok(report) => {
                        if listing.clear("records") {
                            log::info!("the record list can be read again");
                        }
                        let changed = last_records != Some(report.records);
                        last_records = Some(report.records);
                        if changed || report.events > 0 || report.errors > 0 {
                            log::info!("tick: {report}, {:?}", started.elapsed());
                        } else {
                            log::debug!(
                                "tick: {} records, no change, {:?}",
                                report.records,
                                started.elapsed()
                            );
                        }
                    }
                    Err(e) => {
                        if let Some(held) = listing.allow("records", Instant::now()) {
                            log::warn!(err:% = e;
                                "tick skipped: the record list could not be read{}", held_back(held));
                        }
                    }
                }
                if worker
                    .shutdown
                    .wait(interval.saturating_sub(started.elapsed()))
                {
                    break;
                }
            }
            log::info!("inspector stopped");
        })
}

/// Offers an event to the publisher without waiting; a full queue drops it,
/// counted and logged.
fn offer(events: &Sender<HealthEvent>, event: HealthEvent, telemetry: &Telemetry) {
    match events.try_send(event) {
        Ok(()) => {}
        Err(TrySendError::Full(event)) => {
            telemetry.events_dropped.fetch_add(1, Relaxed);
            log::error!(game_id = event.game_id.as_str(), container_id = event.container_id.as_str(),
                event_type = INSPECT_UNHEALTHY; "publish queue full ({QUEUE_CAPACITY}): event dropped");
        }
        Err(TrySendError::Disconnected(event)) => {
            telemetry.events_dropped.fetch_add(1, Relaxed);
            log::error!(game_id = event.game_id.as_str(), container_id = event.container_id.as_str(),
                event_type = INSPECT_UNHEALTHY; "publisher is gone: event dropped");
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

/// Saves what the publisher could not deliver to the spool (and clears a
/// spool whose events were all delivered); without a state directory, or when
/// the spool cannot be written, each envelope goes to the error log whole and
/// the exit is a failure. Returns how many events were spooled.
fn keep_undelivered(delivery: &Delivery, state: Option<&StateDir>) -> Result<usize, Failure> {
    let undelivered = &delivery.undelivered;
    if let Some(state) = state {
        match state.save_spool(undelivered) {
            Ok(()) => {
                if !undelivered.is_empty() {
                    log::warn!(
                        "{} undelivered events spooled to {}; they are published at the next start",
                        undelivered.len(),
                        state.path().display()
                    );
                }
                return Ok(undelivered.len());
            }
            Err(e) => log::error!(err:% = e; "cannot write the spool"),
        }
    }
    if undelivered.is_empty() {
        return Ok(0);
    }
    // Nothing is dropped silently: each envelope goes to the log, whole.
    for event in undelivered {
        log::error!(game_id = event.game_id.as_str(), container_id = event.container_id.as_str(),
            event_type = INSPECT_UNHEALTHY, envelope = event.envelope.as_str();
            "event not delivered before exit");
    }
    Err(Failure::Runtime(format!(
        "{} events could not be delivered before the drain deadline (their envelopes are in the log)",
        undelivered.len()
    )))
}
