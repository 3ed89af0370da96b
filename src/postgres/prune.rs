//! `prune-events`: deletes old events in short batches, each its own
//! transaction, with a cutoff fixed at the start.

use std::time::{Duration, SystemTime};

use postgres::types::Type;

use super::connect::Connector;
use super::error::PgError;
use super::transaction::{BEGIN, in_transaction};
use crate::config::TableName;

/// `prune-events` deletes at most this many rows per statement and
/// transaction: short locks, short transactions, a bounded WAL burst.
pub(crate) const PRUNE_BATCH: i64 = 10_000;

/// What `prune-events` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Rows deleted.
    pub deleted: u64,
    /// The cutoff: rows recorded before it were deleted.
    pub before: SystemTime,
    /// Statements (and transactions) it took.
    pub batches: u64,
}

/// Deletes the events recorded more than `older_than` ago (by the server's
/// clock, which wrote `recorded_at`), at most `batch` rows per transaction,
/// oldest first, until none is left. The cutoff is fixed at the start, so
/// events recorded meanwhile are never touched. Each batch finds its rows
/// through the `recorded_at` index and deletes them by `event_id`, whose
/// unique index `ON CONFLICT (event_id)` needs anyway: so a role needs only
/// `DELETE` and `SELECT (event_id, recorded_at)` (a `ctid` would need
/// `SELECT` on the whole table). A batch committed stays deleted if a later
/// one fails.
pub(crate) fn prune_events(
    connector: &Connector,
    events: &TableName,
    older_than: Duration,
    batch: i64,
    on_batch: &mut dyn FnMut(u64),
) -> Result<Pruned, PgError> {
    let mut client = connector.connect()?;
    let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let before: SystemTime = in_transaction(&mut client, BEGIN, |c| {
        c.query_typed_one(
            "SELECT now() - $1::bigint * interval '1 millisecond'",
            &[(&age_ms, Type::INT8)],
        )
        .map_err(|e| PgError::new("computing the cutoff", e))?
        .try_get(0)
        .map_err(|e| PgError::new("computing the cutoff", e))
    })?;
    // The outer `recorded_at < $1` keeps a row whose time changed meanwhile.
    let delete = format!(
        "DELETE FROM {t} WHERE event_id = ANY (ARRAY(\
         SELECT event_id FROM {t} WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2)) \
         AND recorded_at < $1",
        t = events.quoted()
    );
    let mut pruned = Pruned {
        deleted: 0,
        before,
        batches: 0,
    };
    loop {
        let n = in_transaction(&mut client, BEGIN, |c| {
            c.execute_typed(
                &delete,
                &[(&before, Type::TIMESTAMPTZ), (&batch, Type::INT8)],
            )
            .map_err(|e| PgError::on_table(format!("deleting from {events}"), e, events))
        })?;
        pruned.deleted += n;
        pruned.batches += 1;
        on_batch(n);
        if n < u64::try_from(batch).unwrap_or(0) {
            return Ok(pruned);
        }
    }
}
