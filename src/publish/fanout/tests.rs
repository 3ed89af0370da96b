//! The routing decision, by tables: each sink's route against facts and
//! the events of incidents as they open, escalate, remind and resolve.

use std::time::SystemTime;

use super::*;
use crate::config::{Glob, Report};
use crate::incident::{Change, Kind};
use crate::inspector::{Finding, Observation, Reason};

fn seen(status: &str, health: &str) -> Observation {
    Observation {
        container_id: "c".repeat(64),
        restart_count: 2,
        status: status.into(),
        health: health.into(),
        details: None,
    }
}

fn fact(game: &str, status: &str, health: &str) -> HealthEvent {
    HealthEvent::from_finding(
        Finding {
            game_id: game.into(),
            observation: seen(status, health),
            reasons: vec![Reason::NotRunning],
        },
        SystemTime::UNIX_EPOCH,
    )
}

fn incident(change: Change, kind: Kind, game: &str) -> HealthEvent {
    HealthEvent::for_incident(
        change,
        crate::event::plain_facts("019ae1c5-aaaa-7000-8000-000000000000", kind, 1),
        game.into(),
        seen("running", ""),
        SystemTime::UNIX_EPOCH,
    )
}

fn route(report: Report, min: Kind, games: &[&str]) -> Route {
    Route {
        report,
        min,
        games: games.iter().map(|g| Glob::parse(g).unwrap()).collect(),
    }
}

#[test]
fn each_sink_takes_what_its_report_kind_and_games_say() {
    use Kind::*;
    let everything = route(Report::Both, Restarted, &[]);
    let incidents = route(Report::Incidents, Restarted, &[]);
    let facts = route(Report::Facts, Restarted, &[]);
    let phone = route(Report::Incidents, CrashLoop, &[]);
    let down = route(Report::Both, NotRunning, &[]);
    let eu = route(Report::Incidents, Restarted, &["eu-*", "mc-?"]);
    let routes = [&everything, &incidents, &facts, &phone, &down, &eu];
    // (event, the sinks that take it, by place in `routes`)
    let table = [
        (fact("g", "exited", ""), vec![0, 2, 4]),
        (fact("g", "restarting", ""), vec![0, 2]),
        (fact("g", "running", "unhealthy"), vec![0, 2]),
        (fact("g", "running", ""), vec![0, 2]),
        (incident(Change::Opened, Restarted, "g"), vec![0, 1]),
        (incident(Change::Opened, NotRunning, "g"), vec![0, 1, 4]),
        (incident(Change::Opened, CrashLoop, "g"), vec![0, 1, 3, 4]),
        (incident(Change::Opened, Restarted, "eu-1"), vec![0, 1, 5]),
        (incident(Change::Opened, Unhealthy, "mc-7"), vec![0, 1, 5]),
        (incident(Change::Opened, Unhealthy, "mc-77"), vec![0, 1]),
        (fact("eu-1", "exited", ""), vec![0, 2, 4]),
    ];
    for (event, want) in table {
        let got = destinations(routes, &event);
        assert_eq!(
            got,
            want,
            "{} {:?} {} {}",
            event.game_id,
            event.incident.as_ref().map(|i| i.kind),
            event.state,
            event.health
        );
    }
}

#[test]
fn an_incident_reaches_a_sink_from_the_change_that_brings_it_in_range_to_its_end() {
    use Kind::*;
    // An open restart that escalates to a crash loop, is reminded of and
    // ends: its kind never goes down, and the events say it.
    let life = [
        incident(Change::Opened, Restarted, "g"),
        incident(Change::Reminder, Restarted, "g"),
        incident(Change::Escalated, CrashLoop, "g"),
        incident(Change::Reminder, CrashLoop, "g"),
        incident(Change::Resolved, CrashLoop, "g"),
    ];
    // (min, the changes the sink is told of, in order)
    let table = [
        (
            Restarted,
            vec![
                Change::Opened,
                Change::Reminder,
                Change::Escalated,
                Change::Reminder,
                Change::Resolved,
            ],
        ),
        (
            CrashLoop,
            vec![Change::Escalated, Change::Reminder, Change::Resolved],
        ),
        (
            NotRunning,
            vec![Change::Escalated, Change::Reminder, Change::Resolved],
        ),
    ];
    for (min, want) in table {
        let r = route(Report::Incidents, min, &[]);
        let got: Vec<Change> = life
            .iter()
            .filter(|e| takes(&r, e))
            .filter_map(|e| e.change())
            .collect();
        assert_eq!(got, want, "min={}", min.as_str());
    }
    // One that never reaches the range is never told of, its end neither.
    let restart_only = [
        incident(Change::Opened, Restarted, "g"),
        incident(Change::Resolved, Restarted, "g"),
    ];
    let phone = route(Report::Incidents, CrashLoop, &[]);
    assert!(restart_only.iter().all(|e| !takes(&phone, e)));
}

#[test]
fn a_game_no_glob_matches_goes_nowhere_its_globs_send() {
    let r = route(Report::Both, Kind::Restarted, &["de-*"]);
    for game in ["fr-1", "de", "xde-1", ""] {
        assert!(!takes(&r, &fact(game, "exited", "")), "{game}");
        assert!(
            !takes(&r, &incident(Change::Opened, Kind::CrashLoop, game)),
            "{game}"
        );
    }
    assert!(takes(&r, &fact("de-1", "exited", "")));
}
