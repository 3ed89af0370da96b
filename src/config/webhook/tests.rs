//! The webhook settings: the URL and its views, and the options through
//! the whole parse (URL, file, format, CA file).

use super::*;
use crate::config::sinks::{Sink, SinkKind};
use crate::config::tests::{SLACK, config, err, parse};

#[test]
fn the_url_is_shown_as_scheme_and_host_only() {
    // (URL, shown)
    let table = [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
            "https://hooks.slack.com/…",
        ),
        (
            "https://discord.com/api/webhooks/123/SECRETTOKEN/slack",
            "https://discord.com/…",
        ),
        (
            "http://127.0.0.1:8080/hook?token=SECRET",
            "http://127.0.0.1:8080/…",
        ),
        (
            "http://127.0.0.1:8080?token=SECRET",
            "http://127.0.0.1:8080/…",
        ),
        ("https://user:SECRET@example.org/x", "https://example.org/…"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org/", "https://example.org/"),
        ("http://[::1]:9/SECRET", "http://[::1]:9/…"),
        ("http://[::1]/SECRET", "http://[::1]/…"),
        ("http://h:/SECRET", "http://h/…"),
        ("https://h/SECRET#part", "https://h/…"),
        ("HTTPS://Example.org/SECRET", "https://Example.org/…"),
    ];
    for (url, shown) in table {
        let u = WebhookUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(u.shown(), shown, "{url}");
        assert_eq!(u.to_string(), shown);
        assert!(!format!("{u:?}").contains("SECRET"), "{u:?}");
        assert_eq!(u.secret(), url);
    }
}

#[test]
fn userinfo_is_decoded_and_can_be_left_out_of_the_url() {
    // (URL, userinfo, the URL without it)
    let table = [
        (
            "https://:tk_SECRET@ntfy.sh/alerts",
            Some(("", Some("tk_SECRET"))),
            "https://ntfy.sh/alerts",
        ),
        (
            "https://ops:p%40ss@ntfy.example:8443/a?x=1#f",
            Some(("ops", Some("p@ss"))),
            "https://ntfy.example:8443/a?x=1#f",
        ),
        (
            "https://tk_SECRET@ntfy.sh",
            Some(("tk_SECRET", None)),
            "https://ntfy.sh",
        ),
        ("https://ntfy.sh/a@b", None, "https://ntfy.sh/a@b"),
    ];
    for (url, userinfo, without) in table {
        let u = WebhookUrl::parse(url).unwrap();
        let got = u.userinfo();
        let got = got
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass.as_deref()));
        assert_eq!(got, userinfo, "{url}");
        assert_eq!(u.secret_without_userinfo(), without, "{url}");
    }
}

#[test]
fn a_query_parameter_is_taken_out_of_the_url() {
    // (URL, chat_id, the URL without it)
    let table = [
        (
            "https://api.telegram.org/botT:K/sendMessage?chat_id=-100123",
            Some(("-100123", "https://api.telegram.org/botT:K/sendMessage")),
        ),
        (
            "https://h/bot1/sendMessage?a=1&chat_id=%40ops+room&b=2",
            Some(("@ops room", "https://h/bot1/sendMessage?a=1&b=2")),
        ),
        ("https://h/bot1/sendMessage?chat=1", None),
        ("https://h/bot1/sendMessage", None),
    ];
    for (url, want) in table {
        let got = WebhookUrl::parse(url).unwrap().take_query("chat_id");
        let got = got.as_ref().map(|(v, rest)| (v.as_str(), rest.as_str()));
        assert_eq!(got, want, "{url}");
    }
}

#[test]
fn only_absolute_http_urls_with_a_host_are_taken() {
    for (url, why) in [
        ("", "expected an http:// or https:// URL"),
        (
            "hooks.slack.com/services/SECRET",
            "expected an http:// or https:// URL",
        ),
        ("/services/SECRET", "expected an http:// or https:// URL"),
        (
            "ftp://example.org/SECRET",
            "the scheme must be http or https",
        ),
        ("unix:///run/x.sock", "the scheme must be http or https"),
        ("://x/SECRET", "expected an http:// or https:// URL"),
        (
            "https://exa mple.org/SECRET",
            "expected an http:// or https:// URL",
        ),
        ("https:///SECRET", "expected an http:// or https:// URL"),
        (
            "https://h:99999/SECRET",
            "the port must be a number from 1 to 65535",
        ),
        (
            "https://h:0/SECRET",
            "the port must be a number from 1 to 65535",
        ),
        (
            "https://u:p@h:70000/SECRET",
            "the port must be a number from 1 to 65535",
        ),
    ] {
        let got = WebhookUrl::parse(url).map(|u| u.shown().to_owned());
        match got {
            Err(e) => assert!(e.starts_with(why), "{url:?}: {e}"),
            Ok(shown) => panic!("{url:?} was taken as {shown}"),
        }
    }
}

#[test]
fn the_webhook_sink_takes_its_url_format_and_ca_file() {
    let c = config(&["--sink", "webhook", "--webhook-url", SLACK], &[]);
    let Sink::Webhook(WebhookSettings::Given(w)) = &c.sinks[0].sink else {
        panic!("{:?}", c.sinks[0].sink);
    };
    assert_eq!(w.url.secret(), SLACK);
    assert_eq!(w.format, WebhookFormat::Envelope);
    assert_eq!(w.ca_file, None);
    assert!(!format!("{c:?}").contains("SECRETTOKEN"), "{c:?}");

    let c = config(
        &[
            "--webhook-format=slack",
            "--webhook-ca-file",
            "/etc/rt/ca.pem",
        ],
        &[
            ("RTINSPECT_SINK", "webhook"),
            ("RTINSPECT_WEBHOOK_URL", SLACK),
            ("RTINSPECT_DATABASE_URL", "host=db"),
        ],
    );
    let Sink::Webhook(WebhookSettings::Given(w)) = &c.sinks[0].sink else {
        panic!("{:?}", c.sinks[0].sink);
    };
    assert_eq!(w.format, WebhookFormat::Slack);
    assert_eq!(
        w.ca_file,
        Some(CaFile {
            path: PathBuf::from("/etc/rt/ca.pem"),
            named_by: "--webhook-ca-file".into()
        })
    );
    assert!(
        c.database.is_some(),
        "records from the database, events to a webhook"
    );
    assert_eq!(config(&[], &[]).sinks[0].sink.kind(), SinkKind::Stdout);
}

#[test]
fn a_chat_url_that_cannot_be_sent_is_refused_at_start() {
    let hook = |format: &str, url: &str| {
        err(
            &[
                "--sink",
                "webhook",
                "--webhook-format",
                format,
                "--webhook-url",
                url,
            ],
            &[],
        )
    };
    for url in [
        "https://:@ntfy.sh/alerts",
        "https://:tk%0D%0AInjected@ntfy.sh/alerts",
        "https://:tk%FF@ntfy.sh/alerts",
        "https://:tk%20x@ntfy.sh/alerts",
    ] {
        let e = hook("ntfy", url);
        assert!(e.contains("the ntfy format sends"), "{url}: {e}");
        assert!(!e.contains("tk"), "the value is not shown: {e}");
    }
    for url in [
        "https://:tk_abc@ntfy.sh/alerts",
        "https://ops:pa%20ss@ntfy.sh/alerts",
    ] {
        let args = [
            "--sink",
            "webhook",
            "--webhook-format",
            "ntfy",
            "--webhook-url",
            url,
        ];
        assert!(parse(&args, &[]).is_ok(), "{url}");
    }
    let twice = hook(
        "telegram",
        "https://api.telegram.org/botT:K/sendMessage?chat_id=1&chat_id=2",
    );
    assert!(twice.contains("takes one chat_id"), "{twice}");
}
