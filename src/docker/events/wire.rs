//! The events stream's HTTP/1.1, read by hand: the request, the response
//! head under its limit, and a chunked body read line by line, each line
//! under its own limit, so that a silent stream can be pinged and read on.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::SystemTime;

use crate::docker::api::ApiVersion;
use crate::docker::error::DockerError;
use crate::docker::error::{error_message, is_version_refusal};
use crate::unix_socket;

use super::ReaderParts;
use super::decode::events_query;

/// The longest event line read; an event is a few hundred bytes, but its
/// attributes carry every label of the container.
pub(crate) const LINE_LIMIT: usize = 256 * 1024;

/// The response head's limit.
const HEAD_LIMIT: usize = 16 * 1024;

/// Connects and sends the request.
pub(crate) fn open(
    parts: &ReaderParts,
    version: ApiVersion,
    since: Option<SystemTime>,
) -> Result<UnixStream, DockerError> {
    let mut stream = unix_socket::connect_within(&parts.socket, Some(parts.timeout))
        .map_err(|e| parts.client.map_io_error(e))?;
    let request = format!(
        "GET /v{version}/events?{} HTTP/1.1\r\nHost: docker\r\nUser-Agent: rtinspect/{}\r\n\r\n",
        events_query(since, parts.label.is_some()),
        env!("CARGO_PKG_VERSION")
    );
    stream
        .set_write_timeout(Some(parts.timeout))
        .and_then(|()| stream.set_read_timeout(Some(parts.timeout)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| parts.client.map_io_error(e))?;
    Ok(stream)
}

/// The body of a response to read events from.
pub(crate) type Body = Box<dyn BufRead + Send>;

/// Reads the response head; a 2xx gives the body (de-chunked when chunked),
/// read with the silence limit from then on.
pub(crate) fn read_head(stream: UnixStream, parts: &ReaderParts) -> Result<Body, DockerError> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = (&mut reader)
            .take((HEAD_LIMIT - head.len()) as u64)
            .read_until(b'\n', &mut head)
            .map_err(|e| parts.client.map_io_error(e))?;
        if n == 0 {
            return Err(DockerError::Transport(
                "the events stream closed before its response head".into(),
            ));
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
        if head.len() >= HEAD_LIMIT {
            return Err(DockerError::TooLarge(HEAD_LIMIT as u64));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DockerError::Malformed("bad status line on the events stream".into()))?;
    let header = |name: &str| {
        text.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if !(200..300).contains(&status) {
        // An error body is `{"message": …}` of Content-Length bytes; the
        // connection may stay open after it, so read no further.
        let length = header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(64 * 1024);
        let mut body = Vec::new();
        let _ = (&mut reader).take(length).read_to_end(&mut body);
        let message = error_message(&body);
        if status == 400 && is_version_refusal(&message) {
            parts.client.forget_version();
        }
        return Err(DockerError::Status { status, message });
    }
    let _ = reader.get_ref().set_read_timeout(Some(parts.silence));
    Ok(if chunked {
        Box::new(BufReader::new(Chunked::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// What one read of the stream gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// A whole line is in the buffer, without its newline.
    Line,
    /// A line over [`LINE_LIMIT`] was read past and dropped.
    Skipped,
    /// The stream ended.
    End,
}

/// Reads on into `line` (which may hold the start of a line a timeout cut)
/// until it holds a whole line. A line over [`LINE_LIMIT`] (a container whose
/// labels are huge) is read past to its newline and dropped, so that the
/// stream goes on rather than break and replay the same line for ever.
pub(crate) fn read_line(body: &mut Body, line: &mut Vec<u8>) -> io::Result<Got> {
    let room = (LINE_LIMIT + 1).saturating_sub(line.len()) as u64;
    body.as_mut().take(room).read_until(b'\n', line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Got::Line);
    }
    if line.len() <= LINE_LIMIT {
        // Neither a newline nor the limit: the end of the stream.
        return Ok(Got::End);
    }
    line.clear();
    loop {
        let buf = body.fill_buf()?;
        if buf.is_empty() {
            return Ok(Got::End);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                body.consume(i + 1);
                return Ok(Got::Skipped);
            }
            None => {
                let n = buf.len();
                body.consume(n);
            }
        }
    }
}

/// HTTP/1.1 chunked transfer coding, decoded as a plain byte stream.
pub(crate) struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk; `None` before a chunk-size line.
    left: Option<u64>,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub(crate) fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: None,
            done: false,
        }
    }

    pub(crate) fn bad(what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad chunked body: {what}"),
        )
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.left {
                None => {
                    let mut size_line = Vec::new();
                    let n = (&mut self.inner)
                        .take(1024)
                        .read_until(b'\n', &mut size_line)?;
                    if n == 0 {
                        return Ok(0);
                    }
                    if size_line.last() != Some(&b'\n') {
                        return Err(Self::bad("a size line over 1 KiB"));
                    }
                    let text = String::from_utf8_lossy(&size_line);
                    let hex = text.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(hex, 16).map_err(|_| Self::bad("a size"))?;
                    if size == 0 {
                        self.done = true;
                        return Ok(0);
                    }
                    self.left = Some(size);
                }
                Some(0) => {
                    let mut crlf = Vec::new();
                    (&mut self.inner).take(2).read_until(b'\n', &mut crlf)?;
                    if crlf != b"\r\n" && crlf != b"\n" {
                        return Err(Self::bad("no CRLF after a chunk"));
                    }
                    self.left = None;
                }
                Some(left) => {
                    let want = buf.len().min(left as usize);
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(Self::bad("the stream ended inside a chunk"));
                    }
                    self.left = Some(left - n as u64);
                    return Ok(n);
                }
            }
        }
    }
}
