//! The publisher: a thread that takes events off a bounded channel and hands
//! them to the sink, in order, retrying a refused event until it is accepted.
//!
//! The inspector never waits for the sink: it offers each event to the queue
//! and counts a drop when the queue is full. On shutdown the publisher keeps
//! delivering until the queue is empty or the drain deadline passes; what is
//! left then is returned to the caller, never silently discarded.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;

/// Why a sink refused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError(pub String);

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SinkError {}

/// Where events go. `publish` returns only once the event is durably handed
/// over (written and flushed, or committed).
pub trait EventSink: Send {
    /// Publishes one event; an error means it was not accepted and will be retried.
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError>;
}

/// Writes each envelope as one line and flushes it.
#[derive(Debug)]
pub struct StdoutSink<W: Write + Send> {
    out: W,
}

impl StdoutSink<std::io::Stdout> {
    /// A sink on the process's standard output.
    pub fn stdout() -> Self {
        StdoutSink {
            out: std::io::stdout(),
        }
    }
}

impl<W: Write + Send> StdoutSink<W> {
    /// A sink on any writer.
    pub fn new(out: W) -> Self {
        StdoutSink { out }
    }

    /// The writer, for tests.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> EventSink for StdoutSink<W> {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        let mut line = Vec::with_capacity(event.envelope.len() + 1);
        line.extend_from_slice(event.envelope.as_bytes());
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|e| SinkError(format!("writing to stdout: {e}")))
    }
}

/// How the publisher's run ended.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Events the sink accepted.
    pub published: u64,
    /// Events still undelivered when the drain deadline passed, in order.
    pub undelivered: Vec<HealthEvent>,
}

/// Retry delays: exponential from `first`, capped, with up to 50% jitter so
/// that many hosts recovering together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `first` doubling up to `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let jitter = base.mul_f64((random % 1000) as f64 / 2000.0);
        base - jitter
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The publisher's settings.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// How long, once shutdown is requested, delivery may go on.
    pub drain: Duration,
    /// Retry delays for a refused event.
    pub backoff: Backoff,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            drain: Duration::from_secs(10),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
        }
    }
}

/// Starts the publisher thread. It ends when every sender of `events` is
/// dropped and the queue is delivered, or when the drain deadline passes.
pub fn spawn(
    mut sink: Box<dyn EventSink>,
    events: Receiver<HealthEvent>,
    shutdown: Shutdown,
    options: PublisherOptions,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<JoinHandle<Delivery>> {
    telemetry.publisher_alive.store(true, Relaxed);
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            // Cleared however the thread ends, panics included, for /healthz.
            struct Alive<'a>(&'a Telemetry);
            impl Drop for Alive<'_> {
                fn drop(&mut self) {
                    self.0.publisher_alive.store(false, Relaxed);
                }
            }
            let _alive = Alive(&telemetry);
            deliver(&mut *sink, &events, &shutdown, options, &telemetry)
        })
}

fn deliver(
    sink: &mut dyn EventSink,
    events: &Receiver<HealthEvent>,
    shutdown: &Shutdown,
    mut options: PublisherOptions,
    telemetry: &Telemetry,
) -> Delivery {
    let mut delivery = Delivery::default();
    let mut deadline: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;

    while let Ok(event) = events.recv() {
        loop {
            match sink.publish(&event) {
                Ok(()) => {
                    telemetry.events_published.fetch_add(1, Relaxed);
                    delivery.published += 1;
                    options.backoff.reset();
                    if let Some(since) = failing_since.take() {
                        log::info!("sink accepts events again after {:?}", since.elapsed());
                    }
                    break;
                }
                Err(e) => {
                    telemetry.publish_failures.fetch_add(1, Relaxed);
                    let now = Instant::now();
                    failing_since.get_or_insert(now);
                    // One warning a minute while the sink keeps refusing.
                    if last_warning.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                        last_warning = Some(now);
                        log::warn!(game_id = event.game_id.as_str(),
                            container_id = event.container_id.as_str(),
                            event_type = INSPECT_UNHEALTHY, err:% = e;
                            "publish failed; retrying with backoff ({} queued)", events.len());
                    }
                    let delay = options.backoff.next_delay();
                    if deadline.is_none() && shutdown.is_requested() {
                        deadline = Some(now + options.drain);
                    }
                    match deadline {
                        // Draining: keep the backoff, but make a last try at
                        // the deadline and give up after it.
                        Some(d) if now >= d => {
                            delivery.undelivered.push(event);
                            delivery.undelivered.extend(events.iter());
                            return delivery;
                        }
                        Some(d) => std::thread::sleep(delay.min(d - now)),
                        None => {
                            if shutdown.wait(delay) {
                                deadline = Some(Instant::now() + options.drain);
                            }
                        }
                    }
                }
            }
        }
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;

    /// Refuses the first `fail` publishes, then records what it accepts.
    struct Flaky {
        fail: usize,
        accepted: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl EventSink for Flaky {
        fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(SinkError("down".into()));
            }
            self.accepted.lock().unwrap().push(event.game_id.clone());
            Ok(())
        }
    }

    fn fast() -> PublisherOptions {
        PublisherOptions {
            drain: Duration::from_millis(200),
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(4)),
        }
    }

    #[test]
    fn refused_events_are_retried_in_order() {
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Flaky {
            fail: 5,
            accepted: accepted.clone(),
        };
        let (tx, rx) = crossbeam_channel::bounded(8);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let telemetry = Arc::new(Telemetry::default());
        let handle = spawn(Box::new(sink), rx, shutdown, fast(), telemetry.clone()).unwrap();
        for g in ["a", "b", "c"] {
            tx.send(event(g)).unwrap();
        }
        drop(tx);
        let delivery = handle.join().unwrap();
        assert_eq!(*accepted.lock().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(delivery.published, 3);
        assert!(delivery.undelivered.is_empty());
        assert_eq!(telemetry.events_published.load(Relaxed), 3);
        assert_eq!(telemetry.publish_failures.load(Relaxed), 5);
    }

    #[test]
    fn after_the_drain_deadline_the_rest_is_returned_not_lost() {
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Flaky {
            fail: usize::MAX,
            accepted: accepted.clone(),
        };
        let (tx, rx) = crossbeam_channel::bounded(8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let telemetry = Arc::new(Telemetry::default());
        let handle = spawn(Box::new(sink), rx, shutdown, fast(), telemetry.clone()).unwrap();
        for g in ["a", "b", "c"] {
            tx.send(event(g)).unwrap();
        }
        trigger.trigger();
        drop(tx);
        let delivery = handle.join().unwrap();
        let left: Vec<_> = delivery
            .undelivered
            .iter()
            .map(|e| e.game_id.as_str())
            .collect();
        assert_eq!(left, vec!["a", "b", "c"]);
        assert_eq!(telemetry.events_published.load(Relaxed), 0);
        assert!(accepted.lock().unwrap().is_empty());
    }

    #[test]
    fn draining_keeps_retrying_until_the_deadline() {
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Refuses for longer than a few instant retries would cover.
        let sink = Flaky {
            fail: 40,
            accepted: accepted.clone(),
        };
        let (tx, rx) = crossbeam_channel::bounded(8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let options = PublisherOptions {
            drain: Duration::from_secs(30),
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
        };
        let telemetry = Arc::new(Telemetry::default());
        trigger.trigger();
        let handle = spawn(Box::new(sink), rx, shutdown, options, telemetry).unwrap();
        tx.send(event("a")).unwrap();
        drop(tx);
        let delivery = handle.join().unwrap();
        assert!(delivery.undelivered.is_empty());
        assert_eq!(*accepted.lock().unwrap(), vec!["a"]);
    }

    #[test]
    fn stdout_sink_writes_one_line_per_event() {
        let mut sink = StdoutSink::new(Vec::new());
        let (a, b) = (event("a"), event("b"));
        sink.publish(&a).unwrap();
        sink.publish(&b).unwrap();
        let out = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(out, format!("{}\n{}\n", a.envelope, b.envelope));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bases = [100, 200, 400, 800, 800];
        for base in bases {
            let d = b.next_delay();
            let base = Duration::from_millis(base);
            assert!(d <= base && d >= base / 2, "{d:?} for base {base:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
