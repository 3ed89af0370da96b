//! Observability: /metrics scraped during a real run and checked by promtool,
//! /healthz following the ticks, JSON logs that parse; and when events go
//! only to a chat, /healthz naming a webhook that refuses them and the
//! crash-loop alert still counting.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    Containers, FakeEngine, HOOK, HookReply, HookServer, Reply, StderrLines, TempDir, TestSchema,
    assert_no_secret, bin, free_addr, hex_id, http_get, live_docker, live_pg, live_required,
    one_labelled_reply, oom_killed_games, sample, stop_with_sigterm, terminate, wait_until,
};

fn promtool_check(exposition: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            !live_required(),
            "promtool is missing (Debian package prometheus)"
        );
        crate::support::skipped("no promtool");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_of_a_real_run_match_the_rows_and_pass_promtool() {
    let (Some(url), Some(live)) = (live_pg(), live_docker()) else {
        return;
    };
    let mut s = TestSchema::new(url, "metrics");
    s.migrate();
    let mut c = Containers::new(live, "metrics");
    let stopped = c.exited("g-stopped");
    let healthy = c.run("g-healthy", &[], &["sleep", "1000"]);
    s.insert_record("g-stopped", "running", &stopped);
    s.insert_record("g-healthy", "running", &healthy);
    s.insert_record("g-invalid", "running", "../etc");
    let addr = free_addr();
    let child = bin()
        .arg("run")
        .args(s.args())
        .args([
            "--interval",
            "200ms",
            "--log-format",
            "json",
            "--metrics-addr",
            &addr,
        ])
        .args(["--docker-host", &live.docker_host()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "a few events", || {
        s.event_rows().len() >= 3
    });
    // Retire the records: the events stop, and the counters settle.
    s.client
        .execute(
            &format!("UPDATE {} SET status = 'stopped'", s.records()),
            &[],
        )
        .unwrap();
    let mut metrics = String::new();
    wait_until(Duration::from_secs(20), "an idle tick", || {
        metrics = http_get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
        sample(&metrics, "rtinspect_records") == Some(0.0)
            && sample(&metrics, "rtinspect_publish_queue_depth{sink=\"postgres\"}") == Some(0.0)
    });
    // An empty queue may still have one event in flight: wait until the
    // counter of accepted events matches the rows stored.
    let events =
        "rtinspect_health_events_total{sink=\"postgres\",event_type=\"inspect_unhealthy\"}";
    let mut rows = 0.0;
    wait_until(Duration::from_secs(20), "every row counted", || {
        let Some((200, body)) = http_get(&addr, "/metrics") else {
            return false;
        };
        metrics = body;
        rows = s.event_rows().len() as f64;
        sample(&metrics, events) == Some(rows)
    });
    // The scrape that matched is the one checked: a later one could count
    // an event whose row came after the count of rows.
    promtool_check(&metrics);
    let ticks = sample(&metrics, "rtinspect_ticks_total").unwrap();
    assert!(ticks >= rows, "{metrics}");
    assert_eq!(
        sample(&metrics, "rtinspect_tick_duration_seconds_count"),
        Some(ticks)
    );
    let invalid = sample(
        &metrics,
        "rtinspect_inspect_errors_total{kind=\"invalid_id\"}",
    )
    .unwrap();
    assert!(
        invalid >= rows,
        "one invalid record per emitting tick: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "rtinspect_events_dropped_total{sink=\"postgres\",event_type=\"inspect_unhealthy\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "rtinspect_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&addr, "/nope").unwrap().0, 404);

    let out = terminate(child);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut warned_invalid = 0;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(v[key].is_string(), "{line} lacks {key}");
        }
        if v["game_id"] == "g-invalid" {
            assert_eq!(v["level"], "warn");
            assert_eq!(v["container_id"], "../etc");
            warned_invalid += 1;
        }
    }
    assert!(warned_invalid >= 1, "{stderr}");
}

#[test]
fn healthz_turns_503_when_ticks_stall_and_200_when_they_resume() {
    let healthy = |path: &str| one_labelled_reply(path, "running");
    let engine = FakeEngine::start(healthy);
    let addr = free_addr();
    let child = bin()
        .args([
            "run",
            "--interval",
            "200ms",
            "--docker-timeout",
            "3s",
            "--metrics-addr",
            &addr,
        ])
        .args(["--docker-host", &engine.docker_host()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = || http_get(&addr, "/healthz");
    wait_until(Duration::from_secs(10), "healthy", || {
        status().is_some_and(|s| s.0 == 200)
    });
    engine.set_handler(|_| Reply::Hang);
    let mut reason = String::new();
    wait_until(Duration::from_secs(15), "503", || {
        status().is_some_and(|(code, body)| {
            reason = body;
            code == 503
        })
    });
    assert!(reason.contains("over three intervals"), "{reason}");
    engine.set_handler(healthy);
    wait_until(Duration::from_secs(15), "healthy again", || {
        status().is_some_and(|s| s.0 == 200)
    });
    let out = terminate(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let engine = FakeEngine::start(|_| Reply::Json(200, "[]".into()));
    let out = bin()
        .args([
            "once",
            "--metrics-addr",
            &addr,
            "--docker-host",
            &engine.docker_host(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("cannot listen for metrics on {addr}"))
    );
}

#[test]
fn healthz_is_503_with_its_cause_when_the_first_tick_fails() {
    // No dockerd, and an interval long enough that "starting" would last a
    // minute: the failed first tick must say so at once.
    let nowhere = TempDir::new("no-dockerd");
    let socket = nowhere.path().join("docker.sock");
    let addr = free_addr();
    let child = bin()
        .args(["run", "--interval", "20s", "--metrics-addr", &addr])
        .arg("--docker-host")
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let failures = || {
        let (_, body) = http_get(&addr, "/metrics")?;
        sample(&body, "rtinspect_tick_failures_total{stage=\"docker\"}")
    };
    wait_until(Duration::from_secs(10), "the first tick's failure", || {
        failures().is_some_and(|n| n >= 1.0)
    });
    let (status, body) = http_get(&addr, "/healthz").unwrap();
    assert_eq!(status, 503, "{body}");
    let want = format!("cannot reach dockerd at {} since ", socket.display());
    assert!(body.starts_with(&want), "{body}");
    assert_eq!(body.trim_end().lines().count(), 1, "{body}");
    let out = terminate(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn healthz_names_a_webhook_that_refuses_every_event() {
    // A deleted Discord webhook: 404 to everything.
    let engine = oom_killed_games(3);
    let hook = HookServer::start(|_, _| {
        HookReply::Status(404, Vec::new(), r#"{"message": "Unknown Webhook"}"#.into())
    });
    let addr = free_addr();
    let state = TempDir::new("webhook-refusing");
    let mut child = bin()
        .args(["run", "--interval", "1h"])
        .args(["--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--report", "facts", "--metrics-addr", &addr])
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    wait_until(Duration::from_secs(20), "three refusals", || {
        hook.requests().len() >= 3
    });
    let mut healthz = (0, String::new());
    wait_until(Duration::from_secs(20), "a 503 naming the sink", || {
        healthz = http_get(&addr, "/healthz").unwrap_or_default();
        healthz.0 == 503
    });
    let (status, body) = healthz;
    eprintln!("{status} {}", body.trim_end());
    assert!(
        body.starts_with(
            "unhealthy: the webhook sink has refused every event it was given over the last \
             5 minutes (at least 3, none accepted): "
        ),
        "{body}"
    );
    assert!(body.contains("answered 404 Not Found"), "{body}");
    assert_no_secret(&body);
    let (_, clean) = stop_with_sigterm(child);
    assert!(clean, "{}", lines.text());
}

#[test]
fn a_crash_loop_told_only_to_a_chat_is_counted_for_the_alert() {
    use std::sync::atomic::{AtomicU64, Ordering};
    // One game, running, restarted by its policy at every look.
    let restarts = std::sync::Arc::new(AtomicU64::new(0));
    let count = restarts.clone();
    let engine = FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            return Reply::Json(
                200,
                format!(
                    r#"[{{"Id":"{}","Created":1,"Labels":{{"rtinspect.game-id":"g-loop"}}}}]"#,
                    hex_id(1)
                ),
            );
        }
        let n = count.fetch_add(1, Ordering::SeqCst);
        Reply::Json(
            200,
            format!(
                r#"{{"Id":"{}","RestartCount":{n},"Name":"/game",
                "State":{{"Status":"running","Running":true,"ExitCode":0,"Error":"",
                "StartedAt":"2026-11-27T09:42:59.1Z","FinishedAt":"2026-11-27T09:43:00.2Z"}}}}"#,
                hex_id(1)
            ),
        )
    });
    let hook = HookServer::start(|_, _| HookReply::ok());
    let addr = free_addr();
    // A chat, as a webhook-only setup has it: incidents, not facts.
    let mut child = bin()
        .args(["run", "--interval", "300ms", "--events", "off"])
        .args(["--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--webhook-format", "slack", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    let said = |words: &str| {
        hook.requests().iter().any(|r| {
            r.json()["text"]
                .as_str()
                .unwrap_or_default()
                .contains(words)
        })
    };
    wait_until(Duration::from_secs(30), "a crash loop in the chat", || {
        said("crash loop")
    });
    let series = |metrics: &str, kind: &str, change: &str| {
        sample(
            metrics,
            &format!("rtinspect_incidents_total{{kind=\"{kind}\",change=\"{change}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let mut metrics = String::new();
    wait_until(Duration::from_secs(10), "the crash loop counted", || {
        metrics = http_get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
        series(&metrics, "crash_loop", "opened") + series(&metrics, "crash_loop", "escalated")
            >= 1.0
    });
    // The shipped rule's facts never count here: only the incidents can.
    assert_eq!(
        sample(
            &metrics,
            "rtinspect_health_events_total{sink=\"webhook\",event_type=\"inspect_unhealthy\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/rtinspect.rules.yml"),
    )
    .unwrap();
    assert!(
        rules.contains("rtinspect_incidents_total{kind=\"crash_loop\""),
        "the crash-loop alert reads the incidents"
    );
    let (_, clean) = stop_with_sigterm(child);
    assert!(clean, "{}", lines.text());
    assert_no_secret(&lines.text());
}
