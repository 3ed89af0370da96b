//! Notification URLs (issue 28): several chats at once from `--notify` and
//! `--notify-file`, each a sink of its own (named, with its own queue,
//! spool, `rejected.jsonl` lines and metrics), each taking what its query
//! says; a notify file or URL an operator got wrong is refused at start,
//! naming it, its token masked; `notify-test` proves each one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{
    Containers, Daemon, Engine, HookReply, HookRequest, HookServer, TempDir, assert_no_secret, bin,
    first_tick, free_addr, game_box, http_get, json_lines, live_docker, run_on, sample, wait_until,
};

/// A notify file of `text` in `dir`, mode 600.
fn notify_file(dir: &TempDir, text: &[u8]) -> PathBuf {
    let path = dir.path().join("notify");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// `rtinspect once` with the notify file `file`: its exit status and stderr.
fn once_with(file: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(["once", "--docker-host", "unix:///nonexistent/docker.sock"])
        .arg("--notify-file")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_notify_file_an_operator_got_wrong_stops_the_start_naming_it_without_a_token() {
    let dir = TempDir::new("notify-attacks");
    let seventeen: String = (0..17)
        .map(|i| format!("https://h.example/SECRET{i}\n"))
        .collect();
    let ten_thousand: String = (0..10_000)
        .map(|i| format!("https://h.example/SECRET{i}?name=n{i}\n"))
        .collect();
    let comments: String = (0..10_000).map(|_| "#\n").collect();
    // (content, mode, what the one line says after the path)
    let table: &[(&[u8], u32, &str)] = &[
        (
            b"ntfy://:tk_SECRET@ntfy.sh/a\n",
            0o644,
            "others than its owner may use it (mode 0644); it holds a token: chmod 600 it",
        ),
        (b"ntfy://ntfy.sh/SECRET\xff\n", 0o600, "not UTF-8"),
        (
            b"ntfy://ntfy.sh/a\nhttps://h/SECRET\x00x\n",
            0o600,
            "line 2 (https://h/…): holds a control character",
        ),
        (
            b"https://h/SE\rCRET\n",
            0o600,
            "line 1 (https://h/…): holds a control character",
        ),
        (
            seventeen.as_bytes(),
            0o600,
            "line 17 (https://h.example/…): one sink too many: at most 16 in all",
        ),
        (ten_thousand.as_bytes(), 0o600, "over 65536 bytes"),
        (comments.as_bytes(), 0o600, "holds no URL"),
        (
            b"https://h/SECRET?name=chat\ndiscord://SECRET@1?name=chat\n",
            0o600,
            "line 2 (discord://…): the name chat is taken by another sink",
        ),
        (
            b"slack://xoxb:SECRET@C01\n",
            0o600,
            "line 1 (slack://…): Slack's bot API (an xoxb or xoxp token) is not supported",
        ),
    ];
    for (content, mode, want) in table {
        let path = notify_file(&dir, content);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(*mode))
            .unwrap();
        let (code, err) = once_with(&path, &[]);
        assert_eq!(code, Some(64), "{want}: {err}");
        let line = format!(
            "rtinspect: invalid --notify-file {:?}: {want}",
            path.to_str().unwrap()
        );
        assert!(err.starts_with(&line), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_no_secret(&err);
    }
    // A 10,000-line file of short comments and URLs: only its 17th URL is read to
    // be refused.
    let many: String = (0..10_000)
        .map(|i| match i % 500 {
            0 => format!("https://h.example/SECRET{i}\n"),
            _ => "#\n".to_owned(),
        })
        .collect();
    let path = notify_file(&dir, many.as_bytes());
    let (code, err) = once_with(&path, &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("line 8001 (https://h.example/…): one sink too many"),
        "{err}"
    );
    // A --notify URL beside them is counted with them, and named as the flag's.
    let path = notify_file(&dir, b"https://h/a?name=x\n");
    let (code, err) = once_with(&path, &["--notify", "https://h/SECRET?name=x"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("line 1 (https://h/…): the name x is taken by another sink"),
        "{err}"
    );
    let out = bin()
        .args(["once", "--notify", "ntfy://ntfy.sh/a", "--notify"])
        .arg("discord://SECRETTOKEN@12x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert_eq!(
        err.trim_end(),
        "rtinspect: invalid --notify URL 2 (discord://…): expected discord://TOKEN@WEBHOOK_ID: \
         the webhook id must be digits"
    );
}

/// The game ids a request names: a chat's text, an embed, a body.
fn names(req: &HookRequest, game: &str) -> bool {
    req.body.contains(game)
}

#[test]
fn each_notification_url_is_a_sink_of_its_own_with_its_route_spool_and_label() {
    let engine = Engine::start();
    engine.put(1, game_box("eu-1", "exited"));
    engine.put(2, game_box("us-1", "exited"));
    let team = HookServer::start(|_, _| HookReply::Status(204, Vec::new(), String::new()));
    let phone = HookServer::start(|_, _| HookReply::ok());
    // A chat that refuses every request: its refusals are its own.
    let refusing = HookServer::start(|_, _| {
        HookReply::Status(400, Vec::new(), "{\"message\":\"bad SECRETTOKEN\"}".into())
    });
    let dir = TempDir::new("notify-sinks");
    let state = TempDir::new("notify-sinks-state");
    let file = notify_file(
        &dir,
        format!(
            "# everything of every game to the team's chat\n\
             {}?format=discord&name=team\n\
             # the phone: what is down, of the eu games\n\
             ntfy://{}/oncall?scheme=http&min=not_running&games=eu-*\n\
             {}?format=telegram&chat_id=-100&games=nobody-*\n\
             {}?format=slack&report=both\n",
            team.url("/api/webhooks/1/SECRETTOKEN"),
            phone.addr,
            phone.url("/bot1:SECRETTOKEN/sendMessage"),
            refusing.url("/hook/SECRETTOKEN"),
        )
        .as_bytes(),
    );
    let metrics = free_addr();
    let (daemon, out, err) = run_on(
        &engine,
        "incidents",
        &[
            "--events",
            "off",
            "--interval",
            "300ms",
            "--notify-file",
            file.to_str().unwrap(),
            "--metrics-addr",
            &metrics,
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
    );
    wait_until(Duration::from_secs(30), "the chats told", || {
        team.requests().iter().any(|r| names(r, "us-1"))
            && team.requests().iter().any(|r| names(r, "eu-1"))
            && phone.requests().iter().any(|r| names(r, "eu-1"))
            && refusing.requests().len() >= 2
    });
    let exposition = http_get(&metrics, "/metrics").unwrap().1;
    engine.wait_lists(4);
    assert!(daemon.terminate().success(), "{}", err.text());
    assert_no_secret(&err.text());
    // The team's chat: both games, in Discord's shape.
    assert!(
        team.requests()
            .iter()
            .all(|r| r.json()["embeds"].is_array())
    );
    // The phone: the eu game alone, in ntfy's shape, at its path.
    let calls = phone.requests();
    assert!(calls.iter().all(|r| r.path == "/oncall"), "{calls:?}");
    assert!(calls.iter().all(|r| !names(r, "us-1")), "{calls:?}");
    assert_eq!(calls[0].header("priority"), Some("4"), "{calls:?}");
    // The telegram URL's games match neither: it was told nothing.
    assert!(
        calls.iter().all(|r| !r.path.starts_with("/bot")),
        "{calls:?}"
    );
    // Each sink by its name: its metrics, its refusals, its spool.
    for (name, delivered) in [("team", true), ("ntfy-2", true), ("telegram-3", false)] {
        let series = format!(
            "rtinspect_health_events_total{{sink=\"{name}\",event_type=\"incident_opened\"}}"
        );
        let n = sample(&exposition, &series).unwrap_or(0.0);
        assert_eq!(n > 0.0, delivered, "{series}: {exposition}");
    }
    assert!(
        sample(
            &exposition,
            "rtinspect_events_rejected_total{sink=\"slack-4\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{exposition}"
    );
    let rejected = std::fs::read_to_string(state.path().join("rejected.jsonl")).unwrap();
    let lines = json_lines(&rejected);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["sink"] == "slack-4"), "{rejected}");
    assert!(!rejected.contains("SECRETTOKEN"), "{rejected}");
    let stdout = out.text();
    assert!(stdout.contains("incident_opened"), "{stdout}");
}

#[test]
fn notify_test_says_one_line_for_each_named_sink_and_refuses_a_bad_url_first() {
    let up = HookServer::start(|_, _| HookReply::Status(204, Vec::new(), String::new()));
    let down = HookServer::start(|_, _| HookReply::Status(401, Vec::new(), "no".into()));
    let dir = TempDir::new("notify-test-urls");
    let file = notify_file(
        &dir,
        format!(
            "{}?format=discord&name=team\nntfy://{}/oncall?scheme=http\n",
            up.url("/api/webhooks/1/SECRETTOKEN"),
            down.addr
        )
        .as_bytes(),
    );
    let out = bin()
        .args(["notify-test", "--sink", "stdout"])
        .arg("--notify-file")
        .arg(&file)
        .args([
            "--notify",
            &format!("{}?name=audit", up.url("/SECRETTOKEN")),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let heads: Vec<&str> = lines
        .iter()
        .filter(|l| !l.starts_with('{'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        heads,
        [
            "stdout",
            "audit (envelope, http",
            "team (discord, http",
            "ntfy-3 (ntfy, http"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("ntfy-3 (ntfy, http://"), "{stdout}");
    assert!(stdout.contains(": FAILED in "), "{stdout}");
    assert!(stderr.contains("1 of 4 sinks failed (ntfy-3)"), "{stderr}");
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);
    assert!(up.requests().len() == 2 && down.requests().len() == 1);
    // A URL that does not parse stops it before anything is sent.
    let file = notify_file(
        &dir,
        format!("{}\ntelegram://1:SECRETTOKEN@telegram\n", up.url("/x")).as_bytes(),
    );
    let out = bin()
        .arg("notify-test")
        .arg("--notify-file")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("line 2 (telegram://…): expected telegram://TOKEN@telegram?chats=CHAT"),
        "{stderr}"
    );
    assert_no_secret(&stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(up.requests().len(), 2, "nothing sent");
}

/// A game's shell under `--restart=always`: it dies 2 s after its first
/// start, and runs after the restart.
const DIES_ONCE: &str = "test -e /ran || { : > /ran; sleep 2; exit 3; }; sleep 3600";

/// What a chat was told of `game`: the bodies that name it, lowercased.
fn told(hook: &HookServer, game: &str, accepted_after: Option<Instant>) -> Vec<String> {
    hook.requests()
        .iter()
        .filter(|r| accepted_after.is_none_or(|t| r.at >= t))
        .filter(|r| names(r, game))
        .map(|r| r.body.to_lowercase())
        .collect()
}

#[test]
fn three_chats_from_one_notify_file_each_get_their_route_and_one_down_delays_no_other() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "notify-routes");
    let started = Instant::now();
    let outage = Duration::from_secs(60);
    // Discord's, ntfy's and Telegram's shapes, on receivers of their own;
    // the Telegram one down (503) for the first minute.
    let team = HookServer::start(|_, _| HookReply::Status(204, Vec::new(), String::new()));
    let phone = HookServer::start(|_, _| HookReply::ok());
    let tg = HookServer::start(move |_, _| {
        if started.elapsed() < outage {
            HookReply::Status(503, Vec::new(), "down".into())
        } else {
            HookReply::Status(200, Vec::new(), "{\"ok\":true,\"result\":{}}".into())
        }
    });
    let dir = TempDir::new("notify-routes");
    let file = notify_file(
        &dir,
        format!(
            "# everything of the nt games\n\
             {}?format=discord&name=team&games=nt-*\n\
             # the phone: crash loops alone\n\
             ntfy://{}/oncall?scheme=http&min=crash_loop&games=nt-*\n\
             # telegram: what is down or looping\n\
             {}?chat_id=-100123&format=telegram&min=not_running&games=nt-*&name=tg\n",
            team.url("/api/webhooks/1/SECRETTOKEN"),
            phone.addr,
            tg.url("/bot1:SECRETTOKEN/sendMessage"),
        )
        .as_bytes(),
    );
    let (daemon, out, err) = Daemon::watched(
        c.daemon()
            .args(["--sink", "stdout", "--report", "incidents"])
            .args(["--interval", "2s", "--crash-loop-window", "1m"])
            .args(["--recover-after", "5s", "--notify-file"])
            .arg(&file),
    );
    first_tick(&err);
    // A crash loop under restart=always; a game that dies once, then runs;
    // a crash loop of a game no games= names.
    let loop_cmd = ["sh", "-c", "sleep 1; exit 3"];
    c.run("nt-loop", &["--restart=always"], &loop_cmd);
    let loop_started = Instant::now();
    c.run("nt-once", &["--restart=always"], &["sh", "-c", DIES_ONCE]);
    c.run("xx-loop", &["--restart=always"], &loop_cmd);
    let looping = |hook: &HookServer| {
        told(hook, "nt-loop", None)
            .iter()
            .any(|b| b.contains("crash loop"))
    };
    wait_until(Duration::from_secs(60), "the crash loop told", || {
        looping(&team) && looping(&phone)
    });
    let first = |hook: &HookServer| {
        hook.requests()
            .iter()
            .find(|r| names(r, "nt-loop") && r.body.to_lowercase().contains("crash loop"))
            .map(|r| r.at.duration_since(loop_started))
    };
    let (team_took, phone_took) = (first(&team).unwrap(), first(&phone).unwrap());
    // The one down is retried meanwhile, and neither other waited for it.
    assert!(
        started.elapsed() < outage,
        "the others were told only after the outage: {}",
        err.text()
    );
    wait_until(Duration::from_secs(20), "the telegram chat tried", || {
        !tg.requests().is_empty()
    });
    assert!(started.elapsed() < outage, "tried only after the outage");
    wait_until(Duration::from_secs(90), "the telegram chat told", || {
        told(&tg, "nt-loop", Some(started + outage))
            .iter()
            .any(|b| b.contains("crash loop"))
    });
    let tg_took = tg
        .requests()
        .iter()
        .find(|r| r.at >= started + outage && names(r, "nt-loop"))
        .map(|r| r.at.duration_since(loop_started))
        .unwrap();
    eprintln!(
        "the crash loop told, from the game's start: team (Discord) {:.1} s, phone (ntfy) {:.1} s, \
         tg (Telegram, down for the first {} s) {:.1} s",
        team_took.as_secs_f64(),
        phone_took.as_secs_f64(),
        outage.as_secs(),
        tg_took.as_secs_f64()
    );
    // nt-once's single restart: the team alone.
    let stdout = out.text();
    wait_until(Duration::from_secs(30), "nt-once's restart told", || {
        !told(&team, "nt-once", None).is_empty()
    });
    assert!(stdout.contains("\"game_id\":\"nt-once\""), "{stdout}");
    // xx-loop: looping too, and told to no chat.
    assert!(stdout.contains("\"game_id\":\"xx-loop\""), "{stdout}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.terminate().success(), "{}", err.text());
    for hook in [&team, &phone, &tg] {
        assert!(told(hook, "xx-loop", None).is_empty());
    }
    for hook in [&phone, &tg] {
        assert!(told(hook, "nt-once", None).is_empty());
        // The loop's first message there is its crash loop, not its opening.
        let bodies = told(hook, "nt-loop", None);
        assert!(
            bodies.iter().all(|b| b.contains("crash loop")),
            "{bodies:#?}"
        );
    }
    // In each chat's own shape.
    assert!(
        team.requests()
            .iter()
            .all(|r| r.json()["embeds"].is_array())
    );
    assert!(phone.requests().iter().all(|r| r.path == "/oncall"));
    let last = tg.requests().last().unwrap().json();
    assert_eq!(last["chat_id"], -100123, "{last}");
    assert_no_secret(&err.text());
}

#[test]
fn two_hosts_on_one_channel_each_message_and_digest_names_its_host() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "notify-hosts");
    let chat = HookServer::start(|_, _| HookReply::ok());
    let machine = HookServer::start(|_, _| HookReply::ok());
    let flag = TempDir::new("notify-hosts-flag");
    let mut daemons = Vec::new();
    for host in ["alpha", "beta"] {
        daemons.push(Daemon::watched(
            c.daemon()
                .args(["--host-id", host, "--interval", "2s"])
                .args([
                    "--notify",
                    &format!("{}?format=slack", chat.url("/chat/SECRETTOKEN")),
                ])
                .args(["--notify", &machine.url("/events")]),
        ));
    }
    for (_, _, err) in &daemons {
        first_tick(err);
    }
    // Two games that fall together, again and again: each host's chat gets
    // digests of them as well as single messages.
    for game in ["h-1", "h-2"] {
        c.run_restarting(
            game,
            &flag,
            "while ! test -e /flag/go; do sleep 0.1; done; sleep 1; exit 3",
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(flag.path().join("go"), b"").unwrap();
    let texts = |hook: &HookServer| -> Vec<String> {
        hook.requests()
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let digest_of = |host: &str| {
        let head = format!("rtinspect: 2 incidents on {host}\n");
        move |t: &String| t.starts_with(&head)
    };
    wait_until(Duration::from_secs(90), "a digest from each host", || {
        let t = texts(&chat);
        t.iter().any(digest_of("alpha")) && t.iter().any(digest_of("beta"))
    });
    // And a game that falls alone, once: a single message from each host.
    c.run("h-solo", &["--restart=always"], &["sh", "-c", DIES_ONCE]);
    let single_from = |host: &str| {
        let head = format!("rtinspect on {host}: ");
        texts(&chat)
            .iter()
            .any(|t| t.starts_with(&head) && t.contains("h-solo"))
    };
    wait_until(
        Duration::from_secs(60),
        "a single message from each host",
        || single_from("alpha") && single_from("beta"),
    );
    std::thread::sleep(Duration::from_secs(3));
    for (daemon, _, err) in daemons {
        assert!(daemon.terminate().success(), "{}", err.text());
        assert_no_secret(&err.text());
    }
    let all = texts(&chat);
    for text in &all {
        let hosts: Vec<&str> = ["alpha", "beta"]
            .into_iter()
            .filter(|h| {
                text.starts_with(&format!("rtinspect on {h}: "))
                    || (text.starts_with("rtinspect: ") && text.contains(&format!(" on {h}")))
            })
            .collect();
        assert_eq!(hosts.len(), 1, "names one host: {text}");
        // A digest names it in its title and on every line.
        if text.starts_with("rtinspect: ") {
            let host = hosts[0];
            assert!(
                text.lines().all(|l| l.contains(&format!(" on {host}"))),
                "{text}"
            );
        }
    }
    let singles = all
        .iter()
        .filter(|t| t.starts_with("rtinspect on "))
        .count();
    eprintln!(
        "{} messages to the one chat, {singles} single, {} digests, each naming its host",
        all.len(),
        all.len() - singles
    );
    // The envelope says the host too, when it is named.
    let envelopes: Vec<serde_json::Value> = machine.requests().iter().map(|r| r.json()).collect();
    assert!(!envelopes.is_empty());
    let mut hosts: Vec<&str> = envelopes
        .iter()
        .map(|e| e["host_id"].as_str().expect("host_id"))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts, ["alpha", "beta"]);
}
