//! `events.json`: the time of the newest Docker event the inspector took,
//! so that after a restart of rtinspect the events stream is replayed from
//! then (`since=`) and a container stopped while it was down is still known
//! as stopped — as far as dockerd's history reaches (its last 256 events,
//! none across its own restart).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{StateDir, StateError};

const EVENTS: &str = "events.json";

/// The version of `events.json` this build writes and reads.
const EVENTS_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct EventsFile {
    version: u32,
    /// Unix nanoseconds of dockerd's time of the newest event taken.
    last_event_ns: u64,
}

impl StateDir {
    /// The time of the newest Docker event an earlier run took; `None` when
    /// none was saved, and when the file is bad (moved aside) or of another
    /// version.
    pub(crate) fn load_event_cursor(&self) -> Result<Option<SystemTime>, StateError> {
        let Some(text) = self.read(EVENTS)? else {
            return Ok(None);
        };
        match serde_json::from_str::<EventsFile>(&text) {
            Ok(f) if f.version == EVENTS_VERSION => {
                Ok(Some(UNIX_EPOCH + Duration::from_nanos(f.last_event_ns)))
            }
            Ok(f) => {
                log::warn!(
                    "{EVENTS} is of version {}; the events stream starts from now",
                    f.version
                );
                Ok(None)
            }
            Err(e) => {
                self.set_aside(EVENTS, &e.to_string());
                Ok(None)
            }
        }
    }

    /// Saves the time of the newest Docker event taken.
    pub(crate) fn save_event_cursor(&self, at: SystemTime) -> Result<(), StateError> {
        let ns = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        let file = EventsFile {
            version: EVENTS_VERSION,
            last_event_ns: u64::try_from(ns).unwrap_or(u64::MAX),
        };
        let bytes = serde_json::to_vec(&file).expect("two integers always serialise");
        self.write_atomic(EVENTS, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_saved_and_read_back_and_a_bad_file_is_moved_aside() {
        let dir = std::env::temp_dir().join(format!("rtinspect-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        assert_eq!(state.load_event_cursor().unwrap(), None);
        let at = UNIX_EPOCH + Duration::new(1_765_000_000, 123_456_789);
        state.save_event_cursor(at).unwrap();
        assert_eq!(state.load_event_cursor().unwrap(), Some(at));
        std::fs::write(dir.join(EVENTS), b"{not json").unwrap();
        assert_eq!(state.load_event_cursor().unwrap(), None);
        assert!(!dir.join(EVENTS).exists(), "moved aside");
        std::fs::write(dir.join(EVENTS), br#"{"version":2,"last_event_ns":5}"#).unwrap();
        assert_eq!(state.load_event_cursor().unwrap(), None);
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
