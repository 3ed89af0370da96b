//! The runtime records source: the running records of the records table,
//! with host scoping only this host's, read in a short read-only transaction
//! on a kept connection; the columns are checked to be text before a row is
//! decoded, and a missing table or host column is named.

use std::fmt;

use postgres::Client;
use postgres::types::{ToSql, Type};

use super::connect::Connector;
use super::error::{PgError, UNDEFINED_COLUMN, UNDEFINED_FUNCTION};
use super::host::HostFilter;
use super::transaction::{BEGIN_READ_ONLY, in_transaction};
use crate::config::TableName;
use crate::inspector::RuntimeRecord;
use crate::records::{RecordError, RecordSource, SilencesReadError};
use crate::silence::Silence;

/// The records query: the running records, and with host scoping only
/// this host's (`AND "<column>" = $1`), which the index
/// `(<column>, status) INCLUDE (game_id, current_container_id)` that
/// `migrate` creates answers with an index-only scan.
pub fn records_query(table: &TableName, host: Option<&HostFilter>) -> String {
    let mut query = format!(
        "SELECT game_id, current_container_id FROM {} WHERE status = 'running'",
        table.quoted()
    );
    if let Some(host) = host {
        query.push_str(&format!(" AND \"{}\" = $1", host.column));
    }
    query
}

/// Runtime records from [`records_query`], in a short read-only transaction
/// on a kept connection.
pub struct PgRecords {
    connector: Connector,
    table: TableName,
    host: Option<HostFilter>,
    query: String,
    client: Option<Client>,
    /// The silences table, read on the same connection at each tick, when
    /// incidents are tracked.
    silences: Option<TableName>,
}

impl fmt::Debug for PgRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRecords")
            .field("table", &self.table)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl PgRecords {
    /// A source reading `table`, only `host`'s records when given; nothing
    /// is opened until the first tick.
    pub(crate) fn new(connector: Connector, table: TableName, host: Option<HostFilter>) -> Self {
        let query = records_query(&table, host.as_ref());
        PgRecords {
            connector,
            table,
            host,
            query,
            client: None,
            silences: None,
        }
    }

    /// Reads the silences of `table` too, on the same connection.
    pub(crate) fn with_silences(mut self, table: TableName) -> Self {
        self.silences = Some(table);
        self
    }

    fn read_silences(&mut self, table: &TableName) -> Result<Vec<Silence>, PgError> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connector.connect()?,
        };
        let client = self.client.insert(client);
        let host = self.host.as_ref().map(|h| h.host_id.as_str());
        super::silences::read(client, table, host)
    }

    /// Reads the records; a kept connection whose server is to be left (it
    /// went away, or no longer takes writes when the URL asks for one that
    /// does) is given up and the read done once more on a new connection,
    /// so that a failover costs no tick.
    fn read(&mut self) -> Result<Vec<RuntimeRecord>, PgError> {
        let kept = self.client.as_ref().is_some_and(|c| !c.is_closed());
        match self.read_once() {
            Err(e) if kept && e.connection_lost => {
                log::info!(err:% = e; "reading the records again on a new connection");
                self.client = None;
                self.read_once()
            }
            read => read,
        }
    }

    fn read_once(&mut self) -> Result<Vec<RuntimeRecord>, PgError> {
        let (client, fresh) = match self.client.take() {
            Some(c) if !c.is_closed() => (c, false),
            _ => (self.connector.connect()?, true),
        };
        let client = self.client.insert(client);
        let (table, host, query) = (&self.table, self.host.as_ref(), self.query.as_str());
        let read_write = self.connector.wants_read_write();
        let rows = in_transaction(client, BEGIN_READ_ONLY, |client| {
            // The driver checks `transaction_read_only` only when it
            // connects; a server fenced read-only since (a failover's old
            // primary) would go on serving records the new primary no
            // longer agrees with.
            if read_write && !fresh && takes_no_writes(client)? {
                return Err(PgError::read_only_server(format!("reading {table}")));
            }
            let params: Vec<(&(dyn ToSql + Sync), Type)> = match host {
                Some(h) => vec![(&h.host_id, Type::TEXT)],
                None => Vec::new(),
            };
            let rows = client
                .query_typed(query, &params)
                .map_err(|e| records_error(e, table, host))?;
            // Once per connection, as a prepared statement's columns were
            // checked before: an empty result says nothing about its types.
            if fresh {
                check_record_columns(client, table)?;
            }
            Ok(rows)
        })?;
        // Every row has the columns of the one statement.
        if let Some(first) = rows.first() {
            check_text_columns(first.columns(), table)?;
        }
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let text = |i: usize| {
                row.try_get::<_, Option<String>>(i).map_err(|e| {
                    PgError::schema(format!("reading the columns of {table}"), e.to_string())
                })
            };
            // A NULL game or container id is refused by the tick core like an
            // empty one, with a warning.
            records.push(RuntimeRecord::new(
                text(0)?.unwrap_or_default(),
                text(1)?.unwrap_or_default(),
            ));
        }
        Ok(records)
    }
}

/// Whether the server takes no writes now: it is a standby, or its default
/// makes every transaction read-only (how a failover fences the old primary).
/// Inside the read-only transaction `transaction_read_only` is always on, so
/// the default is asked for.
fn takes_no_writes(client: &mut Client) -> Result<bool, PgError> {
    client
        .query_typed_one(
            "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only')::boolean",
            &[],
        )
        .map(|row| row.get(0))
        .map_err(|e| PgError::new("asking whether the server takes writes", e))
}

/// A failed records query, a missing or unfit host column named.
fn records_error(e: postgres::Error, table: &TableName, host: Option<&HostFilter>) -> PgError {
    let mut err = PgError::on_table(format!("reading {table}"), e, table);
    if let Some(host) = host {
        match err.sqlstate.as_deref() {
            Some(UNDEFINED_COLUMN) => err.detail.push_str(&format!(
                "; the records table needs the text column named by --host-column ({}): \
                 add it, or fix the option",
                host.column
            )),
            Some(UNDEFINED_FUNCTION) => err.detail.push_str(&format!(
                "; --host-column {} must name a text column",
                host.column
            )),
            _ => {}
        }
    }
    err
}

/// The two columns the records query decodes, by the catalog: each must be
/// text or varchar, or a domain over one (the server sends a domain's values
/// as its base type). Asked without a prepared statement, which PgBouncer in
/// transaction mode cannot keep.
fn check_record_columns(client: &mut Client, table: &TableName) -> Result<(), PgError> {
    // Quoted per part for `to_regclass`, which would fold unquoted names.
    let quoted = table.quoted();
    let rows = client
        .query_typed(
            "SELECT a.attname::text, base.typname::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_type base ON base.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attname IN ('game_id', 'current_container_id') ORDER BY a.attnum",
            &[(&quoted, Type::TEXT)],
        )
        .map_err(|e| PgError::new(format!("checking the columns of {table}"), e))?;
    for row in rows {
        let (name, ty): (String, String) = (row.get(0), row.get(1));
        if ty != "text" && ty != "varchar" {
            return Err(PgError::schema(
                format!("checking the columns of {table}"),
                format!("column {name} has type {ty}, expected text"),
            ));
        }
    }
    Ok(())
}

/// The columns of a result, as [`check_record_columns`] checks the table's:
/// the last word before a row is decoded.
fn check_text_columns(columns: &[postgres::Column], table: &TableName) -> Result<(), PgError> {
    for column in columns {
        let ty = column.type_();
        if *ty != Type::TEXT && *ty != Type::VARCHAR {
            return Err(PgError::schema(
                format!("checking the columns of {table}"),
                format!(
                    "column {} has type {}, expected text",
                    column.name(),
                    ty.name()
                ),
            ));
        }
    }
    Ok(())
}

impl RecordSource for PgRecords {
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError> {
        self.read().map_err(|e| {
            // Drop the connection on any failure: the next tick starts afresh,
            // and a schema fix is picked up without a restart.
            self.client = None;
            RecordError::Database(Box::new(e))
        })
    }

    fn silences(&mut self) -> Option<Result<Vec<Silence>, SilencesReadError>> {
        let table = self.silences.clone()?;
        Some(self.read_silences(&table).map_err(|e| {
            if e.connection_lost {
                self.client = None;
            }
            if super::silences::is_missing(&e) {
                SilencesReadError::Missing(e.to_string())
            } else {
                SilencesReadError::Failed(e.to_string())
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_query_binds_the_host_id() {
        let t = TableName::parse("ops.rt").unwrap();
        assert_eq!(
            records_query(&t, None),
            "SELECT game_id, current_container_id FROM \"ops\".\"rt\" WHERE status = 'running'"
        );
        let host = HostFilter {
            column: "host".into(),
            host_id: "h1'; --".into(),
        };
        let q = records_query(&t, Some(&host));
        assert!(
            q.ends_with("WHERE status = 'running' AND \"host\" = $1"),
            "{q}"
        );
        assert!(!q.contains("h1"), "the id is a parameter, never text: {q}");
    }
}
