//! The flags commands read of their own: `status` and `history` (`--json`,
//! `--game G`, `--since 24h`) and `silence` (its actions check which of
//! theirs they take, `silence.rs`), in one table the command line is read
//! with. They are not options: no environment variable sets them (a
//! `RTINSPECT_JSON` in the defaults file every command reads would change
//! what a script parses), and each belongs to the commands that name it;
//! given to another command it is refused, naming who reads it.

use super::error::ConfigError;

/// What a command was given beside the options: its words (`silence`'s)
/// and its flags, in order.
#[derive(Debug, Default)]
pub(super) struct CommandArgs {
    /// The words after `silence`: the action, then an id.
    pub(super) words: Vec<String>,
    /// Each command flag, with its value (`--all` and `--json` have none).
    pub(super) flags: Vec<(&'static str, Option<String>)>,
}

/// A command's own flag.
#[derive(Debug)]
pub(super) struct CommandFlag {
    /// Its name, `--` included.
    pub(super) name: &'static str,
    /// Whether a value follows it (`--all` and `--json` take none).
    pub(super) takes_value: bool,
    /// The commands that read it, as a refusal names them (`silence`
    /// checks which of its actions do).
    read_by: &'static [&'static str],
}

/// The flags of commands of their own (`silence`, `status`, `history`):
/// they are a command's own input, not options, so they have no variable
/// and no row in the option table. The command line is read with this
/// table, and each flag is checked against the command given.
const COMMAND_FLAGS: [CommandFlag; 7] = [
    flag("--game", true, &["history", "silence"]),
    flag("--all", false, &["silence"]),
    flag("--for", true, &["silence"]),
    flag("--until", true, &["silence"]),
    flag("--comment", true, &["silence"]),
    flag("--json", false, &["status", "history"]),
    flag("--since", true, &["history"]),
];

const fn flag(
    name: &'static str,
    takes_value: bool,
    read_by: &'static [&'static str],
) -> CommandFlag {
    CommandFlag {
        name,
        takes_value,
        read_by,
    }
}

/// The command flag named `name` (`--` included), if it is one.
pub(super) fn command_flag(name: &str) -> Option<&'static CommandFlag> {
    COMMAND_FLAGS.iter().find(|f| f.name == name)
}

/// Refuses a flag `command` does not read, one given twice, and a word
/// after the command (only `silence` takes words).
pub(super) fn check(command: &str, args: &CommandArgs) -> Result<(), ConfigError> {
    for (i, (flag, _)) in args.flags.iter().enumerate() {
        let read_by = command_flag(flag).map_or(&[][..], |f| f.read_by);
        if !read_by.contains(&command) {
            let verb = if read_by.len() > 1 { "read" } else { "reads" };
            return Err(ConfigError::new(format!(
                "{flag} has no effect on {command}: only {} {verb} it; remove it",
                read_by.join(" and ")
            )));
        }
        if args.flags[..i].iter().any(|(f, _)| f == flag) {
            return Err(ConfigError::new(format!(
                "{flag} is given twice; give it once"
            )));
        }
    }
    Ok(())
}

/// Whether `flag` was given.
pub(super) fn given(args: &CommandArgs, flag: &str) -> bool {
    args.flags.iter().any(|(f, _)| *f == flag)
}

/// The value of `flag`, when given.
pub(super) fn value<'a>(args: &'a CommandArgs, flag: &str) -> Option<&'a str> {
    args.flags
        .iter()
        .find(|(f, _)| *f == flag)
        .and_then(|(_, v)| v.as_deref())
}
