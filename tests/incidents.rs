//! Incidents on the real dockerd: a game that dies twelve seconds after each
//! start, restarted by Docker for ever (its back-off is reset by any run of
//! ten seconds), is one incident that opens, becomes a crash loop and, once
//! the game stops dying, resolves — on stdout beside the every-tick facts,
//! and on a webhook in Slack's format with nothing else.

use std::time::{Duration, Instant};

use crate::support::{
    Containers, Daemon, HookReply, HookServer, TempDir, bin, envelopes, live_docker, this_host,
    wait_until,
};

fn of_type<'a>(all: &'a [serde_json::Value], event_type: &str) -> Vec<&'a serde_json::Value> {
    all.iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

/// The Slack lines the webhook received.
fn slack_lines(hook: &HookServer) -> Vec<String> {
    hook.requests()
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_crash_loop_is_one_incident_opened_escalated_and_resolved_beside_every_fact() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "incidents");
    let flag = TempDir::new("incident-flag");
    let hook = HookServer::start(|_, _| HookReply::ok());
    // The crash-loop window is the time a crash loop must run clean to end:
    // a minute here, so that the test sees the end.
    let rules = [
        "--crash-loop-window",
        "1m",
        "--recover-after",
        "30s",
        "--interval",
        "5s",
    ];
    let (stdout_daemon, out, err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--report", "both"])
            .args(rules)
            .args(["--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    let (hook_daemon, _, hook_err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--sink", "webhook"])
            .args([
                "--webhook-format",
                "slack",
                "--webhook-url",
                &hook.url("/hook"),
            ])
            .args(rules)
            .args(["--docker-host", &live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug"),
    );
    wait_until(Duration::from_secs(20), "both first ticks", || {
        err.text().contains("tick:") && hook_err.text().contains("tick:")
    });
    let started = Instant::now();
    let id = c.run_restarting(
        "g-loop",
        &flag,
        "sleep 12; test -e /flag/stop || exit 3; sleep 3600",
    );
    // Three restarts (twelve seconds each) make the crash loop; then it is
    // watched looping until two minutes have passed.
    wait_until(Duration::from_secs(90), "the crash loop", || {
        !of_type(&envelopes(&out), "incident_escalated").is_empty()
    });
    while started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let looping = envelopes(&out);
    let restarts: u64 = live
        .docker(&["inspect", "-f", "{{.RestartCount}}", &id])
        .parse()
        .unwrap();
    assert!(restarts >= 6, "still looping: {restarts} restarts");
    let opened = of_type(&looping, "incident_opened");
    let escalated = of_type(&looping, "incident_escalated");
    assert_eq!(opened.len(), 1, "{looping:#?}");
    assert_eq!(escalated.len(), 1, "{looping:#?}");
    assert_eq!(escalated[0]["details"]["kind"], "crash_loop");
    let incident = opened[0]["details"]["incident_id"].clone();
    assert_eq!(escalated[0]["details"]["incident_id"], incident);
    assert!(escalated[0]["details"]["restarts_in_window"].as_u64() >= Some(3));
    // The facts go on as before: one at least every tick it was seen in trouble.
    assert!(
        of_type(&looping, "inspect_unhealthy").len() >= restarts as usize,
        "{} facts for {restarts} restarts",
        of_type(&looping, "inspect_unhealthy").len()
    );
    assert!(of_type(&looping, "incident_resolved").is_empty());

    // The game stops dying: at its next start it stays up, and a minute
    // clean (the window) ends the crash loop.
    std::fs::write(flag.path().join("stop"), b"").unwrap();
    wait_until(Duration::from_secs(120), "the resolution", || {
        !of_type(&envelopes(&out), "incident_resolved").is_empty()
    });
    std::thread::sleep(Duration::from_secs(6));
    let all = envelopes(&out);
    let resolved = of_type(&all, "incident_resolved");
    assert_eq!(resolved.len(), 1, "{all:#?}");
    assert_eq!(resolved[0]["details"]["incident_id"], incident);
    assert_eq!(resolved[0]["details"]["seen"]["state"], "running");
    assert_eq!(of_type(&all, "incident_opened").len(), 1);
    assert_eq!(of_type(&all, "incident_escalated").len(), 1);

    // The webhook got the same incident, in Slack's format, and nothing else.
    wait_until(Duration::from_secs(30), "the webhook's resolution", || {
        slack_lines(&hook).iter().any(|l| l.contains("[resolved]"))
    });
    let lines = slack_lines(&hook);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let on = format!("rtinspect on {}: ", this_host());
    assert!(
        lines[0].starts_with(&format!("{on}[not running]"))
            || lines[0].starts_with(&format!("{on}[restarted]")),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with(&format!("{on}[now a crash loop]")),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with(&format!("{on}[resolved]")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l.contains("game `g-loop`")),
        "{lines:#?}"
    );
    assert!(stdout_daemon.terminate().success(), "{}", err.text());
    assert!(hook_daemon.terminate().success(), "{}", hook_err.text());
}
