//! How the inspector offers an event to a sink's outbox without ever
//! waiting, and what a full queue costs.
//!
//! No incident event is dropped for a full queue. With a state directory,
//! what finds the queue full goes to the sink's overflow file
//! (`overflow`), and every later event behind it, in order, until the
//! publisher has read it all back. Without one, the queue's events move
//! behind the backlog and room is made there, facts first (`shed`): at most
//! [`QUEUE_CAPACITY`] wait there and as many again in the queue. What goes
//! is counted by type; facts are said together once a minute, an incident's
//! event dropped is logged whole.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::outbox::{FullQueue, Outbox, QUEUE_CAPACITY, Slot};
use super::overflow::{OVERFLOW_LIMIT, Overflow, Pushed};
use super::shed::{self, Shed};
use crate::event::{EventType, HealthEvent};
use crate::telemetry::SinkCounters;

/// Without a state directory, the most events that wait behind the backlog
/// once the queue was full, one-shot incident events past
/// [`QUEUE_CAPACITY`] included: the bound of memory (some 8 MB).
const HELD_HARD_LIMIT: usize = 2 * QUEUE_CAPACITY;

/// How often a full queue is said while it lasts.
const SAY_EVERY: Duration = Duration::from_secs(60);

/// Offers an event to the queue without waiting. A full queue sends it to
/// the overflow file, with every later one until that is read back; without
/// one, room is made behind the backlog, facts first; what goes is counted
/// by type and logged. A closed outbox refuses it (`Err`), for the caller to
/// spool: after the close, nobody reads the queue.
pub(crate) fn offer(
    outbox: &Outbox,
    events: &Sender<HealthEvent>,
    event: HealthEvent,
    counters: &SinkCounters,
) -> Result<(), Box<HealthEvent>> {
    // Under the slot's lock, which `close` holds while it drains the queue:
    // an event is either drained by the close or refused here.
    let mut slot = outbox.slot();
    if slot.closed {
        return Err(Box::new(event));
    }
    // Once events overflowed, later ones go behind them, not past them.
    let overflowing = slot.overflow.as_ref().is_some_and(|o| o.waiting() > 0);
    let event = if overflowing {
        event
    } else {
        match events.try_send(event) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(e)) => e,
            Err(TrySendError::Disconnected(e)) => {
                drop(slot);
                dropped(&e, "the publisher is gone", counters);
                return Ok(());
            }
        }
    };
    let slot = &mut *slot;
    if let Some(overflow) = slot.overflow.as_mut() {
        match overflow.push(&event) {
            Ok(Pushed::Kept) => {
                counters.events_overflowed.fetch_add(1, Relaxed);
                slot.full.overflowed += 1;
                say_full(&mut slot.full, counters, Some(overflow));
            }
            Ok(Pushed::Full) if event.event_type == EventType::Fact => {
                counters.dropped(event.event_type);
                slot.full.facts += 1;
                say_full(&mut slot.full, counters, Some(overflow));
            }
            Ok(Pushed::Full) => {
                let why = format!(
                    "publish queue full and {} at its bound",
                    overflow.path().display()
                );
                dropped(&event, &why, counters);
            }
            Err(e) => {
                // What it holds stays there for the next start; from now on
                // a full queue makes room facts first.
                log::error!(sink = counters.name, err:% = e;
                    "cannot write to {} ({} events wait there for the next start): \
                     a full queue now drops facts first",
                    overflow.path().display(), overflow.waiting());
                slot.overflow = None;
                make_room(slot, outbox, event, counters);
            }
        }
        return Ok(());
    }
    make_room(slot, outbox, event, counters);
    Ok(())
}

/// Without an overflow file: the queue's events move behind the backlog,
/// `event` after them, and room is made there facts first (`shed`).
fn make_room(slot: &mut Slot, outbox: &Outbox, event: HealthEvent, counters: &SinkCounters) {
    slot.backlog.extend(outbox.queue.try_iter());
    slot.backlog.push_back(event);
    for (gone, why) in shed::make_room(&mut slot.backlog, QUEUE_CAPACITY, HELD_HARD_LIMIT) {
        counters.dropped(gone.event_type);
        match why {
            // Nothing lost but an older look at the game.
            Shed::Superseded => slot.full.superseded += 1,
            Shed::Fact => slot.full.facts += 1,
            Shed::Reminder => {
                dropped_logged(
                    &gone,
                    "publish queue full: an incident's reminder",
                    counters,
                );
            }
            Shed::Incident => dropped_logged(
                &gone,
                &format!("{HELD_HARD_LIMIT} incident events waiting: the oldest"),
                counters,
            ),
        }
    }
    say_full(&mut slot.full, counters, None);
}

/// Says, once a minute while it lasts, what a full queue costs.
fn say_full(full: &mut FullQueue, counters: &SinkCounters, overflow: Option<&Overflow>) {
    let now = Instant::now();
    if full.said_at.is_some_and(|at| now - at < SAY_EVERY) {
        return;
    }
    full.said_at = Some(now);
    match overflow {
        Some(o) => log::warn!(sink = counters.name;
            "publish queue full ({QUEUE_CAPACITY}): {} events went to {} since last said; \
             they are published in order once the queue drains ({} waiting there); {} facts \
             dropped with the file at its bound ({} MiB of facts)",
            full.overflowed, o.path().display(), o.waiting(), full.facts, OVERFLOW_LIMIT >> 20),
        None => log::warn!(sink = counters.name;
            "publish queue full ({QUEUE_CAPACITY}, no state directory): since last said {} facts \
             dropped, each superseded by a later fact of its game still queued, and {} facts \
             the newest of their game (an incident's event dropped is logged on its own)",
            full.superseded, full.facts),
    }
    full.overflowed = 0;
    full.superseded = 0;
    full.facts = 0;
}

/// Counts and logs an event dropped (logged whole, so that it is not lost
/// without a trace).
fn dropped(event: &HealthEvent, why: &str, counters: &SinkCounters) {
    counters.dropped(event.event_type);
    dropped_logged(event, why, counters);
}

/// Logs an event dropped and already counted, whole.
fn dropped_logged(event: &HealthEvent, why: &str, counters: &SinkCounters) {
    log::error!(sink = counters.name, game_id = event.game_id.as_str(),
        container_id = event.container_id.as_str(), event_type = event.event_type.as_str(),
        envelope = event.envelope().as_str();
        "{why}: event dropped");
}

/// Offers an event to the queue, waiting for room until `deadline` and then
/// putting it behind the backlog (for `once`, which has no next tick to
/// protect). A closed outbox refuses it (`Err`), for the caller to spool.
pub(crate) fn offer_until(
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
        // Behind what overflowed in an earlier run, not past it.
        if let Some(overflow) = slot.overflow.as_mut()
            && overflow.waiting() > 0
            && matches!(overflow.push(&event), Ok(Pushed::Kept))
        {
            return Ok(());
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
