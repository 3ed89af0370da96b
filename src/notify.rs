//! systemd's notify protocol: `READY=1`, `WATCHDOG=1`, `STATUS=…` and
//! `STOPPING=1`, each one datagram to the socket named by `$NOTIFY_SOCKET`.
//!
//! A handful of lines over std's `UnixDatagram` rather than a dependency. The
//! socket is a path, or `@name` in the abstract namespace. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing. A datagram that cannot be
//! sent is dropped: systemd not listening is no reason to stop watching.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two `WATCHDOG=1`: the loop may turn once per
/// record, and a thousand datagrams a tick would be noise.
const WATCHDOG_THROTTLE: Duration = Duration::from_secs(1);

/// The shortest watchdog period honoured.
const MIN_WATCHDOG: Duration = Duration::from_millis(200);

/// The link to systemd's notify socket, if there is one.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
    /// Whether `STOPPING=1` was sent, held while a message is checked and
    /// sent, so that nothing can follow it.
    stopping: Mutex<bool>,
}

impl Notifier {
    /// The notifier systemd asks for through `NOTIFY_SOCKET`, with the
    /// watchdog period of `WATCHDOG_USEC` (when `WATCHDOG_PID`, if set, is us).
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let socket = env("NOTIFY_SOCKET").and_then(|path| {
            let addr = address(&path)?;
            let socket = UnixDatagram::unbound().ok()?;
            // A send to a socket whose queue is full (a busy or stuck PID 1:
            // its queue is every unit's) must never block the loop or the
            // exit: a datagram that does not fit is dropped.
            socket.set_nonblocking(true).ok()?;
            Some((socket, addr))
        });
        let ours = env("WATCHDOG_PID")
            .is_none_or(|pid| pid.to_str() == Some(&std::process::id().to_string()));
        // A watchdog needs a socket to be fed through; and a period below
        // 200 ms would turn the loop into a busy one.
        let watchdog = env("WATCHDOG_USEC")
            .filter(|_| ours && socket.is_some())
            .and_then(|v| v.to_str()?.parse::<u64>().ok())
            .map(|usec| Duration::from_micros(usec).max(MIN_WATCHDOG));
        Notifier {
            socket,
            watchdog,
            last_ping: Mutex::new(None),
            stopping: Mutex::new(false),
        }
    }

    /// Whether messages go anywhere.
    #[cfg(test)]
    fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// How often the watchdog must hear from us: half its period, as systemd
    /// recommends; `None` without a watchdog.
    pub(crate) fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// Configuration valid, state directory locked, listener bound.
    pub(crate) fn ready(&self) {
        self.send("READY=1");
    }

    /// The inspector loop turned (at most one datagram a second).
    pub(crate) fn watchdog(&self) {
        if self.watchdog.is_none() {
            return;
        }
        let now = Instant::now();
        let mut last = self.last_ping.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= WATCHDOG_THROTTLE) {
            *last = Some(now);
            self.send_unless_stopping("WATCHDOG=1");
        }
    }

    /// A one-line summary for `systemctl status`.
    pub(crate) fn status(&self, line: &str) {
        if self.socket.is_some() {
            // One line: a newline would start another assignment.
            let line = line.replace('\n', " ");
            self.send_unless_stopping(&format!("STATUS={line}"));
        }
    }

    /// Shutdown has begun; the status says so, and nothing follows. systemd
    /// stops the watchdog of a unit that stops (`TimeoutStopSec` bounds the
    /// exit instead) and a late ping would arm it again; a tick that ends
    /// during the exit must not put its summary over "stopping".
    pub(crate) fn stopping(&self) {
        let mut stopping = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        if !*stopping {
            *stopping = true;
            self.send("STOPPING=1\nSTATUS=stopping: delivering what is queued");
        }
    }

    /// Sends `message` unless `STOPPING=1` was sent; the lock is held across
    /// the send (which never blocks), so the two cannot cross.
    fn send_unless_stopping(&self, message: &str) {
        let stopping = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        if !*stopping {
            self.send(message);
        }
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
        {
            log::debug!(err:% = e; "cannot notify systemd");
        }
    }
}

/// `NOTIFY_SOCKET` as an address: `@name` is abstract, anything else a path.
fn address(value: &OsStr) -> Option<SocketAddr> {
    let bytes = value.as_bytes();
    match bytes.split_first() {
        None => None,
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name).ok()
        }
        Some(_) => SocketAddr::from_pathname(std::path::Path::new(value)).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_path_socket_in_order() {
        let dir = std::env::temp_dir().join(format!("rtinspect-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_env(&env(&[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "20000000"),
        ]));
        assert!(n.is_active());
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(10)));
        n.ready();
        n.watchdog();
        n.status("3 records,\n0 events");
        n.stopping();
        n.status("a tick that ended during the exit");
        n.watchdog();
        systemd
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(len) = systemd.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1",
                "WATCHDOG=1",
                "STATUS=3 records, 0 events",
                "STOPPING=1\nSTATUS=stopping: delivering what is queued"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        let name = format!("rtinspect-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]));
        n.ready();
        assert_eq!(recv(&systemd), "READY=1");
    }

    #[test]
    fn without_systemd_nothing_is_sent_and_no_watchdog() {
        let n = Notifier::from_env(&env(&[]));
        assert!(!n.is_active());
        assert_eq!(n.watchdog_every(), None);
        n.ready();
        n.stopping();
    }

    #[test]
    fn a_watchdog_meant_for_another_pid_or_without_a_socket_is_ignored() {
        let sock = "@rtinspect-notify-watchdog-test";
        let n = Notifier::from_env(&env(&[
            ("NOTIFY_SOCKET", sock),
            ("WATCHDOG_USEC", "1000000"),
            ("WATCHDOG_PID", "1"),
        ]));
        assert_eq!(n.watchdog_every(), None);
        let ours = std::process::id().to_string();
        let n = Notifier::from_env(&env(&[
            ("NOTIFY_SOCKET", sock),
            ("WATCHDOG_USEC", "1000000"),
            ("WATCHDOG_PID", &ours),
        ]));
        assert_eq!(n.watchdog_every(), Some(Duration::from_millis(500)));
        let n = Notifier::from_env(&env(&[("WATCHDOG_USEC", "1000000")]));
        assert_eq!(n.watchdog_every(), None, "no socket to feed it through");
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", sock), ("WATCHDOG_USEC", "2")]));
        assert_eq!(
            n.watchdog_every(),
            Some(Duration::from_millis(100)),
            "no busy loop"
        );
    }

    #[test]
    fn a_full_notify_queue_never_blocks() {
        let name = format!("rtinspect-notify-full-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        // Bound and never read: its queue fills after a few datagrams.
        let _systemd = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from_env(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]));
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            n.status("a status line that nobody reads");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
