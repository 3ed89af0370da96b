//! The incident rules: how many restarts in what window make a crash loop,
//! how long a container runs clean before its incident is resolved, how
//! often an open one is reported again, and how many of its container's
//! last log lines its events carry.

use std::time::Duration;

use super::durations::duration;
use super::error::ConfigError;
use super::options::Opt;
use super::raw::{Given, Inputs};

/// The incident rules (`--crash-loop-restarts`, `--crash-loop-window`,
/// `--recover-after`, `--remind`), and how many log lines an incident
/// carries (`--log-lines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IncidentRules {
    /// Restarts within the window that make a crash loop.
    pub(crate) crash_loop_restarts: u32,
    /// The window restarts are counted in.
    pub(crate) crash_loop_window: Duration,
    /// How long a container runs clean before its incident is resolved.
    pub(crate) recover_after: Duration,
    /// How often an open incident is reported again; `None`: never.
    pub(crate) remind: Option<Duration>,
    /// How many of its container's last log lines an incident's event
    /// carries; 0: none are read.
    pub(crate) log_lines: usize,
}

/// `--crash-loop-restarts`, `--crash-loop-window`, `--recover-after`,
/// `--remind` and `--log-lines`, checked in that order.
pub(super) fn rules(inputs: &Inputs) -> Result<IncidentRules, ConfigError> {
    Ok(IncidentRules {
        crash_loop_restarts: count(&inputs.with_default(Opt::CrashLoopRestarts)?, 1..=1000)?,
        crash_loop_window: duration(
            &inputs.with_default(Opt::CrashLoopWindow)?,
            Duration::from_secs(7 * 24 * 3600),
        )?,
        recover_after: duration(
            &inputs.with_default(Opt::RecoverAfter)?,
            Duration::from_secs(24 * 3600),
        )?,
        remind: remind(&inputs.with_default(Opt::Remind)?)?,
        log_lines: count(
            &inputs.with_default(Opt::LogLines)?,
            0..=crate::log_tail::MAX_LINES as u32,
        )? as usize,
    })
}

/// A whole number within `range`.
fn count(given: &Given, range: std::ops::RangeInclusive<u32>) -> Result<u32, ConfigError> {
    match given.value.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(given.invalid(&format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// `--remind`: a duration, or `0` for no reminders.
fn remind(given: &Given) -> Result<Option<Duration>, ConfigError> {
    if given.value == "0" {
        return Ok(None);
    }
    duration(given, Duration::from_secs(30 * 24 * 3600)).map(Some)
}
