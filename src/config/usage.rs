//! `--help`: the usage text, its options written from the one table
//! ([`OPTIONS`]), each help cut to fit 80 columns.

use std::fmt::Write as _;

use super::options::OPTIONS;

/// Width of `--help`, and where the help texts start.
const WIDTH: usize = 80;
const HELP_COLUMN: usize = 26;

/// The usage text of `--help`, its options written from [`OPTIONS`].
pub fn usage() -> String {
    let mut out = String::from(
        "\
rtinspect: watches game-runtime containers through the Docker Engine API and
publishes health events to stdout, PostgreSQL or a chat webhook: a fact
(inspect_unhealthy) each time one is seen restarted, not running or unhealthy,
and incidents for people (opened, escalated, reminded of, resolved).

Usage: rtinspect [COMMAND] [OPTIONS]

Commands:
  run        Inspect every interval until SIGTERM or SIGINT (the default)
  once       Inspect once, wait until the events are delivered, exit
  migrate    Create the records, events and silences tables and their indexes
             if missing
  prune-events
             Delete the events older than --older-than, 10,000 rows at a time
  notify-test
             Send one test message through every sink, print each result,
             exit 1 when any failed
  silence    Hold back incidents while a script causes a downtime (facts go on):
             silence add (--game GAME [--game GAME ...] | --all)
                         (--for DURATION | --until TIME) [--comment TEXT]
               from now for 90s, 30m, 2h or 7d (at most 365d), or until an
               RFC 3339 time; prints the silence's id. An incident still open
               at its end is announced then, with details.after_silence
             silence list             the silences in force or to come
             silence end (ID | --all) end one now, or every one
             Label mode keeps them in --state-dir (give the daemon's);
             PostgreSQL mode in --silences-table
  status     Every game now, worst first (--json); exit 0 all healthy,
             1 some game in trouble, 2 could not look
  history    The incidents' timeline, oldest first (--game G, --since 24h,
             --json)

Options (each also read from the environment variable shown; a flag wins. An
option the chosen mode or sinks do not read is an error that names the fix,
unless it holds its default, which is then ignored):
",
    );
    let indent = " ".repeat(HELP_COLUMN);
    for spec in OPTIONS {
        let head = format!("  {} {}", spec.flag, spec.value_name);
        let mut lines = Vec::new();
        let sink_note = spec.sink.map(|k| format!("(--sink {} only)", k.as_str()));
        for paragraph in spec
            .help
            .lines()
            .chain(spec.mode.note())
            .chain(sink_note.as_deref())
        {
            lines.extend(wrap(paragraph, WIDTH - HELP_COLUMN));
        }
        lines.extend(wrap(
            &format!("[{}; default {}]", spec.env, spec.default.shown()),
            WIDTH - HELP_COLUMN,
        ));
        let mut lines = lines.into_iter();
        if head.len() < HELP_COLUMN {
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(out, "{head:HELP_COLUMN$}{first}");
        } else {
            let _ = writeln!(out, "{head}");
        }
        for line in lines {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
    out.push_str(
        "  -h, --help              print this text
  -V, --version           print the version

Log level: RUST_LOG (default info). Logs go to stderr, never to stdout.
Exit status: 0 success, 1 runtime failure, 64 bad usage or configuration;
`status`: 0 all healthy, 1 some game in trouble, 2 could not look.
",
    );
    out
}

/// `text` cut into lines of at most `width` characters at spaces (a longer
/// word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_fits_in_80_columns_and_shows_every_row() {
        let text = usage();
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?}");
        }
        for spec in OPTIONS {
            let flag_line = format!("  {} {}", spec.flag, spec.value_name);
            assert!(text.contains(&flag_line), "{flag_line}");
            assert!(
                text.contains(&format!("[{}; default", spec.env)),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn wrap_cuts_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
        assert!(wrap("", 4).is_empty());
    }
}
