//! What Docker's events tell the tracker that a look may come too late to
//! see: an OOM kill, and a container stopped or killed through the API,
//! whose end is then no crash.

use std::time::Instant;

use super::change::IncidentEvent;
use super::game::GameState;
use super::{Stamp, Tracker};

impl Tracker {
    /// An `oom` event of the game's container, taken at `now`.
    ///
    /// It marks the open incident, or else the next one to open within
    /// [`OOM_GRACE`]: the OOM kill shows in `State.OOMKilled` only until the
    /// container starts again, and a look may come too late to see it.
    pub(crate) fn oom(&mut self, game_id: &str, now: Instant) {
        let game = self.games.entry(game_id.to_owned()).or_default();
        match &mut game.incident {
            Some(incident) if incident.oom => {}
            Some(incident) => {
                incident.oom = true;
                self.changed = true;
            }
            None => {
                game.oom_at = Some(now);
                self.changed = true;
            }
        }
    }

    /// The end of `container_id` was asked for through the engine's API
    /// (the classifier of ends says `stopped`: `docker stop`, `kill`, `rm
    /// -f`, a deploy, or the operator acting in the restart back-off), told
    /// at `at`. That end opens nothing, and neither replacing the container
    /// nor starting it again counts a restart; an incident open for the game
    /// is resolved with `details.resolution: "stopped"`, since the operator
    /// took over, and its restart count is cleared. The game is `game_id`
    /// when known, else whichever game's last container it is; nothing
    /// happens for a container that is not its game's last.
    pub(crate) fn ended_by_api(
        &mut self,
        game_id: Option<&str>,
        container_id: &str,
        at: Stamp,
    ) -> Vec<IncidentEvent> {
        let is_last = |g: &GameState| g.last.as_ref().is_some_and(|(c, _)| c == container_id);
        let game = match game_id {
            Some(id) => self
                .games
                .get_mut(id)
                .filter(|g| is_last(g))
                .map(|g| (id.to_owned(), g)),
            None => self
                .games
                .iter_mut()
                .find(|(_, g)| is_last(g))
                .map(|(id, g)| (id.clone(), g)),
        };
        let Some((game_id, game)) = game else {
            return Vec::new();
        };
        let before = (game.stopped_by_api, game.restarts, game.clean_since);
        game.stopped_by_api = true;
        let events: Vec<IncidentEvent> = game.stopped(&game_id, at.wall).into_iter().collect();
        self.changed |= !events.is_empty() || before != (true, game.restarts, game.clean_since);
        events
    }
}
