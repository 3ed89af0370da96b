//! Against Podman's Docker-compatible API: Debian's Podman 4.3 serves the
//! Docker API 1.41 with `podman system service` (tests/services.sh starts one
//! of its own and sets `RTINSPECT_TEST_PODMAN_HOST`). Label mode, the events
//! stream and the version negotiation, with containers made from a
//! from-scratch busybox image. Skipped only when no Podman answers and
//! `RTINSPECT_TEST_REQUIRE_LIVE` is unset.
//!
//! Podman's healthchecks run from systemd timers, and a machine without
//! systemd has none: a probe runs here only when a test runs it
//! (`podman healthcheck run`), as the timer would every `--health-interval`.
//! Each probe sends a bare `health_status` event, with no `: unhealthy`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rtinspect::docker::{ApiVersion, ContainerInspector, ContainerLister, DockerClient, MAX_API};

use crate::support::{
    Daemon, StderrLines, bin, busybox_rootfs_tar, events, live_required, printed,
    printed_container_ids, send_signal, tuple, unix_nanos, wait_until,
};

/// The Podman API service the tests use.
struct LivePodman {
    socket: PathBuf,
}

/// The image every Podman test runs: static busybox, imported from scratch.
const IMAGE: &str = "rtinspect-test/busybox:1";

/// The longest a `podman` CLI call may take before the test fails rather
/// than hangs.
const CLI_LIMIT: &str = "60";

/// `GET /_ping`'s whole answer when it is a 200, else `None`.
fn ping(socket: &Path) -> Option<String> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    (answer.starts_with("HTTP/1.") && answer.split_whitespace().nth(1) == Some("200"))
        .then_some(answer)
}

/// A header's value in a raw HTTP answer, its name matched case-insensitively.
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The Podman service, or `None` (with a note) when none answers and the
/// environment does not demand one.
fn live_podman() -> Option<&'static LivePodman> {
    static LIVE: OnceLock<Option<LivePodman>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let host = std::env::var("RTINSPECT_TEST_PODMAN_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let socket = host
            .as_deref()
            .map(|h| PathBuf::from(h.strip_prefix("unix://").unwrap_or(h)));
        let Some((socket, answer)) = socket.and_then(|s| ping(&s).map(|a| (s, a))) else {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no Podman answers at \
                 RTINSPECT_TEST_PODMAN_HOST={host:?} (tests/run.sh starts one)"
            );
            eprintln!("skipped: no Podman (set RTINSPECT_TEST_PODMAN_HOST, or use tests/run.sh)");
            return None;
        };
        assert!(
            header(&answer, "libpod-api-version").is_some(),
            "RTINSPECT_TEST_PODMAN_HOST={host:?} answers, but not as Podman:\n{answer}"
        );
        let live = LivePodman { socket };
        live.ensure_image();
        Some(live)
    })
    .as_ref()
}

impl LivePodman {
    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn client(&self) -> DockerClient {
        DockerClient::new(
            &self.socket,
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    /// The podman CLI as a client of this service, bounded in time.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args([CLI_LIMIT, "podman", "--remote", "--url", &self.host()])
            .args(args);
        c
    }

    fn try_podman(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("timeout and podman run")
    }

    /// Runs the podman CLI; panics on failure.
    fn podman(&self, args: &[&str]) -> String {
        let out = self.try_podman(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn ensure_image(&self) {
        if self
            .try_podman(&["image", "exists", IMAGE])
            .status
            .success()
        {
            return;
        }
        let tar = busybox_rootfs_tar(&["sh", "sleep", "true", "false", "test", "touch"]);
        let mut import = self
            .command(&["import", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        import.stdin.take().unwrap().write_all(&tar).unwrap();
        let out = import.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What Podman's own event log says about one container, for a failure
    /// message.
    fn events_of(&self, id: &str) -> String {
        let filter = format!("container={id}");
        let out = self.try_podman(&[
            "events",
            "--stream=false",
            "--since",
            "5m",
            "--filter",
            &filter,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Containers made by one test, removed (with force) on drop.
struct Pods<'a> {
    live: &'a LivePodman,
    /// The label key this test's records carry, unique per test.
    label: String,
    ids: Vec<String>,
}

impl<'a> Pods<'a> {
    fn new(live: &'a LivePodman, test: &str) -> Self {
        Pods {
            live,
            label: format!("rtinspect-test.podman-{test}.{}", std::process::id()),
            ids: Vec::new(),
        }
    }

    /// `podman run -d` with the game label, no network and `extra` flags,
    /// then the command; returns the full id.
    fn run(&mut self, game: &str, extra: &[&str], cmd: &[&str]) -> String {
        let label = format!("{}={game}", self.label);
        let mut args = vec!["run", "-d", "--network", "none", "--label", &label];
        // Podman asks for RLIMIT_NOFILE 1048576 by default, above the hard
        // limit of these sandboxes: without these, runc fails with "error
        // setting rlimit type 7: operation not permitted".
        args.extend_from_slice(&[
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ]);
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let id = self.live.podman(&args);
        self.ids.push(id.clone());
        id
    }

    /// A container that ran `true` and has exited; returns its full id.
    fn exited(&mut self, game: &str) -> String {
        let id = self.run(game, &[], &["true"]);
        wait_until(Duration::from_secs(30), "exited", || {
            self.inspect(&id, "{{.State.Status}}") == "exited"
        });
        id
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        self.live.podman(&["inspect", "--format", format, id])
    }
}

impl Drop for Pods<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut args = vec!["rm", "--force", "--ignore", "--time", "0"];
        args.extend(self.ids.iter().map(String::as_str));
        // Podman 4.3 refuses to remove a container caught stopping ("could
        // not be stopped: … container state improper: stopped"); it is
        // stopped a moment later.
        for _ in 0..5 {
            if self.live.try_podman(&args).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// How long after the container stopped (Podman's `State.FinishedAt`) an
/// envelope was made (its `occurred_at`).
fn detection_latency(c: &Pods<'_>, id: &str, envelope: &str) -> Duration {
    let v: serde_json::Value = serde_json::from_str(envelope).unwrap();
    let occurred = unix_nanos(v["occurred_at"].as_str().unwrap());
    let finished: i128 = c
        .inspect(id, "{{.State.FinishedAt.UnixNano}}")
        .parse()
        .unwrap();
    Duration::from_nanos(u64::try_from(occurred - finished).expect("the event follows the exit"))
}

/// `rtinspect run` at an interval of an hour with the events stream on:
/// after the first tick, only an event can make it look again.
fn run_an_hour(live: &LivePodman, label: &str) -> (Daemon, StderrLines, StderrLines) {
    Daemon::watched(
        bin()
            .args([
                "run",
                "--interval",
                "1h",
                "--events",
                "on",
                "--label",
                label,
            ])
            .arg("--docker-host")
            .arg(live.host())
            .env("RUST_LOG", "rtinspect=debug"),
    )
}

/// How many ticks ran (with debug on, each logs a line): a (re)subscription
/// to the events stream is followed by a full tick, which could find a
/// failure without any event.
fn ticks(err: &StderrLines) -> usize {
    err.lines().iter().filter(|l| l.contains(" tick: ")).count()
}

/// SIGTERM, and a clean exit.
fn stop(mut daemon: Daemon, err: &StderrLines) {
    let child = daemon.0.take().unwrap();
    send_signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", err.text());
}

#[test]
fn podman_answers_api_1_41_and_the_client_negotiates_it() {
    let Some(live) = live_podman() else { return };
    let answer = ping(&live.socket).expect("Podman answers /_ping");
    let daemon = header(&answer, "api-version")
        .and_then(ApiVersion::parse)
        .unwrap_or_else(|| panic!("no Api-Version in {answer}"));
    let libpod = header(&answer, "libpod-api-version").unwrap_or_default();
    let client = live.client();
    let negotiated = client.negotiate().unwrap();
    eprintln!("Podman {libpod}: Docker API {daemon}, negotiated {negotiated}");
    assert_eq!(negotiated, daemon.min(MAX_API));
    if libpod.starts_with("4.3.") {
        assert_eq!(
            negotiated,
            ApiVersion {
                major: 1,
                minor: 41
            }
        );
    }
    // And requests under that version are answered.
    let mut c = Pods::new(live, "version");
    let id = c.run("g-version", &[], &["sleep", "1000"]);
    let seen = client.inspect(&id).unwrap();
    assert_eq!(
        (
            seen.container_id.as_str(),
            seen.status.as_str(),
            seen.restart_count,
            seen.health.as_str()
        ),
        (id.as_str(), "running", 0, "")
    );
}

#[test]
fn label_mode_once_reports_the_exited_container_and_not_the_running_one() {
    let Some(live) = live_podman() else { return };
    let mut c = Pods::new(live, "once");
    let running = c.run("g-running", &[], &["sleep", "1000"]);
    let exited = c.exited("g-exited");

    // rtinspect's own client reads both records from Podman's container list.
    let mut listed: Vec<(String, String)> = live
        .client()
        .list_labelled(&c.label)
        .unwrap()
        .into_iter()
        .map(|l| (l.game_id, l.id))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("g-exited".to_owned(), exited.clone()),
            ("g-running".to_owned(), running)
        ]
    );

    let out = bin()
        .args(["once", "--label", &c.label, "--docker-host", &live.host()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = events(&out);
    assert_eq!(events.len(), 1, "{events:?}\n{stderr}");
    let e = &events[0];
    assert_eq!(e["game_id"], "g-exited");
    assert_eq!(e["container_id"], exited.as_str());
    assert_eq!(e["event_type"], "inspect_unhealthy");
    assert_eq!(
        e["details"],
        serde_json::json!({"restart_count": 0, "state": "exited", "health": ""})
    );
    assert!(
        stderr.contains("tick: 2 records, 1 events, 0 missing, 0 errors"),
        "{stderr}"
    );
}

#[test]
fn events_report_a_container_that_exits_by_itself_after_the_first_tick() {
    let Some(live) = live_podman() else { return };
    let mut c = Pods::new(live, "exits");
    // Runs until the test drops /go into it, then exits 3 by itself: no stop
    // or kill through the API, and no race with the first tick. The second
    // of grace lets the exec that drops /go end first (Podman fails an exec
    // whose container stops under it: "no such exec session").
    let exits = c.run(
        "g-exits",
        &[],
        &[
            "sh",
            "-c",
            "while [ ! -e /go ]; do sleep 0.1; done; sleep 1; exit 3",
        ],
    );
    let _steady = c.run("g-steady", &[], &["sleep", "1000"]);
    let (child, out, err) = run_an_hour(live, &c.label);
    wait_until(Duration::from_secs(15), "the first tick", || {
        err.text().contains("tick: 2 records, 0 events")
    });

    live.podman(&["exec", &exits, "touch", "/go"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while printed(&out).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no event within 19 s of the container's exit, at an interval of an hour: \
             the events stream did not bring its death.\nPodman's own log of it:\n{}\
             rtinspect's log:\n{}",
            live.events_of(&exits),
            err.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(printed(&out), vec![tuple("g-exits", "exited", 0, "")]);
    assert_eq!(printed_container_ids(&out), vec![exits.clone()]);
    let latency = detection_latency(&c, &exits, &out.lines()[0]);
    eprintln!("container exit to the event (Podman): {latency:?}");
    // Podman 4.3 records `died` from a cleanup process it spawns, and its
    // events API polls a file: seconds on a loaded machine, never an hour.
    assert!(latency < Duration::from_secs(15), "{latency:?}");
    assert!(
        err.text().contains("Docker event: die"),
        "an event, not a tick, found it:\n{}",
        err.text()
    );
    assert_eq!(ticks(&err), 1, "an event, not a tick: {}", err.text());
    // Nothing more: the steady one is fine, and the interval is an hour.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(printed(&out).len(), 1, "{:?}", printed(&out));
    stop(child, &err);
}

#[test]
fn events_report_a_container_turned_unhealthy_from_podmans_bare_health_status() {
    let Some(live) = live_podman() else { return };
    let mut c = Pods::new(live, "sick");
    let sick = c.run(
        "g-sick",
        &[
            "--health-cmd",
            "test ! -e /sick",
            "--health-interval",
            "1h",
            "--health-retries",
            "1",
        ],
        &["sleep", "1000"],
    );
    let probe = |expected: &str| {
        let out = live.try_podman(&["healthcheck", "run", &sick]);
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        // `podman healthcheck run` prints nothing and exits 0 when healthy,
        // prints "unhealthy" and exits 1 when not.
        assert_eq!(
            (said.as_str(), out.status.success()),
            (expected, expected.is_empty()),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    probe("");
    assert_eq!(c.inspect(&sick, "{{.State.Health.Status}}"), "healthy");

    let (child, out, err) = run_an_hour(live, &c.label);
    wait_until(Duration::from_secs(15), "the first tick", || {
        err.text().contains("tick: 1 records, 0 events")
    });
    live.podman(&["exec", &sick, "touch", "/sick"]);
    // Podman 4.3 writes a probe's health_status event before it records the
    // probe's verdict (fixed upstream in July 2023, containers/podman#19245):
    // the inspect the event prompts may still read "healthy", and the next
    // probe's event reads "unhealthy" — one health interval later, here one
    // more run.
    let mut probes = 0;
    while printed(&out).is_empty() {
        assert!(
            probes < 5,
            "no event after {probes} failing probes, at an interval of an hour.\n\
             Podman's own log of it:\n{}rtinspect's log:\n{}",
            live.events_of(&sick),
            err.text()
        );
        probe("unhealthy");
        probes += 1;
        let until = Instant::now() + Duration::from_secs(3);
        while printed(&out).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("failing probes until the event (Podman): {probes}");
    if probes > 1 {
        eprintln!("{}", err.text());
    }
    assert_eq!(
        printed(&out),
        vec![tuple("g-sick", "running", 0, "unhealthy")]
    );
    assert_eq!(printed_container_ids(&out), vec![sick.clone()]);
    // Podman's action is bare: no ": unhealthy" suffix to go by.
    let log = err.text();
    assert!(log.contains("Docker event: health_status"), "{log}");
    assert!(!log.contains("Docker event: health_status:"), "{log}");
    assert_eq!(ticks(&err), 1, "an event, not a tick: {log}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(printed(&out).len(), 1, "{:?}", printed(&out));
    stop(child, &err);
}

#[test]
fn events_report_a_restart_by_podmans_restart_policy() {
    let Some(live) = live_podman() else { return };
    let mut c = Pods::new(live, "restart");
    // Waits for /go, then exits 1 once (a second later, so that the exec
    // dropping /go ends first); restarted by the policy, it stays up.
    let flaky = c.run(
        "g-flaky",
        &["--restart", "always"],
        &[
            "sh",
            "-c",
            "[ -e /restarted ] && exec sleep 1000; \
             while [ ! -e /go ]; do sleep 0.1; done; touch /restarted; sleep 1; exit 1",
        ],
    );
    let (child, out, err) = run_an_hour(live, &c.label);
    wait_until(Duration::from_secs(15), "the first tick", || {
        err.text().contains("tick: 1 records, 0 events")
    });
    live.podman(&["exec", &flaky, "touch", "/go"]);
    wait_until(Duration::from_secs(10), "the event", || {
        !printed(&out).is_empty()
    });
    // Podman sends `restart` and `start` for it, each a nudge: the first
    // inspect sees the new count, the next one nothing new.
    assert_eq!(
        c.inspect(&flaky, "{{.RestartCount}} {{.State.Status}}"),
        "1 running"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(printed(&out), vec![tuple("g-flaky", "running", 1, "")]);
    assert_eq!(ticks(&err), 1, "an event, not a tick: {}", err.text());
    stop(child, &err);
}
