//! One tick through the real Docker client against a fake engine: what leaves
//! the process, and when a tick gives up on real timeouts. The tick's rules
//! themselves are pinned by the tick core's own tests, with fakes.

use std::sync::Arc;
use std::time::Duration;

use rtinspect::docker::DockerClient;
use rtinspect::event::HealthEvent;
use rtinspect::inspector::{Inspector, RuntimeRecord};
use rtinspect::records::{RecordError, RecordSource};
use rtinspect::telemetry::Telemetry;
use rtinspect::tick::Summary;
use rtinspect::worker::Worker;

use crate::support::{FakeEngine, Reply, hex_id, inspect_body};

/// A record source that returns a fixed list.
pub struct FixedRecords(pub Vec<RuntimeRecord>);

impl RecordSource for FixedRecords {
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError> {
        Ok(self.0.clone())
    }
}

/// A worker over `source` and `docker`, with its counters and the baselines
/// its ticks carry from one to the next.
pub struct TestWorker {
    pub worker: Worker,
    pub telemetry: Arc<Telemetry>,
    pub baselines: Inspector,
}

impl TestWorker {
    /// The baselines after the last tick.
    pub fn inspector(&self) -> &Inspector {
        &self.baselines
    }
}

impl std::ops::Deref for TestWorker {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        &self.worker
    }
}

impl std::ops::DerefMut for TestWorker {
    fn deref_mut(&mut self) -> &mut Worker {
        &mut self.worker
    }
}

/// A worker over `source` and `docker`.
pub fn test_worker(source: Box<dyn RecordSource + Send>, docker: DockerClient) -> TestWorker {
    let telemetry = Arc::new(Telemetry::default());
    let socket = docker.socket().to_owned();
    let worker = Worker::new(source, Box::new(docker), telemetry.clone(), &socket);
    TestWorker {
        worker,
        telemetry,
        baselines: Inspector::new(),
    }
}

/// Runs one tick, collecting its events.
pub fn tick(w: &mut TestWorker) -> (Summary, Vec<HealthEvent>) {
    let mut events = Vec::new();
    let baselines = std::mem::take(&mut w.baselines);
    let (summary, baselines) = w.worker.tick_once(baselines, &mut |e| events.push(e));
    w.baselines = baselines;
    (summary.unwrap(), events)
}

fn worker(
    engine: &FakeEngine,
    records: Vec<RuntimeRecord>,
    timeout_ms: u64,
) -> (TestWorker, Arc<Telemetry>) {
    let docker = DockerClient::new(
        &engine.socket,
        Duration::from_millis(timeout_ms),
        Duration::from_secs(60),
    );
    let w = test_worker(Box::new(FixedRecords(records)), docker);
    let telemetry = w.telemetry.clone();
    (w, telemetry)
}

#[test]
fn hostile_container_ids_never_reach_a_request() {
    let engine =
        FakeEngine::start(|_| Reply::Json(200, inspect_body(&hex_id(1), 0, "running", None)));
    let records = vec![
        RuntimeRecord::new("g-empty", ""),
        RuntimeRecord::new("g-escape", "../../v1.41/containers/create"),
        RuntimeRecord::new("g-query", "abc?x=1"),
        RuntimeRecord::new("g-space", "a b"),
        RuntimeRecord::new("g-ok", "game-ok"),
    ];
    let (mut w, telemetry) = worker(&engine, records, 2000);
    let (report, events) = tick(&mut w);
    assert_eq!(report.records, 5);
    assert_eq!(report.errors, 4);
    assert!(events.is_empty());
    assert_eq!(telemetry.inspect_errors_of("invalid_id"), 4);
    assert_eq!(
        engine.requests(),
        vec!["/_ping", "/v1.41/containers/game-ok/json"],
        "only the valid id left the process"
    );
}

#[test]
fn restart_across_ticks_emits_once_with_the_envelope() {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let engine = FakeEngine::start(move |_| {
        let n = c.load(std::sync::atomic::Ordering::SeqCst);
        Reply::Json(200, inspect_body(&hex_id(9), n, "running", None))
    });
    let (mut w, telemetry) = worker(&engine, vec![RuntimeRecord::new("g-1", "game-1")], 2000);
    let (_, first) = tick(&mut w);
    assert!(first.is_empty(), "first observation only seeds");
    count.store(3, std::sync::atomic::Ordering::SeqCst);
    let (_, second) = tick(&mut w);
    let (_, third) = tick(&mut w);
    assert_eq!(second.len(), 1);
    assert!(third.is_empty(), "the same count is not reported twice");
    let e: serde_json::Value = serde_json::from_str(second[0].envelope().as_str()).unwrap();
    assert_eq!(e["game_id"], "g-1");
    assert_eq!(e["container_id"], hex_id(9));
    assert_eq!(e["event_type"], "inspect_unhealthy");
    assert_eq!(e["details"]["restart_count"], 3);
    assert_eq!(e["details"]["state"], "running");
    assert_eq!(e["details"]["health"], "");
    assert_eq!(telemetry.tick_duration.snapshot().count, 3);
}

#[test]
fn hung_daemon_ends_the_tick_after_three_timeouts() {
    let engine = FakeEngine::start(|_| Reply::Hang);
    engine.set_ping_hangs(true);
    let records = (0..20)
        .map(|i| RuntimeRecord::new(format!("g-{i}"), format!("game-{i}")))
        .collect();
    let (mut w, telemetry) = worker(&engine, records, 200);
    let (report, events) = tick(&mut w);
    assert!(events.is_empty());
    assert_eq!(report.errors, 3);
    assert_eq!(report.skipped, 17);
    assert_eq!(telemetry.inspect_errors_of("timeout"), 3);
}
