//! The incident tracker under a fake clock: tables of looks and the events
//! they make.

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use super::*;
use Change::*;
use Kind::*;
use saved::SavedKind;

mod clock;
mod counting;
mod gone;
mod oom;
mod reminders;
mod stops;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const MIN: u64 = 60;
const HOUR: u64 = 60 * MIN;

/// The fake clocks' start on the monotonic clock (any instant will do).
fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The fake wall clock: `s` seconds after an arbitrary start.
fn wall(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000 + s)
}

/// The fake clocks `s` seconds after their start, agreeing.
fn t(s: u64) -> Stamp {
    Stamp {
        wall: wall(s),
        mono: origin() + Duration::from_secs(s),
    }
}

/// Seconds since the start of the fake wall clock.
fn secs(at: SystemTime) -> u64 {
    at.duration_since(wall(0)).unwrap().as_secs()
}

/// One look at game `g`: (seconds, container, RestartCount, status, health).
type Step = (u64, &'static str, u64, &'static str, &'static str);

/// A case of a table: the looks, and the events expected as [`brief`] shows them.
type Case = (&'static [Step], &'static [(u64, Change, Kind)]);

/// Feeds the steps to `tracker` and returns every event, in order.
fn feed(tracker: &mut Tracker, steps: impl IntoIterator<Item = Step>) -> Vec<IncidentEvent> {
    steps
        .into_iter()
        .flat_map(|(at, container_id, restart_count, status, health)| {
            tracker.look(&look_at(t(at), container_id, restart_count, status, health))
        })
        .collect()
}

/// One look at game `g` at `at`: no `StartedAt`, no end told, nothing
/// settling; a test sets what else it needs over it.
fn look_at<'a>(
    at: Stamp,
    container_id: &'a str,
    restart_count: u64,
    status: &'a str,
    health: &'a str,
) -> Look<'a> {
    Look {
        game_id: "g",
        container_id,
        restart_count,
        status,
        health,
        started_at: None,
        end: None,
        settling: false,
        at,
    }
}

/// The events as (seconds, change, kind): what most tests pin.
fn brief(events: &[IncidentEvent]) -> Vec<(u64, Change, Kind)> {
    events
        .iter()
        .map(|e| (secs(e.at), e.change, e.kind))
        .collect()
}

/// Feeds the steps to a fresh tracker under `policy`.
fn check(policy: Policy, steps: impl IntoIterator<Item = Step>) -> Vec<IncidentEvent> {
    feed(&mut Tracker::new(policy), steps)
}

/// Asserts that all events belong to one incident, and returns its id.
fn one_incident(events: &[IncidentEvent]) -> String {
    let id = events[0].incident_id.clone();
    assert!(events.iter().all(|e| e.incident_id == id), "{events:#?}");
    id
}

/// A container running without a healthcheck that the restart policy
/// restarts at `restarts` (seconds), looked at every `every` seconds
/// from 0 to `until`.
fn restarting(restarts: &[u64], every: u64, until: u64) -> Vec<Step> {
    (0..=until / every)
        .map(|i| {
            let at = i * every;
            let count = restarts.iter().filter(|&&r| r <= at).count() as u64;
            (at, A, count, "running", "")
        })
        .collect()
}

#[test]
fn a_restart_every_30_s_for_an_hour_is_one_crash_loop() {
    let restarts: Vec<u64> = (1..=120).map(|i| i * 30).collect();
    let steps = restarting(&restarts, 10, HOUR);
    let events = check(Policy::default(), steps.clone());
    assert_eq!(
        brief(&events),
        [(30, Opened, Restarted), (90, Escalated, CrashLoop)],
        "no reminder within the hour at 4 h"
    );
    assert_eq!(events[1].restarts_in_window, 3);
    one_incident(&events);

    let policy = Policy {
        remind: Some(Duration::from_secs(20 * MIN)),
        ..Policy::default()
    };
    let events = check(policy, steps);
    assert_eq!(
        brief(&events),
        [
            (30, Opened, Restarted),
            (90, Escalated, CrashLoop),
            (20 * MIN + 30, Reminder, CrashLoop),
            (40 * MIN + 30, Reminder, CrashLoop),
        ],
        "a reminder at the first look at or after each due time"
    );
    assert_eq!(
        events[3].restarts_in_window, 81,
        "the count is not a sliding window"
    );
    one_incident(&events);
}

#[test]
fn a_flapping_healthcheck_is_one_incident() {
    // Unhealthy and healthy looks alternate every 10 s for 30 minutes,
    // then the healthcheck settles.
    let steps = (0..200).map(|i| {
        let health = if i < 180 && i % 2 == 0 {
            "unhealthy"
        } else {
            "healthy"
        };
        (i * 10, A, 0, "running", health)
    });
    let events = check(Policy::default(), steps);
    assert_eq!(
        brief(&events),
        [(0, Opened, Unhealthy), (1820, Resolved, Unhealthy)],
        "resolved 30 s after the last healthy streak began (1790 s)"
    );
    one_incident(&events);
}

#[test]
fn a_stop_and_a_clean_start_open_then_resolve() {
    let steps = [
        (0, A, 0, "running", ""),
        (15, A, 0, "exited", ""),
        (30, A, 0, "exited", ""),
        (45, A, 0, "running", ""),
        (60, A, 0, "running", ""),
        (75, A, 0, "running", ""),
        (90, A, 0, "running", ""),
    ];
    let events = check(Policy::default(), steps);
    assert_eq!(
        brief(&events),
        [(15, Opened, NotRunning), (75, Resolved, NotRunning)]
    );
    assert_eq!(secs(events[1].started_at), 15);
    one_incident(&events);
}

#[test]
fn a_restart_of_rtinspect_keeps_the_incident() {
    let mut before = Tracker::new(Policy::default());
    let first = feed(
        &mut before,
        [
            (0, A, 0, "running", ""),
            (30, A, 1, "running", ""),
            (60, A, 2, "running", ""),
        ],
    );
    assert_eq!(brief(&first), [(30, Opened, Restarted)]);
    assert!(before.take_changed());
    // Through the bytes the state file holds.
    let json = serde_json::to_string(&before.saved(t(60))).unwrap();
    let saved: SavedIncidents = serde_json::from_str(&json).unwrap();
    assert_eq!(saved, before.saved(t(60)));

    let mut after = Tracker::with_saved(Policy::default(), saved, t(80));
    assert!(!after.take_changed(), "loading is no change");
    assert_eq!(after.open_incidents(), 1);
    // The third restart happened while rtinspect was down.
    let mut steps = vec![(90, A, 3, "running", "")];
    steps.extend((1..=61).map(|i| (90 + i * 10, A, 3, "running", "")));
    let later = feed(&mut after, steps);
    assert_eq!(
        brief(&later),
        [(90, Escalated, CrashLoop), (690, Resolved, CrashLoop)],
        "no second opening; the count survived the restart"
    );
    assert_eq!(later[0].restarts_in_window, 3);
    for e in &later {
        assert_eq!(e.incident_id, first[0].incident_id);
        assert_eq!(e.started_at, wall(30));
    }
}

#[test]
fn the_restart_policys_wait_is_a_restart_under_way_not_a_stop() {
    // Docker's `restarting` between a death and the next start, seen
    // by some looks and not others: one incident, one escalation.
    let steps = [
        (0, A, 0, "running", ""),
        (12, A, 1, "running", ""),
        (24, A, 2, "restarting", ""),
        (25, A, 2, "running", ""),
        (36, A, 3, "restarting", ""),
        (48, A, 4, "running", ""),
    ];
    let events = check(Policy::default(), steps);
    assert_eq!(
        brief(&events),
        [(12, Opened, Restarted), (36, Escalated, CrashLoop)]
    );
    // A container that stays exited is not running, as before.
    let events = check(
        Policy::default(),
        [(0, A, 0, "running", ""), (10, A, 0, "exited", "")],
    );
    assert_eq!(brief(&events), [(10, Opened, NotRunning)]);
}

#[test]
fn a_start_no_restart_count_shows_counts_as_a_restart() {
    // `docker restart` (or a manager's API start) changes `StartedAt`
    // and resets `RestartCount`: a game flapping that way every minute
    // becomes a crash loop, not an incident a minute for ever.
    let mut tracker = Tracker::new(Policy::default());
    let mut events = Vec::new();
    for minute in 0..60u64 {
        let started = format!("2026-12-02T10:{minute:02}:00Z");
        for (s, status) in [(0, "running"), (40, "running"), (50, "exited")] {
            events.extend(tracker.look(&Look {
                started_at: Some(&started),
                ..look_at(t(minute * 60 + s), A, 0, status, "")
            }));
        }
    }
    // Until the third start makes it a crash loop, each relapse after
    // a clean run of --recover-after is an incident of its own; then
    // one crash loop for the rest of the hour.
    assert_eq!(
        brief(&events),
        [
            (50, Opened, NotRunning),
            (100, Resolved, NotRunning),
            (110, Opened, NotRunning),
            (160, Resolved, NotRunning),
            (170, Opened, NotRunning),
            (180, Escalated, CrashLoop),
        ]
    );
}

#[test]
fn a_replaced_container_keeps_the_incident() {
    // A stopped container replaced by another that is stopped too is the
    // same incident, resolved by the new one running.
    let steps = [
        (0, A, 4, "exited", ""),
        (10, B, 0, "exited", ""),
        (20, B, 0, "running", ""),
        (50, B, 0, "running", ""),
    ];
    let events = check(Policy::default(), steps);
    assert_eq!(
        brief(&events),
        [(0, Opened, NotRunning), (50, Resolved, NotRunning)]
    );
    assert_eq!(events[1].container_id, B);
    assert_eq!(events[1].restarts_in_window, 1);
    one_incident(&events);
}

#[test]
fn restarts_spaced_by_a_back_off_stay_a_crash_loop() {
    // Restarts 4 to 8 minutes apart: never three within any 10 minutes
    // of a sliding window, and never 10 minutes clean either.
    let gaps = [4, 6, 8, 5, 7, 4, 8, 6, 5, 7];
    let restarts: Vec<u64> = gaps
        .iter()
        .scan(0, |at, gap| {
            *at += gap * MIN;
            Some(*at)
        })
        .collect();
    let last = *restarts.last().unwrap();
    let events = check(
        Policy::default(),
        restarting(&restarts, 10, last + 15 * MIN),
    );
    let (r1, r2, r3) = (restarts[0], restarts[1], restarts[2]);
    assert_eq!(
        brief(&events),
        [
            (r1, Opened, Restarted),
            (r1 + 30, Resolved, Restarted),
            (r2, Opened, Restarted),
            (r2 + 30, Resolved, Restarted),
            (r3, Opened, CrashLoop),
            (last + 10 * MIN, Resolved, CrashLoop),
        ],
        "one crash loop from the third restart until 10 minutes clean"
    );
    assert_eq!(events[4].restarts_in_window, 3);
    assert_eq!(events[5].restarts_in_window, 0, "cleared as it resolved");
    assert_eq!(events[4].incident_id, events[5].incident_id);
}

#[test]
fn rules_table() {
    // (looks, expected events): the rules one by one.
    let table: &[Case] = &[
        // The first look only seeds the restart count...
        (&[(0, A, 7, "running", "")], &[]),
        (&[(0, A, 7, "running", "healthy")], &[]),
        // ...and still opens on status and health.
        (&[(0, A, 0, "exited", "")], &[(0, Opened, NotRunning)]),
        (&[(0, A, 0, "paused", "")], &[(0, Opened, NotRunning)]),
        // The restart policy's wait: a restart under way, counted when
        // the count shows it.
        (&[(0, A, 0, "restarting", "")], &[]),
        (
            &[(0, A, 0, "running", ""), (10, A, 1, "restarting", "")],
            &[(10, Opened, Restarted)],
        ),
        (
            &[(0, A, 0, "running", "unhealthy")],
            &[(0, Opened, Unhealthy)],
        ),
        (
            &[(0, A, 0, "exited", "unhealthy")],
            &[(0, Opened, NotRunning)],
        ),
        // A healthcheck still starting is no incident.
        (&[(0, A, 0, "running", "starting")], &[]),
        // A lower RestartCount (a manual start) re-seeds.
        (
            &[
                (0, A, 5, "running", ""),
                (10, A, 0, "running", ""),
                (20, A, 1, "running", ""),
            ],
            &[(20, Opened, Restarted)],
        ),
        // A jump of restarts between two looks is a crash loop at once.
        (
            &[(0, A, 0, "running", ""), (10, A, 5, "running", "")],
            &[(10, Opened, CrashLoop)],
        ),
        // Worse kinds escalate, in order...
        (
            &[
                (0, A, 0, "running", ""),
                (10, A, 1, "running", ""),
                (20, A, 1, "running", "unhealthy"),
                (30, A, 1, "exited", ""),
                (40, A, 3, "exited", ""),
            ],
            &[
                (10, Opened, Restarted),
                (20, Escalated, Unhealthy),
                (30, Escalated, NotRunning),
                (40, Escalated, CrashLoop),
            ],
        ),
        // ...and milder looks change nothing.
        (
            &[
                (0, A, 0, "exited", ""),
                (10, A, 0, "running", "unhealthy"),
                (20, A, 1, "running", "starting"),
                (30, A, 1, "exited", ""),
            ],
            &[(0, Opened, NotRunning)],
        ),
        // A restart while running fine resolves after 30 s clean.
        (
            &[
                (0, A, 0, "running", ""),
                (15, A, 1, "running", ""),
                (30, A, 1, "running", ""),
                (45, A, 1, "running", ""),
            ],
            &[(15, Opened, Restarted), (45, Resolved, Restarted)],
        ),
        // A healthcheck still starting is not clean: the streak waits.
        (
            &[
                (0, A, 0, "running", "unhealthy"),
                (10, A, 0, "running", "healthy"),
                (20, A, 0, "running", "starting"),
                (30, A, 0, "running", "healthy"),
                (50, A, 0, "running", "healthy"),
                (60, A, 0, "running", "healthy"),
            ],
            &[(0, Opened, Unhealthy), (60, Resolved, Unhealthy)],
        ),
        // A restart ends the streak, even one that runs healthy at once.
        (
            &[
                (0, A, 0, "exited", ""),
                (10, A, 0, "running", ""),
                (40, A, 1, "running", ""),
                (60, A, 1, "running", ""),
                (70, A, 1, "running", ""),
            ],
            &[(0, Opened, NotRunning), (70, Resolved, NotRunning)],
        ),
        // A clock that went back does not resolve early.
        (
            &[
                (100, A, 0, "exited", ""),
                (110, A, 0, "running", ""),
                (50, A, 0, "running", ""),
                (139, A, 0, "running", ""),
            ],
            &[(100, Opened, NotRunning)],
        ),
    ];
    for (steps, expected) in table {
        let events = check(Policy::default(), steps.iter().copied());
        assert_eq!(&brief(&events), expected, "looks {steps:?}");
    }
}

#[test]
fn the_crash_loop_count_is_cleared_only_after_the_window_clean() {
    let table: &[Case] = &[
        // Two restarts, 9 minutes clean, one more: still the same window.
        (
            &[
                (0, A, 0, "running", ""),
                (10, A, 2, "running", ""),
                (40, A, 2, "running", ""),
                (10 + 9 * MIN, A, 2, "running", ""),
                (20 + 9 * MIN, A, 3, "running", ""),
            ],
            &[
                (10, Opened, Restarted),
                (40, Resolved, Restarted),
                (20 + 9 * MIN, Opened, CrashLoop),
            ],
        ),
        // Two restarts, 10 minutes clean, one more: a new window.
        (
            &[
                (0, A, 0, "running", ""),
                (10, A, 2, "running", ""),
                (40, A, 2, "running", ""),
                (10 + 10 * MIN, A, 2, "running", ""),
                (20 + 10 * MIN, A, 3, "running", ""),
            ],
            &[
                (10, Opened, Restarted),
                (40, Resolved, Restarted),
                (20 + 10 * MIN, Opened, Restarted),
            ],
        ),
    ];
    for (steps, expected) in table {
        let events = check(Policy::default(), steps.iter().copied());
        assert_eq!(&brief(&events), expected, "looks {steps:?}");
    }
}

#[test]
fn an_incident_id_is_a_uuid_v7_of_the_opening() {
    let events = check(Policy::default(), [(0, A, 0, "exited", "")]);
    let id = uuid::Uuid::parse_str(&events[0].incident_id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let (s, ns) = id.get_timestamp().unwrap().to_unix();
    assert_eq!(UNIX_EPOCH + Duration::new(s, ns), wall(0));
}

#[test]
fn only_real_changes_need_saving() {
    let mut tracker = Tracker::new(Policy::default());
    assert!(!tracker.take_changed());
    feed(&mut tracker, [(0, A, 0, "running", "")]);
    assert!(tracker.take_changed(), "the first look seeds");
    assert!(!tracker.take_changed());
    feed(
        &mut tracker,
        (1..100).map(|i| (i * 10, A, 0, "running", "")),
    );
    assert!(!tracker.take_changed(), "a steady container writes nothing");
    feed(&mut tracker, [(1000, A, 0, "running", "starting")]);
    assert!(!tracker.take_changed(), "a streak is not saved");
    feed(&mut tracker, [(1010, A, 0, "exited", "")]);
    assert!(tracker.take_changed(), "an incident opened");
    feed(&mut tracker, [(1020, A, 0, "exited", "")]);
    assert!(!tracker.take_changed());
    tracker.oom("g", t(1030).mono);
    assert!(tracker.take_changed());
    tracker.oom("g", t(1040).mono);
    assert!(!tracker.take_changed(), "already marked");
}

#[test]
fn names_table() {
    let kinds = [
        (Restarted, "restarted"),
        (Unhealthy, "unhealthy"),
        (NotRunning, "not_running"),
        (CrashLoop, "crash_loop"),
    ];
    for (kind, name) in kinds {
        assert_eq!(kind.as_str(), name);
        let saved = serde_json::to_string(&SavedKind::from(kind)).unwrap();
        assert_eq!(saved, format!("\"{name}\""), "the file uses the same names");
    }
    assert!(Restarted < Unhealthy && Unhealthy < NotRunning && NotRunning < CrashLoop);
}

#[test]
fn status_counts_the_restarts_of_the_last_hour_whatever_the_window() {
    // A restart every 11 minutes: each one clean for longer than the
    // 10-minute window before it, so the window's count is never above 1.
    let restarts: Vec<u64> = (1..=5).map(|i| i * 11 * MIN).collect();
    let mut tracker = Tracker::new(Policy::default());
    feed(&mut tracker, restarting(&restarts, 30, 56 * MIN));
    let shown = |tracker: &Tracker, at: u64| {
        let saved = tracker.saved(t(at));
        saved.game("g", wall(at)).unwrap().restarts_last_hour
    };
    assert_eq!(shown(&tracker, 56 * MIN), 5);
    // Saved and loaded again, as `status` reads it.
    let loaded = Tracker::with_saved(Policy::default(), tracker.saved(t(56 * MIN)), t(56 * MIN));
    assert_eq!(shown(&loaded, 56 * MIN), 5);
    // An hour after the first, it no longer counts.
    assert_eq!(shown(&tracker, 71 * MIN + 1), 4);
    assert_eq!(shown(&tracker, 120 * MIN), 0);
}
