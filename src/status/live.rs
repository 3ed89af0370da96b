//! The daemon's latest looks, for the status page, `/status.json` and the
//! gauges of games and open incidents. The inspector thread (the worker)
//! notes each look as it is made and publishes a board at each tick's end
//! and each save of the incidents; the listener thread only takes the last
//! board published, an `Arc` behind one short lock, and renders it on its
//! own time. Its size is the records': one look per game listed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{Board, Look, Seen, TrackerMemory};
use crate::docker::DockerError;
use crate::incident::MAX_RESTARTS_PER_LOOK;
use crate::inspector::{Observation, RuntimeRecord};
use crate::silence::Silences;

/// The board the listener shows: the last one published.
#[derive(Debug)]
pub(crate) struct LiveBoard {
    /// The host the boards are of.
    host: String,
    published: Mutex<Option<Arc<Board>>>,
}

impl LiveBoard {
    /// A live board of `host`, empty until the first publication.
    pub(crate) fn new(host: String) -> LiveBoard {
        LiveBoard {
            host,
            published: Mutex::new(None),
        }
    }

    /// The last board published, if any yet.
    pub(crate) fn latest(&self) -> Option<Arc<Board>> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The worker's side: each listed game's latest look.
#[derive(Debug)]
pub(crate) struct Looks {
    board: Arc<LiveBoard>,
    /// By game: its latest look and the restart count it saw.
    looks: HashMap<String, (Look, u64)>,
    /// By incident: the last reason its events said.
    reasons: HashMap<String, String>,
}

impl Looks {
    /// The looks published to `board`.
    pub(crate) fn new(board: Arc<LiveBoard>) -> Looks {
        Looks {
            board,
            looks: HashMap::new(),
            reasons: HashMap::new(),
        }
    }

    /// The records were listed: the looks of games that left go.
    pub(crate) fn listed(&mut self, records: &[RuntimeRecord]) {
        // A set, not a scan of the records per look: a tick of 10,000 games
        // spent 1.4 s (debug build) comparing ids.
        let listed: HashSet<&str> = records.iter().map(|r| r.game_id.as_str()).collect();
        self.looks.retain(|game, _| listed.contains(game.as_str()));
    }

    /// A record was inspected with `answer`: the restarts the look shows
    /// since the last of the same container (Docker's `RestartCount`
    /// risen; at most [`MAX_RESTARTS_PER_LOOK`]), for the restarts counter.
    pub(crate) fn looked(
        &mut self,
        record: &RuntimeRecord,
        answer: &Result<Observation, DockerError>,
    ) -> u64 {
        let (seen, count) = match answer {
            Ok(o) => (
                Seen::Container {
                    container_id: o.container_id.clone(),
                    state: o.status.clone(),
                    health: o.health.clone(),
                },
                o.restart_count,
            ),
            Err(DockerError::NotFound) => (Seen::Missing, 0),
            Err(e) => (Seen::Failed(format!("inspect failed: {e}")), 0),
        };
        let restarted = match (self.looks.get(&record.game_id), &seen) {
            (Some((last, before)), Seen::Container { container_id, .. }) if matches!(&last.seen, Seen::Container { container_id: c, .. } if c == container_id) => {
                count.saturating_sub(*before).min(MAX_RESTARTS_PER_LOOK)
            }
            _ => 0,
        };
        self.note(record, seen, count);
        restarted
    }

    /// An incident's event said why its container ended.
    pub(crate) fn reason(&mut self, incident_id: &str, reason: &str) {
        self.reasons
            .insert(incident_id.to_owned(), reason.to_owned());
    }

    /// A record is not valid (`why`): it is shown as not looked at.
    pub(crate) fn invalid(&mut self, record: &RuntimeRecord, why: String) {
        self.note(record, Seen::Invalid(why), 0);
    }

    fn note(&mut self, record: &RuntimeRecord, seen: Seen, count: u64) {
        let look = Look {
            game_id: record.game_id.clone(),
            container_ref: record.container_id.clone(),
            seen,
        };
        self.looks.insert(record.game_id.clone(), (look, count));
    }

    /// Publishes the board of the looks now, with what the tracker
    /// remembers (`None`: no tracker) and the silences in force. It is
    /// called at a tick's end and at a save of the incidents, when the
    /// tracker changed: each time the board's time, at least, is new.
    pub(crate) fn publish(&mut self, memory: Option<&TrackerMemory>, silences: &Silences) {
        let looks = self.looks.values().map(|(l, _)| l.clone()).collect();
        let now = SystemTime::now();
        let board = Board::new(self.board.host.clone(), now, looks, memory, &|game| {
            silences.covered_until(game, now)
        })
        .with_reasons(&|id| self.reasons.get(id).cloned());
        // The reasons of incidents no longer open go.
        let open: HashSet<&str> = board
            .rows
            .iter()
            .filter_map(|r| Some(r.incident.as_ref()?.id.as_str()))
            .collect();
        self.reasons.retain(|id, _| open.contains(id.as_str()));
        *self
            .board
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(board));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn seen(id: &str, restarts: u64, status: &str) -> Result<Observation, DockerError> {
        Ok(Observation {
            container_id: id.into(),
            restart_count: restarts,
            status: status.into(),
            health: String::new(),
            details: None,
        })
    }

    #[test]
    fn looks_are_published_as_a_board_and_restarts_counted_per_container() {
        let board = Arc::new(LiveBoard::new("host-7".into()));
        let mut looks = Looks::new(board.clone());
        assert!(board.latest().is_none(), "nothing before the first look");
        let g1 = RuntimeRecord::new("g-1", "c1");
        let g2 = RuntimeRecord::new("g-2", "c2");
        assert_eq!(looks.looked(&g1, &seen(A, 2, "running")), 0, "a first look");
        assert_eq!(looks.looked(&g2, &seen(B, 0, "exited")), 0);
        assert_eq!(looks.looked(&g1, &seen(A, 5, "running")), 3);
        assert_eq!(
            looks.looked(&g1, &seen(A, 1, "running")),
            0,
            "reset by docker start"
        );
        assert_eq!(
            looks.looked(&g1, &seen(B, 9, "running")),
            0,
            "another container"
        );
        assert_eq!(looks.looked(&g1, &seen(B, 500, "running")), 64, "bounded");
        looks.publish(None, &Silences::default());
        let b = board.latest().unwrap();
        assert_eq!(b.host, "host-7");
        let games: Vec<&str> = b.rows.iter().map(|r| r.game_id.as_str()).collect();
        assert_eq!(games, ["g-2", "g-1"], "worst first");
        // A game that leaves the records leaves the board.
        looks.listed(std::slice::from_ref(&g1));
        looks.invalid(&RuntimeRecord::new("g-3", ""), "record skipped".into());
        looks.publish(None, &Silences::default());
        let b = board.latest().unwrap();
        let games: Vec<&str> = b.rows.iter().map(|r| r.game_id.as_str()).collect();
        assert_eq!(games, ["g-3", "g-1"]);
        // The silences in force show on the page as in `status`.
        let now = SystemTime::now();
        let until = now + std::time::Duration::from_secs(600);
        let silence = crate::silence::Silence {
            id: "s".into(),
            game_id: Some("g-1".into()),
            starts_at: now - std::time::Duration::from_secs(1),
            ends_at: until,
            created_by: "ci".into(),
            comment: String::new(),
        };
        looks.publish(None, &Silences::new([&silence], now));
        let b = board.latest().unwrap();
        let silenced: Vec<(&str, Option<SystemTime>)> = b
            .rows
            .iter()
            .map(|r| (r.game_id.as_str(), r.silenced_until))
            .collect();
        assert_eq!(silenced, [("g-3", None), ("g-1", Some(until))]);
    }

    #[test]
    fn an_incident_shows_the_last_reason_its_events_said_while_it_is_open() {
        use crate::incident::Kind;
        let board = Arc::new(LiveBoard::new("h".into()));
        let mut looks = Looks::new(board.clone());
        let g1 = RuntimeRecord::new("g-1", "c1");
        looks.looked(&g1, &seen(A, 0, "exited"));
        looks.reason("id-5", "crashed");
        looks.reason("id-5", "oom");
        looks.reason("id-gone", "stopped");
        let open = super::super::tests::memory(&[("g-1", 0, Some((Kind::NotRunning, 5)))]);
        looks.publish(Some(&open), &Silences::default());
        let b = board.latest().unwrap();
        let reason = b.rows[0].incident.as_ref().and_then(|i| i.reason.clone());
        assert_eq!(reason.as_deref(), Some("oom"));
        assert_eq!(looks.reasons.len(), 1, "the closed incident's reason went");
    }
}
