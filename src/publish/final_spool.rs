//! A sink's final spool: what its outbox held when it closed, written to
//! the state directory once (or logged whole without one), with the events
//! that come later. Both the fanout (an event past the close) and the
//! spools' life (the drain's end, a second signal) hand it events.

use std::sync::{Arc, Mutex};

use crate::event::HealthEvent;
use crate::failure::Failure;
use crate::publish::outbox::Outbox;
use crate::state::StateDir;

/// A sink's final spool, written once: by the main thread at the end of the
/// drain, or by the signal thread on a second signal, whichever comes first;
/// events that come later (from an inspect still under way then) are added
/// to it.
pub(crate) struct FinalSpool {
    /// The sink's name.
    sink: String,
    outbox: Arc<Outbox>,
    state: Option<StateDir>,
    /// What was spooled, once it was.
    written: Mutex<Option<Vec<HealthEvent>>>,
}

impl FinalSpool {
    /// The final spool of the sink `sink`, over its outbox.
    pub(crate) fn new(sink: String, outbox: Arc<Outbox>, state: Option<StateDir>) -> FinalSpool {
        FinalSpool {
            sink,
            outbox,
            state,
            written: Mutex::new(None),
        }
    }

    /// The sink's name.
    pub(crate) fn sink(&self) -> &str {
        &self.sink
    }

    /// The sink's outbox.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Closes the outbox and keeps what it held; the count of events spooled.
    pub(crate) fn write(&self) -> Result<usize, Failure> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(events) = &*written {
            return Ok(events.len());
        }
        let undelivered = self.outbox.close();
        let n = keep_undelivered(&self.sink, &undelivered, self.state.as_ref())?;
        *written = Some(undelivered);
        Ok(n)
    }

    /// Keeps an event that came after the outbox closed: the spool is
    /// written again with it, or, without one, its envelope is logged whole.
    pub(crate) fn keep_late(&self, event: HealthEvent) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let mut events = written.take().unwrap_or_default();
        events.push(event);
        let kept = match &self.state {
            Some(state) => keep_undelivered(&self.sink, &events, Some(state)),
            None => keep_undelivered(&self.sink, &events[events.len() - 1..], None),
        };
        if let Err(e) = kept {
            log::error!("{e}");
        }
        *written = Some(events);
    }

    /// How many events were spooled, late ones included; waits for one
    /// being spooled right now.
    pub(crate) fn count(&self) -> usize {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.as_ref().map_or(0, Vec::len)
    }
}

/// Saves what could not be delivered to the spool (and clears a spool whose
/// events were all delivered); without a state directory, or when the spool
/// cannot be written, each envelope goes to the error log whole and the exit
/// is a failure. Returns how many events were spooled.
fn keep_undelivered(
    sink: &str,
    undelivered: &[HealthEvent],
    state: Option<&StateDir>,
) -> Result<usize, Failure> {
    if let Some(state) = state {
        match state.save_spool(sink, undelivered) {
            Ok(()) => {
                if !undelivered.is_empty() {
                    log::warn!(sink = sink;
                        "{} undelivered events spooled to {}; they are published at the next start",
                        undelivered.len(),
                        state.path().display()
                    );
                }
                return Ok(undelivered.len());
            }
            Err(e) => log::error!(sink = sink, err:% = e; "cannot write the spool"),
        }
    }
    if undelivered.is_empty() {
        return Ok(0);
    }
    // Nothing is dropped silently: each envelope goes to the log, whole.
    for event in undelivered {
        log::error!(sink = sink, game_id = event.game_id.as_str(),
            container_id = event.container_id.as_str(),
            event_type = event.event_type.as_str(), envelope = event.envelope().as_str();
            "event not delivered before exit");
    }
    Err(Failure::because(format!(
        "{} events could not be delivered before the drain deadline (their envelopes are in the log)",
        undelivered.len()
    )))
}
