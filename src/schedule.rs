//! The inspector's schedule: every decision of the inspector loop, as a pure
//! state machine. It is told what happened ([`Input`]: a Docker event, the
//! records listed, an inspect's answer, shutdown) with the time, and says
//! what to do next ([`Action`]: list, inspect, ping, report, save, wait).
//! The shell (`worker`) carries the actions out and hands the answers back;
//! the loop that joins them (`daemon`) only carries out, waits and feeds.
//!
//! What it decides:
//! - **Ticks** every interval, on time whatever the events do; a resync (the
//!   events stream (re)subscribed, or nudges overflowed) asks for a full
//!   tick at once, but never more than one a second.
//! - **Nudges** (Docker events) are merged per game: one pending inspect per
//!   record however many events arrive, so a record nudged while its inspect
//!   is under way is inspected once more at most. Nudged inspects take turns
//!   with the records of a tick under way, so neither starves the other.
//! - **The record set follows Docker.** A nudge is judged against the
//!   records as they are now, not as the last tick listed them. Label mode:
//!   a `create` of a container that carries the game label makes it its
//!   game's record (the newest container is the one that should run), and a
//!   `start` of one for a game without a record adds it and inspects it
//!   (which seeds its baseline); an event without the label is of another
//!   container and costs nothing. PostgreSQL mode: the records can change
//!   without an event (a record set to stopped before its container stops),
//!   so every nudge waits for a read of the records that began after it
//!   arrived — merged, at most one every [`KNOWN_READ_GAP`] after the last
//!   ended. In both modes an event for a container no record names waits for
//!   such a read too, at most one a second ([`UNKNOWN_READ_GAP`]) however
//!   many arrive; ids that stay unknown are dropped. A read never takes two
//!   turns in a row while inspects wait, and while reads fail, known records
//!   are judged against the records as known: an outage never costs an
//!   event.
//! - **Baselines** are saved after every tick and every nudged inspect that
//!   moved them, so that an event is not reported again after a restart.
//! - **Silences** hold back incidents' events: every change the tracker
//!   makes goes through the hold (`silence::hold`) before it becomes an
//!   action; the shell hands the silences in force at each tick.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::ending::Endings;
use crate::incident::{Stamp, Tracker};
use crate::inspector::{Inspector, RuntimeRecord};
use crate::silence::hold::Hold;
use crate::tick::Tick;

mod actions;
mod answers;
mod docker_event;
mod nudges;
mod saves;
mod ticks;
mod waits;

pub(crate) use actions::{Action, Input, ListFor, Report, TickEnd};
pub use docker_event::{ContainerAction, ContainerEvent};
pub(crate) use saves::StateFile;
use waits::{Pending, Waiting};

/// How long after a bare `health_status` (Podman's) a container that still
/// looked healthy is inspected again: Podman 4.3 sends the event while its
/// probe runs, before it records the verdict (containers/podman#19245).
pub(crate) const HEALTH_RECHECK: Duration = Duration::from_secs(1);

/// The least time between two full ticks that resyncs ask for.
pub(crate) const MIN_RESYNC_GAP: Duration = Duration::from_secs(1);

/// How long the first tick waits for the events stream to be subscribed:
/// subscribe first, then tick, so nothing falls between the two.
pub(crate) const FIRST_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// The least time from the end of one read of the records to the start of
/// the next that nudges of known records wait for (PostgreSQL mode): a flood
/// of events costs at most ten reads a second, an isolated event one round
/// trip to the database.
pub(crate) const KNOWN_READ_GAP: Duration = Duration::from_millis(100);

/// The least time from the end of one read of the records to the start of
/// the next that events of containers no record names ask for.
pub(crate) const UNKNOWN_READ_GAP: Duration = Duration::from_secs(1);

/// Events waiting for a read of the records at most; past that a full tick
/// catches up.
pub(crate) const WAITING_MAX: usize = 256;

/// Re-inspections waiting for their time at most; past that none is added
/// (the next tick inspects every record anyway).
pub(crate) const RECHECKS_MAX: usize = 256;

/// Records added by Docker events (label mode) between two listings at
/// most; past that a full tick lists them instead.
pub(crate) const ADDED_MAX: usize = 1024;

/// Where the records come from, which says how the record set follows Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Label mode: the containers carrying the game label; events carry it.
    Labels,
    /// PostgreSQL mode: a table that changes without telling.
    Database,
}

/// How the loop turns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The time between two ticks.
    pub interval: Duration,
    /// One tick, then stop (`rtinspect once`).
    pub once: bool,
    /// Whether a Docker events stream feeds the loop.
    pub events: bool,
    /// Whether facts carry the extended details (`--details extended`);
    /// incidents always carry what Docker said.
    pub extended_facts: bool,
    /// How the record set follows Docker.
    pub follow: Follow,
}

/// What the shell is doing for the schedule.
#[derive(Debug)]
enum Busy {
    Idle,
    List { purpose: ListFor, started: Instant },
    TickInspect(RuntimeRecord),
    TickPing,
    NudgeInspect(Box<Pending>, RuntimeRecord),
}

/// The inspector loop's state: baselines, the record set, the tick under
/// way, nudges and timers.
#[derive(Debug)]
pub(crate) struct Schedule {
    settings: Settings,
    inspector: Inspector,
    /// The incidents, when a sink gets them.
    incidents: Option<Tracker>,
    /// What silences hold back of them.
    hold: Hold,
    /// How each container ended, from the events and the inspects.
    endings: Endings,
    /// dockerd's time of the newest Docker event taken (`events.json`).
    event_cursor: Option<SystemTime>,
    /// The records nudges are matched against.
    records: Vec<RuntimeRecord>,
    busy: Busy,
    tick: Option<(Tick, Instant)>,
    next_tick: Instant,
    last_tick_started: Option<Instant>,
    resync: bool,
    /// Until when the first tick waits for the events stream.
    first_wait: Option<Instant>,
    pending: VecDeque<Pending>,
    waiting: Vec<Waiting>,
    rechecks: VecDeque<(Instant, Pending)>,
    /// When the last read of the records ended, and how long it took: the
    /// gap to the next read for events counts from its end, and is never
    /// shorter than the read itself, so slow reads cannot take every turn.
    last_read: Option<(Instant, Duration)>,
    /// Whether a read of the records for events went last: the work it
    /// made ready goes first.
    read_went_last: bool,
    /// Whether the last read of the records failed: until one succeeds,
    /// nudges of known records are judged against the records as they are
    /// known, and no read is made for them.
    reads_failing: bool,
    /// Records added by Docker events since the last listing.
    added: usize,
    /// Whether a nudged inspect went last, so that a tick's record goes next.
    nudge_went_last: bool,
    /// Label mode: the containers `create` events made their games' records
    /// since the last listing, and when each arrived: a listing begun
    /// before one arrived cannot know it, and does not undo it.
    created: Vec<(RuntimeRecord, Instant)>,
    /// When the state directory's files are written.
    saves: saves::Saves,
    /// Actions decided, to hand out before anything else.
    out: VecDeque<Action>,
    stopped: bool,
}

impl Schedule {
    /// A schedule that starts at `now` from `inspector`'s baselines.
    pub(crate) fn new(settings: Settings, inspector: Inspector, now: Instant) -> Schedule {
        Schedule {
            settings,
            inspector,
            incidents: None,
            hold: Hold::default(),
            endings: Endings::new(settings.events),
            event_cursor: None,
            records: Vec::new(),
            busy: Busy::Idle,
            tick: None,
            next_tick: now,
            last_tick_started: None,
            resync: false,
            first_wait: (settings.events && !settings.once).then(|| now + FIRST_SUBSCRIPTION_WAIT),
            pending: VecDeque::new(),
            waiting: Vec::new(),
            rechecks: VecDeque::new(),
            last_read: None,
            read_went_last: false,
            reads_failing: false,
            added: 0,
            nudge_went_last: false,
            created: Vec::new(),
            saves: saves::Saves::default(),
            out: VecDeque::new(),
            stopped: false,
        }
    }

    /// The inspector state.
    pub(crate) fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// Tracks incidents with `tracker` from now on.
    pub(crate) fn with_incidents(mut self, tracker: Tracker) -> Schedule {
        self.incidents = Some(tracker);
        self
    }

    /// dockerd's time of the newest Docker event taken: the events stream
    /// is replayed from it after a restart of rtinspect.
    pub(crate) fn event_cursor(&self) -> Option<SystemTime> {
        self.event_cursor
    }

    /// The incident tracker, when incidents are tracked.
    pub(crate) fn incidents(&self) -> Option<&Tracker> {
        self.incidents.as_ref()
    }

    /// Holds back incidents as `hold` (an earlier process's) says from now on.
    pub(crate) fn with_hold(mut self, hold: Hold) -> Schedule {
        self.hold = hold;
        self
    }

    /// What silences hold back, saved with the incidents.
    pub(crate) fn hold(&self) -> &Hold {
        &self.hold
    }

    /// The inspector state, to start another schedule from.
    pub(crate) fn into_inspector(self) -> Inspector {
        self.inspector
    }

    /// Takes what happened at `now`.
    pub(crate) fn on(&mut self, input: Input, now: Instant) {
        match input {
            Input::Subscribed => {
                self.first_wait = None;
                self.ask_resync(now);
            }
            Input::Overflowed => self.ask_resync(now),
            Input::Silences(silences) => self.hold.set_silences(silences),
            Input::Docker(event, read_at) => self.nudged(event, read_at, now),
            Input::Listed(listed, at) => self.listed(
                listed,
                Stamp {
                    wall: at,
                    mono: now,
                },
            ),
            Input::Answered(answer, at) => self.answered(answer, at, now),
            Input::Pinged(result) => {
                if let Busy::TickPing = self.busy
                    && let Some((tick, _)) = &mut self.tick
                {
                    tick.pinged(result);
                }
                self.busy = Busy::Idle;
            }
            Input::SaveFailed(file) => self.saves.failed(file),
            Input::Shutdown => self.shut_down(),
        }
    }

    /// What to do next at `now`. An action that asks for an answer
    /// ([`Action::List`], [`Action::Inspect`], [`Action::Ping`]) must be
    /// answered through [`Schedule::on`] before this is called again.
    pub(crate) fn next(&mut self, now: Instant) -> Action {
        if let Some(action) = self.out.pop_front() {
            return action;
        }
        if self.stopped {
            // Whatever changed is written before the end, gap or not.
            return match self.saves.take_final(now) {
                Some(file) => save(file),
                None => Action::Stop,
            };
        }
        if !matches!(self.busy, Busy::Idle) {
            // An answer is awaited; nothing else can be done meanwhile.
            return Action::Wait(now);
        }
        if let Some(file) = self.saves.take_due(now) {
            return save(file);
        }
        self.due_rechecks(now);
        if let Some(action) = self.read_for_waiting(now) {
            return action;
        }
        if self.tick.is_none() {
            if let Some(until) = self.first_wait {
                if now < until {
                    return self.nudge_or_wait(now, until);
                }
                self.first_wait = None;
            }
            if now >= self.next_tick {
                self.busy = Busy::List {
                    purpose: ListFor::Tick,
                    started: now,
                };
                self.last_tick_started = Some(now);
                return Action::List(ListFor::Tick);
            }
        }
        let tick_first = self.tick.is_some() && (self.nudge_went_last || self.pending.is_empty());
        if !tick_first && let Some(action) = self.nudge_inspect() {
            return action;
        }
        if let Some(action) = self.tick_step(now) {
            return action;
        }
        self.nudge_or_wait(now, self.next_tick)
    }

    /// The next nudged inspect, or a wait until `until` (or sooner, for a
    /// recheck or a read of the records).
    fn nudge_or_wait(&mut self, now: Instant, until: Instant) -> Action {
        if let Some(action) = self.nudge_inspect() {
            return action;
        }
        let mut until = until;
        if let Some((at, _)) = self.rechecks.front() {
            until = until.min(*at);
        }
        if let Some(at) = self.read_due_at(now) {
            until = until.min(at);
        }
        if let Some(at) = self.saves.next_due() {
            until = until.min(at);
        }
        Action::Wait(until.max(now))
    }

    fn listed(&mut self, listed: Option<Vec<RuntimeRecord>>, at: Stamp) {
        let Busy::List { purpose, started } = std::mem::replace(&mut self.busy, Busy::Idle) else {
            return;
        };
        let now = at.mono;
        let ok = listed.is_some();
        self.last_read = Some((now, now.saturating_duration_since(started)));
        self.reads_failing = !ok;
        let listed = listed.map(|records| self.keep_created(records, started));
        if let Some(records) = &listed {
            self.records.clone_from(records);
            self.added = 0;
        }
        // Events that arrived before this read began are judged now: against
        // the fresh records, or, when the read failed, the known ones against
        // the records as they were (an event is never lost to a database
        // outage); unknown ids are dropped.
        let (ready, still): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.arrived <= started);
        self.waiting = still;
        for w in ready {
            if ok || w.known {
                self.queue_nudge(w.event, w.read_at);
            }
        }
        if purpose == ListFor::Tick {
            match listed {
                Some(records) => {
                    self.inspector.prune(&records);
                    self.endings.room_for(records.len());
                    if let Some(tracker) = &mut self.incidents {
                        let games = records.iter().map(|r| r.game_id.as_str()).collect();
                        let removed = tracker.listed(&games, at);
                        self.closed_incidents(removed);
                    }
                    self.tick = Some((Tick::new(records), started));
                }
                None => self.end_tick(None, started, now),
            }
        }
    }

    /// Marks what changed since the last call to be saved (see `saves`).
    fn note_changes(&mut self) {
        if self.inspector.take_changed() {
            self.saves.changed(StateFile::Baselines);
        }
        let held = self.hold.take_changed();
        if self.incidents.as_mut().is_some_and(Tracker::take_changed) || held {
            self.saves.changed(StateFile::Incidents);
        }
    }
}

/// The action that writes `file`.
fn save(file: StateFile) -> Action {
    match file {
        StateFile::Baselines => Action::SaveBaselines,
        StateFile::Incidents => Action::SaveIncidents,
        StateFile::EventCursor => Action::SaveEventCursor,
    }
}

#[cfg(test)]
mod tests;
