//! The one place that routes: which sinks an event goes to ([`takes`],
//! [`destinations`]: a pure decision from each sink's route, its `--report`
//! or a notification URL's `report=`, `min=` and `games=`), the
//! [`Emitter`] that puts it in the queue of every sink that is to get it,
//! or, once that sink's outbox is closed, in its spool, and the share of
//! each sink in a spool an earlier version kept for all of them
//! ([`split`]).
//!
//! `min=` needs no memory of what a sink was told: an incident's kind is
//! never lowered, and its events carry it, so the reminders and the
//! resolution of an incident go wherever its opening or a later escalation
//! went, and an incident that escalates into a sink's range reaches it
//! first with that escalation.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::config::Route;
use crate::event::HealthEvent;
use crate::publish::final_spool::FinalSpool;
use crate::publish::offer::{offer, offer_until};
use crate::publish::outbox::Outbox;
use crate::telemetry::Telemetry;

/// Whether a sink whose route is `route` takes `event`: a fact or an
/// incident's event as its report says, of a kind at least its `min`, of a
/// game one of its `games` matches (any, when it names none).
pub(crate) fn takes(route: &Route, event: &HealthEvent) -> bool {
    let kind = match event.incident.as_deref() {
        Some(incident) if route.report.incidents() => incident.kind,
        None if route.report.facts() => event.fact_kind(),
        _ => return false,
    };
    kind >= route.min
        && (route.games.is_empty() || route.games.iter().any(|g| g.matches(&event.game_id)))
}

/// Which sinks take `event`, by their places in `routes`.
fn destinations<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    event: &HealthEvent,
) -> Vec<usize> {
    routes
        .into_iter()
        .enumerate()
        .filter(|(_, route)| takes(route, event))
        .map(|(i, _)| i)
        .collect()
}

/// `events`, each given to the sinks that take it: every sink's share, in
/// the order of `routes`, and the events no sink takes.
pub(crate) fn split<'a>(
    routes: impl IntoIterator<Item = &'a Route> + Clone,
    events: &[HealthEvent],
) -> (Vec<Vec<HealthEvent>>, Vec<HealthEvent>) {
    let mut shares = vec![Vec::new(); routes.clone().into_iter().count()];
    let mut no_sink = Vec::new();
    for event in events {
        let to = destinations(routes.clone(), event);
        for &i in &to {
            shares[i].push(event.clone());
        }
        if to.is_empty() {
            no_sink.push(event.clone());
        }
    }
    (shares, no_sink)
}

/// One sink's end of the inspector: what it gets, its queue, its spool.
#[derive(Clone)]
pub(crate) struct Outlet {
    /// The sink's place in [`Telemetry::sinks`].
    pub(crate) index: usize,
    /// What it takes.
    pub(crate) route: Route,
    pub(crate) events: Sender<HealthEvent>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) spool: Arc<FinalSpool>,
}

/// Where the inspector's events go: to each sink that takes them, its
/// publisher's queue while its outbox is open, its spool once it is closed
/// (an inspect that was still under way when the drain ended), never a
/// channel nobody reads.
pub(crate) struct Emitter {
    pub(crate) outlets: Vec<Outlet>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// `once`: wait for queue room until then rather than drop.
    pub(crate) once_deadline: Option<Instant>,
    /// The host every envelope names (`host_id`), when it is named.
    pub(crate) host_id: Option<String>,
}

impl Emitter {
    pub(crate) fn emit(&self, event: HealthEvent) {
        let event = match &self.host_id {
            Some(host) => event.seen_on(host),
            None => event,
        };
        let to = destinations(self.outlets.iter().map(|o| &o.route), &event);
        for outlet in to.into_iter().map(|i| &self.outlets[i]) {
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

#[cfg(test)]
mod tests;
