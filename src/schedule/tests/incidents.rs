//! The schedule and the incident tracker: the clocks it is given, games
//! that go, writes of the state directory, and what Docker events tell it.

use super::*;
use crate::incident::Policy;

/// A run that tracks incidents under the default policy.
fn tracking(follow: Follow, records: Vec<RuntimeRecord>) -> Run {
    let mut r = Run::new(follow, false, records);
    r.schedule.incidents = Some(Tracker::new(Policy::default()));
    r
}

/// The incident events logged, without the facts and the rest.
fn incident_lines(log: &[String]) -> Vec<&str> {
    log.iter()
        .filter(|l| l.contains(" incident_"))
        .map(String::as_str)
        .collect()
}

#[test]
fn incident_ages_follow_the_monotonic_clock_whatever_the_wall_clock_does() {
    // Opened at the first tick, running clean from the second (15 s): 30 s
    // clean is the tick at 45 s, with the wall clock an hour ahead from
    // 16 s or an hour behind.
    for step in [3600, -3600] {
        let mut r = tracking(Follow::Database, vec![rec("g", 1)]);
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.until(10);
        r.answer(1, running(1, 0));
        r.until(16_000);
        r.wall_step = step;
        r.until(44_000);
        assert_eq!(
            incident_lines(&r.take_log()),
            ["g incident_opened not_running"],
            "wall clock stepped {step} s"
        );
        r.until(46_000);
        assert_eq!(
            incident_lines(&r.take_log()),
            ["g incident_resolved not_running"],
            "wall clock stepped {step} s"
        );
    }
}

#[test]
fn a_game_that_leaves_the_records_is_resolved_as_removed_with_nothing_seen() {
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(10);
    r.records = Some(vec![]);
    // Gone from the listing at 15 s: 30 s later, the tick at 45 s.
    r.until(44_000);
    assert_eq!(
        incident_lines(&r.take_log()),
        ["g incident_opened not_running"]
    );
    r.until(46_000);
    let log = r.take_log();
    assert_eq!(incident_lines(&log), ["g incident_resolved not_running"]);
    assert!(log.contains(&"save incidents".to_owned()), "{log:?}");
    let resolved = &r.incidents[1];
    let id_of = |e: &HealthEvent| e.incident.as_ref().unwrap().incident_id.clone();
    assert_eq!(id_of(resolved), id_of(&r.incidents[0]));
    let envelope: serde_json::Value = serde_json::from_str(resolved.envelope().as_str()).unwrap();
    assert_eq!(envelope["details"]["resolution"], "removed");
    assert!(envelope["details"].get("seen").is_none(), "{envelope}");
    assert_eq!(envelope["container_id"], id(1));
    r.until(120_000);
    assert!(incident_lines(&r.take_log()).is_empty(), "resolved once");
}

#[test]
fn a_container_gone_404_for_recover_after_is_resolved_as_removed() {
    let mut r = tracking(Follow::Database, vec![rec("g", 1)]);
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(10);
    r.answer(1, Answer::NotFound);
    r.until(44_000);
    assert_eq!(
        incident_lines(&r.take_log()),
        ["g incident_opened not_running"]
    );
    r.until(46_000);
    assert_eq!(
        incident_lines(&r.take_log()),
        ["g incident_resolved not_running"]
    );
    assert_eq!(r.incidents[1].resolution.as_deref(), Some("removed"));
}

#[test]
fn a_container_removed_as_it_died_is_judged_from_its_die() {
    // `docker run --rm`: by the inspect its `die` asks for, the container
    // is gone; the `die` said how it ended.
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(1, Answer::NotFound);
    let mut die = ev(1, "die", Some("g"));
    die.exit_code = Some(3);
    r.nudge(die);
    r.until(20);
    let log = r.take_log();
    assert_eq!(
        log[..3],
        [
            "inspect g",
            "g event exited (nudged)",
            "g incident_opened not_running"
        ],
        "{log:?}"
    );
    let fact = r.facts.last().unwrap();
    assert_eq!(fact.details.as_ref().and_then(|d| d.exit_code), Some(3));
    assert_eq!(fact.container_id, id(1));
    // Without a `die`, a 404 is a container missing, as before.
    r.nudge(ev(1, "start", Some("g")));
    r.until(30);
    assert_eq!(r.take_log(), ["inspect g", "g missing"]);
}

#[test]
fn a_listing_begun_before_a_create_does_not_undo_it() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.answer(2, running(2, 0));
    assert!(matches!(
        r.schedule.next(r.now),
        Action::List(ListFor::Tick)
    ));
    // The create of g's new container arrives while the listing is under way.
    r.now += Duration::from_millis(1);
    r.nudge(ev(2, "create", Some("g")));
    r.input(Input::Listed(Some(vec![rec("g", 1)]), UNIX_EPOCH));
    r.until(10);
    assert_eq!(r.docker.asked(), [id(2)], "the created one is g's record");
    // A listing begun after it is the records as they are.
    r.until(15_010);
    assert_eq!(r.docker.asked(), [id(2), id(1)]);
}

/// Game `g`'s containers 1 to 4, each replaced after it exited, every 20
/// s; with `events` Docker's events of an end through the API before each
/// `die`. The incident events.
fn deploys(events: &[&str]) -> Vec<String> {
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    for n in 1..=3u8 {
        let start = u64::from(n) * 20_000;
        r.until(start);
        for action in events {
            let mut e = ev(n, action, Some("g"));
            e.signal = Some("15".into());
            r.nudge(e);
        }
        r.answer(n, Answer::status(&id(n), 0, "exited"));
        r.nudge(ev(n, "die", Some("g")));
        r.until(start + 100);
        r.answer(n + 1, running(n + 1, 0));
        r.nudge(ev(n + 1, "create", Some("g")));
        r.nudge(ev(n + 1, "start", Some("g")));
        r.until(start + 200);
    }
    r.take_log()
        .into_iter()
        .filter(|l| l.contains(" incident_"))
        .collect()
}

#[test]
fn a_replacement_of_a_container_stopped_through_the_api_is_no_crash() {
    assert_eq!(
        deploys(&[]),
        [
            "g incident_opened not_running",
            "g incident_escalated crash_loop"
        ],
        "three containers that died, replaced: a crash loop"
    );
    // A kill or stop before each die: stopped ends, which open nothing,
    // and replacements of them, which count nothing.
    assert_eq!(deploys(&["kill"]), Vec::<String>::new());
    assert_eq!(deploys(&["stop"]), Vec::<String>::new());
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    let mut usr1 = ev(1, "kill", Some("g"));
    usr1.signal = Some("10".into());
    r.nudge(usr1);
    r.until(5000);
    assert_eq!(
        r.take_log(),
        Vec::<String>::new(),
        "a signal it survives ends nothing"
    );
    let mut term = ev(1, "kill", Some("g"));
    term.signal = Some("15".into());
    r.nudge(term);
    r.until(5010);
    assert_eq!(
        r.take_log(),
        Vec::<String>::new(),
        "a kill alone ends nothing yet"
    );
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", Some("g")));
    r.until(5020);
    assert_eq!(
        r.take_log(),
        ["save incidents", "inspect g", "g event exited (nudged)"],
        "its die: SIGTERM ended it, which opens nothing"
    );
}

#[test]
fn saves_are_written_at_most_once_a_second_however_many_events_arrive() {
    // 400 games started one at a time, 20 ms apart (label mode).
    let mut r = tracking(Follow::Labels, vec![]);
    r.until(10);
    r.take_log();
    for n in 0..400u32 {
        let at = 10 + u64::from(n) * 20;
        r.until(at);
        let mut e = ev(1, "start", Some("g"));
        e.id = format!("{n:064x}");
        e.game = Some(format!("g{n}"));
        r.docker.set(&e.id, Answer::running(&e.id, 0, ""));
        r.nudge(e);
    }
    r.until(10_000);
    let log = r.take_log();
    let count = |what: &str| log.iter().filter(|l| *l == what).count();
    assert_eq!(count("inspect g399"), 1);
    // 8 seconds of events and the tick at 15 s not yet: one write a second.
    assert!(
        (8..=10).contains(&count("save")),
        "{} baselines",
        count("save")
    );
    assert!(
        (8..=10).contains(&count("save incidents")),
        "{} incidents",
        count("save incidents")
    );
    // The last change is written too.
    assert_eq!(log.last().map(String::as_str), Some("save incidents"));
    assert_eq!(r.schedule.inspector().baselines().len(), 400);
}

#[test]
fn a_failed_save_is_tried_again_at_each_tick_until_it_succeeds() {
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    // A full disk: the incident's write fails.
    r.saves_fail = true;
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", Some("g")));
    r.until(14_000);
    let log = r.take_log();
    let saves = |log: &[String]| log.iter().filter(|l| *l == "save incidents").count();
    assert_eq!(saves(&log), 1, "not every second: {log:?}");
    // Each tick tries again while it fails, and once more once it works.
    r.until(16_000);
    assert_eq!(saves(&r.take_log()), 1, "the tick at 15 s");
    r.saves_fail = false;
    r.until(31_000);
    assert_eq!(saves(&r.take_log()), 1, "the tick at 30 s");
    r.until(100_000);
    assert_eq!(saves(&r.take_log()), 0, "saved: nothing more to write");
}

#[test]
fn whatever_changed_is_written_before_the_loop_stops() {
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", Some("g")));
    r.until(20);
    assert!(!r.take_log().contains(&"save incidents".to_owned()));
    r.input(Input::Shutdown);
    r.until(30);
    assert_eq!(r.take_log(), ["save incidents", "stop"]);
}

#[test]
fn a_write_that_fails_as_the_loop_stops_is_tried_once() {
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.saves_fail = true;
    r.schedule.settings.once = true;
    r.until(10);
    assert_eq!(
        r.take_log()[3..],
        [
            "tick ended: 1 records, 0 events, 0 missing, 0 errors",
            "save",
            "save incidents",
            "stop"
        ]
    );
}

#[test]
fn a_replayed_stop_tells_the_tracker_and_asks_for_no_inspect() {
    // A kill, its die and the stop, replayed from `since` after a restart
    // of rtinspect: the game was stopped while it was down.
    let mut r = tracking(Follow::Labels, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    for action in ["kill", "die", "stop"] {
        let mut e = ev(1, action, Some("g"));
        e.signal = Some("15".into());
        e.exit_code = Some(143);
        e.replayed = true;
        e.at = UNIX_EPOCH + Duration::from_secs(5);
        r.nudge(e);
    }
    // (A save waits for its gap of a second.)
    r.until(1100);
    assert_eq!(r.take_log(), ["save incidents"], "told, not inspected");
    assert_eq!(
        r.schedule.event_cursor(),
        Some(UNIX_EPOCH + Duration::from_secs(5))
    );
    // The tick finds it exited: stopped, which opens nothing.
    r.until(15_100);
    let log = r.take_log();
    assert!(log.iter().any(|l| l == "inspect g"), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("incident_")), "{log:?}");
}
