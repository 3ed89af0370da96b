//! Stage one of the configuration: the command line and the environment as
//! given, each value checked to be UTF-8 and tagged with where it came from.
//!
//! Nothing is validated here beyond that; a problem on the command line is
//! kept rather than returned at once, so that `--help` and `--version` win over
//! any garbage next to them, and the environment is not read for them at all.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use super::args::CommandArgs;
use super::error::ConfigError;
use super::mask::{masked, may_hold_a_secret, shown};
use super::options::Opt;
use super::row::OptionDefault;

/// systemd's `StateDirectory=` sets this; it is the default of `--state-dir`.
const STATE_DIRECTORY: &str = "STATE_DIRECTORY";

/// The plural spelling of `RTINSPECT_SINK`, for a list of sinks.
const SINKS: &str = "RTINSPECT_SINKS";

/// Where a value came from, as a message names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The option's flag.
    Flag(Opt),
    /// The option's environment variable.
    Env(Opt),
    /// The option's default in the table.
    Default(Opt),
    /// systemd's `STATE_DIRECTORY`, the fallback of `--state-dir`.
    StateDirectory,
    /// `RTINSPECT_SINKS`, the other name of `RTINSPECT_SINK`.
    Sinks,
}

impl Source {
    /// The option this value is for.
    pub(super) fn opt(self) -> Opt {
        match self {
            Source::Flag(o) | Source::Env(o) | Source::Default(o) => o,
            Source::StateDirectory => Opt::StateDir,
            Source::Sinks => Opt::Sink,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(o) => f.write_str(o.spec().flag),
            Source::Env(o) => f.write_str(o.spec().env),
            Source::Default(o) => write!(f, "the default of {}", o.spec().flag),
            Source::StateDirectory => f.write_str(STATE_DIRECTORY),
            Source::Sinks => f.write_str(SINKS),
        }
    }
}

/// One value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Given {
    pub(super) source: Source,
    pub(super) value: String,
}

impl Given {
    /// The source and, unless the option may hold a secret, the value:
    /// `--interval "0s"`, or just `--database-url`.
    pub(super) fn described(&self) -> String {
        if self.source.opt().spec().secret {
            self.source.to_string()
        } else if may_hold_a_secret(&self.value) {
            // A URL given where a path or a word was expected: its token
            // is not shown.
            format!("{} {:?}", self.source, masked(&self.value))
        } else if self.value.len() > SHOWN_VALUE_BYTES {
            // A value of megabytes makes a message nobody reads whole.
            let end = self.value.floor_char_boundary(SHOWN_VALUE_BYTES);
            format!(
                "{} {:?}… ({} bytes)",
                self.source,
                &self.value[..end],
                self.value.len()
            )
        } else {
            format!("{} {:?}", self.source, self.value)
        }
    }

    /// `invalid <source> <value>: <why>`.
    pub(super) fn invalid(&self, why: &str) -> ConfigError {
        ConfigError::new(format!("invalid {}: {why}", self.described()))
    }
}

/// How much of a bad value a message shows.
const SHOWN_VALUE_BYTES: usize = 200;

/// A value that is not UTF-8, named, and shown lossily unless it may hold a secret.
fn not_utf8(source: Source, value: &OsStr) -> ConfigError {
    if source.opt().spec().secret {
        ConfigError::new(format!(
            "invalid {source}: not valid UTF-8 (the value is not shown: it may hold a password)"
        ))
    } else {
        ConfigError::new(format!(
            "invalid {source} {:?}: not valid UTF-8",
            value.to_string_lossy()
        ))
    }
}

/// How the values of an option given more than once are joined, as its
/// variable would hold them: `--sink` once for each sink (`,`), `--notify`
/// once for each URL (a space); `None` for an option given once, whose last
/// value counts.
fn joined_by(opt: Opt) -> Option<char> {
    match opt {
        Opt::Sink => Some(','),
        Opt::Notify => Some(' '),
        _ => None,
    }
}

/// The command line as given, before the environment is read.
#[derive(Debug, Default)]
pub(crate) struct RawArgs {
    command: Option<String>,
    flags: HashMap<Opt, String>,
    /// The words after the command (`silence add`, `silence end ID`) and
    /// the command flags with their values, in order.
    command_args: CommandArgs,
    help: bool,
    version: bool,
    /// The first problem, reported unless help or the version was asked for.
    error: Option<ConfigError>,
}

impl RawArgs {
    /// Reads the command line (without the program name). It never fails: a
    /// problem is kept and reported by `Config::from_raw` unless help or the
    /// version was asked for.
    pub(crate) fn parse<A: Into<OsString>>(args: impl IntoIterator<Item = A>) -> RawArgs {
        let mut raw = RawArgs::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let bytes = arg.as_bytes();
            match bytes {
                b"-h" | b"--help" => raw.help = true,
                b"-V" | b"--version" => raw.version = true,
                _ if bytes.starts_with(b"--") => {
                    let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
                        Some(i) => (
                            &bytes[..i],
                            Some(OsStr::from_bytes(&bytes[i + 1..]).to_owned()),
                        ),
                        None => (bytes, None),
                    };
                    let name = String::from_utf8_lossy(name);
                    if let Some(flag) = super::args::command_flag(&name) {
                        raw.command_flag(flag, inline, &mut args);
                        continue;
                    }
                    let Some(opt) = Opt::from_flag(&name) else {
                        raw.fail(format!("unknown option {name:?}; see --help"));
                        continue;
                    };
                    let Some(value) = inline.or_else(|| args.next()) else {
                        raw.fail(format!("option {name} needs a value"));
                        continue;
                    };
                    match value.into_string() {
                        Ok(value) => match joined_by(opt) {
                            Some(sep) => {
                                raw.flags
                                    .entry(opt)
                                    .and_modify(|v| {
                                        v.push(sep);
                                        v.push_str(&value);
                                    })
                                    .or_insert(value);
                            }
                            None => {
                                raw.flags.insert(opt, value);
                            }
                        },
                        Err(value) => raw.fail_with(not_utf8(Source::Flag(opt), &value)),
                    }
                }
                _ if bytes.starts_with(b"-") && bytes.len() > 1 => {
                    raw.fail(format!(
                        "unknown option {:?}; see --help",
                        arg.to_string_lossy()
                    ));
                }
                _ => {
                    // A word that is not UTF-8 matches no command: its lossy
                    // spelling is refused below with the others.
                    let word = arg.to_string_lossy().into_owned();
                    match &raw.command {
                        // `silence add`, `silence end ID`: checked with the
                        // command's flags.
                        Some(first) if first == "silence" => match arg.into_string() {
                            Ok(word) => raw.command_args.words.push(word),
                            Err(_) => {
                                raw.fail(format!("invalid argument {word:?}: not valid UTF-8"))
                            }
                        },
                        Some(first) => raw.fail(format!(
                            "unexpected argument {:?} after command {first:?}",
                            shown(&word)
                        )),
                        None => raw.command = Some(word),
                    }
                }
            }
        }
        raw
    }

    /// The command named, if any (before it is checked).
    pub(super) fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// A command's own flag (see `args.rs`), alone or with its value.
    fn command_flag(
        &mut self,
        flag: &'static super::args::CommandFlag,
        inline: Option<OsString>,
        args: &mut impl Iterator<Item = OsString>,
    ) {
        let (takes_value, flag) = (flag.takes_value, flag.name);
        if !takes_value {
            match inline {
                Some(_) => self.fail(format!("option {flag} takes no value")),
                None => self.command_args.flags.push((flag, None)),
            }
            return;
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            self.fail(format!("option {flag} needs a value"));
            return;
        };
        match value.into_string() {
            Ok(value) => self.command_args.flags.push((flag, Some(value))),
            Err(value) => self.fail(format!(
                "invalid {flag} {:?}: not valid UTF-8",
                value.to_string_lossy()
            )),
        }
    }

    fn fail(&mut self, message: String) {
        self.fail_with(ConfigError::new(message));
    }

    fn fail_with(&mut self, error: ConfigError) {
        self.error.get_or_insert(error);
    }

    /// Help or the version if asked for (nothing else is looked at then), else
    /// the first problem of the command line, else the command and every option
    /// with its value from the flag or, when absent, from the environment.
    pub(super) fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Resolved, ConfigError> {
        if self.help || self.command.as_deref() == Some("help") {
            return Ok(Resolved::Help);
        }
        if self.version {
            return Ok(Resolved::Version);
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut given = HashMap::new();
        for spec in super::options::OPTIONS {
            let value = match self.flags.get(&spec.key) {
                Some(v) => Given {
                    source: Source::Flag(spec.key),
                    value: v.clone(),
                },
                None => match env_value(env, spec.env, Source::Env(spec.key))? {
                    Some(v) if spec.empty_env_is_value || !v.value.is_empty() => v,
                    _ => continue,
                },
            };
            given.insert(spec.key, value);
        }
        if let Some(sinks) = env_value(env, SINKS, Source::Sinks)?.filter(|v| !v.value.is_empty()) {
            match given.get(&Opt::Sink) {
                Some(Given {
                    source: Source::Env(_),
                    ..
                }) => {
                    return Err(ConfigError::new(format!(
                        "{} and {SINKS} are both set; set one",
                        Opt::Sink.spec().env
                    )));
                }
                Some(_) => {}
                None => {
                    given.insert(Opt::Sink, sinks);
                }
            }
        }
        let state_directory = if given.contains_key(&Opt::StateDir) {
            None
        } else {
            env_value(env, STATE_DIRECTORY, Source::StateDirectory)?
        };
        Ok(Resolved::Command {
            command: self.command,
            inputs: Inputs {
                given,
                state_directory,
                command_args: self.command_args,
            },
        })
    }
}

/// The environment variable `name`, which must be UTF-8 when set.
fn env_value(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
    source: Source,
) -> Result<Option<Given>, ConfigError> {
    match env(name) {
        None => Ok(None),
        Some(v) => match v.into_string() {
            Ok(value) => Ok(Some(Given { source, value })),
            Err(v) => Err(not_utf8(source, &v)),
        },
    }
}

/// What the command line asks for, the environment read.
#[derive(Debug)]
pub(super) enum Resolved {
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
    /// Validate the inputs for this command (`None`: the default).
    Command {
        command: Option<String>,
        inputs: Inputs,
    },
}

/// Every option's value as given by flag or environment (an empty variable
/// already dropped where it counts as unset).
#[derive(Debug)]
pub(super) struct Inputs {
    given: HashMap<Opt, Given>,
    state_directory: Option<Given>,
    command_args: CommandArgs,
}

impl Inputs {
    /// Forgets the value of `opt`: it is ignored, and nothing after reads it.
    pub(super) fn ignore(&mut self, opt: Opt) {
        self.given.remove(&opt);
    }

    /// The value an operator set, by flag or environment.
    pub(super) fn given(&self, opt: Opt) -> Option<&Given> {
        self.given.get(&opt)
    }

    /// The value set, else the table's default value.
    pub(super) fn with_default(&self, opt: Opt) -> Result<Given, ConfigError> {
        if let Some(given) = self.given(opt) {
            return Ok(given.clone());
        }
        match opt.spec().default {
            OptionDefault::Value(value) => Ok(Given {
                source: Source::Default(opt),
                value: value.to_owned(),
            }),
            // Only a wrong table gets here, and its tests catch that.
            OptionDefault::Unset(_) => Err(ConfigError::new(format!(
                "{} has no default value",
                opt.spec().flag
            ))),
        }
    }

    /// systemd's `STATE_DIRECTORY`, read only when `--state-dir` is not set.
    pub(super) fn state_directory(&self) -> Option<&Given> {
        self.state_directory.as_ref()
    }

    /// The words and flags of a command of its own.
    pub(super) fn command_args(&self) -> &CommandArgs {
        &self.command_args
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn os(bytes: &[u8]) -> OsString {
        OsString::from_vec(bytes.to_vec())
    }

    fn resolve(args: Vec<OsString>, env: &[(&str, OsString)]) -> Result<Resolved, ConfigError> {
        RawArgs::parse(args).resolve(&|k| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        })
    }

    fn message(args: Vec<OsString>, env: &[(&str, OsString)]) -> String {
        match resolve(args, env) {
            Err(e) => e.message,
            Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }

    #[test]
    fn non_utf8_values_name_their_flag_or_variable() {
        assert_eq!(
            message(vec![os(b"--label"), os(b"a\xffb")], &[]),
            "invalid --label \"a\u{fffd}b\": not valid UTF-8"
        );
        assert_eq!(
            message(vec![os(b"--label=\xff")], &[]),
            "invalid --label \"\u{fffd}\": not valid UTF-8"
        );
        assert_eq!(
            message(vec![], &[("RTINSPECT_INTERVAL", os(b"1\xffs"))]),
            "invalid RTINSPECT_INTERVAL \"1\u{fffd}s\": not valid UTF-8"
        );
        assert_eq!(
            message(vec![], &[("STATE_DIRECTORY", os(b"/var/\xff"))]),
            "invalid STATE_DIRECTORY \"/var/\u{fffd}\": not valid UTF-8"
        );
        assert!(message(vec![os(b"--lab\xffel"), os(b"x")], &[]).starts_with("unknown option"));
    }

    #[test]
    fn a_secret_value_is_never_shown() {
        let m = message(
            vec![os(b"--database-url"), os(b"postgres://u:hunter2@h/\xff")],
            &[],
        );
        assert!(
            m.starts_with("invalid --database-url: not valid UTF-8"),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
        let m = message(vec![], &[("RTINSPECT_DATABASE_URL", os(b"hunter2\xff"))]);
        assert!(m.starts_with("invalid RTINSPECT_DATABASE_URL:"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn a_long_value_is_shown_cut_on_a_character_boundary() {
        // (value, bytes shown)
        let table: &[(String, usize)] = &[
            ("a".repeat(200), 200),
            ("a".repeat(201), 200),
            ("é".repeat(150), 200),
            (format!("a{}", "é".repeat(150)), 199),
            (format!("a{}", "€".repeat(100)), 199),
            (format!("aa{}", "€".repeat(100)), 200),
            (format!("a{}", "😀".repeat(60)), 197),
        ];
        for (value, shown) in table {
            let given = Given {
                source: Source::Flag(Opt::Label),
                value: value.clone(),
            };
            let expected = if value.len() > SHOWN_VALUE_BYTES {
                format!("--label {:?}… ({} bytes)", &value[..*shown], value.len())
            } else {
                format!("--label {value:?}")
            };
            assert_eq!(given.described(), expected, "{value:?}");
        }
    }

    #[test]
    fn help_and_version_win_over_garbage_and_skip_the_environment() {
        let garbage = [
            vec![os(b"--help"), os(b"--bogus")],
            vec![os(b"--label"), os(b"\xff"), os(b"-h")],
            vec![os(b"\xff"), os(b"extra"), os(b"--help")],
            vec![os(b"help"), os(b"--interval")],
        ];
        for args in garbage {
            let r = resolve(args.clone(), &[("RTINSPECT_LABEL", os(b"\xff"))]);
            assert!(matches!(r, Ok(Resolved::Help)), "{args:?}: {r:?}");
        }
        let r = resolve(
            vec![os(b"-V"), os(b"--interval=\xff")],
            &[("DOCKER_HOST", os(b"\xff"))],
        );
        assert!(matches!(r, Ok(Resolved::Version)), "{r:?}");
    }

    #[test]
    fn flag_wins_and_empty_variables_count_as_unset() {
        let Ok(Resolved::Command { inputs, .. }) = resolve(
            vec![os(b"--interval"), os(b"2m")],
            &[
                ("RTINSPECT_INTERVAL", os(b"\xff")),
                ("RTINSPECT_LABEL", os(b"")),
                ("RTINSPECT_NOTIFY_CHANNEL", os(b"")),
            ],
        ) else {
            panic!("expected a command");
        };
        let interval = inputs.given(Opt::Interval).map(|g| g.value.as_str());
        assert_eq!(interval, Some("2m"));
        assert_eq!(inputs.given(Opt::Label), None);
        assert_eq!(
            inputs.with_default(Opt::Label).map(|g| g.source),
            Ok(Source::Default(Opt::Label))
        );
        let channel = inputs.given(Opt::NotifyChannel).map(|g| g.source);
        assert_eq!(channel, Some(Source::Env(Opt::NotifyChannel)));
    }
}
