//! PostgreSQL mode against a real server: migrate, records in, events out
//! (rows and NOTIFY), bad schemas and rows, a least-privilege role, an outage.

use std::process::Stdio;

use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

use crate::support::{
    Containers, FakeEngine, Reply, StoppedGame, TestSchema, UNHEALTHY, bin, events, hex_id,
    inspect_body, live_docker, live_pg, rows_and_distinct, succeeded, terminate, wait_until,
};

#[test]
fn migrate_creates_the_schema_once_and_is_idempotent() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "migrate");
    let first = bin().arg("migrate").args(s.args()).output().unwrap();
    assert!(first.status.success());
    let records = s.records();
    let events = s.events();
    assert_eq!(
        String::from_utf8(first.stdout).unwrap(),
        format!(
            "created table {records}\ncreated index {}.runtime_records_status_idx\ncreated table {events}\n\
             created index {}.runtime_health_events_recorded_at_idx\n\
             created table {}\ncreated index {}.runtime_silences_ends_at_idx\n",
            s.name,
            s.name,
            s.silences(),
            s.name
        )
    );
    let second = bin().arg("migrate").args(s.args()).output().unwrap();
    assert!(second.status.success());
    assert!(
        String::from_utf8(second.stdout)
            .unwrap()
            .lines()
            .all(|l| l.starts_with("exists: "))
    );

    let columns: Vec<(String, String)> = s
        .client
        .query(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns \
             WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            &[&s.name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [
        ("runtime_health_events.event_id", "uuid"),
        ("runtime_health_events.game_id", "text"),
        ("runtime_health_events.container_id", "text"),
        ("runtime_health_events.event_type", "text"),
        (
            "runtime_health_events.occurred_at",
            "timestamp with time zone",
        ),
        ("runtime_health_events.details", "jsonb"),
        (
            "runtime_health_events.recorded_at",
            "timestamp with time zone",
        ),
        ("runtime_records.game_id", "text"),
        ("runtime_records.status", "text"),
        ("runtime_records.current_container_id", "text"),
        ("runtime_records.updated_at", "timestamp with time zone"),
        ("runtime_silences.silence_id", "uuid"),
        ("runtime_silences.game_id", "text"),
        ("runtime_silences.starts_at", "timestamp with time zone"),
        ("runtime_silences.ends_at", "timestamp with time zone"),
        ("runtime_silences.created_by", "text"),
        ("runtime_silences.comment", "text"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(columns, want);
}

#[test]
fn migrate_without_a_database_is_a_usage_error() {
    let out = bin().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
}

#[test]
fn missing_table_is_a_clear_error_naming_it() {
    let Some(url) = live_pg() else { return };
    let s = TestSchema::new(url, "missing");
    let engine = FakeEngine::start(|_| Reply::Json(500, "{}".into()));
    let out = bin()
        .arg("once")
        .args(s.args())
        .args(["--docker-host", &engine.docker_host()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("table {} does not exist", s.records())),
        "{stderr}"
    );
    assert!(stderr.contains("rtinspect migrate"), "{stderr}");
    assert!(
        engine.requests().is_empty(),
        "no Docker request without records"
    );
}

#[test]
fn wrong_column_types_are_a_clear_error() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "coltypes");
    s.client
        .batch_execute(&format!(
            "CREATE TABLE {} (game_id integer, status text, current_container_id text)",
            s.records()
        ))
        .unwrap();
    let out = bin().arg("once").args(s.args()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("column game_id has type int4, expected text"),
        "{stderr}"
    );
}

#[test]
fn bad_rows_are_skipped_by_name_and_never_reach_docker() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "badrows");
    // A real rtmanager table may allow NULL container ids.
    s.client
        .batch_execute(&format!(
            "CREATE TABLE {} (game_id text primary key, status text not null, current_container_id text)",
            s.records()
        ))
        .unwrap();
    s.migrate();
    s.insert_record("g-empty", "running", "");
    s.client
        .execute(
            &format!(
                "INSERT INTO {} VALUES ('g-null', 'running', NULL)",
                s.records()
            ),
            &[],
        )
        .unwrap();
    s.insert_record("g-escape", "running", "../../v1.41/containers/create");
    s.insert_record("g-ok", "running", "game-ok");
    let engine =
        FakeEngine::start(|_| Reply::Json(200, inspect_body(&hex_id(3), 0, "exited", None)));
    let out = bin()
        .arg("once")
        .args(s.args())
        .args(["--docker-host", &engine.docker_host()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for game in ["g-empty", "g-null", "g-escape"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("WARN") && l.contains(&format!("game_id={game}"))),
            "no warning names {game}: {stderr}"
        );
    }
    assert_eq!(
        engine.requests(),
        vec!["/_ping", "/v1.41/containers/game-ok/json"]
    );
    let rows = s.event_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "g-ok");
}

#[test]
fn once_twice_end_to_end_rows_and_notifications_match() {
    let (Some(url), Some(live)) = (live_pg(), live_docker()) else {
        return;
    };
    let mut s = TestSchema::new(url, "e2e");
    s.migrate();
    let mut c = Containers::new(live, "pg-e2e");
    let healthy = c.run("g-healthy", &[], &["sleep", "1000"]);
    let sick = c.run("g-sick", UNHEALTHY, &["sleep", "1000"]);
    let stopped = c.run("g-stopped", &[], &["true"]);
    wait_until(Duration::from_secs(30), "unhealthy and exited", || {
        c.inspect(&sick, "{{.State.Health.Status}}") == "unhealthy"
            && c.inspect(&stopped, "{{.State.Status}}") == "exited"
    });
    s.insert_record("g-healthy", "running", &healthy);
    s.insert_record("g-sick", "running", &sick);
    s.insert_record("g-stopped", "running", &stopped);
    // Not expected to run: never inspected, never reported.
    s.insert_record("g-retired", "stopped", &stopped);

    let mut listener = postgres::Client::connect(url, postgres::NoTls).unwrap();
    listener
        .batch_execute(&format!("LISTEN {}", s.channel()))
        .unwrap();

    for _ in 0..2 {
        let out = succeeded(
            bin()
                .arg("once")
                .args(s.args())
                .args(["--docker-host", &live.docker_host()]),
        );
        assert!(
            out.stdout.is_empty(),
            "the postgres sink writes nothing to stdout"
        );
    }

    let rows = s.event_rows();
    let mut games: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    games.sort();
    assert_eq!(games, vec!["g-sick", "g-sick", "g-stopped", "g-stopped"]);
    for (_, game, container, details) in &rows {
        match game.as_str() {
            "g-sick" => {
                assert_eq!(container, &sick);
                assert_eq!(
                    details,
                    &serde_json::json!({"restart_count":0,"state":"running","health":"unhealthy"})
                );
            }
            _ => {
                assert_eq!(container, &stopped);
                assert_eq!(
                    details,
                    &serde_json::json!({"restart_count":0,"state":"exited","health":""})
                );
            }
        }
    }

    let mut notes = Vec::new();
    let mut n = listener.notifications();
    let mut it = n.timeout_iter(Duration::from_secs(5));
    while notes.len() < rows.len() {
        match it.next() {
            Ok(Some(note)) => notes.push(note),
            other => panic!(
                "expected {} notifications, got {}: {other:?}",
                rows.len(),
                notes.len()
            ),
        }
    }
    for note in &notes {
        assert_eq!(note.channel(), s.channel());
        let envelope: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
        let row = rows
            .iter()
            .find(|r| r.0 == envelope["event_id"].as_str().unwrap())
            .expect("every notification is a row");
        assert_eq!(envelope["game_id"], row.1.as_str());
        assert_eq!(envelope["container_id"], row.2.as_str());
        assert_eq!(envelope["event_type"], "inspect_unhealthy");
        assert_eq!(envelope["details"], row.3);
    }
}

#[test]
fn stdout_sink_with_postgres_records_and_empty_channel() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::migrated(url, "stdoutsink", &[("g-1", "running", "game-1")]);
    let engine =
        FakeEngine::start(|_| Reply::Json(200, inspect_body(&hex_id(8), 2, "paused", None)));
    let out = bin()
        .arg("once")
        .args(s.args())
        .args(["--sink", "stdout", "--docker-host", &engine.docker_host()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ev = events(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["details"]["state"], "paused");
    assert!(s.event_rows().is_empty());
}

/// The grants the README documents: ON CONFLICT (event_id) needs SELECT on
/// the conflict column besides INSERT.
#[test]
fn least_privilege_role_reads_records_and_inserts_events() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::migrated(url, "role", &[("g-1", "running", "game-1")]);
    let role = format!("rt_{}", s.name);
    s.client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT ON {records} TO {role};
             GRANT INSERT ON {events} TO {role};
             GRANT SELECT (event_id) ON {events} TO {role};",
            schema = s.name,
            records = s.records(),
            events = s.events()
        ))
        .unwrap();
    let engine =
        FakeEngine::start(|_| Reply::Json(200, inspect_body(&hex_id(8), 0, "exited", None)));
    let role_url = format!("{url} user={role}");
    let out = bin()
        .arg("once")
        .args(s.args())
        .args([
            "--database-url",
            &role_url,
            "--docker-host",
            &engine.docker_host(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let rows = s.event_rows();
    s.client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(rows.len(), 1);
}

#[test]
fn postgres_outage_during_run_loses_nothing_and_floods_nothing() {
    let Some(g) = StoppedGame::start("outage") else {
        return;
    };
    let (cluster, url) = (&g.cluster, g.url.clone());
    let s = &g.schema;

    let child = g
        .command("250ms")
        // Ticks like the last one are logged at debug: count them all.
        .env("RUST_LOG", "rtinspect=debug")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let count_rows = |url: &str| -> i64 {
        postgres::Client::connect(url, postgres::NoTls)
            .and_then(|mut c| c.query_one(&format!("SELECT count(*) FROM {}", s.events()), &[]))
            .map(|r| r.get(0))
            .unwrap_or(-1)
    };
    wait_until(Duration::from_secs(20), "events before the outage", || {
        count_rows(&url) >= 2
    });
    cluster.down();
    std::thread::sleep(Duration::from_secs(3));
    cluster.up();
    wait_until(Duration::from_secs(30), "events after the outage", || {
        count_rows(&url) >= 6
    });
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // Each tick that emitted logged it; every one of those events is a row, once.
    let emitted: usize = stderr
        .lines()
        .filter(|l| l.contains("tick: 1 records, 1 events"))
        .count();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let (rows, distinct) = rows_and_distinct(&mut client, &s.events());
    assert_eq!(rows as usize, emitted, "{stderr}");
    assert_eq!(rows, distinct);
    // The outage (3 s at 250 ms) is logged at most once per tick, not per record or retry.
    let skipped = stderr
        .lines()
        .filter(|l| l.contains("tick skipped"))
        .count();
    let warnings = stderr.lines().filter(|l| l.contains("WARN")).count();
    assert!(skipped >= 1, "{stderr}");
    assert!(warnings <= skipped + 2, "{stderr}");
}
