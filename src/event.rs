//! The health event: what the cores decided, typed — a fact or a change of
//! an incident ([`EventType`]), the incident's kind as the tracker's own
//! enum, what was seen — until the wire. The envelope, the one JSON shape
//! every sink carries, is rendered from it only where bytes are made
//! (`envelope`); times are written as the envelope writes them (`time`).
//! How much its `details` carry is [`DetailLevel`]'s choice, made when
//! Docker's answer is decoded; an incident's event may carry its
//! container's last log lines ([`LogTail`]), added while it waits for them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ending::EndReason;
use crate::incident::{Change, Kind};
use crate::inspector::{Finding, Observation, StateDetails, restart_under_way};
use crate::log_tail::LogTail;

mod envelope;
mod time;

pub(crate) use time::rfc3339_micros;

/// The fact: a record in trouble at one inspect, every tick it lasts.
pub(crate) const INSPECT_UNHEALTHY: &str = "inspect_unhealthy";

/// Every event type, the fact first, then the changes of an incident.
pub(crate) const EVENT_TYPES: [&str; 5] = [
    EventType::Fact.as_str(),
    EventType::Incident(Change::Opened).as_str(),
    EventType::Incident(Change::Escalated).as_str(),
    EventType::Incident(Change::Reminder).as_str(),
    EventType::Incident(Change::Resolved).as_str(),
];

/// The resolution of an incident whose game left the records, or whose
/// container has been gone (404) for `--recover-after`.
#[cfg(test)]
pub(crate) const REMOVED: &str = "removed";

/// The event `rtinspect notify-test` sends: it says nothing about a game,
/// so it is not one of [`EVENT_TYPES`] and is never spooled.
pub(crate) const NOTIFY_TEST: &str = "notify_test";

/// What an event reports; the wire names it by [`EventType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `inspect_unhealthy`: a record in trouble at one inspect.
    Fact,
    /// `incident_opened`, `incident_escalated`, `incident_reminder` or
    /// `incident_resolved`: a change of an incident.
    Incident(Change),
    /// `notify_test`: `rtinspect notify-test`'s message, about no game.
    NotifyTest,
}

impl EventType {
    /// Every type an event is published and spooled as, in the order of
    /// [`EVENT_TYPES`].
    pub(crate) const PUBLISHED: [EventType; 5] = [
        EventType::Fact,
        EventType::Incident(Change::Opened),
        EventType::Incident(Change::Escalated),
        EventType::Incident(Change::Reminder),
        EventType::Incident(Change::Resolved),
    ];

    /// Its name on the wire and in logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Fact => INSPECT_UNHEALTHY,
            EventType::Incident(Change::Opened) => "incident_opened",
            EventType::Incident(Change::Escalated) => "incident_escalated",
            EventType::Incident(Change::Reminder) => "incident_reminder",
            EventType::Incident(Change::Resolved) => "incident_resolved",
            EventType::NotifyTest => NOTIFY_TEST,
        }
    }

    /// The change of an incident it reports; `None` for a fact (and
    /// `rtinspect notify-test`'s message).
    pub(crate) fn change(self) -> Option<Change> {
        match self {
            EventType::Incident(change) => Some(change),
            EventType::Fact | EventType::NotifyTest => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// One event, ready to publish: a fact or a change of an incident, typed;
/// its envelope is made from it at the wire ([`HealthEvent::envelope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// A UUID made when the event was emitted; consumers de-duplicate on it.
    pub event_id: String,
    /// What it reports: a fact, or which change of an incident.
    pub event_type: EventType,
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
    /// For an event that a Docker event prompted (not part of the
    /// envelope): the stages of its detection, the first of which starts
    /// the detection latency. Boxed: most events have none.
    pub prompt: Option<Box<Prompt>>,
    /// How an incident ended when no look saw it end: `removed` (the game
    /// left the records, or its container is gone). Its `details` then
    /// carry `resolution` and no `seen`, and `state` is the resolution.
    pub resolution: Option<String>,
    /// For an incident's event: its container's last log lines, or why
    /// there are none (`details.log_tail`, `details.log_tail_unavailable`);
    /// `None` when none were asked for. Boxed: most events have none.
    pub log_tail: Option<Box<LogTail>>,
    /// The host that saw it, when the host is named (`--host-id`, or host
    /// scoping): the envelope's top-level `host_id`. `None` leaves the
    /// envelope as it always was.
    pub host_id: Option<String>,
    /// For an event read back from a spool line that its fields do not
    /// render to byte for byte (written by hand, or by another writer):
    /// that line, which the wire carries again as it was.
    read_back: Option<Box<ReadBack>>,
}

/// A spool line kept as it was read (see [`HealthEvent::from_envelope`]):
/// the envelope carries it again byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadBack {
    json: String,
    /// Where its `details` object lies in it.
    details: std::ops::Range<usize>,
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
    /// Whether a silence held this change back until now (its game's first
    /// look after the silence was not clean); only present when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_silence: bool,
    /// How the container ended, when the change is about an end:
    /// `stopped`, `oom`, `crashed`, `exited` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A crash's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The signal that ended a crashed container (exit code 128+N), as
    /// `KILL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// How the incident ended when no clean run ended it: `removed` or
    /// `stopped`. The envelope says it after these, beside `seen`.
    #[serde(skip)]
    pub resolution: Option<String>,
}

impl IncidentFacts {
    /// These facts saying how the container ended: the reason's name, and
    /// a crash's exit code and signal.
    pub(crate) fn with_end(mut self, end: Option<EndReason>) -> IncidentFacts {
        self.reason = end.map(|r| r.as_str().to_owned());
        self.exit_code = end
            .filter(|r| r.as_str() == "crashed")
            .and_then(EndReason::exit_code);
        self.signal = end.and_then(EndReason::signal).map(str::to_owned);
        self
    }
}

impl HealthEvent {
    /// Makes the event for `finding` observed at `occurred_at`, with a fresh
    /// UUID (v7) whose time part is that same instant.
    pub(crate) fn from_finding(finding: Finding, occurred_at: SystemTime) -> Self {
        Self::with_id(new_id(occurred_at), finding, occurred_at)
    }

    /// Makes the event with a given id (for tests and replays).
    pub(crate) fn with_id(event_id: String, finding: Finding, occurred_at: SystemTime) -> Self {
        Self::make(
            event_id,
            EventType::Fact,
            None,
            finding.game_id,
            finding.observation,
            occurred_at,
        )
    }

    /// Makes an incident's event, of its `change`, with what was seen at
    /// its look.
    pub(crate) fn for_incident(
        change: Change,
        incident: IncidentFacts,
        game_id: String,
        seen: Observation,
        occurred_at: SystemTime,
    ) -> Self {
        Self::make(
            new_id(occurred_at),
            EventType::Incident(change),
            Some(Box::new(incident)),
            game_id,
            seen,
            occurred_at,
        )
    }

    /// Makes the `incident_resolved` of an incident closed with no look
    /// behind it: its game is gone (`details.resolution` is `removed`), or
    /// its container was stopped through the API (`stopped`); no `seen`;
    /// `container_id` is the last container seen.
    pub(crate) fn for_closed_incident(
        mut incident: IncidentFacts,
        game_id: String,
        container_id: String,
        resolution: &'static str,
        occurred_at: SystemTime,
    ) -> Self {
        incident.resolution = Some(resolution.to_owned());
        Self::make(
            new_id(occurred_at),
            EventType::Incident(Change::Resolved),
            Some(Box::new(incident)),
            game_id,
            Observation {
                container_id,
                restart_count: 0,
                status: resolution.to_owned(),
                health: String::new(),
                details: None,
            },
            occurred_at,
        )
    }

    /// The test message of `rtinspect notify-test`, from the host `host`:
    /// its game id names the command and the host, its container is none.
    pub(crate) fn notify_test(host: &str, occurred_at: SystemTime) -> Self {
        Self::make(
            new_id(occurred_at),
            EventType::NotifyTest,
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

    fn make(
        event_id: String,
        event_type: EventType,
        incident: Option<Box<IncidentFacts>>,
        game_id: String,
        o: Observation,
        occurred_at: SystemTime,
    ) -> Self {
        let resolution = incident.as_ref().and_then(|i| i.resolution.clone());
        let mut details = o.details;
        if incident.is_none()
            && let Some(d) = details.as_deref_mut()
        {
            // A fact carries the last probe's output alone, as it always has.
            d.health_log.clear();
        }
        let mut event = HealthEvent {
            event_id,
            event_type,
            incident,
            game_id,
            container_id: o.container_id,
            occurred_at: rfc3339_micros(occurred_at),
            restart_count: o.restart_count,
            state: o.status,
            health: o.health,
            details: details.filter(|d| !d.is_empty()),
            prompt: None,
            resolution,
            log_tail: None,
            host_id: None,
            read_back: None,
        };
        event.fit_the_envelope();
        event
    }

    /// The event as host `host` saw it: its envelope names the host, and is
    /// fitted to its bound again. An event read back from a spool line
    /// keeps that line as it was.
    pub(crate) fn seen_on(mut self, host: &str) -> HealthEvent {
        if self.read_back.is_none() {
            self.host_id = Some(host.to_owned());
            self.fit_the_envelope();
        }
        self
    }

    /// The change of an incident this event reports; `None` for a fact (and
    /// `rtinspect notify-test`'s message).
    pub(crate) fn change(&self) -> Option<Change> {
        self.event_type.change()
    }

    /// A fact's kind, as routing and the chats tell it: not running (but a
    /// restart under way is a restart), else unhealthy, else the restart
    /// that made it a fact. A fact is never a crash loop: only an incident
    /// counts restarts.
    pub(crate) fn fact_kind(&self) -> Kind {
        if restart_under_way(&self.state) {
            Kind::Restarted
        } else if self.state != "running" {
            Kind::NotRunning
        } else if self.health == "unhealthy" {
            Kind::Unhealthy
        } else {
            Kind::Restarted
        }
    }

    /// The event carrying `tail`, fitted to the envelope's bound again
    /// (its oldest lines go first when the rest leaves no room).
    pub(crate) fn with_log_tail(mut self, tail: LogTail) -> Self {
        self.log_tail = Some(Box::new(tail));
        self.fit_the_envelope();
        self
    }
}

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

/// An event for an exited container of `game`, for tests of the modules
/// that carry events.
#[cfg(test)]
pub(crate) fn stopped_event(game: &str) -> HealthEvent {
    HealthEvent::from_finding(
        Finding {
            game_id: game.into(),
            observation: exited(),
            reasons: vec![crate::inspector::Reason::NotRunning],
        },
        SystemTime::now(),
    )
}

/// A container seen exited after one restart.
#[cfg(test)]
fn exited() -> Observation {
    Observation {
        container_id: "c".repeat(64),
        restart_count: 1,
        status: "exited".into(),
        health: "".into(),
        details: None,
    }
}

/// The facts of the incident `incident_id`, of `kind`, with
/// `restarts_in_window`, opened at a fixed time and saying nothing more,
/// for tests of the modules that carry events.
#[cfg(test)]
pub(crate) fn plain_facts(incident_id: &str, kind: Kind, restarts_in_window: u32) -> IncidentFacts {
    IncidentFacts {
        incident_id: incident_id.into(),
        kind,
        started_at: "2026-12-02T15:40:13.104861Z".into(),
        restarts_in_window,
        oom: false,
        after_silence: false,
        reason: None,
        exit_code: None,
        signal: None,
        resolution: None,
    }
}

/// The `incident_opened` of a game whose container exited, for tests of
/// the modules that carry events.
#[cfg(test)]
pub(crate) fn opened_event(game: &str) -> HealthEvent {
    let at = SystemTime::now();
    HealthEvent::for_incident(
        Change::Opened,
        IncidentFacts {
            started_at: rfc3339_micros(at),
            ..plain_facts(&new_id(at), Kind::NotRunning, 0)
        },
        game.into(),
        exited(),
        at,
    )
}

#[cfg(test)]
mod tests;
