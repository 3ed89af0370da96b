//! The state directory: the spool of undelivered events and the saved
//! baselines, so that neither a restart nor a crash loses what rtinspect knew.
//!
//! Every file is written atomically (a temporary file in the same directory,
//! fsync, rename, fsync of the directory), so a reader finds the old or the
//! new content, never half of one. A file that does not parse is moved aside
//! with a warning; a start never fails because of one.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::HealthEvent;
use crate::inspector::Baseline;

const SPOOL: &str = "spool.jsonl";
const BASELINES: &str = "baselines.json";

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

/// The state directory of one process.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
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

impl StateDir {
    /// Opens `dir`, creating it (mode 0750) when missing, and checks that a
    /// file can be written in it.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(at(dir))?;
        let state = StateDir {
            dir: dir.to_owned(),
        };
        let probe = dir.join(".probe");
        File::create(&probe).map_err(at(&probe))?;
        let _ = fs::remove_file(&probe);
        Ok(state)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` to `name` atomically.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let target = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&temp)
            .map_err(at(&temp))?;
        f.write_all(bytes).map_err(at(&temp))?;
        f.sync_all().map_err(at(&temp))?;
        drop(f);
        fs::rename(&temp, &target).map_err(at(&target))?;
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

    /// The spooled events, oldest first; none when there is no spool. A spool
    /// with any bad line is moved aside whole and its good lines are kept.
    pub fn load_spool(&self) -> Result<Vec<HealthEvent>, StateError> {
        let Some(text) = self.read(SPOOL)? else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        let mut bad = None;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match HealthEvent::from_envelope(line) {
                Ok(e) => events.push(e),
                Err(e) => {
                    bad.get_or_insert(format!("line {}: {e}", n + 1));
                }
            }
        }
        if let Some(why) = bad {
            self.set_aside(SPOOL, &why);
            // Keep what parsed, in a fresh spool, until it is delivered.
            self.save_spool(&events)?;
        }
        Ok(events)
    }

    /// Replaces the spool with `events`; removes it when there are none.
    pub fn save_spool(&self, events: &[HealthEvent]) -> Result<(), StateError> {
        if events.is_empty() {
            let path = self.dir.join(SPOOL);
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
        self.write_atomic(SPOOL, text.as_bytes())
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
        assert!(s.load_spool().unwrap().is_empty());
        let events = vec![event("a"), event("b")];
        s.save_spool(&events).unwrap();
        assert_eq!(s.load_spool().unwrap(), events);
        s.save_spool(&[]).unwrap();
        assert!(!s.path().join(SPOOL).exists());
        assert!(s.load_spool().unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_spool_is_set_aside_and_good_lines_kept() {
        let dir = temp("corrupt");
        let s = StateDir::open(&dir).unwrap();
        let good = event("ok");
        fs::write(
            dir.join(SPOOL),
            format!("{}\n{{\"half\n\u{0}garbage\n", good.envelope),
        )
        .unwrap();
        let loaded = s.load_spool().unwrap();
        assert_eq!(loaded, vec![good.clone()]);
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("spool.jsonl.corrupt-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            s.load_spool().unwrap(),
            vec![good],
            "the kept lines are spooled again"
        );
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

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let err = StateDir::open(Path::new("/proc/rtinspect-state")).unwrap_err();
        assert!(
            err.to_string().starts_with("/proc/rtinspect-state"),
            "{err}"
        );
    }
}
