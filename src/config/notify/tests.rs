//! The notification URLs through the whole parse, and the notify file's
//! lines as the sinks' build reads them: names, positions, limits, masks.

use super::*;
use crate::config::Config;
use crate::config::route::Report;
use crate::config::tests::{Case, config, err};
use crate::incident::Kind;

/// The sinks' names and what each takes.
fn sinks_of(sinks: &[SinkConfig]) -> Vec<(&str, Report, Kind)> {
    sinks
        .iter()
        .map(|s| (s.name.as_str(), s.route.report, s.route.min))
        .collect()
}

fn file(c: &Config) -> &NotifyFile {
    c.notify_file.as_ref().expect("a notify file")
}

#[test]
fn each_url_is_a_sink_named_by_its_service_and_position_or_its_name() {
    let c = config(
        &[
            "--notify",
            "discord://SECRET@1",
            "--notify",
            "ntfy://ntfy.sh/alerts?min=crash_loop",
            "--notify=https://h.example/x?name=audit&report=both",
        ],
        &[],
    );
    // Without --sink, the URLs are the sinks in label mode.
    assert_eq!(
        sinks_of(&c.sinks),
        [
            ("discord-1", Report::Incidents, Kind::Restarted),
            ("ntfy-2", Report::Incidents, Kind::CrashLoop),
            ("audit", Report::Both, Kind::Restarted),
        ]
    );
    assert!(c.sinks.iter().all(|s| s.notify));
    // The variable holds them separated by spaces (newlines too).
    let c = config(
        &[],
        &[(
            "RTINSPECT_NOTIFY",
            " discord://SECRET@1 \n slack://T/B/SECRET ",
        )],
    );
    assert_eq!(
        c.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["discord-1", "slack-2"]
    );
    // Beside --sink's, and the database's postgres by default.
    let c = config(&["--sink", "stdout", "--notify", "ntfy://ntfy.sh/a"], &[]);
    assert_eq!(
        sinks_of(&c.sinks),
        [
            ("stdout", Report::Facts, Kind::Restarted),
            ("ntfy-1", Report::Incidents, Kind::Restarted)
        ]
    );
    let c = config(
        &["--database-url", "host=db", "--notify", "ntfy://ntfy.sh/a"],
        &[],
    );
    assert_eq!(
        c.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["postgres", "ntfy-1"]
    );
    assert!(c.incidents_wanted());
    // The old webhook sink is named webhook, beside them.
    let c = config(
        &[
            "--sink",
            "webhook",
            "--webhook-url",
            "https://h.example/SECRET",
            "--notify",
            "ntfy://ntfy.sh/a",
        ],
        &[],
    );
    assert_eq!(
        c.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["webhook", "ntfy-1"]
    );
}

#[test]
fn bad_notify_urls_are_refused_naming_the_option_and_the_url_masked() {
    let seventeen: Vec<String> = (0..17)
        .map(|i| format!("https://h.example/SECRET{i}"))
        .collect();
    let seventeen: Vec<&str> = seventeen
        .iter()
        .flat_map(|u| ["--notify", u.as_str()])
        .collect();
    let table: &[Case] = &[
        (
            &[
                "--notify",
                "ntfy://ntfy.sh/a",
                "--notify",
                "discord://SECRET@x1",
            ],
            &[],
            "invalid --notify URL 2 (discord://…): expected discord://TOKEN@WEBHOOK_ID: \
             the webhook id must be digits",
        ),
        (
            &[],
            &[("RTINSPECT_NOTIFY", "https://u:SECRET@h.example/x?min=all")],
            "invalid RTINSPECT_NOTIFY URL 1 (https://h.example/…): min= must be",
        ),
        (
            &[
                "--notify",
                "https://h/SECRET?name=a",
                "--notify",
                "ntfy://n/SECRET?name=a",
            ],
            &[],
            "invalid --notify URL 2 (ntfy://n/…): the name a is taken by another sink",
        ),
        (
            &[
                "--sink",
                "webhook",
                "--webhook-url",
                "https://h/SECRET",
                "--notify",
                "https://h/SECRET?name=webhook",
            ],
            &[],
            "invalid --notify URL 1 (https://h/…): the name webhook is taken",
        ),
        (
            &seventeen,
            &[],
            "invalid --notify URL 17 (https://h.example/…): one sink too many: at most 16",
        ),
        (
            &["--sink", "stdout", "--notify", " "],
            &[],
            "invalid --notify: no URL in it",
        ),
        (
            &["--notify-file", "notify.txt"],
            &[],
            "invalid --notify-file \"notify.txt\": expected an absolute path",
        ),
    ];
    for (args, env, want) in table {
        let got = err(args, env);
        assert!(got.starts_with(want), "{args:?} {env:?}: {got}");
        assert!(!got.contains("SECRET"), "{got}");
    }
    // Sixteen are fine: the limit is on all sinks together.
    let sixteen = &seventeen[..32];
    assert_eq!(config(sixteen, &[]).sinks.len(), 16);
    let with_stdout = [&["--sink", "stdout"][..], &seventeen[..32]].concat();
    assert!(err(&with_stdout, &[]).contains("URL 16 (https://h.example/…): one sink too many"));
}

#[test]
fn the_notify_files_lines_are_sinks_after_the_others() {
    let c = config(
        &[
            "--notify",
            "discord://SECRET@1",
            "--notify-file",
            "/etc/rtinspect/notify",
        ],
        &[],
    );
    let text = "# the on-call phone\n\
                ntfy://:tk_SECRET@ntfy.sh/oncall?min=crash_loop\n\
                \n\
                   telegram://1:SECRET@telegram?chats=-100123&min=not_running  \n\
                # everything\n\
                https://discord.com/api/webhooks/2/SECRET?name=team\r\n";
    let more = file(&c).sinks(text, &c.sinks).unwrap();
    assert_eq!(
        sinks_of(&more),
        [
            ("ntfy-2", Report::Incidents, Kind::CrashLoop),
            ("telegram-3", Report::Incidents, Kind::NotRunning),
            ("team", Report::Incidents, Kind::Restarted),
        ]
    );
}

#[test]
fn a_bad_notify_file_line_is_named_by_its_number_and_masked() {
    let c = config(
        &[
            "--notify-file",
            "/etc/rtinspect/notify",
            "--notify",
            "ntfy://n/a?name=x",
        ],
        &[],
    );
    let f = file(&c);
    let many_urls: String = (0..10_000)
        .map(|i| format!("https://h.example/SECRET{i}\n"))
        .collect();
    let many_comments: String = (0..10_000).map(|i| format!("# comment {i}\n")).collect();
    let table: &[(&str, &str)] = &[
        (
            "# ok\nslack://xoxb:SECRET@C1\n",
            "invalid --notify-file \"/etc/rtinspect/notify\": line 2 (slack://…): Slack's bot API",
        ),
        (
            "https://h/SECRET?name=x",
            "line 1 (https://h/…): the name x is taken by another sink",
        ),
        (
            "https://h/SECRET?name=generic-3\nhttps://h/SECRET",
            "line 2 (https://h/…): the name generic-3 is taken",
        ),
        (
            &many_urls,
            "line 16 (https://h.example/…): one sink too many: at most 16 in all",
        ),
        (&many_comments, "holds no URL"),
        ("", "holds no URL"),
        (
            "https://h/SECRET\u{0}x\n",
            "line 1 (https://h/…): holds a control character",
        ),
        (
            "https://h/SE\u{7f}CRET\n",
            "line 1 (https://h/…): holds a control character",
        ),
    ];
    for (text, want) in table {
        let got = f
            .sinks(text, &c.sinks)
            .map(|s| s.len())
            .unwrap_err()
            .message;
        assert!(got.contains(want), "{got}");
        assert!(!got.contains("SECRET"), "{got}");
    }
}

#[test]
fn options_of_the_sink_option_are_refused_for_the_notification_urls_alone() {
    let table: &[(&[&str], &str)] = &[
        (
            &["--notify", "ntfy://n/a", "--report", "both"],
            "--report \"both\" has no effect: events go to the notification URLs alone, and \
             each says what it takes with report= in its query; remove it",
        ),
        (
            &["--notify", "ntfy://n/a", "--webhook-format", "slack"],
            "--webhook-format \"slack\" has no effect: events go to the notification URLs \
             alone, and only --sink webhook reads it; add `--sink webhook`, or remove it",
        ),
    ];
    for (args, want) in table {
        assert_eq!(&err(args, &[]), want, "{args:?}");
    }
}
