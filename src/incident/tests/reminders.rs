//! Reminders of an open incident: once per due time, never a burst, and
//! an escalation standing for a reminder due at the same look.

use super::*;

#[test]
fn reminders_come_once_per_due_time_and_never_in_a_burst() {
    let open = [(0, A, 0, "exited", "")];
    // (policy's remind, later looks, the reminders)
    let table: &[(Option<u64>, &[u64], &[u64])] = &[
        (
            Some(4 * HOUR),
            &[HOUR, 4 * HOUR - 1, 4 * HOUR, 4 * HOUR + 10],
            &[4 * HOUR],
        ),
        // A look 13 h later: one reminder, and the next at 16 h.
        (
            Some(4 * HOUR),
            &[HOUR, 13 * HOUR, 16 * HOUR - 1, 16 * HOUR],
            &[13 * HOUR, 16 * HOUR],
        ),
        (None, &[HOUR, 13 * HOUR, 16 * HOUR], &[]),
        (Some(0), &[HOUR, 13 * HOUR], &[]),
    ];
    for (remind, looks, reminders) in table {
        let policy = Policy {
            remind: remind.map(Duration::from_secs),
            ..Policy::default()
        };
        let steps = open
            .iter()
            .copied()
            .chain(looks.iter().map(|&at| (at, A, 0, "exited", "")));
        let events = check(policy, steps);
        let got: Vec<u64> = events
            .iter()
            .filter(|e| e.change == Reminder)
            .map(|e| secs(e.at))
            .collect();
        assert_eq!(&got, reminders, "remind {remind:?}, looks {looks:?}");
    }
}

#[test]
fn an_escalation_stands_for_a_reminder_due_at_the_same_look() {
    let policy = Policy {
        remind: Some(Duration::from_secs(HOUR)),
        ..Policy::default()
    };
    let steps = [
        (0, A, 0, "running", "unhealthy"),
        (HOUR, A, 0, "exited", ""),
        (HOUR + 10, A, 0, "exited", ""),
        (2 * HOUR, A, 0, "exited", ""),
    ];
    assert_eq!(
        brief(&check(policy, steps)),
        [
            (0, Opened, Unhealthy),
            (HOUR, Escalated, NotRunning),
            (2 * HOUR, Reminder, NotRunning)
        ]
    );
}
