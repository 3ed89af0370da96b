//! Several sinks at once: each with its own queue, retries, spool and
//! metrics, so that a chat service that is down never holds up the table,
//! and neither loses an event.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{
    HookReply, HookServer, StoppedGame, TempDir, bin, json_lines, oom_killed_games, wait_until,
};

/// The ids of the envelopes of type `event_type` (any when empty) in a
/// spool file; none when there is no file.
fn spooled_ids(path: &std::path::Path, event_type: &str) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| event_type.is_empty() || v["event_type"] == event_type)
        .map(|v| v["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_chat_sink_down_for_a_minute_holds_up_neither_the_table_nor_loses_an_event() {
    let Some(mut g) = StoppedGame::start("sinks") else {
        return;
    };
    let state = TempDir::new("sinks-state");
    let started = Instant::now();
    let outage = Duration::from_secs(60);
    // Down (503) for a minute, then up.
    let hook = HookServer::start(move |_, _| {
        if started.elapsed() < outage {
            HookReply::Status(503, Vec::new(), "down for maintenance".into())
        } else {
            HookReply::ok()
        }
    });
    let url = format!("http://{}/hook/SECRETTOKEN", hook.addr);
    let (child, stderr) = StoppedGame::spawn(
        g.command("200ms")
            .args(["--sink", "postgres", "--sink", "webhook"])
            .args(["--webhook-url", &url, "--webhook-format", "envelope"])
            // The chat gets every fact too: a backlog of some 300 events.
            .args(["--report", "webhook=both"])
            .arg("--state-dir")
            .arg(state.path()),
    );

    // While the webhook is down, every tick's fact is stored at once.
    let deadline = started + outage - Duration::from_secs(2);
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let accepted = |hook: &HookServer| -> Vec<serde_json::Value> {
        let answered = hook.requests().len();
        hook.requests()
            .iter()
            .take(answered)
            .filter(|r| r.at >= started + outage)
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    };
    assert!(accepted(&hook).is_empty(), "delivered during the outage");
    let (rows, worst, mean): (i64, f64, f64) = {
        let row = g
            .schema
            .client
            .query_one(
                &format!(
                    "SELECT count(*), \
                     coalesce(max(extract(epoch FROM recorded_at - occurred_at)), 0)::float8, \
                     coalesce(avg(extract(epoch FROM recorded_at - occurred_at)), 0)::float8 \
                     FROM {}",
                    g.schema.events()
                ),
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    let tries_failed = hook.requests().len();
    eprintln!(
        "during the outage: {rows} rows stored, latency mean {:.1} ms, worst {:.1} ms; \
         {tries_failed} tries of the webhook refused",
        mean * 1e3,
        worst * 1e3
    );
    // 58 s of 200 ms ticks: some 290 facts.
    assert!(rows >= 200, "{rows} rows in 58 s: {}", stderr.text());
    assert!(
        worst < 1.0,
        "a row stored {worst:.3} s after its observation"
    );
    assert!(tries_failed >= 3, "the webhook was retried");

    // Up again: the backlog goes out, oldest first.
    wait_until(Duration::from_secs(60), "the backlog delivered", || {
        let stored = g.schema.count_events("true") as usize;
        accepted(&hook).len() > stored
    });
    let after = Instant::now();
    child.signal("-TERM");
    let status = child.wait();
    assert!(status.success(), "{status:?}: {}", stderr.text());
    eprintln!(
        "backlog delivered {:.1} s after the webhook came back",
        (after - (started + outage)).as_secs_f64()
    );

    // Every fact the table got, the webhook got too (or has in its spool),
    // and the other way round; the incident went to the webhook alone.
    let bodies = accepted(&hook);
    let facts: BTreeSet<String> = bodies
        .iter()
        .filter(|b| b["event_type"] == "inspect_unhealthy")
        .map(|b| b["event_id"].as_str().unwrap().to_owned())
        .collect();
    let opened = bodies
        .iter()
        .filter(|b| b["event_type"] == "incident_opened")
        .count();
    assert_eq!(opened, 1, "one incident for the stopped game");
    let stored: BTreeSet<String> = g
        .schema
        .event_rows()
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(
        g.schema.count_events("event_type <> 'inspect_unhealthy'"),
        0,
        "the table gets facts only"
    );
    let mut table = stored.clone();
    table.extend(spooled_ids(&state.path().join("spool.postgres.jsonl"), ""));
    let mut chat = facts.clone();
    chat.extend(spooled_ids(
        &state.path().join("spool.webhook.jsonl"),
        "inspect_unhealthy",
    ));
    assert_eq!(table, chat, "the two sinks got the same facts");
    let text = stderr.text();
    assert!(!text.contains("SECRETTOKEN"), "{text}");
    assert!(text.contains("sink=webhook"), "{text}");
}

#[test]
fn each_sink_keeps_its_own_spool_and_marks_its_refusals() {
    let engine = oom_killed_games(3);
    // The webhook refuses every event for good.
    let hook = HookServer::start(|_, _| HookReply::Status(400, Vec::new(), "bad".into()));
    let state = TempDir::new("sinks-own");
    let url = format!("http://{}/hook", hook.addr);
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--webhook-url", &url, "--webhook-format", "envelope"])
        .args(["--report", "facts", "--state-dir"])
        .arg(state.path())
        .env("RTINSPECT_SINKS", "stdout,webhook")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Events set aside are not delivered: `once` says how many, exit 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("events set aside rather than delivered (the webhook sink 3)"),
        "{stderr}"
    );
    let printed = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(printed.len(), 3, "stdout got every fact");
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    let lines = json_lines(&rejected);
    assert_eq!(lines.len(), 3, "{rejected}");
    for (line, fact) in lines.iter().zip(&printed) {
        assert_eq!(line["sink"], "webhook");
        assert_eq!(line["envelope"]["event_id"], fact["event_id"]);
    }

    // With the webhook unreachable, `once` spools its events alone and says so.
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "stdout", "--sink", "webhook"])
        .args(["--webhook-url", "http://127.0.0.1:9/hook"])
        .args(["--report", "facts", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_eq!(
        spooled_ids(&state.path().join("spool.webhook.jsonl"), "").len(),
        3
    );
    assert!(!state.path().join("spool.stdout.jsonl").exists());
    assert!(stderr.contains("sink=webhook"), "{stderr}");
    assert!(
        stderr.contains(
            "events not taken before the deadline (the webhook sink 3); \
             they are spooled for the next start"
        ),
        "{stderr}"
    );
}

/// `rtinspect notify-test` with a webhook of `format` at `url` (by file,
/// mode 600, so the token is on no command line), at `RUST_LOG=trace`.
fn notify_test(format: &str, url: &str) -> (Option<i32>, String, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("notify-test");
    let file = dir.path().join("url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = bin()
        .args(["notify-test", "--sink", "stdout,webhook"])
        .args(["--webhook-format", format, "--webhook-url-file"])
        .arg(&file)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains("SECRETTOKEN"), "the token leaked: {text}");
    }
    (out.status.code(), stdout, stderr)
}

/// The webhook's result line of a notify-test.
fn webhook_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("webhook ("))
        .unwrap_or_else(|| panic!("no webhook line: {stdout}"))
}

#[test]
fn notify_test_proves_each_format_and_names_what_the_service_said() {
    let formats = ["envelope", "slack", "discord", "ntfy", "telegram"];
    // The query carries Telegram's chat.
    let path = "/hook/SECRETTOKEN?chat_id=-100123";
    let ok = HookServer::start(|_, _| HookReply::Status(204, Vec::new(), String::new()));
    for format in formats {
        let (code, stdout, stderr) = notify_test(format, &format!("http://{}{path}", ok.addr));
        assert_eq!(code, Some(0), "{format}: {stdout}{stderr}");
        let line = webhook_line(&stdout);
        assert!(
            line.starts_with(&format!("webhook ({format}, http://127.0.0.1:")),
            "{line}"
        );
        assert!(
            line.contains(": ok in ") && line.ends_with("answered 204 No Content"),
            "{line}"
        );
        assert!(
            stdout.contains("\"event_type\":\"notify_test\""),
            "{stdout}"
        );
        assert!(stdout.contains("stdout: ok in "), "{stdout}");
    }
    let requests = ok.requests();
    assert_eq!(requests.len(), formats.len());
    for (format, request) in formats.iter().zip(&requests) {
        let body = &request.body;
        let said = match *format {
            "envelope" => "\"event_type\":\"notify_test\"",
            "ntfy" => "Sent by rtinspect notify-test",
            _ => "rtinspect: test message from ",
        };
        assert!(body.contains(said), "{format}: {body}");
        if *format != "ntfy" {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            match *format {
                "discord" => assert_eq!(json["allowed_mentions"]["parse"], serde_json::json!([])),
                "telegram" => assert_eq!(json["chat_id"], -100123),
                _ => {}
            }
        } else {
            assert!(
                request
                    .header("title")
                    .unwrap()
                    .starts_with("rtinspect: test message from ")
            );
        }
    }

    for (status, body) in [
        (401, r#"{"message": "401: Unauthorized", "code": 0}"#),
        (404, r#"{"message": "Unknown Webhook", "code": 10015}"#),
    ] {
        let refusing =
            HookServer::start(move |_, _| HookReply::Status(status, Vec::new(), body.into()));
        for format in formats {
            let (code, stdout, stderr) =
                notify_test(format, &format!("http://{}{path}", refusing.addr));
            assert_eq!(code, Some(1), "{format}: {stdout}{stderr}");
            let line = webhook_line(&stdout);
            assert!(line.contains(": FAILED in "), "{line}");
            assert!(line.contains(&status.to_string()), "{line}");
            assert!(line.contains(&body[..20]), "the service's answer: {line}");
            assert!(stderr.contains("1 of 2 sinks failed (webhook)"), "{stderr}");
        }
    }
    for (url, said) in [
        ("http://127.0.0.1:9/hook/SECRETTOKEN", "cannot reach"),
        (
            "http://rtinspect-test.invalid/hook/SECRETTOKEN",
            "cannot resolve the host",
        ),
    ] {
        let (code, stdout, stderr) = notify_test("ntfy", url);
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        let line = webhook_line(&stdout);
        assert!(line.contains(said), "{line}");
    }
}

#[test]
fn the_spool_of_an_earlier_version_goes_to_the_sinks_that_get_its_events() {
    // Facts and incidents, as a version with one sink spooled them.
    let three = oom_killed_games(3);
    let out = bin()
        .args(["once", "--docker-host", &three.docker_host()])
        .args(["--report", "both"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let of_type = |text: &str, event_type: &str| -> BTreeSet<String> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["event_type"] == event_type)
            .map(|v| v["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (facts, opened) = (
        of_type(&lines, "inspect_unhealthy"),
        of_type(&lines, "incident_opened"),
    );
    assert_eq!((facts.len(), opened.len()), (3, 3), "{lines}");
    let state = TempDir::new("sinks-upgrade");
    std::fs::write(state.path().join("spool.jsonl"), &lines).unwrap();

    // Now the table's facts to stdout, the incidents to a chat.
    let none = oom_killed_games(0);
    let hook = HookServer::start(|_, _| HookReply::ok());
    let url = format!("http://{}/hook", hook.addr);
    let upgraded = || {
        bin()
            .args(["once", "--docker-host", &none.docker_host()])
            .args(["--sink", "stdout,webhook", "--webhook-format", "envelope"])
            .args(["--webhook-url", &url])
            .arg("--state-dir")
            .arg(state.path())
            .output()
            .unwrap()
    };
    // Starts that fail while reading the spools (the webhook's cannot be
    // read) change nothing, however often systemd tries.
    let blocked = state.path().join("spool.webhook.jsonl");
    std::fs::create_dir(&blocked).unwrap();
    for _ in 0..3 {
        let out = upgraded();
        assert_eq!(out.status.code(), Some(1));
    }
    assert!(!state.path().join("spool.stdout.jsonl").exists());
    assert!(hook.requests().is_empty());
    std::fs::remove_dir(&blocked).unwrap();
    let out = upgraded();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(of_type(&printed, "inspect_unhealthy"), facts);
    assert!(of_type(&printed, "incident_opened").is_empty(), "{printed}");
    let posted: String = hook
        .requests()
        .iter()
        .map(|r| r.body.clone() + "\n")
        .collect();
    assert_eq!(of_type(&posted, "incident_opened"), opened);
    assert!(of_type(&posted, "inspect_unhealthy").is_empty(), "{posted}");
    assert!(!state.path().join("spool.jsonl").exists());

    // A sink no longer configured keeps its spool, and it is said.
    std::fs::write(state.path().join("spool.webhook.jsonl"), &lines).unwrap();
    let out = bin()
        .args(["once", "--docker-host", &none.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "spool.webhook.jsonl ({} bytes) holds events for a sink not configured now",
            lines.len()
        )),
        "{stderr}"
    );
    assert!(state.path().join("spool.webhook.jsonl").exists());
}

#[test]
fn a_burst_to_a_chat_is_one_digest_and_a_refused_digest_is_set_aside_whole() {
    let engine = oom_killed_games(41);
    let hook = HookServer::start(|_, _| HookReply::ok());
    let chat = |url: &str, state: &TempDir| {
        bin()
            .args(["once", "--docker-host", &engine.docker_host()])
            .args(["--sink", "webhook", "--webhook-format", "ntfy"])
            .args(["--webhook-url", url, "--state-dir"])
            .arg(state.path())
            .output()
            .unwrap()
    };
    let state = TempDir::new("sinks-burst");
    let out = chat(&format!("http://{}/alerts", hook.addr), &state);
    assert!(out.status.success());
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "41 games down at once: one message");
    let title = requests[0].header("title").unwrap();
    assert!(title.contains("41 incidents on "), "{title}");

    let refusing = HookServer::start(|_, _| HookReply::Status(400, Vec::new(), "no".into()));
    let state = TempDir::new("sinks-refused");
    let out = chat(&format!("http://{}/alerts", refusing.addr), &state);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("events set aside rather than delivered (the webhook sink 41)"),
        "{stderr}"
    );
    assert_eq!(refusing.requests().len(), 1);
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 41);
    assert_eq!(
        stderr
            .matches("41 events of one send refused by the sink")
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn stdout_nobody_reads_at_sigterm_spools_what_it_could_not_print() {
    use crate::support::{Daemon, Engine, StderrLines, free_addr, game_box, http_get};
    let engine = Engine::start();
    for i in 1..=600 {
        engine.put(i, game_box(&format!("g-{i}"), "exited"));
    }
    let state = TempDir::new("sinks-stdout-blocked");
    let metrics = free_addr();
    // Its stdout a pipe nobody reads: once the pipe's 64 KiB are full the
    // publisher is blocked in a write, as under a frozen reader.
    let mut child = bin()
        .args([
            "run",
            "--docker-host",
            &engine.docker_host(),
            "--sink",
            "stdout",
        ])
        .args(["--interval", "1h", "--metrics-addr", &metrics])
        .arg("--state-dir")
        .arg(state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let unread = child.stdout.take();
    let err = StderrLines::of(&mut child);
    let daemon = Daemon(Some(child));
    let depth = || {
        http_get(&metrics, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("rtinspect_publish_queue_depth{sink=\"stdout\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_until(
        Duration::from_secs(30),
        "a whole tick, the publisher blocked",
        || err.text().contains("tick: 600 records, 600 events") && depth() > 100,
    );
    let stopping = Instant::now();
    let status = daemon.terminate();
    let took = stopping.elapsed();
    let said = err.text();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut unread.unwrap(), &mut printed).unwrap();
    let spooled = spooled_ids(&state.path().join("spool.stdout.jsonl"), "");
    let whole: BTreeSet<String> = printed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["event_id"].as_str().unwrap().to_owned())
        .collect();
    eprintln!(
        "exit {status} {took:?} after SIGTERM; {} printed whole, {} spooled, last printed line \
         {} bytes",
        whole.len(),
        spooled.len(),
        printed.rsplit('\n').next().map_or(0, str::len)
    );
    assert!(status.success(), "{said}");
    assert!(said.contains("undelivered events spooled"), "{said}");
    // None lost: each of the 600 facts printed whole or spooled.
    assert_eq!(whole.union(&spooled).count(), 600, "{said}");
}
