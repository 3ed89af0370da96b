//! Shared fixtures: a fake Docker engine on a Unix socket, the real dockerd
//! with a from-scratch busybox image, and helpers to run the binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
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

/// What the fake engine does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON answer with this status.
    Json(u16, String),
    /// These bytes, verbatim, as the whole response.
    Raw(Vec<u8>),
    /// Never answer (until the engine is dropped).
    Hang,
    /// Headers promising `len` bytes, then `sent` of them, then close.
    ResetMidBody { len: usize, sent: usize },
    /// Close the connection without answering.
    Close,
    /// A chunked stream: one chunk per line received, the end of the stream
    /// when every sender is gone (the events endpoint).
    Stream(crossbeam_channel::Receiver<String>),
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// A fake Docker engine: answers `/_ping` with `api_version`, and every other
/// request with the handler's reply. It refuses versioned paths below
/// `min_api`, as Docker 29 does.
pub struct FakeEngine {
    pub socket: PathBuf,
    _dir: TempDir,
    state: Arc<EngineState>,
}

pub struct EngineState {
    pub connections: AtomicUsize,
    pub requests: Mutex<Vec<String>>,
    pub api_version: Mutex<String>,
    pub api_header: Mutex<String>,
    pub min_api: Mutex<Option<(u16, u16)>>,
    /// `/_ping` never answers while set.
    pub ping_hangs: AtomicBool,
    stopped: AtomicBool,
    handler: Mutex<Arc<Handler>>,
    open: Mutex<Vec<UnixStream>>,
}

impl FakeEngine {
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeEngine {
        let dir = TempDir::new("engine");
        let socket = dir.path().join("docker.sock");
        let state = listen(&socket, Arc::new(handler));
        FakeEngine {
            socket,
            _dir: dir,
            state,
        }
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(SeqCst)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn set_api_version(&self, v: &str) {
        *self.state.api_version.lock().unwrap() = v.into();
    }

    pub fn set_api_header_name(&self, name: &str) {
        *self.state.api_header.lock().unwrap() = name.into();
    }

    /// Behave like Docker 29: refuse versioned paths below `min`.
    pub fn set_min_api(&self, min: Option<(u16, u16)>) {
        *self.state.min_api.lock().unwrap() = min;
    }

    /// Makes `/_ping` hang (a dockerd that accepts but answers nothing).
    pub fn set_ping_hangs(&self, hangs: bool) {
        self.state.ping_hangs.store(hangs, SeqCst);
    }

    pub fn set_handler(&self, handler: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        *self.state.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Stops this engine (closing its connections) and starts a new one on the
    /// same socket path, as a restarted dockerd would.
    pub fn restart(&mut self) {
        stop(&self.state, &self.socket);
        let handler = self.state.handler.lock().unwrap().clone();
        let _ = std::fs::remove_file(&self.socket);
        self.state = listen(&self.socket, handler);
    }
}

fn listen(socket: &Path, handler: Arc<Handler>) -> Arc<EngineState> {
    let listener = UnixListener::bind(socket).unwrap();
    let state = Arc::new(EngineState {
        connections: AtomicUsize::new(0),
        requests: Mutex::new(Vec::new()),
        api_version: Mutex::new("1.41".into()),
        api_header: Mutex::new("Api-Version".into()),
        min_api: Mutex::new(None),
        ping_hangs: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        handler: Mutex::new(handler),
        open: Mutex::new(Vec::new()),
    });
    let s = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if s.stopped.load(SeqCst) {
                break;
            }
            let Ok(conn) = conn else { break };
            s.connections.fetch_add(1, SeqCst);
            if let Ok(clone) = conn.try_clone() {
                s.open.lock().unwrap().push(clone);
            }
            let s = s.clone();
            std::thread::spawn(move || serve(conn, &s));
        }
    });
    state
}

fn stop(state: &EngineState, socket: &Path) {
    state.stopped.store(true, SeqCst);
    for conn in state.open.lock().unwrap().drain(..) {
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }
    // Wake the accept loop so it sees the flag.
    let _ = UnixStream::connect(socket);
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        stop(&self.state, &self.socket);
    }
}

fn parse_version(path: &str) -> Option<(u16, u16)> {
    let rest = path.strip_prefix("/v")?;
    let (v, _) = rest.split_once('/')?;
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn serve(conn: UnixStream, state: &EngineState) {
    let handle = conn.try_clone().unwrap();
    serve_requests(conn, state);
    // A clone is kept for stop(); shut down so the peer sees the close.
    let _ = handle.shutdown(std::net::Shutdown::Both);
}

fn serve_requests(conn: UnixStream, state: &EngineState) {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        // Read one request head.
        let mut request_line = String::new();
        loop {
            if state.stopped.load(SeqCst) {
                return;
            }
            match reader.read_line(&mut request_line) {
                Ok(0) => return,
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return,
            }
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) => return,
                Ok(_) if header == "\r\n" => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if state.stopped.load(SeqCst) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        state.requests.lock().unwrap().push(path.clone());

        let reply = if path == "/_ping" && state.ping_hangs.load(SeqCst) {
            Reply::Hang
        } else if path == "/_ping" {
            let v = state.api_version.lock().unwrap().clone();
            let h = state.api_header.lock().unwrap().clone();
            Reply::Raw(
                format!("HTTP/1.1 200 OK\r\n{h}: {v}\r\nContent-Length: 2\r\n\r\nOK").into_bytes(),
            )
        } else if let (Some(min), Some(asked)) =
            (*state.min_api.lock().unwrap(), parse_version(&path))
        {
            if asked < min {
                Reply::Json(
                    400,
                    format!(
                        r#"{{"message":"client version {}.{} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version"}}"#,
                        asked.0, asked.1, min.0, min.1
                    ),
                )
            } else {
                let handler = state.handler.lock().unwrap().clone();
                handler(&path)
            }
        } else if parse_version(&path).is_none() {
            Reply::Json(
                400,
                r#"{"message":"unversioned path refused by the fake engine"}"#.into(),
            )
        } else {
            let handler = state.handler.lock().unwrap().clone();
            handler(&path)
        };

        let v = state.api_version.lock().unwrap().clone();
        match reply {
            Reply::Json(status, body) => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\nApi-Version: {v}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).is_err()
                    || conn.write_all(body.as_bytes()).is_err()
                {
                    return;
                }
            }
            Reply::Raw(bytes) => {
                if conn.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::Hang => {
                while !state.stopped.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Reply::ResetMidBody { len, sent } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&vec![b' '; sent]);
                return;
            }
            Reply::Close => return,
            Reply::Stream(lines) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nApi-Version: {v}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                loop {
                    if state.stopped.load(SeqCst) {
                        return;
                    }
                    match lines.recv_timeout(Duration::from_millis(50)) {
                        Ok(line) => {
                            let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
                            if conn.write_all(chunk.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                            let _ = conn.write_all(b"0\r\n\r\n");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// A realistic inspect body for the fake engine.
pub fn inspect_body(id: &str, restarts: u64, status: &str, health: Option<&str>) -> String {
    let health = health
        .map(|h| format!(r#","Health":{{"Status":"{h}","FailingStreak":0,"Log":[]}}"#))
        .unwrap_or_default();
    let padding = "x".repeat(3000);
    format!(
        r#"{{"Id":"{id}","Created":"2026-11-26T21:00:00Z","Path":"sleep","Args":["1000"],
        "State":{{"Status":"{status}","Running":{},"Paused":false,"Restarting":false,"OOMKilled":false,
        "Dead":false,"Pid":1,"ExitCode":0,"Error":"","StartedAt":"2026-11-26T21:00:00Z"{health}}},
        "Image":"sha256:{padding}","Name":"/game","RestartCount":{restarts},"Driver":"overlay2",
        "Config":{{"Labels":{{"rtinspect.game-id":"g"}}}}}}"#,
        status == "running"
    )
}

/// A `/containers/json` body listing one container per `(n, game)`: id
/// `hex_id(n)`, created at 1, labelled `rtinspect.game-id=game`.
pub fn labelled_list<G: AsRef<str>>(games: impl IntoIterator<Item = (u32, G)>) -> String {
    let list: Vec<String> = games
        .into_iter()
        .map(|(n, game)| {
            format!(
                r#"{{"Id":"{}","Created":1,"Labels":{{"rtinspect.game-id":"{}"}}}}"#,
                hex_id(n),
                game.as_ref()
            )
        })
        .collect();
    format!("[{}]", list.join(","))
}

/// A fake engine's answer for one container, `hex_id(1)`, labelled game `g`
/// and in state `status`: the list for `/containers/json?`, its inspect body
/// for anything else.
pub fn one_labelled_reply(path: &str, status: &str) -> Reply {
    if path.contains("/containers/json?") {
        Reply::Json(200, labelled_list([(1, "g")]))
    } else {
        Reply::Json(200, inspect_body(&hex_id(1), 0, status, None))
    }
}

/// A 64-hex container id made from a small number.
pub fn hex_id(n: u32) -> String {
    format!("{n:064x}")
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
        .env("RUST_LOG", "info");
    c
}

/// Parses stdout as one JSON envelope per line.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
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

/// Whether the environment demands the live services (CI sets it).
pub fn live_required() -> bool {
    std::env::var_os("RTINSPECT_TEST_REQUIRE_LIVE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The real dockerd the tests use.
pub struct LiveDocker {
    pub socket: PathBuf,
}

/// The image every live test runs: static busybox, imported from scratch.
pub const IMAGE: &str = "rtinspect-test/busybox:1";

/// The live dockerd, or `None` (with a note) when none answers and the
/// environment does not demand one.
/// Whether a dockerd answers `/_ping` on `socket` within 5 s.
pub fn docker_answers(socket: &Path) -> bool {
    UnixStream::connect(socket)
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf.starts_with("HTTP/1.") && buf.contains(" 200 "))
        })
        .unwrap_or(false)
}

pub fn live_docker() -> Option<&'static LiveDocker> {
    static LIVE: OnceLock<Option<LiveDocker>> = OnceLock::new();
    let live = LIVE.get_or_init(|| {
        let host = std::env::var("RTINSPECT_TEST_DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let socket = PathBuf::from(host.strip_prefix("unix://").unwrap_or(&host));
        if !docker_answers(&socket) {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no dockerd answers at {}",
                socket.display()
            );
            eprintln!("no dockerd answers at {}", socket.display());
            return None;
        }
        let live = LiveDocker { socket };
        live.ensure_image();
        Some(live)
    });
    if live.is_none() {
        skipped("no dockerd");
    }
    live.as_ref()
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

impl LiveDocker {
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Runs the docker CLI against this daemon; panics on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.docker_host())
            .args(args)
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn ensure_image(&self) {
        let present = Command::new("docker")
            .args(["-H", &self.docker_host(), "image", "inspect", IMAGE])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return;
        }
        let root = TempDir::new("image");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("static busybox at /bin/busybox (Debian's busybox-static)");
        for applet in ["sh", "sleep", "true", "false", "kill"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let mut import = Command::new("docker")
            .args(["-H", &self.docker_host(), "import", "-", IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(import.wait().unwrap().success(), "docker import failed");
    }
}

/// Containers made by one test, removed (with force) on drop.
pub struct Containers<'a> {
    pub live: &'a LiveDocker,
    /// The label key this test's records carry, unique per test.
    pub label: String,
    ids: Vec<String>,
}

impl<'a> Containers<'a> {
    /// `rtinspect once` over this test's label on the live dockerd, with `extra`.
    pub fn once(&self, extra: &[&str]) -> Output {
        bin()
            .args(["once", "--label", &self.label])
            .args(["--docker-host", &self.live.docker_host()])
            .args(extra)
            .output()
            .unwrap()
    }

    pub fn new(live: &'a LiveDocker, test: &str) -> Self {
        Containers {
            live,
            label: format!("rtinspect-test.{test}.{}", std::process::id()),
            ids: Vec::new(),
        }
    }

    /// `docker run -d --network none` with the game label and `extra` flags,
    /// then the command; returns the full id.
    pub fn run(&mut self, game: &str, extra: &[&str], cmd: &[&str]) -> String {
        let label = format!("{}={game}", self.label);
        let mut args = vec!["run", "-d", "--network", "none", "--label", &label];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let id = self.live.docker(&args);
        self.ids.push(id.clone());
        id
    }

    /// A container that ran `true` and has exited; returns its full id.
    pub fn exited(&mut self, game: &str) -> String {
        let id = self.run(game, &[], &["true"]);
        wait_until(Duration::from_secs(30), "exited", || {
            self.inspect(&id, "{{.State.Status}}") == "exited"
        });
        id
    }

    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.live.docker(&["inspect", "-f", format, id])
    }

    pub fn remove(&mut self, id: &str) {
        self.live.docker(&["rm", "-f", id]);
        self.ids.retain(|i| i != id);
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut args = vec![
            "-H".to_string(),
            self.live.docker_host(),
            "rm".into(),
            "-f".into(),
        ];
        args.extend(self.ids.iter().cloned());
        let _ = Command::new("docker").args(&args).output();
    }
}

/// Docker flags for a healthcheck that fails at once: `unhealthy` in ~2 s.
pub const UNHEALTHY: &[&str] = &[
    "--health-cmd",
    "false",
    "--health-interval",
    "1s",
    "--health-retries",
    "1",
];

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

/// Whether iptables can add rules here (root, a kernel that has them).
pub fn iptables_usable() -> bool {
    let ok = Command::new("iptables")
        .args(["-w", "-L", "INPUT", "-n"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!live_required(), "iptables is not usable here");
        skipped("iptables is not usable here: root and iptables needed");
    }
    ok
}

/// Drops every packet to and from a loopback TCP port while it lives: a
/// peer that vanished without a word (no RST, no FIN).
pub struct Blackhole(u16);

impl Blackhole {
    pub fn port(port: u16) -> Blackhole {
        for dir in ["--dport", "--sport"] {
            let p = port.to_string();
            let status = Command::new("iptables")
                .args([
                    "-w", "-I", "INPUT", "-i", "lo", "-p", "tcp", dir, &p, "-j", "DROP",
                ])
                .status()
                .unwrap();
            assert!(status.success(), "iptables -I");
        }
        Blackhole(port)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for dir in ["--dport", "--sport"] {
            let p = self.0.to_string();
            let _ = Command::new("iptables")
                .args([
                    "-w", "-D", "INPUT", "-i", "lo", "-p", "tcp", dir, &p, "-j", "DROP",
                ])
                .status();
        }
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

/// The PostgreSQL the tests use: `RTINSPECT_TEST_DATABASE_URL` (tests/run.sh
/// starts a throwaway cluster and sets it), or `None` with a note when unset
/// and not demanded.
pub fn live_pg() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let url = std::env::var("RTINSPECT_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let reachable = url
            .as_deref()
            .is_some_and(|u| postgres::Client::connect(u, postgres::NoTls).is_ok());
        if !reachable {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no PostgreSQL answers at RTINSPECT_TEST_DATABASE_URL={url:?}"
            );
            eprintln!("no PostgreSQL: set RTINSPECT_TEST_DATABASE_URL, or use tests/run.sh");
            return None;
        }
        url
    });
    if url.is_none() {
        skipped("no PostgreSQL");
    }
    url.as_deref()
}

/// A schema of its own for one test, dropped with everything in it on drop.
pub struct TestSchema {
    pub url: String,
    pub name: String,
    pub client: postgres::Client,
}

impl TestSchema {
    pub fn new(url: &str, test: &str) -> TestSchema {
        let name = format!("t_{test}_{}", std::process::id());
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap();
        TestSchema {
            url: url.to_owned(),
            name,
            client,
        }
    }

    pub fn records(&self) -> String {
        format!("{}.runtime_records", self.name)
    }

    pub fn events(&self) -> String {
        format!("{}.runtime_health_events", self.name)
    }

    /// A notify channel of this test's own.
    pub fn channel(&self) -> String {
        format!("ch_{}", self.name)
    }

    /// The common flags: database, this schema's tables, this channel.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.url.clone(),
            "--records-table".into(),
            self.records(),
            "--events-table".into(),
            self.events(),
            "--notify-channel".into(),
            self.channel(),
        ]
    }

    pub fn migrate(&self) {
        let out = bin().arg("migrate").args(self.args()).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn insert_record(&mut self, game: &str, status: &str, container: &str) {
        self.client
            .execute(
                &format!(
                    "INSERT INTO {} (game_id, status, current_container_id) VALUES ($1, $2, $3)",
                    self.records()
                ),
                &[&game, &status, &container],
            )
            .unwrap();
    }

    /// The number of events rows matching the SQL condition `filter`.
    pub fn count_events(&mut self, filter: &str) -> i64 {
        self.client
            .query_one(
                &format!("SELECT count(*) FROM {} WHERE {filter}", self.events()),
                &[],
            )
            .unwrap()
            .get(0)
    }

    /// (event_id, game_id, container_id, details as JSON text), oldest first.
    pub fn event_rows(&mut self) -> Vec<(String, String, String, serde_json::Value)> {
        self.client
            .query(
                &format!(
                    "SELECT event_id::text, game_id, container_id, details::text FROM {} ORDER BY occurred_at",
                    self.events()
                ),
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| {
                let details: String = r.get(3);
                (r.get(0), r.get(1), r.get(2), serde_json::from_str(&details).unwrap())
            })
            .collect()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A PostgreSQL cluster of one test's own, for stopping and starting it.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Extra server options (TLS).
    opts: String,
}

impl PgCluster {
    /// Starts a fresh cluster (needs root, the `postgres` user and the server
    /// binaries); `None` with a note when they are missing and not demanded.
    pub fn start() -> Option<PgCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(!live_required(), "PostgreSQL server binaries are missing");
            skipped("no PostgreSQL server binaries");
            return None;
        };
        let dir = TempDir::new("pgcluster");
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        // A port free right now: tests that serve TCP run side by side.
        let port = free_addr()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap();
        let cluster = PgCluster {
            dir,
            bin,
            port,
            opts: String::new(),
        };
        cluster.as_postgres(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]);
        cluster.up();
        Some(cluster)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn as_postgres(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    pub fn up(&self) {
        let opts = if self.opts.is_empty() {
            format!(
                "-k {} -p {} -c listen_addresses=",
                self.dir.path().display(),
                self.port
            )
        } else {
            format!(
                "-k {} -p {} {}",
                self.dir.path().display(),
                self.port,
                self.opts
            )
        };
        let log = format!("{}/server.log", self.dir.path().display());
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-o",
            &opts,
            "start",
        ]);
    }

    /// Restarts the cluster as a TLS-only server on 127.0.0.1: a certificate
    /// for `localhost` only, signed by a CA of its own (returned as a PEM
    /// path); plain TCP connections are rejected by pg_hba.conf.
    pub fn serve_tls_only(&mut self) -> PathBuf {
        self.down();
        let dir = self.dir.path();
        let sh = |cmd: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rtinspect-test-ca \
            -keyout ca.key -out ca.pem 2>/dev/null",
        );
        sh(
            "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key \
            -out server.csr 2>/dev/null",
        );
        sh("printf 'subjectAltName=DNS:localhost\\n' > san.ext && \
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out server.crt 2>/dev/null");
        sh("chown postgres server.key server.crt && chmod 600 server.key");
        let data = self.data();
        std::fs::write(
            format!("{data}/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        self.opts = format!(
            "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
            d = dir.display()
        );
        self.up();
        dir.join("ca.pem")
    }

    /// A TCP URL to the TLS server, by `host` (localhost or 127.0.0.1).
    pub fn tcp_url(&self, host: &str, sslmode: &str) -> String {
        format!(
            "host={host} port={} user=postgres dbname=postgres sslmode={sslmode}",
            self.port
        )
    }

    pub fn down(&self) {
        self.as_postgres(&["pg_ctl", "-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Restarts the cluster listening on 127.0.0.1 too; returns a TCP URL.
    pub fn serve_tcp(&mut self) -> String {
        self.down();
        self.opts = "-c listen_addresses=127.0.0.1".into();
        self.up();
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the postmaster and every backend.
    pub fn freeze(&self, frozen: bool) {
        let pid_file = std::fs::read_to_string(format!("{}/postmaster.pid", self.data())).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: the comm may hold spaces, so cut at ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").arg(sig).args(&pids).status().unwrap();
        assert!(status.success(), "kill {sig} {pids:?}");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A loopback address with a port free right now.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `GET path` over HTTP/1.0; (status, body), or `None` when nothing listens.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The value of one sample line (`name{labels} value`) in an exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// What the test webhook answers to one request.
#[derive(Clone, Debug)]
pub enum HookReply {
    /// This status, these extra headers, this body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Never answer: hold the connection until the server is dropped.
    Hang,
}

impl HookReply {
    /// `200 ok`.
    pub fn ok() -> HookReply {
        HookReply::Status(200, Vec::new(), "ok".into())
    }
}

/// One request the test webhook read.
#[derive(Clone, Debug)]
pub struct HookRequest {
    /// When it was read whole.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{:?}: {e}", self.body))
    }
}

type HookHandler = dyn Fn(usize, &HookRequest) -> HookReply + Send + Sync;

struct HookState {
    requests: Mutex<Vec<HookRequest>>,
    handler: Mutex<Arc<HookHandler>>,
    stopped: AtomicBool,
    connections: AtomicUsize,
    open: Mutex<Vec<std::net::TcpStream>>,
}

/// A webhook on 127.0.0.1, plain or TLS, answering each request with its
/// handler's reply (given the request's number, from 0), one thread per
/// connection, connections kept alive.
pub struct HookServer {
    pub addr: std::net::SocketAddr,
    tls: bool,
    state: Arc<HookState>,
}

impl HookServer {
    /// A plain HTTP webhook.
    pub fn start(
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) -> Self {
        Self::listen(None, Arc::new(handler))
    }

    /// An HTTPS webhook with the server certificate of `ca`.
    pub fn start_tls(
        ca: &TestCa,
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) -> Self {
        Self::listen(Some(ca.server_config()), Arc::new(handler))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<HookHandler>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(HookState {
            requests: Mutex::new(Vec::new()),
            handler: Mutex::new(handler),
            stopped: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let is_tls = tls.is_some();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopped.load(SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { break };
                s.connections.fetch_add(1, SeqCst);
                if let Ok(clone) = conn.try_clone() {
                    s.open.lock().unwrap().push(clone);
                }
                let s = s.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve_hook(conn, &s),
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve_hook(rustls::StreamOwned::new(session, conn), &s)
                    }
                });
            }
        });
        HookServer {
            addr,
            tls: is_tls,
            state,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<HookRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(SeqCst)
    }

    pub fn set_handler(
        &self,
        handler: impl Fn(usize, &HookRequest) -> HookReply + Send + Sync + 'static,
    ) {
        *self.state.handler.lock().unwrap() = Arc::new(handler);
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.state.stopped.store(true, SeqCst);
        for conn in self.state.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

fn serve_hook(stream: impl Read + Write, state: &HookState) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = HookRequest {
            at: Instant::now(),
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        let n = {
            let mut requests = state.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        let handler = state.handler.lock().unwrap().clone();
        match handler(n, &request) {
            HookReply::Hang => {
                while !state.stopped.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            HookReply::Status(status, extra, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (name, value) in extra {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                // One write: a second small one would wait for the client's
                // delayed ACK (Nagle), 40 ms a request.
                head.push_str(&body);
                let out = reader.get_mut();
                if out.write_all(head.as_bytes()).is_err() || out.flush().is_err() {
                    return;
                }
            }
        }
    }
}

/// A CA made with openssl for one test, a server certificate it signed for
/// 127.0.0.1 and localhost, and a second CA that signed nothing.
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = TempDir::new("ca");
        let sh = |cmd: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            sh(&format!(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rtinspect-test-{ca} \
                 -keyout {ca}.key -out {ca}.pem 2>/dev/null"
            ));
        }
        sh(
            "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key \
             -out server.csr 2>/dev/null",
        );
        sh(
            "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && \
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out server.crt 2>/dev/null",
        );
        TestCa { dir }
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM of a CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("server.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Arc::new(config)
    }
}

/// The number of threads of a process, from /proc.
pub fn thread_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}

impl Containers<'_> {
    /// As [`Containers::run`], but `None` when docker refuses (a flag this
    /// kernel does not support, say).
    pub fn try_run(&mut self, game: &str, extra: &[&str], cmd: &[&str]) -> Option<String> {
        let label = format!("{}={game}", self.label);
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.live.docker_host())
            .args(["run", "-d", "--network", "none", "--label", &label])
            .args(extra)
            .arg(IMAGE)
            .args(cmd)
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !id.is_empty() {
            self.ids.push(id.clone());
        }
        if !out.status.success() {
            eprintln!(
                "docker run {extra:?} refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(id)
    }
}

/// A tar of a root filesystem made of Debian's static busybox and a symlink
/// per applet, for `docker import` or `podman import` (no registry here).
pub fn busybox_rootfs_tar(applets: &[&str]) -> Vec<u8> {
    let root = TempDir::new("rootfs");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("static busybox at /bin/busybox (Debian's busybox-static)");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "tar of the busybox root");
    tar.stdout
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

/// A PostgreSQL cluster of its own with a migrated schema holding one
/// record, game `g-stopped`, `running` in the database while its container on
/// the live dockerd has exited: every tick of a daemon over it emits one
/// event. The schema, the container and the cluster go with it.
pub struct StoppedGame {
    pub live: &'static LiveDocker,
    pub schema: TestSchema,
    pub containers: Containers<'static>,
    /// The exited container's id.
    pub stopped: String,
    /// The URL the schema was made through.
    pub url: String,
    // Last: the schema is dropped through it.
    pub cluster: PgCluster,
}

impl StoppedGame {
    /// The fixture, `test` naming the schema and the containers' label;
    /// `None` (with the note) when dockerd or PostgreSQL is absent and not
    /// demanded.
    pub fn start(test: &str) -> Option<StoppedGame> {
        Self::start_over(test, |cluster| cluster.url())
    }

    /// The same, reaching the cluster through the URL `url` returns.
    pub fn start_over(
        test: &str,
        url: impl FnOnce(&mut PgCluster) -> String,
    ) -> Option<StoppedGame> {
        let live = live_docker()?;
        let mut cluster = PgCluster::start()?;
        let url = url(&mut cluster);
        let mut schema = TestSchema::new(&url, test);
        schema.migrate();
        let mut containers = Containers::new(live, test);
        let stopped = containers.exited("g-stopped");
        schema.insert_record("g-stopped", "running", &stopped);
        Some(StoppedGame {
            live,
            schema,
            containers,
            stopped,
            url,
            cluster,
        })
    }

    /// `rtinspect run` over the schema and the live dockerd at `interval`,
    /// stdout discarded; add the rest, then [`StoppedGame::spawn`] it.
    pub fn command(&self, interval: &str) -> Command {
        let mut cmd = bin();
        cmd.arg("run")
            .args(self.schema.args())
            .args([
                "--interval",
                interval,
                "--docker-host",
                &self.live.docker_host(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Starts `cmd` and reads its stderr.
    pub fn spawn(cmd: &mut Command) -> (Daemon, StderrLines) {
        let mut child = cmd.spawn().unwrap();
        let stderr = StderrLines::of(&mut child);
        (Daemon(Some(child)), stderr)
    }

    /// The usual daemon: 200 ms ticks, state in `state`, every tick logged
    /// (`RUST_LOG=rtinspect=debug`).
    pub fn run(&self, state: &Path) -> (Daemon, StderrLines) {
        Self::spawn(
            self.command("200ms")
                .arg("--state-dir")
                .arg(state)
                .env("RUST_LOG", "rtinspect=debug"),
        )
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

/// PgBouncer in transaction pooling mode in front of the test PostgreSQL:
/// `RTINSPECT_TEST_PGBOUNCER_URL` (tests/services.sh starts one and sets
/// it), or `None` with a note when unset and not demanded. Its admin console
/// must confirm transaction pooling, so that a session-mode bouncer cannot
/// pass for one.
pub fn live_pgbouncer() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let url = std::env::var("RTINSPECT_TEST_PGBOUNCER_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let mode = url.as_deref().and_then(|u| pgbouncer_setting(u, "pool_mode"));
        if mode.is_none() {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no PgBouncer answers at RTINSPECT_TEST_PGBOUNCER_URL={url:?}"
            );
            eprintln!("no PgBouncer: set RTINSPECT_TEST_PGBOUNCER_URL, or use tests/run.sh");
            return None;
        }
        assert_eq!(mode.as_deref(), Some("transaction"), "PgBouncer's pool_mode");
        url
    });
    if url.is_none() {
        skipped("no PgBouncer");
    }
    url.as_deref()
}

/// A setting of the PgBouncer at `url`, from `SHOW CONFIG` on its admin
/// console (the database `pgbouncer`, simple queries only).
pub fn pgbouncer_setting(url: &str, key: &str) -> Option<String> {
    let admin = url.replace("dbname=postgres", "dbname=pgbouncer");
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
    let messages = client.simple_query("SHOW CONFIG").ok()?;
    messages.into_iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some(key) => {
            row.get(1).map(str::to_owned)
        }
        _ => None,
    })
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
    out.lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
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

impl LiveDocker {
    /// A dockerd the test started itself at `socket`, with [`IMAGE`]
    /// imported into it.
    pub fn own(socket: PathBuf) -> LiveDocker {
        let live = LiveDocker { socket };
        live.ensure_image();
        live
    }
}

/// Sends one line on the events stream a fake engine is serving (the
/// sender its subscription left in `stream`).
pub fn send_on(stream: &Mutex<Option<crossbeam_channel::Sender<String>>>, line: String) {
    stream
        .lock()
        .unwrap()
        .as_ref()
        .expect("subscribed")
        .send(line)
        .unwrap();
}

/// One container event as dockerd streams it, dated now: container `n`
/// (named `game-N`) carrying the game label with `game`, as Docker copies a
/// container's labels into its events.
pub fn container_event_line(n: u32, action: &str, game: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"{}","Attributes":{{"name":"game-{n}","rtinspect.game-id":"{game}"}}}},"time":{},"timeNano":{}}}"#,
        hex_id(n),
        now.as_secs(),
        now.as_nanos()
    )
}

/// The container id of each envelope printed so far.
pub fn printed_container_ids(out: &StderrLines) -> Vec<String> {
    out.lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["container_id"].as_str().unwrap().to_owned()
        })
        .collect()
}
