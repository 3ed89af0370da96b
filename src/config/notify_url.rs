//! One notification URL (`--notify`, a line of `--notify-file`) read into
//! plain values: where its requests go, in which chat's format, and the
//! query options that say what the sink takes (`name=`, `format=`,
//! `report=`, `min=`, `games=`).
//!
//! The forms are those operators already hold: shoutrrr's, as its
//! documentation gives them (`discord://TOKEN@WEBHOOK_ID`,
//! `slack://hook:A-B-C@webhook` and the older `slack://A/B/C`,
//! `telegram://TOKEN@telegram?chats=CHAT`,
//! `ntfy://[USER:PASSWORD@]HOST/TOPIC[?scheme=http]`, `generic+https://…`),
//! and each service's own webhook URL, known by its host (`discord.com`,
//! `hooks.slack.com`, `api.telegram.org`, `ntfy.sh`). Any other `http://`
//! or `https://` URL gets the envelope unless `format=` says otherwise.
//!
//! rtinspect's options are taken out of the query (`_name=` passes a
//! parameter called `name` through); every other parameter is sent. A URL
//! holds a token, so nothing here ever puts it in a message: an error says
//! why in words of its own, and [`masked`] shows what can be shown.

use super::route::{Glob, MAX_GLOBS, Report, Route};
use super::webhook::{Webhook, WebhookFormat, WebhookUrl, percent_decode, unfit_for};
use crate::incident::Kind;

/// The longest notification URL, in bytes.
pub(crate) const MAX_URL_BYTES: usize = 4096;

/// The longest sink name: it names a file (`spool.<name>.jsonl`) and a
/// metric label.
pub(crate) const MAX_NAME_BYTES: usize = 32;

/// A notification URL read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotifyUrl {
    /// The service, for the default name: `discord`, `slack`, `telegram`,
    /// `ntfy`, or `generic` for the envelope.
    pub(crate) service: &'static str,
    /// Where requests go and in which format; rtinspect's options are out
    /// of its query.
    pub(crate) webhook: Webhook,
    /// `name=`, checked.
    pub(crate) name: Option<String>,
    /// `report=`, `min=`, `games=`.
    pub(crate) route: Route,
}

/// The options rtinspect reads from every URL's query.
const OPTIONS: [&str; 5] = ["name", "format", "report", "min", "games"];

/// The query of a URL, rtinspect's options taken out.
#[derive(Default)]
struct Query {
    /// Each option found, decoded: (key, value).
    options: Vec<(String, String)>,
    /// Every other parameter, as written.
    kept: Vec<String>,
}

impl Query {
    /// Splits `raw` (between `?` and `#`); `extra` are options of this
    /// form alone (ntfy's `scheme`, Telegram's `chats`).
    fn split(raw: &str, extra: &[&str]) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let ours = |k: &str| OPTIONS.contains(&k) || extra.contains(&k);
            if ours(&key) {
                if q.options.iter().any(|(k, _)| *k == key) {
                    return Err(format!("{key}= is given twice"));
                }
                q.options
                    .push((key, percent_decode(&value.replace('+', " "))));
            } else if let Some(escaped) = key.strip_prefix('_').filter(|k| ours(k)) {
                // `_name=x` is a parameter called `name` for the receiver.
                q.kept.push(format!("{escaped}={value}"));
            } else {
                q.kept.push(pair.to_owned());
            }
        }
        Ok(q)
    }

    fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `?` and the kept parameters after `base`, with `first` before them.
    fn url(&self, base: String, first: &[String]) -> String {
        let all: Vec<&str> = first
            .iter()
            .map(String::as_str)
            .chain(self.kept.iter().map(String::as_str))
            .collect();
        match all.is_empty() {
            true => base,
            false => format!("{base}?{}", all.join("&")),
        }
    }
}

/// A URL cut into its parts: the scheme (lowercased), the userinfo, the
/// host (with its port), the path, the query and the fragment, as written.
struct Parts<'a> {
    scheme: String,
    userinfo: Option<&'a str>,
    authority: &'a str,
    host: &'a str,
    path: &'a str,
    query: &'a str,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(text: &'a str) -> Result<Parts<'a>, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err("expected a URL such as discord://TOKEN@ID or https://…".into());
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        Ok(Parts {
            scheme: scheme.to_ascii_lowercase(),
            userinfo,
            authority,
            host,
            path,
            query,
            fragment,
        })
    }

    /// The host alone, lowercased: no port.
    fn hostname(&self) -> String {
        let host = match self.host.rsplit_once(':') {
            Some((h, port))
                if !self.host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                h
            }
            _ => self.host,
        };
        host.to_ascii_lowercase()
    }

    /// A form whose URL has no path of its own (`discord://TOKEN@ID`).
    fn no_path(&self, form: &str) -> Result<(), String> {
        match self.path {
            "" | "/" => Ok(()),
            _ => Err(format!("{form} has no path after the host")),
        }
    }

    fn no_fragment(&self) -> Result<(), String> {
        match self.fragment {
            None => Ok(()),
            Some(_) => Err("a #fragment means nothing here".into()),
        }
    }
}

/// Whether every byte of `text` is one of a token's: letters, digits,
/// `-`, `_` and `.`.
fn token_like(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads `text` as notification URLs: one, or for shoutrrr's Telegram form
/// naming several chats (`chats=@a,-100…`), one per chat, each a sink of
/// its own (its `name=`, when given, numbered `-1`, `-2`, …).
pub(crate) fn parse_all(text: &str) -> Result<Vec<NotifyUrl>, String> {
    let chats = Parts::of(text).ok().and_then(|p| {
        if p.scheme != "telegram" {
            return None;
        }
        p.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            matches!(key, "chats" | "channels")
                .then(|| (pair, value.split(',').map(str::trim).collect::<Vec<_>>()))
        })
    });
    let Some((pair, chats)) = chats.filter(|(_, chats)| chats.len() > 1) else {
        return parse(text).map(|url| vec![url]);
    };
    let key = pair.split_once('=').map_or("chats", |(k, _)| k);
    // The same chat twice would be told everything twice.
    if let Some(twice) = chats
        .iter()
        .enumerate()
        .find_map(|(i, c)| chats[..i].contains(c).then_some(c))
    {
        return Err(match twice.starts_with('@') {
            true => format!("{key}= names the chat {twice} twice"),
            false => format!("{key}= names a chat twice"),
        });
    }
    chats
        .iter()
        .enumerate()
        .map(|(i, chat)| {
            let mut url = parse(&text.replacen(pair, &format!("{key}={chat}"), 1))?;
            if let Some(name) = url.name.take() {
                url.name = Some(sink_name(&format!("{name}-{}", i + 1))?);
            }
            Ok(url)
        })
        .collect()
}

/// Reads `text` as a notification URL. The error says why in words that
/// never hold the URL or a piece of it.
pub(crate) fn parse(text: &str) -> Result<NotifyUrl, String> {
    if text.len() > MAX_URL_BYTES {
        return Err(format!("over {MAX_URL_BYTES} bytes"));
    }
    if let Some(b) = text.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
        return Err(match b {
            b' ' => "holds a space; percent-encode it (%20)".into(),
            0..=0x1f | 0x7f => "holds a control character".into(),
            _ => "holds a character outside printable ASCII; percent-encode it".into(),
        });
    }
    let parts = Parts::of(text)?;
    let (service, target, format, q) = match parts.scheme.as_str() {
        "discord" => discord(&parts)?,
        "slack" => slack(&parts)?,
        "telegram" => telegram(&parts)?,
        "ntfy" => ntfy(&parts)?,
        "generic+https" | "generic+http" | "https" | "http" => http(&parts)?,
        _ => {
            return Err(
                "the scheme must be discord, slack, telegram, ntfy, generic+https, \
                 generic+http, https or http"
                    .into(),
            );
        }
    };
    let format = match q.option("format") {
        None => format,
        Some(f) => WebhookFormat::parse(f)
            .ok_or("format= must be envelope, slack, discord, ntfy or telegram".to_owned())?,
    };
    let service = match (q.option("format"), format) {
        (None, _) => service,
        (Some(_), WebhookFormat::Envelope) => "generic",
        (Some(_), f) => f.as_str(),
    };
    let url = WebhookUrl::parse(&target).map_err(str::to_owned)?;
    if let Some(why) = unfit_for(&url, format) {
        return Err(why.to_owned());
    }
    Ok(NotifyUrl {
        service,
        webhook: Webhook {
            url,
            format,
            ca_file: None,
        },
        name: q.option("name").map(sink_name).transpose()?,
        route: route(&q)?,
    })
}

/// What a form gives: its service, the URL requests go to, its format, and
/// the query with rtinspect's options out.
type Form = (&'static str, String, WebhookFormat, Query);

/// `discord://TOKEN@WEBHOOK_ID` → Discord's execute-webhook URL.
fn discord(p: &Parts<'_>) -> Result<Form, String> {
    p.no_path("discord://TOKEN@WEBHOOK_ID")?;
    p.no_fragment()?;
    let Some(token) = p.userinfo.filter(|t| token_like(t)) else {
        return Err(
            "expected discord://TOKEN@WEBHOOK_ID: the token is missing or \
             holds other than letters, digits, - and _"
                .into(),
        );
    };
    if p.host.is_empty() || !p.host.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected discord://TOKEN@WEBHOOK_ID: the webhook id must be digits".into());
    }
    let q = Query::split(p.query, &[])?;
    let base = format!("https://discord.com/api/webhooks/{}/{token}", p.host);
    Ok(("discord", q.url(base, &[]), WebhookFormat::Discord, q))
}

/// `slack://hook:A-B-C@webhook`, or the older `slack://[BOTNAME@]A/B/C` →
/// the incoming webhook `https://hooks.slack.com/services/A/B/C`.
fn slack(p: &Parts<'_>) -> Result<Form, String> {
    p.no_fragment()?;
    let token: Vec<&str> = match p.userinfo.and_then(|u| u.split_once(':')) {
        Some(("hook", token)) => {
            p.no_path("slack://hook:TOKEN@webhook")?;
            token.split('-').collect()
        }
        Some(("xoxb" | "xoxp", _)) => {
            return Err(
                "Slack's bot API (an xoxb or xoxp token) is not supported: give \
                 an incoming webhook, slack://hook:A-B-C@webhook or \
                 https://hooks.slack.com/services/A/B/C"
                    .into(),
            );
        }
        Some(_) => {
            return Err("expected slack://hook:A-B-C@webhook or slack://A/B/C".into());
        }
        // The older form: the token's three parts are the host and path;
        // a bot name before them is for shoutrrr's own messages.
        None => std::iter::once(p.host)
            .chain(
                p.path
                    .trim_start_matches('/')
                    .trim_end_matches('/')
                    .split('/'),
            )
            .collect(),
    };
    if token.len() != 3 || !token.iter().all(|t| token_like(t)) {
        return Err(
            "expected slack://hook:A-B-C@webhook or slack://A/B/C: the webhook \
             token has three parts of letters and digits"
                .into(),
        );
    }
    let q = Query::split(p.query, &[])?;
    let base = format!("https://hooks.slack.com/services/{}", token.join("/"));
    Ok(("slack", q.url(base, &[]), WebhookFormat::Slack, q))
}

/// `telegram://TOKEN@telegram?chats=CHAT` → the bot's `sendMessage` with
/// that `chat_id` (a `CHAT:THREAD` also `message_thread_id`).
fn telegram(p: &Parts<'_>) -> Result<Form, String> {
    p.no_path("telegram://TOKEN@telegram")?;
    p.no_fragment()?;
    let token = p.userinfo.unwrap_or_default();
    let well_formed = token.split_once(':').is_some_and(|(bot, key)| {
        !bot.is_empty() && bot.bytes().all(|b| b.is_ascii_digit()) && token_like(key)
    });
    if !well_formed {
        return Err(
            "expected telegram://TOKEN@telegram?chats=CHAT: the bot token is \
             missing or not DIGITS:KEY"
                .into(),
        );
    }
    let q = Query::split(p.query, &["chats", "channels"])?;
    let chats = match (q.option("chats"), q.option("channels")) {
        (Some(_), Some(_)) => return Err("chats= and channels= are both given; give one".into()),
        (Some(c), None) | (None, Some(c)) => c,
        (None, None) => {
            return Err("expected telegram://TOKEN@telegram?chats=CHAT: chats= is missing".into());
        }
    };
    let chats: Vec<&str> = chats.split(',').map(str::trim).collect();
    // Several chats are one URL each by now (`parse_all`).
    let [chat] = chats[..] else {
        return Err("chats= names one chat a URL here".into());
    };
    // A forum topic: `CHAT:THREAD`.
    let (chat, thread) = match chat.rsplit_once(':') {
        Some((c, t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => (c, Some(t)),
        _ => (chat, None),
    };
    let chat_ok = match chat.strip_prefix('@') {
        Some(name) => token_like(name),
        None => {
            let digits = chat.strip_prefix('-').unwrap_or(chat);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    if !chat_ok {
        return Err("chats= must be a chat id (digits, - before a group's) or an @channel".into());
    }
    // Checked above: digits, `-`, `@` and a token's characters, none of
    // which a query value escapes.
    let mut first = vec![format!("chat_id={chat}")];
    if let Some(thread) = thread {
        first.push(format!("message_thread_id={thread}"));
    }
    let base = format!("https://api.telegram.org/bot{token}/sendMessage");
    Ok(("telegram", q.url(base, &first), WebhookFormat::Telegram, q))
}

/// `ntfy://[USER:PASSWORD@]HOST/TOPIC` → `https://` (or `?scheme=http`)
/// the same; without a host, ntfy.sh.
fn ntfy(p: &Parts<'_>) -> Result<Form, String> {
    p.no_fragment()?;
    let topic = p.path.trim_start_matches('/');
    if topic.is_empty() {
        return Err("expected ntfy://[USER:PASSWORD@]HOST/TOPIC: the topic is missing".into());
    }
    let q = Query::split(p.query, &["scheme"])?;
    let scheme = match q.option("scheme") {
        None | Some("https") => "https",
        Some("http") => "http",
        Some(_) => return Err("scheme= must be http or https".into()),
    };
    let host = if p.host.is_empty() { "ntfy.sh" } else { p.host };
    let userinfo = p.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let base = format!("{scheme}://{userinfo}{host}/{topic}");
    Ok(("ntfy", q.url(base, &[]), WebhookFormat::Ntfy, q))
}

/// `http(s)://…`, known by its host as a chat's own webhook URL, else the
/// envelope; `generic+http(s)://…`, the envelope to any URL.
fn http(p: &Parts<'_>) -> Result<Form, String> {
    let q = Query::split(p.query, &[])?;
    let (scheme, generic) = match p.scheme.strip_prefix("generic+") {
        Some(s) => (s, true),
        None => (p.scheme.as_str(), false),
    };
    let host = p.hostname();
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    let (service, format) = match () {
        _ if generic => ("generic", WebhookFormat::Envelope),
        // Discord's Slack-compatible endpoint takes Slack's body.
        _ if (under("discord.com") || under("discordapp.com")) && p.path.ends_with("/slack") => {
            ("slack", WebhookFormat::Slack)
        }
        _ if under("discord.com") || under("discordapp.com") => ("discord", WebhookFormat::Discord),
        _ if host == "hooks.slack.com" => ("slack", WebhookFormat::Slack),
        _ if host == "api.telegram.org" => ("telegram", WebhookFormat::Telegram),
        _ if host == "ntfy.sh" => ("ntfy", WebhookFormat::Ntfy),
        _ => ("generic", WebhookFormat::Envelope),
    };
    let base = format!("{scheme}://{}{}", p.authority, p.path);
    let mut url = q.url(base, &[]);
    if let Some(f) = p.fragment {
        url.push('#');
        url.push_str(f);
    }
    Ok((service, url, format, q))
}

/// `report=`, `min=` and `games=`, each checked.
fn route(q: &Query) -> Result<Route, String> {
    let report = match q.option("report") {
        None => Report::Incidents,
        Some(r) => Report::parse(r).ok_or("report= must be facts, incidents or both")?,
    };
    let min = match q.option("min") {
        None => Kind::Restarted,
        Some(m) => [
            Kind::Restarted,
            Kind::Unhealthy,
            Kind::NotRunning,
            Kind::CrashLoop,
        ]
        .into_iter()
        .find(|k| k.as_str() == m)
        .ok_or("min= must be restarted, unhealthy, not_running or crash_loop")?,
    };
    let games = match q.option("games") {
        None => Vec::new(),
        Some(g) => {
            let globs = g
                .split(',')
                .map(Glob::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| format!("games=: {why}"))?;
            if globs.len() > MAX_GLOBS {
                return Err(format!("games= holds over {MAX_GLOBS} patterns"));
            }
            globs
        }
    };
    Ok(Route { report, min, games })
}

/// `name=`: it names a file and a metric label, so letters, digits, `-`
/// and `_`, a letter or digit first, at most [`MAX_NAME_BYTES`]; and not a
/// sink of `--sink`'s but the webhook (whose name is checked as taken).
pub(crate) fn sink_name(name: &str) -> Result<String, String> {
    let well_formed = name.len() <= MAX_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(format!(
            "name= must be letters, digits, - and _ (a letter or digit first), at most \
             {MAX_NAME_BYTES}"
        ));
    }
    if matches!(name, "stdout" | "postgres") {
        return Err(format!("name={name} is the {name} sink's"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests;
