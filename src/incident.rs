//! The incident tracker: the rules that turn the looks at a game's container
//! into incidents a person can follow — opened once, escalated when worse,
//! reminded now and then, resolved once — where the inspector reports every
//! look in trouble.
//!
//! It is a plain state machine over per-game memory and does no I/O: every
//! successful inspect (a tick's or a Docker event's) is fed to
//! [`Tracker::look`] with the time it was made, and the changes come back as
//! [`IncidentEvent`]s. Its memory of each game is a few fields (no history of
//! looks or restart times), and [`Tracker::saved`] is what `state` writes so
//! that an incident outlives a restart of rtinspect with the same id.
//!
//! Restarts are counted from the tracker's own memory of each game's
//! container and `RestartCount`, apart from the inspector's baselines. A crash
//! loop is a count, not a sliding window: the count grows with every restart
//! and is cleared only once the container has run clean for the whole
//! crash-loop window, so that restarts spaced out by a back-off never fall out
//! of it one by one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::inspector::restart_under_way;

/// How long an `oom` event waits for an incident of its game to open and take
/// it; the `die` that follows an OOM kill comes within moments.
pub const OOM_GRACE: Duration = Duration::from_secs(60);

/// The most restarts one look counts from a jump of `RestartCount`.
pub const MAX_RESTARTS_PER_LOOK: u64 = 64;

/// When incidents open, escalate, remind and resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The restarts that make a crash loop, counted until the container has
    /// run clean for `crash_loop_window`.
    pub crash_loop_restarts: u32,
    /// How long a container must run clean for its restart count to be cleared.
    pub crash_loop_window: Duration,
    /// How long a container must run clean for its incident to resolve.
    pub recover_after: Duration,
    /// How often an open incident is recalled; `None` never.
    pub remind: Option<Duration>,
}

impl Default for Policy {
    /// Three restarts within ten minutes, 30 s clean to resolve, a reminder every 4 h.
    fn default() -> Self {
        Policy {
            crash_loop_restarts: 3,
            crash_loop_window: Duration::from_secs(10 * 60),
            recover_after: Duration::from_secs(30),
            remind: Some(Duration::from_secs(4 * 60 * 60)),
        }
    }
}

impl Policy {
    /// How long a container must run clean for an incident of `kind` to resolve.
    ///
    /// A crash loop ends when its restart count is cleared, not 30 s after
    /// each restart: otherwise a game crashing every few minutes would open
    /// and resolve an incident for each crash, and a resolved incident would
    /// reopen straight as a crash loop.
    pub fn clean_to_resolve(&self, kind: Kind) -> Duration {
        match kind {
            Kind::CrashLoop => self.recover_after.max(self.crash_loop_window),
            _ => self.recover_after,
        }
    }

    /// The reminder period, if reminders are on (a zero period turns them off).
    fn remind_every(&self) -> Option<Duration> {
        self.remind.filter(|d| !d.is_zero())
    }
}

/// What is wrong with a game, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The container restarted (or was replaced) and runs again.
    Restarted,
    /// The healthcheck reports `unhealthy`.
    Unhealthy,
    /// `State.Status` is not `running`.
    NotRunning,
    /// The container restarted at least `crash_loop_restarts` times without
    /// running clean for `crash_loop_window` in between.
    CrashLoop,
}

impl Kind {
    /// The name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Restarted => "restarted",
            Kind::Unhealthy => "unhealthy",
            Kind::NotRunning => "not_running",
            Kind::CrashLoop => "crash_loop",
        }
    }
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A condition first held: the incident begins.
    Opened,
    /// The incident's kind got worse.
    Escalated,
    /// The incident is still open after another reminder period.
    Reminder,
    /// The container ran clean long enough: the incident is over.
    Resolved,
}

impl Change {
    /// The event type published for this change.
    pub fn event_type(self) -> &'static str {
        // The envelope's names, listed once in `event::EVENT_TYPES`.
        crate::event::EVENT_TYPES[1 + self as usize]
    }
}

/// One successful inspect of a game's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look<'a> {
    /// The game the container runs.
    pub game_id: &'a str,
    /// The full container id Docker answered with.
    pub container_id: &'a str,
    /// Docker's `RestartCount`.
    pub restart_count: u64,
    /// `State.Status`.
    pub status: &'a str,
    /// `State.Health.Status`, or `""` when the container has no healthcheck.
    pub health: &'a str,
    /// `State.StartedAt`, when Docker reports it: a start that no restart
    /// count shows (`docker start`, `docker restart`, the API's) changes it.
    pub started_at: Option<&'a str>,
    /// When the inspect was made.
    pub at: SystemTime,
}

/// A change of an incident: the material of an `incident_*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentEvent {
    /// What happened.
    pub change: Change,
    /// The game the incident is about.
    pub game_id: String,
    /// The container of the look that made the change.
    pub container_id: String,
    /// The incident's id (a UUID v7 of when it opened), the same for all its events.
    pub incident_id: String,
    /// The incident's kind after the change.
    pub kind: Kind,
    /// When the incident opened.
    pub started_at: SystemTime,
    /// The restarts counted in the current crash-loop window.
    pub restarts_in_window: u32,
    /// Whether the kernel's OOM killer ended the container during the incident.
    pub oom: bool,
    /// When the look that made the change was made.
    pub at: SystemTime,
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Incident {
    id: String,
    kind: Kind,
    started_at: SystemTime,
    oom: bool,
    /// When the next reminder is due; `None` when reminders are off.
    next_reminder: Option<SystemTime>,
}

/// What the tracker remembers of one game.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GameState {
    /// The container and its `RestartCount` at the last look; `None` before the first.
    last: Option<(String, u64)>,
    /// The container's `State.StartedAt` at the last look, when known.
    started: Option<String>,
    /// Restarts since the container last ran clean for the crash-loop window.
    restarts: u32,
    /// When the current run of clean looks began. Saved only while an
    /// incident is open (so that `once`, a look per run, can resolve one):
    /// a streak that starts and ends at every flap of a game without an
    /// incident must not rewrite the state file at every tick.
    clean_since: Option<SystemTime>,
    incident: Option<Incident>,
    /// An `oom` event waiting for an incident to open.
    oom_at: Option<SystemTime>,
}

/// The incidents of every game, and the memory of each game behind them.
#[derive(Debug, Clone)]
pub struct Tracker {
    policy: Policy,
    games: HashMap<String, GameState>,
    /// Whether the saved state changed since [`Tracker::take_changed`].
    changed: bool,
}

/// How long from `since` to `at`; zero when the clock went back.
fn elapsed(since: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(since).unwrap_or(Duration::ZERO)
}

/// A UUID v7 whose time part is `at`.
fn incident_id(at: SystemTime) -> String {
    let since = elapsed(UNIX_EPOCH, at);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

/// The first due time of the grid `due + k * every` that is after `at`;
/// `None` past the end of time.
fn next_due(due: SystemTime, every: Duration, at: SystemTime) -> Option<SystemTime> {
    let missed = elapsed(due, at).as_nanos() / every.as_nanos();
    let steps = u32::try_from(missed + 1).ok()?;
    due.checked_add(every.checked_mul(steps)?)
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub fn new(policy: Policy) -> Tracker {
        Tracker {
            policy,
            games: HashMap::new(),
            changed: false,
        }
    }

    /// A tracker that goes on from the state saved by an earlier process.
    pub fn with_saved(policy: Policy, saved: SavedIncidents) -> Tracker {
        let games = saved
            .games
            .into_iter()
            .map(|(game, s)| {
                let incident = s.incident.map(|i| {
                    let started_at = from_ms(i.started_at_ms);
                    // Reminders turned on since the save start from the opening.
                    let next_reminder = i
                        .next_reminder_ms
                        .map(from_ms)
                        .or_else(|| started_at.checked_add(policy.remind_every()?));
                    Incident {
                        id: i.id,
                        kind: i.kind.into(),
                        started_at,
                        oom: i.oom,
                        next_reminder,
                    }
                });
                let state = GameState {
                    last: s.container_id.map(|c| (c, s.restart_count)),
                    started: s.started_at,
                    restarts: s.restarts_in_window,
                    clean_since: s.clean_since_ms.map(from_ms),
                    incident,
                    oom_at: s.oom_at_ms.map(from_ms),
                };
                (game, state)
            })
            .collect();
        Tracker {
            policy,
            games,
            changed: false,
        }
    }

    /// Every successful inspect, tick or event; the changes it makes.
    ///
    /// A look counts restarts against the game's last look: the same
    /// container with a higher `RestartCount` restarted that many times
    /// (at most [`MAX_RESTARTS_PER_LOOK`]); a lower one re-seeds without a
    /// restart, because Docker resets it to 0 on a manual `docker start`; a
    /// new container id for the game was one restart (a replacement). The
    /// first look of a game only seeds; its status and health still count.
    ///
    /// A look is clean when the container is `running` and, if it has a
    /// healthcheck, `healthy`, and it did not restart since the last look. A
    /// clean look starts a streak (so does a look that restarted but runs
    /// healthy: the restart happened before it), any other look ends it, and
    /// a later clean look at least [`Policy::clean_to_resolve`] after the
    /// streak began resolves the incident; one at least the crash-loop
    /// window after it clears the restart count.
    pub fn look(&mut self, look: &Look<'_>) -> Vec<IncidentEvent> {
        let policy = self.policy;
        let at = look.at;
        // A lookup, not an entry: no allocation per look of a known game.
        if !self.games.contains_key(look.game_id) {
            self.games
                .insert(look.game_id.to_owned(), GameState::default());
        }
        let Some(game) = self.games.get_mut(look.game_id) else {
            return Vec::new();
        };
        let mut changed = false;

        // A start the restart count does not show (a manual or API start,
        // which also resets the count) still changes `StartedAt`.
        let started_again = match (&game.started, look.started_at) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        };
        if look.started_at.is_some() && game.started.as_deref() != look.started_at {
            game.started = look.started_at.map(str::to_owned);
            changed = true;
        }
        // A replacement (a new container for the game) counts toward a
        // crash loop, but opens nothing by itself: a deploy is no incident.
        let mut replaced = false;
        let restarted = match &mut game.last {
            None => {
                game.last = Some((look.container_id.to_owned(), look.restart_count));
                changed = true;
                0
            }
            Some((container, count)) if container == look.container_id => {
                let n = look.restart_count.saturating_sub(*count);
                changed |= *count != look.restart_count;
                *count = look.restart_count;
                n.min(MAX_RESTARTS_PER_LOOK).max(u64::from(started_again))
            }
            Some((container, count)) => {
                container.clear();
                container.push_str(look.container_id);
                *count = look.restart_count;
                changed = true;
                replaced = true;
                1
            }
        };
        if restarted > 0 {
            // At most 64: the cast cannot truncate.
            game.restarts = game.restarts.saturating_add(restarted as u32);
            changed = true;
        }
        if let Some(oom_at) = game.oom_at
            && elapsed(oom_at, at) > OOM_GRACE
        {
            game.oom_at = None;
            changed = true;
        }

        let running = look.status == "running";
        // Docker's health states are starting, healthy and unhealthy; `""`
        // means the container has no healthcheck.
        let healthy = running && matches!(look.health, "" | "healthy");
        let mut kind = None;
        if restarted > 0 {
            if !replaced {
                kind = Some(Kind::Restarted);
            }
            if game.restarts >= policy.crash_loop_restarts.max(1) {
                kind = Some(Kind::CrashLoop);
            }
        }
        if look.health == "unhealthy" {
            kind = kind.max(Some(Kind::Unhealthy));
        }
        // A restart under way is counted when it lands, not a stop.
        if !running && !restart_under_way(look.status) {
            kind = kind.max(Some(Kind::NotRunning));
        }

        // How long the container has run clean, judged at a later look than
        // the one that began the streak.
        let clean_for = match game.clean_since {
            Some(since) if healthy && restarted == 0 => Some(elapsed(since, at)),
            _ => None,
        };
        let clean_since = match (healthy, restarted) {
            (false, _) => None,
            (true, 0) => game.clean_since.or(Some(at)),
            (true, _) => Some(at),
        };
        // Saved while an incident is open, so a change then is one to save.
        changed |= game.incident.is_some() && clean_since != game.clean_since;
        game.clean_since = clean_since;
        if game.restarts > 0 && clean_for.is_some_and(|d| d >= policy.crash_loop_window) {
            game.restarts = 0;
            changed = true;
        }

        let mut events = Vec::new();
        let event = |change, incident: &Incident, restarts| IncidentEvent {
            change,
            game_id: look.game_id.to_owned(),
            container_id: look.container_id.to_owned(),
            incident_id: incident.id.clone(),
            kind: incident.kind,
            started_at: incident.started_at,
            restarts_in_window: restarts,
            oom: incident.oom,
            at,
        };
        match (&mut game.incident, kind) {
            (None, None) => {}
            (None, Some(kind)) => {
                let incident = Incident {
                    id: incident_id(at),
                    kind,
                    started_at: at,
                    oom: game.oom_at.take().is_some(),
                    next_reminder: policy.remind_every().and_then(|r| at.checked_add(r)),
                };
                events.push(event(Change::Opened, &incident, game.restarts));
                game.incident = Some(incident);
                changed = true;
            }
            (Some(incident), Some(kind)) if kind > incident.kind => {
                incident.kind = kind;
                // The escalation stands for a reminder due at the same look.
                if let Some(due) = incident.next_reminder
                    && at >= due
                {
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, at));
                }
                events.push(event(Change::Escalated, incident, game.restarts));
                changed = true;
            }
            (Some(incident), _)
                if clean_for.is_some_and(|d| d >= policy.clean_to_resolve(incident.kind)) =>
            {
                events.push(event(Change::Resolved, incident, game.restarts));
                game.incident = None;
                changed = true;
            }
            (Some(incident), _) => {
                if let Some(due) = incident.next_reminder
                    && at >= due
                {
                    // One reminder per due time, and one only after a long
                    // gap between looks: the missed due times are skipped.
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, at));
                    if policy.remind_every().is_some() {
                        events.push(event(Change::Reminder, incident, game.restarts));
                    }
                    changed = true;
                }
            }
        }
        self.changed |= changed;
        events
    }

    /// An `oom` event of the game's container at `at`.
    ///
    /// It marks the open incident, or else the next one to open within
    /// [`OOM_GRACE`]: the OOM kill shows in `State.OOMKilled` only until the
    /// container starts again, and a look may come too late to see it.
    pub fn oom(&mut self, game_id: &str, at: SystemTime) {
        let game = self.games.entry(game_id.to_owned()).or_default();
        match &mut game.incident {
            Some(incident) if incident.oom => {}
            Some(incident) => {
                incident.oom = true;
                self.changed = true;
            }
            None => {
                game.oom_at = Some(at);
                self.changed = true;
            }
        }
    }

    /// Forgets the games not in `games` (called with each fresh record list).
    ///
    /// A game that left is dropped without an event, and one that comes back
    /// is seen afresh.
    pub fn retain_games(&mut self, games: &HashSet<&str>) {
        let before = self.games.len();
        self.games.retain(|game, _| games.contains(game.as_str()));
        self.changed |= self.games.len() != before;
    }

    /// Whether the state changed since the last call (so it needs saving).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The number of incidents open now.
    pub fn open_incidents(&self) -> usize {
        self.games.values().filter(|g| g.incident.is_some()).count()
    }

    /// The state to persist.
    pub fn saved(&self) -> SavedIncidents {
        let games = self
            .games
            .iter()
            .map(|(game, s)| {
                let saved = SavedGame {
                    started_at: s.started.clone(),
                    clean_since_ms: s.incident.as_ref().and(s.clean_since).map(ms),
                    container_id: s.last.as_ref().map(|(c, _)| c.clone()),
                    restart_count: s.last.as_ref().map_or(0, |(_, n)| *n),
                    restarts_in_window: s.restarts,
                    incident: s.incident.as_ref().map(|i| SavedIncident {
                        id: i.id.clone(),
                        kind: i.kind.into(),
                        started_at_ms: ms(i.started_at),
                        oom: i.oom,
                        next_reminder_ms: i.next_reminder.map(ms),
                    }),
                    oom_at_ms: s.oom_at.map(ms),
                };
                (game.clone(), saved)
            })
            .collect();
        SavedIncidents { games }
    }
}

/// The persisted state (serde, versioned by state.rs).
///
/// Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedIncidents {
    games: BTreeMap<String, SavedGame>,
}

impl SavedIncidents {
    /// The number of games remembered.
    pub fn len(&self) -> usize {
        self.games.len()
    }

    /// Whether no game is remembered.
    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedGame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clean_since_ms: Option<u64>,
    #[serde(default)]
    restart_count: u64,
    #[serde(default)]
    restarts_in_window: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    incident: Option<SavedIncident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oom_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedIncident {
    id: String,
    kind: SavedKind,
    started_at_ms: u64,
    oom: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_reminder_ms: Option<u64>,
}

/// [`Kind`] as written to the file, so that the domain type stays plain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedKind {
    Restarted,
    Unhealthy,
    NotRunning,
    CrashLoop,
}

impl From<Kind> for SavedKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Restarted => SavedKind::Restarted,
            Kind::Unhealthy => SavedKind::Unhealthy,
            Kind::NotRunning => SavedKind::NotRunning,
            Kind::CrashLoop => SavedKind::CrashLoop,
        }
    }
}

impl From<SavedKind> for Kind {
    fn from(kind: SavedKind) -> Self {
        match kind {
            SavedKind::Restarted => Kind::Restarted,
            SavedKind::Unhealthy => Kind::Unhealthy,
            SavedKind::NotRunning => Kind::NotRunning,
            SavedKind::CrashLoop => Kind::CrashLoop,
        }
    }
}

fn ms(t: SystemTime) -> u64 {
    u64::try_from(elapsed(UNIX_EPOCH, t).as_millis()).unwrap_or(u64::MAX)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Change::*;
    use Kind::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;

    /// The fake clock: `s` seconds after an arbitrary start.
    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000 + s)
    }

    /// Seconds since the start of the fake clock.
    fn secs(at: SystemTime) -> u64 {
        at.duration_since(t(0)).unwrap().as_secs()
    }

    /// One look at game `g`: (seconds, container, RestartCount, status, health).
    type Step = (u64, &'static str, u64, &'static str, &'static str);

    /// A case of a table: the looks, and the events expected as [`brief`] shows them.
    type Case = (&'static [Step], &'static [(u64, Change, Kind)]);

    /// Feeds the steps to `tracker` and returns every event, in order.
    fn feed(tracker: &mut Tracker, steps: impl IntoIterator<Item = Step>) -> Vec<IncidentEvent> {
        steps
            .into_iter()
            .flat_map(|(at, container_id, restart_count, status, health)| {
                tracker.look(&Look {
                    game_id: "g",
                    container_id,
                    restart_count,
                    status,
                    health,
                    started_at: None,
                    at: t(at),
                })
            })
            .collect()
    }

    /// The events as (seconds, change, kind): what most tests pin.
    fn brief(events: &[IncidentEvent]) -> Vec<(u64, Change, Kind)> {
        events
            .iter()
            .map(|e| (secs(e.at), e.change, e.kind))
            .collect()
    }

    /// Feeds the steps to a fresh tracker under `policy`.
    fn check(policy: Policy, steps: impl IntoIterator<Item = Step>) -> Vec<IncidentEvent> {
        feed(&mut Tracker::new(policy), steps)
    }

    /// Asserts that all events belong to one incident, and returns its id.
    fn one_incident(events: &[IncidentEvent]) -> String {
        let id = events[0].incident_id.clone();
        assert!(events.iter().all(|e| e.incident_id == id), "{events:#?}");
        id
    }

    /// A container running without a healthcheck that the restart policy
    /// restarts at `restarts` (seconds), looked at every `every` seconds
    /// from 0 to `until`.
    fn restarting(restarts: &[u64], every: u64, until: u64) -> Vec<Step> {
        (0..=until / every)
            .map(|i| {
                let at = i * every;
                let count = restarts.iter().filter(|&&r| r <= at).count() as u64;
                (at, A, count, "running", "")
            })
            .collect()
    }

    #[test]
    fn a_restart_every_30_s_for_an_hour_is_one_crash_loop() {
        let restarts: Vec<u64> = (1..=120).map(|i| i * 30).collect();
        let steps = restarting(&restarts, 10, HOUR);
        let events = check(Policy::default(), steps.clone());
        assert_eq!(
            brief(&events),
            [(30, Opened, Restarted), (90, Escalated, CrashLoop)],
            "no reminder within the hour at 4 h"
        );
        assert_eq!(events[1].restarts_in_window, 3);
        one_incident(&events);

        let policy = Policy {
            remind: Some(Duration::from_secs(20 * MIN)),
            ..Policy::default()
        };
        let events = check(policy, steps);
        assert_eq!(
            brief(&events),
            [
                (30, Opened, Restarted),
                (90, Escalated, CrashLoop),
                (20 * MIN + 30, Reminder, CrashLoop),
                (40 * MIN + 30, Reminder, CrashLoop),
            ],
            "a reminder at the first look at or after each due time"
        );
        assert_eq!(
            events[3].restarts_in_window, 81,
            "the count is not a sliding window"
        );
        one_incident(&events);
    }

    #[test]
    fn a_flapping_healthcheck_is_one_incident() {
        // Unhealthy and healthy looks alternate every 10 s for 30 minutes,
        // then the healthcheck settles.
        let steps = (0..200).map(|i| {
            let health = if i < 180 && i % 2 == 0 {
                "unhealthy"
            } else {
                "healthy"
            };
            (i * 10, A, 0, "running", health)
        });
        let events = check(Policy::default(), steps);
        assert_eq!(
            brief(&events),
            [(0, Opened, Unhealthy), (1820, Resolved, Unhealthy)],
            "resolved 30 s after the last healthy streak began (1790 s)"
        );
        one_incident(&events);
    }

    #[test]
    fn a_stop_and_a_clean_start_open_then_resolve() {
        let steps = [
            (0, A, 0, "running", ""),
            (15, A, 0, "exited", ""),
            (30, A, 0, "exited", ""),
            (45, A, 0, "running", ""),
            (60, A, 0, "running", ""),
            (75, A, 0, "running", ""),
            (90, A, 0, "running", ""),
        ];
        let events = check(Policy::default(), steps);
        assert_eq!(
            brief(&events),
            [(15, Opened, NotRunning), (75, Resolved, NotRunning)]
        );
        assert_eq!(secs(events[1].started_at), 15);
        one_incident(&events);
    }

    #[test]
    fn a_restart_of_rtinspect_keeps_the_incident() {
        let mut before = Tracker::new(Policy::default());
        let first = feed(
            &mut before,
            [
                (0, A, 0, "running", ""),
                (30, A, 1, "running", ""),
                (60, A, 2, "running", ""),
            ],
        );
        assert_eq!(brief(&first), [(30, Opened, Restarted)]);
        assert!(before.take_changed());
        // Through the bytes the state file holds.
        let json = serde_json::to_string(&before.saved()).unwrap();
        let saved: SavedIncidents = serde_json::from_str(&json).unwrap();
        assert_eq!(saved, before.saved());

        let mut after = Tracker::with_saved(Policy::default(), saved);
        assert!(!after.take_changed(), "loading is no change");
        assert_eq!(after.open_incidents(), 1);
        // The third restart happened while rtinspect was down.
        let mut steps = vec![(90, A, 3, "running", "")];
        steps.extend((1..=61).map(|i| (90 + i * 10, A, 3, "running", "")));
        let later = feed(&mut after, steps);
        assert_eq!(
            brief(&later),
            [(90, Escalated, CrashLoop), (690, Resolved, CrashLoop)],
            "no second opening; the count survived the restart"
        );
        assert_eq!(later[0].restarts_in_window, 3);
        for e in &later {
            assert_eq!(e.incident_id, first[0].incident_id);
            assert_eq!(e.started_at, t(30));
        }
    }

    #[test]
    fn the_restart_policys_wait_is_a_restart_under_way_not_a_stop() {
        // Docker's `restarting` between a death and the next start, seen
        // by some looks and not others: one incident, one escalation.
        let steps = [
            (0, A, 0, "running", ""),
            (12, A, 1, "running", ""),
            (24, A, 2, "restarting", ""),
            (25, A, 2, "running", ""),
            (36, A, 3, "restarting", ""),
            (48, A, 4, "running", ""),
        ];
        let events = check(Policy::default(), steps);
        assert_eq!(
            brief(&events),
            [(12, Opened, Restarted), (36, Escalated, CrashLoop)]
        );
        // A container that stays exited is not running, as before.
        let events = check(
            Policy::default(),
            [(0, A, 0, "running", ""), (10, A, 0, "exited", "")],
        );
        assert_eq!(brief(&events), [(10, Opened, NotRunning)]);
    }

    #[test]
    fn a_start_no_restart_count_shows_counts_as_a_restart() {
        // `docker restart` (or a manager's API start) changes `StartedAt`
        // and resets `RestartCount`: a game flapping that way every minute
        // becomes a crash loop, not an incident a minute for ever.
        let mut tracker = Tracker::new(Policy::default());
        let mut events = Vec::new();
        for minute in 0..60u64 {
            let started = format!("2026-12-02T10:{minute:02}:00Z");
            for (s, status) in [(0, "running"), (40, "running"), (50, "exited")] {
                events.extend(tracker.look(&Look {
                    game_id: "g",
                    container_id: A,
                    restart_count: 0,
                    status,
                    health: "",
                    started_at: Some(&started),
                    at: t(minute * 60 + s),
                }));
            }
        }
        // Until the third start makes it a crash loop, each relapse after
        // a clean run of --recover-after is an incident of its own; then
        // one crash loop for the rest of the hour.
        assert_eq!(
            brief(&events),
            [
                (50, Opened, NotRunning),
                (100, Resolved, NotRunning),
                (110, Opened, NotRunning),
                (160, Resolved, NotRunning),
                (170, Opened, NotRunning),
                (180, Escalated, CrashLoop),
            ]
        );
    }

    #[test]
    fn a_replaced_container_keeps_the_incident_and_counts_as_a_restart() {
        // A replacement alone is a deploy, no incident; three within the
        // window are a crash loop.
        let steps = [
            (0, A, 0, "running", ""),
            (10, B, 0, "running", ""),
            (20, C, 0, "running", ""),
            (30, D, 0, "running", ""),
        ];
        let events = check(Policy::default(), steps);
        assert_eq!(brief(&events), [(30, Opened, CrashLoop)]);
        assert_eq!(
            (
                events[0].container_id.as_str(),
                events[0].restarts_in_window
            ),
            (D, 3)
        );
        one_incident(&events);

        // A stopped container replaced by another that is stopped too is the
        // same incident, resolved by the new one running.
        let steps = [
            (0, A, 4, "exited", ""),
            (10, B, 0, "exited", ""),
            (20, B, 0, "running", ""),
            (50, B, 0, "running", ""),
        ];
        let events = check(Policy::default(), steps);
        assert_eq!(
            brief(&events),
            [(0, Opened, NotRunning), (50, Resolved, NotRunning)]
        );
        assert_eq!(events[1].container_id, B);
        assert_eq!(events[1].restarts_in_window, 1);
        one_incident(&events);
    }

    #[test]
    fn restarts_spaced_by_a_back_off_stay_a_crash_loop() {
        // Restarts 4 to 8 minutes apart: never three within any 10 minutes
        // of a sliding window, and never 10 minutes clean either.
        let gaps = [4, 6, 8, 5, 7, 4, 8, 6, 5, 7];
        let restarts: Vec<u64> = gaps
            .iter()
            .scan(0, |at, gap| {
                *at += gap * MIN;
                Some(*at)
            })
            .collect();
        let last = *restarts.last().unwrap();
        let events = check(
            Policy::default(),
            restarting(&restarts, 10, last + 15 * MIN),
        );
        let (r1, r2, r3) = (restarts[0], restarts[1], restarts[2]);
        assert_eq!(
            brief(&events),
            [
                (r1, Opened, Restarted),
                (r1 + 30, Resolved, Restarted),
                (r2, Opened, Restarted),
                (r2 + 30, Resolved, Restarted),
                (r3, Opened, CrashLoop),
                (last + 10 * MIN, Resolved, CrashLoop),
            ],
            "one crash loop from the third restart until 10 minutes clean"
        );
        assert_eq!(events[4].restarts_in_window, 3);
        assert_eq!(events[5].restarts_in_window, 0, "cleared as it resolved");
        assert_eq!(events[4].incident_id, events[5].incident_id);
    }

    fn oom_then(tracker: &mut Tracker, oom_at: u64, steps: Vec<Step>) -> Vec<IncidentEvent> {
        tracker.oom("g", t(oom_at));
        feed(tracker, steps)
    }

    #[test]
    fn an_oom_event_marks_the_incident_that_opens_after_it() {
        let mut tracker = Tracker::new(Policy::default());
        feed(&mut tracker, [(0, A, 0, "running", "healthy")]);
        let events = oom_then(
            &mut tracker,
            100,
            vec![
                (105, A, 0, "running", "unhealthy"),
                (110, A, 0, "exited", ""),
                (120, A, 0, "running", "healthy"),
                (150, A, 0, "running", "healthy"),
            ],
        );
        assert_eq!(
            brief(&events),
            [
                (105, Opened, Unhealthy),
                (110, Escalated, NotRunning),
                (150, Resolved, NotRunning)
            ]
        );
        assert!(events.iter().all(|e| e.oom), "{events:#?}");

        // The next incident is a new one, without the OOM.
        let events = feed(&mut tracker, [(200, A, 0, "exited", "")]);
        assert_eq!(brief(&events), [(200, Opened, NotRunning)]);
        assert!(!events[0].oom);

        // An OOM during an open incident marks its later events.
        let events = oom_then(&mut tracker, 210, vec![(220, A, 0, "exited", "")]);
        assert!(events.is_empty());
        let events = feed(
            &mut tracker,
            [(230, A, 0, "running", ""), (260, A, 0, "running", "")],
        );
        assert_eq!(brief(&events), [(260, Resolved, NotRunning)]);
        assert!(events[0].oom);
    }

    #[test]
    fn an_oom_event_waits_a_minute_for_its_incident() {
        let table: &[(u64, bool)] = &[(0, true), (60, true), (61, false)];
        for &(late, oom) in table {
            let mut tracker = Tracker::new(Policy::default());
            feed(&mut tracker, [(0, A, 0, "running", "")]);
            let events = oom_then(
                &mut tracker,
                100,
                vec![
                    (100 + late / 2, A, 0, "running", ""),
                    (100 + late, A, 0, "exited", ""),
                ],
            );
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].oom, oom, "look {late} s after the oom");
        }
    }

    #[test]
    fn an_oom_mark_survives_a_restart_of_rtinspect() {
        let mut before = Tracker::new(Policy::default());
        before.oom("g", t(0));
        let mut after = Tracker::with_saved(Policy::default(), before.saved());
        let events = feed(&mut after, [(5, A, 0, "exited", "")]);
        assert!(events[0].oom);
    }

    #[test]
    fn a_forgotten_game_emits_nothing_and_opens_afresh() {
        let mut tracker = Tracker::new(Policy::default());
        let first = feed(&mut tracker, [(0, A, 0, "exited", "")]);
        assert_eq!(brief(&first), [(0, Opened, NotRunning)]);
        tracker.take_changed();

        tracker.retain_games(&HashSet::from(["g", "other"]));
        assert!(!tracker.take_changed(), "a game still listed is kept");
        tracker.retain_games(&HashSet::new());
        assert!(tracker.take_changed());
        assert!(tracker.saved().is_empty());
        assert_eq!(tracker.open_incidents(), 0);

        // Its next look only seeds the restart count, and opens a new incident.
        let events = feed(&mut tracker, [(10, B, 9, "exited", "")]);
        assert_eq!(brief(&events), [(10, Opened, NotRunning)]);
        assert_eq!(events[0].restarts_in_window, 0);
        assert_eq!(events[0].started_at, t(10));
        assert_ne!(events[0].incident_id, first[0].incident_id);
    }

    #[test]
    fn rules_table() {
        // (looks, expected events): the rules one by one.
        let table: &[Case] = &[
            // The first look only seeds the restart count...
            (&[(0, A, 7, "running", "")], &[]),
            (&[(0, A, 7, "running", "healthy")], &[]),
            // ...and still opens on status and health.
            (&[(0, A, 0, "exited", "")], &[(0, Opened, NotRunning)]),
            (&[(0, A, 0, "paused", "")], &[(0, Opened, NotRunning)]),
            // The restart policy's wait: a restart under way, counted when
            // the count shows it.
            (&[(0, A, 0, "restarting", "")], &[]),
            (
                &[(0, A, 0, "running", ""), (10, A, 1, "restarting", "")],
                &[(10, Opened, Restarted)],
            ),
            (
                &[(0, A, 0, "running", "unhealthy")],
                &[(0, Opened, Unhealthy)],
            ),
            (
                &[(0, A, 0, "exited", "unhealthy")],
                &[(0, Opened, NotRunning)],
            ),
            // A healthcheck still starting is no incident.
            (&[(0, A, 0, "running", "starting")], &[]),
            // A lower RestartCount (a manual start) re-seeds.
            (
                &[
                    (0, A, 5, "running", ""),
                    (10, A, 0, "running", ""),
                    (20, A, 1, "running", ""),
                ],
                &[(20, Opened, Restarted)],
            ),
            // A jump of restarts between two looks is a crash loop at once.
            (
                &[(0, A, 0, "running", ""), (10, A, 5, "running", "")],
                &[(10, Opened, CrashLoop)],
            ),
            // Worse kinds escalate, in order...
            (
                &[
                    (0, A, 0, "running", ""),
                    (10, A, 1, "running", ""),
                    (20, A, 1, "running", "unhealthy"),
                    (30, A, 1, "exited", ""),
                    (40, A, 3, "exited", ""),
                ],
                &[
                    (10, Opened, Restarted),
                    (20, Escalated, Unhealthy),
                    (30, Escalated, NotRunning),
                    (40, Escalated, CrashLoop),
                ],
            ),
            // ...and milder looks change nothing.
            (
                &[
                    (0, A, 0, "exited", ""),
                    (10, A, 0, "running", "unhealthy"),
                    (20, A, 1, "running", "starting"),
                    (30, A, 1, "exited", ""),
                ],
                &[(0, Opened, NotRunning)],
            ),
            // A restart while running fine resolves after 30 s clean.
            (
                &[
                    (0, A, 0, "running", ""),
                    (15, A, 1, "running", ""),
                    (30, A, 1, "running", ""),
                    (45, A, 1, "running", ""),
                ],
                &[(15, Opened, Restarted), (45, Resolved, Restarted)],
            ),
            // A healthcheck still starting is not clean: the streak waits.
            (
                &[
                    (0, A, 0, "running", "unhealthy"),
                    (10, A, 0, "running", "healthy"),
                    (20, A, 0, "running", "starting"),
                    (30, A, 0, "running", "healthy"),
                    (50, A, 0, "running", "healthy"),
                    (60, A, 0, "running", "healthy"),
                ],
                &[(0, Opened, Unhealthy), (60, Resolved, Unhealthy)],
            ),
            // A restart ends the streak, even one that runs healthy at once.
            (
                &[
                    (0, A, 0, "exited", ""),
                    (10, A, 0, "running", ""),
                    (40, A, 1, "running", ""),
                    (60, A, 1, "running", ""),
                    (70, A, 1, "running", ""),
                ],
                &[(0, Opened, NotRunning), (70, Resolved, NotRunning)],
            ),
            // A clock that went back does not resolve early.
            (
                &[
                    (100, A, 0, "exited", ""),
                    (110, A, 0, "running", ""),
                    (50, A, 0, "running", ""),
                    (139, A, 0, "running", ""),
                ],
                &[(100, Opened, NotRunning)],
            ),
        ];
        for (steps, expected) in table {
            let events = check(Policy::default(), steps.iter().copied());
            assert_eq!(&brief(&events), expected, "looks {steps:?}");
        }
    }

    #[test]
    fn the_crash_loop_count_is_cleared_only_after_the_window_clean() {
        let table: &[Case] = &[
            // Two restarts, 9 minutes clean, one more: still the same window.
            (
                &[
                    (0, A, 0, "running", ""),
                    (10, A, 2, "running", ""),
                    (40, A, 2, "running", ""),
                    (10 + 9 * MIN, A, 2, "running", ""),
                    (20 + 9 * MIN, A, 3, "running", ""),
                ],
                &[
                    (10, Opened, Restarted),
                    (40, Resolved, Restarted),
                    (20 + 9 * MIN, Opened, CrashLoop),
                ],
            ),
            // Two restarts, 10 minutes clean, one more: a new window.
            (
                &[
                    (0, A, 0, "running", ""),
                    (10, A, 2, "running", ""),
                    (40, A, 2, "running", ""),
                    (10 + 10 * MIN, A, 2, "running", ""),
                    (20 + 10 * MIN, A, 3, "running", ""),
                ],
                &[
                    (10, Opened, Restarted),
                    (40, Resolved, Restarted),
                    (20 + 10 * MIN, Opened, Restarted),
                ],
            ),
        ];
        for (steps, expected) in table {
            let events = check(Policy::default(), steps.iter().copied());
            assert_eq!(&brief(&events), expected, "looks {steps:?}");
        }
    }

    #[test]
    fn reminders_come_once_per_due_time_and_never_in_a_burst() {
        let open = [(0, A, 0, "exited", "")];
        // (policy's remind, later looks, the reminders)
        let table: &[(Option<u64>, &[u64], &[u64])] = &[
            (
                Some(4 * HOUR),
                &[HOUR, 4 * HOUR - 1, 4 * HOUR, 4 * HOUR + 10],
                &[4 * HOUR],
            ),
            // A look 13 h later: one reminder, and the next at 16 h.
            (
                Some(4 * HOUR),
                &[HOUR, 13 * HOUR, 16 * HOUR - 1, 16 * HOUR],
                &[13 * HOUR, 16 * HOUR],
            ),
            (None, &[HOUR, 13 * HOUR, 16 * HOUR], &[]),
            (Some(0), &[HOUR, 13 * HOUR], &[]),
        ];
        for (remind, looks, reminders) in table {
            let policy = Policy {
                remind: remind.map(Duration::from_secs),
                ..Policy::default()
            };
            let steps = open
                .iter()
                .copied()
                .chain(looks.iter().map(|&at| (at, A, 0, "exited", "")));
            let events = check(policy, steps);
            let got: Vec<u64> = events
                .iter()
                .filter(|e| e.change == Reminder)
                .map(|e| secs(e.at))
                .collect();
            assert_eq!(&got, reminders, "remind {remind:?}, looks {looks:?}");
        }
    }

    #[test]
    fn an_escalation_stands_for_a_reminder_due_at_the_same_look() {
        let policy = Policy {
            remind: Some(Duration::from_secs(HOUR)),
            ..Policy::default()
        };
        let steps = [
            (0, A, 0, "running", "unhealthy"),
            (HOUR, A, 0, "exited", ""),
            (HOUR + 10, A, 0, "exited", ""),
            (2 * HOUR, A, 0, "exited", ""),
        ];
        assert_eq!(
            brief(&check(policy, steps)),
            [
                (0, Opened, Unhealthy),
                (HOUR, Escalated, NotRunning),
                (2 * HOUR, Reminder, NotRunning)
            ]
        );
    }

    #[test]
    fn an_incident_id_is_a_uuid_v7_of_the_opening() {
        let events = check(Policy::default(), [(0, A, 0, "exited", "")]);
        let id = uuid::Uuid::parse_str(&events[0].incident_id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (s, ns) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(UNIX_EPOCH + Duration::new(s, ns), t(0));
    }

    #[test]
    fn only_real_changes_need_saving() {
        let mut tracker = Tracker::new(Policy::default());
        assert!(!tracker.take_changed());
        feed(&mut tracker, [(0, A, 0, "running", "")]);
        assert!(tracker.take_changed(), "the first look seeds");
        assert!(!tracker.take_changed());
        feed(
            &mut tracker,
            (1..100).map(|i| (i * 10, A, 0, "running", "")),
        );
        assert!(!tracker.take_changed(), "a steady container writes nothing");
        feed(&mut tracker, [(1000, A, 0, "running", "starting")]);
        assert!(!tracker.take_changed(), "a streak is not saved");
        feed(&mut tracker, [(1010, A, 0, "exited", "")]);
        assert!(tracker.take_changed(), "an incident opened");
        feed(&mut tracker, [(1020, A, 0, "exited", "")]);
        assert!(!tracker.take_changed());
        tracker.oom("g", t(1030));
        assert!(tracker.take_changed());
        tracker.oom("g", t(1040));
        assert!(!tracker.take_changed(), "already marked");
    }

    #[test]
    fn names_table() {
        let kinds = [
            (Restarted, "restarted"),
            (Unhealthy, "unhealthy"),
            (NotRunning, "not_running"),
            (CrashLoop, "crash_loop"),
        ];
        for (kind, name) in kinds {
            assert_eq!(kind.as_str(), name);
            let saved = serde_json::to_string(&SavedKind::from(kind)).unwrap();
            assert_eq!(saved, format!("\"{name}\""), "the file uses the same names");
        }
        assert!(Restarted < Unhealthy && Unhealthy < NotRunning && NotRunning < CrashLoop);
        let changes = [
            (Opened, "incident_opened"),
            (Escalated, "incident_escalated"),
            (Reminder, "incident_reminder"),
            (Resolved, "incident_resolved"),
        ];
        for (change, name) in changes {
            assert_eq!(change.event_type(), name);
        }
    }
}
