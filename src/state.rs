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
//! `events.json` holds the time of the newest Docker event taken, from which
//! the events stream is replayed after a restart (`cursor`).
//!
//! Every file has a bound. The spool keeps at most [`spool::SPOOL_LIMIT`] events and
//! reads at most 64 KiB of a line. `rejected.jsonl` is appended to (a line
//! and an fsync per event set aside) until the next line would take it past
//! [`rejected::REJECTED_LIMIT`]; it is then renamed `rejected.jsonl.1`, replacing the
//! older one, whose lines are dropped and counted ([`rejected::SetAside::dropped`]).
//! The two files take at most 20 MiB however long a receiver refuses
//! everything.

mod atomic;
mod cursor;
pub(crate) mod history;
pub(crate) mod peek;
pub(crate) mod rejected;
pub(crate) mod silences;
pub(crate) mod spool;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::incident::SavedIncidents;
use crate::inspector::Baseline;
use crate::silence::hold::SavedHold;
pub(crate) use atomic::StateError;
use atomic::{at, open_lock_file, write_atomic};

/// The spool of a version that had one sink: shared out among the sinks
/// that get its events now.
const BASELINES: &str = "baselines.json";
const INCIDENTS: &str = "incidents.json";
/// The version of `incidents.json` this build writes and reads.
const INCIDENTS_VERSION: u32 = 1;
const LOCK: &str = "rtinspect.lock";

/// Why the state directory cannot be used.
#[derive(Debug)]
pub(crate) enum OpenError {
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

/// The state directory of one process; clones share the lock, which is
/// released when the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// The open, locked `rtinspect.lock`: the lock lives as long as this.
    _lock: Arc<File>,
    /// Makes each temporary file name unique within the process.
    temp_seq: Arc<AtomicU64>,
    /// Held while `rejected.jsonl` is measured, rotated and appended to.
    rejected: Arc<Mutex<()>>,
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

/// `incidents.json`: the tracker's state under a version number, with what
/// silences hold back of it (absent when nothing is held: the file of a
/// version without silences reads the same).
#[derive(Serialize, Deserialize)]
struct IncidentsFile<T, H> {
    version: u32,
    incidents: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<H>,
}

/// The version alone, read first so that a file of another version is set
/// aside as such rather than as one that does not parse.
#[derive(Deserialize)]
struct FileVersion {
    version: u32,
}

/// The incidents `incidents.json`'s text holds, and what silences hold
/// back of them, or why it holds none: another version, or what the
/// parser said.
fn parse_incidents(text: &str) -> Result<(SavedIncidents, SavedHold), String> {
    let version = serde_json::from_str::<FileVersion>(text)
        .map_err(|e| peek::json_failure(&e))?
        .version;
    if version != INCIDENTS_VERSION {
        return Err(format!("unknown version {version}"));
    }
    serde_json::from_str::<IncidentsFile<SavedIncidents, SavedHold>>(text)
        .map(|f| (f.incidents, f.held.unwrap_or_default()))
        .map_err(|e| peek::json_failure(&e))
}

impl StateDir {
    /// Opens `dir`, creating it (mode 0750) when missing, and takes its lock;
    /// writing the pid into the lock file also proves the directory writable.
    pub(crate) fn open(dir: &Path) -> Result<StateDir, OpenError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(at(dir))?;
        let path = dir.join(LOCK);
        let mut lock = open_lock_file(&path)?;
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
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Held by the one writer of `rejected.jsonl` while it is measured,
    /// rotated and appended to.
    pub(crate) fn rejected_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `bytes` to `name` atomically, under a temporary name unique
    /// within the process.
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let unique = self.temp_seq.fetch_add(1, Relaxed);
        write_atomic(&self.dir, name, bytes, unique, |_| Ok(()))
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

    /// The saved baselines; empty when none were saved or the file is bad.
    pub(crate) fn load_baselines(&self) -> Result<HashMap<String, Baseline>, StateError> {
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
    pub(crate) fn save_baselines(
        &self,
        baselines: &HashMap<String, Baseline>,
    ) -> Result<(), StateError> {
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

    /// The saved incidents and what silences hold back of them, from one
    /// read of the file; none when none were saved or the file is bad.
    pub(crate) fn load_incidents(&self) -> Result<(SavedIncidents, SavedHold), StateError> {
        let Some(text) = self.read(INCIDENTS)? else {
            return Ok(Default::default());
        };
        Ok(parse_incidents(&text).unwrap_or_else(|why| {
            self.set_aside(INCIDENTS, &why);
            Default::default()
        }))
    }

    /// Saves the incidents and what silences hold back of them.
    pub(crate) fn save_incidents_held(
        &self,
        incidents: &SavedIncidents,
        held: &SavedHold,
    ) -> Result<(), StateError> {
        let file = IncidentsFile {
            version: INCIDENTS_VERSION,
            incidents,
            held: (!held.is_empty()).then_some(held),
        };
        let bytes = serde_json::to_vec(&file).expect("incidents always serialise");
        self.write_atomic(INCIDENTS, &bytes)
    }
}
