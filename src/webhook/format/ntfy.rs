//! The ntfy format: the readable line as a plain-text body, and as headers
//! a short title, a priority by kind (a reminder one lower) and a tag; a
//! digest as lines of plain text, within ntfy's message size.

use super::digest::Digest;
use super::tail;
use super::text::{Kind, readable_line, what_changed};
use crate::event::HealthEvent;

/// The longest ntfy body: a message over 4,096 bytes is kept as an
/// attachment (ntfy's `message-size-limit`), which a phone does not show.
pub(crate) const NTFY_BODY_BYTES: usize = 4096;

/// One ntfy message: the body and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NtfyMessage {
    /// `Title`: what changed and the game, in printable ASCII.
    pub(crate) title: String,
    /// `Priority`, 1 (min) to 5 (max).
    pub(crate) priority: u8,
    /// `Tags`: emoji short codes ntfy shows before the title.
    pub(crate) tags: &'static str,
    /// The readable line, as plain text.
    pub(crate) body: String,
}

/// The longest ntfy `Title`, in characters: a phone's notification shows
/// less.
pub(crate) const NTFY_TITLE_CHARS: usize = 100;

/// The ntfy format's message: the readable line as the body, and as
/// headers a short title, a priority by kind (a reminder one lower) and a
/// tag. A header value holds printable ASCII only (a game id's other
/// characters are `?`): HTTP header values are not UTF-8, and a CR or LF
/// would end the header.
pub(crate) fn ntfy_message(event: &HealthEvent, host: &str) -> NtfyMessage {
    let (_, what, _) = what_changed(event);
    let (priority, tags) = ntfy_priority(event);
    let title = ntfy_title(&format!("rtinspect on {host}: {what} {}", event.game_id));
    let mut body = readable_line(event, host, str::to_owned);
    let room = NTFY_BODY_BYTES.saturating_sub(body.len());
    body.push_str(&tail::for_event(event, TAIL, "\n\n", room));
    NtfyMessage {
        title,
        priority,
        tags,
        body,
    }
}

/// An event's ntfy `Priority` by kind, a reminder one lower, and its `Tags`.
pub(crate) fn ntfy_priority(event: &HealthEvent) -> (u8, &'static str) {
    let (kind, _, reminder) = what_changed(event);
    let (priority, tags) = match kind {
        Kind::CrashLoop => (5, "rotating_light"),
        Kind::NotRunning => (4, "rotating_light"),
        Kind::Unhealthy | Kind::Restarted => (3, "warning"),
        Kind::Resolved => (2, "white_check_mark"),
    };
    (if reminder { priority - 1 } else { priority }, tags)
}

/// `text` as ntfy's `Title`: a header value of at most [`NTFY_TITLE_CHARS`].
pub(crate) fn ntfy_title(text: &str) -> String {
    let mut title = header_value(text);
    if title.len() > NTFY_TITLE_CHARS {
        // ASCII: bytes are characters.
        title.truncate(NTFY_TITLE_CHARS - 3);
        title.push_str("...");
    }
    title
}

/// `text` as a header value: printable ASCII, a control character a space,
/// any other `?`, trimmed.
pub(crate) fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A digest as an ntfy message: the summary as the `Title`, the highest
/// priority of its events and that event's tag, one line a group as the
/// plain-text body, at most [`NTFY_BODY_BYTES`].
pub(crate) fn digest_message(digest: &Digest, host: &str) -> NtfyMessage {
    let (priority, tags) = digest
        .events()
        .iter()
        .map(ntfy_priority)
        .reduce(|a, b| if b.0 > a.0 { b } else { a })
        .unwrap_or((3, "warning"));
    let mut body = digest.lines(host, str::to_owned, NTFY_BODY_BYTES);
    let room = NTFY_BODY_BYTES.saturating_sub(body.len());
    body.push_str(&tail::for_digest(digest, TAIL, "\n\n", room));
    NtfyMessage {
        title: ntfy_title(&format!("rtinspect: {}", digest.summary(host))),
        priority,
        tags,
        body,
    }
}

/// `rtinspect notify-test`'s message: the line as the body, the title as
/// the `Title`, at the default priority.
pub(crate) fn test_message(title: &str, line: &str) -> NtfyMessage {
    NtfyMessage {
        title: ntfy_title(title),
        priority: 3,
        tags: "white_check_mark",
        body: line.to_owned(),
    }
}

impl NtfyMessage {
    /// Its headers: `Title`, `Priority`, `Tags`.
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Title", self.title.clone()),
            ("Priority", self.priority.to_string()),
            ("Tags", self.tags.to_owned()),
        ]
    }
}

/// ntfy: plain text, a heading line and the lines.
pub(crate) const TAIL: tail::Shape = tail::Shape {
    heading: |h| format!("{h}:\n"),
    open: "",
    close: "",
    line: str::to_owned,
    none: |why| format!("No log lines: {why}"),
    text: str::to_owned,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::format::samples::{Change, HOST, IncidentKind, event, hostile, incident};

    #[test]
    fn the_ntfy_message_table() {
        // (event, title, priority, tags)
        let table = [
            (
                incident(Change::Opened, IncidentKind::CrashLoop, "g-42"),
                "rtinspect on host-7: crash loop g-42",
                5,
                "rotating_light",
            ),
            (
                incident(Change::Reminder, IncidentKind::CrashLoop, "g-42"),
                "rtinspect on host-7: still a crash loop g-42",
                4,
                "rotating_light",
            ),
            (
                event("g-42", "exited", "", None),
                "rtinspect on host-7: not running g-42",
                4,
                "rotating_light",
            ),
            (
                event("g-42", "running", "unhealthy", None),
                "rtinspect on host-7: unhealthy g-42",
                3,
                "warning",
            ),
            (
                event("g-42", "running", "", None),
                "rtinspect on host-7: restarted g-42",
                3,
                "warning",
            ),
            (
                incident(Change::Resolved, IncidentKind::Unhealthy, "g-42"),
                "rtinspect on host-7: resolved g-42",
                2,
                "white_check_mark",
            ),
            (
                incident(Change::Reminder, IncidentKind::Unhealthy, "g-42"),
                "rtinspect on host-7: still unhealthy g-42",
                2,
                "warning",
            ),
        ];
        for (e, title, priority, tags) in table {
            let m = ntfy_message(&e, HOST);
            assert_eq!(
                (m.title.as_str(), m.priority, m.tags),
                (title, priority, tags)
            );
        }
        let m = ntfy_message(&event("<b>@everyone</b> & `x`", "exited", "", None), HOST);
        assert_eq!(
            m.body,
            "rtinspect on host-7: game `<b>@everyone</b> & 'x'` container `d3c207677dd0`: exited, \
             no healthcheck, restart count 3",
            "plain text: nothing escaped"
        );
    }

    #[test]
    fn ntfy_headers_are_printable_ascii_and_short() {
        for e in hostile() {
            let m = ntfy_message(&e, HOST);
            assert!(
                m.title.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{:?}",
                m.title
            );
            assert!(m.title.chars().count() <= NTFY_TITLE_CHARS, "{}", m.title);
            assert!(!m.body.contains(['\r', '\n']), "{:?}", m.body);
        }
        let m = ntfy_message(&event("g-42\r\nX-Injected: 1", "exited", "", None), HOST);
        assert_eq!(
            m.title,
            "rtinspect on host-7: not running g-42  X-Injected: 1"
        );
        let m = ntfy_message(&event("jeu-été", "exited", "", None), HOST);
        assert_eq!(m.title, "rtinspect on host-7: not running jeu-?t?");
    }
}
