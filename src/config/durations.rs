//! Durations as options give them: `250ms`, `15s`, `2m`, `1h`, each option
//! with its own upper bound, and zero refused (an interval or a window of
//! nothing is a mistake, not a way to turn something off).

use std::time::Duration;

use super::error::ConfigError;
use super::raw::Given;

/// Parses `250ms`, `15s`, `2m`, `1h`.
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A duration greater than zero and at most `max`.
pub(super) fn duration(given: &Given, max: Duration) -> Result<Duration, ConfigError> {
    let d = parse_duration(&given.value)
        .ok_or_else(|| given.invalid("expected a duration such as 250ms, 15s, 2m or 1h"))?;
    if d.is_zero() {
        return Err(given.invalid("must be greater than zero"));
    }
    if d > max {
        return Err(given.invalid(&format!("must be at most {}s", max.as_secs())));
    }
    Ok(d)
}
