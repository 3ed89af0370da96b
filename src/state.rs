//! The state directory: each sink's spool of undelivered events
//! (`spool.<sink>.jsonl`), the saved baselines and incidents, and the events
//! a sink refused for good, so that neither a restart nor a crash loses what
//! rtinspect knew.
//!
//! One process owns the directory: it holds an exclusive `flock` on
//! `rtinspect.lock` (which names its pid) for as long as it runs. Every file is
//! written atomically (a temporary file of a unique name in the same
//! directory, fsync, rename, fsync of the directory), so a reader finds the
//! old or the new content, never half of one. A baselines or incidents file
//! that does not parse is moved aside with a warning; a spool line that does not parse is
//! set aside in `rejected.jsonl`. A start never fails because of either.
//!
//! Every file has a bound. The spool keeps at most [`SPOOL_LIMIT`] events and
//! reads at most 64 KiB of a line. `rejected.jsonl` is appended to (a line
//! and an fsync per event set aside) until the next line would take it past
//! [`REJECTED_LIMIT`]; it is then renamed `rejected.jsonl.1`, replacing the
//! older one, whose lines are dropped and counted ([`SetAside::dropped`]).
//! The two files take at most 20 MiB however long a receiver refuses
//! everything.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::event::HealthEvent;
use crate::incident::SavedIncidents;
use crate::inspector::Baseline;

/// The spool of a version that had one sink: shared out among the sinks
/// that get its events now.
const OLD_SPOOL: &str = "spool.jsonl";
const BASELINES: &str = "baselines.json";
const INCIDENTS: &str = "incidents.json";
/// The version of `incidents.json` this build writes and reads.
const INCIDENTS_VERSION: u32 = 1;
const REJECTED: &str = "rejected.jsonl";
const REJECTED_OLD: &str = "rejected.jsonl.1";
const LOCK: &str = "rtinspect.lock";

/// Why the state directory cannot be used.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the lock.
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as written in the lock file.
        holder: Option<u32>,
    },
    /// The directory cannot be created, written or locked.
    Io(StateError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked { dir, holder } => {
                write!(f, "state directory {} is in use by ", dir.display())?;
                match holder {
                    Some(pid) => write!(f, "another rtinspect (pid {pid})"),
                    None => f.write_str("another rtinspect"),
                }
            }
            OpenError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Locked { .. } => None,
            OpenError::Io(e) => Some(e),
        }
    }
}

impl From<StateError> for OpenError {
    fn from(e: StateError) -> Self {
        OpenError::Io(e)
    }
}

/// A state-directory failure, with the path it concerns.
#[derive(Debug)]
pub struct StateError {
    /// The file or directory.
    pub path: PathBuf,
    /// What the system said.
    pub source: io::Error,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError {
        path: path.to_owned(),
        source,
    }
}

/// The state directory of one process; clones share the lock, which is
/// released when the last one is dropped.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// The open, locked `rtinspect.lock`: the lock lives as long as this.
    _lock: Arc<File>,
    /// Makes each temporary file name unique within the process.
    temp_seq: Arc<AtomicU64>,
    /// Held while `rejected.jsonl` is measured, rotated and appended to.
    rejected: Arc<Mutex<()>>,
}

/// The size past which `rejected.jsonl` is rotated: at a line of some 420
/// bytes per refused event, 25,000 events; a receiver refusing all events of
/// 100 games every second fills it in about four minutes.
pub const REJECTED_LIMIT: u64 = 10 << 20;

/// How many bytes of lines a start sets aside from the spool in one write:
/// what it holds in memory for them, and the most a write can take
/// `rejected.jsonl` past [`REJECTED_LIMIT`] (it is rotated before a write,
/// not during one).
const ASIDE_BATCH: usize = 1 << 20;

/// Where events were set aside.
#[derive(Debug)]
pub struct SetAside {
    /// `rejected.jsonl`.
    pub path: PathBuf,
    /// Lines of the older `rejected.jsonl.1` dropped to make room: events set
    /// aside earlier that are now lost.
    pub dropped: u64,
}

/// The most events a spool keeps: twice the publish queue. An event takes
/// about 1 KB in memory, so a spool grown over many exits with the sink down
/// costs at most some 8 MB at start, inside the unit's `MemoryMax=64M`.
pub const SPOOL_LIMIT: usize = 8192;

/// The longest spool line read; an envelope is well under 8000 bytes. Of a
/// longer line only the first 200 bytes are kept, to be set aside; the rest
/// is read past without being held.
const SPOOL_LINE_LIMIT: usize = 64 * 1024;

/// What a start found in the spool.
#[derive(Debug, Default)]
pub struct LoadedSpool {
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
fn spool_file(sink: &str) -> String {
    format!("spool.{sink}.jsonl")
}

/// A spool file as read: its events, and whether lines were set aside (so
/// that it is to be written again without them).
struct ReadSpool {
    spool: LoadedSpool,
    rewrite: bool,
}

/// One line of `rejected.jsonl`:
/// `{"rejected_at":…,"sink":…,"reason":…,"envelope":…}`, the envelope as a
/// string when it is not JSON.
fn rejected_line(sink: &str, envelope: &str, reason: &str) -> String {
    let envelope = serde_json::from_str::<serde_json::Value>(envelope)
        .unwrap_or_else(|_| serde_json::Value::String(envelope.to_owned()));
    let mut line = serde_json::json!({
        "rejected_at": crate::event::rfc3339_micros(std::time::SystemTime::now()),
        "sink": sink,
        "reason": reason,
        "envelope": envelope,
    })
    .to_string();
    line.push('\n');
    line
}

/// Reads past the rest of a line, its newline included, a buffer at a time:
/// a line of any length costs no more memory than the reader's buffer.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
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

/// The newlines in a file, counted a buffer at a time.
fn count_lines(mut reader: impl BufRead) -> io::Result<u64> {
    let mut lines = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Reads one spool file into `kept`, at most [`SPOOL_LIMIT`] events (the
/// newest), setting aside what does not parse or does not fit.
fn read_spool(
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
                        &old.envelope,
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
struct Aside<'a> {
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
    fn push(&mut self, envelope: &str, reason: &str) -> Result<(), StateError> {
        let line = rejected_line(self.sink, envelope, reason);
        self.bytes += line.len();
        self.lines.push(line);
        if self.bytes >= ASIDE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StateError> {
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

#[derive(Serialize, Deserialize)]
struct SavedBaselines {
    version: u32,
    baselines: HashMap<String, SavedBaseline>,
}

#[derive(Serialize, Deserialize)]
struct SavedBaseline {
    container_id: String,
    restart_count: u64,
}

/// `incidents.json`: the tracker's state under a version number.
#[derive(Serialize, Deserialize)]
struct IncidentsFile<T> {
    version: u32,
    incidents: T,
}

/// The version alone, read first so that a file of another version is set
/// aside as such rather than as one that does not parse.
#[derive(Deserialize)]
struct FileVersion {
    version: u32,
}

impl StateDir {
    /// Opens `dir`, creating it (mode 0750) when missing, and takes its lock;
    /// writing the pid into the lock file also proves the directory writable.
    pub fn open(dir: &Path) -> Result<StateDir, OpenError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(at(dir))?;
        let path = dir.join(LOCK);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(at(&path))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                return Err(OpenError::Locked {
                    dir: dir.to_owned(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(e) => return Err(at(&path)(e.into()).into()),
        }
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .and_then(|()| lock.sync_all())
            .map_err(at(&path))?;
        Ok(StateDir {
            dir: dir.to_owned(),
            _lock: Arc::new(lock),
            temp_seq: Arc::default(),
            rejected: Arc::default(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` to `name` atomically.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let target = self.dir.join(name);
        let temp = self.dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            self.temp_seq.fetch_add(1, Relaxed)
        ));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&temp)
            .map_err(at(&temp))?;
        if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
            // A full disk must not leave temporary files behind.
            let _ = fs::remove_file(&temp);
            return Err(at(&temp)(e));
        }
        drop(f);
        if let Err(e) = fs::rename(&temp, &target) {
            // Nor a rename that fails: each retry would leave one more.
            let _ = fs::remove_file(&temp);
            return Err(at(&target)(e));
        }
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(at(&self.dir))
    }

    /// Moves a file that does not parse out of the way, keeping it for a look.
    fn set_aside(&self, name: &str, why: &str) {
        let from = self.dir.join(name);
        let to = self.dir.join(format!(
            "{name}.corrupt-{}",
            crate::telemetry::unix_ms_now()
        ));
        match fs::rename(&from, &to) {
            Ok(()) => log::warn!(err = why;
                "{} does not parse; moved aside to {}", from.display(), to.display()),
            Err(e) => log::warn!(err:% = e;
                "{} does not parse ({why}) and cannot be moved aside", from.display()),
        }
    }

    fn read(&self, name: &str) -> Result<Option<String>, StateError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Some(text)),
                Err(_) => {
                    self.set_aside(name, "not UTF-8");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&path)(e)),
        }
    }

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
    pub fn load_spool(&self, sink: &str) -> Result<LoadedSpool, StateError> {
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
    pub fn load_old_spool(&self) -> Result<LoadedSpool, StateError> {
        Ok(self.read_spool_file(OLD_SPOOL, OLD_SPOOL)?.spool)
    }

    /// Removes `spool.jsonl` once its events are in the sinks' spools.
    pub fn remove_old_spool(&self) -> Result<(), StateError> {
        let path = self.dir.join(OLD_SPOOL);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The spools of sinks other than `sinks`, each with its size in bytes:
    /// events kept for a sink no longer configured. Only looked at, never
    /// opened (a FIFO of that name cannot hang the start); what is not a
    /// regular file is not one.
    pub fn other_spools(&self, sinks: &[&str]) -> Result<Vec<(PathBuf, u64)>, StateError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(at(&self.dir))? {
            let entry = entry.map_err(at(&self.dir))?;
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
    fn read_spool_file(&self, name: &str, sink: &str) -> Result<ReadSpool, StateError> {
        let path = self.dir.join(name);
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

    /// Appends refused events of the sink `sink`, all for `reason`, to
    /// `rejected.jsonl`, a line each
    /// (`{"rejected_at":…,"sink":…,"reason":…,"envelope":…}`), in one write
    /// and one fsync, rotating the file first when they would take it past
    /// [`REJECTED_LIMIT`].
    pub fn append_rejected_events(
        &self,
        sink: &str,
        events: &[HealthEvent],
        reason: &str,
    ) -> Result<SetAside, StateError> {
        let lines: Vec<String> = events
            .iter()
            .map(|e| rejected_line(sink, &e.envelope, reason))
            .collect();
        self.append_rejected_lines(&lines)
    }

    /// Appends lines made by [`rejected_line`] to `rejected.jsonl`, in one
    /// write and one fsync, after rotating it when they would take it past
    /// [`REJECTED_LIMIT`].
    fn append_rejected_lines(&self, lines: &[String]) -> Result<SetAside, StateError> {
        let _only_writer = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(REJECTED);
        let line = lines.concat();
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(at(&path)(e)),
        };
        let dropped = if size > 0 && size + line.len() as u64 > REJECTED_LIMIT {
            self.rotate_rejected()?
        } else {
            0
        };
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .map_err(at(&path))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(at(&path))?;
        Ok(SetAside { path, dropped })
    }

    /// Renames `rejected.jsonl` to `rejected.jsonl.1`, replacing the older
    /// one; returns how many lines that older one held, now lost.
    fn rotate_rejected(&self) -> Result<u64, StateError> {
        let old = self.dir.join(REJECTED_OLD);
        let dropped = match File::open(&old) {
            Ok(f) => count_lines(io::BufReader::new(f)).map_err(at(&old))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(at(&old)(e)),
        };
        fs::rename(self.dir.join(REJECTED), &old).map_err(at(&old))?;
        // The rename is durable only once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(at(&self.dir))?;
        Ok(dropped)
    }

    /// Replaces the spool of the sink `sink` with `events`; removes it when
    /// there are none.
    pub fn save_spool(&self, sink: &str, events: &[HealthEvent]) -> Result<(), StateError> {
        let name = spool_file(sink);
        if events.is_empty() {
            let path = self.dir.join(&name);
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
                _ => Ok(()),
            };
        }
        let mut text = String::with_capacity(events.len() * 400);
        for e in events {
            text.push_str(&e.envelope);
            text.push('\n');
        }
        self.write_atomic(&name, text.as_bytes())
    }

    /// The saved baselines; empty when none were saved or the file is bad.
    pub fn load_baselines(&self) -> Result<HashMap<String, Baseline>, StateError> {
        let Some(text) = self.read(BASELINES)? else {
            return Ok(HashMap::new());
        };
        match serde_json::from_str::<SavedBaselines>(&text) {
            Ok(saved) if saved.version == 1 => Ok(saved
                .baselines
                .into_iter()
                .map(|(game, b)| {
                    (
                        game,
                        Baseline {
                            container_id: b.container_id,
                            restart_count: b.restart_count,
                        },
                    )
                })
                .collect()),
            Ok(saved) => {
                self.set_aside(BASELINES, &format!("unknown version {}", saved.version));
                Ok(HashMap::new())
            }
            Err(e) => {
                self.set_aside(BASELINES, &e.to_string());
                Ok(HashMap::new())
            }
        }
    }

    /// Saves the baselines, replacing the previous ones.
    pub fn save_baselines(&self, baselines: &HashMap<String, Baseline>) -> Result<(), StateError> {
        let saved = SavedBaselines {
            version: 1,
            baselines: baselines
                .iter()
                .map(|(game, b)| {
                    (
                        game.clone(),
                        SavedBaseline {
                            container_id: b.container_id.clone(),
                            restart_count: b.restart_count,
                        },
                    )
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&saved).expect("baselines always serialise");
        self.write_atomic(BASELINES, &bytes)
    }

    /// The saved incidents; none when none were saved or the file is bad.
    pub fn load_incidents(&self) -> Result<SavedIncidents, StateError> {
        let Some(text) = self.read(INCIDENTS)? else {
            return Ok(SavedIncidents::default());
        };
        let parsed = serde_json::from_str::<FileVersion>(&text).and_then(|v| {
            if v.version != INCIDENTS_VERSION {
                return Ok(Err(v.version));
            }
            serde_json::from_str::<IncidentsFile<SavedIncidents>>(&text).map(|f| Ok(f.incidents))
        });
        match parsed {
            Ok(Ok(incidents)) => Ok(incidents),
            Ok(Err(version)) => {
                self.set_aside(INCIDENTS, &format!("unknown version {version}"));
                Ok(SavedIncidents::default())
            }
            Err(e) => {
                self.set_aside(INCIDENTS, &e.to_string());
                Ok(SavedIncidents::default())
            }
        }
    }

    /// Saves the incidents, replacing the previous ones.
    pub fn save_incidents(&self, incidents: &SavedIncidents) -> Result<(), StateError> {
        let file = IncidentsFile {
            version: INCIDENTS_VERSION,
            incidents,
        };
        let bytes = serde_json::to_vec(&file).expect("incidents always serialise");
        self.write_atomic(INCIDENTS, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stopped_event as event;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rtinspect-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn spool_round_trips_byte_for_byte_and_empties() {
        let dir = temp("spool");
        let s = StateDir::open(&dir.join("nested")).unwrap();
        assert!(s.load_spool("stdout").unwrap().events.is_empty());
        let events = vec![event("a"), event("b")];
        s.save_spool("stdout", &events).unwrap();
        assert_eq!(s.load_spool("stdout").unwrap().events, events);
        s.save_spool("stdout", &[]).unwrap();
        assert!(!s.path().join(spool_file("stdout")).exists());
        assert!(s.load_spool("stdout").unwrap().events.is_empty());
        let leftovers: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spool_lines_that_do_not_parse_are_set_aside_once_in_one_write() {
        let dir = temp("corrupt");
        let s = StateDir::open(&dir).unwrap();
        let good = event("ok");
        let mut bytes = format!("{}\n{{\"half\n\u{0}garbage\n", good.envelope).into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n\n");
        bytes.extend(std::iter::repeat_n(b'x', SPOOL_LINE_LIMIT + 10));
        bytes.push(b'\n');
        fs::write(dir.join(spool_file("stdout")), bytes).unwrap();
        let loaded = s.load_spool("stdout").unwrap();
        assert_eq!(loaded.events, vec![good.clone()]);
        assert_eq!((loaded.bad, loaded.over_limit), (4, 0));
        let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
        let reasons: Vec<String> = rejected
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["reason"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].starts_with("spool line 2: "), "{reasons:?}");
        assert!(
            reasons[3].starts_with("spool line 6: over 65536 bytes"),
            "{reasons:?}"
        );
        // The spool was rewritten: the next start sets nothing aside again.
        let again = s.load_spool("stdout").unwrap();
        assert_eq!((again.events, again.bad), (vec![good], 0));
        assert_eq!(fs::read_to_string(dir.join(REJECTED)).unwrap(), rejected);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Taken by the tests that measure the process's peak resident set:
    /// the peak is the whole process's, and another such test's large
    /// buffers must not fall inside one's window.
    fn measuring_memory() -> std::sync::MutexGuard<'static, ()> {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        ONE.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process's peak resident set, in bytes (`VmHWM`).
    fn peak_rss() -> u64 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    #[test]
    fn a_200_mb_spool_line_is_set_aside_without_being_held_in_memory() {
        let _one = measuring_memory();
        let dir = temp("long-line");
        let s = StateDir::open(&dir).unwrap();
        let good = event("ok");
        // good, 200 MB without a newline (a sparse run of NULs), good. Under
        // the unit's MemoryMax=64M, holding that line is an OOM kill at every start.
        let path = dir.join(spool_file("stdout"));
        let mut f = File::create(&path).unwrap();
        writeln!(f, "{}", good.envelope).unwrap();
        let at = f.stream_position().unwrap();
        f.set_len(at + 200_000_000).unwrap();
        f.seek(io::SeekFrom::End(0)).unwrap();
        writeln!(f, "\n{}", good.envelope).unwrap();
        drop(f);
        let before = peak_rss();
        let loaded = s.load_spool("stdout").unwrap();
        let grew = peak_rss().saturating_sub(before);
        assert_eq!(loaded.events, vec![good.clone(), good]);
        assert_eq!(loaded.bad, 1);
        assert!(
            grew < 64 << 20,
            "the peak resident set grew by {} MiB",
            grew >> 20
        );
        let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
        assert_eq!(rejected.lines().count(), 1, "{rejected}");
        assert!(rejected.len() < 2048, "only the start of the line is kept");
        assert!(rejected.contains("spool line 2: over 65536 bytes"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_spool_of_60_mb_of_bad_lines_is_set_aside_in_bounded_batches() {
        let _one = measuring_memory();
        let dir = temp("bad-lines");
        let s = StateDir::open(&dir).unwrap();
        let bad = format!("{{{}\n", "y".repeat(60_000));
        fs::write(dir.join(spool_file("stdout")), bad.repeat(1000)).unwrap();
        let before = peak_rss();
        let loaded = s.load_spool("stdout").unwrap();
        let grew = peak_rss().saturating_sub(before);
        assert_eq!((loaded.bad, loaded.events.len()), (1000, 0));
        assert!(
            grew < 32 << 20,
            "the peak resident set grew by {} MiB",
            grew >> 20
        );
        let (current, old) = (
            reasons_in(&dir.join(REJECTED)),
            reasons_in(&dir.join(REJECTED_OLD)),
        );
        assert_eq!(
            loaded.rejected_dropped as usize + old.len() + current.len(),
            1000,
            "every line is set aside or counted as dropped"
        );
        assert_eq!(
            current.last().unwrap(),
            "spool line 1000: key must be a string at line 1 column 2"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_spool_over_its_limit_keeps_the_newest_events() {
        let dir = temp("limit");
        let s = StateDir::open(&dir).unwrap();
        let events: Vec<HealthEvent> = (0..SPOOL_LIMIT + 3)
            .map(|i| event(&format!("g-{i}")))
            .collect();
        s.save_spool("stdout", &events).unwrap();
        let loaded = s.load_spool("stdout").unwrap();
        assert_eq!(loaded.over_limit, 3);
        assert_eq!(loaded.events.len(), SPOOL_LIMIT);
        assert_eq!(
            loaded.events[0].game_id, "g-3",
            "the oldest three set aside"
        );
        let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
        assert_eq!(rejected.lines().count(), 3);
        assert!(rejected.contains("\"game_id\":\"g-0\""));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_old_spool_is_read_apart_and_other_sinks_spools_are_found() {
        let dir = temp("old-spool");
        let s = StateDir::open(&dir).unwrap();
        let old: Vec<HealthEvent> = ["o-1", "o-2"].iter().map(|g| event(g)).collect();
        let mut text: String = old.iter().map(|e| format!("{}\n", e.envelope)).collect();
        text.push_str("not json\n");
        fs::write(dir.join(OLD_SPOOL), text).unwrap();
        s.save_spool("postgres", &[event("p-1")]).unwrap();
        s.save_spool("webhook", &[event("w-1"), event("w-2")])
            .unwrap();
        // A sink's spool is its own.
        let games = |l: &LoadedSpool| -> Vec<String> {
            l.events.iter().map(|e| e.game_id.clone()).collect()
        };
        assert_eq!(games(&s.load_spool("postgres").unwrap()), ["p-1"]);
        assert!(s.load_spool("stdout").unwrap().events.is_empty());
        let loaded = s.load_old_spool().unwrap();
        assert_eq!(games(&loaded), ["o-1", "o-2"]);
        assert_eq!(loaded.bad, 1);
        let rejected = fs::read_to_string(dir.join(REJECTED)).unwrap();
        let line: serde_json::Value = serde_json::from_str(rejected.trim()).unwrap();
        assert_eq!(line["sink"], "spool.jsonl");
        assert_eq!(line["envelope"], "not json");
        assert!(
            dir.join(OLD_SPOOL).exists(),
            "until its events are saved elsewhere"
        );
        s.remove_old_spool().unwrap();
        s.remove_old_spool().unwrap();
        assert!(!dir.join(OLD_SPOOL).exists());
        fs::create_dir(dir.join("spool.kafka.jsonl")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.join("spool.old.jsonl"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let others = s.other_spools(&["postgres", "stdout"]).unwrap();
        let size = fs::metadata(dir.join("spool.webhook.jsonl")).unwrap().len();
        assert_eq!(others, [(dir.join("spool.webhook.jsonl"), size)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejected_events_are_appended_with_their_reason() {
        let dir = temp("rejected");
        let s = StateDir::open(&dir).unwrap();
        let e = event("bad");
        s.append_rejected_events("stdout", &[e], "payload string too long")
            .unwrap();
        s.append_rejected_lines(&[rejected_line(
            "stdout",
            "{not json",
            "line 2: expected value",
        )])
        .unwrap();
        let text = fs::read_to_string(dir.join(REJECTED)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "payload string too long");
        assert_eq!(lines[0]["envelope"]["game_id"], "bad");
        assert_eq!(lines[1]["envelope"], "{not json");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The reasons of the lines of a `rejected.jsonl`, in order.
    fn reasons_in(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["reason"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn rejected_jsonl_rotates_at_10_mib_keeping_one_old_file() {
        let dir = temp("rotate");
        let s = StateDir::open(&dir).unwrap();
        // A receiver refusing everything, with events of 1 MiB to get there fast.
        let envelope = "x".repeat(1 << 20);
        let mut dropped = 0;
        for i in 0..25 {
            dropped += s
                .append_rejected_lines(&[rejected_line("stdout", &envelope, &format!("r{i}"))])
                .unwrap()
                .dropped;
        }
        let (current, old) = (dir.join(REJECTED), dir.join("rejected.jsonl.1"));
        for path in [&current, &old] {
            let len = fs::metadata(path).unwrap().len();
            assert!(len <= 10 << 20, "{}: {len} bytes", path.display());
        }
        assert!(!dir.join("rejected.jsonl.2").exists());
        let (current, old) = (reasons_in(&current), reasons_in(&old));
        assert_eq!(current.last().unwrap(), "r24", "the newest is kept");
        let kept: Vec<String> = old.iter().chain(&current).cloned().collect();
        let first = 25 - kept.len();
        let want: Vec<String> = (first..25).map(|i| format!("r{i}")).collect();
        assert_eq!(kept, want, "the oldest go first, none in between");
        assert_eq!(dropped as usize, first, "every dropped one is counted");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_owner_is_refused_naming_the_holder() {
        let dir = temp("lock");
        let first = StateDir::open(&dir).unwrap();
        let err = StateDir::open(&dir).unwrap_err();
        assert!(
            matches!(err, OpenError::Locked { holder: Some(pid), .. } if pid == std::process::id()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("in use by another rtinspect (pid "),
            "{err}"
        );
        drop(first);
        StateDir::open(&dir).expect("the lock goes with its owner");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn baselines_round_trip_and_corrupt_ones_start_empty() {
        let dir = temp("baselines");
        let s = StateDir::open(&dir).unwrap();
        assert!(s.load_baselines().unwrap().is_empty());
        let mut b = HashMap::new();
        b.insert(
            "g-1".to_string(),
            Baseline {
                container_id: "f".repeat(64),
                restart_count: 7,
            },
        );
        s.save_baselines(&b).unwrap();
        assert_eq!(s.load_baselines().unwrap(), b);
        fs::write(dir.join(BASELINES), b"{\"version\":1,\"baselines\":{\"g\":").unwrap();
        assert!(s.load_baselines().unwrap().is_empty());
        assert!(!dir.join(BASELINES).exists(), "moved aside");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The names of the files in `dir` that start with `prefix`.
    fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    #[test]
    fn incidents_round_trip_and_bad_files_are_set_aside() {
        use crate::incident::{Look, Policy, Stamp, Tracker};
        use std::time::{Duration, Instant, UNIX_EPOCH};

        let dir = temp("incidents");
        let s = StateDir::open(&dir).unwrap();
        assert!(s.load_incidents().unwrap().is_empty());
        let mut tracker = Tracker::new(Policy::default());
        let at = Stamp {
            wall: UNIX_EPOCH + Duration::from_secs(1_750_000_000),
            mono: Instant::now(),
        };
        let opened = tracker.look(&Look {
            game_id: "g-1",
            container_id: &"f".repeat(64),
            restart_count: 2,
            status: "exited",
            health: "",
            started_at: None,
            at,
        });
        tracker.oom("g-2", at.mono);
        s.save_incidents(&tracker.saved(at)).unwrap();
        assert_eq!(s.load_incidents().unwrap(), tracker.saved(at));
        let text = fs::read_to_string(dir.join(INCIDENTS)).unwrap();
        assert!(text.starts_with("{\"version\":1,"), "{text}");
        assert!(text.contains(&opened[0].incident_id), "{text}");
        assert!(files_starting(&dir, ".incidents.json").is_empty());

        // (contents, why it is set aside)
        let table: &[(&[u8], &str)] = &[
            (
                b"{\"version\":1,\"incidents\":{\"games\":{\"g\":",
                "truncated",
            ),
            (b"{\"version\":2,\"incidents\":[]}", "a later version"),
            (b"\xff\xfe", "not UTF-8"),
            (
                b"{\"version\":1,\"incidents\":{\"games\":{\"g\":{\"incident\":{\"id\":\"x\",\
                  \"kind\":\"on_fire\",\"started_at_ms\":0,\"oom\":false}}}}}",
                "an unknown kind",
            ),
        ];
        for (bytes, why) in table {
            fs::write(dir.join(INCIDENTS), bytes).unwrap();
            assert!(s.load_incidents().unwrap().is_empty(), "{why}");
            assert!(!dir.join(INCIDENTS).exists(), "{why}: moved aside");
            let aside = files_starting(&dir, "incidents.json.corrupt-");
            assert_eq!(aside.len(), 1, "{why}: {aside:?}");
            for name in aside {
                fs::remove_file(dir.join(name)).unwrap();
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let err = StateDir::open(Path::new("/proc/rtinspect-state")).unwrap_err();
        assert!(
            err.to_string().starts_with("/proc/rtinspect-state"),
            "{err}"
        );
    }
}
