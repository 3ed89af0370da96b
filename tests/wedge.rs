//! Never wedged: an event the sink refuses for good, a sink blocked or frozen
//! at SIGTERM, a dockerd whose listen backlog is full, a database whose
//! packets vanish. Each asserts what is delivered, what is set aside, and how
//! long the bound takes.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::support::{
    Blackhole, PgCluster, StoppedGame, TempDir, bin, iptables_usable, json_lines, live_docker,
    rows_and_distinct, succeeded, wait_until,
};

/// Ticks that emitted one event, from the tick lines
/// (`RUST_LOG=rtinspect=debug`) of a run over `records` records.
fn emitted(stderr: &str, records: usize) -> usize {
    let line = format!("tick: {records} records, 1 events");
    stderr.lines().filter(|l| l.contains(&line)).count()
}

/// An envelope as rtinspect writes it, with the given id, game and time.
fn envelope(id: &str, game: &str, container: &str, occurred_at: &str) -> String {
    serde_json::json!({
        "event_id": id, "game_id": game, "container_id": container,
        "event_type": "inspect_unhealthy", "occurred_at": occurred_at,
        "details": {"restart_count": 0, "state": "exited", "health": ""},
    })
    .to_string()
}

/// Another session takes the events table, and holds it until `ROLLBACK`
/// on the client returned: the daemon's next INSERT blocks for good. Returns
/// once it does.
fn lock_the_events_table(g: &mut StoppedGame) -> postgres::Client {
    let mut locker = postgres::Client::connect(&g.url, postgres::NoTls).unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            g.schema.events()
        ))
        .unwrap();
    wait_for_a_blocked_insert(&mut g.schema.client);
    locker
}

/// Waits until an INSERT into the events table waits for a lock (the sink's
/// statement may wrap it: `WITH stored AS (INSERT …) SELECT pg_notify(…)`).
/// (Not asked from the session that holds the lock: inside a transaction,
/// `pg_stat_activity` is a snapshot.)
fn wait_for_a_blocked_insert(observer: &mut postgres::Client) {
    wait_until(Duration::from_secs(10), "a blocked INSERT", || {
        let n: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO%'",
                &[],
            )
            .unwrap()
            .get(0);
        n >= 1
    });
}

#[test]
fn refused_events_are_set_aside_and_every_other_game_keeps_flowing() {
    let Some(mut g) = StoppedGame::start("poison") else {
        return;
    };
    let stopped = g.stopped.clone();
    let long_game = "g".repeat(9000);
    g.schema.insert_record(&long_game, "running", &stopped);

    // A spool left by an earlier run: one good event, one whose NOTIFY
    // payload is over PostgreSQL's 8000 bytes, one whose time is not a
    // time, and a line that is not an envelope at all.
    let state = TempDir::new("poison-state");
    let good = "0190c1f3-0000-7000-8000-000000000001";
    let spool = [
        envelope(good, "g-spooled", &stopped, "2026-11-27T10:00:00.000000Z"),
        envelope(
            "0190c1f3-0000-7000-8000-000000000002",
            &long_game,
            &stopped,
            "2026-11-27T10:00:00.000000Z",
        ),
        envelope(
            "0190c1f3-0000-7000-8000-000000000003",
            "g-badtime",
            &stopped,
            "the 32nd of May",
        ),
        "{\"event_id\": truncated".to_owned(),
    ]
    .join("\n");
    std::fs::write(state.path().join("spool.jsonl"), spool + "\n").unwrap();

    let (child, stderr) = g.run(state.path());
    // Tick after tick, the stopped game's events are stored.
    wait_until(
        Duration::from_secs(30),
        "ten events of the good game",
        || g.schema.count_events("game_id = 'g-stopped'") >= 10,
    );
    assert!(child.terminate().success());
    let log = stderr.text();

    assert_eq!(
        g.schema.count_events(&format!("event_id = '{good}'")),
        1,
        "{log}"
    );
    assert_eq!(
        g.schema.count_events("game_id <> 'g-stopped'"),
        1,
        "only the good spooled event besides the live game"
    );
    assert_eq!(
        g.schema.count_events("game_id = 'g-stopped'") as usize,
        emitted(&log, 2),
        "every event of the live game is a row: {log}"
    );
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    let reasons: Vec<String> = json_lines(&rejected)
        .iter()
        .map(|v| v["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "{rejected}");
    assert!(reasons[0].starts_with("spool line 4: "), "{reasons:?}");
    assert!(reasons[1].contains("SQLSTATE 22023"), "{reasons:?}");
    assert!(reasons[2].contains("SQLSTATE 22007"), "{reasons:?}");
    // The 9,000-byte game id never became an event: refused at intake,
    // warned about once however many ticks saw it.
    let warned = log
        .lines()
        .filter(|l| l.contains("record skipped: game id is 9000 bytes, over 256"))
        .count();
    assert_eq!(warned, 1, "{log}");
}

#[test]
fn sigterm_with_the_events_table_locked_exits_within_15s_and_the_next_start_delivers() {
    let Some(mut g) = StoppedGame::start("locked") else {
        return;
    };
    let state = TempDir::new("locked-state");
    let state_arg = state.path().to_str().unwrap();

    let (child, stderr) = g.run(state.path());
    wait_until(Duration::from_secs(20), "delivered events", || {
        g.schema.count_events("true") >= 2
    });
    // Another session holds the table: the next INSERT blocks for good.
    let mut locker = lock_the_events_table(&mut g);
    let ticks = emitted(&stderr.text(), 1);
    wait_until(Duration::from_secs(10), "events queued behind it", || {
        emitted(&stderr.text(), 1) >= ticks + 2
    });
    let signalled = Instant::now();
    child.signal("-TERM");
    let status = child.wait();
    let took = signalled.elapsed();
    let first = stderr.text();
    assert!(status.success(), "{first}");
    assert!(took < Duration::from_secs(15), "exit took {took:?}");
    eprintln!("exit with the events table locked took {took:?}");
    let spool = std::fs::read_to_string(state.path().join("spool.postgres.jsonl")).unwrap();
    assert!(spool.lines().count() >= 1, "{first}");
    locker.batch_execute("ROLLBACK").unwrap();

    // The next start delivers the spool, the event that was in flight included.
    g.schema
        .client
        .batch_execute(&format!(
            "UPDATE {} SET status = 'stopped'",
            g.schema.records()
        ))
        .unwrap();
    succeeded(bin().arg("once").args(g.schema.args()).args([
        "--docker-host",
        &g.live.docker_host(),
        "--state-dir",
        state_arg,
    ]));
    let events = g.schema.events();
    let (rows, distinct) = rows_and_distinct(&mut g.schema.client, &events);
    assert_eq!(rows as usize, emitted(&first, 1), "{first}");
    assert_eq!(rows, distinct, "no event twice");
}

#[test]
fn a_frozen_database_cannot_hold_up_the_exit() {
    let Some(mut g) = StoppedGame::start("frozen") else {
        return;
    };
    let state = TempDir::new("frozen-state");
    let (child, stderr) = g.run(state.path());
    wait_until(Duration::from_secs(20), "delivered events", || {
        g.schema.count_events("true") >= 2
    });
    // Every process of the cluster stops; its kernel still acknowledges
    // every packet, so no TCP setting notices it. The next tick's read of
    // the records blocks for good.
    g.cluster.freeze(true);
    // Nothing outside can see the inspector enter its blocked read: give
    // it ten intervals to get there, room for a slow inspect on the way.
    std::thread::sleep(Duration::from_secs(2));
    let signalled = Instant::now();
    child.signal("-TERM");
    let status = child.wait();
    let took = signalled.elapsed();
    g.cluster.freeze(false);
    let log = stderr.text();
    assert!(status.success(), "{log}");
    assert!(took < Duration::from_secs(15), "exit took {took:?}");
    eprintln!("exit with the database frozen took {took:?}");
    assert!(log.contains("leaving it behind"), "{log}");
}

#[test]
fn a_full_docker_backlog_fails_once_within_the_timeout() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let dir = TempDir::new("backlog");
    let path = dir.path().join("docker.sock");
    // A listener that never accepts, with room for one pending connection.
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let _pending = UnixStream::connect(&path).unwrap();

    let started = Instant::now();
    let out = bin()
        .args(["once", "--docker-timeout", "1s"])
        .arg(format!("--docker-host=unix://{}", path.display()))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no answer within 1s (dockerd accepts no connections)"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eprintln!("once against a full backlog took {took:?}");
}

#[test]
fn a_database_that_vanishes_mid_call_is_noticed_within_60s_and_recovered() {
    if live_docker().is_none() || !iptables_usable() {
        return;
    }
    let Some(mut g) = StoppedGame::start_over("vanish", PgCluster::serve_tcp) else {
        return;
    };
    let (child, stderr) = StoppedGame::spawn(&mut g.command("500ms"));
    wait_until(Duration::from_secs(20), "delivered events", || {
        g.schema.count_events("true") >= 2
    });

    // Packets to and from the server vanish: no RST, no FIN.
    let hole = Blackhole::port(g.cluster.port());
    let dropped = Instant::now();
    wait_until(Duration::from_secs(70), "the vanished peer noticed", || {
        stderr
            .first_after(dropped, "tick skipped: the record list could not be read")
            .is_some()
    });
    let noticed = stderr
        .first_after(dropped, "tick skipped")
        .unwrap()
        .duration_since(dropped);
    eprintln!("a vanished database was noticed after {noticed:?}");
    assert!(noticed < Duration::from_secs(60), "{noticed:?}");

    drop(hole);
    let back = Instant::now();
    let before = g.schema.count_events("true");
    wait_until(Duration::from_secs(60), "events stored again", || {
        g.schema.count_events("true") > before + 1
    });
    eprintln!(
        "events flowed again {:?} after the path came back",
        back.elapsed()
    );
    assert!(child.terminate().success(), "{}", stderr.text());
}

#[test]
fn a_second_signal_spools_and_exits_130_at_once() {
    let Some(mut g) = StoppedGame::start("second") else {
        return;
    };
    let state = TempDir::new("second-state");
    let (child, stderr) =
        StoppedGame::spawn(g.command("200ms").arg("--state-dir").arg(state.path()));
    wait_until(Duration::from_secs(20), "delivered events", || {
        g.schema.count_events("true") >= 1
    });
    let mut locker = lock_the_events_table(&mut g);
    child.signal("-TERM");
    wait_until(Duration::from_secs(10), "the first signal taken", || {
        stderr.text().contains("SIGTERM received")
    });
    let second = Instant::now();
    child.signal("-INT");
    let status = child.wait();
    let took = second.elapsed();
    let log = stderr.text();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    eprintln!("a second signal exited 130 after {took:?}");
    let spool = std::fs::read_to_string(state.path().join("spool.postgres.jsonl")).unwrap();
    assert!(spool.lines().count() >= 1, "{log}");
    locker.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_database_port_that_accepts_and_never_speaks_fails_within_the_connect_bound() {
    // A frozen server's kernel still accepts connections: this is what the
    // startup exchange meets then, and the driver itself would wait for ever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let engine =
        crate::support::FakeEngine::start(|_| crate::support::Reply::Json(200, "[]".into()));
    let started = Instant::now();
    let out = bin()
        .arg("once")
        .args([
            "--database-url",
            &format!(
                "host=127.0.0.1 port={port} user=rt dbname=rt sslmode=disable connect_timeout=2"
            ),
            "--sink",
            "stdout",
            "--docker-host",
            &engine.docker_host(),
        ])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no server answered within 2s"), "{stderr}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    eprintln!("once against a silent database port took {took:?}");
    drop(silent);
}

#[test]
fn once_with_more_events_than_the_queue_and_the_sink_down_spools_within_the_drain() {
    let n = 5000;
    let list = crate::support::labelled_list((1..=n).map(|i| (i, format!("g-{i}"))));
    let engine = crate::support::FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            return crate::support::Reply::Json(200, list.clone());
        }
        let id = path.split('/').nth(3).unwrap_or_default().to_owned();
        crate::support::Reply::Json(200, crate::support::inspect_body(&id, 0, "exited", None))
    });
    // Nothing listens on port 9 of the loopback: every delivery fails.
    let state = TempDir::new("once-overflow");
    let started = Instant::now();
    let out = bin()
        .args(["once", "--docker-host", &engine.docker_host()])
        .args([
            "--sink",
            "webhook",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
        ])
        .args(["--state-dir", state.path().to_str().unwrap()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let spool = std::fs::read_to_string(state.path().join("spool.webhook.jsonl")).unwrap();
    assert_eq!(spool.lines().count(), n as usize, "every event spooled");
    eprintln!("once with {n} events and the sink down took {took:?}");
    // At most the drain while the tick fills the queue, then the drain after it.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
