//! What the schedule and its shell say to each other: the [`Input`]s it is
//! told (a Docker event, the records listed, an inspect's answer, shutdown),
//! each with its time, and the [`Action`]s it answers with (list, inspect,
//! ping, report, save, wait), with what they carry.

use std::time::{Instant, SystemTime};

use super::docker_event::ContainerEvent;
use super::saves::StateFile;
use crate::event::{HealthEvent, Prompt};
use crate::incident::IncidentEvent;
use crate::inspector::RuntimeRecord;
use crate::silence::Silences;
use crate::tick::{InspectAnswer, Outcome, Reach, Summary};

/// What happened, told to the schedule.
#[derive(Debug)]
pub(crate) enum Input {
    /// The events stream (re)subscribed, or could not: events may have been
    /// missed, so every record is inspected.
    Subscribed,
    /// Nudges did not fit the channel: every record is inspected.
    Overflowed,
    /// The silences in force or to come, read afresh (at a tick).
    Silences(Silences),
    /// A Docker event, and when the inspector took it.
    Docker(ContainerEvent, SystemTime),
    /// The records, freshly listed for the [`Action::List`] under way, or
    /// `None` when they could not be read (the shell says why), and when
    /// they came.
    Listed(Option<Vec<RuntimeRecord>>, SystemTime),
    /// The answer to the [`Action::Inspect`] under way, and when it came.
    Answered(InspectAnswer, SystemTime),
    /// The answer to the [`Action::Ping`] under way.
    Pinged(Result<(), String>),
    /// A write of the state directory failed (the shell says why): it is
    /// tried again at the end of the next tick.
    SaveFailed(StateFile),
    /// Shutdown was asked for.
    Shutdown,
}

/// Why the records are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListFor {
    /// A full tick begins.
    Tick,
    /// Docker events wait to be judged against the records as they are now.
    Nudges,
}

/// What became of one record, for the shell to log, count and publish.
#[derive(Debug)]
pub(crate) struct Report {
    /// The record inspected (or not).
    pub record: RuntimeRecord,
    /// What became of it.
    pub outcome: Outcome,
    /// Set when a Docker event asked for the inspect.
    pub prompt: Option<Prompt>,
}

/// The end of a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TickEnd {
    /// When its list was asked for.
    pub started: Instant,
    /// What it did; `None` when the records could not be listed.
    pub summary: Option<Summary>,
    /// Whether it could see dockerd (`None`: nothing says, or no listing).
    pub reach: Option<Reach>,
    /// Whether it gave up on a dockerd that stopped answering.
    pub gave_up_on_docker: bool,
}

/// What to do next.
// One action at a time is made and moved once, never stored in bulk: the
// size of a report does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Action {
    /// Read the records; answer with [`Input::Listed`].
    List(ListFor),
    /// Inspect this record's container; answer with [`Input::Answered`].
    Inspect(RuntimeRecord),
    /// Ask dockerd's `/_ping`; answer with [`Input::Pinged`].
    Ping,
    /// Log, count and publish what became of a record.
    Report(Report),
    /// Save the baselines ([`Schedule::inspector`]) to the state directory.
    SaveBaselines,
    /// Log and publish a change of an incident.
    Incident(HealthEvent),
    /// Log and count a change of an incident that a silence held back
    /// (until when the silence covers its game, if it still does).
    Silenced(IncidentEvent, Option<SystemTime>),
    /// Save the incidents ([`Schedule::incidents`]) to the state directory.
    SaveIncidents,
    /// Save [`Schedule::event_cursor`] to the state directory.
    SaveEventCursor,
    /// A tick ended: log it, count it, tell systemd.
    TickEnded(TickEnd),
    /// Nothing to do before this time, unless an input arrives.
    Wait(Instant),
    /// The loop is over.
    Stop,
}
