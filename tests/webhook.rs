//! The webhook sink against webhooks started here on 127.0.0.1, plain and
//! TLS with a CA of their own: what the envelope and Slack formats post,
//! what each answer makes of the event, bounded requests and exits, a wrong
//! CA, threads under a burst, and the URL's token never in a log line.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    FakeEngine, HOOK, HookReply, HookRequest, HookServer, StderrLines, TempDir, TestCa,
    assert_no_secret, bin, hex_id, json_lines, oom_killed_games, stderr_text, stop_with_sigterm,
    this_host, thread_count, wait_until,
};

fn once(engine: &FakeEngine, url: &str, extra: &[&str]) -> Output {
    bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", url])
        // What each answer makes of an event is the same for both kinds;
        // facts come at every look, which these tests count on.
        .args(["--report", "facts"])
        .args(extra)
        .output()
        .unwrap()
}

fn run(engine: &FakeEngine, url: &str, extra: &[&str]) -> (Child, StderrLines) {
    let mut child = bin()
        .args([
            "run",
            "--interval",
            "1h",
            "--docker-host",
            &engine.docker_host(),
        ])
        .args(["--sink", "webhook", "--webhook-url", url])
        // What each answer makes of an event is the same for both kinds;
        // facts come at every look, which these tests count on.
        .args(["--report", "facts"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    (child, lines)
}

fn assert_posted_as(req: &HookRequest, format: &str) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, HOOK);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(req.header("user-agent").unwrap().starts_with("rtinspect/"));
    let key = req.header("idempotency-key").expect("an Idempotency-Key");
    assert!(uuid::Uuid::parse_str(key).is_ok(), "{key}");
    let body = req.json();
    match format {
        "envelope" => {
            assert_eq!(body["event_id"], key);
            assert_eq!(body["game_id"], "g-0");
            assert_eq!(body["container_id"], hex_id(1));
            assert_eq!(body["event_type"], "inspect_unhealthy");
            assert_eq!(
                body["details"],
                serde_json::json!({
                    "restart_count": 2, "state": "exited", "health": "",
                    "exit_code": 137, "oom_killed": true, "reason": "oom",
                    "started_at": "2026-11-27T09:42:59.1Z",
                    "finished_at": "2026-11-27T09:43:00.2Z"
                })
            );
        }
        _ => assert_eq!(
            body,
            serde_json::json!({
                "text": format!(
                    "rtinspect on {}: game `g-0` container `000000000000`: exited \
                     (exit code 137, OOM-killed), no healthcheck, restart count 2",
                    this_host()
                )
            })
        ),
    }
}

#[test]
fn each_format_is_delivered_over_http_and_over_https_with_its_own_ca() {
    let ca = TestCa::new();
    let engine = oom_killed_games(1);
    for tls in [false, true] {
        for format in ["envelope", "slack"] {
            let hook = if tls {
                HookServer::start_tls(&ca, |_, _| HookReply::ok())
            } else {
                HookServer::start(|_, _| HookReply::ok())
            };
            let ca_file = ca.ca();
            let mut extra = vec!["--webhook-format", format, "--details", "extended"];
            if tls {
                extra.extend(["--webhook-ca-file", ca_file.to_str().unwrap()]);
            }
            let out = once(&engine, &hook.url(HOOK), &extra);
            let err = stderr_text(&out);
            assert!(out.status.success(), "{tls} {format}: {err}");
            assert!(out.stdout.is_empty(), "events go to the webhook only");
            let requests = hook.requests();
            assert_eq!(requests.len(), 1, "{tls} {format}: {err}");
            assert_posted_as(&requests[0], format);
            let scheme = if tls { "https" } else { "http" };
            assert!(
                err.contains(&format!(
                    "events go to the webhook {scheme}://{}/… in the {format} format",
                    hook.addr
                )),
                "{err}"
            );
            assert_no_secret(&err);
        }
    }
}

#[test]
fn a_server_error_is_retried_and_delivered_once_with_the_same_idempotency_key() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|n, _| match n {
        0 => HookReply::Status(500, Vec::new(), "overloaded".into()),
        _ => HookReply::ok(),
    });
    let out = once(&engine, &hook.url(HOOK), &[]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    let r = hook.requests();
    assert_eq!(r.len(), 2, "{err}");
    assert_eq!(
        r[0].header("idempotency-key"),
        r[1].header("idempotency-key")
    );
    assert_eq!(r[0].body, r[1].body);
    assert!(
        err.contains("answered 500 Internal Server Error: overloaded"),
        "{err}"
    );
    assert!(
        err.contains("publish failed; retrying with backoff"),
        "{err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_429_retry_after_is_waited_out_before_the_retry() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|n, _| match n {
        0 => HookReply::Status(429, vec![("Retry-After", "1".into())], "slow down".into()),
        _ => HookReply::ok(),
    });
    let out = once(&engine, &hook.url(HOOK), &[]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    let r = hook.requests();
    assert_eq!(r.len(), 2, "{err}");
    let gap = r[1].at - r[0].at;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(3),
        "{gap:?}"
    );
    assert!(
        err.contains(&format!(
            "sink unavailable for 1s: http://{}/… answered 429 Too Many Requests: slow down",
            hook.addr
        )),
        "{err}"
    );
    assert!(
        err.contains("publish failed; retrying in 1s, as the sink asked"),
        "{err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_sigterm_during_a_retry_after_wait_spools_the_event_within_the_drain() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|_, _| {
        HookReply::Status(429, vec![("Retry-After", "30".into())], "slow down".into())
    });
    let state = TempDir::new("webhook-retry-after-stop");
    let (child, lines) = run(
        &engine,
        &hook.url(HOOK),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    wait_until(Duration::from_secs(30), "the first 429", || {
        !hook.requests().is_empty()
    });
    // Into the 30 s wait.
    std::thread::sleep(Duration::from_millis(500));
    let (took, clean) = stop_with_sigterm(child);
    let err = lines.text();
    eprintln!("exit {took:?} after SIGTERM during a 30 s Retry-After");
    // The drain is 10 s: the wait ends with it, the event is spooled.
    assert!(took < Duration::from_secs(11), "{took:?}: {err}");
    assert!(clean, "a stop with everything spooled is clean: {err}");
    let r = hook.requests();
    assert_eq!(r.len(), 1, "no retry before the Retry-After: {err}");
    assert!(err.contains("1 undelivered events spooled"), "{err}");
    let spooled = std::fs::read_to_string(state.path().join("spool.webhook.jsonl")).unwrap();
    let event: serde_json::Value = serde_json::from_str(spooled.trim()).unwrap();
    assert_eq!(event["event_id"], r[0].header("idempotency-key").unwrap());
    // Said when the wait began, not after it.
    assert!(
        err.contains(&format!(
            "sink unavailable for 30s: http://{}/… answered 429 Too Many Requests: slow down",
            hook.addr
        )),
        "{err}"
    );
    assert!(
        err.contains("publish failed; retrying in 30s, as the sink asked"),
        "{err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_refused_event_is_set_aside_and_the_next_one_is_delivered() {
    let engine = oom_killed_games(2);
    let hook = HookServer::start(|n, _| match n {
        0 => HookReply::Status(
            400,
            Vec::new(),
            "invalid_payload for /hook/SECRETTOKEN?sig=SECRETSIG".into(),
        ),
        _ => HookReply::ok(),
    });
    let state = TempDir::new("webhook-rejected");
    let out = once(
        &engine,
        &hook.url(HOOK),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    let err = stderr_text(&out);
    // One of the two set aside: `once` says so, exit 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("events set aside rather than delivered (the webhook sink 1)"),
        "{err}"
    );
    let r = hook.requests();
    assert_eq!(
        r.len(),
        2,
        "one refused, the next delivered, no retry: {err}"
    );
    assert_ne!(r[0].json()["game_id"], r[1].json()["game_id"]);
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    let lines = json_lines(&rejected);
    assert_eq!(lines.len(), 1, "{rejected}");
    assert_eq!(lines[0]["envelope"], r[0].json());
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "http://{}/… answered 400 Bad Request: invalid_payload for",
            hook.addr
        )),
        "{reason}"
    );
    assert_no_secret(&rejected);
    assert!(
        err.contains("event refused by the sink; set aside in"),
        "{err}"
    );
    assert_no_secret(&err);
}

/// Whether `text` holds four characters in a row of any of `secrets`, in
/// any case: the most of a token a quote may show is three characters.
fn holds_part_of(text: &str, secrets: &[&str]) -> Option<String> {
    let text = text.to_ascii_lowercase();
    secrets.iter().find_map(|secret| {
        let secret = secret.to_ascii_lowercase();
        secret
            .as_bytes()
            .windows(4)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .find(|w| text.contains(w.as_str()))
    })
}

#[test]
fn a_receiver_echoing_the_token_in_any_form_leaks_it_nowhere() {
    let engine = oom_killed_games(1);
    // A Discord-like URL: the token in the path, a key in the query.
    let path = "/api/webhooks/Qx9Rz8Wy7Vt6Us5Pq4/Tk7Qz9wAbCdEfGh/slack?key=k7Qz9w";
    let hook = HookServer::start(|_, _| {
        HookReply::Status(
            400,
            vec![("Content-Type", "application/json".into())],
            r#"{"message":"bad key k7Qz9w","also":"K7QZ9W %6b%37%51%7a%39%77 \u006b7Qz9w","path":"\/api\/webhooks\/Qx9Rz8Wy7Vt6Us5Pq4\/Tk7Qz9wAbCdEfGh\/slack","cut":"Tk7Qz9wA"}"#
                .into(),
        )
    });
    let state = TempDir::new("webhook-echo");
    let out = once(
        &engine,
        &hook.url(path),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(1), "the event was set aside: {err}");
    assert_eq!(hook.requests().len(), 1, "{err}");
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(rejected.trim()).unwrap();
    let reason = line["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "http://{}/… answered 400 Bad Request: {{\"message\":\"bad key …\"",
            hook.addr
        )),
        "what is not the token is still quoted: {reason}"
    );
    let secrets = [
        "k7Qz9w",
        "Tk7Qz9wAbCdEfGh",
        "Qx9Rz8Wy7Vt6Us5Pq4",
        "%6b%37%51%7a%39%77",
        "\\u006b7Qz9w",
    ];
    for text in [reason, &rejected, &err] {
        assert_eq!(holds_part_of(text, &secrets), None, "{text}");
    }
}

#[test]
fn a_redirect_is_refused_and_not_followed() {
    let engine = oom_killed_games(1);
    let elsewhere = HookServer::start(|_, _| HookReply::ok());
    let location = elsewhere.url("/steal");
    let hook = HookServer::start(move |_, _| {
        HookReply::Status(308, vec![("Location", location.clone())], String::new())
    });
    let state = TempDir::new("webhook-redirect");
    let out = once(
        &engine,
        &hook.url(HOOK),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    let err = stderr_text(&out);
    assert_eq!(hook.requests().len(), 1, "{err}");
    assert_eq!(elsewhere.connections(), 0);
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    assert!(
        rejected.contains(
            "answered 308 Permanent Redirect, a redirect, which rtinspect does not follow"
        ),
        "{rejected}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_webhook_that_never_answers_is_bounded_retried_spooled_and_delivered_next_start() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|_, _| HookReply::Hang);
    let state = TempDir::new("webhook-hang");
    let state_arg = state.path().to_str().unwrap().to_owned();
    let (child, lines) = run(&engine, &hook.url(HOOK), &["--state-dir", &state_arg]);
    wait_until(
        Duration::from_secs(30),
        "a retry after the first timeout",
        || hook.requests().len() >= 2,
    );
    let r = hook.requests();
    let gap = r[1].at - r[0].at;
    assert!(
        gap >= Duration::from_secs(10) && gap < Duration::from_secs(13),
        "one request is bounded by 10 s: {gap:?}"
    );
    assert_eq!(
        r[0].header("idempotency-key"),
        r[1].header("idempotency-key")
    );
    let (took, clean) = stop_with_sigterm(child);
    let err = lines.text();
    assert!(took < Duration::from_secs(15), "{took:?}: {err}");
    assert!(clean, "a stop with everything spooled is clean: {err}");
    assert!(
        err.contains(&format!("no answer from http://{}/… within 10s", hook.addr)),
        "{err}"
    );
    assert!(err.contains("1 undelivered events spooled"), "{err}");
    assert_no_secret(&err);
    let spooled = std::fs::read_to_string(state.path().join("spool.webhook.jsonl")).unwrap();
    let event: serde_json::Value = serde_json::from_str(spooled.trim()).unwrap();
    assert_eq!(event["event_id"], r[0].header("idempotency-key").unwrap());

    // The webhook answers again: the next start delivers the spool first.
    hook.set_handler(|_, _| HookReply::ok());
    let out = once(&engine, &hook.url(HOOK), &["--state-dir", &state_arg]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    let delivered: Vec<serde_json::Value> = hook.requests()[2..].iter().map(|r| r.json()).collect();
    assert_eq!(
        delivered.len(),
        2,
        "the spooled event, then this tick's: {err}"
    );
    assert_eq!(delivered[0], event);
    assert!(!state.path().join("spool.webhook.jsonl").exists());
    assert_no_secret(&err);
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_naming_the_problem() {
    let ca = TestCa::new();
    let engine = oom_killed_games(1);
    let hook = HookServer::start_tls(&ca, |_, _| HookReply::ok());
    let state = TempDir::new("webhook-wrong-ca");
    let other = ca.other_ca();
    let (child, lines) = run(
        &engine,
        &hook.url(HOOK),
        &[
            "--state-dir",
            state.path().to_str().unwrap(),
            "--webhook-ca-file",
            other.to_str().unwrap(),
        ],
    );
    wait_until(Duration::from_secs(20), "a failed handshake", || {
        lines.text().contains("publish failed")
    });
    let (took, clean) = stop_with_sigterm(child);
    let err = lines.text();
    assert!(
        err.contains(&format!(
            "TLS with https://{}/… failed: invalid peer certificate: UnknownIssuer",
            hook.addr
        )),
        "{err}"
    );
    assert!(hook.connections() >= 1, "it connected");
    assert!(hook.requests().is_empty(), "and sent nothing unverified");
    assert!(took < Duration::from_secs(15) && clean, "{took:?}: {err}");
    assert!(err.contains("1 undelivered events spooled"), "{err}");
    assert_no_secret(&err);
}

#[test]
fn an_unreachable_webhook_keeps_the_event_and_once_says_so() {
    let engine = oom_killed_games(1);
    // A port that was free a moment ago: nothing listens there.
    let addr = crate::support::free_addr();
    let state = TempDir::new("webhook-refused");
    let started = Instant::now();
    let out = once(
        &engine,
        &format!("http://{addr}{HOOK}"),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    assert!(
        err.contains(&format!("cannot reach http://{addr}/…: ")),
        "{err}"
    );
    assert!(state.path().join("spool.webhook.jsonl").exists(), "{err}");
    assert_no_secret(&err);
}

#[test]
fn a_bad_ca_file_stops_the_start_naming_the_option() {
    let engine = oom_killed_games(1);
    let out = once(
        &engine,
        "https://127.0.0.1:9/hook/SECRETTOKEN",
        &["--webhook-ca-file", "/nonexistent/ca.pem"],
    );
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--webhook-ca-file /nonexistent/ca.pem: cannot read CA certificates"),
        "{err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_burst_of_100_posts_starts_no_thread() {
    let engine = oom_killed_games(100);
    let hook = HookServer::start(|_, _| {
        // Long enough for the sampling below to see the burst.
        std::thread::sleep(Duration::from_millis(5));
        HookReply::ok()
    });
    let (child, lines) = run(&engine, &hook.url(HOOK), &[]);
    let pid = child.id();
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.requests().len() < 100 && Instant::now() < deadline {
        most = most.max(thread_count(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = hook.requests();
    assert_eq!(r.len(), 100, "{}", lines.text());
    let idle = thread_count(pid).unwrap();
    let keys: std::collections::HashSet<_> =
        r.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys.len(), 100);
    assert!(
        most <= idle,
        "threads during the burst {most}, idle after it {idle}"
    );
    assert!(
        hook.connections() <= 2,
        "kept alive: {} connections for 100 posts",
        hook.connections()
    );
    eprintln!("threads: {most} during a burst of 100 posts, {idle} idle");
    let (_, clean) = stop_with_sigterm(child);
    assert!(clean);
    assert_no_secret(&lines.text());
}

#[test]
fn the_token_stays_out_of_the_log_even_at_trace() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|_, _| HookReply::ok());
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--report", "facts"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(hook.requests().len(), 1);
    assert!(
        err.contains("ureq"),
        "ureq's own debug lines are kept: {err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_receiver_that_drops_each_kept_alive_connection_costs_no_retry() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    // A front end whose idle timeout is shorter than the pool's (30 s):
    // it answers, then closes the connection without saying so
    // (no `Connection: close`), and the next event finds it gone.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = keys.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut reader = BufReader::new(conn);
            let (mut length, mut key) = (0, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("idempotency-key:") {
                    key = v.trim().to_owned();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            seen.lock().unwrap().push(key);
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            // Dropped here: closed, unannounced.
        }
    });
    let engine = oom_killed_games(1);
    let mut child = bin()
        .args([
            "run",
            "--interval",
            "300ms",
            "--docker-host",
            &engine.docker_host(),
        ])
        .args(["--sink", "webhook", "--report", "facts"])
        .args(["--webhook-url", &format!("http://{addr}/hook")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    wait_until(Duration::from_secs(30), "five facts posted", || {
        keys.lock().unwrap().len() >= 5
    });
    let (_, clean) = stop_with_sigterm(child);
    let err = lines.text();
    assert!(clean, "{err}");
    let keys = keys.lock().unwrap().clone();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "no event sent twice: {keys:?}");
    assert!(!err.contains("publish failed"), "{err}");
}
