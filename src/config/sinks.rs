//! The sinks: where events go (`--sink`), and what each gets (`--report`).
//!
//! Without `--sink` the mode chooses: stdout in label mode, postgres with a
//! database. Each sink can be named once; a sink not named in `--report`
//! gets its default, facts for the programs that read a table or a stream,
//! incidents for the people who read a chat.

use super::database::Database;
use super::error::ConfigError;
use super::options::Opt;
use super::raw::{Given, Inputs};
pub(crate) use super::route::{Report, Route};
pub(crate) use super::row::SinkKind;
use super::webhook::{self, WebhookSettings};

/// Where events go, with what that sink needs.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// One envelope per line on standard output.
    Stdout,
    /// A row in the events table plus `pg_notify`, in this database: the
    /// one the records come from (boxed: it is large, stdout is nothing).
    Postgres(Box<Database>),
    /// A `POST` to a webhook.
    Webhook(WebhookSettings),
}

impl Sink {
    /// Which sink it is.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> SinkKind {
        match self {
            Sink::Stdout => SinkKind::Stdout,
            Sink::Postgres(_) => SinkKind::Postgres,
            Sink::Webhook(_) => SinkKind::Webhook,
        }
    }
}

/// A sink, its name and what it gets.
#[derive(Debug, Clone)]
pub(crate) struct SinkConfig {
    /// What the sink is called in logs, metrics, its spool's file and
    /// `rejected.jsonl`: `stdout`, `postgres`, `webhook`, or a notification
    /// URL's (`discord-1`, or its `name=`).
    pub(crate) name: String,
    /// Where the events go.
    pub(crate) sink: Sink,
    /// What it gets: facts, incidents or both (`--report`), and for a
    /// notification URL which kinds and games.
    pub(crate) route: Route,
    /// Whether it is a notification URL (`--notify`, `--notify-file`).
    pub(crate) notify: bool,
}

/// A sink chosen, with where its settings come from.
pub(super) enum Chosen<'a> {
    Stdout,
    Postgres(&'a Database),
    /// Only a given `--sink` chooses the webhook.
    Webhook(&'a Given),
}

impl Chosen<'_> {
    pub(super) fn kind(&self) -> SinkKind {
        match self {
            Chosen::Stdout => SinkKind::Stdout,
            Chosen::Postgres(_) => SinkKind::Postgres,
            Chosen::Webhook(_) => SinkKind::Webhook,
        }
    }

    /// The sink with its settings: the webhook's are read now, once
    /// `unread::check_sinks` has refused every webhook option for another sink.
    pub(super) fn build(self, inputs: &Inputs) -> Result<Sink, ConfigError> {
        Ok(match self {
            Chosen::Stdout => Sink::Stdout,
            Chosen::Postgres(database) => Sink::Postgres(Box::new(database.clone())),
            Chosen::Webhook(sink) => Sink::Webhook(webhook::webhook(
                sink,
                inputs.given(Opt::WebhookUrl),
                inputs.given(Opt::WebhookUrlFile),
                &inputs.with_default(Opt::WebhookFormat)?,
                inputs.given(Opt::WebhookCaFile),
            )?),
        })
    }
}

/// The sinks asked for (`--sink postgres,webhook`, or the flag given once
/// for each), else the mode's default: postgres with a database, else
/// stdout, unless notification URLs are given (`notified`), which are then
/// the sinks beside the database's.
pub(super) fn sinks<'a>(
    given: Option<&'a Given>,
    database: Option<&'a Database>,
    notified: bool,
) -> Result<Vec<Chosen<'a>>, ConfigError> {
    let Some(given) = given else {
        return Ok(match (database, notified) {
            (Some(database), _) => vec![Chosen::Postgres(database)],
            (None, false) => vec![Chosen::Stdout],
            (None, true) => Vec::new(),
        });
    };
    let mut chosen: Vec<Chosen<'a>> = Vec::new();
    for name in given.value.split(',').map(str::trim) {
        let sink =
            match (name, database) {
                ("", _) => {
                    return Err(given.invalid(
                        "an empty sink name (a comma at an end, two in a row, or an empty --sink)",
                    ));
                }
                ("stdout", _) => Chosen::Stdout,
                ("webhook", _) => Chosen::Webhook(given),
                ("postgres", Some(database)) => Chosen::Postgres(database),
                ("postgres", None) => {
                    return Err(given.invalid("the postgres sink needs --database-url"));
                }
                _ => return Err(given.invalid(
                    "expected stdout, postgres or webhook, or several of them separated by commas",
                )),
            };
        if chosen.iter().any(|c| c.kind() == sink.kind()) {
            return Err(given.invalid(&format!(
                "the {name} sink is named twice; each sink can be used once"
            )));
        }
        chosen.push(sink);
    }
    Ok(chosen)
}

/// Each chosen sink's `--report`: one value for every sink
/// (`incidents`), or one per sink (`postgres=facts,webhook=incidents`);
/// a sink not named gets its default: a table and a stdout stream are read
/// by programs (facts), a webhook by people (incidents).
pub(super) fn reports(
    given: Option<&Given>,
    chosen: &[Chosen<'_>],
) -> Result<Vec<Report>, ConfigError> {
    let default = |kind: SinkKind| match kind {
        SinkKind::Webhook => Report::Incidents,
        SinkKind::Stdout | SinkKind::Postgres => Report::Facts,
    };
    let mut reports: Vec<Report> = chosen.iter().map(|c| default(c.kind())).collect();
    let Some(given) = given else {
        return Ok(reports);
    };
    if chosen.is_empty() {
        return Err(ConfigError::new(format!(
            "{} has no effect: events go to the notification URLs alone, and each says \
             what it takes with report= in its query; remove it",
            given.described()
        )));
    }
    let report = |value: &str| {
        Report::parse(value).ok_or_else(|| {
            given.invalid(
                "expected facts, incidents or both, or SINK=REPORT for each sink \
                 (postgres=facts,webhook=incidents)",
            )
        })
    };
    if !given.value.contains('=') {
        let report = report(given.value.trim())?;
        return Ok(vec![report; chosen.len()]);
    }
    let mut named = Vec::new();
    for part in given.value.split(',') {
        let Some((name, value)) = part.split_once('=') else {
            return Err(given.invalid(&format!(
                "{:?} is not SINK=REPORT; once one sink is named, name each \
                 (postgres=facts,webhook=incidents)",
                part.trim()
            )));
        };
        let (name, value) = (name.trim(), value.trim());
        if named.contains(&name) {
            return Err(given.invalid(&format!("the {name} sink is named twice")));
        }
        named.push(name);
        let Some(i) = chosen.iter().position(|c| c.kind().as_str() == name) else {
            return Err(given.invalid(&format!(
                "{name:?} is not a sink events go to ({})",
                chosen
                    .iter()
                    .map(|c| c.kind().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        reports[i] = report(value)?;
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::{config, err};
    use crate::config::{Command, Config};

    #[test]
    fn database_selects_postgres_sink_by_default() {
        let c = config(
            &[],
            &[(
                "RTINSPECT_DATABASE_URL",
                "postgres://u:secret@db.example/rt",
            )],
        );
        assert!(c.database.is_some());
        let Sink::Postgres(db) = &c.sinks[0].sink else {
            panic!("{:?}", c.sinks[0].sink);
        };
        assert_eq!(db.config.get_dbname(), Some("rt"), "the records' database");
        let c = config(
            &["--sink", "stdout", "--database-url", "host=/run/pg user=rt"],
            &[],
        );
        assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
        assert!(matches!(c.command, Command::Run), "{:?}", c.command);
        let c = config(&["migrate", "--database-url", "host=db"], &[]);
        let Command::Migrate { database } = &c.command else {
            panic!("{:?}", c.command);
        };
        assert_eq!(
            database.config.get_hosts(),
            c.database.unwrap().config.get_hosts()
        );
    }

    /// The sinks' names and reports.
    fn sinks_of(c: &Config) -> Vec<(&str, Report)> {
        c.sinks
            .iter()
            .map(|s| (s.name.as_str(), s.route.report))
            .collect()
    }

    #[test]
    fn several_sinks_each_with_its_report() {
        let db = ["--database-url", "host=db"];
        let hook = ["--webhook-url", "https://h.example/x"];
        let both = [("postgres", Report::Facts), ("webhook", Report::Incidents)];
        let flags = config(
            &[
                &db[..],
                &hook[..],
                &["--sink", "postgres", "--sink", "webhook"],
            ]
            .concat(),
            &[],
        );
        assert_eq!(sinks_of(&flags), both);
        let listed = config(
            &[&db[..], &hook[..], &["--sink=postgres,webhook"]].concat(),
            &[],
        );
        assert_eq!(sinks_of(&listed), both);
        for var in ["RTINSPECT_SINKS", "RTINSPECT_SINK"] {
            let c = config(
                &[&db[..], &hook[..]].concat(),
                &[(var, "postgres, webhook")],
            );
            assert_eq!(sinks_of(&c), both, "{var}");
        }
        // The flag wins over the variable, as for every option.
        let c = config(
            &[&db[..], &["--sink", "stdout"]].concat(),
            &[("RTINSPECT_SINKS", "postgres,webhook")],
        );
        assert_eq!(sinks_of(&c), [("stdout", Report::Facts)]);
        let per_sink = config(
            &[&db[..], &hook[..], &["--sink", "webhook,postgres"]].concat(),
            &[("RTINSPECT_REPORT", "postgres=both")],
        );
        assert_eq!(
            sinks_of(&per_sink),
            [("webhook", Report::Incidents), ("postgres", Report::Both)]
        );
        let all = config(
            &[
                &db[..],
                &hook[..],
                &["--sink", "webhook,postgres", "--report", "facts"],
            ]
            .concat(),
            &[],
        );
        assert_eq!(
            sinks_of(&all),
            [("webhook", Report::Facts), ("postgres", Report::Facts)]
        );
        assert!(!all.incidents_wanted() && per_sink.incidents_wanted());
    }

    #[test]
    fn a_list_of_sinks_is_refused_naming_what_is_wrong() {
        let db = ["--database-url", "host=db"];
        for (args, env, expected) in [
            (
                &["--sink", "stdout", "--sink", "stdout"][..],
                &[][..],
                "invalid --sink \"stdout,stdout\": the stdout sink is named twice; each sink can be used once",
            ),
            (
                &["--sink", "stdout,"],
                &[],
                "invalid --sink \"stdout,\": an empty sink name",
            ),
            (
                &["--sink", "stdout,kafka"],
                &[],
                "invalid --sink \"stdout,kafka\": expected stdout, postgres or webhook",
            ),
            (
                &[],
                &[("RTINSPECT_SINKS", "stdout"), ("RTINSPECT_SINK", "stdout")],
                "RTINSPECT_SINK and RTINSPECT_SINKS are both set; set one",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "webhook=facts"],
                &[],
                "invalid --report \"webhook=facts\": \"webhook\" is not a sink events go to (stdout, postgres)",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "stdout=facts,both"],
                &[],
                "invalid --report \"stdout=facts,both\": \"both\" is not SINK=REPORT",
            ),
            (
                &[
                    "--sink",
                    "stdout,postgres",
                    "--report",
                    "stdout=facts,stdout=both",
                ],
                &[],
                "invalid --report \"stdout=facts,stdout=both\": the stdout sink is named twice",
            ),
            (
                &["--sink", "stdout", "--sink", ""],
                &[],
                "invalid --sink \"stdout,\": an empty sink name",
            ),
            (
                &["--sink", "stdout,postgres", "--report", "postgres=all"],
                &[],
                "invalid --report \"postgres=all\": expected facts, incidents or both",
            ),
            (
                &["--sink", "stdout,postgres", "--webhook-format", "slack"],
                &[],
                "--webhook-format \"slack\" has no effect: events go to the stdout and postgres sinks",
            ),
        ] {
            let message = err(&[&db[..], args].concat(), env);
            assert!(message.starts_with(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn the_report_defaults_to_facts_for_programs_and_incidents_for_people() {
        assert_eq!(config(&[], &[]).sinks[0].route.report, Report::Facts);
        let hook = ["--sink", "webhook", "--webhook-url", "https://h.example/x"];
        assert_eq!(config(&hook, &[]).sinks[0].route.report, Report::Incidents);
        let both = config(&[], &[("RTINSPECT_REPORT", "both")]).sinks[0]
            .route
            .report;
        assert!(both.facts() && both.incidents());
        assert!(
            err(&["--report", "all"], &[])
                .contains("invalid --report \"all\": expected facts, incidents or both")
        );
        let rules = config(&[], &[]).incidents;
        assert_eq!(
            (
                rules.crash_loop_restarts,
                rules.crash_loop_window,
                rules.recover_after,
                rules.remind
            ),
            (
                3,
                Duration::from_secs(600),
                Duration::from_secs(30),
                Some(Duration::from_secs(4 * 3600))
            )
        );
        assert_eq!(config(&["--remind", "0"], &[]).incidents.remind, None);
        assert!(err(&["--crash-loop-restarts", "0"], &[]).contains("from 1 to 1000"));
        assert!(err(&["--recover-after", "0s"], &[]).contains("greater than zero"));
    }

    #[test]
    fn log_lines_default_to_ten_and_zero_turns_them_off() {
        // (args, environment, lines)
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], usize);
        let table: &[Case] = &[
            (&[], &[], 10),
            (&["--log-lines", "0"], &[], 0),
            (&["--log-lines", "100"], &[], 100),
            (&[], &[("RTINSPECT_LOG_LINES", "3")], 3),
            (&["--log-lines", "5"], &[("RTINSPECT_LOG_LINES", "3")], 5),
        ];
        for (args, env, lines) in table {
            assert_eq!(
                config(args, env).incidents.log_lines,
                *lines,
                "{args:?} {env:?}"
            );
        }
        assert!(err(&["--log-lines", "101"], &[]).contains("from 0 to 100"));
        assert!(err(&["--log-lines", "-1"], &[]).contains("from 0 to 100"));
    }
}
