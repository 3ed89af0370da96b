//! PostgreSQL: the runtime records source, the events sink (row plus NOTIFY),
//! `migrate` and `prune-events`.
//!
//! The sync `postgres` crate runs a current-thread runtime inside each client
//! and blocks the caller; no thread of ours is async. The record source and the
//! sink each own a connection, opened lazily and dropped on failure, so that a
//! restarted or failed-over server is reconnected on the next tick or retry.
//! Every call is bounded: connect (10 s), statements (30 s), and a peer that
//! vanished (TCP keepalives and a TCP user timeout notice it within 60 s).
//!
//! Everything works through PgBouncer in transaction pooling mode with its
//! default settings, where consecutive transactions of one client may run on
//! different server connections: no startup parameter it refuses (`options`;
//! the statement timeout is a `SET LOCAL` in each transaction, so the records
//! read is a short read-only transaction too), and no named prepared
//! statement (`query_typed` and `execute_typed` send unnamed ones, parsed and
//! run in one round trip).
//! A server frozen mid-call still has its kernel acknowledge every packet, so
//! nothing here notices it: the wiring's bounded shutdown abandons the call.
//! The sink tells an outage (retry) from a refusal of the event (set aside).
//! Table names come from validated configuration and are quoted; every value
//! from configuration or from a row is a bind parameter. TLS is rustls
//! (`tls`), following the URL's `sslmode`; its connector is built, and the CA
//! file read, when a [`Connector`] is made at start-up.

pub mod tls;

use std::fmt;
use std::time::{Duration, SystemTime};

use postgres::Client;
use postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Database, TableName};
use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::inspector::RuntimeRecord;
use crate::records::{RecordError, RecordSource};
use crate::sink::{EventSink, SinkError};
use tls::TlsError;

/// Bound on connecting when the URL sets none (libpq waits forever by default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How every transaction of the daemon and of `prune-events` begins, with a
/// 30 s bound on each statement so that a locked table cannot stall a tick
/// forever: one round trip (a simple query of two statements). `SET LOCAL` lasts until
/// the transaction ends, so it never leaks to another client of a pooled
/// server connection, and needs no startup parameter.
const BEGIN: &str = "BEGIN; SET LOCAL statement_timeout = 30000";

/// The records read: read-only, bounded like the others.
const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY; SET LOCAL statement_timeout = 30000";

/// `migrate` may build an index on a big table: a longer bound, and a short
/// wait for its locks, so that it never queues the fleet's writes behind a
/// long transaction for long.
const BEGIN_MIGRATION: &str =
    "BEGIN; SET LOCAL statement_timeout = '10min'; SET LOCAL lock_timeout = '10s'";

/// `prune-events` deletes at most this many rows per statement and
/// transaction: short locks, short transactions, a bounded WAL burst.
pub const PRUNE_BATCH: i64 = 10_000;

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

/// SQLSTATE undefined_column.
const UNDEFINED_COLUMN: &str = "42703";

/// SQLSTATE undefined_function: what comparing a non-text host column with
/// the text host id gives ("operator does not exist: integer = text").
const UNDEFINED_FUNCTION: &str = "42883";

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

/// Opens a connection with a connect timeout, TCP keepalives and a TCP user
/// timeout. No statement timeout here: PgBouncer refuses the `options`
/// startup parameter that would carry it ("unsupported startup parameter:
/// options", SQLSTATE 08P01); each transaction sets it (`SET LOCAL`).
pub fn connect(db: &Database, tls: &MakeRustlsConnect) -> Result<Client, PgError> {
    let mut config = db.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    probe(&mut config)?;
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("rtinspect");
    }
    config
        .connect(tls.clone())
        .map_err(|e| PgError::new("connecting to PostgreSQL", e))
}

/// PostgreSQL's SSLRequest: length 8, code 80877103. Any server answers it
/// with one byte, `S` or `N`, before anything else.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Makes sure, before the driver connects, that a server answers at all.
///
/// tokio-postgres bounds only the socket connect by `connect_timeout`: the
/// startup exchange after it (SSLRequest, startup, authentication) has no
/// bound, so a server frozen with SIGSTOP (its kernel still accepts the
/// connection), or a port that accepts and never speaks, would hold a
/// connect, and the thread calling it, for ever. The probe sends an
/// SSLRequest on a socket of its own and waits at most the connect timeout
/// for the one-byte answer, then closes. (A server that answered `N` logs
/// nothing for that; one that offers TLS logs the unfinished handshake, once
/// per reconnect.) A host name is resolved here, in the calling thread, and
/// handed to the driver as `hostaddr`: the driver's own lookup starts a
/// thread, and aborts the process when it cannot.
fn probe(config: &mut postgres::Config) -> Result<(), PgError> {
    use postgres::config::Host;
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    let hosts = config.get_hosts().to_vec();
    let ports = config.get_ports().to_vec();
    let port_of = |i: usize| match ports.as_slice() {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let ask = |stream: &mut dyn ReadWrite| -> std::io::Result<()> {
        stream.write_all(&SSL_REQUEST)?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer)
    };
    let mut last_error = None;
    for (i, host) in hosts.iter().enumerate() {
        let port = port_of(i);
        let tried = match host {
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                crate::docker::unix_socket::connect_within(&path, Some(timeout))
                    .and_then(|mut s| {
                        s.set_read_timeout(Some(timeout))?;
                        s.set_write_timeout(Some(timeout))?;
                        ask(&mut s)
                    })
                    .map(|()| None)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Host::Tcp(name) => {
                use std::net::ToSocketAddrs;
                let known = config.get_hostaddrs().get(i).copied();
                let addrs: Vec<std::net::SocketAddr> = match known {
                    Some(ip) => vec![(ip, port).into()],
                    None => (name.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| format!("{name}: {e}"))
                        .map(Iterator::collect)
                        .unwrap_or_else(|e| {
                            last_error = Some(e);
                            Vec::new()
                        }),
                };
                let mut answered = Err(format!("{name}:{port}: no address"));
                for addr in addrs {
                    let resolved = known.is_none().then_some(addr.ip());
                    let result =
                        std::net::TcpStream::connect_timeout(&addr, timeout).and_then(|mut s| {
                            s.set_read_timeout(Some(timeout))?;
                            s.set_write_timeout(Some(timeout))?;
                            ask(&mut s)
                        });
                    match result {
                        Ok(()) => {
                            answered = Ok(resolved);
                            break;
                        }
                        Err(e) => answered = Err(format!("{addr}: {e}")),
                    }
                }
                answered
            }
        };
        match tried {
            Ok(ip) => {
                // One host: hand the driver the address that answered, so
                // that it looks nothing up (several: each host must keep its
                // own entry, and the driver resolves them).
                if let (Some(ip), 1) = (ip, hosts.len()) {
                    config.hostaddr(ip);
                }
                return Ok(());
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(PgError {
        step: "connecting to PostgreSQL".into(),
        detail: format!(
            "no server answered within {timeout:?} ({})",
            last_error.unwrap_or_else(|| "no host".into())
        ),
        connection_lost: true,
        sqlstate: None,
        source: None,
    })
}

/// A socket the probe can write its request to and read the answer from.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// Runs `body` in a transaction begun with `begin`, and commits; on a
/// failure of `body` the transaction is rolled back, so that the connection
/// can serve the next call (or, if even that fails, is marked lost).
fn in_transaction<T>(
    client: &mut Client,
    begin: &str,
    body: impl FnOnce(&mut Client) -> Result<T, PgError>,
) -> Result<T, PgError> {
    client
        .batch_execute(begin)
        .map_err(|e| PgError::new("beginning a transaction", e))?;
    match body(client) {
        Ok(value) => {
            client
                .batch_execute("COMMIT")
                .map_err(|e| PgError::new("committing", e))?;
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

    /// A failure that is not the server's nor the driver's: a schema that
    /// cannot work, found by looking at it.
    fn schema(step: impl Into<String>, detail: String) -> PgError {
        PgError {
            step: step.into(),
            detail,
            connection_lost: false,
            sqlstate: None,
            source: None,
        }
    }
}

/// This host's slice of a shared records table, ready for the adapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFilter {
    /// The records table's column naming the host (a validated identifier).
    pub column: String,
    /// This host's id, bound as `$1`.
    pub host_id: String,
}

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
    pub fn new(connector: Connector, table: TableName, host: Option<HostFilter>) -> Self {
        let query = records_query(&table, host.as_ref());
        PgRecords {
            connector,
            table,
            host,
            query,
            client: None,
        }
    }

    fn read(&mut self) -> Result<Vec<RuntimeRecord>, PgError> {
        let (client, fresh) = match self.client.take() {
            Some(c) if !c.is_closed() => (c, false),
            _ => (self.connector.connect()?, true),
        };
        let client = self.client.insert(client);
        let (table, host, query) = (&self.table, self.host.as_ref(), self.query.as_str());
        let rows = in_transaction(client, BEGIN_READ_ONLY, |client| {
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
    let quoted = quote_qualified(&table.to_string());
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
}

/// Events into `<events table>` plus `pg_notify(channel, envelope)`, in one
/// transaction; `ON CONFLICT (event_id) DO NOTHING` makes a retry harmless.
/// With host scoping the row's `host_id` is this host's id.
pub struct PgSink {
    connector: Connector,
    table: TableName,
    channel: Option<String>,
    host_id: Option<String>,
    insert: String,
    client: Option<Client>,
}

impl fmt::Debug for PgSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSink")
            .field("table", &self.table)
            .field("channel", &self.channel)
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

impl PgSink {
    /// A sink writing to `table`, notifying on `channel` when set, filling
    /// `host_id` when given.
    pub fn new(
        connector: Connector,
        table: TableName,
        channel: Option<String>,
        host_id: Option<String>,
    ) -> Self {
        let (column, value) = if host_id.is_some() {
            (", host_id", ", $7")
        } else {
            ("", "")
        };
        // Every parameter is sent as text and cast, so no extra type
        // features are needed.
        let insert = format!(
            "INSERT INTO {} (event_id, game_id, container_id, event_type, occurred_at, details{column}) \
             VALUES ($1::text::uuid, $2, $3, $4, $5::text::timestamptz, $6::text::jsonb{value}) \
             ON CONFLICT (event_id) DO NOTHING",
            table.quoted()
        );
        PgSink {
            connector,
            table,
            channel,
            host_id,
            insert,
            client: None,
        }
    }

    fn write(&mut self, event: &HealthEvent) -> Result<(), PgError> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connector.connect()?,
        };
        let client = self.client.insert(client);
        // The row's details are the envelope's, byte for byte.
        let details = event.details_json();
        let (table, insert, channel) = (&self.table, &self.insert, &self.channel);
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&event.event_id, Type::TEXT),
            (&event.game_id, Type::TEXT),
            (&event.container_id, Type::TEXT),
            (&INSPECT_UNHEALTHY, Type::TEXT),
            (&event.occurred_at, Type::TEXT),
            (&details, Type::TEXT),
        ];
        if let Some(host_id) = &self.host_id {
            params.push((host_id, Type::TEXT));
        }
        in_transaction(client, BEGIN, |client| {
            client.execute_typed(insert, &params).map_err(|e| {
                let mut err = PgError::on_table(format!("inserting into {table}"), e, table);
                if err.sqlstate.as_deref() == Some(UNDEFINED_COLUMN) {
                    err.detail
                        .push_str("; with --host-column the events table needs host_id: run `rtinspect migrate`");
                }
                err
            })?;
            if let Some(channel) = channel {
                client
                    .execute_typed(
                        "SELECT pg_notify($1, $2)",
                        &[(channel, Type::TEXT), (&event.envelope, Type::TEXT)],
                    )
                    .map_err(|e| PgError::new(format!("notifying {channel}"), e))?;
            }
            Ok(())
        })
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
    /// "table", "index" or "column".
    pub kind: &'static str,
    /// Its qualified name (a column as `table.column`).
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

/// The name of an index of `table`: `<table>_<suffix>`, the table's part cut
/// so that the whole fits PostgreSQL's 63-byte identifiers (as PostgreSQL
/// names indexes itself: cutting the suffix instead could make two indexes,
/// or an index and its table, one name); and that name in the table's schema.
/// A suffix longer than 62 bytes (a long host column's) keeps its end.
/// Names here are ASCII (validated identifiers): bytes are characters.
fn index_name(table: &TableName, suffix: &str) -> (String, String) {
    let suffix = &suffix[suffix.len().saturating_sub(62)..];
    let table_part = table.table();
    let head = &table_part[..table_part.len().min(62 - suffix.len())];
    let name = format!("{head}_{suffix}");
    let qualified = match table.to_string().rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.{name}"),
        None => name.clone(),
    };
    (name, qualified)
}

/// One object `migrate` makes when missing.
struct Wanted {
    kind: &'static str,
    /// The host column it is built on, checked first.
    on_host_column: Option<String>,
    /// The qualified name, as shown (`schema.name`, or `table.column`).
    name: String,
    /// Whether it exists.
    lookup: Lookup,
    /// The statement that makes it.
    ddl: String,
}

/// How `migrate` tells whether an object exists.
enum Lookup {
    /// A relation (table or index) by its qualified name.
    Relation,
    /// A column of a table.
    Column { table: TableName, column: String },
}

/// Creates what is missing, in one transaction, and says what it did;
/// idempotent. Always: the records table, its status index, the events
/// table and its `recorded_at` index (for `prune-events`). With
/// `host_column`: that column on a records table it creates, the index
/// `(<column>, status) INCLUDE (game_id, current_container_id)` on any
/// (a missing or non-text column is an error naming it), and the events'
/// `host_id` column.
pub fn migrate(
    connector: &Connector,
    records: &TableName,
    events: &TableName,
    host_column: Option<&str>,
) -> Result<Vec<MigrationStep>, PgError> {
    let mut client = connector.connect()?;
    in_transaction(&mut client, BEGIN_MIGRATION, |tx| {
        migrate_in(tx, records, events, host_column)
    })
}

fn migrate_in(
    tx: &mut Client,
    records: &TableName,
    events: &TableName,
    host_column: Option<&str>,
) -> Result<Vec<MigrationStep>, PgError> {
    let host_column_ddl = host_column
        .map(|c| format!(", \"{c}\" text"))
        .unwrap_or_default();
    let mut wanted = vec![
        Wanted {
            kind: "table",
            on_host_column: None,
            name: records.to_string(),
            lookup: Lookup::Relation,
            ddl: format!(
                "CREATE TABLE IF NOT EXISTS {} (\
                 game_id text PRIMARY KEY, \
                 status text NOT NULL, \
                 current_container_id text NOT NULL DEFAULT '', \
                 updated_at timestamptz NOT NULL DEFAULT now(){host_column_ddl})",
                records.quoted()
            ),
        },
        index(records, "status_idx", "(status)"),
    ];
    if let Some(column) = host_column {
        wanted.push(Wanted {
            on_host_column: Some(column.to_owned()),
            ..index(
                records,
                &format!("{column}_status_idx"),
                &format!("(\"{column}\", status) INCLUDE (game_id, current_container_id)"),
            )
        });
    }
    let host_id_ddl = if host_column.is_some() {
        ", host_id text"
    } else {
        ""
    };
    wanted.push(Wanted {
        kind: "table",
        on_host_column: None,
        name: events.to_string(),
        lookup: Lookup::Relation,
        ddl: format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             event_id uuid PRIMARY KEY, \
             game_id text NOT NULL, \
             container_id text NOT NULL, \
             event_type text NOT NULL, \
             occurred_at timestamptz NOT NULL, \
             details jsonb NOT NULL, \
             recorded_at timestamptz NOT NULL DEFAULT now(){host_id_ddl})",
            events.quoted()
        ),
    });
    if host_column.is_some() {
        // On a table that existed. Looked up first: ALTER TABLE takes its
        // exclusive lock even when the column is there.
        wanted.push(Wanted {
            kind: "column",
            on_host_column: None,
            name: format!("{events}.host_id"),
            lookup: Lookup::Column {
                table: events.clone(),
                column: "host_id".into(),
            },
            ddl: format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS host_id text",
                events.quoted()
            ),
        });
    }
    wanted.push(index(events, "recorded_at_idx", "(recorded_at)"));

    let mut steps: Vec<MigrationStep> = Vec::new();
    for want in wanted {
        let existed = match &want.lookup {
            Lookup::Relation => relation_exists(tx, &want)?,
            Lookup::Column { table, column } => {
                // A table created just now has every column already.
                let name = table.to_string();
                if steps
                    .iter()
                    .any(|s| s.created && s.kind == "table" && s.name == name)
                {
                    continue;
                }
                column_type(tx, table, column)?.is_some()
            }
        };
        if !existed {
            if let Some(column) = &want.on_host_column {
                check_host_column(tx, records, column)?;
            }
            tx.batch_execute(&want.ddl)
                .map_err(|e| PgError::new(format!("creating {} {}", want.kind, want.name), e))?;
        }
        steps.push(MigrationStep {
            kind: want.kind,
            name: want.name,
            created: !existed,
        });
    }
    Ok(steps)
}

/// `CREATE INDEX IF NOT EXISTS <table>_<suffix> ON <table> <columns>`.
fn index(table: &TableName, suffix: &str, columns: &str) -> Wanted {
    let (name, qualified) = index_name(table, suffix);
    Wanted {
        kind: "index",
        on_host_column: None,
        name: qualified,
        lookup: Lookup::Relation,
        ddl: format!(
            "CREATE INDEX IF NOT EXISTS \"{name}\" ON {} {columns}",
            table.quoted()
        ),
    }
}

/// Whether the relation exists; an index that exists but is invalid (a
/// `CREATE INDEX CONCURRENTLY` that failed) is an error: queries skip it.
fn relation_exists(tx: &mut Client, want: &Wanted) -> Result<bool, PgError> {
    let quoted_name = quote_qualified(&want.name);
    let row = tx
        .query_typed_one(
            "SELECT c.oid IS NOT NULL, coalesce(i.indisvalid, true) \
             FROM (SELECT to_regclass($1) AS oid) c \
             LEFT JOIN pg_index i ON i.indexrelid = c.oid",
            &[(&quoted_name, Type::TEXT)],
        )
        .map_err(|e| PgError::new(format!("looking up {}", want.name), e))?;
    let (exists, valid): (bool, bool) = (row.get(0), row.get(1));
    if exists && !valid {
        return Err(PgError::schema(
            format!("checking {} {}", want.kind, want.name),
            "the index exists but is invalid (a failed CREATE INDEX CONCURRENTLY?): \
             drop it and run migrate again"
                .into(),
        ));
    }
    Ok(exists)
}

/// The type of `table.column` as PostgreSQL writes it, `None` when the
/// column does not exist.
fn column_type(
    tx: &mut Client,
    table: &TableName,
    column: &str,
) -> Result<Option<String>, PgError> {
    let quoted_table = quote_qualified(&table.to_string());
    let row = tx
        .query_typed_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 \
             AND NOT attisdropped",
            &[(&quoted_table, Type::TEXT), (&column, Type::TEXT)],
        )
        .map_err(|e| PgError::new(format!("looking up column {column} of {table}"), e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The host column must exist on the records table, as text: rtinspect
/// never alters a table it did not create.
fn check_host_column(tx: &mut Client, records: &TableName, column: &str) -> Result<(), PgError> {
    let step = format!("checking --host-column {column}");
    match column_type(tx, records, column)?.as_deref() {
        Some("text") | Some("character varying") => Ok(()),
        Some(t) if t.starts_with("character varying(") => Ok(()),
        Some(other) => Err(PgError::schema(
            step,
            format!("column {column} of {records} has type {other}, expected text"),
        )),
        None => Err(PgError::schema(
            step,
            format!(
                "column {column} does not exist in {records}: add it \
                 (ALTER TABLE {records} ADD COLUMN {column} text) or fix --host-column"
            ),
        )),
    }
}

/// `a.b` → `"a"."b"`, for `to_regclass`, which would fold unquoted names.
fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// What `prune-events` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
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
pub fn prune_events(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_the_table_and_its_schema() {
        let t = TableName::parse("ops.runtime_records").unwrap();
        assert_eq!(
            index_name(&t, "status_idx"),
            (
                "runtime_records_status_idx".to_string(),
                "ops.runtime_records_status_idx".to_string()
            )
        );
        // A long name keeps its suffix: two indexes, or an index and its
        // table, never share a name.
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        let (status, _) = index_name(&long, "status_idx");
        let (host, _) = index_name(&long, "host_status_idx");
        assert_eq!(status.len(), 63);
        assert!(status.ends_with("_status_idx") && host.ends_with("_host_status_idx"));
        assert_ne!(status, long.table());
        // A 63-byte host column still gives a name PostgreSQL keeps whole.
        let column = "c".repeat(63);
        let (name, _) = index_name(&long, &format!("{column}_status_idx"));
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("c_status_idx"), "{name}");
    }

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
