//! The worker: the shell of I/O around the tick core. It lists the records,
//! runs the tick core over them and takes the Docker events that concern one
//! record; it logs and counts each outcome, keeps the per-game warnings and
//! the record set events are matched against, tells telemetry whether the
//! tick could see, and saves the baselines. Threads, channels and the exit
//! are the daemon's.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use crate::docker::events::ContainerEvent;
use crate::docker::{ContainerInspector, DockerError};
use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::inspector::{Inspector, RuntimeRecord};
use crate::logging::{WarnLimiter, held_back};
use crate::records::{RecordError, RecordSource};
use crate::state::StateDir;
use crate::telemetry::{Stage, Telemetry};
use crate::tick::{self, Outcome, Skip, Summary};

/// One warning a minute per cause while it lasts.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

/// The inspector: the baselines, the record source and the Docker client,
/// with the logging and counting of every tick's outcomes.
pub struct Worker {
    inspector: Inspector,
    source: Box<dyn RecordSource + Send>,
    docker: Box<dyn ContainerInspector + Send>,
    telemetry: Arc<Telemetry>,
    /// The socket, to name it in "cannot reach dockerd at …".
    docker_socket: PathBuf,
    /// Logs and counts the outcomes of each record.
    records: RecordLog,
    /// Per service: the record list, dockerd, the baselines file.
    service_warnings: WarnLimiter,
    /// Where baselines are saved after each tick that changed them.
    state: Option<StateDir>,
    /// The records of the last tick that could list them: the set a Docker
    /// event is matched against.
    listed: Vec<RuntimeRecord>,
}

/// What is logged and counted per record, with what it remembers per game.
struct RecordLog {
    telemetry: Arc<Telemetry>,
    /// Per game and cause: a failing inspect, an invalid record.
    warnings: WarnLimiter,
    /// Games whose last look was an event: their next event is no news.
    unhealthy: HashSet<String>,
}

impl Worker {
    /// A worker with no baselines yet; `docker_socket` names dockerd in messages.
    pub fn new(
        source: Box<dyn RecordSource + Send>,
        docker: Box<dyn ContainerInspector + Send>,
        telemetry: Arc<Telemetry>,
        docker_socket: &Path,
    ) -> Self {
        Worker {
            inspector: Inspector::new(),
            source,
            docker,
            telemetry: telemetry.clone(),
            docker_socket: docker_socket.to_owned(),
            records: RecordLog {
                telemetry,
                warnings: WarnLimiter::new(WARNING_PERIOD),
                unhealthy: HashSet::new(),
            },
            service_warnings: WarnLimiter::new(WARNING_PERIOD),
            state: None,
            listed: Vec::new(),
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

    /// The counters this worker feeds.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The inspector state, for tests and persistence.
    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// What fails right now and since when, for `STATUS=`; `None` when all is well.
    pub fn failing(&self) -> Option<String> {
        let f = self.telemetry.tick_outcome().failing?;
        Some(format!(
            "{} since {}",
            f.what,
            crate::event::rfc3339_micros(f.since_wall)
        ))
    }

    /// One tick: lists the records and runs the tick core over them, logging
    /// and counting each outcome and handing each event to `emit`. A listing
    /// failure ends the tick untouched. Between records, `cancelled` is asked,
    /// and each Docker event `pending` has queued is taken at once (a tick of
    /// many records must not hold up a failure it has already passed).
    pub fn tick(
        &mut self,
        cancelled: &dyn Fn() -> bool,
        pending: &mut dyn FnMut() -> Option<ContainerEvent>,
        emit: &mut dyn FnMut(HealthEvent),
    ) -> Result<Summary, RecordError> {
        let started = Instant::now();
        let result = self.tick_inner(cancelled, pending, emit);
        self.telemetry.busy_with(None, Instant::now());
        self.save_baselines();
        self.telemetry.tick_duration.observe(started.elapsed());
        self.telemetry
            .last_tick_unix_ms
            .store(crate::telemetry::unix_ms_now(), Relaxed);
        result
    }

    fn tick_inner(
        &mut self,
        cancelled: &dyn Fn() -> bool,
        pending: &mut dyn FnMut() -> Option<ContainerEvent>,
        emit: &mut dyn FnMut(HealthEvent),
    ) -> Result<Summary, RecordError> {
        self.telemetry
            .busy_with(Some("reading the records"), Instant::now());
        let listed = self.source.records();
        self.telemetry
            .busy_with(Some("inspecting the containers"), Instant::now());
        let records = match listed {
            Ok(records) => records,
            Err(e) => {
                let (stage, what) = if e.is_docker() {
                    (Stage::Docker, self.unreachable_docker())
                } else {
                    (Stage::Records, "cannot read records".to_owned())
                };
                self.failed(stage, &what, &e.to_string());
                if let Some(held) = self.service_warnings.allow("records", Instant::now()) {
                    log::warn!(err:% = e;
                        "tick skipped: the record list could not be read{}", held_back(held));
                }
                return Err(e);
            }
        };
        if self.service_warnings.clear("records") {
            log::info!("the record list can be read again");
        }
        self.telemetry.records.store(records.len() as u64, Relaxed);
        self.records.forget_games_not_in(&records);

        let mut summary = Summary {
            records: records.len(),
            ..Summary::default()
        };
        // Whether any answer came from dockerd, and the last failure if none did.
        let mut reached = false;
        let mut docker_error: Option<String> = None;
        let Worker {
            inspector,
            docker,
            records: log,
            ..
        } = self;
        // Both callbacks log and emit, never at the same time.
        let log = RefCell::new(log);
        let emit = RefCell::new(emit);
        tick::tick(
            inspector,
            &records,
            &**docker,
            &SystemTime::now,
            &mut |inspector| {
                while let Some(event) = pending() {
                    let mut log = log.borrow_mut();
                    let mut emit = emit.borrow_mut();
                    take_event(
                        inspector,
                        &records,
                        &**docker,
                        &mut log,
                        &event,
                        &mut **emit,
                    );
                }
                cancelled()
            },
            &mut |record, outcome| {
                summary.count(&outcome);
                match outcome.reached_docker() {
                    Some(true) => reached = true,
                    Some(false) => {
                        if let Outcome::Failed(e) = &outcome {
                            docker_error = Some(e.to_string());
                        }
                    }
                    None => {}
                }
                log.borrow_mut()
                    .handle(record, outcome, &mut **emit.borrow_mut());
            },
        );

        // With no answer from any record (no records, only invalid ones, or
        // only inspects that hung), dockerd's `/_ping` says whether it can
        // be reached.
        if !reached {
            match self.docker.ping() {
                Ok(()) => reached = true,
                Err(e) => docker_error = Some(e.to_string()),
            }
        }
        if reached {
            self.succeeded();
        } else if let Some(err) = &docker_error {
            let what = self.unreachable_docker();
            self.failed(Stage::Docker, &what, err);
        }
        self.listed = records;
        if summary.skipped > 0
            && !cancelled()
            && let Some(held) = self.service_warnings.allow("docker", Instant::now())
        {
            log::warn!(err = docker_error.as_deref().unwrap_or("");
                    "Docker is not answering; skipped the {} remaining records of this tick{}",
                    summary.skipped, held_back(held));
        }
        Ok(summary)
    }

    /// Inspects at once the record a Docker event concerns, with exactly the
    /// rules of a tick; an event for a container not in the last listed
    /// records is ignored (`None`). `Some(true)` when the inspect led to a
    /// health event.
    pub fn nudge(
        &mut self,
        event: &ContainerEvent,
        emit: &mut dyn FnMut(HealthEvent),
    ) -> Option<bool> {
        let Worker {
            inspector,
            docker,
            records: log,
            listed,
            ..
        } = self;
        take_event(inspector, listed, &**docker, log, event, emit)
    }

    fn unreachable_docker(&self) -> String {
        format!("cannot reach dockerd at {}", self.docker_socket.display())
    }

    fn succeeded(&mut self) {
        self.telemetry
            .tick_succeeded(Instant::now(), SystemTime::now());
        if self.service_warnings.clear("docker") {
            log::info!("Docker answers again");
        }
    }

    fn failed(&self, stage: Stage, what: &str, detail: &str) {
        self.telemetry
            .tick_failed(stage, what, detail, Instant::now(), SystemTime::now());
    }

    fn save_baselines(&mut self) {
        let Some(state) = &self.state else { return };
        if !self.inspector.take_changed() {
            return;
        }
        if let Err(e) = state.save_baselines(self.inspector.baselines())
            && let Some(held) = self.service_warnings.allow("state", Instant::now())
        {
            log::warn!(err:% = e; "cannot save the baselines{}", held_back(held));
        }
    }
}

impl RecordLog {
    /// Drops what is kept per game for games no longer listed.
    fn forget_games_not_in(&mut self, records: &[RuntimeRecord]) {
        if self.unhealthy.is_empty() && self.warnings.is_empty() {
            return;
        }
        let listed: HashSet<&str> = records.iter().map(|r| r.game_id.as_str()).collect();
        self.unhealthy.retain(|g| listed.contains(g.as_str()));
        self.warnings
            .retain(|cause| listed.contains(cause.split_once('\0').map_or(cause, |(g, _)| g)));
    }

    /// Logs and counts one outcome; publishes an event.
    fn handle(
        &mut self,
        record: &RuntimeRecord,
        outcome: Outcome,
        emit: &mut dyn FnMut(HealthEvent),
    ) {
        let game_id = record.game_id.as_str();
        let container_id = record.container_id.as_str();
        let answered = matches!(
            outcome,
            Outcome::Event(..) | Outcome::Healthy | Outcome::Missing
        );
        // No allocation per answered record while nothing is being warned about.
        if answered
            && !self.warnings.is_empty()
            && self.warnings.clear(&per_game(game_id, "inspect"))
        {
            log::info!(game_id, container_id; "inspect works again");
        }
        match outcome {
            Outcome::Event(event, reasons) => {
                let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                // A game that turns unhealthy is news; the same game still
                // unhealthy at the next tick is only another event.
                if self.unhealthy.insert(game_id.to_owned()) {
                    log::info!(game_id, container_id, event_type = INSPECT_UNHEALTHY;
                        "unhealthy: {}", reasons.join(","));
                } else {
                    log::debug!(game_id, container_id, event_type = INSPECT_UNHEALTHY;
                        "still unhealthy: {}", reasons.join(","));
                }
                emit(event);
            }
            Outcome::Healthy => {
                if self.unhealthy.remove(game_id) {
                    log::info!(game_id, container_id; "healthy again");
                }
            }
            Outcome::Missing => {
                self.telemetry.inspect_error("not_found");
                log::debug!(game_id, container_id; "container missing");
            }
            Outcome::Invalid(why) => {
                self.telemetry.inspect_error("invalid_id");
                if let Some(held) = self
                    .warnings
                    .allow(&per_game(game_id, why.as_str()), Instant::now())
                {
                    log::warn!(game_id, container_id; "record skipped: {why}{}", held_back(held));
                }
            }
            Outcome::Failed(e) => {
                self.telemetry.inspect_error(e.kind());
                // A socket that cannot be connected to is dockerd's, warned
                // about once per tick, after it; anything else (a timeout
                // included) may be this one container's, warned about per game.
                let socket = matches!(
                    e,
                    DockerError::Unreachable { .. } | DockerError::ConnectTimeout { .. }
                );
                if !socket
                    && let Some(held) = self
                        .warnings
                        .allow(&per_game(game_id, "inspect"), Instant::now())
                {
                    log::warn!(game_id, container_id, err:% = e; "inspect failed{}", held_back(held));
                }
            }
            Outcome::Skipped(Skip::Shutdown | Skip::DockerDown) => {}
        }
    }
}

/// Inspects the record among `records` that a Docker event concerns, if
/// any, and logs and publishes the outcome, the event dated from the Docker
/// event's time for the detection latency. `Some(true)` when it led to a
/// health event; `None` when no record is concerned.
fn take_event(
    inspector: &mut Inspector,
    records: &[RuntimeRecord],
    docker: &dyn ContainerInspector,
    log: &mut RecordLog,
    event: &ContainerEvent,
    emit: &mut dyn FnMut(HealthEvent),
) -> Option<bool> {
    // A record names its container by full id, short id or name; the
    // baseline holds the full id its last inspect answered with.
    let concerned = records.iter().find(|r| {
        let c = r.container_id.trim_start_matches('/');
        (c.len() >= 12 && event.id.starts_with(c))
            || event.name.as_deref() == Some(c)
            || inspector
                .baseline(&r.game_id)
                .is_some_and(|b| b.container_id == event.id)
    });
    let Some(record) = concerned else {
        log::trace!(container_id = event.id.as_str(); "Docker event for another container: {}", event.action);
        return None;
    };
    log::debug!(game_id = record.game_id.as_str(), container_id = event.id.as_str();
        "Docker event: {}", event.action);
    let outcome = tick::inspect(inspector, record, docker, &SystemTime::now);
    let reported = matches!(outcome, Outcome::Event(..));
    log.handle(record, outcome, &mut |mut e: HealthEvent| {
        e.prompted_at = Some(event.at);
        emit(e)
    });
    Some(reported)
}

/// The warning cause of one game: the game id, a NUL, the cause.
fn per_game(game_id: &str, cause: &str) -> String {
    format!("{game_id}\0{cause}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{Answer, FakeDocker, FakeRecords};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn worker(records: &FakeRecords, docker: &FakeDocker) -> (Worker, Arc<Telemetry>) {
        let telemetry = Arc::new(Telemetry::default());
        let w = Worker::new(
            Box::new(records.clone()),
            Box::new(docker.clone()),
            telemetry.clone(),
            Path::new("/run/docker.sock"),
        );
        (w, telemetry)
    }

    fn tick(w: &mut Worker) -> (Result<Summary, RecordError>, Vec<HealthEvent>) {
        let mut events = Vec::new();
        let r = w.tick(&|| false, &mut || None, &mut |e| events.push(e));
        (r, events)
    }

    #[test]
    fn a_docker_event_during_a_tick_is_taken_between_its_records() {
        let records = FakeRecords::new(vec![
            RuntimeRecord::new("g-a", "ca"),
            RuntimeRecord::new("g-b", "cb"),
        ]);
        let docker = FakeDocker::new().default_answer(Answer::running(A, 0, ""));
        let (mut w, _) = worker(&records, &docker);
        tick(&mut w).0.unwrap();
        // During the next tick, after g-a's look, g-a's container restarts.
        let mut calls = 0;
        let docker_in = docker.clone();
        let mut pending = || {
            calls += 1;
            (calls == 2).then(|| {
                docker_in.set("ca", Answer::running(A, 1, ""));
                ContainerEvent {
                    id: A.into(),
                    name: None,
                    action: "die".into(),
                    at: SystemTime::UNIX_EPOCH,
                }
            })
        };
        let mut events = Vec::new();
        w.tick(&|| false, &mut pending, &mut |e| events.push(e))
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].game_id, "g-a");
        assert_eq!(events[0].restart_count, 1);
        assert_eq!(events[0].prompted_at, Some(SystemTime::UNIX_EPOCH));
        assert_eq!(
            docker.asked(),
            vec!["ca", "cb", "ca", "ca", "cb"],
            "the event's record was inspected before the tick went on"
        );
    }

    #[test]
    fn counts_follow_the_outcomes() {
        let records = FakeRecords::new(vec![
            RuntimeRecord::new("g-stop", "stop"),
            RuntimeRecord::new("g-gone", "gone"),
            RuntimeRecord::new("g-bad", "../x"),
            RuntimeRecord::new("g-boom", "boom"),
        ]);
        let docker = FakeDocker::new()
            .answer("stop", Answer::status(A, 0, "exited"))
            .answer("boom", Answer::Status(500));
        let (mut w, t) = worker(&records, &docker);
        let (summary, events) = tick(&mut w);
        let summary = summary.unwrap();
        assert_eq!(
            (
                summary.records,
                summary.events,
                summary.missing,
                summary.errors
            ),
            (4, 1, 1, 2)
        );
        assert_eq!(events.len(), 1);
        assert_eq!(t.inspect_errors_of("not_found"), 1);
        assert_eq!(t.inspect_errors_of("invalid_id"), 1);
        assert_eq!(t.inspect_errors_of("docker"), 1);
        assert_eq!(t.tick_duration.snapshot().count, 1);
        assert_eq!(w.failing(), None, "dockerd answered");
    }

    #[test]
    fn unreadable_records_fail_the_tick_at_the_records_stage() {
        let records = FakeRecords::new(Vec::new());
        records.set(None);
        let (mut w, t) = worker(&records, &FakeDocker::new());
        assert!(tick(&mut w).0.is_err());
        assert_eq!(t.tick_failures[Stage::Records as usize].load(Relaxed), 1);
        assert!(
            w.failing()
                .unwrap()
                .starts_with("cannot read records since ")
        );
        records.set(Some(Vec::new()));
        assert!(tick(&mut w).0.is_ok());
        assert_eq!(w.failing(), None);
    }

    #[test]
    fn with_no_records_dockerd_is_pinged() {
        let records = FakeRecords::new(Vec::new());
        let docker = FakeDocker::new();
        docker.set_ping(Some(Answer::Unreachable));
        let (mut w, t) = worker(&records, &docker);
        assert!(tick(&mut w).0.is_ok());
        assert_eq!(t.tick_failures[Stage::Docker as usize].load(Relaxed), 1);
        let failing = w.failing().unwrap();
        assert!(
            failing.starts_with("cannot reach dockerd at /run/docker.sock since "),
            "{failing}"
        );
        docker.set_ping(None);
        tick(&mut w).0.unwrap();
        assert_eq!(w.failing(), None);
    }

    #[test]
    fn a_failure_streak_keeps_its_start() {
        let records = FakeRecords::new(vec![RuntimeRecord::new("g", "c0")]);
        let docker = FakeDocker::new().default_answer(Answer::Timeout);
        docker.set_ping(Some(Answer::Timeout));
        let (mut w, t) = worker(&records, &docker);
        tick(&mut w).0.unwrap();
        let first = w.failing().unwrap();
        tick(&mut w).0.unwrap();
        assert_eq!(w.failing().unwrap(), first);
        assert_eq!(t.tick_failures[Stage::Docker as usize].load(Relaxed), 2);
    }

    #[test]
    fn only_invalid_records_still_check_dockerd() {
        let records = FakeRecords::new(vec![RuntimeRecord::new("", "c0")]);
        let docker = FakeDocker::new();
        docker.set_ping(Some(Answer::Unreachable));
        let (mut w, _) = worker(&records, &docker);
        tick(&mut w).0.unwrap();
        assert!(w.failing().is_some());
        assert!(docker.asked().is_empty());
    }

    #[test]
    fn per_game_warnings_are_forgotten_with_the_game() {
        let records = FakeRecords::new(vec![
            RuntimeRecord::new("g-bad", ""),
            RuntimeRecord::new("g-boom", "boom"),
        ]);
        let docker = FakeDocker::new().answer("boom", Answer::Status(500));
        let (mut w, _) = worker(&records, &docker);
        tick(&mut w).0.unwrap();
        assert!(!w.records.warnings.is_empty());
        records.set(Some(Vec::new()));
        tick(&mut w).0.unwrap();
        assert!(w.records.warnings.is_empty());
    }
}
