//! The health event and its envelope: the one JSON shape every sink carries.
//!
//! The envelope is rendered once, when the event is made, so that the stdout
//! line, the database row, the NOTIFY payload and the webhook's body are the
//! same bytes. How much its `details` carry is [`DetailLevel`]'s choice, made
//! when Docker's answer is decoded.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::incident::{Change, Kind};
use crate::inspector::{Finding, Observation, StateDetails};

/// The longest envelope: PostgreSQL refuses a NOTIFY payload of 8000 bytes
/// or more (SQLSTATE 22023), with room to spare.
pub const MAX_ENVELOPE_BYTES: usize = 7900;

/// The fact: a record in trouble at one inspect, every tick it lasts.
pub const INSPECT_UNHEALTHY: &str = "inspect_unhealthy";

/// Every event type, the fact first, then the changes of an incident.
pub const EVENT_TYPES: [&str; 5] = [
    INSPECT_UNHEALTHY,
    "incident_opened",
    "incident_escalated",
    "incident_reminder",
    "incident_resolved",
];

/// The event type an incident's change is published as: the incident core
/// names changes, the envelope names event types.
pub(crate) fn event_type_of(change: Change) -> &'static str {
    EVENT_TYPES[1 + change as usize]
}

/// The resolution of an incident whose game left the records, or whose
/// container has been gone (404) for `--recover-after`.
pub const REMOVED: &str = "removed";

/// The event `rtinspect notify-test` sends: it says nothing about a game,
/// so it is not one of [`EVENT_TYPES`] and is never spooled.
pub const NOTIFY_TEST: &str = "notify_test";

/// How much an event's `details` carry (`--details`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DetailLevel {
    /// `restart_count`, `state` and `health`, always present.
    #[default]
    Basic,
    /// Those three, and what else Docker's `State` says about why: see
    /// [`StateDetails`]; a field Docker does not report is left out.
    Extended,
}

/// One `inspect_unhealthy` event, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// A UUID made when the event was emitted; consumers de-duplicate on it.
    pub event_id: String,
    /// One of [`EVENT_TYPES`]: the wire's name of [`HealthEvent::change`].
    pub event_type: &'static str,
    /// For an incident's event, the change it reports; `None` for a fact.
    change: Option<Change>,
    /// For an incident's event: which incident, and how it stands.
    pub incident: Option<Box<IncidentFacts>>,
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
    /// With `--details extended`, what else Docker said about why (`None`
    /// otherwise, or when it said nothing more).
    pub details: Option<Box<StateDetails>>,
    /// The envelope as JSON, one line, no trailing newline.
    pub envelope: String,
    /// Where the `details` object lies in `envelope`.
    details_span: Range<usize>,
    /// For an event that a Docker event prompted (not part of the
    /// envelope): the stages of its detection, the first of which starts
    /// the detection latency. Boxed: most events have none.
    pub prompt: Option<Box<Prompt>>,
    /// How an incident ended when no look saw it end: `removed` (the game
    /// left the records, or its container is gone). Its `details` then
    /// carry `resolution` and no `seen`, and `state` is the resolution.
    pub resolution: Option<String>,
}

/// When a Docker event led to an inspect: the stages of its detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    /// The Docker action that prompted it (`die`, `start`, …).
    pub action: &'static str,
    /// When dockerd says the (earliest merged) event happened.
    pub event_at: SystemTime,
    /// When the inspector took it.
    pub read_at: SystemTime,
    /// When the inspect answered.
    pub answered_at: SystemTime,
}

/// What an incident's event says of the incident, beside what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFacts {
    /// Stable for the incident: a key to de-duplicate or group on.
    pub incident_id: String,
    /// What is wrong; in the envelope its name: `restarted`, `unhealthy`,
    /// `not_running` or `crash_loop`.
    #[serde(with = "kind_name")]
    pub kind: Kind,
    /// When the incident opened, RFC 3339 UTC.
    pub started_at: String,
    /// Restarts counted in the crash-loop window.
    pub restarts_in_window: u32,
    /// Whether the kernel's OOM killer ended a run of the container.
    pub oom: bool,
}

/// An incident event's `details`: the incident, and what was seen (or,
/// when nothing was, how it ended).
#[derive(Serialize, Deserialize)]
struct IncidentDetails<F, S, D> {
    #[serde(flatten)]
    incident: F,
    // A missing member is `None`: no `default`, which would ask `D: Default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen: Option<D>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    event_id: &'a str,
    game_id: &'a str,
    container_id: &'a str,
    event_type: &'a str,
    occurred_at: &'a str,
    // Last, so that its place in the envelope is known: see `with_id`.
    details: &'a RawValue,
}

/// `details`, in the order of the contract; the extended fields only when known.
#[derive(Serialize, Deserialize)]
struct Details<S> {
    restart_count: u64,
    state: S,
    health: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oom_killed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_failing_streak: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_output: Option<S>,
    /// An incident's evidence: the last probes' outputs, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_log: Option<Vec<S>>,
}

impl HealthEvent {
    /// Makes the event for `finding` observed at `occurred_at`, with a fresh
    /// UUID (v7) whose time part is that same instant.
    pub fn from_finding(finding: Finding, occurred_at: SystemTime) -> Self {
        Self::with_id(new_id(occurred_at), finding, occurred_at)
    }

    /// Makes the event with a given id (for tests and replays).
    pub fn with_id(event_id: String, finding: Finding, occurred_at: SystemTime) -> Self {
        Self::render(
            event_id,
            INSPECT_UNHEALTHY,
            None,
            None,
            finding.game_id,
            finding.observation,
            occurred_at,
        )
    }

    /// Makes an incident's event, of its `change`, with what was seen at
    /// its look.
    pub fn for_incident(
        change: Change,
        incident: IncidentFacts,
        game_id: String,
        seen: Observation,
        occurred_at: SystemTime,
    ) -> Self {
        Self::render(
            new_id(occurred_at),
            event_type_of(change),
            Some(change),
            Some(Box::new(incident)),
            game_id,
            seen,
            occurred_at,
        )
    }

    /// Makes the `incident_resolved` of an incident whose game is gone:
    /// `details.resolution` is `removed` and no `seen`, since no look stands
    /// behind it; `container_id` is the last container seen.
    pub fn for_removed_incident(
        incident: IncidentFacts,
        game_id: String,
        container_id: String,
        occurred_at: SystemTime,
    ) -> Self {
        Self::render(
            new_id(occurred_at),
            event_type_of(Change::Resolved),
            Some(Change::Resolved),
            Some(Box::new(incident)),
            game_id,
            Observation {
                container_id,
                restart_count: 0,
                status: REMOVED.to_owned(),
                health: String::new(),
                details: None,
            },
            occurred_at,
        )
    }

    /// The test message of `rtinspect notify-test`, from the host `host`:
    /// its game id names the command and the host, its container is none.
    pub fn notify_test(host: &str, occurred_at: SystemTime) -> Self {
        Self::render(
            new_id(occurred_at),
            NOTIFY_TEST,
            None,
            None,
            format!("rtinspect-notify-test on {host}"),
            Observation {
                container_id: String::new(),
                restart_count: 0,
                status: "running".to_owned(),
                health: String::new(),
                details: None,
            },
            occurred_at,
        )
    }

    fn render(
        event_id: String,
        event_type: &'static str,
        change: Option<Change>,
        incident: Option<Box<IncidentFacts>>,
        game_id: String,
        o: Observation,
        occurred_at: SystemTime,
    ) -> Self {
        let occurred = rfc3339_micros(occurred_at);
        // Only an incident ended with no look is in this state.
        let removed = incident.is_some() && o.status == REMOVED;
        let mut details = o.details;
        if incident.is_none()
            && let Some(d) = details.as_deref_mut()
        {
            // A fact carries the last probe's output alone, as it always has.
            d.health_log.clear();
        }
        let mut details = details.filter(|d| !d.is_empty());
        let render = |x: Option<&StateDetails>| {
            let details_json = serde_json::to_string(&Details {
                restart_count: o.restart_count,
                state: o.status.as_str(),
                health: o.health.as_str(),
                exit_code: x.and_then(|x| x.exit_code),
                oom_killed: x.and_then(|x| x.oom_killed),
                error: x.and_then(|x| x.error.as_deref()),
                started_at: x.and_then(|x| x.started_at.as_deref()),
                finished_at: x.and_then(|x| x.finished_at.as_deref()),
                health_failing_streak: x.and_then(|x| x.health_failing_streak),
                health_output: x.and_then(|x| x.health_output.as_deref()),
                health_log: x
                    .map(|x| x.health_log.iter().map(String::as_str).collect::<Vec<_>>())
                    .filter(|log| !log.is_empty()),
            })
            .expect("details of strings, integers and booleans always serialise");
            let details_json = match &incident {
                None => details_json,
                Some(i) => serde_json::to_string(&IncidentDetails {
                    incident: i.as_ref(),
                    resolution: removed.then_some(REMOVED),
                    seen: (!removed).then(|| {
                        RawValue::from_string(details_json).expect("serde_json writes valid JSON")
                    }),
                })
                .expect("details of strings, integers and booleans always serialise"),
            };
            let details_json =
                RawValue::from_string(details_json).expect("serde_json writes valid JSON");
            let envelope = serde_json::to_string(&Envelope {
                event_id: &event_id,
                game_id: &game_id,
                container_id: &o.container_id,
                event_type,
                occurred_at: &occurred,
                details: &details_json,
            })
            .expect("an envelope of strings and JSON always serialises");
            (details_json, envelope)
        };
        let (mut details_json, mut envelope) = render(details.as_deref());
        // The texts are cut to 512 bytes, but escaping can make a control
        // character six: past the NOTIFY limit, drop the probe's output, then
        // the error, rather than have PostgreSQL refuse the whole event.
        for drop_text in [
            (|d: &mut StateDetails| d.health_log.clear()) as fn(&mut StateDetails),
            |d: &mut StateDetails| d.health_output = None,
            |d: &mut StateDetails| d.error = None,
        ] {
            if envelope.len() <= MAX_ENVELOPE_BYTES {
                break;
            }
            if let Some(d) = details.as_deref_mut() {
                drop_text(d);
                (details_json, envelope) = render(Some(d));
            }
        }
        // `details` is the last member: the envelope ends with it and `}`.
        let end = envelope.len() - 1;
        let details_span = end - details_json.get().len()..end;
        HealthEvent {
            event_id,
            event_type,
            change,
            incident,
            game_id,
            container_id: o.container_id,
            occurred_at: occurred,
            restart_count: o.restart_count,
            state: o.status,
            health: o.health,
            details,
            envelope,
            details_span,
            prompt: None,
            resolution: removed.then(|| REMOVED.to_owned()),
        }
    }

    /// The change of an incident this event reports; `None` for a fact (and
    /// `rtinspect notify-test`'s message).
    pub fn change(&self) -> Option<Change> {
        self.change
    }

    /// The envelope's `details` object, byte for byte as the envelope has it:
    /// what the PostgreSQL sink stores, so that the row and the NOTIFY
    /// payload say the same.
    pub fn details_json(&self) -> &str {
        &self.envelope[self.details_span.clone()]
    }

    /// Reads an event back from its envelope (a spool line); the envelope is
    /// kept byte for byte, so a replayed event is the event that was emitted.
    pub fn from_envelope(envelope: &str) -> Result<HealthEvent, String> {
        #[derive(Deserialize)]
        struct Owned<'a> {
            event_id: String,
            game_id: String,
            container_id: String,
            event_type: String,
            occurred_at: String,
            #[serde(borrow)]
            details: &'a RawValue,
        }
        let e: Owned = serde_json::from_str(envelope).map_err(|e| e.to_string())?;
        let Some(event_type) = EVENT_TYPES.iter().copied().find(|t| *t == e.event_type) else {
            return Err(format!("unknown event_type {:?}", e.event_type));
        };
        if uuid::Uuid::parse_str(&e.event_id).is_err() {
            return Err(format!("event_id {:?} is not a UUID", e.event_id));
        }
        // The raw value borrows from `envelope`: its offset there is its span.
        let raw = e.details.get();
        let start = (raw.as_ptr() as usize).wrapping_sub(envelope.as_ptr() as usize);
        let details_span = start..start.saturating_add(raw.len());
        if envelope.get(details_span.clone()) != Some(raw) {
            return Err("details not found in the envelope".into());
        }
        let (incident, d, resolution) = if event_type == INSPECT_UNHEALTHY {
            let d: Details<String> =
                serde_json::from_str(raw).map_err(|e| format!("details: {e}"))?;
            (None, d, None)
        } else {
            let i: IncidentDetails<IncidentFacts, String, Details<String>> =
                serde_json::from_str(raw).map_err(|e| format!("details: {e}"))?;
            // An incident that ended with no look has no `seen`, and says how.
            let d = match (i.seen, &i.resolution) {
                (Some(d), _) => d,
                (None, Some(how)) => Details {
                    restart_count: 0,
                    state: how.clone(),
                    health: String::new(),
                    exit_code: None,
                    oom_killed: None,
                    error: None,
                    started_at: None,
                    finished_at: None,
                    health_failing_streak: None,
                    health_output: None,
                    health_log: None,
                },
                (None, None) => return Err("details: missing field `seen`".into()),
            };
            (Some(Box::new(i.incident)), d, i.resolution)
        };
        let details = StateDetails {
            exit_code: d.exit_code,
            oom_killed: d.oom_killed,
            error: d.error,
            started_at: d.started_at,
            finished_at: d.finished_at,
            health_failing_streak: d.health_failing_streak,
            health_output: d.health_output,
            health_log: d.health_log.unwrap_or_default(),
        };
        Ok(HealthEvent {
            event_id: e.event_id,
            event_type,
            change: CHANGES
                .into_iter()
                .find(|c| event_type_of(*c) == event_type),
            incident,
            game_id: e.game_id,
            container_id: e.container_id,
            occurred_at: e.occurred_at,
            restart_count: d.restart_count,
            state: d.state,
            health: d.health,
            details: (!details.is_empty()).then(|| Box::new(details)),
            envelope: envelope.to_owned(),
            details_span,
            prompt: None,
            resolution,
        })
    }
}

/// Every change of an incident, in the order of [`EVENT_TYPES`].
const CHANGES: [Change; 4] = [
    Change::Opened,
    Change::Escalated,
    Change::Reminder,
    Change::Resolved,
];

/// An incident's [`Kind`] in the envelope: its name (`crash_loop`), so
/// that the domain type stays plain.
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::incident::Kind;

    /// Every kind, to read one back by its name.
    const KINDS: [Kind; 4] = [
        Kind::Restarted,
        Kind::Unhealthy,
        Kind::NotRunning,
        Kind::CrashLoop,
    ];

    pub(super) fn serialize<S: Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        KINDS
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| D::Error::custom(format!("unknown incident kind {name:?}")))
    }
}

/// A fresh event id: a UUID v7 whose time part is `at`.
fn new_id(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
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
                details: None,
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
    fn each_change_of_an_incident_is_published_under_its_own_event_type() {
        let changes = [
            (Change::Opened, "incident_opened"),
            (Change::Escalated, "incident_escalated"),
            (Change::Reminder, "incident_reminder"),
            (Change::Resolved, "incident_resolved"),
        ];
        for (change, name) in changes {
            assert_eq!(event_type_of(change), name);
        }
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
                details: None,
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
        let facts = IncidentFacts {
            incident_id: "019ae1c5-0000-7000-8000-000000000000".into(),
            kind: Kind::CrashLoop,
            started_at: "2026-12-02T15:40:13.104861Z".into(),
            restarts_in_window: 3,
            oom: true,
        };
        let i = HealthEvent::for_incident(
            Change::Escalated,
            facts.clone(),
            "g".into(),
            finding().observation,
            SystemTime::UNIX_EPOCH,
        );
        let v: serde_json::Value = serde_json::from_str(&i.envelope).unwrap();
        assert_eq!(v["event_type"], "incident_escalated");
        assert_eq!(v["details"]["kind"], "crash_loop");
        assert_eq!(v["details"]["seen"]["state"], e.state.as_str());
        let details: serde_json::Value = serde_json::from_str(i.details_json()).unwrap();
        assert_eq!(details, v["details"]);
        let back = HealthEvent::from_envelope(&i.envelope).unwrap();
        assert_eq!(back, i, "an incident's event reads back from the spool");
        assert_eq!(back.incident.as_deref(), Some(&facts));
        assert!(
            HealthEvent::from_envelope(&e.envelope.replace("inspect_unhealthy", "other")).is_err()
        );
    }

    #[test]
    fn a_removed_incident_says_so_and_carries_nothing_seen() {
        let facts = IncidentFacts {
            incident_id: "019ae1c5-0000-7000-8000-000000000000".into(),
            kind: crate::incident::Kind::NotRunning,
            started_at: "2026-12-02T15:40:13.104861Z".into(),
            restarts_in_window: 1,
            oom: false,
        };
        let e = HealthEvent::for_removed_incident(
            facts.clone(),
            "g".into(),
            "c".repeat(64),
            at(1_795_726_800, 5),
        );
        let v: serde_json::Value = serde_json::from_str(&e.envelope).unwrap();
        assert_eq!(v["event_type"], "incident_resolved");
        assert_eq!(v["container_id"], "c".repeat(64));
        assert_eq!(
            e.details_json(),
            r#"{"incident_id":"019ae1c5-0000-7000-8000-000000000000","kind":"not_running","started_at":"2026-12-02T15:40:13.104861Z","restarts_in_window":1,"oom":false,"resolution":"removed"}"#
        );
        assert_eq!(e.resolution.as_deref(), Some(REMOVED));
        assert_eq!(e.state, REMOVED);
        let back = HealthEvent::from_envelope(&e.envelope).unwrap();
        assert_eq!(back, e, "it reads back from the spool");
        // An incident's event with neither `seen` nor a resolution is refused.
        let bare = e.envelope.replace(r#","resolution":"removed""#, "");
        assert!(HealthEvent::from_envelope(&bare).is_err());
    }

    #[test]
    fn an_envelope_that_escaping_would_push_past_notify_sheds_its_texts() {
        let mut f = extended();
        let controls = "\u{1}".repeat(512);
        f.game_id = "\u{1}".repeat(256);
        if let Some(d) = f.observation.details.as_deref_mut() {
            d.error = Some(controls.clone());
            d.health_output = Some(controls);
        }
        let e = HealthEvent::with_id("id".into(), f, at(0, 0));
        assert!(
            e.envelope.len() <= MAX_ENVELOPE_BYTES,
            "{}",
            e.envelope.len()
        );
        let v: serde_json::Value = serde_json::from_str(&e.envelope).unwrap();
        assert!(v["details"].get("health_output").is_none(), "dropped first");
        assert!(
            v["details"].get("error").is_some(),
            "the error fits after that"
        );
        assert_eq!(v["details"]["exit_code"], 137, "the rest is kept");
        let details: serde_json::Value = serde_json::from_str(e.details_json()).unwrap();
        assert_eq!(details, v["details"]);
        let mut small = extended();
        if let Some(d) = small.observation.details.as_deref_mut() {
            d.error = Some("short".into());
        }
        let e = HealthEvent::with_id("id".into(), small, at(0, 0));
        assert!(
            e.envelope.contains("\"error\":\"short\""),
            "nothing shed when it fits"
        );
    }

    #[test]
    fn only_an_incident_carries_the_last_probes_outputs() {
        let fact = HealthEvent::from_finding(extended(), at(0, 0));
        let v: serde_json::Value = serde_json::from_str(&fact.envelope).unwrap();
        assert!(v["details"].get("health_log").is_none(), "{v}");
        assert!(fact.details.as_ref().unwrap().health_log.is_empty());
        let facts = IncidentFacts {
            incident_id: "019ae1c5-0000-7000-8000-000000000001".into(),
            kind: Kind::Unhealthy,
            started_at: "2026-12-02T15:40:13.104861Z".into(),
            restarts_in_window: 0,
            oom: false,
        };
        let i = HealthEvent::for_incident(
            Change::Opened,
            facts,
            "g".into(),
            extended().observation,
            at(0, 0),
        );
        let v: serde_json::Value = serde_json::from_str(&i.envelope).unwrap();
        assert_eq!(
            v["details"]["seen"]["health_log"],
            serde_json::json!(["earlier", "probe says \"no\"\n"])
        );
        assert_eq!(HealthEvent::from_envelope(&i.envelope).unwrap(), i);
    }

    fn extended() -> Finding {
        let mut f = finding();
        f.observation.status = "exited".into();
        f.observation.details = Some(Box::new(StateDetails {
            exit_code: Some(137),
            oom_killed: Some(true),
            error: None,
            started_at: Some("2026-11-26T20:59:00.5Z".into()),
            finished_at: Some("2026-11-26T21:00:00.25Z".into()),
            health_failing_streak: Some(4),
            health_output: Some("probe says \"no\"\n".into()),
            health_log: vec!["earlier".into(), "probe says \"no\"\n".into()],
        }));
        f
    }

    #[test]
    fn extended_details_follow_the_three_in_the_contract_order() {
        let e = HealthEvent::with_id("id".into(), extended(), at(1_795_726_800, 0));
        assert_eq!(
            e.details_json(),
            r#"{"restart_count":3,"state":"exited","health":"unhealthy","exit_code":137,"oom_killed":true,"started_at":"2026-11-26T20:59:00.5Z","finished_at":"2026-11-26T21:00:00.25Z","health_failing_streak":4,"health_output":"probe says \"no\"\n"}"#
        );
        assert!(
            e.envelope
                .ends_with(&format!(r#","details":{}}}"#, e.details_json()))
        );
    }

    #[test]
    fn details_json_is_the_envelopes_details_byte_for_byte() {
        for f in [finding(), extended()] {
            let e = HealthEvent::from_finding(f, at(1_795_726_800, 9));
            let v: serde_json::Value = serde_json::from_str(&e.envelope).unwrap();
            let d: serde_json::Value = serde_json::from_str(e.details_json()).unwrap();
            assert_eq!(v["details"], d);
            assert!(e.envelope.contains(e.details_json()));
        }
        let basic = HealthEvent::with_id("id".into(), finding(), at(0, 0));
        assert_eq!(
            basic.details_json(),
            r#"{"restart_count":3,"state":"running","health":"unhealthy"}"#
        );
    }

    #[test]
    fn empty_extended_details_render_as_basic() {
        let mut f = finding();
        f.observation.details = Some(Box::default());
        let e = HealthEvent::with_id("id".into(), f, at(0, 0));
        let b = HealthEvent::with_id("id".into(), finding(), at(0, 0));
        assert_eq!(e, b);
    }

    #[test]
    fn an_extended_envelope_reads_back_into_the_same_event() {
        let e = HealthEvent::from_finding(extended(), at(1_795_726_800, 5));
        let back = HealthEvent::from_envelope(&e.envelope).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.details.as_ref().unwrap().exit_code, Some(137));
        assert_eq!(back.details_json(), e.details_json());
    }

    #[test]
    fn details_of_a_spooled_envelope_are_found_wherever_they_are() {
        // A line written by hand, details first and spaced: kept as it is.
        let line = r#"{ "details" : {"state":"exited", "health":"","restart_count":2,"exit_code":1},
            "event_id":"0193a1b2-0000-7000-8000-000000000000","game_id":"g","container_id":"c",
            "event_type":"inspect_unhealthy","occurred_at":"2026-11-26T21:00:00.000000Z"}"#;
        let e = HealthEvent::from_envelope(line).unwrap();
        assert_eq!(
            e.details_json(),
            r#"{"state":"exited", "health":"","restart_count":2,"exit_code":1}"#
        );
        assert_eq!(e.details.unwrap().exit_code, Some(1));
        assert!(HealthEvent::from_envelope(&line.replace(r#""restart_count":2,"#, "")).is_err());
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
