//! What a stop through the API does to incidents: a stopped end opens
//! nothing and counts no restart, an incident open when its game is
//! stopped resolves as `stopped`, and every change about an end says how
//! the container ended.

use super::*;

const CRASH: EndReason = EndReason::Crashed { exit_code: 3 };

/// One look at game `g` with its end as the classifier tells it.
fn look(
    s: u64,
    count: u64,
    status: &'static str,
    started: &'static str,
    end: Option<EndReason>,
) -> Look<'static> {
    Look {
        started_at: Some(started),
        end,
        ..look_at(t(s), A, count, status, "")
    }
}

fn looks(tracker: &mut Tracker, looks: &[Look<'static>]) -> Vec<IncidentEvent> {
    looks.iter().flat_map(|l| tracker.look(l)).collect()
}

#[test]
fn a_stopped_end_opens_nothing_and_a_crash_opens_with_its_reason() {
    let mut tracker = Tracker::new(Policy::default());
    let stopped = Some(EndReason::Stopped);
    let events = looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            look(5, 0, "exited", "S0", stopped),
            look(20, 0, "exited", "S0", stopped),
        ],
    );
    assert_eq!(brief(&events), []);
    // Started again by hand: no restart; then a crash of its own.
    let events = looks(
        &mut tracker,
        &[
            look(30, 0, "running", "S1", stopped),
            look(40, 0, "exited", "S1", Some(CRASH)),
        ],
    );
    assert_eq!(brief(&events), [(40, Opened, NotRunning)]);
    assert_eq!(events[0].reason, Some(CRASH));
    assert_eq!(events[0].restarts_in_window, 0);
}

#[test]
fn docker_restart_is_no_restart_but_a_start_after_a_crash_is_one() {
    let mut tracker = Tracker::new(Policy::default());
    let events = looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            // `docker restart`: kill, die, stop, start; RestartCount 0.
            look(5, 0, "running", "S1", Some(EndReason::Stopped)),
            look(10, 0, "running", "S2", Some(EndReason::Stopped)),
        ],
    );
    assert_eq!(brief(&events), []);
    // A start by hand after a crash it did not see is one, as before.
    let events = looks(&mut tracker, &[look(15, 0, "running", "S3", Some(CRASH))]);
    assert_eq!(brief(&events), [(15, Opened, Restarted)]);
    assert_eq!(events[0].reason, Some(CRASH));
}

#[test]
fn an_open_crash_loop_stopped_through_the_api_resolves_as_stopped() {
    for in_back_off in [false, true] {
        let mut tracker = Tracker::new(Policy::default());
        let mut steps = vec![look(0, 0, "running", "S0", None)];
        for n in 1..=3 {
            let s = n * 10;
            steps.push(look(s, n, "restarting", "S0", Some(CRASH)));
            steps.push(look(s + 1, n, "running", "S0", Some(CRASH)));
        }
        let events = looks(&mut tracker, &steps);
        assert_eq!(
            brief(&events),
            [(10, Opened, Restarted), (30, Escalated, CrashLoop)]
        );
        let status = if in_back_off { "restarting" } else { "running" };
        looks(&mut tracker, &[look(35, 3, status, "S0", Some(CRASH))]);
        // The classifier's `stopped`, told at once.
        let resolved = tracker.ended_by_api(Some("g"), A, t(36));
        assert_eq!(brief(&resolved), [(36, Resolved, CrashLoop)], "{status}");
        assert_eq!(resolved[0].resolution, Some(Resolution::Stopped));
        assert_eq!(resolved[0].reason, Some(EndReason::Stopped));
        assert_eq!(resolved[0].incident_id, events[0].incident_id);
        // Once: the look after the stop, and a second word of it, are quiet.
        let stopped = Some(EndReason::Stopped);
        assert_eq!(
            brief(&looks(
                &mut tracker,
                &[look(37, 3, "exited", "S0", stopped)]
            )),
            []
        );
        assert!(tracker.ended_by_api(Some("g"), A, t(38)).is_empty());
        assert_eq!(tracker.open_incidents(), 0);
        // Started again and crashing: counted afresh, no crash loop at once.
        let events = looks(
            &mut tracker,
            &[
                look(60, 0, "running", "S1", stopped),
                look(70, 1, "running", "S1", Some(CRASH)),
            ],
        );
        assert_eq!(brief(&events), [(70, Opened, Restarted)]);
        assert_eq!(events[0].restarts_in_window, 1);
    }
}

#[test]
fn a_stop_no_event_told_is_found_by_a_look() {
    // `docker kill` in the back-off sends nothing; the look finds the
    // container exited under `always`, which the classifier says is a stop.
    let mut tracker = Tracker::new(Policy::default());
    let mut steps = vec![look(0, 0, "running", "S0", None)];
    for n in 1..=3 {
        steps.push(look(n * 10, n, "restarting", "S0", Some(CRASH)));
    }
    let events = looks(&mut tracker, &steps);
    assert_eq!(
        brief(&events),
        [(10, Opened, Restarted), (30, Escalated, CrashLoop)]
    );
    let events = looks(
        &mut tracker,
        &[
            look(31, 3, "exited", "S0", Some(CRASH)),
            look(40, 3, "exited", "S0", Some(EndReason::Stopped)),
            look(50, 3, "exited", "S0", Some(EndReason::Stopped)),
        ],
    );
    // Down with a crash, the look says nothing new; then the stop.
    assert_eq!(brief(&events), [(40, Resolved, CrashLoop)]);
    assert_eq!(events[0].resolution, Some(Resolution::Stopped));
}

#[test]
fn an_open_incident_of_a_container_stopped_by_hand_resolves_once() {
    let mut tracker = Tracker::new(Policy::default());
    let events = looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            look(5, 0, "exited", "S0", Some(EndReason::Exited)),
        ],
    );
    assert_eq!(brief(&events), [(5, Opened, NotRunning)]);
    assert_eq!(events[0].reason, Some(EndReason::Exited));
    // `docker rm -f` of the exited container: a lone destroy.
    let resolved = tracker.ended_by_api(Some("g"), A, t(9));
    assert_eq!(brief(&resolved), [(9, Resolved, NotRunning)]);
    // Gone later: nothing more to resolve.
    let games = HashSet::new();
    assert!(tracker.listed(&games, t(100)).is_empty());
}

#[test]
fn the_stop_outlives_a_restart_of_rtinspect() {
    let mut tracker = Tracker::new(Policy::default());
    looks(&mut tracker, &[look(0, 0, "running", "S0", None)]);
    tracker.ended_by_api(Some("g"), A, t(5));
    looks(
        &mut tracker,
        &[look(5, 0, "exited", "S0", Some(EndReason::Stopped))],
    );
    let saved = tracker.saved(t(6));
    let mut again = Tracker::with_saved(Policy::default(), saved, t(100));
    // The classifier has forgotten it (no replay reaches back that far).
    let events = looks(&mut again, &[look(100, 0, "exited", "S0", None)]);
    assert_eq!(brief(&events), []);
}

#[test]
fn the_reason_is_said_only_of_a_change_about_an_end() {
    let mut tracker = Tracker::new(Policy::default());
    let events: Vec<IncidentEvent> = [
        look(0, 0, "running", "S0", Some(CRASH)),
        Look {
            health: "unhealthy",
            ..look(5, 0, "running", "S0", Some(CRASH))
        },
    ]
    .iter()
    .flat_map(|l| tracker.look(l))
    .collect();
    assert_eq!(brief(&events), [(5, Opened, Unhealthy)]);
    assert_eq!(events[0].reason, None, "an old end is not this incident's");
}

#[test]
fn a_look_that_finds_it_down_before_its_die_arrived_waits_for_the_die() {
    let mut tracker = Tracker::new(Policy::default());
    let settling = Look {
        settling: true,
        ..look(5, 0, "exited", "S0", Some(EndReason::Unknown))
    };
    let events = looks(&mut tracker, &[look(0, 0, "running", "S0", None), settling]);
    assert_eq!(brief(&events), [], "nothing judged of an end on its way");
    // The die said it was stopped: told at once, then looked at.
    assert!(tracker.ended_by_api(Some("g"), A, t(5)).is_empty());
    let stopped = Some(EndReason::Stopped);
    assert_eq!(
        brief(&looks(&mut tracker, &[look(6, 0, "exited", "S0", stopped)])),
        []
    );
    // Or it crashed: the look after the die opens, with its reason.
    let mut tracker = Tracker::new(Policy::default());
    looks(&mut tracker, &[look(0, 0, "running", "S0", None), settling]);
    let events = looks(&mut tracker, &[look(6, 0, "exited", "S0", Some(CRASH))]);
    assert_eq!(brief(&events), [(6, Opened, NotRunning)]);
    assert_eq!(events[0].reason, Some(CRASH));
}

#[test]
fn a_replacement_first_seen_created_is_no_restart_when_it_starts() {
    // compose --force-recreate under load: the old container stopped, the
    // new one seen `created` (no StartedAt yet), then running.
    let mut tracker = Tracker::new(Policy::default());
    let stopped = Some(EndReason::Stopped);
    let mut events = looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            look(5, 0, "exited", "S0", stopped),
        ],
    );
    assert!(tracker.ended_by_api(Some("g"), A, t(5)).is_empty());
    let created = Look {
        container_id: B,
        started_at: None,
        settling: true,
        ..look(6, 0, "created", "", None)
    };
    let running = Look {
        container_id: B,
        ..look(7, 0, "running", "S9", None)
    };
    events.extend(looks(&mut tracker, &[created, running]));
    assert_eq!(brief(&events), []);
}

#[test]
fn an_open_incident_keeps_its_reason_for_a_silence_to_tell_and_across_a_restart() {
    let mut tracker = Tracker::new(Policy::default());
    looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            look(5, 0, "exited", "S0", Some(CRASH)),
        ],
    );
    let held = tracker.open_incident("g", Opened, wall(9)).unwrap();
    assert_eq!(held.reason, Some(CRASH));
    let again = Tracker::with_saved(Policy::default(), tracker.saved(t(10)), t(20));
    let held = again.open_incident("g", Opened, wall(21)).unwrap();
    assert_eq!(held.reason, Some(CRASH), "saved with its exit code");
}

#[test]
fn a_known_end_is_not_forgotten_for_unknown_after_a_restart_of_rtinspect() {
    let mut tracker = Tracker::new(Policy::default());
    let events = looks(
        &mut tracker,
        &[
            look(0, 0, "running", "S0", None),
            look(5, 0, "exited", "S0", Some(CRASH)),
        ],
    );
    assert_eq!(events[0].reason, Some(CRASH));
    // rtinspect restarts: the classifier lost the end, a look says unknown.
    let mut tracker = Tracker::with_saved(Policy::default(), tracker.saved(t(10)), t(10));
    looks(
        &mut tracker,
        &[look(20, 0, "exited", "S0", Some(EndReason::Unknown))],
    );
    let saved = tracker.saved(t(20));
    let open = saved.game("g", wall(20)).unwrap().incident.unwrap();
    assert_eq!(
        open.reason,
        Some("crashed"),
        "what status and the page show"
    );
}
