//! The spool's life around a run: what each sink's spool (and an earlier
//! version's single spool) holds at the start, published first ([`spooled`]),
//! each sink's outbox opened over it ([`open`]); at the exit, delivery
//! drained until the deadline and what is left undelivered written once,
//! late events added ([`Spools`]). The daemon only calls these.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::event::HealthEvent;
use crate::failure::Failure;
use crate::publish::fanout::{Outlet, split};
use crate::publish::final_spool::FinalSpool;
use crate::publish::outbox::Outbox;
use crate::publish::publisher::Publisher;
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

/// Each sink's end of the inspector, its `backlogs` (the spool, from
/// [`spooled`]) queued first, what finds its queue full waiting on disk
/// after it (with a state directory); and the spools to write at the exit.
pub(crate) fn open(
    config: &Config,
    backlogs: Vec<Vec<HealthEvent>>,
    state: Option<&StateDir>,
) -> (Vec<Outlet>, Spools) {
    let outlets: Vec<Outlet> = config
        .sinks
        .iter()
        .zip(backlogs)
        .enumerate()
        .map(|(index, (sink, backlog))| {
            let (events, outbox) = Outbox::new(backlog);
            if let Some(state) = state {
                outbox.overflow_to(state, &sink.name);
            }
            let spool = Arc::new(FinalSpool::new(
                sink.name.clone(),
                outbox.clone(),
                state.cloned(),
            ));
            Outlet {
                index,
                route: sink.route.clone(),
                events,
                outbox,
                spool,
            }
        })
        .collect();
    let spools = Spools(outlets.iter().map(|o| o.spool.clone()).collect());
    (outlets, spools)
}

/// Every sink's final spool, in the order of the sinks: what the exit
/// drains and writes, and what a second signal writes at once.
#[derive(Clone, Default)]
pub(crate) struct Spools(Vec<Arc<FinalSpool>>);

impl Spools {
    /// Delivery goes on until `deadline`: until each publisher has ended
    /// when no one sends any more (`senders_gone`: it ends once it has
    /// delivered everything), else while an outbox holds anything.
    pub(crate) fn drain(&self, publishers: &[Publisher], deadline: Instant, senders_gone: bool) {
        if senders_gone {
            for publisher in publishers {
                publisher.wait_until(deadline);
            }
            return;
        }
        while let Some(i) = self.0.iter().position(|s| !s.outbox().is_empty())
            && Instant::now() < deadline
        {
            publishers[i].wait_until((Instant::now() + Duration::from_millis(20)).min(deadline));
        }
    }

    /// Closes every outbox and writes every sink's spool, even after one
    /// could not be; the last failure.
    pub(crate) fn close(&self) -> Result<(), Failure> {
        let mut written = Ok(0);
        for spool in &self.0 {
            if let Err(e) = spool.write() {
                written = Err(e);
            }
        }
        written.map(drop)
    }

    /// How many events each sink spooled, late ones included, by sink
    /// name; an event being spooled right now is waited for.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|s| (s.sink(), s.count()))
    }
}
