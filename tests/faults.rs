//! Faults: nothing lost across a stop with the sink down, baselines that
//! survive kill -9, a daemon that keeps ticking through a hostile engine, and
//! decoders and the config parser that never panic on generated input.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::support::{
    Containers, FakeEngine, Reply, StoppedGame, TempDir, bin, events, hex_id, inspect_body,
    labelled_list, live_docker, rows_and_distinct, send_signal, succeeded, terminate, wait_until,
};

fn emitted(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("tick: 1 records, 1 events"))
        .count()
}

#[test]
fn stop_with_the_sink_down_spools_and_the_next_start_delivers_exactly_once() {
    let Some(mut g) = StoppedGame::start("spool") else {
        return;
    };
    let (live, url) = (g.live, g.url.clone());
    let state = TempDir::new("spool-state");
    let state_dir = state.path().join("state");
    let state_arg = state_dir.to_str().unwrap();

    let child = g
        .command("200ms")
        .args(["--state-dir", state_arg])
        // Ticks like the last one are logged at debug: count them all.
        .env("RUST_LOG", "rtinspect=debug")
        .spawn()
        .unwrap();
    let s = &mut g.schema;
    wait_until(Duration::from_secs(20), "a delivered event", || {
        s.event_rows().len() >= 2
    });
    // The sink starts refusing (its table is gone) while records still read:
    // events pile up in the queue. Then PostgreSQL goes down altogether.
    s.client
        .batch_execute(&format!(
            "ALTER TABLE {} RENAME TO parked_events",
            s.events()
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    g.cluster.down();
    let out = terminate(child);
    let first = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "a stop with everything spooled is a clean stop: {first}"
    );
    let spool = std::fs::read_to_string(state_dir.join("spool.postgres.jsonl")).expect("a spool");
    let spooled = spool.lines().count();
    assert!(spooled >= 1, "{first}");
    assert!(
        first.contains(&format!("{spooled} undelivered events spooled")),
        "{first}"
    );

    // Back up, table back; the next start publishes the spool first.
    g.cluster.up();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "ALTER TABLE {schema}.parked_events RENAME TO runtime_health_events;
             UPDATE {records} SET status = 'stopped'",
            schema = s.name,
            records = s.records()
        ))
        .unwrap();
    let out = bin()
        .arg("once")
        .args(s.args())
        .args([
            "--state-dir",
            state_arg,
            "--docker-host",
            &live.docker_host(),
        ])
        .output()
        .unwrap();
    let second = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{second}");
    assert!(
        second.contains(&format!("publishing {spooled} spooled events first")),
        "{second}"
    );
    assert!(
        !state_dir.join("spool.postgres.jsonl").exists(),
        "a delivered spool is removed"
    );

    let (total, distinct) = rows_and_distinct(&mut client, &s.events());
    assert_eq!(
        total as usize,
        emitted(&first),
        "every emitted event is a row: {first}"
    );
    assert_eq!(total, distinct, "no event twice");
    for line in spool.lines() {
        let id = serde_json::from_str::<serde_json::Value>(line).unwrap()["event_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE event_id = $1::text::uuid",
                    s.events()
                ),
                &[&id],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "spooled {id}");
    }
}

#[test]
fn kill_9_then_restart_reports_a_restart_made_while_down() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "kill9");
    let crash = c.run(
        "g-crash",
        &["--restart", "always"],
        &["sh", "-c", "sleep 4; exit 1"],
    );
    wait_until(Duration::from_secs(20), "running", || {
        c.inspect(&crash, "{{.State.Status}}") == "running"
    });
    let state = TempDir::new("kill9-state");
    let state_dir = state.path().to_str().unwrap().to_owned();
    let child = bin()
        .args([
            "run",
            "--interval",
            "200ms",
            "--label",
            &c.label,
            "--state-dir",
            &state_dir,
        ])
        .env("DOCKER_HOST", live.docker_host())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let saved = state.path().join("baselines.json");
    // The restart count in the saved baselines, if they hold this container.
    let saved_count = || {
        let text = std::fs::read_to_string(&saved).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let b = &v["baselines"]["g-crash"];
        (b["container_id"] == crash.as_str())
            .then(|| b["restart_count"].as_u64())
            .flatten()
    };
    wait_until(Duration::from_secs(10), "saved baselines", || {
        saved_count().is_some()
    });
    send_signal(&child, "-KILL");
    let _ = child.wait_with_output();
    // Read after the kill: a restart seen and saved just before it is no
    // longer news to the next start.
    let seen = saved_count().unwrap();

    // While rtinspect is down, the policy restarts the container.
    wait_until(Duration::from_secs(30), "a restart while down", || {
        let now = c.inspect(&crash, "{{.RestartCount}} {{.State.Status}}");
        let (count, status) = now.split_once(' ').unwrap();
        count.parse::<u64>().unwrap() > seen && status == "running"
    });
    let out = succeeded(
        bin()
            .args(["once", "--label", &c.label, "--state-dir", &state_dir])
            .env("DOCKER_HOST", live.docker_host()),
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["game_id"], "g-crash");
    assert_eq!(ev[0]["details"]["state"], "running");
    assert!(ev[0]["details"]["restart_count"].as_u64().unwrap() > seen);

    // Without the saved baselines the same look reports nothing: a first
    // observation of a running container only seeds.
    let out = bin()
        .args(["once", "--label", &c.label])
        .env("DOCKER_HOST", live.docker_host())
        .output()
        .unwrap();
    assert!(events(&out).is_empty() || events(&out)[0]["details"]["state"] != "running");
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_hostile_engine_costs_errors_not_memory_and_good_answers_still_count() {
    let calls = Arc::new(AtomicUsize::new(0));
    let k = calls.clone();
    let engine = FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            return Reply::Json(200, labelled_list([(1, "g")]));
        }
        match k.fetch_add(1, SeqCst) % 6 {
            0 => Reply::Hang,
            1 => Reply::ResetMidBody {
                len: 5000,
                sent: 700,
            },
            2 => Reply::Json(
                200,
                format!(
                    r#"{{"Id":"{}","Junk":"{}"}}"#,
                    hex_id(1),
                    "x".repeat(20 << 20)
                ),
            ),
            3 => Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n\x00\xff{[garb".to_vec()),
            4 => Reply::Json(200, format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
            _ => Reply::Json(200, inspect_body(&hex_id(1), 0, "exited", None)),
        }
    });
    let child = bin()
        .args(["run", "--interval", "100ms", "--docker-timeout", "400ms"])
        .args(["--docker-host", &engine.docker_host()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(Duration::from_secs(60), "three rounds of faults", || {
        calls.load(SeqCst) >= 18
    });
    let peak = vm_hwm_kib(pid).unwrap();
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ev = events(&out);
    assert!(
        ev.len() >= 3,
        "every good answer after the faults is reported: {}",
        ev.len()
    );
    assert!(ev.iter().all(|e| e["details"]["state"] == "exited"));
    // Peak RSS includes the 20 MB body refused at 1 MiB: it was never read whole.
    eprintln!("peak RSS under faults: {peak} KiB");
    assert!(peak < 16 * 1024, "peak RSS {peak} KiB");
}

/// A tiny deterministic generator (xorshift), so the fuzz runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            b.push(b'{');
        }
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] = rng.next() as u8,
            1 => {
                b.remove(i);
            }
            2 => {
                let alphabet = b"{}[]\",:0-9e\\u";
                b.insert(i, alphabet[rng.below(alphabet.len())]);
            }
            3 => b.truncate(i),
            4 => {
                let j = rng.below(b.len());
                let chunk: Vec<u8> = b[i.min(j)..i.max(j)].to_vec();
                b.splice(i..i, chunk);
            }
            _ => b.insert(i, b'"'),
        }
    }
    b
}

#[test]
fn decoders_never_panic_on_generated_bodies() {
    let seeds = [
        crate::support::inspect_body(&hex_id(1), 3, "running", Some("unhealthy")).into_bytes(),
        include_bytes!("bench/inspect.json").to_vec(),
        br#"[{"Id":"aa","Created":1,"Labels":{"rtinspect.game-id":"g"}}]"#.to_vec(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let body = mutate(&mut rng, &seeds[round % seeds.len()]);
        if let Ok(o) = rtinspect::docker::decode_inspect(&body) {
            accepted += 1;
            assert!(rtinspect::docker::is_valid_container_ref(&o.container_id));
        }
        let _ = rtinspect::docker::decode_list(&body, "rtinspect.game-id");
    }
    // The generator must also produce valid bodies, or it tests only errors.
    assert!(accepted > 100, "accepted {accepted}");
}

#[test]
fn the_config_parser_never_panics_on_generated_arguments() {
    let words = [
        "run",
        "once",
        "migrate",
        "--interval",
        "--interval=",
        "15s",
        "0s",
        "250ms",
        "99999999999h",
        "--docker-host",
        "unix:///x",
        "tcp://h",
        "--database-url",
        "host=x",
        "postgres://a:b@c/d",
        "postgres://",
        "--sink",
        "postgres",
        "stdout",
        "--label",
        "",
        "\u{0}",
        "--metrics-addr",
        "127.0.0.1:0",
        "[::1]:9",
        "--records-table",
        "a.b",
        "a.b.c",
        "--state-dir",
        "/tmp",
        "--log-format",
        "json",
        "--notify-channel",
        "-",
        "--",
        "-V",
        "=",
        "é",
    ];
    let envs = [
        "RTINSPECT_INTERVAL",
        "DOCKER_HOST",
        "RTINSPECT_SINK",
        "STATE_DIRECTORY",
    ];
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let args: Vec<String> = (0..rng.below(6))
            .map(|_| words[rng.below(words.len())].to_string())
            .collect();
        let env: Vec<(&str, String)> = (0..rng.below(3))
            .map(|_| {
                (
                    envs[rng.below(envs.len())],
                    words[rng.below(words.len())].to_string(),
                )
            })
            .collect();
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        if let Err(e) = rtinspect::config::Config::parse(args.clone(), &lookup) {
            assert!(
                !e.message.is_empty() && !e.message.contains('\n'),
                "{args:?}: {e}"
            );
        }
    }
}
