//! Games gone from sight — left the records, or their container answered
//! 404 — and the `removed` resolution of their incidents once they have
//! been gone for `--recover-after`; a game gone long enough is forgotten.

use std::collections::HashSet;
use std::time::Duration;

use super::change::{IncidentEvent, Resolution};
use super::clock::elapsed;
use super::game::GameState;
use super::{Stamp, Tracker};

impl Tracker {
    /// A fresh record list, listed at `at`: the games not in it are gone
    /// from then on. Returns the resolutions, as `removed`, of games gone
    /// for `--recover-after` or longer; a game gone for the crash-loop
    /// window too is forgotten.
    pub(crate) fn listed(&mut self, games: &HashSet<&str>, at: Stamp) -> Vec<IncidentEvent> {
        for (game_id, game) in &mut self.games {
            if !games.contains(game_id.as_str()) && game.gone_since.is_none() {
                game.gone_since = Some(at.mono);
                self.changed = true;
            }
        }
        let events = self.gone_too_long(at, None);
        // Forgotten once nothing it remembers can matter: its incident is
        // closed and its restart count would have been cleared by now.
        let forget_after = self.policy.crash_loop_window.max(self.policy.recover_after);
        let before = self.games.len();
        self.games.retain(|game_id, g| {
            games.contains(game_id.as_str())
                || g.gone_since
                    .is_none_or(|since| elapsed(since, at.mono) < forget_after)
        });
        self.changed |= self.games.len() != before;
        events
    }

    /// The container of a listed game answered 404 at `at`: it is gone from
    /// then on, until a look sees one again. Returns the resolution when it
    /// has been gone too long.
    pub(crate) fn missing(&mut self, game_id: &str, at: Stamp) -> Vec<IncidentEvent> {
        let Some(game) = self.games.get_mut(game_id) else {
            return Vec::new();
        };
        if game.gone_since.is_none() {
            game.gone_since = Some(at.mono);
            self.changed = true;
        }
        self.gone_too_long(at, Some(game_id))
    }

    /// Resolves, as `removed`, the incident of every game gone for at least
    /// `--recover-after` (of `only` that game: a 404 costs no walk over
    /// every game). A game that comes back sooner goes on with its
    /// incident; one that comes back later, within the crash-loop window,
    /// still has its restart count.
    fn gone_too_long(&mut self, at: Stamp, only: Option<&str>) -> Vec<IncidentEvent> {
        let recover_after = self.policy.recover_after;
        let mut events: Vec<IncidentEvent> = match only {
            Some(id) => self
                .games
                .get_mut(id)
                .and_then(|game| resolve_gone(id, game, recover_after, at))
                .into_iter()
                .collect(),
            None => self
                .games
                .iter_mut()
                .filter_map(|(id, game)| resolve_gone(id, game, recover_after, at))
                .collect(),
        };
        self.changed |= !events.is_empty();
        // The order of a map is no order: by game, so that runs agree.
        events.sort_by(|a, b| a.game_id.cmp(&b.game_id));
        events
    }
}

/// The `removed` resolution of `game`'s incident when it has been gone for
/// `recover_after` at `at`.
fn resolve_gone(
    game_id: &str,
    game: &mut GameState,
    recover_after: Duration,
    at: Stamp,
) -> Option<IncidentEvent> {
    let since = game.gone_since?;
    if elapsed(since, at.mono) < recover_after {
        return None;
    }
    game.close(game_id, Resolution::Removed, None, at.wall)
}
