//! A fake dockerd of labelled games the test drives: containers it puts,
//! changes and removes (404 once removed), inspects it slows or holds, an
//! events stream it writes to, and an `rtinspect run` watching it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{
    Daemon, FakeEngine, Reply, StderrLines, bin, container_event_line, created_list, hex_id,
    send_on, subscribe, wait_until,
};

/// One container of the fake dockerd.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    /// The value of its `rtinspect.game-id` label.
    pub game: String,
    /// `Created` in the list: whole seconds.
    pub created: i64,
    /// `Created` in the inspect: RFC 3339 with nanoseconds.
    pub created_ns: String,
    pub restarts: u64,
    pub status: String,
    pub started_at: String,
    pub exit_code: i64,
}

/// A container of game `game` in `status`, created at second 100.
pub fn game_box(game: &str, status: &str) -> FakeContainer {
    FakeContainer {
        game: game.into(),
        created: 100,
        created_ns: "2026-11-26T21:01:40.000000001Z".into(),
        restarts: 0,
        status: status.into(),
        started_at: "2026-11-26T21:01:41.5Z".into(),
        exit_code: i64::from(status != "running"),
    }
}

/// A fake dockerd with labelled containers the test sets and removes, and
/// an events stream the test writes to (a new stream per subscription).
pub struct Engine {
    pub engine: FakeEngine,
    containers: Arc<Mutex<BTreeMap<u32, FakeContainer>>>,
    stream: Arc<Mutex<Option<Sender<String>>>>,
    /// How long each inspect of a container takes.
    delays: Arc<Mutex<HashMap<u32, Duration>>>,
    /// Until when an inspect of a container is held unanswered (read again
    /// while held, so the test may move it).
    holds: Arc<Mutex<HashMap<u32, Instant>>>,
}

impl Engine {
    pub fn start() -> Engine {
        let containers: Arc<Mutex<BTreeMap<u32, FakeContainer>>> = Arc::default();
        let stream: Arc<Mutex<Option<Sender<String>>>> = Arc::default();
        let delays: Arc<Mutex<HashMap<u32, Duration>>> = Arc::default();
        let holds: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
        let (cs, sm, ds, hs) = (
            containers.clone(),
            stream.clone(),
            delays.clone(),
            holds.clone(),
        );
        let engine = FakeEngine::start(move |path| {
            if path.contains("/events?") {
                return subscribe(&sm);
            }
            if path.contains("/containers/json?") {
                let cs = cs.lock().unwrap();
                let list = cs.iter().map(|(k, c)| (*k, &c.game, c.created));
                return Reply::Json(200, created_list(list));
            }
            let Some(k) = cs
                .lock()
                .unwrap()
                .keys()
                .copied()
                .find(|k| path.contains(&format!("/containers/{}/json", hex_id(*k))))
            else {
                return no_such_container();
            };
            // Each connection has a thread of its own: a slowed or held
            // inspect holds only its own.
            let delay = ds.lock().unwrap().get(&k).copied();
            if let Some(delay) = delay {
                std::thread::sleep(delay);
            }
            loop {
                let until = hs.lock().unwrap().get(&k).copied();
                match until {
                    Some(until) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break,
                }
            }
            match cs.lock().unwrap().get(&k) {
                Some(c) => Reply::Json(200, inspect(k, c)),
                None => no_such_container(),
            }
        });
        Engine {
            engine,
            containers,
            stream,
            delays,
            holds,
        }
    }

    pub fn docker_host(&self) -> String {
        self.engine.docker_host()
    }

    /// Puts container `k` (a new one, or a new state of it).
    pub fn put(&self, k: u32, c: FakeContainer) {
        self.containers.lock().unwrap().insert(k, c);
    }

    /// Changes container `k`.
    pub fn update(&self, k: u32, f: impl FnOnce(&mut FakeContainer)) {
        f(self
            .containers
            .lock()
            .unwrap()
            .get_mut(&k)
            .expect("a container"));
    }

    /// Removes container `k`: gone from the list, 404 to an inspect.
    pub fn remove(&self, k: u32) {
        self.containers.lock().unwrap().remove(&k);
    }

    /// Sends one event line on the stream.
    pub fn send(&self, line: String) {
        send_on(&self.stream, line);
    }

    /// A sender of container events on the current stream, for a writer
    /// thread of the test's.
    pub fn events(&self) -> Events {
        Events {
            stream: self.stream.clone(),
            games: self
                .containers
                .lock()
                .unwrap()
                .iter()
                .map(|(k, c)| (*k, c.game.clone()))
                .collect(),
        }
    }

    /// Ends the current stream, as a dockerd that stops does.
    pub fn end_stream(&self) {
        self.stream.lock().unwrap().take();
    }

    /// Makes each inspect of container `k` take `delay`.
    pub fn delay(&self, k: u32, delay: Duration) {
        self.delays.lock().unwrap().insert(k, delay);
    }

    /// Holds each inspect of container `k` unanswered until `until`.
    pub fn hold_until(&self, k: u32, until: Instant) {
        self.holds.lock().unwrap().insert(k, until);
    }

    /// Whether a stream is subscribed.
    pub fn subscribed(&self) -> bool {
        self.stream.lock().unwrap().is_some()
    }

    /// Lists of the containers asked for so far (a tick's, or a read).
    pub fn lists(&self) -> usize {
        self.engine
            .requests()
            .iter()
            .filter(|r| r.contains("/containers/json?"))
            .count()
    }

    /// Waits until `n` more lists have been asked for.
    pub fn wait_lists(&self, n: usize) {
        let want = self.lists() + n;
        wait_until(Duration::from_secs(30), "lists of the containers", || {
            self.lists() >= want
        });
    }
}

/// Writes container events to an engine's current stream.
#[derive(Clone)]
pub struct Events {
    stream: Arc<Mutex<Option<Sender<String>>>>,
    games: HashMap<u32, String>,
}

impl Events {
    /// Sends one event of container `k`; like Docker's, its attributes
    /// carry the container's labels.
    pub fn send(&self, k: u32, action: &str) {
        send_on(
            &self.stream,
            container_event_line(k, action, &self.games[&k]),
        );
    }
}

/// Docker's answer about a container it does not have.
fn no_such_container() -> Reply {
    Reply::Json(404, r#"{"message":"No such container"}"#.into())
}

/// The inspect body of container `k`.
fn inspect(k: u32, c: &FakeContainer) -> String {
    format!(
        r#"{{"Id":"{}","Created":"{}","State":{{"Status":"{}","Running":{},"Paused":false,"Restarting":{},"OOMKilled":false,"Dead":false,"Pid":1,"ExitCode":{},"Error":"","StartedAt":"{}","FinishedAt":"0001-01-01T00:00:00Z"}},"Name":"/game-{k}","RestartCount":{},"Config":{{"Labels":{{"rtinspect.game-id":"{}"}}}}}}"#,
        hex_id(k),
        c.created_ns,
        c.status,
        c.status == "running",
        c.status == "restarting",
        c.exit_code,
        c.started_at,
        c.restarts,
        c.game
    )
}

/// The envelopes printed so far, as JSON.
pub fn envelopes(out: &StderrLines) -> Vec<serde_json::Value> {
    out.lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The envelopes of `event_type` printed so far.
pub fn of_type(out: &StderrLines, event_type: &str) -> Vec<serde_json::Value> {
    envelopes(out)
        .into_iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

/// `rtinspect run` on `engine` with stdout getting `report`, ticking every
/// `interval`, with `extra` arguments.
pub fn run_on(engine: &Engine, report: &str, extra: &[&str]) -> (Daemon, StderrLines, StderrLines) {
    Daemon::watched(
        bin()
            .args(["run", "--docker-host", &engine.docker_host()])
            .args(["--sink", "stdout", "--report", report])
            .args(extra)
            .env("RUST_LOG", "rtinspect=debug"),
    )
}
