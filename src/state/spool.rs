//! Each sink's spool of undelivered events (`spool.<sink>.jsonl`, and the
//! single `spool.jsonl` of an earlier version): read back at the start under
//! its bounds (lines that do not parse, or past [`SPOOL_LIMIT`], set aside),
//! written whole at the exit.

use std::fs::{self, File};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use crate::event::HealthEvent;

use super::StateDir;
use super::atomic::{StateError, at};
use super::rejected::{ASIDE_BATCH, rejected_line};

/// The single spool of an earlier version, read once and removed.
pub(super) const OLD_SPOOL: &str = "spool.jsonl";

/// The most events a spool keeps: twice the publish queue. An event takes
/// about 1 KB in memory, so a spool grown over many exits with the sink down
/// costs at most some 8 MB at start, inside the unit's `MemoryMax=64M`.
pub(crate) const SPOOL_LIMIT: usize = 8192;

/// The longest spool line read; an envelope is well under 8000 bytes. Of a
/// longer line only the first 200 bytes are kept, to be set aside; the rest
/// is read past without being held.
pub(super) const SPOOL_LINE_LIMIT: usize = 64 * 1024;

/// What a start found in the spool.
#[derive(Debug, Default)]
pub(crate) struct LoadedSpool {
    /// The events to publish first, oldest first.
    pub events: Vec<HealthEvent>,
    /// Lines that did not parse, set aside in `rejected.jsonl`.
    pub bad: usize,
    /// The oldest events past [`SPOOL_LIMIT`], set aside in `rejected.jsonl`.
    pub over_limit: usize,
    /// Lines of an older `rejected.jsonl.1` dropped to make room for these.
    pub rejected_dropped: u64,
}

/// The spool file of the sink `sink`.
pub(super) fn spool_file(sink: &str) -> String {
    format!("spool.{sink}.jsonl")
}

/// A spool file as read: its events, and whether lines were set aside (so
/// that it is to be written again without them).
pub(super) struct ReadSpool {
    spool: LoadedSpool,
    rewrite: bool,
}

/// Reads past the rest of a line, its newline included, a buffer at a time:
/// a line of any length costs no more memory than the reader's buffer.
pub(super) fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Reads one spool file into `kept`, at most [`SPOOL_LIMIT`] events (the
/// newest), setting aside what does not parse or does not fit.
pub(super) fn read_spool(
    mut reader: impl BufRead,
    path: &Path,
    kept: &mut std::collections::VecDeque<HealthEvent>,
    loaded: &mut LoadedSpool,
    aside: &mut Aside<'_>,
) -> Result<(), StateError> {
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        number += 1;
        let n = (&mut reader)
            .take(SPOOL_LINE_LIMIT as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(at(path))?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > SPOOL_LINE_LIMIT && line.last() != Some(&b'\n') {
            // Read past the rest of an endless line, keeping none of it.
            skip_line(&mut reader).map_err(at(path))?;
            line.truncate(200);
            loaded.bad += 1;
            aside.push(
                &String::from_utf8_lossy(&line),
                &format!("spool line {number}: over {SPOOL_LINE_LIMIT} bytes"),
            )?;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\n');
        let parsed = std::str::from_utf8(&line)
            .map_err(|e| e.to_string())
            .and_then(|l| HealthEvent::from_envelope(l.trim_end_matches('\n')));
        match parsed {
            Ok(e) => {
                kept.push_back(e);
                if kept.len() > SPOOL_LIMIT
                    && let Some(old) = kept.pop_front()
                {
                    loaded.over_limit += 1;
                    aside.push(
                        old.envelope().as_str(),
                        &format!("the spool held more than {SPOOL_LIMIT} events"),
                    )?;
                }
            }
            Err(why) => {
                loaded.bad += 1;
                aside.push(text, &format!("spool line {number}: {why}"))?;
            }
        }
    }
}

/// Lines a start sets aside from the spool, written out a batch at a time.
pub(super) struct Aside<'a> {
    state: &'a StateDir,
    /// The sink whose spool it is.
    sink: &'a str,
    lines: Vec<String>,
    bytes: usize,
    /// Whether any line was written.
    written: bool,
    /// Lines of an older `rejected.jsonl.1` dropped meanwhile.
    dropped: u64,
}

impl Aside<'_> {
    pub(super) fn push(&mut self, envelope: &str, reason: &str) -> Result<(), StateError> {
        let line = rejected_line(self.sink, envelope, reason);
        self.bytes += line.len();
        self.lines.push(line);
        if self.bytes >= ASIDE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<(), StateError> {
        if self.lines.is_empty() {
            return Ok(());
        }
        self.dropped += self.state.append_rejected_lines(&self.lines)?.dropped;
        self.lines.clear();
        self.bytes = 0;
        self.written = true;
        Ok(())
    }
}

impl StateDir {
    /// The events spooled for the sink `sink`, oldest first; none when there
    /// is no spool.
    ///
    /// The spool is read line by line and at most [`SPOOL_LIMIT`] events are
    /// kept, the newest: a spool grown over many exits with the sink down
    /// must not make every start run out of memory. What is not kept — lines
    /// that do not parse, events past the limit — is appended to
    /// `rejected.jsonl`, a write and an fsync per MiB of lines (so that a
    /// spool of garbage is never held whole), and the spool rewritten without
    /// it, so that the next start does not set it aside again. The spool
    /// otherwise stays until [`StateDir::save_spool`] replaces it at exit, so
    /// a crash in between replays it (delivery is at least once).
    pub(crate) fn load_spool(&self, sink: &str) -> Result<LoadedSpool, StateError> {
        let loaded = self.read_spool_file(&spool_file(sink), sink)?;
        if loaded.rewrite {
            self.save_spool(sink, &loaded.spool.events)?;
        }
        Ok(loaded.spool)
    }

    /// The events of `spool.jsonl`, the spool of a version that had one
    /// sink, read as [`StateDir::load_spool`] reads a sink's (what does not
    /// parse is set aside, marked as from that file). The caller hands them
    /// to the sinks, saves their spools, then calls
    /// [`StateDir::remove_old_spool`].
    pub(crate) fn load_old_spool(&self) -> Result<LoadedSpool, StateError> {
        Ok(self.read_spool_file(OLD_SPOOL, OLD_SPOOL)?.spool)
    }

    /// Removes `spool.jsonl` once its events are in the sinks' spools.
    pub(crate) fn remove_old_spool(&self) -> Result<(), StateError> {
        let path = self.path().join(OLD_SPOOL);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The spools of sinks other than `sinks`, each with its size in bytes:
    /// events kept for a sink no longer configured. Only looked at, never
    /// opened (a FIFO of that name cannot hang the start); what is not a
    /// regular file is not one.
    pub(crate) fn other_spools(&self, sinks: &[&str]) -> Result<Vec<(PathBuf, u64)>, StateError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(self.path()).map_err(at(self.path()))? {
            let entry = entry.map_err(at(self.path()))?;
            let name = entry.file_name();
            let Some(sink) = name
                .to_str()
                .and_then(|n| n.strip_prefix("spool."))
                .and_then(|n| n.strip_suffix(".jsonl"))
            else {
                continue;
            };
            if sinks.contains(&sink) {
                continue;
            }
            let path = entry.path();
            // The entry itself: a link is not followed.
            let meta = entry.metadata().map_err(at(&path))?;
            if meta.is_file() {
                found.push((path, meta.len()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Reads the spool file `name`, setting aside under the label `sink`
    /// what is not kept.
    pub(super) fn read_spool_file(&self, name: &str, sink: &str) -> Result<ReadSpool, StateError> {
        let path = self.path().join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ReadSpool {
                    spool: LoadedSpool::default(),
                    rewrite: false,
                });
            }
            Err(e) => return Err(at(&path)(e)),
        };
        let mut kept: std::collections::VecDeque<HealthEvent> = Default::default();
        let mut loaded = LoadedSpool::default();
        let mut aside = Aside {
            state: self,
            sink,
            lines: Vec::new(),
            bytes: 0,
            written: false,
            dropped: 0,
        };
        read_spool(
            io::BufReader::new(file),
            &path,
            &mut kept,
            &mut loaded,
            &mut aside,
        )?;
        loaded.events = kept.into();
        aside.flush()?;
        loaded.rejected_dropped = aside.dropped;
        Ok(ReadSpool {
            spool: loaded,
            rewrite: aside.written,
        })
    }

    /// Replaces the spool of the sink `sink` with `events`; removes it when
    /// there are none.
    pub(crate) fn save_spool(&self, sink: &str, events: &[HealthEvent]) -> Result<(), StateError> {
        let name = spool_file(sink);
        if events.is_empty() {
            let path = self.path().join(&name);
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
                _ => Ok(()),
            };
        }
        let mut text = String::with_capacity(events.len() * 400);
        for e in events {
            text.push_str(e.envelope().as_str());
            text.push('\n');
        }
        self.write_atomic(&name, text.as_bytes())
    }
}
