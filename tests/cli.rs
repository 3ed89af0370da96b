//! The binary as an operator meets it: help, exit codes, streams, signals.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;
use std::time::Duration;

use rtinspect::config::OPTIONS;

use crate::support::{
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

/// The binary with none of the options' variables set, whatever the caller's
/// environment holds.
fn clean_bin() -> std::process::Command {
    let mut cmd = bin();
    for spec in OPTIONS {
        cmd.env_remove(spec.env);
    }
    cmd
}

/// Runs `cmd` and checks the usage exit: 64, nothing on stdout, and exactly
/// one line on stderr, `rtinspect: …`, that contains `names`.
fn assert_usage_error(mut cmd: std::process::Command, names: &str, what: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("rtinspect: "), "{what}: {stderr}");
    assert!(stderr.contains(names), "{what}: {stderr} lacks {names}");
    assert!(out.stdout.is_empty(), "{what}");
    stderr
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[test]
fn a_non_utf8_argument_is_a_usage_error_naming_its_flag() {
    for spec in OPTIONS {
        let bad = b"x-pw-secret\xff";
        let mut separate = clean_bin();
        separate.arg("once").arg(spec.flag).arg(os(bad));
        let stderr = assert_usage_error(separate, spec.flag, spec.flag);
        assert!(stderr.contains("not valid UTF-8"), "{stderr}");
        if spec.secret {
            assert!(!stderr.contains("pw-secret"), "{stderr}");
        } else {
            assert!(stderr.contains("x-pw-secret\u{fffd}"), "{stderr}");
        }

        let mut inline = clean_bin();
        let mut arg = format!("{}=", spec.flag).into_bytes();
        arg.extend_from_slice(bad);
        inline.arg(os(&arg));
        assert_usage_error(inline, spec.flag, spec.flag);
    }
    let mut command = clean_bin();
    command.arg(os(b"on\xffce"));
    assert_usage_error(command, "unknown command", "a command that is not UTF-8");
    let mut flag = clean_bin();
    flag.arg(os(b"--inter\xffval")).arg("5s");
    assert_usage_error(flag, "unknown option", "a flag that is not UTF-8");
}

#[test]
fn a_non_utf8_environment_value_is_a_usage_error_naming_its_variable() {
    let variables = OPTIONS
        .iter()
        .map(|spec| (spec.env, spec.secret))
        .chain([("STATE_DIRECTORY", false)]);
    for (name, secret) in variables {
        let mut cmd = clean_bin();
        cmd.arg("once").env(name, os(b"/x-pw-secret\xff"));
        let stderr = assert_usage_error(cmd, name, name);
        assert!(stderr.contains("not valid UTF-8"), "{stderr}");
        assert_eq!(stderr.contains("pw-secret"), !secret, "{stderr}");
    }
}

#[test]
fn help_and_version_work_whatever_else_is_given() {
    let garbage: &[&[&[u8]]] = &[
        &[b"--bogus"],
        &[b"--interval", b"0s"],
        &[b"--label", b"\xff"],
        &[b"\xff", b"extra"],
        &[b"--sink=kafka", b"--records-table", b"a b"],
    ];
    for args in garbage {
        for (flag, want) in [("--help", "Usage: rtinspect"), ("-V", "rtinspect 0.")] {
            let mut cmd = clean_bin();
            cmd.args(args.iter().map(|a| os(a))).arg(flag);
            for spec in OPTIONS {
                cmd.env(spec.env, os(b"\xff"));
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{args:?} {flag}: {stderr}");
            assert!(stderr.is_empty(), "{args:?} {flag}: {stderr}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert!(
                stdout.starts_with(want) || stdout.contains(want),
                "{stdout}"
            );
        }
    }
}

#[test]
fn help_shows_every_option_of_the_table_with_its_variable_and_default() {
    let out = clean_bin().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // The bracketed `[VAR; default …]` may be wrapped: compare word by word.
    let words: Vec<&str> = text.split_whitespace().collect();
    let flat = words.join(" ");
    for spec in OPTIONS {
        assert!(flat.contains(&format!("{} {}", spec.flag, spec.value_name)));
        let bracket = format!("[{}; default {}]", spec.env, spec.default.shown());
        assert!(flat.contains(&bracket), "--help lacks {bracket}");
    }
}

#[test]
fn a_ca_file_with_a_mode_that_does_not_verify_is_a_usage_error() {
    let cases: &[Case] = &[
        (
            &["--database-url", "host=127.0.0.1 port=9 sslmode=require"],
            &[(
                "RTINSPECT_DATABASE_CA_FILE",
                "/etc/ssl/certs/ca-certificates.crt",
            )],
            "RTINSPECT_DATABASE_CA_FILE",
        ),
        (
            &[
                "--database-url",
                "host=127.0.0.1 port=9",
                "--database-ca-file",
                "/ca.pem",
            ],
            &[],
            "--database-ca-file \"/ca.pem\" has no effect with sslmode prefer",
        ),
        (
            &[],
            &[(
                "RTINSPECT_DATABASE_URL",
                "postgres://u:pw-secret@127.0.0.1:9/db?sslmode=disable&sslrootcert=/ca.pem",
            )],
            "sslrootcert in RTINSPECT_DATABASE_URL",
        ),
    ];
    for command in ["once", "migrate"] {
        for (args, env, names) in cases {
            let mut cmd = clean_bin();
            cmd.arg(command).args(*args).envs(env.iter().copied());
            let stderr = assert_usage_error(cmd, names, names);
            assert!(!stderr.contains("pw-secret"), "{stderr}");
        }
    }
}

/// The CA file is read when the PostgreSQL adapter is built, before any
/// connection: a bad one exits 64 at start-up, said once.
#[test]
fn an_unreadable_ca_file_is_a_usage_error_at_start_up() {
    let dir = TempDir::new("cli-ca");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let cases = [
        ("/nonexistent/ca.pem", "cannot read CA certificates"),
        (empty.as_str(), "no CA certificate"),
    ];
    for command in ["once", "run", "migrate"] {
        for (path, why) in cases {
            for mode in ["verify-ca", "verify-full"] {
                let mut cmd = clean_bin();
                cmd.args([
                    command,
                    "--database-url",
                    &format!("host=127.0.0.1 port=9 sslmode={mode}"),
                    "--database-ca-file",
                    path,
                ]);
                let named = format!("--database-ca-file {path}");
                let stderr = assert_usage_error(cmd, &named, command);
                assert!(stderr.contains(why), "{stderr}");
            }
        }
        let mut cmd = clean_bin();
        cmd.args([
            command,
            "--database-url",
            "postgres://127.0.0.1:9/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ]);
        assert_usage_error(
            cmd,
            "sslrootcert in --database-url /nonexistent/ca.pem",
            command,
        );
    }
}

#[test]
fn an_option_the_mode_does_not_use_is_a_usage_error() {
    let cases: &[Case] = &[
        (&["--records-table", "rt"], &[], "--records-table \"rt\""),
        (
            &[],
            &[("RTINSPECT_EVENTS_TABLE", "ev")],
            "RTINSPECT_EVENTS_TABLE",
        ),
        (&["--notify-channel", "ch"], &[], "--notify-channel"),
        (
            &["--database-ca-file", "/etc/ssl/certs/ca-certificates.crt"],
            &[],
            "--database-ca-file",
        ),
        (
            &["--database-url", "host=127.0.0.1 port=9", "--label", "x"],
            &[],
            "--label \"x\"",
        ),
    ];
    for (args, env, names) in cases {
        let mut cmd = clean_bin();
        cmd.arg("once").args(*args).envs(env.iter().copied());
        let stderr = assert_usage_error(cmd, names, names);
        assert!(stderr.contains("has no effect"), "{stderr}");
    }
}

#[test]
fn a_non_utf8_log_filter_is_a_usage_error_too() {
    let mut cmd = clean_bin();
    cmd.arg("once").env("RUST_LOG", os(b"rtinspect=debug\xff"));
    assert_usage_error(cmd, "RUST_LOG", "RUST_LOG");
}

#[test]
fn a_huge_bad_value_is_shown_cut_with_its_length() {
    let huge = "x\n".repeat(50_000);
    let mut cmd = clean_bin();
    cmd.args(["once", "--label", &huge]);
    let stderr = assert_usage_error(cmd, "--label", "a 100 KB label");
    assert!(stderr.len() < 600, "{} bytes", stderr.len());
    assert!(stderr.contains("(100000 bytes)"), "{stderr}");
}
