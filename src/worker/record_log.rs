//! The log of each record's outcome: what is logged and counted for every
//! answer the schedule reports (an event, healthy again, missing, invalid,
//! failed), with what it remembers per game — whether the last look was an
//! event (the next is no news), and the per-game warnings, once a minute
//! each — forgotten with the game.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{HealthEvent, INSPECT_UNHEALTHY};
use crate::inspector::RuntimeRecord;
use crate::logging::{WarnLimiter, held_back};
use crate::schedule::Report;
use crate::telemetry::Telemetry;
use crate::tick::{Outcome, Skip};

/// What is logged and counted per record, with what it remembers per game.
pub(super) struct RecordLog {
    telemetry: Arc<Telemetry>,
    /// Per game and cause: a failing inspect, an invalid record.
    pub(super) warnings: WarnLimiter,
    /// Games whose last look was an event: their next event is no news.
    unhealthy: HashSet<String>,
}

impl RecordLog {
    /// A log that warns once a `period` per game and cause.
    pub(super) fn new(telemetry: Arc<Telemetry>, period: Duration) -> RecordLog {
        RecordLog {
            telemetry,
            warnings: WarnLimiter::new(period),
            unhealthy: HashSet::new(),
        }
    }

    /// Drops what is kept per game for games no longer listed.
    pub(super) fn forget_games_not_in(&mut self, records: &[RuntimeRecord]) {
        if self.unhealthy.is_empty() && self.warnings.is_empty() {
            return;
        }
        let listed: HashSet<&str> = records.iter().map(|r| r.game_id.as_str()).collect();
        self.unhealthy.retain(|g| listed.contains(g.as_str()));
        self.warnings
            .retain(|cause| listed.contains(cause.split_once('\0').map_or(cause, |(g, _)| g)));
    }

    /// Logs and counts one outcome; publishes an event.
    pub(super) fn handle(&mut self, report: Report, emit: &mut dyn FnMut(HealthEvent)) {
        let Report {
            record,
            outcome,
            prompt,
        } = report;
        let game_id = record.game_id.as_str();
        if let Some(p) = &prompt {
            log::debug!(game_id, container_id = record.container_id.as_str();
                "Docker event: {}", p.action);
        }
        let container_id = record.container_id.as_str();
        let answered = matches!(
            outcome,
            Outcome::Event(..) | Outcome::Healthy | Outcome::Missing
        );
        // No allocation per answered record while nothing is being warned about.
        if answered
            && !self.warnings.is_empty()
            && self.warnings.clear(&per_game(game_id, "inspect"))
        {
            log::info!(game_id, container_id; "inspect works again");
        }
        match outcome {
            Outcome::Event(event, reasons) => {
                let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                // A game that turns unhealthy is news; the same game still
                // unhealthy at the next tick is only another event.
                if self.unhealthy.insert(game_id.to_owned()) {
                    log::info!(game_id, container_id, event_type = INSPECT_UNHEALTHY;
                        "unhealthy: {}", reasons.join(","));
                } else {
                    log::debug!(game_id, container_id, event_type = INSPECT_UNHEALTHY;
                        "still unhealthy: {}", reasons.join(","));
                }
                let mut event = event;
                event.prompt = prompt.map(Box::new);
                emit(event);
            }
            Outcome::Healthy => {
                if self.unhealthy.remove(game_id) {
                    log::info!(game_id, container_id; "healthy again");
                }
            }
            Outcome::Missing => {
                self.telemetry.inspect_error("not_found");
                log::debug!(game_id, container_id; "container missing");
            }
            Outcome::Invalid(why) => {
                self.telemetry.inspect_error("invalid_id");
                if let Some(held) = self
                    .warnings
                    .allow(&per_game(game_id, why.as_str()), Instant::now())
                {
                    log::warn!(game_id, container_id; "record skipped: {why}{}", held_back(held));
                }
            }
            Outcome::Failed(e) => {
                self.telemetry.inspect_error(e.as_str());
                // A socket that cannot be connected to is dockerd's, warned
                // about once per tick, after it; anything else (a timeout
                // included) may be this one container's, warned about per game.
                if !e.is_the_socket()
                    && let Some(held) = self
                        .warnings
                        .allow(&per_game(game_id, "inspect"), Instant::now())
                {
                    log::warn!(game_id, container_id, err:% = e; "inspect failed{}", held_back(held));
                }
            }
            Outcome::Skipped(Skip::Shutdown | Skip::DockerDown) => {}
        }
    }
}

/// The warning cause of one game: the game id, a NUL, the cause.
fn per_game(game_id: &str, cause: &str) -> String {
    format!("{game_id}\0{cause}")
}
