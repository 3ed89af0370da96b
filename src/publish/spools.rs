//! The spool's life around a run: what each sink's spool (and an earlier
//! version's single spool) holds at the start, published first; what is left
//! undelivered at the exit, written once, late events added.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::event::HealthEvent;
use crate::failure::Failure;
use crate::publish::fanout::split;
use crate::publish::outbox::Outbox;
use crate::state::StateDir;
use crate::state::spool::{LoadedSpool, SPOOL_LIMIT};
use crate::telemetry::Telemetry;

/// Each sink's spooled events to publish first, in the order of the sinks;
/// lines that do not parse are set aside. The spool of a version that had
/// one sink (`spool.jsonl`) goes, event by event, to every sink that gets
/// such events now (its facts to the sinks of facts, its incidents to the
/// sinks of incidents); an event no sink gets now is set aside. Spools of
/// sinks no longer configured are kept, and said so.
pub(crate) fn spooled(
    config: &Config,
    state: Option<&StateDir>,
    telemetry: &Telemetry,
) -> Result<Vec<Vec<HealthEvent>>, Failure> {
    let routes = config.sinks.iter().map(|s| &s.route);
    let Some(state) = state else {
        return Ok(vec![Vec::new(); config.sinks.len()]);
    };
    let read = |e| Failure::runtime("reading the spool", e);
    let old = state.load_old_spool().map_err(read)?;
    said_aside(state, &old, "spool.jsonl", telemetry);
    let (mut backlogs, no_sink) = split(routes, &old.events);
    // Every sink's own spool is read before anything is written: a start
    // that fails here leaves the files as they were.
    let mut own_spools = Vec::with_capacity(backlogs.len());
    for index in 0..backlogs.len() {
        let counters = telemetry.sink(index);
        let own = state.load_spool(&counters.name).map_err(read)?;
        said_aside(state, &own, &counters.name, telemetry);
        counters
            .events_rejected
            .fetch_add((own.bad + own.over_limit) as u64, Relaxed);
        own_spools.push(own.events);
    }
    for (index, (backlog, own)) in backlogs.iter_mut().zip(own_spools).enumerate() {
        let counters = telemetry.sink(index);
        // An event already in the sink's spool (a start that failed after
        // saving it, before the old spool went) is not taken twice.
        let spooled: std::collections::HashSet<&str> =
            own.iter().map(|o| o.event_id.as_str()).collect();
        backlog.retain(|e| !spooled.contains(e.event_id.as_str()));
        let adopted = backlog.len();
        backlog.extend(own);
        if adopted > 0 {
            // In the sink's own spool before the old one goes.
            state.save_spool(&counters.name, backlog).map_err(read)?;
            log::info!(sink = counters.name.as_str();
                "{adopted} events of spool.jsonl, from an earlier version, go to this sink");
        }
        if !backlog.is_empty() {
            log::info!(sink = counters.name.as_str();
                "publishing {} spooled events first", backlog.len());
        }
    }
    if !no_sink.is_empty() {
        let reason = "spooled by an earlier version; no sink configured now gets it (--report)";
        state
            .append_rejected_events("spool.jsonl", &no_sink, reason)
            .map_err(read)?;
        log::error!(
            "{} events of spool.jsonl, from an earlier version, go to no sink configured now \
             (--report); set aside in {}",
            no_sink.len(),
            state.path().join("rejected.jsonl").display()
        );
    }
    // Every event of it is now in a sink's spool or set aside.
    state.remove_old_spool().map_err(read)?;
    let names: Vec<&str> = telemetry.sinks.iter().map(|s| s.name.as_str()).collect();
    for (path, bytes) in state.other_spools(&names).map_err(read)? {
        log::warn!(
            "{} ({bytes} bytes) holds events for a sink not configured now; they stay \
             there until it is",
            path.display()
        );
    }
    Ok(backlogs)
}

/// Says what reading a spool set aside (and counts the lines a rotation of
/// `rejected.jsonl` dropped meanwhile).
fn said_aside(state: &StateDir, loaded: &LoadedSpool, spool: &str, telemetry: &Telemetry) {
    if loaded.bad + loaded.over_limit > 0 {
        log::error!(spool = spool;
            "{} spool lines did not parse and {} events were past the spool's {} limit; \
             set aside in {}",
            loaded.bad,
            loaded.over_limit,
            SPOOL_LIMIT,
            state.path().join("rejected.jsonl").display()
        );
    }
    if loaded.rejected_dropped > 0 {
        telemetry
            .rejected_dropped
            .fetch_add(loaded.rejected_dropped, Relaxed);
        log::error!(
            "{} older refused events were dropped as rejected.jsonl rotated",
            loaded.rejected_dropped
        );
    }
}

/// A sink's final spool, written once: by the main thread at the end of the
/// drain, or by the signal thread on a second signal, whichever comes first;
/// events that come later (from an inspect still under way then) are added
/// to it.
pub(crate) struct FinalSpool {
    /// The sink's name.
    pub(crate) sink: String,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) state: Option<StateDir>,
    /// What was spooled, once it was.
    pub(crate) written: Mutex<Option<Vec<HealthEvent>>>,
}

impl FinalSpool {
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
