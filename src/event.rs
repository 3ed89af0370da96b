//! The health event and its envelope: the one JSON shape every sink carries.
//!
//! The envelope is rendered once, when the event is made, so that the stdout
//! line, the database row and the NOTIFY payload are the same bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::inspector::Finding;

/// The only event type rtinspect emits.
pub const INSPECT_UNHEALTHY: &str = "inspect_unhealthy";

/// One `inspect_unhealthy` event, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// A UUID made when the event was emitted; consumers de-duplicate on it.
    pub event_id: String,
    /// The game whose container is unhealthy.
    pub game_id: String,
    /// The container's full id.
    pub container_id: String,
    /// When the unhealthy observation was made, RFC 3339 UTC with a `Z`.
    pub occurred_at: String,
    /// `RestartCount` at the observation.
    pub restart_count: u64,
    /// `State.Status` at the observation.
    pub state: String,
    /// `State.Health.Status`, `""` without a healthcheck.
    pub health: String,
    /// The envelope as JSON, one line, no trailing newline.
    pub envelope: String,
    /// When dockerd reported what led to this event, for an event that a
    /// Docker event prompted (not part of the envelope): the start of the
    /// detection latency.
    pub prompted_at: Option<SystemTime>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    event_id: &'a str,
    game_id: &'a str,
    container_id: &'a str,
    event_type: &'a str,
    occurred_at: &'a str,
    details: Details<'a>,
}

#[derive(Serialize)]
struct Details<'a> {
    restart_count: u64,
    state: &'a str,
    health: &'a str,
}

impl HealthEvent {
    /// Makes the event for `finding` observed at `occurred_at`, with a fresh
    /// UUID (v7) whose time part is that same instant.
    pub fn from_finding(finding: Finding, occurred_at: SystemTime) -> Self {
        let since = occurred_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
        let id = uuid::Uuid::new_v7(ts).to_string();
        Self::with_id(id, finding, occurred_at)
    }

    /// Makes the event with a given id (for tests and replays).
    pub fn with_id(event_id: String, finding: Finding, occurred_at: SystemTime) -> Self {
        let o = finding.observation;
        let occurred = rfc3339_micros(occurred_at);
        let envelope = serde_json::to_string(&Envelope {
            event_id: &event_id,
            game_id: &finding.game_id,
            container_id: &o.container_id,
            event_type: INSPECT_UNHEALTHY,
            occurred_at: &occurred,
            details: Details {
                restart_count: o.restart_count,
                state: &o.status,
                health: &o.health,
            },
        })
        .expect("an envelope of strings and integers always serialises");
        HealthEvent {
            event_id,
            game_id: finding.game_id,
            container_id: o.container_id,
            occurred_at: occurred,
            restart_count: o.restart_count,
            state: o.status,
            health: o.health,
            envelope,
            prompted_at: None,
        }
    }

    /// Reads an event back from its envelope (a spool line); the envelope is
    /// kept byte for byte, so a replayed event is the event that was emitted.
    pub fn from_envelope(envelope: &str) -> Result<HealthEvent, String> {
        #[derive(serde::Deserialize)]
        struct Owned {
            event_id: String,
            game_id: String,
            container_id: String,
            event_type: String,
            occurred_at: String,
            details: OwnedDetails,
        }
        #[derive(serde::Deserialize)]
        struct OwnedDetails {
            restart_count: u64,
            state: String,
            health: String,
        }
        let e: Owned = serde_json::from_str(envelope).map_err(|e| e.to_string())?;
        if e.event_type != INSPECT_UNHEALTHY {
            return Err(format!("unknown event_type {:?}", e.event_type));
        }
        if uuid::Uuid::parse_str(&e.event_id).is_err() {
            return Err(format!("event_id {:?} is not a UUID", e.event_id));
        }
        Ok(HealthEvent {
            event_id: e.event_id,
            game_id: e.game_id,
            container_id: e.container_id,
            occurred_at: e.occurred_at,
            restart_count: e.details.restart_count,
            state: e.details.state,
            health: e.details.health,
            envelope: envelope.to_owned(),
            prompted_at: None,
        })
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC). Times before 1970 are
/// clamped to the epoch; none are made by this program.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An event for an exited container of `game`, for tests of the modules
/// that carry events.
#[cfg(test)]
pub(crate) fn stopped_event(game: &str) -> HealthEvent {
    use crate::inspector::{Observation, Reason};
    HealthEvent::from_finding(
        Finding {
            game_id: game.into(),
            observation: Observation {
                container_id: "c".repeat(64),
                restart_count: 1,
                status: "exited".into(),
                health: "".into(),
            },
            reasons: vec![Reason::NotRunning],
        },
        SystemTime::now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::{Observation, Reason};

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    #[test]
    fn rfc3339_table() {
        let table = [
            (at(0, 0), "1970-01-01T00:00:00.000000Z"),
            (at(951_782_400, 1), "2000-02-29T00:00:00.000001Z"),
            (at(1_798_318_800, 123_456), "2026-12-26T21:00:00.123456Z"),
            (at(1_795_726_800, 999_999), "2026-11-26T21:00:00.999999Z"),
            (at(4_107_542_399, 0), "2100-02-28T23:59:59.000000Z"),
            (at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z"),
        ];
        for (t, want) in table {
            assert_eq!(rfc3339_micros(t), want);
        }
    }

    fn finding() -> Finding {
        Finding {
            game_id: "g-42".into(),
            observation: Observation {
                container_id: "c".repeat(64),
                restart_count: 3,
                status: "running".into(),
                health: "unhealthy".into(),
            },
            reasons: vec![Reason::Unhealthy],
        }
    }

    #[test]
    fn envelope_has_the_spec_shape_in_order() {
        let e = HealthEvent::with_id("0193-x".into(), finding(), at(1_795_726_800, 123_456));
        let want = format!(
            r#"{{"event_id":"0193-x","game_id":"g-42","container_id":"{}","event_type":"inspect_unhealthy","occurred_at":"2026-11-26T21:00:00.123456Z","details":{{"restart_count":3,"state":"running","health":"unhealthy"}}}}"#,
            "c".repeat(64)
        );
        assert_eq!(e.envelope, want);
    }

    #[test]
    fn envelope_escapes_hostile_strings() {
        let mut f = finding();
        f.game_id = "g\"\n\u{1}".into();
        let e = HealthEvent::with_id("id".into(), f, at(0, 0));
        assert!(!e.envelope.contains('\n'));
        let back: serde_json::Value = serde_json::from_str(&e.envelope).unwrap();
        assert_eq!(back["game_id"], "g\"\n\u{1}");
    }

    #[test]
    fn an_envelope_reads_back_into_the_same_event() {
        let e = HealthEvent::from_finding(finding(), at(1_795_726_800, 5));
        assert_eq!(HealthEvent::from_envelope(&e.envelope).unwrap(), e);
        assert!(HealthEvent::from_envelope("{}").is_err());
        assert!(
            HealthEvent::from_envelope(&e.envelope.replace("inspect_unhealthy", "other")).is_err()
        );
    }

    #[test]
    fn event_ids_are_uuids_and_unique() {
        let a = HealthEvent::from_finding(finding(), SystemTime::now());
        let b = HealthEvent::from_finding(finding(), SystemTime::now());
        assert_ne!(a.event_id, b.event_id);
        assert!(uuid::Uuid::parse_str(&a.event_id).is_ok());
        assert_eq!(a.event_id.len(), 36);
    }
}
