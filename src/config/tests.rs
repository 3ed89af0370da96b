//! The configuration as a whole, through [`Config::parse`]: defaults, the
//! environment, the plain values and `--help`. Each family of options keeps
//! its own tests beside it; the helpers here serve them all.

use std::collections::HashMap;

use super::sinks::SinkKind;
use super::*;
use crate::text::{Units, parse_duration};

pub(super) fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(args.iter().copied(), &|k| env.get(k).cloned())
}

pub(super) fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
    match parse(args, env) {
        Ok(Invocation::Command(c)) => *c,
        other => panic!("{args:?} {env:?}: expected a command, got {other:?}"),
    }
}

pub(super) fn err(args: &[&str], env: &[(&str, &str)]) -> String {
    match parse(args, env) {
        Err(e) => e.message,
        Ok(other) => panic!("{args:?} {env:?}: expected an error, got {other:?}"),
    }
}

pub(super) type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Each case's command line and environment are refused with a message
/// that holds its text.
pub(super) fn refused(table: &[Case]) {
    for (args, env, want) in table {
        let got = err(args, env);
        assert!(
            got.contains(want),
            "{args:?} {env:?}: got {got:?}, want {want:?}"
        );
    }
}

pub(super) const SLACK: &str = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN";

#[test]
fn defaults_are_label_mode_on_stdout() {
    let c = config(&[], &[]);
    assert!(matches!(c.command, Command::Run), "{:?}", c.command);
    assert_eq!(c.docker_socket, PathBuf::from("/var/run/docker.sock"));
    assert!(c.database.is_none());
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!(c.docker_timeout, Duration::from_secs(10));
    assert_eq!(c.records_table.quoted(), "\"runtime_records\"");
    assert_eq!(c.events_table.to_string(), "runtime_health_events");
    assert_eq!(c.notify_channel.as_deref(), Some("runtime_health_events"));
    assert_eq!(c.sinks[0].sink.kind(), SinkKind::Stdout);
    assert_eq!(c.label, "rtinspect.game-id");
    assert_eq!(c.metrics_addr, None);
    assert_eq!(c.state_dir, None);
    assert_eq!(c.log_format, LogFormat::Text);
    assert!(c.events);
}

#[test]
fn flag_wins_over_environment() {
    let c = config(
        &["once", "--interval", "2m", "--label=team.game"],
        &[
            ("RTINSPECT_INTERVAL", "5s"),
            ("RTINSPECT_LABEL", "x"),
            ("RTINSPECT_DOCKER_TIMEOUT", "250ms"),
        ],
    );
    assert!(matches!(c.command, Command::Once), "{:?}", c.command);
    assert_eq!(c.interval, Duration::from_secs(120));
    assert_eq!(c.label, "team.game");
    assert_eq!(c.docker_timeout, Duration::from_millis(250));
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
        assert_eq!(
            parse_duration(s, Units::UpToHours),
            want.map(Duration::from_millis),
            "{s}"
        );
    }
}

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
            "invalid --sink \"kafka\": expected stdout, postgres or webhook",
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
        assert!(!got.contains('\n'), "{got:?}");
    }
}

#[test]
fn details_are_basic_unless_extended_is_asked_for() {
    assert_eq!(config(&[], &[]).details, DetailLevel::Basic);
    let c = config(&[], &[("RTINSPECT_DETAILS", "extended")]);
    assert_eq!(c.details, DetailLevel::Extended);
    let c = config(
        &["--details", "basic"],
        &[("RTINSPECT_DETAILS", "extended")],
    );
    assert_eq!(c.details, DetailLevel::Basic);
    assert!(
        err(&["--details", "full"], &[])
            .contains("invalid --details \"full\": expected basic or extended")
    );
}

#[test]
fn empty_notify_channel_disables_notify() {
    let db = ("RTINSPECT_DATABASE_URL", "host=db");
    let c = config(&["--notify-channel", ""], &[db]);
    assert_eq!(c.notify_channel, None);
    let c = config(&[], &[db, ("RTINSPECT_NOTIFY_CHANNEL", "")]);
    assert_eq!(c.notify_channel, None);
}

#[test]
fn empty_environment_values_count_as_unset() {
    let c = config(
        &[],
        &[("RTINSPECT_DATABASE_URL", ""), ("RTINSPECT_INTERVAL", "")],
    );
    assert!(c.database.is_none());
    assert_eq!(c.interval, Duration::from_secs(15));
}

#[test]
fn state_dir_defaults_to_systemd_state_directory() {
    let c = config(
        &[],
        &[("STATE_DIRECTORY", "/var/lib/rtinspect:/var/lib/other")],
    );
    assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/rtinspect")));
    let c = config(
        &["--state-dir", "/srv/rt"],
        &[("STATE_DIRECTORY", "/var/lib/rtinspect")],
    );
    assert_eq!(c.state_dir, Some(PathBuf::from("/srv/rt")));
}

#[test]
fn help_and_version_win_over_everything() {
    let help: &[Case] = &[
        (&["once", "--help"], &[], ""),
        (
            &["--interval", "0s", "--help"],
            &[("RTINSPECT_SINK", "x")],
            "",
        ),
        (&["help"], &[], ""),
        (&["--bogus", "-h"], &[], ""),
        (&["--help", "--interval"], &[], ""),
        (
            &["help", "once", "extra"],
            &[("DOCKER_HOST", "tcp://x")],
            "",
        ),
    ];
    for (args, env, _) in help {
        assert!(matches!(parse(args, env), Ok(Invocation::Help)), "{args:?}");
    }
    assert!(matches!(parse(&["-V"], &[]), Ok(Invocation::Version)));
    assert!(matches!(
        parse(&["--version", "start"], &[("RTINSPECT_INTERVAL", "0s")]),
        Ok(Invocation::Version)
    ));
}

#[test]
fn every_default_in_the_table_is_valid() {
    // Each mode with nothing set validates every Value default of the table.
    for spec in OPTIONS {
        if let OptionDefault::Value(v) = spec.default {
            assert!(!v.is_empty(), "{spec:?}");
        }
    }
    config(&[], &[]);
    config(&["--database-url", "host=db"], &[]);
}
