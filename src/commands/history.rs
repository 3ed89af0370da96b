//! `rtinspect history`: the timeline read where the configuration keeps
//! it. With the postgres sink (PostgreSQL mode), the events table: its
//! incident events where it holds some in the window, else stretches
//! derived from its facts, said as such. Otherwise `history.jsonl` in the
//! state directory, read without the lock while the daemon runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::status::{check_state_dir, state_dir};
use crate::build;
use crate::config::{Config, Sink};
use crate::failure::Failure;
use crate::history::{Entry, Fact, Source, Timeline, from_facts};
use crate::postgres::{FACT_ROWS, INCIDENT_ROWS, Rows, history_rows};
use crate::state::history::read_history;

/// Runs `rtinspect history`.
pub(crate) fn history(
    config: &Config,
    game: Option<&str>,
    since: Duration,
    json: bool,
) -> Result<(), Failure> {
    check_state_dir(config)?;
    let now = SystemTime::now();
    let from = now.checked_sub(since).unwrap_or(UNIX_EPOCH);
    let host = build::host_name(config);
    let game = game.map(str::to_owned);
    let postgres_sink = config
        .sinks
        .iter()
        .any(|s| matches!(s.sink, Sink::Postgres(_)));
    let timeline = match &config.database {
        Some(db) if postgres_sink => {
            let connector = build::pg_connector(db)?;
            let host_filter = build::host_filter(config)?;
            let read = |rows, limit| {
                history_rows(
                    &connector,
                    &config.events_table,
                    host_filter.as_ref(),
                    rows,
                    from,
                    game.as_deref(),
                    limit,
                )
                .map_err(|e| Failure::runtime("cannot read the history", e))
            };
            // The incident events where stored; else the facts, if any.
            let mut found = read(Rows::Incidents, INCIDENT_ROWS)?;
            let mut rows = (Rows::Incidents, INCIDENT_ROWS);
            if found.is_empty() {
                let facts = read(Rows::Facts, FACT_ROWS)?;
                if !facts.is_empty() {
                    (found, rows) = (facts, (Rows::Facts, FACT_ROWS));
                }
            }
            let (rows, limit) = rows;
            let truncated = found.len() as i64 > limit;
            found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let read = found.len();
            let (source, entries) = match rows {
                Rows::Incidents => (
                    Source::EventsTable,
                    found
                        .into_iter()
                        .filter_map(|(t, g, c, at, d)| Entry::from_row(&t, g, c, at, &d))
                        .collect::<Vec<_>>(),
                ),
                Rows::Facts => (
                    Source::Facts,
                    from_facts(
                        found.into_iter().filter_map(fact).collect(),
                        config.interval * 3,
                        now,
                    ),
                ),
            };
            let skipped = if rows == Rows::Incidents {
                read - entries.len()
            } else {
                0
            };
            let mut t = Timeline::new(host, source, game, from, entries);
            t.skipped = skipped;
            t.truncated = truncated;
            t
        }
        _ => {
            let Some(dir) = state_dir(config) else {
                return Err(Failure::because(
                    "no history is kept without a state directory: set --state-dir \
                     (or RTINSPECT_STATE_DIR)",
                ));
            };
            let read =
                read_history(&dir).map_err(|e| Failure::runtime("cannot read the history", e))?;
            let n = read.lines.len();
            let entries: Vec<Entry> = read
                .lines
                .iter()
                .filter_map(|l| Entry::from_line(l))
                .collect();
            let skipped = read.skipped + (n - entries.len());
            let mut t = Timeline::new(host, Source::HistoryFile, game, from, entries);
            t.skipped = skipped;
            t.unread_bytes = read.unread_bytes;
            t
        }
    };
    let text = if json {
        timeline.json()
    } else {
        timeline.table()
    };
    super::print_out(&text)
}

/// A fact's row as the derived timeline reads it.
fn fact((_, game_id, container_id, at, details): crate::postgres::HistoryRow) -> Option<Fact> {
    let seen: serde_json::Value = serde_json::from_str(&details).ok()?;
    let text = |key| {
        seen.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    Some(Fact {
        at,
        game_id,
        container_id,
        state: text("state"),
        health: text("health"),
    })
}
