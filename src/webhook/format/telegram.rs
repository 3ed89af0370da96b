//! The telegram format: a `sendMessage` to the URL's `chat_id`, the
//! readable line as HTML with `&`, `<`, `>` escaped and an `@` that cannot
//! mention anyone, cut to Telegram's length between escapes; a digest as
//! the same HTML, its summary in bold.

use super::digest::Digest;
use super::tail;
use super::text::readable_line;
use crate::event::HealthEvent;

/// The longest Telegram message text, in characters after its entities
/// are parsed; counted here before, escapes whole, to be safe.
pub(crate) const TELEGRAM_TEXT_CHARS: usize = 4096;

/// The body of the telegram format: `sendMessage` to `chat_id` (a number
/// when it is one, else a `@channel` name), the readable line as HTML with
/// `&`, `<`, `>` escaped and an `@` that cannot mention anyone, at most
/// [`TELEGRAM_TEXT_CHARS`], cut between escapes.
pub(crate) fn telegram_body(event: &HealthEvent, host: &str, chat_id: &str) -> String {
    let mut text = telegram_text(&readable_line(event, host, str::to_owned));
    let room = TELEGRAM_TEXT_CHARS.saturating_sub(text.chars().count());
    text.push_str(&tail::for_event(event, TAIL, "\n", room));
    serde_json::json!({
        "chat_id": telegram_chat(chat_id),
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
    .to_string()
}

/// A `chat_id` as Telegram takes it: a number when it is one, else a
/// `@channel` name.
pub(crate) fn telegram_chat(chat_id: &str) -> serde_json::Value {
    match chat_id.parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(chat_id),
    }
}

/// What stands for `c` in Telegram HTML when it is not itself: `&`, `<`,
/// `>` escaped, and `@` that cannot mention anyone.
pub(crate) fn telegram_escape(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '@' => Some("@\u{200B}"),
        _ => None,
    }
}

/// `text` as Telegram HTML, uncut.
pub(crate) fn telegram_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match telegram_escape(c) {
            Some(piece) => out.push_str(piece),
            None => out.push(c),
        }
    }
    out
}

/// `line` as Telegram HTML, cut to [`TELEGRAM_TEXT_CHARS`] with `…`.
pub(crate) fn telegram_text(line: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let mut buf = [0; 4];
        let piece = match telegram_escape(c) {
            Some(piece) => piece,
            None => &*c.encode_utf8(&mut buf),
        };
        let n = piece.chars().count();
        // Room for `…` unless this is the last.
        let reserve = usize::from(chars.peek().is_some());
        if count + n + reserve > TELEGRAM_TEXT_CHARS {
            out.push('…');
            break;
        }
        out.push_str(piece);
        count += n;
    }
    out
}

/// The `sendMessage` body of a digest in the telegram format: the summary
/// in bold, then one line a group, in escaped HTML, at most
/// [`TELEGRAM_TEXT_CHARS`].
pub(crate) fn digest_body(digest: &Digest, host: &str, chat_id: &str) -> String {
    let host = telegram_html(host);
    let mut text = format!("<b>rtinspect: {}</b>\n", digest.summary(&host));
    let budget = TELEGRAM_TEXT_CHARS.saturating_sub(text.len());
    text.push_str(&digest.lines(&host, telegram_html, budget));
    let room = TELEGRAM_TEXT_CHARS.saturating_sub(text.len());
    text.push_str(&tail::for_digest(digest, TAIL, "\n", room));
    serde_json::json!({
        "chat_id": telegram_chat(chat_id),
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
    .to_string()
}

/// `rtinspect notify-test`'s message: the title in bold, then the line.
pub(crate) fn test_body(title: &str, line: &str, chat_id: &str) -> String {
    serde_json::json!({
        "chat_id": telegram_chat(chat_id),
        "text": format!("<b>{title}</b>\n{line}"),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
    .to_string()
}

/// Telegram: a bold heading and `<pre>`, its text escaped as HTML.
pub(crate) const TAIL: tail::Shape = tail::Shape {
    heading: |h| format!("<b>{h}</b>\n"),
    open: "<pre>",
    close: "</pre>",
    line: telegram_html,
    none: |why| format!("No log lines: {why}"),
    text: telegram_html,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::format::samples::{Change, HOST, IncidentKind, event, hostile, incident};

    fn telegram(e: &HealthEvent, chat: &str) -> serde_json::Value {
        serde_json::from_str(&telegram_body(e, HOST, chat)).unwrap()
    }

    #[test]
    fn the_telegram_body_is_escaped_html_to_the_chat() {
        let v = telegram(
            &event("<script>&@everyone", "exited", "", None),
            "-1001234567890",
        );
        assert_eq!(
            v,
            serde_json::json!({
                "chat_id": -1001234567890_i64,
                "text": "rtinspect on host-7: game `&lt;script&gt;&amp;@\u{200B}everyone` container \
                         `d3c207677dd0`: exited, no healthcheck, restart count 3",
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            })
        );
        assert_eq!(
            telegram(&event("g", "exited", "", None), "@ops")["chat_id"],
            "@ops"
        );
        let v = telegram(
            &incident(Change::Resolved, IncidentKind::CrashLoop, "g-42"),
            "1",
        );
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .starts_with("rtinspect on host-7: [resolved] 4 restarts"),
            "{v}"
        );
    }

    #[test]
    fn the_telegram_text_is_cut_to_4096_between_escapes() {
        for e in hostile() {
            let text = telegram(&e, "1")["text"].as_str().unwrap().to_owned();
            assert!(
                text.chars().count() <= TELEGRAM_TEXT_CHARS,
                "{}",
                text.chars().count()
            );
            assert!(!text.contains(['\r', '\n', '<', '>']), "{text}");
        }
        // Cut at every place around the limit, an escape never split.
        for pad in 4080..4100 {
            let line = format!("{}{}", "x".repeat(pad), "<&>".repeat(10));
            let text = telegram_text(&line);
            assert!(text.chars().count() <= TELEGRAM_TEXT_CHARS, "{pad}");
            let body = text.trim_end_matches('…');
            let body = body.trim_start_matches('x');
            assert!(
                body.is_empty()
                    || body
                        .replace("&lt;", "")
                        .replace("&amp;", "")
                        .replace("&gt;", "")
                        .is_empty(),
                "{pad}: {body}"
            );
        }
        assert_eq!(telegram_text("a<b"), "a&lt;b");
        assert_eq!(telegram_text(&"é".repeat(4096)), "é".repeat(4096));
        assert_eq!(
            telegram_text(&"é".repeat(4097)),
            format!("{}…", "é".repeat(4095))
        );
    }
}
