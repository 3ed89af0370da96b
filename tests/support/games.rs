//! A fake dockerd of labelled games the test drives: containers it puts,
//! changes and removes (404 once removed), an events stream it writes to,
//! and an `rtinspect run` watching it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::{
    Daemon, FakeEngine, Reply, StderrLines, bin, created_list, hex_id, send_on, subscribe,
    wait_until,
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
}

impl Engine {
    pub fn start() -> Engine {
        let containers: Arc<Mutex<BTreeMap<u32, FakeContainer>>> = Arc::default();
        let stream: Arc<Mutex<Option<Sender<String>>>> = Arc::default();
        let (cs, sm) = (containers.clone(), stream.clone());
        let engine = FakeEngine::start(move |path| {
            if path.contains("/events?") {
                return subscribe(&sm);
            }
            let cs = cs.lock().unwrap();
            if path.contains("/containers/json?") {
                let list = cs.iter().map(|(k, c)| (*k, &c.game, c.created));
                return Reply::Json(200, created_list(list));
            }
            match cs
                .iter()
                .find(|(k, _)| path.contains(&format!("/containers/{}/json", hex_id(**k))))
            {
                Some((k, c)) => Reply::Json(200, inspect(*k, c)),
                None => Reply::Json(404, r#"{"message":"No such container"}"#.into()),
            }
        });
        Engine {
            engine,
            containers,
            stream,
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
