//! `history.jsonl`: every incident event, its envelope one line each (what
//! was seen included: the evidence of last night), for `rtinspect history`
//! in label mode. The daemon appends; `history` reads without the
//! lock, while the daemon runs.
//!
//! Bounded: before a line would take the file past [`HISTORY_LIMIT`] it is
//! renamed `history.jsonl.1`, replacing the older one, so the two take at
//! most 2 MiB. Each line is one `write` to a file opened for appending, and
//! the file is fsynced at the tick's save of the incidents, not at every
//! line: a crash may lose the last lines, never the incidents themselves
//! (`incidents.json`) nor any event (the sinks).
//!
//! A reader opens `history.jsonl` before `history.jsonl.1`, then checks
//! that the first still has its name: when a rotation came between the two
//! opens, both are opened again; a rotation after both opens leaves each
//! open file whole, and in order. A last line
//! without its newline (a write under way) is left for the next read; a
//! line that is not UTF-8, or is longer than any the daemon writes, is
//! skipped and counted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::StateError;
use super::atomic::{at, sync_dir};
use super::peek::PeekError;

/// The file appended to.
pub(crate) const HISTORY: &str = "history.jsonl";
/// The file before, kept once.
pub(crate) const HISTORY_OLD: &str = "history.jsonl.1";
/// Past this, the file is rotated.
pub(crate) const HISTORY_LIMIT: u64 = 1024 * 1024;
/// The longest line: an incident event's envelope is at most 7,900 bytes.
pub(crate) const LINE_LIMIT: usize = 16 * 1024;
/// The most of one file a reader takes: its end, should something other
/// than rtinspect have made it larger than rtinspect lets it grow.
const READ_LIMIT: u64 = 4 * HISTORY_LIMIT;

/// The daemon's end: appends lines, rotates, syncs.
#[derive(Debug)]
pub(crate) struct HistoryLog {
    dir: PathBuf,
    /// The open file and its size, opened at the first line.
    file: Option<(File, u64)>,
    /// Lines written since the last fsync.
    unsynced: bool,
    /// A line failed to be written since the last fsync.
    failed: bool,
}

impl HistoryLog {
    /// The history of the state directory `dir`.
    pub(crate) fn new(dir: &Path) -> HistoryLog {
        HistoryLog {
            dir: dir.to_owned(),
            file: None,
            unsynced: false,
            failed: false,
        }
    }

    /// Appends `line` (without its newline); a line over [`LINE_LIMIT`] is
    /// not written.
    pub(crate) fn append(&mut self, line: &str) -> Result<(), StateError> {
        let written = self.write_line(line);
        self.failed |= written.is_err();
        written
    }

    fn write_line(&mut self, line: &str) -> Result<(), StateError> {
        let path = self.dir.join(HISTORY);
        if line.len() >= LINE_LIMIT {
            return Err(at(&path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a history line of {} bytes is not written", line.len()),
            )));
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let (mut file, size) = match self.file.take() {
            Some(open) => open,
            None => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .open(&path)
                    .map_err(at(&path))?;
                let size = file.metadata().map_err(at(&path))?.len();
                (file, size)
            }
        };
        if size > 0 && size + bytes.len() as u64 > HISTORY_LIMIT {
            self.file = Some((file, size));
            self.rotate()?;
            // The new file is empty: this line goes in whatever its size.
            return self.write_line(line);
        }
        // One write of the whole line: a reader sees all of it or none.
        match file.write_all(&bytes) {
            Ok(()) => {
                self.file = Some((file, size + bytes.len() as u64));
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                // A full disk may have taken the line's start: cut it off,
                // or the next line would be glued to it. A file that cannot
                // be cut is reopened (and measured) at the next line.
                if file.set_len(size).is_ok() {
                    self.file = Some((file, size));
                }
                Err(at(&path)(e))
            }
        }
    }

    /// Makes what was appended durable: `Ok(true)` when lines were, every
    /// one since the last sync written; `Ok(false)` when there were none,
    /// or one failed (its error was the append's), so that a sync never
    /// passes for a disk that takes lines again.
    pub(crate) fn sync(&mut self) -> Result<bool, StateError> {
        let failed = std::mem::take(&mut self.failed);
        if !std::mem::take(&mut self.unsynced) {
            return Ok(false);
        }
        if let Some((file, _)) = &self.file {
            file.sync_data().map_err(at(&self.dir.join(HISTORY)))?;
        }
        Ok(!failed)
    }

    /// `history.jsonl` becomes `history.jsonl.1`, replacing the older;
    /// the next line starts a new file.
    fn rotate(&mut self) -> Result<(), StateError> {
        let path = self.dir.join(HISTORY);
        if let Some((file, _)) = self.file.take() {
            file.sync_data().map_err(at(&path))?;
        }
        fs::rename(&path, self.dir.join(HISTORY_OLD)).map_err(at(&path))?;
        self.unsynced = false;
        sync_dir(&self.dir)
    }
}

/// What a reader found: the lines, oldest first, and how many it skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HistoryLines {
    /// Whole lines, the older file's first.
    pub(crate) lines: Vec<String>,
    /// Lines that are not UTF-8 or are too long.
    pub(crate) skipped: usize,
    /// Bytes at the start of a file over [`READ_LIMIT`] that were not read.
    pub(crate) unread_bytes: u64,
}

/// Reads both files of the history in `dir` without the lock; none when
/// there are none.
pub(crate) fn read_history(dir: &Path) -> Result<HistoryLines, PeekError> {
    let (old, current) = open_both(dir)?;
    let mut found = HistoryLines::default();
    let files = [(old, HISTORY_OLD), (current, HISTORY)];
    for (file, name) in files {
        if let Some((file, meta)) = file {
            read_lines(file, meta.len(), &mut found).map_err(|e| PeekError {
                path: dir.join(name),
                why: e.to_string(),
            })?;
        }
    }
    Ok(found)
}

/// An open file and what it was when opened.
type Opened = Option<(File, fs::Metadata)>;

/// The old file and the current one as one moment had them, the current
/// opened first: when its name no longer names the file first opened, a
/// rotation came between the two opens (the old name may now hold that
/// file, or a newer one), and both are opened again, a few times at most;
/// then the current file is read alone.
fn open_both(dir: &Path) -> Result<(Opened, Opened), PeekError> {
    let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    for _ in 0..4 {
        let current = open(&dir.join(HISTORY))?;
        let old = open(&dir.join(HISTORY_OLD))?;
        let now = fs::metadata(dir.join(HISTORY)).ok();
        let steady = match (&current, &now) {
            (Some((_, first)), Some(now)) => same(first, now),
            (None, None) => true,
            _ => false,
        };
        if steady {
            // The old file cannot be the current one when no rotation came.
            return Ok((old, current));
        }
    }
    Ok((None, open(&dir.join(HISTORY))?))
}

fn open(path: &Path) -> Result<Option<(File, fs::Metadata)>, PeekError> {
    super::peek::open_regular(path).map_err(|e| PeekError {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The whole lines of `file` (its last [`READ_LIMIT`] bytes at most).
fn read_lines(mut file: File, len: u64, found: &mut HistoryLines) -> io::Result<()> {
    let cut = len > READ_LIMIT;
    if cut {
        file.seek(SeekFrom::Start(len - READ_LIMIT))?;
        found.unread_bytes += len - READ_LIMIT;
    }
    let mut bytes = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut bytes)?;
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // The piece after the last newline is a line still being written.
    pieces.pop();
    for (i, piece) in pieces.into_iter().enumerate() {
        // A cut file's first piece is the end of a line.
        if cut && i == 0 {
            continue;
        }
        match std::str::from_utf8(piece) {
            Ok(line) if line.len() < LINE_LIMIT => {
                if !line.trim().is_empty() {
                    found.lines.push(line.to_owned());
                }
            }
            _ => found.skipped += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("rtinspect-history-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn line(n: usize) -> String {
        format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(1000))
    }

    /// The `n` of each line [`line`] made.
    fn numbers(lines: &[String]) -> Vec<u64> {
        lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn lines_rotate_at_the_limit_and_two_files_read_back_in_order() {
        let dir = temp_dir("rotate");
        let mut log = HistoryLog::new(&dir);
        for n in 0..3000 {
            log.append(&line(n)).unwrap();
        }
        log.sync().unwrap();
        let cur = fs::metadata(dir.join(HISTORY)).unwrap().len();
        let old = fs::metadata(dir.join(HISTORY_OLD)).unwrap().len();
        assert!(cur <= HISTORY_LIMIT && old <= HISTORY_LIMIT, "{cur} {old}");
        let read = read_history(&dir).unwrap();
        assert_eq!(read.skipped, 0);
        let ns = numbers(&read.lines);
        // The newest lines, in order, with no gap: about 2 MiB of them.
        assert_eq!(*ns.last().unwrap(), 2999);
        assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gap");
        assert!(ns.len() > 1900, "{}", ns.len());
        // A new log (a restarted daemon) goes on from the file's size.
        let mut again = HistoryLog::new(&dir);
        again.append(&line(3000)).unwrap();
        let read = read_history(&dir).unwrap();
        assert_eq!(read.lines.last().unwrap(), &line(3000));
    }

    #[test]
    fn a_half_written_line_waits_and_bad_lines_are_skipped_and_counted() {
        let dir = temp_dir("bad");
        let mut bytes = b"{\"a\":1}\n\xff\xfe not utf-8\n".to_vec();
        bytes.extend_from_slice(&vec![b'x'; LINE_LIMIT + 1]);
        bytes.extend_from_slice(b"\n\n{\"b\":2}\n{\"c\":");
        fs::write(dir.join(HISTORY), &bytes).unwrap();
        let read = read_history(&dir).unwrap();
        assert_eq!(read.lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(read.skipped, 2);
        assert_eq!(
            read_history(&temp_dir("none")).unwrap(),
            HistoryLines::default()
        );
    }

    #[test]
    fn the_start_of_a_file_past_the_bound_is_said_unread() {
        // Events, then a line of 10 MB: the events are before the last
        // 4 MiB, and what was not read is said, not left as a quiet night.
        let dir = temp_dir("cut");
        let mut bytes = b"{\"a\":1}\n".repeat(2_000);
        bytes.extend_from_slice(&vec![b'x'; 10 << 20]);
        bytes.extend_from_slice(b"\n{\"b\":2}\n");
        fs::write(dir.join(HISTORY), &bytes).unwrap();
        let read = read_history(&dir).unwrap();
        assert_eq!(read.lines, ["{\"b\":2}"]);
        assert_eq!(read.unread_bytes, bytes.len() as u64 - READ_LIMIT);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotation_between_the_two_opens_reads_the_files_again() {
        let dir = temp_dir("race");
        fs::write(dir.join(HISTORY_OLD), "{\"n\":1}\n").unwrap();
        fs::write(dir.join(HISTORY), "{\"n\":2}\n").unwrap();
        let current = File::open(dir.join(HISTORY)).unwrap().metadata().unwrap();
        // A rotation: the current file is the old one now, and a new one
        // is begun.
        fs::rename(dir.join(HISTORY), dir.join(HISTORY_OLD)).unwrap();
        fs::write(dir.join(HISTORY), "{\"n\":3}\n").unwrap();
        let now = fs::metadata(dir.join(HISTORY)).unwrap();
        assert!(current.ino() != now.ino(), "what open_both tells");
        let read = read_history(&dir).unwrap();
        assert_eq!(read.lines, ["{\"n\":2}", "{\"n\":3}"]);
    }

    #[test]
    fn reads_while_lines_are_appended_and_rotated_never_see_a_line_twice_cut_or_out_of_order() {
        let dir = temp_dir("live");
        let writer_dir = dir.clone();
        let writer = std::thread::spawn(move || {
            let mut log = HistoryLog::new(&writer_dir);
            for n in 0..12_000 {
                log.append(&line(n)).unwrap();
            }
        });
        let mut reads = 0;
        let mut rotations_seen = 0;
        let mut last_first = None;
        while !writer.is_finished() || reads == 0 {
            let read = read_history(&dir).unwrap();
            assert_eq!(read.skipped, 0, "no cut line");
            let ns = numbers(&read.lines);
            assert!(
                ns.windows(2).all(|w| w[1] == w[0] + 1),
                "in order, once each, no gap"
            );
            if ns.first() != last_first.as_ref() {
                rotations_seen += 1;
                last_first = ns.first().copied();
            }
            reads += 1;
        }
        writer.join().unwrap();
        assert!(
            rotations_seen > 1,
            "the reads saw rotations: {rotations_seen} in {reads}"
        );
    }

    #[test]
    fn a_file_grown_past_the_read_limit_is_read_from_its_end() {
        let dir = temp_dir("huge");
        let mut f = File::create(dir.join(HISTORY)).unwrap();
        let filler = format!("{}\n", "y".repeat(999));
        for _ in 0..5000 {
            f.write_all(filler.as_bytes()).unwrap();
        }
        f.write_all(b"{\"last\":true}\n").unwrap();
        let read = read_history(&dir).unwrap();
        assert_eq!(read.lines.last().unwrap(), "{\"last\":true}");
        assert!(read.lines.len() < 4300, "{}", read.lines.len());
    }
}
