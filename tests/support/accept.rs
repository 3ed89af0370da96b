//! The accept loop the fake engine and the fake chat receiver share: a
//! thread per connection, a count of them, and a stop that closes every
//! open one and wakes the loop.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// A connection a fake server accepted: a Unix or a TCP stream.
pub trait Conn: Send + Sized + 'static {
    fn clone_conn(&self) -> io::Result<Self>;
    /// Shuts both ways down, so that its peer and its serving thread see
    /// the close.
    fn close(&self);
}

impl Conn for UnixStream {
    fn clone_conn(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl Conn for std::net::TcpStream {
    fn clone_conn(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// The connections of one fake server: how many it accepted, whether it
/// was stopped, and a clone of each so that a stop can close them.
pub struct Connections<S> {
    accepted: AtomicUsize,
    stopped: AtomicBool,
    open: Mutex<Vec<S>>,
}

impl<S: Conn> Connections<S> {
    /// Accepts with `accept` on a thread of its own until stopped, each
    /// connection served by `serve` on a thread of its own (told of the
    /// stop through the connections it is given).
    pub fn accept(
        mut accept: impl FnMut() -> io::Result<S> + Send + 'static,
        serve: impl Fn(S, &Connections<S>) + Send + Sync + 'static,
    ) -> Arc<Connections<S>> {
        let conns = Arc::new(Connections {
            accepted: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let c = conns.clone();
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            loop {
                let conn = accept();
                if c.stopped() {
                    break;
                }
                let Ok(conn) = conn else { break };
                c.accepted.fetch_add(1, SeqCst);
                if let Ok(clone) = conn.clone_conn() {
                    c.open.lock().unwrap().push(clone);
                }
                let (c, serve) = (c.clone(), serve.clone());
                std::thread::spawn(move || serve(conn, &c));
            }
        });
        conns
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(SeqCst)
    }

    /// Stops: every open connection closed, then `wake` (a connection of
    /// its own) so that the loop sees the flag.
    pub fn stop(&self, wake: impl FnOnce()) {
        self.stopped.store(true, SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            conn.close();
        }
        wake();
    }
}
