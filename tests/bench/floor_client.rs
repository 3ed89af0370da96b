//! The floor for one tick: a minimal hand-written HTTP/1.1 client that sends
//! the same requests as `rtinspect once` in label mode (ping, list, one
//! inspect per container) on one kept-alive Unix socket, and only finds the
//! fields it needs by scanning bytes. No JSON parser, no validation, no
//! events: whatever rtinspect costs above this is its own overhead.
//!
//! Usage: floor_client SOCKET
//! Prints `N containers, M unhealthy` on stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

fn find<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[start..];
    let end = rest.iter().position(|b| matches!(b, b'"' | b',' | b'}'))?;
    Some(&rest[..end])
}

fn get(reader: &mut BufReader<UnixStream>, path: &str, body: &mut Vec<u8>) {
    write!(
        reader.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    body.resize(length, 0);
    reader.read_exact(body).unwrap();
}

fn main() {
    let socket = std::env::args().nth(1).expect("usage: floor_client SOCKET");
    let mut reader = BufReader::new(UnixStream::connect(socket).unwrap());
    let mut body = Vec::with_capacity(8192);
    get(&mut reader, "/_ping", &mut body);
    get(
        &mut reader,
        "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22rtinspect.game-id%22%5D%7D",
        &mut body,
    );
    let list = std::mem::take(&mut body);
    let ids: Vec<String> = list
        .split(|b| *b == b'{')
        .filter_map(|chunk| find(chunk, b"\"Id\":\""))
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .collect();
    let mut unhealthy = 0;
    for id in &ids {
        get(
            &mut reader,
            &format!("/v1.41/containers/{id}/json"),
            &mut body,
        );
        let restarts = find(&body, b"\"RestartCount\":");
        let status = find(&body, b"\"Status\":\"");
        let health = find(&body, b"\"Health\":{\"Status\":\"");
        if restarts.is_none() || status != Some(b"running") || health == Some(b"unhealthy") {
            unhealthy += 1;
        }
    }
    println!("{} containers, {unhealthy} unhealthy", ids.len());
}
