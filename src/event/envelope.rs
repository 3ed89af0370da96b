//! The envelope: the one JSON shape every sink carries, rendered from the
//! typed event where bytes are made — the stdout line, the database row and
//! its NOTIFY payload, the webhook's envelope format, the spool and
//! `rejected.jsonl` — so that they are the same bytes; and read back from a
//! spool line into the typed event. An event is fitted to the envelope's
//! bound when it is made, so that every rendering of it fits.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{EventType, HealthEvent, IncidentFacts, ReadBack};
use crate::ending::EndReason;
use crate::inspector::StateDetails;
use crate::log_tail::LogTail;

/// The longest envelope: PostgreSQL refuses a NOTIFY payload of 8000 bytes
/// or more (SQLSTATE 22023), with room to spare.
pub(crate) const MAX_ENVELOPE_BYTES: usize = 7900;

/// An event's envelope as bytes are made from it: one line of JSON, no
/// trailing newline, and where its `details` object lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    json: Cow<'a, str>,
    details: Range<usize>,
}

impl<'a> Envelope<'a> {
    /// The envelope, one line of JSON.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// The envelope's `details` object, byte for byte as the envelope has
    /// it: what the PostgreSQL sink stores, so that the row and the NOTIFY
    /// payload say the same.
    pub(crate) fn details(&self) -> &str {
        &self.json[self.details.clone()]
    }

    /// The envelope, owned or borrowed from the event.
    pub(crate) fn into_cow(self) -> Cow<'a, str> {
        self.json
    }
}

/// An incident event's `details`: the incident, and what was seen (or,
/// when nothing was, how it ended); then its container's last log lines,
/// or why there are none.
#[derive(Serialize, Deserialize)]
struct IncidentDetails<F, S, D> {
    #[serde(flatten)]
    incident: F,
    // A missing member is `None`: no `default`, which would ask `D: Default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_tail: Option<Vec<S>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_tail_unavailable: Option<S>,
}

#[derive(Serialize)]
struct Wire<'a> {
    event_id: &'a str,
    game_id: &'a str,
    container_id: &'a str,
    event_type: &'a str,
    occurred_at: &'a str,
    /// Only when the host is named (`--host-id`, or host scoping): an
    /// envelope without it is byte for byte as it always was.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_id: Option<&'a str>,
    // Last, so that its place in the envelope is known: see `render`.
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
    /// How the container ended, by the classifier of ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<S>,
    /// The signal of a crash, with `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<S>,
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

/// The envelope of `e`, made from its fields.
fn render(e: &HealthEvent) -> Envelope<'static> {
    let x = e.details.as_deref();
    let details_json = serde_json::to_string(&Details {
        restart_count: e.restart_count,
        state: e.state.as_str(),
        health: e.health.as_str(),
        exit_code: x.and_then(|x| x.exit_code),
        oom_killed: x.and_then(|x| x.oom_killed),
        reason: x.and_then(|x| x.reason).map(EndReason::as_str),
        signal: x.and_then(|x| x.reason?.signal()),
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
    let details_json = match &e.incident {
        None => details_json,
        // An incident ended with no look says how, and shows no `seen`
        // (its `state` is the resolution); one a look ended shows both.
        Some(i) => serde_json::to_string(&IncidentDetails {
            incident: i.as_ref(),
            resolution: e.resolution.as_deref(),
            seen: (e.resolution.as_deref() != Some(e.state.as_str())).then(|| {
                RawValue::from_string(details_json).expect("serde_json writes valid JSON")
            }),
            log_tail: match e.log_tail.as_deref() {
                Some(LogTail::Lines(lines)) => Some(lines.iter().map(String::as_str).collect()),
                _ => None,
            },
            log_tail_unavailable: match e.log_tail.as_deref() {
                Some(LogTail::Unavailable(why)) => Some(why.as_str()),
                _ => None,
            },
        })
        .expect("details of strings, integers and booleans always serialise"),
    };
    let details = RawValue::from_string(details_json).expect("serde_json writes valid JSON");
    let json = serde_json::to_string(&Wire {
        event_id: &e.event_id,
        game_id: &e.game_id,
        container_id: &e.container_id,
        event_type: e.event_type.as_str(),
        occurred_at: &e.occurred_at,
        host_id: e.host_id.as_deref(),
        details: &details,
    })
    .expect("an envelope of strings and JSON always serialises");
    // `details` is the last member: the envelope ends with it and `}`.
    let end = json.len() - 1;
    Envelope {
        details: end - details.get().len()..end,
        json: Cow::Owned(json),
    }
}

impl HealthEvent {
    /// The envelope, made now from the event (or, for a spool line kept as
    /// it was, that line).
    pub fn envelope(&self) -> Envelope<'_> {
        match &self.read_back {
            Some(line) => Envelope {
                json: Cow::Borrowed(&line.json),
                details: line.details.clone(),
            },
            None => render(self),
        }
    }

    /// Fits the details to the envelope's bound. The texts are cut to 512
    /// bytes, but escaping can make a control character six: past the
    /// NOTIFY limit, the probe's outputs go, then the log tail's lines,
    /// oldest first, then the error, rather than have PostgreSQL refuse
    /// the whole event.
    pub(super) fn fit_the_envelope(&mut self) {
        // Most events cannot reach the bound even with every byte escaped:
        // they are not rendered here, only where bytes are made.
        if self.envelope_bound() <= MAX_ENVELOPE_BYTES {
            return;
        }
        for drop_text in [
            (|d: &mut StateDetails| d.health_log.clear()) as fn(&mut StateDetails),
            |d: &mut StateDetails| d.health_output = None,
        ] {
            if render(self).json.len() <= MAX_ENVELOPE_BYTES {
                return;
            }
            if let Some(d) = self.details.as_deref_mut() {
                drop_text(d);
            }
        }
        while render(self).json.len() > MAX_ENVELOPE_BYTES
            && let Some(LogTail::Lines(lines)) = self.log_tail.as_deref_mut()
            && !lines.is_empty()
        {
            lines.remove(0);
        }
        if render(self).json.len() > MAX_ENVELOPE_BYTES
            && let Some(d) = self.details.as_deref_mut()
        {
            d.error = None;
        }
    }

    /// The most bytes the envelope can take: every text escaped at six
    /// bytes a byte (`\u001f`), with room for the keys, quotes, numbers
    /// and punctuation (under 600 bytes in all).
    pub(super) fn envelope_bound(&self) -> usize {
        const FRAME: usize = 1024;
        let opt = |s: &Option<String>| s.as_deref().map_or(0, str::len);
        let mut texts = self.event_id.len()
            + self.game_id.len()
            + self.container_id.len()
            + self.event_type.as_str().len()
            + self.occurred_at.len()
            + self.state.len()
            + self.health.len()
            + opt(&self.resolution)
            + opt(&self.host_id);
        let mut items = 0;
        if let Some(i) = &self.incident {
            texts += i.incident_id.len() + i.started_at.len() + "not_running".len();
        }
        if let Some(d) = &self.details {
            texts += opt(&d.error) + opt(&d.started_at) + opt(&d.finished_at);
            texts += opt(&d.health_output) + d.health_log.iter().map(String::len).sum::<usize>();
            items += d.health_log.len();
        }
        match self.log_tail.as_deref() {
            Some(LogTail::Lines(lines)) => {
                texts += lines.iter().map(String::len).sum::<usize>();
                items += lines.len();
            }
            Some(LogTail::Unavailable(why)) => texts += why.len(),
            None => {}
        }
        FRAME + 6 * texts + 3 * items
    }

    /// Reads an event back from its envelope (a spool line), typed again;
    /// its envelope stays byte for byte the line read, so a replayed event is
    /// the event that was emitted. The wire names the types and kinds, so
    /// this is where names are read back into them.
    pub(crate) fn from_envelope(envelope: &str) -> Result<HealthEvent, String> {
        #[derive(Deserialize)]
        struct Owned<'a> {
            event_id: String,
            game_id: String,
            container_id: String,
            event_type: String,
            occurred_at: String,
            #[serde(default)]
            host_id: Option<String>,
            #[serde(borrow)]
            details: &'a RawValue,
        }
        let e: Owned = serde_json::from_str(envelope).map_err(|e| e.to_string())?;
        let Some(event_type) = EventType::PUBLISHED
            .into_iter()
            .find(|t| t.as_str() == e.event_type)
        else {
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
        let mut log_tail = None;
        let (incident, d, resolution) = if event_type == EventType::Fact {
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
                    reason: None,
                    signal: None,
                    error: None,
                    started_at: None,
                    finished_at: None,
                    health_failing_streak: None,
                    health_output: None,
                    health_log: None,
                },
                (None, None) => return Err("details: missing field `seen`".into()),
            };
            log_tail = match (i.log_tail, i.log_tail_unavailable) {
                (Some(lines), _) => Some(Box::new(LogTail::Lines(lines))),
                (None, Some(why)) => Some(Box::new(LogTail::Unavailable(why))),
                (None, None) => None,
            };
            let mut incident = i.incident;
            incident.resolution.clone_from(&i.resolution);
            (Some(Box::new(incident)), d, i.resolution)
        };
        let details = StateDetails {
            reason: d
                .reason
                .as_deref()
                .and_then(|r| EndReason::from_name(r, d.exit_code)),
            exit_code: d.exit_code,
            oom_killed: d.oom_killed,
            error: d.error,
            started_at: d.started_at,
            finished_at: d.finished_at,
            health_failing_streak: d.health_failing_streak,
            health_output: d.health_output,
            health_log: d.health_log.unwrap_or_default(),
            ..Default::default()
        };
        let mut event = HealthEvent {
            event_id: e.event_id,
            event_type,
            incident,
            game_id: e.game_id,
            container_id: e.container_id,
            occurred_at: e.occurred_at,
            restart_count: d.restart_count,
            state: d.state,
            health: d.health,
            details: (!details.is_empty()).then(|| Box::new(details)),
            prompt: None,
            resolution,
            log_tail,
            host_id: e.host_id,
            read_back: None,
        };
        // A line this version wrote renders back to itself; any other is
        // kept as it was.
        if render(&event).json != envelope {
            event.read_back = Some(Box::new(ReadBack {
                json: envelope.to_owned(),
                details: details_span,
            }));
        }
        Ok(event)
    }
}
