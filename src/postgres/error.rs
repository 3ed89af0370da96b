//! What went wrong with PostgreSQL, said for an operator: the step, the
//! server's or the driver's words, and whether the connection survived.
//! Whether the server refused the values, which no retry changes, is read
//! from its SQLSTATE here.

use std::fmt;

use crate::config::TableName;

/// SQLSTATE undefined_table.
const UNDEFINED_TABLE: &str = "42P01";

/// SQLSTATE undefined_column.
pub(super) const UNDEFINED_COLUMN: &str = "42703";

/// SQLSTATE undefined_function: what comparing a non-text host column with
/// the text host id gives ("operator does not exist: integer = text").
pub(super) const UNDEFINED_FUNCTION: &str = "42883";

/// SQLSTATE read_only_sql_transaction: a write to a server that takes none
/// (a standby, a primary fenced with `default_transaction_read_only` in a
/// failover).
pub(super) const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// Whether a server error with this SQLSTATE means the connection's server
/// is the wrong one to keep: it will not take writes (25006), it is shutting
/// down or crashed (57P01 admin_shutdown, 57P02 crash_shutdown), or it is
/// starting or stopping (57P03 cannot_connect_now); or the connection itself
/// failed (class 08, connection exception). Kept, such a connection fails
/// every retry on the same server for ever, while a new one, through the
/// URL's hosts, reaches the server that took over.
pub(super) fn leaves_the_server(sqlstate: &str) -> bool {
    matches!(
        sqlstate,
        READ_ONLY_SQL_TRANSACTION | "57P01" | "57P02" | "57P03"
    ) || sqlstate.starts_with("08")
}

/// A PostgreSQL failure, described for an operator.
#[derive(Debug)]
pub(crate) struct PgError {
    /// What was being done ("connecting", "reading runtime_records", …).
    pub step: String,
    /// The server's or the driver's words.
    pub detail: String,
    /// Whether the connection must be given up: it is unusable afterwards,
    /// or its server will not take writes or is going away (SQLSTATE 25006,
    /// 57P01 to 57P03, class 08). The next call connects again, through the
    /// URL's hosts in order, so that `target_session_attrs=read-write` finds
    /// the server that takes writes now.
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
    pub(super) fn new(step: impl Into<String>, e: postgres::Error) -> PgError {
        let sqlstate = e.as_db_error().map(|db| db.code().code().to_owned());
        PgError {
            step: step.into(),
            detail: describe(&e),
            connection_lost: e.is_closed()
                || e.as_db_error().is_none()
                || sqlstate.as_deref().is_some_and(leaves_the_server),
            sqlstate,
            source: Some(e),
        }
    }

    /// The server this connection reached will not take writes now (the
    /// `target_session_attrs=read-write` a fresh connection would ask for
    /// no longer holds): the connection is given up like a lost one.
    pub(super) fn read_only_server(step: impl Into<String>) -> PgError {
        PgError {
            step: step.into(),
            detail: "the server no longer takes writes (target_session_attrs=read-write): \
                     connecting again through the URL's hosts"
                .into(),
            connection_lost: true,
            sqlstate: Some(READ_ONLY_SQL_TRANSACTION.into()),
            source: None,
        }
    }

    /// Whether the server refused the values of this statement, which no
    /// retry changes: a data exception (SQLSTATE class 22, a NOTIFY payload
    /// over 8000 bytes among them: 22023) or an integrity violation (23).
    pub(crate) fn refuses_the_values(&self) -> bool {
        self.sqlstate
            .as_deref()
            .is_some_and(|s| s.starts_with("22") || s.starts_with("23"))
    }

    /// A failure of a statement on `table`; a missing table says so by name.
    pub(super) fn on_table(
        step: impl Into<String>,
        e: postgres::Error,
        table: &TableName,
    ) -> PgError {
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
    pub(super) fn schema(step: impl Into<String>, detail: String) -> PgError {
        PgError {
            step: step.into(),
            detail,
            connection_lost: false,
            sqlstate: None,
            source: None,
        }
    }
}

/// The driver's error and its causes on one line; a server error as
/// `message (SQLSTATE code)` with its detail and hint.
pub(crate) fn describe(e: &postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_takes_no_writes_or_is_going_away_is_left() {
        for code in [
            "25006", "57P01", "57P02", "57P03", "08000", "08006", "08P01",
        ] {
            assert!(leaves_the_server(code), "{code}");
        }
        // A refused value, a trigger's RAISE, a lock or statement timeout,
        // a missing privilege: the server is the right one.
        for code in ["22P05", "23514", "P0001", "55P03", "57014", "42501"] {
            assert!(!leaves_the_server(code), "{code}");
        }
    }
}
