//! The publisher: a thread that takes events from the [`Outbox`] and hands
//! them to one sink, in order. Each sink has its own outbox and publisher,
//! so that a sink that is down or paced never holds up another.
//!
//! A sink that paces itself (a chat service's rate limit) is waited for
//! before each send, and then gets every event that waits by then, up to
//! what one send may carry, as one message: a burst becomes a digest, not a
//! backlog that takes minutes to trickle out.
//!
//! A sink that is down is retried with capped, jittered backoff, the same
//! event first, and not before the wait the sink asked for (a webhook's
//! `Retry-After`) is over; an event the sink refuses for good is set aside (to
//! `rejected.jsonl`, or the error log) and the queue moves on, so that one bad
//! event never holds up the others. The inspector never waits for the sink:
//! it offers each event to the queue and counts a drop when the queue is full.
//!
//! Whatever the sink is doing, the owner of the outbox can [`Outbox::close`]
//! it at any moment and get back every event not yet delivered, the one in
//! flight included: that is what makes shutdown bounded when a statement is
//! blocked or a peer is frozen. The waits between tries, a sink's asked-for
//! wait included, are the publisher's own, and a close ends them at once.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};

pub use crate::backoff::Backoff;
use crate::event::HealthEvent;
use crate::sink::{EventSink, SinkError};
use crate::state::StateDir;
use crate::telemetry::{SinkCounters, Telemetry};

/// How many events may wait for the sink before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// The events waiting for the sink: a backlog read from the spool, the queue
/// the inspector feeds, and the one event the publisher is delivering.
#[derive(Debug)]
pub struct Outbox {
    queue: Receiver<HealthEvent>,
    slot: Mutex<Slot>,
    /// Dropped by [`Outbox::close`], which wakes the publisher at once.
    closer: Mutex<Option<Sender<()>>>,
    closed: Receiver<()>,
}

#[derive(Debug, Default)]
struct Slot {
    backlog: VecDeque<HealthEvent>,
    /// The events of the send under way, in order.
    in_flight: Vec<HealthEvent>,
    closed: bool,
}

impl Outbox {
    /// An outbox with `backlog` (spooled events) first, and the sender that
    /// feeds its bounded queue.
    pub fn new(backlog: Vec<HealthEvent>) -> (Sender<HealthEvent>, Arc<Outbox>) {
        let (events, queue) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let (closer, closed) = crossbeam_channel::bounded(0);
        let outbox = Outbox {
            queue,
            slot: Mutex::new(Slot {
                backlog: backlog.into(),
                ..Slot::default()
            }),
            closer: Mutex::new(Some(closer)),
            closed,
        };
        (events, Arc::new(outbox))
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events waiting, the one in flight included.
    pub fn len(&self) -> usize {
        let slot = self.slot();
        slot.backlog.len() + slot.in_flight.len() + self.queue.len()
    }

    /// Whether nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops delivery and returns every event not yet delivered, in order: the
    /// ones in flight, the backlog, the queue. The publisher ends at its next
    /// step; an event it is handing to the sink right now may still arrive
    /// there too (delivery is at least once). Later calls return what was
    /// queued since.
    pub fn close(&self) -> Vec<HealthEvent> {
        let mut slot = self.slot();
        slot.closed = true;
        self.closer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut left = std::mem::take(&mut slot.in_flight);
        left.extend(slot.backlog.drain(..));
        left.extend(self.queue.try_iter());
        left
    }

    /// Waits until an event may be taken, the outbox is closed, or `limit` passes.
    fn wait_ready(&self, limit: Duration) {
        let mut select = Select::new();
        select.recv(&self.queue);
        select.recv(&self.closed);
        let _ = select.ready_timeout(limit);
    }

    /// Waits for the next event to deliver and marks it in flight; false
    /// once the outbox is closed or every sender is gone and nothing is left.
    fn take(&self) -> bool {
        loop {
            {
                let mut slot = self.slot();
                if slot.closed {
                    return false;
                }
                // The send under way is empty here: `done` emptied it.
                match self.fill(&mut slot, 1) {
                    Filled::Full => return true,
                    Filled::NoSender => return false,
                    Filled::Waiting => {}
                }
            }
            self.wait_ready(Duration::from_secs(3600));
        }
    }

    /// Moves into the send under way the events that come within `window`,
    /// up to `limit` in all; it ends early once the limit is reached or
    /// every sender is gone (nothing more will come: the end of `once`, or a
    /// shutdown). True when the outbox was closed meanwhile.
    fn gather_for(&self, window: Duration, limit: usize) -> bool {
        let deadline = Instant::now() + window;
        loop {
            {
                let mut slot = self.slot();
                if slot.closed {
                    return true;
                }
                if self.fill(&mut slot, limit) != Filled::Waiting {
                    return false;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait_ready(deadline - now);
        }
    }

    /// Adds to the send under way the events that wait now, up to `limit`
    /// in all, and returns them all; `None` once the outbox is closed (they
    /// went back to its owner).
    fn gather(&self, limit: usize) -> Option<Vec<HealthEvent>> {
        let mut slot = self.slot();
        if slot.closed {
            return None;
        }
        self.fill(&mut slot, limit);
        Some(slot.in_flight.clone())
    }

    /// Moves waiting events, the backlog first, into the send under way
    /// until it holds `limit` or none waits; says which.
    fn fill(&self, slot: &mut Slot, limit: usize) -> Filled {
        while slot.in_flight.len() < limit {
            let next = match slot.backlog.pop_front() {
                Some(e) => e,
                None => match self.queue.try_recv() {
                    Ok(e) => e,
                    Err(TryRecvError::Empty) => return Filled::Waiting,
                    Err(TryRecvError::Disconnected) => return Filled::NoSender,
                },
            };
            slot.in_flight.push(next);
        }
        Filled::Full
    }

    /// The events in flight were delivered or set aside. False when the
    /// outbox was closed meanwhile (they went back to its owner).
    fn done(&self) -> bool {
        let mut slot = self.slot();
        slot.in_flight.clear();
        !slot.closed
    }

    /// Sleeps for `d`, or until the outbox is closed; true when it was.
    fn sleep(&self, d: Duration) -> bool {
        matches!(
            self.closed.recv_timeout(d),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }
}

/// How a send under way was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filled {
    /// It holds as many as it may carry.
    Full,
    /// Nothing more waits now; more may come.
    Waiting,
    /// Nothing waits, and every sender is gone: nothing more will come.
    NoSender,
}

/// Offers an event to the queue without waiting; a full queue drops it,
/// counted and logged. A closed outbox refuses it (`Err`), for the caller to
/// spool: after the close, nobody reads the queue.
pub fn offer(
    outbox: &Outbox,
    events: &Sender<HealthEvent>,
    event: HealthEvent,
    counters: &SinkCounters,
) -> Result<(), Box<HealthEvent>> {
    // Under the slot's lock, which `close` holds while it drains the queue:
    // an event is either drained by the close or refused here.
    let slot = outbox.slot();
    if slot.closed {
        return Err(Box::new(event));
    }
    let (event, why) = match events.try_send(event) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Full(e)) => (e, "publish queue full"),
        Err(TrySendError::Disconnected(e)) => (e, "publisher is gone"),
    };
    drop(slot);
    counters.events_dropped.fetch_add(1, Relaxed);
    log::error!(sink = counters.name, game_id = event.game_id.as_str(),
        container_id = event.container_id.as_str(), event_type = event.event_type,
        envelope = event.envelope.as_str();
        "{why} ({QUEUE_CAPACITY}): event dropped");
    Ok(())
}

/// Offers an event to the queue, waiting for room until `deadline` and then
/// putting it behind the backlog (for `once`, which has no next tick to
/// protect). A closed outbox refuses it (`Err`), for the caller to spool.
pub fn offer_until(
    outbox: &Outbox,
    events: &Sender<HealthEvent>,
    mut event: HealthEvent,
    deadline: Instant,
) -> Result<(), Box<HealthEvent>> {
    loop {
        let mut slot = outbox.slot();
        if slot.closed {
            return Err(Box::new(event));
        }
        event = match events.try_send(event) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => e,
        };
        if Instant::now() >= deadline {
            slot.backlog.push_back(event);
            return Ok(());
        }
        drop(slot);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where events a sink refused for good are set aside: `rejected.jsonl`,
/// each line marked with the sink's name, which rotates at
/// `REJECTED_LIMIT` (the state directory's) keeping one older file; events of an
/// older file that a rotation drops are counted in
/// `rtinspect_rejected_dropped_total`.
#[derive(Debug, Clone)]
pub struct Rejects {
    state: Option<StateDir>,
    /// The sink's place in [`Telemetry::sinks`].
    sink: usize,
}

impl Rejects {
    /// Into `rejected.jsonl` in `state`, or the error log without one, for
    /// the sink `sink` of [`Telemetry::sinks`].
    pub fn new(state: Option<StateDir>, sink: usize) -> Self {
        Rejects { state, sink }
    }

    /// Sets `events` (refused together: one event, or a digest's) aside,
    /// counted, in one write; no envelope is ever only dropped.
    pub fn set_aside(
        &self,
        events: &[HealthEvent],
        why: &dyn std::fmt::Display,
        telemetry: &Telemetry,
    ) {
        let reason = why.to_string();
        let counters = telemetry.sink(self.sink);
        counters
            .events_rejected
            .fetch_add(events.len() as u64, Relaxed);
        let first = &events[0];
        let kept = self
            .state
            .as_ref()
            .map(|state| state.append_rejected_events(counters.name, events, &reason));
        match kept {
            Some(Ok(aside)) => {
                if aside.dropped > 0 {
                    telemetry.rejected_dropped.fetch_add(aside.dropped, Relaxed);
                    log::warn!(
                        "{} rotated at {} MiB: the {} older refused events in {}.1 were dropped",
                        aside.path.display(),
                        crate::state::REJECTED_LIMIT >> 20,
                        aside.dropped,
                        aside.path.display()
                    );
                }
                let what = match events.len() {
                    1 => "event".to_owned(),
                    n => format!("{n} events of one send"),
                };
                log::error!(sink = counters.name, game_id = first.game_id.as_str(),
                    container_id = first.container_id.as_str(), event_type = first.event_type,
                    err = reason.as_str();
                    "{what} refused by the sink; set aside in {}", aside.path.display());
            }
            Some(Err(e)) => {
                log::error!(err:% = e; "cannot write to the rejected events file");
                self.logged(events, &reason, counters.name);
            }
            None => self.logged(events, &reason, counters.name),
        }
    }

    /// Each refused envelope in the error log, whole: it could not be kept.
    fn logged(&self, events: &[HealthEvent], reason: &str, sink: &str) {
        for event in events {
            log::error!(sink = sink, game_id = event.game_id.as_str(),
                container_id = event.container_id.as_str(), event_type = event.event_type,
                err = reason, envelope = event.envelope.as_str();
                "event refused by the sink; set aside here (no state directory)");
        }
    }
}

/// The running publisher thread.
#[derive(Debug)]
pub struct Publisher {
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends, however it ends.
    ended: Receiver<()>,
}

impl Publisher {
    /// Waits until the thread has ended or `deadline` passes; true when it ended.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        matches!(
            self.ended.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    /// Joins the thread if it has ended, re-raising its panic; a thread still
    /// blocked in the sink is left behind (the process is about to exit).
    pub fn join_if_ended(self) {
        if self.thread.is_finished()
            && let Err(panic) = self.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Starts the publisher thread of the sink `rejects` is for, over `outbox`.
/// It ends when the outbox is closed, or when every sender is gone and
/// everything was delivered.
pub fn spawn(
    mut sink: Box<dyn EventSink>,
    outbox: Arc<Outbox>,
    rejects: Rejects,
    backoff: Backoff,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<Publisher> {
    let (alive, ended) = crossbeam_channel::bounded::<()>(0);
    let index = rejects.sink;
    telemetry.sink(index).publisher_alive.store(true, Relaxed);
    let t = telemetry.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("sink-{}", telemetry.sink(index).name))
        .spawn(move || {
            // Dropped however the thread ends, panics included: the flag
            // for /healthz, and the sender whose end wakes `wait_until`.
            struct Alive<'a>(&'a SinkCounters);
            impl Drop for Alive<'_> {
                fn drop(&mut self) {
                    self.0.publisher_alive.store(false, Relaxed);
                }
            }
            let _alive = (Alive(t.sink(index)), alive);
            deliver(&mut *sink, &outbox, &rejects, backoff, &t);
        });
    match spawned {
        Ok(thread) => Ok(Publisher { thread, ended }),
        Err(e) => {
            telemetry.sink(index).publisher_alive.store(false, Relaxed);
            Err(e)
        }
    }
}

/// Counts the detection latency of an event a Docker event prompted, and
/// says at debug level where the time went: from dockerd's time of the event
/// to the inspector taking it, to the inspect's answer, to the sink's accepting.
fn detected(event: &HealthEvent, prompt: &crate::event::Prompt, counters: &SinkCounters) {
    let accepted = std::time::SystemTime::now();
    let since = |t: std::time::SystemTime| t.duration_since(prompt.event_at).unwrap_or_default();
    counters.detection_latency.observe(since(accepted));
    if log::log_enabled!(log::Level::Debug) {
        let ms = |t| format!("{:.3}", since(t).as_secs_f64() * 1000.0);
        log::debug!(sink = counters.name, game_id = event.game_id.as_str(),
            container_id = event.container_id.as_str(), action = prompt.action,
            read_ms = ms(prompt.read_at).as_str(), answered_ms = ms(prompt.answered_at).as_str(),
            accepted_ms = ms(accepted).as_str(); "detected");
    }
}

/// Waits until the sink's pace lets a send go; false when the outbox was
/// closed meanwhile.
fn paced(sink: &mut dyn EventSink, outbox: &Outbox) -> bool {
    loop {
        let wait = sink.ready_in(Instant::now());
        if wait.is_zero() {
            return true;
        }
        if outbox.sleep(wait) {
            return false;
        }
    }
}

fn deliver(
    sink: &mut dyn EventSink,
    outbox: &Outbox,
    rejects: &Rejects,
    mut backoff: Backoff,
    telemetry: &Telemetry,
) {
    let counters = telemetry.sink(rejects.sink);
    let mut failing_since: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    while outbox.take() {
        // What comes while the send gathers, and what waits by the time the
        // pace lets it go, goes with it.
        let (gather, limit) = (sink.gather(), sink.batch_limit().max(1));
        if (!gather.is_zero() && outbox.gather_for(gather, limit)) || !paced(sink, outbox) {
            return;
        }
        let Some(batch) = outbox.gather(limit) else {
            return;
        };
        loop {
            match sink.publish_batch(&batch) {
                Ok(()) => {
                    counters.delivered(Instant::now());
                    for event in &batch {
                        counters.published(event.event_type);
                        if let Some(prompt) = &event.prompt {
                            detected(event, prompt, counters);
                        }
                    }
                    backoff.reset();
                    if let Some(since) = failing_since.take() {
                        log::info!(sink = counters.name;
                            "sink accepts events again after {:?}", since.elapsed());
                    }
                    break;
                }
                Err(SinkError::Refused(why)) => {
                    // The sink answered, so it is not down; these events are bad.
                    counters.refused(batch.len(), &why, Instant::now());
                    rejects.set_aside(&batch, &why, telemetry);
                    backoff.reset();
                    break;
                }
                Err(e @ (SinkError::Unavailable(_) | SinkError::UnavailableFor(..))) => {
                    counters.publish_failures.fetch_add(1, Relaxed);
                    let now = Instant::now();
                    counters.failed(&e, now);
                    failing_since.get_or_insert(now);
                    // The longer of the sink's wait and the backoff: never
                    // sooner than the sink asked, never faster than the
                    // backoff (a `Retry-After: 0` on every answer must not
                    // make a busy loop), and never longer than the sum that
                    // was waited when the webhook slept its wait itself.
                    let delay = backoff.next_delay();
                    let asked = e.retry_after().filter(|asked| *asked >= delay);
                    // One warning a minute while the sink stays down.
                    if last_warning.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                        last_warning = Some(now);
                        let retrying = match asked {
                            Some(wait) => {
                                format!("retrying in {}s, as the sink asked", wait.as_secs_f32())
                            }
                            None => "retrying with backoff".to_owned(),
                        };
                        let event = &batch[0];
                        log::warn!(sink = counters.name, game_id = event.game_id.as_str(),
                            container_id = event.container_id.as_str(),
                            event_type = event.event_type, events = batch.len(), err:% = e;
                            "publish failed; {retrying} ({} waiting)", outbox.len());
                    }
                    // The outbox's sleep, which a close ends at once: a
                    // shutdown spools the events instead of waiting this out.
                    if outbox.sleep(asked.unwrap_or(delay)) || !paced(sink, outbox) {
                        return;
                    }
                }
            }
        }
        if !outbox.done() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;
    use crate::fakes::{FakeSink, SinkAnswer};

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
    }

    /// A publisher over `sink`, `backlog` first, with `backoff` and no
    /// state directory: its queue's sender, its outbox, its thread and the
    /// counters.
    fn start(
        sink: impl EventSink + 'static,
        backlog: Vec<HealthEvent>,
        backoff: Backoff,
    ) -> (Sender<HealthEvent>, Arc<Outbox>, Publisher, Arc<Telemetry>) {
        let (tx, outbox) = Outbox::new(backlog);
        let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
        let rejects = Rejects::new(None, 0);
        let p = spawn(
            Box::new(sink),
            outbox.clone(),
            rejects,
            backoff,
            telemetry.clone(),
        )
        .unwrap();
        (tx, outbox, p, telemetry)
    }

    fn games(events: &[HealthEvent]) -> Vec<String> {
        events.iter().map(|e| e.game_id.clone()).collect()
    }

    /// Publishes `sent` through a sink answering `script` (then accepting),
    /// with every sender dropped; returns (accepted, telemetry).
    fn run(script: Vec<SinkAnswer>, sent: &[&str]) -> (Vec<String>, Arc<Telemetry>) {
        let sink = FakeSink::new(script);
        let accepted = sink.accepted();
        let (tx, outbox, p, telemetry) = start(sink, Vec::new(), fast());
        for g in sent {
            tx.send(event(g)).unwrap();
        }
        drop(tx);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        p.join_if_ended();
        assert!(outbox.is_empty());
        let got = games(&accepted.lock().unwrap());
        (got, telemetry)
    }

    #[test]
    fn an_unavailable_sink_is_retried_in_order() {
        let (accepted, t) = run(vec![SinkAnswer::Down; 5], &["a", "b", "c"]);
        assert_eq!(accepted, vec!["a", "b", "c"]);
        assert_eq!(t.sink(0).events_published[0].load(Relaxed), 3);
        assert_eq!(t.sink(0).publish_failures.load(Relaxed), 5);
        assert_eq!(t.sink(0).events_rejected.load(Relaxed), 0);
    }

    #[test]
    fn a_refused_event_is_set_aside_and_the_next_goes_on() {
        let (accepted, t) = run(
            vec![SinkAnswer::Down, SinkAnswer::Refuse, SinkAnswer::Accept],
            &["poison", "b", "c"],
        );
        assert_eq!(accepted, vec!["b", "c"]);
        assert_eq!(t.sink(0).events_rejected.load(Relaxed), 1);
        assert_eq!(t.sink(0).events_published[0].load(Relaxed), 2);
    }

    #[test]
    fn refused_events_go_to_rejected_jsonl_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("rtinspect-rejects-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        let sink = FakeSink::new(vec![SinkAnswer::Refuse]);
        let (tx, outbox) = Outbox::new(Vec::new());
        let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
        let p = spawn(
            Box::new(sink),
            outbox,
            Rejects::new(Some(state.clone()), 0),
            fast(),
            telemetry,
        )
        .unwrap();
        let bad = event("bad");
        tx.send(bad.clone()).unwrap();
        drop(tx);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        let text = std::fs::read_to_string(dir.join("rejected.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["reason"], "refused by the fake sink");
        assert_eq!(line["envelope"]["event_id"], bad.event_id.as_str());
        drop(state);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_dropped_by_the_rotation_of_rejected_jsonl_are_counted() {
        let dir = std::env::temp_dir().join(format!("rtinspect-rotated-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        // A full rejected.jsonl, and an older one of three events.
        let full = format!(
            "{}\n",
            "x".repeat(crate::state::REJECTED_LIMIT as usize - 1)
        );
        std::fs::write(dir.join("rejected.jsonl"), full).unwrap();
        std::fs::write(dir.join("rejected.jsonl.1"), "{}\n{}\n{}\n").unwrap();
        let telemetry = Telemetry::for_sinks(&["test"]);
        let rejects = Rejects::new(Some(state.clone()), 0);
        rejects.set_aside(&[event("bad")], &"refused", &telemetry);
        assert_eq!(telemetry.sink(0).events_rejected.load(Relaxed), 1);
        assert_eq!(telemetry.rejected_dropped.load(Relaxed), 3);
        let metrics = crate::metrics::render(&telemetry, &[0]);
        assert!(
            metrics.contains("\nrtinspect_rejected_dropped_total 3\n"),
            "{metrics}"
        );
        let text = std::fs::read_to_string(dir.join("rejected.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 1, "a fresh file holds the new one");
        drop(state);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_backlog_goes_before_the_queue() {
        let sink = FakeSink::new(Vec::new());
        let accepted = sink.accepted();
        let (tx, outbox) = Outbox::new(vec![event("spooled-1"), event("spooled-2")]);
        // Queued before the publisher starts: the backlog still goes first.
        tx.send(event("new")).unwrap();
        drop(tx);
        let telemetry = Arc::new(Telemetry::for_sinks(&["test"]));
        let rejects = Rejects::new(None, 0);
        let p = spawn(Box::new(sink), outbox, rejects, fast(), telemetry).unwrap();
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        assert_eq!(
            games(&accepted.lock().unwrap()),
            vec!["spooled-1", "spooled-2", "new"]
        );
    }

    #[test]
    fn close_returns_the_event_in_flight_and_the_rest_while_the_sink_hangs() {
        let sink = FakeSink::new(vec![SinkAnswer::Hang]);
        let entered = sink.entered();
        let (tx, outbox, p, _) = start(sink, vec![event("backlog")], fast());
        tx.send(event("queued")).unwrap();
        // The sink is now blocked inside publish with the backlog event.
        entered.recv_timeout(Duration::from_secs(30)).unwrap();
        let left = outbox.close();
        assert_eq!(games(&left), vec!["backlog", "queued"]);
        assert!(
            !p.wait_until(Instant::now() + Duration::from_millis(50)),
            "the thread is still blocked in the sink"
        );
        tx.send(event("late")).unwrap();
        assert_eq!(
            games(&outbox.close()),
            vec!["late"],
            "a later close gets the rest"
        );
    }

    #[test]
    fn close_wakes_a_publisher_waiting_out_a_backoff() {
        let sink = FakeSink::new(vec![SinkAnswer::Down]);
        let (tx, outbox, p, _) = start(
            sink,
            Vec::new(),
            Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600)),
        );
        tx.send(event("a")).unwrap();
        crate::fakes::wait_for(|| outbox.len() == 1 && tx.is_empty());
        let left = outbox.close();
        assert_eq!(games(&left), vec!["a"]);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        p.join_if_ended();
    }

    /// A sink that asks for each wait of `asks` in turn (as a 429's
    /// `Retry-After` does), then accepts; it notes when each try came.
    struct AskingSink {
        asks: VecDeque<Duration>,
        tries: Arc<Mutex<Vec<Instant>>>,
    }

    impl EventSink for AskingSink {
        fn publish(&mut self, _: &HealthEvent) -> Result<(), SinkError> {
            self.tries.lock().unwrap().push(Instant::now());
            match self.asks.pop_front() {
                Some(wait) => Err(SinkError::UnavailableFor(wait, "answered 429".into())),
                None => Ok(()),
            }
        }
    }

    /// Starts a publisher over a sink asking for `asks`, with `backoff`, and
    /// hands it one event (its sender then gone); returns the tries' times.
    fn asking(
        asks: &[Duration],
        backoff: Backoff,
    ) -> (Publisher, Arc<Mutex<Vec<Instant>>>, Arc<Outbox>) {
        let tries = Arc::new(Mutex::new(Vec::new()));
        let sink = AskingSink {
            asks: asks.iter().copied().collect(),
            tries: tries.clone(),
        };
        let (tx, outbox, p, _) = start(sink, Vec::new(), backoff);
        tx.send(event("a")).unwrap();
        (p, tries, outbox)
    }

    fn gaps(tries: &Mutex<Vec<Instant>>) -> Vec<Duration> {
        let tries = tries.lock().unwrap();
        tries.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[test]
    fn the_wait_a_sink_asks_for_is_waited_out_when_longer_than_the_backoff() {
        let ten_ms = Duration::from_millis(10);
        let (p, tries, outbox) =
            asking(&[Duration::from_millis(300)], Backoff::new(ten_ms, ten_ms));
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        assert!(outbox.is_empty());
        let gaps = gaps(&tries);
        assert_eq!(gaps.len(), 1, "one retry, then accepted");
        assert!(
            gaps[0] >= Duration::from_millis(300) && gaps[0] < Duration::from_secs(2),
            "{gaps:?}"
        );
        eprintln!("retried {:?} after a 300 ms wait was asked", gaps[0]);
    }

    #[test]
    fn a_wait_shorter_than_the_backoff_does_not_shorten_it() {
        // A receiver answering `Retry-After: 0` every time is no busy loop.
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200));
        let (p, tries, _outbox) = asking(&[Duration::ZERO; 2], backoff);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        let gaps = gaps(&tries);
        assert_eq!(gaps.len(), 2);
        // The backoff's jitter takes up to half of it.
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_millis(100)),
            "{gaps:?}"
        );
    }

    #[test]
    fn close_ends_a_wait_the_sink_asked_for_at_once() {
        let (p, tries, outbox) = asking(&[Duration::from_secs(60)], fast());
        crate::fakes::wait_for(|| tries.lock().unwrap().len() == 1);
        let closing = Instant::now();
        let left = outbox.close();
        assert_eq!(games(&left), vec!["a"], "the event goes back for the spool");
        assert!(
            p.wait_until(closing + Duration::from_millis(200)),
            "still waiting out the 60 s"
        );
        let took = closing.elapsed();
        p.join_if_ended();
        assert_eq!(tries.lock().unwrap().len(), 1, "no try after the close");
        eprintln!("publisher ended {took:?} after a close during a 60 s wait");
    }

    /// A sink that lets one send go every `pace`, and carries up to
    /// `limit` events in one; it notes each send's events.
    struct PacedSink {
        pace: Duration,
        gather: Duration,
        limit: usize,
        next: Option<Instant>,
        sends: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl EventSink for PacedSink {
        fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
            self.publish_batch(std::slice::from_ref(event))
        }

        fn ready_in(&mut self, now: Instant) -> Duration {
            self.next
                .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
        }

        fn batch_limit(&self) -> usize {
            self.limit
        }

        fn gather(&self) -> Duration {
            self.gather
        }

        fn publish_batch(&mut self, events: &[HealthEvent]) -> Result<(), SinkError> {
            assert!(!events.is_empty() && events.len() <= self.limit);
            assert!(
                self.ready_in(Instant::now()).is_zero(),
                "sent before its pace"
            );
            self.next = Some(Instant::now() + self.pace);
            self.sends.lock().unwrap().push(games(events));
            Ok(())
        }
    }

    #[test]
    fn a_paced_sink_gets_what_waits_by_its_next_send_in_one_batch() {
        let sends = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedSink {
            pace: Duration::from_millis(300),
            gather: Duration::ZERO,
            limit: 40,
            next: None,
            sends: sends.clone(),
        };
        let (tx, _, p, telemetry) = start(sink, vec![event("spooled")], fast());
        crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
        // A burst while the sink waits out its pace: 100 events.
        for i in 0..100 {
            tx.send(event(&format!("g-{i}"))).unwrap();
        }
        drop(tx);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        let sends = sends.lock().unwrap();
        let sizes: Vec<usize> = sends.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 40, 40, 20], "{sends:?}");
        let all: Vec<String> = sends.concat();
        let sent: Vec<String> = std::iter::once("spooled".to_owned())
            .chain((0..100).map(|i| format!("g-{i}")))
            .collect();
        assert_eq!(all, sent, "every event once, in order");
        assert_eq!(telemetry.sink(0).events_published[0].load(Relaxed), 101);
    }

    #[test]
    fn a_burst_the_pace_would_let_through_one_by_one_is_gathered_into_one_send() {
        let sends = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedSink {
            pace: Duration::ZERO,
            gather: Duration::from_millis(500),
            limit: 500,
            next: None,
            sends: sends.clone(),
        };
        let (tx, _, p, _) = start(sink, Vec::new(), fast());
        for i in 0..40 {
            tx.send(event(&format!("g-{i}"))).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(tx);
        assert!(p.wait_until(Instant::now() + Duration::from_secs(30)));
        let sizes: Vec<usize> = sends.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [40], "one send for the burst");
    }

    #[test]
    fn gathering_ends_once_nothing_more_can_come() {
        let sends = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedSink {
            pace: Duration::ZERO,
            gather: Duration::from_secs(3600),
            limit: 500,
            next: None,
            sends: sends.clone(),
        };
        let (tx, _, p, _) = start(sink, vec![event("spooled")], fast());
        tx.send(event("a")).unwrap();
        let dropped = Instant::now();
        drop(tx);
        assert!(
            p.wait_until(dropped + Duration::from_secs(5)),
            "still gathering"
        );
        assert_eq!(*sends.lock().unwrap(), [vec!["spooled", "a"]]);
        // A full batch waits for nothing either.
        let sends = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedSink {
            pace: Duration::ZERO,
            gather: Duration::from_secs(3600),
            limit: 3,
            next: None,
            sends: sends.clone(),
        };
        let backlog = (0..3).map(|i| event(&format!("g-{i}"))).collect();
        let (_tx, _, _p, _) = start(sink, backlog, fast());
        crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
    }

    #[test]
    fn close_during_a_pace_wait_hands_the_events_back_at_once() {
        let sends = Arc::new(Mutex::new(Vec::new()));
        let sink = PacedSink {
            pace: Duration::from_secs(3600),
            gather: Duration::ZERO,
            limit: 10,
            next: None,
            sends: sends.clone(),
        };
        let (tx, outbox, p, _) = start(sink, Vec::new(), fast());
        tx.send(event("first")).unwrap();
        crate::fakes::wait_for(|| sends.lock().unwrap().len() == 1);
        tx.send(event("a")).unwrap();
        tx.send(event("b")).unwrap();
        // "a" is in flight, waiting for the pace; "b" in the queue.
        crate::fakes::wait_for(|| tx.len() == 1);
        let closing = Instant::now();
        assert_eq!(games(&outbox.close()), vec!["a", "b"]);
        assert!(
            p.wait_until(closing + Duration::from_secs(1)),
            "still pacing"
        );
        p.join_if_ended();
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, outbox) = Outbox::new(Vec::new());
        let t = Telemetry::for_sinks(&["test"]);
        for _ in 0..QUEUE_CAPACITY + 2 {
            offer(&outbox, &tx, event("x"), t.sink(0)).unwrap();
        }
        assert_eq!(t.sink(0).events_dropped.load(Relaxed), 2);
    }

    #[test]
    fn an_event_offered_after_the_close_is_handed_back_not_queued() {
        let (tx, outbox) = Outbox::new(Vec::new());
        let t = Telemetry::for_sinks(&["test"]);
        offer(&outbox, &tx, event("before"), t.sink(0)).unwrap();
        let left = outbox.close();
        assert_eq!(left.len(), 1);
        let late = offer(&outbox, &tx, event("late"), t.sink(0)).unwrap_err();
        assert_eq!(late.game_id, "late");
        let late = offer_until(&outbox, &tx, event("late2"), Instant::now()).unwrap_err();
        assert_eq!(late.game_id, "late2");
        assert!(
            outbox.close().is_empty(),
            "nothing went into the queue after the close"
        );
        assert_eq!(t.sink(0).events_dropped.load(Relaxed), 0);
    }
}
