//! The words every chat format shares: what changed ([`what_changed`]),
//! the readable line of one event ([`readable_line`]), and the cutting and
//! flattening of text from outside. Pure functions of the event; each
//! format makes outside text inert in its own markup.

use crate::event::HealthEvent;
use crate::incident::{Change, Kind as IncidentKind};
use crate::inspector::restart_under_way;
use crate::text::{cut_at_char_boundary, is_invisible};

/// What an event is about, as the chat formats tell it apart; the worst
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A crash loop: restarts in the window.
    CrashLoop,
    /// Not running.
    NotRunning,
    /// The healthcheck fails.
    Unhealthy,
    /// It restarted.
    Restarted,
    /// An incident ended.
    Resolved,
}

/// What changed, in a few words (`crash loop`, `still unhealthy`,
/// `resolved`), and the kind; a fact's is [`HealthEvent::fact_kind`].
pub(crate) fn what_changed(event: &HealthEvent) -> (Kind, String, bool) {
    let Some(i) = event.incident.as_deref() else {
        let (kind, what) = match event.fact_kind() {
            IncidentKind::NotRunning => (Kind::NotRunning, "not running"),
            IncidentKind::Unhealthy => (Kind::Unhealthy, "unhealthy"),
            _ => (Kind::Restarted, "restarted"),
        };
        return (kind, what.to_owned(), false);
    };
    let (kind, name, state) = match i.kind {
        IncidentKind::CrashLoop => (Kind::CrashLoop, "crash loop", "a crash loop"),
        IncidentKind::NotRunning => (Kind::NotRunning, "not running", "not running"),
        IncidentKind::Unhealthy => (Kind::Unhealthy, "unhealthy", "unhealthy"),
        IncidentKind::Restarted => (Kind::Restarted, "restarted", "open (restarted)"),
    };
    match event.change() {
        // The operator took the game over: the incident ends, and says so.
        Some(Change::Resolved) if event.resolution.as_deref() == Some("stopped") => (
            Kind::Resolved,
            "resolved (stopped by an operator)".to_owned(),
            false,
        ),
        Some(Change::Resolved) => (Kind::Resolved, "resolved".to_owned(), false),
        Some(Change::Escalated) => (kind, format!("now {state}"), false),
        // A crash loop whose restart policy gave up is down, no longer
        // restarting: the reminder says how it stands now.
        Some(Change::Reminder)
            if i.kind == IncidentKind::CrashLoop
                && event.state != "running"
                && !restart_under_way(&event.state) =>
        {
            (kind, "down after a crash loop".to_owned(), true)
        }
        Some(Change::Reminder) => (kind, format!("still {state}"), true),
        Some(Change::Opened) | None => (kind, name.to_owned(), false),
    }
}

/// `text` cut to at most `max` characters (not bytes), with `…` as the last
/// when it was cut.
pub(crate) fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        cut.push('…');
    }
    cut
}

/// Text from outside (a game id, Docker's error, a probe's output) as every
/// format takes it, before its own escaping: on one line, control
/// characters and line and paragraph separators as spaces, and the
/// characters that change how text reads without showing themselves (bidi
/// controls such as a right-to-left override, which turns a name around;
/// zero-width characters, which hide a word's true spelling) removed;
/// trimmed.
pub(crate) fn inert(text: &str) -> String {
    text.chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The readable line, from `host`, every text from outside made [`inert`],
/// then passed through the format's `escape`.
pub(crate) fn readable_line(event: &HealthEvent, host: &str, escape: fn(&str) -> String) -> String {
    let text = |t: &str| escape(&inert(t));
    let x = event.details.as_deref();
    let mut state = event.state.clone();
    let exit = x
        .and_then(|x| x.exit_code)
        .map(|c| format!("exit code {c}"));
    let oom = x.and_then(|x| x.oom_killed) == Some(true);
    match (exit, oom) {
        (Some(exit), true) => state.push_str(&format!(" ({exit}, OOM-killed)")),
        (Some(exit), false) => state.push_str(&format!(" ({exit})")),
        (None, true) => state.push_str(" (OOM-killed)"),
        (None, false) => {}
    }
    let mut health = if event.health.is_empty() {
        "no healthcheck".to_owned()
    } else {
        format!("health {}", event.health)
    };
    let streak = x.and_then(|x| x.health_failing_streak).filter(|n| *n > 0);
    let output = x
        .and_then(|x| x.health_output.as_deref())
        .map(|o| one_line(o, 120));
    match (streak, output.filter(|o| !o.is_empty())) {
        (Some(n), Some(o)) => {
            health.push_str(&format!(" ({n} failed probes, last said \"{}\")", text(&o)))
        }
        (Some(n), None) => health.push_str(&format!(" ({n} failed probes)")),
        (None, Some(o)) => health.push_str(&format!(" (last probe said \"{}\")", text(&o))),
        (None, None) => {}
    }
    let host = text(host);
    let mut line = match event.incident.as_deref() {
        None => format!("rtinspect on {host}: "),
        Some(i) => incident_prefix(event, &host, i),
    };
    line.push_str(&format!(
        "game `{}` container `{}`: {}, {}, restart count {}",
        text(&event.game_id).replace('`', "'"),
        cut_at_char_boundary(&event.container_id, 12),
        text(&state),
        text(&health),
        event.restart_count,
    ));
    if let Some(error) = x.and_then(|x| x.error.as_deref()) {
        line.push_str(&format!(", error \"{}\"", text(&one_line(error, 160))));
    }
    line
}

/// What an incident's message starts with: the host (as the format shows
/// it), what changed, what it is, for how long, and the incident's id to
/// group on.
pub(crate) fn incident_prefix(
    event: &HealthEvent,
    host: &str,
    i: &crate::event::IncidentFacts,
) -> String {
    let (_, what, _) = what_changed(event);
    let mut prefix = format!("rtinspect on {host}: [{what}] ");
    // How it ended first: what a person reads before anything else.
    if let Some(end) = end_words(event, i) {
        prefix.push_str(&end);
        prefix.push_str(", ");
    }
    if i.restarts_in_window > 0 {
        prefix.push_str(&format!(
            "{} restarts in the window, ",
            i.restarts_in_window
        ));
    }
    if i.oom && i.reason.as_deref() != Some("oom") {
        prefix.push_str("out of memory, ");
    }
    if i.after_silence {
        prefix.push_str("after a silence, ");
    }
    // The id's last digits: a UUID v7 begins with its time, the same for
    // every incident opened in the same minute.
    let id = &i.incident_id;
    prefix.push_str(&format!(
        "since {} (incident …{}); ",
        i.started_at,
        &id[id.ceil_char_boundary(id.len().saturating_sub(8))..]
    ));
    prefix
}

/// How the container ended, in words, when an incident's event says
/// (`details.reason`): `crashed: signal KILL`, `crashed: exit code 3`,
/// `exited cleanly (0) while it should run`, `out of memory`, `stopped by an
/// operator`, `ended, how unknown`. Not said again beside a resolution,
/// which says it already.
pub(crate) fn end_words(event: &HealthEvent, i: &crate::event::IncidentFacts) -> Option<String> {
    if event.resolution.is_some() {
        return None;
    }
    Some(match i.reason.as_deref()? {
        "crashed" => match (&i.signal, i.exit_code) {
            (Some(signal), _) => format!("crashed: signal {signal}"),
            (None, Some(code)) => format!("crashed: exit code {code}"),
            (None, None) => "crashed".to_owned(),
        },
        "exited" => "exited cleanly (0) while it should run".to_owned(),
        "oom" => "out of memory".to_owned(),
        "stopped" => "stopped by an operator".to_owned(),
        _ => "ended, how unknown".to_owned(),
    })
}

/// `text` on one line (control characters as spaces, trimmed), cut to at
/// most `max` bytes, with `…` where it was cut.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    let cut = cut_at_char_boundary(flat, max);
    if cut.len() < flat.len() {
        format!("{}…", cut.trim_end())
    } else {
        cut.to_owned()
    }
}

/// `rtinspect notify-test`'s title and line, from `host`: they say where
/// the message comes from and that alerts reach whoever reads it.
pub(crate) fn test_words(host: &str) -> (String, &'static str) {
    (
        format!("rtinspect: test message from {host}"),
        "Sent by rtinspect notify-test: if you read this, rtinspect's alerts reach you here.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::StateDetails;
    use crate::webhook::format::samples::{Change, HOST, IncidentKind, event, incident};
    use crate::webhook::format::slack::slack_line;

    /// Characters that turn a name around, break its line or hide part of
    /// it, one of each kind.
    const HIDDEN: [char; 9] = [
        '\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}', '\u{2028}', '\u{2029}', '\u{200B}',
        '\u{2060}', '\u{FEFF}',
    ];

    #[test]
    fn every_format_removes_bidi_controls_separators_and_zero_width_characters() {
        use crate::webhook::format::{discord, ntfy, telegram};
        let game: String = HIDDEN.iter().map(|c| format!("g{c}")).collect();
        let mut e = event(&game, "exited", "", None);
        e.details = Some(Box::new(StateDetails {
            error: Some(format!("err{}or", '\u{202E}')),
            exit_code: Some(1),
            ..StateDetails::default()
        }));
        let bodies = [
            ("slack", slack_line(&e, HOST)),
            ("discord", discord::discord_body(&e, HOST)),
            ("ntfy", ntfy::ntfy_message(&e, HOST).body),
            ("telegram", telegram::telegram_body(&e, HOST, "1")),
        ];
        for (format, body) in bodies {
            // A JSON body may escape them: read it back first.
            let text = match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => v.to_string(),
                Err(_) => body.clone(),
            };
            let found: Vec<char> = HIDDEN
                .iter()
                .copied()
                .filter(|c| text.contains(*c))
                .collect();
            assert!(found.is_empty(), "{format}: {found:?} in {body:?}");
            // Removed, not left as spaces within the name; separators break nothing.
            assert!(text.contains("ggggg"), "{format}: {text}");
        }
        assert_eq!(inert("a\u{202E}b\u{2028}c\u{200B}d\n"), "ab cd");
    }

    #[test]
    fn every_single_message_names_its_host_inert_in_its_format() {
        use crate::webhook::format::{discord, ntfy, telegram};
        let e = incident(Change::Opened, IncidentKind::CrashLoop, "g-42");
        let fact = event("g-42", "exited", "", None);
        for e in [&e, &fact] {
            let slack = slack_line(e, "eu-7");
            assert!(slack.starts_with("rtinspect on eu-7: "), "{slack}");
            let d: serde_json::Value =
                serde_json::from_str(&discord::discord_body(e, "eu-7")).unwrap();
            let title = d["embeds"][0]["title"].as_str().unwrap();
            assert!(title.ends_with(": g-42 on eu-7"), "{title}");
            let n = ntfy::ntfy_message(e, "eu-7");
            assert!(n.title.starts_with("rtinspect on eu-7: "), "{}", n.title);
            assert!(n.body.starts_with("rtinspect on eu-7: "), "{}", n.body);
            let t: serde_json::Value =
                serde_json::from_str(&telegram::telegram_body(e, "eu-7", "1")).unwrap();
            assert!(
                t["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("rtinspect on eu-7: ")
            );
        }
        // Whatever a host is called, it pings, links and breaks nothing.
        let host = "@everyone <b>[x](y)\r\nZ: 1";
        let slack = slack_line(&e, host);
        assert!(slack.starts_with("rtinspect on @\u{200B}everyone &lt;b&gt;[x](y)  Z: 1: "));
        let d = discord::discord_body(&e, host);
        assert!(
            d.contains("@\u{200B}everyone \\\\<b\\\\>\\\\[x\\\\]"),
            "{d}"
        );
        assert!(!ntfy::ntfy_message(&e, host).title.contains(['\r', '\n']));
        let t = telegram::telegram_body(&e, host, "1");
        assert!(t.contains("&lt;b&gt;") && !t.contains("<b>"), "{t}");
    }

    #[test]
    fn tag_characters_soft_hyphens_hangul_fillers_and_variation_selectors_are_removed() {
        let rows: [(&str, &[char]); 5] = [
            (
                "tags",
                &['\u{E0000}', '\u{E0001}', '\u{E0041}', '\u{E007F}'],
            ),
            ("soft hyphen, grapheme joiner", &['\u{00AD}', '\u{034F}']),
            (
                "Hangul fillers",
                &['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'],
            ),
            ("variation selectors", &['\u{FE00}', '\u{FE0F}']),
            (
                "supplementary variation selectors",
                &['\u{E0100}', '\u{E01EF}'],
            ),
        ];
        for (group, chars) in rows {
            for c in chars {
                assert_eq!(
                    inert(&format!("ga{c}me")),
                    "game",
                    "{group}: U+{:04X}",
                    *c as u32
                );
            }
        }
        // The edges stay: what is next to each range is shown.
        for c in ['\u{00AC}', '\u{FE10}', '\u{E0080}', '\u{E01F0}'] {
            assert_eq!(
                inert(&format!("a{c}")).chars().count(),
                2,
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn a_crash_loops_reminder_says_it_is_down_once_the_restart_policy_gave_up() {
        let reminder = |state: &str| {
            let mut e = incident(Change::Reminder, IncidentKind::CrashLoop, "g");
            e.state = state.into();
            what_changed(&e)
        };
        let down = (Kind::CrashLoop, "down after a crash loop".to_owned(), true);
        let still = (Kind::CrashLoop, "still a crash loop".to_owned(), true);
        assert_eq!(reminder("exited"), down);
        assert_eq!(reminder("dead"), down);
        assert_eq!(reminder("restarting"), still);
        assert_eq!(reminder("running"), still);
        let mut e = incident(Change::Reminder, IncidentKind::CrashLoop, "g-7");
        e.state = "exited".into();
        let line = slack_line(&e, HOST);
        assert!(
            line.starts_with("rtinspect on host-7: [down after a crash loop] "),
            "{line}"
        );
    }

    #[test]
    fn long_texts_are_cut_with_an_ellipsis_on_one_line() {
        assert_eq!(one_line("  a\nb\tc  ", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab  cdef", 4), "ab…");
        assert_eq!(one_line("éé", 3), "é…");
        let e = event(
            "g",
            "running",
            "unhealthy",
            Some(StateDetails {
                health_output: Some("x".repeat(512)),
                ..StateDetails::default()
            }),
        );
        let line = slack_line(&e, HOST);
        assert!(
            line.contains(&format!("(last probe said \"{}…\")", "x".repeat(120))),
            "{line}"
        );
    }

    #[test]
    fn what_changed_table() {
        use Kind::*;
        let table = [
            (
                event("g", "exited", "", None),
                NotRunning,
                "not running",
                false,
            ),
            (
                event("g", "running", "unhealthy", None),
                Unhealthy,
                "unhealthy",
                false,
            ),
            (
                event("g", "running", "", None),
                Restarted,
                "restarted",
                false,
            ),
            (
                incident(Change::Opened, IncidentKind::CrashLoop, "g"),
                CrashLoop,
                "crash loop",
                false,
            ),
            (
                incident(Change::Escalated, IncidentKind::CrashLoop, "g"),
                CrashLoop,
                "now a crash loop",
                false,
            ),
            (
                incident(Change::Reminder, IncidentKind::Unhealthy, "g"),
                Unhealthy,
                "still unhealthy",
                true,
            ),
            (
                incident(Change::Resolved, IncidentKind::NotRunning, "g"),
                Resolved,
                "resolved",
                false,
            ),
        ];
        for (e, kind, what, reminder) in table {
            assert_eq!(
                what_changed(&e),
                (kind, what.to_owned(), reminder),
                "{what}"
            );
        }
    }
}
