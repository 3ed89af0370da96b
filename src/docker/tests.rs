//! The Docker client's unit tests: decoding, errors, version refusals.

use super::client::percent_encode;
use super::error::{error_message, is_version_refusal};
use super::*;
use crate::event::DetailLevel;
use crate::inspector::{Observation, StateDetails};

#[test]
fn container_ref_rule_table() {
    let table = [
        ("a", false),
        ("ab", true),
        ("/game-1", true),
        (&"f".repeat(64), true),
        ("my_game.v2-x", true),
        ("-lead", false),
        ("_lead", false),
        ("", false),
        ("/", false),
        ("../../v1.41/containers/create", false),
        ("a/b", false),
        ("a b", false),
        ("a?x=1", false),
        ("a%2F", false),
        ("é1", false),
        (&"a".repeat(256), false),
    ];
    for (s, ok) in table {
        assert_eq!(is_valid_container_ref(s), ok, "{s:?}");
    }
}

#[test]
fn api_version_parse_and_order() {
    assert_eq!(
        ApiVersion::parse("1.41"),
        Some(ApiVersion {
            major: 1,
            minor: 41
        })
    );
    assert_eq!(ApiVersion::parse("1.x"), None);
    assert_eq!(ApiVersion::parse("141"), None);
    assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.41").unwrap());
    assert_eq!(ApiVersion::parse("1.52").unwrap().min(MAX_API), MAX_API);
}

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn decode_inspect_reads_the_four_fields() {
    let body = format!(
        r#"{{"Id":"{ID}","Created":"x","RestartCount":4,"Config":{{"Labels":{{"a":"b"}}}},
            "State":{{"Status":"running","Running":true,"Health":{{"Status":"unhealthy","FailingStreak":3,"Log":[]}}}}}}"#
    );
    let o = decode_inspect(body.as_bytes()).unwrap();
    assert_eq!(o.container_id, ID);
    assert_eq!(o.restart_count, 4);
    assert_eq!(o.status, "running");
    assert_eq!(o.health, "unhealthy");
}

#[test]
fn decode_inspect_without_healthcheck_has_empty_health() {
    let body = format!(r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited"}}}}"#);
    assert_eq!(decode_inspect(body.as_bytes()).unwrap().health, "");
    let body =
        format!(r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited","Health":null}}}}"#);
    assert_eq!(decode_inspect(body.as_bytes()).unwrap().health, "");
}

#[test]
fn decode_inspect_rejects_bad_bodies() {
    let bad = [
        "".to_string(),
        "{".to_string(),
        "[]".to_string(),
        "null".to_string(),
        format!(r#"{{"Id":"{ID}","State":{{"Status":"running"}}}}"#),
        format!(r#"{{"Id":"{ID}","RestartCount":"3","State":{{"Status":"running"}}}}"#),
        format!(r#"{{"Id":"{ID}","RestartCount":-1,"State":{{"Status":"running"}}}}"#),
        format!(r#"{{"Id":"{ID}","RestartCount":1}}"#),
        r#"{"Id":"../x","RestartCount":1,"State":{"Status":"running"}}"#.to_string(),
        format!(r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":""}}}}"#),
        format!(r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":"running"}}"#),
        format!(
            r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":{}{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
    ];
    for body in bad {
        let got = decode_inspect(body.as_bytes());
        assert!(
            matches!(got, Err(DockerError::Malformed(_))),
            "{body:.80}: {got:?}"
        );
    }
}

fn extended(state: &str) -> Result<Observation, DockerError> {
    let body = format!(r#"{{"Id":"{ID}","RestartCount":2,"State":{state}}}"#);
    decode_inspect_with(body.as_bytes(), DetailLevel::Extended)
}

fn details(state: &str) -> StateDetails {
    extended(state)
        .unwrap()
        .details
        .map(|d| *d)
        .unwrap_or_default()
}

#[test]
fn basic_decoding_reads_no_details() {
    let body = format!(
        r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited","ExitCode":3,"Error":"x"}}}}"#
    );
    assert_eq!(decode_inspect(body.as_bytes()).unwrap().details, None);
}

#[test]
fn extended_decoding_reads_why() {
    let d = details(
        r#"{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,"Error":"",
            "StartedAt":"2026-11-27T09:42:59.106860293Z","FinishedAt":"2026-11-27T09:42:59.189598172Z",
            "Health":{"Status":"unhealthy","FailingStreak":3,"Log":[
                {"Start":"a","End":"b","ExitCode":1,"Output":"first\n"},
                {"ExitCode":1,"Output":"probe says no\n"}]}}"#,
    );
    assert_eq!(
        d,
        StateDetails {
            exit_code: Some(137),
            oom_killed: Some(true),
            error: None,
            started_at: Some("2026-11-27T09:42:59.106860293Z".into()),
            finished_at: Some("2026-11-27T09:42:59.189598172Z".into()),
            health_failing_streak: Some(3),
            health_output: Some("probe says no\n".into()),
            health_log: vec!["first\n".into(), "probe says no\n".into()],
            ..Default::default()
        }
    );
    // Of Docker's five, the last three, oldest first; a probe without
    // output is passed over.
    let d = details(
        r#"{"Status":"running","Health":{"Status":"unhealthy","Log":[
            {"Output":"1"},{"Output":"2"},{"ExitCode":1},{"Output":"3"},{"Output":"4"}]}}"#,
    );
    assert_eq!(d.health_log, vec!["2", "3", "4"]);
    assert_eq!(d.health_output.as_deref(), Some("4"));
}

#[test]
fn placeholders_are_left_out() {
    // (State, what is kept) — as dockerd 20.10 reports them here.
    let table: &[(&str, StateDetails)] = &[
        // Created, never started.
        (
            r#"{"Status":"created","ExitCode":0,"OOMKilled":false,"Error":"",
                "StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}"#,
            StateDetails::default(),
        ),
        // Created, failed to start: the exit code and the error say why.
        (
            r#"{"Status":"created","ExitCode":127,"OOMKilled":false,"Error":"exec: no such file",
                "StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}"#,
            StateDetails {
                exit_code: Some(127),
                oom_killed: Some(false),
                error: Some("exec: no such file".into()),
                ..StateDetails::default()
            },
        ),
        // Running after restarts: the exit fields were reset, FinishedAt is the last exit's.
        (
            r#"{"Status":"running","ExitCode":0,"OOMKilled":false,"Error":"",
                "StartedAt":"2026-11-27T09:42:57.6Z","FinishedAt":"2026-11-27T09:42:57.5Z"}"#,
            StateDetails {
                started_at: Some("2026-11-27T09:42:57.6Z".into()),
                finished_at: Some("2026-11-27T09:42:57.5Z".into()),
                ..StateDetails::default()
            },
        ),
        // Exited 0: a real exit.
        (
            r#"{"Status":"exited","ExitCode":0,"OOMKilled":false,
                "StartedAt":"2026-11-27T09:42:57.6Z","FinishedAt":"2026-11-27T09:42:58Z"}"#,
            StateDetails {
                exit_code: Some(0),
                oom_killed: Some(false),
                started_at: Some("2026-11-27T09:42:57.6Z".into()),
                finished_at: Some("2026-11-27T09:42:58Z".into()),
                ..StateDetails::default()
            },
        ),
        // Restarting: the exit that made it restart.
        (
            r#"{"Status":"restarting","ExitCode":3,"FinishedAt":"2026-11-27T09:42:58Z"}"#,
            StateDetails {
                exit_code: Some(3),
                finished_at: Some("2026-11-27T09:42:58Z".into()),
                ..StateDetails::default()
            },
        ),
        // Podman-like: fields absent or null are simply not there.
        (
            r#"{"Status":"exited","ExitCode":null,"Error":null,"Health":{"Status":"healthy","Log":null}}"#,
            StateDetails::default(),
        ),
        // Not timestamps: dropped rather than carried.
        (
            r#"{"Status":"running","StartedAt":"yesterday","FinishedAt":"2026-11-27T09:42:58Z<script>"}"#,
            StateDetails::default(),
        ),
        // A healthcheck that has not run yet.
        (
            r#"{"Status":"running","Health":{"Status":"starting","FailingStreak":0,"Log":[]}}"#,
            StateDetails {
                health_failing_streak: Some(0),
                ..StateDetails::default()
            },
        ),
    ];
    for (state, want) in table {
        assert_eq!(&details(state), want, "{state}");
    }
}

#[test]
fn extended_texts_are_cut_to_512_bytes_on_a_character_boundary() {
    let long = format!("a{}", "é".repeat(600));
    let d = details(&format!(
        r#"{{"Status":"exited","ExitCode":1,"Error":"{long}","Health":{{"Status":"unhealthy","Log":[{{"Output":"{long}"}}]}}}}"#
    ));
    for text in [d.error.unwrap(), d.health_output.unwrap()] {
        assert_eq!(
            text.len(),
            MAX_TEXT_BYTES - 1,
            "one byte short of a split é"
        );
        assert!(long.starts_with(&text));
    }
}

#[test]
fn a_nul_in_a_text_docker_sends_is_replaced_before_the_cut() {
    // 511 bytes of text, then a NUL: replaced by a 3-byte U+FFFD, which
    // no longer fits, so the cut drops it whole.
    let head = "a".repeat(MAX_TEXT_BYTES - 1);
    let d = details(&format!(
        r#"{{"Status":"exited","ExitCode":1,"Error":"bad\u0000name","Health":{{"Status":"unhealthy","Log":[{{"Output":"x\u0000y"}},{{"Output":"{head}\u0000"}}]}}}}"#
    ));
    assert_eq!(d.error.as_deref(), Some("bad\u{FFFD}name"));
    assert_eq!(d.health_log, ["x\u{FFFD}y".to_owned(), head.clone()]);
    assert_eq!(d.health_output.as_deref(), Some(head.as_str()));
    let listed = decode_list(
        br#"[{"Id":"abc","Created":1,"Labels":{"game":"g\u0000n"}}]"#,
        "game",
    )
    .unwrap();
    assert_eq!(listed[0].game_id, "g\u{FFFD}n");
}

#[test]
fn extended_decoding_refuses_wrong_types() {
    for state in [
        r#"{"Status":"exited","ExitCode":"137"}"#,
        r#"{"Status":"exited","OOMKilled":1}"#,
        r#"{"Status":"running","Health":{"Status":"unhealthy","Log":{"Output":"x"}}}"#,
        r#"{"Status":"running","Health":{"Status":"unhealthy","FailingStreak":-1}}"#,
    ] {
        assert!(
            matches!(extended(state), Err(DockerError::Malformed(_))),
            "{state}"
        );
    }
}

#[test]
fn deep_nesting_in_an_ignored_field_costs_no_stack() {
    // serde_json skips ignored values without recursing.
    let body = format!(
        r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":"running"}},"X":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(decode_inspect(body.as_bytes()).unwrap().restart_count, 1);
}

#[test]
fn decode_list_keeps_labelled_containers() {
    let body = br#"[
        {"Id":"aa11","Created":20,"Labels":{"rtinspect.game-id":"g-1","other":"x"}},
        {"Id":"bb22","Created":10,"Labels":{}},
        {"Id":"cc33","Created":30,"Labels":null},
        {"Id":"dd44","Created":40,"Labels":{"rtinspect.game-id":"g-2"}}
    ]"#;
    let got = decode_list(body, "rtinspect.game-id").unwrap();
    assert_eq!(
        got,
        vec![
            LabelledContainer {
                id: "aa11".into(),
                game_id: "g-1".into(),
                created: 20
            },
            LabelledContainer {
                id: "dd44".into(),
                game_id: "g-2".into(),
                created: 40
            },
        ]
    );
}

#[test]
fn error_message_prefers_docker_message() {
    assert_eq!(
        error_message(br#"{"message":"No such container: x"}"#),
        "No such container: x"
    );
    assert_eq!(error_message(b"plain failure\n"), "plain failure");
}

#[test]
fn version_refusal_is_recognised() {
    assert!(is_version_refusal(
        "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version"
    ));
    assert!(!is_version_refusal("bad parameter"));
}

#[test]
fn percent_encode_filters() {
    assert_eq!(
        percent_encode(r#"{"label":["rtinspect.game-id"]}"#),
        "%7B%22label%22%3A%5B%22rtinspect.game-id%22%5D%7D"
    );
}

#[test]
fn extended_decoding_reads_the_restart_policy_for_the_classifier_of_ends() {
    let id = "a".repeat(64);
    let body = |host: &str| {
        format!(
            r#"{{"Id":"{id}","RestartCount":0,"State":{{"Status":"exited","ExitCode":0,"FinishedAt":"2026-11-27T09:42:59.1Z"}}{host}}}"#
        )
    };
    let policy = |host: &str| {
        decode_inspect_with(body(host).as_bytes(), DetailLevel::Extended)
            .unwrap()
            .details
            .and_then(|d| d.restart_policy)
    };
    let always = r#","HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":0}}"#;
    assert_eq!(policy(always).as_deref(), Some("always"));
    assert_eq!(
        policy(r#","HostConfig":{"RestartPolicy":{"Name":""}}"#),
        None
    );
    assert_eq!(policy(r#","HostConfig":{}"#), None);
    assert_eq!(policy(""), None);
    assert_eq!(policy(r#","HostConfig":null"#), None);
    // A wrong shape is a bad answer, as anywhere else in the body.
    assert!(
        decode_inspect_with(
            body(r#","HostConfig":{"RestartPolicy":3}"#).as_bytes(),
            DetailLevel::Extended
        )
        .is_err()
    );
    // The basic decoding skips it unread, whatever it holds.
    assert!(decode_inspect(body(r#","HostConfig":{"RestartPolicy":3}"#).as_bytes()).is_ok());
}
