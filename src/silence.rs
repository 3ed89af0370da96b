//! Silences: windows of time, set by the script that causes a downtime (a
//! deploy, a backup, a reboot), during which a game's incidents reach no
//! sink. This file owns what a silence is and the rules of its input; where
//! silences are kept (`state/silences.rs`, `postgres/silences.rs`) and what
//! a silence does to incidents (`silence/hold.rs`) live apart.
//!
//! A silence is one row of the same shape in both modes: an id (one
//! `silence add` makes one id, with a row per game it names), a game or
//! every game, when it starts and ends, who made it and why. It covers its
//! game from `starts_at` (included) to `ends_at` (excluded).
//!
//! A pure core: no I/O, no clock read; every time comes in as an argument.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::text::{Units, parse_duration, parse_rfc3339};

pub(crate) mod hold;

/// The longest silence `silence add` makes: a year. A silence is for a
/// downtime someone causes; a game nobody wants to hear of for longer
/// should leave the records.
pub(crate) const MAX_LENGTH: Duration = Duration::from_secs(365 * 86_400);

/// The longest game id a silence names: a record's game id is at most this.
pub(crate) use crate::tick::MAX_GAME_ID_BYTES;

/// The longest comment `silence add` takes.
pub(crate) const MAX_COMMENT_BYTES: usize = 1024;

/// The most silences kept: `silence add` refuses to go past it, and the
/// daemon reads no more than this many rows.
pub(crate) const MAX_SILENCES: usize = 10_000;

/// One silence of one game, or of every game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// A UUID, the same for every game one `silence add` names.
    pub id: String,
    /// The game, or `None` for every game.
    pub game_id: Option<String>,
    /// From when it covers its game.
    pub starts_at: SystemTime,
    /// Until when (excluded).
    pub ends_at: SystemTime,
    /// Who made it.
    pub created_by: String,
    /// Why, as its maker said.
    pub comment: String,
}

impl Silence {
    /// Whether it covers `game_id` at `at`.
    pub fn covers(&self, game_id: &str, at: SystemTime) -> bool {
        self.game_id.as_deref().is_none_or(|g| g == game_id) && self.is_on(at)
    }

    /// Whether it is in force at `at`, whatever the game.
    pub fn is_on(&self, at: SystemTime) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    /// Whether it has ended at `at`.
    pub fn has_ended(&self, at: SystemTime) -> bool {
        self.ends_at <= at
    }
}

/// When one silence starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    starts_at: SystemTime,
    ends_at: SystemTime,
}

impl Window {
    fn is_on(self, at: SystemTime) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// The silences not yet over, indexed by game so that a look asks a map,
/// not every silence: thousands of silences cost a look nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Silences {
    every_game: Vec<Window>,
    by_game: HashMap<String, Vec<Window>>,
    /// The earliest end of them all.
    earliest_end: Option<SystemTime>,
}

impl Silences {
    /// The silences of `list` that have not ended at `now`.
    pub(crate) fn new<'a>(
        list: impl IntoIterator<Item = &'a Silence>,
        now: SystemTime,
    ) -> Silences {
        let mut silences = Silences::default();
        for s in list {
            if s.has_ended(now) || s.ends_at <= s.starts_at {
                continue;
            }
            let window = Window {
                starts_at: s.starts_at,
                ends_at: s.ends_at,
            };
            match &s.game_id {
                None => silences.every_game.push(window),
                Some(game) => silences
                    .by_game
                    .entry(game.clone())
                    .or_default()
                    .push(window),
            }
            silences.earliest_end = Some(
                silences
                    .earliest_end
                    .map_or(s.ends_at, |e| e.min(s.ends_at)),
            );
        }
        silences
    }

    #[cfg(test)]
    /// Whether a silence covers `game_id` at `at`.
    pub(crate) fn covers(&self, game_id: &str, at: SystemTime) -> bool {
        self.every_game.iter().any(|w| w.is_on(at))
            || self
                .by_game
                .get(game_id)
                .is_some_and(|ws| ws.iter().any(|w| w.is_on(at)))
    }

    /// Until when `game_id` is silenced, from `at`: the latest end of the
    /// silences covering it then (`None`: it is not silenced).
    pub(crate) fn covered_until(&self, game_id: &str, at: SystemTime) -> Option<SystemTime> {
        self.every_game
            .iter()
            .chain(self.by_game.get(game_id).into_iter().flatten())
            .filter(|w| w.is_on(at))
            .map(|w| w.ends_at)
            .max()
    }

    #[cfg(test)]
    /// The earliest end of the silences not over when they were taken.
    pub(crate) fn earliest_end(&self) -> Option<SystemTime> {
        self.earliest_end
    }

    #[cfg(test)]
    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.every_game.is_empty() && self.by_game.is_empty()
    }
}

/// What `silence end ID` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its rows (one per game it names) ended now.
    Now(u64),
    /// It exists, but had ended already, at this time.
    Already(SystemTime),
    /// No such silence (or one that ended long ago and was dropped).
    Unknown,
}

/// How `silence add` was told when the silence ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ends {
    /// `--for DURATION`, as given.
    For(String),
    /// `--until TIME`, as given.
    Until(String),
}

/// A bad input of a `silence` command, naming it: exit 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputError {
    /// What to print, one line.
    pub message: String,
}

impl InputError {
    fn invalid(flag: &str, value: &str, why: &str) -> InputError {
        InputError {
            message: format!("invalid {flag} {:?}: {why}", shown(value)),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// A value as a message shows it: at most 200 bytes of it.
fn shown(value: &str) -> String {
    if value.len() <= 200 {
        return value.to_owned();
    }
    format!(
        "{}… ({} bytes)",
        crate::text::cut_at_char_boundary(value, 200),
        value.len()
    )
}

/// When a silence asked for at `now` starts and ends: from `now`, for a
/// positive duration of at most [`MAX_LENGTH`], or until a time after `now`
/// (RFC 3339, with `Z` or an offset) no further than that.
pub(crate) fn window(ends: &Ends, now: SystemTime) -> Result<(SystemTime, SystemTime), InputError> {
    let end = match ends {
        Ends::For(text) => {
            let length = parse_duration(text, Units::UpToDays).ok_or_else(|| {
                InputError::invalid(
                    "--for",
                    text,
                    "expected a positive duration such as 90s, 30m, 2h or 7d",
                )
            })?;
            if length.is_zero() {
                return Err(InputError::invalid(
                    "--for",
                    text,
                    "must be greater than zero",
                ));
            }
            if length > MAX_LENGTH {
                return Err(InputError::invalid(
                    "--for",
                    text,
                    "must be at most a year (365d)",
                ));
            }
            now + length
        }
        Ends::Until(text) => {
            let end = parse_rfc3339(text).ok_or_else(|| {
                InputError::invalid(
                    "--until",
                    text,
                    "expected an RFC 3339 time such as 2026-11-26T21:00:00Z or \
                     2026-11-26T22:00:00+01:00",
                )
            })?;
            if end <= now {
                return Err(InputError::invalid(
                    "--until",
                    text,
                    &format!("is not in the future (it is now {})", rfc3339(now)),
                ));
            }
            if end.duration_since(now).unwrap_or_default() > MAX_LENGTH {
                return Err(InputError::invalid(
                    "--until",
                    text,
                    "is more than a year (365d) away",
                ));
            }
            end
        }
    };
    Ok((now, end))
}

/// A game id a silence may name: not empty, at most
/// [`MAX_GAME_ID_BYTES`], no control character (it ends up in log lines
/// and a terminal).
pub(crate) fn check_game(game_id: &str) -> Result<(), InputError> {
    let why = if game_id.is_empty() {
        "must not be empty"
    } else if game_id.len() > MAX_GAME_ID_BYTES {
        "is longer than 256 bytes, which no record's game id is"
    } else if game_id.chars().any(char::is_control) {
        "must not hold control characters"
    } else {
        return Ok(());
    };
    Err(InputError::invalid("--game", game_id, why))
}

/// A comment: at most [`MAX_COMMENT_BYTES`], one line, no control character.
pub(crate) fn check_comment(comment: &str) -> Result<(), InputError> {
    let why = if comment.len() > MAX_COMMENT_BYTES {
        "is longer than 1024 bytes"
    } else if comment.chars().any(char::is_control) {
        "must be one line without control characters"
    } else {
        return Ok(());
    };
    Err(InputError::invalid("--comment", comment, why))
}

/// A silence id as given to `silence end`: a UUID, written as PostgreSQL
/// and `silence add` write it (lowercase, hyphenated); `None` otherwise.
pub(crate) fn parse_id(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A fresh silence id: a UUID v7 whose time part is `now`.
pub(crate) fn new_id(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

/// A time as silences show it: RFC 3339 in UTC, to the second when it has
/// no fraction, else to the microsecond.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let text = crate::event::rfc3339_micros(t);
    match text.strip_suffix(".000000Z") {
        Some(whole) => format!("{whole}Z"),
        None => text,
    }
}

#[cfg(test)]
mod tests;
