//! Record sources: where the list of runtimes that should be running comes from.
//!
//! Label mode (the embedded default, `label`) reads it from Docker itself;
//! PostgreSQL mode lives in `postgres`. Both hand the tick driver the same
//! [`RuntimeRecord`]s, through [`RecordSource`].

mod label;

use std::fmt;

use crate::Cause;
use crate::docker::DockerError;
use crate::inspector::RuntimeRecord;
use crate::silence::Silence;

pub use label::LabelRecords;

/// Why the record list could not be read this tick.
#[derive(Debug)]
pub enum RecordError {
    /// Listing labelled containers failed.
    Docker(DockerError),
    /// The database failed (connection, query, schema).
    Database(Cause),
}

impl RecordError {
    /// Whether the failure is dockerd's (label mode), not the record store's.
    pub(crate) fn is_docker(&self) -> bool {
        matches!(self, RecordError::Docker(_))
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Docker(e) => write!(f, "listing labelled containers: {e}"),
            RecordError::Database(e) => write!(f, "reading runtime records: {e}"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Docker(e) => Some(e),
            RecordError::Database(e) => Some(e.as_ref()),
        }
    }
}

/// A source of the runtimes that should be running.
pub trait RecordSource {
    /// The current list, in the order they are to be inspected.
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError>;

    /// The silences kept beside the records (PostgreSQL mode's table, read
    /// on the records' connection), or `None` when they are kept elsewhere.
    fn silences(&mut self) -> Option<Result<Vec<Silence>, SilencesReadError>> {
        None
    }
}

/// Why the silences could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilencesReadError {
    /// They have no place yet: an older schema, without the table (or its
    /// host column); `migrate` makes it. There are no silences.
    Missing(String),
    /// Reading failed (the database is down, say): the last set read stays.
    Failed(String),
}
