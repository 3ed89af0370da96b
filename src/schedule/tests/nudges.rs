//! The schedule's handling of Docker events: merging, the record set as it
//! is now, reads of the records, rechecks.

use super::*;

#[test]
fn a_nudge_during_a_tick_is_taken_between_its_records() {
    let records = vec![rec("a", 1), rec("b", 2), rec("c", 3)];
    let mut r = Run::new(Follow::Labels, false, records);
    for n in 1..=3 {
        r.answer(n, running(n, 0));
    }
    r.during_inspect = vec![ev(3, "die", Some("c"))];
    r.until(10);
    assert_eq!(
        r.take_log(),
        vec![
            "list tick",
            "inspect a",
            "a healthy",
            "inspect c",
            "c healthy",
            "save",
            "inspect b",
            "b healthy",
            "inspect c",
            "c healthy",
            "tick ended: 3 records, 0 events, 0 missing, 0 errors",
        ],
        "the nudged record goes before the tick's next one"
    );
}

#[test]
fn a_flood_of_nudges_for_one_container_is_one_inspect_and_one_more_at_most() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1), rec("b", 2)]);
    r.answer(1, running(1, 0));
    r.answer(2, running(2, 0));
    r.until(10);
    r.take_log();
    for _ in 0..1000 {
        r.nudge(ev(1, "die", Some("a")));
    }
    // A second flood arrives while the first inspect is under way.
    r.during_inspect = vec![ev(1, "die", Some("a")); 500];
    r.until(20);
    assert_eq!(
        r.take_log(),
        vec!["inspect a", "a healthy", "inspect a", "a healthy"]
    );
}

#[test]
fn ticks_stay_on_time_and_every_record_is_inspected_under_a_flood_of_nudges() {
    // Three records, a 1 s interval, one container whose inspect takes
    // 50 ms, and a `die` for it every 10 ms for 20 s.
    let mut r = Run::new(
        Follow::Labels,
        false,
        vec![rec("a", 1), rec("b", 2), rec("c", 3)],
    );
    r.schedule.settings.interval = Duration::from_secs(1);
    for n in 1..=3 {
        r.answer(n, running(n, 0));
    }
    r.inspect_ms = 50;
    r.until(10);
    // Events arrive during every inspect, and between them.
    r.flood = Some(ev(1, "die", Some("a")));
    let mut starts = Vec::new();
    while r.ms() < 20_000 {
        r.nudge(ev(1, "die", Some("a")));
        let ticks = r.ticks;
        let t = r.ms() as u64 + 10;
        r.until(t);
        if r.ticks > ticks {
            starts.push(r.ms());
        }
    }
    assert!(r.ticks >= 20, "{} ticks in 20 s", r.ticks);
    let gaps: Vec<u128> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g <= 1100), "ticks on time: {gaps:?}");
    let inspects = |g: &str| {
        r.log
            .iter()
            .filter(|l| **l == format!("inspect {g}"))
            .count()
    };
    assert!(
        inspects("b") >= 20 && inspects("c") >= 20,
        "{} {}",
        inspects("b"),
        inspects("c")
    );
    // One inspect under way and one pending at most: never more than
    // the time allows, 20 a second at 50 ms each.
    assert!(inspects("a") <= 20 * 20 + 1, "{}", inspects("a"));
}

#[test]
fn label_mode_ignores_containers_without_the_label_at_no_cost() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    let reads = r.reads;
    for _ in 0..1000 {
        r.nudge(ev(9, "die", None));
    }
    r.until(5000);
    assert_eq!(r.reads, reads, "no read of the records");
    assert_eq!(r.docker.asked(), vec![id(1)], "no inspect");
}

#[test]
fn label_mode_a_game_started_after_the_tick_is_seeded_at_its_start_and_reported_at_its_death() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(2, running(2, 0));
    r.nudge(ev(2, "create", Some("new")));
    r.nudge(ev(2, "start", Some("new")));
    r.until(1100);
    assert_eq!(r.take_log(), vec!["inspect new", "new healthy", "save"]);
    r.answer(2, Answer::status(&id(2), 0, "exited"));
    r.nudge(ev(2, "die", Some("new")));
    r.until(1110);
    assert_eq!(
        r.take_log(),
        vec!["inspect new", "new event exited (nudged)"]
    );
    assert_eq!(r.reads, 1, "no read of the records was needed");
}

#[test]
fn label_mode_a_die_of_a_container_its_game_has_replaced_is_no_event() {
    // g's container 1 is seen by a tick; a newer container 2 is created
    // for g; 1 exits.
    let mut r = Run::new(Follow::Labels, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.nudge(ev(2, "create", Some("g")));
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.records = Some(vec![rec("g", 2)]);
    r.nudge(ev(1, "die", Some("g")));
    r.until(3000);
    assert_eq!(
        r.take_log(),
        vec!["list nudges"],
        "the record set was read, not container 1 inspected"
    );
    assert_eq!(
        r.docker.asked(),
        vec![id(1)],
        "container 1 was inspected only by the tick"
    );
}

#[test]
fn a_stale_nudge_is_dropped_when_its_game_moved_to_another_container_meanwhile() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.answer(2, Answer::status(&id(2), 0, "created"));
    r.nudge(ev(1, "die", Some("g")));
    r.nudge(ev(2, "create", Some("g")));
    r.until(20);
    assert!(
        r.take_log().is_empty(),
        "neither the old nor the created container is inspected"
    );
}

#[test]
fn database_mode_a_nudge_is_judged_against_the_records_as_they_are_now() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1), rec("h", 2)]);
    r.answer(1, running(1, 0));
    r.answer(2, running(2, 0));
    r.until(200);
    r.take_log();
    // g's record is set to stopped, then its container stops.
    r.records = Some(vec![rec("h", 2)]);
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", None));
    r.until(400);
    assert_eq!(r.take_log(), vec!["list nudges"], "no inspect, no event");
    // h's container dies while its record stands: reported at once.
    r.answer(2, Answer::status(&id(2), 0, "exited"));
    r.nudge(ev(2, "die", None));
    r.until(600);
    assert_eq!(
        r.take_log(),
        vec!["list nudges", "inspect h", "h event exited (nudged)"]
    );
}

#[test]
fn database_mode_a_record_inserted_after_the_tick_is_found_by_its_start() {
    let mut r = Run::new(Follow::Database, false, vec![]);
    r.until(10);
    r.take_log();
    r.records = Some(vec![rec("new", 5)]);
    r.answer(5, running(5, 0));
    r.nudge(ev(5, "start", None));
    r.until(1500);
    assert_eq!(
        r.take_log(),
        vec!["list nudges", "inspect new", "new healthy", "save"]
    );
    r.answer(5, Answer::status(&id(5), 0, "exited"));
    r.nudge(ev(5, "die", None));
    r.until(1600);
    assert_eq!(
        r.take_log(),
        vec!["list nudges", "inspect new", "new event exited (nudged)"]
    );
}

#[test]
fn a_burst_of_unknown_ids_reads_the_records_at_most_once_a_second() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    let before = r.reads;
    let mut t = 10;
    for i in 0..1000u32 {
        let mut e = ev(9, "die", None);
        e.id = format!("{i:064x}");
        r.nudge(e);
        if i % 100 == 0 {
            t += 350;
            r.until(t);
        }
    }
    r.until(t + 1000);
    let reads = r.reads - before;
    let seconds = (r.ms() as usize - 10).div_ceil(1000);
    assert!(reads <= seconds, "{reads} reads in {seconds} s");
    assert!(reads >= 2, "{reads}");
    assert!(
        r.docker.asked().iter().all(|c| *c == id(1)),
        "ids that stay unknown are never inspected"
    );
}

#[test]
fn when_a_read_for_nudges_fails_known_records_are_still_inspected() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(200);
    r.take_log();
    r.records = None;
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", None));
    r.nudge(ev(7, "die", None));
    r.until(2000);
    assert_eq!(
        r.take_log(),
        vec!["list nudges", "inspect g", "g event exited (nudged)"]
    );
}

#[test]
fn a_bare_health_status_that_still_looks_healthy_is_inspected_again_a_second_later() {
    let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
    r.answer(1, running(1, 0));
    r.until(10);
    r.take_log();
    r.nudge(ev(1, "health_status", Some("a")));
    r.until(500);
    assert_eq!(r.take_log(), vec!["inspect a", "a healthy"]);
    r.answer(1, Answer::running(&id(1), 0, "unhealthy"));
    r.until(1100);
    assert_eq!(r.take_log(), vec!["inspect a", "a event running (nudged)"]);
    r.until(5000);
    assert!(r.take_log().is_empty(), "rechecked once only");
}

#[test]
fn waiting_events_past_the_bound_turn_into_one_full_tick() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(2000);
    let ticks = r.ticks;
    r.schedule.last_read = Some((r.now, Duration::ZERO));
    for i in 0..(WAITING_MAX as u32 + 10) {
        let mut e = ev(9, "die", None);
        e.id = format!("{i:064x}");
        r.nudge(e);
    }
    assert_eq!(r.schedule.waiting.len(), WAITING_MAX);
    r.until(2010);
    assert_eq!(r.ticks, ticks + 1, "a resync tick");
}

#[test]
fn slow_reads_of_the_records_starve_neither_the_ticks_nor_the_inspects() {
    // Reads that take longer than the gap between them, and an event
    // during each: the work a read makes ready goes before the next.
    for follow in [Follow::Database, Follow::Labels] {
        let records: Vec<RuntimeRecord> = (1..=9).map(|n| rec(&format!("g{n}"), n)).collect();
        let mut r = Run::new(follow, false, records);
        r.schedule.settings.interval = Duration::from_secs(2);
        for n in 1..=9 {
            r.answer(n, running(n, 0));
        }
        r.list_ms = 1200;
        let known = ev(1, "health_status", Some("g1"));
        let unknown = ev(15, "die", Some("other"));
        while r.ms() < 60_000 {
            r.nudge(known.clone());
            r.nudge(unknown.clone());
            let t = r.ms() as u64 + 100;
            r.until(t);
        }
        let ends = r.log.iter().filter(|l| l.starts_with("tick ended")).count();
        assert!(ends >= 15, "{follow:?}: {ends} ticks ended in 60 s");
        let inspects = r.log.iter().filter(|l| *l == "inspect g1").count();
        assert!(
            inspects >= 15,
            "{follow:?}: {inspects} inspects of the nudged record"
        );
    }
}

#[test]
fn while_reads_of_the_records_fail_known_records_are_judged_without_one() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(200);
    r.records = None;
    r.nudge(ev(1, "die", None));
    r.until(400);
    let reads = r.reads;
    r.take_log();
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.nudge(ev(1, "die", None));
    r.nudge(ev(7, "die", None));
    r.until(600);
    assert_eq!(r.take_log(), vec!["inspect g", "g event exited (nudged)"]);
    assert_eq!(
        r.reads, reads,
        "no read while they fail, until the next tick's"
    );
}

#[test]
fn database_mode_a_health_recheck_waits_for_a_read_of_the_records_too() {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
    r.answer(1, running(1, 0));
    r.until(200);
    r.take_log();
    r.nudge(ev(1, "health_status", None));
    r.until(500);
    assert_eq!(r.take_log(), vec!["list nudges", "inspect g", "g healthy"]);
    // The record is stopped before the recheck; the container turns unhealthy.
    r.records = Some(vec![]);
    r.answer(1, Answer::running(&id(1), 0, "unhealthy"));
    r.until(2000);
    assert_eq!(
        r.take_log(),
        vec!["list nudges"],
        "no inspect of a record gone"
    );
}

#[test]
fn label_mode_records_added_by_events_are_bounded_between_listings() {
    let mut r = Run::new(Follow::Labels, false, vec![]);
    r.until(10);
    let ticks = r.ticks;
    for i in 0..(ADDED_MAX as u32 + 100) {
        let mut e = ev(9, "create", Some("g"));
        e.id = format!("{i:064x}");
        e.game = Some(format!("g{i}"));
        r.nudge(e);
    }
    assert_eq!(r.schedule.records.len(), ADDED_MAX);
    r.until(1100);
    assert_eq!(r.ticks, ticks + 1, "a full tick lists them instead");
}
