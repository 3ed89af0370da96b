//! The Docker client against a fake engine: what a real daemon cannot be made
//! to do on demand (hangs, resets, garbage, version refusals, restarts).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rtinspect::docker::{
    ApiVersion, ContainerInspector, ContainerLister, DockerClient, DockerError,
};

use crate::support::{FakeEngine, Reply, hex_id, inspect_body};

fn client(engine: &FakeEngine, timeout_ms: u64) -> DockerClient {
    DockerClient::new(
        &engine.socket,
        Duration::from_millis(timeout_ms),
        Duration::from_secs(60),
    )
}

fn healthy(path: &str) -> Reply {
    let id = hex_id(7);
    if path.ends_with("/json") && path.contains("/containers/") {
        Reply::Json(200, inspect_body(&id, 2, "running", Some("healthy")))
    } else {
        Reply::Json(404, r#"{"message":"page not found"}"#.into())
    }
}

#[test]
fn keep_alive_reuses_one_connection_for_many_inspects() {
    let engine = FakeEngine::start(healthy);
    let docker = client(&engine, 2000);
    for _ in 0..100 {
        let o = docker.inspect("game-1").unwrap();
        assert_eq!(o.restart_count, 2);
        assert_eq!(o.status, "running");
        assert_eq!(o.health, "healthy");
    }
    assert_eq!(engine.connections(), 1, "one kept-alive connection");
    // One ping, then only versioned inspects.
    let requests = engine.requests();
    assert_eq!(requests.len(), 101);
    assert_eq!(requests[0], "/_ping");
    assert!(
        requests[1..]
            .iter()
            .all(|p| p == "/v1.41/containers/game-1/json")
    );
}

#[test]
fn not_found_is_an_answer_and_keeps_the_connection() {
    let engine =
        FakeEngine::start(|_| Reply::Json(404, r#"{"message":"No such container: gone"}"#.into()));
    let docker = client(&engine, 2000);
    for _ in 0..5 {
        assert!(matches!(docker.inspect("gone"), Err(DockerError::NotFound)));
    }
    assert_eq!(engine.connections(), 1);
}

#[test]
fn error_status_carries_docker_message() {
    let engine =
        FakeEngine::start(|_| Reply::Json(500, r#"{"message":"driver failed: disk full"}"#.into()));
    let err = client(&engine, 2000).inspect("c1").unwrap_err();
    match &err {
        DockerError::Status { status, message } => {
            assert_eq!(*status, 500);
            assert_eq!(message, "driver failed: disk full");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), "docker");
    assert_eq!(err.to_string(), "HTTP 500: driver failed: disk full");
}

#[test]
fn hung_daemon_costs_one_timeout_not_a_hang() {
    let engine = FakeEngine::start(|_| Reply::Hang);
    let docker = client(&engine, 300);
    let start = Instant::now();
    let err = docker.inspect("c1").unwrap_err();
    assert!(matches!(err, DockerError::Timeout(_)), "{err:?}");
    assert_eq!(err.kind(), "timeout");
    // Bounded by the timeout, far from "forever"; generous for a loaded machine.
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn reset_mid_body_is_an_error_and_the_next_request_reconnects() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let engine = FakeEngine::start(move |path| {
        if c.fetch_add(1, SeqCst) == 0 {
            Reply::ResetMidBody {
                len: 4000,
                sent: 100,
            }
        } else {
            healthy(path)
        }
    });
    let docker = client(&engine, 2000);
    let err = docker.inspect("c1").unwrap_err();
    assert!(matches!(err, DockerError::Transport(_)), "{err:?}");
    assert_eq!(docker.inspect("c1").unwrap().restart_count, 2);
    assert_eq!(engine.connections(), 2);
}

#[test]
fn malformed_json_and_wrong_types_are_rejected() {
    for body in [
        "{not json".to_string(),
        r#"{"Id":"x"}"#.to_string(),
        format!(
            r#"{{"Id":"{}","RestartCount":"many","State":{{"Status":"running"}}}}"#,
            hex_id(1)
        ),
        "[1,2,3]".to_string(),
    ] {
        let engine = FakeEngine::start(move |_| Reply::Json(200, body.clone()));
        let err = client(&engine, 2000).inspect("c1").unwrap_err();
        assert!(matches!(err, DockerError::Malformed(_)), "{err:?}");
    }
}

#[test]
fn oversized_body_is_an_error_not_an_allocation() {
    let engine = FakeEngine::start(|_| {
        let big = format!(
            r#"{{"Id":"{}","Junk":"{}"}}"#,
            hex_id(1),
            "x".repeat(20 << 20)
        );
        Reply::Json(200, big)
    });
    let err = client(&engine, 10_000).inspect("c1").unwrap_err();
    assert!(matches!(err, DockerError::TooLarge(_)), "{err:?}");
}

#[test]
fn api_version_header_is_matched_case_insensitively() {
    let engine = FakeEngine::start(healthy);
    engine.set_api_header_name("API-VERSION");
    engine.set_api_version("1.43");
    let docker = client(&engine, 2000);
    assert_eq!(
        docker.negotiate().unwrap(),
        ApiVersion {
            major: 1,
            minor: 43
        }
    );
    docker.inspect("c1").unwrap();
    assert_eq!(
        engine.requests().last().unwrap(),
        "/v1.43/containers/c1/json"
    );
}

#[test]
fn docker_29_minimum_is_met_by_negotiating_down_from_its_maximum() {
    // Docker 29: maximum 1.52, refuses anything below 1.44.
    let engine = FakeEngine::start(healthy);
    engine.set_api_version("1.52");
    engine.set_min_api(Some((1, 44)));
    let docker = client(&engine, 2000);
    docker.inspect("c1").unwrap();
    let requests = engine.requests();
    assert_eq!(requests, vec!["/_ping", "/v1.51/containers/c1/json"]);
}

#[test]
fn version_refusal_after_an_upgrade_renegotiates_and_retries() {
    let engine = FakeEngine::start(healthy);
    let docker = client(&engine, 2000);
    docker.inspect("c1").unwrap();
    // The daemon is upgraded under the pooled connection.
    engine.set_api_version("1.52");
    engine.set_min_api(Some((1, 44)));
    docker.inspect("c1").unwrap();
    assert_eq!(
        engine.requests(),
        vec![
            "/_ping",
            "/v1.41/containers/c1/json",
            "/v1.41/containers/c1/json",
            "/_ping",
            "/v1.51/containers/c1/json"
        ]
    );
}

#[test]
fn a_daemon_older_than_we_speak_is_a_clear_error() {
    let engine = FakeEngine::start(healthy);
    engine.set_api_version("1.12");
    let err = client(&engine, 2000).inspect("c1").unwrap_err();
    assert!(err.to_string().contains("older than 1.24"), "{err}");
}

#[test]
fn restarted_daemon_gets_a_fresh_connection() {
    let mut engine = FakeEngine::start(healthy);
    let docker = client(&engine, 2000);
    docker.inspect("c1").unwrap();
    engine.restart();
    // The pooled connection is dead; the next request must open a new one.
    docker.inspect("c1").unwrap();
    assert_eq!(engine.connections(), 1);
}

#[test]
fn missing_socket_names_the_path() {
    let dir = crate::support::TempDir::new("nosock");
    let socket = dir.path().join("absent.sock");
    let docker = DockerClient::new(&socket, Duration::from_secs(1), Duration::from_secs(1));
    let err = docker.inspect("c1").unwrap_err();
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&*socket.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn list_labelled_sends_an_encoded_filter_and_reads_labels() {
    let engine = FakeEngine::start(|_| {
        Reply::Json(
            200,
            r#"[{"Id":"aa","Created":1,"Labels":{"team.game":"g-1"}},{"Id":"bb","Created":2,"Labels":{"x":"y"}}]"#
                .into(),
        )
    });
    let docker = client(&engine, 2000);
    let listed = docker.list_labelled("team.game").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].game_id, "g-1");
    assert_eq!(
        engine.requests()[1],
        "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22team.game%22%5D%7D"
    );
}
