//! Times as rtinspect reads them: RFC 3339, in UTC or with an offset. A
//! leaf, so that the history reads the events' times and the silences
//! theirs with one reader, neither borrowing it from the other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS`, an optional fraction
/// (nanoseconds at most are kept), then `Z` or `±HH:MM` (`t`, `z` and a
/// space for the `T` are taken too, as RFC 3339 allows). A leap second
/// counts as the next second's start. `None` for anything else, or a time
/// before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || !text.is_ascii() {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = &text[range];
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &fraction[..digits.min(9)];
        nanos = format!("{kept:0<9}").parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let hours = digit(h1)? * 10 + digit(h2)?;
            let minutes = digit(m1)? * 10 + digit(m2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date; Howard Hinnant's
/// `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_are_read_with_their_offsets() {
        let table: &[(&str, Option<u64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-11-26T21:00:00Z", Some(1_795_726_800)),
            ("2026-11-26T22:00:00+01:00", Some(1_795_726_800)),
            ("2026-11-26T20:30:00-00:30", Some(1_795_726_800)),
            ("2026-11-26t21:00:00z", Some(1_795_726_800)),
            ("2026-11-26 21:00:00Z", Some(1_795_726_800)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2023-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-31T00:00:00Z", None),
            ("2026-11-26T24:00:00Z", None),
            ("2026-11-26T21:00:00", None),
            ("2026-11-26T21:00:00+0100", None),
            ("2026-11-26T21:00:00+24:00", None),
            ("2026-11-26", None),
            ("+2026-11-26T21:00:00Z", None),
            ("1969-12-31T23:59:59Z", None),
            ("2026-11-26T21:00:00.Z", None),
            ("2026-11-26T21:00:00Zjunk", None),
            ("２０２６-11-26T21:00:00Z", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = parse_rfc3339(text).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
