//! `--details extended` against the real dockerd: each way a container can
//! fail — killed, a non-zero exit, the OOM killer, a failing healthcheck —
//! says why in its event, and `--details basic` still says exactly the three
//! fields.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Containers, by_game, events, live_docker, wait_until};

/// `once` over the test's label; each game's one event's `details`.
fn details_by_game(c: &Containers, level: &str) -> HashMap<String, Value> {
    let out = c.once(&["--details", level]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    by_game(&events(&out))
        .into_iter()
        .map(|(game, mut events)| {
            assert_eq!(events.len(), 1, "{game}: {events:?}");
            let e = events.remove(0);
            (game, e["details"].clone())
        })
        .collect()
}

fn wait_for(c: &Containers, id: &str, format: &str, want: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("{format} = {want}"),
        || c.inspect(id, format) == want,
    );
}

/// `details` without the two times, which are checked apart: the times
/// must be Docker's own, RFC 3339.
fn without_times(details: &Value) -> Value {
    let mut d = details.clone();
    let map = d.as_object_mut().unwrap();
    for key in ["started_at", "finished_at"] {
        if let Some(t) = map.remove(key) {
            let t = t.as_str().unwrap();
            assert!(
                t.starts_with("20") && t.ends_with('Z') && t.contains('T'),
                "{key} {t}"
            );
        }
    }
    d
}

fn has(details: &Value, key: &str) -> bool {
    details.get(key).is_some()
}

#[test]
fn extended_details_say_why_each_container_failed() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "details");
    let killed = c.run("g-killed", &[], &["sleep", "1000"]);
    live.docker(&["kill", &killed]);
    let exit3 = c.run("g-exit3", &[], &["sh", "-c", "exit 3"]);
    let unhealthy = c.run(
        "g-unhealthy",
        &[
            "--health-cmd",
            "echo probe says no; false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sleep", "1000"],
    );
    // A shell that reads 20 MB into a variable under an 8 MiB limit.
    let oom = c.try_run(
        "g-oom",
        &["-m", "8m"],
        &["sh", "-c", "x=$(head -c 20000000 /dev/zero | tr '\\0' a)"],
    );
    wait_for(&c, &killed, "{{.State.Status}}", "exited");
    wait_for(&c, &exit3, "{{.State.Status}}", "exited");
    wait_for(&c, &unhealthy, "{{.State.Health.Status}}", "unhealthy");
    let oom = oom.filter(|id| {
        wait_for(&c, id, "{{.State.Status}}", "exited");
        let killed = c.inspect(id, "{{.State.OOMKilled}}") == "true";
        if !killed {
            eprintln!("note: this kernel did not OOM-kill under -m 8m; nothing asserted about it");
        }
        killed
    });

    // `once` reads no events: how each ended is what the inspect allows
    // (no restart policy: unknown, but for the OOM kill it shows).
    let d = details_by_game(&c, "extended");
    let killed = &d["g-killed"];
    assert_eq!(
        without_times(killed),
        json!({"restart_count": 0, "state": "exited", "health": "",
               "exit_code": 137, "oom_killed": false, "reason": "unknown"})
    );
    assert!(
        has(killed, "started_at") && has(killed, "finished_at"),
        "{killed}"
    );

    let exit3 = &d["g-exit3"];
    assert_eq!(
        without_times(exit3),
        json!({"restart_count": 0, "state": "exited", "health": "",
               "exit_code": 3, "oom_killed": false, "reason": "unknown"})
    );
    assert!(has(exit3, "finished_at"), "{exit3}");

    let unhealthy = &d["g-unhealthy"];
    let streak = unhealthy["health_failing_streak"].as_u64().unwrap();
    assert!(streak >= 1, "{unhealthy}");
    assert_eq!(
        without_times(unhealthy),
        json!({"restart_count": 0, "state": "running", "health": "unhealthy",
               "health_failing_streak": streak, "health_output": "probe says no\n"})
    );
    assert!(has(unhealthy, "started_at"), "{unhealthy}");
    assert!(
        !has(unhealthy, "finished_at"),
        "never finished: Docker's zero time is left out: {unhealthy}"
    );

    if oom.is_some() {
        assert_eq!(
            without_times(&d["g-oom"]),
            json!({"restart_count": 0, "state": "exited", "health": "",
                   "exit_code": 137, "oom_killed": true, "reason": "oom"})
        );
    }

    // The default is the three fields, whatever Docker says.
    let basic = details_by_game(&c, "basic");
    assert_eq!(basic.len(), d.len());
    for (game, details) in basic {
        // (serde_json's map sorts its keys; the order is pinned in event.rs.)
        let keys: Vec<&String> = details.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["health", "restart_count", "state"], "{game}");
    }
}

#[test]
fn a_container_that_cannot_start_says_why() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "details-start");
    // docker run fails (exit 127), but the container is made: status created.
    let id = c.try_run("g-nostart", &[], &["/nonexistent"]);
    assert!(id.is_none(), "docker run of a missing command fails");
    let d = details_by_game(&c, "extended");
    let nostart = &d["g-nostart"];
    assert_eq!(nostart["state"], "created");
    assert_eq!(nostart["exit_code"], 127);
    let error = nostart["error"].as_str().unwrap();
    assert!(error.contains("/nonexistent"), "{error}");
    assert!(
        !has(nostart, "started_at") && !has(nostart, "finished_at"),
        "never started, never finished: {nostart}"
    );
}
