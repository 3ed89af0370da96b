//! Only failures page people (issue 27), on the real dockerd: an operator's
//! `docker stop`, `docker restart`, `docker rm -f` and a new container, and
//! a compose `up -d --force-recreate` open no incident; a game that exits 3
//! or 0 by itself, whose process is killed from the host, or that runs out
//! of memory opens exactly one, saying how it ended; a crash loop stopped
//! through the API, while it runs or in the restart back-off, resolves as
//! `stopped`. Each runs `rtinspect run` (events on, a tick a second) on
//! stdout and counts every incident event it printed.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Containers, Daemon, IMAGE, LiveDocker, StderrLines, TempDir, envelopes, first_tick,
    live_docker, succeeded, wait_until,
};

/// `rtinspect run` over the test's label, incidents and facts on stdout;
/// the facts are only the test's clock of looks.
fn watch(c: &Containers<'_>, extra: &[&str]) -> (Daemon, StderrLines, StderrLines) {
    let (daemon, out, err) = Daemon::watched(
        c.daemon()
            .args(["--sink", "stdout", "--report", "both", "--interval", "1s"])
            .args(extra),
    );
    first_tick(&err);
    (daemon, out, err)
}

/// Every incident event printed so far.
fn incidents(out: &StderrLines) -> Vec<serde_json::Value> {
    envelopes(out)
        .into_iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("incident_"))
        })
        .collect()
}

/// Waits for `n` more ticks from now: whatever the last change was to
/// bring has been looked at by then, by events and by ticks alike.
fn ticks(err: &StderrLines, n: usize) {
    let since = Instant::now();
    wait_until(Duration::from_secs(60), "more ticks", || {
        err.count_between(since, Instant::now(), "tick:") >= n
    });
}

/// Waits until the game's container has been looked at running.
fn seen_running(c: &Containers<'_>, id: &str, err: &StderrLines) {
    wait_until(Duration::from_secs(30), "running", || {
        c.inspect(id, "{{.State.Status}}") == "running"
    });
    ticks(err, 2);
}

/// A game that runs until stopped (PID 1 ignores TERM: a `docker stop`
/// sends KILL after its timeout, as most game servers see it).
const FOREVER: &[&str] = &["sleep", "100000"];

fn assert_no_incident(out: &StderrLines, err: &StderrLines, what: &str) {
    assert_eq!(
        incidents(out),
        Vec::<serde_json::Value>::new(),
        "{what}: {}",
        err.text()
    );
}

#[test]
fn docker_stop_opens_no_incident() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-stop");
    let (daemon, out, err) = watch(&c, &[]);
    let id = c.run("g-stop", &[], FOREVER);
    seen_running(&c, &id, &err);
    live.docker(&["stop", "-t", "1", &id]);
    ticks(&err, 4);
    assert_no_incident(&out, &err, "docker stop");
    assert!(daemon.terminate().success());
}

#[test]
fn docker_restart_opens_no_incident() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-restart");
    let (daemon, out, err) = watch(&c, &[]);
    let id = c.run("g-restart", &[], FOREVER);
    seen_running(&c, &id, &err);
    live.docker(&["restart", "-t", "1", &id]);
    ticks(&err, 4);
    assert_eq!(c.inspect(&id, "{{.State.Status}}"), "running");
    assert_no_incident(&out, &err, "docker restart");
    assert!(daemon.terminate().success());
}

#[test]
fn docker_rm_f_and_a_new_container_of_the_game_open_no_incident() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-replace");
    let (daemon, out, err) = watch(&c, &[]);
    let old = c.run("g-replace", &[], FOREVER);
    seen_running(&c, &old, &err);
    c.remove(&old);
    let new = c.run("g-replace", &[], FOREVER);
    seen_running(&c, &new, &err);
    ticks(&err, 2);
    assert_no_incident(&out, &err, "docker rm -f, docker run");
    assert!(daemon.terminate().success());
}

/// A compose project of `services` games under the test's label, brought
/// down (and its containers removed) on drop.
struct Project<'a> {
    live: &'a LiveDocker,
    dir: TempDir,
    name: String,
}

impl<'a> Project<'a> {
    fn new(live: &'a LiveDocker, label: &str, services: usize) -> Project<'a> {
        let dir = TempDir::new("compose");
        let mut yaml = String::from("version: \"2.4\"\nservices:\n");
        for i in 0..services {
            yaml.push_str(&format!(
                "  game{i}:\n    image: {IMAGE}\n    command: [\"sleep\", \"100000\"]\n    \
                 network_mode: none\n    stop_grace_period: 1s\n    labels:\n      \
                 {label}: game-{i}\n"
            ));
        }
        std::fs::write(dir.path().join("docker-compose.yml"), yaml).unwrap();
        let name = format!("rtends{}", std::process::id());
        Project { live, dir, name }
    }

    /// Runs Debian's docker-compose (1.29) on the project.
    fn compose(&self, args: &[&str]) {
        succeeded(
            Command::new("docker-compose")
                .current_dir(self.dir.path())
                .env("DOCKER_HOST", self.live.docker_host())
                .args(["-p", &self.name])
                .args(args),
        );
    }

    fn running(&self) -> usize {
        let label = format!("com.docker.compose.project={}", self.name);
        self.live
            .docker(&["ps", "-q", "--filter", &format!("label={label}")])
            .lines()
            .count()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .current_dir(self.dir.path())
            .env("DOCKER_HOST", self.live.docker_host())
            .args(["-p", &self.name, "down", "-t", "1"])
            .output();
    }
}

#[test]
fn a_compose_force_recreate_of_ten_games_opens_no_incident() {
    let Some(live) = live_docker() else { return };
    let c = Containers::new(live, "ends-compose");
    let project = Project::new(live, &c.label, 10);
    let (daemon, out, err) = watch(&c, &[]);
    project.compose(&["up", "-d"]);
    wait_until(Duration::from_secs(60), "ten games up", || {
        project.running() == 10
    });
    ticks(&err, 2);
    project.compose(&["up", "-d", "--force-recreate"]);
    wait_until(Duration::from_secs(60), "ten games up again", || {
        project.running() == 10
    });
    ticks(&err, 4);
    assert_no_incident(&out, &err, "compose up -d --force-recreate");
    assert!(daemon.terminate().success());
}

/// Waits for the game's first incident and a few ticks more, then returns
/// every incident event: exactly one is expected.
fn the_one_incident(out: &StderrLines, err: &StderrLines) -> serde_json::Value {
    wait_until(Duration::from_secs(60), "the incident", || {
        !incidents(out).is_empty()
    });
    ticks(err, 4);
    let all = incidents(out);
    assert_eq!(all.len(), 1, "{all:#?}\n{}", err.text());
    assert_eq!(all[0]["event_type"], "incident_opened");
    all[0].clone()
}

#[test]
fn a_game_exiting_3_by_itself_is_one_incident_crashed_with_its_exit_code() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-crash");
    let (daemon, out, err) = watch(&c, &[]);
    c.run("g-crash", &[], &["sh", "-c", "sleep 3; exit 3"]);
    let opened = the_one_incident(&out, &err);
    assert_eq!(opened["details"]["kind"], "not_running");
    assert_eq!(opened["details"]["reason"], "crashed");
    assert_eq!(opened["details"]["exit_code"], 3);
    assert!(opened["details"].get("signal").is_none(), "{opened}");
    assert!(daemon.terminate().success());
}

#[test]
fn a_game_exiting_0_by_itself_is_one_incident_exited() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-exit0");
    let (daemon, out, err) = watch(&c, &[]);
    c.run("g-exit0", &[], &["sh", "-c", "sleep 3; exit 0"]);
    let opened = the_one_incident(&out, &err);
    assert_eq!(opened["details"]["reason"], "exited");
    assert_eq!(opened["details"]["seen"]["exit_code"], 0);
    assert!(daemon.terminate().success());
}

#[test]
fn a_game_killed_from_the_host_is_one_incident_crashed_by_signal_kill() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-hostkill");
    let (daemon, out, err) = watch(&c, &[]);
    let id = c.run("g-hostkill", &[], FOREVER);
    seen_running(&c, &id, &err);
    let pid = c.inspect(&id, "{{.State.Pid}}");
    let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(killed.success(), "kill -9 {pid} (needs root)");
    let opened = the_one_incident(&out, &err);
    assert_eq!(opened["details"]["reason"], "crashed");
    assert_eq!(opened["details"]["exit_code"], 137);
    assert_eq!(opened["details"]["signal"], "KILL");
    assert!(daemon.terminate().success());
}

#[test]
fn a_game_out_of_memory_is_one_incident_oom() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-oom");
    let (daemon, out, err) = watch(&c, &[]);
    // 64 MiB held by PID 1 itself, in a 32 MiB cgroup with no swap (busybox
    // sh drops NUL bytes from $(…), so /dev/zero would allocate nothing).
    let Some(_) = c.try_run(
        "g-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &[
            "sh",
            "-c",
            "sleep 2; x=$(head -c 64m /dev/urandom); sleep 100000",
        ],
    ) else {
        panic!("docker run --memory 32m refused");
    };
    let opened = the_one_incident(&out, &err);
    assert_eq!(opened["details"]["reason"], "oom");
    assert_eq!(opened["details"]["oom"], true);
    assert!(daemon.terminate().success());
}

/// A game under `--restart=always` that exits 3 after `run_s` seconds,
/// watched until its crash loop opens (the third restart).
fn crash_loop<'a>(
    live: &'a LiveDocker,
    test: &str,
    run_s: u32,
) -> (Containers<'a>, String, Daemon, StderrLines, StderrLines) {
    let mut c = Containers::new(live, test);
    let (daemon, out, err) = watch(&c, &[]);
    let cmd = format!("sleep {run_s}; exit 3");
    let id = c.run("g-loop", &["--restart=always"], &["sh", "-c", &cmd]);
    wait_until(Duration::from_secs(120), "the crash loop", || {
        incidents(&out)
            .iter()
            .any(|e| e["details"]["kind"] == "crash_loop")
    });
    (c, id, daemon, out, err)
}

/// Waits until Docker holds the game back before its sixth restart or a
/// later one, seconds by then.
fn in_a_long_back_off(c: &Containers<'_>, id: &str) {
    wait_until(Duration::from_secs(60), "a long back-off", || {
        let state = c.inspect(id, "{{.State.Status}} {{.RestartCount}}");
        let (status, count) = state.split_once(' ').unwrap();
        status == "restarting" && count.parse::<u32>().unwrap() >= 6
    });
}

/// The incident events after the crash loop opened: one `incident_resolved`,
/// as `stopped`, of the same incident.
fn resolved_as_stopped(out: &StderrLines, err: &StderrLines) {
    wait_until(Duration::from_secs(30), "the resolution", || {
        incidents(out)
            .iter()
            .any(|e| e["event_type"] == "incident_resolved")
    });
    ticks(err, 4);
    let all = incidents(out);
    let resolved: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["event_type"] == "incident_resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
    assert_eq!(resolved[0]["details"]["resolution"], "stopped");
    assert_eq!(resolved[0]["details"]["reason"], "stopped");
    assert_eq!(
        resolved[0]["details"]["incident_id"],
        all[0]["details"]["incident_id"]
    );
    assert_eq!(all.last(), Some(resolved[0]), "nothing after: {all:#?}");
}

#[test]
fn a_crash_loop_stopped_while_it_runs_resolves_as_stopped() {
    let Some(live) = live_docker() else { return };
    let (c, id, daemon, out, err) = crash_loop(live, "ends-loop-run", 6);
    wait_until(Duration::from_secs(60), "running again", || {
        c.inspect(&id, "{{.State.Status}}") == "running"
    });
    live.docker(&["stop", "-t", "1", &id]);
    resolved_as_stopped(&out, &err);
    assert!(daemon.terminate().success());
}

#[test]
fn a_crash_loop_stopped_in_its_restart_back_off_resolves_as_stopped() {
    let Some(live) = live_docker() else { return };
    // Dying at once, its back-off doubles from 100 ms: by the sixth
    // restart Docker waits seconds, `restarting`, before the next start.
    let (c, id, daemon, out, err) = crash_loop(live, "ends-loop-wait", 0);
    in_a_long_back_off(&c, &id);
    live.docker(&["stop", "-t", "1", &id]);
    assert_eq!(c.inspect(&id, "{{.State.Status}}"), "exited");
    resolved_as_stopped(&out, &err);
    assert!(daemon.terminate().success());
}

#[test]
fn a_crash_loop_killed_in_its_restart_back_off_is_found_stopped_by_a_look() {
    let Some(live) = live_docker() else { return };
    // `docker kill` in the back-off sends no event at all: the tick finds
    // the container exited under `always`, which only the API can do.
    let (c, id, daemon, out, err) = crash_loop(live, "ends-loop-kill", 0);
    in_a_long_back_off(&c, &id);
    live.docker(&["kill", &id]);
    assert_eq!(c.inspect(&id, "{{.State.Status}}"), "exited");
    resolved_as_stopped(&out, &err);
    assert!(daemon.terminate().success());
}

#[test]
fn a_stop_made_while_rtinspect_was_down_is_replayed_and_opens_no_incident() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "ends-replay");
    let state = TempDir::new("ends-replay");
    let dir = state.path().to_str().unwrap().to_owned();
    let id = c.run("g-replay", &[], FOREVER);
    let (daemon, _, err) = watch(&c, &["--state-dir", &dir]);
    seen_running(&c, &id, &err);
    // An event it took, so that it has a time to resume from.
    live.docker(&["kill", "-s", "USR1", &id]);
    ticks(&err, 3);
    assert!(daemon.terminate().success());
    // Stopped while rtinspect is down; then it starts again on its state.
    live.docker(&["stop", "-t", "1", &id]);
    let (daemon, out, err) = watch(&c, &["--state-dir", &dir]);
    // Past the wait for a die no event brought, and a few ticks more.
    ticks(&err, 10);
    assert_no_incident(&out, &err, "a stop while rtinspect was down");
    assert!(daemon.terminate().success());
}
