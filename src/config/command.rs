//! The command: which one was asked for, and what it needs before it can
//! run. `migrate` and `prune-events` need a database; `prune-events` alone
//! reads `--older-than`, which is refused on another command's command line
//! and ignored when it comes from the defaults file every command reads.
//! `status` and `history` take flags of their own (`args`), `silence` its
//! words and flags (`silence`).

use std::time::Duration;

use super::args;
use super::database::Database;
use super::error::ConfigError;
use super::options::Opt;
use super::raw::{Inputs, Source};
use super::silence::{SilenceCommand, silence_command};
use crate::text::{Units, parse_duration};

/// What the process was asked to do, once the configuration is valid; a
/// command that works on the database carries it.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// The loop, until SIGTERM or SIGINT.
    Run,
    /// One tick, then exit once its events are delivered.
    Once,
    /// Create the tables and their indexes if missing.
    Migrate {
        /// Where they are created.
        database: Database,
    },
    /// Delete the events recorded longer ago than this.
    PruneEvents {
        /// Where the events are.
        database: Database,
        /// The age beyond which an event goes.
        older_than: Duration,
    },
    /// Send one test message through every sink.
    NotifyTest,
    /// Add, list or end silences (in the state directory, or the database).
    Silence(SilenceCommand),
    /// One look at every game now, published nowhere.
    Status {
        /// One JSON document rather than a table.
        json: bool,
    },
    /// The incidents' timeline.
    History {
        /// One game only.
        game: Option<String>,
        /// How far back.
        since: Duration,
        /// One JSON document rather than a table.
        json: bool,
    },
}

/// The command as asked for, before it is known to have what it needs:
/// those that work on the database wait for it, every other is ready.
// Made once per process: a boxed command would save nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Asked {
    Migrate,
    PruneEvents { older_than: Duration },
    Ready(Command),
}

/// How far back `history` goes when not told.
const HISTORY_SINCE: Duration = Duration::from_secs(24 * 3600);

/// The command named on the command line (`None`: `run`), with the age
/// `prune-events` needs; `--older-than` set for any other command is
/// refused as a flag, or ignored (and said in `ignored`) from the
/// environment.
pub(super) fn asked(
    command: Option<&str>,
    inputs: &mut Inputs,
    ignored: &mut Vec<String>,
) -> Result<Asked, ConfigError> {
    let command_name = command;
    let command = match command {
        None | Some("run") => Asked::Ready(Command::Run),
        Some("once") => Asked::Ready(Command::Once),
        Some("migrate") => Asked::Migrate,
        Some("prune-events") => Asked::PruneEvents {
            older_than: older_than(inputs)?,
        },
        Some("notify-test") => Asked::Ready(Command::NotifyTest),
        Some("silence") => Asked::Ready(Command::Silence(silence_command(inputs.command_args())?)),
        Some("status") => Asked::Ready(Command::Status {
            json: args::given(inputs.command_args(), "--json"),
        }),
        Some("history") => Asked::Ready(Command::History {
            game: history_game(inputs)?,
            since: match args::value(inputs.command_args(), "--since") {
                None => HISTORY_SINCE,
                Some(v) => age(v, "--since")?,
            },
            json: args::given(inputs.command_args(), "--json"),
        }),
        Some(other) => {
            // A URL given first (`rtinspect https://…`) is not shown whole.
            let other = super::mask::shown(other);
            return Err(ConfigError::new(format!(
                "unknown command {other:?}; expected run, once, migrate, prune-events, \
                 notify-test, silence, status or history"
            )));
        }
    };
    if !matches!(command, Asked::Ready(Command::Silence(_))) {
        args::check(command_name.unwrap_or("run"), inputs.command_args())?;
    }
    if let (false, Some(given)) = (
        matches!(command, Asked::PruneEvents { .. }),
        inputs.given(Opt::OlderThan),
    ) {
        // The variable may sit in the defaults file every command reads;
        // the flag on another command is a mistake.
        if matches!(given.source, Source::Flag(_)) {
            return Err(ConfigError::new(format!(
                "{} has no effect: only prune-events reads it; remove it",
                given.described()
            )));
        }
        ignored.push(format!(
            "{} is ignored: only prune-events reads it",
            given.described()
        ));
        inputs.ignore(Opt::OlderThan);
    }
    Ok(command)
}

/// `--older-than`: a duration, in days (`30d`) too; greater than zero, at
/// most 10000 days (27 years: the cutoff stays after 1970).
fn older_than(inputs: &Inputs) -> Result<Duration, ConfigError> {
    let Some(given) = inputs.given(Opt::OlderThan) else {
        return Err(ConfigError::new(
            "prune-events needs --older-than (or RTINSPECT_PRUNE_OLDER_THAN), e.g. --older-than 30d",
        ));
    };
    let age = parse_duration(&given.value, Units::UpToDays)
        .ok_or_else(|| given.invalid("expected a duration such as 12h or 30d"))?;
    check_age(age).map_err(|why| given.invalid(why))
}

/// Greater than zero, at most 10000 days (27 years: the cutoff stays after 1970).
fn check_age(age: Duration) -> Result<Duration, &'static str> {
    if age.is_zero() {
        return Err("must be greater than zero");
    }
    if age > Duration::from_secs(10_000 * 86_400) {
        return Err("must be at most 10000d");
    }
    Ok(age)
}

/// A command argument's age (`--since 24h`).
fn age(value: &str, flag: &str) -> Result<Duration, ConfigError> {
    let invalid = |why: &str| ConfigError::new(format!("invalid {flag} {value:?}: {why}"));
    let age = parse_duration(value, Units::UpToDays)
        .ok_or_else(|| invalid("expected a duration such as 12h or 30d"))?;
    check_age(age).map_err(invalid)
}

/// `history --game G`: a game id as records have them (not empty, at most
/// 256 bytes).
fn history_game(inputs: &Inputs) -> Result<Option<String>, ConfigError> {
    let Some(game) = args::value(inputs.command_args(), "--game") else {
        return Ok(None);
    };
    if game.is_empty() || game.len() > 256 {
        return Err(ConfigError::new(format!(
            "invalid --game {:?}: expected a game id of 1 to 256 bytes",
            game.get(..game.floor_char_boundary(200))
                .unwrap_or_default()
        )));
    }
    Ok(Some(game.to_owned()))
}

/// The command, with the database it works on: `migrate` and
/// `prune-events` need one.
pub(super) fn with_database(
    asked: Asked,
    database: Option<&Database>,
) -> Result<Command, ConfigError> {
    let needs_database = |name: &str| {
        database.cloned().ok_or_else(|| {
            ConfigError::new(format!(
                "{name} needs a database: set --database-url or RTINSPECT_DATABASE_URL"
            ))
        })
    };
    Ok(match asked {
        Asked::Migrate => Command::Migrate {
            database: needs_database("migrate")?,
        },
        Asked::PruneEvents { older_than } => Command::PruneEvents {
            database: needs_database("prune-events")?,
            older_than,
        },
        Asked::Ready(command) => command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{Case, config, err, refused};

    #[test]
    fn the_prune_age_in_the_environment_is_ignored_by_every_other_command() {
        let age = ("RTINSPECT_PRUNE_OLDER_THAN", "30d");
        for command in ["run", "once", "notify-test"] {
            // Label mode, where no command reads a database.
            let c = config(&[command], &[age]);
            assert_eq!(
                c.ignored,
                ["RTINSPECT_PRUNE_OLDER_THAN \"30d\" is ignored: only prune-events reads it"],
                "{command}"
            );
            let c = config(&[command], &[age, ("RTINSPECT_DATABASE_URL", "host=db")]);
            assert_eq!(c.ignored.len(), 1, "{command}");
        }
        let c = config(&["migrate"], &[age, ("RTINSPECT_DATABASE_URL", "host=db")]);
        assert_eq!(c.ignored.len(), 1);
        // A bad value is no matter where it is ignored.
        let c = config(&["run"], &[("RTINSPECT_PRUNE_OLDER_THAN", "soon")]);
        assert_eq!(c.ignored.len(), 1);
        // The flag on another command is a mistake, said as before.
        assert!(
            err(&["run", "--older-than", "30d"], &[])
                .starts_with("--older-than \"30d\" has no effect: only prune-events reads it")
        );
    }

    #[test]
    fn prune_events_takes_an_age_in_days_or_as_an_interval() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let age = |args: &[&str], env: &[(&str, &str)]| match config(args, env).command {
            Command::PruneEvents { older_than, .. } => older_than,
            other => panic!("{other:?}"),
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            age(&["prune-events", "--older-than", "30d"], &[db]),
            day * 30
        );
        assert_eq!(age(&["prune-events", "--older-than=12h"], &[db]), day / 2);
        assert_eq!(
            age(
                &["prune-events"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "90m")]
            ),
            Duration::from_secs(5400)
        );
        assert_eq!(
            age(
                &["prune-events", "--older-than", "1d"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "90m")]
            ),
            day
        );
        assert_eq!(
            age(&["prune-events", "--older-than", "10000d"], &[db]),
            day * 10_000
        );
        // The variable may live in the defaults file the daemon reads too.
        let c = config(&["run"], &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "30d")]);
        assert!(matches!(c.command, Command::Run), "{:?}", c.command);
    }

    #[test]
    fn bad_prune_ages_are_refused_by_name() {
        let db = ("RTINSPECT_DATABASE_URL", "host=db");
        let table: &[Case] = &[
            (&["prune-events"], &[db], "prune-events needs --older-than"),
            (
                &["prune-events", "--older-than", "0d"],
                &[db],
                "invalid --older-than \"0d\": must be greater than zero",
            ),
            (
                &["prune-events", "--older-than", "10001d"],
                &[db],
                "must be at most 10000d",
            ),
            (
                &["prune-events", "--older-than", "99999999999999999999d"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events", "--older-than", "d"],
                &[db],
                "expected a duration such as 12h or 30d",
            ),
            (
                &["prune-events", "--older-than", "-3d"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events", "--older-than", "1w"],
                &[db],
                "invalid --older-than",
            ),
            (
                &["prune-events"],
                &[db, ("RTINSPECT_PRUNE_OLDER_THAN", "soon")],
                "invalid RTINSPECT_PRUNE_OLDER_THAN \"soon\"",
            ),
            (
                &["run", "--older-than", "30d"],
                &[db],
                "--older-than \"30d\" has no effect: only prune-events reads it",
            ),
            (
                &["prune-events", "--older-than", "30d"],
                &[],
                "--older-than \"30d\" has no effect: label mode uses no database",
            ),
        ];
        refused(table);
    }

    #[test]
    fn status_takes_json_and_no_other_command_does() {
        let json = |args: &[&str]| match config(args, &[]).command {
            Command::Status { json } => json,
            other => panic!("{other:?}"),
        };
        assert!(!json(&["status"]));
        assert!(json(&["status", "--json"]));
        assert!(json(&["--json", "status"]), "before the command too");
        let table: &[Case] = &[
            (
                &["run", "--json"],
                &[],
                "--json has no effect on run: only status and history read it; remove it",
            ),
            (
                &["--json"],
                &[],
                "--json has no effect on run: only status and history read it",
            ),
            (
                &["status", "--json=yes"],
                &[],
                "option --json takes no value",
            ),
            (
                &["status", "--json", "--json"],
                &[],
                "--json is given twice",
            ),
            // It is no option: its variable is nothing.
            (&["status", "--jsonx"], &[], "unknown option \"--jsonx\""),
            (
                &["status", "--for", "5m"],
                &[],
                "--for has no effect on status: only silence reads it",
            ),
            (&["status", "list"], &[], "unexpected argument \"list\""),
        ];
        refused(table);
    }

    #[test]
    fn history_takes_a_game_an_age_and_json() {
        let history = |args: &[&str]| match config(args, &[]).command {
            Command::History { game, since, json } => (game, since.as_secs(), json),
            other => panic!("{other:?}"),
        };
        assert_eq!(history(&["history"]), (None, 86_400, false));
        assert_eq!(
            history(&["history", "--game", "g-1", "--since=90m", "--json"]),
            (Some("g-1".into()), 5400, true)
        );
        assert_eq!(history(&["history", "--since", "7d"]).1, 7 * 86_400);
        let long = "g".repeat(257);
        let table: &[Case] = &[
            (
                &["history", "--since", "soon"],
                &[],
                "invalid --since \"soon\"",
            ),
            (
                &["history", "--since", "0s"],
                &[],
                "must be greater than zero",
            ),
            (&["history", "--game", ""], &[], "invalid --game \"\""),
            (
                &["history", "--game", &long],
                &[],
                "expected a game id of 1 to 256 bytes",
            ),
            (&["history", "--game"], &[], "option --game needs a value"),
            (
                &["status", "--game", "g"],
                &[],
                "--game has no effect on status: only history and silence read it",
            ),
            (
                &["once", "--since", "1h"],
                &[],
                "--since has no effect on once: only history reads it",
            ),
        ];
        refused(table);
    }

    #[test]
    fn status_reads_the_service_settings_beneath_the_environment_and_run_does_not() {
        let file = std::env::temp_dir().join(format!("rtinspect-defaults-{}", std::process::id()));
        std::fs::write(
            &file,
            "RTINSPECT_LABEL=from.file\nRTINSPECT_INTERVAL='7s'\n#RTINSPECT_EVENTS=off\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let var = ("RTINSPECT_DEFAULTS_FILE", path);
        let c = config(&["status"], &[var]);
        assert_eq!((c.label.as_str(), c.interval.as_secs()), ("from.file", 7));
        assert!(c.events);
        let c = config(&["status"], &[var, ("RTINSPECT_LABEL", "from.env")]);
        assert_eq!(c.label, "from.env", "the environment wins");
        let c = config(&["status", "--label", "from.flag"], &[var]);
        assert_eq!(c.label, "from.flag");
        let c = config(&["run"], &[var]);
        assert_eq!(
            c.label, "rtinspect.game-id",
            "the service reads its own environment"
        );
        let c = config(&["status"], &[("RTINSPECT_DEFAULTS_FILE", "")]);
        assert_eq!(c.label, "rtinspect.game-id", "empty: none read");
        // A bad value in the file is named as its variable.
        std::fs::write(&file, "RTINSPECT_INTERVAL=soon\n").unwrap();
        assert!(err(&["status"], &[var]).starts_with("invalid RTINSPECT_INTERVAL \"soon\""));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn the_database_commands_are_refused_without_a_database_after_the_options() {
        let table: &[Case] = &[
            (
                &["migrate"],
                &[],
                "migrate needs a database: set --database-url or RTINSPECT_DATABASE_URL",
            ),
            // A bad value, then an option with no effect, come first.
            (&["migrate", "--interval", "0s"], &[], "invalid --interval"),
            (
                &["migrate", "--records-table", "rt"],
                &[],
                "--records-table \"rt\" has no effect: label mode uses no database",
            ),
            (
                &["migrate", "--sink", "postgres"],
                &[],
                "the postgres sink needs --database-url",
            ),
        ];
        refused(table);
        let db = ("RTINSPECT_DATABASE_URL", "host=db dbname=rt");
        let c = config(&["prune-events", "--older-than", "30d"], &[db]);
        let Command::PruneEvents { database, .. } = &c.command else {
            panic!("{:?}", c.command);
        };
        assert_eq!(database.config.get_dbname(), Some("rt"));
    }
}
