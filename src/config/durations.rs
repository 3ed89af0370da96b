//! Durations as rtinspect reads them everywhere: `250ms`, `15s`, `2m`,
//! `1h`, and for an age or a silence's length `30d` too; each option with
//! its own upper bound, and zero refused (an interval or a window of
//! nothing is a mistake, not a way to turn something off).

use std::time::Duration;

use super::error::ConfigError;
use super::raw::Given;

/// The units a duration may be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Units {
    /// `ms`, `s`, `m`, `h`: an option's.
    UpToHours,
    /// Those and `d`: an age (`--older-than`, `--since`) or a silence's
    /// length (`--for`).
    UpToDays,
}

/// Parses whole digits and a unit of `units` (`250ms`, `15s`, `2m`, `1h`,
/// `7d`); `None` for anything else (a sign, a fraction, another unit, an
/// overflow).
pub(crate) fn parse_duration(s: &str, units: Units) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" if units == Units::UpToDays => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

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
