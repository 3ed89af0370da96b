//! What a row of the table of options says besides its strings: its
//! default ([`OptionDefault`]), the mode that reads it ([`Mode`]) and the one
//! sink that reads it, if only one does ([`SinkKind`]).

/// Which sink events go to, as `--sink` names it (and the option table
/// says which sink reads an option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    /// One envelope per line on standard output.
    Stdout,
    /// A row in the events table plus `pg_notify`.
    Postgres,
    /// A `POST` to a webhook.
    Webhook,
}

impl SinkKind {
    /// The `--sink` value that names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::Postgres => "postgres",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// What an option is when it is given neither as a flag nor in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionDefault {
    /// This value, validated like a given one.
    Value(&'static str),
    /// No value; the text says what happens instead.
    Unset(&'static str),
}

impl OptionDefault {
    /// The default as `--help` and the README show it.
    pub fn shown(self) -> &'static str {
        match self {
            OptionDefault::Value(s) | OptionDefault::Unset(s) => s,
        }
    }
}

/// Which mode reads an option; setting it for the other mode is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both modes.
    Any,
    /// PostgreSQL mode only (a database URL is set).
    Postgres,
    /// Label mode only (no database URL).
    Label,
}

impl Mode {
    /// The line `--help` adds below the help text, if any.
    pub(super) fn note(self) -> Option<&'static str> {
        match self {
            Mode::Any => None,
            Mode::Postgres => Some("(PostgreSQL mode only)"),
            Mode::Label => Some("(label mode only)"),
        }
    }
}
