//! A ureq transport over a Unix stream socket, for talking HTTP to dockerd, and
//! the bounded connect PostgreSQL uses for its socket too: a shared leaf.
//!
//! ureq 3 ships TCP and TLS transports only; its `unversioned::transport` seam
//! (`Connector`, `Transport`, `LazyBuffers`) lets us plug a `UnixStream` in.
//! That seam is outside ureq's semver, which is why Cargo.toml pins the minor
//! version. The resolver here does no lookup at all: ureq calls the resolver on
//! every request, pooled connection or not, and the default one starts a thread
//! per call when a timeout is set.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rustix::net::RecvFlags;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};

/// Opens a connection to one Unix socket path, whatever the request's host.
#[derive(Debug, Clone)]
pub(crate) struct UnixConnector {
    path: PathBuf,
}

impl UnixConnector {
    /// A connector for the socket at `path`.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        UnixConnector { path: path.into() }
    }
}

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let stream = connect_within(&self.path, budget(details.timeout)?)?;
        let config = details.config;
        let transport = UnixTransport {
            stream: Arc::new(SharedStream(stream)),
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            read_timeout: None,
            write_timeout: None,
        };
        let handle: Weak<dyn ShutdownHandle> =
            Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(handle)?;
        log::trace!("connected to {}", self.path.display());
        Ok(Some(transport))
    }
}

/// The marker inside the `io::Error` of a connect that timed out.
#[derive(Debug)]
struct ConnectTimedOut;

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect timed out")
    }
}

impl std::error::Error for ConnectTimedOut {}

/// Whether `e` is a connect that found no room within its time.
pub(crate) fn is_connect_timeout(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<ConnectTimedOut>())
}

/// Connects to `path`, waiting at most `timeout` for room in its listen backlog.
///
/// `UnixStream::connect` would wait for ever on a wedged dockerd whose
/// backlog is full. Linux bounds that wait by the socket's send timeout
/// (`af_unix.c`: `timeo = sock_sndtimeo(sk, …)`, then `EAGAIN`), so the
/// timeout is set on the socket before `connect`, and cleared after it.
pub(crate) fn connect_within(path: &Path, timeout: Option<Duration>) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    if timeout.is_some() {
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, timeout)?;
    }
    let addr = SocketAddrUnix::new(path)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::AGAIN => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, ConnectTimedOut));
        }
        Err(e) => return Err(e.into()),
    }
    let stream = UnixStream::from(fd);
    stream.set_write_timeout(None)?;
    Ok(stream)
}

/// The stream, shared weakly with ureq's shutdown so a blocked call can be woken.
#[derive(Debug)]
struct SharedStream(UnixStream);

impl ShutdownHandle for SharedStream {
    fn shutdown(&self) {
        // An error means the socket is already closed.
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// One open connection to the socket.
#[derive(Debug)]
pub(crate) struct UnixTransport {
    stream: Arc<SharedStream>,
    buffers: LazyBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// Turns what is left of a request's time budget into a socket timeout, or the
/// timeout error itself when nothing is left.
fn budget(timeout: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|d| *d))
}

/// How far the socket's timeout may be from the request's remaining budget
/// before it is set again. The budget shrinks on every call; following it
/// exactly would cost a `setsockopt` per read and per write.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// Whether the socket timeout `current` must be replaced by `wanted`.
fn needs_update(current: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (current, wanted) {
        (Some(c), Some(w)) => c.abs_diff(w) > TIMEOUT_SLACK.max(c / 20),
        (c, w) => c != w,
    }
}

/// Whether a socket read or write ran out of its time.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let limit = budget(timeout)?;
        if needs_update(self.write_timeout, limit) {
            self.stream.0.set_write_timeout(limit)?;
            self.write_timeout = limit;
        }
        let output = &self.buffers.output()[..amount];
        match (&self.stream.0).write_all(output) {
            Ok(()) => Ok(()),
            Err(e) if is_timeout(&e) => Err(ureq::Error::Timeout(timeout.reason)),
            Err(e) => Err(e.into()),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let limit = budget(timeout)?;
        if needs_update(self.read_timeout, limit) {
            self.stream.0.set_read_timeout(limit)?;
            self.read_timeout = limit;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.stream.0).read(input) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(ureq::Error::Timeout(timeout.reason)),
                Err(e) => return Err(e.into()),
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// A pooled connection is reusable only if the daemon has not closed it and
    /// sent nothing unasked: a non-blocking peek must find no bytes and no EOF.
    ///
    /// ureq asks twice per request (when the connection goes back to the pool
    /// and when it is taken out), so this is one `recv(MSG_PEEK|MSG_DONTWAIT)`
    /// rather than toggling the socket's blocking mode around a read (three
    /// syscalls; std's `UnixStream::peek` is not stable).
    fn is_open(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            rustix::net::recv(&self.stream.0, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT),
            Err(e) if e == rustix::io::Errno::AGAIN
        )
    }
}

/// A resolver that resolves nothing: every request goes to the one socket.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoLookup;

impl Resolver for NoLookup {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 80)));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_timeout_follows_the_budget_loosely() {
        let ms = |n| Some(Duration::from_millis(n));
        assert!(needs_update(None, ms(10_000)));
        assert!(needs_update(ms(10_000), None));
        assert!(!needs_update(ms(10_000), ms(9_990)), "a shrinking budget");
        assert!(
            !needs_update(ms(9_990), ms(10_000)),
            "the next request's fresh budget"
        );
        assert!(needs_update(ms(10_000), ms(9_000)));
        assert!(needs_update(ms(300), ms(200)), "50 ms is the least slack");
        assert!(!needs_update(ms(300), ms(260)));
    }

    #[test]
    fn connect_gives_up_on_a_full_backlog_within_the_timeout() {
        let dir = std::env::temp_dir().join(format!("rtinspect-backlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("full.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Nobody accepts: fill the backlog until a bounded connect fails.
        let mut held = Vec::new();
        let started = std::time::Instant::now();
        let err = loop {
            match connect_within(&path, Some(Duration::from_millis(200))) {
                Ok(s) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() < 10_000, "the backlog never filled");
        };
        assert!(is_connect_timeout(&err), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(listener);
        let err =
            connect_within(&dir.join("missing.sock"), Some(Duration::from_secs(1))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn is_open_sees_a_closed_peer_and_unasked_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut t = UnixTransport {
            stream: Arc::new(SharedStream(a)),
            buffers: LazyBuffers::new(1024, 1024),
            read_timeout: None,
            write_timeout: None,
        };
        assert!(t.is_open());
        (&b).write_all(b"x").unwrap();
        assert!(!t.is_open(), "bytes nobody asked for");
        let (a, b) = UnixStream::pair().unwrap();
        t.stream = Arc::new(SharedStream(a));
        drop(b);
        assert!(!t.is_open(), "the peer closed");
    }
}
