//! Making room in a full queue without a state directory, facts first.
//!
//! A fact says how a game looked at one inspect, every tick it lasts: a
//! later fact of the same game says it again, newer. An incident's event
//! (opened, escalated, resolved) is said once: the tracker counts it sent,
//! so dropped it is never sent again. So when events must go, they go in
//! this order: facts a later fact of the same game supersedes, oldest
//! first; then the other facts, oldest first; then reminders (an incident
//! still open, said again later). The one-shot incident events stay, past
//! the room, up to a hard bound that only a flood of incidents beyond any
//! fleet's reaches (then the oldest go, each logged whole).

use std::collections::{HashSet, VecDeque};

use crate::event::{EventType, HealthEvent};
use crate::incident::Change;

/// The `event_type` of an incident's reminder.
const REMINDER: EventType = EventType::Incident(Change::Reminder);

/// Why an event was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// A fact that a later fact of the same game, still held, supersedes:
    /// nothing is lost but an older look at the game.
    Superseded,
    /// A fact, the newest of its game still held.
    Fact,
    /// An incident's reminder: the incident is said again later.
    Reminder,
    /// A one-shot incident event, past the hard bound.
    Incident,
}

/// Removes events from `held` (oldest first, with the newest just pushed)
/// until it holds at most `room`, in the order the module says, but keeps
/// one-shot incident events up to `hard`; returns what it removed, oldest
/// first within each reason.
pub(crate) fn make_room(
    held: &mut VecDeque<HealthEvent>,
    room: usize,
    hard: usize,
) -> Vec<(HealthEvent, Shed)> {
    let mut excess = held.len().saturating_sub(room);
    if excess == 0 {
        return Vec::new();
    }
    let mut chosen: Vec<(usize, Shed)> = Vec::new();
    // A fact with a later fact of its game: found from the newest back.
    let mut superseded = Vec::new();
    let mut latest = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, e) in held.iter().enumerate().rev() {
        if e.event_type == EventType::Fact {
            if seen.insert(e.game_id.as_str()) {
                latest.push(i);
            } else {
                superseded.push(i);
            }
        }
    }
    let reminders = held
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event_type == REMINDER)
        .map(|(i, _)| i);
    let candidates = superseded
        .into_iter()
        .rev()
        .map(|i| (i, Shed::Superseded))
        .chain(latest.into_iter().rev().map(|i| (i, Shed::Fact)))
        .chain(reminders.map(|i| (i, Shed::Reminder)));
    for (i, why) in candidates {
        if excess == 0 {
            break;
        }
        chosen.push((i, why));
        excess -= 1;
    }
    // Only one-shot incident events are left to remove: kept up to `hard`.
    let over_hard = (held.len() - chosen.len()).saturating_sub(hard);
    if over_hard > 0 {
        let taken: HashSet<usize> = chosen.iter().map(|(i, _)| *i).collect();
        let oldest = (0..held.len())
            .filter(|i| !taken.contains(i))
            .take(over_hard);
        chosen.extend(oldest.map(|i| (i, Shed::Incident)).collect::<Vec<_>>());
    }
    let reasons: std::collections::HashMap<usize, Shed> = chosen.iter().copied().collect();
    let mut kept = VecDeque::with_capacity(held.len() - reasons.len());
    let mut shed: Vec<(usize, HealthEvent, Shed)> = Vec::with_capacity(reasons.len());
    for (i, e) in held.drain(..).enumerate() {
        match reasons.get(&i) {
            Some(why) => shed.push((i, e, *why)),
            None => kept.push_back(e),
        }
    }
    *held = kept;
    // In the order chosen: superseded first, each kind oldest first.
    let order: std::collections::HashMap<usize, usize> = chosen
        .iter()
        .enumerate()
        .map(|(n, (i, _))| (*i, n))
        .collect();
    shed.sort_by_key(|(i, _, _)| order[i]);
    shed.into_iter().map(|(_, e, why)| (e, why)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event;

    /// An event of `game` of type `t` (`fact`, `opened`, `reminder`, `resolved`).
    fn ev(game: &str, t: &str) -> HealthEvent {
        let mut e = stopped_event(game);
        e.event_type = match t {
            "fact" => EventType::Fact,
            "opened" => EventType::Incident(Change::Opened),
            "reminder" => REMINDER,
            "resolved" => EventType::Incident(Change::Resolved),
            other => panic!("{other}"),
        };
        e
    }

    fn held(events: &[(&str, &str)]) -> VecDeque<HealthEvent> {
        events.iter().map(|(g, t)| ev(g, t)).collect()
    }

    fn names(events: &VecDeque<HealthEvent>) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{}:{}", e.game_id, e.event_type))
            .collect()
    }

    #[test]
    fn superseded_facts_go_first_then_facts_then_reminders_never_one_shot_events() {
        // (held, room) → (what stays, what was shed and why)
        type Case<'a> = (&'a [(&'a str, &'a str)], usize, &'a [&'a str], &'a [Shed]);
        let table: &[Case] = &[
            // Room enough: nothing goes.
            (&[("a", "fact"), ("a", "fact")], 2, &["a", "a"], &[]),
            // a's first fact is superseded by its second.
            (
                &[("a", "fact"), ("b", "fact"), ("a", "fact")],
                2,
                &["b", "a"],
                &[Shed::Superseded],
            ),
            // No fact superseded: the oldest fact goes, not the incident.
            (
                &[("a", "opened"), ("b", "fact"), ("c", "fact")],
                2,
                &["a", "c"],
                &[Shed::Fact],
            ),
            // Facts, then reminders; the opened and resolved stay.
            (
                &[
                    ("a", "reminder"),
                    ("b", "opened"),
                    ("c", "fact"),
                    ("d", "resolved"),
                ],
                2,
                &["b", "d"],
                &[Shed::Fact, Shed::Reminder],
            ),
            // Only one-shot incident events: kept past the room, up to hard (4).
            (
                &[
                    ("a", "opened"),
                    ("b", "opened"),
                    ("c", "opened"),
                    ("d", "opened"),
                ],
                2,
                &["a", "b", "c", "d"],
                &[],
            ),
        ];
        for (events, room, stays, why) in table {
            let mut h = held(events);
            let shed = make_room(&mut h, *room, 4);
            let kept: Vec<&str> = h.iter().map(|e| e.game_id.as_str()).collect();
            assert_eq!(&kept, stays, "{events:?}");
            let reasons: Vec<Shed> = shed.iter().map(|(_, w)| *w).collect();
            assert_eq!(&reasons, why, "{events:?}");
        }
    }

    #[test]
    fn past_the_hard_bound_the_oldest_one_shot_events_go() {
        let mut h = held(&[
            ("a", "opened"),
            ("b", "fact"),
            ("c", "opened"),
            ("d", "opened"),
            ("e", "opened"),
        ]);
        let shed = make_room(&mut h, 2, 3);
        assert_eq!(
            names(&h),
            [
                "c:incident_opened",
                "d:incident_opened",
                "e:incident_opened"
            ]
        );
        let shed: Vec<(String, Shed)> = shed.into_iter().map(|(e, w)| (e.game_id, w)).collect();
        assert_eq!(
            shed,
            [
                ("b".to_owned(), Shed::Fact),
                ("a".to_owned(), Shed::Incident)
            ]
        );
    }

    #[test]
    fn many_superseded_facts_go_oldest_first_keeping_each_games_newest() {
        let mut events = Vec::new();
        for _ in 0..100 {
            for g in ["a", "b", "c"] {
                events.push((g, "fact"));
            }
        }
        events.push(("x", "opened"));
        let mut h = held(&events);
        let shed = make_room(&mut h, 4, 8);
        assert_eq!(shed.len(), 297);
        assert!(shed.iter().all(|(_, w)| *w == Shed::Superseded));
        assert_eq!(
            names(&h),
            [
                "a:inspect_unhealthy",
                "b:inspect_unhealthy",
                "c:inspect_unhealthy",
                "x:incident_opened"
            ]
        );
    }
}
