//! A container's last log lines through Docker's API:
//! `GET /containers/{id}/logs?stdout=1&stderr=1&tail=N`, read as it comes
//! and never past [`LOG_READ_BOUND`] bytes whatever Docker sends, taken
//! apart (`frames`: the multiplexed stream, or a TTY's raw bytes) into the
//! last lines, cleaned and redacted (`crate::log_tail`). A log driver that
//! cannot be read back (`none`; `syslog` and the others when Docker's dual
//! logging is off) answers 501 with Docker's message: the caller says it
//! as the reason there is no tail.

mod frames;

use std::io::Read;
use std::time::Duration;

use super::api::ERROR_BODY_LIMIT;
use super::client::{DockerClient, read_error, read_limited};
use super::error::{DockerError, error_message};
use crate::inspector::is_valid_container_ref;
use crate::log_tail::{LogTail, ReadTail, TailLines};
use frames::{Demux, Framing};

/// The most bytes of a log answer read; past the bound the read stops, and
/// says so.
pub const LOG_READ_BOUND: u64 = 2 * 1024 * 1024;

/// The entries asked for (`tail=`) when fewer lines are wanted. Docker logs
/// a line of more than 16 KiB as several entries of 16 KiB, and `tail=N`
/// counts entries: asked for ten, a game's ten last lines before a
/// megabyte line would all be pushed out by its pieces. As many entries as
/// the bound takes whole (127 of 16 KiB and an 8-byte header each: the
/// lines before a line of up to 1.8 MB) are asked for, and the last lines
/// of them kept.
const ENTRIES_WITHIN_BOUND: usize = (LOG_READ_BOUND / (16 * 1024 + 8)) as usize;

/// The read's buffer: one piece of the answer at a time.
const PIECE: usize = 8 * 1024;

impl DockerClient {
    /// The last `lines` lines `container` logged, on standard output and
    /// standard error, as an incident's event carries them; the request is
    /// bounded whole by `within` (and the client's timeout). An error says
    /// why there are none: Docker's refusal (a log driver it cannot read
    /// back: [`DockerError::Status`] with its message), a container gone,
    /// a timeout, an answer past [`LOG_READ_BOUND`] or badly framed.
    pub fn log_tail(
        &self,
        container: &str,
        lines: usize,
        within: Duration,
    ) -> Result<LogTail, DockerError> {
        if !is_valid_container_ref(container) {
            return Err(DockerError::InvalidId(container.to_owned()));
        }
        let id = container.strip_prefix('/').unwrap_or(container);
        let entries = lines.max(ENTRIES_WITHIN_BOUND);
        let path = format!("/containers/{id}/logs?stdout=1&stderr=1&tail={entries}");
        let mut response = self.get_streamed(&path, within)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut body = Vec::new();
            let _ = read_limited(&mut response, ERROR_BODY_LIMIT, within, &mut body);
            return Err(match status {
                404 => DockerError::NotFound,
                _ => DockerError::Status {
                    status,
                    message: error_message(&body),
                },
            });
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let mut demux = Demux::new(
            Framing::from_content_type(content_type),
            LOG_READ_BOUND as u32,
        );
        let mut tail = TailLines::new(lines);
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(LOG_READ_BOUND)
            .reader();
        let mut piece = vec![0u8; PIECE];
        loop {
            let n = reader.read(&mut piece).map_err(|e| read_error(e, within))?;
            if n == 0 {
                break;
            }
            demux
                .feed(&piece[..n], &mut |stream, bytes| tail.push(stream, bytes))
                .map_err(|e| DockerError::Malformed(e.to_string()))?;
        }
        demux.finish(&mut |stream, bytes| tail.push(stream, bytes));
        Ok(tail.into_tail())
    }
}

impl ReadTail for DockerClient {
    /// The tail, or why there is none in words for the event: Docker's own
    /// message for a refusal (a log driver it cannot read back), else what
    /// went wrong; `None` for no answer in time.
    fn read_tail(&self, container_id: &str, lines: usize, within: Duration) -> Option<LogTail> {
        match self.log_tail(container_id, lines, within) {
            Ok(tail) => Some(tail),
            Err(DockerError::Timeout(_)) => None,
            Err(DockerError::Status { message, .. }) => Some(LogTail::unavailable(&message)),
            Err(e) => Some(LogTail::unavailable(&e.to_string())),
        }
    }
}
