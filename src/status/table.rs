//! The board as a table for a terminal: the summary line first, then one
//! row per game, worst first, each standing in its colour when asked for
//! (`status` asks only on a terminal, and never with `NO_COLOR`).
//!
//! Outside text (a game id, a container reference, Docker's error) is made
//! inert before it reaches the terminal: a control character (an escape
//! sequence's ESC included) or a direction override becomes `?`, and a cell
//! is cut to its column's width with `…`.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{Board, Row, Standing, age, minute, short_id};

/// The widest a game id's column gets; a longer id is cut with `…`.
const GAME_WIDTH: usize = 40;

/// The widest any other cell gets.
const CELL_WIDTH: usize = 60;

/// The table of `board` at `now`, with colour or without.
pub(crate) fn render(board: &Board, now: SystemTime, colour: bool) -> String {
    let mut out = String::new();
    let summary = board.summary_line();
    if colour {
        let _ = writeln!(out, "\x1b[1m{summary}\x1b[0m");
    } else {
        let _ = writeln!(out, "{summary}");
    }
    if board.rows.is_empty() {
        return out;
    }
    let silences = board.rows.iter().any(|r| r.silenced_until.is_some());
    let mut header = vec![
        "STATUS",
        "GAME",
        "CONTAINER",
        "STATE",
        "HEALTH",
        "RESTARTS",
        "INCIDENT",
        "SINCE",
        "REASON",
    ];
    if silences {
        header.push("SILENCED UNTIL");
    }
    let rows: Vec<Vec<String>> = board.rows.iter().map(|r| cells(r, now, silences)).collect();
    out.push_str(&aligned(&header, &rows, &|i| {
        colour.then(|| colour_of(board.rows[i].standing))
    }));
    let notes: Vec<&Row> = board.rows.iter().filter(|r| r.note.is_some()).collect();
    for r in notes {
        let _ = writeln!(
            out,
            "{}: {}",
            inert(&r.game_id, GAME_WIDTH),
            inert(r.note.as_deref().unwrap_or_default(), 200)
        );
    }
    out
}

/// One row's cells, in the header's order.
fn cells(r: &Row, now: SystemTime, silences: bool) -> Vec<String> {
    let dash = || "-".to_owned();
    let incident = r.incident.as_ref();
    let mut cells = vec![
        r.standing.words().to_owned(),
        inert(&r.game_id, GAME_WIDTH),
        inert(short_id(&r.container_id), CELL_WIDTH),
        inert(&r.state, CELL_WIDTH),
        if r.health.is_empty() {
            dash()
        } else {
            inert(&r.health, CELL_WIDTH)
        },
        r.restarts.map_or_else(dash, |n| n.to_string()),
        incident.map_or_else(dash, |i| i.kind.as_str().replace('_', " ")),
        incident.map_or_else(dash, |i| {
            format!(
                "{} ago",
                age(now.duration_since(i.since).unwrap_or_default())
            )
        }),
        incident
            .and_then(|i| i.reason.as_deref())
            .map_or_else(dash, |r| inert(r, CELL_WIDTH)),
    ];
    if silences {
        cells.push(r.silenced_until.map_or_else(dash, minute));
    }
    cells
}

/// A header and rows in aligned columns, two spaces apart, no trailing
/// spaces.
pub(crate) fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    aligned(header, rows, &|_| None)
}

/// As [`columns`], the first cell of row `i` in the colour `colour(i)`
/// gives, if any.
fn aligned(
    header: &[&str],
    rows: &[Vec<String>],
    colour: &dyn Fn(usize) -> Option<&'static str>,
) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for (i, cells) in std::iter::once(&header).chain(rows).enumerate() {
        let sgr = i.checked_sub(1).and_then(colour);
        let mut text = String::new();
        for (j, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            match (j, sgr) {
                (0, Some(sgr)) => {
                    let _ = write!(text, "{sgr}{cell}\x1b[0m");
                }
                _ => text.push_str(cell),
            }
            if j + 1 < cells.len() {
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    out
}

/// The SGR sequence of a standing: red for what is down, yellow for what is
/// sick, cyan for what came back, green for what is well.
fn colour_of(s: Standing) -> &'static str {
    match s {
        Standing::CrashLoop => "\x1b[1;31m",
        Standing::NotRunning => "\x1b[31m",
        Standing::Unhealthy => "\x1b[33m",
        Standing::Restarted => "\x1b[36m",
        Standing::Unknown => "\x1b[35m",
        Standing::Healthy => "\x1b[32m",
    }
}

/// Outside text made safe for a terminal and cut to `width` characters: a
/// control character, a line separator, or a character that hides in text
/// (a direction mark or override, a zero-width one, a tag: the shared list
/// the log tail and the chats drop) becomes `?`.
pub(crate) fn inert(text: &str, width: usize) -> String {
    let safe = text.chars().map(|c| {
        let hidden = crate::text::is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}');
        if c.is_control() || hidden { '?' } else { c }
    });
    let n = text.chars().count();
    if n <= width {
        safe.collect()
    } else {
        let mut cut: String = safe.take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::tests::memory;
    use super::super::{Look, Seen, TrackerMemory};
    use super::*;
    use crate::incident::Kind;

    const FULL: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn board(looks: Vec<Look>, memory: &TrackerMemory) -> Board {
        Board::new("h".into(), UNIX_EPOCH, looks, Some(memory), &|_| None)
    }

    fn running(game: &str, health: &str) -> Look {
        Look {
            game_id: game.into(),
            container_ref: game.into(),
            seen: Seen::Container {
                container_id: FULL.into(),
                state: "running".into(),
                health: health.into(),
            },
        }
    }

    #[test]
    fn a_table_worst_first_aligned_without_colour() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let memory = memory(&[("g-loop", 4, Some((Kind::CrashLoop, 0)))]);
        let b = board(
            vec![running("g-ok", ""), running("g-loop", "healthy")],
            &memory,
        );
        let text = render(&b, t0 + Duration::from_secs(125), false);
        let expected = "\
2 games: 1 healthy, 1 crash loop
STATUS      GAME    CONTAINER     STATE    HEALTH   RESTARTS  INCIDENT    SINCE      REASON
crash loop  g-loop  0123456789ab  running  healthy  4         crash loop  2m 5s ago  -
healthy     g-ok    0123456789ab  running  -        0         -           -          -
";
        assert_eq!(text, expected);
        let coloured = render(&b, t0, true);
        assert!(coloured.starts_with("\x1b[1m2 games: "), "{coloured:?}");
        assert!(
            coloured.contains("\n\x1b[1;31mcrash loop\x1b[0m  g-loop"),
            "{coloured:?}"
        );
    }

    #[test]
    fn hostile_text_is_inert_and_cut() {
        let table: &[(&str, usize, &str)] = &[
            ("g-1", 40, "g-1"),
            ("\x1b]0;owned\x07g", 40, "?]0;owned?g"),
            ("a\u{202e}b\nc\rd\u{85}", 40, "a?b?c?d?"),
            ("z\u{200b}w\u{2028}s\u{2066}i\u{feff}", 40, "z?w?s?i?"),
            ("g-1\u{e0067}\u{e0032}", 40, "g-1??"),
            ("abcdef", 4, "abc…"),
            ("ééééé", 5, "ééééé"),
            ("éééééé", 5, "éééé…"),
        ];
        for (text, width, want) in table {
            assert_eq!(inert(text, *width), *want, "{text:?}");
        }
        let memory = TrackerMemory::default();
        let b = board(vec![running(&"x".repeat(300), "")], &memory);
        let text = render(&b, UNIX_EPOCH, false);
        assert!(text.contains(&format!("{}…", "x".repeat(39))), "{text}");
        assert!(!text.contains(&"x".repeat(41)), "{text}");
    }
}
