//! What each chat says of how a container ended (`details.reason`) and of
//! an incident the operator took over (`resolution: stopped`): one table
//! over every reason, in the line the text formats share and in Discord's
//! embed.

use super::discord::discord_body;
use super::samples::{Change, IncidentKind, incident};
use super::slack::slack_line;
use crate::ending::EndReason;
use crate::event::HealthEvent;

/// An incident's event of `change` whose container ended as `end`.
fn ended(change: Change, end: Option<EndReason>, resolution: Option<&str>) -> HealthEvent {
    let plain = incident(change, IncidentKind::NotRunning, "g-42");
    let mut facts = *plain.incident.clone().unwrap();
    facts = facts.with_end(end);
    facts.resolution = resolution.map(str::to_owned);
    let mut e = plain;
    e.incident = Some(Box::new(facts));
    e.resolution = resolution.map(str::to_owned);
    e
}

#[test]
fn each_reason_has_its_words_in_every_chat() {
    let table = [
        (
            Some(EndReason::Crashed { exit_code: 137 }),
            "crashed: signal KILL",
        ),
        (
            Some(EndReason::Crashed { exit_code: 3 }),
            "crashed: exit code 3",
        ),
        (
            Some(EndReason::Exited),
            "exited cleanly (0) while it should run",
        ),
        (Some(EndReason::Oom), "out of memory"),
        (Some(EndReason::Unknown), "ended, how unknown"),
    ];
    for (end, words) in table {
        let e = ended(Change::Opened, end, None);
        let line = slack_line(&e, "h");
        assert!(
            line.starts_with(&format!(
                "rtinspect on h: [not running] {words}, 4 restarts"
            )),
            "{line}"
        );
        let body: serde_json::Value = serde_json::from_str(&discord_body(&e, "h")).unwrap();
        let fields = body["embeds"][0]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["name"] == "How it ended" && f["value"] == words),
            "{body}"
        );
    }
    // No reason said, no words: an unhealthy incident, say.
    let line = slack_line(&ended(Change::Opened, None, None), "h");
    assert!(
        line.starts_with("rtinspect on h: [not running] 4 restarts"),
        "{line}"
    );
    // The OOM is said once.
    let mut e = ended(Change::Opened, Some(EndReason::Oom), None);
    if let Some(i) = e.incident.as_deref_mut() {
        i.oom = true;
    }
    let line = slack_line(&e, "h");
    assert_eq!(line.matches("out of memory").count(), 1, "{line}");
}

#[test]
fn an_incident_the_operator_took_over_is_resolved_stopped_by_an_operator() {
    let e = ended(Change::Resolved, Some(EndReason::Stopped), Some("stopped"));
    let line = slack_line(&e, "h");
    assert!(
        line.starts_with("rtinspect on h: [resolved (stopped by an operator)] 4 restarts"),
        "{line}"
    );
    let body: serde_json::Value = serde_json::from_str(&discord_body(&e, "h")).unwrap();
    assert_eq!(
        body["embeds"][0]["title"],
        "Resolved (stopped by an operator): g-42 on h"
    );
    // Removed stays as it was.
    let e = ended(Change::Resolved, None, Some("removed"));
    assert!(
        slack_line(&e, "h").starts_with("rtinspect on h: [resolved] "),
        "{}",
        slack_line(&e, "h")
    );
}
