//! `history` in PostgreSQL mode: the incident events of the events table
//! since a time, or, when the postgres sink stores facts only, the facts.
//! One read-only transaction, bounded like the others; the range is found
//! through the `recorded_at` index `migrate` makes (an event is recorded
//! after it occurred: an hour's margin covers spooled deliveries and clock
//! skew), then cut on `occurred_at`. Host scoping reads this host's rows.

use std::time::SystemTime;

use postgres::types::{ToSql, Type};

use super::connect::Connector;
use super::error::PgError;
use super::host::HostFilter;
use super::transaction::{BEGIN_READ_ONLY, in_transaction};
use crate::config::TableName;

/// At most this many incident events are read.
pub(crate) const INCIDENT_ROWS: i64 = 10_000;

/// At most this many facts are read (a day of 70 games in trouble at 15 s).
pub(crate) const FACT_ROWS: i64 = 400_000;

/// What the rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// The incident events: (event_type, game_id, container_id,
    /// occurred_at, details as JSON text).
    Incidents,
    /// The facts: (`inspect_unhealthy`, game_id, container_id, occurred_at,
    /// `{"state","health"}` as JSON text).
    Facts,
}

/// One row: event type, game, container, when it occurred, details (JSON).
pub(crate) type HistoryRow = (String, String, String, SystemTime, String);

/// The rows of `table` that occurred at or after `since`, oldest first, at
/// most `limit` (a row more says there were more: the caller cuts it).
pub(crate) fn history_rows(
    connector: &Connector,
    table: &TableName,
    host: Option<&HostFilter>,
    rows: Rows,
    since: SystemTime,
    game: Option<&str>,
    limit: i64,
) -> Result<Vec<HistoryRow>, PgError> {
    let (types, details) = match rows {
        Rows::Incidents => ("event_type LIKE 'incident\\_%'", "details::text"),
        Rows::Facts => (
            "event_type = 'inspect_unhealthy'",
            "jsonb_build_object('state', details->'state', 'health', details->'health')::text",
        ),
    };
    let mut sql = format!(
        "SELECT event_type, game_id, container_id, occurred_at, {details} FROM {t} \
         WHERE {types} AND recorded_at >= $1 - interval '1 hour' AND occurred_at >= $1",
        t = table.quoted()
    );
    let limit = limit + 1;
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&since, Type::TIMESTAMPTZ)];
    if let Some(game) = &game {
        params.push((game, Type::TEXT));
        sql.push_str(&format!(" AND game_id = ${}", params.len()));
    }
    if let Some(h) = &host {
        params.push((&h.host_id, Type::TEXT));
        sql.push_str(&format!(" AND host_id = ${}", params.len()));
    }
    params.push((&limit, Type::INT8));
    sql.push_str(&format!(
        " ORDER BY occurred_at, recorded_at LIMIT ${}",
        params.len()
    ));
    let step = format!("reading the history from {table}");
    let mut client = connector.connect()?;
    in_transaction(&mut client, BEGIN_READ_ONLY, |c| {
        let found = c
            .query_typed(&sql, &params)
            .map_err(|e| PgError::on_table(step.clone(), e, table))?;
        found
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect::<Result<Vec<HistoryRow>, postgres::Error>>()
            .map_err(|e| PgError::new(step.clone(), e))
    })
}
