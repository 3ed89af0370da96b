//! Configuration: flags and environment variables in, one validated [`Config`] out.
//!
//! Two stages, as in ripgrep: [`RawArgs`] holds the strings as given (a flag
//! wins over its environment variable), then [`Config::from_raw`] checks every
//! value and builds ready-to-use ones. Every error names the option and the bad
//! value, except the database URL, whose value may hold a password.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::postgres::tls::{self, SslMode, split_tls_params};

/// What the process was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The loop, until SIGTERM or SIGINT.
    Run,
    /// One tick, then exit once its events are delivered.
    Once,
    /// Create the tables and the index if missing.
    Migrate,
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
}

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// One envelope per line on standard output.
    Stdout,
    /// A row in the events table plus `pg_notify`.
    Postgres,
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` text.
    Text,
    /// One JSON object per line.
    Json,
}

/// A PostgreSQL table name, validated, optionally schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    table: String,
}

impl TableName {
    /// Parses `table` or `schema.table`; each part an SQL identifier of at most
    /// 63 bytes made of letters, digits, `_` and `$`, not starting with a digit or `$`.
    pub fn parse(s: &str) -> Option<TableName> {
        let (schema, table) = match s.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, s),
        };
        if !schema.is_none_or(is_identifier) || !is_identifier(table) {
            return None;
        }
        Some(TableName {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    /// The name quoted for SQL: `"schema"."table"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    /// The unqualified table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// Whether `s` is a plain SQL identifier that needs no escaping inside quotes.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    !s.is_empty()
        && s.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The database connection settings; the URL itself is not kept.
#[derive(Clone)]
pub struct Database {
    /// Parsed connection settings.
    pub config: postgres::Config,
    /// libpq's `sslmode`, from the URL (default `prefer`).
    pub ssl_mode: SslMode,
    /// The TLS connector for that mode, its CA certificates loaded.
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres::Config redacts the password in its Debug output too.
        f.debug_struct("Database")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

/// The whole validated configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The command.
    pub command: Command,
    /// Path of dockerd's Unix socket.
    pub docker_socket: PathBuf,
    /// The database, in PostgreSQL mode; `None` is label mode.
    pub database: Option<Database>,
    /// Time between ticks.
    pub interval: Duration,
    /// Bound on each Docker request.
    pub docker_timeout: Duration,
    /// The runtime records table.
    pub records_table: TableName,
    /// The health events table.
    pub events_table: TableName,
    /// The NOTIFY channel; `None` when NOTIFY is disabled.
    pub notify_channel: Option<String>,
    /// Where events go.
    pub sink: SinkKind,
    /// The Docker label that marks records in label mode.
    pub label: String,
    /// Address of the metrics listener, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the spool and saved baselines live, when enabled.
    pub state_dir: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
}

/// A bad command line or environment: exit status 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What to print after `rtinspect: `.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One option: its flag, its environment variable, its default.
struct OptionSpec {
    flag: &'static str,
    env: &'static str,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        flag: "--docker-host",
        env: "DOCKER_HOST",
    },
    OptionSpec {
        flag: "--database-url",
        env: "RTINSPECT_DATABASE_URL",
    },
    OptionSpec {
        flag: "--database-ca-file",
        env: "RTINSPECT_DATABASE_CA_FILE",
    },
    OptionSpec {
        flag: "--interval",
        env: "RTINSPECT_INTERVAL",
    },
    OptionSpec {
        flag: "--docker-timeout",
        env: "RTINSPECT_DOCKER_TIMEOUT",
    },
    OptionSpec {
        flag: "--records-table",
        env: "RTINSPECT_RECORDS_TABLE",
    },
    OptionSpec {
        flag: "--events-table",
        env: "RTINSPECT_EVENTS_TABLE",
    },
    OptionSpec {
        flag: "--notify-channel",
        env: "RTINSPECT_NOTIFY_CHANNEL",
    },
    OptionSpec {
        flag: "--sink",
        env: "RTINSPECT_SINK",
    },
    OptionSpec {
        flag: "--label",
        env: "RTINSPECT_LABEL",
    },
    OptionSpec {
        flag: "--metrics-addr",
        env: "RTINSPECT_METRICS_ADDR",
    },
    OptionSpec {
        flag: "--state-dir",
        env: "RTINSPECT_STATE_DIR",
    },
    OptionSpec {
        flag: "--log-format",
        env: "RTINSPECT_LOG_FORMAT",
    },
];

/// The usage text of `--help`.
pub const USAGE: &str = "\
rtinspect: watches game-runtime containers through the Docker Engine API and
publishes an inspect_unhealthy event when one restarted, is not running, or is
unhealthy.

Usage: rtinspect [COMMAND] [OPTIONS]

Commands:
  run        Inspect every interval until SIGTERM or SIGINT (the default)
  once       Inspect once, wait until the events are delivered, exit
  migrate    Create the records and events tables and the index if missing

Options (each also read from the environment variable shown; a flag wins):
  --docker-host URL       dockerd's socket, unix:///PATH
                          [DOCKER_HOST; default unix:///var/run/docker.sock]
  --database-url URL      PostgreSQL, as postgres://user:pass@host/db or
                          'host=... user=... dbname=...'; without it the
                          records are the containers carrying --label
                          [RTINSPECT_DATABASE_URL; default: none, label mode]
                          TLS follows the URL's sslmode: disable, prefer (the
                          default), require, verify-ca, verify-full
  --database-ca-file FILE CA certificates (PEM) for verify-ca and verify-full
                          [RTINSPECT_DATABASE_CA_FILE; default the URL's
                          sslrootcert, else the system bundle]
  --interval DURATION     time between ticks: 250ms, 15s, 2m, 1h
                          [RTINSPECT_INTERVAL; default 15s]
  --docker-timeout DURATION
                          bound on each Docker request
                          [RTINSPECT_DOCKER_TIMEOUT; default 10s]
  --records-table NAME    table of runtime records, may be schema.table
                          [RTINSPECT_RECORDS_TABLE; default runtime_records]
  --events-table NAME     table of health events, may be schema.table
                          [RTINSPECT_EVENTS_TABLE; default runtime_health_events]
  --notify-channel NAME   pg_notify channel; empty disables NOTIFY
                          [RTINSPECT_NOTIFY_CHANNEL; default runtime_health_events]
  --sink stdout|postgres  where events go
                          [RTINSPECT_SINK; default postgres with a database,
                          else stdout]
  --label KEY             the Docker label whose value is the game id
                          [RTINSPECT_LABEL; default rtinspect.game-id]
  --metrics-addr ADDR     serve /metrics and /healthz on HOST:PORT
                          [RTINSPECT_METRICS_ADDR; default off]
  --state-dir DIR         keep the spool and saved baselines here
                          [RTINSPECT_STATE_DIR; default $STATE_DIRECTORY, else off]
  --log-format text|json  log line format on stderr
                          [RTINSPECT_LOG_FORMAT; default text]
  -h, --help              print this text
  -V, --version           print the version

Log level: RUST_LOG (default info). Events go to stdout, logs to stderr.
Exit status: 0 success, 1 runtime failure, 64 bad usage or configuration.
";

/// The strings as given, before validation.
#[derive(Debug, Default)]
pub struct RawArgs {
    command: Option<String>,
    flags: HashMap<&'static str, String>,
    help: bool,
    version: bool,
}

impl RawArgs {
    /// Reads the command line (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<RawArgs, ConfigError> {
        let mut raw = RawArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => raw.help = true,
                "-V" | "--version" => raw.version = true,
                a if a.starts_with("--") => {
                    let (name, inline) = match a.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_owned())),
                        None => (a, None),
                    };
                    let spec =
                        OPTIONS
                            .iter()
                            .find(|o| o.flag == name)
                            .ok_or_else(|| ConfigError {
                                message: format!("unknown option {name:?}; see --help"),
                            })?;
                    let value = match inline {
                        Some(v) => v,
                        None => args.next().ok_or_else(|| ConfigError {
                            message: format!("option {} needs a value", spec.flag),
                        })?,
                    };
                    raw.flags.insert(spec.flag, value);
                }
                a if a.starts_with('-') && a.len() > 1 => {
                    return Err(ConfigError {
                        message: format!("unknown option {a:?}; see --help"),
                    });
                }
                a => {
                    if let Some(first) = &raw.command {
                        return Err(ConfigError {
                            message: format!("unexpected argument {a:?} after command {first:?}"),
                        });
                    }
                    raw.command = Some(a.to_owned());
                }
            }
        }
        Ok(raw)
    }
}

/// Looks up one option: the flag's value, else the environment's (an empty
/// variable counts as unset, except where `empty_is_value`).
fn lookup(
    raw: &RawArgs,
    env: &dyn Fn(&str) -> Option<String>,
    flag: &'static str,
    empty_is_value: bool,
) -> Option<(String, String)> {
    let spec = OPTIONS.iter().find(|o| o.flag == flag).expect("known flag");
    if let Some(v) = raw.flags.get(flag) {
        return Some((flag.to_owned(), v.clone()));
    }
    env(spec.env)
        .filter(|v| empty_is_value || !v.is_empty())
        .map(|v| (spec.env.to_owned(), v))
}

fn invalid(source: &str, value: &str, why: &str) -> ConfigError {
    ConfigError {
        message: format!("invalid {source} {value:?}: {why}"),
    }
}

/// Parses `250ms`, `15s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

fn duration_option(
    raw: &RawArgs,
    env: &dyn Fn(&str) -> Option<String>,
    flag: &'static str,
    default: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some((source, value)) = lookup(raw, env, flag, false) else {
        return Ok(default);
    };
    let d = parse_duration(&value).ok_or_else(|| {
        invalid(
            &source,
            &value,
            "expected a duration such as 250ms, 15s, 2m or 1h",
        )
    })?;
    if d.is_zero() {
        return Err(invalid(&source, &value, "must be greater than zero"));
    }
    if d > max {
        return Err(invalid(
            &source,
            &value,
            &format!("must be at most {}s", max.as_secs()),
        ));
    }
    Ok(d)
}

fn table_option(
    raw: &RawArgs,
    env: &dyn Fn(&str) -> Option<String>,
    flag: &'static str,
    default: &str,
) -> Result<TableName, ConfigError> {
    match lookup(raw, env, flag, false) {
        None => Ok(TableName::parse(default).expect("default table names are valid")),
        Some((source, value)) => TableName::parse(&value).ok_or_else(|| {
            invalid(
                &source,
                &value,
                "expected a table name such as runtime_records or schema.runtime_records \
                 (letters, digits, _ and $, at most 63 each)",
            )
        }),
    }
}

/// The database URL, its TLS parameters taken out and checked, and the TLS
/// connector built (so a bad CA file is a start-up error, not a tick error).
fn database_option(
    raw: &RawArgs,
    env: &dyn Fn(&str) -> Option<String>,
    source: &str,
    value: &str,
) -> Result<Database, ConfigError> {
    let split = split_tls_params(value);
    let mut config = postgres::Config::from_str(&split.rest).map_err(|e| ConfigError {
        // The value may hold a password: name the option, not the value.
        message: format!("invalid {source}: {e}"),
    })?;
    if config.get_hosts().is_empty() {
        return Err(ConfigError {
            message: format!("invalid {source}: no host given"),
        });
    }
    let ssl_mode = match split.sslmode.as_deref() {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(m).ok_or_else(|| ConfigError {
            message: format!(
                "invalid {source}: sslmode {m:?} is not disable, prefer, require, verify-ca or verify-full"
            ),
        })?,
    };
    config.ssl_mode(ssl_mode.driver_mode());
    let ca_file = match lookup(raw, env, "--database-ca-file", false) {
        Some((_, v)) => Some(PathBuf::from(v)),
        None => split.sslrootcert.map(PathBuf::from),
    };
    let tls = tls::connector(ssl_mode, ca_file.as_deref()).map_err(|e| ConfigError {
        message: format!("invalid --database-ca-file or sslrootcert: {e}"),
    })?;
    Ok(Database {
        config,
        ssl_mode,
        tls,
    })
}

impl Config {
    /// Parses the command line and the environment into a validated config.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_raw(RawArgs::parse(args)?, env)
    }

    /// Validates every value of `raw` (and of the environment) at once.
    pub fn from_raw(
        raw: RawArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if raw.help || raw.version {
            // Help and version need no valid configuration.
            let mut config = Config::from_raw(RawArgs::default(), &|_| None)?;
            config.command = if raw.help {
                Command::Help
            } else {
                Command::Version
            };
            return Ok(config);
        }
        let command = {
            match raw.command.as_deref() {
                None | Some("run") => Command::Run,
                Some("once") => Command::Once,
                Some("migrate") => Command::Migrate,
                Some("help") => Command::Help,
                Some(other) => {
                    return Err(ConfigError {
                        message: format!(
                            "unknown command {other:?}; expected run, once or migrate"
                        ),
                    });
                }
            }
        };

        let docker_socket = match lookup(&raw, env, "--docker-host", false) {
            None => PathBuf::from("/var/run/docker.sock"),
            Some((source, value)) => match value.strip_prefix("unix://") {
                Some(path) if path.starts_with('/') => PathBuf::from(path),
                _ => {
                    return Err(invalid(
                        &source,
                        &value,
                        "expected unix:///path/to/docker.sock (only Unix sockets are supported)",
                    ));
                }
            },
        };

        let database = match lookup(&raw, env, "--database-url", false) {
            None => None,
            Some((source, value)) => Some(database_option(&raw, env, &source, &value)?),
        };

        let interval = duration_option(
            &raw,
            env,
            "--interval",
            Duration::from_secs(15),
            Duration::from_secs(24 * 3600),
        )?;
        let docker_timeout = duration_option(
            &raw,
            env,
            "--docker-timeout",
            Duration::from_secs(10),
            Duration::from_secs(600),
        )?;
        let records_table = table_option(&raw, env, "--records-table", "runtime_records")?;
        let events_table = table_option(&raw, env, "--events-table", "runtime_health_events")?;

        let notify_channel = match lookup(&raw, env, "--notify-channel", true) {
            None => Some("runtime_health_events".to_owned()),
            Some((_, v)) if v.is_empty() => None,
            Some((source, v)) => {
                if !is_identifier(&v) {
                    return Err(invalid(
                        &source,
                        &v,
                        "expected a channel name of letters, digits, _ and $ (at most 63), or empty",
                    ));
                }
                Some(v)
            }
        };

        let sink = match lookup(&raw, env, "--sink", false) {
            None if database.is_some() => SinkKind::Postgres,
            None => SinkKind::Stdout,
            Some((_, v)) if v == "stdout" => SinkKind::Stdout,
            Some((source, v)) if v == "postgres" => {
                if database.is_none() {
                    return Err(invalid(
                        &source,
                        &v,
                        "the postgres sink needs --database-url",
                    ));
                }
                SinkKind::Postgres
            }
            Some((source, v)) => return Err(invalid(&source, &v, "expected stdout or postgres")),
        };

        let label = match lookup(&raw, env, "--label", false) {
            None => "rtinspect.game-id".to_owned(),
            Some((source, v)) => {
                if v.is_empty() || v.len() > 255 || v.chars().any(char::is_control) || v.trim() != v
                {
                    return Err(invalid(
                        &source,
                        &v,
                        "expected a Docker label key without spaces at the ends or control characters",
                    ));
                }
                v
            }
        };

        let metrics_addr =
            match lookup(&raw, env, "--metrics-addr", false) {
                None => None,
                Some((source, v)) => Some(v.parse::<SocketAddr>().map_err(|_| {
                    invalid(&source, &v, "expected HOST:PORT such as 127.0.0.1:9464")
                })?),
            };

        let state_dir = match lookup(&raw, env, "--state-dir", false) {
            Some((source, v)) => {
                if !v.starts_with('/') {
                    return Err(invalid(&source, &v, "expected an absolute directory path"));
                }
                Some(PathBuf::from(v))
            }
            // systemd's StateDirectory= sets STATE_DIRECTORY, colon-separated when
            // the unit names several; the first one is ours.
            None => env("STATE_DIRECTORY")
                .and_then(|v| v.split(':').next().map(str::to_owned))
                .filter(|v| v.starts_with('/'))
                .map(PathBuf::from),
        };

        let log_format = match lookup(&raw, env, "--log-format", false) {
            None => LogFormat::Text,
            Some((_, v)) if v == "text" => LogFormat::Text,
            Some((_, v)) if v == "json" => LogFormat::Json,
            Some((source, v)) => return Err(invalid(&source, &v, "expected text or json")),
        };

        Ok(Config {
            command,
            docker_socket,
            database,
            interval,
            docker_timeout,
            records_table,
            events_table,
            notify_channel,
            sink,
            label,
            metrics_addr,
            state_dir,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(args.iter().map(|s| s.to_string()), &|k| env.get(k).cloned())
    }

    fn err(args: &[&str], env: &[(&str, &str)]) -> String {
        parse(args, env).unwrap_err().message
    }

    #[test]
    fn defaults_are_label_mode_on_stdout() {
        let c = parse(&[], &[]).unwrap();
        assert_eq!(c.command, Command::Run);
        assert_eq!(c.docker_socket, PathBuf::from("/var/run/docker.sock"));
        assert!(c.database.is_none());
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.docker_timeout, Duration::from_secs(10));
        assert_eq!(c.records_table.quoted(), "\"runtime_records\"");
        assert_eq!(c.events_table.to_string(), "runtime_health_events");
        assert_eq!(c.notify_channel.as_deref(), Some("runtime_health_events"));
        assert_eq!(c.sink, SinkKind::Stdout);
        assert_eq!(c.label, "rtinspect.game-id");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.state_dir, None);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn flag_wins_over_environment() {
        let c = parse(
            &["once", "--interval", "2m", "--label=team.game"],
            &[
                ("RTINSPECT_INTERVAL", "5s"),
                ("RTINSPECT_LABEL", "x"),
                ("RTINSPECT_DOCKER_TIMEOUT", "250ms"),
            ],
        )
        .unwrap();
        assert_eq!(c.command, Command::Once);
        assert_eq!(c.interval, Duration::from_secs(120));
        assert_eq!(c.label, "team.game");
        assert_eq!(c.docker_timeout, Duration::from_millis(250));
    }

    #[test]
    fn database_selects_postgres_sink_by_default() {
        let c = parse(
            &[],
            &[(
                "RTINSPECT_DATABASE_URL",
                "postgres://u:secret@db.example/rt",
            )],
        )
        .unwrap();
        assert!(c.database.is_some());
        assert_eq!(c.sink, SinkKind::Postgres);
        let c = parse(
            &["--sink", "stdout", "--database-url", "host=/run/pg user=rt"],
            &[],
        )
        .unwrap();
        assert_eq!(c.sink, SinkKind::Stdout);
    }

    #[test]
    fn durations_table() {
        let table = [
            ("250ms", Some(250)),
            ("15s", Some(15_000)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("0s", Some(0)),
            ("15", None),
            ("s", None),
            ("1.5s", None),
            ("-1s", None),
            ("1d", None),
            ("99999999999999999999h", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_duration(s), want.map(Duration::from_millis), "{s}");
        }
    }

    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn bad_values_name_the_option_and_value() {
        let table: &[Case] = &[
            (
                &["--interval", "0s"],
                &[],
                "invalid --interval \"0s\": must be greater than zero",
            ),
            (
                &[],
                &[("RTINSPECT_INTERVAL", "soon")],
                "invalid RTINSPECT_INTERVAL \"soon\"",
            ),
            (&["--interval", "25h"], &[], "must be at most 86400s"),
            (
                &["--docker-timeout", "0ms"],
                &[],
                "invalid --docker-timeout \"0ms\"",
            ),
            (
                &["--docker-host", "tcp://1.2.3.4:2375"],
                &[],
                "invalid --docker-host \"tcp://1.2.3.4:2375\"",
            ),
            (
                &[],
                &[("DOCKER_HOST", "unix://relative")],
                "invalid DOCKER_HOST",
            ),
            (
                &["--records-table", "x; drop table y"],
                &[],
                "invalid --records-table \"x; drop table y\"",
            ),
            (
                &["--events-table", "a.b.c"],
                &[],
                "invalid --events-table \"a.b.c\"",
            ),
            (&["--records-table", "1abc"], &[], "invalid --records-table"),
            (
                &["--notify-channel", "bad channel"],
                &[],
                "invalid --notify-channel",
            ),
            (
                &["--sink", "kafka"],
                &[],
                "invalid --sink \"kafka\": expected stdout or postgres",
            ),
            (
                &["--sink", "postgres"],
                &[],
                "the postgres sink needs --database-url",
            ),
            (&["--label", "a\nb"], &[], "invalid --label"),
            (&["--label", ""], &[], "invalid --label"),
            (
                &["--metrics-addr", "localhost"],
                &[],
                "invalid --metrics-addr \"localhost\"",
            ),
            (&["--state-dir", "rel/dir"], &[], "invalid --state-dir"),
            (
                &["--log-format", "xml"],
                &[],
                "invalid --log-format \"xml\"",
            ),
            (&["--bogus"], &[], "unknown option \"--bogus\""),
            (&["-x"], &[], "unknown option \"-x\""),
            (&["--interval"], &[], "option --interval needs a value"),
            (&["start"], &[], "unknown command \"start\""),
            (&["once", "extra"], &[], "unexpected argument \"extra\""),
        ];
        for (args, env, want) in table {
            let got = err(args, env);
            assert!(
                got.contains(want),
                "{args:?} {env:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn database_url_errors_never_echo_the_password() {
        for url in [
            "postgres://user:hunter2@host:notaport/db",
            "host=x password=hunter2 bogus_option=1",
            "password=hunter2 user=x",
        ] {
            let got = err(&["--database-url", url], &[]);
            assert!(got.starts_with("invalid --database-url"), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
        }
    }

    #[test]
    fn sslmode_comes_from_the_url_in_either_form() {
        let c = parse(
            &["--database-url", "postgres://u@db/x?sslmode=require"],
            &[],
        )
        .unwrap();
        assert_eq!(c.database.unwrap().ssl_mode, SslMode::Require);
        let c = parse(&["--database-url", "host=db sslmode=disable"], &[]).unwrap();
        assert_eq!(c.database.unwrap().ssl_mode, SslMode::Disable);
        let c = parse(&["--database-url", "host=db"], &[]).unwrap();
        assert_eq!(c.database.unwrap().ssl_mode, SslMode::Prefer);
        let e = err(&["--database-url", "host=db sslmode=sometimes"], &[]);
        assert!(e.contains("sslmode \"sometimes\""), "{e}");
        let e = err(
            &[
                "--database-url",
                "host=db sslmode=verify-full",
                "--database-ca-file",
                "/nonexistent.pem",
            ],
            &[],
        );
        assert!(e.contains("/nonexistent.pem"), "{e}");
    }

    #[test]
    fn empty_notify_channel_disables_notify() {
        let c = parse(&["--notify-channel", ""], &[]).unwrap();
        assert_eq!(c.notify_channel, None);
        let c = parse(&[], &[("RTINSPECT_NOTIFY_CHANNEL", "")]).unwrap();
        assert_eq!(c.notify_channel, None);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let c = parse(
            &[],
            &[("RTINSPECT_DATABASE_URL", ""), ("RTINSPECT_INTERVAL", "")],
        )
        .unwrap();
        assert!(c.database.is_none());
        assert_eq!(c.interval, Duration::from_secs(15));
    }

    #[test]
    fn state_dir_defaults_to_systemd_state_directory() {
        let c = parse(
            &[],
            &[("STATE_DIRECTORY", "/var/lib/rtinspect:/var/lib/other")],
        )
        .unwrap();
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/rtinspect")));
        let c = parse(
            &["--state-dir", "/srv/rt"],
            &[("STATE_DIRECTORY", "/var/lib/rtinspect")],
        )
        .unwrap();
        assert_eq!(c.state_dir, Some(PathBuf::from("/srv/rt")));
    }

    #[test]
    fn table_names_are_quoted_and_may_be_qualified() {
        assert_eq!(
            TableName::parse("ops.runtime_records").unwrap().quoted(),
            "\"ops\".\"runtime_records\""
        );
        assert_eq!(TableName::parse("_t$1").unwrap().quoted(), "\"_t$1\"");
        for bad in ["", ".", "a.", ".a", "a\"b", "a-b", "$a", &"t".repeat(64)] {
            assert!(TableName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn help_and_version_win_over_everything() {
        assert_eq!(
            parse(&["once", "--help"], &[]).unwrap().command,
            Command::Help
        );
        assert_eq!(
            parse(&["--interval", "0s", "--help"], &[("RTINSPECT_SINK", "x")])
                .unwrap()
                .command,
            Command::Help
        );
        assert_eq!(parse(&["-V"], &[]).unwrap().command, Command::Version);
        assert_eq!(parse(&["help"], &[]).unwrap().command, Command::Help);
    }
}
