//! The Docker events stream: a blocking read of `GET /events` on a thread of
//! its own, telling the inspector which container just died, ran out of
//! memory, changed health, started or restarted. It never inspects or
//! publishes: it hands a [`Nudge`] to a bounded channel and goes back to
//! reading, and the inspector decides with the rules of a tick.
//!
//! dockerd skips an event for a subscriber that has not taken it within about
//! 100 ms, so the reader never blocks on the inspector: when the channel is
//! full, nudges merge into one "resync" flag that the inspector honours with
//! a full tick. Every (re)subscription is followed by a resync too: dockerd
//! replays only its last 256 events (`since`), and none across its restart.
//! A replayed event is marked so: it tells the classifier of ends how a
//! container ended while the stream was away (or rtinspect was down: the
//! first subscription resumes from the newest event an earlier run took),
//! and the resync looks at every record.
//!
//! A stream must prove itself before the reconnect backoff starts afresh:
//! by news (an event newer than any seen before it subscribed), by a silence
//! that dockerd answers when pinged, or by staying up for [`SILENCE`]. An
//! event replayed from `since` is still handed on, but proves nothing: a
//! stream that replays one event and ends must back off like a broken one.
//!
//! The stream is read with a small HTTP/1.1 reader of its own rather than
//! through ureq: ureq bounds a body as a whole, and a stream that has been
//! silent for [`SILENCE`] must be checked with `/_ping` and then read on, not
//! ended. Everything else about the connection (socket, connect timeout) is
//! shared with the client.

mod decode;
#[cfg(test)]
mod tests;
mod wire;

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, TrySendError};

use super::api::ContainerInspector;
use super::client::DockerClient;
use super::error::DockerError;
use crate::backoff::Backoff;
use crate::unix_socket;

pub use decode::{ContainerAction, ContainerEvent};
pub use decode::{Nudge, decode_event, events_query};
use wire::{Got, LINE_LIMIT, open, read_head, read_line};

/// How long the stream may stay silent before dockerd is pinged.
pub const SILENCE: Duration = Duration::from_secs(30);

/// What the reader counts, for the metrics.
pub trait StreamCounters: Send + Sync {
    /// One event of `action` arrived.
    fn event(&self, action: ContainerAction);
    /// A subscription was tried (the first, or a retry after a break).
    fn attempted(&self);
    /// A subscription got its 2xx response head after an earlier one broke
    /// or failed: the stream is subscribed again.
    fn reconnected(&self);
}

/// The process's counters are the reader's: each followed action under its
/// own label.
impl StreamCounters for crate::telemetry::Telemetry {
    fn event(&self, action: ContainerAction) {
        self.docker_event(action);
    }

    fn attempted(&self) {
        self.stream_attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn reconnected(&self) {
        self.stream_reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The running reader thread.
#[derive(Debug)]
pub struct EventsReader {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    /// The current stream, so that `stop` can end a blocked read.
    stream: Arc<Mutex<Option<UnixStream>>>,
    /// Disconnects when the thread ends.
    ended: crossbeam_channel::Receiver<()>,
}

/// How long `stop` waits for the thread: it may be in a `/_ping` bounded by
/// the Docker timeout, which the exit does not wait for.
const STOP_WAIT: Duration = Duration::from_secs(1);

impl EventsReader {
    /// Stops reading; joins the thread unless it is blocked in a call.
    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        if let Some(s) = &*self.stream.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if self.ended.recv_timeout(STOP_WAIT).is_err()
            && self.thread.is_finished()
            && let Err(panic) = self.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Where the reader reads from and whom it tells.
pub struct ReaderParts {
    /// dockerd's socket.
    pub socket: PathBuf,
    /// A client of the same dockerd, for `/_ping` and the API version.
    pub client: DockerClient,
    /// Bound on connecting and on the response head.
    pub timeout: Duration,
    /// The inspector's end.
    pub nudges: Sender<Nudge>,
    /// Set when a nudge could not be queued: the inspector resyncs.
    pub overflow: Arc<AtomicBool>,
    /// The metrics.
    pub counters: Arc<dyn StreamCounters>,
    /// How long the stream may be silent before dockerd is pinged ([`SILENCE`]).
    pub silence: Duration,
    /// Label mode: the game label, whose value each event carries on.
    pub label: Option<String>,
    /// The newest event an earlier run of rtinspect took (`events.json`):
    /// the first subscription replays from a second before it, so that an
    /// end while rtinspect was down is still told (as far as dockerd's
    /// ring of 256 events reaches).
    pub resume_from: Option<SystemTime>,
}

/// Starts the reader thread.
pub fn spawn(parts: ReaderParts) -> io::Result<EventsReader> {
    let stop = Arc::new(AtomicBool::new(false));
    let stream = Arc::new(Mutex::new(None));
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let (s, st) = (stop.clone(), stream.clone());
    let thread = std::thread::Builder::new()
        .name("docker-events".into())
        .spawn(move || {
            let _alive = alive;
            read_forever(&parts, &s, &st)
        })?;
    Ok(EventsReader {
        thread,
        stop,
        stream,
        ended,
    })
}

/// Why one subscription ended.
#[derive(Debug)]
enum Break {
    /// The stream ended or failed; reconnect.
    Stream(DockerError),
    /// Asked to stop.
    Stopped,
}

fn read_forever(parts: &ReaderParts, stop: &AtomicBool, slot: &Mutex<Option<UnixStream>>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut last_event: Option<SystemTime> = None;
    let mut warned = false;
    let mut first = true;
    let mut subscribed = false;
    while !stop.load(Relaxed) {
        // Resume a second before the last event seen (or, before any, the
        // last an earlier run took): a duplicate costs nothing, a gap would
        // cost an event.
        let since = last_event
            .or(parts.resume_from)
            .map(|t| t - Duration::from_secs(1));
        parts.counters.attempted();
        let state = Subscription {
            last_event: &mut last_event,
            backoff: &mut backoff,
            warned: &mut warned,
            subscribed: &mut subscribed,
            after_break: !first,
        };
        match subscribe(parts, since, stop, slot, state) {
            Break::Stopped => break,
            Break::Stream(e) => {
                if !stop.load(Relaxed) && !warned {
                    warned = true;
                    log::warn!(err:% = e; "Docker events stream broken; reconnecting with backoff (the poll goes on)");
                }
            }
        }
        if first && !subscribed {
            // The inspector waits for the first subscription before its
            // first tick; a failed one must not keep it waiting.
            offer(parts, Nudge::Resync);
        }
        first = false;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let delay = backoff.next_delay();
        let until = Instant::now() + delay;
        while !stop.load(Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(delay));
        }
    }
}

/// What one subscription reads and updates of the reader's state.
struct Subscription<'a> {
    /// The time of the last event seen (or of the subscription).
    last_event: &'a mut Option<SystemTime>,
    backoff: &'a mut Backoff,
    /// Whether the break was warned about (once per outage).
    warned: &'a mut bool,
    /// Whether any subscription ever succeeded.
    subscribed: &'a mut bool,
    /// Whether an earlier attempt broke or failed: a success is a reconnect.
    after_break: bool,
}

/// Whether one subscription has shown that it works, so that the reconnect
/// backoff and the outage warning may start afresh. A stream that breaks at
/// once must not reconnect, and tick, in a loop; and dockerd replays from
/// `since` whatever its ring holds, so an event it replays (no newer than
/// the last one seen) proves nothing: a stream that replays one and ends at
/// once is as broken as one that sends nothing.
#[derive(Debug)]
struct Proof {
    /// The time of the last event seen before this subscription (or of the
    /// first subscription): only an event after it is news.
    seen: SystemTime,
    /// When the response head arrived.
    up_since: Instant,
    /// How long the stream must stay up to prove itself whatever it
    /// carries: the silence after which a quiet one is pinged.
    stay: Duration,
    proven: bool,
}

impl Proof {
    fn new(seen: SystemTime, up_since: Instant, stay: Duration) -> Self {
        Proof {
            seen,
            up_since,
            stay,
            proven: false,
        }
    }

    /// An event of time `at` arrived at `now`; `true` when this proves the
    /// stream for the first time.
    fn event(&mut self, at: SystemTime, now: Instant) -> bool {
        let news = at > self.seen;
        self.settle(news || self.stayed(now))
    }

    /// dockerd answered the ping of a silent stream.
    fn pinged(&mut self) -> bool {
        self.settle(true)
    }

    /// The reader woke for anything else (a skipped line, the end).
    fn woke(&mut self, now: Instant) -> bool {
        self.settle(self.stayed(now))
    }

    fn stayed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.up_since) >= self.stay
    }

    fn settle(&mut self, proves: bool) -> bool {
        let first = proves && !self.proven;
        self.proven |= proves;
        first
    }
}

/// One subscription: connect, request, then read events until the stream
/// breaks or `stop` is set.
fn subscribe(
    parts: &ReaderParts,
    since: Option<SystemTime>,
    stop: &AtomicBool,
    slot: &Mutex<Option<UnixStream>>,
    state: Subscription<'_>,
) -> Break {
    let Subscription {
        last_event,
        backoff,
        warned,
        subscribed,
        after_break,
    } = state;
    let version = match parts.client.negotiate() {
        Ok(v) => v,
        Err(e) => return Break::Stream(e),
    };
    // An event older than the request was replayed from `since`.
    let asked_at = SystemTime::now();
    let stream = match open(parts, version, since) {
        Ok(s) => s,
        Err(e) => return Break::Stream(e),
    };
    if let Ok(clone) = stream.try_clone() {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(clone);
    }
    if stop.load(Relaxed) {
        return Break::Stopped;
    }
    let mut body = match read_head(stream, parts) {
        Ok(b) => b,
        Err(e) => return Break::Stream(e),
    };
    // Subscribed: whatever happened while not subscribed is caught by a full
    // tick, and a break from now on resumes at least from here.
    let seen = *last_event.get_or_insert_with(SystemTime::now);
    *subscribed = true;
    if after_break {
        parts.counters.reconnected();
    }
    offer(parts, Nudge::Resync);
    let mut proof = Proof::new(seen, Instant::now(), parts.silence);
    // The backoff and the warning start afresh only once the stream has
    // proved itself.
    let proved = |backoff: &mut Backoff, warned: &mut bool| {
        backoff.reset();
        if *warned {
            *warned = false;
            log::info!("Docker events stream subscribed again");
        }
    };
    let mut line = Vec::with_capacity(1024);
    loop {
        let got = read_line(&mut body, &mut line);
        let now = Instant::now();
        let event = match got {
            Ok(Got::Line) => decode_event(&line, parts.label.as_deref()).map(|mut e| {
                e.replayed = e.at < asked_at;
                e
            }),
            _ => None,
        };
        // A silence proves nothing by itself: the ping that follows decides.
        let silent = matches!(&got, Err(e) if unix_socket::is_timeout(e));
        let newly_proven = match &event {
            Some(e) => proof.event(e.at, now),
            None if !silent => proof.woke(now),
            None => false,
        };
        if newly_proven {
            proved(backoff, warned);
        }
        match got {
            Ok(Got::End) => {
                return Break::Stream(DockerError::Transport(
                    "the events stream ended (dockerd stopping or restarting)".into(),
                ));
            }
            Ok(Got::Line) => {
                if let Some(event) = event {
                    *last_event = Some(event.at);
                    parts.counters.event(event.action);
                    // Replayed or not, the inspector decides.
                    offer(parts, Nudge::Container(event));
                }
                line.clear();
            }
            Ok(Got::Skipped) => {
                log::warn!(
                    "skipped a Docker event line over {LINE_LIMIT} bytes; a tick will catch up"
                );
                offer(parts, Nudge::Resync);
            }
            Err(e) if stop.load(Relaxed) => {
                let _ = e;
                return Break::Stopped;
            }
            Err(e) if unix_socket::is_timeout(&e) => {
                // Silent for a while: a quiet host, or a dockerd that hangs.
                if let Err(e) = parts.client.ping() {
                    return Break::Stream(e);
                }
                if proof.pinged() {
                    proved(backoff, warned);
                }
            }
            Err(e) => return Break::Stream(DockerError::Transport(Box::new(e))),
        }
    }
}

/// Hands a nudge over without waiting; a full channel turns into a resync.
fn offer(parts: &ReaderParts, nudge: Nudge) {
    match parts.nudges.try_send(nudge) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => parts.overflow.store(true, Relaxed),
        Err(TrySendError::Disconnected(_)) => {}
    }
}
