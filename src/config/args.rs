//! The flags `status` and `history` read of their own (`--json`, `--game
//! G`, `--since 24h`), beside those of `silence` (`silence.rs`). They are
//! not options: no environment variable sets them (a `RTINSPECT_JSON` in the
//! defaults file every command reads would change what a script parses),
//! and each belongs to the commands that name it; given to another command
//! it is refused, naming who reads it.

use super::error::ConfigError;
use super::raw::CommandArgs;

/// The flags `command` reads (`silence` checks its own).
fn read_by(command: &str) -> &'static [&'static str] {
    match command {
        "status" => &["--json"],
        "history" => &["--json", "--game", "--since"],
        _ => &[],
    }
}

/// The commands that read `flag`, as a refusal names them.
fn readers(flag: &str) -> &'static str {
    match flag {
        "--json" => "status and history",
        "--since" => "history",
        "--game" => "history and silence",
        _ => "silence",
    }
}

/// Refuses a flag `command` does not read, one given twice, and a word
/// after the command (only `silence` takes words).
pub(super) fn check(command: &str, args: &CommandArgs) -> Result<(), ConfigError> {
    let reads = read_by(command);
    for (i, (flag, _)) in args.flags.iter().enumerate() {
        if !reads.contains(flag) {
            let who = readers(flag);
            let verb = if who.contains(" and ") {
                "read"
            } else {
                "reads"
            };
            return Err(ConfigError::new(format!(
                "{flag} has no effect on {command}: only {who} {verb} it; remove it"
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
