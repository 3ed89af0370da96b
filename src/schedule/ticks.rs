//! The full ticks: one on time every interval whatever the events do; a
//! resync (the events stream (re)subscribed, or nudges overflowed) asks for
//! one at once, but never more than one a second; a tick hands out its
//! records one step at a time, taking turns with nudged inspects; its end
//! is reported, saves what it moved, and sets the next. Shutdown cancels
//! the tick under way.

use std::time::Instant;

use super::actions::{Action, Report, TickEnd};
use super::{Busy, MIN_RESYNC_GAP, Schedule};
use crate::tick::{Step, Summary, Tick};

impl Schedule {
    pub(super) fn ask_resync(&mut self, now: Instant) {
        self.resync = true;
        if self.tick.is_none() {
            self.apply_resync(now);
        }
    }

    /// A full tick at once, but not more than one a second, however often
    /// the stream breaks or overflows.
    pub(super) fn apply_resync(&mut self, now: Instant) {
        if std::mem::take(&mut self.resync) {
            let soonest = self
                .last_tick_started
                .map_or(now, |t| (t + MIN_RESYNC_GAP).max(now));
            self.next_tick = self.next_tick.min(soonest);
        }
    }

    pub(super) fn tick_step(&mut self, now: Instant) -> Option<Action> {
        let (tick, started) = self.tick.as_mut()?;
        self.nudge_went_last = false;
        self.read_went_last = false;
        match tick.next_step() {
            Step::Inspect(record) => {
                self.busy = Busy::TickInspect(record.clone());
                Some(Action::Inspect(record))
            }
            Step::Decided(record, outcome) => Some(Action::Report(Report {
                record,
                outcome,
                prompt: None,
            })),
            Step::Ping => {
                self.busy = Busy::TickPing;
                Some(Action::Ping)
            }
            Step::Done => {
                let (started, summary) = (*started, tick.summary());
                self.end_tick(Some(summary), started, now);
                self.out.pop_front()
            }
        }
    }

    /// Ends the tick under way (or one whose listing failed).
    pub(super) fn end_tick(&mut self, summary: Option<Summary>, started: Instant, now: Instant) {
        let tick = self.tick.take().map(|(t, _)| t);
        self.out.push_back(Action::TickEnded(TickEnd {
            started,
            summary,
            reach: tick.as_ref().and_then(Tick::reach),
            gave_up_on_docker: tick.as_ref().is_some_and(Tick::gave_up_on_docker),
        }));
        self.note_changes();
        self.saves.tick_ended();
        if self.settings.once {
            self.stopped = true;
            return;
        }
        self.next_tick = started + self.settings.interval;
        self.apply_resync(now);
    }

    pub(super) fn shut_down(&mut self) {
        if self.stopped {
            return;
        }
        if let Some((tick, started)) = &mut self.tick {
            tick.cancel();
            let (started, summary) = (*started, tick.summary());
            self.busy = Busy::Idle;
            self.end_tick(Some(summary), started, started);
        } else {
            self.note_changes();
        }
        self.stopped = true;
    }
}
