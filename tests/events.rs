//! Docker events beside the poll: a failure is inspected the moment dockerd
//! reports it, with the rules of a tick; a broken, silent, refused or
//! flooded stream never costs a verdict the next tick would give. The fake
//! engine plays what a real dockerd cannot be made to do on demand; the real
//! one shows kills, exits and healthchecks seen within a second at an
//! interval of an hour.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rtinspect::docker::DockerClient;
use rtinspect::docker::events::{self, Nudge, ReaderParts, StreamCounters};

use crate::support::{
    self, Containers, Daemon, FakeContainer, FakeEngine, Reply, StderrLines, TempDir, bin,
    container_event_line, free_addr, game_box, hex_id, http_get, live_docker, one_labelled_reply,
    printed, sample, tuple, unix_nanos, wait_until,
};

/// The fake dockerd of labelled games ([`support::Engine`]) whose state the
/// test changes, and whose events stream it writes to.
struct Engine(support::Engine);

impl std::ops::Deref for Engine {
    type Target = support::Engine;

    fn deref(&self) -> &support::Engine {
        &self.0
    }
}

impl Engine {
    /// Containers `1..=containers`, running, container `n` of game `g-n`.
    fn start(containers: u32) -> Engine {
        let e = support::Engine::start();
        for n in 1..=containers {
            e.put(
                n,
                FakeContainer {
                    created: 1,
                    ..game_box(&format!("g-{n}"), "running")
                },
            );
        }
        Engine(e)
    }

    fn set(&self, n: u32, restarts: u64, status: &str) {
        self.update(n, |c| {
            c.restarts = restarts;
            c.status = status.into();
        });
    }

    /// Sends one container event (of game `g-n`, a container of the engine
    /// or not) on the current stream; like Docker's, its attributes carry
    /// the container's labels.
    fn send(&self, n: u32, action: &str) {
        self.0
            .send(container_event_line(n, action, &format!("g-{n}")));
    }

    fn subscriptions(&self) -> Vec<String> {
        self.engine
            .requests()
            .into_iter()
            .filter(|p| p.contains("/events?"))
            .collect()
    }

    fn inspects_of(&self, n: u32) -> usize {
        let id = hex_id(n);
        self.engine
            .requests()
            .iter()
            .filter(|p| p.contains(&format!("/containers/{id}/json")))
            .count()
    }

    /// Whether container `n` was inspected after the `lists`-th list of the
    /// records (that tick's inspect, not an event's before it).
    fn inspected_after_list(&self, n: u32, lists: usize) -> bool {
        let id = hex_id(n);
        let requests = self.engine.requests();
        let Some(at) = requests
            .iter()
            .enumerate()
            .filter(|(_, p)| p.contains("/containers/json?"))
            .nth(lists - 1)
            .map(|(i, _)| i)
        else {
            return false;
        };
        requests[at..]
            .iter()
            .any(|p| p.contains(&format!("/containers/{id}/json")))
    }

    /// `rtinspect run` on this engine at an interval of an hour: only the
    /// events stream (and its resync ticks) can find anything.
    fn run(&self) -> (Daemon, StderrLines, StderrLines) {
        Daemon::watched(
            bin()
                .args(["run", "--interval", "1h", "--docker-host"])
                .arg(self.docker_host())
                .env("RUST_LOG", "rtinspect=debug"),
        )
    }
}

fn stop(daemon: Daemon, err: &StderrLines) {
    assert!(daemon.terminate().success(), "{}", err.text());
}

fn subscribed_and_ticked(e: &Engine, containers: u32) {
    wait_until(
        Duration::from_secs(10),
        "subscription and first tick",
        || !e.subscriptions().is_empty() && (1..=containers).all(|n| e.inspects_of(n) >= 1),
    );
}

#[test]
fn a_die_event_inspects_that_record_at_once_and_no_other() {
    let e = Engine::start(2);
    let (child, out, err) = e.run();
    subscribed_and_ticked(&e, 2);
    let before = e.inspects_of(2);
    e.set(1, 0, "exited");
    e.send(1, "die");
    e.send(9, "die"); // not a record: ignored
    wait_until(Duration::from_secs(5), "the event", || {
        !printed(&out).is_empty()
    });
    assert_eq!(printed(&out), vec![tuple("g-1", "exited", 0, "")]);
    assert_eq!(
        e.inspects_of(2),
        before,
        "the other record was not inspected"
    );
    assert_eq!(e.inspects_of(9), 0, "a container that is no record");
    stop(child, &err);
}

#[test]
fn a_restart_seen_by_an_event_and_by_a_later_tick_is_reported_once() {
    let e = Engine::start(1);
    let (child, out, err) = e.run();
    subscribed_and_ticked(&e, 1);
    e.set(1, 1, "running");
    e.send(1, "die");
    e.send(1, "start");
    wait_until(Duration::from_secs(5), "the event", || {
        !printed(&out).is_empty()
    });
    // A resync (a new subscription) lists and inspects every record again.
    e.end_stream();
    wait_until(Duration::from_secs(10), "the resync", || {
        e.subscriptions().len() >= 2 && e.inspected_after_list(1, 2)
    });
    assert_eq!(printed(&out), vec![tuple("g-1", "running", 1, "")]);
    stop(child, &err);
}

#[test]
fn a_broken_stream_resumes_and_its_resync_tick_catches_what_happened_meanwhile() {
    let e = Engine::start(2);
    let (child, out, err) = e.run();
    subscribed_and_ticked(&e, 2);
    // dockerd goes away mid-stream; meanwhile a container stops unseen.
    e.end_stream();
    e.set(2, 0, "exited");
    wait_until(Duration::from_secs(10), "the event", || {
        !printed(&out).is_empty()
    });
    assert_eq!(printed(&out), vec![tuple("g-2", "exited", 0, "")]);
    let subs = e.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(!subs[0].contains("since="), "{}", subs[0]);
    assert!(
        subs[1].contains("since="),
        "resumes where it left: {}",
        subs[1]
    );
    assert!(
        err.text().contains("Docker events stream broken"),
        "{}",
        err.text()
    );
    stop(child, &err);
}

#[test]
fn a_burst_of_1000_events_neither_blocks_nor_costs_a_verdict() {
    let e = Engine::start(2);
    let (child, out, err) = e.run();
    subscribed_and_ticked(&e, 2);
    let pid = child.id();
    for _ in 0..1000 {
        e.send(1, "health_status: healthy");
    }
    e.set(2, 1, "running");
    e.send(2, "die");
    wait_until(Duration::from_secs(20), "the restart", || {
        !printed(&out).is_empty()
    });
    assert_eq!(printed(&out), vec![tuple("g-2", "running", 1, "")]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    eprintln!("peak RSS through a burst of 1,000 events: {hwm_kib} KiB");
    assert!(hwm_kib < 32 * 1024, "{hwm_kib} KiB");
    stop(child, &err);
}

#[test]
fn garbage_or_a_404_on_the_events_endpoint_leaves_the_poll_going() {
    for reply in [
        Reply::Json(404, r#"{"message":"page not found"}"#.into()),
        Reply::Raw(b"\x00\xffnot http at all\r\n\r\n".to_vec()),
    ] {
        let engine = FakeEngine::start(move |path| {
            if path.contains("/events?") {
                reply.clone()
            } else {
                one_labelled_reply(path, "exited")
            }
        });
        let (child, out, err) = Daemon::watched(
            bin()
                .args(["run", "--interval", "200ms", "--docker-host"])
                .arg(engine.docker_host()),
        );
        wait_until(Duration::from_secs(15), "events from ticks", || {
            out.lines().len() >= 5
        });
        assert!(
            err.text().contains("Docker events stream broken"),
            "{}",
            err.text()
        );
        stop(child, &err);
    }
}

#[test]
fn an_api_version_change_under_the_stream_is_negotiated_again() {
    let e = Engine::start(1);
    let (child, _out, err) = e.run();
    subscribed_and_ticked(&e, 1);
    // dockerd is upgraded: it now speaks 1.45 and refuses below 1.44.
    e.engine.set_api_version("1.45");
    e.engine.set_min_api(Some((1, 44)));
    e.end_stream();
    wait_until(Duration::from_secs(10), "a new subscription", || {
        e.subscriptions()
            .iter()
            .any(|p| p.starts_with("/v1.45/events?"))
    });
    stop(child, &err);
}

/// Counts what the reader reports.
#[derive(Default)]
struct Counted {
    events: AtomicU64,
    attempts: AtomicU64,
    reconnects: AtomicU64,
}

impl StreamCounters for Counted {
    fn event(&self, _action: events::ContainerAction) {
        self.events.fetch_add(1, SeqCst);
    }
    fn attempted(&self) {
        self.attempts.fetch_add(1, SeqCst);
    }
    fn reconnected(&self) {
        self.reconnects.fetch_add(1, SeqCst);
    }
}

fn reader_on(
    engine: &FakeEngine,
    silence: Duration,
) -> (events::EventsReader, Receiver<Nudge>, Arc<Counted>) {
    let client = DockerClient::new(
        &engine.socket,
        Duration::from_millis(500),
        Duration::from_secs(60),
    );
    let (tx, rx) = crossbeam_channel::bounded(16);
    let counted = Arc::new(Counted::default());
    let reader = events::spawn(ReaderParts {
        socket: engine.socket.clone(),
        client,
        timeout: Duration::from_millis(500),
        nudges: tx,
        overflow: Arc::default(),
        counters: counted.clone(),
        silence,
        label: None,
        resume_from: None,
    })
    .unwrap();
    (reader, rx, counted)
}

#[test]
fn a_silent_stream_is_pinged_and_read_on_while_dockerd_answers() {
    let (_tx, rx) = crossbeam_channel::unbounded::<String>();
    let engine = FakeEngine::start(move |_| Reply::Stream(rx.clone()));
    let (reader, nudges, counted) = reader_on(&engine, Duration::from_millis(200));
    assert_eq!(
        nudges.recv_timeout(Duration::from_secs(5)),
        Ok(Nudge::Resync)
    );
    wait_until(Duration::from_secs(5), "pings", || {
        engine.requests().iter().filter(|p| *p == "/_ping").count() >= 4
    });
    let subscriptions = engine
        .requests()
        .iter()
        .filter(|p| p.contains("/events?"))
        .count();
    assert_eq!(subscriptions, 1, "the same stream is read on");
    assert_eq!(counted.attempts.load(SeqCst), 1);
    assert_eq!(counted.reconnects.load(SeqCst), 0);
    reader.stop();
}

#[test]
fn a_silent_stream_whose_dockerd_hangs_is_dropped_and_resubscribed() {
    let (_tx, rx) = crossbeam_channel::unbounded::<String>();
    let engine = FakeEngine::start(move |_| Reply::Stream(rx.clone()));
    let (reader, nudges, counted) = reader_on(&engine, Duration::from_millis(200));
    assert_eq!(
        nudges.recv_timeout(Duration::from_secs(5)),
        Ok(Nudge::Resync)
    );
    // dockerd wedges: the stream stays open and silent, and pings hang.
    engine.set_ping_hangs(true);
    wait_until(Duration::from_secs(10), "the stream dropped", || {
        counted.attempts.load(SeqCst) >= 2
    });
    assert_eq!(counted.reconnects.load(SeqCst), 0, "not subscribed again");
    let subscriptions = || {
        engine
            .requests()
            .iter()
            .filter(|p| p.contains("/events?"))
            .count()
    };
    assert_eq!(subscriptions(), 1, "no subscription while dockerd hangs");
    engine.set_ping_hangs(false);
    assert_eq!(
        nudges.recv_timeout(Duration::from_secs(10)),
        Ok(Nudge::Resync)
    );
    assert_eq!(subscriptions(), 2);
    assert_eq!(counted.reconnects.load(SeqCst), 1);
    reader.stop();
}

#[test]
fn real_dockerd_kills_exits_and_unhealthy_checks_are_seen_within_a_second() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "events");
    let killed = c.run("g-killed", &[], &["sleep", "1000"]);
    // The two that fail by themselves wait 10 s: well after the first tick,
    // even when starting three containers is slow.
    let exits = c.run("g-exits", &[], &["sh", "-c", "sleep 10; exit 3"]);
    // Healthy for the first look, unhealthy after about 10 s (the image has
    // no /tmp: the flag file lives at the root).
    let sick = c.run(
        "g-sick",
        &[
            "--health-cmd",
            "test ! -e /sick",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sh", "-c", "sleep 10; touch /sick; sleep 1000"],
    );
    let (child, out, err) = Daemon::watched(
        bin()
            .args(["run", "--interval", "1h", "--label", &c.label])
            .env("DOCKER_HOST", live.docker_host())
            .env("RUST_LOG", "rtinspect=debug"),
    );
    wait_until(Duration::from_secs(10), "the first tick", || {
        err.text().contains("tick: 3 records, 0 events")
    });
    live.docker(&["kill", &killed]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while printed(&out).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "three events; got {:?}\n{}",
            printed(&out),
            err.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got: HashMap<String, (String, u64)> = printed(&out)
        .into_iter()
        .map(|(g, s, r, _)| (g, (s, r)))
        .collect();
    assert_eq!(got.len(), 3, "{:?}", printed(&out));
    assert_eq!(got["g-killed"].0, "exited");
    assert_eq!(got["g-exits"].0, "exited");
    assert_eq!(got["g-sick"].0, "running");
    // From dockerd's own time of each failure (the exit; the end of the
    // first failing probe, still in the five kept) to the envelope's
    // `occurred_at`: what the events stream buys, whatever the docker CLI
    // took to start.
    let first_failing_probe = "{{range .State.Health.Log}}{{if ne .ExitCode 0}}\
                               {{json .End}} {{end}}{{end}}";
    for (game, id, failed_at) in [
        ("g-killed", &killed, "{{.State.FinishedAt}}"),
        ("g-exits", &exits, "{{.State.FinishedAt}}"),
        ("g-sick", &sick, first_failing_probe),
    ] {
        let line = out.lines().into_iter().find(|l| l.contains(game)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let occurred = unix_nanos(v["occurred_at"].as_str().unwrap());
        let failed = c.inspect(id, failed_at);
        let failed = unix_nanos(failed.split_whitespace().next().unwrap().trim_matches('"'));
        let latency = Duration::from_nanos(
            u64::try_from(occurred - failed).expect("the event follows the failure"),
        );
        eprintln!("{game}: failure to the event: {latency:?}");
        assert!(latency < Duration::from_secs(1), "{game}: {latency:?}");
    }
    // Nothing more: each failure was one look, and the interval is an hour.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(printed(&out).len(), 3, "{:?}", printed(&out));
    stop(child, &err);
}

#[test]
fn a_stream_that_breaks_at_once_backs_off_and_ticks_at_most_once_a_second() {
    let engine = FakeEngine::start(|path| {
        if path.contains("/events?") {
            // A 200 whose chunked body is broken from its first byte.
            Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec())
        } else {
            one_labelled_reply(path, "running")
        }
    });
    let mut child = bin()
        .args(["run", "--interval", "1h", "--docker-host"])
        .arg(engine.docker_host())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = StderrLines::of(&mut child);
    let child = Daemon(Some(child));
    std::thread::sleep(Duration::from_secs(5));
    let requests = engine.requests();
    let subscriptions = requests.iter().filter(|p| p.contains("/events?")).count();
    let lists = requests
        .iter()
        .filter(|p| p.contains("/containers/json?"))
        .count();
    eprintln!("in 5 s: {subscriptions} subscriptions, {lists} ticks");
    // 100 ms doubling: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, then 3.2 s.
    assert!((3..=7).contains(&subscriptions), "{subscriptions}");
    assert!(lists <= 6, "at most one full tick a second: {lists}");
    let warnings = err
        .lines()
        .iter()
        .filter(|l| l.contains("Docker events stream broken"))
        .count();
    assert_eq!(warnings, 1, "one warning for the outage: {}", err.text());
    stop(child, &err);
}

/// A chunked 200 on `/events` that carries one `die` of container 1 at
/// `at`, then ends: what a dockerd asked to resume from `since` sends when
/// its ring holds that one event and the stream is cut at once.
fn one_replayed_die_then_the_end(at: std::time::SystemTime) -> Reply {
    let at = at.duration_since(std::time::UNIX_EPOCH).unwrap();
    let line = format!(
        r#"{{"Type":"container","Action":"die","Actor":{{"ID":"{}","Attributes":{{"name":"game-1","exitCode":"1"}}}},"time":{},"timeNano":{}}}"#,
        hex_id(1),
        at.as_secs(),
        at.as_nanos()
    );
    Reply::Raw(
        format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{line}\n\r\n0\r\n\r\n",
            line.len() + 1
        )
        .into_bytes(),
    )
}

#[test]
fn a_replayed_event_on_a_stream_that_ends_at_once_does_not_reset_the_backoff() {
    // Every subscription replays the same old `die` of a stopped record and
    // ends: the event is no news, so the stream has proved nothing.
    let died = std::time::SystemTime::now() - Duration::from_secs(60);
    let engine = FakeEngine::start(move |path| {
        if path.contains("/events?") {
            one_replayed_die_then_the_end(died)
        } else {
            one_labelled_reply(path, "exited")
        }
    });
    let (child, out, err) = Daemon::watched(
        bin()
            .args(["run", "--interval", "1h", "--docker-host"])
            .arg(engine.docker_host()),
    );
    wait_until(Duration::from_secs(5), "the first subscription", || {
        engine.requests().iter().any(|p| p.contains("/events?"))
    });
    std::thread::sleep(Duration::from_secs(5));
    let requests = engine.requests();
    let subscriptions = requests.iter().filter(|p| p.contains("/events?")).count();
    let lists = requests
        .iter()
        .filter(|p| p.contains("/containers/json?"))
        .count();
    let events = printed(&out).len();
    let warnings = err
        .lines()
        .iter()
        .filter(|l| l.contains("Docker events stream broken"))
        .count();
    eprintln!("in 5 s: {subscriptions} subscriptions, {lists} ticks, {events} health events");
    // The backoff of a stream broken from its first byte: 100 ms doubling,
    // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, then 3.2 s (jitter takes up to half).
    assert!((3..=8).contains(&subscriptions), "{subscriptions}");
    assert!(lists <= 7, "at most one full tick a second: {lists}");
    // Each look at the stopped record (a tick or the replayed die) is one.
    assert!(events <= lists + subscriptions, "{events}");
    assert_eq!(warnings, 1, "one warning for the outage: {}", err.text());
    stop(child, &err);
}

/// The value of `series` in the daemon's exposition at `addr`.
fn scraped(addr: &str, series: &str) -> Option<f64> {
    let (status, body) = http_get(addr, "/metrics")?;
    assert_eq!(status, 200);
    sample(&body, series)
}

#[test]
fn the_reconnects_counter_counts_subscriptions_after_a_break_not_attempts() {
    const RECONNECTS: &str = "rtinspect_event_stream_reconnects_total";
    const DOCKER_FAILURES: &str = "rtinspect_tick_failures_total{stage=\"docker\"}";

    // No dockerd at all: attempts fail one after another, and none
    // subscribes, let alone again.
    let nowhere = TempDir::new("no-dockerd");
    let addr = free_addr();
    let (child, _out, err) = Daemon::watched(
        bin()
            .args(["run", "--interval", "200ms", "--metrics-addr", &addr])
            .arg("--docker-host")
            .arg(format!(
                "unix://{}",
                nowhere.path().join("docker.sock").display()
            )),
    );
    // Five failed ticks take 0.8 s at least, time for four attempts (at 0,
    // 0.1, 0.3 and 0.7 s at the longest backoff); three are asked for, to
    // leave a slow machine room.
    wait_until(Duration::from_secs(10), "five failed ticks", || {
        scraped(&addr, DOCKER_FAILURES).is_some_and(|n| n >= 5.0)
    });
    assert_eq!(scraped(&addr, RECONNECTS), Some(0.0), "never subscribed");
    let attempts = scraped(&addr, "rtinspect_event_stream_attempts_total").unwrap();
    assert!(
        attempts >= 3.0,
        "the attempts are counted apart: {attempts}"
    );
    stop(child, &err);

    // One real break, one subscription again: one.
    let e = Engine::start(1);
    let addr = free_addr();
    let (child, _out, err) = Daemon::watched(
        bin()
            .args(["run", "--interval", "1h", "--metrics-addr", &addr])
            .arg("--docker-host")
            .arg(e.engine.docker_host()),
    );
    subscribed_and_ticked(&e, 1);
    assert_eq!(
        scraped(&addr, RECONNECTS),
        Some(0.0),
        "the first subscription"
    );
    e.end_stream();
    wait_until(Duration::from_secs(10), "the subscription again", || {
        scraped(&addr, RECONNECTS).is_some_and(|n| n >= 1.0)
    });
    assert_eq!(e.subscriptions().len(), 2);
    assert_eq!(scraped(&addr, RECONNECTS), Some(1.0));
    stop(child, &err);
}
