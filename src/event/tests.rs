//! The envelope's unit tests: its fields, times and types.

use super::envelope::MAX_ENVELOPE_BYTES;
use super::*;
use crate::inspector::{Observation, Reason};

fn at(secs: u64, micros: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, micros * 1000)
}

#[test]
fn each_change_of_an_incident_is_published_under_its_own_event_type() {
    let changes = [
        (Change::Opened, "incident_opened"),
        (Change::Escalated, "incident_escalated"),
        (Change::Reminder, "incident_reminder"),
        (Change::Resolved, "incident_resolved"),
    ];
    for (change, name) in changes {
        assert_eq!(EventType::Incident(change).as_str(), name);
    }
}

#[test]
fn rfc3339_table() {
    let table = [
        (at(0, 0), "1970-01-01T00:00:00.000000Z"),
        (at(951_782_400, 1), "2000-02-29T00:00:00.000001Z"),
        (at(1_798_318_800, 123_456), "2026-12-26T21:00:00.123456Z"),
        (at(1_795_726_800, 999_999), "2026-11-26T21:00:00.999999Z"),
        (at(4_107_542_399, 0), "2100-02-28T23:59:59.000000Z"),
        (at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z"),
    ];
    for (t, want) in table {
        assert_eq!(rfc3339_micros(t), want);
    }
}

fn finding() -> Finding {
    Finding {
        game_id: "g-42".into(),
        observation: Observation {
            container_id: "c".repeat(64),
            restart_count: 3,
            status: "running".into(),
            health: "unhealthy".into(),
            details: None,
        },
        reasons: vec![Reason::Unhealthy],
    }
}

#[test]
fn envelope_has_the_spec_shape_in_order() {
    let e = HealthEvent::with_id("0193-x".into(), finding(), at(1_795_726_800, 123_456));
    let want = format!(
        r#"{{"event_id":"0193-x","game_id":"g-42","container_id":"{}","event_type":"inspect_unhealthy","occurred_at":"2026-11-26T21:00:00.123456Z","details":{{"restart_count":3,"state":"running","health":"unhealthy"}}}}"#,
        "c".repeat(64)
    );
    assert_eq!(e.envelope().as_str(), want);
}

#[test]
fn envelope_escapes_hostile_strings() {
    let mut f = finding();
    f.game_id = "g\"\n\u{1}".into();
    let e = HealthEvent::with_id("id".into(), f, at(0, 0));
    assert!(!e.envelope().as_str().contains('\n'));
    let back: serde_json::Value = serde_json::from_str(e.envelope().as_str()).unwrap();
    assert_eq!(back["game_id"], "g\"\n\u{1}");
}

#[test]
fn an_envelope_reads_back_into_the_same_event() {
    let e = HealthEvent::from_finding(finding(), at(1_795_726_800, 5));
    assert_eq!(
        HealthEvent::from_envelope(e.envelope().as_str()).unwrap(),
        e
    );
    assert!(HealthEvent::from_envelope("{}").is_err());
    let facts = IncidentFacts {
        oom: true,
        ..plain_facts("019ae1c5-0000-7000-8000-000000000000", Kind::CrashLoop, 3)
    };
    let i = HealthEvent::for_incident(
        Change::Escalated,
        facts.clone(),
        "g".into(),
        finding().observation,
        SystemTime::UNIX_EPOCH,
    );
    let v: serde_json::Value = serde_json::from_str(i.envelope().as_str()).unwrap();
    assert_eq!(v["event_type"], "incident_escalated");
    assert_eq!(v["details"]["kind"], "crash_loop");
    assert_eq!(v["details"]["seen"]["state"], e.state.as_str());
    let details: serde_json::Value = serde_json::from_str(i.envelope().details()).unwrap();
    assert_eq!(details, v["details"]);
    let back = HealthEvent::from_envelope(i.envelope().as_str()).unwrap();
    assert_eq!(back, i, "an incident's event reads back from the spool");
    assert_eq!(back.incident.as_deref(), Some(&facts));
    assert!(
        HealthEvent::from_envelope(&e.envelope().as_str().replace("inspect_unhealthy", "other"))
            .is_err()
    );
    // A kind this version does not know is not replayed: the spool sets
    // the line aside in rejected.jsonl.
    let unknown = i
        .envelope()
        .as_str()
        .replace("\"crash_loop\"", "\"on_fire\"");
    let err = HealthEvent::from_envelope(&unknown).unwrap_err();
    assert!(err.contains("unknown incident kind"), "{err}");
}

#[test]
fn a_removed_incident_says_so_and_carries_nothing_seen() {
    let facts = plain_facts(
        "019ae1c5-0000-7000-8000-000000000000",
        crate::incident::Kind::NotRunning,
        1,
    );
    let e = HealthEvent::for_closed_incident(
        facts.clone(),
        "g".into(),
        "c".repeat(64),
        REMOVED,
        at(1_795_726_800, 5),
    );
    let v: serde_json::Value = serde_json::from_str(e.envelope().as_str()).unwrap();
    assert_eq!(v["event_type"], "incident_resolved");
    assert_eq!(v["container_id"], "c".repeat(64));
    assert_eq!(
        e.envelope().details(),
        r#"{"incident_id":"019ae1c5-0000-7000-8000-000000000000","kind":"not_running","started_at":"2026-12-02T15:40:13.104861Z","restarts_in_window":1,"oom":false,"resolution":"removed"}"#
    );
    assert_eq!(e.resolution.as_deref(), Some(REMOVED));
    assert_eq!(e.state, REMOVED);
    let back = HealthEvent::from_envelope(e.envelope().as_str()).unwrap();
    assert_eq!(back, e, "it reads back from the spool");
    // An incident's event with neither `seen` nor a resolution is refused.
    let bare = e
        .envelope()
        .as_str()
        .replace(r#","resolution":"removed""#, "");
    assert!(HealthEvent::from_envelope(&bare).is_err());
}

#[test]
fn an_envelope_that_escaping_would_push_past_notify_sheds_its_texts() {
    let mut f = extended();
    let controls = "\u{1}".repeat(512);
    f.game_id = "\u{1}".repeat(256);
    if let Some(d) = f.observation.details.as_deref_mut() {
        d.error = Some(controls.clone());
        d.health_output = Some(controls);
    }
    let e = HealthEvent::with_id("id".into(), f, at(0, 0));
    assert!(
        e.envelope().as_str().len() <= MAX_ENVELOPE_BYTES,
        "{}",
        e.envelope().as_str().len()
    );
    let v: serde_json::Value = serde_json::from_str(e.envelope().as_str()).unwrap();
    assert!(v["details"].get("health_output").is_none(), "dropped first");
    assert!(
        v["details"].get("error").is_some(),
        "the error fits after that"
    );
    assert_eq!(v["details"]["exit_code"], 137, "the rest is kept");
    let details: serde_json::Value = serde_json::from_str(e.envelope().details()).unwrap();
    assert_eq!(details, v["details"]);
    let mut small = extended();
    if let Some(d) = small.observation.details.as_deref_mut() {
        d.error = Some("short".into());
    }
    let e = HealthEvent::with_id("id".into(), small, at(0, 0));
    assert!(
        e.envelope().as_str().contains("\"error\":\"short\""),
        "nothing shed when it fits"
    );
}

#[test]
fn only_an_incident_carries_the_last_probes_outputs() {
    let fact = HealthEvent::from_finding(extended(), at(0, 0));
    let v: serde_json::Value = serde_json::from_str(fact.envelope().as_str()).unwrap();
    assert!(v["details"].get("health_log").is_none(), "{v}");
    assert!(fact.details.as_ref().unwrap().health_log.is_empty());
    let facts = plain_facts("019ae1c5-0000-7000-8000-000000000001", Kind::Unhealthy, 0);
    let i = HealthEvent::for_incident(
        Change::Opened,
        facts,
        "g".into(),
        extended().observation,
        at(0, 0),
    );
    let v: serde_json::Value = serde_json::from_str(i.envelope().as_str()).unwrap();
    assert_eq!(
        v["details"]["seen"]["health_log"],
        serde_json::json!(["earlier", "probe says \"no\"\n"])
    );
    assert_eq!(
        HealthEvent::from_envelope(i.envelope().as_str()).unwrap(),
        i
    );
}

fn extended() -> Finding {
    let mut f = finding();
    f.observation.status = "exited".into();
    f.observation.details = Some(Box::new(StateDetails {
        exit_code: Some(137),
        oom_killed: Some(true),
        error: None,
        started_at: Some("2026-11-26T20:59:00.5Z".into()),
        finished_at: Some("2026-11-26T21:00:00.25Z".into()),
        health_failing_streak: Some(4),
        health_output: Some("probe says \"no\"\n".into()),
        health_log: vec!["earlier".into(), "probe says \"no\"\n".into()],
        ..Default::default()
    }));
    f
}

#[test]
fn extended_details_follow_the_three_in_the_contract_order() {
    let e = HealthEvent::with_id("id".into(), extended(), at(1_795_726_800, 0));
    assert_eq!(
        e.envelope().details(),
        r#"{"restart_count":3,"state":"exited","health":"unhealthy","exit_code":137,"oom_killed":true,"started_at":"2026-11-26T20:59:00.5Z","finished_at":"2026-11-26T21:00:00.25Z","health_failing_streak":4,"health_output":"probe says \"no\"\n"}"#
    );
    assert!(
        e.envelope()
            .as_str()
            .ends_with(&format!(r#","details":{}}}"#, e.envelope().details()))
    );
}

#[test]
fn details_json_is_the_envelopes_details_byte_for_byte() {
    for f in [finding(), extended()] {
        let e = HealthEvent::from_finding(f, at(1_795_726_800, 9));
        let v: serde_json::Value = serde_json::from_str(e.envelope().as_str()).unwrap();
        let d: serde_json::Value = serde_json::from_str(e.envelope().details()).unwrap();
        assert_eq!(v["details"], d);
        assert!(e.envelope().as_str().contains(e.envelope().details()));
    }
    let basic = HealthEvent::with_id("id".into(), finding(), at(0, 0));
    assert_eq!(
        basic.envelope().details(),
        r#"{"restart_count":3,"state":"running","health":"unhealthy"}"#
    );
}

#[test]
fn empty_extended_details_render_as_basic() {
    let mut f = finding();
    f.observation.details = Some(Box::default());
    let e = HealthEvent::with_id("id".into(), f, at(0, 0));
    let b = HealthEvent::with_id("id".into(), finding(), at(0, 0));
    assert_eq!(e, b);
}

#[test]
fn an_extended_envelope_reads_back_into_the_same_event() {
    let e = HealthEvent::from_finding(extended(), at(1_795_726_800, 5));
    let back = HealthEvent::from_envelope(e.envelope().as_str()).unwrap();
    assert_eq!(back, e);
    assert_eq!(back.details.as_ref().unwrap().exit_code, Some(137));
    assert_eq!(back.envelope().details(), e.envelope().details());
}

#[test]
fn details_of_a_spooled_envelope_are_found_wherever_they_are() {
    // A line written by hand, details first and spaced: kept as it is.
    let line = r#"{ "details" : {"state":"exited", "health":"","restart_count":2,"exit_code":1},
        "event_id":"0193a1b2-0000-7000-8000-000000000000","game_id":"g","container_id":"c",
        "event_type":"inspect_unhealthy","occurred_at":"2026-11-26T21:00:00.000000Z"}"#;
    let e = HealthEvent::from_envelope(line).unwrap();
    assert_eq!(
        e.envelope().details(),
        r#"{"state":"exited", "health":"","restart_count":2,"exit_code":1}"#
    );
    assert_eq!(e.details.unwrap().exit_code, Some(1));
    assert!(HealthEvent::from_envelope(&line.replace(r#""restart_count":2,"#, "")).is_err());
}

#[test]
fn event_ids_are_uuids_and_unique() {
    let a = HealthEvent::from_finding(finding(), SystemTime::now());
    let b = HealthEvent::from_finding(finding(), SystemTime::now());
    assert_ne!(a.event_id, b.event_id);
    assert!(uuid::Uuid::parse_str(&a.event_id).is_ok());
    assert_eq!(a.event_id.len(), 36);
}

#[test]
fn an_event_is_typed_and_its_envelope_is_made_at_the_wire() {
    let e = HealthEvent::from_finding(extended(), at(1_795_726_800, 7));
    assert_eq!(e.event_type, EventType::Fact);
    assert_eq!(e.change(), None);
    // Made from the fields each time it is asked for: the same bytes.
    assert_eq!(e.envelope(), e.envelope());
    assert!(e.read_back.is_none(), "a new event keeps no bytes");
    // A line this version wrote reads back to an event that keeps none
    // either; a line by hand keeps its own.
    let back = HealthEvent::from_envelope(e.envelope().as_str()).unwrap();
    assert!(back.read_back.is_none());
    let spaced = e.envelope().as_str().replacen(":", ": ", 1);
    let kept = HealthEvent::from_envelope(&spaced).unwrap();
    assert_eq!(kept.envelope().as_str(), spaced);
    assert_eq!(kept.event_id, e.event_id);
    for (t, name) in EventType::PUBLISHED.iter().zip(EVENT_TYPES) {
        assert_eq!(t.as_str(), name);
    }
    assert_eq!(EventType::NotifyTest.as_str(), NOTIFY_TEST);
}

#[test]
fn an_incidents_log_tail_follows_what_was_seen_and_reads_back() {
    let lines = vec!["line 1".to_owned(), r#"say "bye" \ now"#.to_owned()];
    // (tail, what the details end with)
    let table = [
        (
            LogTail::Lines(lines.clone()),
            r#""log_tail":["line 1","say \"bye\" \\ now"]}"#,
        ),
        (
            LogTail::Unavailable("configured logging driver does not support reading".into()),
            r#""log_tail_unavailable":"configured logging driver does not support reading"}"#,
        ),
        (LogTail::Lines(Vec::new()), r#""log_tail":[]}"#),
    ];
    for (tail, end) in table {
        let e = opened_event("g-1").with_log_tail(tail.clone());
        let envelope = e.envelope();
        assert!(envelope.details().ends_with(end), "{}", envelope.details());
        let seen_at = envelope.details().find("\"seen\"").unwrap();
        assert!(seen_at < envelope.details().find("\"log_tail").unwrap());
        let back = HealthEvent::from_envelope(envelope.as_str()).unwrap();
        assert_eq!(back.log_tail.as_deref(), Some(&tail));
        assert_eq!(back, e, "read back whole, not kept as a line");
    }
    let plain = opened_event("g-1");
    assert!(!plain.envelope().as_str().contains("log_tail"));
}

#[test]
fn a_log_tail_that_escaping_would_push_past_notify_loses_its_oldest_lines() {
    // Ten lines of quotes and backslashes: 2 KiB raw, 4 KiB escaped, beside
    // a game id and probe outputs that escaping swells too.
    let mut f = extended();
    f.game_id = "\u{1}".repeat(256);
    if let Some(d) = f.observation.details.as_deref_mut() {
        d.error = Some("\u{1}".repeat(512));
    }
    let lines: Vec<String> = (0..10)
        .map(|i| format!("{i}{}", "\"\\".repeat(100)))
        .collect();
    let seen = f.observation.clone();
    let e = HealthEvent::for_incident(
        Change::Opened,
        IncidentFacts {
            started_at: rfc3339_micros(at(0, 0)),
            ..plain_facts("i", Kind::NotRunning, 0)
        },
        f.game_id,
        seen,
        at(0, 0),
    )
    .with_log_tail(LogTail::Lines(lines));
    let envelope = e.envelope();
    assert!(envelope.as_str().len() <= MAX_ENVELOPE_BYTES);
    let v: serde_json::Value = serde_json::from_str(envelope.as_str()).unwrap();
    let kept = v["details"]["log_tail"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 10, "{}", kept.len());
    eprintln!("{} of 10 lines kept", kept.len());
    assert!(
        kept.last().unwrap().as_str().unwrap().starts_with('9'),
        "the newest stay"
    );
    assert!(
        v["details"]["seen"].get("error").is_some(),
        "the error goes after the tail"
    );
}

#[test]
fn the_bound_that_spares_a_render_is_never_below_the_envelope() {
    // Texts of control characters, each escaped to six bytes, in every
    // field that carries text: the bound holds the envelope.
    for n in [0, 1, 7, 40, 120] {
        let mut f = extended();
        let c = "\u{1f}".repeat(n);
        f.game_id = c.clone();
        f.observation.status = c.clone();
        f.observation.health = c.clone();
        if let Some(d) = f.observation.details.as_deref_mut() {
            d.error = Some(c.clone());
            d.started_at = Some(c.clone());
            d.finished_at = Some(c.clone());
            d.health_output = Some(c.clone());
            d.health_log = vec![c.clone(), String::new(), c.clone()];
            d.health_failing_streak = Some(u64::MAX);
            d.exit_code = Some(i64::MIN);
        }
        let mut e = HealthEvent::with_id(c.clone(), f, at(0, 0));
        e.details.as_deref_mut().unwrap().health_log = vec![c.clone(), String::new(), c.clone()];
        e.restart_count = u64::MAX;
        let bound = e.envelope_bound();
        let len = e.envelope().as_str().len();
        assert!(len <= bound, "{len} > {bound} at {n}");
        // An incident's event, its log tail's lines or why there is none.
        let mut i = opened_event(&c);
        for tail in [
            LogTail::Lines(vec![c.clone(), String::new(), c.clone()]),
            LogTail::Unavailable(c.clone()),
        ] {
            i.log_tail = Some(Box::new(tail));
            let (len, bound) = (i.envelope().as_str().len(), i.envelope_bound());
            assert!(len <= bound, "{len} > {bound} at {n}, incident");
        }
    }
}

#[test]
fn a_named_host_is_a_top_level_host_id_read_back_and_kept_within_the_bound() {
    let plain = HealthEvent::with_id(
        "0193a1b2-0000-7000-8000-000000000000".into(),
        finding(),
        at(1_795_726_800, 123_456),
    );
    let e = plain.clone().seen_on("eu-7");
    let want = format!(
        r#"{{"event_id":"0193a1b2-0000-7000-8000-000000000000","game_id":"g-42","container_id":"{}","event_type":"inspect_unhealthy","occurred_at":"2026-11-26T21:00:00.123456Z","host_id":"eu-7","details":{{"restart_count":3,"state":"running","health":"unhealthy"}}}}"#,
        "c".repeat(64)
    );
    assert_eq!(e.envelope().as_str(), want);
    assert_eq!(e.envelope().details(), plain.envelope().details());
    let back = HealthEvent::from_envelope(e.envelope().as_str()).unwrap();
    assert_eq!(back.host_id.as_deref(), Some("eu-7"));
    assert_eq!(back.envelope().as_str(), want, "rendered back to itself");
    // Without a named host, nothing changes.
    assert_eq!(plain.host_id, None);
    assert!(!plain.envelope().as_str().contains("host_id"));
    // The longest host, every character escaped, on the longest event.
    let mut f = extended();
    let controls = "\u{1}".repeat(512);
    f.game_id = "\u{1}".repeat(256);
    if let Some(d) = f.observation.details.as_deref_mut() {
        d.error = Some(controls.clone());
        d.health_output = Some(controls);
    }
    let e = HealthEvent::with_id("id".into(), f, at(0, 0)).seen_on(&"\"".repeat(255));
    assert!(e.envelope().as_str().len() <= MAX_ENVELOPE_BYTES);
    assert!(e.envelope().as_str().len() <= e.envelope_bound());
    assert!(e.envelope().as_str().contains(&"\\\"".repeat(255)));
}
