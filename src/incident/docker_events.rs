//! What Docker's events tell the tracker that a look may come too late to
//! see: an OOM kill, and a container stopped or killed through the API,
//! whose end is then no crash.

use std::time::Instant;

use super::Tracker;
use super::game::GameState;

impl Tracker {
    /// An `oom` event of the game's container, taken at `now`.
    ///
    /// It marks the open incident, or else the next one to open within
    /// [`OOM_GRACE`]: the OOM kill shows in `State.OOMKilled` only until the
    /// container starts again, and a look may come too late to see it.
    pub fn oom(&mut self, game_id: &str, now: Instant) {
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

    /// A `stop` or `kill` of `container_id` through Docker's API (`docker
    /// stop`, `docker kill`, `docker rm -f`, a deploy tool's): that
    /// container's end is no crash, so replacing it counts no restart. The
    /// game is `game_id` when known, else whichever game's last container it
    /// is.
    pub fn stopped_by_api(&mut self, game_id: Option<&str>, container_id: &str) {
        let is_last = |g: &GameState| g.last.as_ref().is_some_and(|(c, _)| c == container_id);
        let game = match game_id {
            Some(id) => self.games.get_mut(id).filter(|g| is_last(g)),
            None => self.games.values_mut().find(|g| is_last(g)),
        };
        if let Some(game) = game
            && !game.stopped_by_api
        {
            game.stopped_by_api = true;
            self.changed = true;
        }
    }
}
