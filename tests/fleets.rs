//! Fleets: many hosts on one records table (host scoping), the index that
//! keeps each host's query small, PgBouncer in transaction pooling mode in
//! front of PostgreSQL, and the retention of the events table
//! (`prune-events`).

use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rtinspect::config::TableName;
use rtinspect::postgres::{HostFilter, records_query};

use crate::support::{
    FakeEngine, Reply, StderrLines, TestSchema, bin, hex_id, inspect_body, live_pg, live_pgbouncer,
    send_signal, wait_until,
};

/// Taken by the tests that disturb one another on the shared cluster: the
/// locked table's blocked queries hold a snapshot (so VACUUM cannot mark the
/// pages that an index-only scan needs all-visible) and hold one of
/// PgBouncer's two server connections for 30 s (which the four hosts need).
static SHARED_CLUSTER: Mutex<()> = Mutex::new(());

fn shared_cluster() -> MutexGuard<'static, ()> {
    SHARED_CLUSTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kernel's hostname, which `--host-id` defaults to.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// `rtinspect COMMAND` on this schema and `url` with these extra arguments;
/// (exit code, stdout, stderr).
fn command(cmd: &str, s: &TestSchema, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = bin()
        .arg(cmd)
        .args(s.args())
        .args(["--database-url", url])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `rtinspect migrate` with these extra arguments.
fn migrate(s: &TestSchema, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    command("migrate", s, url, extra)
}

fn insert_host_record(s: &mut TestSchema, game: &str, status: &str, container: &str, host: &str) {
    s.client
        .execute(
            &format!(
                "INSERT INTO {} (game_id, status, current_container_id, host) VALUES ($1, $2, $3, $4)",
                s.records()
            ),
            &[&game, &status, &container, &host],
        )
        .unwrap();
}

/// A fake engine that answers every inspect with an exited container: each
/// tick emits one event per record.
fn exited_engine() -> FakeEngine {
    FakeEngine::start(|path| {
        let id = path.split('/').nth(3).unwrap_or("").to_owned();
        Reply::Json(200, inspect_body(&id, 0, "exited", None))
    })
}

/// The container ids an engine was asked to inspect.
fn inspected(engine: &FakeEngine) -> Vec<String> {
    engine
        .requests()
        .iter()
        .filter_map(|p| p.strip_prefix("/v1.41/containers/"))
        .filter_map(|rest| rest.strip_suffix("/json"))
        .map(str::to_owned)
        .collect()
}

/// (host_id, game_id) of every stored event.
fn stored(s: &mut TestSchema) -> Vec<(Option<String>, String)> {
    s.client
        .query(&format!("SELECT host_id, game_id FROM {}", s.events()), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn spawn_daemon(s: &TestSchema, url: &str, engine: &FakeEngine, extra: &[&str]) -> Child {
    bin()
        .arg("run")
        .args(s.args())
        .args(["--database-url", url])
        .args([
            "--interval",
            "200ms",
            "--docker-host",
            &engine.docker_host(),
        ])
        .args(extra)
        .env("RUST_LOG", "rtinspect=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_hosts_on_one_table_each_inspect_only_their_own_records() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "twohosts");
    let (code, _, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(0), "{err}");
    let me = hostname();
    // Host a is named by --host-id; host b is this machine, by default.
    let hosts: [(&str, u32); 3] = [("h-a", 100), (&me, 200), ("h-c", 300)];
    let mut own: HashMap<&str, Vec<String>> = HashMap::new();
    for (host, base) in hosts {
        for n in 1..=3 {
            let id = hex_id(base + n);
            insert_host_record(&mut s, &format!("{host}-g{n}"), "running", &id, host);
            own.entry(host).or_default().push(id);
        }
        // Not running: never read, whoever's it is.
        insert_host_record(
            &mut s,
            &format!("{host}-stopped"),
            "stopped",
            &hex_id(base + 50),
            host,
        );
    }
    let (a, b) = (exited_engine(), exited_engine());
    let mut da = spawn_daemon(&s, url, &a, &["--host-column", "host", "--host-id", "h-a"]);
    let mut db = bin()
        .arg("run")
        .args(s.args())
        .args(["--interval", "200ms", "--docker-host", &b.docker_host()])
        .env("RTINSPECT_HOST_COLUMN", "host")
        .env("RUST_LOG", "rtinspect=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (la, lb) = (StderrLines::of(&mut da), StderrLines::of(&mut db));
    for engine in [&a, &b] {
        wait_until(Duration::from_secs(30), "three ticks of each host", || {
            inspected(engine).len() >= 9
        });
    }
    for child in [&da, &db] {
        send_signal(child, "-TERM");
    }
    assert!(da.wait().unwrap().success(), "{}", la.text());
    assert!(db.wait().unwrap().success(), "{}", lb.text());

    for (engine, host, log) in [(&a, "h-a", &la), (&b, me.as_str(), &lb)] {
        let asked: HashSet<String> = inspected(engine).into_iter().collect();
        let mine: HashSet<String> = own[host].iter().cloned().collect();
        assert_eq!(asked, mine, "{host} inspects its own running records only");
        assert!(
            log.text().contains(&format!("host_id={host}")),
            "{}",
            log.text()
        );
    }
    let rows = stored(&mut s);
    assert!(!rows.is_empty());
    for (host_id, game) in &rows {
        let host_id = host_id.as_deref().expect("host_id is filled with scoping");
        assert!(host_id == "h-a" || host_id == me, "{host_id}");
        assert!(
            game.starts_with(&format!("{host_id}-g")),
            "{host_id}: {game}"
        );
    }
    assert!(rows.iter().any(|(h, _)| h.as_deref() == Some("h-a")));
    assert!(rows.iter().any(|(h, _)| h.as_deref() == Some(me.as_str())));
}

#[test]
fn a_missing_host_column_is_a_clear_error_naming_it() {
    let Some(url) = live_pg() else { return };
    let s = TestSchema::new(url, "nohostcol");
    s.migrate();
    let engine = exited_engine();
    let out = bin()
        .arg("once")
        .args(s.args())
        .args(["--host-column", "host_name", "--host-id", "h1"])
        .args(["--docker-host", &engine.docker_host()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("column \"host_name\" does not exist")
            && stderr.contains("--host-column (host_name)"),
        "{stderr}"
    );
    assert!(inspected(&engine).is_empty());
    // migrate never alters a table it did not create: it names the column.
    let (code, _, err) = migrate(&s, url, &["--host-column", "host_name"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "column host_name does not exist in {}: add it (ALTER TABLE {} ADD COLUMN host_name text)",
            s.records(),
            s.records()
        )),
        "{err}"
    );
}

#[test]
fn migrate_is_idempotent_with_and_without_scoping() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "migscope");
    let (records, events, silences, schema) =
        (s.records(), s.events(), s.silences(), s.name.clone());

    // Unscoped first, twice.
    let (code, first, err) = migrate(&s, url, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        first,
        format!(
            "created table {records}\ncreated index {schema}.runtime_records_status_idx\n\
             created table {events}\ncreated index {schema}.runtime_health_events_recorded_at_idx\n\
             created table {silences}\ncreated index {schema}.runtime_silences_ends_at_idx\n"
        )
    );
    let (_, again, _) = migrate(&s, url, &[]);
    assert!(again.lines().all(|l| l.starts_with("exists: ")), "{again}");

    // Scoping on a table without the column: an error naming it, nothing done.
    let (code, _, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("column host does not exist in"), "{err}");

    // A column of another type is refused too.
    s.client
        .batch_execute(&format!("ALTER TABLE {records} ADD COLUMN host integer"))
        .unwrap();
    let (code, _, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("has type integer, expected text"), "{err}");

    // With the column, migrate adds the index and host_id, then nothing.
    s.client
        .batch_execute(&format!(
            "ALTER TABLE {records} DROP COLUMN host; ALTER TABLE {records} ADD COLUMN host text"
        ))
        .unwrap();
    let (code, scoped, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        scoped,
        format!(
            "exists: table {records}\nexists: index {schema}.runtime_records_status_idx\n\
             created index {schema}.runtime_records_host_status_idx\nexists: table {events}\n\
             created column {events}.host_id\nexists: index {schema}.runtime_health_events_recorded_at_idx\n\
             exists: table {silences}\ncreated column {silences}.host_id\n\
             exists: index {schema}.runtime_silences_ends_at_idx\n"
        )
    );
    for extra in [&["--host-column", "host"][..], &[]] {
        let (code, again, _) = migrate(&s, url, extra);
        assert_eq!(code, Some(0));
        assert!(again.lines().all(|l| l.starts_with("exists: ")), "{again}");
    }
    let index: String = s
        .client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'runtime_records_host_status_idx'",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert!(
        index.ends_with("(host, status) INCLUDE (game_id, current_container_id)"),
        "{index}"
    );

    // Scoped from the start: the tables come with their columns.
    let fresh = TestSchema::new(url, "migscope2");
    let (code, out, err) = migrate(&fresh, url, &["--host-column", "host"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!(
            "created index {}.runtime_records_host_status_idx",
            fresh.name
        )),
        "{out}"
    );
    assert!(
        !out.contains("column"),
        "a new table has host_id already: {out}"
    );
    let (_, again, _) = migrate(&fresh, url, &["--host-column", "host"]);
    assert!(again.lines().all(|l| l.starts_with("exists: ")), "{again}");
    let mut fresh = fresh;
    let types: Vec<(String, String)> = fresh
        .client
        .query(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns \
             WHERE table_schema = $1 AND column_name IN ('host', 'host_id') ORDER BY 1",
            &[&fresh.name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        types,
        [
            (
                "runtime_health_events.host_id".to_string(),
                "text".to_string()
            ),
            ("runtime_records.host".to_string(), "text".to_string()),
            ("runtime_silences.host_id".to_string(), "text".to_string())
        ]
    );
}

#[test]
fn an_invalid_index_left_by_a_failed_concurrent_build_is_named() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "invalidix");
    s.migrate();
    let records = s.records();
    s.client
        .batch_execute(&format!("ALTER TABLE {records} ADD COLUMN host text"))
        .unwrap();
    s.insert_record("g1", "running", "c1");
    s.insert_record("g2", "running", "c2");
    // Two rows with one (NULL-free) host: a unique build fails, and a
    // concurrent one leaves its index behind, invalid.
    s.client
        .batch_execute(&format!("UPDATE {records} SET host = 'h'"))
        .unwrap();
    let failed = s.client.batch_execute(&format!(
        "CREATE UNIQUE INDEX CONCURRENTLY runtime_records_host_status_idx ON {records} (host)"
    ));
    assert!(failed.is_err());
    let (code, _, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the index exists but is invalid") && err.contains("drop it"),
        "{err}"
    );
}

#[test]
fn the_scoped_query_is_an_index_only_scan_of_one_host_among_a_million_records() {
    let Some(url) = live_pg() else { return };
    let _alone = shared_cluster();
    let mut s = TestSchema::new(url, "explain");
    let records = s.records();
    // rtmanager's table, existing and full, before migrate adds the index:
    // 1,000 hosts of 1,000 records each, 5% running.
    s.client
        .batch_execute(&format!(
            "CREATE TABLE {records} (game_id text PRIMARY KEY, status text NOT NULL, \
             current_container_id text NOT NULL DEFAULT '', host text, \
             updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {records} (game_id, status, current_container_id, host)
             SELECT 'g-' || i, CASE WHEN i % 20 = 0 THEN 'running' ELSE 'stopped' END,
                    lpad(to_hex(i), 64, '0'), 'h-' || (i / 1000)
             FROM generate_series(0, 999999) i"
        ))
        .unwrap();
    let (code, out, err) = migrate(&s, url, &["--host-column", "host"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("created index"), "{out}");
    s.client
        .batch_execute(&format!("VACUUM ANALYZE {records}"))
        .unwrap();

    let query = records_query(
        &TableName::parse(&records).unwrap(),
        Some(&HostFilter {
            column: "host".into(),
            host_id: String::new(),
        }),
    );
    let plan: Vec<String> = s
        .client
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {query}"),
            &[&"h-500"],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    eprintln!("{query}\n{plan}");
    assert!(
        plan.contains("Index Only Scan using runtime_records_host_status_idx"),
        "{plan}"
    );
    assert!(plan.contains("rows=50 loops=1"), "{plan}");
    assert!(plan.contains("Heap Fetches: 0"), "{plan}");
}

/// `rtinspect prune-events` with these arguments.
fn prune(s: &TestSchema, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    command("prune-events", s, url, extra)
}

/// `n` events recorded `age` ago (an SQL interval), each a second apart.
fn insert_events(s: &mut TestSchema, n: i32, age: &str) {
    s.client
        .batch_execute(&format!(
            "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details, recorded_at)
             SELECT gen_random_uuid(), 'g-' || i, 'c', 'inspect_unhealthy', now(), '{{}}',
                    now() - interval '{age}' - i * interval '1 second'
             FROM generate_series(1, {n}) i",
            s.events()
        ))
        .unwrap();
}

/// The deletes on the events table, one row per statement: (rows, transaction).
fn log_deletes(s: &mut TestSchema) {
    let (schema, events) = (s.name.clone(), s.events());
    s.client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.deletes (seq serial, n bigint, tx bigint DEFAULT txid_current());
             CREATE FUNCTION {schema}.log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO {schema}.deletes (n) SELECT count(*) FROM gone; RETURN NULL; END $$;
             CREATE TRIGGER log_delete AFTER DELETE ON {events} REFERENCING OLD TABLE AS gone
             FOR EACH STATEMENT EXECUTE FUNCTION {schema}.log_delete();"
        ))
        .unwrap();
}

fn deletes(s: &mut TestSchema) -> (Vec<i64>, usize) {
    let rows = s
        .client
        .query(
            &format!("SELECT n, tx FROM {}.deletes ORDER BY seq", s.name),
            &[],
        )
        .unwrap();
    let txs: HashSet<i64> = rows.iter().map(|r| r.get(1)).collect();
    (rows.iter().map(|r| r.get(0)).collect(), txs.len())
}

#[test]
fn prune_events_deletes_exactly_the_old_rows_in_batches_of_ten_thousand() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "prune");
    s.migrate();
    insert_events(&mut s, 25_000, "40 days");
    insert_events(&mut s, 100, "29 days");
    insert_events(&mut s, 300, "0 days");
    log_deletes(&mut s);

    let (code, out, err) = prune(&s, url, &["--older-than", "30d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("deleted 25000 events recorded before ")
            && out.ends_with(&format!(" from {}\n", s.events())),
        "{out}"
    );
    assert_eq!(s.count_events("true"), 400);
    assert_eq!(
        s.count_events("recorded_at < now() - interval '30 days'"),
        0
    );
    let (batches, transactions) = deletes(&mut s);
    assert_eq!(batches, [10_000, 10_000, 5_000]);
    assert_eq!(transactions, 3, "one transaction per batch");

    // Nothing older is left: one empty statement, and the younger rows stay.
    let (code, out, _) = prune(&s, url, &["--older-than", "30d"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("deleted 0 events"), "{out}");
    assert_eq!(deletes(&mut s).0, [10_000, 10_000, 5_000, 0]);
    let (code, out, _) = prune(&s, url, &[]);
    assert_eq!(code, Some(64), "{out}");
    let out = bin()
        .arg("prune-events")
        .args(s.args())
        .env("RTINSPECT_PRUNE_OLDER_THAN", "20d")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deleted 100 events"));
    assert_eq!(s.count_events("true"), 300);
}

#[test]
fn prune_events_failures_exit_with_the_documented_codes() {
    let out = bin()
        .args(["prune-events", "--older-than", "30d"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let Some(url) = live_pg() else { return };
    let s = TestSchema::new(url, "prunemissing");
    let (code, out, err) = prune(&s, url, &["--older-than", "30d"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains(&format!("table {} does not exist", s.events())),
        "{err}"
    );
    let (code, _, err) = prune(&s, url, &["--older-than", "0s"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("invalid --older-than \"0s\""), "{err}");
}

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
