//! Incidents that cannot lie (issue 30): a restart count that `once` never
//! cleared, a game that left the records with its incident open, healthy
//! deploys counted as a crash loop, the newest of a game's containers lost
//! to a tie within one second, a `--rm` game gone before its inspect, and
//! on the real dockerd a restart counted twice. Each plays the fault
//! against the built binary and a fake dockerd whose containers and events
//! the test drives (or the real one).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    Containers, Daemon, Engine, StderrLines, TempDir, bin, envelopes, event_line, first_tick,
    game_box, hex_id, live_docker, of_type, run_on, succeeded, wait_until,
};

/// One `rtinspect once` over `engine` with its state in `state`; the
/// envelopes it printed.
fn once(engine: &Engine, state: &Path, rules: &[&str]) -> Vec<serde_json::Value> {
    let out = succeeded(
        bin()
            .args(["once", "--docker-host", &engine.docker_host()])
            .args(["--sink", "stdout", "--report", "incidents"])
            .arg("--state-dir")
            .arg(state)
            .args(rules),
    );
    crate::support::events(&out)
}

/// A fake dockerd with one game, `g` (container 1) in `status`, and an
/// `rtinspect run` printing its incidents, looking every 250 ms without
/// Docker's events, with `extra` arguments.
fn watched(status: &str, extra: &[&str]) -> (Engine, Daemon, StderrLines, StderrLines) {
    let engine = Engine::start();
    engine.put(1, game_box("g", status));
    let mut args = vec!["--events", "off", "--interval", "250ms"];
    args.extend_from_slice(extra);
    let (daemon, out, err) = run_on(&engine, "incidents", &args);
    (engine, daemon, out, err)
}

#[test]
fn once_every_minute_clears_a_restart_count_by_a_clean_run() {
    // One restart, then a clean run longer than the window (2 s here),
    // three times over, each look by a `once` of its own.
    let engine = Engine::start();
    let state = TempDir::new("truth-once");
    let rules = ["--crash-loop-window", "2s", "--recover-after", "1s"];
    engine.put(1, game_box("g", "running"));
    assert!(once(&engine, state.path(), &rules).is_empty(), "seeds");
    let mut counts = Vec::new();
    for restarts in 1..=3 {
        engine.update(1, |c| c.restarts = restarts);
        let opened = once(&engine, state.path(), &rules);
        counts.extend(
            opened
                .iter()
                .filter(|e| e["event_type"] != "incident_resolved")
                .map(|e| e["details"]["restarts_in_window"].as_u64().unwrap()),
        );
        // Clean for longer than the window: a look every half second.
        let clean = Instant::now();
        while clean.elapsed() < Duration::from_millis(2600) {
            std::thread::sleep(Duration::from_millis(500));
            once(&engine, state.path(), &rules);
        }
    }
    assert_eq!(counts, [1, 1, 1], "restarts_in_window at each restart");
}

#[test]
fn a_game_that_leaves_the_records_has_its_incident_resolved_as_removed() {
    let (engine, daemon, out, err) = watched("exited", &["--recover-after", "1s"]);
    wait_until(Duration::from_secs(20), "the opening", || {
        !of_type(&out, "incident_opened").is_empty()
    });
    engine.remove(1);
    wait_until(Duration::from_secs(20), "the resolution", || {
        !of_type(&out, "incident_resolved").is_empty()
    });
    let opened = &of_type(&out, "incident_opened")[0];
    let resolved = &of_type(&out, "incident_resolved")[0];
    assert_eq!(
        resolved["details"]["incident_id"],
        opened["details"]["incident_id"]
    );
    assert_eq!(resolved["details"]["resolution"], "removed");
    assert!(resolved["details"].get("seen").is_none(), "{resolved}");
    assert_eq!(resolved["container_id"], hex_id(1));
    engine.wait_lists(8);
    assert_eq!(envelopes(&out).len(), 2, "resolved once: {}", err.text());
    assert!(daemon.terminate().success());
}

#[test]
fn a_game_removed_and_recreated_still_broken_goes_on_with_its_incident() {
    let (engine, daemon, out, err) = watched("exited", &["--recover-after", "30s"]);
    wait_until(Duration::from_secs(20), "the opening", || {
        !of_type(&out, "incident_opened").is_empty()
    });
    // Gone for a few ticks, then recreated, still down.
    engine.remove(1);
    engine.wait_lists(3);
    engine.put(2, game_box("g", "exited"));
    engine.wait_lists(6);
    let all = envelopes(&out);
    assert_eq!(
        of_type(&out, "incident_opened").len(),
        1,
        "{all:#?}\n{}",
        err.text()
    );
    let id = &all[0]["details"]["incident_id"];
    assert!(all.iter().all(|e| e["details"]["incident_id"] == *id));
    assert!(daemon.terminate().success());
}

#[test]
fn three_healthy_deploys_open_no_crash_loop() {
    let (engine, daemon, out, err) = watched("running", &[]);
    engine.wait_lists(2);
    // Each a new container created after the last, the last removed.
    for k in 2..=4 {
        let mut next = game_box("g", "running");
        next.created = 100 + i64::from(k);
        engine.put(k, next);
        engine.remove(k - 1);
        engine.wait_lists(3);
    }
    engine.wait_lists(4);
    assert_eq!(
        envelopes(&out),
        Vec::<serde_json::Value>::new(),
        "{}",
        err.text()
    );
    assert!(daemon.terminate().success());
}

#[test]
fn label_mode_keeps_the_newest_container_by_its_nanoseconds() {
    // A replacement created within the second of the container it
    // replaces, with the lower id: the list says the same second of both.
    let engine = Engine::start();
    let mut old = game_box("g", "exited");
    old.created_ns = "2026-11-26T21:01:40.1Z".into();
    let mut new = game_box("g", "running");
    new.created_ns = "2026-11-26T21:01:40.25Z".into();
    engine.put(9, old);
    engine.put(3, new);
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "stdout", "--report", "facts"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = crate::support::events(&out);
    assert!(
        printed.is_empty(),
        "facts of the old container: {printed:#?}"
    );
    let inspected: Vec<String> = engine
        .engine
        .requests()
        .into_iter()
        .filter(|r| r.contains(&hex_id(9)))
        .collect();
    assert!(
        inspected.len() <= 1,
        "the old one is asked its creation time at most: {inspected:?}"
    );
}

#[test]
fn a_container_removed_as_it_died_is_reported_from_its_die() {
    // `docker run --rm` of a game that dies at boot: by the inspect its
    // `die` asks for, the container is gone.
    let engine = Engine::start();
    engine.put(1, game_box("g", "running"));
    let (daemon, out, err) = run_on(
        &engine,
        "both",
        &["--interval", "1h", "--details", "extended"],
    );
    wait_until(
        Duration::from_secs(20),
        "the subscription and a tick",
        || engine.subscribed() && engine.lists() > 0 && err.text().contains("tick:"),
    );
    engine.remove(1);
    engine.send(event_line(1, "die", "g", r#","exitCode":"3""#));
    wait_until(Duration::from_secs(20), "the fact", || {
        !of_type(&out, "inspect_unhealthy").is_empty()
    });
    let fact = &of_type(&out, "inspect_unhealthy")[0];
    assert_eq!(fact["game_id"], "g");
    assert_eq!(fact["container_id"], hex_id(1));
    assert_eq!(fact["details"]["state"], "exited");
    assert_eq!(fact["details"]["exit_code"], 3);
    wait_until(Duration::from_secs(20), "the incident", || {
        !of_type(&out, "incident_opened").is_empty()
    });
    let opened = &of_type(&out, "incident_opened")[0];
    assert_eq!(opened["details"]["kind"], "not_running");
    assert_eq!(opened["details"]["seen"]["exit_code"], 3);
    assert!(daemon.terminate().success());
}

#[test]
fn on_the_real_dockerd_a_game_dying_5s_after_each_start_is_a_crash_loop_at_its_third_restart() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "truth-twice");
    let (daemon, out, err) = Daemon::watched(c.daemon().args([
        "--sink",
        "stdout",
        "--report",
        "incidents",
        "--interval",
        "15s",
    ]));
    first_tick(&err);
    let id = c.run(
        "g-twice",
        &["--restart=always"],
        &["sh", "-c", "sleep 5; exit 3"],
    );
    wait_until(Duration::from_secs(120), "the crash loop", || {
        envelopes(&out)
            .iter()
            .any(|e| e["details"]["kind"] == "crash_loop")
    });
    let all = envelopes(&out);
    let looping = all
        .iter()
        .find(|e| e["details"]["kind"] == "crash_loop")
        .unwrap();
    assert_eq!(
        looping["details"]["seen"]["restart_count"], 3,
        "Docker's own count when it became a crash loop: {all:#?}"
    );
    assert_eq!(looping["details"]["restarts_in_window"], 3);
    let restarts: u64 = live
        .docker(&["inspect", "-f", "{{.RestartCount}}", &id])
        .parse()
        .unwrap();
    assert!(restarts >= 3, "{restarts}");
    assert!(daemon.terminate().success(), "{}", err.text());
}
