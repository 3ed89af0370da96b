//! The log tail an incident carries: the Docker client's read against a
//! fake engine (frames, a TTY's bytes, a malformed header, a frame claiming
//! 4 GiB, a hang, a flood) and against the real dockerd (a TTY and none,
//! a secret, a megabyte line, no log driver); then the whole path, from a
//! game's death to its `incident_opened` on stdout.

use std::time::Duration;

use rtinspect::docker::{DockerClient, DockerError};
use rtinspect::log_tail::LogTail;

use crate::support::{
    Containers, Daemon, FakeEngine, Reply, StderrLines, bin, envelopes, first_tick, hex_id,
    inspect_body, labelled_list, live_docker, log_answer, log_frame, of_type, thread_count,
    wait_until,
};

fn client(socket: &std::path::Path) -> DockerClient {
    DockerClient::new(socket, Duration::from_secs(5), Duration::from_secs(60))
}

fn lines(tail: LogTail) -> Vec<String> {
    match tail {
        LogTail::Lines(lines) => lines,
        LogTail::Unavailable(why) => panic!("no tail: {why}"),
    }
}

#[test]
fn the_client_reads_frames_and_a_ttys_bytes_alike() {
    let framed = [
        log_frame(1, b"out 1\n"),
        log_frame(2, b"err 1\n"),
        log_frame(1, b"\x1b[31mred\x1b[0m\n"),
    ]
    .concat();
    let tty = b"line 1\r\nline 2\r\n".to_vec();
    let engine = FakeEngine::start(move |path| {
        if path.contains("/containers/framed/logs?") {
            log_answer(&framed)
        } else {
            log_answer(&tty)
        }
    });
    let docker = client(&engine.socket);
    let tail = docker
        .log_tail("framed", 10, Duration::from_secs(5))
        .unwrap();
    assert_eq!(lines(tail), ["out 1", "err 1", "red"]);
    let tail = docker.log_tail("tty", 10, Duration::from_secs(5)).unwrap();
    assert_eq!(lines(tail), ["line 1", "line 2"]);
    let asked = engine.requests();
    assert!(
        asked.contains(&"/v1.41/containers/framed/logs?stdout=1&stderr=1&tail=127".to_owned()),
        "{asked:?}"
    );
}

#[test]
fn a_malformed_frame_header_is_an_error_not_a_tail() {
    let body = [
        log_frame(1, b"fine\n"),
        vec![7, 1, 2, 3, 0, 0, 0, 4],
        b"junk".to_vec(),
    ]
    .concat();
    let engine = FakeEngine::start(move |_| log_answer(&body));
    let got = client(&engine.socket).log_tail("game-1", 10, Duration::from_secs(5));
    match got {
        Err(DockerError::Malformed(why)) => assert!(why.contains("header"), "{why}"),
        other => panic!("expected a malformed answer, got {other:?}"),
    }
}

#[test]
fn a_frame_claiming_4_gib_is_refused_at_its_header() {
    // The header claims 4 GiB; a few bytes follow, and the answer ends.
    let body = [vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], vec![b'a'; 100]].concat();
    let engine = FakeEngine::start(move |_| log_answer(&body));
    let got = client(&engine.socket).log_tail("game-1", 10, Duration::from_secs(5));
    match got {
        Err(DockerError::Malformed(why)) => assert!(why.contains("4294967295"), "{why}"),
        other => panic!("expected a refused frame, got {other:?}"),
    }
}

#[test]
fn a_flood_past_the_bound_is_not_read_to_its_end() {
    // 8 MiB of frames: the read stops at 2 MiB and says so.
    let body: Vec<u8> = (0..512)
        .flat_map(|_| log_frame(1, &[b'x'; 16 * 1024]))
        .collect();
    let engine = FakeEngine::start(move |_| log_answer(&body));
    let got = client(&engine.socket).log_tail("game-1", 10, Duration::from_secs(5));
    assert!(
        matches!(got, Err(DockerError::TooLarge(n)) if n == rtinspect::docker::LOG_READ_BOUND),
        "{got:?}"
    );
}

#[test]
fn a_hanging_logs_endpoint_costs_the_read_its_bound_only() {
    let engine = FakeEngine::start(|_| Reply::Hang);
    let got = client(&engine.socket).log_tail("game-1", 10, Duration::from_millis(250));
    assert!(
        matches!(got, Err(DockerError::Timeout(d)) if d == Duration::from_millis(250)),
        "{got:?}"
    );
}

#[test]
fn a_log_driver_that_cannot_be_read_back_says_why() {
    let engine = FakeEngine::start(|_| {
        Reply::Json(
            501,
            r#"{"message":"configured logging driver does not support reading"}"#.into(),
        )
    });
    let got = client(&engine.socket).log_tail("game-1", 10, Duration::from_secs(5));
    match got {
        Err(DockerError::Status {
            status: 501,
            message,
        }) => {
            assert_eq!(
                message,
                "configured logging driver does not support reading"
            )
        }
        other => panic!("expected Docker's refusal, got {other:?}"),
    }
}

/// A game's shell: ten numbered lines, then exit 3.
const TEN_LINES_THEN_3: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; exit 3";

/// A megabyte on one line (doubled twenty times), then the last words.
const A_MEGABYTE_LINE: &str = "s=x; i=0; while [ $i -lt 20 ]; do s=$s$s; i=$((i+1)); done; \
     printf '%s\\n' \"$s\"; echo last words; exit 1";

#[test]
fn the_real_dockerd_gives_the_same_lines_with_a_tty_and_without() {
    let Some(live) = live_docker() else {
        return;
    };
    let mut c = Containers::new(live, "tail-client");
    let plain = c.run("g-plain", &[], &["sh", "-c", TEN_LINES_THEN_3]);
    let tty = c.run("g-tty", &["-t"], &["sh", "-c", TEN_LINES_THEN_3]);
    let (plain, tty) = (plain.as_str(), tty.as_str());
    c.wait_exited(plain);
    c.wait_exited(tty);
    let docker = client(&live.socket);
    let want: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
    for id in [plain, tty] {
        let tail = docker.log_tail(id, 10, Duration::from_secs(5)).unwrap();
        assert_eq!(lines(tail), want, "{id}");
    }
    // Three asked for: the last three.
    let tail = docker.log_tail(tty, 3, Duration::from_secs(5)).unwrap();
    assert_eq!(lines(tail), ["line 8", "line 9", "line 10"]);
}

#[test]
fn the_real_dockerd_keeps_the_lines_before_a_megabyte_line() {
    // Docker logs the megabyte as 64 entries of 16 KiB, and counts entries.
    let Some(live) = crate::support::live_docker() else {
        return;
    };
    let mut c = crate::support::Containers::new(live, "tail-client-before");
    let shell = format!("for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; {A_MEGABYTE_LINE}");
    let id = c.run("g-before", &[], &["sh", "-c", &shell]);
    c.wait_exited(&id);
    let docker = client(&live.socket);
    let tail = lines(docker.log_tail(&id, 10, Duration::from_secs(5)).unwrap());
    let want: Vec<String> = (3..=10).map(|i| format!("line {i}")).collect();
    assert_eq!(tail[..8], want[..], "{tail:.60?}");
    assert!(
        tail[8].starts_with("xxxx") && tail[8].ends_with('…'),
        "{:.40}",
        tail[8]
    );
    assert_eq!(tail[9], "last words");
}

#[test]
fn the_real_dockerd_with_a_secret_a_megabyte_line_and_no_log_driver() {
    let Some(live) = live_docker() else {
        return;
    };
    let mut c = Containers::new(live, "tail-client-hostile");
    let secret = c.run(
        "g-secret",
        &[],
        &[
            "sh",
            "-c",
            "echo connecting with password=hunter2 to db; exit 1",
        ],
    );
    let huge = c.run("g-huge", &[], &["sh", "-c", A_MEGABYTE_LINE]);
    let silent = c.run(
        "g-silent",
        &["--log-driver", "none"],
        &["sh", "-c", "echo hi; exit 1"],
    );
    for id in [&secret, &huge, &silent] {
        c.wait_exited(id);
    }
    let docker = client(&live.socket);
    let tail = lines(
        docker
            .log_tail(&secret, 10, Duration::from_secs(5))
            .unwrap(),
    );
    assert_eq!(tail, ["connecting with password=… to db"]);
    let tail = lines(docker.log_tail(&huge, 10, Duration::from_secs(5)).unwrap());
    assert_eq!(tail.len(), 2, "{tail:?}");
    assert!(
        tail[0].starts_with("xxxx") && tail[0].ends_with('…'),
        "{:.40}",
        tail[0]
    );
    assert!(tail[0].len() <= rtinspect::log_tail::LINE_BYTES);
    assert_eq!(tail[1], "last words");
    match docker.log_tail(&silent, 10, Duration::from_secs(5)) {
        Err(DockerError::Status {
            status: 501,
            message,
        }) => {
            assert!(message.contains("does not support reading"), "{message}")
        }
        other => panic!("expected Docker's refusal, got {other:?}"),
    }
}

/// The `incident_opened` of each game, once every one of `games` has one.
fn openings(
    out: &StderrLines,
    games: &[&str],
) -> std::collections::HashMap<String, serde_json::Value> {
    let mut found = std::collections::HashMap::new();
    wait_until(
        Duration::from_secs(60),
        "every game's incident_opened",
        || {
            found = of_type(out, "incident_opened")
                .into_iter()
                .map(|e| (e["game_id"].as_str().unwrap_or_default().to_owned(), e))
                .collect();
            games.iter().all(|g| found.contains_key(*g))
        },
    );
    found
}

fn tail_of(event: &serde_json::Value) -> Vec<String> {
    let details = &event["details"];
    let Some(tail) = details["log_tail"].as_array() else {
        panic!("no log_tail in {details}");
    };
    tail.iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_games_death_opens_an_incident_carrying_its_last_lines() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "tail");
    let (daemon, out, err) = Daemon::watched(
        c.daemon()
            .args(["--report", "both", "--interval", "1h"])
            .env("RUST_LOG", "trace"),
    );
    first_tick(&err);
    // Each game dies after the first tick: its `die` event finds it.
    c.run("g-plain", &[], &["sh", "-c", TEN_LINES_THEN_3]);
    c.run("g-tty", &["-t"], &["sh", "-c", TEN_LINES_THEN_3]);
    c.run(
        "g-secret",
        &[],
        &["sh", "-c", "echo login password=hunter2 ok; exit 1"],
    );
    c.run("g-huge", &[], &["sh", "-c", A_MEGABYTE_LINE]);
    c.run(
        "g-silent",
        &["--log-driver", "none"],
        &["sh", "-c", "echo hi; exit 1"],
    );
    let games = ["g-plain", "g-tty", "g-secret", "g-huge", "g-silent"];
    let opened = openings(&out, &games);
    let ten: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
    assert_eq!(tail_of(&opened["g-plain"]), ten, "without a TTY");
    assert_eq!(tail_of(&opened["g-tty"]), ten, "with a TTY");
    assert_eq!(tail_of(&opened["g-secret"]), ["login password=… ok"]);
    let huge = tail_of(&opened["g-huge"]);
    assert_eq!(huge.len(), 2, "{huge:?}");
    assert!(
        huge[0].ends_with('…') && huge[0].len() <= 300,
        "{:.40}",
        huge[0]
    );
    assert_eq!(huge[1], "last words");
    let why = opened["g-silent"]["details"]["log_tail_unavailable"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(why, "configured logging driver does not support reading");
    // The facts of the same deaths carry no tail.
    let facts = envelopes(&out);
    assert!(
        facts
            .iter()
            .filter(|e| e["event_type"] == "inspect_unhealthy")
            .all(|e| e["details"].get("log_tail").is_none())
    );
    assert!(daemon.terminate().success());
    let everything = format!("{}{}", out.text(), err.text());
    assert!(!everything.contains("hunter2"), "the secret leaked");
}

/// A fake dockerd of `games` exited games (`g-0` is `hex_id(1)`, …) whose
/// logs endpoint answers each game's read with `logs(n)`.
fn exited_games(games: u32, logs: impl Fn(u32) -> Reply + Send + Sync + 'static) -> FakeEngine {
    let list = labelled_list((1..=games).map(|n| (n, format!("g-{}", n - 1))));
    FakeEngine::start(move |path| {
        if path.contains("/containers/json?") {
            return Reply::Json(200, list.clone());
        }
        let id = path.split('/').nth(3).unwrap_or_default();
        let n = (1..=games).find(|n| hex_id(*n) == id).unwrap_or(0);
        if path.contains("/logs?") {
            logs(n)
        } else {
            Reply::Json(200, inspect_body(id, 0, "exited", None))
        }
    })
}

/// `rtinspect run` over a fake dockerd, its events stream off: incidents
/// and facts on stdout, a Docker timeout far past the tail's wait.
fn run_over(engine: &FakeEngine) -> (Daemon, StderrLines, StderrLines) {
    Daemon::watched(
        bin()
            .args([
                "run",
                "--report",
                "both",
                "--events",
                "off",
                "--interval",
                "1h",
            ])
            .args([
                "--docker-timeout",
                "60s",
                "--docker-host",
                &engine.docker_host(),
            ])
            .env("RUST_LOG", "rtinspect=debug"),
    )
}

#[test]
fn a_hanging_or_garbled_logs_endpoint_never_holds_an_incident_back() {
    // g-0's logs never answer; g-1's frame header is garbage; g-2's claims 4 GiB.
    let engine = exited_games(3, |n| match n {
        1 => Reply::Hang,
        2 => log_answer(
            &[
                log_frame(1, b"ok\n"),
                vec![9, 9, 9, 9, 0, 0, 0, 1],
                b"x".to_vec(),
            ]
            .concat(),
        ),
        _ => log_answer(&[vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], vec![b'a'; 64]].concat()),
    });
    let (daemon, out, err) = run_over(&engine);
    // Within the wait of the test, far less than the 60 s Docker timeout
    // the read of g-0 still hangs in: only the 250 ms bound sends it.
    let opened = openings(&out, &["g-0", "g-1", "g-2"]);
    let why = |g: &str| {
        opened[g]["details"]["log_tail_unavailable"]
            .as_str()
            .unwrap_or_else(|| panic!("{g}: {}", opened[g]["details"]))
            .to_owned()
    };
    assert_eq!(why("g-0"), "not read within 250 ms");
    assert!(why("g-1").contains("header is malformed"), "{}", why("g-1"));
    assert!(
        why("g-2").contains("claims 4294967295 bytes"),
        "{}",
        why("g-2")
    );
    let made = err
        .first_with_all(&["incident_opened: not_running", "game_id=g-0 "])
        .unwrap();
    let sent = out
        .first_with_all(&["incident_opened", r#""game_id":"g-0""#])
        .unwrap();
    eprintln!(
        "g-0's incident made, then on stdout {:?} later",
        sent.saturating_duration_since(made)
    );
    let hanging = engine
        .requests()
        .iter()
        .filter(|r| r.contains(&format!("{}/logs?", hex_id(1))))
        .count();
    assert_eq!(hanging, 1, "one read of g-0, still hanging");
    assert!(daemon.terminate().success());
}

#[test]
fn a_fleets_crash_is_read_by_two_threads_and_every_incident_goes_in_time() {
    // 400 games down at once, and reads that never answer.
    let engine = exited_games(400, |_| Reply::Hang);
    let (daemon, out, err) = run_over(&engine);
    let games: Vec<String> = (0..400).map(|n| format!("g-{n}")).collect();
    let names: Vec<&str> = games.iter().map(String::as_str).collect();
    let opened = openings(&out, &names);
    for (game, e) in &opened {
        assert_eq!(
            e["details"]["log_tail_unavailable"], "not read within 250 ms",
            "{game}"
        );
    }
    let facts = envelopes(&out)
        .iter()
        .filter(|e| e["event_type"] == "inspect_unhealthy")
        .count();
    assert_eq!(facts, 400, "every fact too");
    // Two readers, each stuck in a read until its event's wait ended; the
    // reads nobody waited for any more were never made.
    let reads = engine
        .requests()
        .iter()
        .filter(|r| r.contains("/logs?"))
        .count();
    assert!(reads < 400, "{reads} reads made");
    eprintln!("{reads} of 400 reads made");
    let t0 = std::time::Instant::now() - Duration::from_secs(3600);
    let first = err.first_after(t0, "incident_opened: not_running").unwrap();
    let last_fact = out.last_at("inspect_unhealthy").unwrap();
    let last_incident = out.last_at("incident_opened").unwrap();
    eprintln!(
        "from the first incident made: last fact {:?}, last incident {:?}",
        last_fact.saturating_duration_since(first),
        last_incident.saturating_duration_since(first)
    );
    let threads = thread_count(daemon.id()).unwrap();
    eprintln!("{threads} threads");
    assert!(threads <= 10, "{threads} threads");
    assert!(!err.text().contains("panicked"));
    assert!(daemon.terminate().success());
}

#[test]
fn an_incident_waiting_for_its_tail_at_sigterm_is_delivered_not_lost() {
    let engine = exited_games(1, |_| Reply::Hang);
    let (daemon, out, err) = run_over(&engine);
    // The inspector has handed the incident on: it now waits for its tail.
    wait_until(Duration::from_secs(20), "the incident made", || {
        err.text().contains("incident_opened: not_running")
    });
    daemon.signal("-TERM");
    assert!(daemon.wait().success());
    let opened = of_type(&out, "incident_opened");
    assert_eq!(opened.len(), 1, "delivered before the exit");
    let why = opened[0]["details"]["log_tail_unavailable"]
        .as_str()
        .unwrap();
    assert!(
        ["not read within 250 ms", "rtinspect is stopping"].contains(&why),
        "{why}"
    );
}
