//! Fake Docker engines for the fleet benchmark: one process serving HOSTS
//! sockets, `DIR/h<i>.sock`, each an engine of its own with RECORDS
//! containers (ids `{n:064x}`, n = 1..=RECORDS), of which the first STOPPED
//! report `exited` and the others `running` and healthy. Every inspect is a
//! real ~5 KB body captured from dockerd 20.10 (`inspect.json`), with
//! `Content-Length` framing and keep-alive. `/events` is answered with a
//! stream that stays silent, as an idle dockerd's does.
//!
//! Usage: fleet_engine DIR HOSTS RECORDS STOPPED
//! Prints `ready` on stdout once every socket listens; runs until killed.

use std::os::unix::net::UnixListener;
use std::sync::Arc;

#[path = "engine_http.rs"]
mod engine_http;

const CAPTURED_ID: &str = "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee";

/// Small stacks: a few hundred threads serve the whole fleet.
const STACK: usize = 64 * 1024;

struct Bodies {
    running: String,
    exited: String,
    records: usize,
    stopped: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, hosts, records, stopped] = &args[..] else {
        eprintln!("usage: fleet_engine DIR HOSTS RECORDS STOPPED");
        std::process::exit(64);
    };
    let number = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("fleet_engine: {s:?} is not a number");
            std::process::exit(64)
        })
    };
    let (hosts, records, stopped) = (number(hosts), number(records), number(stopped));
    let running = include_str!("inspect.json")
        .trim()
        .replace(CAPTURED_ID, "{ID}")
        .replace("\"Status\":\"unhealthy\"", "\"Status\":\"healthy\"");
    let exited = running
        .replacen(
            "\"Status\":\"running\",\"Running\":true",
            "\"Status\":\"exited\",\"Running\":false",
            1,
        )
        .replacen("\"ExitCode\":0", "\"ExitCode\":137", 1);
    assert_ne!(running, exited, "the captured body has a running state");
    let bodies = Arc::new(Bodies {
        running,
        exited,
        records,
        stopped,
    });
    for h in 0..hosts {
        let path = format!("{dir}/h{h}.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| {
            eprintln!("fleet_engine: bind {path}: {e}");
            std::process::exit(1)
        });
        let bodies = bodies.clone();
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let bodies = bodies.clone();
                    let _ = std::thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(move || {
                            engine_http::serve(conn, |path| {
                                let (status, body) = answer(path, &bodies);
                                (status, body.into_bytes())
                            })
                        });
                }
            })
            .expect("a listener thread");
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}

fn answer(path: &str, bodies: &Bodies) -> (&'static str, String) {
    if path == "/_ping" {
        return ("200 OK", "OK".into());
    }
    // /v1.41/containers/<id>/json
    let n = path
        .split('/')
        .nth(3)
        .and_then(|id| usize::from_str_radix(id, 16).ok())
        .filter(|n| (1..=bodies.records).contains(n));
    match n {
        Some(n) => {
            let template = if n <= bodies.stopped {
                &bodies.exited
            } else {
                &bodies.running
            };
            let id = format!("{n:064x}");
            ("200 OK", template.replace("{ID}", &id))
        }
        None => ("404 Not Found", r#"{"message":"No such container"}"#.into()),
    }
}
