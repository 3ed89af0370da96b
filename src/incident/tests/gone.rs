//! Games that leave the records, or whose container is gone (404): their
//! incidents are resolved as `removed` once gone for `--recover-after`,
//! and a game back sooner goes on with its incident.

use super::*;

/// The games listed at `s` seconds.
fn list(tracker: &mut Tracker, s: u64, games: &[&str]) -> Vec<IncidentEvent> {
    tracker.listed(&games.iter().copied().collect(), t(s))
}

#[test]
fn a_game_that_leaves_the_records_is_resolved_as_removed_after_recover_after() {
    let mut tracker = Tracker::new(Policy::default());
    let first = feed(&mut tracker, [(0, A, 0, "exited", "")]);
    assert_eq!(brief(&first), [(0, Opened, NotRunning)]);
    tracker.take_changed();

    assert!(list(&mut tracker, 10, &["g", "other"]).is_empty());
    assert!(!tracker.take_changed(), "a game still listed is kept");
    assert!(
        list(&mut tracker, 15, &[]).is_empty(),
        "gone, not yet for long"
    );
    assert!(tracker.take_changed(), "since when it is gone is saved");
    assert!(list(&mut tracker, 44, &[]).is_empty());
    let resolved = list(&mut tracker, 45, &[]);
    assert_eq!(brief(&resolved), [(45, Resolved, NotRunning)]);
    assert_eq!(resolved[0].resolution, Some(Resolution::Removed));
    assert_eq!(resolved[0].incident_id, first[0].incident_id);
    assert_eq!(resolved[0].container_id, A, "the last container seen");
    assert_eq!(tracker.open_incidents(), 0);
    assert!(list(&mut tracker, 60, &[]).is_empty(), "resolved once");

    // Forgotten once the crash-loop window has passed too.
    list(&mut tracker, 15 + 10 * MIN - 1, &[]);
    assert_eq!(tracker.saved(t(15 + 10 * MIN)).len(), 1);
    list(&mut tracker, 15 + 10 * MIN, &[]);
    assert!(tracker.saved(t(15 + 10 * MIN)).is_empty());

    // Its next look only seeds the restart count, and opens a new incident.
    let events = feed(&mut tracker, [(20 * MIN, B, 9, "exited", "")]);
    assert_eq!(brief(&events), [(20 * MIN, Opened, NotRunning)]);
    assert_eq!(events[0].restarts_in_window, 0);
    assert_eq!(events[0].started_at, wall(20 * MIN));
    assert_ne!(events[0].incident_id, first[0].incident_id);
}

#[test]
fn a_game_back_within_recover_after_goes_on_with_its_incident_and_its_count() {
    // Removed and recreated still broken: the same incident, the count on.
    let mut tracker = Tracker::new(Policy::default());
    let first = feed(
        &mut tracker,
        [
            (0, A, 0, "running", ""),
            (10, A, 1, "running", ""),
            (20, A, 2, "exited", ""),
        ],
    );
    assert_eq!(
        brief(&first),
        [(10, Opened, Restarted), (20, Escalated, NotRunning)]
    );
    assert!(list(&mut tracker, 25, &[]).is_empty());
    assert!(list(&mut tracker, 40, &[]).is_empty());
    let back = feed(&mut tracker, [(45, B, 0, "running", "")]);
    assert_eq!(
        brief(&back),
        [(45, Escalated, CrashLoop)],
        "the replacement of a container that died is the third restart"
    );
    assert_eq!(back[0].incident_id, first[0].incident_id);
    assert_eq!(back[0].restarts_in_window, 3);
    assert!(list(&mut tracker, 100, &["g"]).is_empty(), "back, not gone");

    // Back after --recover-after but within the window: the incident was
    // resolved as removed, and the count goes on.
    let mut tracker = Tracker::new(Policy::default());
    feed(
        &mut tracker,
        [(0, A, 0, "running", ""), (10, A, 2, "exited", "")],
    );
    list(&mut tracker, 15, &[]);
    assert_eq!(
        brief(&list(&mut tracker, 45, &[])),
        [(45, Resolved, NotRunning)]
    );
    let back = feed(&mut tracker, [(60, B, 0, "running", "")]);
    assert_eq!(brief(&back), [(60, Opened, CrashLoop)]);
    assert_eq!(back[0].restarts_in_window, 3);
}

#[test]
fn a_container_gone_404_for_recover_after_is_resolved_as_removed() {
    let mut tracker = Tracker::new(Policy::default());
    let first = feed(&mut tracker, [(0, A, 0, "exited", "")]);
    assert!(tracker.missing("g", t(10)).is_empty());
    assert!(tracker.missing("g", t(39)).is_empty());
    // A look between ends the absence: it counts again from the next 404.
    feed(&mut tracker, [(40, A, 0, "exited", "")]);
    assert!(tracker.missing("g", t(50)).is_empty());
    assert!(tracker.missing("g", t(79)).is_empty());
    let resolved = tracker.missing("g", t(80));
    assert_eq!(brief(&resolved), [(80, Resolved, NotRunning)]);
    assert_eq!(resolved[0].resolution, Some(Resolution::Removed));
    assert_eq!(resolved[0].incident_id, first[0].incident_id);
    assert!(tracker.missing("g", t(95)).is_empty());
    assert!(tracker.missing("unknown", t(95)).is_empty());
}
