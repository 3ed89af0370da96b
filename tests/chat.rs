//! The chat formats against receivers started here: what Discord, ntfy and
//! Telegram are each posted for a fact and for an incident, Telegram's own
//! wait and its chat, and a burst of incidents kept within Discord's rate
//! limits and size limits as digests.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    FakeEngine, HOOK, HookReply, HookRequest, HookServer, StderrLines, TestCa, assert_no_secret,
    bin, oom_killed_games, oom_killed_growing, stderr_text, stop_with_sigterm, this_host,
    wait_until,
};

/// One `once` posting in `format`, reporting `report`, with extended
/// details, logging all it may: the token (ntfy's `Authorization` too) must
/// stay out of every line.
fn once_as(engine: &FakeEngine, url: &str, format: &str, report: &str) -> Output {
    bin()
        .env("RUST_LOG", "trace")
        .args(["once", "--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", url])
        .args(["--webhook-format", format, "--details", "extended"])
        .args(["--report", report])
        .output()
        .unwrap()
}

/// What each chat format posted for the OOM-killed g-0, as a fact or as the
/// incident it opens.
fn assert_chat_request(req: &HookRequest, format: &str, report: &str) {
    assert_eq!(req.method, "POST");
    assert!(req.header("user-agent").unwrap().starts_with("rtinspect/"));
    let key = req.header("idempotency-key").expect("an Idempotency-Key");
    assert!(uuid::Uuid::parse_str(key).is_ok(), "{key}");
    let line = "game `g-0` container `000000000000`: exited (exit code 137, OOM-killed), \
                no healthcheck, restart count 2";
    // An incident carries the game's last log lines, after the line.
    let incident = report == "incidents";
    let tail = |before: &str, after: &str| match incident {
        true => format!("{line}{before}Killed: out of memory{after}"),
        false => line.to_owned(),
    };
    let host = this_host();
    let prefix = match report {
        "facts" => format!("rtinspect on {host}: "),
        // An incident says first how its container ended.
        _ => format!("rtinspect on {host}: [not running] out of memory, since "),
    };
    let prefix = prefix.as_str();
    match format {
        "discord" => {
            assert_eq!(req.path, HOOK);
            assert_eq!(req.header("content-type"), Some("application/json"));
            let body = req.json();
            assert_eq!(body["allowed_mentions"], serde_json::json!({ "parse": [] }));
            let embed = &body["embeds"][0];
            assert_eq!(embed["title"], format!("Not running: g-0 on {host}"));
            assert_eq!(embed["color"], 0xD93025);
            let fields: Vec<String> = embed["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{}={}",
                        f["name"].as_str().unwrap(),
                        f["value"].as_str().unwrap()
                    )
                })
                .collect();
            let mut want = vec![
                "Game=g-0",
                "Container=000000000000",
                "State=exited",
                "Health=no healthcheck",
                "Exit code=137",
                "OOM=yes",
                "Restarts=2",
            ];
            if report == "incidents" {
                // An incident says how its container ended (an OOM kill here).
                want.insert(4, "How it ended=out of memory");
                want.push("Restarts in window=0");
            }
            assert_eq!(fields[..want.len()], want[..], "{fields:?}");
            let description = embed["description"].as_str().unwrap_or_default();
            match incident {
                true => assert_eq!(
                    description,
                    "**Last log lines**\n```\nKilled: out of memory\n```"
                ),
                false => assert_eq!(description, ""),
            }
        }
        "ntfy" => {
            assert_eq!(req.path, "/alerts", "the userinfo is not in the request");
            assert_eq!(
                req.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(
                req.header("authorization"),
                Some("Bearer tk_SECRETTOKEN"),
                "the URL's token, as ntfy takes it"
            );
            assert_eq!(
                req.header("title"),
                Some(format!("rtinspect on {host}: not running g-0").as_str())
            );
            assert_eq!(req.header("priority"), Some("4"));
            assert_eq!(req.header("tags"), Some("rotating_light"));
            assert!(req.body.starts_with(prefix), "{}", req.body);
            let end = tail("\n\nLast log lines:\n", "");
            assert!(req.body.ends_with(&end), "{}", req.body);
        }
        _ => {
            assert_eq!(
                req.path, "/botSECRETTOKEN/sendMessage",
                "the chat goes in the body"
            );
            assert_eq!(req.header("content-type"), Some("application/json"));
            let body = req.json();
            assert_eq!(body["chat_id"], -100123);
            assert_eq!(body["parse_mode"], "HTML");
            assert_eq!(body["disable_web_page_preview"], true);
            let text = body["text"].as_str().unwrap();
            assert!(text.starts_with(prefix), "{text}");
            let end = tail("\n<b>Last log lines</b>\n<pre>", "</pre>");
            assert!(text.ends_with(&end), "{text}");
        }
    }
}

#[test]
fn each_chat_format_posts_its_own_request_for_a_fact_and_an_incident() {
    let engine = oom_killed_games(1);
    for report in ["facts", "incidents"] {
        for format in ["discord", "ntfy", "telegram"] {
            let hook = HookServer::start(|_, _| HookReply::ok());
            let url = match format {
                "ntfy" => hook
                    .url("/alerts")
                    .replace("http://", "http://:tk_SECRETTOKEN@"),
                "telegram" => hook.url("/botSECRETTOKEN/sendMessage?chat_id=-100123"),
                _ => hook.url(HOOK),
            };
            let out = once_as(&engine, &url, format, report);
            let err = stderr_text(&out);
            assert!(out.status.success(), "{format} {report}: {err}");
            assert_no_secret(&err);
            let requests = hook.requests();
            assert_eq!(requests.len(), 1, "{format} {report}: {err}");
            assert_chat_request(&requests[0], format, report);
        }
    }
}

#[test]
fn telegrams_retry_after_in_its_429_body_is_waited_out() {
    let engine = oom_killed_games(1);
    let hook = HookServer::start(|n, _| {
        match n {
        0 => HookReply::Status(
            429,
            Vec::new(),
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#
                .into(),
        ),
        _ => HookReply::ok(),
    }
    });
    let url = hook.url("/botSECRETTOKEN/sendMessage?chat_id=42");
    let out = once_as(&engine, &url, "telegram", "facts");
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    let r = hook.requests();
    assert_eq!(r.len(), 2, "{err}");
    let waited = r[1].at - r[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(err.contains("sink unavailable for 1s"), "{err}");
    assert_no_secret(&err);
}

#[test]
fn the_telegram_format_without_a_chat_is_a_usage_error() {
    let engine = oom_killed_games(1);
    let out = once_as(
        &engine,
        "https://api.telegram.org/botSECRETTOKEN/sendMessage",
        "telegram",
        "facts",
    );
    let err = stderr_text(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("needs the chat in the query"), "{err}");
    assert_no_secret(&err);
}

/// Discord's limits on a message's embeds, in characters (its Embed Limits).
const DISCORD_EMBEDS: usize = 10;
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
const DISCORD_FIELDS: usize = 25;
const DISCORD_FIELD_NAME: usize = 256;
const DISCORD_FIELD_VALUE: usize = 1024;
const DISCORD_TOTAL: usize = 6000;

/// Why Discord would refuse `body` (its "Invalid Form Body"), if it would.
fn over_discords_limits(body: &serde_json::Value) -> Option<String> {
    let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
    let embeds = body["embeds"].as_array()?;
    if embeds.len() > DISCORD_EMBEDS {
        return Some(format!("{} embeds", embeds.len()));
    }
    let mut total = 0;
    for embed in embeds {
        let (title, description) = (chars(&embed["title"]), chars(&embed["description"]));
        if title > DISCORD_TITLE || description > DISCORD_DESCRIPTION {
            return Some(format!("title {title}, description {description}"));
        }
        total += title + description;
        let fields = embed["fields"].as_array().map_or(&[][..], Vec::as_slice);
        if fields.len() > DISCORD_FIELDS {
            return Some(format!("{} fields", fields.len()));
        }
        for f in fields {
            let (name, value) = (chars(&f["name"]), chars(&f["value"]));
            if name > DISCORD_FIELD_NAME || !(1..=DISCORD_FIELD_VALUE).contains(&value) {
                return Some(format!("field name {name}, value {value}"));
            }
            total += name + value;
        }
    }
    (total > DISCORD_TOTAL).then(|| format!("{total} characters in all"))
}

/// A webhook that keeps Discord's rules for one: 5 requests per 2 s (a
/// window from the first), `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset-After` on every answer, a 429 beyond that with
/// `Retry-After` and `{"retry_after": …}`, and a 400 for a body over
/// Discord's limits. What it accepted, and each status it answered.
struct DiscordLike {
    window: Option<(Instant, u32)>,
    accepted: Vec<serde_json::Value>,
    statuses: Vec<u16>,
}

impl DiscordLike {
    const LIMIT: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(2);

    fn answer(&mut self, req: &HookRequest) -> HookReply {
        let now = Instant::now();
        let (start, used) = match self.window {
            Some((start, used)) if now < start + Self::WINDOW => (start, used),
            _ => (now, 0),
        };
        // In whole milliseconds, rounded up, as Discord's are.
        let reset_after = ((start + Self::WINDOW - now).as_secs_f64() * 1000.0).ceil() / 1000.0;
        let mut headers = vec![
            ("X-RateLimit-Limit", Self::LIMIT.to_string()),
            ("X-RateLimit-Reset-After", format!("{reset_after:.3}")),
            ("X-RateLimit-Bucket", "abcd1234".to_owned()),
        ];
        let (status, body) = if used >= Self::LIMIT {
            headers.push(("X-RateLimit-Remaining", "0".to_owned()));
            headers.push(("Retry-After", format!("{}", reset_after.ceil())));
            headers.push(("Content-Type", "application/json".to_owned()));
            let body = format!(
                r#"{{"message":"You are being rate limited.","retry_after":{reset_after:.3},"global":false}}"#
            );
            (429, body)
        } else {
            self.window = Some((start, used + 1));
            let left = Self::LIMIT - used - 1;
            headers.push(("X-RateLimit-Remaining", left.to_string()));
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            match over_discords_limits(&body) {
                Some(why) => (400, format!(r#"{{"message":"Invalid Form Body: {why}"}}"#)),
                None => {
                    self.accepted.push(body);
                    (204, String::new())
                }
            }
        };
        self.statuses.push(status);
        HookReply::Status(status, headers, body)
    }
}

/// What the accepted Discord bodies account for: the games named (each
/// once), how many more they count without naming, how many events in
/// all, and how many bodies were digests.
fn accounted(bodies: &[serde_json::Value]) -> (Vec<String>, usize, usize, usize) {
    let (mut named, mut more, mut events, mut digests) = (Vec::new(), 0, 0, 0);
    for body in bodies {
        let embed = &body["embeds"][0];
        if let Some(fields) = embed["fields"].as_array() {
            // One event: its game is a field.
            let game = fields.iter().find(|f| f["name"] == "Game").unwrap();
            named.push(game["value"].as_str().unwrap().to_owned());
            events += 1;
            continue;
        }
        digests += 1;
        // `N incidents opened (not running) on host: g-1, g-2 and K more`,
        // then, after an empty line, the log tails it had room for.
        let description = embed["description"].as_str().unwrap();
        let lines = description.split("\n\n").next().unwrap_or_default();
        for line in lines.lines() {
            let count: usize = line.split(' ').next().unwrap().parse().unwrap();
            events += count;
            let Some((_, names)) = line.split_once(": ") else {
                more += count;
                continue;
            };
            let names = match names.rsplit_once(" and ") {
                Some((names, rest)) => {
                    more += rest
                        .strip_suffix(" more")
                        .unwrap()
                        .parse::<usize>()
                        .unwrap();
                    names
                }
                None => names,
            };
            named.extend(names.split(", ").map(str::to_owned));
        }
    }
    (named, more, events, digests)
}

#[test]
fn a_hundred_games_down_in_10_s_reach_a_rate_limited_discord_as_digests_without_a_429() {
    let ca = TestCa::new();
    // Ten more games down every second, for ten seconds.
    let since = Instant::now();
    let engine = oom_killed_growing(move || (10 + 10 * since.elapsed().as_secs() as u32).min(100));
    let receiver = std::sync::Arc::new(std::sync::Mutex::new(DiscordLike {
        window: None,
        accepted: Vec::new(),
        statuses: Vec::new(),
    }));
    let r = receiver.clone();
    let hook = HookServer::start_tls(&ca, move |_, req| r.lock().unwrap().answer(req));
    let ca_file = ca.ca();
    let started = Instant::now();
    let mut child = bin()
        .args(["run", "--interval", "200ms"])
        .args(["--docker-host", &engine.docker_host()])
        .args(["--sink", "webhook", "--webhook-url", &hook.url(HOOK)])
        .args(["--webhook-format", "discord", "--report", "incidents"])
        .args(["--webhook-ca-file", ca_file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = StderrLines::of(&mut child);
    let events = || accounted(&receiver.lock().unwrap().accepted).2;
    wait_until(Duration::from_secs(60), "100 games accounted for", || {
        events() >= 100
    });
    let took = started.elapsed();
    // Anything more would show now.
    std::thread::sleep(Duration::from_millis(500));
    let (_, clean) = stop_with_sigterm(child);
    let err = lines.text();
    assert!(clean, "{err}");
    assert_no_secret(&err);

    let receiver = receiver.lock().unwrap();
    let (mut named, more, events, digests) = accounted(&receiver.accepted);
    let statuses = &receiver.statuses;
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    let (accepted, refused, limited) = (count(204), count(400), count(429));
    eprintln!(
        "100 games down in 10 s: {} requests ({accepted} accepted, {digests} digests, \
         {limited} answered 429, {refused} refused), the last game in at {took:?}",
        statuses.len()
    );
    assert_eq!(refused, 0, "a body over Discord's limits: {err}");
    assert_eq!(events, 100, "each game once, nothing dropped or doubled");
    named.sort();
    named.dedup();
    assert_eq!(named.len() + more, 100, "named {named:?}, {more} more");
    assert!(named.iter().all(|g| {
        g.strip_prefix("g-")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 100)
    }));
    assert!(digests >= 1, "100 events in {} requests", statuses.len());
    assert!(accepted < 100, "digests, not one request a game");
    // Paced by the headers, never ahead of the window.
    assert_eq!(limited, 0, "answered 429: {statuses:?}");
}
