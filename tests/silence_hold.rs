//! What a silence does to incidents, on the real dockerd: games that crash
//! inside a silence say nothing during it, and at its end exactly one
//! `incident_opened` (`after_silence`) for a game still down, none for one
//! that came back; a row a deploy tool inserts with psql takes effect
//! within one tick; `once` honours silences across runs; a `silences.json`
//! turned to garbage, or a schema without the table, never stops the
//! watching. Facts go on unchanged throughout.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{
    Containers, Daemon, HookReply, HookServer, LiveDocker, StderrLines, TempDir, TestSchema, bin,
    first_tick, live_docker, live_pg, wait_until,
};

/// The command of a game that runs until `/flag/die` appears, then exits 3
/// (and, restarted, runs again: the flag is taken).
const DIES_ON_FLAG: &[&str] = &[
    "sh",
    "-c",
    "while [ ! -e /flag/die ]; do sleep 0.2; done; rm -f /flag/die; exit 3",
];

/// The envelopes a webhook (format `envelope`) received.
fn received(hook: &HookServer) -> Vec<serde_json::Value> {
    hook.requests().iter().map(|r| r.json()).collect()
}

fn incidents_of(hook: &HookServer, game: &str) -> Vec<serde_json::Value> {
    received(hook)
        .into_iter()
        .filter(|e| e["game_id"] == game)
        .collect()
}

/// The facts printed on stdout for `game`.
fn facts_of(out: &StderrLines, game: &str) -> usize {
    out.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event_type"] == "inspect_unhealthy" && e["game_id"] == game)
        .count()
}

/// Waits for `n` more ticks of the daemon whose debug log is `err`.
fn more_ticks(err: &StderrLines, n: usize) {
    let ticks = err.text().matches("tick:").count();
    wait_until(Duration::from_secs(10), "more ticks", || {
        err.text().matches("tick:").count() >= ticks + n
    });
}

/// `rtinspect silence add ARGS` on `state`, the test's dockerd asked about
/// the games; it succeeds.
fn silence_add(live: &LiveDocker, state: &TempDir, args: &[&str]) -> Output {
    let add = bin()
        .args(["silence", "add"])
        .args(args)
        .args(["--docker-host", &live.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(
        add.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    add
}

#[test]
fn a_game_crashed_inside_its_silence_is_announced_once_at_its_end_if_still_down() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "silencehold");
    let state = TempDir::new("silence-hold");
    let (down_flag, back_flag) = (TempDir::new("flag-down"), TempDir::new("flag-back"));
    let hook = HookServer::start(|_, _| HookReply::ok());
    let mount = |d: &TempDir| format!("{}:/flag", d.path().display());
    c.run("g-down", &["-v", &mount(&down_flag)], DIES_ON_FLAG);
    c.run(
        "g-back",
        &["--restart=always", "-v", &mount(&back_flag)],
        DIES_ON_FLAG,
    );
    let (daemon, out, err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--state-dir"])
            .arg(state.path())
            .args([
                "--sink",
                "stdout,webhook",
                "--report",
                "stdout=facts,webhook=incidents",
            ])
            .args(["--webhook-url", &hook.url("/hook")])
            .args(["--interval", "2s", "--recover-after", "4s"])
            .args(["--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    first_tick(&err);
    let add = silence_add(
        live,
        &state,
        &[
            "--game", "g-down", "--game", "g-back", "--for", "20s", "--label", &c.label,
        ],
    );
    assert!(!String::from_utf8_lossy(&add.stderr).contains("unknown game"));
    let added = Instant::now();
    // Read at the next tick's start: two ticks later, it is in force.
    more_ticks(&err, 2);
    std::fs::write(down_flag.path().join("die"), "").unwrap();
    std::fs::write(back_flag.path().join("die"), "").unwrap();
    wait_until(Duration::from_secs(15), "both incidents opened", || {
        err.text().matches("incident_opened: ").count() >= 2
    });
    // Nothing reached the webhook during the silence.
    while added.elapsed() < Duration::from_secs(19) {
        let got: Vec<String> = received(&hook)
            .iter()
            .map(|e| format!("{} {}", e["game_id"], e["event_type"]))
            .collect();
        assert!(got.is_empty(), "during the silence: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let held = err
        .lines()
        .iter()
        .filter(|l| {
            l.contains("incident_opened: ") && l.contains("held back: the game is silenced")
        })
        .count();
    assert_eq!(held, 2, "{}", err.text());
    assert!(
        facts_of(&out, "g-down") > 0,
        "facts go on during the silence"
    );
    assert!(
        err.text()
            .contains("silences read: 1 not over, 1 in force now")
    );
    // At its end: the game still down is announced, once; the one that
    // came back says nothing, and its incident resolves unannounced.
    wait_until(Duration::from_secs(15), "the announcement", || {
        !incidents_of(&hook, "g-down").is_empty()
    });
    // g-back ran clean again inside the silence: its resolution, held too.
    wait_until(
        Duration::from_secs(20),
        "the unannounced resolution",
        || err.text().contains("incident_resolved: "),
    );
    std::thread::sleep(Duration::from_secs(3));
    let down = incidents_of(&hook, "g-down");
    assert_eq!(down.len(), 1, "{down:?}");
    let opened = &down[0];
    assert_eq!(opened["event_type"], "incident_opened");
    assert_eq!(opened["details"]["after_silence"], true);
    assert_eq!(opened["details"]["kind"], "not_running");
    assert_eq!(opened["details"]["seen"]["exit_code"], 3);
    // Its true start: inside the silence, before the announcement.
    let started = opened["details"]["started_at"].as_str().unwrap();
    let occurred = opened["occurred_at"].as_str().unwrap();
    assert!(started < occurred, "{started} < {occurred}");
    assert_eq!(
        incidents_of(&hook, "g-back"),
        Vec::<serde_json::Value>::new()
    );
    daemon.terminate();
    // No incident is left held.
    let saved = std::fs::read_to_string(state.path().join("incidents.json")).unwrap();
    assert!(!saved.contains("\"held\""), "{saved}");
}

#[test]
fn once_honours_a_silence_and_announces_after_it() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "silenceonce");
    let state = TempDir::new("silence-once");
    c.exited("g-x");
    let once = || {
        let out = bin()
            .args([
                "once",
                "--label",
                &c.label,
                "--report",
                "both",
                "--state-dir",
            ])
            .arg(state.path())
            .args(["--docker-host", &live.docker_host()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let facts = events
            .iter()
            .filter(|e| e["event_type"] == "inspect_unhealthy")
            .count();
        let incidents: Vec<serde_json::Value> = events
            .into_iter()
            .filter(|e| e["event_type"] != "inspect_unhealthy")
            .collect();
        (facts, incidents)
    };
    silence_add(live, &state, &["--all", "--for", "3s"]);
    let added = Instant::now();
    let (facts, incidents) = once();
    assert_eq!((facts, incidents.len()), (1, 0), "{incidents:?}");
    let held = std::fs::read_to_string(state.path().join("incidents.json")).unwrap();
    assert!(held.contains("\"held\""), "kept for the next run: {held}");
    wait_until(Duration::from_secs(10), "the silence's end", || {
        added.elapsed() > Duration::from_secs(4)
    });
    let (facts, incidents) = once();
    assert_eq!(facts, 1);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["event_type"], "incident_opened");
    assert_eq!(incidents[0]["details"]["after_silence"], true);
    let (_, incidents) = once();
    assert!(incidents.is_empty(), "announced once: {incidents:?}");
}

#[test]
fn a_silences_file_turned_to_garbage_keeps_the_last_good_set_and_the_watching() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "silencegarbage");
    let state = TempDir::new("silence-garbage-daemon");
    let flag = TempDir::new("flag-garbage");
    c.run(
        "g-1",
        &["-v", &format!("{}:/flag", flag.path().display())],
        DIES_ON_FLAG,
    );
    silence_add(live, &state, &["--game", "g-1", "--for", "1h"]);
    let (daemon, out, err) = Daemon::watched(
        bin()
            .args([
                "run",
                "--label",
                &c.label,
                "--report",
                "both",
                "--state-dir",
            ])
            .arg(state.path())
            .args(["--interval", "1s", "--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    wait_until(Duration::from_secs(20), "two ticks", || {
        err.text().matches("tick:").count() >= 2
    });
    let file = state.path().join("silences.json");
    let huge = vec![b' '; 5 << 20];
    let garbage: [&[u8]; 3] = [b"{\"version\":1,\"silences\":[", b"\xff\xfe\x00\x01", &huge];
    // Each in turn, a tick or two apart; the warning comes once a minute.
    for bytes in garbage {
        std::fs::write(&file, bytes).unwrap();
        more_ticks(&err, 2);
    }
    assert!(
        err.text()
            .contains("silences.json does not parse: cut short at line 1")
            && err.text().contains("the last good ones stay in force"),
        "{}",
        err.text()
    );
    std::fs::write(flag.path().join("die"), "").unwrap();
    wait_until(Duration::from_secs(15), "the crash held back", || {
        err.text().contains("held back: the game is silenced until")
    });
    more_ticks(&err, 2);
    let printed = out.text();
    assert!(!printed.contains("incident_"), "{printed}");
    assert!(printed.contains("inspect_unhealthy"), "the facts go on");
    daemon.terminate();
}

#[test]
fn a_row_inserted_by_psql_takes_effect_within_one_tick() {
    let Some(live) = live_docker() else { return };
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "silencerow");
    s.migrate();
    let mut c = Containers::new(live, "silencerow");
    let flag = TempDir::new("flag-row");
    let id = c.run(
        "g-row",
        &["-v", &format!("{}:/flag", flag.path().display())],
        DIES_ON_FLAG,
    );
    s.insert_record("g-row", "running", &id);
    let hook = HookServer::start(|_, _| HookReply::ok());
    let (daemon, _out, err) = Daemon::watched(
        bin()
            .arg("run")
            .args(s.args())
            .args(["--sink", "webhook", "--webhook-url", &hook.url("/hook")])
            .args(["--interval", "2s", "--recover-after", "4s"])
            .args(["--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    first_tick(&err);
    let table = s.silences();
    s.client
        .batch_execute(&format!(
            "INSERT INTO {table} (silence_id, game_id, ends_at, comment) \
             VALUES (gen_random_uuid(), 'g-row', now() + interval '1 hour', 'deploy')"
        ))
        .unwrap();
    let inserted = Instant::now();
    wait_until(Duration::from_secs(10), "the row read", || {
        err.text()
            .contains("silences read: 1 not over, 1 in force now")
    });
    let seen = err.first_after(inserted, "silences read: 1").unwrap();
    // Read at the start of the next tick: at most the tick under way ended
    // between the insert and the read.
    let ended = err.count_between(inserted, seen, "tick:");
    assert!(ended <= 1, "{ended} ticks ended before the row was read");
    std::fs::write(flag.path().join("die"), "").unwrap();
    wait_until(Duration::from_secs(15), "the crash held back", || {
        err.text().contains("held back: the game is silenced until")
    });
    assert!(received(&hook).is_empty());
    // The tool ends it: the game, still down, is announced once.
    s.client
        .batch_execute(&format!(
            "UPDATE {table} SET ends_at = greatest(now(), starts_at) WHERE ends_at > now()"
        ))
        .unwrap();
    wait_until(Duration::from_secs(15), "the announcement", || {
        !received(&hook).is_empty()
    });
    let got = received(&hook);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["details"]["after_silence"], true);

    // An older schema: the table gone, the daemon says run migrate and
    // goes on ticking.
    s.client
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
    wait_until(Duration::from_secs(10), "the warning", || {
        err.text().contains("run `rtinspect migrate`")
    });
    more_ticks(&err, 2);
    daemon.terminate();
}

/// The most a process has held resident, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Inserts one silence with psql (`columns`, and `values` after a fresh
/// `silence_id`) holding a 64 MiB `what`, runs the daemon eight ticks past
/// its reading of the row and asserts its peak RSS stays under 32 MiB.
fn huge_row_is_not_read_at_every_tick(schema: &str, columns: &str, values: &str, what: &str) {
    let Some(live) = live_docker() else { return };
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, schema);
    s.migrate();
    let table = s.silences();
    s.client
        .batch_execute(&format!(
            "INSERT INTO {table} ({columns}) VALUES (gen_random_uuid(), {values})"
        ))
        .unwrap();
    let (daemon, _out, err) = Daemon::watched(
        bin()
            .arg("run")
            .args(s.args())
            .args(["--report", "incidents", "--interval", "250ms"])
            .args(["--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    wait_until(Duration::from_secs(20), "the row read", || {
        err.text()
            .contains("silences read: 1 not over, 1 in force now")
    });
    more_ticks(&err, 8);
    let peak = peak_rss_kib(daemon.id());
    eprintln!("peak RSS with a 64 MiB {what} in the silences table: {peak} KiB");
    assert!(peak < 32 * 1024, "{peak} KiB");
    assert!(daemon.terminate().success(), "{}", err.text());
}

#[test]
fn a_64_mib_comment_inserted_by_psql_is_not_read_at_every_tick() {
    huge_row_is_not_read_at_every_tick(
        "silencehuge",
        "silence_id, game_id, ends_at, comment",
        "'g-1', now() + interval '1 hour', repeat('x', 64 << 20)",
        "comment",
    );
}

#[test]
fn a_64_mib_game_id_inserted_by_psql_is_not_read_at_every_tick() {
    huge_row_is_not_read_at_every_tick(
        "silencehugeid",
        "silence_id, game_id, ends_at",
        "repeat('g', 64 << 20), now() + interval '1 hour'",
        "game id",
    );
}
