//! The database path loses nothing: what once kept events out of the events
//! table or held them up, against the real PostgreSQL — a NUL in a text
//! Docker sends, one event the server refuses while it takes the others, a
//! queue full while the server refuses writes, a primary that turned
//! read-only, `migrate` run by several hosts at once.

use crate::util::{FakeEngine, Reply, TestSchema, bin, hex_id, live_pg};

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
    let mut s = TestSchema::new(url, "nul");
    s.migrate();
    s.insert_record("g-nul", "running", "game-nul");
    s.insert_record("g-ok", "running", "game-ok");
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
        assert_eq!(created, 4, "round {round}: two tables and two indexes");
    }
}
