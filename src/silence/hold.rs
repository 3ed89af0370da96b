//! The hold: what a silence does to incidents, between the tracker, which
//! goes on tracking whatever the silences, and the sinks.
//!
//! While a silence covers a game, none of its incidents' events is
//! delivered, and none is lost:
//! - an incident that opens during the silence is held, unannounced; at the
//!   game's first look once no silence covers it, the look decides: not
//!   clean (not running, unhealthy, or restarted since the look before), it
//!   is announced then as `incident_opened`, with its true `started_at` and
//!   `after_silence`; clean, nothing is said, and it resolves unannounced
//!   once it has run clean for `--recover-after` (a later look that is not
//!   clean announces it after all);
//! - an incident announced before the silence keeps its resolution, which
//!   is delivered even during the silence (a chat never keeps an outage
//!   that nothing ends); its reminders and escalations wait, and the first
//!   look after the silence delivers the one that waited if that look is
//!   not clean (an escalation before a reminder), and drops it if it is.
//!
//! Only a game touched by a silence has an entry here; every other change
//! passes through untouched. The entries are saved beside the tracker's
//! state (`incidents.json`), so a held incident outlives a restart. A pure
//! core: the silences and every time come in as arguments.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Silences;
use crate::incident::{Change, IncidentEvent};

/// What the hold remembers of one game's incident touched by a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// The incident.
    incident_id: String,
    /// Whether its opening was delivered (before the silence).
    announced: bool,
    /// What of an announced incident waits for the silence to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting: Option<Waiting>,
}

/// A change of an announced incident held back by a silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Waiting {
    Reminder,
    Escalation,
}

/// The hold's memory as `incidents.json` keeps it: by game.
pub(crate) type SavedHold = BTreeMap<String, Held>;

/// What becomes of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delivered: as the tracker made it, or (`after_silence`) what a
    /// silence held back, now that it is over.
    Deliver {
        /// The change, as its event is to say it.
        change: IncidentEvent,
        /// Whether a silence held it back.
        after_silence: bool,
    },
    /// Held back by a silence (or, an incident never announced that
    /// resolved, dropped): nothing reaches a sink.
    Held {
        /// The change held back.
        change: IncidentEvent,
        /// Until when a silence covers the game (`None`: it no longer does:
        /// an unannounced incident resolved).
        until: Option<SystemTime>,
    },
}

/// The silences in force and the incidents they hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hold {
    silences: Silences,
    games: HashMap<String, Held>,
    /// Whether the saved state changed since [`Hold::take_changed`].
    changed: bool,
}

impl Hold {
    /// A hold that goes on from what an earlier process saved.
    pub(crate) fn with_saved(saved: SavedHold) -> Hold {
        Hold {
            silences: Silences::default(),
            games: saved.into_iter().collect(),
            changed: false,
        }
    }

    /// What to save.
    pub(crate) fn saved(&self) -> SavedHold {
        self.games
            .iter()
            .map(|(g, h)| (g.clone(), h.clone()))
            .collect()
    }

    /// The silences in force, as last read.
    pub(crate) fn silences(&self) -> &Silences {
        &self.silences
    }

    /// The silences from now on.
    pub(crate) fn set_silences(&mut self, silences: Silences) {
        self.silences = silences;
    }

    /// Whether a look of `game_id` must come here even without a change:
    /// it has an incident a silence touched.
    pub(crate) fn holds(&self, game_id: &str) -> bool {
        self.games.contains_key(game_id)
    }

    /// Whether the state changed since the last call (so it needs saving).
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    #[cfg(test)]
    /// The incidents held now, unannounced or with a change waiting.
    pub(crate) fn len(&self) -> usize {
        self.games.len()
    }

    /// What becomes of the `changes` one look of `game_id` made at `at`;
    /// `clean` says whether that look was clean, and `open` gives the
    /// game's open incident as it stands after the look, as a change of
    /// the kind asked for (only asked when a held incident is delivered).
    pub(crate) fn look(
        &mut self,
        game_id: &str,
        at: SystemTime,
        clean: bool,
        changes: Vec<IncidentEvent>,
        open: impl FnOnce(Change) -> Option<IncidentEvent>,
    ) -> Vec<Verdict> {
        let until = self.silences.covered_until(game_id, at);
        let mut verdicts = self.pass(game_id, until, changes);
        if until.is_some() {
            return verdicts;
        }
        // No silence covers the game any more: its first look decides.
        let Some(held) = self.games.get(game_id).cloned() else {
            return verdicts;
        };
        let release = match (held.announced, held.waiting) {
            (false, _) => Some(Change::Opened),
            (true, Some(Waiting::Escalation)) => Some(Change::Escalated),
            (true, Some(Waiting::Reminder)) => Some(Change::Reminder),
            (true, None) => None,
        };
        match open(release.unwrap_or(Change::Opened)) {
            // Gone meanwhile (resolved, forgotten, or another incident).
            None => self.forget(game_id),
            Some(o) if o.incident_id != held.incident_id => self.forget(game_id),
            Some(_) if clean && !held.announced => {}
            Some(_) if clean => self.forget(game_id),
            Some(change) => {
                self.forget(game_id);
                if release.is_some() {
                    verdicts.push(Verdict::Deliver {
                        change,
                        after_silence: true,
                    });
                }
            }
        }
        verdicts
    }

    /// What becomes of resolutions of games gone (no look behind them).
    pub(crate) fn removed(&mut self, changes: Vec<IncidentEvent>) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for change in changes {
            let game_id = change.game_id.clone();
            verdicts.extend(self.pass(&game_id, None, vec![change]));
        }
        verdicts
    }

    /// Each change of `game_id`, covered by a silence until `until` or not.
    fn pass(
        &mut self,
        game_id: &str,
        until: Option<SystemTime>,
        changes: Vec<IncidentEvent>,
    ) -> Vec<Verdict> {
        let mut verdicts = Vec::with_capacity(changes.len());
        for change in changes {
            // An entry of another incident is stale: that one is over.
            if self
                .games
                .get(game_id)
                .is_some_and(|h| h.incident_id != change.incident_id)
            {
                self.forget(game_id);
            }
            let held = self.games.get(game_id);
            let announced = held.is_none_or(|h| h.announced);
            let deliver = |change| Verdict::Deliver {
                change,
                after_silence: false,
            };
            let verdict = match (change.change, until) {
                // A resolution of an announced incident is delivered, even
                // during a silence; one never announced is not.
                (Change::Resolved, _) => {
                    self.forget(game_id);
                    if announced {
                        deliver(change)
                    } else {
                        Verdict::Held { change, until }
                    }
                }
                (Change::Opened, Some(_)) => {
                    self.keep(game_id, &change.incident_id, false, None);
                    Verdict::Held { change, until }
                }
                (Change::Escalated | Change::Reminder, Some(_)) => {
                    if announced {
                        let waiting = match change.change {
                            Change::Escalated => Waiting::Escalation,
                            _ => Waiting::Reminder,
                        };
                        let waiting = held.and_then(|h| h.waiting).max(Some(waiting));
                        self.keep(game_id, &change.incident_id, true, waiting);
                    }
                    Verdict::Held { change, until }
                }
                (_, None) if announced => deliver(change),
                // Not covered, never announced: an escalation announces it
                // (the look decides below too); a reminder of it is not said.
                (Change::Escalated, None) => {
                    self.forget(game_id);
                    Verdict::Deliver {
                        change: IncidentEvent {
                            change: Change::Opened,
                            ..change
                        },
                        after_silence: true,
                    }
                }
                (_, None) => Verdict::Held { change, until },
            };
            verdicts.push(verdict);
        }
        verdicts
    }

    fn keep(
        &mut self,
        game_id: &str,
        incident_id: &str,
        announced: bool,
        waiting: Option<Waiting>,
    ) {
        let held = Held {
            incident_id: incident_id.to_owned(),
            announced,
            waiting,
        };
        if self.games.get(game_id) != Some(&held) {
            self.games.insert(game_id.to_owned(), held);
            self.changed = true;
        }
    }

    fn forget(&mut self, game_id: &str) {
        self.changed |= self.games.remove(game_id).is_some();
    }
}

#[cfg(test)]
mod tests;
