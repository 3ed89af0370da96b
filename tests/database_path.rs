//! The database path loses nothing: what once kept events out of the events
//! table or held them up, against the real PostgreSQL — a NUL in a text
//! Docker sends, one event the server refuses while it takes the others, a
//! queue full while the server refuses writes, a primary that turned
//! read-only, `migrate` run by several hosts at once.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use crate::support::{
    Daemon, FakeEngine, PgCluster, Reply, StderrLines, TempDir, TestSchema, bin, hex_id,
    inspect_body, json_lines, live_pg, succeeded, wait_until,
};

/// An inspect body of an exited container `id` whose `State.Error` and last
/// probe output hold `text` (JSON-escaped already).
fn exited_saying(id: &str, text: &str) -> String {
    format!(
        r#"{{"Id":"{id}","RestartCount":0,"State":{{"Status":"exited","Running":false,
        "ExitCode":1,"OOMKilled":false,"Error":"{text}","StartedAt":"2026-11-26T21:00:00Z",
        "FinishedAt":"2026-11-26T21:00:05Z","Health":{{"Status":"unhealthy","FailingStreak":3,
        "Log":[{{"Output":"{text}"}}]}}}}}}"#
    )
}

#[test]
fn a_nul_in_a_probe_output_or_state_error_keeps_no_event_out_of_the_table() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::migrated(
        url,
        "nul",
        &[
            ("g-nul", "running", "game-nul"),
            ("g-ok", "running", "game-ok"),
        ],
    );
    let engine = FakeEngine::start(|path| {
        if path.contains("game-nul") {
            Reply::Json(200, exited_saying(&hex_id(1), r"probe\u0000said no"))
        } else {
            Reply::Json(200, exited_saying(&hex_id(2), "probe said no"))
        }
    });
    let mut said = String::new();
    for (details, report) in [("extended", "facts"), ("basic", "both")] {
        let out = bin()
            .arg("once")
            .args(s.args())
            .args(["--docker-host", &engine.docker_host()])
            .args(["--details", details, "--report", report])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        said.push_str(&stderr);
    }
    let rows = s.event_rows();
    let of = |game: &str| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r.1 == game).map(|r| &r.3).collect()
    };
    let (nul, ok) = (of("g-nul"), of("g-ok"));
    assert!(!ok.is_empty());
    assert_eq!(nul.len(), ok.len(), "{said}");
    assert!(!said.contains("refused"), "{said}");
    // The extended fact carries the cleaned texts.
    let fact = nul
        .iter()
        .find(|d| d.get("error").is_some())
        .expect("the extended fact");
    assert_eq!(fact["error"], "probe\u{FFFD}said no");
    assert_eq!(fact["health_output"], "probe\u{FFFD}said no");
    // The incident event of the second run is there too.
    let incidents = s.count_events("game_id = 'g-nul' AND event_type LIKE 'incident%'");
    assert_eq!(incidents, 1);
}

#[test]
fn concurrent_migrates_on_a_fresh_database_all_succeed() {
    let Some(url) = live_pg() else { return };
    for round in 0..5 {
        let s = TestSchema::new(url, &format!("concmigrate{round}"));
        let hosts: Vec<std::process::Child> = (0..4)
            .map(|_| {
                bin()
                    .arg("migrate")
                    .args(s.args())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<std::process::Output> = hosts
            .into_iter()
            .map(|h| h.wait_with_output().unwrap())
            .collect();
        for out in &outs {
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // One of them made each object; the others found it.
        let created = outs
            .iter()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .matches("created ")
                    .count()
            })
            .sum::<usize>();
        assert_eq!(created, 6, "round {round}: three tables and three indexes");
    }
}

/// The key of the migrate lock (the bytes of `rtinspct`).
const MIGRATE_LOCK: i64 = 0x7274_696e_7370_6374;

#[test]
fn migrates_waiting_for_the_migrate_lock_outlast_a_sessions_lock_timeout() {
    let Some(url) = live_pg() else { return };
    // A role or database `lock_timeout`, as a session setting of this URL.
    let mut s = TestSchema::new(url, "locktimeout");
    s.url = format!("{url} options='-c lock_timeout=50'");
    let mut holder = postgres::Client::connect(url, postgres::NoTls).unwrap();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .unwrap();
    let waiting = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND a.query LIKE '%pg_advisory_xact_lock%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = waiting(&mut holder);
    let hosts: Vec<std::process::Child> = (0..2)
        .map(|_| {
            bin()
                .arg("migrate")
                .args(s.args())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both wait behind the held lock; an old build's have failed by then.
    let mut hosts = hosts;
    wait_until(
        Duration::from_secs(30),
        "both migrates waiting or ended",
        || {
            waiting(&mut holder) >= before + 2
                || hosts.iter_mut().any(|h| h.try_wait().unwrap().is_some())
        },
    );
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .unwrap();
    for h in hosts {
        let out = h.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `(host, port)` of a cluster's socket URL (`host=DIR port=P …`).
fn host_and_port(url: &str) -> (String, String) {
    let value = |key: &str| {
        url.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .unwrap()
            .to_owned()
    };
    (value("host="), value("port="))
}

/// Sets a cluster's `default_transaction_read_only` and reloads it: how a
/// failover fences the old primary (and here, how the other stands in for a
/// standby until it is promoted). Sessions already open take it too.
fn set_read_only(url: &str, read_only: bool) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let setting = if read_only {
        "ALTER SYSTEM SET default_transaction_read_only = on"
    } else {
        "ALTER SYSTEM RESET default_transaction_read_only"
    };
    c.batch_execute(setting).unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The reload is a signal: wait until a new session sees it.
    let want = if read_only { "on" } else { "off" };
    wait_until(Duration::from_secs(30), "the reload", || {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let row = c
            .query_one("SHOW default_transaction_read_only", &[])
            .unwrap();
        row.get::<_, String>(0) == want
    });
}

/// The events `tick: N records, M events` lines of a debug log say were emitted.
fn emitted(stderr: &StderrLines) -> u64 {
    stderr
        .lines()
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("tick: ")? + 6..];
            let (_, rest) = rest.split_once(" records, ")?;
            rest.split(' ').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Every event id stored in `schema`'s events table through `url`, by game.
fn stored(url: &str, events: &str) -> Vec<(String, String)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        &format!("SELECT event_id::text, game_id FROM {events} ORDER BY occurred_at"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// A fake engine that finds every container exited: each tick emits one
/// event per record.
fn all_exited() -> FakeEngine {
    FakeEngine::start(|path| {
        let n = if path.contains("game-later") { 2 } else { 1 };
        Reply::Json(200, inspect_body(&hex_id(n), 0, "exited", None))
    })
}

#[test]
fn a_primary_turned_read_only_is_left_for_the_one_that_takes_writes() {
    let (Some(primary), Some(standby)) = (PgCluster::start(), PgCluster::start()) else {
        return;
    };
    let (primary_url, standby_url) = (primary.url(), standby.url());
    let schema = TestSchema::migrated(
        &primary_url,
        "failover",
        &[("g-stopped", "running", "game-stopped")],
    );
    // The standby's copy of the schema, with one more record: the records
    // reader must follow the failover too, not only the sink.
    let _copy = TestSchema::migrated(
        &standby_url,
        "failover",
        &[
            ("g-stopped", "running", "game-stopped"),
            ("g-later", "running", "game-later"),
        ],
    );
    set_read_only(&standby_url, true);

    let (a, b) = (host_and_port(&primary_url), host_and_port(&standby_url));
    let url = format!(
        "host={},{} port={},{} user=postgres dbname=postgres target_session_attrs=read-write",
        a.0, b.0, a.1, b.1
    );
    let engine = all_exited();
    let mut cmd = bin();
    cmd.arg("run")
        .args([
            "--database-url",
            &url,
            "--records-table",
            &schema.records(),
            "--events-table",
            &schema.events(),
            "--notify-channel",
            &schema.channel(),
            "--interval",
            "200ms",
            "--docker-host",
            &engine.docker_host(),
        ])
        .env("RUST_LOG", "rtinspect=debug");
    let (daemon, _out, stderr) = Daemon::watched(&mut cmd);
    let events = schema.events();
    wait_until(Duration::from_secs(30), "rows on the primary", || {
        stored(&primary_url, &events).len() >= 3
    });

    // The failover: the primary fenced read-only, the standby promoted.
    set_read_only(&primary_url, true);
    set_read_only(&standby_url, false);
    let promoted = std::time::Instant::now();
    wait_until(
        Duration::from_secs(30),
        "both games' rows on the new primary",
        || {
            let rows = stored(&standby_url, &events);
            rows.iter().filter(|r| r.1 == "g-later").count() >= 2
                && rows.iter().filter(|r| r.1 == "g-stopped").count() >= 2
        },
    );
    let took = promoted.elapsed();
    let status = daemon.terminate();
    assert!(status.success(), "{}", stderr.text());

    let (old, new) = (stored(&primary_url, &events), stored(&standby_url, &events));
    let mut ids: Vec<&str> = old.iter().chain(&new).map(|r| r.0.as_str()).collect();
    let rows = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows, "an event stored twice");
    assert_eq!(rows as u64, emitted(&stderr), "{}", stderr.text());
    assert!(
        old.iter().all(|r| r.1 == "g-stopped"),
        "the old primary never had g-later's record"
    );
    eprintln!(
        "{} rows on the old primary, {} on the new one; both games there {took:?} after the promotion",
        old.len(),
        new.len()
    );
}

#[test]
fn an_event_already_stored_is_not_notified_again() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::migrated(url, "renotify", &[("g-stopped", "running", "game-stopped")]);
    let engine = all_exited();
    let state = TempDir::new("renotify");
    let mut listener = postgres::Client::connect(url, postgres::NoTls).unwrap();
    listener
        .batch_execute(&format!("LISTEN {}", s.channel()))
        .unwrap();
    let args = s.args();
    let once = || {
        succeeded(
            bin()
                .arg("once")
                .args(&args)
                .args(["--docker-host", &engine.docker_host()])
                .arg("--state-dir")
                .arg(state.path()),
        );
    };
    once();
    // The stored event comes back from a spool, as after a commit whose
    // answer was lost, in front of the next run's own event.
    let first = s.event_rows();
    assert_eq!(first.len(), 1);
    let mut notes = listener.notifications();
    let envelope = notes
        .timeout_iter(Duration::from_secs(10))
        .next()
        .unwrap()
        .expect("the first event's notification")
        .payload()
        .to_owned();
    std::fs::write(
        state.path().join("spool.postgres.jsonl"),
        format!("{envelope}\n"),
    )
    .unwrap();
    once();
    assert_eq!(s.event_rows().len(), 2, "the second run's own event");
    // A notification of the test's own, sent after the run ended, comes
    // after every one the run sent: read up to it.
    drop(notes);
    s.client
        .execute("SELECT pg_notify($1, 'end')", &[&s.channel()])
        .unwrap();
    let mut again = Vec::new();
    let mut notes = listener.notifications();
    let mut it = notes.timeout_iter(Duration::from_secs(30));
    loop {
        let note = it.next().unwrap().expect("the test's own notification");
        if note.payload() == "end" {
            break;
        }
        let e: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
        again.push(e["event_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        again.len(),
        1,
        "one notification, the new event's: {again:?} (first: {})",
        first[0].0
    );
    assert_ne!(again[0], first[0].0);
}

/// `rtinspect run` over `s`'s tables and the fake engine at `interval`, its
/// state in `state`, every tick logged.
fn run_over(s: &TestSchema, engine: &FakeEngine, interval: &str, state: &TempDir) -> Command {
    let mut cmd = bin();
    cmd.arg("run")
        .args(s.args())
        .args([
            "--interval",
            interval,
            "--docker-host",
            &engine.docker_host(),
        ])
        .arg("--state-dir")
        .arg(state.path())
        .env("RUST_LOG", "rtinspect=debug");
    cmd
}

/// The lines of a state directory's file, none when it is missing.
fn lines_of(state: &TempDir, name: &str) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(state.path().join(name)).unwrap_or_default())
}

/// A schema of its own, migrated, with two running games: g-bad, whose
/// rows the test makes the database refuse, and g-good.
fn bad_and_good(url: &str, test: &str) -> TestSchema {
    TestSchema::migrated(
        url,
        test,
        &[
            ("g-bad", "running", "game-bad"),
            ("g-good", "running", "game-good"),
        ],
    )
}

#[test]
fn a_trigger_refusing_one_games_rows_holds_up_no_other_game() {
    let Some(url) = live_pg() else { return };
    let mut s = bad_and_good(url, "poison");
    // Not a refused value (class 22 or 23): a plpgsql RAISE, SQLSTATE P0001.
    s.client
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.no_bad() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.game_id = 'g-bad' THEN RAISE EXCEPTION 'g-bad is not welcome'; END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER no_bad BEFORE INSERT ON {events}
               FOR EACH ROW EXECUTE FUNCTION {schema}.no_bad();",
            schema = s.name,
            events = s.events()
        ))
        .unwrap();
    let engine = all_exited();
    let state = TempDir::new("poison");
    let (daemon, _out, stderr) = Daemon::watched(&mut run_over(&s, &engine, "250ms", &state));
    wait_until(Duration::from_secs(30), "g-good's rows", || {
        s.count_events("game_id = 'g-good'") >= 8
    });
    let status = daemon.terminate();
    assert!(status.success(), "{}", stderr.text());

    let good = s.count_events("game_id = 'g-good'") as u64;
    assert_eq!(s.count_events("game_id = 'g-bad'"), 0);
    let rejected = lines_of(&state, "rejected.jsonl");
    assert!(rejected.iter().all(|l| l["envelope"]["game_id"] == "g-bad"));
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("g-bad is not welcome"),
        "{rejected:?}"
    );
    let spooled = lines_of(&state, "spool.postgres.jsonl").len() as u64;
    // Every event is a row, set aside, or spooled for the next start.
    assert_eq!(
        good + rejected.len() as u64 + spooled,
        emitted(&stderr),
        "{}",
        stderr.text()
    );
    eprintln!(
        "g-good {good} rows, g-bad {} set aside, {spooled} spooled",
        rejected.len()
    );
}

#[test]
fn once_exits_1_saying_how_many_events_were_set_aside() {
    let Some(url) = live_pg() else { return };
    let mut s = bad_and_good(url, "onceaside");
    // A refused value (23514): set aside at once.
    s.client
        .batch_execute(&format!(
            "ALTER TABLE {} ADD CONSTRAINT no_bad CHECK (game_id <> 'g-bad')",
            s.events()
        ))
        .unwrap();
    let engine = all_exited();
    let state = TempDir::new("onceaside");
    let out = bin()
        .arg("once")
        .args(s.args())
        .args(["--docker-host", &engine.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("events set aside rather than delivered (the postgres sink 1)"),
        "{stderr}"
    );
    assert_eq!(s.count_events("game_id = 'g-good'"), 1);
    assert_eq!(lines_of(&state, "rejected.jsonl").len(), 1);
}

#[test]
fn an_incident_opened_while_the_database_refuses_writes_lands_once_it_takes_them() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.url();
    let mut s = TestSchema::new(&url, "fullqueue");
    s.migrate();
    s.client
        .batch_execute("ALTER SYSTEM SET synchronous_commit = off")
        .unwrap();
    s.client.batch_execute("SELECT pg_reload_conf()").unwrap();
    const GAMES: usize = 100;
    for i in 0..GAMES {
        s.insert_record(&format!("g-{i}"), "running", &format!("game-{i}"));
    }
    s.insert_record("g-late", "running", "game-late");
    // 0: every game down but g-late; 1: g-late down too; 2: only g-late down.
    let phase = Arc::new(AtomicUsize::new(0));
    let seen = phase.clone();
    let engine = FakeEngine::start(move |path| {
        let phase = seen.load(Relaxed);
        let down = if path.contains("game-late") {
            phase >= 1
        } else {
            phase < 2
        };
        let status = if down { "exited" } else { "running" };
        // Each game's container its own id, as Docker's are.
        let n = path
            .rsplit("game-")
            .next()
            .and_then(|rest| rest.split('/').next()?.parse().ok())
            .unwrap_or(1000);
        Reply::Json(200, inspect_body(&hex_id(n), 0, status, None))
    });
    let state = TempDir::new("fullqueue");
    let mut cmd = run_over(&s, &engine, "250ms", &state);
    cmd.args(["--report", "both"]).env("RUST_LOG", "info");
    let (daemon, _out, stderr) = Daemon::watched(&mut cmd);
    wait_until(Duration::from_secs(30), "rows before", || {
        s.count_events("true") >= GAMES as i64
    });

    // The database refuses writes and serves reads: ticks go on, facts pile
    // up until the queue is full.
    set_read_only(&url, true);
    wait_until(Duration::from_secs(60), "a full queue", || {
        stderr.text().contains("publish queue full")
    });
    phase.store(1, Relaxed);
    wait_until(Duration::from_secs(30), "g-late down", || {
        stderr.text().contains("game_id=g-late")
    });
    // The flood ends; only g-late stays down.
    phase.store(2, Relaxed);
    set_read_only(&url, false);
    wait_until(
        Duration::from_secs(180),
        "g-late's incident_opened in the table",
        || s.count_events("game_id = 'g-late' AND event_type = 'incident_opened'") == 1,
    );
    let status = daemon.terminate();
    let text = stderr.text();
    assert!(status.success(), "{text}");
    assert!(!text.contains("event dropped"), "{text}");
    eprintln!(
        "{} rows; {}",
        s.count_events("true"),
        text.lines()
            .find(|l| l.contains("publish queue full"))
            .unwrap_or_default()
    );
}
