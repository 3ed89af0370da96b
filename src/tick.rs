//! The tick core: every decision of one tick, and of the one-record inspect
//! that a Docker event asks for, over the records, the answers of a
//! [`ContainerInspector`] and the baselines.
//!
//! It does no I/O of its own, logs nothing, counts nothing and reads no clock
//! but the one it is given: it hands each record's [`Outcome`] to the caller,
//! and the wiring layer (`daemon`) logs, counts and publishes them. Listing the
//! records is the caller's too, since a failed listing ends the tick before
//! anything here runs.
//!
//! Inspections are sequential on purpose: fanning out against the Docker
//! daemon would make the watcher the noisiest client on a small host.

use std::time::SystemTime;

use crate::docker::{ContainerInspector, DockerError, is_valid_container_ref};
use crate::event::HealthEvent;
use crate::inspector::{Inspector, Reason, RuntimeRecord};

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
    pub fn as_str(self) -> &'static str {
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
#[derive(Debug)]
pub enum Outcome {
    /// Unhealthy: an event to publish, with the rules that fired.
    Event(HealthEvent, Vec<Reason>),
    /// Inspected and healthy (or only seeded).
    Healthy,
    /// 404: the container is gone; its baseline is left as it was.
    Missing,
    /// The inspect failed; the record is skipped this time.
    Failed(DockerError),
    /// The record is not valid; no request was made.
    Invalid(Invalid),
    /// Not inspected.
    Skipped(Skip),
}

impl Outcome {
    /// Whether this answer shows dockerd reachable: any answer counts, a 404
    /// or an error status included; a refused connection or a timeout does not.
    pub fn reached_docker(&self) -> Option<bool> {
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
    pub fn count(&mut self, outcome: &Outcome) {
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
pub fn validate(record: &RuntimeRecord) -> Result<(), Invalid> {
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

/// One tick over a freshly listed `records`: forgets the baselines of games no
/// longer listed, then inspects each record in order and hands its outcome to
/// `report`. `between` is called before each record with the baselines, so
/// that the caller can inspect at once, with [`inspect`], a record a Docker
/// event points at rather than wait for the tick to end; it returns true to
/// stop the tick (shutdown). `clock` dates the events.
pub fn tick(
    inspector: &mut Inspector,
    records: &[RuntimeRecord],
    docker: &dyn ContainerInspector,
    clock: &dyn Fn() -> SystemTime,
    between: &mut dyn FnMut(&mut Inspector) -> bool,
    report: &mut dyn FnMut(&RuntimeRecord, Outcome),
) {
    inspector.prune(records);
    let mut timeouts_in_a_row = 0;
    let mut given_up: Option<Skip> = None;
    for record in records {
        if given_up.is_none() && between(inspector) {
            given_up = Some(Skip::Shutdown);
        }
        if let Some(skip) = given_up {
            report(record, Outcome::Skipped(skip));
            continue;
        }
        let outcome = inspect(inspector, record, docker, clock);
        match &outcome {
            Outcome::Failed(DockerError::Timeout(_)) => timeouts_in_a_row += 1,
            Outcome::Invalid(_) => {}
            _ => timeouts_in_a_row = 0,
        }
        let unreachable = matches!(
            outcome,
            Outcome::Failed(DockerError::Unreachable { .. } | DockerError::ConnectTimeout { .. })
        );
        if unreachable {
            given_up = Some(Skip::DockerDown);
        } else if timeouts_in_a_row >= TIMEOUTS_BEFORE_GIVING_UP {
            if docker.ping().is_ok() {
                timeouts_in_a_row = 0;
            } else {
                given_up = Some(Skip::DockerDown);
            }
        }
        report(record, outcome);
    }
}

/// Inspects one record with exactly the rules of a tick: the same validation,
/// the same baselines, the same event.
pub fn inspect(
    inspector: &mut Inspector,
    record: &RuntimeRecord,
    docker: &dyn ContainerInspector,
    clock: &dyn Fn() -> SystemTime,
) -> Outcome {
    if let Err(invalid) = validate(record) {
        return Outcome::Invalid(invalid);
    }
    match docker.inspect(&record.container_id) {
        Ok(observation) => match inspector.observe(&record.game_id, observation) {
            Some(finding) => {
                let reasons = finding.reasons.clone();
                Outcome::Event(HealthEvent::from_finding(finding, clock()), reasons)
            }
            None => Outcome::Healthy,
        },
        Err(DockerError::NotFound) => Outcome::Missing,
        // The client's own guard; `validate` already refused such ids.
        Err(DockerError::InvalidId(_)) => Outcome::Invalid(Invalid::ContainerId),
        Err(e) => Outcome::Failed(e),
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
            Outcome::Failed(e) => format!("failed {}", e.kind()),
            Outcome::Invalid(i) => format!("invalid {}", i.as_str()),
            Outcome::Skipped(Skip::Shutdown) => "skipped shutdown".into(),
            Outcome::Skipped(Skip::DockerDown) => "skipped docker".into(),
        }
    }

    fn clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_726_800)
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
            .map(|_| {
                let mut got = Vec::new();
                tick(
                    inspector,
                    records,
                    docker,
                    &clock,
                    &mut |_| false,
                    &mut |r, o| got.push(format!("{}: {}", r.game_id, short(&o))),
                );
                got
            })
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
        let mut cancelled = |_: &mut Inspector| {
            asked += 1;
            asked > 1
        };
        let mut got = Vec::new();
        tick(
            &mut Inspector::new(),
            &records,
            &docker,
            &clock,
            &mut cancelled,
            &mut |r, o| got.push(format!("{}: {}", r.game_id, short(&o))),
        );
        assert_eq!(
            got,
            vec!["a: healthy", "b: skipped shutdown", "c: skipped shutdown"]
        );
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
        let Outcome::Event(e, _) = inspect(&mut inspector, &rec("g", "c0"), &docker, &clock) else {
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
                Outcome::Failed(DockerError::Status {
                    status: 500,
                    message: "x".into(),
                }),
                Some(true),
            ),
            (
                Outcome::Failed(DockerError::Timeout(Duration::from_secs(1))),
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
