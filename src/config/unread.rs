//! Options set where nothing reads them: an option of the other mode
//! (`--records-table` without a database, `--label` with one), or of a sink
//! not chosen (`--webhook-url` with the stdout sink). An operator who sets
//! one expects it to matter, and ignoring it hides the mistake, so it is
//! refused, naming the fix; one set to its default is harmless (a defaults
//! file may hold every default uncommented) and only said in a debug line.

use super::error::ConfigError;
use super::options::{OPTIONS, Opt, OptionSpec};
use super::raw::{Given, Inputs, Source};
use super::row::{Mode, OptionDefault};
use super::sinks::{Chosen, SinkKind};

/// Refuses an option set (by flag or environment) for the mode that does not
/// read it: an operator who sets `--records-table` without a database, or
/// `--label` with one, expects it to matter, and ignoring it hides the mistake.
///
/// An option set to its default value is harmless either way (a defaults
/// file may hold every default uncommented): it is ignored, and said in
/// `ignored`.
pub(super) fn check_mode(
    inputs: &Inputs,
    database: bool,
    ignored: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let (unused, why) = if database {
        (
            Mode::Label,
            "the records come from the database (--database-url or RTINSPECT_DATABASE_URL), \
             not from labels",
        )
    } else {
        (
            Mode::Postgres,
            "label mode uses no database (set --database-url or RTINSPECT_DATABASE_URL \
             for PostgreSQL mode)",
        )
    };
    let unread = OPTIONS.iter().filter(|spec| spec.mode == unused);
    let set_for_the_other_mode = not_default(inputs, unread, ignored, "the other mode reads it")
        .next()
        .map(|(_, given)| given);
    match set_for_the_other_mode {
        None => Ok(()),
        Some(given) => Err(ConfigError::new(format!(
            "{} has no effect: {why}; remove it",
            given.described()
        ))),
    }
}

/// Refuses an option that only a sink not chosen reads (`--webhook-url`
/// with the stdout sink, say), for the same reason as [`check_mode`].
/// The fix is named beside the removal: the sink that reads it added to
/// `--sink`, in the form the operator used.
pub(super) fn check_sinks(
    inputs: &Inputs,
    chosen: &[Chosen<'_>],
    ignored: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let unread = OPTIONS.iter().filter(|spec| {
        spec.sink
            .is_some_and(|k| chosen.iter().all(|c| c.kind() != k))
    });
    let set_for_another_sink =
        not_default(inputs, unread, ignored, "no sink chosen reads it").next();
    let Some((spec, given)) = set_for_another_sink else {
        return Ok(());
    };
    let wanted = spec.sink.map_or("", SinkKind::as_str);
    let mut names: Vec<&str> = chosen.iter().map(|c| c.kind().as_str()).collect();
    // The sinks as given, and the one wanted: `stdout,webhook`.
    let as_given = inputs.given(Opt::Sink);
    let env = match as_given {
        Some(sink) => !matches!(sink.source, Source::Flag(_)),
        None => !matches!(given.source, Source::Flag(_)),
    };
    // The default stdout sink gives way; a database's postgres sink stays.
    if as_given.is_none() && names == ["stdout"] {
        names.clear();
    }
    names.push(wanted);
    let fix = if env {
        format!("RTINSPECT_SINK={}", names.join(","))
    } else {
        format!("--sink {}", names.join(","))
    };
    Err(ConfigError::new(format!(
        "{} has no effect: events go to {}, and only --sink {wanted} reads it; \
         add `{fix}`, or remove it",
        given.described(),
        sinks_named(chosen),
    )))
}

/// The options of `unread` set to another value than their default, with
/// their values; those set to their default are ignored, and said in
/// `ignored` (`why`: why nothing reads them).
fn not_default<'a, 'b>(
    inputs: &'b Inputs,
    unread: impl Iterator<Item = &'a OptionSpec>,
    ignored: &mut Vec<String>,
    why: &str,
) -> std::vec::IntoIter<(&'a OptionSpec, &'b Given)> {
    let mut set = Vec::new();
    for spec in unread {
        let Some(given) = inputs.given(spec.key) else {
            continue;
        };
        match spec.default {
            OptionDefault::Value(default) if given.value == default => ignored.push(format!(
                "{} is ignored: it is the default, and {why}",
                given.described()
            )),
            _ => set.push((spec, given)),
        }
    }
    set.into_iter()
}

/// "the stdout sink", "the postgres and webhook sinks".
fn sinks_named(chosen: &[Chosen<'_>]) -> String {
    let names: Vec<&str> = chosen.iter().map(|c| c.kind().as_str()).collect();
    match names.split_last() {
        Some((last, [])) => format!("the {last} sink"),
        Some((last, rest)) => format!("the {} and {last} sinks", rest.join(", ")),
        None => "the notification URLs alone".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{Case, SLACK, config, err};

    #[test]
    fn an_option_the_mode_does_not_read_is_refused() {
        let table: &[Case] = &[
            (
                &["--records-table", "ops.rt"],
                &[],
                "--records-table \"ops.rt\" has no effect: label mode uses no database",
            ),
            (
                &[],
                &[("RTINSPECT_EVENTS_TABLE", "ev")],
                "RTINSPECT_EVENTS_TABLE \"ev\" has no effect",
            ),
            (
                &["--notify-channel", ""],
                &[],
                "--notify-channel \"\" has no effect",
            ),
            (
                &["once", "--database-ca-file", "/ca.pem"],
                &[],
                "--database-ca-file \"/ca.pem\" has no effect: label mode",
            ),
            (
                &["--database-url", "host=db", "--label", "team.game"],
                &[],
                "--label \"team.game\" has no effect: the records come from the database",
            ),
            (
                &[],
                &[
                    ("RTINSPECT_DATABASE_URL", "host=db"),
                    ("RTINSPECT_LABEL", "team.game"),
                ],
                "RTINSPECT_LABEL \"team.game\" has no effect",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
        }
        // Defaults are not "set": each mode runs with the other's defaults untouched.
        config(&[], &[]);
        config(&["--database-url", "host=db"], &[]);
        // Empty variables count as unset, so a blanked line in the defaults file is fine.
        config(&[], &[("RTINSPECT_RECORDS_TABLE", "")]);
        // The stdout sink with a database still takes the events table and
        // channel: `migrate` creates the table whatever the sink.
        config(
            &["--database-url", "host=db", "--sink", "stdout"],
            &[
                ("RTINSPECT_EVENTS_TABLE", "ev"),
                ("RTINSPECT_NOTIFY_CHANNEL", "ch"),
            ],
        );
    }

    #[test]
    fn an_option_no_sink_reads_names_the_sink_to_add() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let url = ("RTINSPECT_WEBHOOK_URL", SLACK);
        let format = ("RTINSPECT_WEBHOOK_FORMAT", "discord");
        let table: &[Case] = &[
            // The defaults file's Discord block, uncommented alone.
            (
                &[],
                &[url, format],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `RTINSPECT_SINK=webhook`, or remove it",
            ),
            (
                &[],
                &[db, url],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the postgres sink, and only \
                 --sink webhook reads it; add `RTINSPECT_SINK=postgres,webhook`, or remove it",
            ),
            (
                &[],
                &[("RTINSPECT_SINK", "stdout"), format],
                "RTINSPECT_WEBHOOK_FORMAT \"discord\" has no effect: events go to the stdout \
                 sink, and only --sink webhook reads it; add `RTINSPECT_SINK=stdout,webhook`, \
                 or remove it",
            ),
            (
                &["--sink", "stdout"],
                &[url],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `--sink stdout,webhook`, or remove it",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert_eq!(&got, want, "{args:?} {env:?}");
            assert!(!got.contains("SECRET"), "{got}");
        }
    }

    #[test]
    fn an_option_set_to_its_default_where_nothing_reads_it_is_ignored() {
        // Each as the defaults file has it, uncommented alone, in label mode.
        for (name, value) in [
            ("RTINSPECT_WEBHOOK_FORMAT", "envelope"),
            ("RTINSPECT_RECORDS_TABLE", "runtime_records"),
            ("RTINSPECT_EVENTS_TABLE", "runtime_health_events"),
            ("RTINSPECT_NOTIFY_CHANNEL", "runtime_health_events"),
        ] {
            let c = config(&["run"], &[(name, value)]);
            assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
            assert_eq!(c.ignored.len(), 1, "{name}: {:?}", c.ignored);
            assert!(
                c.ignored[0]
                    .starts_with(&format!("{name} \"{value}\" is ignored: it is the default")),
                "{:?}",
                c.ignored
            );
        }
        // In PostgreSQL mode, the label's default alike.
        let c = config(
            &[],
            &[
                ("RTINSPECT_DATABASE_URL", "host=db"),
                ("RTINSPECT_LABEL", "rtinspect.game-id"),
            ],
        );
        assert_eq!(c.ignored.len(), 1, "{:?}", c.ignored);
        // Another value still has no effect, and says so.
        assert!(
            err(&[], &[("RTINSPECT_RECORDS_TABLE", "ops.rt")])
                .starts_with("RTINSPECT_RECORDS_TABLE \"ops.rt\" has no effect: label mode")
        );
    }

    #[test]
    fn webhook_options_without_the_webhook_sink_are_refused_without_the_url() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let table: &[Case] = &[
            (
                &["--sink", "webhook"],
                &[],
                "--sink \"webhook\" needs a URL: set --webhook-url or RTINSPECT_WEBHOOK_URL",
            ),
            (
                &[],
                &[("RTINSPECT_SINK", "webhook"), ("RTINSPECT_WEBHOOK_URL", "")],
                "RTINSPECT_SINK \"webhook\" needs a URL",
            ),
            (
                &["--webhook-url", SLACK],
                &[],
                "--webhook-url has no effect: events go to the stdout sink, and only \
                 --sink webhook reads it; add `--sink webhook`, or remove it",
            ),
            (
                &[],
                &[db, ("RTINSPECT_WEBHOOK_URL", SLACK)],
                "RTINSPECT_WEBHOOK_URL has no effect: events go to the postgres sink",
            ),
            (
                &["--sink", "stdout", "--webhook-format", "slack"],
                &[],
                "--webhook-format \"slack\" has no effect: events go to the stdout sink",
            ),
            (
                &["--webhook-ca-file", "/ca.pem"],
                &[],
                "--webhook-ca-file \"/ca.pem\" has no effect: events go to the stdout sink",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url=http://10.0.0.1/SECRETTOKEN",
                    "--webhook-ca-file=/ca.pem",
                ],
                &[],
                "--webhook-ca-file \"/ca.pem\" has no effect: --webhook-url is an http:// URL, \
                 which uses no TLS; remove it",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    SLACK,
                    "--webhook-ca-file=ca.pem",
                ],
                &[],
                "invalid --webhook-ca-file \"ca.pem\": expected an absolute path",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    SLACK,
                    "--webhook-format=teams",
                ],
                &[],
                "invalid --webhook-format \"teams\": expected envelope or slack",
            ),
            (
                &[
                    "--sink=webhook",
                    "--webhook-url",
                    "hooks.slack.com/SECRETTOKEN",
                ],
                &[],
                "invalid --webhook-url: expected an http:// or https:// URL",
            ),
            (
                &["--sink=webhook"],
                &[("RTINSPECT_WEBHOOK_URL", "ftp://x/SECRETTOKEN")],
                "invalid RTINSPECT_WEBHOOK_URL: the scheme must be http or https (the value \
                 is not shown: it may hold a token)",
            ),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains("SECRETTOKEN"), "{got}");
        }
    }
}
