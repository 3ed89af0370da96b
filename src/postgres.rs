//! PostgreSQL: the runtime records source, the events sink (row plus NOTIFY)
//! and `migrate`.
//!
//! The sync `postgres` crate runs a current-thread runtime inside each client
//! and blocks the caller; no thread of ours is async. The record source and the
//! sink each own a connection, opened lazily and dropped on failure, so that a
//! restarted or failed-over server is reconnected on the next tick or retry.
//! Every call is bounded: connect (10 s), statements (30 s), and a peer that
//! vanished (TCP keepalives and a TCP user timeout notice it within 60 s).
//! A server frozen mid-call still has its kernel acknowledge every packet, so
//! nothing here notices it: the wiring's bounded shutdown abandons the call.
//! The sink tells an outage (retry) from a refusal of the event (set aside).
//! Table names come from validated configuration and are quoted; every value
//! from configuration or from a row is a bind parameter. TLS is rustls
//! (`tls`), following the URL's `sslmode`; its connector is built, and the CA
//! file read, when a [`Connector`] is made at start-up.

pub mod tls;

use std::fmt;
use std::time::Duration;

use postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Database, TableName};
use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::inspector::RuntimeRecord;
use crate::records::{RecordError, RecordSource};
use crate::sink::{EventSink, SinkError};
use tls::TlsError;

/// Bound on connecting when the URL sets none (libpq waits forever by default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on any one statement, so a locked table cannot stall a tick forever.
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// TCP keepalives: the first probe after this much silence, then one every
/// [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`] times (the default idle time
/// is two hours, during which a call on a half-open connection would wait).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 4;

/// How long sent data may stay unacknowledged before the kernel drops the
/// connection: a peer whose packets vanish is noticed within this, even
/// mid-statement, where keepalives (idle connections only) would not.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLSTATE undefined_table.
const UNDEFINED_TABLE: &str = "42P01";

/// A PostgreSQL failure, described for an operator.
#[derive(Debug)]
pub struct PgError {
    /// What was being done ("connecting", "reading runtime_records", …).
    pub step: String,
    /// The server's or the driver's words.
    pub detail: String,
    /// Whether the connection is unusable afterwards.
    pub connection_lost: bool,
    /// The server's SQLSTATE, when the server answered with an error.
    pub sqlstate: Option<String>,
    /// The driver's error.
    pub source: Option<postgres::Error>,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl PgError {
    fn new(step: impl Into<String>, e: postgres::Error) -> PgError {
        PgError {
            step: step.into(),
            detail: describe(&e),
            connection_lost: e.is_closed() || e.as_db_error().is_none(),
            sqlstate: e.as_db_error().map(|db| db.code().code().to_owned()),
            source: Some(e),
        }
    }

    /// Whether the server refused the values of this statement, which no
    /// retry changes: a data exception (SQLSTATE class 22, a NOTIFY payload
    /// over 8000 bytes among them: 22023) or an integrity violation (23).
    pub fn refuses_the_values(&self) -> bool {
        self.sqlstate
            .as_deref()
            .is_some_and(|s| s.starts_with("22") || s.starts_with("23"))
    }
}

/// The driver's error and its causes on one line; a server error as
/// `message (SQLSTATE code)` with its detail and hint.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(&format!("; {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(&format!(": {c}"));
        }
        source = cause.source();
    }
    s
}

/// The database settings with their TLS connector: what every connection of
/// an adapter is opened with.
#[derive(Clone)]
pub struct Connector {
    db: Database,
    tls: MakeRustlsConnect,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Builds the TLS connector for `db`'s sslmode, reading its CA file now,
    /// so that a bad one is a start-up error rather than a failure of each tick.
    pub fn new(db: Database) -> Result<Connector, TlsError> {
        let tls = tls::connector(db.ssl_mode, db.ca_file.as_ref())?;
        Ok(Connector { db, tls })
    }

    /// Opens a connection; see [`connect`].
    pub fn connect(&self) -> Result<Client, PgError> {
        connect(&self.db, &self.tls)
    }
}

/// Opens a connection with a connect timeout and a statement timeout.
pub fn connect(db: &Database, tls: &MakeRustlsConnect) -> Result<Client, PgError> {
    let mut config = db.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    let options = match config.get_options() {
        Some(o) => format!("{o} -c statement_timeout={STATEMENT_TIMEOUT_MS}"),
        None => format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"),
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("rtinspect");
    }
    config
        .connect(tls.clone())
        .map_err(|e| PgError::new("connecting to PostgreSQL", e))
}

impl PgError {
    /// A failure of a statement on `table`; a missing table says so by name.
    fn on_table(step: impl Into<String>, e: postgres::Error, table: &TableName) -> PgError {
        let mut err = PgError::new(step, e);
        if err.sqlstate.as_deref() == Some(UNDEFINED_TABLE) {
            err.detail = format!(
                "table {table} does not exist (create it with `rtinspect migrate`, or set the table option)"
            );
        }
        err
    }
}

/// Runtime records from `SELECT game_id, current_container_id FROM <table>
/// WHERE status = 'running'`, as a prepared statement on a kept connection.
pub struct PgRecords {
    connector: Connector,
    table: TableName,
    query: String,
    conn: Option<(Client, Statement)>,
}

impl fmt::Debug for PgRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRecords")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PgRecords {
    /// A source reading `table`; nothing is opened until the first tick.
    pub fn new(connector: Connector, table: TableName) -> Self {
        let query = format!(
            "SELECT game_id, current_container_id FROM {} WHERE status = 'running'",
            table.quoted()
        );
        PgRecords {
            connector,
            table,
            query,
            conn: None,
        }
    }

    fn read(&mut self) -> Result<Vec<RuntimeRecord>, PgError> {
        if self.conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            let mut client = self.connector.connect()?;
            let statement = client.prepare(&self.query).map_err(|e| {
                PgError::on_table(
                    format!("preparing the query on {}", self.table),
                    e,
                    &self.table,
                )
            })?;
            check_text_columns(&statement, &self.table)?;
            self.conn = Some((client, statement));
        }
        let (client, statement) = self.conn.as_mut().expect("connected above");
        let rows = client
            .query(&*statement, &[])
            .map_err(|e| PgError::new(format!("reading {}", self.table), e))?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let game_id: Option<String> = row.get(0);
            let container_id: Option<String> = row.get(1);
            // A NULL game or container id is refused by the tick core like an
            // empty one, with a warning.
            records.push(RuntimeRecord::new(
                game_id.unwrap_or_default(),
                container_id.unwrap_or_default(),
            ));
        }
        Ok(records)
    }
}

/// The records query reads two text columns; anything else is a schema error
/// an operator must fix, said once, clearly.
fn check_text_columns(statement: &Statement, table: &TableName) -> Result<(), PgError> {
    for column in statement.columns() {
        let ty = column.type_();
        if *ty != postgres::types::Type::TEXT && *ty != postgres::types::Type::VARCHAR {
            return Err(PgError {
                step: format!("checking the columns of {table}"),
                detail: format!(
                    "column {} has type {}, expected text",
                    column.name(),
                    ty.name()
                ),
                connection_lost: false,
                sqlstate: None,
                source: None,
            });
        }
    }
    Ok(())
}

impl RecordSource for PgRecords {
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError> {
        self.read().map_err(|e| {
            // Drop the connection on any failure: the next tick starts afresh,
            // and a schema fix is picked up without a restart.
            self.conn = None;
            RecordError::Database(Box::new(e))
        })
    }
}

/// Events into `<events table>` plus `pg_notify(channel, envelope)`, in one
/// transaction; `ON CONFLICT (event_id) DO NOTHING` makes a retry harmless.
pub struct PgSink {
    connector: Connector,
    table: TableName,
    channel: Option<String>,
    insert: String,
    client: Option<Client>,
}

impl fmt::Debug for PgSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSink")
            .field("table", &self.table)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PgSink {
    /// A sink writing to `table`, notifying on `channel` when set.
    pub fn new(connector: Connector, table: TableName, channel: Option<String>) -> Self {
        // Parameters are cast from text so no extra type features are needed.
        let insert = format!(
            "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details) \
             VALUES ($1::text::uuid, $2, $3, $4, $5::text::timestamptz, $6::text::jsonb) \
             ON CONFLICT (event_id) DO NOTHING",
            table.quoted()
        );
        PgSink {
            connector,
            table,
            channel,
            insert,
            client: None,
        }
    }

    fn write(&mut self, event: &HealthEvent) -> Result<(), PgError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.connector.connect()?);
        }
        let client = self.client.as_mut().expect("connected above");
        // The row's details are the envelope's, byte for byte.
        let details = event.details_json();
        let table = &self.table;
        let mut tx = client
            .transaction()
            .map_err(|e| PgError::new("beginning a transaction", e))?;
        tx.execute(
            &self.insert,
            &[
                &event.event_id,
                &event.game_id,
                &event.container_id,
                &INSPECT_UNHEALTHY,
                &event.occurred_at,
                &details,
            ],
        )
        .map_err(|e| PgError::on_table(format!("inserting into {table}"), e, table))?;
        if let Some(channel) = &self.channel {
            tx.execute("SELECT pg_notify($1, $2)", &[channel, &event.envelope])
                .map_err(|e| PgError::new(format!("notifying {channel}"), e))?;
        }
        tx.commit().map_err(|e| PgError::new("committing", e))
    }
}

impl EventSink for PgSink {
    fn publish(&mut self, event: &HealthEvent) -> Result<(), SinkError> {
        self.write(event).map_err(|e| {
            if e.connection_lost {
                self.client = None;
            }
            if e.refuses_the_values() {
                SinkError::Refused(Box::new(e))
            } else {
                SinkError::Unavailable(Box::new(e))
            }
        })
    }
}

/// What `migrate` did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStep {
    /// "table" or "index".
    pub kind: &'static str,
    /// Its qualified name.
    pub name: String,
    /// Whether it was created now (false: it existed).
    pub created: bool,
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.created { "created" } else { "exists:" };
        write!(f, "{what} {} {}", self.kind, self.name)
    }
}

/// The name of the records table's status index: `<table>_status_idx`, cut to
/// PostgreSQL's 63-byte identifier limit, in the table's schema.
fn status_index(records: &TableName) -> (String, String) {
    let mut name = format!("{}_status_idx", records.table());
    name.truncate(63);
    let qualified = match records.to_string().rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.{name}"),
        None => name.clone(),
    };
    (name, qualified)
}

/// Creates the records table, its status index and the events table when
/// missing, in one transaction. Idempotent.
pub fn migrate(
    connector: &Connector,
    records: &TableName,
    events: &TableName,
) -> Result<Vec<MigrationStep>, PgError> {
    let mut client = connector.connect()?;
    let mut tx = client
        .transaction()
        .map_err(|e| PgError::new("beginning a transaction", e))?;
    let (index, index_qualified) = status_index(records);
    let objects: [(&'static str, String, String); 3] = [
        (
            "table",
            records.to_string(),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (\
                 game_id text PRIMARY KEY, \
                 status text NOT NULL, \
                 current_container_id text NOT NULL DEFAULT '', \
                 updated_at timestamptz NOT NULL DEFAULT now())",
                records.quoted()
            ),
        ),
        (
            "index",
            index_qualified,
            format!(
                "CREATE INDEX IF NOT EXISTS \"{index}\" ON {} (status)",
                records.quoted()
            ),
        ),
        (
            "table",
            events.to_string(),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (\
                 event_id uuid PRIMARY KEY, \
                 game_id text NOT NULL, \
                 container_id text NOT NULL, \
                 event_type text NOT NULL, \
                 occurred_at timestamptz NOT NULL, \
                 details jsonb NOT NULL, \
                 recorded_at timestamptz NOT NULL DEFAULT now())",
                events.quoted()
            ),
        ),
    ];
    let mut steps = Vec::new();
    for (kind, name, ddl) in objects {
        let quoted_name = quote_qualified(&name);
        let existed: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted_name])
            .map_err(|e| PgError::new(format!("looking up {name}"), e))?
            .get(0);
        if !existed {
            tx.batch_execute(&ddl)
                .map_err(|e| PgError::new(format!("creating {kind} {name}"), e))?;
        }
        steps.push(MigrationStep {
            kind,
            name,
            created: !existed,
        });
    }
    tx.commit().map_err(|e| PgError::new("committing", e))?;
    Ok(steps)
}

/// `a.b` → `"a"."b"`, for `to_regclass`, which would fold unquoted names.
fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_index_name_follows_the_table_and_its_schema() {
        let t = TableName::parse("ops.runtime_records").unwrap();
        assert_eq!(
            status_index(&t),
            (
                "runtime_records_status_idx".to_string(),
                "ops.runtime_records_status_idx".to_string()
            )
        );
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        assert_eq!(status_index(&long).0.len(), 63);
    }

    #[test]
    fn qualified_names_are_quoted_per_part() {
        assert_eq!(quote_qualified("ops.Runtime"), "\"ops\".\"Runtime\"");
        assert_eq!(quote_qualified("t"), "\"t\"");
    }

    #[test]
    fn migration_steps_read_well() {
        let s = MigrationStep {
            kind: "table",
            name: "runtime_records".into(),
            created: true,
        };
        assert_eq!(s.to_string(), "created table runtime_records");
    }
}
