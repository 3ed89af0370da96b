//! The last lines of a log stream, gathered as its bytes arrive, in bounded
//! memory whatever their length: each line keeps its first
//! [`RAW_LINE_BYTES`] bytes (the rest is counted as cut, never held), and
//! only the last `want` complete lines are kept. Standard output and
//! standard error each have their own line under way, so that a line one
//! of them had not finished is not glued to the other's: Docker splits a
//! line over 16 KiB into several log entries of its stream, and sends the
//! two streams' entries in the order it logged them.

use std::collections::VecDeque;

use super::{LogTail, RawLine};

/// The bytes of one line kept before it is cleaned: room for escapes and
/// for a secret's key and value across the 300-byte cut that follows.
pub(crate) const RAW_LINE_BYTES: usize = 4096;

/// Which stream bytes came on (a TTY has one: standard output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output (and standard input, which Docker never logs).
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line as gathered: its first bytes, whether more came, and when it
/// began (to order the lines still open at the end).
#[derive(Debug, Default)]
struct Gathered {
    bytes: Vec<u8>,
    cut: bool,
    began: u64,
}

/// The last `want` lines of a stream, gathered as it arrives.
#[derive(Debug)]
pub(crate) struct TailLines {
    want: usize,
    done: VecDeque<Gathered>,
    open: [Option<Gathered>; 2],
    next: u64,
}

impl TailLines {
    /// Keeps the last `want` lines.
    pub(crate) fn new(want: usize) -> Self {
        TailLines {
            want,
            done: VecDeque::with_capacity(want + 1),
            open: [None, None],
            next: 0,
        }
    }

    /// Takes the next bytes of `stream`.
    pub(crate) fn push(&mut self, stream: Stream, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let part = &bytes[..newline.unwrap_or(bytes.len())];
            let began = self.next;
            let line = self.open[stream as usize].get_or_insert_with(|| Gathered {
                began,
                ..Gathered::default()
            });
            if line.began == began {
                self.next += 1;
            }
            let room = RAW_LINE_BYTES - line.bytes.len();
            line.bytes.extend_from_slice(&part[..part.len().min(room)]);
            line.cut |= part.len() > room;
            match newline {
                Some(at) => {
                    let line = self.open[stream as usize].take().expect("just made");
                    self.finish_line(line);
                    bytes = &bytes[at + 1..];
                }
                None => bytes = &[],
            }
        }
    }

    fn finish_line(&mut self, line: Gathered) {
        self.done.push_back(line);
        while self.done.len() > self.want {
            self.done.pop_front();
        }
    }

    /// The tail: the lines still open at the end (a game killed mid-line)
    /// count as lines, in the order they began.
    pub(crate) fn into_tail(mut self) -> LogTail {
        let mut open: Vec<Gathered> = self.open.iter_mut().filter_map(Option::take).collect();
        open.sort_by_key(|l| l.began);
        for line in open {
            self.finish_line(line);
        }
        LogTail::from_raw_lines(self.done.iter().map(|l| RawLine {
            bytes: &l.bytes,
            cut: l.cut,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::Stream::{Stderr, Stdout};
    use super::*;

    fn tail(want: usize, pushes: &[(Stream, &[u8])]) -> Vec<String> {
        let mut lines = TailLines::new(want);
        for (stream, bytes) in pushes {
            lines.push(*stream, bytes);
        }
        match lines.into_tail() {
            LogTail::Lines(l) => l,
            LogTail::Unavailable(why) => panic!("{why}"),
        }
    }

    #[test]
    fn the_last_lines_are_kept_in_order() {
        // (want, pushes, tail)
        type Case<'a> = (usize, Vec<(Stream, &'a [u8])>, Vec<&'a str>);
        let table: Vec<Case> = vec![
            (3, vec![(Stdout, b"a\nb\nc\nd\n")], vec!["b", "c", "d"]),
            (3, vec![(Stdout, b"a\nb")], vec!["a", "b"]),
            (
                2,
                vec![(Stdout, b"a\n"), (Stderr, b"b\n"), (Stdout, b"c\n")],
                vec!["b", "c"],
            ),
            // A line split over entries (Docker's 16 KiB parts) is one line.
            (5, vec![(Stdout, b"hel"), (Stdout, b"lo\n")], vec!["hello"]),
            // The other stream's line in between is not glued to it.
            (
                5,
                vec![(Stdout, b"hel"), (Stderr, b"err\n"), (Stdout, b"lo\n")],
                vec!["err", "hello"],
            ),
            // Lines open at the end, in the order they began.
            (
                5,
                vec![(Stderr, b"first"), (Stdout, b"second")],
                vec!["first", "second"],
            ),
            (5, vec![(Stdout, b"\r\n\n\n")], vec![]),
            (5, vec![], vec![]),
            (1, vec![(Stdout, b"x\n\n")], vec![]),
        ];
        for (want, pushes, expected) in table {
            assert_eq!(tail(want, &pushes), expected, "{pushes:?}");
        }
    }

    #[test]
    fn a_megabyte_line_is_held_as_its_first_bytes_and_cut() {
        let mut lines = TailLines::new(10);
        let chunk = vec![b'y'; 16 * 1024];
        for _ in 0..64 {
            lines.push(Stdout, &chunk);
            assert!(lines.open[0].as_ref().unwrap().bytes.len() <= RAW_LINE_BYTES);
        }
        lines.push(Stdout, b"\nlast words\n");
        let LogTail::Lines(tail) = lines.into_tail() else {
            panic!("lines expected");
        };
        assert_eq!(tail.len(), 2);
        assert!(tail[0].ends_with('…') && tail[0].len() <= super::super::LINE_BYTES);
        assert_eq!(tail[1], "last words");
    }
}
