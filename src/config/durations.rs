//! An option's duration: read by the shared reader (`text::parse_duration`),
//! each option with its own upper bound, and zero refused (an interval or a
//! window of nothing is a mistake, not a way to turn something off).

use std::time::Duration;

use super::error::ConfigError;
use super::raw::Given;
use crate::text::{Units, parse_duration};

/// A duration greater than zero and at most `max`.
pub(super) fn duration(given: &Given, max: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(&given.value, Units::UpToHours)
        .ok_or_else(|| given.invalid("expected a duration such as 250ms, 15s, 2m or 1h"))?;
    if d.is_zero() {
        return Err(given.invalid("must be greater than zero"));
    }
    if d > max {
        return Err(given.invalid(&format!("must be at most {}s", max.as_secs())));
    }
    Ok(d)
}
