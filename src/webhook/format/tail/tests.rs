//! Each format's tail: shown its own way, never closing its block, within
//! its service's limits; a digest's tails while it has room.

use super::*;
use crate::webhook::format::digest::Digest;
use crate::webhook::format::discord::{digest_body as discord_digest, discord_body};
use crate::webhook::format::ntfy::{NTFY_BODY_BYTES, digest_message, ntfy_message};
use crate::webhook::format::samples::{Change, HOST, IncidentKind, incident};
use crate::webhook::format::slack::{SLACK_TEXT_CHARS, digest_body as slack_digest, slack_body};
use crate::webhook::format::telegram::{
    TELEGRAM_TEXT_CHARS, digest_body as telegram_digest, telegram_body,
};

fn opened(game: &str, lines: &[&str]) -> HealthEvent {
    incident(Change::Opened, IncidentKind::NotRunning, game).with_log_tail(LogTail::Lines(
        lines.iter().map(|l| l.to_string()).collect(),
    ))
}

/// Each format's message text for `event`: Discord's description, Slack's
/// and Telegram's text, ntfy's body.
fn texts(event: &HealthEvent) -> [(&'static str, String); 4] {
    let json = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let discord = json(discord_body(event, HOST))["embeds"][0]["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let slack = json(slack_body(event, HOST))["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let telegram = json(telegram_body(event, HOST, "-100"))["text"]
        .as_str()
        .unwrap()
        .to_owned();
    [
        ("discord", discord),
        ("slack", slack),
        ("telegram", telegram),
        ("ntfy", ntfy_message(event, HOST).body),
    ]
}

#[test]
fn each_format_shows_the_tail_its_own_way() {
    let event = opened("g-1", &["line 1", "line 2"]);
    let [discord, slack, telegram, ntfy] = texts(&event);
    assert_eq!(discord.1, "**Last log lines**\n```\nline 1\nline 2\n```");
    assert!(
        slack
            .1
            .ends_with("\n*Last log lines*\n```\nline 1\nline 2\n```"),
        "{}",
        slack.1
    );
    assert!(
        telegram
            .1
            .ends_with("\n<b>Last log lines</b>\n<pre>line 1\nline 2</pre>"),
        "{}",
        telegram.1
    );
    assert!(
        ntfy.1.ends_with("\n\nLast log lines:\nline 1\nline 2"),
        "{}",
        ntfy.1
    );
    // Without a tail, nothing is added.
    let plain = incident(Change::Opened, IncidentKind::NotRunning, "g-1");
    for (format, text) in texts(&plain) {
        assert!(!text.contains("log lines"), "{format}: {text}");
    }
}

#[test]
fn no_tail_says_why() {
    let event = incident(Change::Opened, IncidentKind::NotRunning, "g-1").with_log_tail(
        LogTail::Unavailable("configured logging driver does not support <reading>".into()),
    );
    let [discord, slack, telegram, ntfy] = texts(&event);
    assert_eq!(
        discord.1,
        "**No log lines:** configured logging driver does not support \\<reading\\>"
    );
    assert!(
        slack.1.ends_with(
            "\nNo log lines: configured logging driver does not support &lt;reading&gt;"
        )
    );
    assert!(
        telegram.1.ends_with(
            "\nNo log lines: configured logging driver does not support &lt;reading&gt;"
        )
    );
    assert!(
        ntfy.1
            .ends_with("\n\nNo log lines: configured logging driver does not support <reading>")
    );
}

#[test]
fn no_line_can_close_its_block_or_ping_anyone() {
    let hostile = [
        "``` @everyone",
        "</pre><b>bold</b>",
        "<!channel> & <@U123>",
        "```",
        "last `line`",
    ];
    let event = opened("g-1", &hostile);
    for (format, text) in texts(&event) {
        let (open, close) = match format {
            "telegram" => ("<pre>", "</pre>"),
            "ntfy" => ("Last log lines:\n", ""),
            _ => ("```\n", "\n```"),
        };
        let start = text.find(open).unwrap() + open.len();
        let inside = &text[start..text.len() - close.len()];
        assert!(text.ends_with(close), "{format}: {text}");
        match format {
            "discord" | "slack" => {
                assert!(!inside.contains("```"), "{format}: {inside}");
            }
            "telegram" => {
                assert!(!inside.contains('<') && !inside.contains('>'), "{inside}");
            }
            _ => {}
        }
        if format != "ntfy" {
            assert!(!inside.contains("@everyone"), "{format}: {inside}");
        }
        if format == "slack" {
            assert!(!inside.contains("<!channel>"), "{inside}");
        }
        assert!(
            inside.contains("last"),
            "{format}: the newest kept: {inside}"
        );
    }
}

#[test]
fn a_tail_that_escaping_swells_keeps_each_message_within_its_limit() {
    // Ten lines of 200 escapes each: about 2 KiB raw, 10 KiB as Slack's
    // or Telegram's entities.
    let line = "&<>`@".repeat(40);
    let lines: Vec<String> = (0..10).map(|i| format!("{i} {line}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut event = opened("g-1", &refs);
    // A probe output beside it, as an unhealthy incident has.
    event.details = Some(Box::new(crate::inspector::StateDetails {
        health_output: Some("x".repeat(512)),
        ..Default::default()
    }));
    let [discord, slack, telegram, ntfy] = texts(&event);
    assert!(discord.1.chars().count() <= 4096);
    let body: serde_json::Value = serde_json::from_str(&discord_body(&event, HOST)).unwrap();
    let embed = &body["embeds"][0];
    let total: usize = [&embed["title"], &embed["description"]]
        .iter()
        .map(|v| v.as_str().unwrap_or_default().chars().count())
        .sum::<usize>()
        + embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["name"].as_str().unwrap().chars().count()
                    + f["value"].as_str().unwrap().chars().count()
            })
            .sum::<usize>();
    assert!(total <= 6000, "{total}");
    assert!(
        slack.1.chars().count() <= SLACK_TEXT_CHARS,
        "{}",
        slack.1.len()
    );
    assert!(telegram.1.chars().count() <= TELEGRAM_TEXT_CHARS);
    assert!(ntfy.1.len() <= NTFY_BODY_BYTES);
    for (format, text) in [discord, slack, telegram, ntfy] {
        assert!(text.contains("9 "), "{format}: the newest line is kept");
        // Escaped, Slack's and Telegram's tails are past their room.
        if ["slack", "telegram"].contains(&format) {
            assert!(!text.contains("0 &"), "{format}: the oldest went first");
        }
    }
}

#[test]
fn a_line_too_long_for_its_room_is_cut_not_dropped() {
    let long = "é".repeat(3000);
    let event = opened("g-1", &[long.as_str()]);
    let [discord, slack, telegram, ntfy] = texts(&event);
    for (format, text) in [discord, slack, telegram, ntfy] {
        assert!(text.contains("éé…"), "{format}");
    }
}

#[test]
fn a_digest_shows_each_incidents_last_lines_while_it_has_room() {
    let small: Vec<HealthEvent> = (0..2)
        .map(|n| {
            opened(
                &format!("g-{n}"),
                &["a", "b", "c", "d", &format!("last of g-{n}")],
            )
        })
        .collect();
    let digest = Digest::of(&small);
    let body = digest_message(&digest, "host-7").body;
    assert!(
        body.ends_with("\n\ng-1: last log lines:\nc\nd\nlast of g-1"),
        "{body}"
    );
    assert!(
        body.contains("g-0: last log lines:\nc\nd\nlast of g-0"),
        "{body}"
    );
    // Forty games, each with two kilobytes of tail: some shown, the rest said.
    let line = "z".repeat(200);
    let big: Vec<HealthEvent> = (0..40)
        .map(|n| opened(&format!("g-{n}"), &[&line, &line, &line, &line, &line]))
        .collect();
    let digest = Digest::of(&big);
    let json = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let texts = [
        json(discord_digest(&digest, "host-7"))["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .to_owned(),
        json(slack_digest(&digest, "host-7"))["text"]
            .as_str()
            .unwrap()
            .to_owned(),
        json(telegram_digest(&digest, "host-7", "-100"))["text"]
            .as_str()
            .unwrap()
            .to_owned(),
        digest_message(&digest, "host-7").body,
    ];
    for (text, limit) in
        texts
            .iter()
            .zip([4096, SLACK_TEXT_CHARS, TELEGRAM_TEXT_CHARS, NTFY_BODY_BYTES])
    {
        assert!(
            text.chars().count() <= limit,
            "{} > {limit}",
            text.chars().count()
        );
        assert!(text.contains("g-0: last log lines"), "{text}");
        let shown = text.matches(": last log lines").count();
        let note = format!(
            "(log lines of {} more incidents left out: no room)",
            40 - shown
        );
        assert!(text.ends_with(&note), "{shown} shown: {text}");
    }
    // A resolution, a fact, a tail-less opening: no tail, no note.
    let quiet = [incident(Change::Resolved, IncidentKind::NotRunning, "g-0")];
    assert_eq!(
        for_digest(
            &Digest::of(&quiet),
            crate::webhook::format::ntfy::TAIL,
            "\n\n",
            4096
        ),
        ""
    );
}
