//! What every game looks like now, as `rtinspect status`, the status page
//! and `/status.json` show it: one row per game, from one look at its
//! container and what the incident tracker remembers of it, worst first.
//!
//! This part is pure: the looks, the tracker's memory and the time come in,
//! a [`Board`] comes out, and its renderings (`table` for a terminal, `html`
//! for the page, [`Board::json`] for scripts) are functions of it. The
//! looking itself is `commands/status.rs` (the command) and `status/live.rs`
//! (the daemon's latest looks, which the listener reads).
//!
//! A row's standing is the worst that holds of: the open incident's kind
//! (an incident is never lowered until it resolves), what Docker says now
//! (`not running` unless `running` or `restarting`, `unhealthy`, a container
//! `restarting`), and `restarted` while the tracker still counts restarts
//! (until the container has run clean for `--crash-loop-window`). A record
//! whose container is gone (404) is not running; one that could not be
//! looked at is `unknown`.

pub(crate) mod html;
pub(crate) mod live;
pub(crate) mod table;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::event::rfc3339_micros;
use crate::incident::{Kind, SavedIncidents};
use crate::text::push_json_str;

/// What one look at a game's container found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Docker answered: the container as it is now.
    Container {
        /// The full id Docker answered with.
        container_id: String,
        /// `State.Status`.
        state: String,
        /// `State.Health.Status`, `""` without a healthcheck.
        health: String,
    },
    /// 404: the record's container is gone.
    Missing,
    /// The look failed, and why.
    Failed(String),
    /// The record is not valid, and why; no request was made.
    Invalid(String),
}

/// One look at a game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Look {
    /// The game.
    pub(crate) game_id: String,
    /// The record's container, as the record names it.
    pub(crate) container_ref: String,
    /// What the look found.
    pub(crate) seen: Seen,
}

/// What the incident tracker remembers of a game.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tracked {
    /// Restarts counted since the container last ran clean for the
    /// crash-loop window.
    pub(crate) restarts: u32,
    /// The open incident.
    pub(crate) incident: Option<Incident>,
}

/// An open incident, as a row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incident {
    /// Its id.
    pub(crate) id: String,
    /// Its kind.
    pub(crate) kind: Kind,
    /// When it opened.
    pub(crate) since: SystemTime,
    /// Why the container ended, when the tracker knows it (`stopped`,
    /// `oom`, `crashed`, `exited`, `unknown`).
    pub(crate) reason: Option<String>,
}

/// The tracker's memory of every game it knows, as saved
/// (`incidents.json`, or the running tracker's own).
pub(crate) type TrackerMemory = SavedIncidents;

/// What the tracker remembers of `game_id`: nothing yet when it never
/// looked at it.
fn tracked(memory: &TrackerMemory, game_id: &str, at: SystemTime) -> Tracked {
    let Some(g) = memory.game(game_id, at) else {
        return Tracked::default();
    };
    Tracked {
        restarts: g.restarts_last_hour,
        incident: g.incident.map(|i| Incident {
            id: i.id.to_owned(),
            kind: i.kind,
            since: i.started_at,
            reason: i.reason.map(str::to_owned),
        }),
    }
}

/// How a game stands, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Standing {
    /// Running, healthy or without a healthcheck, no restart counted.
    Healthy,
    /// It could not be looked at.
    Unknown,
    /// Restarted within the last hour, or restarting now.
    Restarted,
    /// Its healthcheck says `unhealthy`.
    Unhealthy,
    /// Not running, or its container is gone.
    NotRunning,
    /// An open crash-loop incident.
    CrashLoop,
}

/// Every standing, worst first: the order of rows and of the summary.
pub(crate) const STANDINGS: [Standing; 6] = [
    Standing::CrashLoop,
    Standing::NotRunning,
    Standing::Unhealthy,
    Standing::Restarted,
    Standing::Unknown,
    Standing::Healthy,
];

impl Standing {
    /// Its name in JSON: the incident kinds' names, `healthy` and `unknown`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Standing::CrashLoop => "crash_loop",
            Standing::NotRunning => "not_running",
            Standing::Unhealthy => "unhealthy",
            Standing::Restarted => "restarted",
            Standing::Unknown => "unknown",
            Standing::Healthy => "healthy",
        }
    }

    /// Its name in words.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Standing::CrashLoop => "crash loop",
            Standing::NotRunning => "not running",
            Standing::Unhealthy => "unhealthy",
            Standing::Restarted => "restarted",
            Standing::Unknown => "unknown",
            Standing::Healthy => "healthy",
        }
    }

    /// Whether a game standing so is in trouble.
    pub(crate) fn is_trouble(self) -> bool {
        !matches!(self, Standing::Healthy | Standing::Unknown)
    }

    fn of_kind(kind: Kind) -> Standing {
        match kind {
            Kind::Restarted => Standing::Restarted,
            Kind::Unhealthy => Standing::Unhealthy,
            Kind::NotRunning => Standing::NotRunning,
            Kind::CrashLoop => Standing::CrashLoop,
        }
    }
}

/// One game's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// How it stands.
    pub(crate) standing: Standing,
    /// The game.
    pub(crate) game_id: String,
    /// The container: Docker's full id, or the record's reference when
    /// Docker did not answer with one.
    pub(crate) container_id: String,
    /// `State.Status`; `missing` (404), `unknown` (the look failed) or
    /// `invalid` (a record that is not valid).
    pub(crate) state: String,
    /// `State.Health.Status`, `""` without a healthcheck.
    pub(crate) health: String,
    /// Restarts the tracker counted in the last hour; `None` without a
    /// tracker.
    pub(crate) restarts: Option<u32>,
    /// The open incident.
    pub(crate) incident: Option<Incident>,
    /// Until when its incidents are silenced.
    pub(crate) silenced_until: Option<SystemTime>,
    /// Why it could not be looked at.
    pub(crate) note: Option<String>,
}

impl Row {
    /// The row of one look, with what the tracker remembers of the game
    /// (`memory` is `None` when there is no tracker).
    fn new(
        look: Look,
        memory: Option<&TrackerMemory>,
        at: SystemTime,
        silenced_until: Option<SystemTime>,
    ) -> Row {
        let tracked = memory.map(|m| tracked(m, &look.game_id, at));
        let (container_id, state, health, seen, note) = match look.seen {
            Seen::Container {
                container_id,
                state,
                health,
            } => {
                let seen = match (state.as_str(), health.as_str()) {
                    ("running", "unhealthy") => Standing::Unhealthy,
                    ("running", _) => Standing::Healthy,
                    ("restarting", _) => Standing::Restarted,
                    _ => Standing::NotRunning,
                };
                (container_id, state, health, seen, None)
            }
            Seen::Missing => (
                look.container_ref,
                "missing".to_owned(),
                String::new(),
                Standing::NotRunning,
                Some("no such container".to_owned()),
            ),
            Seen::Failed(why) => (
                look.container_ref,
                "unknown".to_owned(),
                String::new(),
                Standing::Unknown,
                Some(why),
            ),
            Seen::Invalid(why) => (
                look.container_ref,
                "invalid".to_owned(),
                String::new(),
                Standing::Unknown,
                Some(why),
            ),
        };
        let incident = tracked.as_ref().and_then(|t| t.incident.clone());
        let restarted = tracked
            .as_ref()
            .is_some_and(|t| t.restarts > 0)
            .then_some(Standing::Restarted);
        let standing = [
            Some(seen),
            incident.as_ref().map(|i| Standing::of_kind(i.kind)),
            restarted,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(seen);
        Row {
            standing,
            game_id: look.game_id,
            container_id,
            state,
            health,
            restarts: tracked.map(|t| t.restarts),
            incident,
            silenced_until,
            note,
        }
    }
}

/// Every game on a host at one moment, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Board {
    /// The host, as `--host-id` or the hostname names it.
    pub(crate) host: String,
    /// When the looks were made (the latest of them).
    pub(crate) at: SystemTime,
    /// The rows, worst first, the oldest incident first within a standing.
    pub(crate) rows: Vec<Row>,
}

impl Board {
    /// The board of `looks`, with what the tracker remembers (`None`: no
    /// tracker) and each game's silence.
    pub(crate) fn new(
        host: String,
        at: SystemTime,
        looks: Vec<Look>,
        memory: Option<&TrackerMemory>,
        silenced_until: &dyn Fn(&str) -> Option<SystemTime>,
    ) -> Board {
        let rows: Vec<Row> = looks
            .into_iter()
            .map(|look| {
                let silence = silenced_until(&look.game_id);
                Row::new(look, memory, at, silence)
            })
            .collect();
        let since = |r: &Row| r.incident.as_ref().map(|i| i.since);
        let order = crate::text::order(rows.len(), &|a, b| {
            let (a, b) = (&rows[a], &rows[b]);
            b.standing
                .cmp(&a.standing)
                .then_with(|| match (since(a), since(b)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (x, y) => y.is_some().cmp(&x.is_some()),
                })
                .then_with(|| a.game_id.cmp(&b.game_id))
        });
        let rows = crate::text::reordered(rows, &order);
        Board { host, at, rows }
    }

    /// The board with each open incident's reason, where the tracker's
    /// memory holds none (one saved by an earlier version), as `reason_of`
    /// tells it from the incident's id (the last reason its events said).
    pub(crate) fn with_reasons(mut self, reason_of: &dyn Fn(&str) -> Option<String>) -> Board {
        for incident in self.rows.iter_mut().filter_map(|r| r.incident.as_mut()) {
            if incident.reason.is_none() {
                incident.reason = reason_of(&incident.id);
            }
        }
        self
    }

    /// How many games stand each way, in the order of [`STANDINGS`].
    pub(crate) fn counts(&self) -> [usize; 6] {
        let mut counts = [0; 6];
        for row in &self.rows {
            if let Some(i) = STANDINGS.iter().position(|s| *s == row.standing) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// The exit status of `status`: 1 when any game is in trouble, else 2
    /// when one could not be looked at, else 0.
    pub(crate) fn exit_status(&self) -> u8 {
        if self.rows.iter().any(|r| r.standing.is_trouble()) {
            1
        } else if self.rows.iter().any(|r| r.standing == Standing::Unknown) {
            2
        } else {
            0
        }
    }

    /// `38 games: 36 healthy, 1 not running, 1 crash loop`: the healthy
    /// first, then the rest from the least severe up.
    pub(crate) fn summary_line(&self) -> String {
        let counts = self.counts();
        let n = self.rows.len();
        let mut line = format!("{n} game{}", if n == 1 { "" } else { "s" });
        let mut sep = ": ";
        for (standing, count) in STANDINGS.iter().zip(counts).rev() {
            if count > 0 {
                let words = match standing {
                    Standing::Unknown => "not looked at",
                    s => s.words(),
                };
                let _ = write!(line, "{sep}{count} {words}");
                sep = ", ";
            }
        }
        line
    }

    /// The board as `status --json` prints it, at most `limit` rows (the
    /// worst); the summary counts every game.
    pub(crate) fn json(&self, limit: usize) -> String {
        let mut out = String::from("{\"host\":");
        push_json_str(&mut out, &self.host);
        out.push_str(",\"summary\":{");
        for (i, (standing, count)) in STANDINGS.iter().zip(self.counts()).enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{}\":{count}", standing.as_str());
        }
        out.push_str("},\"games\":[");
        for (i, r) in self.rows.iter().take(limit).enumerate() {
            out.push_str(if i > 0 { ",{" } else { "{" });
            for (j, (name, value)) in [
                ("game_id", &r.game_id),
                ("container_id", &r.container_id),
                ("state", &r.state),
                ("health", &r.health),
            ]
            .into_iter()
            .enumerate()
            {
                let _ = write!(out, "{}\"{name}\":", if j > 0 { "," } else { "" });
                push_json_str(&mut out, value);
            }
            match r.restarts {
                Some(n) => {
                    let _ = write!(out, ",\"restarts_last_hour\":{n}");
                }
                None => out.push_str(",\"restarts_last_hour\":null"),
            }
            out.push_str(",\"incident\":");
            match &r.incident {
                None => out.push_str("null"),
                Some(i) => {
                    out.push_str("{\"incident_id\":");
                    push_json_str(&mut out, &i.id);
                    let _ = write!(
                        out,
                        ",\"kind\":\"{}\",\"since\":\"{}\",\"reason\":",
                        i.kind.as_str(),
                        rfc3339_micros(i.since)
                    );
                    push_json_or_null(&mut out, i.reason.as_deref());
                    out.push('}');
                }
            }
            out.push_str(",\"silenced_until\":");
            push_json_or_null(&mut out, r.silenced_until.map(rfc3339_micros).as_deref());
            out.push('}');
        }
        out.push_str("]}\n");
        out
    }
}

/// A JSON string, or `null`.
pub(crate) fn push_json_or_null(out: &mut String, text: Option<&str>) {
    match text {
        Some(t) => push_json_str(out, t),
        None => out.push_str("null"),
    }
}

/// A container id as people read it: the first 12 hex digits of a full
/// id, anything else as it is.
pub(crate) fn short_id(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// A duration as people read it, its two largest units: `45s`, `12m 3s`,
/// `2h 5m`, `3d 4h`.
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    let _ = match (d, h, m) {
        (0, 0, 0) => write!(out, "{s}s"),
        (0, 0, _) if s == 0 => write!(out, "{m}m"),
        (0, 0, _) => write!(out, "{m}m {s}s"),
        (0, _, 0) => write!(out, "{h}h"),
        (0, _, _) => write!(out, "{h}h {m}m"),
        (_, 0, _) => write!(out, "{d}d"),
        _ => write!(out, "{d}d {h}h"),
    };
    out
}

/// A wall-clock time as a row shows it: `2026-11-26 21:03Z`.
pub(crate) fn minute(t: SystemTime) -> String {
    let full = rfc3339_micros(t);
    format!("{} {}Z", &full[..10], &full[11..16])
}

#[cfg(test)]
pub(crate) mod tests;
