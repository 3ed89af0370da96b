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

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::inspector::restart_under_way;

mod saved;

pub use saved::SavedIncidents;

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

/// A moment as both clocks tell it: the wall clock for what is reported
/// (an event's time, an incident's opening), the monotonic clock for every
/// age, window and reminder, so that a step of the wall clock neither
/// resolves nor holds nor skips anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The wall clock.
    pub wall: SystemTime,
    /// The monotonic clock.
    pub mono: Instant,
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
    pub at: Stamp,
}

/// A change of an incident: the material of an `incident_*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentEvent {
    /// What happened.
    pub change: Change,
    /// The game the incident is about.
    pub game_id: String,
    /// The container of the look that made the change (for a game that
    /// left, the last container seen).
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
    /// A resolution because the game left the records, or its container has
    /// been gone (404) for `--recover-after`: no look stands behind it.
    pub removed: bool,
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Incident {
    id: String,
    kind: Kind,
    /// When it opened, on the wall clock: reported, never measured.
    started_at: SystemTime,
    oom: bool,
    /// When the next reminder is due; `None` when reminders are off.
    next_reminder: Option<Instant>,
}

/// What the tracker remembers of one game. Every time in it is on the
/// monotonic clock, turned into wall-clock time only to be saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GameState {
    /// The container and its `RestartCount` at the last look; `None` before the first.
    last: Option<(String, u64)>,
    /// The container's `State.StartedAt` at the last look, when known.
    started: Option<String>,
    /// Restarts since the container last ran clean for the crash-loop window.
    restarts: u32,
    /// When the current run of clean looks began. Saved while an incident is
    /// open or restarts are counted (so that `once`, a look per run, can
    /// resolve one and clear the count): a streak that starts and ends at
    /// every flap of a game with neither must not rewrite the state file.
    clean_since: Option<Instant>,
    incident: Option<Incident>,
    /// An `oom` event waiting for an incident to open.
    oom_at: Option<Instant>,
    /// A restart counted from a rise of `RestartCount` while the container
    /// was `restarting`: the start that ends the wait is that same restart,
    /// not another.
    awaiting_start: bool,
    /// Whether the last look saw the container as nothing that could crash:
    /// running and not unhealthy, or created and never started. Replacing
    /// such a container is a deploy, not a crash.
    last_fine: bool,
    /// Whether the last container was stopped or killed through Docker's API
    /// since it last started: its end is no crash, and replacing it no restart.
    stopped_by_api: bool,
    /// Since when the game has been gone: left the records, or its container
    /// answered 404. A look ends it.
    gone_since: Option<Instant>,
}

impl GameState {
    /// The clean run's start as saved (see `clean_since`).
    fn saved_clean_since(&self) -> Option<Instant> {
        self.clean_since
            .filter(|_| self.incident.is_some() || self.restarts > 0)
    }
}

/// The incidents of every game, and the memory of each game behind them.
#[derive(Debug, Clone)]
pub struct Tracker {
    policy: Policy,
    games: HashMap<String, GameState>,
    /// Whether the saved state changed since [`Tracker::take_changed`].
    changed: bool,
}

/// How long from `since` to `at` on the monotonic clock.
fn elapsed(since: Instant, at: Instant) -> Duration {
    at.saturating_duration_since(since)
}

/// A UUID v7 whose time part is `at`.
fn incident_id(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

/// The first due time of the grid `due + k * every` that is after `at`;
/// `None` past the end of time.
fn next_due(due: Instant, every: Duration, at: Instant) -> Option<Instant> {
    let missed = elapsed(due, at).as_nanos() / every.as_nanos();
    let steps = u32::try_from(missed + 1).ok()?;
    due.checked_add(every.checked_mul(steps)?)
}

/// The `removed` resolution of `game`'s incident when it has been gone for
/// `recover_after` at `at`.
fn resolve_gone(
    game_id: &str,
    game: &mut GameState,
    recover_after: Duration,
    at: Stamp,
) -> Option<IncidentEvent> {
    let since = game.gone_since?;
    if elapsed(since, at.mono) < recover_after {
        return None;
    }
    let incident = game.incident.take()?;
    Some(IncidentEvent {
        change: Change::Resolved,
        game_id: game_id.to_owned(),
        container_id: game
            .last
            .as_ref()
            .map(|(c, _)| c.clone())
            .unwrap_or_default(),
        incident_id: incident.id,
        kind: incident.kind,
        started_at: incident.started_at,
        restarts_in_window: game.restarts,
        oom: incident.oom,
        at: at.wall,
        removed: true,
    })
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

    /// Every successful inspect, tick or event; the changes it makes.
    ///
    /// A look counts restarts against the game's last look: the same
    /// container with a higher `RestartCount` restarted that many times
    /// (at most [`MAX_RESTARTS_PER_LOOK`]); a lower one re-seeds without a
    /// restart, because Docker resets it to 0 on a manual `docker start`; a
    /// `StartedAt` that changed without a rise is one (a manual or API
    /// start). A real restart counts once however many looks see it: Docker
    /// raises `RestartCount` when the container dies and waits, `restarting`,
    /// before it starts it again, and the start a look sees after that wait
    /// is the restart already counted. A new container id for the game is
    /// one restart only when the container it replaces ended by itself: not
    /// when it was last seen running and not unhealthy (or never started),
    /// nor when it was stopped or killed through Docker's API, nor when its
    /// death was counted already (`restarting`). The first look of a game
    /// only seeds; its status and health still count.
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
        let (at, now) = (look.at.wall, look.at.mono);
        // A lookup, not an entry: no allocation per look of a known game.
        if !self.games.contains_key(look.game_id) {
            self.games
                .insert(look.game_id.to_owned(), GameState::default());
        }
        let Some(game) = self.games.get_mut(look.game_id) else {
            return Vec::new();
        };
        let mut changed = false;
        let saved_clean_since = game.saved_clean_since();
        changed |= game.gone_since.take().is_some();

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
        let restarting = restart_under_way(look.status);
        let was_awaiting = game.awaiting_start;
        let mut replaced = false;
        let restarted = match &mut game.last {
            None => {
                game.last = Some((look.container_id.to_owned(), look.restart_count));
                changed = true;
                game.awaiting_start = false;
                0
            }
            Some((container, count)) if container == look.container_id => {
                let rise = look.restart_count.saturating_sub(*count);
                changed |= *count != look.restart_count;
                *count = look.restart_count;
                // A start seen after the wait of a restart already counted
                // is that restart; one no rise and no wait explains is a
                // manual or API start.
                let manual = started_again && !was_awaiting && rise == 0;
                game.awaiting_start = restarting && (rise > 0 || (was_awaiting && !started_again));
                if rise > 0 || started_again {
                    // A new run: whatever stopped the last one is history.
                    game.stopped_by_api = false;
                }
                rise.min(MAX_RESTARTS_PER_LOOK).max(u64::from(manual))
            }
            Some((container, count)) => {
                // A replacement counts when the container it replaces ended
                // by itself and that end was not counted already; either way
                // it opens nothing by itself: a deploy is no incident.
                let crashed = !game.last_fine && !game.stopped_by_api && !was_awaiting;
                container.clear();
                container.push_str(look.container_id);
                *count = look.restart_count;
                game.awaiting_start = false;
                game.stopped_by_api = false;
                changed = true;
                replaced = true;
                u64::from(crashed)
            }
        };
        changed |= game.awaiting_start != was_awaiting;
        if restarted > 0 {
            // At most 64: the cast cannot truncate.
            game.restarts = game.restarts.saturating_add(restarted as u32);
            changed = true;
        }
        if let Some(oom_at) = game.oom_at
            && elapsed(oom_at, now) > OOM_GRACE
        {
            game.oom_at = None;
            changed = true;
        }

        let running = look.status == "running";
        // Docker's health states are starting, healthy and unhealthy; `""`
        // means the container has no healthcheck.
        let healthy = running && matches!(look.health, "" | "healthy");
        let fine = (running && look.health != "unhealthy") || look.status == "created";
        changed |= game.last_fine != fine;
        game.last_fine = fine;
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
        if !running && !restarting {
            kind = kind.max(Some(Kind::NotRunning));
        }

        // How long the container has run clean, judged at a later look than
        // the one that began the streak.
        let clean_for = match game.clean_since {
            Some(since) if healthy && restarted == 0 => Some(elapsed(since, now)),
            _ => None,
        };
        game.clean_since = match (healthy, restarted) {
            (false, _) => None,
            (true, 0) => game.clean_since.or(Some(now)),
            (true, _) => Some(now),
        };
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
            removed: false,
        };
        match (&mut game.incident, kind) {
            (None, None) => {}
            (None, Some(kind)) => {
                let incident = Incident {
                    id: incident_id(at),
                    kind,
                    started_at: at,
                    oom: game.oom_at.take().is_some(),
                    next_reminder: policy.remind_every().and_then(|r| now.checked_add(r)),
                };
                events.push(event(Change::Opened, &incident, game.restarts));
                game.incident = Some(incident);
                changed = true;
            }
            (Some(incident), Some(kind)) if kind > incident.kind => {
                incident.kind = kind;
                // The escalation stands for a reminder due at the same look.
                if let Some(due) = incident.next_reminder
                    && now >= due
                {
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, now));
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
                    && now >= due
                {
                    // One reminder per due time, and one only after a long
                    // gap between looks: the missed due times are skipped.
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, now));
                    if policy.remind_every().is_some() {
                        events.push(event(Change::Reminder, incident, game.restarts));
                    }
                    changed = true;
                }
            }
        }
        changed |= game.saved_clean_since() != saved_clean_since;
        self.changed |= changed;
        events
    }

    /// An `oom` event of the game's container, taken at `now`.
    ///
    /// It marks the open incident, or else the next one to open within
    /// [`OOM_GRACE`]: the OOM kill shows in `State.OOMKilled` only until the
    /// container starts again, and a look may come too late to see it.
    pub fn oom(&mut self, game_id: &str, now: Instant) {
        let game = self.games.entry(game_id.to_owned()).or_default();
        match &mut game.incident {
            Some(incident) if incident.oom => {}
            Some(incident) => {
                incident.oom = true;
                self.changed = true;
            }
            None => {
                game.oom_at = Some(now);
                self.changed = true;
            }
        }
    }

    /// A `stop` or `kill` of `container_id` through Docker's API (`docker
    /// stop`, `docker kill`, `docker rm -f`, a deploy tool's): that
    /// container's end is no crash, so replacing it counts no restart. The
    /// game is `game_id` when known, else whichever game's last container it
    /// is.
    pub fn stopped_by_api(&mut self, game_id: Option<&str>, container_id: &str) {
        let is_last = |g: &GameState| g.last.as_ref().is_some_and(|(c, _)| c == container_id);
        let game = match game_id {
            Some(id) => self.games.get_mut(id).filter(|g| is_last(g)),
            None => self.games.values_mut().find(|g| is_last(g)),
        };
        if let Some(game) = game
            && !game.stopped_by_api
        {
            game.stopped_by_api = true;
            self.changed = true;
        }
    }

    /// A fresh record list, listed at `at`: the games not in it are gone
    /// from then on. Returns the resolutions, as `removed`, of games gone
    /// for `--recover-after` or longer; a game gone for the crash-loop
    /// window too is forgotten.
    pub fn listed(&mut self, games: &HashSet<&str>, at: Stamp) -> Vec<IncidentEvent> {
        for (game_id, game) in &mut self.games {
            if !games.contains(game_id.as_str()) && game.gone_since.is_none() {
                game.gone_since = Some(at.mono);
                self.changed = true;
            }
        }
        let events = self.gone_too_long(at, None);
        // Forgotten once nothing it remembers can matter: its incident is
        // closed and its restart count would have been cleared by now.
        let forget_after = self.policy.crash_loop_window.max(self.policy.recover_after);
        let before = self.games.len();
        self.games.retain(|game_id, g| {
            games.contains(game_id.as_str())
                || g.gone_since
                    .is_none_or(|since| elapsed(since, at.mono) < forget_after)
        });
        self.changed |= self.games.len() != before;
        events
    }

    /// The container of a listed game answered 404 at `at`: it is gone from
    /// then on, until a look sees one again. Returns the resolution when it
    /// has been gone too long.
    pub fn missing(&mut self, game_id: &str, at: Stamp) -> Vec<IncidentEvent> {
        let Some(game) = self.games.get_mut(game_id) else {
            return Vec::new();
        };
        if game.gone_since.is_none() {
            game.gone_since = Some(at.mono);
            self.changed = true;
        }
        self.gone_too_long(at, Some(game_id))
    }

    /// Resolves, as `removed`, the incident of every game gone for at least
    /// `--recover-after` (of `only` that game: a 404 costs no walk over
    /// every game). A game that comes back sooner goes on with its
    /// incident; one that comes back later, within the crash-loop window,
    /// still has its restart count.
    fn gone_too_long(&mut self, at: Stamp, only: Option<&str>) -> Vec<IncidentEvent> {
        let recover_after = self.policy.recover_after;
        let mut events: Vec<IncidentEvent> = match only {
            Some(id) => self
                .games
                .get_mut(id)
                .and_then(|game| resolve_gone(id, game, recover_after, at))
                .into_iter()
                .collect(),
            None => self
                .games
                .iter_mut()
                .filter_map(|(id, game)| resolve_gone(id, game, recover_after, at))
                .collect(),
        };
        self.changed |= !events.is_empty();
        // The order of a map is no order: by game, so that runs agree.
        events.sort_by(|a, b| a.game_id.cmp(&b.game_id));
        events
    }

    /// Whether the state changed since the last call (so it needs saving).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The number of incidents open now.
    pub fn open_incidents(&self) -> usize {
        self.games.values().filter(|g| g.incident.is_some()).count()
    }
}

#[cfg(test)]
mod tests;
