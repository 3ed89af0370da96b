//! PostgreSQL mode's silences: the table `runtime_silences` (a row per game
//! a silence names, `game_id` NULL for every game), which `migrate`
//! creates, the daemon reads each tick beside the records on the same
//! connection, `rtinspect silence` changes, and a deploy tool may `INSERT`
//! into with psql.
//!
//! With host scoping the table has a `host_id` column, as the events table
//! does: a host honours its own rows and those whose `host_id` is NULL
//! (every host, for a fleet-wide silence or a tool that knows only the
//! game); `silence add` fills it with this host's id.

use std::time::SystemTime;

use postgres::Client;
use postgres::types::{ToSql, Type};

use super::connect::Connector;
use super::error::{PgError, UNDEFINED_COLUMN};
use super::host::HostFilter;
use super::transaction::{BEGIN, BEGIN_READ_ONLY, in_transaction};
use crate::config::TableName;
use crate::silence::{Ended, MAX_SILENCES, Silence};

/// The columns every read decodes, in order; times clamped to years
/// `timestamptz` and `SystemTime` both hold (a tool may write `infinity`);
/// who made it and the comment cut where `silence add` bounds them (256
/// and 1,024 characters, bytes there), so that a tool's 64 MiB comment is
/// not fetched again at every tick. A game id is cut at 257 characters: one
/// that long is more than the 256 bytes of any record's
/// ([`crate::tick::MAX_GAME_ID_BYTES`]), so it still names no game.
const COLUMNS: &str = "silence_id::text, left(game_id::text, 257), \
     greatest(least(starts_at, '9999-12-31Z'::timestamptz), 'epoch'::timestamptz), \
     greatest(least(ends_at, '9999-12-31Z'::timestamptz), 'epoch'::timestamptz), \
     left(coalesce(created_by::text, ''), 256), left(coalesce(comment::text, ''), 1024)";

/// The silences a host honours: its own rows and every host's, when
/// scoping is on (`$n` is the host id).
fn host_clause(host_id: Option<&str>, n: usize) -> String {
    match host_id {
        Some(_) => format!(" AND (host_id = ${n} OR host_id IS NULL)"),
        None => String::new(),
    }
}

/// The daemon's query: the silences not over by the server's clock, at
/// most one more than it takes (the `ends_at` index answers it).
pub(crate) fn silences_query(table: &TableName, host_id: Option<&str>) -> String {
    format!(
        "SELECT {COLUMNS} FROM {} WHERE ends_at > now(){} ORDER BY starts_at, silence_id LIMIT {}",
        table.quoted(),
        host_clause(host_id, 1),
        MAX_SILENCES + 1
    )
}

/// Reads the silences in force or to come, in a short read-only
/// transaction on `client`. A table or `host_id` column that is not there
/// is said as such, to be told "run migrate".
pub(super) fn read(
    client: &mut Client,
    table: &TableName,
    host_id: Option<&str>,
) -> Result<Vec<Silence>, PgError> {
    let query = silences_query(table, host_id);
    let params: Vec<(&(dyn ToSql + Sync), Type)> = match &host_id {
        Some(h) => vec![(h, Type::TEXT)],
        None => Vec::new(),
    };
    let rows = in_transaction(client, BEGIN_READ_ONLY, |c| {
        c.query_typed(&query, &params)
            .map_err(|e| missing(PgError::on_table(format!("reading {table}"), e, table)))
    })?;
    if rows.len() > MAX_SILENCES {
        return Err(PgError::schema(
            format!("reading {table}"),
            format!("more than {MAX_SILENCES} silences in force or to come: end some"),
        ));
    }
    rows.iter().map(|row| decode(row, table)).collect()
}

/// Whether the error says the table, or its host column, is not there:
/// an older schema, which `migrate` brings up to date.
pub(crate) fn is_missing(e: &PgError) -> bool {
    matches!(e.sqlstate.as_deref(), Some("42P01" | UNDEFINED_COLUMN))
}

fn missing(mut e: PgError) -> PgError {
    if e.sqlstate.as_deref() == Some(UNDEFINED_COLUMN) {
        e.detail
            .push_str("; run `rtinspect migrate` to add the host_id column");
    }
    e
}

fn decode(row: &postgres::Row, table: &TableName) -> Result<Silence, PgError> {
    let bad = |e: postgres::Error| {
        PgError::schema(format!("reading the columns of {table}"), e.to_string())
    };
    let id: Option<String> = row.try_get(0).map_err(bad)?;
    Ok(Silence {
        id: id.unwrap_or_default(),
        game_id: row.try_get(1).map_err(bad)?,
        starts_at: row.try_get(2).map_err(bad)?,
        ends_at: row.try_get(3).map_err(bad)?,
        created_by: row.try_get(4).map_err(bad)?,
        comment: row.try_get(5).map_err(bad)?,
    })
}

/// `rtinspect silence` on PostgreSQL: each call its own transaction on a
/// connection of its own.
#[derive(Debug)]
pub(crate) struct PgSilences {
    connector: Connector,
    table: TableName,
    host_id: Option<String>,
}

impl PgSilences {
    /// The silences of `table`, this host's when `host_id` is given.
    pub(crate) fn new(
        connector: Connector,
        table: TableName,
        host_id: Option<String>,
    ) -> PgSilences {
        PgSilences {
            connector,
            table,
            host_id,
        }
    }

    fn in_tx<T>(
        &self,
        begin: &str,
        body: impl FnOnce(&mut Client) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut client = self.connector.connect()?;
        in_transaction(&mut client, begin, body)
    }

    /// The silences in force or to come.
    pub(crate) fn list(&self) -> Result<Vec<Silence>, PgError> {
        let mut client = self.connector.connect()?;
        read(&mut client, &self.table, self.host_id.as_deref())
    }

    /// Inserts `rows` (one silence), after deleting this host's rows that
    /// ended more than a day before `now`.
    pub(crate) fn add(&self, rows: &[Silence], now: SystemTime) -> Result<(), PgError> {
        let table = &self.table;
        let host = self.host_id.as_deref();
        let insert = format!(
            "INSERT INTO {} (silence_id, game_id, starts_at, ends_at, created_by, comment{}) \
             VALUES ($1::uuid, $2, $3, $4, $5, $6{})",
            table.quoted(),
            if host.is_some() { ", host_id" } else { "" },
            if host.is_some() { ", $7" } else { "" },
        );
        let prune = format!(
            "DELETE FROM {} WHERE ends_at < $1::timestamptz - interval '1 day'{}",
            table.quoted(),
            match host {
                Some(_) => " AND host_id = $2",
                None => "",
            }
        );
        let count = format!(
            "SELECT count(*) FROM {} WHERE ends_at > $1::timestamptz{}",
            table.quoted(),
            host_clause(host, 2)
        );
        self.in_tx(BEGIN, |c| {
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&now, Type::TIMESTAMPTZ)];
            if let Some(h) = &host {
                params.push((h, Type::TEXT));
            }
            c.execute_typed(&prune, &params)
                .map_err(|e| missing(PgError::on_table(format!("pruning {table}"), e, table)))?;
            // The daemon reads at most MAX_SILENCES in force or to come: a
            // row past them would keep it on its last good set, unseen.
            let in_force: i64 = c
                .query_typed(&count, &params)
                .map_err(|e| missing(PgError::on_table(format!("counting {table}"), e, table)))?
                .first()
                .map_or(Ok(0), |row| row.try_get(0))
                .map_err(|e| PgError::on_table(format!("counting {table}"), e, table))?;
            if in_force as usize + rows.len() > MAX_SILENCES {
                return Err(PgError::schema(
                    format!("adding to {table}"),
                    format!(
                        "{in_force} silences are in force or to come, and at most \
                         {MAX_SILENCES} are read: end some"
                    ),
                ));
            }
            for row in rows {
                let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
                    (&row.id, Type::TEXT),
                    (&row.game_id, Type::TEXT),
                    (&row.starts_at, Type::TIMESTAMPTZ),
                    (&row.ends_at, Type::TIMESTAMPTZ),
                    (&row.created_by, Type::TEXT),
                    (&row.comment, Type::TEXT),
                ];
                if let Some(h) = &host {
                    params.push((h, Type::TEXT));
                }
                c.execute_typed(&insert, &params).map_err(|e| {
                    missing(PgError::on_table(
                        format!("inserting into {table}"),
                        e,
                        table,
                    ))
                })?;
            }
            Ok(())
        })
    }

    /// Ends the silence `id` at `now` (every silence in force or to come,
    /// when `None`).
    pub(crate) fn end(&self, id: Option<&str>, now: SystemTime) -> Result<Ended, PgError> {
        let table = &self.table;
        let host = self.host_id.as_deref();
        let (filter, next) = match id {
            Some(_) => (" AND silence_id = $2::uuid", 3),
            None => ("", 2),
        };
        let update = format!(
            "UPDATE {} SET ends_at = greatest($1, starts_at) WHERE ends_at > $1{filter}{}",
            table.quoted(),
            host_clause(host, next)
        );
        self.in_tx(BEGIN, |c| {
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&now, Type::TIMESTAMPTZ)];
            if let Some(id) = &id {
                params.push((id, Type::TEXT));
            }
            if let Some(h) = &host {
                params.push((h, Type::TEXT));
            }
            let n = c
                .execute_typed(&update, &params)
                .map_err(|e| missing(PgError::on_table(format!("updating {table}"), e, table)))?;
            let Some(id) = id else {
                return Ok(Ended::Now(n));
            };
            if n > 0 {
                return Ok(Ended::Now(n));
            }
            let query = format!(
                "SELECT max(ends_at) FROM {} WHERE silence_id = $1::uuid{}",
                table.quoted(),
                host_clause(host, 2)
            );
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&id, Type::TEXT)];
            if let Some(h) = &host {
                params.push((h, Type::TEXT));
            }
            let ended: Option<SystemTime> = c
                .query_typed_one(&query, &params)
                .and_then(|row| row.try_get(0))
                .map_err(|e| PgError::on_table(format!("reading {table}"), e, table))?;
            Ok(ended.map_or(Ended::Unknown, Ended::Already))
        })
    }
}

/// Which of `games` the records table knows (in any status; this host's,
/// with host scoping): `silence add` says which it does not.
pub(crate) fn known_games(
    connector: &Connector,
    records: &TableName,
    host: Option<&HostFilter>,
    games: &[String],
) -> Result<Vec<String>, PgError> {
    let mut query = format!(
        "SELECT DISTINCT game_id::text FROM {} WHERE game_id = ANY($1)",
        records.quoted()
    );
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&games, Type::TEXT_ARRAY)];
    if let Some(h) = host {
        query.push_str(&format!(" AND \"{}\" = $2", h.column));
        params.push((&h.host_id, Type::TEXT));
    }
    let mut client = connector.connect()?;
    let rows = in_transaction(&mut client, BEGIN_READ_ONLY, |c| {
        c.query_typed(&query, &params)
            .map_err(|e| PgError::on_table(format!("reading {records}"), e, records))
    })?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<_, Option<String>>(0).ok().flatten())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_reads_its_host_and_every_host() {
        let t = TableName::parse("ops.runtime_silences").unwrap();
        let q = silences_query(&t, None);
        assert!(
            q.contains("FROM \"ops\".\"runtime_silences\" WHERE ends_at > now() ORDER BY"),
            "{q}"
        );
        assert!(q.ends_with("LIMIT 10001"), "{q}");
        let q = silences_query(&t, Some("h1'; --"));
        assert!(
            q.contains("WHERE ends_at > now() AND (host_id = $1 OR host_id IS NULL)"),
            "{q}"
        );
        assert!(!q.contains("h1"), "the id is a parameter: {q}");
    }
}
