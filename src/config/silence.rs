//! `rtinspect silence add|list|end`: its words and flags, checked as far
//! as they can be without the clock (whether `--until` is still to come is
//! the command's to say, when it runs: see `crate::silence::window`).

use super::args::CommandArgs;
use super::error::ConfigError;
use crate::silence::{self, Ends};

/// What `rtinspect silence` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SilenceCommand {
    /// `silence add`: a new silence, from now.
    Add {
        /// The games (`--game`, in order, each once), or `None` for `--all`.
        games: Option<Vec<String>>,
        /// `--for` or `--until`, as given.
        ends: Ends,
        /// `--comment`, or empty.
        comment: String,
    },
    /// `silence list`: the silences in force or to come.
    List,
    /// `silence end`: the silence of this id, or every one (`--all`: `None`).
    End {
        /// The silence's id, as `silence add` printed it.
        id: Option<String>,
    },
}

const ACTIONS: &str = "add, list or end";

/// The silence command that `args` spell, or why not, naming the input.
pub(super) fn silence_command(args: &CommandArgs) -> Result<SilenceCommand, ConfigError> {
    let mut words = args.words.iter();
    let Some(action) = words.next() else {
        return Err(ConfigError::new(format!(
            "silence needs an action: {ACTIONS} (e.g. rtinspect silence add --game g-42 --for 30m)"
        )));
    };
    let flags = |name: &'static str| flag_values(args, name);
    let allowed: &[&str] = match action.as_str() {
        "add" => &["--game", "--all", "--for", "--until", "--comment"],
        "list" => &[],
        "end" => &["--all"],
        other => {
            return Err(ConfigError::new(format!(
                "unknown silence action {other:?}; expected {ACTIONS}"
            )));
        }
    };
    if let Some((flag, _)) = args.flags.iter().find(|(f, _)| !allowed.contains(f)) {
        return Err(ConfigError::new(format!(
            "{flag} is not an option of `silence {action}`; see --help"
        )));
    }
    let once = |name: &'static str| -> Result<Option<String>, ConfigError> {
        let mut given = flags(name);
        let first = given.next().map(str::to_owned);
        match given.next() {
            Some(_) => Err(ConfigError::new(format!("{name} is given more than once"))),
            None => Ok(first),
        }
    };
    let all = flags("--all").count() > 0;
    match action.as_str() {
        "add" => {
            if let Some(extra) = words.next() {
                return Err(ConfigError::new(format!(
                    "unexpected argument {extra:?} after `silence add`"
                )));
            }
            let mut games: Vec<String> = Vec::new();
            for game in flags("--game") {
                silence::check_game(game).map_err(|e| ConfigError::new(e.message))?;
                if !games.iter().any(|g| g == game) {
                    games.push(game.to_owned());
                }
            }
            let games = match (games.is_empty(), all) {
                (false, false) => Some(games),
                (true, true) => None,
                (false, true) => {
                    return Err(ConfigError::new(
                        "silence add takes --game or --all, not both",
                    ));
                }
                (true, false) => {
                    return Err(ConfigError::new(
                        "silence add needs --game GAME (once per game) or --all",
                    ));
                }
            };
            let ends = match (once("--for")?, once("--until")?) {
                (Some(d), None) => Ends::For(d),
                (None, Some(t)) => Ends::Until(t),
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "silence add takes --for or --until, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::new(
                        "silence add needs --for DURATION (e.g. 30m) or --until TIME \
                         (RFC 3339, e.g. 2026-11-26T21:00:00Z)",
                    ));
                }
            };
            let comment = once("--comment")?.unwrap_or_default();
            silence::check_comment(&comment).map_err(|e| ConfigError::new(e.message))?;
            Ok(SilenceCommand::Add {
                games,
                ends,
                comment,
            })
        }
        "list" => match words.next() {
            Some(extra) => Err(ConfigError::new(format!(
                "unexpected argument {extra:?} after `silence list`"
            ))),
            None => Ok(SilenceCommand::List),
        },
        _ => {
            let id = words.next();
            if let Some(extra) = words.next() {
                return Err(ConfigError::new(format!(
                    "unexpected argument {extra:?} after `silence end {}`",
                    id.map_or("", String::as_str)
                )));
            }
            match (id, all) {
                (Some(id), false) => match silence::parse_id(id) {
                    Some(id) => Ok(SilenceCommand::End { id: Some(id) }),
                    None => Err(ConfigError::new(format!(
                        "invalid silence id {:?}: expected the UUID `silence add` printed \
                         (see `rtinspect silence list`)",
                        shown(id)
                    ))),
                },
                (None, true) => Ok(SilenceCommand::End { id: None }),
                (Some(_), true) => Err(ConfigError::new(
                    "silence end takes an ID or --all, not both",
                )),
                (None, false) => Err(ConfigError::new(
                    "silence end needs the silence's ID (see `rtinspect silence list`) or --all",
                )),
            }
        }
    }
}

/// The values of the silence flag `name`, in order.
fn flag_values<'a>(args: &'a CommandArgs, name: &'static str) -> impl Iterator<Item = &'a str> {
    args.flags
        .iter()
        .filter(move |(f, _)| *f == name)
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

/// A value as a message shows it: at most 100 bytes of it, quoted.
fn shown(value: &str) -> &str {
    crate::text::cut_at_char_boundary(value, 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;
    use crate::config::tests::{config, err};

    fn add(args: &[&str]) -> SilenceCommand {
        let mut all = vec!["silence", "add"];
        all.extend(args);
        match config(&all, &[]).command {
            Command::Silence(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_add_takes_games_or_all_and_an_end() {
        assert_eq!(
            add(&[
                "--game",
                "g-1",
                "--game=g-2",
                "--game",
                "g-1",
                "--for",
                "30m"
            ]),
            SilenceCommand::Add {
                games: Some(vec!["g-1".into(), "g-2".into()]),
                ends: Ends::For("30m".into()),
                comment: String::new(),
            }
        );
        assert_eq!(
            add(&[
                "--all",
                "--until",
                "2026-11-26T21:00:00Z",
                "--comment",
                "reboot"
            ]),
            SilenceCommand::Add {
                games: None,
                ends: Ends::Until("2026-11-26T21:00:00Z".into()),
                comment: "reboot".into(),
            }
        );
        // The options before the command too, as for every command.
        let c = config(&["--state-dir", "/tmp/x", "silence", "end", "--all"], &[]);
        assert!(matches!(
            c.command,
            Command::Silence(SilenceCommand::End { id: None })
        ));
        let c = config(
            &["silence", "end", "0193F000-0000-7000-8000-000000000001"],
            &[],
        );
        let Command::Silence(SilenceCommand::End { id: Some(id) }) = c.command else {
            panic!("{:?}", c.command);
        };
        assert_eq!(id, "0193f000-0000-7000-8000-000000000001");
        assert!(matches!(
            config(&["silence", "list"], &[]).command,
            Command::Silence(SilenceCommand::List)
        ));
    }

    #[test]
    fn bad_silence_input_is_refused_by_name() {
        let table: &[(&[&str], &str)] = &[
            (&["silence"], "silence needs an action: add, list or end"),
            (&["silence", "mute"], "unknown silence action \"mute\""),
            (&["silence", "add", "--for", "5m"], "needs --game GAME"),
            (
                &["silence", "add", "--game", "g", "--all", "--for", "5m"],
                "--game or --all, not both",
            ),
            (&["silence", "add", "--game", "g"], "needs --for DURATION"),
            (
                &[
                    "silence", "add", "--game", "g", "--for", "5m", "--until", "x",
                ],
                "--for or --until, not both",
            ),
            (
                &[
                    "silence", "add", "--game", "g", "--for", "5m", "--for", "6m",
                ],
                "--for is given more than once",
            ),
            (
                &["silence", "add", "--game", "", "--for", "5m"],
                "invalid --game \"\"",
            ),
            (
                &[
                    "silence",
                    "add",
                    "--game",
                    "g",
                    "--for",
                    "5m",
                    "--comment",
                    "a\nb",
                ],
                "invalid --comment",
            ),
            (&["silence", "add", "--game"], "option --game needs a value"),
            (
                &["silence", "add", "--all=yes"],
                "option --all takes no value",
            ),
            (
                &["silence", "add", "extra"],
                "unexpected argument \"extra\"",
            ),
            (
                &["silence", "list", "--all"],
                "--all is not an option of `silence list`",
            ),
            (&["silence", "end"], "needs the silence's ID"),
            (&["silence", "end", "nope"], "invalid silence id \"nope\""),
            (
                &[
                    "silence",
                    "end",
                    "0193f000-0000-7000-8000-000000000001",
                    "--all",
                ],
                "an ID or --all, not both",
            ),
            (
                &["silence", "end", "--for", "5m"],
                "--for is not an option of `silence end`",
            ),
            (
                &["run", "--game", "g"],
                "--game has no effect on run: only history and silence read it",
            ),
            (
                &["once", "extra"],
                "unexpected argument \"extra\" after command \"once\"",
            ),
        ];
        for (args, want) in table {
            let got = err(args, &[]);
            assert!(got.contains(want), "{args:?}: got {got:?}, want {want:?}");
        }
    }
}
