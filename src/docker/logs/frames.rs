//! Docker's log stream as it arrives, its frames taken apart: a container
//! without a TTY answers `GET /containers/{id}/logs` with the multiplexed
//! stream, each frame an 8-byte header (the stream: 0 stdin, 1 stdout,
//! 2 stderr; three zero bytes; the payload's length, big-endian u32) and
//! its payload; one with a TTY answers the raw bytes. API 1.42 and later
//! say which in the `Content-Type` (`application/vnd.docker.multiplexed-stream`
//! or `…raw-stream`); Docker 20.10 (API 1.41) says neither, so the first
//! bytes decide: a stream that starts as a header does (a TTY's output
//! would have to start with a NUL byte to look like one). Pure: bytes in,
//! each payload's bytes out with its stream, a bad header an error. A frame
//! is never held: its payload passes through as it comes.

use std::fmt;

use crate::log_tail::Stream;

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// 8-byte headers before each payload (no TTY).
    Multiplexed,
    /// The bytes as the TTY gave them.
    Raw,
    /// Not said: the first bytes decide.
    Sniff,
}

impl Framing {
    /// The framing a `Content-Type` says, if it says one.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Framing {
        match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            Some(c) if c.eq_ignore_ascii_case("application/vnd.docker.multiplexed-stream") => {
                Framing::Multiplexed
            }
            Some(c) if c.eq_ignore_ascii_case("application/vnd.docker.raw-stream") => Framing::Raw,
            _ => Framing::Sniff,
        }
    }
}

/// Why the stream could not be taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A header whose stream is not 0, 1 or 2, or whose padding is not zero.
    BadHeader([u8; 8]),
    /// A frame longer than the whole read may be.
    TooLong(u32),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadHeader(h) => write!(f, "a log frame's header is malformed: {h:02x?}"),
            FrameError::TooLong(n) => {
                write!(f, "a log frame claims {n} bytes, past the read's bound")
            }
        }
    }
}

/// Takes a log stream apart as it arrives.
#[derive(Debug)]
pub(crate) struct Demux {
    framing: Framing,
    /// The header being read, and how much of it has come.
    header: [u8; 8],
    have: usize,
    /// The current frame's stream and the bytes of its payload still to come.
    stream: Stream,
    left: u32,
    /// The longest frame accepted: the read's whole bound.
    max_frame: u32,
}

impl Demux {
    /// A demultiplexer for a body framed as `framing`, refusing any frame
    /// longer than `max_frame`.
    pub(crate) fn new(framing: Framing, max_frame: u32) -> Self {
        Demux {
            framing,
            header: [0; 8],
            have: 0,
            stream: Stream::Stdout,
            left: 0,
            max_frame,
        }
    }

    /// Takes the next bytes of the body, handing each payload's bytes to
    /// `out` with their stream.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        out: &mut impl FnMut(Stream, &[u8]),
    ) -> Result<(), FrameError> {
        if self.framing == Framing::Sniff {
            // Up to four bytes decide; fewer are kept as a header's start.
            let need = 4 - self.have.min(4);
            let take = need.min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < 4 {
                return Ok(());
            }
            let looks_framed = self.header[0] <= 2 && self.header[1..4] == [0, 0, 0];
            if looks_framed {
                self.framing = Framing::Multiplexed;
            } else {
                self.framing = Framing::Raw;
                let start = self.header;
                self.have = 0;
                out(Stream::Stdout, &start[..4]);
            }
        }
        if self.framing == Framing::Raw {
            if !bytes.is_empty() {
                out(Stream::Stdout, bytes);
            }
            return Ok(());
        }
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = bytes.len().min(self.left as usize);
                out(self.stream, &bytes[..n]);
                self.left -= n as u32;
                bytes = &bytes[n..];
                continue;
            }
            let take = (8 - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < 8 {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.stream = match h[0] {
                0 | 1 => Stream::Stdout,
                2 => Stream::Stderr,
                _ => return Err(FrameError::BadHeader(h)),
            };
            if h[1..4] != [0, 0, 0] {
                return Err(FrameError::BadHeader(h));
            }
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            if len > self.max_frame {
                return Err(FrameError::TooLong(len));
            }
            self.left = len;
        }
        Ok(())
    }

    /// The body ended. A raw stream shorter than the four bytes that decide
    /// is handed out as it is; a frame cut short keeps what came.
    pub(crate) fn finish(&mut self, out: &mut impl FnMut(Stream, &[u8])) {
        if self.framing == Framing::Sniff && self.have > 0 {
            let start = self.header;
            out(Stream::Stdout, &start[..self.have]);
            self.have = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; what came out, by stream.
    fn run(
        framing: Framing,
        body: &[u8],
        step: usize,
    ) -> Result<Vec<(Stream, Vec<u8>)>, FrameError> {
        let mut demux = Demux::new(framing, 1 << 20);
        let mut got: Vec<(Stream, Vec<u8>)> = Vec::new();
        let mut out = |s: Stream, b: &[u8]| match got.last_mut() {
            Some((last, bytes)) if *last == s => bytes.extend_from_slice(b),
            _ => got.push((s, b.to_vec())),
        };
        for piece in body.chunks(step.max(1)) {
            demux.feed(piece, &mut out)?;
        }
        demux.finish(&mut out);
        Ok(got)
    }

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_and_raw_bytes_are_taken_apart_in_any_pieces() {
        use Stream::{Stderr, Stdout};
        let muxed = [
            frame(1, b"out 1\n"),
            frame(2, b"err 1\n"),
            frame(1, b""),
            frame(1, b"out 2\n"),
        ]
        .concat();
        // (framing, body, what came out)
        type Case = (Framing, Vec<u8>, Vec<(Stream, Vec<u8>)>);
        let table: Vec<Case> = vec![
            (
                Framing::Sniff,
                muxed.clone(),
                vec![
                    (Stdout, b"out 1\n".to_vec()),
                    (Stderr, b"err 1\n".to_vec()),
                    (Stdout, b"out 2\n".to_vec()),
                ],
            ),
            (
                Framing::Multiplexed,
                frame(0, b"in"),
                vec![(Stdout, b"in".to_vec())],
            ),
            (
                Framing::Sniff,
                b"line 1\r\nline 2\r\n".to_vec(),
                vec![(Stdout, b"line 1\r\nline 2\r\n".to_vec())],
            ),
            (Framing::Raw, frame(1, b"x"), vec![(Stdout, frame(1, b"x"))]),
            (
                Framing::Sniff,
                b"ab".to_vec(),
                vec![(Stdout, b"ab".to_vec())],
            ),
            (Framing::Sniff, Vec::new(), vec![]),
            // A frame cut short keeps what came.
            (
                Framing::Sniff,
                frame(1, b"whole")[..10].to_vec(),
                vec![(Stdout, b"wh".to_vec())],
            ),
        ];
        for (framing, body, want) in table {
            for step in [1, 2, 3, 7, 8, 9, 4096] {
                assert_eq!(
                    run(framing, &body, step),
                    Ok(want.clone()),
                    "{framing:?} {body:?} by {step}"
                );
            }
        }
    }

    #[test]
    fn a_malformed_header_is_an_error() {
        // (body, error)
        let table: &[(&[u8], FrameError)] = &[
            (
                &[1, 0, 0, 0, 0, 0, 0, 1, b'x', 3, 0, 0, 0, 0, 0, 0, 0],
                FrameError::BadHeader([3, 0, 0, 0, 0, 0, 0, 0]),
            ),
            (
                &[1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0],
                FrameError::BadHeader([1, 9, 0, 0, 0, 0, 0, 0]),
            ),
        ];
        for (body, error) in table {
            for step in [1, 5, 64] {
                assert_eq!(
                    run(Framing::Sniff, body, step),
                    Err(error.clone()),
                    "{body:?} by {step}"
                );
            }
        }
    }

    #[test]
    fn a_frame_claiming_4_gib_is_refused_at_its_header() {
        let header = [1u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            run(Framing::Sniff, &header, 8),
            Err(FrameError::TooLong(u32::MAX))
        );
        assert_eq!(
            run(Framing::Multiplexed, &header, 3),
            Err(FrameError::TooLong(u32::MAX))
        );
    }

    #[test]
    fn the_content_type_says_the_framing_when_it_is_given() {
        let table = [
            (
                Some("application/vnd.docker.multiplexed-stream"),
                Framing::Multiplexed,
            ),
            (Some("application/vnd.docker.raw-stream"), Framing::Raw),
            (
                Some("Application/Vnd.Docker.Raw-Stream; charset=x"),
                Framing::Raw,
            ),
            (Some("text/plain"), Framing::Sniff),
            (None, Framing::Sniff),
        ];
        for (content_type, framing) in table {
            assert_eq!(
                Framing::from_content_type(content_type),
                framing,
                "{content_type:?}"
            );
        }
    }
}
