//! The outbox: the events waiting for one sink — a backlog read from the
//! spool, the bounded queue the inspector feeds, the overflow on disk, and
//! the send under way — and how the publisher takes from it: one event, or
//! what gathers for one send, the backlog first and the overflow read back
//! once the queue is drained; and the close that hands back, at any moment,
//! every event not yet delivered.
//!
//! How the inspector offers an event to it without ever waiting, and what
//! a full queue costs, is `offer`'s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};

use super::overflow::Overflow;
use crate::event::HealthEvent;
use crate::state::StateDir;

/// How many events the queue holds; when it is full, what comes overflows
/// to disk, or without a state directory makes room facts first.
pub(crate) const QUEUE_CAPACITY: usize = 4096;

/// How many events are read back from the overflow file at a time.
const OVERFLOW_CHUNK: usize = 512;

/// The events waiting for the sink: a backlog read from the spool, the queue
/// the inspector feeds, and the one event the publisher is delivering.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(super) queue: Receiver<HealthEvent>,
    slot: Mutex<Slot>,
    /// Dropped by [`Outbox::close`], which wakes the publisher at once.
    closer: Mutex<Option<Sender<()>>>,
    closed: Receiver<()>,
}

/// What the outbox holds besides the queue, under one lock.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) backlog: VecDeque<HealthEvent>,
    /// The events of the send under way, in order.
    pub(super) in_flight: Vec<HealthEvent>,
    pub(super) closed: bool,
    /// The sink's overflow file, with a state directory.
    pub(super) overflow: Option<Overflow>,
    /// What a full queue cost since it was last said.
    pub(super) full: FullQueue,
}

/// What a full queue cost since it was last said (once a minute): facts
/// go in numbers, so they are said together; an incident's event dropped
/// is logged whole, each.
#[derive(Debug, Default)]
pub(super) struct FullQueue {
    pub(super) said_at: Option<Instant>,
    pub(super) overflowed: u64,
    pub(super) superseded: u64,
    /// Facts dropped that no later fact of the game still waiting says
    /// again: past the overflow file's bound, or the newest of their game.
    pub(super) facts: u64,
}

impl Outbox {
    /// An outbox with `backlog` (spooled events) first, and the sender that
    /// feeds its bounded queue.
    pub(crate) fn new(backlog: Vec<HealthEvent>) -> (Sender<HealthEvent>, Arc<Outbox>) {
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

    /// The outbox's state, under its lock (taken whole by a close).
    pub(super) fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends what finds the queue full to `overflow.<sink>.jsonl` in
    /// `state` (and what an earlier run left there goes after the backlog).
    /// Without it (it cannot be opened: said here) the outbox makes room
    /// facts first, as without a state directory.
    pub(crate) fn overflow_to(&self, state: &StateDir, sink: &str) {
        match Overflow::open(state.path(), sink) {
            Ok(overflow) => {
                if overflow.waiting() > 0 {
                    log::info!(sink = sink;
                        "{} events that overflowed the queue in an earlier run are published \
                         after the spool, from {}", overflow.waiting(), overflow.path().display());
                }
                self.slot().overflow = Some(overflow);
            }
            Err(e) => log::error!(sink = sink, err:% = e;
                "cannot open the overflow file in {}: a full queue will drop facts first",
                state.path().display()),
        }
    }

    /// Events waiting, the one in flight and those in the overflow file
    /// included.
    pub(crate) fn len(&self) -> usize {
        let slot = self.slot();
        slot.backlog.len()
            + slot.in_flight.len()
            + self.queue.len()
            + slot.overflow.as_ref().map_or(0, Overflow::waiting)
    }

    /// Whether nothing waits and nothing is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops delivery and returns every event not yet delivered, in order: the
    /// ones in flight, the backlog, the queue. The publisher ends at its next
    /// step; an event it is handing to the sink right now may still arrive
    /// there too (delivery is at least once). Later calls return what was
    /// queued since. What waits in the overflow file (newer than all those)
    /// stays there for the next start, which publishes it after the spool.
    pub(crate) fn close(&self) -> Vec<HealthEvent> {
        let mut slot = self.slot();
        let first = !slot.closed;
        slot.closed = true;
        self.closer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut left = std::mem::take(&mut slot.in_flight);
        left.extend(slot.backlog.drain(..));
        left.extend(self.queue.try_iter());
        if let (true, Some(overflow)) = (first, slot.overflow.as_mut()) {
            match overflow.keep_for_next_start() {
                Ok(0) => {}
                Ok(n) => log::warn!(
                    "{n} events that overflowed the queue wait in {} for the next start",
                    overflow.path().display()
                ),
                Err(e) => log::error!(err:% = e;
                    "cannot keep {} for the next start", overflow.path().display()),
            }
        }
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
    pub(super) fn take(&self) -> bool {
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
    pub(super) fn gather_for(&self, window: Duration, limit: usize) -> bool {
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
    pub(super) fn gather(&self, limit: usize) -> Option<Vec<HealthEvent>> {
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
                    // The queue is drained: the overflow, newer, comes next.
                    Err(_) if read_overflow(slot) => continue,
                    Err(TryRecvError::Empty) => return Filled::Waiting,
                    Err(TryRecvError::Disconnected) => return Filled::NoSender,
                },
            };
            slot.in_flight.push(next);
        }
        Filled::Full
    }

    /// Moves the next waiting event into the send under way, behind the
    /// ones there, and returns it; `None` when none waits or the outbox is
    /// closed. Until [`Outbox::behind_done`], a close hands it back in its
    /// place, after the send under way.
    pub(super) fn take_behind(&self) -> Option<HealthEvent> {
        let mut slot = self.slot();
        if slot.closed {
            return None;
        }
        let limit = slot.in_flight.len() + 1;
        match self.fill(&mut slot, limit) {
            Filled::Full => slot.in_flight.last().cloned(),
            Filled::Waiting | Filled::NoSender => None,
        }
    }

    /// The event [`Outbox::take_behind`] gave is done with: delivered (or
    /// set aside), it leaves the send under way; not, it goes back to the
    /// head of what waits. False when the outbox was closed meanwhile (it
    /// went back to its owner with the rest).
    pub(super) fn behind_done(&self, delivered: bool) -> bool {
        let mut slot = self.slot();
        if slot.closed {
            return false;
        }
        if let Some(event) = slot.in_flight.pop()
            && !delivered
        {
            slot.backlog.push_front(event);
        }
        true
    }

    /// The events in flight were delivered or set aside. False when the
    /// outbox was closed meanwhile (they went back to its owner).
    pub(super) fn done(&self) -> bool {
        let mut slot = self.slot();
        slot.in_flight.clear();
        !slot.closed
    }

    /// Sleeps for `d`, or until the outbox is closed; true when it was.
    pub(super) fn sleep(&self, d: Duration) -> bool {
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

/// Moves the next chunk of the overflow file into the backlog; false when
/// nothing waits there. A line that does not parse is dropped, logged.
fn read_overflow(slot: &mut Slot) -> bool {
    let Some(overflow) = slot.overflow.as_mut() else {
        return false;
    };
    if overflow.waiting() == 0 {
        return false;
    }
    match overflow.take(OVERFLOW_CHUNK) {
        Ok(lines) => {
            for line in lines {
                match line {
                    Ok(event) => slot.backlog.push_back(event),
                    Err(e) => log::error!(err = e.as_str();
                        "a line of {} is not an event; dropped", overflow.path().display()),
                }
            }
            if overflow.waiting() == 0 {
                log::info!(
                    "{} is read back whole: the queue takes events again",
                    overflow.path().display()
                );
            }
            true
        }
        Err(e) => {
            log::error!(err:% = e; "cannot read {}; what it holds waits for the next start",
                overflow.path().display());
            slot.overflow = None;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;
    use crate::publish::offer::{offer, offer_until};
    use crate::telemetry::Telemetry;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn the_event_behind_the_send_goes_back_in_its_place_or_with_a_close() {
        let (tx, outbox) = Outbox::new(vec![event("head"), event("behind")]);
        tx.send(event("queued")).unwrap();
        assert!(outbox.take());
        assert_eq!(outbox.take_behind().unwrap().game_id, "behind");
        // Not delivered: back at the head of what waits, after the send.
        assert!(outbox.behind_done(false));
        assert_eq!(outbox.take_behind().unwrap().game_id, "behind");
        let left: Vec<String> = outbox.close().into_iter().map(|e| e.game_id).collect();
        assert_eq!(left, ["head", "behind", "queued"]);
        assert!(!outbox.behind_done(true), "closed meanwhile");
    }

    use crate::event::opened_event as opened;

    /// Every event the publisher would take, in order, until none waits.
    fn drain(outbox: &Outbox) -> Vec<HealthEvent> {
        let mut taken = Vec::new();
        loop {
            let mut slot = outbox.slot();
            if outbox.fill(&mut slot, 1) != Filled::Full {
                return taken;
            }
            taken.append(&mut slot.in_flight);
        }
    }

    #[test]
    fn without_a_state_directory_a_full_queue_drops_facts_never_an_incident_event() {
        let (tx, outbox) = Outbox::new(Vec::new());
        let t = Telemetry::for_sinks(&["test"]);
        for i in 0..QUEUE_CAPACITY {
            offer(&outbox, &tx, event(&format!("g-{i}")), t.sink(0)).unwrap();
        }
        // Full: the incident's event stays, the oldest fact goes.
        offer(&outbox, &tx, opened("g-new"), t.sink(0)).unwrap();
        // A game's facts, tick after tick, twice the queue: each supersedes
        // the one before.
        for _ in 0..2 * QUEUE_CAPACITY {
            offer(&outbox, &tx, event("g-0"), t.sink(0)).unwrap();
        }
        let dropped = |i: usize| t.sink(0).events_dropped[i].load(Relaxed);
        assert!(dropped(0) > QUEUE_CAPACITY as u64, "facts: {}", dropped(0));
        assert_eq!(dropped(1), 0, "no incident_opened dropped");
        assert!(outbox.len() <= 2 * QUEUE_CAPACITY, "{}", outbox.len());
        let left = drain(&outbox);
        assert_eq!(
            left.iter()
                .filter(|e| e.event_type.as_str() == "incident_opened")
                .count(),
            1
        );
        assert_eq!(
            left.len() as u64 + dropped(0),
            3 * QUEUE_CAPACITY as u64 + 1
        );
        assert_eq!(t.sink(0).events_overflowed.load(Relaxed), 0);
    }

    #[test]
    fn with_a_state_directory_a_full_queue_overflows_to_disk_in_order_and_drops_nothing() {
        let dir = std::env::temp_dir().join(format!("rtinspect-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        let (tx, outbox) = Outbox::new(vec![event("spooled")]);
        outbox.overflow_to(&state, "test");
        let t = Telemetry::for_sinks(&["test"]);
        let n = QUEUE_CAPACITY + 1000;
        let mut sent = vec!["spooled".to_owned()];
        for i in 0..n {
            let e = if i % 100 == 0 {
                opened(&format!("g-{i}"))
            } else {
                event(&format!("g-{i}"))
            };
            sent.push(e.game_id.clone());
            offer(&outbox, &tx, e, t.sink(0)).unwrap();
            // The publisher takes a few meanwhile: later events still go
            // behind those in the file.
            if i == QUEUE_CAPACITY + 10 {
                let mut slot = outbox.slot();
                assert_eq!(outbox.fill(&mut slot, 3), Filled::Full);
            }
        }
        // From the first that found the queue full, every one.
        assert_eq!(t.sink(0).events_overflowed.load(Relaxed), 1000);
        assert_eq!(outbox.len(), n + 1);
        let mut got: Vec<String> = std::mem::take(&mut outbox.slot().in_flight)
            .into_iter()
            .map(|e| e.game_id)
            .collect();
        got.extend(drain(&outbox).into_iter().map(|e| e.game_id));
        assert_eq!(got, sent, "every event once, in order");
        assert!(
            t.sink(0)
                .events_dropped
                .iter()
                .all(|c| c.load(Relaxed) == 0)
        );
        assert_eq!(
            std::fs::metadata(dir.join("overflow.test.jsonl"))
                .unwrap()
                .len(),
            0
        );
        drop(state);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_overflowed_and_was_not_read_waits_for_the_next_start_after_the_spool() {
        let dir =
            std::env::temp_dir().join(format!("rtinspect-outbox-exit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        let (tx, outbox) = Outbox::new(Vec::new());
        outbox.overflow_to(&state, "test");
        let t = Telemetry::for_sinks(&["test"]);
        for i in 0..QUEUE_CAPACITY + 5 {
            offer(&outbox, &tx, event(&format!("g-{i}")), t.sink(0)).unwrap();
        }
        // The close hands back the queue (for the spool); the five in the
        // file stay there.
        assert_eq!(outbox.close().len(), QUEUE_CAPACITY);
        let (tx2, next) = Outbox::new(vec![event("spooled")]);
        next.overflow_to(&state, "test");
        assert_eq!(next.len(), 6);
        drop(tx2);
        let got: Vec<String> = drain(&next).into_iter().map(|e| e.game_id).collect();
        let mut want = vec!["spooled".to_owned()];
        want.extend((QUEUE_CAPACITY..QUEUE_CAPACITY + 5).map(|i| format!("g-{i}")));
        assert_eq!(got, want);
        drop(tx);
        drop(state);
        std::fs::remove_dir_all(&dir).unwrap();
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
        assert!(
            t.sink(0)
                .events_dropped
                .iter()
                .all(|c| c.load(Relaxed) == 0)
        );
    }
}
