//! The slack format: `{"text": …}`, one readable line, as Slack's
//! incoming webhooks and Discord's Slack-compatible endpoint take it, and a
//! digest as lines of text, within Slack's limit.

use super::digest::Digest;
use super::tail;
use super::text::readable_line;
use crate::event::HealthEvent;

/// The longest Slack text kept: "We recommend keeping the text of messages
/// under 4,000 characters" (its `chat.postMessage`; longer ones are cut).
pub(crate) const SLACK_TEXT_CHARS: usize = 4000;

/// The `{"text": …}` body of the slack format.
pub(crate) fn slack_body(event: &HealthEvent, host: &str) -> String {
    let mut text = slack_line(event, host);
    let room = SLACK_TEXT_CHARS.saturating_sub(text.len());
    text.push_str(&tail::for_event(event, TAIL, "\n", room));
    serde_json::json!({ "text": text }).to_string()
}

/// One readable line: the host, the game, the short container id, the state, the
/// health, the restart count, and with extended details the exit, the error
/// and the last probe's output.
///
/// Text that comes from outside (the game id, Docker's error and probe
/// output) is made inert: Slack's `&`, `<`, `>` escaped so that `<!channel>`
/// pings no one, a zero-width space after `@` so that Discord's `@everyone`
/// does not either, backticks taken out of code spans, all on one line.
pub(crate) fn slack_line(event: &HealthEvent, host: &str) -> String {
    readable_line(event, host, slack_escape)
}

/// Inert text that cannot address anyone or break out of Slack's markup.
pub(crate) fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A game as the slack format names it: inert, in a code span (a backtick
/// in it a quote), as the single line does.
fn slack_name(game: &str) -> String {
    format!("`{}`", slack_escape(game).replace('`', "'"))
}

/// The `{"text": …}` body of a digest in the slack format: the summary,
/// then one line a group, at most [`SLACK_TEXT_CHARS`].
pub(crate) fn digest_body(digest: &Digest, host: &str) -> String {
    let host = slack_escape(host);
    let mut text = format!("rtinspect: {}\n", digest.summary(&host));
    let budget = SLACK_TEXT_CHARS.saturating_sub(text.len());
    text.push_str(&digest.lines(&host, slack_name, budget));
    let room = SLACK_TEXT_CHARS.saturating_sub(text.len());
    text.push_str(&tail::for_digest(digest, TAIL, "\n", room));
    serde_json::json!({ "text": text }).to_string()
}

/// `rtinspect notify-test`'s message: its title and line as one text.
pub(crate) fn test_body(title: &str, line: &str) -> String {
    serde_json::json!({ "text": format!("{title}\n{line}") }).to_string()
}

/// Slack: a bold heading and a code block, Slack's `&`, `<`, `>` escaped
/// inside it too.
pub(crate) const TAIL: tail::Shape = tail::Shape {
    heading: |h| format!("*{h}*\n"),
    open: "```\n",
    close: "\n```",
    line: |l| slack_escape(l).replace('`', "`\u{200B}"),
    none: |why| format!("No log lines: {why}"),
    text: slack_escape,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::StateDetails;
    use crate::webhook::format::samples::{Change, HOST, IncidentKind, event};

    #[test]
    fn an_incident_line_says_what_changed_first() {
        let seen = crate::event::stopped_event("g-7");
        let facts = crate::event::IncidentFacts {
            oom: true,
            ..crate::event::plain_facts(
                "019ae1c5-aaaa-7000-8000-000000000000",
                IncidentKind::CrashLoop,
                4,
            )
        };
        let observation = crate::inspector::Observation {
            container_id: seen.container_id.clone(),
            restart_count: 4,
            status: "running".into(),
            health: String::new(),
            details: None,
        };
        let table = [
            (
                Change::Opened,
                "rtinspect on host-7: [crash loop] 4 restarts",
            ),
            (
                Change::Escalated,
                "rtinspect on host-7: [now a crash loop] 4 restarts",
            ),
            (
                Change::Reminder,
                "rtinspect on host-7: [still a crash loop] 4 restarts",
            ),
            (
                Change::Resolved,
                "rtinspect on host-7: [resolved] 4 restarts",
            ),
        ];
        for (change, start) in table {
            let e = HealthEvent::for_incident(
                change,
                facts.clone(),
                "g-7".into(),
                observation.clone(),
                std::time::SystemTime::UNIX_EPOCH,
            );
            let line = slack_line(&e, HOST);
            assert!(line.starts_with(start), "{line}");
            assert!(
                line.contains(
                    "out of memory, since 2026-12-02T15:40:13.104861Z (incident …00000000); \
                     game `g-7`"
                ),
                "{line}"
            );
        }
    }
    #[test]
    fn the_slack_line_table() {
        let table = [
            (
                event("g-42", "exited", "", None),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: exited, no healthcheck, restart count 3",
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: running, health unhealthy, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "exited",
                    "",
                    Some(StateDetails {
                        exit_code: Some(137),
                        oom_killed: Some(true),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: exited (exit code 137, OOM-killed), \
                 no healthcheck, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "exited",
                    "",
                    Some(StateDetails {
                        exit_code: Some(3),
                        oom_killed: Some(false),
                        finished_at: Some("2026-11-27T09:42:58Z".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: exited (exit code 3), \
                 no healthcheck, restart count 3",
            ),
            (
                event(
                    "g-42",
                    "running",
                    "unhealthy",
                    Some(StateDetails {
                        health_failing_streak: Some(3),
                        health_output: Some("probe says no\n".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: running, health unhealthy \
                 (3 failed probes, last said \"probe says no\"), restart count 3",
            ),
            (
                event(
                    "g-42",
                    "created",
                    "",
                    Some(StateDetails {
                        exit_code: Some(127),
                        error: Some("exec: \"/x\": no such file\n".into()),
                        ..StateDetails::default()
                    }),
                ),
                "rtinspect on host-7: game `g-42` container `d3c207677dd0`: created (exit code 127), \
                 no healthcheck, restart count 3, error \"exec: \"/x\": no such file\"",
            ),
            (
                event("<!channel> @everyone `x`\n&", "exited", "", None),
                "rtinspect on host-7: game `&lt;!channel&gt; @\u{200B}everyone 'x' &amp;` container \
                 `d3c207677dd0`: exited, no healthcheck, restart count 3",
            ),
        ];
        for (event, want) in table {
            assert_eq!(slack_line(&event, HOST), want);
        }
    }

    #[test]
    fn the_slack_body_is_one_json_text() {
        let e = event("g\"1", "exited", "", None);
        let v: serde_json::Value = serde_json::from_str(&slack_body(&e, HOST)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["text"], slack_line(&e, HOST));
    }
}
