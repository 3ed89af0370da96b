//! The retention of the events table: `rtinspect prune-events` deletes
//! the old rows in batches, and fails with the documented codes.

use std::collections::HashSet;

use crate::support::{TestSchema, bin, live_pg, prune};

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
