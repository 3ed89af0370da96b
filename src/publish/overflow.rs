//! A sink's overflow on disk: with a state directory, the events that find
//! the sink's queue full go to `overflow.<sink>.jsonl`, a line each, in
//! order, and come back from it once the queue has drained, so that an
//! outage longer than the queue (4,096 events) loses no event.
//!
//! The file is bounded: facts stop going in at [`OVERFLOW_LIMIT`] (they are
//! then dropped, counted; a later fact of the game says it again), an
//! incident's events at [`OVERFLOW_HARD_LIMIT`]. It is read back from an
//! offset, a chunk at a time (never all in memory: the unit's
//! `MemoryMax=64M`), and emptied once all of it was read. What is still
//! unread at exit stays there, moved to the front of the file, and the next
//! start publishes it after the spool (which holds the older events: those
//! that were queued or in flight). Lines are not fsynced one by one (the
//! queue they stand in for is memory); the file is at exit.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::event::{EventType, HealthEvent};

/// The most bytes of facts the overflow file holds: 64 MiB, some 100,000
/// events of an ordinary size, hours of a fleet's facts.
pub(crate) const OVERFLOW_LIMIT: u64 = 64 << 20;

/// The most bytes the file holds at all: room kept past
/// [`OVERFLOW_LIMIT`] for an incident's events, which are said only once.
pub(crate) const OVERFLOW_HARD_LIMIT: u64 = 80 << 20;

/// The most bytes read back in one chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// A sink's overflow file, open for appending and reading.
#[derive(Debug)]
pub(crate) struct Overflow {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Bytes already read back.
    read_at: u64,
    /// Lines not yet read back.
    waiting: usize,
}

/// What [`Overflow::push`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Written.
    Kept,
    /// Not written: the file is at its bound for this kind of event.
    Full,
}

impl Overflow {
    /// The name of the overflow file of the sink `sink`.
    pub(crate) fn file_name(sink: &str) -> String {
        format!("overflow.{sink}.jsonl")
    }

    /// Opens (or creates) `overflow.<sink>.jsonl` in `dir`, counting the
    /// lines an earlier run left there; a last line cut short (a crash
    /// mid-write) is ended, so that it stays one line that does not parse.
    pub(crate) fn open(dir: &Path, sink: &str) -> io::Result<Overflow> {
        let path = dir.join(Self::file_name(sink));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)?;
        let mut len = file.metadata()?.len();
        let mut waiting = 0;
        let mut last = b'\n';
        let mut reader = io::BufReader::new(&mut file);
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            waiting += buf.iter().filter(|b| **b == b'\n').count();
            last = *buf.last().unwrap_or(&last);
            let n = buf.len();
            reader.consume(n);
        }
        if last != b'\n' {
            file.write_all(b"\n")?;
            len += 1;
            waiting += 1;
        }
        Ok(Overflow {
            path,
            file,
            len,
            read_at: 0,
            waiting,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Events written and not yet read back.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Appends `event` unless the file is at its bound for it (a fact at
    /// [`OVERFLOW_LIMIT`], anything at [`OVERFLOW_HARD_LIMIT`]).
    pub(crate) fn push(&mut self, event: &HealthEvent) -> io::Result<Pushed> {
        let limit = match event.event_type {
            EventType::Fact => OVERFLOW_LIMIT,
            _ => OVERFLOW_HARD_LIMIT,
        };
        let envelope = event.envelope();
        let bytes = envelope.as_str().len() as u64 + 1;
        if self.len + bytes > limit {
            return Ok(Pushed::Full);
        }
        let mut line = Vec::with_capacity(bytes as usize);
        line.extend_from_slice(envelope.as_str().as_bytes());
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            // A short write leaves part of a line: end it, so that the next
            // line starts on its own (the part is dropped as not parsing).
            let _ = self.file.write_all(b"\n");
            self.len = self.file.metadata().map_or(self.len, |m| m.len());
            return Err(e);
        }
        self.len += bytes;
        self.waiting += 1;
        Ok(Pushed::Kept)
    }

    /// Reads back up to `max` of the oldest lines (at most about a MiB),
    /// oldest first; once every line was read, the file is emptied. Lines
    /// that do not parse are returned as `Err` with their first 200 bytes.
    pub(crate) fn take(&mut self, max: usize) -> io::Result<Vec<Result<HealthEvent, String>>> {
        let mut taken = Vec::new();
        if self.waiting == 0 {
            return Ok(taken);
        }
        let want = ((self.len - self.read_at) as usize).min(CHUNK_BYTES);
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, self.read_at)?;
        let mut used = 0;
        while taken.len() < max {
            let Some(end) = buf[used..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = &buf[used..used + end];
            used += end + 1;
            self.waiting -= 1;
            taken.push(match std::str::from_utf8(line) {
                Ok(text) => {
                    HealthEvent::from_envelope(text).map_err(|e| format!("{e}: {}", cut(text)))
                }
                Err(_) => Err(format!(
                    "not UTF-8: {}",
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                )),
            });
        }
        if used == 0 && self.waiting > 0 {
            // One line longer than a chunk: not an envelope (they are under
            // 8000 bytes). Skip to its end.
            let skipped = self.skip_line()?;
            self.waiting -= 1;
            taken.push(Err(format!("a line of {skipped} bytes")));
        } else {
            self.read_at += used as u64;
        }
        if self.waiting == 0 {
            self.empty()?;
        }
        Ok(taken)
    }

    /// Moves `read_at` past the line it is at; the line's length.
    fn skip_line(&mut self) -> io::Result<u64> {
        let mut reader = io::BufReader::new(&self.file);
        reader.seek(io::SeekFrom::Start(self.read_at))?;
        let mut skipped = 0u64;
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    skipped += end as u64 + 1;
                    break;
                }
                None => {
                    skipped += buf.len() as u64;
                    let n = buf.len();
                    reader.consume(n);
                }
            }
        }
        self.read_at += skipped;
        Ok(skipped)
    }

    /// Every line was read back: the file starts over, empty.
    fn empty(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.read_at = 0;
        self.waiting = 0;
        Ok(())
    }

    /// At exit: what is unread moves to the front of the file (a new file,
    /// renamed over it), or the file goes when nothing is; then synced. The
    /// events left for the next start.
    pub(crate) fn keep_for_next_start(&mut self) -> io::Result<usize> {
        if self.waiting == 0 {
            std::fs::remove_file(&self.path)?;
            return Ok(0);
        }
        if self.read_at > 0 {
            let temp = self.path.with_extension("jsonl.tmp");
            let mut out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .open(&temp)?;
            let mut from = &self.file;
            from.seek(io::SeekFrom::Start(self.read_at))?;
            io::copy(&mut from.take(self.len - self.read_at), &mut out)?;
            out.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            self.file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&self.path)?;
            self.len -= self.read_at;
            self.read_at = 0;
        } else {
            self.file.sync_all()?;
        }
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.waiting)
    }
}

/// The first 200 bytes of `text`, on a character boundary.
fn cut(text: &str) -> &str {
    &text[..text.floor_char_boundary(200)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;

    fn dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("rtinspect-overflow-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn games(taken: Vec<Result<HealthEvent, String>>) -> Vec<String> {
        taken
            .into_iter()
            .map(|e| e.map(|e| e.game_id).unwrap_or_else(|e| format!("bad: {e}")))
            .collect()
    }

    #[test]
    fn events_come_back_in_order_and_the_file_empties_once_read() {
        let d = dir("order");
        let mut o = Overflow::open(&d, "postgres").unwrap();
        for g in ["a", "b", "c"] {
            assert_eq!(o.push(&event(g)).unwrap(), Pushed::Kept);
        }
        assert_eq!(o.waiting(), 3);
        assert_eq!(games(o.take(2).unwrap()), ["a", "b"]);
        o.push(&event("d")).unwrap();
        assert_eq!(games(o.take(10).unwrap()), ["c", "d"]);
        assert_eq!(o.waiting(), 0);
        assert_eq!(std::fs::metadata(o.path()).unwrap().len(), 0, "emptied");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn what_is_unread_at_exit_is_there_at_the_next_start_and_only_that() {
        let d = dir("exit");
        let mut o = Overflow::open(&d, "postgres").unwrap();
        for g in ["a", "b", "c"] {
            o.push(&event(g)).unwrap();
        }
        assert_eq!(games(o.take(1).unwrap()), ["a"]);
        assert_eq!(o.keep_for_next_start().unwrap(), 2);
        drop(o);
        let mut o = Overflow::open(&d, "postgres").unwrap();
        assert_eq!(o.waiting(), 2);
        o.push(&event("d")).unwrap();
        assert_eq!(games(o.take(10).unwrap()), ["b", "c", "d"]);
        assert_eq!(o.keep_for_next_start().unwrap(), 0);
        assert!(!o.path().exists(), "nothing left: no file");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_one_bad_line_and_the_rest_reads() {
        let d = dir("cut");
        let good = event("a");
        std::fs::write(
            d.join("overflow.postgres.jsonl"),
            format!(
                "{}\n{}",
                good.envelope().as_str(),
                &good.envelope().as_str()[..40]
            ),
        )
        .unwrap();
        let mut o = Overflow::open(&d, "postgres").unwrap();
        assert_eq!(o.waiting(), 2);
        o.push(&event("b")).unwrap();
        let got = games(o.take(10).unwrap());
        assert_eq!(got[0], "a");
        assert!(got[1].starts_with("bad: "), "{got:?}");
        assert_eq!(got[2], "b");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn facts_stop_at_64_mib_and_an_incidents_events_at_80() {
        let d = dir("bound");
        let mut o = Overflow::open(&d, "postgres").unwrap();
        // As if the file held 64 MiB already.
        o.len = OVERFLOW_LIMIT - 10;
        assert_eq!(o.push(&event("fact")).unwrap(), Pushed::Full);
        o.len = OVERFLOW_HARD_LIMIT - 10;
        let mut opened = event("opened");
        opened.event_type = EventType::Incident(crate::incident::Change::Opened);
        assert_eq!(o.push(&opened).unwrap(), Pushed::Full);
        o.len = OVERFLOW_LIMIT;
        assert_eq!(o.push(&opened).unwrap(), Pushed::Kept);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
