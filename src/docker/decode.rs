//! Docker's inspect and list bodies decoded into what the rules use: only the
//! fields rtinspect reads, texts cut and cleaned where they enter.

use std::collections::VecDeque;
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::error::DockerError;
use crate::event::DetailLevel;
use crate::inspector::is_valid_container_ref;
use crate::inspector::{Observation, StateDetails};

#[derive(Deserialize)]
struct InspectBody<S, H = IgnoredAny> {
    #[serde(rename = "Id")]
    id: String,
    // RestartCount is top-level in the inspect body, not under State.
    #[serde(rename = "RestartCount")]
    restart_count: u64,
    #[serde(rename = "State")]
    state: S,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<H>,
}

/// What `--details extended` reads of `HostConfig`: the restart policy,
/// which the classifier of ends needs (a container under `always` found
/// exited was stopped through the API).
#[derive(Deserialize, Default)]
struct HostConfig {
    #[serde(rename = "RestartPolicy", default)]
    restart_policy: Option<RestartPolicy>,
}

#[derive(Deserialize)]
struct RestartPolicy {
    #[serde(rename = "Name", default)]
    name: Option<String>,
}

/// The two fields of `State` the rules read.
#[derive(Deserialize)]
struct BasicState {
    #[serde(rename = "Status")]
    status: String,
    // State.Health is absent when no healthcheck is configured.
    #[serde(rename = "Health", default)]
    health: Option<BasicHealth>,
}

#[derive(Deserialize)]
struct BasicHealth {
    #[serde(rename = "Status")]
    status: String,
}

/// `State` as `--details extended` reads it: the rules' two fields and what
/// tells an operator why. Anything else in the body is skipped unread.
#[derive(Deserialize)]
struct ExtendedState {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i64>,
    #[serde(rename = "OOMKilled", default)]
    oom_killed: Option<bool>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "StartedAt", default)]
    started_at: Option<String>,
    #[serde(rename = "FinishedAt", default)]
    finished_at: Option<String>,
    #[serde(rename = "Health", default)]
    health: Option<ExtendedHealth>,
}

#[derive(Deserialize)]
struct ExtendedHealth {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "FailingStreak", default)]
    failing_streak: Option<u64>,
    // Docker keeps the last five probe results, oldest first.
    #[serde(rename = "Log", default)]
    log: Option<LastProbes>,
}

/// How many of the last probes' outputs are kept, as an incident's evidence.
pub const PROBES_KEPT: usize = 3;

/// The outputs of the last [`PROBES_KEPT`] entries of `State.Health.Log`,
/// oldest first; the earlier entries are read one at a time and dropped.
struct LastProbes(VecDeque<String>);

impl<'de> Deserialize<'de> for LastProbes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "Output", default)]
            output: Option<String>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LastProbes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of healthcheck results")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LastProbes, A::Error> {
                let mut last = VecDeque::with_capacity(PROBES_KEPT + 1);
                while let Some(probe) = seq.next_element::<Probe>()? {
                    if let Some(output) = probe.output {
                        if last.len() == PROBES_KEPT {
                            last.pop_front();
                        }
                        last.push_back(output);
                    }
                }
                Ok(LastProbes(last))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// Decodes an inspect body into an [`Observation`], reading only the four
/// fields the rules use.
pub fn decode_inspect(body: &[u8]) -> Result<Observation, DockerError> {
    decode_inspect_with(body, DetailLevel::Basic)
}

/// Decodes an inspect body into an [`Observation`]; with
/// [`DetailLevel::Extended`] it also reads the [`StateDetails`].
pub fn decode_inspect_with(body: &[u8], level: DetailLevel) -> Result<Observation, DockerError> {
    let malformed = |e: serde_json::Error| DockerError::Malformed(e.to_string());
    let (id, restart_count, status, health, details) = match level {
        DetailLevel::Basic => {
            let b: InspectBody<BasicState> = serde_json::from_slice(body).map_err(malformed)?;
            let health = b.state.health.map(|h| h.status);
            (b.id, b.restart_count, b.state.status, health, None)
        }
        DetailLevel::Extended => {
            let b: InspectBody<ExtendedState, HostConfig> =
                serde_json::from_slice(body).map_err(malformed)?;
            let s = b.state;
            let restart_policy = b
                .host_config
                .and_then(|h| h.restart_policy?.name)
                .filter(|n| !n.is_empty() && n.len() <= 32);
            let (health, streak, outputs) = match s.health {
                Some(h) => (Some(h.status), h.failing_streak, h.log.map(|l| l.0)),
                None => (None, None, None),
            };
            let outputs: Vec<String> = outputs.unwrap_or_default().into();
            let details = state_details(
                &s.status,
                RawDetails {
                    exit_code: s.exit_code,
                    oom_killed: s.oom_killed,
                    error: s.error,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    health_failing_streak: streak,
                    health_output: outputs.last().cloned(),
                    health_outputs: outputs,
                    restart_policy,
                },
            );
            (b.id, b.restart_count, s.status, health, details)
        }
    };
    if !is_valid_container_ref(&id) {
        return Err(DockerError::Malformed(format!("bad container Id {id:?}")));
    }
    if status.is_empty() || status.len() > 32 {
        return Err(DockerError::Malformed(format!(
            "bad State.Status {status:?}"
        )));
    }
    let health = health.unwrap_or_default();
    if health.len() > 32 {
        return Err(DockerError::Malformed("bad State.Health.Status".into()));
    }
    Ok(Observation {
        container_id: id,
        restart_count,
        status,
        health,
        details,
    })
}

/// The extended fields as Docker sent them, before placeholders are dropped.
struct RawDetails {
    exit_code: Option<i64>,
    oom_killed: Option<bool>,
    error: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    health_failing_streak: Option<u64>,
    health_output: Option<String>,
    health_outputs: Vec<String>,
    restart_policy: Option<String>,
}

/// Drops what Docker reports only as a placeholder, and bounds the texts:
///
/// - `StartedAt`/`FinishedAt` are Go's zero time `0001-01-01T00:00:00Z` for a
///   container that never started or never finished; a value that is not a
///   timestamp at all is dropped too.
/// - `Error` is `""` when there is none.
/// - `ExitCode` and `OOMKilled` are reset to 0 and false each time the
///   container starts (moby's `State.SetRunning`), so while it is `running`
///   or `paused` they describe no exit; nor do they for a container that
///   never ran (exit code 0, not OOM-killed, never finished).
/// - `Error` and the probe output are cleaned of NUL ([`clean_text`]) and
///   cut to [`MAX_TEXT_BYTES`].
fn state_details(status: &str, raw: RawDetails) -> Option<Box<StateDetails>> {
    let time = |t: Option<String>| t.filter(|t| is_timestamp(t) && !t.starts_with("0001-01-01"));
    let finished_at = time(raw.finished_at);
    let oom_killed = raw.oom_killed.unwrap_or(false);
    let exited = !matches!(status, "running" | "paused")
        && (raw.exit_code.is_some_and(|c| c != 0) || oom_killed || finished_at.is_some());
    let text = |t: Option<String>| {
        t.filter(|t| !t.is_empty()).map(|t| {
            let mut t = clean_text(t);
            t.truncate(t.floor_char_boundary(MAX_TEXT_BYTES));
            t
        })
    };
    let details = StateDetails {
        exit_code: raw.exit_code.filter(|_| exited),
        oom_killed: raw.oom_killed.filter(|_| exited),
        error: text(raw.error),
        started_at: time(raw.started_at),
        finished_at,
        health_failing_streak: raw.health_failing_streak,
        health_output: text(raw.health_output),
        health_log: raw
            .health_outputs
            .into_iter()
            .filter_map(|o| text(Some(o)))
            .collect(),
        reason: None,
        restart_policy: raw.restart_policy,
    };
    (!details.is_empty()).then(|| Box::new(details))
}

/// A container that carries the records label, from the container list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledContainer {
    /// Full container id.
    pub id: String,
    /// The label's value: the game id.
    pub game_id: String,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// A container's `Created` as the inspect says it (RFC 3339 in UTC, with
/// up to nine digits of fraction), in an order that is time's: the date
/// and time to the second, then the nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CreatedAt(String, u32);

impl CreatedAt {
    /// Reads Docker's `2026-11-26T21:00:00.123456789Z` (a fraction of any
    /// length, or none); `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<CreatedAt> {
        let text = text.strip_suffix('Z')?;
        let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
        if seconds.len() != 19
            || !is_timestamp(&format!("{seconds}Z"))
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let nanos = format!("{fraction:0<9}").parse().ok()?;
        Some(CreatedAt(seconds.to_owned(), nanos))
    }
}

/// Decodes the `Created` of an inspect body.
pub(super) fn decode_created(body: &[u8]) -> Result<CreatedAt, DockerError> {
    #[derive(Deserialize)]
    struct Created {
        #[serde(rename = "Created")]
        created: String,
    }
    let c: Created =
        serde_json::from_slice(body).map_err(|e| DockerError::Malformed(e.to_string()))?;
    CreatedAt::parse(&c.created)
        .ok_or_else(|| DockerError::Malformed(format!("bad Created {:?}", c.created)))
}

/// Whether `t` looks like an RFC 3339 timestamp as Docker writes them
/// (`2026-11-26T21:00:00.123456789Z`): short, and only the characters of one.
fn is_timestamp(t: &str) -> bool {
    (20..=40).contains(&t.len())
        && t.as_bytes()[4] == b'-'
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'T' | b'.' | b'Z' | b'+'))
}

/// The most bytes kept of a free text Docker reports (`State.Error`, a
/// probe's output): the envelope must stay well inside PostgreSQL's NOTIFY
/// limit of 8000 bytes.
pub const MAX_TEXT_BYTES: usize = 512;

/// `text` with every NUL replaced by U+FFFD (`�`), for every sink alike.
///
/// A probe's output and `State.Error` are whatever bytes the container wrote,
/// and Docker sends a NUL in them as `\u0000`. PostgreSQL's `jsonb` (and
/// `text`) refuse that character ("unsupported Unicode escape sequence",
/// SQLSTATE 22P05), which would keep the event out of the table for good;
/// stdout and a webhook would carry it as is. Replaced where the text enters,
/// the envelope is the same in every sink, byte for byte.
pub(crate) fn clean_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

#[derive(Deserialize)]
struct ListedContainer {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Created", default)]
    created: i64,
    #[serde(rename = "Labels", default)]
    labels: Option<std::collections::HashMap<String, String>>,
}

/// Decodes a container list body, keeping the containers that carry `label`.
pub fn decode_list(body: &[u8], label: &str) -> Result<Vec<LabelledContainer>, DockerError> {
    let listed: Vec<ListedContainer> =
        serde_json::from_slice(body).map_err(|e| DockerError::Malformed(e.to_string()))?;
    Ok(listed
        .into_iter()
        .filter_map(|c| {
            let game_id = clean_text(c.labels?.remove(label)?);
            Some(LabelledContainer {
                id: c.id,
                game_id,
                created: c.created,
            })
        })
        .collect())
}
