//! Why a Docker request failed, and what Docker's error bodies say.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    pub(super) fn ends_connection_life(&self) -> bool {
        self.means_unreachable()
    }

    /// Whether dockerd gave no answer at all: a socket that cannot be
    /// connected to, a timeout, a connection broken off. Any HTTP answer,
    /// an error status or a 404 included, shows dockerd reachable.
    pub(crate) fn means_unreachable(&self) -> bool {
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

/// What to tell an operator whose user may not open the socket: the group
/// that owns it, which the user must be in.
pub(super) fn permission_hint(socket: &std::path::Path) -> String {
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

pub(super) fn is_version_refusal(message: &str) -> bool {
    message.contains("client version") && message.contains("too old")
}

/// Docker's error bodies are `{"message": "..."}`; anything else is shown as
/// text, cut short.
pub(super) fn error_message(body: &[u8]) -> String {
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
