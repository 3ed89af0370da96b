//! Label mode: the records are the containers that carry the game label,
//! the newest container of each game, read from Docker's list (and, for a
//! replacement created within the list's second, its inspect).

use std::collections::HashMap;
use std::fmt;

use super::{RecordError, RecordSource};
use crate::docker::{ContainerLister, CreatedAt, DockerError, LabelledContainer};
use crate::inspector::RuntimeRecord;

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
        Ok(one_container_per_game(listed, |id| self.docker.created(id)))
    }
}

/// The most containers of one game tied on the list's second whose
/// creation times are asked for; past it (a game id on many containers at
/// once, by mistake or on purpose) the id decides, at no cost to dockerd.
const MAX_TIED: usize = 8;

/// Keeps the newest container of each game, sorted by game id.
///
/// Declaring the label means "this container is expected to be running"; when
/// a game was replaced and its old container still exists, the newest one is
/// the one that should run, and reporting the old one every tick would be noise.
///
/// The list says `Created` in whole seconds, and a deploy can create the
/// replacement within the second it replaced the old one: containers of a
/// game tied on the second are told apart by the inspect's nanoseconds
/// (`created`; one gone meanwhile, 404, is passed over). Only when that
/// cannot say either, or more than [`MAX_TIED`] tie, is the id the
/// tie-break, so that the choice at least never flips between listings.
fn one_container_per_game(
    listed: Vec<LabelledContainer>,
    created: impl Fn(&str) -> Result<CreatedAt, DockerError>,
) -> Vec<RuntimeRecord> {
    let mut by_game: HashMap<String, Vec<LabelledContainer>> = HashMap::new();
    for c in listed {
        by_game.entry(c.game_id.clone()).or_default().push(c);
    }
    let mut records: Vec<RuntimeRecord> = by_game
        .into_iter()
        .filter_map(|(game_id, mut cs)| {
            let newest = cs.iter().map(|c| c.created).max()?;
            cs.retain(|c| c.created == newest);
            if (2..=MAX_TIED).contains(&cs.len()) {
                // Asked only for a tie: a replacement within one second.
                let mut known: Vec<(Option<CreatedAt>, LabelledContainer)> = Vec::new();
                for c in cs.drain(..) {
                    match created(&c.id) {
                        Ok(at) => known.push((Some(at), c)),
                        Err(DockerError::NotFound) => {}
                        Err(_) => known.push((None, c)),
                    }
                }
                if known.iter().all(|(at, _)| at.is_some()) {
                    // The newest by the nanosecond (then the id).
                    known.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
                    known.drain(..known.len().saturating_sub(1));
                }
                cs = known.into_iter().map(|(_, c)| c).collect();
            }
            let kept = cs.into_iter().max_by(|a, b| a.id.cmp(&b.id))?;
            Some(RuntimeRecord::new(game_id, kept.id))
        })
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

    /// The inspect's `Created` of each container, by id; others are gone.
    fn inspect(
        table: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<CreatedAt, DockerError> {
        move |id| match table.iter().find(|(i, _)| *i == id) {
            Some((_, "fails")) => Err(DockerError::Malformed("x".into())),
            Some((_, at)) => Ok(CreatedAt::parse(at).unwrap()),
            None => Err(DockerError::NotFound),
        }
    }

    #[test]
    fn newest_container_of_a_game_wins_and_records_are_sorted() {
        let got = one_container_per_game(
            vec![
                c("old", "g-b", 10),
                c("x", "g-a", 5),
                c("new", "g-b", 20),
                c("older", "g-b", 1),
            ],
            |_| panic!("no tie, no inspect"),
        );
        assert_eq!(
            got,
            vec![
                RuntimeRecord::new("g-a", "x"),
                RuntimeRecord::new("g-b", "new")
            ]
        );
    }

    #[test]
    fn a_replacement_created_in_the_same_second_wins_by_its_nanoseconds() {
        // The replacement has the lower id: the id alone would keep the old.
        let listed = || vec![c("bbbb", "g", 7), c("aaaa", "g", 7), c("cccc", "g", 6)];
        let table = &[
            ("bbbb", "2026-11-26T21:00:07.25Z"),
            ("aaaa", "2026-11-26T21:00:07.250000001Z"),
        ];
        let got = one_container_per_game(listed(), inspect(table));
        assert_eq!(got, vec![RuntimeRecord::new("g", "aaaa")]);
        // One gone meanwhile (404) is passed over.
        let got = one_container_per_game(listed(), inspect(&[("bbbb", "2026-11-26T21:00:07Z")]));
        assert_eq!(got, vec![RuntimeRecord::new("g", "bbbb")]);
        // When the inspect cannot say, the id decides, whatever the order.
        let table = &[("bbbb", "fails"), ("aaaa", "2026-11-26T21:00:07.9Z")];
        let mut reversed = listed();
        reversed.reverse();
        let a = one_container_per_game(listed(), inspect(table));
        let b = one_container_per_game(reversed, inspect(table));
        assert_eq!(a, b);
        assert_eq!(a, vec![RuntimeRecord::new("g", "bbbb")]);
    }

    #[test]
    fn many_containers_of_a_game_in_one_second_cost_no_inspects() {
        let listed: Vec<LabelledContainer> = (0..=MAX_TIED)
            .map(|i| c(&format!("{i:02}"), "g", 7))
            .collect();
        let got = one_container_per_game(listed, |_| panic!("no inspect past the bound"));
        assert_eq!(got, vec![RuntimeRecord::new("g", format!("{MAX_TIED:02}"))]);
    }

    #[test]
    fn created_times_are_read_to_the_nanosecond_in_time_order() {
        let t = |s| CreatedAt::parse(s).unwrap();
        assert!(t("2026-11-26T21:00:07.1Z") > t("2026-11-26T21:00:07.09Z"));
        assert!(t("2026-11-26T21:00:07.1Z") == t("2026-11-26T21:00:07.100000000Z"));
        assert!(t("2026-11-26T21:00:08Z") > t("2026-11-26T21:00:07.999999999Z"));
        assert!(t("2027-01-01T00:00:00Z") > t("2026-12-31T23:59:59.5Z"));
        for bad in [
            "",
            "x",
            "2026-11-26T21:00:07",
            "2026-11-26T21:00:07.1234567890Z",
            "2026-11-26T21:00:07.12a4Z",
            "2026-11-26 21:00:07Z",
            "2026-11-26T21:00:07+01:00",
        ] {
            assert_eq!(CreatedAt::parse(bad), None, "{bad:?}");
        }
    }
}
