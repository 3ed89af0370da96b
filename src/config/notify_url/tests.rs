//! Every form of notification URL, read into its service, format, target
//! and route; bad ones refused in words that never show the token.

use super::*;

/// A URL's service, format, where requests go, and its name.
fn read(text: &str) -> (&'static str, WebhookFormat, String, Option<String>) {
    let u = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    (
        u.service,
        u.webhook.format,
        u.webhook.url.secret().to_owned(),
        u.name,
    )
}

#[test]
fn each_form_reads_as_its_service() {
    use WebhookFormat::*;
    // (URL, service, format, where requests go)
    let table: &[(&str, &str, WebhookFormat, &str)] = &[
        // shoutrrr's forms, as its documentation gives them.
        (
            "discord://SECRETTOKEN@693853386302554172",
            "discord",
            Discord,
            "https://discord.com/api/webhooks/693853386302554172/SECRETTOKEN",
        ),
        (
            "discord://SECRET_TOK-EN@1/?thread_id=55",
            "discord",
            Discord,
            "https://discord.com/api/webhooks/1/SECRET_TOK-EN?thread_id=55",
        ),
        (
            "slack://hook:T00000000-B00000000-SECRETxxxxxxxxxxxxxxxxx@webhook",
            "slack",
            Slack,
            "https://hooks.slack.com/services/T00000000/B00000000/SECRETxxxxxxxxxxxxxxxxx",
        ),
        (
            "slack://T00000000/B00000000/SECRETxxxxxxxxxxxxxxxxx",
            "slack",
            Slack,
            "https://hooks.slack.com/services/T00000000/B00000000/SECRETxxxxxxxxxxxxxxxxx",
        ),
        (
            "slack://ShoutrrrBot@T00000000/B00000000/SECRETxx/?color=good",
            "slack",
            Slack,
            "https://hooks.slack.com/services/T00000000/B00000000/SECRETxx?color=good",
        ),
        (
            "telegram://110201543:SECRET-key_x@telegram?chats=@game_alerts",
            "telegram",
            Telegram,
            "https://api.telegram.org/bot110201543:SECRET-key_x/sendMessage?chat_id=@game_alerts",
        ),
        (
            "telegram://110201543:SECRET@telegram/?channels=-1001234567890:42&preview=no",
            "telegram",
            Telegram,
            "https://api.telegram.org/bot110201543:SECRET/sendMessage\
             ?chat_id=-1001234567890&message_thread_id=42&preview=no",
        ),
        (
            "ntfy://ntfy.sh/game-alerts",
            "ntfy",
            Ntfy,
            "https://ntfy.sh/game-alerts",
        ),
        (
            "ntfy://:tk_SECRET@ntfy.example:8080/alerts?scheme=http&tags=x",
            "ntfy",
            Ntfy,
            "http://:tk_SECRET@ntfy.example:8080/alerts?tags=x",
        ),
        (
            "ntfy://ops:SECRET@ntfy.example/alerts?scheme=https",
            "ntfy",
            Ntfy,
            "https://ops:SECRET@ntfy.example/alerts",
        ),
        ("ntfy:///alerts", "ntfy", Ntfy, "https://ntfy.sh/alerts"),
        (
            "generic+https://alerts.internal/hook?key=SECRET",
            "generic",
            Envelope,
            "https://alerts.internal/hook?key=SECRET",
        ),
        (
            "generic+http://127.0.0.1:9/x",
            "generic",
            Envelope,
            "http://127.0.0.1:9/x",
        ),
        (
            "generic+https://discord.com/api/webhooks/1/SECRET",
            "generic",
            Envelope,
            "https://discord.com/api/webhooks/1/SECRET",
        ),
        // The services' own URLs, known by their hosts.
        (
            "https://discord.com/api/webhooks/1/SECRET",
            "discord",
            Discord,
            "https://discord.com/api/webhooks/1/SECRET",
        ),
        (
            "https://discordapp.com/api/webhooks/1/SECRET",
            "discord",
            Discord,
            "https://discordapp.com/api/webhooks/1/SECRET",
        ),
        (
            "https://canary.discord.com/api/webhooks/1/SECRET/slack",
            "slack",
            Slack,
            "https://canary.discord.com/api/webhooks/1/SECRET/slack",
        ),
        (
            "HTTPS://Hooks.Slack.com/services/T/B/SECRET",
            "slack",
            Slack,
            "https://Hooks.Slack.com/services/T/B/SECRET",
        ),
        (
            "https://api.telegram.org/bot1:SECRET/sendMessage?chat_id=-5",
            "telegram",
            Telegram,
            "https://api.telegram.org/bot1:SECRET/sendMessage?chat_id=-5",
        ),
        (
            "https://ntfy.sh/alerts",
            "ntfy",
            Ntfy,
            "https://ntfy.sh/alerts",
        ),
        // Any other URL: the envelope, or what format= says.
        (
            "https://alerts.internal/x#frag",
            "generic",
            Envelope,
            "https://alerts.internal/x#frag",
        ),
        (
            "https://evil-discord.com/api/webhooks/1/SECRET",
            "generic",
            Envelope,
            "https://evil-discord.com/api/webhooks/1/SECRET",
        ),
        (
            "https://discord.com.evil.example/x",
            "generic",
            Envelope,
            "https://discord.com.evil.example/x",
        ),
        (
            "http://127.0.0.1:8080/hook?format=discord",
            "discord",
            Discord,
            "http://127.0.0.1:8080/hook",
        ),
        (
            "http://127.0.0.1:8080/topic?x=1&format=ntfy&y=2",
            "ntfy",
            Ntfy,
            "http://127.0.0.1:8080/topic?x=1&y=2",
        ),
        (
            "http://127.0.0.1:8080/bot1:X/sendMessage?chat_id=-5&format=telegram",
            "telegram",
            Telegram,
            "http://127.0.0.1:8080/bot1:X/sendMessage?chat_id=-5",
        ),
        (
            "https://discord.com/api/webhooks/1/SECRET?format=envelope",
            "generic",
            Envelope,
            "https://discord.com/api/webhooks/1/SECRET",
        ),
        (
            "https://h.example/x?_name=theirs&name=ours&_min=1",
            "generic",
            Envelope,
            "https://h.example/x?name=theirs&min=1",
        ),
    ];
    for (text, service, format, target) in table {
        let (s, f, t, _) = read(text);
        assert_eq!((s, f, t.as_str()), (*service, *format, *target), "{text}");
    }
}

#[test]
fn the_query_options_say_what_the_sink_takes() {
    let u = parse(
        "discord://SECRET@1?name=on-call&report=both&min=not_running&games=eu-*,mc-%3F&wait=true",
    )
    .unwrap();
    assert_eq!(u.name.as_deref(), Some("on-call"));
    assert_eq!(u.route.report, Report::Both);
    assert_eq!(u.route.min, Kind::NotRunning);
    let games: Vec<bool> = ["eu-1", "mc-7", "us-1"]
        .iter()
        .map(|g| u.route.games.iter().any(|glob| glob.matches(g)))
        .collect();
    assert_eq!(games, [true, true, false]);
    assert_eq!(
        u.webhook.url.secret(),
        "https://discord.com/api/webhooks/1/SECRET?wait=true"
    );
    // The defaults: incidents, of every kind, of every game, no name.
    let u = parse("ntfy://ntfy.sh/t").unwrap();
    assert_eq!(u.route, Route::all(Report::Incidents));
    assert_eq!(u.name, None);
    for (min, kind) in [
        ("restarted", Kind::Restarted),
        ("unhealthy", Kind::Unhealthy),
        ("not_running", Kind::NotRunning),
        ("crash_loop", Kind::CrashLoop),
    ] {
        let u = parse(&format!("ntfy://ntfy.sh/t?min={min}")).unwrap();
        assert_eq!(u.route.min, kind);
    }
    assert_eq!(
        parse("ntfy://ntfy.sh/t?report=facts").unwrap().route.report,
        Report::Facts
    );
}

#[test]
fn bad_urls_are_refused_saying_why_without_the_token() {
    let globs = vec!["g"; MAX_GLOBS + 1].join(",");
    let long = format!("https://h.example/{}", "S".repeat(MAX_URL_BYTES));
    // (URL, what the message says)
    let table: &[(&str, &str)] = &[
        ("discord://123456", "the token is missing"),
        ("discord://SECRET@abc", "the webhook id must be digits"),
        (
            "discord://SECRET:X@123",
            "the token is missing or holds other",
        ),
        ("discord://SECRET@123/extra", "has no path after the host"),
        ("discord://SECRET@123#x", "a #fragment means nothing here"),
        ("slack://xoxb:SECRET@C0123", "Slack's bot API"),
        ("slack://hook:SECRET@webhook", "three parts"),
        ("slack://T000/SECRET", "three parts"),
        (
            "slack://other:SECRET@webhook",
            "expected slack://hook:A-B-C@webhook",
        ),
        ("telegram://SECRET@telegram?chats=1", "not DIGITS:KEY"),
        ("telegram://1:SECRET@telegram", "chats= is missing"),
        ("telegram://1:SECRET@telegram?chats=1,2", "one chat a URL"),
        (
            "telegram://1:SECRET@telegram?chats=abc",
            "must be a chat id",
        ),
        (
            "telegram://1:SECRET@telegram?chats=1&channels=2",
            "both given",
        ),
        ("ntfy://ntfy.sh", "the topic is missing"),
        (
            "ntfy://ntfy.sh/t?scheme=ftp",
            "scheme= must be http or https",
        ),
        ("ftp://h/SECRET", "the scheme must be discord, slack"),
        ("SECRET", "expected a URL"),
        ("https:///SECRET", "expected an http:// or https:// URL"),
        ("https://h:99999/SECRET", "the port must be a number"),
        ("https://h/SECRET?min=fatal", "min= must be restarted"),
        ("https://h/SECRET?report=all", "report= must be facts"),
        ("https://h/SECRET?format=teams", "format= must be envelope"),
        ("https://h/SECRET?name=a.b", "name= must be letters"),
        ("https://h/SECRET?name=-a", "name= must be letters"),
        ("https://h/SECRET?name=stdout", "the stdout sink's"),
        ("https://h/SECRET?games=a,,b", "an empty game pattern"),
        (
            "https://h/SECRET?min=unhealthy&min=crash_loop",
            "min= is given twice",
        ),
        ("https://h/SECRET\n", "a control character"),
        ("https://h/SECRET\0x", "a control character"),
        ("https://h/SE CRET", "holds a space"),
        ("https://h/SECRETé", "outside printable ASCII"),
        (
            "https://api.telegram.org/bot1:SECRET/sendMessage",
            "needs the chat in the query",
        ),
        (
            "http://h/SECRET?chat_id=1&chat_id=2&format=telegram",
            "one chat_id",
        ),
        ("ntfy://us%0Aer:SECRET@h/t", "Authorization header"),
    ];
    for (text, want) in table {
        let why = parse(text).map(|u| format!("{u:?}")).unwrap_err();
        assert!(why.contains(want), "{text:?}: {why}");
        assert!(!why.contains("SECRET"), "{text:?}: {why}");
    }
    for text in [long, format!("https://h/SECRET?games={globs}")] {
        let why = parse(&text).unwrap_err();
        assert!(why.contains("over"), "{why}");
        assert!(!why.contains("SECRET") && !why.contains("SSS"), "{why}");
    }
}

#[test]
fn a_telegram_url_naming_several_chats_is_a_sink_for_each() {
    let urls =
        parse_all("telegram://1:SECRET@telegram?chats=@game_alerts,-1001234567890:42&name=ops")
            .unwrap();
    let got: Vec<(String, Option<String>)> = urls
        .into_iter()
        .map(|u| (u.webhook.url.secret().to_owned(), u.name))
        .collect();
    assert_eq!(
        got,
        [
            (
                "https://api.telegram.org/bot1:SECRET/sendMessage?chat_id=@game_alerts".to_owned(),
                Some("ops-1".to_owned())
            ),
            (
                "https://api.telegram.org/bot1:SECRET/sendMessage?chat_id=-1001234567890\
                 &message_thread_id=42"
                    .to_owned(),
                Some("ops-2".to_owned())
            ),
        ]
    );
    // One chat, or another service: one URL, as `parse` reads it.
    assert_eq!(
        parse_all("telegram://1:K@telegram?channels=5")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(parse_all("ntfy://ntfy.sh/a,b").unwrap().len(), 1);
    // The same chat twice is refused, not told everything twice.
    let why = parse_all("telegram://1:SECRET@telegram?chats=@a,@a")
        .err()
        .unwrap();
    assert_eq!(why, "chats= names the chat @a twice");
    // A bad chat among them refuses the whole URL.
    let why = parse_all("telegram://1:SECRET@telegram?chats=5,abc")
        .err()
        .unwrap();
    assert!(why.contains("chats= must be"), "{why}");
}
