//! One connection of the metrics listener: reading a request head under its
//! limits, finding the request line, and writing the answer, all without
//! blocking. Only the request line is parsed; headers and bodies are ignored.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use rustix::event::PollFlags;

use super::{DRAIN_LIMIT, Handler, Limits, RequestLine, Response};

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) state: State,
    pub(super) deadline: Instant,
}

pub(super) enum State {
    /// Receiving the request head.
    Reading {
        head: Vec<u8>,
    },
    /// Sending the answer.
    Writing {
        out: Vec<u8>,
        sent: usize,
    },
    /// Answer sent and our side shut down: reading until the client closes.
    Draining {
        discarded: usize,
    },
    Closed,
}

impl Conn {
    pub(super) fn new(stream: TcpStream, deadline: Instant) -> Conn {
        Conn {
            stream,
            state: State::Reading { head: Vec::new() },
            deadline,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub(super) fn interest(&self) -> PollFlags {
        match self.state {
            State::Writing { .. } => PollFlags::OUT,
            _ => PollFlags::IN,
        }
    }

    /// Does all the work the socket allows now, without blocking.
    pub(super) fn advance(&mut self, now: Instant, limits: &Limits, handler: &mut Handler) {
        loop {
            let next = match &mut self.state {
                State::Reading { head } => {
                    match read_head(&mut self.stream, head, limits.max_head) {
                        Progress::Wait => return,
                        Progress::Close => State::Closed,
                        Progress::Done => {
                            let response = match request(head, limits.max_head) {
                                Parsed::Incomplete => continue,
                                Parsed::Request(line) => handler(line),
                                Parsed::Bad => Response::text(400, "bad request\n"),
                                Parsed::TooLarge => Response::text(
                                    431,
                                    format!("request head over {} bytes\n", limits.max_head),
                                ),
                            };
                            self.deadline = now + limits.write_timeout;
                            State::Writing {
                                out: encode(&response),
                                sent: 0,
                            }
                        }
                    }
                }
                State::Writing { out, sent } => match self.stream.write(&out[*sent..]) {
                    Ok(0) => State::Closed,
                    Ok(n) => {
                        *sent += n;
                        if *sent < out.len() {
                            continue;
                        }
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.deadline = now + limits.linger;
                        State::Draining { discarded: 0 }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => State::Closed,
                },
                State::Draining { discarded } => {
                    let mut sink = [0u8; 4096];
                    match self.stream.read(&mut sink) {
                        Ok(0) => State::Closed,
                        Ok(n) if *discarded + n > DRAIN_LIMIT => State::Closed,
                        Ok(n) => {
                            *discarded += n;
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => State::Closed,
                    }
                }
                State::Closed => return,
            };
            self.state = next;
        }
    }
}

pub(super) enum Progress {
    /// Nothing more to read now.
    Wait,
    /// New bytes arrived, or the head is full: look at it.
    Done,
    /// The client closed or failed before sending a request.
    Close,
}

/// Reads what is available into `head`, up to `max` bytes in all.
pub(super) fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>, max: usize) -> Progress {
    let mut buf = [0u8; 1024];
    let room = max.saturating_sub(head.len()).min(buf.len());
    if room == 0 {
        return Progress::Done;
    }
    loop {
        return match stream.read(&mut buf[..room]) {
            Ok(0) => Progress::Close,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                Progress::Done
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Progress::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Progress::Close,
        };
    }
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// No end of the head yet, and room for more.
    Incomplete,
    /// A whole head with a well-formed request line.
    Request(RequestLine<'a>),
    /// A request line that is not HTTP/1.x: answered at once, without
    /// waiting for the rest.
    Bad,
    /// `max` bytes and no end of the head.
    TooLarge,
}

pub(super) fn request(head: &[u8], max: usize) -> Parsed<'_> {
    let line = head
        .iter()
        .position(|b| *b == b'\n')
        .map(|end| &head[..end]);
    if let Some(line) = line {
        match parse_request_line(line) {
            None => return Parsed::Bad,
            Some(request) if head_end(head).is_some() => return Parsed::Request(request),
            Some(_) => {}
        }
    }
    if head.len() >= max {
        Parsed::TooLarge
    } else {
        Parsed::Incomplete
    }
}

/// The length of the head up to its empty line, when it has one; a bare LF
/// is accepted as a line end, as RFC 9112 §2.2 allows.
pub(super) fn head_end(head: &[u8]) -> Option<usize> {
    let mut prev_line_start = 0;
    for (i, b) in head.iter().enumerate() {
        if *b == b'\n' {
            let line = &head[prev_line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            prev_line_start = i + 1;
        }
    }
    None
}

/// Splits a request line (`GET /metrics?x=1 HTTP/1.1`, the line end already
/// cut, a trailing CR allowed) into method and path, or `None` when it is
/// not an HTTP/1.x request line in origin form (RFC 9112 §3).
pub(super) fn parse_request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // RFC 9110 §5.6.2: a method is a token.
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if method.is_empty() || !method.chars().all(is_tchar) {
        return None;
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let minor = version.strip_prefix("HTTP/1.")?;
    if minor.len() != 1 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some(RequestLine { method, path })
}

/// The reason phrase of a status, as the `http` crate knows it.
pub(super) fn reason(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// The bytes of a whole answer: status line, headers, body.
pub(super) fn encode(response: &Response) -> Vec<u8> {
    let allow = if response.status == 405 {
        "Allow: GET\r\n"
    } else {
        ""
    };
    // The status page loads nothing and runs nothing: a browser is told so,
    // should anything in it ever escape its escaping.
    let policy = if response.content_type.starts_with("text/html") {
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         X-Content-Type-Options: nosniff\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}{policy}Connection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    out.extend_from_slice(response.body.as_bytes());
    out
}
