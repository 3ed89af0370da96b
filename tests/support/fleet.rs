//! Fleets on one PostgreSQL: the set-ups the fleet, PgBouncer and
//! retention tests share — `rtinspect` commands on a test schema, records
//! of several hosts, a daemon on a fake engine, and the lock on the shared
//! cluster for the tests that disturb one another.

use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};

use super::{FakeEngine, Reply, TestSchema, bin, inspect_body};

/// Taken by the tests that disturb one another on the shared cluster: the
/// locked table's blocked queries hold a snapshot (so VACUUM cannot mark the
/// pages that an index-only scan needs all-visible) and hold one of
/// PgBouncer's two server connections for 30 s (which the four hosts need).
static SHARED_CLUSTER: Mutex<()> = Mutex::new(());

/// The shared cluster to this test alone, until the guard is dropped.
pub fn shared_cluster() -> MutexGuard<'static, ()> {
    SHARED_CLUSTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// `rtinspect COMMAND` on this schema and `url` with these extra arguments;
/// (exit code, stdout, stderr).
pub fn command(
    cmd: &str,
    s: &TestSchema,
    url: &str,
    extra: &[&str],
) -> (Option<i32>, String, String) {
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
pub fn migrate(s: &TestSchema, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    command("migrate", s, url, extra)
}

/// A record of `host`: `game` with `status` and `container`.
pub fn insert_host_record(
    s: &mut TestSchema,
    game: &str,
    status: &str,
    container: &str,
    host: &str,
) {
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
pub fn exited_engine() -> FakeEngine {
    FakeEngine::start(|path| {
        let id = path.split('/').nth(3).unwrap_or("").to_owned();
        Reply::Json(200, inspect_body(&id, 0, "exited", None))
    })
}

/// `rtinspect run` on this schema through `url`, ticking every 200 ms on
/// `engine`, logging at debug to a pipe.
pub fn spawn_daemon(s: &TestSchema, url: &str, engine: &FakeEngine, extra: &[&str]) -> Child {
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

/// `rtinspect prune-events` with these arguments.
pub fn prune(s: &TestSchema, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    command("prune-events", s, url, extra)
}
