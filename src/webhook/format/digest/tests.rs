//! The digest in every chat format: what it says, and its limits.

use super::*;
use crate::event::IncidentFacts;
use crate::incident::{Change, Kind as IncidentKind};
use crate::inspector::{Finding, Observation, Reason};
use crate::webhook::format::discord::{digest_body as discord_body, discord_limits};
use crate::webhook::format::ntfy::{
    NTFY_BODY_BYTES, NTFY_TITLE_CHARS, digest_message as ntfy_message,
};
use crate::webhook::format::slack::{SLACK_TEXT_CHARS, digest_body as slack_body};
use crate::webhook::format::telegram::{TELEGRAM_TEXT_CHARS, digest_body as telegram_body};
use std::time::{Duration, SystemTime};

fn seen(status: &str, health: &str) -> Observation {
    Observation {
        container_id: "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee".into(),
        restart_count: 3,
        status: status.into(),
        health: health.into(),
        details: None,
    }
}

/// An incident's event, `kind` changed as `change`, on `game`, `n`
/// seconds after the epoch.
fn incident(change: Change, kind: IncidentKind, game: &str, n: u64) -> HealthEvent {
    let status = if kind == IncidentKind::NotRunning {
        "exited"
    } else {
        "running"
    };
    HealthEvent::for_incident(
        change,
        crate::event::plain_facts("019ae1c5-aaaa-7000-8000-000000000000", kind, 0),
        game.into(),
        seen(status, ""),
        SystemTime::UNIX_EPOCH + Duration::from_secs(n),
    )
}

/// A fact: `game` seen `status`.
fn fact(game: &str, status: &str) -> HealthEvent {
    HealthEvent::from_finding(
        Finding {
            game_id: game.into(),
            observation: seen(status, ""),
            reasons: vec![Reason::NotRunning],
        },
        SystemTime::UNIX_EPOCH,
    )
}

fn opened(games: impl IntoIterator<Item = String>) -> Vec<HealthEvent> {
    games
        .into_iter()
        .enumerate()
        .map(|(n, g)| incident(Change::Opened, IncidentKind::NotRunning, &g, n as u64))
        .collect()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn chars(v: &serde_json::Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

#[test]
fn a_digest_has_one_line_a_change_worst_first() {
    let events = vec![
        incident(Change::Opened, IncidentKind::NotRunning, "g-1", 1),
        incident(Change::Resolved, IncidentKind::Unhealthy, "g-5", 2),
        incident(Change::Opened, IncidentKind::NotRunning, "g-2", 3),
        incident(Change::Opened, IncidentKind::CrashLoop, "g-4", 4),
        incident(Change::Reminder, IncidentKind::Unhealthy, "g-7", 5),
        incident(Change::Opened, IncidentKind::NotRunning, "g-3", 6),
        fact("g-8", "exited"),
        incident(Change::Resolved, IncidentKind::CrashLoop, "g-6", 7),
        incident(Change::Escalated, IncidentKind::CrashLoop, "g-9", 8),
    ];
    let v = json(&slack_body(&Digest::of(&events), "host-7"));
    assert_eq!(
        v["text"],
        "rtinspect: 9 events on host-7\n\
         1 incident opened (crash loop) on host-7: `g-4`\n\
         3 incidents opened (not running) on host-7: `g-1`, `g-2`, `g-3`\n\
         1 incident now a crash loop on host-7: `g-9`\n\
         1 game not running on host-7: `g-8`\n\
         1 incident still unhealthy on host-7: `g-7`\n\
         2 incidents resolved on host-7: `g-5`, `g-6`"
    );
}

#[test]
fn a_line_names_ten_games_and_counts_the_rest() {
    let events = opened((0..40).map(|n| format!("g-{n}")));
    let m = ntfy_message(&Digest::of(&events), "host-7");
    assert_eq!(
        m.body,
        "40 incidents opened (not running) on host-7: g-0, g-1, g-2, g-3, g-4, g-5, g-6, \
         g-7, g-8, g-9 and 30 more"
    );
    assert_eq!(m.title, "rtinspect: 40 incidents on host-7");
    assert_eq!((m.priority, m.tags), (4, "rotating_light"));
}

#[test]
fn the_last_line_naming_a_game_tells_its_latest_change() {
    let events = vec![
        // Resolved, then down again within one gathering.
        incident(Change::Resolved, IncidentKind::Unhealthy, "g-x", 1),
        incident(Change::Opened, IncidentKind::NotRunning, "g-x", 2),
        // Reminded of, then worse.
        incident(Change::Reminder, IncidentKind::Unhealthy, "g-y", 3),
        incident(Change::Escalated, IncidentKind::NotRunning, "g-y", 4),
        incident(Change::Opened, IncidentKind::NotRunning, "g-z", 5),
    ];
    let m = ntfy_message(&Digest::of(&events), "host-7");
    assert_eq!(
        m.body,
        "1 incident opened (not running) on host-7: g-z\n\
         1 incident still unhealthy on host-7: g-y\n\
         1 incident resolved on host-7: g-x\n\
         then 1 incident opened (not running) on host-7: g-x\n\
         then 1 incident now not running on host-7: g-y"
    );
    assert_eq!(m.title, "rtinspect: 5 incidents on host-7");
    // Whatever the order of a batch, in every format.
    for (format, lines) in checked(&events, "host-7") {
        for (game, latest) in [
            ("g-x", "opened"),
            ("g-y", "now not running"),
            ("g-z", "opened"),
        ] {
            let last = lines.lines().rfind(|l| l.contains(game)).unwrap();
            assert!(last.contains(latest), "{format}: {game}: {lines}");
        }
    }
}

#[test]
fn a_digest_keeps_oom_and_restart_counts_for_the_games_it_names() {
    let mut loop_ = incident(Change::Escalated, IncidentKind::CrashLoop, "g-4", 1);
    let mut facts = IncidentFacts::clone(loop_.incident.as_deref().unwrap());
    facts.restarts_in_window = 4;
    facts.oom = true;
    loop_ = HealthEvent::for_incident(
        Change::Escalated,
        facts,
        "g-4".into(),
        seen("restarting", ""),
        SystemTime::UNIX_EPOCH,
    );
    let mut killed = fact("g-5", "exited");
    killed.details = Some(Box::new(crate::inspector::StateDetails {
        oom_killed: Some(true),
        exit_code: Some(137),
        ..Default::default()
    }));
    let events = [loop_, killed, fact("g-6", "exited")];
    let m = ntfy_message(&Digest::of(&events), "host-7");
    assert_eq!(
        m.body,
        "1 incident now a crash loop on host-7: g-4 (4 restarts, OOM)\n\
         2 games not running on host-7: g-5 (OOM), g-6"
    );
    let v = json(&slack_body(&Digest::of(&events), "host-7"));
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("`g-4` (4 restarts, OOM)"),
        "{v}"
    );
}

#[test]
fn a_games_facts_of_several_ticks_name_it_once_and_count_every_fact() {
    let events: Vec<HealthEvent> = (0..5)
        .flat_map(|_| [fact("g-1", "exited"), fact("g-2", "exited")])
        .collect();
    let m = ntfy_message(&Digest::of(&events), "host-7");
    assert_eq!(m.body, "2 games not running (10 facts) on host-7: g-1, g-2");
    assert_eq!(m.title, "rtinspect: 10 events on host-7");
}

#[test]
fn each_chat_format_shapes_its_own_digest() {
    let mut events = opened(["g-1".to_owned(), "g-2".to_owned()]);
    events.push(incident(
        Change::Reminder,
        IncidentKind::CrashLoop,
        "g-3",
        9,
    ));
    events.push(incident(
        Change::Resolved,
        IncidentKind::CrashLoop,
        "g-4",
        5,
    ));
    let d = Digest::of(&events);
    let lines = "2 incidents opened (not running) on host-7: g-1, g-2\n\
                 1 incident still a crash loop on host-7: g-3\n\
                 1 incident resolved on host-7: g-4";

    let v = json(&discord_body(&d, "host-7"));
    assert_eq!(
        v,
        serde_json::json!({
            "embeds": [{
                "title": "4 incidents on host-7",
                "color": 0xD93025,
                "description": lines,
                "timestamp": "1970-01-01T00:00:09.000000Z",
            }],
            "allowed_mentions": { "parse": [] },
        })
    );

    // The highest priority: a crash loop's reminder is 4, as is a new
    // incident not running; the first of them gives the tag.
    let m = ntfy_message(&d, "host-7");
    assert_eq!(
        (m.title.as_str(), m.priority, m.tags, m.body.as_str()),
        (
            "rtinspect: 4 incidents on host-7",
            4,
            "rotating_light",
            lines
        )
    );
    let resolved = [
        incident(Change::Resolved, IncidentKind::Unhealthy, "g-1", 1),
        incident(Change::Resolved, IncidentKind::Unhealthy, "g-2", 2),
    ];
    let m = ntfy_message(&Digest::of(&resolved), "host-7");
    assert_eq!((m.priority, m.tags), (2, "white_check_mark"));
    let v = json(&discord_body(&Digest::of(&resolved), "host-7"));
    assert_eq!(v["embeds"][0]["color"], 0x2EA043);

    let v = json(&telegram_body(&d, "host-7", "-100123"));
    assert_eq!(
        v,
        serde_json::json!({
            "chat_id": -100123,
            "text": format!("<b>rtinspect: 4 incidents on host-7</b>\n{lines}"),
            "parse_mode": "HTML",
            "disable_web_page_preview": true,
        })
    );
    assert_eq!(
        json(&telegram_body(&d, "h", "@ops"))["chat_id"],
        "@ops",
        "a channel by name"
    );

    let v = json(&slack_body(&d, "host-7"));
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("rtinspect: 4 incidents on host-7\n2 incidents opened"),
        "{v}"
    );
}

/// Game ids with the worst of what may come from outside.
fn hostile_games() -> Vec<String> {
    vec![
        "**bold** [runbook](https://evil.example/login) ||x|| ~~s~~ # h".into(),
        "@everyone @here".into(),
        "<!channel> <@U123> <b>&amp;</b>".into(),
        "g-42\r\nX-Injected: 1".into(),
        "game\u{202E}1\u{2028}2\u{0}\u{7}".into(),
        "`code` ```block```".into(),
        "&".repeat(4000),
        "<".repeat(4000),
        "jeu-été-ゲーム-🎮".repeat(300),
        "x".repeat(4000),
    ]
}

/// Every format's digest of `events` on `host`, checked against its
/// service's limits and for inert text: the lines of each, the summary
/// left out.
fn checked(events: &[HealthEvent], host: &str) -> Vec<(&'static str, String)> {
    use discord_limits as limit;
    let d = Digest::of(events);
    let mut all = Vec::new();

    let v = json(&slack_body(&d, host));
    let text = v["text"].as_str().unwrap();
    assert!(
        text.chars().count() <= SLACK_TEXT_CHARS,
        "slack {}",
        text.len()
    );
    assert!(!text.contains(['<', '>', '\r', '\u{202E}']), "{text}");
    assert!(
        !text.contains("@everyone") && !text.contains("@here"),
        "{text}"
    );
    let (_, lines) = text.split_once('\n').unwrap();
    all.push(("slack", lines.to_owned()));

    let v = json(&discord_body(&d, host));
    assert_eq!(v["allowed_mentions"], serde_json::json!({ "parse": [] }));
    let embeds = v["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    let (title, description) = (chars(&e["title"]), chars(&e["description"]));
    assert!(title <= limit::TITLE, "{title}");
    assert!(description <= limit::DESCRIPTION, "{description}");
    assert!(title + description <= limit::TOTAL);
    assert!(e.get("fields").is_none());
    let d_text = e["description"].as_str().unwrap();
    for bad in ["**", "](", "||", "~~", "@everyone", "@here", "```"] {
        assert!(!d_text.contains(bad), "{bad} in {d_text}");
    }
    // `<@id>` would mention, were it not escaped.
    let escaped = |(at, _): (usize, &str)| d_text[..at].ends_with('\\');
    assert!(d_text.match_indices(['<', '#']).all(escaped), "{d_text}");
    assert!(!d_text.contains(['\r', '\u{202E}', '\u{2028}']), "{d_text}");
    all.push(("discord", d_text.to_owned()));

    let v = json(&telegram_body(&d, host, "-100123"));
    let text = v["text"].as_str().unwrap();
    assert!(
        text.chars().count() <= TELEGRAM_TEXT_CHARS,
        "{}",
        text.len()
    );
    let (summary, lines) = text.split_once('\n').unwrap();
    assert!(
        summary.starts_with("<b>") && summary.ends_with("</b>"),
        "{summary}"
    );
    assert!(!lines.contains(['<', '>', '\r']), "{lines}");
    assert!(!lines.contains("@everyone"), "{lines}");
    all.push(("telegram", lines.to_owned()));

    let m = ntfy_message(&d, host);
    assert!(m.title.len() <= NTFY_TITLE_CHARS, "{}", m.title);
    assert!(
        m.title.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "{}",
        m.title
    );
    assert!(m.body.len() <= NTFY_BODY_BYTES, "{}", m.body.len());
    assert!(
        !m.body.contains(['\r', '\u{0}', '\u{202E}']),
        "{:?}",
        m.body
    );
    all.push(("ntfy", m.body));
    all
}

/// The count of each line, and how many it names and counts as more:
/// (count, named, more).
fn tally(lines: &str) -> Vec<(usize, usize, usize)> {
    lines
        .lines()
        .map(|line| {
            let line = line.strip_prefix("then ").unwrap_or(line);
            let count: usize = line.split(' ').next().unwrap().parse().unwrap();
            let more = line
                .rsplit_once(" and ")
                .and_then(|(_, m)| m.strip_suffix(" more"))
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            // Names are ", "-separated after the heading's ": ".
            let named = match line.split_once(": ") {
                None => 0,
                Some((_, names)) => names.split(", ").count(),
            };
            (count, named, more)
        })
        .collect()
}

#[test]
fn hostile_game_ids_stay_inert_and_within_every_limit() {
    let events = opened(hostile_games());
    for (format, lines) in checked(&events, "host-7") {
        assert_eq!(lines.lines().count(), 1, "{format}: {lines}");
        let (count, _, more) = tally(&lines)[0];
        assert_eq!(count, 10, "{format}: {lines}");
        // Long names are cut: all ten fit in every format.
        assert_eq!(more, 0, "{format}: {lines}");
    }
    // Each on its own line of one.
    for game in hostile_games() {
        let events = [
            fact(&game, "exited"),
            incident(Change::Resolved, IncidentKind::Unhealthy, &game, 1),
        ];
        checked(&events, "host-7");
    }
}

#[test]
fn five_hundred_events_fit_every_limit_and_add_up() {
    // Every change of every kind, the longest host, ids that grow most
    // when escaped.
    let host = "h".repeat(64);
    let types = [
        Change::Opened,
        Change::Escalated,
        Change::Reminder,
        Change::Resolved,
    ];
    let kinds = [
        IncidentKind::CrashLoop,
        IncidentKind::NotRunning,
        IncidentKind::Unhealthy,
        IncidentKind::Restarted,
    ];
    let hostile = hostile_games();
    let mut events = Vec::new();
    for n in 0..DIGEST_EVENTS {
        let game = format!("{}-{n}", hostile[n % hostile.len()]);
        let e = match n % 20 {
            16 => fact(&game, "exited"),
            17 => fact(&game, "running"),
            18 => {
                let mut e = fact(&game, "running");
                e.health = "unhealthy".into();
                e
            }
            k => incident(types[k % 4], kinds[k / 4 % 4], &game, n as u64),
        };
        events.push(e);
    }
    let results = checked(&events, &host);
    for (format, lines) in results {
        let tally = tally(&lines);
        // Opened, escalated and reminded of four kinds each; resolved;
        // three kinds of fact.
        assert_eq!(tally.len(), 16, "{format}: {lines}");
        let total: usize = tally.iter().map(|(count, _, _)| count).sum();
        assert_eq!(total, DIGEST_EVENTS, "{format}");
        for (count, named, more) in tally {
            assert!(named <= NAMED_PER_LINE, "{format}");
            assert!(named + more == count || named == 0, "{format}: {lines}");
        }
        eprintln!("{format}: {} bytes for 500 events", lines.len());
    }
}

#[test]
fn a_batch_where_every_game_changes_twice_keeps_within_every_limit() {
    // 250 games resolved, then down again, with the ids that grow most.
    let hostile = hostile_games();
    let games: Vec<String> = (0..DIGEST_EVENTS / 2)
        .map(|n| format!("{}-{n}", hostile[n % hostile.len()]))
        .collect();
    let mut events = Vec::new();
    for (n, game) in games.iter().enumerate() {
        events.push(incident(
            Change::Resolved,
            IncidentKind::NotRunning,
            game,
            n as u64,
        ));
    }
    for (n, game) in games.iter().enumerate() {
        events.push(incident(
            Change::Opened,
            IncidentKind::NotRunning,
            game,
            1000 + n as u64,
        ));
    }
    for (format, lines) in checked(&events, &"h".repeat(64)) {
        let tally = tally(&lines);
        assert_eq!(tally.len(), 2, "{format}: {lines}");
        let total: usize = tally.iter().map(|(count, _, _)| count).sum();
        assert_eq!(total, events.len(), "{format}");
        assert!(
            lines
                .lines()
                .last()
                .unwrap()
                .starts_with("then 250 incidents opened"),
            "{format}: {lines}"
        );
    }
}

#[test]
fn the_digest_key_is_the_same_for_the_same_batch_only() {
    let events = opened((0..5).map(|n| format!("g-{n}")));
    let key = Digest::of(&events).key();
    let id = uuid::Uuid::parse_str(&key).unwrap();
    assert_eq!(id.get_version_num(), 8, "{key}");
    assert_eq!(Digest::of(&events.clone()).key(), key, "a retry");
    assert_ne!(Digest::of(&events[..4]).key(), key, "one fewer");
    let mut reordered = events.clone();
    reordered.swap(0, 1);
    assert_ne!(Digest::of(&reordered).key(), key, "another order");
    assert!(events.iter().all(|e| e.event_id != key));
}

#[test]
fn host_label_table() {
    for (nodename, want) in [
        ("host-7", "host-7"),
        ("db1.example.org", "db1.example.org"),
        (" host_7\n", "host-7"),
        ("hôte", "h-te"),
        ("*bold*<b>", "-bold--b-"),
        ("", "localhost"),
    ] {
        assert_eq!(host_label(nodename), want, "{nodename:?}");
    }
    assert_eq!(host_label(&"h".repeat(100)).len(), 64);
}
