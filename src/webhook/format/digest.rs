//! The digest: several waiting events in one chat message, so that a host
//! whose games all went down at once (a reboot) makes one message, not one
//! per game, and none is lost to a rate limit.
//!
//! The events are grouped by what changed, in the words of
//! [`what_changed`]: one line a group, `40 incidents opened (not running)
//! on host-7: g-0, g-1, …, g-9 and 30 more`. A line names at most
//! [`NAMED_PER_LINE`] games and counts the rest; its count covers every
//! event of the group, so nothing is dropped unsaid, whatever the message
//! limit left room to name. Each game id is outside text: each format shapes
//! the digest in its own message, making every name inert as its single
//! message does.

use super::text::{Kind, cut_chars, inert, what_changed};
use std::collections::HashMap;

use crate::event::HealthEvent;
use crate::incident::Change;

/// The most events one digest carries: the batch limit of the chat formats.
pub(crate) const DIGEST_EVENTS: usize = 500;

/// The most games a line names; the others are counted.
pub(crate) const NAMED_PER_LINE: usize = 10;

/// The longest game id a digest names, in characters; a longer one is cut,
/// with `…`.
const NAME_CHARS: usize = 64;

/// The longest host name a digest shows: Linux's `HOST_NAME_MAX`.
const HOST_CHARS: usize = 64;

/// Which change an event is, in the order a digest lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// `incident_opened`.
    Opened,
    /// `incident_escalated`.
    Escalated,
    /// `inspect_unhealthy`: a fact, not an incident.
    Fact,
    /// `incident_reminder`.
    Reminder,
    /// `incident_resolved`.
    Resolved,
}

impl Stage {
    fn of(event: &HealthEvent) -> Stage {
        match event.change() {
            Some(Change::Opened) => Stage::Opened,
            Some(Change::Escalated) => Stage::Escalated,
            Some(Change::Reminder) => Stage::Reminder,
            Some(Change::Resolved) => Stage::Resolved,
            None => Stage::Fact,
        }
    }
}

/// The events that changed the same way.
#[derive(Debug)]
struct Group<'a> {
    stage: Stage,
    kind: Kind,
    /// What changed, as [`what_changed`] says it.
    what: String,
    /// Its events' games, each once, in the order of the batch, each with
    /// its latest event of the group.
    games: Vec<(&'a str, &'a HealthEvent)>,
    /// How many events it holds: a game's facts of several ticks are several.
    events: usize,
    /// Whether it tells the latest change of games named on an earlier line.
    then: bool,
}

impl Group<'_> {
    /// What the line says before the names: `40 incidents opened (not
    /// running)`, `3 incidents resolved`, `2 games unhealthy`, `2 games
    /// unhealthy (10 facts)` when their facts of several ticks wait together;
    /// `then 1 incident opened (not running)` for what came after a change
    /// of the same game listed above.
    fn heading(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let n = self.events;
        let heading = match self.stage {
            Stage::Fact => {
                let games = self.games.len();
                let mut heading = format!("{games} game{} {}", plural(games), self.what);
                if n > games {
                    heading.push_str(&format!(" ({n} facts)"));
                }
                heading
            }
            Stage::Opened => format!("{n} incident{} opened ({})", plural(n), self.what),
            _ => format!("{n} incident{} {}", plural(n), self.what),
        };
        if self.then {
            format!("then {heading}")
        } else {
            heading
        }
    }
}

/// What a digest says of a game beside its name: the restarts in the
/// crash-loop window and the OOM killer, as the single message says them
/// (`4 restarts, OOM`); empty when there is neither.
fn note(event: &HealthEvent) -> String {
    let (restarts, oom) = match event.incident.as_deref() {
        Some(i) => (i.restarts_in_window, i.oom),
        None => (
            0,
            event.details.as_deref().and_then(|x| x.oom_killed) == Some(true),
        ),
    };
    let mut parts = Vec::new();
    match restarts {
        0 => {}
        1 => parts.push("1 restart".to_owned()),
        n => parts.push(format!("{n} restarts")),
    }
    if oom {
        parts.push("OOM".to_owned());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// `events` grouped by what changed, worst first; `then` marks the groups.
fn grouped<'a>(events: impl Iterator<Item = &'a HealthEvent>, then: bool) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for event in events {
        let (kind, what, _) = what_changed(event);
        let stage = Stage::of(event);
        match groups
            .iter_mut()
            .find(|g| g.stage == stage && g.kind == kind && g.what == what)
        {
            Some(g) => {
                g.events += 1;
                match g.games.iter_mut().find(|(game, _)| *game == event.game_id) {
                    Some(named) => named.1 = event,
                    None => g.games.push((&event.game_id, event)),
                }
            }
            None => groups.push(Group {
                stage,
                kind,
                what,
                games: vec![(&event.game_id, event)],
                events: 1,
                then,
            }),
        }
    }
    // Stable: the same change in other words keeps the order of the batch.
    groups.sort_by_key(|g| (g.stage, g.kind));
    groups
}

/// A batch of events, grouped by what changed, worst first.
#[derive(Debug)]
pub(crate) struct Digest<'a> {
    events: &'a [HealthEvent],
    groups: Vec<Group<'a>>,
}

impl<'a> Digest<'a> {
    /// The digest of `events`: one line a change, worst first, and the
    /// last line that names a game tells its latest change. A game whose
    /// latest change would be listed above an earlier one (resolved, then
    /// down again, within one gathering) has it on a `then` line after
    /// every other.
    pub(crate) fn of(events: &'a [HealthEvent]) -> Digest<'a> {
        let mut latest: HashMap<&str, usize> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            latest.insert(&event.game_id, i);
        }
        let groups = grouped(events.iter(), false);
        // The line of each event, and the last line naming each game.
        let line_of = |event: &HealthEvent| {
            let (kind, what, _) = what_changed(event);
            let stage = Stage::of(event);
            groups
                .iter()
                .position(|g| g.stage == stage && g.kind == kind && g.what == what)
                .unwrap_or(0)
        };
        let mut last_line: HashMap<&str, usize> = HashMap::new();
        for event in events {
            let line = line_of(event);
            let last = last_line.entry(&event.game_id).or_insert(line);
            *last = (*last).max(line);
        }
        let moved: Vec<usize> = latest
            .iter()
            .filter(|(game, i)| line_of(&events[**i]) < last_line[*game])
            .map(|(_, i)| *i)
            .collect();
        if moved.is_empty() {
            return Digest { events, groups };
        }
        let stays = events
            .iter()
            .enumerate()
            .filter(|(i, _)| !moved.contains(i))
            .map(|(_, e)| e);
        let mut groups = grouped(stays, false);
        let mut moved = moved;
        moved.sort_unstable();
        groups.extend(grouped(moved.iter().map(|i| &events[*i]), true));
        Digest { events, groups }
    }

    /// Its events, in the order of the batch.
    pub(crate) fn events(&self) -> &'a [HealthEvent] {
        self.events
    }

    /// How many events it carries.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The `Idempotency-Key` of its request: a UUID (version 8) from a hash
    /// of every event's id in order, so that a retry of the same batch
    /// carries the same key and any other batch another.
    pub(crate) fn key(&self) -> String {
        // FNV-1a, 128 bits: stable across builds and releases, which the
        // standard library's hasher does not promise.
        const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        let mut hash = OFFSET;
        for event in self.events {
            for b in event.event_id.bytes().chain([b'\n']) {
                hash = (hash ^ u128::from(b)).wrapping_mul(PRIME);
            }
        }
        uuid::Builder::from_custom_bytes(hash.to_be_bytes())
            .into_uuid()
            .to_string()
    }

    /// What it is about, in a few words: `40 incidents on host-7` (or
    /// `events`, when facts are among them).
    pub(crate) fn summary(&self, host: &str) -> String {
        let incidents = self.events.iter().all(|e| e.incident.is_some());
        let noun = match (incidents, self.len()) {
            (true, 1) => "incident",
            (true, _) => "incidents",
            (false, 1) => "event",
            (false, _) => "events",
        };
        format!("{} {noun} on {host}", self.len())
    }

    /// The worst kind among its events.
    pub(crate) fn worst(&self) -> Kind {
        self.groups
            .iter()
            .map(|g| g.kind)
            .min()
            .unwrap_or(Kind::Resolved)
    }

    /// One line a group, joined by newlines, in at most `budget` bytes:
    /// every heading whole (`host` already as the format shows it), and
    /// the names (`name` makes one inert) while there is room, the rest
    /// counted. Bytes are never fewer than characters, so the budget also
    /// bounds a limit in characters.
    pub(crate) fn lines(&self, host: &str, name: fn(&str) -> String, budget: usize) -> String {
        let headings: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} on {host}", g.heading()))
            .collect();
        // Each line's heading, newline and the longest " and N more" it may
        // need, before any name.
        let reserved: usize = self
            .groups
            .iter()
            .zip(&headings)
            .map(|(g, h)| h.len() + " and  more\n".len() + digits(g.games.len()))
            .sum();
        let mut room = budget.saturating_sub(reserved);
        let mut out = String::new();
        for (group, heading) in self.groups.iter().zip(headings) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&heading);
            let mut named = 0;
            for (game, event) in group.games.iter().take(NAMED_PER_LINE) {
                let mut shown = name(&cut_chars(&inert(game), NAME_CHARS));
                shown.push_str(&note(event));
                // ": " before the first, ", " before the others.
                if shown.len() + 2 > room {
                    break;
                }
                room -= shown.len() + 2;
                out.push_str(if named == 0 { ": " } else { ", " });
                out.push_str(&shown);
                named += 1;
            }
            let more = group.games.len() - named;
            if more > 0 && named > 0 {
                out.push_str(&format!(" and {more} more"));
            }
        }
        out
    }
}

/// The number of decimal digits of `n`.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// A machine's name as a digest shows it: letters, digits, `.` and `-`
/// (what a host name is made of, RFC 1123), anything else a `-`, at most
/// 64 characters (`HOST_CHARS`); `localhost` when there is none.
pub(crate) fn host_label(nodename: &str) -> String {
    let label: String = nodename
        .trim()
        .chars()
        .take(HOST_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label.is_empty() {
        "localhost".to_owned()
    } else {
        label
    }
}

#[cfg(test)]
mod tests;
