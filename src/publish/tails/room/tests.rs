//! The waiting room over a fake clock: which reads it asks for, what
//! leaves when, in what order, with which tail.

use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::event::{IncidentFacts, Prompt, opened_event, stopped_event};
use crate::incident::Kind;

const WAIT: Duration = Duration::from_millis(250);

fn room() -> Room {
    Room::new(RoomSettings {
        lines: 10,
        wait: WAIT,
        read_bound: Duration::from_secs(10),
    })
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// An event of `change` of the incident `opened` opened.
fn next(opened: &HealthEvent, change: Change) -> HealthEvent {
    let i: &IncidentFacts = opened.incident.as_deref().unwrap();
    let mut i = i.clone();
    if change == Change::Escalated {
        i.kind = Kind::CrashLoop;
    }
    HealthEvent::for_incident(
        change,
        i,
        opened.game_id.clone(),
        crate::inspector::Observation {
            container_id: opened.container_id.clone(),
            restart_count: 3,
            status: "running".into(),
            health: String::new(),
            details: None,
        },
        SystemTime::now(),
    )
}

/// A fact a `die` prompted, of `game`'s container.
fn died(game: &str) -> HealthEvent {
    let mut fact = stopped_event(game);
    let now = SystemTime::now();
    fact.prompt = Some(Box::new(Prompt {
        action: "die",
        event_at: now,
        read_at: now,
        answered_at: now,
    }));
    fact
}

fn lines(of: &[&str]) -> LogTail {
    LogTail::Lines(of.iter().map(|l| l.to_string()).collect())
}

fn types(events: &[HealthEvent]) -> Vec<(String, &'static str)> {
    events
        .iter()
        .map(|e| (e.game_id.clone(), e.event_type.as_str()))
        .collect()
}

#[test]
fn an_opening_waits_for_its_tail_and_leaves_with_it() {
    let t0 = Instant::now();
    let mut room = room();
    assert!(room.take(opened_event("g-1"), t0).is_empty(), "it waits");
    assert_eq!(room.next_deadline(), Some(ms(t0, 250)));
    let job = room.next_job(ms(t0, 1)).unwrap();
    assert_eq!(job.container_id, "c".repeat(64));
    assert_eq!(
        job.within,
        Duration::from_millis(249),
        "what is left of its wait"
    );
    assert_eq!(room.next_job(ms(t0, 1)), None, "one read");
    assert!(room.release(ms(t0, 100)).is_empty(), "still reading");
    room.answered(job.id, Some(lines(&["line 1", "line 2"])));
    let out = room.release(ms(t0, 101));
    assert_eq!(types(&out), [("g-1".into(), "incident_opened")]);
    assert_eq!(
        out[0].log_tail.as_deref(),
        Some(&lines(&["line 1", "line 2"]))
    );
    assert!(
        room.is_empty() && room.reads.is_empty(),
        "nothing kept but last words"
    );
}

#[test]
fn a_read_that_does_not_answer_in_time_costs_the_event_250_ms_and_says_so() {
    let t0 = Instant::now();
    let mut room = room();
    room.take(opened_event("g-1"), t0);
    let job = room.next_job(t0).unwrap();
    assert!(room.release(ms(t0, 249)).is_empty());
    let out = room.release(ms(t0, 250));
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].log_tail.as_deref(),
        Some(&LogTail::Unavailable("not read within 250 ms".into()))
    );
    // Its answer, later, is nobody's tail, but the incident's last words.
    room.answered(job.id, Some(lines(&["late"])));
    assert!(room.reads.is_empty());
    assert_eq!(room.open["g-1"].last_words, Some(lines(&["late"])));
}

#[test]
fn a_games_events_leave_in_order_and_other_games_do_not_wait() {
    let t0 = Instant::now();
    let mut room = room();
    let opened = opened_event("g-1");
    room.take(opened.clone(), t0);
    // Its resolution comes while the opening waits: it waits behind it.
    assert!(
        room.take(next(&opened, Change::Resolved), ms(t0, 10))
            .is_empty()
    );
    // Another game's resolution does not wait; a fact never does.
    let other = opened_event("g-2");
    let out = room.take(next(&other, Change::Resolved), ms(t0, 11));
    assert_eq!(types(&out), [("g-2".into(), "incident_resolved")]);
    let out = room.take(stopped_event("g-1"), ms(t0, 12));
    assert_eq!(types(&out), [("g-1".into(), "inspect_unhealthy")]);
    // The resolution has no deadline of its own: the opening's is the next.
    assert_eq!(room.next_deadline(), Some(ms(t0, 250)));
    let out = room.release(ms(t0, 250));
    assert_eq!(
        types(&out),
        [
            ("g-1".into(), "incident_opened"),
            ("g-1".into(), "incident_resolved")
        ]
    );
    assert!(out[1].log_tail.is_none(), "a resolution carries no tail");
}

#[test]
fn an_escalation_after_a_die_shares_the_read_the_die_asked_for() {
    let t0 = Instant::now();
    let mut room = room();
    let opened = opened_event("g-1");
    room.take(opened.clone(), t0);
    let first = room.next_job(t0).unwrap();
    room.answered(first.id, Some(lines(&["boot", "crash 1"])));
    assert_eq!(room.release(ms(t0, 5)).len(), 1);
    // A die of the open game: its fact goes at once and asks for a read.
    let out = room.take(died("g-1"), ms(t0, 1000));
    assert_eq!(types(&out), [("g-1".into(), "inspect_unhealthy")]);
    // The escalation the same inspect makes joins that read.
    assert!(
        room.take(next(&opened, Change::Escalated), ms(t0, 1001))
            .is_empty()
    );
    let job = room.next_job(ms(t0, 1002)).unwrap();
    assert_eq!(room.next_job(ms(t0, 1002)), None, "one read for both");
    assert_eq!(job.within, Duration::from_millis(249));
    room.answered(job.id, Some(lines(&["crash 2"])));
    let out = room.release(ms(t0, 1003));
    assert_eq!(types(&out), [("g-1".into(), "incident_escalated")]);
    assert_eq!(out[0].log_tail.as_deref(), Some(&lines(&["crash 2"])));
}

#[test]
fn a_reminder_carries_the_last_words_of_the_incidents_last_death() {
    let t0 = Instant::now();
    let mut room = room();
    let opened = opened_event("g-1");
    room.take(opened.clone(), t0);
    let job = room.next_job(t0).unwrap();
    room.answered(job.id, Some(lines(&["first death"])));
    room.release(t0);
    // Later deaths that change nothing are read and kept.
    room.take(died("g-1"), ms(t0, 60_000));
    let job = room.next_job(ms(t0, 60_000)).unwrap();
    assert_eq!(
        job.within,
        Duration::from_secs(10),
        "nobody waits: the read bound"
    );
    room.answered(job.id, Some(lines(&["second death"])));
    let out = room.take(next(&opened, Change::Reminder), ms(t0, 4 * 3_600_000));
    assert_eq!(types(&out), [("g-1".into(), "incident_reminder")]);
    assert_eq!(out[0].log_tail.as_deref(), Some(&lines(&["second death"])));
    // Resolved: forgotten; a die of a game with nothing open reads nothing.
    room.take(next(&opened, Change::Resolved), ms(t0, 5 * 3_600_000));
    room.take(died("g-1"), ms(t0, 5 * 3_600_000));
    assert_eq!(room.next_job(ms(t0, 5 * 3_600_000)), None);
    // A reminder of another incident does not get this one's words, but
    // makes it known (one restored at the start): its deaths are read.
    let other = opened_event("g-1");
    let out = room.take(next(&other, Change::Reminder), ms(t0, 6 * 3_600_000));
    assert!(out[0].log_tail.is_none());
    room.take(died("g-1"), ms(t0, 6 * 3_600_001));
    assert!(room.next_job(ms(t0, 6 * 3_600_001)).is_some());
}

#[test]
fn a_read_nobody_waits_for_and_too_old_is_not_made() {
    let t0 = Instant::now();
    let mut room = room();
    room.take(opened_event("g-1"), t0);
    // No reader was free before the event left.
    assert_eq!(room.release(ms(t0, 250)).len(), 1);
    assert_eq!(room.next_job(ms(t0, 251)), None);
    assert!(room.reads.is_empty());
}

#[test]
fn a_fleets_crash_asks_one_read_a_game_and_bounds_the_rest() {
    let t0 = Instant::now();
    let mut room = room();
    let mut refused = 0;
    for n in 0..(MAX_READS + 10) {
        let mut e = opened_event(&format!("g-{n}"));
        e.container_id = format!("{n:064x}");
        for left in room.take(e, t0) {
            assert_eq!(
                left.log_tail.as_deref(),
                Some(&LogTail::Unavailable(
                    "too many log reads asked for at once".into()
                ))
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "past the bound, at once and saying why");
    assert_eq!(room.waiting.len(), MAX_READS);
    // Two readers make a few; the rest leave at their deadline.
    for _ in 0..4 {
        let job = room.next_job(ms(t0, 1)).unwrap();
        room.answered(job.id, Some(lines(&["bye"])));
    }
    assert_eq!(room.release(ms(t0, 2)).len(), 4);
    let out = room.release(ms(t0, 250));
    assert_eq!(out.len(), MAX_READS - 4);
    assert_eq!(room.next_job(ms(t0, 251)), None, "none of the rest is read");
}

#[test]
fn at_the_exit_every_waiting_event_leaves_at_once_in_order() {
    let t0 = Instant::now();
    let mut room = room();
    let opened = opened_event("g-1");
    room.take(opened.clone(), t0);
    room.take(next(&opened, Change::Escalated), ms(t0, 1));
    let mut answered = opened_event("g-2");
    answered.container_id = "d".repeat(64);
    room.take(answered, ms(t0, 2));
    let jobs: Vec<Job> = std::iter::from_fn(|| room.next_job(ms(t0, 3))).collect();
    assert_eq!(jobs.len(), 2);
    room.answered(jobs[1].id, Some(lines(&["g-2's"])));
    let out = room.release_all("rtinspect is stopping");
    let tails: Vec<_> = out.iter().map(|e| e.log_tail.as_deref().cloned()).collect();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].event_type.as_str(), "incident_opened");
    assert_eq!(out[1].event_type.as_str(), "incident_escalated");
    assert_eq!(tails[2], Some(lines(&["g-2's"])));
    assert_eq!(
        tails[0],
        Some(LogTail::Unavailable("rtinspect is stopping".into()))
    );
    assert!(room.is_empty());
}

#[test]
fn a_read_cut_short_by_its_bound_says_which_bound() {
    let t0 = Instant::now();
    let mut room = room();
    // Bounded by the event's wait: the wait is what it says.
    room.take(opened_event("g-1"), t0);
    let job = room.next_job(ms(t0, 200)).unwrap();
    assert_eq!(job.within, Duration::from_millis(50));
    room.answered(job.id, None);
    let out = room.release(ms(t0, 250));
    assert_eq!(
        out[0].log_tail.as_deref(),
        Some(&LogTail::Unavailable("not read within 250 ms".into()))
    );
    // Nobody waiting: Docker's bound, kept as the last words.
    room.take(died("g-1"), ms(t0, 1000));
    let job = room.next_job(ms(t0, 1000)).unwrap();
    room.answered(job.id, None);
    assert_eq!(
        room.open["g-1"].last_words,
        Some(LogTail::Unavailable(
            "no answer from Docker within 10s".into()
        ))
    );
}
