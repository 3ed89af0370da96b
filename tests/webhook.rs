//! The webhook sink against webhooks started here on 127.0.0.1, plain and
//! TLS with a CA of their own: what each format posts, what each answer
//! makes of the event, bounded requests and exits, a wrong CA, threads under
//! a burst, and the URL's token never in a log line.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    FakeEngine, HookReply, HookRequest, HookServer, Reply, StderrLines, TempDir, TestCa, bin,
    hex_id, send_signal, thread_count, wait_until,
};

/// The path of every test webhook: its token and signature must never be
/// seen outside the request.
const HOOK: &str = "/hook/SECRETTOKEN?sig=SECRETSIG";

fn assert_no_secret(stderr: &str) {
    assert!(
        !stderr.contains("SECRET"),
        "the URL's token leaked: {stderr}"
    );
}

/// An inspect body of a container killed by the OOM killer.
fn oom_killed_body(id: &str) -> String {
    format!(
        r#"{{"Id":"{id}","RestartCount":2,"Name":"/game",
        "State":{{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,"Error":"",
        "StartedAt":"2026-11-27T09:42:59.1Z","FinishedAt":"2026-11-27T09:43:00.2Z"}}}}"#
    )
}

/// A Docker whose label lists `games` exited containers, g-0 (id 1) on.
pub fn engine(games: u32) -> FakeEngine {
    let list = (0..games)
        .map(|n| {
            format!(
                r#"{{"Id":"{}","Created":{n},"Labels":{{"rtinspect.game-id":"g-{n}"}}}}"#,
                hex_id(n + 1)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            return Reply::Json(200, format!("[{list}]"));
        }
        let id = path.split('/').nth(3).unwrap_or_default().to_owned();
        Reply::Json(200, oom_killed_body(&id))
    })
}

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

/// SIGTERM, then how long the exit took and whether it was clean.
fn stop(mut child: Child) -> (Duration, bool) {
    let start = Instant::now();
    send_signal(&child, "-TERM");
    let status = child.wait().unwrap();
    (start.elapsed(), status.success())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
                    "exit_code": 137, "oom_killed": true,
                    "started_at": "2026-11-27T09:42:59.1Z",
                    "finished_at": "2026-11-27T09:43:00.2Z"
                })
            );
        }
        _ => assert_eq!(
            body,
            serde_json::json!({
                "text": "rtinspect: game `g-0` container `000000000000`: exited \
                         (exit code 137, OOM-killed), no healthcheck, restart count 2"
            })
        ),
    }
}

#[test]
fn each_format_is_delivered_over_http_and_over_https_with_its_own_ca() {
    let ca = TestCa::new();
    let engine = engine(1);
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
            let err = stderr(&out);
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
    let engine = engine(1);
    let hook = HookServer::start(|n, _| match n {
        0 => HookReply::Status(500, Vec::new(), "overloaded".into()),
        _ => HookReply::ok(),
    });
    let out = once(&engine, &hook.url(HOOK), &[]);
    let err = stderr(&out);
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
    let engine = engine(1);
    let hook = HookServer::start(|n, _| match n {
        0 => HookReply::Status(429, vec![("Retry-After", "1".into())], "slow down".into()),
        _ => HookReply::ok(),
    });
    let out = once(&engine, &hook.url(HOOK), &[]);
    let err = stderr(&out);
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
    let engine = engine(1);
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
    let (took, clean) = stop(child);
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
    let engine = engine(2);
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
    let err = stderr(&out);
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
    let lines: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    let engine = engine(1);
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
    let err = stderr(&out);
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
    let engine = engine(1);
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
    let err = stderr(&out);
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
    let engine = engine(1);
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
    let (took, clean) = stop(child);
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
    let err = stderr(&out);
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
    let engine = engine(1);
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
    let (took, clean) = stop(child);
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
    let engine = engine(1);
    // A port that was free a moment ago: nothing listens there.
    let addr = crate::support::free_addr();
    let state = TempDir::new("webhook-refused");
    let started = Instant::now();
    let out = once(
        &engine,
        &format!("http://{addr}{HOOK}"),
        &["--state-dir", state.path().to_str().unwrap()],
    );
    let err = stderr(&out);
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
    let engine = engine(1);
    let out = once(
        &engine,
        "https://127.0.0.1:9/hook/SECRETTOKEN",
        &["--webhook-ca-file", "/nonexistent/ca.pem"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--webhook-ca-file /nonexistent/ca.pem: cannot read CA certificates"),
        "{err}"
    );
    assert_no_secret(&err);
}

#[test]
fn a_burst_of_100_posts_starts_no_thread() {
    let engine = engine(100);
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
    let (_, clean) = stop(child);
    assert!(clean);
    assert_no_secret(&lines.text());
}

#[test]
fn the_token_stays_out_of_the_log_even_at_trace() {
    let engine = engine(1);
    let hook = HookServer::start(|_, _| HookReply::ok());
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--report", "facts"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(hook.requests().len(), 1);
    assert!(
        err.contains("ureq"),
        "ureq's own debug lines are kept: {err}"
    );
    assert_no_secret(&err);
}

/// One `once` posting in `format`, reporting `report`, with extended
/// details, logging all it may: the token (ntfy's `Authorization` too) must
/// stay out of every line.
fn once_as(engine: &FakeEngine, url: &str, format: &str, report: &str) -> Output {
    bin()
        .env("RUST_LOG", "trace")
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", url])
        .args(["--webhook-format", format, "--details", "extended"])
        .args(["--report", report])
        .output()
        .unwrap()
}

/// What each chat format posted for the OOM-killed g-0, as a fact or as the
/// incident it opens.
fn assert_chat_request(req: &HookRequest, format: &str, report: &str) {
    assert_eq!(req.method, "POST");
    assert!(req.header("user-agent").unwrap().starts_with("rtinspect/"));
    let key = req.header("idempotency-key").expect("an Idempotency-Key");
    assert!(uuid::Uuid::parse_str(key).is_ok(), "{key}");
    let line = "game `g-0` container `000000000000`: exited (exit code 137, OOM-killed), \
                no healthcheck, restart count 2";
    let prefix = match report {
        "facts" => "rtinspect: ",
        _ => "rtinspect: [not running] since ",
    };
    match format {
        "discord" => {
            assert_eq!(req.path, HOOK);
            assert_eq!(req.header("content-type"), Some("application/json"));
            let body = req.json();
            assert_eq!(body["allowed_mentions"], serde_json::json!({ "parse": [] }));
            let embed = &body["embeds"][0];
            assert_eq!(embed["title"], "Not running: g-0");
            assert_eq!(embed["color"], 0xD93025);
            let fields: Vec<String> = embed["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        f["name"].as_str().unwrap(),
                        f["value"].as_str().unwrap()
                    )
                })
                .collect();
            let mut want = vec![
                "Game=g-0",
                "Container=000000000000",
                "State=exited",
                "Health=no healthcheck",
                "Exit code=137",
                "OOM=yes",
                "Restarts=2",
            ];
            if report == "incidents" {
                want.push("Restarts in window=0");
            }
            assert_eq!(fields[..want.len()], want[..], "{fields:?}");
        }
        "ntfy" => {
            assert_eq!(req.path, "/alerts", "the userinfo is not in the request");
            assert_eq!(
                req.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(
                req.header("authorization"),
                Some("Bearer tk_SECRETTOKEN"),
                "the URL's token, as ntfy takes it"
            );
            assert_eq!(req.header("title"), Some("rtinspect: not running g-0"));
            assert_eq!(req.header("priority"), Some("4"));
            assert_eq!(req.header("tags"), Some("rotating_light"));
            assert!(req.body.starts_with(prefix), "{}", req.body);
            assert!(req.body.ends_with(line), "{}", req.body);
        }
        _ => {
            assert_eq!(
                req.path, "/botSECRETTOKEN/sendMessage",
                "the chat goes in the body"
            );
            assert_eq!(req.header("content-type"), Some("application/json"));
            let body = req.json();
            assert_eq!(body["chat_id"], -100123);
            assert_eq!(body["parse_mode"], "HTML");
            assert_eq!(body["disable_web_page_preview"], true);
            let text = body["text"].as_str().unwrap();
            assert!(text.starts_with(prefix), "{text}");
            assert!(text.ends_with(line), "{text}");
        }
    }
}

#[test]
fn each_chat_format_posts_its_own_request_for_a_fact_and_an_incident() {
    let engine = engine(1);
    for report in ["facts", "incidents"] {
        for format in ["discord", "ntfy", "telegram"] {
            let hook = HookServer::start(|_, _| HookReply::ok());
            let url = match format {
                "ntfy" => hook
                    .url("/alerts")
                    .replace("http://", "http://:tk_SECRETTOKEN@"),
                "telegram" => hook.url("/botSECRETTOKEN/sendMessage?chat_id=-100123"),
                _ => hook.url(HOOK),
            };
            let out = once_as(&engine, &url, format, report);
            let err = stderr(&out);
            assert!(out.status.success(), "{format} {report}: {err}");
            assert_no_secret(&err);
            let requests = hook.requests();
            assert_eq!(requests.len(), 1, "{format} {report}: {err}");
            assert_chat_request(&requests[0], format, report);
        }
    }
}

#[test]
fn telegrams_retry_after_in_its_429_body_is_waited_out() {
    let engine = engine(1);
    let hook = HookServer::start(|n, _| {
        match n {
        0 => HookReply::Status(
            429,
            Vec::new(),
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#
                .into(),
        ),
        _ => HookReply::ok(),
    }
    });
    let url = hook.url("/botSECRETTOKEN/sendMessage?chat_id=42");
    let out = once_as(&engine, &url, "telegram", "facts");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let r = hook.requests();
    assert_eq!(r.len(), 2, "{err}");
    let waited = r[1].at - r[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(err.contains("sink unavailable for 1s"), "{err}");
    assert_no_secret(&err);
}

#[test]
fn the_telegram_format_without_a_chat_is_a_usage_error() {
    let engine = engine(1);
    let out = once_as(
        &engine,
        "https://api.telegram.org/botSECRETTOKEN/sendMessage",
        "telegram",
        "facts",
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("needs the chat in the query"), "{err}");
    assert_no_secret(&err);
}

/// Discord's limits on a message's embeds, in characters (its Embed Limits).
const DISCORD_EMBEDS: usize = 10;
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
const DISCORD_FIELDS: usize = 25;
const DISCORD_FIELD_NAME: usize = 256;
const DISCORD_FIELD_VALUE: usize = 1024;
const DISCORD_TOTAL: usize = 6000;

/// Why Discord would refuse `body` (its "Invalid Form Body"), if it would.
fn over_discords_limits(body: &serde_json::Value) -> Option<String> {
    let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
    let embeds = body["embeds"].as_array()?;
    if embeds.len() > DISCORD_EMBEDS {
        return Some(format!("{} embeds", embeds.len()));
    }
    let mut total = 0;
    for embed in embeds {
        let (title, description) = (chars(&embed["title"]), chars(&embed["description"]));
        if title > DISCORD_TITLE || description > DISCORD_DESCRIPTION {
            return Some(format!("title {title}, description {description}"));
        }
        total += title + description;
        let fields = embed["fields"].as_array().map_or(&[][..], Vec::as_slice);
        if fields.len() > DISCORD_FIELDS {
            return Some(format!("{} fields", fields.len()));
        }
        for f in fields {
            let (name, value) = (chars(&f["name"]), chars(&f["value"]));
            if name > DISCORD_FIELD_NAME || !(1..=DISCORD_FIELD_VALUE).contains(&value) {
                return Some(format!("field name {name}, value {value}"));
            }
            total += name + value;
        }
    }
    (total > DISCORD_TOTAL).then(|| format!("{total} characters in all"))
}

/// A webhook that keeps Discord's rules for one: 5 requests per 2 s (a
/// window from the first), `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset-After` on every answer, a 429 beyond that with
/// `Retry-After` and `{"retry_after": …}`, and a 400 for a body over
/// Discord's limits. What it accepted, and each status it answered.
struct DiscordLike {
    window: Option<(Instant, u32)>,
    accepted: Vec<serde_json::Value>,
    statuses: Vec<u16>,
}

impl DiscordLike {
    const LIMIT: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(2);

    fn answer(&mut self, req: &HookRequest) -> HookReply {
        let now = Instant::now();
        let (start, used) = match self.window {
            Some((start, used)) if now < start + Self::WINDOW => (start, used),
            _ => (now, 0),
        };
        // In whole milliseconds, rounded up, as Discord's are.
        let reset_after = ((start + Self::WINDOW - now).as_secs_f64() * 1000.0).ceil() / 1000.0;
        let mut headers = vec![
            ("X-RateLimit-Limit", Self::LIMIT.to_string()),
            ("X-RateLimit-Reset-After", format!("{reset_after:.3}")),
            ("X-RateLimit-Bucket", "abcd1234".to_owned()),
        ];
        let (status, body) = if used >= Self::LIMIT {
            headers.push(("X-RateLimit-Remaining", "0".to_owned()));
            headers.push(("Retry-After", format!("{}", reset_after.ceil())));
            headers.push(("Content-Type", "application/json".to_owned()));
            let body = format!(
                r#"{{"message":"You are being rate limited.","retry_after":{reset_after:.3},"global":false}}"#
            );
            (429, body)
        } else {
            self.window = Some((start, used + 1));
            let left = Self::LIMIT - used - 1;
            headers.push(("X-RateLimit-Remaining", left.to_string()));
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            match over_discords_limits(&body) {
                Some(why) => (400, format!(r#"{{"message":"Invalid Form Body: {why}"}}"#)),
                None => {
                    self.accepted.push(body);
                    (204, String::new())
                }
            }
        };
        self.statuses.push(status);
        HookReply::Status(status, headers, body)
    }
}

/// What the accepted Discord bodies account for: the games named (each
/// once), how many more they count without naming, how many events in
/// all, and how many bodies were digests.
fn accounted(bodies: &[serde_json::Value]) -> (Vec<String>, usize, usize, usize) {
    let (mut named, mut more, mut events, mut digests) = (Vec::new(), 0, 0, 0);
    for body in bodies {
        let embed = &body["embeds"][0];
        if let Some(fields) = embed["fields"].as_array() {
            // One event: its game is a field.
            let game = fields.iter().find(|f| f["name"] == "Game").unwrap();
            named.push(game["value"].as_str().unwrap().to_owned());
            events += 1;
            continue;
        }
        digests += 1;
        // `N incidents opened (not running) on host: g-1, g-2 and K more`.
        for line in embed["description"].as_str().unwrap().lines() {
            let count: usize = line.split(' ').next().unwrap().parse().unwrap();
            events += count;
            let Some((_, names)) = line.split_once(": ") else {
                more += count;
                continue;
            };
            let names = match names.rsplit_once(" and ") {
                Some((names, rest)) => {
                    more += rest
                        .strip_suffix(" more")
                        .unwrap()
                        .parse::<usize>()
                        .unwrap();
                    names
                }
                None => names,
            };
            named.extend(names.split(", ").map(str::to_owned));
        }
    }
    (named, more, events, digests)
}

#[test]
fn a_hundred_games_down_in_10_s_reach_a_rate_limited_discord_as_digests_without_a_429() {
    let ca = TestCa::new();
    // Ten more games down every second, for ten seconds.
    let since = Instant::now();
    let engine = FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            let down = (10 + 10 * since.elapsed().as_secs() as u32).min(100);
            let list: Vec<String> = (0..down)
                .map(|n| {
                    format!(
                        r#"{{"Id":"{}","Created":{n},"Labels":{{"rtinspect.game-id":"g-{n}"}}}}"#,
                        hex_id(n + 1)
                    )
                })
                .collect();
            return Reply::Json(200, format!("[{}]", list.join(",")));
        }
        let id = path.split('/').nth(3).unwrap_or_default().to_owned();
        Reply::Json(200, oom_killed_body(&id))
    });
    let receiver = std::sync::Arc::new(std::sync::Mutex::new(DiscordLike {
        window: None,
        accepted: Vec::new(),
        statuses: Vec::new(),
    }));
    let r = receiver.clone();
    let hook = HookServer::start_tls(&ca, move |_, req| r.lock().unwrap().answer(req));
    let ca_file = ca.ca();
    let started = Instant::now();
    let mut child = bin()
        .args(["run", "--interval", "200ms"])
        .args(["--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--webhook-format", "discord", "--report", "incidents"])
        .args(["--webhook-ca-file", ca_file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    let events = || accounted(&receiver.lock().unwrap().accepted).2;
    wait_until(Duration::from_secs(60), "100 games accounted for", || {
        events() >= 100
    });
    let took = started.elapsed();
    // Anything more would show now.
    std::thread::sleep(Duration::from_millis(500));
    let (_, clean) = stop(child);
    let err = lines.text();
    assert!(clean, "{err}");
    assert_no_secret(&err);

    let receiver = receiver.lock().unwrap();
    let (mut named, more, events, digests) = accounted(&receiver.accepted);
    let statuses = &receiver.statuses;
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    let (accepted, refused, limited) = (count(204), count(400), count(429));
    eprintln!(
        "100 games down in 10 s: {} requests ({accepted} accepted, {digests} digests, \
         {limited} answered 429, {refused} refused), the last game in at {took:?}",
        statuses.len()
    );
    assert_eq!(refused, 0, "a body over Discord's limits: {err}");
    assert_eq!(events, 100, "each game once, nothing dropped or doubled");
    named.sort();
    named.dedup();
    assert_eq!(named.len() + more, 100, "named {named:?}, {more} more");
    assert!(named.iter().all(|g| {
        g.strip_prefix("g-")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 100)
    }));
    assert!(digests >= 1, "100 events in {} requests", statuses.len());
    assert!(accepted < 100, "digests, not one request a game");
    // Paced by the headers, never ahead of the window.
    assert_eq!(limited, 0, "answered 429: {statuses:?}");
}

#[test]
fn healthz_names_a_webhook_that_refuses_every_event() {
    // A deleted Discord webhook: 404 to everything.
    let engine = engine(3);
    let hook = HookServer::start(|_, _| {
        HookReply::Status(404, Vec::new(), r#"{"message": "Unknown Webhook"}"#.into())
    });
    let addr = crate::support::free_addr();
    let state = TempDir::new("webhook-refusing");
    let (child, lines) = run(
        &engine,
        &hook.url(HOOK),
        &[
            "--metrics-addr",
            &addr,
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
    );
    wait_until(Duration::from_secs(20), "three refusals", || {
        hook.requests().len() >= 3
    });
    let mut healthz = (0, String::new());
    wait_until(Duration::from_secs(20), "a 503 naming the sink", || {
        healthz = crate::support::http_get(&addr, "/healthz").unwrap_or_default();
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
    let (_, clean) = stop(child);
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
    let addr = crate::support::free_addr();
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
        crate::support::sample(
            metrics,
            &format!("rtinspect_incidents_total{{kind=\"{kind}\",change=\"{change}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let mut metrics = String::new();
    wait_until(Duration::from_secs(10), "the crash loop counted", || {
        metrics = crate::support::http_get(&addr, "/metrics")
            .map(|r| r.1)
            .unwrap_or_default();
        series(&metrics, "crash_loop", "opened") + series(&metrics, "crash_loop", "escalated")
            >= 1.0
    });
    // The shipped rule's facts never count here: only the incidents can.
    assert_eq!(
        crate::support::sample(
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
    let (_, clean) = stop(child);
    assert!(clean, "{}", lines.text());
    assert_no_secret(&lines.text());
}
