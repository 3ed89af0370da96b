//! An inspect's answer, taken: the incident tracker sees it first, with the
//! evidence Docker gave (a container gone before its `die` could be
//! inspected is judged from what the `die` said); then the tick core judges
//! the fact, a nudged inspect that still looks healthy after a bare
//! `health_status` is rechecked once, and each change of an incident
//! becomes its event, unless a silence holds it back (`silence::hold`).

use std::time::{Instant, SystemTime};

use super::actions::{Action, Report};
use super::waits::Pending;
use super::{Busy, HEALTH_RECHECK, RECHECKS_MAX, Schedule};
use crate::ending::{self, EndReason};
use crate::event::{HealthEvent, IncidentFacts, Prompt};
use crate::incident::{IncidentEvent, Look, Resolution, Stamp};
use crate::inspector::{Observation, restart_under_way};
use crate::silence::hold::Verdict;
use crate::tick::{self, InspectAnswer, InspectError, Outcome};

impl Schedule {
    pub(super) fn answered(&mut self, answer: InspectAnswer, at: SystemTime, now: Instant) {
        let busy = std::mem::replace(&mut self.busy, Busy::Idle);
        let (Busy::TickInspect(record) | Busy::NudgeInspect(_, record)) = &busy else {
            self.busy = busy;
            return;
        };
        let stamp = Stamp {
            wall: at,
            mono: now,
        };
        // A container gone before its `die` could be inspected (`--rm`) is
        // judged from what the `die` said of it.
        let answer = match (answer, &busy) {
            (Err(InspectError::NotFound), Busy::NudgeInspect(pending, _))
                if pending.died.is_some() =>
            {
                Ok(self.died_and_gone(record, pending))
            }
            (answer, _) => answer,
        };
        if let (Err(InspectError::NotFound), Some(tracker)) = (&answer, &mut self.incidents) {
            let removed = tracker.missing(&record.game_id, stamp);
            self.closed_incidents(removed);
        }
        // How the container last ended, as the events and this look tell
        // it; said with what was seen when the look is about an end.
        let answer = answer.map(|mut seen| {
            let end = self.end_seen(&seen, now);
            let settling = self.endings.settling(&seen.container_id, now);
            let about_an_end = self.about_an_end(&record.game_id, &seen);
            if let Some(d) = seen.details.as_deref_mut() {
                d.reason = end.filter(|_| about_an_end && !settling);
            }
            (seen, end, settling)
        });
        // The incident tracker sees every answer, with the evidence Docker
        // gave, before the fact is judged; what was seen is kept only for
        // the rare answer that changes an incident.
        let changed = match (&mut self.incidents, &answer) {
            (Some(tracker), Ok((seen, end, settling))) => {
                let changes = tracker.look(&Look {
                    game_id: &record.game_id,
                    container_id: &seen.container_id,
                    restart_count: seen.restart_count,
                    status: &seen.status,
                    health: &seen.health,
                    started_at: seen.details.as_ref().and_then(|d| d.started_at.as_deref()),
                    end: *end,
                    settling: *settling,
                    at: stamp,
                });
                // A game a silence held an incident of is looked at by the
                // hold whether or not anything changed.
                (!changes.is_empty() || self.hold.holds(&record.game_id))
                    .then(|| (changes, record.game_id.clone(), seen.clone()))
            }
            _ => None,
        };
        // A fact carries the details `--details` asks for.
        let answer = answer.map(|(mut o, _, _)| {
            if !self.settings.extended_facts {
                o.details = None;
            }
            o
        });
        // Whether the look is clean, for a silence's end: not a fact.
        let mut clean = false;
        match busy {
            Busy::TickInspect(record) => {
                let outcome = tick::judge(&mut self.inspector, &record, answer, at);
                clean = matches!(outcome, Outcome::Healthy);
                if let Some((tick, _)) = &mut self.tick {
                    tick.answered(&outcome);
                }
                self.out.push_back(Action::Report(Report {
                    record,
                    outcome,
                    prompt: None,
                }));
            }
            Busy::NudgeInspect(pending, record) => {
                let outcome = tick::judge(&mut self.inspector, &record, answer, at);
                clean = matches!(outcome, Outcome::Healthy);
                if pending.health
                    && matches!(outcome, Outcome::Healthy)
                    && self.rechecks.len() < RECHECKS_MAX
                {
                    // Re-inspected once a second later, without the health
                    // mark, so that it is rechecked only once.
                    let again = Pending {
                        health: false,
                        died: None,
                        ..(*pending).clone()
                    };
                    self.rechecks.push_back((now + HEALTH_RECHECK, again));
                }
                self.out.push_back(Action::Report(Report {
                    record,
                    outcome,
                    prompt: Some(Prompt {
                        action: pending.event.action.as_str(),
                        event_at: pending.event.at,
                        read_at: pending.read_at,
                        answered_at: at,
                    }),
                }));
                // What a nudged inspect moved is saved soon; a tick's, at its end.
                self.note_changes();
            }
            Busy::Idle | Busy::List { .. } | Busy::TickPing => {}
        }
        if let Some((changes, game_id, seen)) = changed {
            self.incident_events(changes, &game_id, &seen, at, clean);
        }
        if self.tick.is_none() {
            self.note_changes();
        }
    }

    /// The events of an answer's changes to an incident, with what was
    /// seen, as the hold lets them through (`clean`: the look was).
    fn incident_events(
        &mut self,
        changes: Vec<IncidentEvent>,
        game_id: &str,
        seen: &Observation,
        at: SystemTime,
        clean: bool,
    ) {
        let tracker = self.incidents.as_ref();
        let verdicts = self.hold.look(game_id, at, clean, changes, |change| {
            tracker?.open_incident(game_id, change, at)
        });
        for verdict in verdicts {
            let action = match verdict {
                Verdict::Deliver {
                    change,
                    after_silence,
                } => Action::Incident(HealthEvent::for_incident(
                    change.change,
                    IncidentFacts {
                        after_silence,
                        ..incident_facts(&change)
                    },
                    game_id.to_owned(),
                    seen.clone(),
                    at,
                )),
                Verdict::Held { change, until } => Action::Silenced(change, until),
            };
            self.out.push_back(action);
        }
    }

    /// The `incident_resolved` of incidents closed with no look: their
    /// games are gone, or their containers were stopped through the API;
    /// no `seen`. A silence holds back one it never let out.
    pub(super) fn closed_incidents(&mut self, closed: Vec<IncidentEvent>) {
        for verdict in self.hold.removed(closed) {
            let action = match verdict {
                Verdict::Deliver { change, .. } => {
                    let resolution = change.resolution.unwrap_or(Resolution::Removed);
                    Action::Incident(HealthEvent::for_closed_incident(
                        incident_facts(&change),
                        change.game_id,
                        change.container_id,
                        resolution.as_str(),
                        change.at,
                    ))
                }
                Verdict::Held { change, until } => Action::Silenced(change, until),
            };
            self.out.push_back(action);
        }
    }

    /// The classifier's reason for the last end of the container `seen`
    /// shows, after this look.
    fn end_seen(&mut self, seen: &Observation, now: Instant) -> Option<EndReason> {
        let d = seen.details.as_deref();
        let look = ending::Look {
            status: &seen.status,
            restart_policy: d.and_then(|d| d.restart_policy.as_deref()),
            oom_killed: d.and_then(|d| d.oom_killed) == Some(true),
            exit_code: d.and_then(|d| d.exit_code),
            start_failed: d.is_some_and(|d| d.error.is_some()),
        };
        self.endings.look(&seen.container_id, look, now)
    }

    /// Whether what was seen is about an end: the container is down, or
    /// restarted since the inspector last saw it.
    fn about_an_end(&self, game_id: &str, seen: &Observation) -> bool {
        ending::is_down(&seen.status)
            || restart_under_way(&seen.status)
            || self.inspector.baseline(game_id).is_some_and(|b| {
                b.container_id == seen.container_id && seen.restart_count > b.restart_count
            })
    }
}

/// What an incident's event says of the incident.
fn incident_facts(change: &IncidentEvent) -> IncidentFacts {
    IncidentFacts {
        incident_id: change.incident_id.clone(),
        kind: change.kind,
        started_at: crate::event::rfc3339_micros(change.started_at),
        restarts_in_window: change.restarts_in_window,
        oom: change.oom,
        after_silence: false,
        reason: None,
        exit_code: None,
        signal: None,
        resolution: change.resolution.map(|r| r.as_str().to_owned()),
    }
    .with_end(change.reason)
}
