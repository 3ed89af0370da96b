//! The worker: the shell of I/O around the schedule and the tick core. It
//! carries out each `Action` the schedule decides — lists the records,
//! inspects a container, pings dockerd, saves the baselines — and hands the
//! answer back as an `Input`; it logs and counts each record's outcome
//! (`record_log`, with the per-game warnings), tells telemetry whether a
//! tick could see, reads the silences at each tick (`silences`), and
//! publishes events through the `emit` it is given.
//! Threads, channels and the exit are the daemon's.

mod record_log;
mod silences;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use crate::docker::{ContainerInspector, DockerError};
use crate::event::HealthEvent;
use crate::incident::Stamp;
use crate::inspector::{Inspector, Observation, RuntimeRecord};
use crate::logging::{WarnLimiter, held_back};
use crate::records::{RecordError, RecordSource};
use crate::schedule::{Action, Input, ListFor, Schedule, Settings, StateFile, TickEnd};
use crate::state::history::HistoryLog;
use crate::state::{StateDir, StateError};
use crate::status::live::{LiveBoard, Looks};
use crate::telemetry::{Stage, Telemetry};
use crate::tick::{Failure, FailureKind, InspectAnswer, InspectError, Reach, Summary};
use record_log::RecordLog;
pub(crate) use silences::{SilenceReader, SilencesFrom};

/// One warning a minute per cause while it lasts.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

/// The shell: the record source, the Docker client and the state directory,
/// with the logging and counting of every outcome.
pub struct Worker {
    source: Box<dyn RecordSource + Send>,
    docker: Box<dyn ContainerInspector + Send>,
    telemetry: Arc<Telemetry>,
    /// The socket, to name it in "cannot reach dockerd at …".
    docker_socket: PathBuf,
    /// Logs and counts the outcomes of each record.
    records: RecordLog,
    /// Per service: the record list, dockerd, the baselines file.
    service_warnings: WarnLimiter,
    /// Where baselines are saved.
    state: Option<StateDir>,
    /// Where every incident event is appended, with a state directory.
    history: Option<HistoryLog>,
    /// Each game's latest look, for the status page (with a listener).
    live: Option<Looks>,
    /// Why the last tick's records could not be listed.
    list_error: Option<RecordError>,
    /// The last tick's summary, so that a steady state logs at debug only.
    last: Option<Summary>,
    /// The silences, read at each tick when incidents are tracked.
    silences: Option<SilenceReader>,
}

/// What carrying out an action gave.
#[derive(Debug)]
pub(crate) enum Carried {
    /// The answer the schedule waits for.
    Answer(Input),
    /// Inputs to hand the schedule in this order, the answer it waits for
    /// last (the silences read at a tick, then its records).
    Answers(Vec<Input>),
    /// A tick ended: the status line for systemd, and whether its records
    /// could be listed.
    TickEnded {
        /// One line: records, events, and what fails.
        status: String,
        /// Whether the records could be listed.
        listed: bool,
    },
    /// Nothing to hand back.
    Nothing,
}

impl Worker {
    /// A worker; `docker_socket` names dockerd in messages.
    pub fn new(
        source: Box<dyn RecordSource + Send>,
        docker: Box<dyn ContainerInspector + Send>,
        telemetry: Arc<Telemetry>,
        docker_socket: &Path,
    ) -> Self {
        Worker {
            source,
            docker,
            telemetry: telemetry.clone(),
            docker_socket: docker_socket.to_owned(),
            records: RecordLog::new(telemetry, WARNING_PERIOD),
            service_warnings: WarnLimiter::new(WARNING_PERIOD),
            state: None,
            history: None,
            live: None,
            list_error: None,
            last: None,
            silences: None,
        }
    }

    /// Reads the silences with `reader` at each tick from now on.
    pub(crate) fn with_silences(mut self, reader: SilenceReader) -> Self {
        self.silences = Some(reader);
        self
    }

    /// Saves baselines to `state` from now on, and returns the ones saved
    /// there before: a restart that happens while rtinspect is down is then
    /// reported when it comes back.
    pub(crate) fn with_state(
        mut self,
        state: StateDir,
    ) -> Result<(Self, Inspector), crate::state::StateError> {
        let saved = state.load_baselines()?;
        if !saved.is_empty() {
            log::info!(
                "{} baselines restored from {}",
                saved.len(),
                state.path().display()
            );
        }
        self.history = Some(HistoryLog::new(state.path()));
        self.state = Some(state);
        Ok((self, Inspector::with_baselines(saved)))
    }

    /// Publishes each game's latest look to `board` from now on, for the
    /// status page.
    pub(crate) fn with_live(mut self, board: Arc<LiveBoard>) -> Self {
        self.live = Some(Looks::new(board));
        self
    }

    /// Publishes the looks, with what the tracker remembers now.
    fn publish_looks(&mut self, schedule: &Schedule) {
        let Some(live) = &mut self.live else {
            return;
        };
        let now = Stamp {
            wall: SystemTime::now(),
            mono: Instant::now(),
        };
        let memory = schedule.incidents().map(|t| t.saved(now));
        live.publish(memory.as_ref(), schedule.hold().silences());
    }

    /// What fails right now and since when, for `STATUS=`; `None` when all is well.
    fn failing(&self) -> Option<String> {
        let f = self.telemetry.tick_outcome().failing?;
        Some(format!(
            "{} since {}",
            f.what,
            crate::event::rfc3339_micros(f.since_wall)
        ))
    }

    /// Why the last tick's records could not be listed, taken.
    pub(crate) fn take_list_error(&mut self) -> Option<RecordError> {
        self.list_error.take()
    }

    /// One tick now, outside any loop: lists the records and inspects each
    /// with `inspector`'s baselines, handing each event to `emit`. Returns
    /// the tick's summary (or why the records could not be listed) and the
    /// baselines after it.
    pub fn tick_once(
        &mut self,
        inspector: Inspector,
        emit: &mut dyn FnMut(HealthEvent),
    ) -> (Result<Summary, RecordError>, Inspector) {
        let settings = Settings {
            interval: Duration::from_secs(3600),
            once: true,
            events: false,
            extended_facts: true,
            follow: crate::schedule::Follow::Database,
        };
        let mut schedule = Schedule::new(settings, inspector, Instant::now());
        let mut summary = None;
        loop {
            match schedule.next(Instant::now()) {
                Action::Stop | Action::Wait(_) => break,
                Action::TickEnded(end) => {
                    summary = end.summary;
                    self.carry_out(Action::TickEnded(end), &schedule, emit);
                }
                action => match self.carry_out(action, &schedule, emit) {
                    Carried::Answer(input) => schedule.on(input, Instant::now()),
                    Carried::Answers(inputs) => {
                        for input in inputs {
                            schedule.on(input, Instant::now());
                        }
                    }
                    Carried::TickEnded { .. } | Carried::Nothing => {}
                },
            }
        }
        let result = match (summary, self.list_error.take()) {
            (Some(s), _) => Ok(s),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(Summary::default()),
        };
        (result, schedule.into_inspector())
    }

    /// Carries out one action of `schedule`, handing each event to `emit`.
    pub(crate) fn carry_out(
        &mut self,
        action: Action,
        schedule: &Schedule,
        emit: &mut dyn FnMut(HealthEvent),
    ) -> Carried {
        match action {
            Action::List(purpose) => {
                // A tick reads the silences first: a change is in force
                // for every look of the tick.
                let silences = match (purpose, &mut self.silences) {
                    (ListFor::Tick, Some(reader)) => {
                        reader.read(self.source.as_mut(), SystemTime::now())
                    }
                    _ => None,
                };
                let listed = Input::Listed(self.list(purpose), SystemTime::now());
                match silences {
                    Some(silences) => Carried::Answers(vec![Input::Silences(silences), listed]),
                    None => Carried::Answer(listed),
                }
            }
            Action::Inspect(record) => {
                let inspected = self.docker.inspect(&record.container_id);
                if let Some(live) = &mut self.live {
                    let restarts = live.looked(&record, &inspected);
                    self.telemetry
                        .container_restarts
                        .fetch_add(restarts, Relaxed);
                }
                let answer = core_answer(inspected);
                Carried::Answer(Input::Answered(answer, SystemTime::now()))
            }
            Action::Ping => {
                Carried::Answer(Input::Pinged(self.docker.ping().map_err(|e| e.to_string())))
            }
            Action::Report(report) => {
                if let (Some(live), crate::tick::Outcome::Invalid(why)) =
                    (&mut self.live, &report.outcome)
                {
                    live.invalid(&report.record, format!("record skipped: {why}"));
                }
                self.records.handle(report, emit);
                Carried::Nothing
            }
            Action::SaveBaselines => {
                let Some(state) = &self.state else {
                    return Carried::Nothing;
                };
                let result = state.save_baselines(schedule.inspector().baselines());
                self.saved(StateFile::Baselines, result)
            }
            Action::Incident(event) => {
                if let Some(i) = event.incident.as_deref() {
                    // Counted whatever the sinks, and whichever take it.
                    if let Some(change) = event.change() {
                        self.telemetry.incident(i.kind, change);
                    }
                    log::info!(game_id = event.game_id.as_str(),
                        container_id = event.container_id.as_str(),
                        event_type = event.event_type.as_str(), incident_id = i.incident_id.as_str();
                        "{}: {} since {}, {} restarts in the window{}{}",
                        event.event_type, i.kind.as_str(), i.started_at, i.restarts_in_window,
                        if i.oom { ", out of memory" } else { "" },
                        if i.after_silence { ", after a silence" } else { "" });
                    self.remember(&event);
                    if let (Some(live), Some(reason)) = (&mut self.live, &i.reason) {
                        live.reason(&i.incident_id, reason);
                    }
                }
                emit(event);
                Carried::Nothing
            }
            Action::Silenced(change, until) => {
                self.telemetry.incidents_silenced.fetch_add(1, Relaxed);
                let event_type = crate::event::EventType::Incident(change.change).as_str();
                let why = match until {
                    Some(until) => format!(
                        "held back: the game is silenced until {}",
                        crate::silence::rfc3339(until)
                    ),
                    None => "not said: a silence held back its opening".to_owned(),
                };
                log::info!(game_id = change.game_id.as_str(),
                    container_id = change.container_id.as_str(),
                    event_type = event_type, incident_id = change.incident_id.as_str();
                    "{event_type}: {} since {}, {why}", change.kind.as_str(),
                    crate::event::rfc3339_micros(change.started_at));
                Carried::Nothing
            }
            Action::SaveIncidents => {
                let (Some(state), Some(tracker)) = (&self.state, schedule.incidents()) else {
                    return Carried::Nothing;
                };
                let now = Stamp {
                    wall: SystemTime::now(),
                    mono: Instant::now(),
                };
                let saved = tracker.saved(now);
                let result = state.save_incidents_held(&saved, &schedule.hold().saved());
                self.sync_history();
                // The board shows what was just saved: one copy of the
                // tracker's memory serves both.
                if let Some(live) = &mut self.live {
                    live.publish(Some(&saved), schedule.hold().silences());
                }
                self.saved(StateFile::Incidents, result)
            }
            Action::SaveEventCursor => {
                let (Some(state), Some(at)) = (&self.state, schedule.event_cursor()) else {
                    return Carried::Nothing;
                };
                let result = state.save_event_cursor(at);
                self.saved(StateFile::EventCursor, result)
            }
            Action::TickEnded(end) => {
                self.sync_history();
                self.publish_looks(schedule);
                self.tick_ended(end)
            }
            Action::Wait(_) | Action::Stop => Carried::Nothing,
        }
    }

    /// Appends an incident event to `history.jsonl`; a failure is warned
    /// about (once a minute) and the line is lost: the event itself goes on
    /// to the sinks, and the incidents are saved apart. That the file is
    /// written again is said at the sync that makes lines durable.
    fn remember(&mut self, event: &HealthEvent) {
        let Some(history) = &mut self.history else {
            return;
        };
        if let Err(e) = history.append(event.envelope().as_str()) {
            self.history_written(Err(e));
        }
    }

    /// Makes the appended lines durable, at the tick's save.
    fn sync_history(&mut self) {
        if let Some(history) = &mut self.history {
            // Only lines written and synced say the disk takes them again.
            match history.sync() {
                Ok(false) => {}
                synced => self.history_written(synced.map(drop)),
            }
        }
    }

    fn history_written(&mut self, result: Result<(), StateError>) {
        const CAUSE: &str = "history.jsonl";
        match result {
            Ok(()) => {
                if self.service_warnings.clear(CAUSE) {
                    log::info!("{CAUSE} is written again");
                }
            }
            Err(e) => {
                self.telemetry.state_save_failures.fetch_add(1, Relaxed);
                if let Some(held) = self.service_warnings.allow(CAUSE, Instant::now()) {
                    log::warn!(err:% = e;
                        "cannot append to {CAUSE}; `rtinspect history` will miss lines{}",
                        held_back(held));
                }
            }
        }
    }

    fn list(&mut self, purpose: ListFor) -> Option<Vec<RuntimeRecord>> {
        if purpose == ListFor::Nudges {
            let before = self.telemetry.busy().map(|(what, _)| what);
            self.telemetry.busy_with(
                Some("reading the records for Docker events"),
                Instant::now(),
            );
            let listed = self.source.records();
            self.telemetry.busy_with(before, Instant::now());
            return match listed {
                Ok(records) => Some(records),
                Err(e) => {
                    if let Some(held) = self.service_warnings.allow("records", Instant::now()) {
                        log::warn!(err:% = e;
                            "the records could not be read for Docker events; judging them \
                             against the records as last read{}", held_back(held));
                    }
                    None
                }
            };
        }
        self.telemetry
            .busy_with(Some("reading the records"), Instant::now());
        let listed = self.source.records();
        self.telemetry
            .busy_with(Some("inspecting the containers"), Instant::now());
        match listed {
            Ok(records) => {
                if self.service_warnings.clear("records") {
                    log::info!("the record list can be read again");
                }
                self.telemetry.records.store(records.len() as u64, Relaxed);
                self.records.forget_games_not_in(&records);
                if let Some(live) = &mut self.live {
                    live.listed(&records);
                }
                self.list_error = None;
                Some(records)
            }
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
                self.list_error = Some(e);
                None
            }
        }
    }

    /// Counts a tick, says whether it could see, and logs it (a steady state
    /// logs nothing at info: a tick like the last one is debug).
    fn tick_ended(&mut self, end: TickEnd) -> Carried {
        let now = Instant::now();
        self.telemetry.busy_with(None, now);
        self.telemetry.tick_duration.observe(now - end.started);
        self.telemetry
            .last_tick_unix_ms
            .store(crate::telemetry::unix_ms_now(), Relaxed);
        let Some(summary) = end.summary else {
            let status = "the record list could not be read";
            return Carried::TickEnded {
                status: match self.failing() {
                    Some(failing) => format!("{status}; {failing}"),
                    None => status.to_owned(),
                },
                listed: false,
            };
        };
        let docker_error = match &end.reach {
            Some(Reach::Reached) => {
                self.succeeded();
                None
            }
            Some(Reach::Unreachable(err)) => {
                let what = self.unreachable_docker();
                self.failed(Stage::Docker, &what, err);
                Some(err.as_str())
            }
            None => None,
        };
        if end.gave_up_on_docker
            && summary.skipped > 0
            && let Some(held) = self.service_warnings.allow("docker", now)
        {
            log::warn!(err = docker_error.unwrap_or("");
                "Docker is not answering; skipped the {} remaining records of this tick{}",
                summary.skipped, held_back(held));
        }
        if self.last.as_ref() != Some(&summary) {
            log::info!("tick: {summary}, {:?}", end.started.elapsed());
        } else {
            log::debug!("tick: {summary}, {:?}", end.started.elapsed());
        }
        self.last = Some(summary);
        let status = match self.failing() {
            Some(failing) => format!("{summary}; {failing}"),
            None => summary.to_string(),
        };
        Carried::TickEnded {
            status,
            listed: true,
        }
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

    /// Logs and counts how a write of the state directory went (written
    /// whole, fsynced, renamed); a failure goes back to the schedule, which
    /// tries again at the next tick.
    fn saved(&mut self, file: StateFile, result: Result<(), StateError>) -> Carried {
        let cause = file.name();
        match result {
            Ok(()) => {
                if self.service_warnings.clear(cause) {
                    log::info!("{cause} is saved again");
                }
                Carried::Nothing
            }
            Err(e) => {
                self.telemetry.state_save_failures.fetch_add(1, Relaxed);
                if let Some(held) = self.service_warnings.allow(cause, Instant::now()) {
                    log::warn!(err:% = e;
                        "cannot save {cause}; trying again at the next tick{}", held_back(held));
                }
                Carried::Answer(Input::SaveFailed(file))
            }
        }
    }
}

/// The Docker client's answer as the cores take it: what they tell apart,
/// and the client's words for the log.
pub(crate) fn core_answer(answer: Result<Observation, DockerError>) -> InspectAnswer {
    answer.map_err(|e| {
        let kind = match &e {
            DockerError::NotFound => return InspectError::NotFound,
            DockerError::InvalidId(_) => return InspectError::InvalidId,
            DockerError::Unreachable { .. } => FailureKind::NoSocket,
            DockerError::ConnectTimeout { .. } => FailureKind::SocketSilent,
            DockerError::Timeout(_) => FailureKind::Timeout,
            DockerError::Transport(_) => FailureKind::Broken,
            DockerError::Status { .. }
            | DockerError::TooLarge(_)
            | DockerError::Malformed(_)
            | DockerError::Unsupported(_) => FailureKind::BadAnswer,
        };
        InspectError::Failed(Failure::new(kind, e.to_string()))
    })
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
        let (r, _) = w.tick_once(Inspector::new(), &mut |e| events.push(e));
        (r, events)
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
