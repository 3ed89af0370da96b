//! systemd's notify protocol, with a datagram socket of the test's own
//! standing in for systemd: the messages in order, a watchdog that keeps
//! being fed while dockerd hangs within the timeouts, and one that starves
//! when the inspector is truly wedged.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{FakeEngine, Reply, TempDir, bin, one_labelled_reply, send_signal};

/// A stand-in for systemd's notify socket.
pub(crate) struct Systemd {
    socket: UnixDatagram,
    _dir: TempDir,
    pub(crate) path: String,
}

impl Systemd {
    pub(crate) fn new() -> Systemd {
        let dir = TempDir::new("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Systemd {
            socket,
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// Whether a message holding `what` arrives within `d`.
    pub(crate) fn wait_for(&self, what: &str, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains(what) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Every message that arrives within `d`, with its arrival time.
    pub(crate) fn collect(&self, d: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + d;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => got.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                )),
                Err(_) => return got,
            }
        }
    }

    /// Starts rtinspect under this stand-in, with a watchdog of `watchdog`.
    fn start(&self, engine: &FakeEngine, watchdog: Duration, args: &[&str]) -> Child {
        bin()
            .arg("run")
            .args(["--docker-host", &engine.docker_host()])
            .args(args)
            .env("NOTIFY_SOCKET", &self.path)
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

#[test]
fn systemd_hears_ready_watchdog_status_and_stopping_in_order() {
    let engine = FakeEngine::start(|path| one_labelled_reply(path, "exited"));
    let systemd = Systemd::new();
    let child = systemd.start(&engine, Duration::from_secs(2), &["--interval", "200ms"]);
    // Until two pings and a status line have come, or 20 s (a slow start).
    let mut got: Vec<(Instant, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let enough = |got: &[(Instant, String)]| {
        got.iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 2
            && got.iter().any(|(_, m)| m.starts_with("STATUS="))
    };
    while Instant::now() < deadline && !enough(&got) {
        got.extend(systemd.collect(Duration::from_millis(200)));
    }
    send_signal(&child, "-TERM");
    got.extend(systemd.collect(Duration::from_secs(3)));
    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(messages.first(), Some(&"READY=1"), "{messages:?}");
    // Even when a tick ends after the signal, nothing follows STOPPING=1.
    assert_eq!(
        messages.last(),
        Some(&"STOPPING=1\nSTATUS=stopping: delivering what is queued"),
        "{messages:?}"
    );
    let pings = messages.iter().filter(|m| **m == "WATCHDOG=1").count();
    assert!(pings >= 2, "{messages:?}");
    assert!(
        messages.contains(&"STATUS=1 records, 1 events, 0 missing, 0 errors"),
        "{messages:?}"
    );
    let _ = child.wait_with_output();
}

#[test]
fn a_hanging_dockerd_within_the_timeouts_keeps_the_watchdog_fed() {
    let engine = FakeEngine::start(|_| Reply::Hang);
    let systemd = Systemd::new();
    // Pings come about once a second (the throttle); 4 s leaves room for a
    // loaded machine without letting a loop stuck in one 60 s call pass.
    let watchdog = Duration::from_secs(4);
    let child = systemd.start(
        &engine,
        watchdog,
        &["--interval", "300ms", "--docker-timeout", "500ms"],
    );
    let got = systemd.collect(Duration::from_secs(5));
    send_signal(&child, "-TERM");
    let _ = child.wait_with_output();
    let pings: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 3, "{got:?}");
    for pair in pings.windows(2) {
        assert!(
            pair[1] - pair[0] < watchdog,
            "a gap of {:?}",
            pair[1] - pair[0]
        );
    }
    let status = got
        .iter()
        .rev()
        .find_map(|(_, m)| m.strip_prefix("STATUS="))
        .unwrap_or_default();
    assert!(
        status.contains("cannot reach dockerd at ") && status.contains(" since "),
        "{status}"
    );
}

#[test]
fn a_wedged_inspector_starves_the_watchdog() {
    // One request may take 60 s: longer than the watchdog's 2 s.
    let engine = FakeEngine::start(|_| Reply::Hang);
    let systemd = Systemd::new();
    let child = systemd.start(
        &engine,
        Duration::from_secs(2),
        &["--interval", "300ms", "--docker-timeout", "60s"],
    );
    let started = Instant::now();
    let got = systemd.collect(Duration::from_secs(6));
    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(messages.first(), Some(&"READY=1"), "{messages:?}");
    // The loop turns, and pings, while it waits up to 2 s for the events
    // stream before its first tick; once the tick is stuck, nothing.
    let last_ping = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t - started)
        .max();
    assert!(
        last_ping.is_none_or(|t| t < Duration::from_secs(3)),
        "a ping {last_ping:?} after the start, while a call was stuck: {messages:?}"
    );
    // The bounded exit holds even so.
    let signalled = Instant::now();
    send_signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(signalled.elapsed() < Duration::from_secs(15));
}
