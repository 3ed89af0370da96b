//! The log tail an incident carries: the Docker client's read against a
//! fake engine (frames, a TTY's bytes, a malformed header, a frame claiming
//! 4 GiB, a hang, a flood) and against the real dockerd (a TTY and none,
//! a secret, a megabyte line, no log driver); then the whole path, from a
//! game's death to its `incident_opened` on stdout.

use std::time::Duration;

use rtinspect::docker::{DockerClient, DockerError};
use rtinspect::log_tail::LogTail;

use crate::support::{FakeEngine, Reply, log_answer, log_frame};

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
        asked.contains(&"/v1.41/containers/framed/logs?stdout=1&stderr=1&tail=10".to_owned()),
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
    // 8 MiB of frames: the read stops at 1 MiB and says so.
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

fn exited(c: &crate::support::Containers, id: &str) {
    crate::support::wait_until(Duration::from_secs(30), "exited", || {
        c.inspect(id, "{{.State.Status}}") == "exited"
    });
}

#[test]
fn the_real_dockerd_gives_the_same_lines_with_a_tty_and_without() {
    let Some(live) = crate::support::live_docker() else {
        return;
    };
    let mut c = crate::support::Containers::new(live, "tail-client");
    let plain = c.run("g-plain", &[], &["sh", "-c", TEN_LINES_THEN_3]);
    let tty = c.run("g-tty", &["-t"], &["sh", "-c", TEN_LINES_THEN_3]);
    let (plain, tty) = (plain.as_str(), tty.as_str());
    exited(&c, plain);
    exited(&c, tty);
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
fn the_real_dockerd_with_a_secret_a_megabyte_line_and_no_log_driver() {
    let Some(live) = crate::support::live_docker() else {
        return;
    };
    let mut c = crate::support::Containers::new(live, "tail-client-hostile");
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
        exited(&c, id);
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
