//! A fake Docker engine for benchmarks: serves N labelled, healthy containers
//! on a Unix socket, answering inspect with a real ~5 KB body captured from
//! dockerd 20.10 (`inspect.json`), keep-alive, `Content-Length` framing.
//! `GET /v1.41/events` answers like a dockerd where nothing happens: a
//! chunked 200 that sends no event and stays open until the client leaves,
//! so that a footprint with the events stream on holds its real connection.
//!
//! Usage: fake_engine SOCKET N
//! Prints `ready` on stdout once listening; runs until killed.

use std::os::unix::net::UnixListener;
use std::sync::Arc;

#[path = "engine_http.rs"]
mod engine_http;

const CAPTURED_ID: &str = "d3c207677dd0c4b84ec93933377312c265ce8c9581e1ec65a6a2005fe34407ee";

struct Engine {
    list: Vec<u8>,
    inspect_template: String,
    count: usize,
}

fn container_id(i: usize) -> String {
    format!("{:064x}", i + 1)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(socket), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: fake_engine SOCKET N");
        std::process::exit(64);
    };
    let count: usize = count.parse().expect("N is a number");
    let inspect_template = include_str!("inspect.json")
        .trim()
        .replace(CAPTURED_ID, "{ID}")
        .replace("\"Status\":\"unhealthy\"", "\"Status\":\"healthy\"");
    let list: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "Id": container_id(i),
                "Names": [format!("/game-{i}")],
                "Image": "rtinspect-test/busybox:1",
                "Created": 1_795_726_800 + i as i64,
                "State": "running",
                "Status": "Up 2 hours",
                "Labels": {"rtinspect.game-id": format!("g-{i:05}")},
            })
        })
        .collect();
    let engine = Arc::new(Engine {
        list: serde_json::to_vec(&list).unwrap(),
        inspect_template,
        count,
    });
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).expect("bind the socket");
    println!("ready");
    for conn in listener.incoming().flatten() {
        let engine = engine.clone();
        std::thread::spawn(move || engine_http::serve(conn, |path| answer(path, &engine)));
    }
}

fn answer(path: &str, engine: &Engine) -> (&'static str, Vec<u8>) {
    if path == "/_ping" {
        return ("200 OK", b"OK".to_vec());
    }
    if path.contains("/containers/json") {
        return ("200 OK", engine.list.clone());
    }
    // /v1.41/containers/<id>/json
    let id = path
        .split('/')
        .nth(3)
        .filter(|id| usize::from_str_radix(id, 16).is_ok_and(|n| n >= 1 && n <= engine.count));
    match id {
        Some(id) => (
            "200 OK",
            engine.inspect_template.replace("{ID}", id).into_bytes(),
        ),
        None => (
            "404 Not Found",
            br#"{"message":"No such container"}"#.to_vec(),
        ),
    }
}
