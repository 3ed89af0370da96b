//! The one place that routes by `--report`: each event the inspector makes
//! goes to the queue of every sink that is to get it, or, once that sink's
//! outbox is closed, to its spool.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::config::Report;
use crate::event::HealthEvent;
use crate::publish::offer::{offer, offer_until};
use crate::publish::outbox::Outbox;
use crate::publish::spools::FinalSpool;
use crate::telemetry::Telemetry;

/// One sink's end of the inspector: what it gets, its queue, its spool.
#[derive(Clone)]
pub(crate) struct Outlet {
    /// The sink's place in [`Telemetry::sinks`].
    pub(crate) index: usize,
    /// Facts, incidents or both.
    pub(crate) report: Report,
    pub(crate) events: Sender<HealthEvent>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) spool: Arc<FinalSpool>,
}

/// Where the inspector's events go: to each sink that gets them, its
/// publisher's queue while its outbox is open, its spool once it is closed
/// (an inspect that was still under way when the drain ended), never a
/// channel nobody reads.
pub(crate) struct Emitter {
    pub(crate) outlets: Vec<Outlet>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// `once`: wait for queue room until then rather than drop.
    pub(crate) once_deadline: Option<Instant>,
}

impl Emitter {
    pub(crate) fn emit(&self, event: HealthEvent) {
        // Only to the sinks that are to get it (`--report`).
        let incident = event.incident.is_some();
        for outlet in &self.outlets {
            if !outlet.report.wants(incident) {
                continue;
            }
            let (outbox, events, event) = (&outlet.outbox, &outlet.events, event.clone());
            let offered = match self.once_deadline {
                Some(deadline) => offer_until(outbox, events, event, deadline),
                None => {
                    let counters = self.telemetry.sink(outlet.index);
                    offer(outbox, events, event, counters)
                }
            };
            if let Err(late) = offered {
                outlet.spool.keep_late(*late);
            }
        }
    }
}
