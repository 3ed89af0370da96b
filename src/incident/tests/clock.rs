//! The tracker's two clocks: every age, window and reminder on the
//! monotonic one, whatever the wall clock does; saved wall-clock times
//! checked when they are loaded again.

use super::*;

/// The fake clocks `s` seconds after their start, the wall clock stepped
/// `step` seconds (ahead when positive).
fn stepped(s: u64, step: i64) -> Stamp {
    let t = t(s);
    let by = Duration::from_secs(step.unsigned_abs());
    Stamp {
        wall: if step < 0 { t.wall - by } else { t.wall + by },
        mono: t.mono,
    }
}

/// One look at game `g` at `at`.
fn look(tracker: &mut Tracker, at: Stamp, step: (&str, u64, &str, &str)) -> Vec<IncidentEvent> {
    let (container_id, restart_count, status, health) = step;
    tracker.look(&look_at(at, container_id, restart_count, status, health))
}

/// The changes of `events`, by the monotonic second of their look, found
/// from the wall time and the step it was made with.
fn changes(events: &[(u64, IncidentEvent)]) -> Vec<(u64, Change, Kind)> {
    events.iter().map(|(s, e)| (*s, e.change, e.kind)).collect()
}

#[test]
fn a_wall_clock_an_hour_ahead_resolves_no_crash_loop_early() {
    // A crash loop 7 s into its window; then only the wall clock jumps an
    // hour ahead. The loop must run clean its whole window first.
    let mut tracker = Tracker::new(Policy::default());
    let mut events = Vec::new();
    for (s, count) in [(0, 0), (2, 1), (4, 2), (7, 3)] {
        let e = look(&mut tracker, t(s), (A, count, "running", ""));
        events.extend(e.into_iter().map(|e| (s, e)));
    }
    for s in (8..=610).step_by(6) {
        let e = look(&mut tracker, stepped(s, 3600), (A, 3, "running", ""));
        events.extend(e.into_iter().map(|e| (s, e)));
    }
    assert_eq!(
        changes(&events),
        [
            (2, Opened, Restarted),
            (7, Escalated, CrashLoop),
            (608, Resolved, CrashLoop)
        ],
        "resolved 10 minutes after the clean run began (7 s), not at the jump"
    );
}

#[test]
fn a_wall_clock_an_hour_back_holds_no_resolution() {
    let policy = Policy {
        recover_after: Duration::from_secs(3),
        ..Policy::default()
    };
    let mut tracker = Tracker::new(policy);
    let mut events = Vec::new();
    let steps = [
        (0, 0, "exited"),
        (5, 0, "running"),
        (6, -3600, "running"),
        (8, -3600, "running"),
    ];
    for (s, step, status) in steps {
        let e = look(&mut tracker, stepped(s, step), (A, 0, status, ""));
        events.extend(e.into_iter().map(|e| (s, e)));
    }
    assert_eq!(
        changes(&events),
        [(0, Opened, NotRunning), (8, Resolved, NotRunning)],
        "3 s clean on the monotonic clock"
    );
    // The event still says the wall clock's time of its look.
    assert_eq!(events[1].1.at, stepped(8, -3600).wall);
}

#[test]
fn a_wall_clock_that_jumps_ahead_and_back_skips_no_reminder() {
    let policy = Policy {
        remind: Some(Duration::from_secs(10)),
        ..Policy::default()
    };
    let mut tracker = Tracker::new(policy);
    let mut events = Vec::new();
    for s in 0..=35 {
        // One second an hour ahead, then back.
        let step = if s == 5 { 3600 } else { 0 };
        let e = look(&mut tracker, stepped(s, step), (A, 0, "exited", ""));
        events.extend(e.into_iter().map(|e| (s, e)));
    }
    assert_eq!(
        changes(&events),
        [
            (0, Opened, NotRunning),
            (10, Reminder, NotRunning),
            (20, Reminder, NotRunning),
            (30, Reminder, NotRunning),
        ]
    );
    // What is saved is the due time as the wall clock says it now.
    let saved = serde_json::to_value(tracker.saved(t(35))).unwrap();
    let due = saved["games"]["g"]["incident"]["next_reminder_ms"].as_u64();
    let want = wall(40).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(due, Some(want));
}

/// `before`'s state, saved at `saved_at` and loaded at `loaded_at` through
/// the bytes of the file, under `policy`.
fn restarted(before: &Tracker, policy: Policy, saved_at: Stamp, loaded_at: Stamp) -> Tracker {
    let json = serde_json::to_string(&before.saved(saved_at)).unwrap();
    Tracker::with_saved(policy, serde_json::from_str(&json).unwrap(), loaded_at)
}

#[test]
fn saved_times_count_as_that_long_ago_across_a_restart() {
    let mut before = Tracker::new(Policy::default());
    feed(
        &mut before,
        [(0, A, 0, "exited", ""), (10, A, 0, "running", "")],
    );
    // Saved at 20 s; loaded by another process 15 s later.
    let mut after = restarted(&before, Policy::default(), t(20), t(35));
    assert!(feed(&mut after, [(39, A, 0, "running", "")]).is_empty());
    assert_eq!(
        brief(&feed(&mut after, [(40, A, 0, "running", "")])),
        [(40, Resolved, NotRunning)],
        "30 s after the clean run began, before the restart"
    );
}

#[test]
fn a_saved_time_in_the_future_counts_from_now() {
    let policy = Policy {
        remind: Some(Duration::from_secs(HOUR)),
        ..Policy::default()
    };
    // Seen and saved while the wall clock was a day ahead, loaded once it
    // is right.
    let mut before = Tracker::new(policy);
    look(&mut before, stepped(0, 86_400), (A, 0, "exited", ""));
    look(&mut before, stepped(10, 86_400), (A, 0, "running", ""));
    let mut after = restarted(&before, policy, stepped(20, 86_400), t(25));
    assert!(
        feed(&mut after, [(50, A, 0, "running", "")]).is_empty(),
        "the clean run counts from the load, not from a day ahead"
    );
    assert_eq!(
        brief(&feed(&mut after, [(55, A, 0, "running", "")])),
        [(55, Resolved, NotRunning)]
    );
    // A reminder saved a day ahead is due at most one period from the load.
    let mut after = restarted(&before, policy, stepped(20, 86_400), t(25));
    let events = feed(
        &mut after,
        [(26, A, 0, "exited", ""), (25 + HOUR, A, 0, "exited", "")],
    );
    assert_eq!(brief(&events), [(25 + HOUR, Reminder, NotRunning)]);
    // The opening as reported is never later than the load; its id stays.
    assert_eq!(events[0].started_at, wall(25));
}

#[test]
fn started_at_keeps_its_microseconds_across_a_restart() {
    let mut before = Tracker::new(Policy::default());
    let at = Stamp {
        wall: wall(0) + Duration::from_micros(123_456),
        mono: t(0).mono,
    };
    let opened = look(&mut before, at, (A, 0, "exited", ""));
    let mut after = restarted(&before, Policy::default(), t(1), t(2));
    let escalated = feed(&mut after, [(3, A, 5, "exited", "")]);
    assert_eq!(brief(&escalated), [(3, Escalated, CrashLoop)]);
    assert_eq!(escalated[0].started_at, opened[0].started_at);
    assert_eq!(
        crate::event::rfc3339_micros(escalated[0].started_at),
        "2025-06-15T15:06:40.123456Z"
    );
}

#[test]
fn saved_times_at_the_ends_of_time_load_without_harm() {
    // A hand-edited or damaged file: times at 0 and at u64::MAX.
    for (at, due) in [(0u64, 0u64), (u64::MAX, u64::MAX)] {
        let json = format!(
            r#"{{"games":{{"g":{{"container_id":"{A}","restarts_in_window":2,"clean_since_ms":{at},"oom_at_ms":{at},"gone_since_ms":{at},"incident":{{"id":"x","kind":"not_running","started_at_ms":{at},"started_at_us":{at},"oom":false,"next_reminder_ms":{due}}}}}}}}}"#
        );
        let saved: SavedIncidents = serde_json::from_str(&json).unwrap();
        let policy = Policy {
            remind: Some(Duration::from_secs(HOUR)),
            ..Policy::default()
        };
        let mut tracker = Tracker::with_saved(policy, saved, t(100));
        let events = feed(&mut tracker, [(101, A, 0, "exited", "")]);
        assert!(events.iter().all(|e| e.started_at <= wall(100)), "{at}");
        tracker.saved(t(102));
        tracker.listed(&HashSet::new(), t(103));
    }
}
