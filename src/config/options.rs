//! The table of options: for each one its flag, its environment variable, the
//! name of its value, its default as shown, and its help text.
//!
//! The parser, `--help`, and the test that keeps `packaging/rtinspect.default`,
//! the man page and `docs/configuration.md` in step all read this one table;
//! code names an option by its typed key [`Opt`], never by a string. What a
//! row says besides its strings (its default, its mode, its sink) is `row`'s.

use super::row::{Mode, OptionDefault, SinkKind};

/// One row of the table of options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The typed key of this row.
    pub(crate) key: Opt,
    /// The command-line flag, `--name`.
    pub flag: &'static str,
    /// The environment variable read when the flag is absent.
    pub env: &'static str,
    /// The name of the value in `--help`.
    pub value_name: &'static str,
    /// The default.
    pub default: OptionDefault,
    /// Whether an empty environment variable is a value (else it counts as unset).
    pub(crate) empty_env_is_value: bool,
    /// Whether the value may hold a secret and is never shown in a message.
    pub secret: bool,
    /// Which mode reads it.
    pub mode: Mode,
    /// The one sink that reads it, if only one does: setting it for another
    /// sink is an error too.
    pub(crate) sink: Option<SinkKind>,
    /// The help text, one paragraph per line.
    pub(crate) help: &'static str,
}

/// Declares [`Opt`] and [`OPTIONS`] from one list, in the same order, so that
/// a key without a row (or a row without a key) cannot be written.
macro_rules! option_table {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident { $($field:ident: $value:expr),* $(,)? }
    )*) => {
        /// The typed key of one option; [`Opt::spec`] is its row of [`OPTIONS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Opt {
            $( $(#[doc = $doc])* $key, )*
        }

        /// Every option, in the order of its typed key `Opt` and of `--help`.
        pub const OPTIONS: &[OptionSpec] = &[
            $( OptionSpec { key: Opt::$key, $($field: $value),* }, )*
        ];
    };
}

option_table! {
    /// `--docker-host`: dockerd's socket.
    DockerHost {
        flag: "--docker-host",
        env: "DOCKER_HOST",
        value_name: "URL",
        default: OptionDefault::Value("unix:///var/run/docker.sock"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "dockerd's socket, unix:///PATH",
    }
    /// `--database-url`: PostgreSQL mode when set.
    DatabaseUrl {
        flag: "--database-url",
        env: "RTINSPECT_DATABASE_URL",
        value_name: "URL",
        default: OptionDefault::Unset("none (label mode)"),
        empty_env_is_value: false,
        secret: true,
        mode: Mode::Any,
        sink: None,
        help: "PostgreSQL, as postgres://user:pass@host/db or 'host=... user=... \
               dbname=...'; without it the records are the containers carrying --label\n\
               TLS follows the URL's sslmode: disable, prefer (the default), require, \
               verify-ca, verify-full",
    }
    /// `--database-ca-file`: the trusted CAs for a verifying sslmode.
    DatabaseCaFile {
        flag: "--database-ca-file",
        env: "RTINSPECT_DATABASE_CA_FILE",
        value_name: "FILE",
        default: OptionDefault::Unset("the URL's sslrootcert, else the system bundle"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "trusted CAs (PEM) for sslmode verify-ca or verify-full",
    }
    /// `--interval`: time between ticks.
    Interval {
        flag: "--interval",
        env: "RTINSPECT_INTERVAL",
        value_name: "DURATION",
        default: OptionDefault::Value("15s"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "time between ticks: 250ms, 15s, 2m, 1h (at most 24h)",
    }
    /// `--docker-timeout`: bound on each Docker request.
    DockerTimeout {
        flag: "--docker-timeout",
        env: "RTINSPECT_DOCKER_TIMEOUT",
        value_name: "DURATION",
        default: OptionDefault::Value("10s"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "bound on each Docker request (at most 10m)",
    }
    /// `--records-table`: the runtime records, in PostgreSQL mode.
    RecordsTable {
        flag: "--records-table",
        env: "RTINSPECT_RECORDS_TABLE",
        value_name: "NAME",
        default: OptionDefault::Value("runtime_records"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "records table, may be schema.table",
    }
    /// `--events-table`: where the postgres sink writes.
    EventsTable {
        flag: "--events-table",
        env: "RTINSPECT_EVENTS_TABLE",
        value_name: "NAME",
        default: OptionDefault::Value("runtime_health_events"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "events table, may be schema.table",
    }
    /// `--silences-table`: the silences, in PostgreSQL mode.
    SilencesTable {
        flag: "--silences-table",
        env: "RTINSPECT_SILENCES_TABLE",
        value_name: "NAME",
        default: OptionDefault::Value("runtime_silences"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "silences table (rtinspect silence, or a row INSERTed by a deploy tool), \
               may be schema.table",
    }
    /// `--notify-channel`: the pg_notify channel; empty disables NOTIFY.
    NotifyChannel {
        flag: "--notify-channel",
        env: "RTINSPECT_NOTIFY_CHANNEL",
        value_name: "NAME",
        default: OptionDefault::Value("runtime_health_events"),
        empty_env_is_value: true,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "pg_notify channel; empty disables NOTIFY",
    }
    /// `--host-column`: the records table's column naming each record's host.
    HostColumn {
        flag: "--host-column",
        env: "RTINSPECT_HOST_COLUMN",
        value_name: "COLUMN",
        default: OptionDefault::Unset("off"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "read only the records whose COLUMN is --host-id, for many hosts \
               sharing one records table; events then carry host_id",
    }
    /// `--host-id`: this host's name, and its value in `--host-column`.
    HostId {
        flag: "--host-id",
        env: "RTINSPECT_HOST_ID",
        value_name: "ID",
        default: OptionDefault::Unset("the hostname"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "this host's name (at most 255 bytes): every chat message names it, and, \
               when given, the envelope carries it as host_id; with --host-column, this \
               host's value in that column",
    }
    /// `--older-than`: what `prune-events` deletes.
    OlderThan {
        flag: "--older-than",
        env: "RTINSPECT_PRUNE_OLDER_THAN",
        value_name: "DURATION",
        default: OptionDefault::Unset("none (prune-events needs it)"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Postgres,
        sink: None,
        help: "prune-events deletes the events recorded longer ago than this: \
               12h, 30d (other commands ignore the variable and refuse the flag)",
    }
    /// `--sink`: where events go.
    Sink {
        flag: "--sink",
        env: "RTINSPECT_SINK",
        value_name: "stdout|postgres|webhook",
        default: OptionDefault::Unset("postgres with a database, else stdout"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "where events go: one JSON line each on stdout, a row and a NOTIFY \
               in PostgreSQL, or a POST to --webhook-url; several at once, each \
               with its own queue and spool: give the flag once for each, or a \
               comma list (RTINSPECT_SINKS is read too)",
    }
    /// `--label`: the Docker label of records, in label mode.
    Label {
        flag: "--label",
        env: "RTINSPECT_LABEL",
        value_name: "KEY",
        default: OptionDefault::Value("rtinspect.game-id"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Label,
        sink: None,
        help: "the Docker label whose value is the game id",
    }
    /// `--metrics-addr`: the metrics listener.
    MetricsAddr {
        flag: "--metrics-addr",
        env: "RTINSPECT_METRICS_ADDR",
        value_name: "ADDR",
        default: OptionDefault::Unset("off"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "serve /metrics, /healthz and the status page (/ and /status.json) on HOST:PORT",
    }
    /// `--state-dir`: the spool and saved baselines.
    StateDir {
        flag: "--state-dir",
        env: "RTINSPECT_STATE_DIR",
        value_name: "DIR",
        default: OptionDefault::Unset("$STATE_DIRECTORY, else off"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "keep the spool and saved baselines here",
    }
    /// `--events`: Docker events beside the poll.
    Events {
        flag: "--events",
        env: "RTINSPECT_EVENTS",
        value_name: "on|off",
        default: OptionDefault::Value("on"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "on: also read Docker's events stream and inspect a container the moment \
               it dies, runs out of memory or changes health; off: the poll alone",
    }
    /// `--log-format`: how log lines look.
    LogFormat {
        flag: "--log-format",
        env: "RTINSPECT_LOG_FORMAT",
        value_name: "text|json",
        default: OptionDefault::Value("text"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "log line format on stderr",
    }
    /// `--details`: how much an event's details carry.
    Details {
        flag: "--details",
        env: "RTINSPECT_DETAILS",
        value_name: "basic|extended",
        default: OptionDefault::Value("basic"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "basic: restart_count, state, health; extended adds, as Docker \
               reports them, exit_code, oom_killed, error, started_at, finished_at, \
               health_failing_streak and health_output (the last probe's output)",
    }
    /// `--report`: what the sink gets, facts, incidents or both.
    Report {
        flag: "--report",
        env: "RTINSPECT_REPORT",
        value_name: "facts|incidents|both",
        default: OptionDefault::Unset("facts for stdout and postgres, incidents for webhook"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "facts: an inspect_unhealthy event every tick for every record in trouble \
               (for a reconciler); incidents: one event when a problem starts, gets worse \
               (a crash loop), is still open at --remind, and ends (for people); both; \
               one value for every sink, or SINK=REPORT for each: postgres=both,webhook=incidents",
    }
    /// `--crash-loop-restarts`: restarts within the window that make a crash loop.
    CrashLoopRestarts {
        flag: "--crash-loop-restarts",
        env: "RTINSPECT_CRASH_LOOP_RESTARTS",
        value_name: "N",
        default: OptionDefault::Value("3"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "an incident becomes a crash loop at this many restarts (restart-policy \
               restarts and container replacements) within --crash-loop-window",
    }
    /// `--crash-loop-window`: the window restarts are counted in.
    CrashLoopWindow {
        flag: "--crash-loop-window",
        env: "RTINSPECT_CRASH_LOOP_WINDOW",
        value_name: "DURATION",
        default: OptionDefault::Value("10m"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "restarts are counted within this window; the count is cleared, and a \
               crash loop resolved, only once the container has run clean for as long",
    }
    /// `--recover-after`: how long a container runs clean before its incident ends.
    RecoverAfter {
        flag: "--recover-after",
        env: "RTINSPECT_RECOVER_AFTER",
        value_name: "DURATION",
        default: OptionDefault::Value("30s"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "an incident other than a crash loop is resolved once its container has \
               been running (and healthy, with a healthcheck) for this long",
    }
    /// `--remind`: how often an open incident is reported again.
    Remind {
        flag: "--remind",
        env: "RTINSPECT_REMIND",
        value_name: "DURATION",
        default: OptionDefault::Value("4h"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "an incident still open is reported again this often; 0 turns reminders off",
    }
    /// `--log-lines`: how many of its container's last log lines an incident carries.
    LogLines {
        flag: "--log-lines",
        env: "RTINSPECT_LOG_LINES",
        value_name: "N",
        default: OptionDefault::Value("10"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "an incident that opens or escalates carries its container's last N log lines \
               (details.log_tail: cleaned, secrets redacted, each cut to 300 bytes, 2 KiB in \
               all), waiting at most 250 ms for them; 0 turns it off; at most 100",
    }
    /// `--webhook-url`: where the webhook sink posts; a secret.
    WebhookUrl {
        flag: "--webhook-url",
        env: "RTINSPECT_WEBHOOK_URL",
        value_name: "URL",
        default: OptionDefault::Unset("none (the webhook sink needs it)"),
        empty_env_is_value: false,
        secret: true,
        mode: Mode::Any,
        sink: Some(SinkKind::Webhook),
        help: "POST each event to this http:// or https:// URL; it is a secret \
               (logs show only its scheme and host)",
    }
    /// `--webhook-url-file`: the webhook's URL, read from a file.
    WebhookUrlFile {
        flag: "--webhook-url-file",
        env: "RTINSPECT_WEBHOOK_URL_FILE",
        value_name: "FILE",
        default: OptionDefault::Unset("none"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: Some(SinkKind::Webhook),
        help: "read --webhook-url from this file instead (one line), so that the \
               token is neither in ps nor in the unit; the file must be readable by \
               the user rtinspect runs as alone (chown it, chmod 600)",
    }
    /// `--webhook-format`: the body of each webhook request.
    WebhookFormat {
        flag: "--webhook-format",
        env: "RTINSPECT_WEBHOOK_FORMAT",
        value_name: "envelope|slack|discord|ntfy|telegram",
        default: OptionDefault::Value("envelope"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: Some(SinkKind::Webhook),
        help: "envelope: the event's JSON, with Idempotency-Key: <event_id>; \
               slack: {\"text\": \"...\"}, one line for Slack or Discord's /slack endpoint; \
               discord: one embed; ntfy: the line, with Title, Priority and Tags; \
               telegram: sendMessage to the URL's ?chat_id=",
    }
    /// `--webhook-ca-file`: the trusted CAs for an https:// webhook.
    WebhookCaFile {
        flag: "--webhook-ca-file",
        env: "RTINSPECT_WEBHOOK_CA_FILE",
        value_name: "FILE",
        default: OptionDefault::Unset("the system bundle"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: Some(SinkKind::Webhook),
        help: "trusted CAs (PEM) for an https:// --webhook-url",
    }
    /// `--notify`: a notification URL, a sink of its own; a secret.
    Notify {
        flag: "--notify",
        env: "RTINSPECT_NOTIFY",
        value_name: "URL",
        default: OptionDefault::Unset("none"),
        empty_env_is_value: false,
        secret: true,
        mode: Mode::Any,
        sink: None,
        help: "a chat to tell, as a shoutrrr URL (discord://TOKEN@ID, \
               slack://hook:A-B-C@webhook, telegram://TOKEN@telegram?chats=CHAT, \
               ntfy://HOST/TOPIC, generic+https://...) or the service's own webhook \
               URL; each is a sink of its own; give the flag once for each \
               (RTINSPECT_NOTIFY: separated by spaces)\n\
               its query takes name=, format=, report=facts|incidents|both (default \
               incidents), min=restarted|unhealthy|not_running|crash_loop and \
               games=GLOB,...; a secret (logs show only its scheme and host)",
    }
    /// `--notify-file`: notification URLs, one a line, read from a file.
    NotifyFile {
        flag: "--notify-file",
        env: "RTINSPECT_NOTIFY_FILE",
        value_name: "FILE",
        default: OptionDefault::Unset("none"),
        empty_env_is_value: false,
        secret: false,
        mode: Mode::Any,
        sink: None,
        help: "more --notify URLs, one a line (# for a comment), from this file; \
               it must be readable by the user rtinspect runs as alone (chown it, \
               chmod 600); at most 16 sinks in all",
    }
}

impl Opt {
    /// This option's row of [`OPTIONS`].
    pub(crate) fn spec(self) -> &'static OptionSpec {
        // The macro writes the rows in the order of the variants.
        &OPTIONS[self as usize]
    }

    /// The option whose flag is `flag`, if any.
    pub(crate) fn from_flag(flag: &str) -> Option<Opt> {
        OPTIONS.iter().find(|o| o.flag == flag).map(|o| o.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_finds_its_own_row() {
        for (i, spec) in OPTIONS.iter().enumerate() {
            assert_eq!(spec.key as usize, i);
            assert_eq!(spec.key.spec(), spec);
            assert_eq!(Opt::from_flag(spec.flag), Some(spec.key));
        }
        assert_eq!(Opt::from_flag("--nope"), None);
    }

    #[test]
    fn flags_and_variables_are_unique_and_well_formed() {
        for (i, a) in OPTIONS.iter().enumerate() {
            assert!(a.flag.starts_with("--") && !a.flag.contains('='), "{a:?}");
            assert!(
                a.env.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{a:?}"
            );
            for b in &OPTIONS[i + 1..] {
                assert_ne!(a.flag, b.flag);
                assert_ne!(a.env, b.env);
            }
        }
    }
}
