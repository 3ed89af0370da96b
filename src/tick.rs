//! The tick core: every decision of one tick — which records are valid, what
//! an inspect's answer means for a record ([`judge`], which the inspect a
//! Docker event asks for uses too), when to give up on dockerd.
//!
//! A [`Tick`] makes no request and reads no clock: it hands out one [`Step`]
//! at a time, its caller carries it out and hands the answer back, and each
//! record's [`Outcome`] is returned, never called back; the shell (`worker`)
//! logs, counts and publishes them. Listing the records is the caller's too,
//! since a failed listing ends the tick before anything here runs.
//!
//! Inspections are sequential on purpose: fanning out against the Docker
//! daemon would make the watcher the noisiest client on a small host.

use std::time::SystemTime;

use crate::event::HealthEvent;
use crate::inspector::{Inspector, Reason, RuntimeRecord, is_valid_container_ref};

mod failure;

pub(crate) use failure::{Failure, FailureKind, InspectAnswer, InspectError};

/// The longest game id accepted: an envelope must fit in a NOTIFY payload,
/// which PostgreSQL caps below 8000 bytes.
pub const MAX_GAME_ID_BYTES: usize = 256;

/// After this many timeouts in a row dockerd is asked `/_ping`: when it does
/// not answer either, it is taken to be hung and the rest of the tick is
/// skipped (a tick costs a few timeouts, not one per record); when it does,
/// the timeouts were those containers' own (an inspect waits on the
/// container's lock, which a stuck container can hold) and the tick goes on.
pub const TIMEOUTS_BEFORE_GIVING_UP: usize = 3;

/// Why a record is refused before any request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The game id is empty (or was NULL in the table).
    EmptyGameId,
    /// The game id is longer than [`MAX_GAME_ID_BYTES`].
    LongGameId(usize),
    /// The container id is empty or not a Docker id or name.
    ContainerId,
}

impl Invalid {
    /// A short cause, for rate-limiting warnings per game and cause.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Invalid::EmptyGameId => "empty_game_id",
            Invalid::LongGameId(_) => "long_game_id",
            Invalid::ContainerId => "invalid_container_id",
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::EmptyGameId => f.write_str("game id is empty or NULL"),
            Invalid::LongGameId(n) => {
                write!(f, "game id is {n} bytes, over {MAX_GAME_ID_BYTES}")
            }
            Invalid::ContainerId => f.write_str("container id is empty or not a Docker id or name"),
        }
    }
}

/// Why a record was not inspected at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Shutdown was requested before its turn.
    Shutdown,
    /// dockerd could not be reached, or timed out too often, earlier in the tick.
    DockerDown,
}

/// What became of one record.
// One outcome at a time is made and moved once, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    /// Unhealthy: an event to publish, with the rules that fired.
    Event(HealthEvent, Vec<Reason>),
    /// Inspected and healthy (or only seeded).
    Healthy,
    /// 404: the container is gone; its baseline is left as it was.
    Missing,
    /// The inspect failed; the record is skipped this time.
    Failed(Failure),
    /// The record is not valid; no request was made.
    Invalid(Invalid),
    /// Not inspected.
    Skipped(Skip),
}

impl Outcome {
    /// Whether this answer shows dockerd reachable: any answer counts, a 404
    /// or an error status included; a refused connection or a timeout does not.
    pub(crate) fn reached_docker(&self) -> Option<bool> {
        match self {
            Outcome::Event(..) | Outcome::Healthy | Outcome::Missing => Some(true),
            Outcome::Failed(e) => Some(!e.means_unreachable()),
            Outcome::Invalid(_) | Outcome::Skipped(_) => None,
        }
    }
}

/// What one tick did, counted from its outcomes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records listed.
    pub records: usize,
    /// Events emitted.
    pub events: usize,
    /// Records whose container is gone (404).
    pub missing: usize,
    /// Records whose inspect failed, or that were invalid.
    pub errors: usize,
    /// Records not inspected (shutdown, or dockerd given up on).
    pub skipped: usize,
}

impl Summary {
    /// Counts one outcome in.
    pub(crate) fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Event(..) => self.events += 1,
            Outcome::Healthy => {}
            Outcome::Missing => self.missing += 1,
            Outcome::Failed(_) | Outcome::Invalid(_) => self.errors += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records, {} events, {} missing, {} errors",
            self.records, self.events, self.missing, self.errors
        )?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Checks a record before any request is built from it.
pub(crate) fn validate(record: &RuntimeRecord) -> Result<(), Invalid> {
    if record.game_id.is_empty() {
        return Err(Invalid::EmptyGameId);
    }
    if record.game_id.len() > MAX_GAME_ID_BYTES {
        return Err(Invalid::LongGameId(record.game_id.len()));
    }
    if !is_valid_container_ref(&record.container_id) {
        return Err(Invalid::ContainerId);
    }
    Ok(())
}

/// What a tick asks its caller to do next.
// One step at a time is made and moved once, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    /// Inspect this record's container and hand the answer to
    /// [`Tick::answered`].
    Inspect(RuntimeRecord),
    /// This record's outcome, decided without a request (invalid, or skipped).
    Decided(RuntimeRecord, Outcome),
    /// Ask dockerd's `/_ping` and hand the result to [`Tick::pinged`]: after
    /// [`TIMEOUTS_BEFORE_GIVING_UP`] timeouts in a row, or at the end of a
    /// tick that had no answer from dockerd at all.
    Ping,
    /// The tick is over.
    Done,
}

/// Whether a tick could see dockerd, for `/healthz` and the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Some answer came from dockerd (a 404 and an error status included).
    Reached,
    /// Nothing answered; the last error's text.
    Unreachable(String),
}

/// One tick over a freshly listed set of records, one step at a time: the
/// records in order, and when to give up on dockerd. It makes no request
/// itself; its caller carries out each [`Step`] and hands the answer back.
#[derive(Debug)]
pub struct Tick {
    records: std::vec::IntoIter<RuntimeRecord>,
    timeouts_in_a_row: usize,
    given_up: Option<Skip>,
    /// Why a ping was asked for, while its answer is awaited.
    ping: Option<PingFor>,
    /// Whether the closing ping was asked already.
    closed: bool,
    summary: Summary,
    reached: bool,
    docker_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PingFor {
    /// Three timeouts in a row: is dockerd hung, or only those containers?
    Timeouts,
    /// No record answered: can dockerd be reached at all?
    Closing,
}

impl Tick {
    /// A tick over `records`, in their order.
    pub(crate) fn new(records: Vec<RuntimeRecord>) -> Tick {
        Tick {
            summary: Summary {
                records: records.len(),
                ..Summary::default()
            },
            records: records.into_iter(),
            timeouts_in_a_row: 0,
            given_up: None,
            ping: None,
            closed: false,
            reached: false,
            docker_error: None,
        }
    }

    /// The next step. A step that asks for a request waits for its answer
    /// ([`Tick::answered`], [`Tick::pinged`]) before this is called again.
    pub(crate) fn next_step(&mut self) -> Step {
        if self.ping.is_some() {
            return Step::Ping;
        }
        if let Some(record) = self.records.next() {
            let decided = match (self.given_up, validate(&record)) {
                (Some(skip), _) => Outcome::Skipped(skip),
                (None, Err(invalid)) => Outcome::Invalid(invalid),
                (None, Ok(())) => return Step::Inspect(record),
            };
            self.summary.count(&decided);
            return Step::Decided(record, decided);
        }
        // With no answer from any record (no records, only invalid ones, or
        // only inspects that hung), dockerd's `/_ping` says whether it can be
        // reached.
        if !self.reached && !self.closed {
            self.closed = true;
            self.ping = Some(PingFor::Closing);
            return Step::Ping;
        }
        Step::Done
    }

    /// Takes the outcome of the record last handed out by [`Step::Inspect`].
    pub fn answered(&mut self, outcome: &Outcome) {
        self.summary.count(outcome);
        match outcome.reached_docker() {
            Some(true) => self.reached = true,
            Some(false) => {
                if let Outcome::Failed(e) = outcome {
                    self.docker_error = Some(e.to_string());
                }
            }
            None => {}
        }
        match outcome {
            Outcome::Failed(Failure {
                kind: FailureKind::Timeout,
                ..
            }) => self.timeouts_in_a_row += 1,
            Outcome::Invalid(_) => {}
            _ => self.timeouts_in_a_row = 0,
        }
        let unreachable = matches!(outcome, Outcome::Failed(f) if f.is_the_socket());
        if unreachable {
            self.given_up = Some(Skip::DockerDown);
        } else if self.timeouts_in_a_row >= TIMEOUTS_BEFORE_GIVING_UP {
            self.ping = Some(PingFor::Timeouts);
        }
    }

    /// Takes the answer of the ping [`Step::Ping`] asked for: after three
    /// timeouts in a row, a ping that fails too gives up on dockerd for the
    /// rest of the tick (a tick costs a few timeouts, not one per record);
    /// one that answers says the timeouts were those containers' own.
    pub fn pinged(&mut self, result: Result<(), String>) {
        match (self.ping.take(), result) {
            (Some(PingFor::Timeouts), Ok(())) => self.timeouts_in_a_row = 0,
            (Some(PingFor::Timeouts), Err(e)) => {
                self.given_up = Some(Skip::DockerDown);
                self.docker_error = Some(e);
            }
            (Some(PingFor::Closing), Ok(())) => self.reached = true,
            (Some(PingFor::Closing), Err(e)) => self.docker_error = Some(e),
            (None, _) => {}
        }
    }

    /// Stops the tick at shutdown: the records not yet inspected are
    /// counted as skipped.
    pub(crate) fn cancel(&mut self) {
        self.given_up.get_or_insert(Skip::Shutdown);
        self.ping = None;
        self.closed = true;
        for _ in self.records.by_ref() {
            self.summary.skipped += 1;
        }
    }

    /// What the tick did so far.
    pub(crate) fn summary(&self) -> Summary {
        self.summary
    }

    /// Whether the tick could see dockerd; `None` while nothing says either way
    /// (a tick cancelled before any answer). A tick that gave up on dockerd
    /// could not, whatever answered before it stopped answering (frozen
    /// with SIGSTOP in the middle of a tick, say).
    pub(crate) fn reach(&self) -> Option<Reach> {
        if self.given_up == Some(Skip::DockerDown) {
            let why = self.docker_error.clone();
            Some(Reach::Unreachable(why.unwrap_or_default()))
        } else if self.reached {
            Some(Reach::Reached)
        } else {
            self.docker_error.clone().map(Reach::Unreachable)
        }
    }

    /// Whether the tick gave up on dockerd (not at shutdown).
    pub(crate) fn gave_up_on_docker(&self) -> bool {
        self.given_up == Some(Skip::DockerDown)
    }
}

/// Judges one record's inspect with the rules of a tick: the same baselines,
/// the same event, dated `at`.
pub fn judge(
    inspector: &mut Inspector,
    record: &RuntimeRecord,
    answer: InspectAnswer,
    at: SystemTime,
) -> Outcome {
    match answer {
        Ok(observation) => match inspector.observe(&record.game_id, observation) {
            Some(finding) => {
                let reasons = finding.reasons.clone();
                Outcome::Event(HealthEvent::from_finding(finding, at), reasons)
            }
            None => Outcome::Healthy,
        },
        Err(InspectError::NotFound) => Outcome::Missing,
        // The client's own guard; `validate` already refused such ids.
        Err(InspectError::InvalidId) => Outcome::Invalid(Invalid::ContainerId),
        Err(InspectError::Failed(f)) => Outcome::Failed(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{Answer, FakeDocker};
    use std::time::{Duration, UNIX_EPOCH};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A compact view of an outcome, for tables.
    fn short(o: &Outcome) -> String {
        match o {
            Outcome::Event(e, reasons) => {
                let r: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                format!("event {} {}", e.state, r.join("+"))
            }
            Outcome::Healthy => "healthy".into(),
            Outcome::Missing => "missing".into(),
            Outcome::Failed(f) => format!("failed {}", f.as_str()),
            Outcome::Invalid(i) => format!("invalid {}", i.as_str()),
            Outcome::Skipped(Skip::Shutdown) => "skipped shutdown".into(),
            Outcome::Skipped(Skip::DockerDown) => "skipped docker".into(),
        }
    }

    fn clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_726_800)
    }

    /// Carries out one tick's steps with the fake's answers, stopping it
    /// when `cancel` says so before a record; per record, `game: outcome`.
    fn drive(
        inspector: &mut Inspector,
        docker: &FakeDocker,
        records: &[RuntimeRecord],
        cancel: &mut dyn FnMut() -> bool,
    ) -> (Vec<String>, Tick) {
        inspector.prune(records);
        let mut tick = Tick::new(records.to_vec());
        let mut got = Vec::new();
        loop {
            if cancel() {
                tick.cancel();
            }
            match tick.next_step() {
                Step::Inspect(r) => {
                    let o = judge(inspector, &r, docker.answer_to(&r.container_id), clock());
                    tick.answered(&o);
                    got.push(format!("{}: {}", r.game_id, short(&o)));
                }
                Step::Decided(r, o) => got.push(format!("{}: {}", r.game_id, short(&o))),
                Step::Ping => tick.pinged(docker.pinged()),
                Step::Done => return (got, tick),
            }
        }
    }

    /// Runs ticks over `records` with the fake's answers; per tick, per record,
    /// `game: outcome`.
    fn check_ticks(
        inspector: &mut Inspector,
        docker: &FakeDocker,
        records: &[RuntimeRecord],
        ticks: usize,
    ) -> Vec<Vec<String>> {
        (0..ticks)
            .map(|_| drive(inspector, docker, records, &mut || false).0)
            .collect()
    }

    fn check(records: &[RuntimeRecord], docker: &FakeDocker) -> Vec<String> {
        check_ticks(&mut Inspector::new(), docker, records, 1).remove(0)
    }

    fn rec(game: &str, container: &str) -> RuntimeRecord {
        RuntimeRecord::new(game, container)
    }

    #[test]
    fn one_tick_outcome_table() {
        let docker = FakeDocker::new()
            .answer("run", Answer::running(A, 0, ""))
            .answer("sick", Answer::running(A, 0, "unhealthy"))
            .answer("stop", Answer::status(A, 1, "exited"))
            .answer("gone", Answer::NotFound)
            .answer("boom", Answer::Status(500));
        let records = [
            rec("g-run", "run"),
            rec("g-sick", "sick"),
            rec("g-stop", "stop"),
            rec("g-gone", "gone"),
            rec("g-boom", "boom"),
            rec("", "run"),
            rec(&"x".repeat(257), "run"),
            rec(&"x".repeat(256), "run"),
            rec("g-empty", ""),
            rec("g-escape", "../../v1.41/containers/create"),
        ];
        assert_eq!(
            check(&records, &docker),
            vec![
                "g-run: healthy".to_string(),
                "g-sick: event running unhealthy".into(),
                "g-stop: event exited not_running".into(),
                "g-gone: missing".into(),
                "g-boom: failed docker".into(),
                ": invalid empty_game_id".into(),
                format!("{}: invalid long_game_id", "x".repeat(257)),
                format!("{}: healthy", "x".repeat(256)),
                "g-empty: invalid invalid_container_id".into(),
                "g-escape: invalid invalid_container_id".into(),
            ]
        );
        assert_eq!(
            docker.asked(),
            vec!["run", "sick", "stop", "gone", "boom", "run"],
            "invalid records never reach Docker"
        );
    }

    #[test]
    fn three_timeouts_in_a_row_and_no_ping_skip_the_rest_of_the_tick() {
        let docker = FakeDocker::new().default_answer(Answer::Timeout);
        docker.set_ping(Some(Answer::Timeout));
        let records: Vec<_> = (0..6).map(|i| rec(&format!("g{i}"), "c1")).collect();
        assert_eq!(
            check(&records, &docker),
            vec![
                "g0: failed timeout",
                "g1: failed timeout",
                "g2: failed timeout",
                "g3: skipped docker",
                "g4: skipped docker",
                "g5: skipped docker",
            ]
        );
    }

    #[test]
    fn a_dockerd_that_stops_answering_in_the_middle_of_a_tick_is_not_reached() {
        // Frozen (SIGSTOP) after the first answers: the tick gives up on
        // it, and says why, whatever answered before.
        let docker = FakeDocker::new()
            .answer("ok", Answer::running(A, 0, ""))
            .default_answer(Answer::Timeout);
        docker.set_ping(Some(Answer::Timeout));
        let records = [
            rec("a", "ok"),
            rec("b", "t1"),
            rec("c", "t2"),
            rec("d", "t3"),
            rec("e", "t4"),
        ];
        let (got, tick) = drive(&mut Inspector::new(), &docker, &records, &mut || false);
        assert_eq!(
            got,
            vec![
                "a: healthy",
                "b: failed timeout",
                "c: failed timeout",
                "d: failed timeout",
                "e: skipped docker",
            ]
        );
        assert!(tick.gave_up_on_docker());
        assert_eq!(
            tick.reach(),
            Some(Reach::Unreachable(docker.pinged().unwrap_err()))
        );
    }

    #[test]
    fn containers_that_hang_while_dockerd_answers_its_ping_hide_no_other() {
        let docker = FakeDocker::new()
            .answer("ok", Answer::status(A, 0, "exited"))
            .default_answer(Answer::Timeout);
        let records = [
            rec("a", "t1"),
            rec("b", "t2"),
            rec("c", "t3"),
            rec("d", "t4"),
            rec("e", "ok"),
        ];
        assert_eq!(
            check(&records, &docker),
            vec![
                "a: failed timeout",
                "b: failed timeout",
                "c: failed timeout",
                "d: failed timeout",
                "e: event exited not_running",
            ]
        );
    }

    #[test]
    fn an_answer_between_timeouts_resets_the_count() {
        let docker = FakeDocker::new()
            .answer("ok", Answer::running(A, 0, ""))
            .default_answer(Answer::Timeout);
        let records = [
            rec("a", "t1"),
            rec("b", "t2"),
            rec("c", "ok"),
            rec("d", "t3"),
            rec("e", "t4"),
            rec("f", "ok"),
        ];
        let got = check(&records, &docker);
        assert!(got.iter().all(|l| !l.contains("skipped")), "{got:?}");
    }

    #[test]
    fn unreachable_docker_skips_the_rest_at_once() {
        let docker = FakeDocker::new().default_answer(Answer::Unreachable);
        let records = [rec("a", "c1"), rec("b", "c2")];
        assert_eq!(
            check(&records, &docker),
            vec!["a: failed docker", "b: skipped docker"]
        );
    }

    #[test]
    fn shutdown_is_checked_between_records() {
        let docker = FakeDocker::new().default_answer(Answer::running(A, 0, ""));
        let records = [rec("a", "c1"), rec("b", "c2"), rec("c", "c3")];
        let mut asked = 0;
        let mut cancelled = || {
            asked += 1;
            asked > 1
        };
        let (got, tick) = drive(&mut Inspector::new(), &docker, &records, &mut cancelled);
        assert_eq!(got, vec!["a: healthy"]);
        assert_eq!(tick.summary().skipped, 2);
        assert_eq!(tick.reach(), Some(Reach::Reached));
        assert_eq!(docker.asked(), vec!["c1"]);
    }

    #[test]
    fn restart_count_increase_emits_once_across_ticks() {
        let docker = FakeDocker::new().answer("c0", Answer::running(A, 0, ""));
        let records = [rec("g", "c0")];
        let mut inspector = Inspector::new();
        assert_eq!(
            check_ticks(&mut inspector, &docker, &records, 1),
            vec![vec!["g: healthy"]],
            "first observation only seeds"
        );
        docker.set("c0", Answer::running(A, 3, ""));
        assert_eq!(
            check_ticks(&mut inspector, &docker, &records, 2),
            vec![vec!["g: event running restarted"], vec!["g: healthy"]]
        );
    }

    #[test]
    fn missing_container_keeps_the_baseline() {
        let docker = FakeDocker::new().answer("c0", Answer::running(A, 2, ""));
        let records = [rec("g", "c0")];
        let mut inspector = Inspector::new();
        check_ticks(&mut inspector, &docker, &records, 1);
        let before = inspector.baseline("g").cloned();
        docker.set("c0", Answer::NotFound);
        assert_eq!(
            check_ticks(&mut inspector, &docker, &records, 1),
            vec![vec!["g: missing"]]
        );
        assert_eq!(inspector.baseline("g").cloned(), before);
    }

    #[test]
    fn games_no_longer_listed_lose_their_baseline() {
        let docker = FakeDocker::new().default_answer(Answer::running(A, 1, ""));
        let mut inspector = Inspector::new();
        check_ticks(
            &mut inspector,
            &docker,
            &[rec("a", "c1"), rec("b", "c2")],
            1,
        );
        check_ticks(&mut inspector, &docker, &[rec("a", "c1")], 1);
        assert!(inspector.baseline("a").is_some());
        assert!(inspector.baseline("b").is_none());
    }

    #[test]
    fn events_are_dated_by_the_clock_given() {
        let docker = FakeDocker::new().answer("c0", Answer::status(A, 0, "exited"));
        let mut inspector = Inspector::new();
        let answer = docker.answer_to("c0");
        let Outcome::Event(e, _) = judge(&mut inspector, &rec("g", "c0"), answer, clock()) else {
            panic!("an exited container is an event");
        };
        assert_eq!(e.occurred_at, "2026-11-26T21:00:00.000000Z");
        assert_eq!(e.container_id, A);
    }

    #[test]
    fn reaching_docker_is_any_answer() {
        let table = [
            (Outcome::Healthy, Some(true)),
            (Outcome::Missing, Some(true)),
            (
                Outcome::Failed(Failure::new(FailureKind::BadAnswer, "HTTP 500: x")),
                Some(true),
            ),
            (
                Outcome::Failed(Failure::new(FailureKind::Timeout, "no answer within 1s")),
                Some(false),
            ),
            (Outcome::Invalid(Invalid::ContainerId), None),
            (Outcome::Skipped(Skip::DockerDown), None),
        ];
        for (o, want) in table {
            assert_eq!(o.reached_docker(), want, "{o:?}");
        }
    }
}
