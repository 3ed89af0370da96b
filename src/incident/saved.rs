//! The tracker's memory as `incidents.json` holds it: plain serde types,
//! versioned by `state`, apart from the domain types of the tracker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::change::Kind;
use super::game::{GameState, Incident, RESTARTS_SHOWN_FOR};
use super::{Policy, Stamp, Tracker};
use crate::ending::EndReason;

impl Tracker {
    /// A tracker that goes on from the state saved by an earlier process,
    /// loaded at `now`.
    ///
    /// The saved times are wall-clock times, and the wall clock may have
    /// stepped since: each is taken as that long before `now` on the
    /// monotonic clock, and one in the future counts from `now` (a clean run
    /// starts again, a gone game is gone from now); a reminder is due at
    /// most one period from now. None of them can resolve, remind or close
    /// anything before a look says so.
    pub(crate) fn with_saved(policy: Policy, saved: SavedIncidents, now: Stamp) -> Tracker {
        let mono = |ms: u64| to_mono(from_ms(ms), now);
        let games = saved
            .games
            .into_iter()
            .map(|(game, s)| {
                let incident = s.incident.map(|i| {
                    let started_at = i
                        .started_at_us
                        .map(from_us)
                        .unwrap_or_else(|| from_ms(i.started_at_ms.unwrap_or(0)))
                        .min(now.wall);
                    let every = policy.remind_every();
                    // Reminders turned on since the save start from the opening.
                    let next_reminder = match (every, i.next_reminder_ms) {
                        (None, _) => None,
                        (Some(every), Some(due)) => mono_due(from_ms(due), every, now),
                        (Some(every), None) => {
                            let opened = to_mono(started_at, now);
                            opened
                                .checked_add(every)
                                .map(|due| due.min(now.mono + every))
                        }
                    };
                    Incident {
                        id: i.id,
                        kind: i.kind.into(),
                        started_at,
                        oom: i.oom,
                        reason: i
                            .reason
                            .as_deref()
                            .and_then(|r| EndReason::from_name(r, i.exit_code)),
                        next_reminder,
                    }
                });
                let state = GameState {
                    last: s.container_id.map(|c| (c, s.restart_count)),
                    started: s.started_at,
                    restarts: s.restarts_in_window,
                    restarted_at: s.restarted_at_ms.into_iter().map(mono).collect(),
                    clean_since: s.clean_since_ms.map(mono),
                    incident,
                    oom_at: s.oom_at_ms.map(mono),
                    awaiting_start: s.awaiting_start,
                    last_fine: s.last_fine,
                    stopped_by_api: s.stopped_by_api,
                    gone_since: s.gone_since_ms.map(mono),
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

    /// The state to persist, at `now`: every time on the wall clock.
    pub(crate) fn saved(&self, now: Stamp) -> SavedIncidents {
        let wall = |t: Instant| ms(to_wall(t, now));
        let games = self
            .games
            .iter()
            .map(|(game, s)| {
                let saved = SavedGame {
                    started_at: s.started.clone(),
                    clean_since_ms: s.saved_clean_since().map(wall),
                    container_id: s.last.as_ref().map(|(c, _)| c.clone()),
                    restart_count: s.last.as_ref().map_or(0, |(_, n)| *n),
                    restarts_in_window: s.restarts,
                    restarted_at_ms: s
                        .restarted_at
                        .iter()
                        .filter(|t| now.mono.saturating_duration_since(**t) < RESTARTS_SHOWN_FOR)
                        .map(|t| wall(*t))
                        .collect(),
                    incident: s.incident.as_ref().map(|i| SavedIncident {
                        id: i.id.clone(),
                        kind: i.kind.into(),
                        started_at_ms: Some(ms(i.started_at)),
                        started_at_us: Some(us(i.started_at)),
                        oom: i.oom,
                        reason: i.reason.map(|r| r.as_str().to_owned()),
                        exit_code: i.reason.and_then(EndReason::exit_code),
                        next_reminder_ms: i.next_reminder.map(wall),
                    }),
                    oom_at_ms: s.oom_at.map(wall),
                    awaiting_start: s.awaiting_start,
                    last_fine: s.last_fine,
                    stopped_by_api: s.stopped_by_api,
                    gone_since_ms: s.gone_since.map(wall),
                };
                (game.clone(), saved)
            })
            .collect();
        SavedIncidents { games }
    }
}

/// A saved wall-clock time as a monotonic one, judged at `now`: as long
/// before `now` as the wall clock says, and `now` when it says the future.
fn to_mono(t: SystemTime, now: Stamp) -> Instant {
    match now.wall.duration_since(t) {
        Ok(ago) => now.mono.checked_sub(ago).unwrap_or(now.mono),
        Err(_) => now.mono,
    }
}

/// A saved reminder's due time, at most one period from `now`: a due time
/// further off was saved by a clock that has gone back since.
fn mono_due(due: SystemTime, every: Duration, now: Stamp) -> Option<Instant> {
    match due.duration_since(now.wall) {
        Ok(ahead) => now.mono.checked_add(ahead.min(every)),
        Err(_) => Some(to_mono(due, now)),
    }
}

/// A monotonic time as the wall clock would tell it, judged at `now`.
fn to_wall(t: Instant, now: Stamp) -> SystemTime {
    if t <= now.mono {
        now.wall.checked_sub(now.mono - t).unwrap_or(UNIX_EPOCH)
    } else {
        now.wall + (t - now.mono)
    }
}

/// The persisted state (serde, versioned by state.rs).
///
/// Times are Unix milliseconds (an incident's opening also in
/// microseconds), on the wall clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedIncidents {
    pub(super) games: BTreeMap<String, SavedGame>,
}

impl SavedIncidents {
    #[cfg(test)]
    /// The number of games remembered.
    pub(crate) fn len(&self) -> usize {
        self.games.len()
    }

    #[cfg(test)]
    /// Whether no game is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        self.games.is_empty()
    }

    /// What `status` shows of a game remembered at `now`: its restarts in
    /// the last hour and its open incident, read only.
    pub(crate) fn game(&self, game_id: &str, now: SystemTime) -> Option<SavedView<'_>> {
        let s = self.games.get(game_id)?;
        let hour_ago = now.checked_sub(RESTARTS_SHOWN_FOR).map_or(0, ms);
        let last_hour = s.restarted_at_ms.iter().filter(|t| **t >= hour_ago).count();
        Some(SavedView {
            restarts_last_hour: u32::try_from(last_hour).unwrap_or(u32::MAX),
            incident: s.incident.as_ref().map(|i| OpenIncident {
                id: &i.id,
                kind: i.kind.into(),
                started_at: i
                    .started_at_us
                    .map(from_us)
                    .unwrap_or_else(|| from_ms(i.started_at_ms.unwrap_or(0))),
                reason: i.reason.as_deref(),
            }),
        })
    }
}

/// One game as the tracker remembers it, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SavedView<'a> {
    /// Restarts counted in the hour before the look.
    pub restarts_last_hour: u32,
    /// Its open incident.
    pub incident: Option<OpenIncident<'a>>,
}

/// An open incident as the tracker remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenIncident<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// When it opened, on the wall clock.
    pub started_at: SystemTime,
    /// How its container ended, as the tracker last knew it.
    pub(crate) reason: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedGame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) clean_since_ms: Option<u64>,
    #[serde(default)]
    restart_count: u64,
    #[serde(default)]
    pub(super) restarts_in_window: u32,
    /// When the restarts of the last hour were counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    restarted_at_ms: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) incident: Option<SavedIncident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oom_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    awaiting_start: bool,
    /// True unless said: a file of an earlier version does not say, and
    /// counting a deploy as a crash is the worse mistake.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    last_fine: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    stopped_by_api: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gone_since_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedIncident {
    id: String,
    kind: SavedKind,
    /// Milliseconds, for an earlier version that reads this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at_ms: Option<u64>,
    /// Microseconds, as the events say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at_us: Option<u64>,
    oom: bool,
    /// How the container last ended while it was open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// A crash's exit code, with `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_reminder_ms: Option<u64>,
}

/// [`Kind`] as written to the file, so that the domain type stays plain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SavedKind {
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

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}

fn ms(t: SystemTime) -> u64 {
    u64::try_from(since_epoch(t).as_millis()).unwrap_or(u64::MAX)
}

fn us(t: SystemTime) -> u64 {
    u64::try_from(since_epoch(t).as_micros()).unwrap_or(u64::MAX)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn from_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}
