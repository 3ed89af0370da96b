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
    pub(super) fn new(step: impl Into<String>, e: postgres::Error) -> PgError {
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
