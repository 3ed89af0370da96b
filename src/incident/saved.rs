//! The tracker's memory as `incidents.json` holds it: plain serde types,
//! versioned by `state`, apart from the domain types of the tracker.

use super::*;

impl Tracker {
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

fn ms(t: SystemTime) -> u64 {
    u64::try_from(elapsed(UNIX_EPOCH, t).as_millis()).unwrap_or(u64::MAX)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
