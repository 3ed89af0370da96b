//! Docker's events as the inspector needs them: one line of the stream
//! decoded into a [`ContainerEvent`] (the actions followed, the game label in
//! label mode, a `die`'s exit code, a `kill`'s signal, whether Podman sent it), and the query that
//! subscribes to just those.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

pub use crate::schedule::{ContainerAction, ContainerEvent};

/// What the reader tells the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudge {
    /// Something happened to one container.
    Container(ContainerEvent),
    /// Events may have been missed (a (re)subscription, a full channel):
    /// inspect every record.
    Resync,
}

#[derive(Deserialize)]
pub(crate) struct Message {
    #[serde(rename = "Type", default)]
    kind: String,
    // Read `Action`: the legacy `status` is back-filled only for API < 1.52.
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(default)]
    time: i64,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Deserialize, Default)]
pub(crate) struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
}

/// Decodes one event line; `None` for anything that is not a container event
/// of interest (other types, other actions, garbage). `label` names the game
/// label whose value the event carries on (label mode).
pub fn decode_event(line: &[u8], label: Option<&str>) -> Option<ContainerEvent> {
    let m: Message = serde_json::from_slice(line).ok()?;
    if m.kind != "container" || m.actor.id.is_empty() {
        return None;
    }
    // The action is decided here, once: the rest of the way only matches it.
    let action = ContainerAction::parse(&m.action)?;
    // Cleaned of NUL as the listing's label is: PostgreSQL takes no NUL in text.
    let clean = crate::docker::decode::clean_text;
    let game = label.and_then(|l| m.actor.attributes.get(l).cloned().map(clean));
    Some(ContainerEvent {
        game,
        at: if m.time_nano > 0 {
            UNIX_EPOCH + Duration::from_nanos(m.time_nano as u64)
        } else {
            UNIX_EPOCH + Duration::from_secs(m.time.max(0) as u64)
        },
        name: m
            .actor
            .attributes
            .get("name")
            .map(|n| clean(n.trim_start_matches('/').to_owned())),
        exit_code: m
            .actor
            .attributes
            .get("exitCode")
            .and_then(|c| c.parse().ok()),
        signal: m.actor.attributes.get("signal").cloned(),
        podman: m.actor.attributes.contains_key("podId"),
        replayed: false,
        id: m.actor.id,
        action,
    })
}

/// The query of the events request: containers only, the actions of
/// [`ContainerAction::ALL`], from `since` on (seconds with nanoseconds, as Docker takes it).
/// `create` only with `creates` (label mode): elsewhere it would only take
/// room in the nudge channel. `died` follows `die`, because Podman 4.3
/// matches the filter against its internal name for `die` (containers/podman
/// #16857, fixed in 4.4) and would otherwise send no death at all; dockerd
/// ignores a value it never sends.
pub fn events_query(since: Option<SystemTime>, creates: bool) -> String {
    let actions: Vec<&str> = ContainerAction::ALL
        .map(ContainerAction::as_str)
        .into_iter()
        .filter(|a| creates || *a != "create")
        .flat_map(|a| std::iter::once(a).chain((a == "die").then_some("died")))
        .collect();
    let filters = serde_json::json!({ "type": ["container"], "event": actions }).to_string();
    let mut query = format!(
        "filters={}",
        crate::docker::client::percent_encode(&filters)
    );
    if let Some(since) = since {
        let d = since.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        query = format!("since={}.{:09}&{query}", d.as_secs(), d.subsec_nanos());
    }
    query
}
