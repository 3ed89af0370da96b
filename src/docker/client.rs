//! The client for one dockerd: version negotiation, container inspect and the
//! labelled-container list over one kept-alive connection, each body read to
//! its end under a size limit.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ureq::Agent;

use super::api::*;
use super::decode::{CreatedAt, LabelledContainer};
use super::decode::{decode_created, decode_inspect_with, decode_list};
use super::error::DockerError;
use super::error::{error_message, is_version_refusal};
use crate::event::DetailLevel;
use crate::inspector::Observation;
use crate::inspector::is_valid_container_ref;
use crate::unix_socket::{self, NoLookup, UnixConnector};

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
    /// [`DetailLevel::Extended`] the observations carry [`StateDetails`](crate::inspector::StateDetails).
    pub(crate) fn with_details(mut self, details: DetailLevel) -> Self {
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
    pub(crate) fn api_version(&self) -> Result<ApiVersion, DockerError> {
        let current = *self.api.lock().unwrap_or_else(|p| p.into_inner());
        match current {
            Some(v) => Ok(v),
            None => self.negotiate(),
        }
    }

    pub(super) fn forget_version(&self) {
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn send(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, DockerError> {
        let url = format!("http://docker{path}");
        self.agent.get(&url).call().map_err(|e| self.map_error(e))
    }

    /// A versioned GET bounded whole by `within` (at most the client's
    /// timeout), whose body the caller reads: a stream read as it comes.
    /// The version is negotiated again after a failure that ends the
    /// connection's life.
    pub(super) fn get_streamed(
        &self,
        path: &str,
        within: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, DockerError> {
        let within = within.min(self.timeout);
        let version = self.api_version()?;
        let url = format!("http://docker/v{version}{path}");
        let result = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(within))
            .build()
            .call()
            .map_err(|e| match self.map_error(e) {
                DockerError::Timeout(_) => DockerError::Timeout(within),
                other => other,
            });
        if result
            .as_ref()
            .is_err_and(DockerError::ends_connection_life)
        {
            self.forget_version();
        }
        result
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
    pub(super) fn map_io_error(&self, source: io::Error) -> DockerError {
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

    fn created(&self, container: &str) -> Result<CreatedAt, DockerError> {
        if !is_valid_container_ref(container) {
            return Err(DockerError::InvalidId(container.to_owned()));
        }
        let id = container.strip_prefix('/').unwrap_or(container);
        self.get(
            &format!("/containers/{id}/json"),
            INSPECT_BODY_LIMIT,
            decode_created,
        )
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

/// Reads the whole body into `into`, refusing one over `limit` bytes.
pub(super) fn read_limited(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
    timeout: Duration,
    into: &mut Vec<u8>,
) -> Result<(), DockerError> {
    use std::io::Read;
    let mut reader = response.body_mut().with_config().limit(limit).reader();
    match reader.read_to_end(into) {
        Ok(_) => Ok(()),
        Err(e) => Err(read_error(e, timeout)),
    }
}

/// A failed read of a body, said in Docker's terms.
pub(super) fn read_error(e: io::Error, timeout: Duration) -> DockerError {
    // ureq's reader wraps its own errors in io::Error::other.
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>());
    match inner {
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
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn percent_encode(s: &str) -> String {
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
