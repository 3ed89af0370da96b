//! The Grafana dashboard shipped in the .deb against the real thing: every
//! metric it names is in rtinspect's exposition (a renamed metric breaks
//! this test, not the dashboard); a real Prometheus (Debian's) scrapes a
//! real rtinspect watching failing games, and every panel's query sent to
//! its HTTP API returns at least one series; the PostgreSQL panel's SQL
//! runs against the real events table.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{
    Containers, Daemon, TempDir, TestSchema, UNHEALTHY, bin, free_addr, http_get, live_docker,
    live_pg, live_required, skipped, wait_until,
};

fn dashboard() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/rtinspect.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every PromQL query of the dashboard's panels, and the PostgreSQL one.
fn queries(d: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let (mut promql, mut sql) = (Vec::new(), Vec::new());
    for panel in d["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            if let Some(expr) = target["expr"].as_str() {
                promql.push(expr.to_owned());
            }
            if let Some(raw) = target["rawSql"].as_str() {
                sql.push(raw.to_owned());
            }
        }
    }
    (promql, sql)
}

/// The metric names a query reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("rtinspect_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The query as Grafana would send it for every host.
fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$host", ".*")
}

/// Debian's Prometheus scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Option<Prometheus> {
        let found = Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but there is no prometheus (apt-get install prometheus)"
            );
            skipped("no prometheus: apt-get install prometheus");
            return None;
        }
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: rtinspect\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_addr();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        wait_until(Duration::from_secs(60), "prometheus ready", || {
            http_get(&p.addr, "/-/ready").is_some_and(|(s, _)| s == 200)
        });
        Some(p)
    }

    /// The series an instant query returns (`None`: an error).
    fn query(&self, expr: &str) -> Option<Vec<serde_json::Value>> {
        let mut encoded = String::new();
        for b in expr.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let (status, body) = http_get(&self.addr, &format!("/api/v1/query?query={encoded}"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["status"] == "success")
            .then(|| v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_panel_answers_from_a_real_prometheus_and_the_sql_runs() {
    let d = dashboard();
    let (promql, sql) = queries(&d);
    assert!(promql.len() >= 12, "{promql:?}");
    assert_eq!(sql.len(), 1);
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"host"), "a host variable for fleets");
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "dashboard");
    let state = TempDir::new("dashboard-state");
    c.run("g-ok", &[], &["sleep", "3600"]);
    c.run("g-sick", UNHEALTHY, &["sleep", "3600"]);
    c.run(
        "g-loop",
        &["--restart=always"],
        &["sh", "-c", "sleep 1; exit 1"],
    );
    let addr = free_addr();
    let (daemon, out, err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--report", "both"])
            .args(["--interval", "1s", "--docker-host", &live.docker_host()])
            .args(["--metrics-addr", &addr])
            .arg("--state-dir")
            .arg(state.path()),
    );
    wait_until(Duration::from_secs(90), "the crash loop", || {
        out.lines()
            .iter()
            .any(|l| l.contains("\"incident_escalated\"") && l.contains("g-loop"))
    });

    // Every metric the dashboard names is in the exposition.
    let (_, exposition) = http_get(&addr, "/metrics").unwrap();
    for expr in &promql {
        for name in metric_names(expr) {
            let family = name.trim_end_matches("_bucket");
            assert!(
                exposition.contains(&format!("# TYPE {family} ")),
                "the dashboard reads {name}, which /metrics does not have: {expr}"
            );
        }
    }

    if let Some(prometheus) = Prometheus::start(&addr) {
        for expr in &promql {
            let q = concrete(expr);
            wait_until(
                Duration::from_secs(60),
                &format!("a series for {q}"),
                || {
                    prometheus
                        .query(&q)
                        .is_some_and(|series| !series.is_empty())
                },
            );
        }
        // The host variable finds this rtinspect.
        let hosts = prometheus
            .query("group by (instance) (rtinspect_build_info)")
            .unwrap();
        assert_eq!(hosts[0]["metric"]["instance"], addr.as_str());
    }
    assert!(daemon.terminate().success(), "{}", err.text());

    // The PostgreSQL panel against the real table, as Grafana expands it.
    let Some(url) = live_pg() else { return };
    let mut schema = TestSchema::new(url, "dashboard");
    schema.migrate();
    schema
        .client
        .execute(
            &format!(
                "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details) \
                 VALUES (gen_random_uuid(), 'g-1', 'c1', 'incident_opened', now(), \
                 '{{\"incident_id\":\"i-1\",\"kind\":\"crash_loop\"}}')",
                schema.events()
            ),
            &[],
        )
        .unwrap();
    let query = sql[0]
        .replace("runtime_health_events", &schema.events())
        .replace(
            "$__timeFilter(occurred_at)",
            "occurred_at BETWEEN now() - interval '6 hours' AND now()",
        );
    let rows = schema.client.query(&query, &[]).unwrap();
    assert_eq!(rows.len(), 1);
    let kind: Option<String> = rows[0].get("kind");
    assert_eq!(kind.as_deref(), Some("crash_loop"));
}
