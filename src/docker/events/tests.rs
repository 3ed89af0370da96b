//! The events reader's unit tests: decoding, the query, the wire, the reader.

use std::io::{BufReader, Read};
use std::time::UNIX_EPOCH;

use super::decode::*;
use super::wire::*;
use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn each_followed_action_has_its_own_label_in_the_metrics_and_the_rest_are_other() {
    let labels = crate::telemetry::DOCKER_EVENT_ACTIONS;
    let actions = ContainerAction::ALL.map(ContainerAction::as_str);
    assert_eq!(&labels[..actions.len()], &actions[..]);
    assert_eq!(labels[actions.len()..], ["other"]);
}

#[test]
fn an_action_counts_under_its_own_label() {
    // The counter is indexed by the action itself (`as usize`).
    let t = crate::telemetry::Telemetry::default();
    for (i, action) in ContainerAction::ALL.into_iter().enumerate() {
        t.docker_event(action);
        let counted: Vec<u64> = t.docker_events.iter().map(|c| c.swap(0, Relaxed)).collect();
        let mut want = vec![0; crate::telemetry::DOCKER_EVENT_ACTIONS.len()];
        want[i] = 1;
        assert_eq!(counted, want, "{}", action.as_str());
        assert_eq!(crate::telemetry::DOCKER_EVENT_ACTIONS[i], action.as_str());
    }
}

/// (action, its label, the container's name) expected of a line.
type Expected<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;

#[test]
fn event_lines_table() {
    let at = |ns: u64| UNIX_EPOCH + Duration::from_nanos(ns);
    let table: &[(&str, Expected)] = &[
        // Docker 20.10: Action and the legacy status.
        (
            r#"{"status":"die","id":"ID","Type":"container","Action":"die","Actor":{"ID":"ID","Attributes":{"exitCode":"1","name":"game-1"}},"time":1795726800,"timeNano":1795726800123456789}"#,
            Some(("die", "die", Some("game-1"))),
        ),
        // Docker 29: no status field.
        (
            r#"{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"ID","Attributes":{"name":"/g"}},"time":1795726800,"timeNano":1795726800123456789}"#,
            Some(("health_status: unhealthy", "health_status", Some("g"))),
        ),
        // Podman: a bare health_status.
        (
            r#"{"Type":"container","Action":"health_status","Actor":{"ID":"ID"},"time":1795726800,"timeNano":1795726800123456789}"#,
            Some(("health_status", "health_status", None)),
        ),
        (
            r#"{"Type":"container","Action":"oom","Actor":{"ID":"ID"},"timeNano":1795726800123456789}"#,
            Some(("oom", "oom", None)),
        ),
        (
            r#"{"Type":"network","Action":"connect","Actor":{"ID":"ID"},"timeNano":1}"#,
            None,
        ),
        (
            r#"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"ID"},"timeNano":1}"#,
            None,
        ),
        (
            r#"{"Type":"container","Action":"die","Actor":{"ID":""}}"#,
            None,
        ),
        ("not json", None),
        ("", None),
    ];
    for (line, want) in table {
        let line = line.replace("\"ID\":\"ID\"", &format!("\"ID\":\"{ID}\""));
        let got = decode_event(line.as_bytes(), None);
        match want {
            None => assert_eq!(got, None, "{line}"),
            Some((action, label, name)) => {
                let e = got.unwrap_or_else(|| panic!("{line}"));
                assert_eq!(e.id, ID);
                assert_eq!(ContainerAction::parse(action), Some(e.action));
                assert_eq!(e.action.as_str(), *label);
                assert_eq!(e.name.as_deref(), *name);
                assert_eq!(e.at, at(1_795_726_800_123_456_789));
            }
        }
    }
}

#[test]
fn seconds_are_used_without_nanoseconds() {
    let e = decode_event(
        format!(r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}"}},"time":5}}"#)
            .as_bytes(),
        None,
    )
    .unwrap();
    assert_eq!(e.at, UNIX_EPOCH + Duration::from_secs(5));
}

#[test]
fn the_game_label_is_read_from_the_attributes_in_label_mode() {
    // As Docker 20.10 sent it for `docker run --label rtinspect.game-id=gx`.
    let line = format!(
        r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}","Attributes":{{"image":"probe/bb:1","name":"probe1","rtinspect.game-id":"gx"}}}},"timeNano":5}}"#
    );
    let label = Some("rtinspect.game-id");
    let e = decode_event(line.as_bytes(), label).unwrap();
    assert_eq!(e.game.as_deref(), Some("gx"));
    assert_eq!(decode_event(line.as_bytes(), None).unwrap().game, None);
    let other = line.replace("rtinspect.game-id", "other.label");
    assert_eq!(decode_event(other.as_bytes(), label).unwrap().game, None);
    let created = line.replace("\"start\"", "\"create\"");
    assert_eq!(
        decode_event(created.as_bytes(), label)
            .unwrap()
            .action
            .as_str(),
        "create"
    );
}

#[test]
fn an_events_game_label_and_name_are_cleaned_of_nul_as_the_listings_are() {
    let line = format!(
        r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{ID}","Attributes":{{"name":"/pro\u0000be","rtinspect.game-id":"g\u0000x"}}}},"timeNano":5}}"#
    );
    let e = decode_event(line.as_bytes(), Some("rtinspect.game-id")).unwrap();
    assert_eq!(e.game.as_deref(), Some("g\u{FFFD}x"));
    assert_eq!(e.name.as_deref(), Some("pro\u{FFFD}be"));
}

#[test]
fn the_query_filters_containers_and_actions_and_resumes() {
    let without = events_query(None, false);
    assert!(!without.contains("create"), "{without}");
    let q = events_query(None, true);
    let decoded = q
        .replace("%22", "\"")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%5B", "[")
        .replace("%5D", "]");
    assert!(decoded.contains(r#""type":["container"]"#), "{decoded}");
    assert!(
        decoded.contains(
            r#""event":["die","died","oom","health_status","start","restart","create","stop","kill","destroy","remove"]"#
        ),
        "{decoded}"
    );
    let since = UNIX_EPOCH + Duration::new(1_795_726_800, 5);
    assert!(events_query(Some(since), true).starts_with("since=1795726800.000000005&filters="));
}

#[test]
fn a_replayed_event_does_not_prove_a_stream() {
    let seen = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let up = Instant::now();
    let stay = Duration::from_secs(30);
    let s = Duration::from_secs;
    // What the stream carries, and when (seconds after the head).
    enum Carried {
        Event(SystemTime),
        Ping,
        Other,
    }
    type Carries<'a> = &'a [(Carried, u64)];
    // (what, the stream, whether it proves itself)
    let table: &[(&str, Carries, bool)] = &[
        // dockerd replays from `since` = the last event seen − 1 s.
        (
            "the last event seen, replayed",
            &[(Carried::Event(seen), 0)],
            false,
        ),
        (
            "an older one in the replay window",
            &[(Carried::Event(seen - s(1)), 0)],
            false,
        ),
        ("news", &[(Carried::Event(seen + s(1)), 0)], true),
        (
            "replays, then news",
            &[(Carried::Event(seen), 0), (Carried::Event(seen + s(1)), 1)],
            true,
        ),
        ("a silence answered by a ping", &[(Carried::Ping, 30)], true),
        ("the end at once", &[(Carried::Other, 0)], false),
        ("the end after 29 s", &[(Carried::Other, 29)], false),
        ("the end after 30 s", &[(Carried::Other, 30)], true),
        (
            "a replay after 30 s up",
            &[(Carried::Event(seen), 30)],
            true,
        ),
    ];
    for (what, got, proves) in table {
        let mut proof = Proof::new(seen, up, stay);
        let mut proven_times = 0;
        for (g, at) in *got {
            let now = up + s(*at);
            let newly = match g {
                Carried::Event(t) => proof.event(*t, now),
                Carried::Ping => proof.pinged(),
                Carried::Other => proof.woke(now),
            };
            proven_times += usize::from(newly);
        }
        assert_eq!(proven_times, usize::from(*proves), "{what}");
    }
    // Proven once: more news does not reset the backoff again.
    let mut proof = Proof::new(seen, up, stay);
    assert!(proof.event(seen + s(1), up));
    assert!(!proof.event(seen + s(2), up));
    assert!(!proof.pinged());
}

fn dechunk(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Chunked::new(BufReader::new(bytes)).read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn chunked_bodies_table() {
    let table: &[(&[u8], Option<&[u8]>)] = &[
        (b"5\r\nhello\r\n0\r\n\r\n", Some(b"hello")),
        (b"3\r\nab\n\r\n2\r\ncd\r\n0\r\n\r\n", Some(b"ab\ncd")),
        (b"a;ext=1\r\n0123456789\r\n0\r\n\r\n", Some(b"0123456789")),
        (b"5\r\nhello\r\n", Some(b"hello")),
        (b"zz\r\nhello\r\n", None),
        (b"5\r\nhel", None),
        (b"5\r\nhelloXX0\r\n\r\n", None),
    ];
    for (input, want) in table {
        let got = dechunk(input);
        match want {
            Some(w) => assert_eq!(got.unwrap(), *w, "{:?}", String::from_utf8_lossy(input)),
            None => assert!(got.is_err(), "{:?}", String::from_utf8_lossy(input)),
        }
    }
}

#[test]
fn an_event_split_across_chunks_is_one_line() {
    let body = b"4\r\n{\"a\"\r\n3\r\n:1}\r\n1\r\n\n\r\n0\r\n\r\n";
    let mut reader: Body = Box::new(BufReader::new(Chunked::new(BufReader::new(&body[..]))));
    let mut line = Vec::new();
    assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
    assert_eq!(line, b"{\"a\":1}");
    line.clear();
    assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::End);
}

#[test]
fn an_overlong_line_is_read_past_and_the_next_one_read() {
    let mut bytes = vec![b'x'; LINE_LIMIT * 3];
    bytes.extend_from_slice(b"\nnext\n");
    let mut reader: Body = Box::new(BufReader::new(std::io::Cursor::new(bytes)));
    let mut line = Vec::new();
    assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Skipped);
    assert!(line.is_empty());
    assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
    assert_eq!(line, b"next");
}

#[test]
fn a_line_cut_by_a_timeout_is_read_on_not_lost() {
    let mut line = b"{\"Type\":".to_vec();
    let mut reader: Body = Box::new(BufReader::new(&b"\"container\"}\n"[..]));
    assert_eq!(read_line(&mut reader, &mut line).unwrap(), Got::Line);
    assert_eq!(line, b"{\"Type\":\"container\"}");
}
