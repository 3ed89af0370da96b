//! PgBouncer in transaction pooling mode in front of PostgreSQL: hosts
//! storing every event once through it, and a locked records table bounded
//! by the statement timeout, directly and through it.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    FakeEngine, Reply, StderrLines, TestSchema, bin, exited_engine, hex_id, insert_host_record,
    inspect_body, live_pg, live_pgbouncer, migrate, prune, send_signal, shared_cluster,
    spawn_daemon, wait_until,
};

/// Ticks that emitted `events` events over `records` records, from the
/// tick lines (`RUST_LOG=rtinspect=debug`).
fn ticks_with(log: &str, records: usize, events: usize) -> usize {
    let line = format!("tick: {records} records, {events} events");
    log.lines().filter(|l| l.contains(&line)).count()
}

/// How long the daemons run through PgBouncer.
const THROUGH_PGBOUNCER: Duration = Duration::from_secs(60);

#[test]
fn four_hosts_through_pgbouncer_in_transaction_mode_store_every_event_once() {
    let Some(direct) = live_pg() else { return };
    let Some(bouncer) = live_pgbouncer() else {
        return;
    };
    let _alone = shared_cluster();
    let mut s = TestSchema::new(direct, "pgbouncer");
    // Even migrate goes through the bouncer.
    let (code, _, err) = migrate(&s, bouncer, &["--host-column", "host"]);
    assert_eq!(code, Some(0), "{err}");
    const HOSTS: u32 = 4;
    let mut engines = Vec::new();
    for h in 0..HOSTS {
        let host = format!("h-{h}");
        // One stopped container (an event every tick), two healthy ones.
        let stopped = hex_id(h * 10 + 1);
        insert_host_record(
            &mut s,
            &format!("{host}-stopped"),
            "running",
            &stopped,
            &host,
        );
        for n in 2..=3 {
            insert_host_record(
                &mut s,
                &format!("{host}-g{n}"),
                "running",
                &hex_id(h * 10 + n),
                &host,
            );
        }
        engines.push(FakeEngine::start(move |path| {
            let status = if path.contains(&stopped) {
                "exited"
            } else {
                "running"
            };
            let id = path.split('/').nth(3).unwrap_or("").to_owned();
            Reply::Json(200, inspect_body(&id, 0, status, None))
        }));
    }
    let started = Instant::now();
    let mut daemons: Vec<(Child, StderrLines)> = engines
        .iter()
        .enumerate()
        .map(|(h, engine)| {
            let host = format!("h-{h}");
            let mut child = spawn_daemon(
                &s,
                bouncer,
                engine,
                &["--host-column", "host", "--host-id", &host],
            );
            let log = StderrLines::of(&mut child);
            (child, log)
        })
        .collect();
    // Fail early rather than wait a minute on a broken setup.
    wait_until(
        Duration::from_secs(30),
        "a first event of each host",
        || {
            daemons
                .iter()
                .all(|(_, log)| ticks_with(&log.text(), 3, 1) > 0)
        },
    );
    let left = THROUGH_PGBOUNCER.saturating_sub(started.elapsed());
    std::thread::sleep(left);
    for (child, _) in &daemons {
        send_signal(child, "-TERM");
    }
    let mut emitted = HashMap::new();
    for (h, (child, log)) in daemons.iter_mut().enumerate() {
        let status = child.wait().unwrap();
        let text = log.text();
        assert!(status.success(), "h-{h}: {text}");
        for bad in [" WARN ", " ERROR ", "SQLSTATE"] {
            assert!(!text.contains(bad), "h-{h} logged {bad:?}:\n{text}");
        }
        // Every tick saw its three records and the stopped one.
        assert_eq!(
            ticks_with(&text, 3, 1),
            text.lines().filter(|l| l.contains("tick: ")).count(),
            "{text}"
        );
        emitted.insert(format!("h-{h}"), ticks_with(&text, 3, 1) as i64);
    }
    let rows: HashMap<String, i64> = s
        .client
        .query(
            &format!(
                "SELECT host_id, count(*), count(DISTINCT event_id) FROM {} GROUP BY host_id",
                s.events()
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let (host, n, distinct): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            assert_eq!(n, distinct);
            (host, n)
        })
        .collect();
    eprintln!("events emitted per host {emitted:?}, rows per host {rows:?}");
    assert_eq!(rows, emitted, "every event stored exactly once");
    // A minute at 200 ms: about 300 ticks per host.
    assert!(emitted.values().all(|&n| n >= 200), "{emitted:?}");

    // Retention works through the bouncer too.
    s.client
        .batch_execute(&format!(
            "UPDATE {} SET recorded_at = now() - interval '2 days' WHERE host_id = 'h-0'",
            s.events()
        ))
        .unwrap();
    let (code, out, err) = prune(&s, bouncer, &["--older-than", "1d"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.split_whitespace().nth(1),
        Some(emitted["h-0"].to_string().as_str()),
        "{out}"
    );
}

#[test]
fn a_locked_records_table_is_bounded_by_the_statement_timeout_directly_and_through_pgbouncer() {
    let Some(direct) = live_pg() else { return };
    let _alone = shared_cluster();
    let s = TestSchema::new(direct, "locked");
    s.migrate();
    let mut urls = vec![direct];
    urls.extend(live_pgbouncer());
    // Held by an open transaction of the test's until the end.
    let mut holder = postgres::Client::connect(direct, postgres::NoTls).unwrap();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        s.records()
    ))
    .unwrap();
    let engine = exited_engine();
    let started = Instant::now();
    let children: Vec<Child> = urls
        .iter()
        .map(|url| {
            bin()
                .arg("once")
                .args(s.args())
                .args(["--database-url", url])
                .args(["--docker-host", &engine.docker_host()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("canceling statement due to statement timeout (SQLSTATE 57014)"),
            "{stderr}"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(29) && waited < Duration::from_secs(45),
        "{waited:?}"
    );
    tx.rollback().unwrap();
}
