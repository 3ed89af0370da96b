//! A minimal HTTP/1.x listener on one thread, built so that no client can
//! hurt the daemon: a non-blocking `TcpListener` and non-blocking connections
//! multiplexed with `poll`, at most [`Limits::max_connections`] of them open
//! (a new one evicts the oldest that has not sent its request), a deadline to
//! receive a request and another to send the answer, and a cap on the size of
//! a request head. It never starts a thread per connection: under the unit's
//! `TasksMax=16` a thread spawn that fails panics, and `panic = "abort"` ends
//! the process.
//!
//! Only the request line (method and target) is parsed, and the end of the
//! headers found; headers and bodies are ignored. Every answer carries
//! `Connection: close`, and the connection is closed once it is sent.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::logging::{WarnLimiter, held_back};

mod conn;

use conn::{Conn, State};

/// The bounds the listener keeps, whatever its clients do.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once; a new one beyond this evicts the oldest.
    pub max_connections: usize,
    /// Time from accepting a connection to having its whole request head.
    pub request_timeout: Duration,
    /// Time to send an answer.
    pub write_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Time to wait for the client to close after the answer was sent, so
    /// that unread request bytes do not turn the close into a reset that
    /// destroys the answer in flight.
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16,
            request_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            max_head: 8 * 1024,
            linger: Duration::from_secs(1),
        }
    }
}

/// The request line of a request: all the listener reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestLine<'a> {
    /// The method, case-sensitive as HTTP has it (`GET`, `POST`, …).
    pub method: &'a str,
    /// The path of the target, without its query.
    pub path: &'a str,
}

/// An answer to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    /// A `text/plain` answer.
    pub(super) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }
}

/// The content type of the listener's own answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// What answers a well-formed request.
pub(super) type Handler = Box<dyn FnMut(RequestLine<'_>) -> Response + Send>;

/// Why the listener could not start.
#[derive(Debug)]
pub(crate) enum ListenError {
    /// The address could not be bound (in use, not local, no permission).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The bound socket or the wake-up pair could not be set up.
    Setup {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The listener thread could not be started (e.g. the pids limit).
    Thread {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Bind { addr, source } => {
                write!(f, "cannot listen for metrics on {addr}: {source}")
            }
            ListenError::Setup { addr, source } => {
                write!(f, "cannot set up the metrics listener on {addr}: {source}")
            }
            ListenError::Thread { addr, source } => {
                write!(
                    f,
                    "cannot start the metrics listener thread for {addr}: {source}"
                )
            }
        }
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ListenError::Bind { source, .. }
            | ListenError::Setup { source, .. }
            | ListenError::Thread { source, .. } => Some(source),
        }
    }
}

/// The running listener thread.
pub(super) struct Listener {
    addr: SocketAddr,
    /// Closing this end wakes the thread, which then ends.
    wake: UnixStream,
    thread: JoinHandle<()>,
}

/// Binds `addr` and starts the listener thread, which answers each
/// well-formed request with `handler`.
pub(super) fn spawn(
    addr: SocketAddr,
    limits: Limits,
    handler: Handler,
) -> Result<Listener, ListenError> {
    let listener = TcpListener::bind(addr).map_err(|source| ListenError::Bind { addr, source })?;
    let setup = |source| ListenError::Setup { addr, source };
    listener.set_nonblocking(true).map_err(setup)?;
    let bound = listener.local_addr().map_err(setup)?;
    let (wake, woken) = UnixStream::pair().map_err(setup)?;
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || Loop::new(listener, woken, limits, handler).run())
        .map_err(|source| ListenError::Thread { addr, source })?;
    Ok(Listener {
        addr: bound,
        wake,
        thread,
    })
}

impl Listener {
    /// The address actually bound (the port is chosen when asked for 0).
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wakes the thread, which closes every connection, and joins it; a
    /// panic of the thread is raised again here.
    pub(super) fn stop(self) {
        // The thread polls the other end: a shutdown makes it readable.
        let _ = self.wake.shutdown(Shutdown::Both);
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Connections accepted in one turn of the loop at most, so that a flood of
/// new connections cannot starve those already open.
const ACCEPTS_PER_TURN: usize = 64;

/// How long accepting pauses after an accept error other than "try again"
/// (out of file descriptors: the listening socket stays readable, and
/// polling it at once again would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bytes read and thrown away after an answer, at most, before closing.
pub(super) const DRAIN_LIMIT: usize = 64 * 1024;

/// One warning a minute per cause.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

struct Loop {
    listener: TcpListener,
    woken: UnixStream,
    limits: Limits,
    handler: Handler,
    /// Oldest first.
    conns: VecDeque<Conn>,
    accept_paused_until: Option<Instant>,
    warnings: WarnLimiter,
}

impl Loop {
    fn new(listener: TcpListener, woken: UnixStream, limits: Limits, handler: Handler) -> Loop {
        Loop {
            listener,
            woken,
            limits: Limits {
                max_connections: limits.max_connections.max(1),
                ..limits
            },
            handler,
            conns: VecDeque::with_capacity(limits.max_connections),
            accept_paused_until: None,
            warnings: WarnLimiter::new(WARNING_PERIOD),
        }
    }

    fn run(mut self) {
        loop {
            let now = Instant::now();
            // A connection past its deadline is closed by dropping it.
            self.conns.retain(|c| c.deadline > now);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }
            let next = self
                .conns
                .iter()
                .map(|c| c.deadline)
                .chain(self.accept_paused_until)
                .min();
            // Deadlines are in the future: the timeout is never zero, and an
            // idle listener with no connection sleeps until woken.
            let timeout =
                next.and_then(|t| Timespec::try_from(t.saturating_duration_since(now)).ok());

            let accepting = if self.accept_paused_until.is_none() {
                PollFlags::IN
            } else {
                PollFlags::empty()
            };
            let mut fds = Vec::with_capacity(2 + self.conns.len());
            fds.push(PollFd::new(&self.woken, PollFlags::IN));
            fds.push(PollFd::new(&self.listener, accepting));
            for c in &self.conns {
                fds.push(PollFd::new(&c.stream, c.interest()));
            }
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // Out of memory for the poll set, most likely: keep the
                    // connections and try again a little later.
                    if let Some(held) = self.warnings.allow("poll", now) {
                        log::warn!(err:% = e; "the metrics listener cannot poll{}", held_back(held));
                    }
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            }
            let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
            drop(fds);

            if !ready[0].is_empty() {
                log::debug!("the metrics listener stops");
                return;
            }
            let now = Instant::now();
            for (conn, events) in self.conns.iter_mut().zip(&ready[2..]) {
                if !events.is_empty() {
                    conn.advance(now, &self.limits, &mut self.handler);
                }
            }
            self.conns.retain(|c| !c.is_closed());
            if !ready[1].is_empty() {
                self.accept(now);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_TURN {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    if let Some(held) = self.warnings.allow("accept", now) {
                        log::warn!(err:% = e;
                            "the metrics listener cannot accept a connection{}", held_back(held));
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= self.limits.max_connections {
                self.evict();
            }
            // The deadline runs from this accept: a connection that arrived
            // after the turn's `now` was read would otherwise lose the gap.
            let accepted = Instant::now();
            let mut conn = Conn::new(stream, accepted + self.limits.request_timeout);
            // A scraper sends its request with the connection: answering it
            // now keeps a flood of new connections from evicting it first.
            conn.advance(accepted, &self.limits, &mut self.handler);
            if !conn.is_closed() {
                self.conns.push_back(conn);
            }
        }
    }

    /// Closes the oldest connection still waiting for its request (an answer
    /// under way is finished rather than cut), or else the oldest of all.
    fn evict(&mut self) {
        let i = self
            .conns
            .iter()
            .position(|c| matches!(c.state, State::Reading { .. }))
            .unwrap_or(0);
        self.conns.remove(i);
        log::debug!("metrics listener full: closed its oldest connection");
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::conn::*;
    use super::*;

    fn check(line: &str, expected: Option<(&str, &str)>) {
        let got = parse_request_line(line.as_bytes()).map(|r| (r.method, r.path));
        assert_eq!(got, expected, "{line:?}");
    }

    #[test]
    fn request_line_parsing_table() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("GET /metrics HTTP/1.1", Some(("GET", "/metrics"))),
            ("GET /metrics HTTP/1.1\r", Some(("GET", "/metrics"))),
            ("GET /healthz HTTP/1.0", Some(("GET", "/healthz"))),
            ("GET /metrics?name[]=x HTTP/1.1", Some(("GET", "/metrics"))),
            ("GET /metrics#frag HTTP/1.1", Some(("GET", "/metrics"))),
            ("GET / HTTP/1.1", Some(("GET", "/"))),
            ("POST /metrics HTTP/1.1", Some(("POST", "/metrics"))),
            // Methods are case-sensitive: this is a method other than GET.
            ("get /metrics HTTP/1.1", Some(("get", "/metrics"))),
            ("HEAD /healthz HTTP/1.1", Some(("HEAD", "/healthz"))),
            ("", None),
            ("\r", None),
            ("GET", None),
            ("GET /metrics", None),
            ("GET /metrics HTTP/2.0", None),
            ("GET /metrics HTTP/1.10", None),
            ("GET /metrics HTTP/1.x", None),
            ("GET /metrics http/1.1", None),
            ("GET  /metrics HTTP/1.1", None),
            ("GET /metrics  HTTP/1.1", None),
            ("GET /met rics HTTP/1.1", None),
            ("GET /metrics HTTP/1.1 extra", None),
            ("GET metrics HTTP/1.1", None),
            ("GET http://host/metrics HTTP/1.1", None),
            ("GET * HTTP/1.1", None),
            ("G(T /metrics HTTP/1.1", None),
            ("GET /m\tx HTTP/1.1", None),
            (" GET /metrics HTTP/1.1", None),
            ("\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}", None),
        ];
        for (line, expected) in table {
            check(line, *expected);
        }
        assert_eq!(parse_request_line(b"GET /\xff HTTP/1.1"), None);
    }

    #[test]
    fn head_is_complete_only_at_its_empty_line() {
        let table: &[(&[u8], Parsed<'_>)] = &[
            (b"", Parsed::Incomplete),
            (b"GET /metrics HTTP/1.1", Parsed::Incomplete),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Parsed::Incomplete),
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Parsed::Request(RequestLine {
                    method: "GET",
                    path: "/metrics",
                }),
            ),
            (
                b"GET /healthz HTTP/1.0\n\n",
                Parsed::Request(RequestLine {
                    method: "GET",
                    path: "/healthz",
                }),
            ),
            (
                b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                Parsed::Request(RequestLine {
                    method: "POST",
                    path: "/metrics",
                }),
            ),
            // A bad request line is answered without waiting for the rest.
            (b"garbage\r\n", Parsed::Bad),
            (b"\r\n\r\n", Parsed::Bad),
            (
                b"GET /x HTTP/1.1\r\nX: 01234567890123456789",
                Parsed::TooLarge,
            ),
            (
                b"GET /x HTTP/1.1 012345678901234567890123",
                Parsed::TooLarge,
            ),
        ];
        for (head, expected) in table {
            assert_eq!(
                &request(head, 40),
                expected,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn answers_close_the_connection_and_say_so() {
        let out = encode(&Response::text(405, "only GET\n"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 9\r\nAllow: GET\r\nConnection: close\r\n\r\nonly GET\n"
        );
    }

    /// A listener on a free loopback port with short limits, answering
    /// every request with its path.
    fn echo(limits: Limits) -> Listener {
        let handler: Handler = Box::new(|r: RequestLine<'_>| Response::text(200, r.path));
        spawn("127.0.0.1:0".parse().unwrap(), limits, handler).unwrap()
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }

    #[test]
    fn a_full_listener_evicts_its_oldest_idle_connection_for_a_new_client() {
        let limits = Limits {
            max_connections: 4,
            request_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let listener = echo(limits);
        let addr = listener.local_addr();
        let mut idle: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n/metrics"), "{answer}");
        // The first idle connections were closed to make room.
        idle[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert!(matches!(idle[0].read(&mut buf), Ok(0) | Err(_)));
        listener.stop();
    }

    #[test]
    fn an_incomplete_request_is_closed_at_its_deadline() {
        let listener = echo(Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        // Before the connect: the deadline runs from the accept, which
        // cannot come earlier.
        let started = Instant::now();
        let mut s = TcpStream::connect(listener.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert_eq!(text, "", "closed without an answer");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        listener.stop();
    }

    #[test]
    fn oversized_head_gets_431_and_garbage_400() {
        let listener = echo(Limits::default());
        let addr = listener.local_addr();
        let mut big = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(20_000, b'a');
        let answer = exchange(addr, &big);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let answer = exchange(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n");
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        let answer = exchange(addr, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n");
        assert!(answer.ends_with("/healthz"), "{answer}");
        listener.stop();
    }

    #[test]
    fn stop_closes_open_connections_and_ends_the_thread() {
        let listener = echo(Limits {
            request_timeout: Duration::from_secs(60),
            ..Limits::default()
        });
        let addr = listener.local_addr();
        let mut open = TcpStream::connect(addr).unwrap();
        // Served once: the connection above has been accepted by now.
        assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        listener.stop();
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        assert!(matches!(open.read(&mut buf), Ok(0) | Err(_)));
        assert!(
            TcpStream::connect(addr).is_err(),
            "nothing listens any more"
        );
    }

    #[test]
    fn bind_failure_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let handler: Handler = Box::new(|_| Response::text(200, ""));
        let Err(e) = spawn(addr, Limits::default(), handler) else {
            panic!("bound a taken port");
        };
        assert!(matches!(e, ListenError::Bind { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("cannot listen for metrics on {addr}: ")),
            "{e}"
        );
    }
}
