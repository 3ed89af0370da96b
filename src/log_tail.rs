//! A container's last log lines as an incident's event carries them
//! (`details.log_tail`), or why there are none (`log_tail_unavailable`):
//! a plain value, and the pure pipeline from what Docker sent to it. The
//! lines are gathered from the log stream's payload, the last ones kept
//! (`lines`), made printable (`clean`: escapes and control characters gone,
//! bytes that are not UTF-8 replaced), their secrets redacted (`secrets`),
//! each cut to [`LINE_BYTES`] and the whole to [`TAIL_BYTES`], oldest lines
//! dropped first, so that the tail always ends with the last line the game
//! wrote. No I/O here: the read is `docker/logs.rs`'s, the waiting
//! `publish/tails.rs`'s.

mod clean;
mod lines;
mod secrets;

pub(crate) use lines::{Stream, TailLines};

/// The most bytes of one line the tail carries; a line cut ends in `…`.
pub const LINE_BYTES: usize = 300;

/// The most bytes of all the lines together: the oldest go first.
pub const TAIL_BYTES: usize = 2048;

/// The most lines `--log-lines` may ask for: with [`TAIL_BYTES`] in all,
/// more would be lines of a few bytes each.
pub(crate) const MAX_LINES: usize = 100;

/// What an incident's event says of its container's last log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTail {
    /// `details.log_tail`: the last lines, oldest first, cleaned, redacted
    /// and cut.
    Lines(Vec<String>),
    /// `details.log_tail_unavailable`: why there is no tail (Docker's
    /// message for a log driver it cannot read back, `timed out`, …).
    Unavailable(String),
}

impl LogTail {
    /// The tail of the lines given, oldest first, as the event carries it:
    /// each cleaned, redacted and cut, blank ones left out, the whole held
    /// to [`TAIL_BYTES`] by dropping the oldest.
    pub(crate) fn from_raw_lines<'a>(raw: impl IntoIterator<Item = RawLine<'a>>) -> LogTail {
        let mut lines: Vec<String> = raw
            .into_iter()
            .filter_map(|line| {
                let text = clean::printable(line.bytes);
                let text = secrets::redact(&text);
                let text = text.trim();
                (!text.is_empty()).then(|| cut_line(text, line.cut))
            })
            .collect();
        let mut total: usize = lines.iter().map(String::len).sum();
        let mut drop = 0;
        while total > TAIL_BYTES {
            total -= lines[drop].len();
            drop += 1;
        }
        lines.drain(..drop);
        LogTail::Lines(lines)
    }

    /// Why there is no tail, cleaned as a line is (Docker's message is
    /// outside text) and cut to [`LINE_BYTES`].
    pub(crate) fn unavailable(why: &str) -> LogTail {
        let text = clean::printable(why.as_bytes());
        let text = secrets::redact(&text);
        LogTail::Unavailable(cut_line(text.trim(), false))
    }
}

/// Reads a container's last lines: the seam between the waiting of
/// incident events (`publish/tails.rs`) and Docker (`docker/logs.rs`), so
/// that the waiting is tested with a fake.
pub(crate) trait ReadTail: Send + Sync {
    /// The last `lines` lines of `container_id`, or why there are none;
    /// `None` when no answer came within `within`.
    fn read_tail(
        &self,
        container_id: &str,
        lines: usize,
        within: std::time::Duration,
    ) -> Option<LogTail>;
}

/// One line as it came, before it is made printable: its bytes (at most
/// [`lines::RAW_LINE_BYTES`] of them), and whether more were dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLine<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) cut: bool,
}

/// `line` cut to [`LINE_BYTES`] on a character boundary, ending in `…`
/// when anything of it is gone (here, or before it was cleaned).
fn cut_line(line: &str, cut_before: bool) -> String {
    const ELLIPSIS: &str = "…";
    if line.len() <= LINE_BYTES && !cut_before {
        return line.to_owned();
    }
    let keep = crate::text::cut_at_char_boundary(line, LINE_BYTES - ELLIPSIS.len());
    let keep = keep.strip_suffix(ELLIPSIS).unwrap_or(keep);
    format!("{keep}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(lines: &[&str]) -> Vec<RawLine<'static>> {
        lines
            .iter()
            .map(|l| RawLine {
                bytes: l.as_bytes().to_vec().leak(),
                cut: false,
            })
            .collect()
    }

    #[test]
    fn a_line_is_cut_to_300_bytes_on_a_character_boundary_and_ends_in_an_ellipsis() {
        // (line, cut before, kept length, ends in …)
        let long_ascii = "a".repeat(1000);
        let long_wide = "é".repeat(500);
        let exact = "b".repeat(LINE_BYTES);
        let table: &[(&str, bool, usize, bool)] = &[
            ("short", false, 5, false),
            (&exact, false, LINE_BYTES, false),
            (&long_ascii, false, LINE_BYTES, true),
            // 297 bytes of two-byte characters leave 296, then the ellipsis.
            (&long_wide, false, 299, true),
            ("short but cut before", true, 23, true),
        ];
        for (line, before, len, ellipsis) in table {
            let cut = cut_line(line, *before);
            assert_eq!(cut.len(), *len, "{line:.20}");
            assert!(cut.len() <= LINE_BYTES);
            assert_eq!(cut.ends_with('…'), *ellipsis, "{line:.20}");
        }
    }

    #[test]
    fn the_whole_tail_keeps_to_2_kib_by_dropping_the_oldest_lines() {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("{i:02} {}", "x".repeat(200)))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let LogTail::Lines(tail) = LogTail::from_raw_lines(raw(&refs)) else {
            panic!("lines expected");
        };
        assert!(tail.iter().map(String::len).sum::<usize>() <= TAIL_BYTES);
        // 203 bytes a line: ten fit in 2048, and they are the last ten.
        assert_eq!(tail.len(), 10);
        assert!(tail[0].starts_with("10 "));
        assert!(tail[9].starts_with("19 "));
    }

    #[test]
    fn blank_lines_are_left_out_and_lines_trimmed() {
        let tail = LogTail::from_raw_lines(raw(&["", "  one  ", "\u{1b}[0m", "\t", "two"]));
        assert_eq!(tail, LogTail::Lines(vec!["one".into(), "two".into()]));
    }

    #[test]
    fn a_line_is_redacted_before_it_is_cut() {
        // The secret straddles the 300-byte cut: none of it is kept.
        let line = format!("{}password=hunter2hunter2", "a".repeat(290));
        let LogTail::Lines(tail) = LogTail::from_raw_lines(raw(&[&line])) else {
            panic!("lines expected");
        };
        assert!(!tail[0].contains("hunter"), "{}", tail[0]);
        assert!(!tail[0].contains("hun"), "{}", tail[0]);
    }

    #[test]
    fn a_secret_whose_key_an_invisible_character_splits_is_hidden_all_the_same() {
        // A chat removes these characters before it shows the line: the
        // key it would show must have hidden its value here.
        for invisible in ["\u{34f}", "\u{e0041}", "\u{fe0f}", "\u{3164}", "\u{200b}"] {
            let line = format!("pass{invisible}word=hunter2");
            let LogTail::Lines(tail) = LogTail::from_raw_lines(raw(&[&line])) else {
                panic!("lines expected");
            };
            assert_eq!(tail, ["password=…"], "{invisible:?}");
        }
    }

    #[test]
    fn a_secret_whose_key_is_written_with_json_escapes_is_hidden_all_the_same() {
        let lines = [
            r#"{"pass\u0077ord":"hunter8"}"#,
            r#"{"\u0074oken": "hunter8", "n": "\u00e9\u0022"}"#,
        ];
        let LogTail::Lines(tail) = LogTail::from_raw_lines(raw(&lines)) else {
            panic!("lines expected");
        };
        assert_eq!(
            tail,
            [
                r#"{"password":"…"}"#,
                r#"{"token": "…", "n": "\u00e9\u0022"}"#
            ],
            "letters decoded; an é or a quote left as written"
        );
    }

    #[test]
    fn dockers_message_is_cleaned_and_cut() {
        let why = format!("driver \u{1b}[1msays\u{7} no {}", "z".repeat(400));
        let LogTail::Unavailable(why) = LogTail::unavailable(&why) else {
            panic!("unavailable expected");
        };
        assert!(why.starts_with("driver says no z"));
        assert!(why.len() <= LINE_BYTES && why.ends_with('…'));
    }
}
