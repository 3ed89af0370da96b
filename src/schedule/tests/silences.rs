//! The schedule with silences: an incident's events go through the hold,
//! the facts do not.

use super::*;
use crate::incident::Policy;
use crate::silence::{Silence, Silences};

/// A run that tracks incidents, `game` silenced for the first 20 s.
fn silenced(game: Option<&str>) -> Run {
    let mut r = Run::new(Follow::Database, false, vec![rec("g", 1), rec("h", 2)]);
    r.schedule.incidents = Some(Tracker::new(Policy::default()));
    let from = r.wall();
    let silence = Silence {
        id: crate::silence::new_id(from),
        game_id: game.map(str::to_owned),
        starts_at: from,
        ends_at: from + Duration::from_secs(20),
        created_by: "ci".into(),
        comment: String::new(),
    };
    r.input(Input::Silences(Silences::new([&silence], from)));
    r.answer(2, running(2, 0));
    r
}

/// The incident lines of the log, held ones included, and the facts.
fn lines(log: &[String]) -> (Vec<String>, usize) {
    let incidents = log
        .iter()
        .filter(|l| l.contains(" incident_") || l.contains(" held "))
        .cloned()
        .collect();
    let facts = log.iter().filter(|l| l.contains(" event ")).count();
    (incidents, facts)
}

#[test]
fn a_game_still_down_at_its_silences_end_is_announced_then_once() {
    let mut r = silenced(Some("g"));
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(16_000);
    let (incidents, facts) = lines(&r.take_log());
    assert_eq!(incidents, ["g held incident_opened"]);
    assert_eq!(facts, 2, "facts go on: one a tick");
    // The tick at 30 s is the first look after the end.
    r.until(31_000);
    let (incidents, _) = lines(&r.take_log());
    assert_eq!(incidents, ["g incident_opened not_running"]);
    let opened = r.incidents.last().unwrap();
    let envelope: serde_json::Value = serde_json::from_str(opened.envelope().as_str()).unwrap();
    assert_eq!(envelope["details"]["after_silence"], true);
    let started = crate::text::parse_rfc3339(envelope["details"]["started_at"].as_str().unwrap());
    // The look at 2 ms (a list and an inspect of 1 ms each) opened it.
    let first_look = UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(2);
    assert_eq!(started, Some(first_look), "its true start");
    r.until(120_000);
    assert!(lines(&r.take_log()).0.is_empty(), "once");
    assert!(r.schedule.hold().saved().is_empty());
}

#[test]
fn a_game_back_inside_its_silence_says_nothing_and_resolves_unannounced() {
    let mut r = silenced(None);
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(10);
    r.answer(1, running(1, 0));
    r.until(120_000);
    let (incidents, _) = lines(&r.take_log());
    assert_eq!(
        incidents,
        ["g held incident_opened", "g held incident_resolved"]
    );
    assert!(r.incidents.is_empty(), "nothing delivered");
    assert!(r.schedule.hold().saved().is_empty());
}

#[test]
fn a_game_not_silenced_is_not_held() {
    let mut r = silenced(Some("h"));
    r.answer(1, Answer::status(&id(1), 0, "exited"));
    r.until(10);
    let (incidents, _) = lines(&r.take_log());
    assert_eq!(incidents, ["g incident_opened not_running"]);
    let envelope: serde_json::Value =
        serde_json::from_str(r.incidents[0].envelope().as_str()).unwrap();
    assert!(
        envelope["details"].get("after_silence").is_none(),
        "{envelope}"
    );
}
