//! The log tail in a chat message, each format its own way: a code block
//! under a bold heading on Discord and Slack, `<pre>` on Telegram, plain
//! lines on ntfy; "no log lines" and why when there are none. Each block
//! keeps to the room its format leaves (in bytes, which bound characters
//! too), dropping the oldest lines first, and no line can close its block:
//! a backtick is followed by a zero-width space in a code block, `<`, `>`
//! and `&` are escaped in `<pre>`. A digest shows the last
//! [`DIGEST_TAIL_LINES`] lines of each incident it opens or escalates while
//! it has room, and counts the others in a note.

use super::digest::Digest;
use super::text::{cut_chars, inert};
use crate::event::HealthEvent;
use crate::incident::Change;
use crate::log_tail::LogTail;

/// The lines of each incident's tail a digest shows: the gist of many.
pub(crate) const DIGEST_TAIL_LINES: usize = 3;

/// The fewest bytes of lines worth a block: below this a block is left out.
const LEAST_LINES: usize = 16;

/// How one format shows a tail.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// A heading (already made inert and escaped) before the block.
    pub(crate) heading: fn(&str) -> String,
    /// The block's opening and closing.
    pub(crate) open: &'static str,
    pub(crate) close: &'static str,
    /// One line made safe inside the block.
    pub(crate) line: fn(&str) -> String,
    /// "No log lines" and why (already made inert and escaped).
    pub(crate) none: fn(&str) -> String,
    /// Outside text (a game id, Docker's reason) made safe outside the block.
    pub(crate) text: fn(&str) -> String,
}

/// What a single message adds for `event`'s tail, starting with `sep`, in
/// at most `room` bytes; empty when it has none, or no room.
pub(crate) fn for_event(event: &HealthEvent, shape: Shape, sep: &str, room: usize) -> String {
    let Some(tail) = event.log_tail.as_deref() else {
        return String::new();
    };
    let block = match tail {
        LogTail::Lines(lines) => block(
            shape,
            "Last log lines",
            lines,
            room.saturating_sub(sep.len()),
        ),
        LogTail::Unavailable(why) => {
            let why = (shape.text)(&inert(why));
            let said = (shape.none)(&why);
            (said.len() + sep.len() <= room).then_some(said)
        }
    };
    block.map_or_else(String::new, |b| format!("{sep}{b}"))
}

/// What a digest adds after its lines: the last [`DIGEST_TAIL_LINES`]
/// lines of each incident it opens or escalates (a game's latest), while
/// there is room in `room` bytes, then how many were left out. Each block
/// starts with `sep`.
pub(crate) fn for_digest(digest: &Digest, shape: Shape, sep: &str, room: usize) -> String {
    let mut latest: Vec<&HealthEvent> = Vec::new();
    for event in digest.events() {
        let opens = matches!(event.change(), Some(Change::Opened | Change::Escalated));
        let lines = matches!(event.log_tail.as_deref(), Some(LogTail::Lines(l)) if !l.is_empty());
        latest.retain(|e| e.game_id != event.game_id);
        if opens && lines {
            latest.push(event);
        }
    }
    let note = |n: usize| {
        let s = if n == 1 { "" } else { "s" };
        format!("{sep}(log lines of {n} more incident{s} left out: no room)")
    };
    let mut out = String::new();
    for (shown, event) in latest.iter().enumerate() {
        let Some(LogTail::Lines(lines)) = event.log_tail.as_deref() else {
            continue;
        };
        let newest = &lines[lines.len().saturating_sub(DIGEST_TAIL_LINES)..];
        let game = (shape.text)(&cut_chars(&inert(&event.game_id), 64));
        let left_out = latest.len() - shown;
        // Room kept for the note, unless this is the last.
        let keep = if left_out > 1 {
            note(left_out - 1).len()
        } else {
            0
        };
        let room_here = room.saturating_sub(out.len() + keep + sep.len());
        match block(shape, &format!("{game}: last log lines"), newest, room_here) {
            Some(b) => {
                out.push_str(sep);
                out.push_str(&b);
            }
            None => {
                if out.len() + note(left_out).len() <= room {
                    out.push_str(&note(left_out));
                }
                break;
            }
        }
    }
    out
}

/// The heading and the block of `lines`, newest kept, oldest dropped
/// first, the newest alone cut (`…`) when it does not fit whole; `None`
/// when not even [`LEAST_LINES`] bytes of it fit.
fn block(shape: Shape, heading: &str, lines: &[String], room: usize) -> Option<String> {
    let open = format!("{}{}", (shape.heading)(heading), shape.open);
    let room = room.checked_sub(open.len() + shape.close.len())?;
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let safe = (shape.line)(&inert(line));
        let cost = safe.len() + usize::from(!kept.is_empty());
        if used + cost > room {
            if kept.is_empty() && room >= LEAST_LINES {
                kept.push(cut_safe(line, shape.line, room));
            }
            break;
        }
        used += cost;
        kept.push(safe);
    }
    if kept.is_empty() {
        return None;
    }
    kept.reverse();
    Some(format!("{open}{}{}", kept.join("\n"), shape.close))
}

/// The longest start of `line` that, made safe, fits in `room` bytes, `…`
/// at its end: cut before escaping, so that no escape is cut in two.
fn cut_safe(line: &str, safe: fn(&str) -> String, room: usize) -> String {
    let line = inert(line);
    let mut chars = line.chars().count();
    loop {
        let cut = safe(&cut_chars(&line, chars));
        if cut.len() <= room || chars == 0 {
            return cut;
        }
        // Escapes grow a line at most sixfold: shrink in big steps first.
        chars = if cut.len() > 2 * room {
            chars / 2
        } else {
            chars - 1
        };
    }
}

#[cfg(test)]
mod tests;
