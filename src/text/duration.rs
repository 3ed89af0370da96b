//! Durations as rtinspect reads them everywhere: `250ms`, `15s`, `2m`,
//! `1h`, and for an age or a silence's length `30d` too. A leaf, so that
//! the silences core reads a silence's length as the options read theirs.

use std::time::Duration;

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
