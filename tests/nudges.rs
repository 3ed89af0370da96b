//! The events path under attack (issue 22): a flood of nudges for one
//! record, a restart found through an event and rtinspect restarted, the
//! `die` of a container its game has replaced, and an event made after the
//! drain ended. Each plays the attack against the built binary and a fake
//! dockerd whose containers, inspect delays and events stream the test
//! drives.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    self, Daemon, FakeContainer, PgCluster, StderrLines, TempDir, TestSchema, bin, free_addr,
    game_box, hex_id, http_get, printed, printed_container_ids, sample, tuple, wait_until,
};

/// The fake dockerd of labelled games ([`support::Engine`]) the test
/// drives: its containers, inspect delays and holds, and events stream.
struct Engine(support::Engine);

impl std::ops::Deref for Engine {
    type Target = support::Engine;

    fn deref(&self) -> &support::Engine {
        &self.0
    }
}

impl Engine {
    /// Containers `1..=n`, running, container `k` of game `g-k`, created at `k`.
    fn start(n: u32) -> Engine {
        let e = Engine(support::Engine::start());
        for k in 1..=n {
            e.add(k, &format!("g-{k}"), i64::from(k));
        }
        e
    }

    /// Sets what an inspect of container `k` says.
    fn set(&self, k: u32, restarts: u64, status: &str) {
        self.update(k, |c| {
            c.restarts = restarts;
            c.status = status.into();
        });
    }

    /// Adds a running container `k` of `game`, created at `created`.
    fn add(&self, k: u32, game: &str, created: i64) {
        self.put(
            k,
            FakeContainer {
                created,
                ..game_box(game, "running")
            },
        );
    }

    /// Sends one container event; like Docker's, its attributes carry the
    /// container's labels.
    fn send(&self, k: u32, action: &str) {
        self.events().send(k, action);
    }

    fn subscriptions(&self) -> usize {
        self.count("/events?")
    }

    fn count(&self, what: &str) -> usize {
        self.engine
            .requests()
            .iter()
            .filter(|p| p.contains(what))
            .count()
    }

    fn inspects_of(&self, k: u32) -> usize {
        self.count(&format!("/containers/{}/json", hex_id(k)))
    }

    /// `rtinspect run` on this engine at `interval`, with `extra`.
    fn command(&self, interval: &str, extra: &[&str]) -> std::process::Command {
        let mut cmd = bin();
        cmd.args(["run", "--interval", interval, "--docker-host"])
            .arg(self.docker_host())
            .args(extra);
        cmd
    }
}

/// Waits for the daemon's exit, at most `limit` (then kills it and fails):
/// its status and how long it took.
fn exit_within(mut daemon: Daemon, limit: Duration, err: &StderrLines) -> (ExitStatus, Duration) {
    let start = Instant::now();
    let child = daemon.0.as_mut().expect("running");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            daemon.0 = None;
            return (status, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "no exit within {limit:?}\n{}",
            err.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM; the exit must be a success within 15 s.
fn stop(daemon: Daemon, err: &StderrLines) -> Duration {
    daemon.signal("-TERM");
    let (status, took) = exit_within(daemon, Duration::from_secs(15), err);
    assert!(status.success(), "{status}\n{}", err.text());
    took
}

/// Waits until the daemon has subscribed (`subscriptions` in all) and a
/// tick has ended with `summary` since `since`.
fn ticked(e: &Engine, err: &StderrLines, subscriptions: usize, since: Instant, summary: &str) {
    wait_until(Duration::from_secs(15), "subscription and tick", || {
        e.subscriptions() >= subscriptions
            && err
                .first_after(since, &format!("tick: {summary}"))
                .is_some()
    });
}

/// The value of `series` in the daemon's exposition at `addr`.
fn scraped(addr: &str, series: &str) -> Option<f64> {
    let (status, body) = http_get(addr, "/metrics")?;
    assert_eq!(status, 200);
    sample(&body, series)
}

/// A stand-in for systemd's notify socket, read on a thread of its own.
struct Systemd {
    path: String,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    done: Arc<AtomicBool>,
    _dir: TempDir,
}

impl Systemd {
    fn new() -> Systemd {
        let dir = TempDir::new("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (g, d) = (got.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !d.load(SeqCst) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    g.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        Systemd {
            path: path.to_str().unwrap().to_owned(),
            got,
            done,
            _dir: dir,
        }
    }

    /// When each `WATCHDOG=1` came.
    fn pings(&self) -> Vec<Instant> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m == "WATCHDOG=1")
            .map(|(t, _)| *t)
            .collect()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        self.done.store(true, SeqCst);
    }
}

#[test]
fn a_stream_of_nudges_neither_stops_the_ticks_nor_starves_the_other_records() {
    const TICKS: &str = "rtinspect_ticks_total";
    const FLOOD: Duration = Duration::from_secs(20);
    let e = Engine::start(3);
    // Each inspect of container 1 takes 50 ms: a loop that inspects it for
    // every event is busy with it for good.
    e.delay(1, Duration::from_millis(50));
    let systemd = Systemd::new();
    let addr = free_addr();
    let (child, _out, err) = Daemon::watched(
        e.command("1s", &["--metrics-addr", &addr])
            .env("NOTIFY_SOCKET", &systemd.path)
            .env("WATCHDOG_USEC", "2000000"),
    );
    ticked(&e, &err, 1, Instant::now(), "3 records, 0 events");
    let ticks_before = scraped(&addr, TICKS).expect("the ticks counter");
    let before: Vec<usize> = (1..=3).map(|k| e.inspects_of(k)).collect();

    // `die` of container 1, 100 a second for 20 s, on a thread of its own.
    let events = e.events();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut sent = 0u32;
        while started.elapsed() < FLOOD {
            events.send(1, "die");
            sent += 1;
            let next = started + Duration::from_millis(10) * sent;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        sent
    });
    let sent = writer.join().unwrap();
    let flood = started.elapsed();
    let ticks = scraped(&addr, TICKS).expect("the ticks counter") - ticks_before;
    let inspects: Vec<usize> = (1..=3)
        .map(|k| e.inspects_of(k) - before[k as usize - 1])
        .collect();
    let per_second = inspects[0] as f64 / flood.as_secs_f64();
    let pings: Vec<Instant> = systemd
        .pings()
        .into_iter()
        .filter(|t| *t >= started && *t <= started + flood)
        .collect();
    let widest = pings.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(flood);
    eprintln!(
        "in {flood:?} of {sent} `die` events: {ticks} ticks, inspects {inspects:?} \
         (container 1: {per_second:.1}/s), {} watchdog pings, widest gap {widest:?}",
        pings.len()
    );
    assert!(ticks >= 18.0, "the ticks stopped: {ticks} in {flood:?}");
    assert!(
        inspects[1] >= 18 && inspects[2] >= 18,
        "the other records starved: {inspects:?} in {flood:?}"
    );
    // Nudges merge per record: at most one inspect after another (50 ms
    // each: 20 a second), plus the ticks' own.
    assert!(
        per_second <= 22.0,
        "container 1 inspected {per_second:.1} times a second"
    );
    // systemd kills a unit whose watchdog is not fed for 2 s; the loop
    // feeds it about once a second.
    assert!(pings.len() >= 15, "{} watchdog pings", pings.len());
    assert!(
        widest < Duration::from_millis(1500),
        "a watchdog gap of {widest:?}"
    );
    stop(child, &err);
}

#[test]
fn a_restart_found_through_an_event_is_not_reported_again_after_a_restart_of_rtinspect() {
    let e = Engine::start(1);
    let state = TempDir::new("nudge-state");
    let dir = state.path().to_str().unwrap().to_owned();
    let args = ["--state-dir", dir.as_str()];
    let (child, out, err) = Daemon::watched(&mut e.command("1h", &args));
    ticked(&e, &err, 1, Instant::now(), "1 records, 0 events");
    e.set(1, 1, "running");
    e.send(1, "die");
    e.send(1, "start");
    wait_until(Duration::from_secs(5), "the event", || {
        !printed(&out).is_empty()
    });
    // The second event's inspect finds nothing new.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(printed(&out), vec![tuple("g-1", "running", 1, "")]);
    stop(child, &err);

    // The same state directory and dockerd; the restart count is still 1.
    let restarted = Instant::now();
    let (child, out, err) = Daemon::watched(&mut e.command("1h", &args));
    ticked(&e, &err, 2, restarted, "1 records, ");
    // The tick's summary is logged once its events are queued: give the
    // publisher a moment to print any.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        err.first_after(restarted, "tick: 1 records, 0 events")
            .is_some(),
        "the first tick after the restart reported an event\n{}",
        err.text()
    );
    assert_eq!(printed(&out), vec![], "reported again after the restart");
    stop(child, &err);
}

#[test]
fn a_die_of_a_container_replaced_by_a_newer_one_is_no_event() {
    let e = Engine::start(1);
    let (child, out, err) = Daemon::watched(&mut e.command("1h", &[]));
    ticked(&e, &err, 1, Instant::now(), "1 records, 0 events");
    // Game g-1 moves to a newer container, 2; then the old one, 1, exits.
    e.add(2, "g-1", 2);
    e.send(2, "create");
    e.send(2, "start");
    e.set(1, 0, "exited");
    e.send(1, "die");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(printed(&out), vec![], "the old container reported");
    assert!(
        e.inspects_of(2) >= 1,
        "the new container, started, inspected"
    );
    // Control: the game's container now is 2, and its `die` is an event.
    e.set(2, 0, "exited");
    e.send(2, "die");
    wait_until(Duration::from_secs(5), "the new container's event", || {
        !printed(&out).is_empty()
    });
    assert_eq!(printed(&out), vec![tuple("g-1", "exited", 0, "")]);
    assert_eq!(printed_container_ids(&out), vec![hex_id(2)]);
    stop(child, &err);
}

#[test]
fn a_die_of_a_container_whose_record_was_stopped_in_the_table_is_no_event() {
    // A cluster of the test's own: nothing else writes to it.
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let mut s = TestSchema::new(&cluster.url(), "nudge_stopped");
    s.migrate();
    s.insert_record("g-1", "running", &hex_id(1));
    s.insert_record("g-2", "running", &hex_id(2));
    let e = Engine::start(2);
    let mut cmd = e.command("1h", &["--sink", "stdout"]);
    cmd.args(s.args());
    let (child, out, err) = Daemon::watched(&mut cmd);
    ticked(&e, &err, 1, Instant::now(), "2 records, 0 events");
    // The game is stopped on purpose: the table first, then its container.
    s.client
        .execute(
            &format!(
                "UPDATE {} SET status = 'stopped' WHERE game_id = 'g-1'",
                s.records()
            ),
            &[],
        )
        .unwrap();
    e.set(1, 0, "exited");
    e.send(1, "die");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(printed(&out), vec![], "a stopped game reported");
    // Control: a game still running in the table is reported.
    e.set(2, 0, "exited");
    e.send(2, "die");
    wait_until(Duration::from_secs(5), "the running game's event", || {
        !printed(&out).is_empty()
    });
    assert_eq!(printed(&out), vec![tuple("g-2", "exited", 0, "")]);
    stop(child, &err);
}

/// The game ids of the events in the state directory's spool.
fn spooled_games(state: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(state.join("spool.stdout.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            v["game_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[test]
fn an_event_made_after_the_drain_ends_is_spooled_not_lost() {
    let e = Engine::start(1);
    let state = TempDir::new("nudge-drain");
    let dir = state.path().to_str().unwrap().to_owned();
    let (child, out, err) =
        Daemon::watched(&mut e.command("1h", &["--state-dir", &dir, "--docker-timeout", "30s"]));
    ticked(&e, &err, 1, Instant::now(), "1 records, 0 events");

    // Container 1 exits; the inspect its `die` asks for hangs.
    e.hold_until(1, Instant::now() + Duration::from_secs(60));
    e.set(1, 0, "exited");
    let inspects = e.inspects_of(1);
    e.send(1, "die");
    wait_until(Duration::from_secs(5), "the nudged inspect", || {
        e.inspects_of(1) > inspects
    });
    // dockerd hangs for the events reader too: the stream ends and its
    // `/_ping` hangs (30 s, the Docker timeout), so the exit waits its 1 s
    // for the reader after the drain. That second is when the answer comes.
    let pings = e.count("/_ping");
    e.engine.set_ping_hangs(true);
    e.end_stream();
    wait_until(Duration::from_secs(5), "the reader's ping", || {
        e.count("/_ping") > pings
    });

    let signalled = Instant::now();
    child.signal("-TERM");
    // After the 10 s drain, before the process is gone.
    let answer_at = signalled + Duration::from_millis(10_500);
    e.hold_until(1, answer_at);
    let (status, took) = exit_within(child, Duration::from_secs(20), &err);
    let on_stdout: Vec<String> = printed(&out).into_iter().map(|(g, ..)| g).collect();
    let spooled = spooled_games(state.path());
    eprintln!(
        "exit {status} {took:?} after SIGTERM (the answer released at 10.5 s); \
         printed {on_stdout:?}, spooled {spooled:?}"
    );
    assert!(status.success(), "{status}\n{}", err.text());
    assert!(
        took < Duration::from_secs(15),
        "the exit took {took:?}\n{}",
        err.text()
    );
    assert!(
        signalled + took > answer_at,
        "the process was gone {took:?} after SIGTERM, before the answer came: nothing was tested"
    );
    assert!(
        on_stdout.contains(&"g-1".to_owned()) || spooled.contains(&"g-1".to_owned()),
        "the event was neither printed nor spooled (exit after {took:?})\n{}",
        err.text()
    );
}
