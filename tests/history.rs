//! `rtinspect history` on the real dockerd: a game crash-loops and
//! recovers, watched at once by a daemon in label mode (the timeline in
//! `history.jsonl`, read while the daemon runs) and one in PostgreSQL mode
//! (the events table); both timelines show it opened, escalated to a crash
//! loop and resolved, in order, with durations. And `history.jsonl` on a
//! full disk: said once, and the watching goes on.

use std::process::Output;
use std::time::Duration;

use crate::support::{
    Containers, Daemon, Engine, TempDir, TestSchema, bin, game_box, live_docker, live_pg, of_type,
    run_on, wait_until,
};

/// Quick incidents: a crash loop at three restarts, over after 15 s clean.
const RULES: [&str; 6] = [
    "--interval",
    "1s",
    "--crash-loop-window",
    "15s",
    "--recover-after",
    "5s",
];

/// `history --game g-loop --json` with `args`, parsed.
fn timeline(args: &[String]) -> (Output, serde_json::Value) {
    let out = bin()
        .args(["history", "--game", "g-loop", "--json"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, doc)
}

fn changes(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    (
                        e["change"].as_str().unwrap_or("").to_owned(),
                        e["kind"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Opened, escalated to a crash loop (through any kind before), resolved;
/// one incident; each change after the opening with how long after it.
fn assert_the_loop_and_its_end(doc: &serde_json::Value, source: &str) {
    assert_eq!(doc["source"], source, "{doc:#}");
    let changes = changes(doc);
    assert_eq!(
        changes.first().map(|c| c.0.as_str()),
        Some("opened"),
        "{doc:#}"
    );
    assert_eq!(
        changes.last().map(|c| (c.0.as_str(), c.1.as_str())),
        Some(("resolved", "crash_loop")),
        "{doc:#}"
    );
    assert!(
        changes.contains(&("escalated".into(), "crash_loop".into())),
        "{doc:#}"
    );
    let events = doc["events"].as_array().unwrap();
    let ids: Vec<&serde_json::Value> = events.iter().map(|e| &e["incident_id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.is_string()),
        "{doc:#}"
    );
    let lasted = events[0]["duration_seconds"].as_f64().unwrap();
    let resolved = events.last().unwrap()["duration_seconds"].as_f64().unwrap();
    assert!(
        lasted >= 15.0,
        "a crash loop lasts its window at least: {lasted}"
    );
    assert_eq!(lasted, resolved, "{doc:#}");
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
}

#[test]
fn a_crash_loop_and_its_recovery_in_both_modes() {
    let Some(live) = live_docker() else { return };
    let Some(url) = live_pg() else { return };
    let mut c = Containers::new(live, "history");
    let flag = TempDir::new("history-flag");
    let state = TempDir::new("history-state");
    let mut schema = TestSchema::new(url, "history");
    schema.migrate();
    let id = c.run_restarting(
        "g-loop",
        &flag,
        "test -e /flag/stop || { sleep 1; exit 3; }; sleep 3600",
    );
    schema.insert_record("g-loop", "running", &id);
    let docker = ["--docker-host".to_owned(), live.docker_host()];
    let label_args: Vec<String> = [
        "--label".to_owned(),
        c.label.clone(),
        "--state-dir".into(),
        state.path().display().to_string(),
    ]
    .into_iter()
    .chain(docker.clone())
    .collect();
    let pg_args: Vec<String> = schema.args().into_iter().chain(docker).collect();
    let (label_daemon, _, label_err) = Daemon::watched(
        bin()
            .arg("run")
            .args(&label_args)
            .args(["--report", "incidents"])
            .args(RULES),
    );
    let (pg_daemon, _, pg_err) = Daemon::watched(
        bin()
            .arg("run")
            .args(&pg_args)
            .args(["--report", "both"])
            .args(RULES),
    );
    wait_until(Duration::from_secs(60), "the crash loop in both", || {
        [&label_args, &pg_args].iter().all(|args| {
            changes(&timeline(args).1).contains(&("escalated".into(), "crash_loop".into()))
        })
    });
    std::fs::write(flag.path().join("stop"), b"").unwrap();
    wait_until(Duration::from_secs(90), "the resolution in both", || {
        [&label_args, &pg_args]
            .iter()
            .all(|args| changes(&timeline(args).1).iter().any(|c| c.0 == "resolved"))
    });

    // Label mode: history.jsonl, read while the daemon holds the lock.
    let (out, doc) = timeline(&label_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_the_loop_and_its_end(&doc, "history.jsonl");
    let table = bin()
        .args(["history", "--game", "g-loop"])
        .args(&label_args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("for g-loop, from history.jsonl"),
        "{text}"
    );
    assert!(text.contains("escalated  crash loop"), "{text}");
    assert!(text.contains("resolved   crash loop"), "{text}");
    assert!(text.contains(" after "), "{text}");
    assert!(text.contains(" lasted "), "{text}");

    // PostgreSQL mode: the events table's incident events.
    let (out, doc) = timeline(&pg_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_the_loop_and_its_end(&doc, "events_table");
    assert_eq!(
        changes(&doc).len() as i64,
        schema.count_events("event_type LIKE 'incident_%'"),
        "every incident event of the table"
    );
    assert!(label_daemon.terminate().success(), "{}", label_err.text());
    assert!(pg_daemon.terminate().success(), "{}", pg_err.text());
}

#[test]
fn without_a_state_directory_history_says_how_to_keep_one() {
    let out = bin().arg("history").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no history is kept without a state directory"),
        "{err}"
    );
    let out = bin().args(["history", "--since", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --since \"soon\""));
}

#[test]
fn facts_alone_make_a_timeline_said_as_derived() {
    let Some(url) = live_pg() else { return };
    let mut schema = TestSchema::new(url, "history_facts");
    schema.migrate();
    // g-1 down for 30 s five minutes ago, then clean; g-2 down now.
    for (game, ago) in [("g-1", 300), ("g-1", 285), ("g-1", 270), ("g-2", 20)] {
        schema
            .client
            .execute(
                &format!(
                    "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details) \
                     VALUES (gen_random_uuid(), $1, 'c1', 'inspect_unhealthy', \
                     now() - $2::int * interval '1 second', \
                     '{{\"restart_count\":0,\"state\":\"exited\",\"health\":\"\"}}')",
                    schema.events()
                ),
                &[&game, &ago],
            )
            .unwrap();
    }
    let (out, doc) = {
        let out = bin()
            .args(["history", "--json"])
            .args(schema.args())
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out, doc)
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(doc["source"], "derived_from_facts");
    let got: Vec<(&str, &str, &str)> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["game_id"].as_str().unwrap(),
                e["change"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("g-1", "opened", "not_running"),
            ("g-1", "resolved", "not_running"),
            ("g-2", "opened", "not_running"),
        ]
    );
    // Each row's now() is its own statement's: a millisecond or so apart.
    let lasted = doc["events"][0]["duration_seconds"].as_f64().unwrap();
    assert!((29.0..31.0).contains(&lasted), "{lasted}");
    let text = bin().arg("history").args(schema.args()).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("derived from the facts"),
        "{text}"
    );
}

#[test]
fn a_full_disk_under_history_is_said_once_and_never_said_mended() {
    let engine = Engine::start();
    engine.put(1, game_box("g-1", "running"));
    engine.put(2, game_box("g-2", "running"));
    let state = TempDir::new("history-full");
    // Every write of the history fails as on a full disk (ENOSPC).
    std::os::unix::fs::symlink("/dev/full", state.path().join("history.jsonl")).unwrap();
    let dir = state.path().to_str().unwrap().to_owned();
    let (daemon, out, err) = run_on(
        &engine,
        "incidents",
        &[
            "--events",
            "off",
            "--interval",
            "250ms",
            "--state-dir",
            &dir,
        ],
    );
    engine.wait_lists(2);
    // Two incidents, ticks apart: two lines the history cannot take.
    for (k, n) in [(1, 1), (2, 2)] {
        engine.update(k, |c| c.status = "exited".into());
        wait_until(Duration::from_secs(20), "an opening", || {
            of_type(&out, "incident_opened").len() >= n
        });
        engine.wait_lists(4);
    }
    let text = err.text();
    assert_eq!(
        text.matches("cannot append to history.jsonl").count(),
        1,
        "once a minute: {text}"
    );
    assert!(
        !text.contains("history.jsonl is written again"),
        "nothing was written: {text}"
    );
    // Room again: the next incident's line is written, and that is said.
    std::fs::remove_file(state.path().join("history.jsonl")).unwrap();
    engine.put(3, game_box("g-3", "exited"));
    wait_until(Duration::from_secs(20), "written again", || {
        err.text().contains("history.jsonl is written again")
    });
    let history = std::fs::read_to_string(state.path().join("history.jsonl")).unwrap();
    assert!(history.contains("\"g-3\""), "{history}");
    assert!(daemon.terminate().success(), "{}", err.text());
}

#[test]
fn a_state_directory_that_is_not_there_is_refused_by_name_not_read_as_quiet() {
    for command in ["history", "status"] {
        let out = crate::support::bin()
            .args([command, "--state-dir", "/nonexistent/rtinspect-state"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{command}: {err}");
        assert!(
            err.contains("invalid --state-dir \"/nonexistent/rtinspect-state\""),
            "{command}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "{command}: nothing printed as if read"
        );
    }
}
