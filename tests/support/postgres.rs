//! The real PostgreSQL (and PgBouncer) the tests use: a schema of one test's
//! own, a cluster of one test's own to stop and start, and a game that stays
//! stopped on the live dockerd with its records.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

/// The PostgreSQL the tests use: `RTINSPECT_TEST_DATABASE_URL` (tests/run.sh
/// starts a throwaway cluster and sets it), or `None` with a note when unset
/// and not demanded.
pub fn live_pg() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let url = std::env::var("RTINSPECT_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let reachable = url
            .as_deref()
            .is_some_and(|u| ::postgres::Client::connect(u, ::postgres::NoTls).is_ok());
        if !reachable {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no PostgreSQL answers at RTINSPECT_TEST_DATABASE_URL={url:?}"
            );
            eprintln!("no PostgreSQL: set RTINSPECT_TEST_DATABASE_URL, or use tests/run.sh");
            return None;
        }
        url
    });
    if url.is_none() {
        skipped("no PostgreSQL");
    }
    url.as_deref()
}

/// A schema of its own for one test, dropped with everything in it on drop.
pub struct TestSchema {
    pub url: String,
    pub name: String,
    pub client: ::postgres::Client,
}

impl TestSchema {
    pub fn new(url: &str, test: &str) -> TestSchema {
        let name = format!("t_{test}_{}", std::process::id());
        let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap();
        TestSchema {
            url: url.to_owned(),
            name,
            client,
        }
    }

    /// A schema of its own, migrated, with `records` (game, status,
    /// container) in its records table.
    pub fn migrated(url: &str, test: &str, records: &[(&str, &str, &str)]) -> TestSchema {
        let mut schema = TestSchema::new(url, test);
        schema.migrate();
        for (game, status, container) in records {
            schema.insert_record(game, status, container);
        }
        schema
    }

    pub fn records(&self) -> String {
        format!("{}.runtime_records", self.name)
    }

    pub fn events(&self) -> String {
        format!("{}.runtime_health_events", self.name)
    }

    pub fn silences(&self) -> String {
        format!("{}.runtime_silences", self.name)
    }

    /// A notify channel of this test's own.
    pub fn channel(&self) -> String {
        format!("ch_{}", self.name)
    }

    /// The common flags: database, this schema's tables, this channel.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.url.clone(),
            "--records-table".into(),
            self.records(),
            "--events-table".into(),
            self.events(),
            "--silences-table".into(),
            self.silences(),
            "--notify-channel".into(),
            self.channel(),
        ]
    }

    pub fn migrate(&self) {
        succeeded(bin().arg("migrate").args(self.args()));
    }

    pub fn insert_record(&mut self, game: &str, status: &str, container: &str) {
        self.client
            .execute(
                &format!(
                    "INSERT INTO {} (game_id, status, current_container_id) VALUES ($1, $2, $3)",
                    self.records()
                ),
                &[&game, &status, &container],
            )
            .unwrap();
    }

    /// The number of events rows matching the SQL condition `filter`.
    pub fn count_events(&mut self, filter: &str) -> i64 {
        self.client
            .query_one(
                &format!("SELECT count(*) FROM {} WHERE {filter}", self.events()),
                &[],
            )
            .unwrap()
            .get(0)
    }

    /// (event_id, game_id, container_id, details as JSON text), oldest first.
    pub fn event_rows(&mut self) -> Vec<(String, String, String, serde_json::Value)> {
        self.client
            .query(
                &format!(
                    "SELECT event_id::text, game_id, container_id, details::text FROM {} ORDER BY occurred_at",
                    self.events()
                ),
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| {
                let details: String = r.get(3);
                (r.get(0), r.get(1), r.get(2), serde_json::from_str(&details).unwrap())
            })
            .collect()
    }
}

/// How many rows the events table `events` holds, and how many distinct
/// event ids: the same when no event was stored twice.
pub fn rows_and_distinct(client: &mut ::postgres::Client, events: &str) -> (i64, i64) {
    client
        .query_one(
            &format!("SELECT count(*), count(DISTINCT event_id) FROM {events}"),
            &[],
        )
        .map(|row| (row.get(0), row.get(1)))
        .unwrap()
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A PostgreSQL cluster of one test's own, for stopping and starting it.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Extra server options (TLS).
    opts: String,
}

impl PgCluster {
    /// Starts a fresh cluster (needs root, the `postgres` user and the server
    /// binaries); `None` with a note when they are missing and not demanded.
    pub fn start() -> Option<PgCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(!live_required(), "PostgreSQL server binaries are missing");
            skipped("no PostgreSQL server binaries");
            return None;
        };
        let dir = TempDir::new("pgcluster");
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        // A port free right now: tests that serve TCP run side by side.
        let port = free_addr()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap();
        let cluster = PgCluster {
            dir,
            bin,
            port,
            opts: String::new(),
        };
        cluster.as_postgres(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]);
        cluster.up();
        Some(cluster)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn as_postgres(&self, args: &[&str]) {
        succeeded(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(args[0]))
                .args(&args[1..]),
        );
    }

    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    pub fn up(&self) {
        let opts = if self.opts.is_empty() {
            format!(
                "-k {} -p {} -c listen_addresses=",
                self.dir.path().display(),
                self.port
            )
        } else {
            format!(
                "-k {} -p {} {}",
                self.dir.path().display(),
                self.port,
                self.opts
            )
        };
        let log = format!("{}/server.log", self.dir.path().display());
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-o",
            &opts,
            "start",
        ]);
    }

    /// Restarts the cluster as a TLS-only server on 127.0.0.1: a certificate
    /// for `localhost` only, signed by a CA of its own (returned as a PEM
    /// path); plain TCP connections are rejected by pg_hba.conf.
    pub fn serve_tls_only(&mut self) -> PathBuf {
        self.down();
        let dir = self.dir.path();
        // For `localhost` only: a client that names 127.0.0.1 fails to verify it.
        signed_server_cert(dir, "DNS:localhost");
        sh_in(
            dir,
            "chown postgres server.key server.crt && chmod 600 server.key",
        );
        let data = self.data();
        std::fs::write(
            format!("{data}/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        self.opts = format!(
            "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
            d = dir.display()
        );
        self.up();
        dir.join("ca.pem")
    }

    /// A TCP URL to the TLS server, by `host` (localhost or 127.0.0.1).
    pub fn tcp_url(&self, host: &str, sslmode: &str) -> String {
        format!(
            "host={host} port={} user=postgres dbname=postgres sslmode={sslmode}",
            self.port
        )
    }

    pub fn down(&self) {
        self.as_postgres(&["pg_ctl", "-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Restarts the cluster listening on 127.0.0.1 too; returns a TCP URL.
    pub fn serve_tcp(&mut self) -> String {
        self.down();
        self.opts = "-c listen_addresses=127.0.0.1".into();
        self.up();
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the postmaster and every backend.
    pub fn freeze(&self, frozen: bool) {
        let pid_file = std::fs::read_to_string(format!("{}/postmaster.pid", self.data())).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: the comm may hold spaces, so cut at ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").arg(sig).args(&pids).status().unwrap();
        assert!(status.success(), "kill {sig} {pids:?}");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A PostgreSQL cluster of its own with a migrated schema holding one
/// record, game `g-stopped`, `running` in the database while its container on
/// the live dockerd has exited: every tick of a daemon over it emits one
/// event. The schema, the container and the cluster go with it.
pub struct StoppedGame {
    pub live: &'static LiveDocker,
    pub schema: TestSchema,
    pub containers: Containers<'static>,
    /// The exited container's id.
    pub stopped: String,
    /// The URL the schema was made through.
    pub url: String,
    // Last: the schema is dropped through it.
    pub cluster: PgCluster,
}

impl StoppedGame {
    /// The fixture, `test` naming the schema and the containers' label;
    /// `None` (with the note) when dockerd or PostgreSQL is absent and not
    /// demanded.
    pub fn start(test: &str) -> Option<StoppedGame> {
        Self::start_over(test, |cluster| cluster.url())
    }

    /// The same, reaching the cluster through the URL `url` returns.
    pub fn start_over(
        test: &str,
        url: impl FnOnce(&mut PgCluster) -> String,
    ) -> Option<StoppedGame> {
        let live = live_docker()?;
        let mut cluster = PgCluster::start()?;
        let url = url(&mut cluster);
        let mut schema = TestSchema::new(&url, test);
        schema.migrate();
        let mut containers = Containers::new(live, test);
        let stopped = containers.exited("g-stopped");
        schema.insert_record("g-stopped", "running", &stopped);
        Some(StoppedGame {
            live,
            schema,
            containers,
            stopped,
            url,
            cluster,
        })
    }

    /// `rtinspect run` over the schema and the live dockerd at `interval`,
    /// stdout discarded; add the rest, then [`StoppedGame::spawn`] it.
    pub fn command(&self, interval: &str) -> Command {
        let mut cmd = bin();
        cmd.arg("run")
            .args(self.schema.args())
            .args([
                "--interval",
                interval,
                "--docker-host",
                &self.live.docker_host(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Starts `cmd` and reads its stderr.
    pub fn spawn(cmd: &mut Command) -> (Daemon, StderrLines) {
        let mut child = cmd.spawn().unwrap();
        let stderr = StderrLines::of(&mut child);
        (Daemon(Some(child)), stderr)
    }

    /// The usual daemon: 200 ms ticks, state in `state`, every tick logged
    /// (`RUST_LOG=rtinspect=debug`).
    pub fn run(&self, state: &Path) -> (Daemon, StderrLines) {
        Self::spawn(
            self.command("200ms")
                .arg("--state-dir")
                .arg(state)
                .env("RUST_LOG", "rtinspect=debug"),
        )
    }
}

/// PgBouncer in transaction pooling mode in front of the test PostgreSQL:
/// `RTINSPECT_TEST_PGBOUNCER_URL` (tests/services.sh starts one and sets
/// it), or `None` with a note when unset and not demanded. Its admin console
/// must confirm transaction pooling, so that a session-mode bouncer cannot
/// pass for one.
pub fn live_pgbouncer() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let url = std::env::var("RTINSPECT_TEST_PGBOUNCER_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let mode = url.as_deref().and_then(|u| pgbouncer_setting(u, "pool_mode"));
        if mode.is_none() {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no PgBouncer answers at RTINSPECT_TEST_PGBOUNCER_URL={url:?}"
            );
            eprintln!("no PgBouncer: set RTINSPECT_TEST_PGBOUNCER_URL, or use tests/run.sh");
            return None;
        }
        assert_eq!(mode.as_deref(), Some("transaction"), "PgBouncer's pool_mode");
        url
    });
    if url.is_none() {
        skipped("no PgBouncer");
    }
    url.as_deref()
}

/// A setting of the PgBouncer at `url`, from `SHOW CONFIG` on its admin
/// console (the database `pgbouncer`, simple queries only).
pub fn pgbouncer_setting(url: &str, key: &str) -> Option<String> {
    let admin = url.replace("dbname=postgres", "dbname=pgbouncer");
    let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls).ok()?;
    let messages = client.simple_query("SHOW CONFIG").ok()?;
    messages.into_iter().find_map(|m| match m {
        ::postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some(key) => {
            row.get(1).map(str::to_owned)
        }
        _ => None,
    })
}
