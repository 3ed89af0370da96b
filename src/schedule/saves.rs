//! When the state directory is written: a file that changed is written at
//! most once every [`SAVE_GAP`], however many Docker events move it, so
//! that a burst of events costs a few writes rather than one a change; a
//! write that failed is tried again at the end of each tick until one
//! succeeds; and whatever changed is written before the loop stops.

use std::time::{Duration, Instant};

/// The least time between two writes of one file of the state directory.
pub(super) const SAVE_GAP: Duration = Duration::from_secs(1);

/// A file of the state directory the schedule writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateFile {
    /// `baselines.json`: the inspector's baselines.
    Baselines,
    /// `incidents.json`: the incident tracker's memory.
    Incidents,
    /// `events.json`: the time of the newest Docker event taken, replayed
    /// from after a restart.
    EventCursor,
}

impl StateFile {
    /// The file's name in the state directory.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StateFile::Baselines => "baselines.json",
            StateFile::Incidents => "incidents.json",
            StateFile::EventCursor => "events.json",
        }
    }
}

/// The writes of one file.
#[derive(Debug, Default, Clone, Copy)]
struct FileSave {
    /// Changed since its last write was handed out.
    dirty: bool,
    /// When its last write was handed out.
    last: Option<Instant>,
    /// Its last write failed: the next waits for the end of a tick.
    failed: bool,
    /// Its last write before the loop stops was handed out: a failed one
    /// is not tried again for ever.
    final_done: bool,
}

/// The writes of both files.
#[derive(Debug, Default)]
pub(super) struct Saves {
    files: [FileSave; 3],
}

const FILES: [StateFile; 3] = [
    StateFile::Baselines,
    StateFile::Incidents,
    StateFile::EventCursor,
];

impl Saves {
    fn of(&mut self, file: StateFile) -> &mut FileSave {
        &mut self.files[file as usize]
    }

    /// `file` changed and is to be written.
    pub(super) fn changed(&mut self, file: StateFile) {
        self.of(file).dirty = true;
    }

    /// The write of `file` failed: it is written again at the end of a tick.
    pub(super) fn failed(&mut self, file: StateFile) {
        let f = self.of(file);
        f.dirty = true;
        f.failed = true;
    }

    /// A tick ended: a file whose write failed may be tried again.
    pub(super) fn tick_ended(&mut self) {
        for f in &mut self.files {
            f.failed = false;
        }
    }

    /// A write due at `now`, handed out.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<StateFile> {
        for (file, f) in FILES.iter().zip(&mut self.files) {
            let due = f.dirty && !f.failed && f.last.is_none_or(|l| now >= l + SAVE_GAP);
            if due {
                f.dirty = false;
                f.last = Some(now);
                return Some(*file);
            }
        }
        None
    }

    /// The last write of each changed file before the loop stops, whatever
    /// the gap or a failure; each is handed out once.
    pub(super) fn take_final(&mut self, now: Instant) -> Option<StateFile> {
        for (file, f) in FILES.iter().zip(&mut self.files) {
            if f.dirty && !f.final_done {
                f.dirty = false;
                f.final_done = true;
                f.last = Some(now);
                return Some(*file);
            }
        }
        None
    }

    /// When the next write falls due, if one waits for its gap.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.files
            .iter()
            .filter(|f| f.dirty && !f.failed)
            .filter_map(|f| f.last.map(|l| l + SAVE_GAP))
            .min()
    }
}
