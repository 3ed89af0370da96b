//! The schedule under a fake clock, fake Docker and fake records: ticks,
//! saves, shutdown and incidents.

use super::*;
use crate::event::HealthEvent;
use crate::fakes::{Answer, FakeDocker};
use crate::inspector::Observation;
use crate::tick::Outcome;
use std::time::UNIX_EPOCH;

mod incidents;
mod nudges;
mod silences;

/// Full container ids: `id(1)` is `1111…` (64 hex digits).
fn id(n: u8) -> String {
    char::from_digit(u32::from(n), 16)
        .unwrap()
        .to_string()
        .repeat(64)
}

fn rec(game: &str, n: u8) -> RuntimeRecord {
    RuntimeRecord::new(game, id(n))
}

fn ev(n: u8, action: &str, game: Option<&str>) -> ContainerEvent {
    ContainerEvent {
        id: id(n),
        name: None,
        action: ContainerAction::parse(action).expect("an action followed"),
        at: UNIX_EPOCH,
        game: game.map(str::to_owned),
        exit_code: None,
        signal: None,
        podman: false,
        replayed: false,
    }
}

/// A schedule with fakes around it and a clock of its own: each
/// inspect takes `inspect_ms`, each list 1 ms; what it did, in words.
struct Run {
    schedule: Schedule,
    docker: FakeDocker,
    records: Option<Vec<RuntimeRecord>>,
    t0: Instant,
    now: Instant,
    inspect_ms: u64,
    list_ms: u64,
    /// Events delivered during an inspect, as Docker would send them.
    during_inspect: Vec<ContainerEvent>,
    /// An event delivered during every inspect (a flood).
    flood: Option<ContainerEvent>,
    log: Vec<String>,
    reads: usize,
    /// Ticks begun.
    ticks: usize,
    /// How far the wall clock has been stepped from the schedule's, in
    /// seconds (the monotonic clock is never stepped).
    wall_step: i64,
    /// Whether writes of the state directory fail.
    saves_fail: bool,
    /// The incidents' events, in full.
    incidents: Vec<HealthEvent>,
    /// The facts, in full.
    facts: Vec<HealthEvent>,
}

impl Run {
    fn new(follow: Follow, events: bool, records: Vec<RuntimeRecord>) -> Run {
        let t0 = Instant::now();
        let settings = Settings {
            interval: Duration::from_secs(15),
            once: false,
            events,
            extended_facts: true,
            follow,
        };
        Run {
            schedule: Schedule::new(settings, Inspector::new(), t0),
            docker: FakeDocker::new(),
            records: Some(records),
            t0,
            now: t0,
            inspect_ms: 1,
            list_ms: 1,
            during_inspect: Vec::new(),
            flood: None,
            log: Vec::new(),
            reads: 0,
            ticks: 0,
            wall_step: 0,
            saves_fail: false,
            incidents: Vec::new(),
            facts: Vec::new(),
        }
    }

    fn once(records: Vec<RuntimeRecord>) -> Run {
        let mut r = Run::new(Follow::Database, false, records);
        r.schedule.settings.once = true;
        r
    }

    fn answer(&self, n: u8, answer: Answer) {
        self.docker.set(&id(n), answer);
    }

    fn input(&mut self, input: Input) {
        self.schedule.on(input, self.now);
    }

    fn nudge(&mut self, e: ContainerEvent) {
        self.input(Input::Docker(e, UNIX_EPOCH));
    }

    /// The wall clock: the schedule's, stepped by `wall_step`.
    fn wall(&self) -> SystemTime {
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000) + (self.now - self.t0);
        let step = Duration::from_secs(self.wall_step.unsigned_abs());
        if self.wall_step < 0 {
            at - step
        } else {
            at + step
        }
    }

    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    /// Carries out actions until the clock passes `until_ms` with
    /// nothing decided left to hand out, or the schedule waits past it
    /// (the clock then stands at `until_ms`), or it stops.
    fn until(&mut self, until_ms: u64) -> &mut Run {
        let end = self.t0 + Duration::from_millis(until_ms);
        loop {
            if self.now >= end && !self.schedule.out.is_empty() {
                // What was decided is handed out before the clock stops.
            } else if self.now >= end && matches!(self.schedule.busy, Busy::Idle) {
                return self;
            }
            match self.schedule.next(self.now) {
                Action::List(why) => {
                    self.reads += 1;
                    self.ticks += usize::from(why == ListFor::Tick);
                    self.log.push(format!("list {why:?}").to_lowercase());
                    self.now += Duration::from_millis(self.list_ms);
                    let listed = self.records.clone();
                    self.input(Input::Listed(listed, self.wall()));
                }
                Action::Inspect(r) => {
                    self.log.push(format!("inspect {}", r.game_id));
                    let answer = self.docker.answer_to(&r.container_id);
                    self.now += Duration::from_millis(self.inspect_ms);
                    for e in std::mem::take(&mut self.during_inspect) {
                        self.nudge(e);
                    }
                    if let Some(e) = self.flood.clone() {
                        self.nudge(e);
                    }
                    // The wall clock moves with the schedule's.
                    let at = self.wall();
                    self.input(Input::Answered(answer, at));
                }
                Action::Ping => {
                    self.log.push("ping".into());
                    let p = self.docker.pinged();
                    self.input(Input::Pinged(p));
                }
                Action::Report(r) if matches!(r.outcome, Outcome::Event(..)) => {
                    if let Outcome::Event(e, _) = &r.outcome {
                        self.facts.push(e.clone());
                        self.log.push(format!(
                            "{} event {}{}",
                            r.record.game_id,
                            e.state,
                            if r.prompt.is_some() { " (nudged)" } else { "" }
                        ));
                    }
                }
                Action::Report(r) => self.log.push(match &r.outcome {
                    Outcome::Event(e, _) => format!(
                        "{} event {}{}",
                        r.record.game_id,
                        e.state,
                        if r.prompt.is_some() { " (nudged)" } else { "" }
                    ),
                    Outcome::Healthy => format!("{} healthy", r.record.game_id),
                    Outcome::Missing => format!("{} missing", r.record.game_id),
                    Outcome::Failed(e) => format!("{} failed {}", r.record.game_id, e.as_str()),
                    Outcome::Invalid(_) => format!("{} invalid", r.record.game_id),
                    Outcome::Skipped(_) => format!("{} skipped", r.record.game_id),
                }),
                Action::SaveBaselines => {
                    self.log.push("save".into());
                    if self.saves_fail {
                        self.input(Input::SaveFailed(StateFile::Baselines));
                    }
                }
                Action::Incident(e) => {
                    self.log.push(format!(
                        "{} {} {}",
                        e.game_id,
                        e.event_type,
                        e.incident.as_ref().map_or("", |i| i.kind.as_str())
                    ));
                    self.incidents.push(e);
                }
                Action::Silenced(c, _) => self.log.push(format!(
                    "{} held {}",
                    c.game_id,
                    crate::event::EventType::Incident(c.change).as_str()
                )),
                // Every event moves it; the tests of saves count the others.
                Action::SaveEventCursor => {}
                Action::SaveIncidents => {
                    self.log.push("save incidents".into());
                    if self.saves_fail {
                        self.input(Input::SaveFailed(StateFile::Incidents));
                    }
                }
                Action::TickEnded(end) => {
                    self.log.push(match end.summary {
                        Some(s) => format!("tick ended: {s}"),
                        None => "tick ended: no records".into(),
                    });
                }
                Action::Wait(until) => {
                    if until >= end {
                        self.now = self.now.max(end);
                        return self;
                    }
                    self.now = until.max(self.now);
                }
                Action::Stop => {
                    self.log.push("stop".into());
                    return self;
                }
            }
        }
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }
}

fn running(n: u8, restarts: u64) -> Answer {
    Answer::running(&id(n), restarts, "")
}

#[test]
fn every_record_s_container_is_remembered_however_many_records() {
    // More records than the classifier of ends keeps of other containers:
    // a tick forgets none of the containers it looks at.
    let n = crate::ending::MAX_CONTAINERS + 100;
    let ids: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
    let records = ids
        .iter()
        .enumerate()
        .map(|(i, id)| RuntimeRecord::new(format!("g{i}"), id.clone()))
        .collect();
    let mut r = Run::once(records);
    for id in &ids {
        r.docker.set(id, Answer::running(id, 0, ""));
    }
    r.until(60_000);
    assert_eq!(r.log.last().map(String::as_str), Some("stop"));
    let forgotten = ids.iter().filter(|id| !r.schedule.endings.remembers(id));
    assert_eq!(forgotten.count(), 0);
}

#[test]
fn the_first_tick_waits_for_the_subscription_at_most_two_seconds() {
    let mut r = Run::new(Follow::Database, true, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    assert!(r.until(1999).take_log().is_empty(), "waits for the stream");
    r.until(2001);
    assert_eq!(r.log[0], "list tick");
    let mut r = Run::new(Follow::Database, true, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(500);
    r.input(Input::Subscribed);
    r.until(600);
    assert_eq!(
        r.log,
        vec![
            "list tick",
            "inspect g",
            "g healthy",
            "tick ended: 1 records, 0 events, 0 missing, 0 errors",
            "save"
        ]
    );
}

#[test]
fn every_wait_is_for_a_time_to_come_while_the_first_tick_waits_for_the_stream() {
    // An event of an unknown container before the first tick: its read
    // of the records is due at once, not after a busy wait.
    let mut r = Run::new(Follow::Database, true, vec![rec("g", 5)]);
    r.answer(5, running(5, 0));
    r.nudge(ev(5, "start", None));
    for step in 0..20 {
        match r.schedule.next(r.now) {
            Action::Wait(until) => {
                assert!(until > r.now, "step {step}: a wait that is already over");
                break;
            }
            Action::List(_) => {
                let listed = r.records.clone();
                r.input(Input::Listed(listed, UNIX_EPOCH));
            }
            Action::Inspect(rec) => {
                let answer = r.docker.answer_to(&rec.container_id);
                r.input(Input::Answered(answer, UNIX_EPOCH));
            }
            _ => {}
        }
    }
    assert_eq!(
        r.docker.asked(),
        vec![id(5)],
        "inspected before the first tick"
    );
}

#[test]
fn ticks_come_every_interval_and_once_stops_after_one() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(44_000);
    assert_eq!(r.ticks, 3, "at 0, 15 and 30 s");
    let mut r = Run::once(vec![rec("g", 1)]);
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(100_000);
    assert_eq!(
        r.log,
        vec![
            "list tick",
            "inspect g",
            "g event exited",
            "tick ended: 1 records, 1 events, 0 missing, 0 errors",
            "save",
            "stop"
        ]
    );
}

#[test]
fn a_resync_during_a_tick_runs_another_full_tick_a_second_after_its_start() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1), rec("b", 2)]);
    r.answer(1, running(1, 0));
    r.answer(2, running(2, 0));
    r.inspect_ms = 100;
    r.during_inspect = vec![];
    r.until(1);
    // The stream resubscribes during the first tick.
    r.input(Input::Subscribed);
    r.until(999);
    assert_eq!(r.ticks, 1);
    r.until(1001);
    assert_eq!(
        r.ticks, 2,
        "the resync tick, one second after the first began"
    );
    for _ in 0..10 {
        r.input(Input::Overflowed);
    }
    r.until(3000);
    assert_eq!(r.ticks, 3, "many resyncs, one tick a second at most");
}

#[test]
fn shutdown_mid_tick_ends_it_counts_the_rest_skipped_and_saves() {
    let mut r = Run::new(
        Follow::Labels,
        false,
        vec![rec("a", 1), rec("b", 2), rec("c", 3)],
    );
    r.answer(1, running(1, 0));
    assert!(matches!(
        r.schedule.next(r.now),
        Action::List(ListFor::Tick)
    ));
    r.input(Input::Listed(r.records.clone(), UNIX_EPOCH));
    let Action::Inspect(_) = r.schedule.next(r.now) else {
        panic!()
    };
    r.input(Input::Answered(r.docker.answer_to(&id(1)), UNIX_EPOCH));
    r.input(Input::Shutdown);
    r.until(10);
    assert_eq!(
        r.log,
        vec![
            "a healthy",
            "tick ended: 3 records, 0 events, 0 missing, 0 errors, 2 skipped",
            "save",
            "stop"
        ]
    );
}

#[test]
fn shutdown_while_waiting_stops_at_once_and_with_nothing_to_save() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.answer(1, running(1, 0));
    r.until(100);
    r.take_log();
    r.input(Input::Shutdown);
    r.until(200);
    assert_eq!(r.take_log(), vec!["stop"]);
}

#[test]
fn a_nudged_inspect_that_moves_a_baseline_saves_it_within_a_second() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(1, running(1, 1));
    r.nudge(ev(1, "start", Some("a")));
    r.until(20);
    assert_eq!(
        r.take_log(),
        vec!["inspect a", "a event running (nudged)"],
        "the tick's save was 18 ms ago"
    );
    assert_eq!(r.schedule.inspector().baselines()["a"].restart_count, 1);
    r.until(1010);
    assert_eq!(r.take_log(), vec!["save"], "a second after the last");
    r.nudge(ev(1, "die", Some("a")));
    r.until(3000);
    assert_eq!(
        r.take_log(),
        vec!["inspect a", "a healthy"],
        "nothing moved, nothing saved"
    );
    r.answer(1, running(1, 2));
    r.nudge(ev(1, "start", Some("a")));
    r.until(3010);
    assert_eq!(
        r.take_log(),
        vec!["inspect a", "a event running (nudged)", "save"],
        "a second after the last save: at once"
    );
}

#[test]
fn a_failed_listing_ends_the_tick_and_the_next_comes_at_the_interval() {
    let mut r = Run::new(Follow::Database, false, vec![]);
    r.records = None;
    r.until(14_000);
    assert_eq!(r.take_log(), vec!["list tick", "tick ended: no records"]);
    r.records = Some(vec![]);
    r.until(15_500);
    assert_eq!(
        r.take_log(),
        vec![
            "list tick",
            "ping",
            "tick ended: 0 records, 0 events, 0 missing, 0 errors"
        ]
    );
}

#[test]
fn incidents_follow_every_answer_and_an_oom_event_marks_them() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.schedule.incidents = Some(Tracker::new(crate::incident::Policy::default()));
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    // Docker's oom, then its die: the inspect sees it exited.
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "oom", Some("a")));
    r.nudge(ev(1, "die", Some("a")));
    r.until(1100);
    let log = r.take_log();
    assert!(
        log.contains(&"a incident_opened not_running".to_owned()),
        "{log:?}"
    );
    assert!(log.contains(&"save incidents".to_owned()), "{log:?}");
    let opened = log
        .iter()
        .position(|l| l.contains("incident_opened"))
        .unwrap();
    let fact = log
        .iter()
        .position(|l| l == "a event exited (nudged)")
        .unwrap();
    assert!(fact < opened, "the fact, then the incident: {log:?}");
    // Running clean again: resolved after 30 s of looks (ticks every 15 s).
    r.answer(1, running(1, 0));
    r.until(70_000);
    let log = r.take_log();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("incident_"))
            .collect::<Vec<_>>(),
        vec!["a incident_resolved not_running"],
        "{log:?}"
    );
}

#[test]
fn facts_carry_extended_details_only_when_asked_for() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.schedule.settings.extended_facts = false;
    let mut exited = Observation {
        container_id: id(1),
        restart_count: 0,
        status: "exited".into(),
        health: String::new(),
        details: Some(Box::new(crate::inspector::StateDetails {
            exit_code: Some(3),
            ..Default::default()
        })),
    };
    assert!(matches!(r.schedule.next(r.now), Action::List(_)));
    r.input(Input::Listed(r.records.clone(), UNIX_EPOCH));
    assert!(matches!(r.schedule.next(r.now), Action::Inspect(_)));
    r.input(Input::Answered(Ok(exited.clone()), UNIX_EPOCH));
    let Action::Report(report) = r.schedule.next(r.now) else {
        panic!()
    };
    let Outcome::Event(fact, _) = report.outcome else {
        panic!()
    };
    assert!(fact.details.is_none(), "basic facts");
    exited.details = None;
    assert_eq!(fact.state, exited.status);
}
