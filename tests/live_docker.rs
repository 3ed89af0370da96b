//! Against the real dockerd: real containers built from a from-scratch busybox
//! image, `--network none`. Skipped only when no dockerd answers and
//! `RTINSPECT_TEST_REQUIRE_LIVE` is unset.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use rtinspect::docker::{ContainerInspector, DockerClient, MAX_API};
use rtinspect::inspector::RuntimeRecord;
use rtinspect::records::LabelRecords;

use crate::support::{
    Containers, LiveDocker, UNHEALTHY, bin, by_game, events, live_docker, terminate, wait_until,
};
use crate::tick::{FixedRecords, TestWorker, test_worker, tick};

fn client(live: &LiveDocker) -> DockerClient {
    DockerClient::new(
        &live.socket,
        Duration::from_secs(10),
        Duration::from_secs(60),
    )
}

fn worker(
    live: &LiveDocker,
    source: Box<dyn rtinspect::records::RecordSource + Send>,
) -> TestWorker {
    test_worker(source, client(live))
}

#[test]
fn negotiates_the_real_daemons_version() {
    let Some(live) = live_docker() else { return };
    let daemon = live.docker(&["version", "-f", "{{.Server.APIVersion}}"]);
    let negotiated = client(live).negotiate().unwrap();
    let daemon = rtinspect::docker::ApiVersion::parse(&daemon).unwrap();
    assert_eq!(negotiated, daemon.min(MAX_API));
}

#[test]
fn once_reports_exactly_the_unhealthy_and_the_stopped() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "once");
    let _healthy = c.run("g-healthy", &[], &["sleep", "1000"]);
    let sick = c.run("g-sick", UNHEALTHY, &["sleep", "1000"]);
    let stopped = c.exited("g-stopped");
    wait_until(Duration::from_secs(30), "unhealthy", || {
        c.inspect(&sick, "{{.State.Health.Status}}") == "unhealthy"
    });

    let out = c.once(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = events(&out);
    let games = by_game(&events);
    let mut names: Vec<_> = games.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        vec!["g-sick", "g-stopped"],
        "no event for the healthy one"
    );

    let e = &games["g-sick"][..];
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["container_id"], sick.as_str());
    assert_eq!(e[0]["event_type"], "inspect_unhealthy");
    assert_eq!(
        e[0]["details"],
        serde_json::json!({"restart_count": 0, "state": "running", "health": "unhealthy"})
    );
    let e = &games["g-stopped"][..];
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["container_id"], stopped.as_str());
    assert_eq!(
        e[0]["details"],
        serde_json::json!({"restart_count": 0, "state": "exited", "health": ""})
    );
    for e in &events {
        assert!(uuid::Uuid::parse_str(e["event_id"].as_str().unwrap()).is_ok());
        let at = e["occurred_at"].as_str().unwrap();
        assert_eq!(at.len(), 27, "{at}");
        assert!(at.ends_with('Z'), "{at}");
    }
    assert!(stderr.contains("3 records, 2 events"), "{stderr}");
}

#[test]
fn restart_count_increase_on_a_real_container_emits_once() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "restart");
    let id = c.run(
        "g-crash",
        &["--restart", "always"],
        // Running long enough for two ticks after a restart, even when each
        // `docker inspect` of the wait below is slow.
        &["sh", "-c", "sleep 8; exit 1"],
    );
    let mut w = worker(
        live,
        Box::new(FixedRecords(vec![RuntimeRecord::new(
            "g-crash",
            id.clone(),
        )])),
    );
    wait_until(Duration::from_secs(20), "running", || {
        c.inspect(&id, "{{.State.Status}}") == "running"
    });
    let (_, first) = tick(&mut w);
    let seeded = w.inspector().baseline("g-crash").unwrap().restart_count;
    assert!(
        first.is_empty() || first[0].state != "running",
        "a first observation only seeds"
    );

    // Wait for the restart policy to restart it, and for it to run again.
    wait_until(Duration::from_secs(30), "a restart", || {
        c.inspect(&id, "{{.RestartCount}} {{.State.Status}}") == format!("{} running", seeded + 1)
    });
    let (_, second) = tick(&mut w);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].restart_count, seeded + 1);
    assert_eq!(second[0].state, "running");
    assert_eq!(second[0].health, "");
    assert_eq!(second[0].container_id, id);
    let (_, third) = tick(&mut w);
    assert!(
        third.is_empty(),
        "the same restart is reported once: {third:?}"
    );
}

#[test]
fn removed_container_is_skipped_and_keeps_its_baseline() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "gone");
    let id = c.run("g-gone", &[], &["sleep", "1000"]);
    let mut w = worker(
        live,
        Box::new(FixedRecords(vec![RuntimeRecord::new("g-gone", id.clone())])),
    );
    let (_, events) = tick(&mut w);
    assert!(events.is_empty());
    let before = w.inspector().baseline("g-gone").cloned().unwrap();
    c.remove(&id);
    assert!(matches!(
        client(live).inspect(&id),
        Err(rtinspect::docker::DockerError::NotFound)
    ));
    let (report, events) = tick(&mut w);
    assert_eq!(report.missing, 1);
    assert!(events.is_empty());
    assert_eq!(w.inspector().baseline("g-gone"), Some(&before));
}

#[test]
fn replaced_container_in_label_mode_reseeds_without_an_event() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "replace");
    let old = c.run("g-r", &[], &["sleep", "1000"]);
    let mut w = worker(
        live,
        Box::new(LabelRecords::new(Box::new(client(live)), c.label.clone())),
    );
    let (report, events) = tick(&mut w);
    assert_eq!(report.records, 1);
    assert!(events.is_empty());
    assert_eq!(w.inspector().baseline("g-r").unwrap().container_id, old);

    // Docker's Created has one-second resolution: make the new one newer.
    std::thread::sleep(Duration::from_millis(1100));
    let new = c.run("g-r", &[], &["sleep", "1000"]);
    let (report, events) = tick(&mut w);
    assert_eq!(report.records, 1, "one record per game");
    assert!(
        events.is_empty(),
        "a new container id only re-seeds: {events:?}"
    );
    assert_eq!(w.inspector().baseline("g-r").unwrap().container_id, new);

    // The old container stopping is not the game's business any more.
    live.docker(&["kill", &old]);
    let (_, events) = tick(&mut w);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn run_reports_while_running_and_stops_on_sigterm() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "run");
    let crash = c.run(
        "g-crash",
        &["--restart", "always"],
        &["sh", "-c", "sleep 1; exit 1"],
    );
    let _healthy = c.run("g-healthy", &[], &["sleep", "1000"]);
    let child = bin()
        .args(["run", "--interval", "300ms", "--label", &c.label])
        .env("DOCKER_HOST", live.docker_host())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(40), "two restarts", || {
        c.inspect(&crash, "{{.RestartCount}}")
            .parse::<u64>()
            .unwrap()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(700));
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains("SIGTERM received"), "{stderr}");

    let games = by_game(&events(&out));
    assert!(!games.contains_key("g-healthy"), "{games:?}");
    let crash_events = &games["g-crash"];
    assert!(!crash_events.is_empty());
    let mut restart_counts = HashSet::new();
    for e in crash_events {
        let d = &e["details"];
        let count = d["restart_count"].as_u64().unwrap();
        if d["state"] == "running" && d["health"] == "" {
            // Only the restart rule fires on a running container without a
            // healthcheck, and it fires once per new count.
            assert!(count >= 1, "{e}");
            assert!(restart_counts.insert(count), "count {count} reported twice");
        }
    }
}
