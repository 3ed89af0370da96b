//! The HTTP side of the benchmarks' fake engines: one kept-alive connection
//! at a time, `Content-Length` framing, and `/events` answered with a
//! chunked stream that says nothing until the client goes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

/// Serves requests on `conn` until the client closes it; `answer` gives the
/// status line's tail and the JSON body of every path but `/events`.
pub fn serve(conn: UnixStream, answer: impl Fn(&str) -> (&'static str, Vec<u8>)) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = conn;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        if path.contains("/events") {
            silent_events(&mut reader, &mut out);
            return;
        }
        let (status, body) = answer(&path);
        let head = format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
            return;
        }
    }
}

/// A subscription to a dockerd where nothing happens: the head, then no
/// chunk at all, until the client closes the connection.
fn silent_events(reader: &mut BufReader<UnixStream>, out: &mut UnixStream) {
    let head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut ignored = [0u8; 512];
    while matches!(reader.read(&mut ignored), Ok(n) if n > 0) {}
}
