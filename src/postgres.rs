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
//!
//! `connect` opens the connections (the probe, keepalives, TLS), and
//! `transaction` begins and ends every transaction on them; `records`,
//! `sink`, `migrate`, `prune`, `history` and `silences` are the uses, each on
//! its own; `host` is which rows are this host's, for all of them; `error`
//! describes a failure of any of them.

mod connect;
mod error;
mod history;
mod host;
mod migrate;
mod prune;
mod records;
mod silences;
mod sink;
pub(crate) mod tls;
mod transaction;

pub use connect::Connector;
pub(crate) use history::{FACT_ROWS, HistoryRow, INCIDENT_ROWS, Rows, history_rows};
pub use host::HostFilter;
pub(crate) use migrate::{Tables, migrate};
pub(crate) use prune::{PRUNE_BATCH, prune_events};
pub use records::{PgRecords, records_query};
pub(crate) use silences::{PgSilences, is_missing, known_games};
pub(crate) use sink::PgSink;
