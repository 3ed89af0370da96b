//! One look at a game's container and what it changes: restarts counted
//! against the last look (a rise of `RestartCount`, a start it does not
//! show, a replacement of a container that crashed), the clean run under
//! way, and the incident opened, escalated, reminded of or resolved.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::change::{Change, IncidentEvent, Kind};
use super::clock::{elapsed, next_due};
use super::game::{GameState, Incident};
use super::{Look, MAX_RESTARTS_PER_LOOK, OOM_GRACE, Tracker};
use crate::ending::EndReason;
use crate::inspector::restart_under_way;

impl Tracker {
    /// Every successful inspect, tick or event; the changes it makes.
    ///
    /// A look counts restarts against the game's last look: the same
    /// container with a higher `RestartCount` restarted that many times
    /// (at most [`MAX_RESTARTS_PER_LOOK`]); a lower one re-seeds without a
    /// restart, because Docker resets it to 0 on a manual `docker start`; a
    /// `StartedAt` that changed without a rise is one (a manual or API
    /// start). A real restart counts once however many looks see it: Docker
    /// raises `RestartCount` when the container dies and waits, `restarting`,
    /// before it starts it again, and the start a look sees after that wait
    /// is the restart already counted. A new container id for the game is
    /// one restart only when the container it replaces ended by itself: not
    /// when it was last seen running and not unhealthy (or never started),
    /// nor when it was stopped or killed through Docker's API, nor when its
    /// death was counted already (`restarting`). The first look of a game
    /// only seeds; its status and health still count.
    ///
    /// A look is clean when the container is `running` and, if it has a
    /// healthcheck, `healthy`, and it did not restart since the last look. A
    /// clean look starts a streak (so does a look that restarted but runs
    /// healthy: the restart happened before it), any other look ends it, and
    /// a later clean look at least [`Policy::clean_to_resolve`] after the
    /// streak began resolves the incident; one at least the crash-loop
    /// window after it clears the restart count.
    pub(crate) fn look(&mut self, look: &Look<'_>) -> Vec<IncidentEvent> {
        let policy = self.policy;
        let (at, now) = (look.at.wall, look.at.mono);
        // A lookup, not an entry: no allocation per look of a known game.
        if !self.games.contains_key(look.game_id) {
            self.games
                .insert(look.game_id.to_owned(), GameState::default());
        }
        let Some(game) = self.games.get_mut(look.game_id) else {
            return Vec::new();
        };
        let mut changed = false;
        let saved_clean_since = game.saved_clean_since();
        changed |= game.gone_since.take().is_some();

        // A start the restart count does not show (a manual or API start,
        // which also resets the count) still changes `StartedAt` — of the
        // same container: a replacement's is its own, and one first seen
        // `created` (never started, no `StartedAt`) must not be measured
        // against the container it replaced.
        let same = game
            .last
            .as_ref()
            .is_some_and(|(c, _)| c == look.container_id);
        let started_again = match (&game.started, look.started_at) {
            (Some(before), Some(now)) => same && before != now,
            _ => false,
        };
        if (look.started_at.is_some() || !same) && game.started.as_deref() != look.started_at {
            game.started = look.started_at.map(str::to_owned);
            changed = true;
        }
        let restarting = restart_under_way(look.status);
        let was_awaiting = game.awaiting_start;
        let mut replaced = false;
        let restarted = match &mut game.last {
            None => {
                game.last = Some((look.container_id.to_owned(), look.restart_count));
                changed = true;
                game.awaiting_start = false;
                0
            }
            Some((container, count)) if container == look.container_id => {
                let rise = look.restart_count.saturating_sub(*count);
                changed |= *count != look.restart_count;
                *count = look.restart_count;
                // A start seen after the wait of a restart already counted
                // is that restart; one no rise and no wait explains is a
                // manual or API start, and no restart at all after a stop
                // through the API (`docker restart`, `docker start` after
                // `docker stop`).
                let manual = started_again
                    && !was_awaiting
                    && rise == 0
                    && !game.stopped_by_api
                    && look.end != Some(EndReason::Stopped);
                game.awaiting_start = restarting && (rise > 0 || (was_awaiting && !started_again));
                if rise > 0 || started_again {
                    // A new run: whatever stopped the last one is history.
                    game.stopped_by_api = false;
                }
                rise.min(MAX_RESTARTS_PER_LOOK).max(u64::from(manual))
            }
            Some((container, count)) => {
                // A replacement counts when the container it replaces ended
                // by itself and that end was not counted already; either way
                // it opens nothing by itself: a deploy is no incident.
                let crashed = !game.last_fine && !game.stopped_by_api && !was_awaiting;
                container.clear();
                container.push_str(look.container_id);
                *count = look.restart_count;
                game.awaiting_start = false;
                game.stopped_by_api = false;
                changed = true;
                replaced = true;
                u64::from(crashed)
            }
        };
        changed |= game.awaiting_start != was_awaiting;
        let running = look.status == "running";
        // The container is down, and its end was asked for through the API
        // (the events said so, or its restart policy did: see `ending`).
        let stopped_now =
            !running && !restarting && !look.settling && look.end == Some(EndReason::Stopped);
        let stop_found = stopped_now && !game.stopped_by_api;
        if stop_found {
            game.stopped_by_api = true;
            changed = true;
        }
        if restarted > 0 {
            // At most 64: the cast cannot truncate.
            game.restarts = game.restarts.saturating_add(restarted as u32);
            game.restarts_seen(restarted, now);
            changed = true;
        }
        if let Some(oom_at) = game.oom_at
            && elapsed(oom_at, now) > OOM_GRACE
        {
            game.oom_at = None;
            changed = true;
        }

        // Docker's health states are starting, healthy and unhealthy; `""`
        // means the container has no healthcheck.
        let healthy = running && matches!(look.health, "" | "healthy");
        let fine = (running && look.health != "unhealthy") || look.status == "created";
        changed |= game.last_fine != fine;
        game.last_fine = fine;
        let mut kind = None;
        if restarted > 0 {
            if !replaced {
                kind = Some(Kind::Restarted);
            }
            if game.restarts >= policy.crash_loop_restarts.max(1) {
                kind = Some(Kind::CrashLoop);
            }
        }
        if look.health == "unhealthy" {
            kind = kind.max(Some(Kind::Unhealthy));
        }
        // A restart under way is counted when it lands, not a stop; a
        // container stopped through the API is down because someone wanted
        // it down.
        if !running && !restarting && !game.stopped_by_api && !look.settling {
            kind = kind.max(Some(Kind::NotRunning));
        }

        // How long the container has run clean, judged at a later look than
        // the one that began the streak.
        let clean_for = match game.clean_since {
            Some(since) if healthy && restarted == 0 => Some(elapsed(since, now)),
            _ => None,
        };
        game.clean_since = match (healthy, restarted) {
            (false, _) => None,
            (true, 0) => game.clean_since.or(Some(now)),
            (true, _) => Some(now),
        };
        if game.restarts > 0 && clean_for.is_some_and(|d| d >= policy.crash_loop_window) {
            game.restarts = 0;
            changed = true;
        }

        let mut events = Vec::new();
        // The look found what no event told (`docker kill` in the
        // back-off): the operator took over.
        let stop_event = if stop_found {
            game.stopped(look.game_id, at)
        } else {
            None
        };
        // The end a change is about: the container is down, or restarted.
        let reason = look
            .end
            .filter(|_| restarting || crate::ending::is_down(look.status) || restarted > 0);
        let event = |change, incident: &Incident, restarts| IncidentEvent {
            change,
            game_id: look.game_id.to_owned(),
            container_id: look.container_id.to_owned(),
            incident_id: incident.id.clone(),
            kind: incident.kind,
            started_at: incident.started_at,
            restarts_in_window: restarts,
            oom: incident.oom,
            at,
            reason,
            resolution: None,
        };
        if let Some(stop_event) = stop_event {
            events.push(stop_event);
            changed = true;
            kind = None;
        }
        // A known end is not forgotten for `unknown`: a look after a restart
        // of rtinspect, whose classifier lost the end, knows less.
        if let (Some(incident), Some(new)) = (&mut game.incident, reason)
            && incident.reason != reason
            && !(new == EndReason::Unknown && incident.reason.is_some())
        {
            incident.reason = reason;
            changed = true;
        }
        match (&mut game.incident, kind) {
            (None, None) => {}
            (None, Some(kind)) => {
                let incident = Incident {
                    id: incident_id(at),
                    kind,
                    started_at: at,
                    oom: game.oom_at.take().is_some(),
                    reason,
                    next_reminder: policy.remind_every().and_then(|r| now.checked_add(r)),
                };
                events.push(event(Change::Opened, &incident, game.restarts));
                game.incident = Some(incident);
                changed = true;
            }
            (Some(incident), Some(kind)) if kind > incident.kind => {
                incident.kind = kind;
                // The escalation stands for a reminder due at the same look.
                if let Some(due) = incident.next_reminder
                    && now >= due
                {
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, now));
                }
                events.push(event(Change::Escalated, incident, game.restarts));
                changed = true;
            }
            (Some(incident), _)
                if clean_for.is_some_and(|d| d >= policy.clean_to_resolve(incident.kind)) =>
            {
                events.push(event(Change::Resolved, incident, game.restarts));
                game.incident = None;
                changed = true;
            }
            (Some(incident), _) => {
                if let Some(due) = incident.next_reminder
                    && now >= due
                {
                    // One reminder per due time, and one only after a long
                    // gap between looks: the missed due times are skipped.
                    incident.next_reminder =
                        policy.remind_every().and_then(|r| next_due(due, r, now));
                    if policy.remind_every().is_some() {
                        events.push(event(Change::Reminder, incident, game.restarts));
                    }
                    changed = true;
                }
            }
        }
        changed |= game.saved_clean_since() != saved_clean_since;
        self.changed |= changed;
        events
    }
}

/// A UUID v7 whose time part is `at`.
fn incident_id(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}
