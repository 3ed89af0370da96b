//! The metrics listener under abuse, driving the real binary in label mode
//! against the fake engine: a flood of idle connections with a client that
//! sends one byte a second, the same under a pids limit of 16 (what the
//! unit's `TasksMax=16` does), and garbage, oversized and wrong requests.
//! Also what Prometheus makes of it: the exposition under `promtool check
//! metrics`, and the shipped alert rules under their promtool unit tests.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{
    FakeEngine, PidsCgroup, Reply, bin, free_addr, http_get, live_required, one_labelled_reply,
    sample, terminate, wait_until,
};

/// Connections the listener keeps open at once (`Limits::max_connections`).
const MAX_CONNECTIONS: usize = 16;

/// A fake engine with one labelled, running, healthy container.
fn engine() -> FakeEngine {
    FakeEngine::start(engine_reply)
}

fn engine_reply(path: &str) -> Reply {
    one_labelled_reply(path, "running")
}

/// `rtinspect run` at a 200 ms interval with metrics on; killed on drop
/// unless [`Daemon::stop`] ended it.
struct Daemon {
    child: Option<Child>,
    pid: u32,
    addr: String,
}

impl Daemon {
    /// Starts the binary, inside `cgroup` when given, and waits for /metrics.
    fn start(engine: &FakeEngine, cgroup: Option<&PidsCgroup>) -> Daemon {
        let addr = free_addr();
        let mut command = match cgroup {
            None => bin(),
            Some(cgroup) => cgroup.bin_inside(),
        };
        command.args([
            "run",
            "--docker-host",
            &engine.docker_host(),
            "--interval",
            "200ms",
            "--metrics-addr",
            &addr,
        ]);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            pid: child.id(),
            child: Some(child),
            addr,
        };
        wait_until(Duration::from_secs(10), "/metrics to answer", || {
            daemon.metrics().is_some()
        });
        daemon
    }

    /// The exposition, when /metrics answers 200.
    fn metrics(&self) -> Option<String> {
        http_get(&self.addr, "/metrics")
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
    }

    fn ticks(&self) -> Option<f64> {
        sample(&self.metrics()?, "rtinspect_ticks_total")
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// A line of /proc/PID/status, as a number (`Threads`, `VmRSS` in kB).
    fn status(&self, key: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{}/status", self.pid))
    }

    /// The names of the process's threads.
    fn thread_names(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect()
    }

    /// SIGTERM, then the output.
    fn stop(mut self) -> Output {
        terminate(self.child.take().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Clients that misbehave until stopped: `idle` connections that never send
/// anything (each one the listener closes is opened again, so the pressure
/// stays), and one client that sends its request a byte a second (opened
/// again whenever the listener cuts it).
struct Flood {
    stop: Arc<AtomicBool>,
    /// Idle connections the listener closed and the flood opened again.
    reopened: Arc<AtomicUsize>,
    /// Times the slow client was cut off.
    slow_cut: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Flood {
    fn start(addr: &str, idle: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let reopened = Arc::new(AtomicUsize::new(0));
        let slow_cut = Arc::new(AtomicUsize::new(0));
        let mut conns: Vec<TcpStream> = (0..idle)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let idler = {
            let (stop, reopened, addr) = (stop.clone(), reopened.clone(), addr.to_owned());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    for conn in &mut conns {
                        conn.set_nonblocking(true).unwrap();
                        let closed = match conn.read(&mut [0u8; 64]) {
                            Err(e) => e.kind() != ErrorKind::WouldBlock,
                            Ok(_) => true,
                        };
                        if !closed {
                            continue;
                        }
                        if let Ok(again) = TcpStream::connect(&addr) {
                            *conn = again;
                            reopened.fetch_add(1, SeqCst);
                        }
                    }
                    // The pace of the flood, not a wait for a condition.
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let slow = {
            let (stop, slow_cut, addr) = (stop.clone(), slow_cut.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let request = b"GET /metrics HTTP/1.1\r\nHost: slow\r\n\r\n";
                while !stop.load(SeqCst) {
                    let Ok(mut conn) = TcpStream::connect(&addr) else {
                        continue;
                    };
                    for byte in request {
                        if stop.load(SeqCst) {
                            return;
                        }
                        if conn.write_all(&[*byte]).is_err() {
                            slow_cut.fetch_add(1, SeqCst);
                            break;
                        }
                        // One byte a second is the fault itself.
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })
        };
        Flood {
            stop,
            reopened,
            slow_cut,
            threads: vec![idler, slow],
        }
    }

    /// Stops the clients; their connections close as the threads end.
    fn stop(self) {
        self.stop.store(true, SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// What one flood cost the daemon, printed for the fault table (docs/guarantees.md).
struct Figures {
    threads_before: usize,
    threads_max: usize,
    rss_before_kib: usize,
    rss_max_kib: usize,
    scrapes_ok: usize,
    scrapes_failed: usize,
    answered_after_close: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "threads {} before, at most {} during; RSS {} KiB before, at most {} KiB during; \
             scrapes during the flood {} answered, {} not; /metrics answered {:?} after the flood closed",
            self.threads_before,
            self.threads_max,
            self.rss_before_kib,
            self.rss_max_kib,
            self.scrapes_ok,
            self.scrapes_failed,
            self.answered_after_close
        )
    }
}

/// Runs the flood of 100 idle connections and a slow client against
/// `daemon` until 10 more ticks were counted and the slow client was cut at
/// least once, then stops it, and checks the daemon throughout.
fn flood_and_recover(daemon: &mut Daemon) -> Figures {
    // The listener answers before the publisher, events reader and
    // inspector threads are started: count from the first tick on.
    wait_until(Duration::from_secs(10), "the first tick", || {
        daemon.ticks().is_some_and(|t| t >= 1.0)
    });
    let names = daemon.thread_names();
    assert_eq!(
        names.iter().filter(|n| *n == "metrics").count(),
        1,
        "one listener thread: {names:?}"
    );
    let threads_before = daemon.status("Threads");
    let rss_before_kib = daemon.status("VmRSS");
    let ticks_before = daemon.ticks().unwrap();

    let flood = Flood::start(&daemon.addr, 100);
    let (mut threads_max, mut rss_max_kib) = (0, 0);
    let (mut scrapes_ok, mut scrapes_failed) = (0, 0);
    wait_until(
        Duration::from_secs(30),
        "10 more ticks under the flood, and the slow client cut off",
        || {
            assert!(daemon.alive(), "the daemon died under the flood");
            threads_max = threads_max.max(daemon.status("Threads"));
            rss_max_kib = rss_max_kib.max(daemon.status("VmRSS"));
            let ticks = daemon.ticks();
            if ticks.is_some() {
                scrapes_ok += 1;
            } else {
                scrapes_failed += 1;
            }
            ticks.is_some_and(|t| t >= ticks_before + 10.0) && flood.slow_cut.load(SeqCst) >= 1
        },
    );
    assert!(
        flood.reopened.load(SeqCst) >= 100 - MAX_CONNECTIONS,
        "the listener closes connections beyond its cap"
    );
    flood.stop();
    let closed = Instant::now();
    wait_until(Duration::from_secs(5), "/metrics after the flood", || {
        daemon.metrics().is_some()
    });
    let answered_after_close = closed.elapsed();
    assert!(daemon.alive());
    assert_eq!(
        threads_max, threads_before,
        "the listener never adds a thread per connection"
    );
    Figures {
        threads_before,
        threads_max,
        rss_before_kib,
        rss_max_kib,
        scrapes_ok,
        scrapes_failed,
        answered_after_close,
    }
}

#[test]
fn idle_and_slow_clients_neither_stop_ticks_nor_add_threads() {
    let engine = engine();
    let mut daemon = Daemon::start(&engine, None);
    let figures = flood_and_recover(&mut daemon);
    eprintln!("figures (no pids limit): {figures}");
    let out = daemon.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_flood_under_a_pids_limit_of_16_refuses_no_thread() {
    let Some(cgroup) = PidsCgroup::new(16) else {
        return;
    };
    let engine = engine();
    let mut daemon = Daemon::start(&engine, Some(&cgroup));
    let procs = cgroup.read("cgroup.procs");
    assert!(
        procs.lines().any(|p| p == daemon.pid.to_string()),
        "the daemon runs in the cgroup: {procs}"
    );
    let figures = flood_and_recover(&mut daemon);
    eprintln!(
        "figures (pids.max 16, pids.current {}): {figures}",
        cgroup.read("pids.current").trim()
    );
    // `max N` counts forks and thread spawns the limit refused.
    assert_eq!(cgroup.read("pids.events").trim(), "max 0");
    let out = daemon.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `request` as is and reads the whole answer (the listener closes).
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bad_requests_get_their_status_and_the_next_good_one_is_answered() {
    let engine = engine();
    let daemon = Daemon::start(&engine, None);
    let mut oversized = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    oversized.resize(16 * 1024, b'a');
    oversized.extend_from_slice(b"\r\n\r\n");
    let table: &[(&str, &[u8], &str)] = &[
        ("garbage", b"garbage\r\n\r\n", "400 Bad Request"),
        (
            "a TLS hello",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n",
            "400 Bad Request",
        ),
        (
            "HTTP/2",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "an oversized head",
            &oversized,
            "431 Request Header Fields Too Large",
        ),
        (
            "a POST",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "405 Method Not Allowed",
        ),
        (
            "a HEAD",
            b"HEAD /healthz HTTP/1.1\r\n\r\n",
            "405 Method Not Allowed",
        ),
        (
            "an unknown path",
            b"GET /nope HTTP/1.1\r\n\r\n",
            "404 Not Found",
        ),
        (
            "a query",
            b"GET /metrics?debug=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "200 OK",
        ),
    ];
    for (what, request, status) in table {
        let answer = exchange(&daemon.addr, request);
        let (head, _) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{what}: {answer}"
        );
        assert!(head.contains("\r\nConnection: close"), "{what}: {head}");
        let good = daemon.metrics();
        assert!(
            good.is_some_and(|m| m.contains("rtinspect_ticks_total")),
            "the request after {what}"
        );
    }
    let post = exchange(&daemon.addr, b"POST /healthz HTTP/1.0\r\n\r\n");
    assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");
    daemon.stop();
}

#[test]
fn a_request_that_never_ends_is_closed_after_two_seconds() {
    let engine = engine();
    let daemon = Daemon::start(&engine, None);
    // Before the connect: the deadline runs from the accept, which cannot
    // come earlier.
    let sent = Instant::now();
    let mut s = TcpStream::connect(&daemon.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let closed = sent.elapsed();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(
        closed >= Duration::from_secs(2) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    assert!(daemon.metrics().is_some());
    daemon.stop();
}

/// Runs promtool with `args` in `packaging/`, feeding it `stdin`; `None`
/// (with a note, or a failure when live services are demanded) when
/// promtool is missing.
fn promtool(args: &[&str], stdin: &str) -> Option<Output> {
    let child = Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            !live_required(),
            "promtool is missing (Debian package prometheus)"
        );
        crate::support::skipped(&format!("no promtool for promtool {}", args.join(" ")));
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    let Some(check) = promtool(&["check", "rules", "rtinspect.rules.yml"], "") else {
        return;
    };
    assert_success(&check);
    let Some(test) = promtool(&["test", "rules", "rtinspect.rules.test.yml"], "") else {
        return;
    };
    assert_success(&test);
}

#[test]
fn the_exposition_passes_promtool_check() {
    let engine = engine();
    let daemon = Daemon::start(&engine, None);
    let metrics = daemon.metrics().unwrap();
    for family in [
        "rtinspect_tick_failures_total",
        "rtinspect_last_success_timestamp_seconds",
        "rtinspect_events_rejected_total",
    ] {
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{family}");
    }
    if let Some(out) = promtool(&["check", "metrics"], &metrics) {
        assert_success(&out);
    }
    daemon.stop();
}

#[test]
fn healthz_names_what_fails_while_dockerd_fails_and_recovers() {
    let engine = engine();
    let daemon = Daemon::start(&engine, None);
    let healthz = || http_get(&daemon.addr, "/healthz").unwrap();
    wait_until(Duration::from_secs(10), "a successful tick", || {
        healthz().1.starts_with("ok: last successful tick ")
    });
    let success = |metrics: &str| sample(metrics, "rtinspect_last_success_timestamp_seconds");
    assert!(success(&daemon.metrics().unwrap()).unwrap() > 0.0);

    // dockerd accepts connections and closes them unanswered.
    engine.set_handler(|_| Reply::Close);
    let failing = Instant::now();
    let mut reason = String::new();
    wait_until(Duration::from_secs(10), "503 naming the failure", || {
        let (status, body) = healthz();
        reason = body;
        status == 503 && reason.contains(" since ")
    });
    eprintln!("503 after {:?}: {}", failing.elapsed(), reason.trim_end());
    assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
    let metrics = daemon.metrics().unwrap();
    let failures = ["records", "docker"]
        .iter()
        .map(|s| {
            sample(
                &metrics,
                &format!("rtinspect_tick_failures_total{{stage=\"{s}\"}}"),
            )
        })
        .map(Option::unwrap)
        .sum::<f64>();
    assert!(failures >= 1.0, "{metrics}");
    let stale = success(&metrics).unwrap();
    assert!(stale > 0.0);

    engine.set_handler(engine_reply);
    wait_until(Duration::from_secs(10), "ok again", || {
        healthz().1.starts_with("ok: last successful tick ")
    });
    assert!(success(&daemon.metrics().unwrap()).unwrap() > stale);
    daemon.stop();
}
