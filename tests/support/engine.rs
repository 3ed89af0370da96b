//! A fake Docker engine on a Unix socket, for what a real daemon cannot be made
//! to do on demand (hangs, malformed bodies, API refusals), and the bodies it
//! answers with.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

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
    conns: Arc<Connections<UnixStream>>,
}

pub struct EngineState {
    pub requests: Mutex<Vec<String>>,
    pub api_version: Mutex<String>,
    pub api_header: Mutex<String>,
    pub min_api: Mutex<Option<(u16, u16)>>,
    /// `/_ping` never answers while set.
    pub ping_hangs: AtomicBool,
    handler: Mutex<Arc<Handler>>,
}

impl FakeEngine {
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeEngine {
        let dir = TempDir::new("engine");
        let socket = dir.path().join("docker.sock");
        let state = EngineState::new(Arc::new(handler));
        let conns = listen(&socket, &state);
        FakeEngine {
            socket,
            _dir: dir,
            state,
            conns,
        }
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn connections(&self) -> usize {
        self.conns.accepted()
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
        self.stop();
        let handler = self.state.handler.lock().unwrap().clone();
        let _ = std::fs::remove_file(&self.socket);
        self.state = EngineState::new(handler);
        self.conns = listen(&self.socket, &self.state);
    }

    fn stop(&self) {
        self.conns.stop(|| {
            let _ = UnixStream::connect(&self.socket);
        });
    }
}

impl EngineState {
    /// A fresh engine's state: API 1.41, no requests yet.
    fn new(handler: Arc<Handler>) -> Arc<EngineState> {
        Arc::new(EngineState {
            requests: Mutex::new(Vec::new()),
            api_version: Mutex::new("1.41".into()),
            api_header: Mutex::new("Api-Version".into()),
            min_api: Mutex::new(None),
            ping_hangs: AtomicBool::new(false),
            handler: Mutex::new(handler),
        })
    }
}

fn listen(socket: &Path, state: &Arc<EngineState>) -> Arc<Connections<UnixStream>> {
    let listener = UnixListener::bind(socket).unwrap();
    let state = state.clone();
    Connections::accept(
        move || listener.accept().map(|(conn, _)| conn),
        move |conn, conns| serve(conn, &state, conns),
    )
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_version(path: &str) -> Option<(u16, u16)> {
    let rest = path.strip_prefix("/v")?;
    let (v, _) = rest.split_once('/')?;
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn serve(conn: UnixStream, state: &EngineState, conns: &Connections<UnixStream>) {
    let handle = conn.try_clone().unwrap();
    serve_requests(conn, state, conns);
    // A clone is kept for stop(); shut down so the peer sees the close.
    let _ = handle.shutdown(std::net::Shutdown::Both);
}

fn serve_requests(conn: UnixStream, state: &EngineState, conns: &Connections<UnixStream>) {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        // Read one request head.
        let mut request_line = String::new();
        loop {
            if conns.stopped() {
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
                    if conns.stopped() {
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
                while !conns.stopped() {
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
                    if conns.stopped() {
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
    created_list(games.into_iter().map(|(n, game)| (n, game, 1)))
}

/// A `/containers/json` body listing one container per `(n, game,
/// created)`: id `hex_id(n)`, `Created` that second, labelled
/// `rtinspect.game-id=game`.
pub fn created_list<G: AsRef<str>>(containers: impl IntoIterator<Item = (u32, G, i64)>) -> String {
    let list: Vec<String> = containers
        .into_iter()
        .map(|(n, game, created)| {
            format!(
                r#"{{"Id":"{}","Created":{created},"Labels":{{"rtinspect.game-id":"{}"}}}}"#,
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

/// Answers a subscription to the events stream: a new stream, its sender
/// left in `stream` for [`send_on`] (the last stream's dropped, ending it).
pub fn subscribe(stream: &Mutex<Option<crossbeam_channel::Sender<String>>>) -> Reply {
    let (tx, rx) = crossbeam_channel::unbounded();
    *stream.lock().unwrap() = Some(tx);
    Reply::Stream(rx)
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
    event_line(n, action, game, "")
}

/// The same, with `attributes` (JSON members) beside its name and label.
pub fn event_line(n: u32, action: &str, game: &str, attributes: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"{}","Attributes":{{"name":"game-{n}","rtinspect.game-id":"{game}"{attributes}}}}},"time":{},"timeNano":{}}}"#,
        hex_id(n),
        now.as_secs(),
        now.as_nanos()
    )
}

/// An inspect body of a container killed by the OOM killer.
pub fn oom_killed_body(id: &str) -> String {
    format!(
        r#"{{"Id":"{id}","RestartCount":2,"Name":"/game",
        "State":{{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,"Error":"",
        "StartedAt":"2026-11-27T09:42:59.1Z","FinishedAt":"2026-11-27T09:43:00.2Z"}}}}"#
    )
}

/// A Docker whose label lists `games` exited containers, g-0 (id 1) on,
/// each of which logged [`OOM_LAST_WORDS`] last.
pub fn oom_killed_games(games: u32) -> FakeEngine {
    oom_killed_growing(move || games)
}

/// The same, listing as many as `games()` says at each list.
pub fn oom_killed_growing(games: impl Fn() -> u32 + Send + Sync + 'static) -> FakeEngine {
    FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            let list = (0..games()).map(|n| (n + 1, format!("g-{n}"), i64::from(n)));
            return Reply::Json(200, created_list(list));
        }
        if path.contains("/logs?") {
            return log_answer(&log_frame(2, OOM_LAST_WORDS.as_bytes()));
        }
        let id = path.split('/').nth(3).unwrap_or_default().to_owned();
        Reply::Json(200, oom_killed_body(&id))
    })
}

/// What an OOM-killed game of [`oom_killed_games`] logged last.
pub const OOM_LAST_WORDS: &str = "Killed: out of memory\n";

/// One frame of Docker's multiplexed log stream: the stream (1 stdout,
/// 2 stderr), three zero bytes, the payload's length, the payload.
pub fn log_frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![stream, 0, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A `/containers/{id}/logs` answer as Docker 20.10 sends it: 200, no
/// `Content-Type`, `body` as the stream (frames, or a TTY's bytes).
pub fn log_answer(body: &[u8]) -> Reply {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    Reply::Raw(answer)
}
