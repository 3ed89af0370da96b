//! How restarts are counted toward a crash loop: once per real restart
//! however many looks see it, and cleared by a clean run of the window
//! however rtinspect is run.

use super::*;

/// One look at game `g` with `State.StartedAt` `started`.
fn started(s: u64, count: u64, status: &'static str, started: &'static str) -> Look<'static> {
    Look {
        started_at: Some(started),
        ..look_at(t(s), A, count, status, "")
    }
}

#[test]
fn a_real_restart_counts_once_however_many_looks_see_it() {
    // A game under `--restart=always` that dies 5 s after each start: the
    // `die` raises RestartCount while Docker waits (`restarting`), the
    // `start` changes StartedAt; a tick may see either, both, or neither.
    let looks = [
        started(0, 0, "running", "S0"),
        // die 1 (nudged), its start (nudged), a tick.
        started(5, 1, "restarting", "S0"),
        started(5, 1, "running", "S1"),
        started(8, 1, "running", "S1"),
        // die 2, seen twice while Docker waits, then its start.
        started(10, 2, "restarting", "S1"),
        started(10, 2, "restarting", "S1"),
        started(11, 2, "running", "S2"),
        // die 3: a crash loop at the third restart.
        started(16, 3, "restarting", "S2"),
        started(16, 3, "running", "S3"),
    ];
    let mut tracker = Tracker::new(Policy::default());
    let events: Vec<IncidentEvent> = looks.iter().flat_map(|l| tracker.look(l)).collect();
    assert_eq!(
        brief(&events),
        [(5, Opened, Restarted), (16, Escalated, CrashLoop)]
    );
    assert_eq!(events[1].restarts_in_window, 3, "RestartCount is 3 too");

    // Looks that miss the wait see each start with its rise: once each.
    let looks = [
        started(0, 0, "running", "S0"),
        started(5, 1, "running", "S1"),
        started(10, 2, "running", "S2"),
        started(15, 3, "running", "S3"),
    ];
    let mut tracker = Tracker::new(Policy::default());
    let events: Vec<IncidentEvent> = looks.iter().flat_map(|l| tracker.look(l)).collect();
    assert_eq!(
        brief(&events),
        [(5, Opened, Restarted), (15, Escalated, CrashLoop)]
    );
    // A rise seen while restarting, then the next death before its start
    // was seen: two restarts, two counts.
    let looks = [
        started(0, 0, "running", "S0"),
        started(5, 1, "restarting", "S0"),
        started(12, 2, "restarting", "S1"),
        started(13, 2, "running", "S2"),
    ];
    let mut tracker = Tracker::new(Policy::default());
    let events: Vec<IncidentEvent> = looks.iter().flat_map(|l| tracker.look(l)).collect();
    assert_eq!(brief(&events), [(5, Opened, Restarted)]);
    assert_eq!(tracker.saved(t(13)).games["g"].restarts_in_window, 2);
    // A manual start (no rise, no wait) still counts one.
    let looks = [
        started(0, 0, "exited", "S0"),
        started(5, 0, "running", "S1"),
    ];
    let mut tracker = Tracker::new(Policy::default());
    looks.iter().for_each(|l| drop(tracker.look(l)));
    assert_eq!(tracker.saved(t(5)).games["g"].restarts_in_window, 1);
}

/// A game that restarts once at `restart` and then runs clean, looked at
/// every `every` seconds until `until`, by a tracker that is saved and
/// loaded again (through the bytes of the file) every `reload` seconds, as
/// `once` every minute or `run` restarted often does. The restarts in the
/// window at each restart's opening.
fn restarts_seen(restarts: &[u64], every: u64, until: u64, reload: u64) -> Vec<u32> {
    let mut tracker = Tracker::new(Policy::default());
    let mut opened = Vec::new();
    for s in (0..=until).step_by(every as usize) {
        if s > 0 && s % reload == 0 {
            let json = serde_json::to_string(&tracker.saved(t(s))).unwrap();
            tracker = Tracker::with_saved(
                Policy::default(),
                serde_json::from_str(&json).unwrap(),
                t(s),
            );
        }
        let count = restarts.iter().filter(|&&r| r <= s).count() as u64;
        for e in feed(&mut tracker, [(s, A, count, "running", "")]) {
            if e.change == Opened || e.change == Escalated {
                opened.push(e.restarts_in_window);
            }
        }
    }
    opened
}

#[test]
fn once_every_minute_clears_the_restart_count_after_a_clean_window() {
    // One restart, then a clean run far longer than the window, three
    // times over; each look by its own `once`.
    let restarts = [60, 60 + HOUR, 60 + 2 * HOUR];
    assert_eq!(restarts_seen(&restarts, 60, 3 * HOUR, 60), [1, 1, 1]);
    // The same under `run` restarted every five minutes (shorter than the
    // window), looking every 15 s; and under one `run`.
    assert_eq!(restarts_seen(&restarts, 15, 3 * HOUR, 300), [1, 1, 1]);
    assert_eq!(restarts_seen(&restarts, 15, 3 * HOUR, u64::MAX), [1, 1, 1]);
}

#[test]
fn a_count_without_an_incident_is_saved_with_its_clean_run() {
    // The clean run is saved while restarts are counted, and only then: a
    // game that flaps with neither count nor incident writes nothing.
    let mut tracker = Tracker::new(Policy::default());
    feed(
        &mut tracker,
        [(0, A, 0, "running", ""), (10, A, 1, "running", "")],
    );
    feed(&mut tracker, [(50, A, 1, "running", "")]);
    let saved = tracker.saved(t(50));
    assert!(saved.games["g"].incident.is_none(), "resolved after 30 s");
    assert!(saved.games["g"].clean_since_ms.is_some());
    tracker.take_changed();
    feed(&mut tracker, [(10 + 10 * MIN, A, 1, "running", "")]);
    assert!(tracker.take_changed(), "the count cleared");
    assert!(
        tracker.saved(t(10 + 10 * MIN)).games["g"]
            .clean_since_ms
            .is_none()
    );
    feed(&mut tracker, [(700, A, 1, "running", "starting")]);
    feed(&mut tracker, [(710, A, 1, "running", "")]);
    assert!(!tracker.take_changed(), "a streak alone is not saved");
}

#[test]
fn three_healthy_deploys_open_nothing() {
    // Each container replaced while it ran (healthy, without healthcheck,
    // or with one still starting): a deploy, not a crash.
    for health in ["", "healthy", "starting"] {
        let steps = [
            (0, A, 0, "running", health),
            (10, B, 0, "running", health),
            (20, C, 0, "running", health),
            (30, D, 0, "running", health),
            (40, D, 0, "running", health),
        ];
        assert_eq!(brief(&check(Policy::default(), steps)), [], "{health:?}");
    }
    // Nor containers created and replaced before they ever started: not
    // running, but no crash loop.
    let steps = [
        (0, A, 0, "created", ""),
        (10, B, 0, "created", ""),
        (20, C, 0, "created", ""),
        (30, D, 0, "running", ""),
    ];
    let events = check(Policy::default(), steps);
    assert_eq!(brief(&events), [(0, Opened, NotRunning)]);
}

/// Containers that each end `how` and are replaced, every 10 s; the
/// tracker told of a stop through the API when `by_api`.
fn replaced_after(how: (&'static str, &'static str), by_api: bool) -> Vec<IncidentEvent> {
    let mut tracker = Tracker::new(Policy::default());
    let mut events = Vec::new();
    for (i, c) in [A, B, C, D].into_iter().enumerate() {
        let at = i as u64 * 10;
        events.extend(feed(&mut tracker, [(at, c, 0, "running", "")]));
        if by_api {
            events.extend(tracker.ended_by_api(Some("g"), c, t(at + 1)));
        }
        events.extend(feed(&mut tracker, [(at + 5, c, 0, how.0, how.1)]));
    }
    events
}

#[test]
fn a_replacement_counts_only_when_the_container_it_replaces_ended_by_itself() {
    // Crashed, each replaced: the third replacement is a crash loop.
    let events = replaced_after(("exited", ""), false);
    assert_eq!(
        brief(&events),
        [(5, Opened, NotRunning), (30, Escalated, CrashLoop)]
    );
    assert_eq!(events[1].restarts_in_window, 3);
    assert_eq!(events[1].container_id, D);
    one_incident(&events);
    // Unhealthy when replaced, and not stopped through the API: it counts.
    let events = replaced_after(("running", "unhealthy"), false);
    assert_eq!(
        brief(&events),
        [(5, Opened, Unhealthy), (30, Escalated, CrashLoop)]
    );
    // Stopped through the API (a deploy): a stopped end opens nothing, and
    // its replacement counts nothing.
    let events = replaced_after(("exited", ""), true);
    assert_eq!(brief(&events), []);
    // Unhealthy after the stop was told (it did not end), then replaced:
    // the next stop resolves it, the operator having taken over.
    let events = replaced_after(("running", "unhealthy"), true);
    assert_eq!(
        brief(&events),
        [
            (5, Opened, Unhealthy),
            (11, Resolved, Unhealthy),
            (15, Opened, Unhealthy),
            (21, Resolved, Unhealthy),
            (25, Opened, Unhealthy),
            (31, Resolved, Unhealthy),
            (35, Opened, Unhealthy)
        ]
    );
    // A mark for another container, or another game, changes nothing.
    let mut tracker = Tracker::new(Policy::default());
    feed(&mut tracker, [(0, A, 0, "exited", "")]);
    tracker.take_changed();
    assert!(tracker.ended_by_api(Some("g"), B, t(1)).is_empty());
    assert!(tracker.ended_by_api(Some("other"), A, t(1)).is_empty());
    assert!(!tracker.take_changed());
    let resolved = tracker.ended_by_api(None, A, t(2));
    assert!(tracker.take_changed(), "found by its last container");
    assert_eq!(brief(&resolved), [(2, Resolved, NotRunning)]);
    assert_eq!(resolved[0].resolution, Some(Resolution::Stopped));
    assert_eq!(resolved[0].reason, Some(EndReason::Stopped));
    // A container whose death was counted already (`restarting`) and then
    // replaced counts once.
    let steps = [
        (0, A, 0, "running", ""),
        (10, A, 1, "restarting", ""),
        (20, B, 0, "running", ""),
    ];
    let events = check(Policy::default(), steps);
    assert_eq!(brief(&events), [(10, Opened, Restarted)]);
    assert_eq!(events[0].restarts_in_window, 1);
}
