//! The Docker Engine API client: version negotiation, container inspect and the
//! labelled-container list, over the daemon's Unix socket.
//!
//! Only the fields rtinspect needs are decoded; every body is read to its end
//! (or the pooled keep-alive connection would be lost) under a size limit, so a
//! hostile or broken daemon costs an error, not an allocation.

pub mod events;
pub mod unix_socket;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use ureq::Agent;

use crate::event::DetailLevel;
use crate::inspector::{Observation, StateDetails};
use unix_socket::{NoLookup, UnixConnector};

/// The highest API version this client speaks. The fields read here have kept
/// their shape from 1.24 on; Docker 29 refuses anything below 1.44.
pub const MAX_API: ApiVersion = ApiVersion {
    major: 1,
    minor: 51,
};

/// The lowest API version whose inspect body has `State.Health` (Docker 1.12).
pub const MIN_API: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};

/// An inspect body is about 4.5 KB; anything over this is not one.
pub const INSPECT_BODY_LIMIT: u64 = 1024 * 1024;

/// A list body is about 1.5 KB per container; this allows some 5,000, far
/// more than a small host runs, and keeps a hostile answer well inside the
/// unit's `MemoryMax=64M` (the decoded list costs about as much again).
pub const LIST_BODY_LIMIT: u64 = 8 * 1024 * 1024;

/// Error bodies are `{"message": "..."}`; only that much is read.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A Docker Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u16,
    /// The part that moves.
    pub minor: u16,
}

impl ApiVersion {
    /// Parses `"1.41"`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.trim().split_once('.')?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Whether `s` may be put into a request path as a container id or name.
///
/// Docker's own rule for ids and names is `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`;
/// the length cap is ours (full ids are 64 characters, names far shorter).
pub fn is_valid_container_ref(s: &str) -> bool {
    let s = s.strip_prefix('/').unwrap_or(s);
    let mut chars = s.chars();
    s.len() >= 2
        && s.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Why a Docker request failed.
#[derive(Debug)]
pub enum DockerError {
    /// 404: no such container.
    NotFound,
    /// The id was not a Docker id or name; no request was made.
    InvalidId(String),
    /// The socket could not be connected to (missing, refused, permission denied).
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// What `connect` said.
        source: io::Error,
    },
    /// The socket answered nothing within the timeout while connecting (its
    /// listen backlog is full: dockerd is wedged).
    ConnectTimeout {
        /// The socket path.
        socket: PathBuf,
        /// The bound.
        timeout: Duration,
    },
    /// No complete answer within the per-request timeout.
    Timeout(Duration),
    /// The daemon answered with a status other than 2xx or 404.
    Status {
        /// The HTTP status.
        status: u16,
        /// Docker's `message`, or the start of the body.
        message: String,
    },
    /// The body was larger than the limit for its kind.
    TooLarge(u64),
    /// The body was not the JSON expected.
    Malformed(String),
    /// The API versions of daemon and client do not meet.
    Unsupported(String),
    /// Any other failure on the connection (reset, truncated body, bad HTTP).
    Transport(crate::Cause),
}

impl DockerError {
    /// The `kind` label of `rtinspect_inspect_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            DockerError::NotFound => "not_found",
            DockerError::Timeout(_) | DockerError::ConnectTimeout { .. } => "timeout",
            DockerError::InvalidId(_) => "invalid_id",
            _ => "docker",
        }
    }

    /// Whether the failure says the connection or the daemon went away, so
    /// that the API version must be negotiated again.
    fn ends_connection_life(&self) -> bool {
        self.means_unreachable()
    }

    /// Whether dockerd gave no answer at all: a socket that cannot be
    /// connected to, a timeout, a connection broken off. Any HTTP answer,
    /// an error status or a 404 included, shows dockerd reachable.
    pub fn means_unreachable(&self) -> bool {
        matches!(
            self,
            DockerError::Unreachable { .. }
                | DockerError::ConnectTimeout { .. }
                | DockerError::Transport(_)
                | DockerError::Timeout(_)
        )
    }
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::NotFound => write!(f, "no such container"),
            DockerError::InvalidId(id) => {
                write!(f, "{id:?} is empty or not a Docker container id or name")
            }
            DockerError::Unreachable { socket, source } => {
                write!(f, "cannot connect to {}: {source}", socket.display())?;
                match source.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        f.write_str(" (is dockerd running? set --docker-host or DOCKER_HOST)")
                    }
                    io::ErrorKind::PermissionDenied => {
                        write!(f, " ({})", permission_hint(socket))
                    }
                    _ => Ok(()),
                }
            }
            DockerError::ConnectTimeout { socket, timeout } => write!(
                f,
                "cannot connect to {}: no answer within {timeout:?} (dockerd accepts no connections)",
                socket.display()
            ),
            DockerError::Timeout(d) => write!(f, "no answer within {d:?}"),
            DockerError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            DockerError::TooLarge(limit) => write!(f, "response body over {limit} bytes"),
            DockerError::Malformed(e) => write!(f, "malformed response: {e}"),
            DockerError::Unsupported(e) => write!(f, "{e}"),
            DockerError::Transport(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl std::error::Error for DockerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DockerError::Unreachable { source, .. } => Some(source),
            DockerError::Transport(e) => Some(e.as_ref()),
            _ => None,
        }
    }
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

/// Inspects one container. The seam the tick core talks to.
pub trait ContainerInspector {
    /// `GET /containers/<id>/json`, reduced to an [`Observation`].
    fn inspect(&self, container: &str) -> Result<Observation, DockerError>;

    /// `GET /_ping`: whether dockerd answers, for a tick with no records.
    fn ping(&self) -> Result<(), DockerError>;
}

/// Lists the containers that carry a label. The seam label mode reads.
pub trait ContainerLister {
    /// Every container, in any state, that carries `label`.
    fn list_labelled(&self, label: &str) -> Result<Vec<LabelledContainer>, DockerError>;
}

/// What to tell an operator whose user may not open the socket: the group
/// that owns it, which the user must be in.
fn permission_hint(socket: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(socket) else {
        return "rtinspect's user may not open the socket".into();
    };
    let gid = meta.gid();
    // /etc/group: name:password:gid:members
    let name = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|groups| {
            groups.lines().find_map(|l| {
                let mut parts = l.split(':');
                let name = parts.next()?;
                let id: u32 = parts.nth(1)?.parse().ok()?;
                (id == gid).then(|| name.to_owned())
            })
        });
    match name {
        Some(name) => format!(
            "the socket belongs to group {name} (gid {gid}); rtinspect's user must be in it, \
             as the packaged unit's SupplementaryGroups=docker does"
        ),
        None => format!("the socket belongs to gid {gid}; rtinspect's user must be in that group"),
    }
}

/// A client for one dockerd, cheap to clone; clones share the connection pool
/// and the negotiated API version.
#[derive(Debug, Clone)]
pub struct DockerClient {
    agent: Agent,
    socket: PathBuf,
    timeout: Duration,
    api: Arc<Mutex<Option<ApiVersion>>>,
    /// The body buffer, reused from request to request so a tick of N
    /// inspects does not allocate and grow N buffers.
    body: Arc<Mutex<Vec<u8>>>,
    /// How much of each inspect body is decoded.
    details: DetailLevel,
}

/// A buffer grown past this by a large list is given back after use.
const KEEP_BUFFER: usize = 256 * 1024;

impl DockerClient {
    /// A client for the daemon at `socket`. `timeout` bounds each request, whole;
    /// `keep_idle` is how long an idle connection is kept for the next tick.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration, keep_idle: Duration) -> Self {
        let socket = socket.into();
        let config = Agent::config_builder()
            // A 404 is an answer we act on, and error bodies carry Docker's message.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_age(keep_idle)
            .max_idle_connections(2)
            .max_idle_connections_per_host(2)
            .proxy(None)
            .user_agent(concat!("rtinspect/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = Agent::with_parts(config, UnixConnector::new(&socket), NoLookup);
        DockerClient {
            agent,
            socket,
            timeout,
            api: Arc::new(Mutex::new(None)),
            body: Arc::new(Mutex::new(Vec::with_capacity(8192))),
            details: DetailLevel::Basic,
        }
    }

    /// The same client, decoding `details` of each inspect: with
    /// [`DetailLevel::Extended`] the observations carry [`StateDetails`].
    pub fn with_details(mut self, details: DetailLevel) -> Self {
        self.details = details;
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Asks `/_ping` for the daemon's API version and settles on the lower of
    /// it and [`MAX_API`].
    pub fn negotiate(&self) -> Result<ApiVersion, DockerError> {
        let mut response = self.send("/_ping")?;
        let daemon = response
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiVersion::parse);
        // Read the body to its end so the connection goes back to the pool.
        let _ = read_limited(
            &mut response,
            ERROR_BODY_LIMIT,
            self.timeout,
            &mut Vec::new(),
        );
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(DockerError::Status {
                status,
                message: "/_ping failed".into(),
            });
        }
        // Every daemon since API 1.25 sends Api-Version; without it, assume the
        // oldest version we speak rather than refuse.
        let daemon = daemon.unwrap_or(MIN_API);
        if daemon < MIN_API {
            return Err(DockerError::Unsupported(format!(
                "Docker API {daemon} is older than {MIN_API}, the lowest rtinspect speaks"
            )));
        }
        let chosen = daemon.min(MAX_API);
        log::debug!("negotiated Docker API {chosen} (daemon {daemon}, client {MAX_API})");
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) = Some(chosen);
        Ok(chosen)
    }

    /// The negotiated API version, negotiating first when there is none.
    pub fn api_version(&self) -> Result<ApiVersion, DockerError> {
        let current = *self.api.lock().unwrap_or_else(|p| p.into_inner());
        match current {
            Some(v) => Ok(v),
            None => self.negotiate(),
        }
    }

    fn forget_version(&self) {
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn send(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, DockerError> {
        let url = format!("http://docker{path}");
        self.agent.get(&url).call().map_err(|e| self.map_error(e))
    }

    fn map_error(&self, e: ureq::Error) -> DockerError {
        match e {
            ureq::Error::Timeout(_) => DockerError::Timeout(self.timeout),
            ureq::Error::BodyExceedsLimit(limit) => DockerError::TooLarge(limit),
            ureq::Error::Io(e) => self.map_io_error(e),
            other => DockerError::Transport(Box::new(other)),
        }
    }

    /// A socket error, said in Docker's terms.
    fn map_io_error(&self, source: io::Error) -> DockerError {
        match source.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::PermissionDenied => DockerError::Unreachable {
                socket: self.socket.clone(),
                source,
            },
            _ if unix_socket::is_connect_timeout(&source) => DockerError::ConnectTimeout {
                socket: self.socket.clone(),
                timeout: self.timeout,
            },
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                DockerError::Timeout(self.timeout)
            }
            _ => DockerError::Transport(Box::new(source)),
        }
    }

    /// A versioned GET; the body of a 2xx is returned whole (up to `limit`).
    ///
    /// A 400 that says the client version is too old (Docker 29 and later
    /// refuse below 1.44) makes the client negotiate again and retry once: the
    /// daemon may have been upgraded under a pooled connection.
    fn get<T>(
        &self,
        path: &str,
        limit: u64,
        decode: impl Fn(&[u8]) -> Result<T, DockerError>,
    ) -> Result<T, DockerError> {
        let mut retried = false;
        loop {
            let result = self.get_once(path, limit, &decode);
            match &result {
                Err(DockerError::Status {
                    status: 400,
                    message,
                }) if !retried && is_version_refusal(message) => {
                    log::info!(err:% = message; "Docker refused the API version; negotiating again");
                    self.forget_version();
                    retried = true;
                }
                Err(e) if e.ends_connection_life() => {
                    self.forget_version();
                    return result;
                }
                _ => return result,
            }
        }
    }

    fn get_once<T>(
        &self,
        path: &str,
        limit: u64,
        decode: &impl Fn(&[u8]) -> Result<T, DockerError>,
    ) -> Result<T, DockerError> {
        let version = self.api_version()?;
        let mut response = self.send(&format!("/v{version}{path}"))?;
        let status = response.status().as_u16();
        let mut body = self.body.lock().unwrap_or_else(|p| p.into_inner());
        body.clear();
        let result = if (200..300).contains(&status) {
            read_limited(&mut response, limit, self.timeout, &mut body).and_then(|()| decode(&body))
        } else if status == 404 {
            // Read to the end all the same, to keep the connection.
            let _ = read_limited(&mut response, ERROR_BODY_LIMIT, self.timeout, &mut body);
            Err(DockerError::NotFound)
        } else {
            let _ = read_limited(&mut response, ERROR_BODY_LIMIT, self.timeout, &mut body);
            Err(DockerError::Status {
                status,
                message: error_message(&body),
            })
        };
        if body.capacity() > KEEP_BUFFER {
            *body = Vec::with_capacity(8192);
        }
        result
    }
}

impl ContainerLister for DockerClient {
    fn list_labelled(&self, label: &str) -> Result<Vec<LabelledContainer>, DockerError> {
        let filters = serde_json::json!({ "label": [label] }).to_string();
        let path = format!(
            "/containers/json?all=1&filters={}",
            percent_encode(&filters)
        );
        self.get(&path, LIST_BODY_LIMIT, |body| decode_list(body, label))
    }
}

impl ContainerInspector for DockerClient {
    fn inspect(&self, container: &str) -> Result<Observation, DockerError> {
        // The one check that keeps a bad id out of a request path.
        if !is_valid_container_ref(container) {
            return Err(DockerError::InvalidId(container.to_owned()));
        }
        let id = container.strip_prefix('/').unwrap_or(container);
        let details = self.details;
        self.get(
            &format!("/containers/{id}/json"),
            INSPECT_BODY_LIMIT,
            |body| decode_inspect_with(body, details),
        )
    }

    fn ping(&self) -> Result<(), DockerError> {
        let result = self.negotiate().map(|_| ());
        if result
            .as_ref()
            .is_err_and(DockerError::ends_connection_life)
        {
            self.forget_version();
        }
        result
    }
}

fn is_version_refusal(message: &str) -> bool {
    message.contains("client version") && message.contains("too old")
}

/// Reads the whole body into `into`, refusing one over `limit` bytes.
fn read_limited(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
    timeout: Duration,
    into: &mut Vec<u8>,
) -> Result<(), DockerError> {
    use std::io::Read;
    let mut reader = response.body_mut().with_config().limit(limit).reader();
    match reader.read_to_end(into) {
        Ok(_) => Ok(()),
        Err(e) => {
            // ureq's reader wraps its own errors in io::Error::other.
            let inner = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>());
            Err(match inner {
                Some(ureq::Error::BodyExceedsLimit(l)) => DockerError::TooLarge(*l),
                Some(ureq::Error::Timeout(_)) => DockerError::Timeout(timeout),
                Some(_) => DockerError::Transport(Box::new(e)),
                None if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
                {
                    DockerError::Timeout(timeout)
                }
                None => DockerError::Transport(Box::new(e)),
            })
        }
    }
}

/// Docker's error bodies are `{"message": "..."}`; anything else is shown as
/// text, cut short.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned(),
    }
}

#[derive(Deserialize)]
struct InspectBody<S> {
    #[serde(rename = "Id")]
    id: String,
    // RestartCount is top-level in the inspect body, not under State.
    #[serde(rename = "RestartCount")]
    restart_count: u64,
    #[serde(rename = "State")]
    state: S,
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
            let b: InspectBody<ExtendedState> = serde_json::from_slice(body).map_err(malformed)?;
            let s = b.state;
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
    };
    (!details.is_empty()).then(|| Box::new(details))
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

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ref_rule_table() {
        let table = [
            ("a", false),
            ("ab", true),
            ("/game-1", true),
            (&"f".repeat(64), true),
            ("my_game.v2-x", true),
            ("-lead", false),
            ("_lead", false),
            ("", false),
            ("/", false),
            ("../../v1.41/containers/create", false),
            ("a/b", false),
            ("a b", false),
            ("a?x=1", false),
            ("a%2F", false),
            ("é1", false),
            (&"a".repeat(256), false),
        ];
        for (s, ok) in table {
            assert_eq!(is_valid_container_ref(s), ok, "{s:?}");
        }
    }

    #[test]
    fn api_version_parse_and_order() {
        assert_eq!(
            ApiVersion::parse("1.41"),
            Some(ApiVersion {
                major: 1,
                minor: 41
            })
        );
        assert_eq!(ApiVersion::parse("1.x"), None);
        assert_eq!(ApiVersion::parse("141"), None);
        assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.41").unwrap());
        assert_eq!(ApiVersion::parse("1.52").unwrap().min(MAX_API), MAX_API);
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn decode_inspect_reads_the_four_fields() {
        let body = format!(
            r#"{{"Id":"{ID}","Created":"x","RestartCount":4,"Config":{{"Labels":{{"a":"b"}}}},
                "State":{{"Status":"running","Running":true,"Health":{{"Status":"unhealthy","FailingStreak":3,"Log":[]}}}}}}"#
        );
        let o = decode_inspect(body.as_bytes()).unwrap();
        assert_eq!(o.container_id, ID);
        assert_eq!(o.restart_count, 4);
        assert_eq!(o.status, "running");
        assert_eq!(o.health, "unhealthy");
    }

    #[test]
    fn decode_inspect_without_healthcheck_has_empty_health() {
        let body = format!(r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited"}}}}"#);
        assert_eq!(decode_inspect(body.as_bytes()).unwrap().health, "");
        let body = format!(
            r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited","Health":null}}}}"#
        );
        assert_eq!(decode_inspect(body.as_bytes()).unwrap().health, "");
    }

    #[test]
    fn decode_inspect_rejects_bad_bodies() {
        let bad = [
            "".to_string(),
            "{".to_string(),
            "[]".to_string(),
            "null".to_string(),
            format!(r#"{{"Id":"{ID}","State":{{"Status":"running"}}}}"#),
            format!(r#"{{"Id":"{ID}","RestartCount":"3","State":{{"Status":"running"}}}}"#),
            format!(r#"{{"Id":"{ID}","RestartCount":-1,"State":{{"Status":"running"}}}}"#),
            format!(r#"{{"Id":"{ID}","RestartCount":1}}"#),
            r#"{"Id":"../x","RestartCount":1,"State":{"Status":"running"}}"#.to_string(),
            format!(r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":""}}}}"#),
            format!(r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":"running"}}"#),
            format!(
                r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":{}{}}}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ];
        for body in bad {
            let got = decode_inspect(body.as_bytes());
            assert!(
                matches!(got, Err(DockerError::Malformed(_))),
                "{body:.80}: {got:?}"
            );
        }
    }

    fn extended(state: &str) -> Result<Observation, DockerError> {
        let body = format!(r#"{{"Id":"{ID}","RestartCount":2,"State":{state}}}"#);
        decode_inspect_with(body.as_bytes(), DetailLevel::Extended)
    }

    fn details(state: &str) -> StateDetails {
        extended(state)
            .unwrap()
            .details
            .map(|d| *d)
            .unwrap_or_default()
    }

    #[test]
    fn basic_decoding_reads_no_details() {
        let body = format!(
            r#"{{"Id":"{ID}","RestartCount":0,"State":{{"Status":"exited","ExitCode":3,"Error":"x"}}}}"#
        );
        assert_eq!(decode_inspect(body.as_bytes()).unwrap().details, None);
    }

    #[test]
    fn extended_decoding_reads_why() {
        let d = details(
            r#"{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":137,"Error":"",
                "StartedAt":"2026-11-27T09:42:59.106860293Z","FinishedAt":"2026-11-27T09:42:59.189598172Z",
                "Health":{"Status":"unhealthy","FailingStreak":3,"Log":[
                    {"Start":"a","End":"b","ExitCode":1,"Output":"first\n"},
                    {"ExitCode":1,"Output":"probe says no\n"}]}}"#,
        );
        assert_eq!(
            d,
            StateDetails {
                exit_code: Some(137),
                oom_killed: Some(true),
                error: None,
                started_at: Some("2026-11-27T09:42:59.106860293Z".into()),
                finished_at: Some("2026-11-27T09:42:59.189598172Z".into()),
                health_failing_streak: Some(3),
                health_output: Some("probe says no\n".into()),
                health_log: vec!["first\n".into(), "probe says no\n".into()],
            }
        );
        // Of Docker's five, the last three, oldest first; a probe without
        // output is passed over.
        let d = details(
            r#"{"Status":"running","Health":{"Status":"unhealthy","Log":[
                {"Output":"1"},{"Output":"2"},{"ExitCode":1},{"Output":"3"},{"Output":"4"}]}}"#,
        );
        assert_eq!(d.health_log, vec!["2", "3", "4"]);
        assert_eq!(d.health_output.as_deref(), Some("4"));
    }

    #[test]
    fn placeholders_are_left_out() {
        // (State, what is kept) — as dockerd 20.10 reports them here.
        let table: &[(&str, StateDetails)] = &[
            // Created, never started.
            (
                r#"{"Status":"created","ExitCode":0,"OOMKilled":false,"Error":"",
                    "StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}"#,
                StateDetails::default(),
            ),
            // Created, failed to start: the exit code and the error say why.
            (
                r#"{"Status":"created","ExitCode":127,"OOMKilled":false,"Error":"exec: no such file",
                    "StartedAt":"0001-01-01T00:00:00Z","FinishedAt":"0001-01-01T00:00:00Z"}"#,
                StateDetails {
                    exit_code: Some(127),
                    oom_killed: Some(false),
                    error: Some("exec: no such file".into()),
                    ..StateDetails::default()
                },
            ),
            // Running after restarts: the exit fields were reset, FinishedAt is the last exit's.
            (
                r#"{"Status":"running","ExitCode":0,"OOMKilled":false,"Error":"",
                    "StartedAt":"2026-11-27T09:42:57.6Z","FinishedAt":"2026-11-27T09:42:57.5Z"}"#,
                StateDetails {
                    started_at: Some("2026-11-27T09:42:57.6Z".into()),
                    finished_at: Some("2026-11-27T09:42:57.5Z".into()),
                    ..StateDetails::default()
                },
            ),
            // Exited 0: a real exit.
            (
                r#"{"Status":"exited","ExitCode":0,"OOMKilled":false,
                    "StartedAt":"2026-11-27T09:42:57.6Z","FinishedAt":"2026-11-27T09:42:58Z"}"#,
                StateDetails {
                    exit_code: Some(0),
                    oom_killed: Some(false),
                    started_at: Some("2026-11-27T09:42:57.6Z".into()),
                    finished_at: Some("2026-11-27T09:42:58Z".into()),
                    ..StateDetails::default()
                },
            ),
            // Restarting: the exit that made it restart.
            (
                r#"{"Status":"restarting","ExitCode":3,"FinishedAt":"2026-11-27T09:42:58Z"}"#,
                StateDetails {
                    exit_code: Some(3),
                    finished_at: Some("2026-11-27T09:42:58Z".into()),
                    ..StateDetails::default()
                },
            ),
            // Podman-like: fields absent or null are simply not there.
            (
                r#"{"Status":"exited","ExitCode":null,"Error":null,"Health":{"Status":"healthy","Log":null}}"#,
                StateDetails::default(),
            ),
            // Not timestamps: dropped rather than carried.
            (
                r#"{"Status":"running","StartedAt":"yesterday","FinishedAt":"2026-11-27T09:42:58Z<script>"}"#,
                StateDetails::default(),
            ),
            // A healthcheck that has not run yet.
            (
                r#"{"Status":"running","Health":{"Status":"starting","FailingStreak":0,"Log":[]}}"#,
                StateDetails {
                    health_failing_streak: Some(0),
                    ..StateDetails::default()
                },
            ),
        ];
        for (state, want) in table {
            assert_eq!(&details(state), want, "{state}");
        }
    }

    #[test]
    fn extended_texts_are_cut_to_512_bytes_on_a_character_boundary() {
        let long = format!("a{}", "é".repeat(600));
        let d = details(&format!(
            r#"{{"Status":"exited","ExitCode":1,"Error":"{long}","Health":{{"Status":"unhealthy","Log":[{{"Output":"{long}"}}]}}}}"#
        ));
        for text in [d.error.unwrap(), d.health_output.unwrap()] {
            assert_eq!(
                text.len(),
                MAX_TEXT_BYTES - 1,
                "one byte short of a split é"
            );
            assert!(long.starts_with(&text));
        }
    }

    #[test]
    fn a_nul_in_a_text_docker_sends_is_replaced_before_the_cut() {
        // 511 bytes of text, then a NUL: replaced by a 3-byte U+FFFD, which
        // no longer fits, so the cut drops it whole.
        let head = "a".repeat(MAX_TEXT_BYTES - 1);
        let d = details(&format!(
            r#"{{"Status":"exited","ExitCode":1,"Error":"bad\u0000name","Health":{{"Status":"unhealthy","Log":[{{"Output":"x\u0000y"}},{{"Output":"{head}\u0000"}}]}}}}"#
        ));
        assert_eq!(d.error.as_deref(), Some("bad\u{FFFD}name"));
        assert_eq!(d.health_log, ["x\u{FFFD}y".to_owned(), head.clone()]);
        assert_eq!(d.health_output.as_deref(), Some(head.as_str()));
        let listed = decode_list(
            br#"[{"Id":"abc","Created":1,"Labels":{"game":"g\u0000n"}}]"#,
            "game",
        )
        .unwrap();
        assert_eq!(listed[0].game_id, "g\u{FFFD}n");
    }

    #[test]
    fn extended_decoding_refuses_wrong_types() {
        for state in [
            r#"{"Status":"exited","ExitCode":"137"}"#,
            r#"{"Status":"exited","OOMKilled":1}"#,
            r#"{"Status":"running","Health":{"Status":"unhealthy","Log":{"Output":"x"}}}"#,
            r#"{"Status":"running","Health":{"Status":"unhealthy","FailingStreak":-1}}"#,
        ] {
            assert!(
                matches!(extended(state), Err(DockerError::Malformed(_))),
                "{state}"
            );
        }
    }

    #[test]
    fn deep_nesting_in_an_ignored_field_costs_no_stack() {
        // serde_json skips ignored values without recursing.
        let body = format!(
            r#"{{"Id":"{ID}","RestartCount":1,"State":{{"Status":"running"}},"X":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(decode_inspect(body.as_bytes()).unwrap().restart_count, 1);
    }

    #[test]
    fn decode_list_keeps_labelled_containers() {
        let body = br#"[
            {"Id":"aa11","Created":20,"Labels":{"rtinspect.game-id":"g-1","other":"x"}},
            {"Id":"bb22","Created":10,"Labels":{}},
            {"Id":"cc33","Created":30,"Labels":null},
            {"Id":"dd44","Created":40,"Labels":{"rtinspect.game-id":"g-2"}}
        ]"#;
        let got = decode_list(body, "rtinspect.game-id").unwrap();
        assert_eq!(
            got,
            vec![
                LabelledContainer {
                    id: "aa11".into(),
                    game_id: "g-1".into(),
                    created: 20
                },
                LabelledContainer {
                    id: "dd44".into(),
                    game_id: "g-2".into(),
                    created: 40
                },
            ]
        );
    }

    #[test]
    fn error_message_prefers_docker_message() {
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(b"plain failure\n"), "plain failure");
    }

    #[test]
    fn version_refusal_is_recognised() {
        assert!(is_version_refusal(
            "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version"
        ));
        assert!(!is_version_refusal("bad parameter"));
    }

    #[test]
    fn percent_encode_filters() {
        assert_eq!(
            percent_encode(r#"{"label":["rtinspect.game-id"]}"#),
            "%7B%22label%22%3A%5B%22rtinspect.game-id%22%5D%7D"
        );
    }
}
