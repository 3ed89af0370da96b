//! The timeline's unit tests: reading events and times, the order and the
//! filter, durations, stretches derived from facts, the renderings.

use super::*;
use std::time::UNIX_EPOCH;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// An incident event's envelope as the daemon writes it.
fn envelope(change: &str, game: &str, kind: &str, at: u64, opened: u64) -> String {
    serde_json::json!({
        "event_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "game_id": game,
        "container_id": "c".repeat(64),
        "event_type": format!("incident_{change}"),
        "occurred_at": rfc3339_micros(t(at)),
        "details": {
            "incident_id": format!("0193aaaa-0000-7000-8000-{opened:012}"),
            "kind": kind,
            "started_at": rfc3339_micros(t(opened)),
            "restarts_in_window": 3,
            "oom": false,
            "seen": {"restart_count": 3, "state": "running", "health": ""}
        }
    })
    .to_string()
}

#[test]
fn times_as_rfc3339_says_them() {
    let table: &[(&str, Option<(u64, u32)>)] = &[
        ("1970-01-01T00:00:00Z", Some((0, 0))),
        (
            "2026-11-26T21:00:00.123456Z",
            Some((1_795_726_800, 123_456_000)),
        ),
        ("2026-11-26T21:00:00.1Z", Some((1_795_726_800, 100_000_000))),
        (
            "2026-11-26T21:00:00.123456789123Z",
            Some((1_795_726_800, 123_456_789)),
        ),
        // Only UTC, as rtinspect writes it.
        ("2026-11-26T22:00:00+01:00", None),
        ("2026-11-26 21:00:00Z", None),
        ("2000-02-29T00:00:00Z", Some((951_782_400, 0))),
        ("1969-12-31T23:59:59Z", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-26T21:00:00", None),
        ("2026-11-26T21:00:00.Z", None),
        ("2026-11-26T21:00:00+0100", None),
        ("2026-11-26T2a:00:00Z", None),
        ("2026-11-26T+1:00:00Z", None),
        ("", None),
        ("ééééééééééééééééééééé", None),
    ];
    for (s, want) in table {
        let got = parse_time(s).map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap();
            (d.as_secs(), d.subsec_nanos())
        });
        assert_eq!(got, *want, "{s}");
    }
    // Every time the daemon writes reads back.
    for secs in [0, 1, 59, 86_399, 1_795_726_800, 4_102_444_799] {
        let at = UNIX_EPOCH + Duration::new(secs, 123_456_000);
        assert_eq!(parse_time(&rfc3339_micros(at)), Some(at));
    }
}

#[test]
fn an_envelope_or_its_history_line_is_an_entry_and_anything_else_is_not() {
    let line = envelope("escalated", "g-loop", "crash_loop", 40, 10);
    let e = Entry::from_line(&line).unwrap();
    assert_eq!(
        (
            e.change,
            e.game_id.as_str(),
            e.kind.as_str(),
            e.at,
            e.started_at
        ),
        ("escalated", "g-loop", "crash_loop", t(40), t(10))
    );
    assert_eq!(e.reason, None);
    let mut with_reason: serde_json::Value = serde_json::from_str(&line).unwrap();
    with_reason["details"]["reason"] = "oom".into();
    with_reason["details"]["resolution"] = "removed".into();
    let e = Entry::from_line(&with_reason.to_string()).unwrap();
    assert_eq!(e.reason.as_deref(), Some("oom"));
    assert_eq!(e.resolution.as_deref(), Some("removed"));
    for bad in [
        "",
        "{}",
        "not json",
        &line.replace("incident_escalated", "inspect_unhealthy"),
        &line.replace("incident_escalated", "incident_bogus"),
        &line.replace("\"started_at\"", "\"x\""),
    ] {
        assert_eq!(Entry::from_line(bad), None, "{bad}");
    }
}

fn entries(lines: &[String]) -> Vec<Entry> {
    lines.iter().filter_map(|l| Entry::from_line(l)).collect()
}

#[test]
fn a_crash_loop_and_its_recovery_read_oldest_first_with_durations() {
    let lines = [
        envelope("resolved", "g-loop", "crash_loop", 310, 10),
        envelope("opened", "g-loop", "not_running", 10, 10),
        envelope("opened", "g-other", "unhealthy", 5, 5),
        envelope("escalated", "g-loop", "crash_loop", 42, 10),
        envelope("opened", "g-old", "unhealthy", 1, 1),
    ];
    let tl = Timeline::new(
        "host-7".into(),
        Source::HistoryFile,
        Some("g-loop".into()),
        t(2),
        entries(&lines),
    );
    let changes: Vec<&str> = tl.entries.iter().map(|e| e.change).collect();
    assert_eq!(changes, ["opened", "escalated", "resolved"]);
    let durations: Vec<Option<u64>> = (0..3)
        .map(|i| tl.duration(i).map(|d| d.as_secs()))
        .collect();
    assert_eq!(durations, [Some(300), Some(32), Some(300)]);
    let text = tl.table();
    let expected = "\
3 incident events on host-7 since 2027-01-15 08:00Z for g-loop, from history.jsonl
TIME                  GAME    CHANGE     KIND         REASON  DURATION   INCIDENT
2027-01-15 08:00:10Z  g-loop  opened     not running  -       lasted 5m  …00000010
2027-01-15 08:00:42Z  g-loop  escalated  crash loop   -       after 32s  …00000010
2027-01-15 08:05:10Z  g-loop  resolved   crash loop   -       lasted 5m  …00000010
";
    assert_eq!(text, expected);
    let v: serde_json::Value = serde_json::from_str(&tl.json()).unwrap();
    assert_eq!(v["source"], "history.jsonl");
    assert_eq!(v["game"], "g-loop");
    assert_eq!(v["events"].as_array().unwrap().len(), 3);
    assert_eq!(v["events"][0]["change"], "opened");
    assert_eq!(v["events"][0]["duration_seconds"], 300.0);
    assert_eq!(v["events"][1]["kind"], "crash_loop");
    assert_eq!(v["events"][2]["started_at"], "2027-01-15T08:00:10.000000Z");
    // Without the game filter, the others are there, but not before `since`.
    let all = Timeline::new("h".into(), Source::HistoryFile, None, t(2), entries(&lines));
    assert_eq!(all.entries.len(), 4);
    assert_eq!(all.entries[0].game_id, "g-other");
    // An opening whose end is not shown has no duration.
    let open = Timeline::new(
        "h".into(),
        Source::HistoryFile,
        None,
        t(0),
        entries(&lines[1..2]),
    );
    assert_eq!(open.duration(0), None);
    assert!(open.table().contains("  -  "), "{}", open.table());
}

#[test]
fn hostile_game_ids_are_inert_in_the_table_and_whole_in_json() {
    let game = "\u{1b}[31mred\u{1b}[0m\u{202e}";
    let tl = Timeline::new(
        "h".into(),
        Source::HistoryFile,
        None,
        t(0),
        entries(&[envelope("opened", game, "unhealthy", 1, 1)]),
    );
    assert!(!tl.table().contains('\u{1b}'), "{:?}", tl.table());
    assert!(tl.table().contains("?[31mred?[0m?"));
    let v: serde_json::Value = serde_json::from_str(&tl.json()).unwrap();
    assert_eq!(v["events"][0]["game_id"], game);
}

fn fact(game: &str, at: u64, state: &str, health: &str) -> Fact {
    Fact {
        at: t(at),
        game_id: game.into(),
        container_id: "c".into(),
        state: state.into(),
        health: health.into(),
    }
}

#[test]
fn facts_make_stretches_opened_escalated_and_resolved_at_the_last_fact() {
    let gap = Duration::from_secs(45);
    let facts = vec![
        // g-a: restarted, then down, for a minute; then clean; then sick now.
        fact("g-a", 0, "running", ""),
        fact("g-a", 15, "exited", ""),
        fact("g-a", 30, "exited", ""),
        fact("g-a", 60, "running", "unhealthy"),
        fact("g-a", 600, "running", "unhealthy"),
        // g-b: one fact long ago.
        fact("g-b", 100, "restarting", ""),
    ];
    let got: Vec<(String, &str, String, u64, u64)> = from_facts(facts, gap, t(620))
        .into_iter()
        .map(|e| {
            let secs = |x: SystemTime| x.duration_since(t(0)).unwrap().as_secs();
            (e.game_id, e.change, e.kind, secs(e.at), secs(e.started_at))
        })
        .collect();
    let want = [
        ("g-a", "opened", "restarted", 0, 0),
        ("g-a", "escalated", "not_running", 15, 0),
        ("g-a", "resolved", "not_running", 60, 0),
        ("g-a", "opened", "unhealthy", 600, 600),
        ("g-b", "opened", "restarted", 100, 100),
        ("g-b", "resolved", "restarted", 100, 100),
    ];
    let want: Vec<(String, &str, String, u64, u64)> = want
        .iter()
        .map(|(g, c, k, a, s)| (g.to_string(), *c, k.to_string(), *a, *s))
        .collect();
    assert_eq!(got, want);
    let tl = Timeline::new(
        "h".into(),
        Source::Facts,
        None,
        t(0),
        from_facts(vec![fact("g", 0, "exited", "")], gap, t(100)),
    );
    assert!(
        tl.table().contains("derived from the facts"),
        "{}",
        tl.table()
    );
    let v: serde_json::Value = serde_json::from_str(&tl.json()).unwrap();
    assert_eq!(v["source"], "derived_from_facts");
    assert_eq!(v["events"][0]["incident_id"], serde_json::Value::Null);
}
