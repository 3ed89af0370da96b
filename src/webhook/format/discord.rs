//! The discord format: Discord's execute-webhook JSON, one embed (what
//! changed and the game as its title, a colour by kind, the facts as
//! fields, the probe's output in a code block), every text cut to Discord's
//! limits and escaped from its Markdown, and `allowed_mentions` empty so
//! that nothing in it pings anyone; a digest as one embed of lines.

use super::digest::Digest;
use super::tail;
use super::text::{Kind, cut_chars, inert, what_changed};
use crate::event::HealthEvent;
use crate::text::cut_at_char_boundary;

/// Discord's limits on an embed, in characters: "the combined sum of
/// characters in all title, description, field.name, field.value,
/// footer.text, and author.name fields across all embeds attached to a
/// message must not exceed 6000 characters" (its Embed Limits).
pub(crate) mod discord_limits {
    /// `title`.
    pub(crate) const TITLE: usize = 256;
    /// `description`.
    pub(crate) const DESCRIPTION: usize = 4096;
    /// A field's `name`.
    pub(crate) const FIELD_NAME: usize = 256;
    /// A field's `value`.
    pub(crate) const FIELD_VALUE: usize = 1024;
    /// Fields in an embed.
    pub(crate) const FIELDS: usize = 25;
    /// All of the above together.
    pub(crate) const TOTAL: usize = 6000;
}

/// The body of the discord format: Discord's execute-webhook JSON with one
/// embed (what changed, the game and the host as its title, a colour by kind, the
/// facts as fields, the probe's output in a code block), every text cut to
/// Discord's limits, and `allowed_mentions` empty so that nothing in it,
/// `@everyone` in a game id included, pings anyone.
pub(crate) fn discord_body(event: &HealthEvent, host: &str) -> String {
    use discord_limits as limit;
    let (kind, what, _) = what_changed(event);
    let color = discord_color(kind);
    let game = discord_text(&event.game_id);
    let mut what = what;
    if let Some(first) = what.get(..1) {
        what = format!("{}{}", first.to_ascii_uppercase(), &what[1..]);
    }
    let title = cut_chars(
        &format!("{what}: {game} on {}", discord_text(host)),
        limit::TITLE,
    );
    let x = event.details.as_deref();
    let incident = event.incident.as_deref();
    let mut fields: Vec<(&str, String)> = vec![
        ("Game", game),
        (
            "Container",
            cut_at_char_boundary(&event.container_id, 12).to_owned(),
        ),
        ("State", discord_text(&event.state)),
        (
            "Health",
            if event.health.is_empty() {
                "no healthcheck".to_owned()
            } else {
                discord_text(&event.health)
            },
        ),
    ];
    if let Some(end) = incident.and_then(|i| super::text::end_words(event, i)) {
        fields.push(("How it ended", end));
    }
    if let Some(code) = x.and_then(|x| x.exit_code) {
        fields.push(("Exit code", code.to_string()));
    }
    // Either says so: an incident's `oom` counts the runs it saw end, the
    // details the last exit, which may be before the incident opened.
    let oom = [incident.map(|i| i.oom), x.and_then(|x| x.oom_killed)]
        .into_iter()
        .flatten()
        .reduce(|a, b| a || b);
    if let Some(oom) = oom {
        fields.push(("OOM", if oom { "yes" } else { "no" }.to_owned()));
    }
    fields.push(("Restarts", event.restart_count.to_string()));
    if let Some(i) = incident {
        fields.push(("Restarts in window", i.restarts_in_window.to_string()));
        fields.push(("Since", discord_text(&i.started_at)));
    }
    if let Some(error) = x.and_then(|x| x.error.as_deref()) {
        fields.push(("Error", discord_text(error)));
    }
    // Title first, the fields in order, the output with what is left.
    let mut left = limit::TOTAL - title.chars().count();
    let mut embed_fields = Vec::new();
    for (name, value) in fields.into_iter().take(limit::FIELDS) {
        let name = cut_chars(name, limit::FIELD_NAME);
        let room = left
            .saturating_sub(name.chars().count())
            .min(limit::FIELD_VALUE);
        let value = cut_chars(&value, room);
        if value.is_empty() {
            // Discord refuses an empty value.
            continue;
        }
        left -= name.chars().count() + value.chars().count();
        embed_fields.push(serde_json::json!({ "name": name, "value": value, "inline": true }));
    }
    let mut embed = serde_json::json!({
        "title": title,
        "color": color,
        "fields": embed_fields,
        "timestamp": event.occurred_at,
    });
    let mut description = String::new();
    let output = x.and_then(|x| {
        x.health_output
            .as_deref()
            .or(x.health_log.last().map(String::as_str))
    });
    if let Some(output) = output.map(str::trim).filter(|o| !o.is_empty()) {
        // A backtick with a zero-width space after it cannot close the block.
        let inner = output.replace('`', "`\u{200B}");
        const FENCES: usize = "```\n\n```".len();
        let room = left.min(limit::DESCRIPTION).saturating_sub(FENCES);
        if room > 0 {
            description = format!("```\n{}\n```", cut_chars(&inner, room));
        }
    }
    // The log tail with what is left.
    let room = left
        .min(limit::DESCRIPTION)
        .saturating_sub(description.chars().count());
    let sep = if description.is_empty() { "" } else { "\n" };
    description.push_str(&tail::for_event(event, TAIL, sep, room));
    if !description.is_empty() {
        embed["description"] = description.into();
    }
    serde_json::json!({
        "embeds": [embed],
        "allowed_mentions": { "parse": [] },
    })
    .to_string()
}

/// An embed's colour by kind: red, orange, yellow, green.
pub(crate) fn discord_color(kind: Kind) -> u32 {
    match kind {
        Kind::CrashLoop | Kind::NotRunning => 0xD9_30_25,
        Kind::Unhealthy => 0xF5_7C_00,
        Kind::Restarted => 0xF9_C7_00,
        Kind::Resolved => 0x2E_A0_43,
    }
}

/// Outside text as Discord shows it inert: on one line, every Markdown
/// character escaped (a game id `[runbook](https://…)` is no link, `**` no
/// bold), and `@` followed by a zero-width space (no mention).
pub(crate) fn discord_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in inert(text).chars() {
        match c {
            '\\' | '*' | '_' | '~' | '|' | '`' | '>' | '#' | '[' | ']' | '(' | ')' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            c => out.push(c),
        }
    }
    out
}

/// The body of a digest in the discord format: one embed, the summary as
/// its title, the colour of the worst kind, one line a group as its
/// description, within Discord's limits, and no mentions.
pub(crate) fn digest_body(digest: &Digest, host: &str) -> String {
    use discord_limits as limit;
    let host = discord_text(host);
    let title = cut_chars(&digest.summary(&host), limit::TITLE);
    let budget = limit::DESCRIPTION.min(limit::TOTAL - title.chars().count());
    let mut description = digest.lines(&host, discord_text, budget);
    let room = budget.saturating_sub(description.len());
    description.push_str(&tail::for_digest(digest, TAIL, "\n\n", room));
    let mut embed = serde_json::json!({
        "title": title,
        "color": discord_color(digest.worst()),
        "description": description,
    });
    // The latest event's time: RFC 3339 in UTC, all the same length, so
    // the greatest string is the latest.
    if let Some(at) = digest.events().iter().map(|e| e.occurred_at.as_str()).max() {
        embed["timestamp"] = at.into();
    }
    serde_json::json!({
        "embeds": [embed],
        "allowed_mentions": { "parse": [] },
    })
    .to_string()
}

/// `rtinspect notify-test`'s message: one embed, the title and the line, in
/// the colour of a resolved incident, at the event's time.
pub(crate) fn test_body(title: &str, line: &str, event: &HealthEvent) -> String {
    serde_json::json!({
        "embeds": [{
            "title": title,
            "description": line,
            "color": discord_color(Kind::Resolved),
            "timestamp": event.occurred_at,
        }],
        "allowed_mentions": { "parse": [] },
    })
    .to_string()
}

/// Discord: a bold heading and a code block.
pub(crate) const TAIL: tail::Shape = tail::Shape {
    heading: |h| format!("**{h}**\n"),
    open: "```\n",
    close: "\n```",
    line: |l| l.replace('`', "`\u{200B}").replace('@', "@\u{200B}"),
    none: |why| format!("**No log lines:** {why}"),
    text: discord_text,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::StateDetails;
    use crate::webhook::format::samples::{
        Change, HOST, IncidentKind, event, hostile, incident, probed,
    };

    #[test]
    fn outside_text_is_inert_in_a_discord_embed() {
        let table = [
            (
                "[runbook](https://evil.example/login)",
                "\\[runbook\\]\\(https://evil.example/login\\)",
            ),
            (
                "**bold** ||spoiler|| `code`",
                "\\*\\*bold\\*\\* \\|\\|spoiler\\|\\| \\`code\\`",
            ),
            ("@everyone", "@\u{200B}everyone"),
            ("game\u{202E}1\u{2028}2", "game1 2"),
            ("g-42", "g-42"),
        ];
        for (text, want) in table {
            assert_eq!(discord_text(text), want, "{text:?}");
        }
    }

    fn discord(e: &HealthEvent) -> serde_json::Value {
        serde_json::from_str(&discord_body(e, HOST)).unwrap()
    }

    #[test]
    fn the_discord_body_is_one_embed_by_kind_with_mentions_off() {
        // (event, title, colour)
        let table = [
            (
                incident(Change::Opened, IncidentKind::CrashLoop, "g-42"),
                "Crash loop: g-42 on host-7",
                0xD93025,
            ),
            (
                incident(Change::Resolved, IncidentKind::CrashLoop, "g-42"),
                "Resolved: g-42 on host-7",
                0x2EA043,
            ),
            (
                event("g-42", "exited", "", None),
                "Not running: g-42 on host-7",
                0xD93025,
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "Unhealthy: g-42 on host-7",
                0xF57C00,
            ),
            (
                event("g-42", "running", "", None),
                "Restarted: g-42 on host-7",
                0xF9C700,
            ),
            (
                incident(Change::Reminder, IncidentKind::NotRunning, "g-42"),
                "Still not running: g-42 on host-7",
                0xD93025,
            ),
        ];
        for (e, title, color) in table {
            let v = discord(&e);
            assert_eq!(v["allowed_mentions"], serde_json::json!({ "parse": [] }));
            assert_eq!(v["embeds"].as_array().unwrap().len(), 1);
            assert_eq!(v["embeds"][0]["title"], title);
            assert_eq!(v["embeds"][0]["color"], color, "{title}");
        }
        let v = discord(&event(
            "g-42",
            "exited",
            "",
            Some(StateDetails {
                exit_code: Some(137),
                oom_killed: Some(true),
                health_output: Some("probe says no\n".into()),
                ..StateDetails::default()
            }),
        ));
        let fields: Vec<(String, String)> = v["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().into(),
                    f["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("Game", "g-42"),
            ("Container", "d3c207677dd0"),
            ("State", "exited"),
            ("Health", "no healthcheck"),
            ("Exit code", "137"),
            ("OOM", "yes"),
            ("Restarts", "3"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(fields, want);
        assert_eq!(v["embeds"][0]["description"], "```\nprobe says no\n```");
        let v = discord(&incident(Change::Opened, IncidentKind::CrashLoop, "g-42"));
        let fields = v["embeds"][0]["fields"].to_string();
        assert!(
            fields.contains(r#"{"inline":true,"name":"Restarts in window","value":"4"}"#),
            "{fields}"
        );
    }

    #[test]
    fn the_discord_body_keeps_to_discords_limits_whatever_comes_in() {
        use discord_limits as limit;
        let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        for e in hostile() {
            let v = discord(&e);
            let embed = &v["embeds"][0];
            let fields = embed["fields"].as_array().unwrap();
            assert!(chars(&embed["title"]) <= limit::TITLE);
            assert!(chars(&embed["description"]) <= limit::DESCRIPTION);
            assert!(fields.len() <= limit::FIELDS);
            let mut total = chars(&embed["title"]) + chars(&embed["description"]);
            for f in fields {
                assert!(chars(&f["name"]) <= limit::FIELD_NAME);
                assert!(
                    (1..=limit::FIELD_VALUE).contains(&chars(&f["value"])),
                    "{f}"
                );
                total += chars(&f["name"]) + chars(&f["value"]);
            }
            assert!(total <= limit::TOTAL, "{total}");
            assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
            let title = embed["title"].as_str().unwrap();
            assert!(!title.contains(['\r', '\n']), "{title}");
            // The probe's output stays inside its block.
            if let Some(d) = embed["description"].as_str() {
                assert!(d.starts_with("```\n") && d.ends_with("\n```"), "{d}");
                assert_eq!(d.matches("```").count(), 2, "{d}");
            }
        }
        let v = discord(&probed("g", &"x".repeat(10 * 1024)));
        let d = v["embeds"][0]["description"].as_str().unwrap();
        assert!(d.ends_with("x…\n```"), "cut with a mark");
    }
}
