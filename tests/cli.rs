//! The binary as an operator meets it: help, exit codes, streams, signals.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{
    FakeEngine, Reply, TempDir, bin, events, hex_id, inspect_body, send_signal, wait_until,
};

#[test]
fn help_lists_every_command_and_option() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "run",
        "once",
        "migrate",
        "--docker-host",
        "DOCKER_HOST",
        "--database-url",
        "--database-ca-file",
        "RTINSPECT_DATABASE_URL",
        "--interval",
        "--docker-timeout",
        "--records-table",
        "--events-table",
        "--notify-channel",
        "--sink",
        "--label",
        "--metrics-addr",
        "--state-dir",
        "--log-format",
        "RUST_LOG",
        "64",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("rtinspect {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Arguments, environment, and what the message must name.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_configuration_exits_64_with_one_line_naming_the_option() {
    let cases: &[Case] = &[
        (&["--interval", "0"], &[], "--interval \"0\""),
        (
            &["once"],
            &[("RTINSPECT_INTERVAL", "-5s")],
            "RTINSPECT_INTERVAL \"-5s\"",
        ),
        (
            &["--docker-host", "tcp://127.0.0.1:2375"],
            &[],
            "--docker-host",
        ),
        (&["--sink", "postgres"], &[], "--sink"),
        (&["--frobnicate"], &[], "--frobnicate"),
        (
            &["--database-url", "postgres://u:pw-secret@h:port/db"],
            &[],
            "--database-url",
        ),
    ];
    for (args, env, names) in cases {
        let mut cmd = bin();
        cmd.args(*args);
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("rtinspect: "), "{stderr}");
        assert!(stderr.contains(names), "{stderr} lacks {names}");
        assert!(!stderr.contains("pw-secret"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn once_without_docker_exits_1_naming_the_socket() {
    let dir = TempDir::new("cli-nosock");
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let out = bin()
        .args(["once", "--docker-host", &host])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{}/docker.sock", dir.path().display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

fn labelled_engine() -> FakeEngine {
    FakeEngine::start(|path| {
        if path.contains("/containers/json?") {
            Reply::Json(
                200,
                format!(
                    r#"[{{"Id":"{}","Created":5,"Labels":{{"rtinspect.game-id":"g-up"}}}},
                        {{"Id":"{}","Created":6,"Labels":{{"rtinspect.game-id":"g-down"}}}}]"#,
                    hex_id(1),
                    hex_id(2)
                ),
            )
        } else if path.contains(&hex_id(1)) {
            Reply::Json(200, inspect_body(&hex_id(1), 0, "running", None))
        } else {
            Reply::Json(200, inspect_body(&hex_id(2), 4, "exited", None))
        }
    })
}

#[test]
fn once_writes_events_to_stdout_and_logs_to_stderr() {
    let engine = labelled_engine();
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["game_id"], "g-down");
    assert_eq!(events[0]["details"]["state"], "exited");
    assert_eq!(events[0]["details"]["restart_count"], 4);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("2 records, 1 events"), "{stderr}");
    assert!(
        !stderr.contains("event_id"),
        "events never go to the log: {stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let engine = FakeEngine::start(|_| Reply::Json(500, r#"{"message":"boom"}"#.into()));
    let out = bin()
        .args([
            "once",
            "--log-format",
            "json",
            "--docker-host",
            &engine.docker_host(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(v.get(key).is_some(), "{line} lacks {key}");
        }
    }
    assert!(stderr.contains("HTTP 500: boom"), "{stderr}");
}

fn run_until_ticks_then_signal(signal: &str) {
    let engine = labelled_engine();
    let child = bin()
        .args([
            "run",
            "--interval",
            "100ms",
            "--docker-host",
            &engine.docker_host(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "three ticks", || {
        engine
            .requests()
            .iter()
            .filter(|p| p.contains("/containers/json?"))
            .count()
            >= 3
    });
    send_signal(&child, signal);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Every tick's event was written before exit: one per tick that inspected g-down.
    let inspected = engine
        .requests()
        .iter()
        .filter(|p| p.contains(&hex_id(2)))
        .count();
    assert_eq!(events(&out).len(), inspected, "{stderr}");
    assert!(engine.connections() <= 2, "ticks reuse the connection");
}

#[test]
fn run_stops_on_sigterm_after_delivering() {
    run_until_ticks_then_signal("-TERM");
}

#[test]
fn run_stops_on_sigint_after_delivering() {
    run_until_ticks_then_signal("-INT");
}
