//! An `oom` event and the incident it marks: the one that opens after it,
//! within a minute, and across a restart of rtinspect.

use super::*;

fn oom_then(tracker: &mut Tracker, oom_at: u64, steps: Vec<Step>) -> Vec<IncidentEvent> {
    tracker.oom("g", t(oom_at).mono);
    feed(tracker, steps)
}

#[test]
fn an_oom_event_marks_the_incident_that_opens_after_it() {
    let mut tracker = Tracker::new(Policy::default());
    feed(&mut tracker, [(0, A, 0, "running", "healthy")]);
    let events = oom_then(
        &mut tracker,
        100,
        vec![
            (105, A, 0, "running", "unhealthy"),
            (110, A, 0, "exited", ""),
            (120, A, 0, "running", "healthy"),
            (150, A, 0, "running", "healthy"),
        ],
    );
    assert_eq!(
        brief(&events),
        [
            (105, Opened, Unhealthy),
            (110, Escalated, NotRunning),
            (150, Resolved, NotRunning)
        ]
    );
    assert!(events.iter().all(|e| e.oom), "{events:#?}");

    // The next incident is a new one, without the OOM.
    let events = feed(&mut tracker, [(200, A, 0, "exited", "")]);
    assert_eq!(brief(&events), [(200, Opened, NotRunning)]);
    assert!(!events[0].oom);

    // An OOM during an open incident marks its later events.
    let events = oom_then(&mut tracker, 210, vec![(220, A, 0, "exited", "")]);
    assert!(events.is_empty());
    let events = feed(
        &mut tracker,
        [(230, A, 0, "running", ""), (260, A, 0, "running", "")],
    );
    assert_eq!(brief(&events), [(260, Resolved, NotRunning)]);
    assert!(events[0].oom);
}

#[test]
fn an_oom_event_waits_a_minute_for_its_incident() {
    let table: &[(u64, bool)] = &[(0, true), (60, true), (61, false)];
    for &(late, oom) in table {
        let mut tracker = Tracker::new(Policy::default());
        feed(&mut tracker, [(0, A, 0, "running", "")]);
        let events = oom_then(
            &mut tracker,
            100,
            vec![
                (100 + late / 2, A, 0, "running", ""),
                (100 + late, A, 0, "exited", ""),
            ],
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].oom, oom, "look {late} s after the oom");
    }
}

#[test]
fn an_oom_mark_survives_a_restart_of_rtinspect() {
    let mut before = Tracker::new(Policy::default());
    before.oom("g", t(0).mono);
    let mut after = Tracker::with_saved(Policy::default(), before.saved(t(1)), t(2));
    let events = feed(&mut after, [(5, A, 0, "exited", "")]);
    assert!(events[0].oom);
}
