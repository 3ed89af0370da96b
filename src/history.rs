//! What happened, and when: the incident timeline `rtinspect history`
//! shows, oldest first — opened, escalated, reminded, resolved — each with
//! its kind, reason and duration.
//!
//! This part is pure: the incident events come in (lines of
//! `history.jsonl`, or rows of the events table, both the envelope's shape),
//! or the facts when no incident event was stored (a run of facts is a
//! stretch of trouble: said as derived), with the filter and the time; a
//! [`Timeline`] comes out, rendered as a table or as JSON. Reading them is
//! the command, `commands/history.rs`.

use std::time::{Duration, SystemTime};

use std::fmt::Write as _;

use crate::event::rfc3339_micros;
use crate::status::table::{columns, inert};
use crate::status::{age, push_json_or_null};
use crate::text::{order, push_json_str, reordered};

/// Where the timeline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `history.jsonl` in the state directory (label mode).
    HistoryFile,
    /// The incident events of the events table.
    EventsTable,
    /// The facts of the events table, no incident event being stored:
    /// stretches of trouble derived from them.
    Facts,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::HistoryFile => "history.jsonl",
            Source::EventsTable => "events_table",
            Source::Facts => "derived_from_facts",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Source::HistoryFile => "from history.jsonl",
            Source::EventsTable => "from the events table",
            Source::Facts => "derived from the facts in the events table (it holds no incidents)",
        }
    }
}

/// One change of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When the look that made it was made.
    pub(crate) at: SystemTime,
    /// The game.
    pub(crate) game_id: String,
    /// The container of that look.
    pub(crate) container_id: String,
    /// `opened`, `escalated`, `reminder` or `resolved`.
    pub(crate) change: &'static str,
    /// The incident's id; `None` for a stretch derived from facts.
    pub(crate) incident_id: Option<String>,
    /// Its kind after the change.
    pub(crate) kind: String,
    /// When it opened.
    pub(crate) started_at: SystemTime,
    /// Why the container ended, when the event says.
    pub(crate) reason: Option<String>,
    /// How it ended when no look saw it end (`removed`, …).
    pub(crate) resolution: Option<String>,
}

/// The changes in the order of `EVENT_TYPES`' incident events.
const CHANGES: [&str; 4] = ["opened", "escalated", "reminder", "resolved"];

impl Entry {
    /// The entry of one envelope (a `history.jsonl` line); `None` for one
    /// that is not an incident event or does not parse.
    pub(crate) fn from_line(line: &str) -> Option<Entry> {
        // Read as a plain JSON value: the binary has that reader already.
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| v.get(key)?.as_str().map(str::to_owned);
        Entry::from_parts(
            v.get("event_type")?.as_str()?,
            text("game_id")?,
            text("container_id")?,
            parse_time(v.get("occurred_at")?.as_str()?)?,
            v.get("details")?,
        )
    }

    /// The entry of an events table's row.
    pub(crate) fn from_row(
        event_type: &str,
        game_id: String,
        container_id: String,
        at: SystemTime,
        details: &str,
    ) -> Option<Entry> {
        let details: serde_json::Value = serde_json::from_str(details).ok()?;
        Entry::from_parts(event_type, game_id, container_id, at, &details)
    }

    fn from_parts(
        event_type: &str,
        game_id: String,
        container_id: String,
        at: SystemTime,
        d: &serde_json::Value,
    ) -> Option<Entry> {
        let change = CHANGES
            .into_iter()
            .find(|c| event_type.strip_prefix("incident_") == Some(*c))?;
        let text = |key: &str| d.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Entry {
            at,
            game_id,
            container_id,
            change,
            incident_id: Some(text("incident_id")?),
            kind: text("kind")?,
            started_at: parse_time(d.get("started_at")?.as_str()?)?,
            reason: text("reason"),
            resolution: text("resolution"),
        })
    }
}

/// One `inspect_unhealthy` fact, as far as a derived timeline reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    /// When it was seen.
    pub(crate) at: SystemTime,
    /// The game.
    pub(crate) game_id: String,
    /// The container.
    pub(crate) container_id: String,
    /// `State.Status`.
    pub(crate) state: String,
    /// `State.Health.Status`.
    pub(crate) health: String,
}

impl Fact {
    /// The incident kind a fact shows: what the tracker would name it,
    /// but for a crash loop, which one fact cannot show.
    fn kind(&self) -> (u8, &'static str) {
        match (self.state.as_str(), self.health.as_str()) {
            (s, _) if s != "running" && s != "restarting" => (2, "not_running"),
            (_, "unhealthy") => (1, "unhealthy"),
            _ => (0, "restarted"),
        }
    }
}

/// Stretches of trouble from facts, oldest fact first: a game's facts less
/// than `gap` apart are one stretch (facts come every tick while a game is
/// in trouble), opened at its first fact, escalated when a fact shows worse,
/// and resolved at its last fact unless that is less than `gap` before
/// `now` (still in trouble).
pub(crate) fn from_facts(facts: Vec<Fact>, gap: Duration, now: SystemTime) -> Vec<Entry> {
    let order = order(facts.len(), &|a, b| {
        let (a, b) = (&facts[a], &facts[b]);
        a.game_id.cmp(&b.game_id).then(a.at.cmp(&b.at))
    });
    let facts = reordered(facts, &order);
    let mut entries = Vec::new();
    let mut open: Option<(Fact, (u8, &'static str), SystemTime)> = None;
    let close = |entries: &mut Vec<Entry>,
                 (last, kind, started): (Fact, (u8, &str), SystemTime)| {
        if now.duration_since(last.at).unwrap_or_default() >= gap {
            entries.push(derived(&last, "resolved", kind.1, started));
        }
    };
    for fact in facts {
        let kind = fact.kind();
        match open.take() {
            Some((last, was, started))
                if last.game_id == fact.game_id
                    && fact.at.duration_since(last.at).unwrap_or_default() < gap =>
            {
                let now_kind = if kind.0 > was.0 {
                    entries.push(derived(&fact, "escalated", kind.1, started));
                    kind
                } else {
                    was
                };
                open = Some((fact, now_kind, started));
            }
            previous => {
                if let Some(p) = previous {
                    close(&mut entries, p);
                }
                entries.push(derived(&fact, "opened", kind.1, fact.at));
                let started = fact.at;
                open = Some((fact, kind, started));
            }
        }
    }
    if let Some(p) = open {
        close(&mut entries, p);
    }
    entries
}

fn derived(fact: &Fact, change: &'static str, kind: &str, started_at: SystemTime) -> Entry {
    Entry {
        at: fact.at,
        game_id: fact.game_id.clone(),
        container_id: fact.container_id.clone(),
        change,
        incident_id: None,
        kind: kind.to_owned(),
        started_at,
        reason: None,
        resolution: None,
    }
}

/// The timeline shown: its entries oldest first, filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// The host.
    pub(crate) host: String,
    /// Where it comes from.
    pub(crate) source: Source,
    /// The game asked for.
    pub(crate) game: Option<String>,
    /// From when.
    pub(crate) since: SystemTime,
    /// The entries, oldest first.
    pub(crate) entries: Vec<Entry>,
    /// Lines or rows that could not be read (not UTF-8, not an event).
    pub(crate) skipped: usize,
    /// Whether more rows were there than were read.
    pub(crate) truncated: bool,
    /// Bytes of `history.jsonl` not read: the start of a file past the
    /// read's bound.
    pub(crate) unread_bytes: u64,
}

impl Timeline {
    /// The entries of `game` (all without one) at or after `since`, oldest
    /// first (those of the same moment in the order given).
    pub(crate) fn new(
        host: String,
        source: Source,
        game: Option<String>,
        since: SystemTime,
        mut entries: Vec<Entry>,
    ) -> Timeline {
        entries.retain(|e| e.at >= since && game.as_ref().is_none_or(|g| *g == e.game_id));
        let order = order(entries.len(), &|a, b| entries[a].at.cmp(&entries[b].at));
        let entries = reordered(entries, &order);
        Timeline {
            host,
            source,
            game,
            since,
            entries,
            skipped: 0,
            truncated: false,
            unread_bytes: 0,
        }
    }

    /// How long entry `i`'s incident lasted, or had lasted at it: for an
    /// opening, until its resolution when that is shown.
    fn duration(&self, i: usize) -> Option<Duration> {
        let e = &self.entries[i];
        let end = if e.change == "opened" {
            self.entries[i + 1..]
                .iter()
                .find(|r| {
                    r.change == "resolved"
                        && r.game_id == e.game_id
                        && r.incident_id == e.incident_id
                        && r.started_at == e.started_at
                })?
                .at
        } else {
            e.at
        };
        Some(end.duration_since(e.started_at).unwrap_or_default())
    }

    /// The timeline as a table: a line saying what it is, then a row per
    /// entry, outside text made inert.
    pub(crate) fn table(&self) -> String {
        let n = self.entries.len();
        let mut out = format!(
            "{n} incident event{} on {} since {}{}, {}",
            if n == 1 { "" } else { "s" },
            inert(&self.host, 64),
            crate::status::minute(self.since),
            self.game
                .as_ref()
                .map(|g| format!(" for {}", inert(g, 64)))
                .unwrap_or_default(),
            self.source.words()
        );
        if self.skipped > 0 {
            out.push_str(&format!("; {} lines skipped (unreadable)", self.skipped));
        }
        if self.truncated {
            out.push_str("; only the oldest shown (too many)");
        }
        if self.unread_bytes > 0 {
            out.push_str(&format!(
                "; the first {} bytes of a history file over 4 MiB not read",
                self.unread_bytes
            ));
        }
        out.push('\n');
        if n == 0 {
            return out;
        }
        let header = [
            "TIME", "GAME", "CHANGE", "KIND", "REASON", "DURATION", "INCIDENT",
        ];
        let rows: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let e = &self.entries[i];
                let duration = self.duration(i).map_or_else(
                    || "-".to_owned(),
                    |d| {
                        let word = if e.change == "escalated" || e.change == "reminder" {
                            "after"
                        } else {
                            "lasted"
                        };
                        format!("{word} {}", age(d))
                    },
                );
                let t = rfc3339_micros(e.at);
                vec![
                    format!("{} {}Z", &t[..10], &t[11..19]),
                    inert(&e.game_id, 40),
                    match &e.resolution {
                        Some(how) => format!("resolved ({})", inert(how, 20)),
                        None => e.change.to_owned(),
                    },
                    inert(&e.kind, 20).replace('_', " "),
                    e.reason
                        .as_deref()
                        .map_or_else(|| "-".into(), |r| inert(r, 20)),
                    duration,
                    e.incident_id.as_deref().map_or_else(
                        || "-".into(),
                        |id| {
                            format!(
                                "…{}",
                                inert(&id[id.floor_char_boundary(id.len().saturating_sub(8))..], 8)
                            )
                        },
                    ),
                ]
            })
            .collect();
        out.push_str(&columns(&header, &rows));
        out
    }

    /// The timeline as one JSON document.
    pub(crate) fn json(&self) -> String {
        let mut out = String::from("{\"host\":");
        push_json_str(&mut out, &self.host);
        let _ = write!(out, ",\"source\":\"{}\",\"game\":", self.source.as_str());
        push_json_or_null(&mut out, self.game.as_deref());
        let _ = write!(
            out,
            ",\"since\":\"{}\",\"skipped\":{},\"truncated\":{},\"unread_bytes\":{},\"events\":[",
            rfc3339_micros(self.since),
            self.skipped,
            self.truncated,
            self.unread_bytes
        );
        for (i, e) in self.entries.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"at\":\"{}\",\"change\":\"{}\",\"started_at\":\"{}\"",
                if i > 0 { "," } else { "" },
                rfc3339_micros(e.at),
                e.change,
                rfc3339_micros(e.started_at)
            );
            for (name, value) in [
                ("game_id", Some(e.game_id.as_str())),
                ("container_id", Some(e.container_id.as_str())),
                ("incident_id", e.incident_id.as_deref()),
                ("kind", Some(e.kind.as_str())),
                ("reason", e.reason.as_deref()),
                ("resolution", e.resolution.as_deref()),
            ] {
                let _ = write!(out, ",\"{name}\":");
                push_json_or_null(&mut out, value);
            }
            match self.duration(i) {
                Some(d) => {
                    let _ = write!(out, ",\"duration_seconds\":{}}}", d.as_secs_f64());
                }
                None => out.push_str(",\"duration_seconds\":null}"),
            }
        }
        out.push_str("]}\n");
        out
    }
}

/// An RFC 3339 time in UTC as rtinspect writes it
/// (`2026-11-26T21:00:00.123456Z`) as a wall-clock time; `None` when it is
/// not one, or before 1970. Read by the one RFC 3339 reader (`text`),
/// held to the form rtinspect writes: a `T` and a `Z`, no offset.
pub(crate) fn parse_time(s: &str) -> Option<SystemTime> {
    if s.as_bytes().get(10) != Some(&b'T') || !s.ends_with('Z') {
        return None;
    }
    crate::text::parse_rfc3339(s)
}

#[cfg(test)]
mod tests;
