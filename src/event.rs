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
mod tests;
