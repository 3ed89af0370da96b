//! How every transaction begins and ends: each begins with a bound on its
//! statements (a `SET LOCAL`, which PgBouncer in transaction mode allows),
//! and a failed one is rolled back so that its connection serves the next.

use postgres::Client;

use super::error::PgError;

/// How every transaction of the daemon and of `prune-events` begins, with a
/// 30 s bound on each statement so that a locked table cannot stall a tick
/// forever: one round trip (a simple query of two statements). `SET LOCAL` lasts until
/// the transaction ends, so it never leaks to another client of a pooled
/// server connection, and needs no startup parameter.
pub(super) const BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = 30000";

/// The records read: read-only, bounded like the others.
pub(super) const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY; SET LOCAL statement_timeout = 30000";

/// `migrate` may build an index on a big table: a longer bound. Its short
/// wait for the tables' locks (so that it never queues the fleet's writes
/// behind a long transaction for long) is set once it holds the migrate
/// lock, which it may wait for longer.
pub(super) const BEGIN_MIGRATION: &str = "BEGIN; SET LOCAL statement_timeout = '10min'";

/// Runs `body` in a transaction begun with `begin`, and commits; on a
/// failure of `body` the transaction is rolled back, so that the connection
/// can serve the next call (or, if even that fails, is marked lost).
pub(super) fn in_transaction<T>(
    client: &mut Client,
    begin: &str,
    body: impl FnOnce(&mut Client) -> Result<T, PgError>,
) -> Result<T, PgError> {
    transaction(client, begin, ("COMMIT", "committing"), body)
}

/// Runs `body` as [`in_transaction`] does, but rolls the transaction back
/// whatever happened: what `body` did is tried, never kept.
pub(super) fn rolled_back<T>(
    client: &mut Client,
    begin: &str,
    body: impl FnOnce(&mut Client) -> Result<T, PgError>,
) -> Result<T, PgError> {
    transaction(client, begin, ("ROLLBACK", "rolling back"), body)
}

/// A transaction begun with `begin` and ended, once `body` succeeded, with
/// the statement `end` (and the words naming it in an error).
fn transaction<T>(
    client: &mut Client,
    begin: &str,
    (end, ending): (&str, &str),
    body: impl FnOnce(&mut Client) -> Result<T, PgError>,
) -> Result<T, PgError> {
    client
        .batch_execute(begin)
        .map_err(|e| PgError::new("beginning a transaction", e))?;
    match body(client) {
        Ok(value) => {
            client
                .batch_execute(end)
                .map_err(|e| PgError::new(ending, e))?;
            Ok(value)
        }
        Err(mut e) => {
            if !e.connection_lost && client.batch_execute("ROLLBACK").is_err() {
                e.connection_lost = true;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transaction_bounds_its_statements() {
        for begin in [BEGIN, BEGIN_READ_ONLY] {
            assert!(
                begin.ends_with("SET LOCAL statement_timeout = 30000"),
                "{begin}"
            );
        }
        assert!(BEGIN_MIGRATION.contains("SET LOCAL statement_timeout"));
    }
}
