//! Record sources: where the list of runtimes that should be running comes from.
//!
//! Label mode (the embedded default) reads it from Docker itself; PostgreSQL
//! mode lives in `postgres`. Both hand the tick driver the same
//! [`RuntimeRecord`]s.

use std::collections::HashMap;
use std::fmt;

use crate::Cause;
use crate::docker::{ContainerLister, DockerError, LabelledContainer};
use crate::inspector::RuntimeRecord;

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
    pub fn is_docker(&self) -> bool {
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
}

/// Label mode: every container, in any state, that carries the label is a
/// record, and the label's value is its game id.
pub struct LabelRecords {
    docker: Box<dyn ContainerLister + Send>,
    label: String,
}

impl fmt::Debug for LabelRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelRecords")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl LabelRecords {
    /// Records from the containers labelled `label` on `docker`.
    pub fn new(docker: Box<dyn ContainerLister + Send>, label: impl Into<String>) -> Self {
        LabelRecords {
            docker,
            label: label.into(),
        }
    }
}

impl RecordSource for LabelRecords {
    fn records(&mut self) -> Result<Vec<RuntimeRecord>, RecordError> {
        let listed = self
            .docker
            .list_labelled(&self.label)
            .map_err(RecordError::Docker)?;
        Ok(one_container_per_game(listed))
    }
}

/// Keeps the newest container of each game, sorted by game id.
///
/// Declaring the label means "this container is expected to be running"; when
/// a game was replaced and its old container still exists, the newest one is
/// the one that should run, and reporting the old one every tick would be noise.
fn one_container_per_game(listed: Vec<LabelledContainer>) -> Vec<RuntimeRecord> {
    let mut newest: HashMap<String, LabelledContainer> = HashMap::new();
    for c in listed {
        match newest.get(&c.game_id) {
            Some(kept) if (kept.created, &kept.id) >= (c.created, &c.id) => {
                log::debug!(game_id = c.game_id.as_str(), container_id = c.id.as_str();
                    "older container of the game ignored");
            }
            _ => {
                newest.insert(c.game_id.clone(), c);
            }
        }
    }
    let mut records: Vec<RuntimeRecord> = newest
        .into_values()
        .map(|c| RuntimeRecord::new(c.game_id, c.id))
        .collect();
    records.sort_by(|a, b| a.game_id.cmp(&b.game_id));
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, game: &str, created: i64) -> LabelledContainer {
        LabelledContainer {
            id: id.into(),
            game_id: game.into(),
            created,
        }
    }

    #[test]
    fn newest_container_of_a_game_wins_and_records_are_sorted() {
        let got = one_container_per_game(vec![
            c("old", "g-b", 10),
            c("x", "g-a", 5),
            c("new", "g-b", 20),
            c("older", "g-b", 1),
        ]);
        assert_eq!(
            got,
            vec![
                RuntimeRecord::new("g-a", "x"),
                RuntimeRecord::new("g-b", "new")
            ]
        );
    }

    #[test]
    fn same_creation_time_is_broken_by_id_deterministically() {
        let a = one_container_per_game(vec![c("id1", "g", 7), c("id2", "g", 7)]);
        let b = one_container_per_game(vec![c("id2", "g", 7), c("id1", "g", 7)]);
        assert_eq!(a, b);
    }
}
