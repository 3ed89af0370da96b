//! The outbox: the events waiting for one sink — a backlog read from the
//! spool, the bounded queue the inspector feeds, and the send under way —
//! and how the inspector offers an event to it without ever waiting.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};

use crate::event::HealthEvent;
use crate::telemetry::SinkCounters;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;
    use crate::telemetry::Telemetry;

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
