//! The largest configuration of notification URLs (16 chats, each a sink
//! with its publisher thread) under the unit's limits: every thread on
//! within `TasksMax`, a start refused a thread naming it, and 16 chats
//! blocked at SIGTERM each spooling its event for the next start.

use std::time::{Duration, Instant};

use crate::support::{
    Daemon, Engine, HookReply, HookServer, PidsCgroup, TempDir, bin, free_addr, game_box, http_get,
    wait_until,
};

/// The unit's `TasksMax`, as packaging/rtinspect.service ships it.
fn units_tasks_max() -> usize {
    let unit = include_str!("../packaging/rtinspect.service");
    unit.lines()
        .find_map(|l| l.strip_prefix("TasksMax="))
        .and_then(|v| v.trim().parse().ok())
        .expect("the unit sets TasksMax to a number")
}

/// The most notification URLs one rtinspect takes: 16 chats `chat1` to
/// `chat16`, each posting to its own path (`/hook1` …) of `hook`, as
/// `RTINSPECT_NOTIFY` takes them once joined by spaces.
fn sixteen_chats(hook: &HookServer) -> Vec<String> {
    (1..=16)
        .map(|i| format!("generic+{}?name=chat{i}", hook.url(&format!("/hook{i}"))))
        .collect()
}

#[test]
fn the_most_sinks_with_every_thread_on_run_under_the_units_tasks_max() {
    let Some(cgroup) = PidsCgroup::new(units_tasks_max()) else {
        return;
    };
    let engine = Engine::start();
    engine.put(1, game_box("g-1", "exited"));
    let hook = HookServer::start(|_, _| HookReply::ok());
    // 16 chats: the most sinks one rtinspect runs, each a
    // publisher thread; with the events reader, the metrics listener and
    // the log tail's readers.
    let urls = sixteen_chats(&hook);
    let metrics = free_addr();
    let (daemon, _out, err) = Daemon::watched(
        cgroup
            .bin_inside()
            .args(["run", "--docker-host", &engine.docker_host()])
            .args(["--interval", "300ms", "--events", "on", "--log-lines", "10"])
            .args(["--metrics-addr", &metrics])
            .env("RTINSPECT_NOTIFY", urls.join(" ")),
    );
    wait_until(Duration::from_secs(30), "every chat told", || {
        let told: std::collections::HashSet<String> =
            hook.requests().into_iter().map(|r| r.path).collect();
        (1..=16).all(|i| told.contains(&format!("/hook{i}"))) || err.text().contains("cannot start")
    });
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", daemon.id()))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let exposition = http_get(&metrics, "/metrics").map(|(_, body)| body);
    eprintln!(
        "TasksMax {}: {} threads {threads:?}, pids.current {}, pids.events {:?}",
        units_tasks_max(),
        threads.len(),
        cgroup.read("pids.current").trim(),
        cgroup.read("pids.events").trim()
    );
    // `max N` counts the thread spawns the limit refused.
    assert_eq!(cgroup.read("pids.events").trim(), "max 0", "{}", err.text());
    assert!(exposition.is_some(), "{}", err.text());
    assert!(daemon.terminate().success(), "{}", err.text());
}

#[test]
fn a_tasks_max_short_of_the_largest_configuration_stops_the_start_naming_the_thread() {
    let engine = Engine::start();
    engine.put(1, game_box("g-1", "exited"));
    let hook = HookServer::start(|_, _| HookReply::ok());
    let urls = sixteen_chats(&hook);
    // The largest configuration runs 24 threads: a limit under it refuses
    // one of them, whichever the start has come to.
    for max in [4, 12, 19, 20, 23] {
        let Some(cgroup) = PidsCgroup::new(max) else {
            return;
        };
        let (daemon, _out, err) = Daemon::watched(
            cgroup
                .bin_inside()
                .args(["run", "--docker-host", &engine.docker_host()])
                .args(["--interval", "300ms", "--events", "on", "--log-lines", "10"])
                .args(["--metrics-addr", &free_addr()])
                .env("RTINSPECT_NOTIFY", urls.join(" ")),
        );
        let status = daemon.wait();
        let said = err.text();
        eprintln!("pids.max {max}: {status}: {said}");
        assert_eq!(status.code(), Some(1), "an exit, not an abort: {said}");
        assert!(
            said.contains("cannot start the") || said.contains("cannot start a"),
            "{said}"
        );
        assert!(said.contains("thread"), "{said}");
        // A publisher says whose it is: the sink after the last started.
        if said.contains("publisher") {
            let started = max - 3;
            assert!(
                said.contains(&format!("of the sink chat{}:", started + 1)),
                "{said}"
            );
        }
        assert!(said.contains("Resource temporarily unavailable"), "{said}");
        assert_ne!(cgroup.read("pids.events").trim(), "max 0");
    }
}

#[test]
fn sixteen_chats_blocked_at_sigterm_each_spool_their_event_and_the_next_start_sends_it() {
    let engine = Engine::start();
    engine.put(1, game_box("g-1", "exited"));
    // Every chat takes the request and never answers (as a receiver frozen
    // with SIGSTOP, whose kernel still accepts): each sink is blocked in
    // its own send when SIGTERM comes.
    let hook = HookServer::start(|_, _| HookReply::Hang);
    let state = TempDir::new("notify-blocked-sigterm");
    let urls = sixteen_chats(&hook);
    let start = || {
        let mut c = bin();
        c.args([
            "--docker-host",
            &engine.docker_host(),
            "--interval",
            "300ms",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .env("RTINSPECT_NOTIFY", urls.join(" "));
        c
    };
    let (daemon, _out, err) = Daemon::watched(start().arg("run"));
    wait_until(Duration::from_secs(30), "a send to each chat", || {
        let asked: std::collections::HashSet<String> =
            hook.requests().into_iter().map(|r| r.path).collect();
        asked.len() == 16
    });
    let blocked = hook.requests().len();
    let stopping = Instant::now();
    let status = daemon.terminate();
    let said = err.text();
    eprintln!("exit {status} {:?} after SIGTERM", stopping.elapsed());
    assert!(
        status.success(),
        "a stop with everything spooled is clean: {said}"
    );
    for i in 1..=16 {
        let spool = state.path().join(format!("spool.chat{i}.jsonl"));
        let text = std::fs::read_to_string(&spool).unwrap_or_default();
        assert!(
            text.lines().count() >= 1,
            "chat{i}'s event in its spool: {said}"
        );
    }

    // The chats answer again: the next start sends each spool first.
    hook.set_handler(|_, _| HookReply::ok());
    let out = start().arg("once").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let sent: std::collections::HashSet<String> = hook.requests()[blocked..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(sent.len(), 16, "{said}");
    for i in 1..=16 {
        assert!(
            !state.path().join(format!("spool.chat{i}.jsonl")).exists(),
            "chat{i}'s spool delivered: {said}"
        );
    }
}
