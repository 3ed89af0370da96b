//! Writes of the state directory (issue 30): a save of `incidents.json`
//! that fails is tried again until it succeeds, and a burst of Docker
//! events costs a few writes of each file, not one a change.

use std::path::Path;
use std::time::Duration;

use crate::support::{
    Daemon, Engine, TempDir, bin, envelopes, event_line, free_addr, game_box, hex_id, http_get,
    of_type, run_on, sample, wait_until,
};

/// `rtinspect_state_save_failures_total` on the metrics listener at `addr`.
fn save_failures(addr: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    sample(&body, "rtinspect_state_save_failures_total")
}

/// Whether the file holds `text`.
fn holds(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(text))
}

#[test]
fn a_failed_save_of_the_incidents_is_tried_again_each_tick_until_it_succeeds() {
    let engine = Engine::start();
    engine.put(1, game_box("g", "running"));
    let state = TempDir::new("saves-retry");
    let dir = state.path().to_str().unwrap().to_owned();
    let addr = free_addr();
    let args = [
        "--events",
        "off",
        "--interval",
        "250ms",
        "--state-dir",
        &dir,
    ];
    let (daemon, out, err) = run_on(
        &engine,
        "incidents",
        &[&args[..], &["--metrics-addr", &addr]].concat(),
    );
    let file = state.path().join("incidents.json");
    wait_until(Duration::from_secs(20), "the first save", || file.is_file());
    // No room for this file: a directory in its place, which a rename
    // cannot replace.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("full"), b"").unwrap();
    engine.update(1, |c| c.status = "exited".into());
    wait_until(Duration::from_secs(20), "the opening", || {
        !of_type(&out, "incident_opened").is_empty()
    });
    let id = of_type(&out, "incident_opened")[0]["details"]["incident_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(Duration::from_secs(20), "two failed writes counted", || {
        save_failures(&addr).is_some_and(|n| n >= 2.0)
    });
    // Room again: the next tick's write succeeds.
    std::fs::remove_dir_all(&file).unwrap();
    wait_until(Duration::from_secs(20), "the incident saved", || {
        holds(&file, &id)
    });
    let leftovers: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        err.text().contains("cannot save incidents.json"),
        "{}",
        err.text()
    );
    assert!(daemon.terminate().success());

    // Restarted: the same outage is the same incident, not a second one.
    let (daemon, out, _) = run_on(&engine, "incidents", &args);
    engine.wait_lists(6);
    assert_eq!(envelopes(&out), Vec::<serde_json::Value>::new());
    assert!(daemon.terminate().success());
}

/// The bytes the process `pid` has written so far (`wchar` of
/// `/proc/<pid>/io`: files, sockets and pipes alike).
fn written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn four_hundred_games_started_20_ms_apart_cost_a_few_writes_of_each_file() {
    let engine = Engine::start();
    let state = TempDir::new("saves-burst");
    // Quiet logs and no facts on stdout: what it writes is its state, and
    // its requests to dockerd.
    let (daemon, _out, err) = Daemon::watched(
        bin()
            .args(["run", "--docker-host", &engine.docker_host()])
            .args(["--sink", "stdout", "--report", "incidents"])
            .args(["--interval", "1h", "--state-dir"])
            .arg(state.path())
            .env("RUST_LOG", "warn"),
    );
    wait_until(
        Duration::from_secs(20),
        "the subscription and a tick",
        || engine.subscribed() && engine.lists() > 0,
    );
    std::thread::sleep(Duration::from_millis(200));
    let before = written(daemon.id());
    for k in 1..=400 {
        let game = format!("g-{k}");
        engine.put(k, game_box(&game, "running"));
        engine.send(event_line(k, "start", &game, ""));
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = format!("/containers/{}/json", hex_id(400));
    wait_until(Duration::from_secs(30), "the last game inspected", || {
        engine.engine.requests().iter().any(|r| r.contains(&last))
    });
    let baselines = state.path().join("baselines.json");
    let incidents = state.path().join("incidents.json");
    wait_until(Duration::from_secs(10), "both files written last", || {
        holds(&baselines, "\"g-400\"") && holds(&incidents, "\"g-400\"")
    });
    let bytes = written(daemon.id()) - before;
    let sizes = (
        std::fs::metadata(&baselines).unwrap().len(),
        std::fs::metadata(&incidents).unwrap().len(),
    );
    eprintln!(
        "400 games started 20 ms apart: {bytes} bytes written in all; \
         baselines.json {} bytes, incidents.json {} bytes at the end",
        sizes.0, sizes.1
    );
    assert!(bytes <= 2_000_000, "{bytes} bytes written: {}", err.text());
    assert!(daemon.terminate().success());
}
