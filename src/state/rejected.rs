//! `rejected.jsonl`: the events a sink refused for good, one line and an
//! fsync each, rotated at [`REJECTED_LIMIT`] keeping one older file whose
//! dropped lines are counted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::event::HealthEvent;

use super::StateDir;
use super::atomic::{StateError, at, sync_dir};

/// The file of events set aside.
pub(crate) const REJECTED: &str = "rejected.jsonl";
/// The older file `rejected.jsonl` is rotated to.
pub(super) const REJECTED_OLD: &str = "rejected.jsonl.1";

/// The size past which `rejected.jsonl` is rotated: at a line of some 420
/// bytes per refused event, 25,000 events; a receiver refusing all events of
/// 100 games every second fills it in about four minutes.
pub(crate) const REJECTED_LIMIT: u64 = 10 << 20;

/// How many bytes of lines a start sets aside from the spool in one write:
/// what it holds in memory for them, and the most a write can take
/// `rejected.jsonl` past [`REJECTED_LIMIT`] (it is rotated before a write,
/// not during one).
pub(super) const ASIDE_BATCH: usize = 1 << 20;

/// Where events were set aside.
#[derive(Debug)]
pub(crate) struct SetAside {
    /// `rejected.jsonl`.
    pub path: PathBuf,
    /// Lines of the older `rejected.jsonl.1` dropped to make room: events set
    /// aside earlier that are now lost.
    pub dropped: u64,
}

/// One line of `rejected.jsonl`:
/// `{"rejected_at":…,"sink":…,"reason":…,"envelope":…}`, the envelope as a
/// string when it is not JSON.
pub(super) fn rejected_line(sink: &str, envelope: &str, reason: &str) -> String {
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

impl StateDir {
    /// Appends refused events of the sink `sink`, all for `reason`, to
    /// `rejected.jsonl`, a line each
    /// (`{"rejected_at":…,"sink":…,"reason":…,"envelope":…}`), in one write
    /// and one fsync, rotating the file first when they would take it past
    /// [`REJECTED_LIMIT`].
    pub(crate) fn append_rejected_events(
        &self,
        sink: &str,
        events: &[HealthEvent],
        reason: &str,
    ) -> Result<SetAside, StateError> {
        let lines: Vec<String> = events
            .iter()
            .map(|e| rejected_line(sink, e.envelope().as_str(), reason))
            .collect();
        self.append_rejected_lines(&lines)
    }

    /// Appends lines made by [`rejected_line`] to `rejected.jsonl`, in one
    /// write and one fsync, after rotating it when they would take it past
    /// [`REJECTED_LIMIT`].
    pub(super) fn append_rejected_lines(&self, lines: &[String]) -> Result<SetAside, StateError> {
        let _only_writer = self.rejected_writer();
        let path = self.path().join(REJECTED);
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
    pub(super) fn rotate_rejected(&self) -> Result<u64, StateError> {
        let old = self.path().join(REJECTED_OLD);
        let dropped = match File::open(&old) {
            Ok(f) => count_lines(io::BufReader::new(f)).map_err(at(&old))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(at(&old)(e)),
        };
        fs::rename(self.path().join(REJECTED), &old).map_err(at(&old))?;
        sync_dir(self.path())?;
        Ok(dropped)
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
