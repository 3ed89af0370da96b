//! How Docker events reach the schedule: a nudge is merged per game into
//! one pending inspect, judged against the record set as it is now (label
//! mode follows `create` and `start`; PostgreSQL mode waits for a read of the
//! records begun after the event arrived), and rechecked once after a bare
//! `health_status`. Every event that tells how a container ends goes to the
//! classifier of ends first; a `stopped` end is told to the incident
//! tracker at once (a `kill`, `stop` or `destroy` asks for no inspect).

use std::time::{Instant, SystemTime};

use super::actions::{Action, ListFor, Report};
use super::docker_event::{ContainerAction, ContainerEvent};
use super::saves::StateFile;
use super::waits::{Pending, Waiting};
use super::{ADDED_MAX, Busy, Follow, KNOWN_READ_GAP, Schedule, UNKNOWN_READ_GAP, WAITING_MAX};
use crate::ending::EndReason;
use crate::incident::Stamp;
use crate::inspector::{Observation, RuntimeRecord};
use crate::tick::{self, Outcome};

impl Schedule {
    pub(super) fn nudged(&mut self, event: ContainerEvent, read_at: SystemTime, now: Instant) {
        let follow = self.settings.follow;
        if follow == Follow::Labels && event.game.is_none() {
            // Docker and Podman copy every label into a container event: a
            // container without the game label is no game's.
            return;
        }
        if self.event_cursor.is_none_or(|c| event.at > c) {
            // Replayed from here after a restart of rtinspect.
            self.event_cursor = Some(event.at);
            self.saves.changed(StateFile::EventCursor);
        }
        if let Some(happened) = event.happened()
            && self.endings.event(&event.id, happened, now) == Some(EndReason::Stopped)
        {
            // Its end was asked for through the API (or the operator took
            // over an end in the back-off). The game as the label or a
            // record says; else whichever game's last container it is (a
            // record may have moved on).
            let game = match &event.game {
                Some(game) => Some(game.clone()),
                None => self.record_of(&event).map(|r| r.game_id.clone()),
            };
            if let Some(tracker) = &mut self.incidents {
                let at = Stamp {
                    wall: read_at,
                    mono: now,
                };
                let resolved = tracker.ended_by_api(game.as_deref(), &event.id, at);
                self.closed_incidents(resolved);
            }
            self.note_changes();
        }
        if event.replayed {
            // A replayed event told the classifier how a container ended;
            // the full tick that follows every subscription looks at every
            // record as it is now (an old `create` must not move a record).
            return;
        }
        if event.action == ContainerAction::Create {
            // The newest container of a game is the one that should run; it
            // is inspected once it starts (a created one is not running yet).
            if let (Follow::Labels, Some(game)) = (follow, &event.game) {
                let record = RuntimeRecord::new(game.clone(), event.id.clone());
                if self.created.len() >= ADDED_MAX {
                    self.created.remove(0);
                }
                self.created.push((record.clone(), now));
                match self.records.iter_mut().find(|r| r.game_id == *game) {
                    Some(r) => *r = record,
                    None => {
                        self.add_record(record, now);
                    }
                }
            }
            return;
        }
        if matches!(
            event.action,
            ContainerAction::Stop
                | ContainerAction::Kill
                | ContainerAction::Destroy
                | ContainerAction::Remove
        ) {
            // They ask for no inspect: the `die` that ends the run does.
            return;
        }
        if event.action == ContainerAction::Oom
            && let Some(game) = self.record_of(&event).map(|r| r.game_id.clone())
            && let Some(tracker) = &mut self.incidents
        {
            // Docker's restart can clear `OOMKilled` before the inspect.
            tracker.oom(&game, now);
            self.note_changes();
        }
        let known = self.record_of(&event).is_some();
        if follow == Follow::Labels
            && !known
            && event.action == ContainerAction::Start
            && let Some(game) = &event.game
            && !self.records.iter().any(|r| r.game_id == *game)
        {
            // A game with no record yet: its container is its record.
            let record = RuntimeRecord::new(game.clone(), event.id.clone());
            if !self.add_record(record, now) {
                return;
            }
        } else if follow == Follow::Database || !known {
            self.wait_for_records(event, read_at, known, now);
            return;
        }
        self.queue_nudge(event, read_at);
    }

    /// Adds a record a Docker event made known (label mode); past
    /// [`ADDED_MAX`] since the last listing, a full tick lists them instead.
    pub(super) fn add_record(&mut self, record: RuntimeRecord, now: Instant) -> bool {
        if self.added >= ADDED_MAX {
            self.ask_resync(now);
            return false;
        }
        self.added += 1;
        self.records.push(record);
        true
    }

    /// Queues the record an event names for an inspect, merged with one
    /// already pending for it.
    pub(super) fn queue_nudge(&mut self, event: ContainerEvent, read_at: SystemTime) {
        let Some(record) = self.record_of(&event) else {
            return;
        };
        let (game_id, container) = (record.game_id.clone(), record.container_id.clone());
        let health = event.action == ContainerAction::HealthStatus;
        let died = (event.action == ContainerAction::Die).then_some(event.exit_code);
        if let Some(p) = self.pending.iter_mut().find(|p| p.game_id == game_id) {
            p.health |= health;
            p.died = died.or(p.died);
            return;
        }
        self.pending.push_back(Pending {
            game_id,
            container,
            event,
            read_at,
            health,
            died,
        });
    }

    pub(super) fn wait_for_records(
        &mut self,
        event: ContainerEvent,
        read_at: SystemTime,
        known: bool,
        now: Instant,
    ) {
        if self.reads_failing {
            // The records cannot be read: known records are judged against
            // the records as they are known (an outage never costs an
            // event), unknown ids wait for the next tick.
            if known {
                self.queue_nudge(event, read_at);
            }
            return;
        }
        if let Some(w) = self.waiting.iter_mut().find(|w| w.event.id == event.id) {
            w.known |= known;
            if event.action == ContainerAction::Die {
                // What a `die` says is kept: the container may be gone by
                // the inspect.
                w.event = event;
            }
            return;
        }
        if self.waiting.len() >= WAITING_MAX {
            // Past the bound a full tick catches up, and costs no more.
            self.ask_resync(now);
            return;
        }
        self.waiting.push(Waiting {
            event,
            read_at,
            arrived: now,
            known,
        });
    }

    /// When a read of the records for waiting events may start.
    pub(super) fn read_due_at(&self, now: Instant) -> Option<Instant> {
        let gap = if self.waiting.iter().any(|w| w.known) {
            KNOWN_READ_GAP
        } else if !self.waiting.is_empty() {
            UNKNOWN_READ_GAP
        } else {
            return None;
        };
        Some(
            self.last_read
                .map_or(now, |(end, took)| end + gap.max(took)),
        )
    }

    pub(super) fn read_for_waiting(&mut self, now: Instant) -> Option<Action> {
        let due = self.read_due_at(now)?;
        // What the last read made ready (nudged inspects, the tick under
        // way) goes before another read.
        let other_work = !self.pending.is_empty() || self.tick.is_some();
        if now < due || (self.read_went_last && other_work) {
            return None;
        }
        self.busy = Busy::List {
            purpose: ListFor::Nudges,
            started: now,
        };
        self.read_went_last = true;
        Some(Action::List(ListFor::Nudges))
    }

    pub(super) fn due_rechecks(&mut self, now: Instant) {
        while self.rechecks.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, p)) = self.rechecks.pop_front() else {
                break;
            };
            if self.settings.follow == Follow::Database {
                // Like any nudge, judged against the records as they are now.
                self.wait_for_records(p.event, p.read_at, true, now);
            } else if !self.pending.iter().any(|q| q.game_id == p.game_id) {
                self.pending.push_back(p);
            }
        }
    }

    pub(super) fn nudge_inspect(&mut self) -> Option<Action> {
        while let Some(p) = self.pending.pop_front() {
            // A game gone from the records, or moved to another container
            // since (a stale nudge), is not inspected for it.
            let Some(record) = self
                .records
                .iter()
                .find(|r| r.game_id == p.game_id && r.container_id == p.container)
                .cloned()
            else {
                continue;
            };
            if let Err(invalid) = tick::validate(&record) {
                self.out.push_back(Action::Report(Report {
                    record,
                    outcome: Outcome::Invalid(invalid),
                    prompt: None,
                }));
                return self.out.pop_front();
            }
            self.nudge_went_last = true;
            self.read_went_last = false;
            self.busy = Busy::NudgeInspect(Box::new(p), record.clone());
            return Some(Action::Inspect(record));
        }
        None
    }

    /// What a `die` said of a container that was gone (404) by its inspect:
    /// it exited, with the code the event carried; no health, and the
    /// restart count the inspector last saw of it.
    pub(super) fn died_and_gone(&self, record: &RuntimeRecord, pending: &Pending) -> Observation {
        let container_id = pending.event.id.clone();
        let restart_count = self
            .inspector
            .baseline(&record.game_id)
            .filter(|b| b.container_id == container_id)
            .map_or(0, |b| b.restart_count);
        let exit_code = pending.died.flatten();
        Observation {
            container_id,
            restart_count,
            status: "exited".to_owned(),
            health: String::new(),
            details: exit_code.map(|code| {
                Box::new(crate::inspector::StateDetails {
                    exit_code: Some(code),
                    ..Default::default()
                })
            }),
        }
    }

    /// The records a listing begun at `started` gave, with the containers
    /// `create` events chose since (label mode): the newest container of a
    /// game is the one that should run, and a listing begun before its
    /// `create` arrived cannot know it.
    pub(super) fn keep_created(
        &mut self,
        mut records: Vec<RuntimeRecord>,
        started: Instant,
    ) -> Vec<RuntimeRecord> {
        self.created.retain(|(_, arrived)| *arrived > started);
        for (record, _) in &self.created {
            match records.iter_mut().find(|r| r.game_id == record.game_id) {
                Some(r) => r.clone_from(record),
                None => records.push(record.clone()),
            }
        }
        records
    }

    /// The record an event concerns: a record names its container by full
    /// id, short id or name. For a record that names it otherwise (a name
    /// since changed), the baseline's full id — the one its last inspect
    /// answered with — stands in; never for a record that names another
    /// container by id, whose game has moved on from the event's container.
    pub(super) fn record_of(&self, event: &ContainerEvent) -> Option<&RuntimeRecord> {
        self.records.iter().find(|r| {
            let c = r.container_id.trim_start_matches('/');
            let by_id = c.len() >= 12 && c.bytes().all(|b| b.is_ascii_hexdigit());
            (by_id && event.id.starts_with(c))
                || event.name.as_deref() == Some(c)
                || (!by_id
                    && self
                        .inspector
                        .baseline(&r.game_id)
                        .is_some_and(|b| b.container_id == event.id))
        })
    }
}
