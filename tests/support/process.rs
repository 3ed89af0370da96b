//! Running the binary and reading what it says: the build under test, a
//! temporary directory, signals, stderr read line by line, waiting for a
//! condition, and the events it printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fresh, empty temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rtinspect-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The built binary, or the one `RTINSPECT_BIN` names (another build of
/// rtinspect, to show what a test catches in it).
pub fn bin() -> Command {
    let program = std::env::var_os("RTINSPECT_BIN")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rtinspect").into());
    let mut c = Command::new(program);
    c.env_remove("RTINSPECT_DATABASE_URL")
        .env_remove("DOCKER_HOST")
        .env_remove("RTINSPECT_SINK")
        .env_remove("RTINSPECT_SINKS")
        .env_remove("RTINSPECT_LABEL")
        .env_remove("RTINSPECT_INTERVAL")
        .env_remove("STATE_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        // `status` and `history` would read the host's service settings.
        .env("RTINSPECT_DEFAULTS_FILE", "")
        .env("RUST_LOG", "info");
    c
}

/// Parses stdout as one JSON envelope per line.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    json_lines(&String::from_utf8(out.stdout.clone()).unwrap())
}

/// Parses `text` as one JSON value per line (stdout, `rejected.jsonl`).
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Waits until `f` holds, polling, or panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a daemon's first tick: its `tick:` line (logged at debug) on
/// `err`.
pub fn first_tick(err: &StderrLines) {
    wait_until(Duration::from_secs(20), "the first tick", || {
        err.text().contains("tick:")
    });
}

/// Whether the environment demands the live services (CI sets it).
pub fn live_required() -> bool {
    std::env::var_os("RTINSPECT_TEST_REQUIRE_LIVE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Says, on stderr, that the running test skipped and why: the test harness
/// names each test's thread after the test. Written to the stream itself, not
/// with `eprintln!`, which the harness captures and shows only on failure.
pub fn skipped(why: &str) {
    let thread = std::thread::current();
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {} ({why})",
        thread.name().unwrap_or("a test")
    );
}

/// Sends `sig` (as `kill` spells it: `-TERM`, `-INT`, `-KILL`) to a child.
pub fn send_signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// The stderr (or stdout) of a running child, read line by line on a thread
/// of its own, each line with the moment it arrived.
pub struct StderrLines(Arc<Mutex<Vec<(Instant, String)>>>);

impl StderrLines {
    /// Takes the child's piped stderr.
    pub fn of(child: &mut std::process::Child) -> StderrLines {
        Self::read(child.stderr.take().expect("stderr is piped"))
    }

    /// Takes the child's piped stdout.
    pub fn stdout_of(child: &mut std::process::Child) -> StderrLines {
        Self::read(child.stdout.take().expect("stdout is piped"))
    }

    fn read(from: impl Read + Send + 'static) -> StderrLines {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        StderrLines(lines)
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The first line containing `text` that arrived after `since`.
    pub fn first_after(&self, since: Instant, text: &str) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(at, l)| *at >= since && l.contains(text))
            .map(|(at, _)| *at)
    }

    /// When the first line containing all of `texts` arrived.
    pub fn first_with_all(&self, texts: &[&str]) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| texts.iter().all(|t| l.contains(t)))
            .map(|(at, _)| *at)
    }

    /// When the last line containing `text` arrived.
    pub fn last_at(&self, text: &str) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, l)| l.contains(text))
            .map(|(at, _)| *at)
    }

    /// How many lines containing `text` arrived from `from` to `to`.
    pub fn count_between(&self, from: Instant, to: Instant, text: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, l)| *at >= from && *at <= to && l.contains(text))
            .count()
    }

    /// Everything so far, one string.
    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap();
        let mut s = String::new();
        for (_, l) in lines.iter() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// SIGTERM, then the child's whole output.
pub fn terminate(child: std::process::Child) -> Output {
    send_signal(&child, "-TERM");
    child.wait_with_output().unwrap()
}

/// Counts events per game id.
pub fn by_game(events: &[serde_json::Value]) -> HashMap<String, Vec<serde_json::Value>> {
    let mut m: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for e in events {
        m.entry(e["game_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(e.clone());
    }
    m
}

/// The number of threads of a process, from /proc.
pub fn thread_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}

/// A running rtinspect, killed should the test fail before stopping it.
pub struct Daemon(pub Option<std::process::Child>);

impl Daemon {
    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// SIGTERM, then its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        send_signal(&child, "-TERM");
        child.wait().unwrap()
    }

    /// Starts `cmd` with its stdout and stderr piped and read:
    /// (the daemon, its stdout, its stderr).
    pub fn watched(cmd: &mut Command) -> (Daemon, StderrLines, StderrLines) {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = StderrLines::stdout_of(&mut child);
        let err = StderrLines::of(&mut child);
        (Daemon(Some(child)), out, err)
    }

    /// Sends `sig` (as `kill` spells it) without waiting.
    pub fn signal(&self, sig: &str) {
        send_signal(self.0.as_ref().expect("running"), sig);
    }

    /// Waits for its exit.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().expect("running").wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time, as `date` reads it.
pub fn unix_nanos(rfc3339: &str) -> i128 {
    let out = Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s%N"])
        .output()
        .unwrap();
    assert!(out.status.success(), "date -d {rfc3339}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// (game, state, restart count, health) of each event printed so far.
pub fn printed(out: &StderrLines) -> Vec<(String, String, u64, String)> {
    json_lines(&out.text())
        .iter()
        .map(|v| {
            (
                v["game_id"].as_str().unwrap().to_owned(),
                v["details"]["state"].as_str().unwrap().to_owned(),
                v["details"]["restart_count"].as_u64().unwrap(),
                v["details"]["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// One row of [`printed`].
pub fn tuple(
    game: &str,
    state: &str,
    restarts: u64,
    health: &str,
) -> (String, String, u64, String) {
    (game.into(), state.into(), restarts, health.into())
}

/// The container id of each envelope printed so far.
pub fn printed_container_ids(out: &StderrLines) -> Vec<String> {
    json_lines(&out.text())
        .iter()
        .map(|v| v["container_id"].as_str().unwrap().to_owned())
        .collect()
}

/// SIGTERM, then how long the exit took and whether it was clean.
pub fn stop_with_sigterm(mut child: std::process::Child) -> (Duration, bool) {
    let start = Instant::now();
    send_signal(&child, "-TERM");
    let status = child.wait().unwrap();
    (start.elapsed(), status.success())
}

/// What the process wrote on stderr, as text.
pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `command` to its end and returns what it said; the test fails,
/// naming it, with its stderr, unless it succeeded.
pub fn succeeded(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
