//! Where events a sink refused for good go: `rejected.jsonl` in the state
//! directory, or the error log without one.

use std::sync::atomic::Ordering::Relaxed;

use crate::event::HealthEvent;
use crate::state::StateDir;
use crate::telemetry::Telemetry;

/// Where events a sink refused for good are set aside: `rejected.jsonl`,
/// each line marked with the sink's name, which rotates at
/// `REJECTED_LIMIT` (the state directory's) keeping one older file; events of an
/// older file that a rotation drops are counted in
/// `rtinspect_rejected_dropped_total`.
#[derive(Debug, Clone)]
pub(crate) struct Rejects {
    state: Option<StateDir>,
    /// The sink's place in [`Telemetry::sinks`].
    pub(super) sink: usize,
}

impl Rejects {
    /// Into `rejected.jsonl` in `state`, or the error log without one, for
    /// the sink `sink` of [`Telemetry::sinks`].
    pub(crate) fn new(state: Option<StateDir>, sink: usize) -> Self {
        Rejects { state, sink }
    }

    /// Sets `events` (refused together: one event, or a digest's) aside,
    /// counted, in one write; no envelope is ever only dropped.
    pub(crate) fn set_aside(
        &self,
        events: &[HealthEvent],
        why: &dyn std::fmt::Display,
        telemetry: &Telemetry,
    ) {
        // Never empty from the publisher (a send holds at least one event);
        // nothing to set aside otherwise.
        let Some(first) = events.first() else {
            return;
        };
        let reason = why.to_string();
        let counters = telemetry.sink(self.sink);
        counters
            .events_rejected
            .fetch_add(events.len() as u64, Relaxed);
        let kept = self
            .state
            .as_ref()
            .map(|state| state.append_rejected_events(&counters.name, events, &reason));
        match kept {
            Some(Ok(aside)) => {
                if aside.dropped > 0 {
                    telemetry.rejected_dropped.fetch_add(aside.dropped, Relaxed);
                    log::warn!(
                        "{} rotated at {} MiB: the {} older refused events in {}.1 were dropped",
                        aside.path.display(),
                        crate::state::rejected::REJECTED_LIMIT >> 20,
                        aside.dropped,
                        aside.path.display()
                    );
                }
                let what = match events.len() {
                    1 => "event".to_owned(),
                    n => format!("{n} events of one send"),
                };
                log::error!(sink = counters.name, game_id = first.game_id.as_str(),
                    container_id = first.container_id.as_str(), event_type = first.event_type.as_str(),
                    err = reason.as_str();
                    "{what} refused by the sink; set aside in {}", aside.path.display());
            }
            Some(Err(e)) => {
                log::error!(err:% = e; "cannot write to the rejected events file");
                self.logged(events, &reason, &counters.name);
            }
            None => self.logged(events, &reason, &counters.name),
        }
    }

    /// Each refused envelope in the error log, whole: it could not be kept.
    fn logged(&self, events: &[HealthEvent], reason: &str, sink: &str) {
        for event in events {
            log::error!(sink = sink, game_id = event.game_id.as_str(),
                container_id = event.container_id.as_str(), event_type = event.event_type.as_str(),
                err = reason, envelope = event.envelope().as_str();
                "event refused by the sink; set aside here (no state directory)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::event::stopped_event as event;
    use crate::fakes::{FakeSink, SinkAnswer};
    use crate::publish::outbox::Outbox;
    use crate::publish::publisher::spawn;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
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
            "x".repeat(crate::state::rejected::REJECTED_LIMIT as usize - 1)
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
}
