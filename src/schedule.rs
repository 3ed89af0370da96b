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

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::docker::DockerError;
use crate::docker::events::ContainerEvent;
use crate::event::{HealthEvent, IncidentFacts, Prompt};
use crate::incident::{IncidentEvent, Look, Tracker};
use crate::inspector::{Inspector, Observation, RuntimeRecord};
use crate::tick::{self, Outcome, Reach, Step, Summary, Tick};

/// How long after a bare `health_status` (Podman's) a container that still
/// looked healthy is inspected again: Podman 4.3 sends the event while its
/// probe runs, before it records the verdict (containers/podman#19245).
pub const HEALTH_RECHECK: Duration = Duration::from_secs(1);

/// The least time between two full ticks that resyncs ask for.
pub const MIN_RESYNC_GAP: Duration = Duration::from_secs(1);

/// How long the first tick waits for the events stream to be subscribed:
/// subscribe first, then tick, so nothing falls between the two.
pub const FIRST_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// The least time from the end of one read of the records to the start of
/// the next that nudges of known records wait for (PostgreSQL mode): a flood
/// of events costs at most ten reads a second, an isolated event one round
/// trip to the database.
pub const KNOWN_READ_GAP: Duration = Duration::from_millis(100);

/// The least time from the end of one read of the records to the start of
/// the next that events of containers no record names ask for.
pub const UNKNOWN_READ_GAP: Duration = Duration::from_secs(1);

/// Events waiting for a read of the records at most; past that a full tick
/// catches up.
pub const WAITING_MAX: usize = 256;

/// Re-inspections waiting for their time at most; past that none is added
/// (the next tick inspects every record anyway).
pub const RECHECKS_MAX: usize = 256;

/// Records added by Docker events (label mode) between two listings at
/// most; past that a full tick lists them instead.
pub const ADDED_MAX: usize = 1024;

/// Where the records come from, which says how the record set follows Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Label mode: the containers carrying the game label; events carry it.
    Labels,
    /// PostgreSQL mode: a table that changes without telling.
    Database,
}

/// How the loop turns.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
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

/// What happened, told to the schedule.
#[derive(Debug)]
pub enum Input {
    /// The events stream (re)subscribed, or could not: events may have been
    /// missed, so every record is inspected.
    Subscribed,
    /// Nudges did not fit the channel: every record is inspected.
    Overflowed,
    /// A Docker event, and when the inspector took it.
    Docker(ContainerEvent, SystemTime),
    /// The records, freshly listed for the [`Action::List`] under way, or
    /// `None` when they could not be read (the shell says why).
    Listed(Option<Vec<RuntimeRecord>>),
    /// The answer to the [`Action::Inspect`] under way, and when it came.
    Answered(Result<Observation, DockerError>, SystemTime),
    /// The answer to the [`Action::Ping`] under way.
    Pinged(Result<(), String>),
    /// Shutdown was asked for.
    Shutdown,
}

/// Why the records are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFor {
    /// A full tick begins.
    Tick,
    /// Docker events wait to be judged against the records as they are now.
    Nudges,
}

/// What became of one record, for the shell to log, count and publish.
#[derive(Debug)]
pub struct Report {
    /// The record inspected (or not).
    pub record: RuntimeRecord,
    /// What became of it.
    pub outcome: Outcome,
    /// Set when a Docker event asked for the inspect.
    pub prompt: Option<Prompt>,
}

/// The end of a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickEnd {
    /// When its list was asked for.
    pub started: Instant,
    /// What it did; `None` when the records could not be listed.
    pub summary: Option<Summary>,
    /// Whether it could see dockerd (`None`: nothing says, or no listing).
    pub reach: Option<Reach>,
    /// Whether it gave up on a dockerd that stopped answering.
    pub gave_up_on_docker: bool,
}

/// What to do next.
// One action at a time is made and moved once, never stored in bulk: the
// size of a report does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Read the records; answer with [`Input::Listed`].
    List(ListFor),
    /// Inspect this record's container; answer with [`Input::Answered`].
    Inspect(RuntimeRecord),
    /// Ask dockerd's `/_ping`; answer with [`Input::Pinged`].
    Ping,
    /// Log, count and publish what became of a record.
    Report(Report),
    /// Save the baselines ([`Schedule::inspector`]) to the state directory.
    SaveBaselines,
    /// Log and publish a change of an incident.
    Incident(HealthEvent),
    /// Save the incidents ([`Schedule::incidents`]) to the state directory.
    SaveIncidents,
    /// A tick ended: log it, count it, tell systemd.
    TickEnded(TickEnd),
    /// Nothing to do before this time, unless an input arrives.
    Wait(Instant),
    /// The loop is over.
    Stop,
}

/// A record waiting for a nudged inspect, with what it was nudged by.
#[derive(Debug, Clone)]
struct Pending {
    game_id: String,
    /// The record's container when it was nudged: if the game has moved to
    /// another container since, the nudge is stale.
    container: String,
    event: ContainerEvent,
    read_at: SystemTime,
    /// Whether any merged event was a health change (Podman's bare
    /// `health_status` asks for a recheck when it still looked healthy).
    health: bool,
}

/// An event that waits for a read of the records.
#[derive(Debug)]
struct Waiting {
    event: ContainerEvent,
    read_at: SystemTime,
    arrived: Instant,
    /// Whether a record named its container when it arrived.
    known: bool,
}

/// What the shell is doing for the schedule.
#[derive(Debug)]
enum Busy {
    Idle,
    List { purpose: ListFor, started: Instant },
    TickInspect(RuntimeRecord),
    TickPing,
    NudgeInspect(Pending, RuntimeRecord),
}

/// The inspector loop's state: baselines, the record set, the tick under
/// way, nudges and timers.
#[derive(Debug)]
pub struct Schedule {
    settings: Settings,
    inspector: Inspector,
    /// The incidents, when a sink gets them.
    incidents: Option<Tracker>,
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
    /// Actions decided, to hand out before anything else.
    out: VecDeque<Action>,
    stopped: bool,
}

impl Schedule {
    /// A schedule that starts at `now` from `inspector`'s baselines.
    pub fn new(settings: Settings, inspector: Inspector, now: Instant) -> Schedule {
        Schedule {
            settings,
            inspector,
            incidents: None,
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
            out: VecDeque::new(),
            stopped: false,
        }
    }

    /// The inspector state.
    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// Tracks incidents with `tracker` from now on.
    pub fn with_incidents(mut self, tracker: Tracker) -> Schedule {
        self.incidents = Some(tracker);
        self
    }

    /// The incident tracker, when incidents are tracked.
    pub fn incidents(&self) -> Option<&Tracker> {
        self.incidents.as_ref()
    }

    /// The inspector state, to start another schedule from.
    pub fn into_inspector(self) -> Inspector {
        self.inspector
    }

    /// Takes what happened at `now`.
    pub fn on(&mut self, input: Input, now: Instant) {
        match input {
            Input::Subscribed => {
                self.first_wait = None;
                self.ask_resync(now);
            }
            Input::Overflowed => self.ask_resync(now),
            Input::Docker(event, read_at) => self.nudged(event, read_at, now),
            Input::Listed(listed) => self.listed(listed, now),
            Input::Answered(answer, at) => self.answered(answer, at, now),
            Input::Pinged(result) => {
                if let Busy::TickPing = self.busy
                    && let Some((tick, _)) = &mut self.tick
                {
                    tick.pinged(result);
                }
                self.busy = Busy::Idle;
            }
            Input::Shutdown => self.shut_down(),
        }
    }

    /// What to do next at `now`. An action that asks for an answer
    /// ([`Action::List`], [`Action::Inspect`], [`Action::Ping`]) must be
    /// answered through [`Schedule::on`] before this is called again.
    pub fn next(&mut self, now: Instant) -> Action {
        if let Some(action) = self.out.pop_front() {
            return action;
        }
        if self.stopped {
            return Action::Stop;
        }
        if !matches!(self.busy, Busy::Idle) {
            // An answer is awaited; nothing else can be done meanwhile.
            return Action::Wait(now);
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
        Action::Wait(until.max(now))
    }

    fn ask_resync(&mut self, now: Instant) {
        self.resync = true;
        if self.tick.is_none() {
            self.apply_resync(now);
        }
    }

    /// A full tick at once, but not more than one a second, however often
    /// the stream breaks or overflows.
    fn apply_resync(&mut self, now: Instant) {
        if std::mem::take(&mut self.resync) {
            let soonest = self
                .last_tick_started
                .map_or(now, |t| (t + MIN_RESYNC_GAP).max(now));
            self.next_tick = self.next_tick.min(soonest);
        }
    }

    fn nudged(&mut self, event: ContainerEvent, read_at: SystemTime, now: Instant) {
        let follow = self.settings.follow;
        if follow == Follow::Labels && event.game.is_none() {
            // Docker and Podman copy every label into a container event: a
            // container without the game label is no game's.
            return;
        }
        if event.action_label() == "create" {
            // The newest container of a game is the one that should run; it
            // is inspected once it starts (a created one is not running yet).
            if let (Follow::Labels, Some(game)) = (follow, &event.game) {
                let record = RuntimeRecord::new(game.clone(), event.id.clone());
                match self.records.iter_mut().find(|r| r.game_id == *game) {
                    Some(r) => *r = record,
                    None => {
                        self.add_record(record, now);
                    }
                }
            }
            return;
        }
        if event.action_label() == "oom"
            && let Some(game) = self.record_of(&event).map(|r| r.game_id.clone())
            && let Some(tracker) = &mut self.incidents
        {
            // Docker's restart can clear `OOMKilled` before the inspect.
            tracker.oom(&game, event.at);
        }
        let known = self.record_of(&event).is_some();
        if follow == Follow::Labels
            && !known
            && event.action_label() == "start"
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
    fn add_record(&mut self, record: RuntimeRecord, now: Instant) -> bool {
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
    fn queue_nudge(&mut self, event: ContainerEvent, read_at: SystemTime) {
        let Some(record) = self.record_of(&event) else {
            return;
        };
        let (game_id, container) = (record.game_id.clone(), record.container_id.clone());
        let health = event.action_label() == "health_status";
        if let Some(p) = self.pending.iter_mut().find(|p| p.game_id == game_id) {
            p.health |= health;
            return;
        }
        self.pending.push_back(Pending {
            game_id,
            container,
            event,
            read_at,
            health,
        });
    }

    fn wait_for_records(
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
    fn read_due_at(&self, now: Instant) -> Option<Instant> {
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

    fn read_for_waiting(&mut self, now: Instant) -> Option<Action> {
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

    fn listed(&mut self, listed: Option<Vec<RuntimeRecord>>, now: Instant) {
        let Busy::List { purpose, started } = std::mem::replace(&mut self.busy, Busy::Idle) else {
            return;
        };
        let ok = listed.is_some();
        self.last_read = Some((now, now.saturating_duration_since(started)));
        self.reads_failing = !ok;
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
                    if let Some(tracker) = &mut self.incidents {
                        let games = records.iter().map(|r| r.game_id.as_str()).collect();
                        tracker.retain_games(&games);
                    }
                    self.tick = Some((Tick::new(records), started));
                }
                None => self.end_tick(None, started, now),
            }
        }
    }

    fn answered(&mut self, answer: Result<Observation, DockerError>, at: SystemTime, now: Instant) {
        let busy = std::mem::replace(&mut self.busy, Busy::Idle);
        let (Busy::TickInspect(record) | Busy::NudgeInspect(_, record)) = &busy else {
            self.busy = busy;
            return;
        };
        // The incident tracker sees every answer, with the evidence Docker
        // gave, before the fact is judged; what was seen is kept only for
        // the rare answer that changes an incident.
        let changed = match (&mut self.incidents, &answer) {
            (Some(tracker), Ok(seen)) => {
                let changes = tracker.look(&Look {
                    game_id: &record.game_id,
                    container_id: &seen.container_id,
                    restart_count: seen.restart_count,
                    status: &seen.status,
                    health: &seen.health,
                    started_at: seen.details.as_ref().and_then(|d| d.started_at.as_deref()),
                    at,
                });
                (!changes.is_empty()).then(|| (changes, record.game_id.clone(), seen.clone()))
            }
            _ => None,
        };
        // A fact carries the details `--details` asks for.
        let answer = answer.map(|mut o| {
            if !self.settings.extended_facts {
                o.details = None;
            }
            o
        });
        match busy {
            Busy::TickInspect(record) => {
                let outcome = tick::judge(&mut self.inspector, &record, answer, at);
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
                if pending.health
                    && matches!(outcome, Outcome::Healthy)
                    && self.rechecks.len() < RECHECKS_MAX
                {
                    // Re-inspected once a second later, without the health
                    // mark, so that it is rechecked only once.
                    let again = Pending {
                        health: false,
                        ..pending.clone()
                    };
                    self.rechecks.push_back((now + HEALTH_RECHECK, again));
                }
                self.out.push_back(Action::Report(Report {
                    record,
                    outcome,
                    prompt: Some(Prompt {
                        action: pending.event.action_label(),
                        event_at: pending.event.at,
                        read_at: pending.read_at,
                        answered_at: at,
                    }),
                }));
                if self.inspector.take_changed() {
                    self.out.push_back(Action::SaveBaselines);
                }
            }
            Busy::Idle | Busy::List { .. } | Busy::TickPing => {}
        }
        if let Some((changes, game_id, seen)) = changed {
            self.incident_events(changes, &game_id, &seen, at);
        }
        if self.tick.is_none() {
            // A nudged inspect between ticks: saved now, as its baselines.
            self.save_incidents();
        }
    }

    /// The events of an answer's changes to an incident, with what was seen.
    fn incident_events(
        &mut self,
        changes: Vec<IncidentEvent>,
        game_id: &str,
        seen: &Observation,
        at: SystemTime,
    ) {
        for change in changes {
            let facts = IncidentFacts {
                incident_id: change.incident_id,
                kind: change.kind,
                started_at: crate::event::rfc3339_micros(change.started_at),
                restarts_in_window: change.restarts_in_window,
                oom: change.oom,
            };
            let event = HealthEvent::for_incident(
                change.change,
                facts,
                game_id.to_owned(),
                seen.clone(),
                at,
            );
            self.out.push_back(Action::Incident(event));
        }
    }

    /// Saves the incidents when they changed: once a tick, and after each
    /// nudged inspect, as the baselines are.
    fn save_incidents(&mut self) {
        if self.incidents.as_mut().is_some_and(Tracker::take_changed) {
            self.out.push_back(Action::SaveIncidents);
        }
    }

    fn due_rechecks(&mut self, now: Instant) {
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

    fn nudge_inspect(&mut self) -> Option<Action> {
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
            self.busy = Busy::NudgeInspect(p, record.clone());
            return Some(Action::Inspect(record));
        }
        None
    }

    fn tick_step(&mut self, now: Instant) -> Option<Action> {
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
    fn end_tick(&mut self, summary: Option<Summary>, started: Instant, now: Instant) {
        let tick = self.tick.take().map(|(t, _)| t);
        self.out.push_back(Action::TickEnded(TickEnd {
            started,
            summary,
            reach: tick.as_ref().and_then(Tick::reach),
            gave_up_on_docker: tick.as_ref().is_some_and(Tick::gave_up_on_docker),
        }));
        if self.inspector.take_changed() {
            self.out.push_back(Action::SaveBaselines);
        }
        self.save_incidents();
        if self.settings.once {
            self.stopped = true;
            return;
        }
        self.next_tick = started + self.settings.interval;
        self.apply_resync(now);
    }

    fn shut_down(&mut self) {
        if self.stopped {
            return;
        }
        if let Some((tick, started)) = &mut self.tick {
            tick.cancel();
            let (started, summary) = (*started, tick.summary());
            self.busy = Busy::Idle;
            self.end_tick(Some(summary), started, started);
        } else {
            if self.inspector.take_changed() {
                self.out.push_back(Action::SaveBaselines);
            }
            self.save_incidents();
        }
        self.stopped = true;
    }

    /// The record an event concerns: a record names its container by full
    /// id, short id or name. For a record that names it otherwise (a name
    /// since changed), the baseline's full id — the one its last inspect
    /// answered with — stands in; never for a record that names another
    /// container by id, whose game has moved on from the event's container.
    fn record_of(&self, event: &ContainerEvent) -> Option<&RuntimeRecord> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ContainerInspector;
    use crate::fakes::{Answer, FakeDocker};
    use std::time::UNIX_EPOCH;

    /// Full container ids: `id(1)` is `1111…` (64 hex digits).
    fn id(n: u8) -> String {
        char::from_digit(u32::from(n), 16)
            .unwrap()
            .to_string()
            .repeat(64)
    }

    fn rec(game: &str, n: u8) -> RuntimeRecord {
        RuntimeRecord::new(game, id(n))
    }

    fn ev(n: u8, action: &str, game: Option<&str>) -> ContainerEvent {
        ContainerEvent {
            id: id(n),
            name: None,
            action: action.into(),
            at: UNIX_EPOCH,
            game: game.map(str::to_owned),
        }
    }

    /// A schedule with fakes around it and a clock of its own: each
    /// inspect takes `inspect_ms`, each list 1 ms; what it did, in words.
    struct Run {
        schedule: Schedule,
        docker: FakeDocker,
        records: Option<Vec<RuntimeRecord>>,
        t0: Instant,
        now: Instant,
        inspect_ms: u64,
        list_ms: u64,
        /// Events delivered during an inspect, as Docker would send them.
        during_inspect: Vec<ContainerEvent>,
        /// An event delivered during every inspect (a flood).
        flood: Option<ContainerEvent>,
        log: Vec<String>,
        reads: usize,
        /// Ticks begun.
        ticks: usize,
    }

    impl Run {
        fn new(follow: Follow, events: bool, records: Vec<RuntimeRecord>) -> Run {
            let t0 = Instant::now();
            let settings = Settings {
                interval: Duration::from_secs(15),
                once: false,
                events,
                extended_facts: true,
                follow,
            };
            Run {
                schedule: Schedule::new(settings, Inspector::new(), t0),
                docker: FakeDocker::new(),
                records: Some(records),
                t0,
                now: t0,
                inspect_ms: 1,
                list_ms: 1,
                during_inspect: Vec::new(),
                flood: None,
                log: Vec::new(),
                reads: 0,
                ticks: 0,
            }
        }

        fn once(records: Vec<RuntimeRecord>) -> Run {
            let mut r = Run::new(Follow::Database, false, records);
            r.schedule.settings.once = true;
            r
        }

        fn answer(&self, n: u8, answer: Answer) {
            self.docker.set(&id(n), answer);
        }

        fn input(&mut self, input: Input) {
            self.schedule.on(input, self.now);
        }

        fn nudge(&mut self, e: ContainerEvent) {
            self.input(Input::Docker(e, UNIX_EPOCH));
        }

        fn ms(&self) -> u128 {
            (self.now - self.t0).as_millis()
        }

        /// Carries out actions until the clock passes `until_ms` with
        /// nothing decided left to hand out, or the schedule waits past it
        /// (the clock then stands at `until_ms`), or it stops.
        fn until(&mut self, until_ms: u64) -> &mut Run {
            let end = self.t0 + Duration::from_millis(until_ms);
            loop {
                if self.now >= end && !self.schedule.out.is_empty() {
                    // What was decided is handed out before the clock stops.
                } else if self.now >= end && matches!(self.schedule.busy, Busy::Idle) {
                    return self;
                }
                match self.schedule.next(self.now) {
                    Action::List(why) => {
                        self.reads += 1;
                        self.ticks += usize::from(why == ListFor::Tick);
                        self.log.push(format!("list {why:?}").to_lowercase());
                        self.now += Duration::from_millis(self.list_ms);
                        let listed = self.records.clone();
                        self.input(Input::Listed(listed));
                    }
                    Action::Inspect(r) => {
                        self.log.push(format!("inspect {}", r.game_id));
                        let answer = self.docker.inspect(&r.container_id);
                        self.now += Duration::from_millis(self.inspect_ms);
                        for e in std::mem::take(&mut self.during_inspect) {
                            self.nudge(e);
                        }
                        if let Some(e) = self.flood.clone() {
                            self.nudge(e);
                        }
                        // The wall clock moves with the schedule's.
                        let at = UNIX_EPOCH + (self.now - self.t0);
                        self.input(Input::Answered(answer, at));
                    }
                    Action::Ping => {
                        self.log.push("ping".into());
                        let p = self.docker.ping().map_err(|e| e.to_string());
                        self.input(Input::Pinged(p));
                    }
                    Action::Report(r) => self.log.push(match &r.outcome {
                        Outcome::Event(e, _) => format!(
                            "{} event {}{}",
                            r.record.game_id,
                            e.state,
                            if r.prompt.is_some() { " (nudged)" } else { "" }
                        ),
                        Outcome::Healthy => format!("{} healthy", r.record.game_id),
                        Outcome::Missing => format!("{} missing", r.record.game_id),
                        Outcome::Failed(e) => format!("{} failed {}", r.record.game_id, e.kind()),
                        Outcome::Invalid(_) => format!("{} invalid", r.record.game_id),
                        Outcome::Skipped(_) => format!("{} skipped", r.record.game_id),
                    }),
                    Action::SaveBaselines => self.log.push("save".into()),
                    Action::Incident(e) => self.log.push(format!(
                        "{} {} {}",
                        e.game_id,
                        e.event_type,
                        e.incident.as_ref().map_or("", |i| i.kind.as_str())
                    )),
                    Action::SaveIncidents => self.log.push("save incidents".into()),
                    Action::TickEnded(end) => {
                        self.log.push(match end.summary {
                            Some(s) => format!("tick ended: {s}"),
                            None => "tick ended: no records".into(),
                        });
                    }
                    Action::Wait(until) => {
                        if until >= end {
                            self.now = self.now.max(end);
                            return self;
                        }
                        self.now = until.max(self.now);
                    }
                    Action::Stop => {
                        self.log.push("stop".into());
                        return self;
                    }
                }
            }
        }

        fn take_log(&mut self) -> Vec<String> {
            std::mem::take(&mut self.log)
        }
    }

    fn running(n: u8, restarts: u64) -> Answer {
        Answer::running(&id(n), restarts, "")
    }

    #[test]
    fn the_first_tick_waits_for_the_subscription_at_most_two_seconds() {
        let mut r = Run::new(Follow::Database, true, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        assert!(r.until(1999).take_log().is_empty(), "waits for the stream");
        r.until(2001);
        assert_eq!(r.log[0], "list tick");
        let mut r = Run::new(Follow::Database, true, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(500);
        r.input(Input::Subscribed);
        r.until(600);
        assert_eq!(
            r.log,
            vec![
                "list tick",
                "inspect g",
                "g healthy",
                "tick ended: 1 records, 0 events, 0 missing, 0 errors",
                "save"
            ]
        );
    }

    #[test]
    fn every_wait_is_for_a_time_to_come_while_the_first_tick_waits_for_the_stream() {
        // An event of an unknown container before the first tick: its read
        // of the records is due at once, not after a busy wait.
        let mut r = Run::new(Follow::Database, true, vec![rec("g", 5)]);
        r.answer(5, running(5, 0));
        r.nudge(ev(5, "start", None));
        for step in 0..20 {
            match r.schedule.next(r.now) {
                Action::Wait(until) => {
                    assert!(until > r.now, "step {step}: a wait that is already over");
                    break;
                }
                Action::List(_) => {
                    let listed = r.records.clone();
                    r.input(Input::Listed(listed));
                }
                Action::Inspect(rec) => {
                    let answer = r.docker.inspect(&rec.container_id);
                    r.input(Input::Answered(answer, UNIX_EPOCH));
                }
                _ => {}
            }
        }
        assert_eq!(
            r.docker.asked(),
            vec![id(5)],
            "inspected before the first tick"
        );
    }

    #[test]
    fn ticks_come_every_interval_and_once_stops_after_one() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(44_000);
        assert_eq!(r.ticks, 3, "at 0, 15 and 30 s");
        let mut r = Run::once(vec![rec("g", 1)]);
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.until(100_000);
        assert_eq!(
            r.log,
            vec![
                "list tick",
                "inspect g",
                "g event exited",
                "tick ended: 1 records, 1 events, 0 missing, 0 errors",
                "save",
                "stop"
            ]
        );
    }

    #[test]
    fn a_nudge_during_a_tick_is_taken_between_its_records() {
        let records = vec![rec("a", 1), rec("b", 2), rec("c", 3)];
        let mut r = Run::new(Follow::Labels, false, records);
        for n in 1..=3 {
            r.answer(n, running(n, 0));
        }
        r.during_inspect = vec![ev(3, "die", Some("c"))];
        r.until(10);
        assert_eq!(
            r.take_log(),
            vec![
                "list tick",
                "inspect a",
                "a healthy",
                "inspect c",
                "c healthy",
                "save",
                "inspect b",
                "b healthy",
                "inspect c",
                "c healthy",
                "tick ended: 3 records, 0 events, 0 missing, 0 errors",
                "save"
            ],
            "the nudged record goes before the tick's next one"
        );
    }

    #[test]
    fn a_flood_of_nudges_for_one_container_is_one_inspect_and_one_more_at_most() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1), rec("b", 2)]);
        r.answer(1, running(1, 0));
        r.answer(2, running(2, 0));
        r.until(10);
        r.take_log();
        for _ in 0..1000 {
            r.nudge(ev(1, "die", Some("a")));
        }
        // A second flood arrives while the first inspect is under way.
        r.during_inspect = vec![ev(1, "die", Some("a")); 500];
        r.until(20);
        assert_eq!(
            r.take_log(),
            vec!["inspect a", "a healthy", "inspect a", "a healthy"]
        );
    }

    #[test]
    fn ticks_stay_on_time_and_every_record_is_inspected_under_a_flood_of_nudges() {
        // Three records, a 1 s interval, one container whose inspect takes
        // 50 ms, and a `die` for it every 10 ms for 20 s.
        let mut r = Run::new(
            Follow::Labels,
            false,
            vec![rec("a", 1), rec("b", 2), rec("c", 3)],
        );
        r.schedule.settings.interval = Duration::from_secs(1);
        for n in 1..=3 {
            r.answer(n, running(n, 0));
        }
        r.inspect_ms = 50;
        r.until(10);
        // Events arrive during every inspect, and between them.
        r.flood = Some(ev(1, "die", Some("a")));
        let mut starts = Vec::new();
        while r.ms() < 20_000 {
            r.nudge(ev(1, "die", Some("a")));
            let ticks = r.ticks;
            let t = r.ms() as u64 + 10;
            r.until(t);
            if r.ticks > ticks {
                starts.push(r.ms());
            }
        }
        assert!(r.ticks >= 20, "{} ticks in 20 s", r.ticks);
        let gaps: Vec<u128> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g <= 1100), "ticks on time: {gaps:?}");
        let inspects = |g: &str| {
            r.log
                .iter()
                .filter(|l| **l == format!("inspect {g}"))
                .count()
        };
        assert!(
            inspects("b") >= 20 && inspects("c") >= 20,
            "{} {}",
            inspects("b"),
            inspects("c")
        );
        // One inspect under way and one pending at most: never more than
        // the time allows, 20 a second at 50 ms each.
        assert!(inspects("a") <= 20 * 20 + 1, "{}", inspects("a"));
    }

    #[test]
    fn label_mode_ignores_containers_without_the_label_at_no_cost() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        let reads = r.reads;
        for _ in 0..1000 {
            r.nudge(ev(9, "die", None));
        }
        r.until(5000);
        assert_eq!(r.reads, reads, "no read of the records");
        assert_eq!(r.docker.asked(), vec![id(1)], "no inspect");
    }

    #[test]
    fn label_mode_a_game_started_after_the_tick_is_seeded_at_its_start_and_reported_at_its_death() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        r.answer(2, running(2, 0));
        r.nudge(ev(2, "create", Some("new")));
        r.nudge(ev(2, "start", Some("new")));
        r.until(20);
        assert_eq!(r.take_log(), vec!["inspect new", "new healthy", "save"]);
        r.answer(2, Answer::status(&id(2), 0, "exited"));
        r.nudge(ev(2, "die", Some("new")));
        r.until(30);
        assert_eq!(
            r.take_log(),
            vec!["inspect new", "new event exited (nudged)"]
        );
        assert_eq!(r.reads, 1, "no read of the records was needed");
    }

    #[test]
    fn label_mode_a_die_of_a_container_its_game_has_replaced_is_no_event() {
        // g's container 1 is seen by a tick; a newer container 2 is created
        // for g; 1 exits.
        let mut r = Run::new(Follow::Labels, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        r.nudge(ev(2, "create", Some("g")));
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.records = Some(vec![rec("g", 2)]);
        r.nudge(ev(1, "die", Some("g")));
        r.until(3000);
        assert_eq!(
            r.take_log(),
            vec!["list nudges"],
            "the record set was read, not container 1 inspected"
        );
        assert_eq!(
            r.docker.asked(),
            vec![id(1)],
            "container 1 was inspected only by the tick"
        );
    }

    #[test]
    fn a_stale_nudge_is_dropped_when_its_game_moved_to_another_container_meanwhile() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        r.answer(2, Answer::status(&id(2), 0, "created"));
        r.nudge(ev(1, "die", Some("g")));
        r.nudge(ev(2, "create", Some("g")));
        r.until(20);
        assert!(
            r.take_log().is_empty(),
            "neither the old nor the created container is inspected"
        );
    }

    #[test]
    fn database_mode_a_nudge_is_judged_against_the_records_as_they_are_now() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1), rec("h", 2)]);
        r.answer(1, running(1, 0));
        r.answer(2, running(2, 0));
        r.until(200);
        r.take_log();
        // g's record is set to stopped, then its container stops.
        r.records = Some(vec![rec("h", 2)]);
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.nudge(ev(1, "die", None));
        r.until(400);
        assert_eq!(r.take_log(), vec!["list nudges"], "no inspect, no event");
        // h's container dies while its record stands: reported at once.
        r.answer(2, Answer::status(&id(2), 0, "exited"));
        r.nudge(ev(2, "die", None));
        r.until(600);
        assert_eq!(
            r.take_log(),
            vec!["list nudges", "inspect h", "h event exited (nudged)"]
        );
    }

    #[test]
    fn database_mode_a_record_inserted_after_the_tick_is_found_by_its_start() {
        let mut r = Run::new(Follow::Database, false, vec![]);
        r.until(10);
        r.take_log();
        r.records = Some(vec![rec("new", 5)]);
        r.answer(5, running(5, 0));
        r.nudge(ev(5, "start", None));
        r.until(1500);
        assert_eq!(
            r.take_log(),
            vec!["list nudges", "inspect new", "new healthy", "save"]
        );
        r.answer(5, Answer::status(&id(5), 0, "exited"));
        r.nudge(ev(5, "die", None));
        r.until(1600);
        assert_eq!(
            r.take_log(),
            vec!["list nudges", "inspect new", "new event exited (nudged)"]
        );
    }

    #[test]
    fn a_burst_of_unknown_ids_reads_the_records_at_most_once_a_second() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        let before = r.reads;
        let mut t = 10;
        for i in 0..1000u32 {
            let mut e = ev(9, "die", None);
            e.id = format!("{i:064x}");
            r.nudge(e);
            if i % 100 == 0 {
                t += 350;
                r.until(t);
            }
        }
        r.until(t + 1000);
        let reads = r.reads - before;
        let seconds = (r.ms() as usize - 10).div_ceil(1000);
        assert!(reads <= seconds, "{reads} reads in {seconds} s");
        assert!(reads >= 2, "{reads}");
        assert!(
            r.docker.asked().iter().all(|c| *c == id(1)),
            "ids that stay unknown are never inspected"
        );
    }

    #[test]
    fn when_a_read_for_nudges_fails_known_records_are_still_inspected() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(200);
        r.take_log();
        r.records = None;
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.nudge(ev(1, "die", None));
        r.nudge(ev(7, "die", None));
        r.until(2000);
        assert_eq!(
            r.take_log(),
            vec!["list nudges", "inspect g", "g event exited (nudged)"]
        );
    }

    #[test]
    fn a_resync_during_a_tick_runs_another_full_tick_a_second_after_its_start() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1), rec("b", 2)]);
        r.answer(1, running(1, 0));
        r.answer(2, running(2, 0));
        r.inspect_ms = 100;
        r.during_inspect = vec![];
        r.until(1);
        // The stream resubscribes during the first tick.
        r.input(Input::Subscribed);
        r.until(999);
        assert_eq!(r.ticks, 1);
        r.until(1001);
        assert_eq!(
            r.ticks, 2,
            "the resync tick, one second after the first began"
        );
        for _ in 0..10 {
            r.input(Input::Overflowed);
        }
        r.until(3000);
        assert_eq!(r.ticks, 3, "many resyncs, one tick a second at most");
    }

    #[test]
    fn shutdown_mid_tick_ends_it_counts_the_rest_skipped_and_saves() {
        let mut r = Run::new(
            Follow::Labels,
            false,
            vec![rec("a", 1), rec("b", 2), rec("c", 3)],
        );
        r.answer(1, running(1, 0));
        assert!(matches!(
            r.schedule.next(r.now),
            Action::List(ListFor::Tick)
        ));
        r.input(Input::Listed(r.records.clone()));
        let Action::Inspect(_) = r.schedule.next(r.now) else {
            panic!()
        };
        r.input(Input::Answered(r.docker.inspect(&id(1)), UNIX_EPOCH));
        r.input(Input::Shutdown);
        r.until(10);
        assert_eq!(
            r.log,
            vec![
                "a healthy",
                "tick ended: 3 records, 0 events, 0 missing, 0 errors, 2 skipped",
                "save",
                "stop"
            ]
        );
    }

    #[test]
    fn shutdown_while_waiting_stops_at_once_and_with_nothing_to_save() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.answer(1, running(1, 0));
        r.until(100);
        r.take_log();
        r.input(Input::Shutdown);
        r.until(200);
        assert_eq!(r.take_log(), vec!["stop"]);
    }

    #[test]
    fn a_nudged_inspect_that_moves_a_baseline_saves_it_at_once() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        r.answer(1, running(1, 1));
        r.nudge(ev(1, "start", Some("a")));
        r.until(20);
        assert_eq!(
            r.take_log(),
            vec!["inspect a", "a event running (nudged)", "save"]
        );
        assert_eq!(r.schedule.inspector().baselines()["a"].restart_count, 1);
        r.nudge(ev(1, "die", Some("a")));
        r.until(30);
        assert_eq!(
            r.take_log(),
            vec!["inspect a", "a healthy"],
            "nothing moved, nothing saved"
        );
    }

    #[test]
    fn a_bare_health_status_that_still_looks_healthy_is_inspected_again_a_second_later() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        r.nudge(ev(1, "health_status", Some("a")));
        r.until(500);
        assert_eq!(r.take_log(), vec!["inspect a", "a healthy"]);
        r.answer(1, Answer::running(&id(1), 0, "unhealthy"));
        r.until(1100);
        assert_eq!(r.take_log(), vec!["inspect a", "a event running (nudged)"]);
        r.until(5000);
        assert!(r.take_log().is_empty(), "rechecked once only");
    }

    #[test]
    fn a_failed_listing_ends_the_tick_and_the_next_comes_at_the_interval() {
        let mut r = Run::new(Follow::Database, false, vec![]);
        r.records = None;
        r.until(14_000);
        assert_eq!(r.take_log(), vec!["list tick", "tick ended: no records"]);
        r.records = Some(vec![]);
        r.until(15_500);
        assert_eq!(
            r.take_log(),
            vec![
                "list tick",
                "ping",
                "tick ended: 0 records, 0 events, 0 missing, 0 errors"
            ]
        );
    }

    #[test]
    fn waiting_events_past_the_bound_turn_into_one_full_tick() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(2000);
        let ticks = r.ticks;
        r.schedule.last_read = Some((r.now, Duration::ZERO));
        for i in 0..(WAITING_MAX as u32 + 10) {
            let mut e = ev(9, "die", None);
            e.id = format!("{i:064x}");
            r.nudge(e);
        }
        assert_eq!(r.schedule.waiting.len(), WAITING_MAX);
        r.until(2010);
        assert_eq!(r.ticks, ticks + 1, "a resync tick");
    }

    #[test]
    fn slow_reads_of_the_records_starve_neither_the_ticks_nor_the_inspects() {
        // Reads that take longer than the gap between them, and an event
        // during each: the work a read makes ready goes before the next.
        for follow in [Follow::Database, Follow::Labels] {
            let records: Vec<RuntimeRecord> = (1..=9).map(|n| rec(&format!("g{n}"), n)).collect();
            let mut r = Run::new(follow, false, records);
            r.schedule.settings.interval = Duration::from_secs(2);
            for n in 1..=9 {
                r.answer(n, running(n, 0));
            }
            r.list_ms = 1200;
            let known = ev(1, "health_status", Some("g1"));
            let unknown = ev(15, "die", Some("other"));
            while r.ms() < 60_000 {
                r.nudge(known.clone());
                r.nudge(unknown.clone());
                let t = r.ms() as u64 + 100;
                r.until(t);
            }
            let ends = r.log.iter().filter(|l| l.starts_with("tick ended")).count();
            assert!(ends >= 15, "{follow:?}: {ends} ticks ended in 60 s");
            let inspects = r.log.iter().filter(|l| *l == "inspect g1").count();
            assert!(
                inspects >= 15,
                "{follow:?}: {inspects} inspects of the nudged record"
            );
        }
    }

    #[test]
    fn while_reads_of_the_records_fail_known_records_are_judged_without_one() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(200);
        r.records = None;
        r.nudge(ev(1, "die", None));
        r.until(400);
        let reads = r.reads;
        r.take_log();
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.nudge(ev(1, "die", None));
        r.nudge(ev(7, "die", None));
        r.until(600);
        assert_eq!(r.take_log(), vec!["inspect g", "g event exited (nudged)"]);
        assert_eq!(
            r.reads, reads,
            "no read while they fail, until the next tick's"
        );
    }

    #[test]
    fn database_mode_a_health_recheck_waits_for_a_read_of_the_records_too() {
        let mut r = Run::new(Follow::Database, false, vec![rec("g", 1)]);
        r.answer(1, running(1, 0));
        r.until(200);
        r.take_log();
        r.nudge(ev(1, "health_status", None));
        r.until(500);
        assert_eq!(r.take_log(), vec!["list nudges", "inspect g", "g healthy"]);
        // The record is stopped before the recheck; the container turns unhealthy.
        r.records = Some(vec![]);
        r.answer(1, Answer::running(&id(1), 0, "unhealthy"));
        r.until(2000);
        assert_eq!(
            r.take_log(),
            vec!["list nudges"],
            "no inspect of a record gone"
        );
    }

    #[test]
    fn label_mode_records_added_by_events_are_bounded_between_listings() {
        let mut r = Run::new(Follow::Labels, false, vec![]);
        r.until(10);
        let ticks = r.ticks;
        for i in 0..(ADDED_MAX as u32 + 100) {
            let mut e = ev(9, "create", Some("g"));
            e.id = format!("{i:064x}");
            e.game = Some(format!("g{i}"));
            r.nudge(e);
        }
        assert_eq!(r.schedule.records.len(), ADDED_MAX);
        r.until(1100);
        assert_eq!(r.ticks, ticks + 1, "a full tick lists them instead");
    }

    #[test]
    fn incidents_follow_every_answer_and_an_oom_event_marks_them() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.schedule.incidents = Some(Tracker::new(crate::incident::Policy::default()));
        r.answer(1, running(1, 0));
        r.until(10);
        r.take_log();
        // Docker's oom, then its die: the inspect sees it exited.
        r.answer(1, Answer::status(&id(1), 0, "exited"));
        r.nudge(ev(1, "oom", Some("a")));
        r.nudge(ev(1, "die", Some("a")));
        r.until(20);
        let log = r.take_log();
        assert!(
            log.contains(&"a incident_opened not_running".to_owned()),
            "{log:?}"
        );
        assert!(log.contains(&"save incidents".to_owned()), "{log:?}");
        let opened = log
            .iter()
            .position(|l| l.contains("incident_opened"))
            .unwrap();
        let fact = log
            .iter()
            .position(|l| l == "a event exited (nudged)")
            .unwrap();
        assert!(fact < opened, "the fact, then the incident: {log:?}");
        // Running clean again: resolved after 30 s of looks (ticks every 15 s).
        r.answer(1, running(1, 0));
        r.until(70_000);
        let log = r.take_log();
        assert_eq!(
            log.iter()
                .filter(|l| l.contains("incident_"))
                .collect::<Vec<_>>(),
            vec!["a incident_resolved not_running"],
            "{log:?}"
        );
    }

    #[test]
    fn facts_carry_extended_details_only_when_asked_for() {
        let mut r = Run::new(Follow::Labels, false, vec![rec("a", 1)]);
        r.schedule.settings.extended_facts = false;
        let mut exited = Observation {
            container_id: id(1),
            restart_count: 0,
            status: "exited".into(),
            health: String::new(),
            details: Some(Box::new(crate::inspector::StateDetails {
                exit_code: Some(3),
                ..Default::default()
            })),
        };
        assert!(matches!(r.schedule.next(r.now), Action::List(_)));
        r.input(Input::Listed(r.records.clone()));
        assert!(matches!(r.schedule.next(r.now), Action::Inspect(_)));
        r.input(Input::Answered(Ok(exited.clone()), UNIX_EPOCH));
        let Action::Report(report) = r.schedule.next(r.now) else {
            panic!()
        };
        let Outcome::Event(fact, _) = report.outcome else {
            panic!()
        };
        assert!(fact.details.is_none(), "basic facts");
        exited.details = None;
        assert_eq!(fact.state, exited.status);
    }
}
