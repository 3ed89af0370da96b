//! `rtinspect status` on the real dockerd: ten games, one crash-looping,
//! one stopped, one unhealthy, printed worst first while the daemon runs
//! (its state directory read without its lock); every game healthy; no
//! dockerd at all, or a frozen one; `--json` with the same rows; a FIFO in
//! place of the service's settings.

use std::io::Read as _;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::{
    Containers, Daemon, FakeEngine, Reply, TempDir, bin, live_docker, wait_for_the_three,
    wait_until,
};

/// `rtinspect status` over this test's games, with `extra`.
fn status(c: &Containers<'_>, state: &TempDir, extra: &[&str]) -> Output {
    bin()
        .args(["status", "--label", &c.label])
        .args(["--docker-host", &c.live.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .args(extra)
        .output()
        .unwrap()
}

/// The standing and game of each row of the table, in order.
fn table_rows(out: &Output) -> Vec<(String, String)> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines()
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(|l| {
            // The standing may be two words: the game is the first cell
            // after two spaces.
            let (standing, rest) = l.split_once("  ").unwrap();
            let game = rest.split_whitespace().next().unwrap();
            (standing.to_owned(), game.to_owned())
        })
        .collect()
}

#[test]
fn ten_games_one_looping_one_stopped_one_sick_worst_first_and_exit_1() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "status");
    let state = TempDir::new("status-state");
    for i in 0..7 {
        c.run(&format!("g-{i}"), &[], &["sleep", "3600"]);
    }
    c.three_in_trouble("g-stopped");
    // The daemon tracks incidents (a sink takes them) and saves them.
    let (daemon, out, err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--report", "incidents"])
            .args(["--interval", "1s", "--docker-host", &live.docker_host()])
            .arg("--state-dir")
            .arg(state.path()),
    );
    wait_for_the_three(&out, "g-stopped");
    wait_until(
        Duration::from_secs(10),
        "incidents.json with all three",
        || {
            std::fs::read_to_string(state.path().join("incidents.json")).is_ok_and(|s| {
                s.contains("crash_loop") && s.contains("not_running") && s.contains("unhealthy")
            })
        },
    );

    // While the daemon runs and holds the lock.
    let table = status(&c, &state, &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert_eq!(
        text.lines().next(),
        Some("10 games: 7 healthy, 1 unhealthy, 1 not running, 1 crash loop"),
        "{text}"
    );
    let rows = table_rows(&table);
    let top: Vec<(&str, &str)> = rows[..3]
        .iter()
        .map(|(s, g)| (s.as_str(), g.as_str()))
        .collect();
    assert_eq!(
        top,
        [
            ("crash loop", "g-loop"),
            ("not running", "g-stopped"),
            ("unhealthy", "g-sick")
        ],
        "{text}"
    );
    assert_eq!(rows.len(), 10, "{text}");
    assert!(rows[3..].iter().all(|(s, _)| s == "healthy"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");

    // The same rows as JSON, with the same exit status.
    let json = status(&c, &state, &["--json"]);
    assert_eq!(json.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let games = doc["games"].as_array().unwrap();
    let ids: Vec<&str> = games
        .iter()
        .map(|g| g["game_id"].as_str().unwrap())
        .collect();
    let table_ids: Vec<&str> = rows.iter().map(|(_, g)| g.as_str()).collect();
    assert_eq!(ids, table_ids);
    assert_eq!(games[0]["incident"]["kind"], "crash_loop");
    assert!(games[0]["restarts_last_hour"].as_u64() >= Some(3), "{doc}");
    assert_eq!(games[1]["state"], "exited");
    assert_eq!(games[1]["incident"]["kind"], "not_running");
    // Why each ended, as their incidents' events said it (history.jsonl).
    assert_eq!(games[0]["incident"]["reason"], "crashed", "{doc}");
    // It ended before rtinspect started: no die was seen to tell how.
    assert_eq!(games[1]["incident"]["reason"], "unknown", "{doc}");
    assert_eq!(games[2]["health"], "unhealthy");
    assert_eq!(games[9]["incident"], serde_json::Value::Null);
    assert_eq!(games[9]["silenced_until"], serde_json::Value::Null);
    let summary = &doc["summary"];
    assert_eq!(
        (
            &summary["crash_loop"],
            &summary["not_running"],
            &summary["unhealthy"],
            &summary["healthy"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(7)
        )
    );
    assert!(doc["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(daemon.terminate().success(), "{}", err.text());
}

#[test]
fn every_game_healthy_exits_0() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "status-ok");
    let state = TempDir::new("status-ok");
    for i in 0..3 {
        c.run(&format!("g-{i}"), &[], &["sleep", "3600"]);
    }
    let out = status(&c, &state, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().next(), Some("3 games: 3 healthy"));
    assert_eq!(
        table_rows(&out)
            .iter()
            .filter(|(s, _)| s == "healthy")
            .count(),
        3
    );
    // Nothing was written to a state directory it only reads.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    let json = status(&c, &state, &["--json"]);
    assert_eq!(json.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["healthy"], 3);
    assert_eq!(
        doc["games"][0]["restarts_last_hour"],
        serde_json::Value::Null
    );
}

#[test]
fn no_dockerd_exits_2_naming_the_socket() {
    let dir = TempDir::new("status-nodocker");
    let socket = dir.path().join("docker.sock");
    for extra in [&[][..], &["--json"]] {
        let out = bin()
            .arg("status")
            .arg("--docker-host")
            .arg(format!("unix://{}", socket.display()))
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("cannot reach dockerd at {}", socket.display())),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
}

#[test]
fn a_frozen_dockerd_ends_status_with_2_naming_the_socket() {
    // Accepts connections and never answers, as a dockerd stopped with
    // SIGSTOP does.
    let engine = FakeEngine::start(|_| Reply::Hang);
    engine.set_ping_hangs(true);
    let out = bin()
        .args(["status", "--docker-host", &engine.docker_host()])
        .args(["--docker-timeout", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach dockerd at {}: no answer within 1s",
            engine.socket.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn a_fifo_in_place_of_the_service_settings_is_refused_not_waited_on() {
    let dir = TempDir::new("status-fifo");
    let fifo = dir.path().join("rtinspect");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let child = bin()
        .arg("status")
        .env("RTINSPECT_DEFAULTS_FILE", &fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on drop should it still wait for a writer.
    let mut status = Daemon(Some(child));
    let mut code = None;
    wait_until(Duration::from_secs(30), "status to end", || {
        code = status.0.as_mut().unwrap().try_wait().unwrap();
        code.is_some()
    });
    let mut err = String::new();
    let child = status.0.as_mut().unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code.and_then(|c| c.code()), Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read the service's settings in {}: not a regular file",
            fifo.display()
        )),
        "{err}"
    );
}
