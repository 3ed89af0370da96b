//! Fleets: many hosts on one records table (host scoping), and the index
//! that keeps each host's query small. PgBouncer in front of them is
//! `pgbouncer`'s, the retention of the events table `prune_events`'.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use rtinspect::config::TableName;
use rtinspect::postgres::{HostFilter, records_query};

use crate::support::{
    FakeEngine, StderrLines, TestSchema, bin, exited_engine, hex_id, insert_host_record, live_pg,
    migrate, send_signal, shared_cluster, spawn_daemon, wait_until,
};

/// The kernel's hostname, which `--host-id` defaults to.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
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
