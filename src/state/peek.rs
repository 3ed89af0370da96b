//! Reading the state directory without its lock, while the daemon runs: the
//! saved incidents, for `status`, and the bounded, non-blocking open and
//! read every lockless reader of the directory goes through (`history`,
//! `silences`). Nothing is written, moved aside or locked. Every file the
//! daemon saves is written atomically (a temporary file renamed over it),
//! so a reader finds the old or the new one whole.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::INCIDENTS;
use crate::incident::SavedIncidents;

/// The largest `incidents.json` read: about 100,000 games. A bigger one is
/// refused rather than read into memory.
pub(crate) const INCIDENTS_READ_LIMIT: u64 = 64 * 1024 * 1024;

/// Why the saved incidents could not be read.
#[derive(Debug)]
pub(crate) struct PeekError {
    /// The file.
    pub(crate) path: PathBuf,
    /// What is wrong with it.
    pub(crate) why: String,
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.why)
    }
}

impl std::error::Error for PeekError {}

/// Why a file of the directory was not read.
#[derive(Debug)]
pub(crate) enum Unread {
    /// What the system said.
    Io(io::Error),
    /// Not a regular file (a FIFO, a directory, a link to a device).
    NotRegular,
    /// Larger than the limit (bytes) its reader sets.
    TooLarge(u64),
}

impl fmt::Display for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unread::Io(e) => e.fmt(f),
            Unread::NotRegular => f.write_str("not a regular file; not read"),
            Unread::TooLarge(limit) => write!(f, "larger than {} MiB; not read", limit >> 20),
        }
    }
}

/// Where and how a state file's JSON does not parse, without the parser's
/// own words, which quote the file's values: a file a command run as root
/// reads may hold what its reader must not print.
pub(crate) fn json_failure(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "not the expected fields",
        serde_json::error::Category::Eof => "cut short",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// The incidents saved in `dir`; `None` when none were ever saved.
pub(crate) fn read_incidents(dir: &Path) -> Result<Option<SavedIncidents>, PeekError> {
    let path = dir.join(INCIDENTS);
    let fail = |why: String| PeekError {
        path: path.clone(),
        why,
    };
    let Some((bytes, _)) =
        read_regular(&path, INCIDENTS_READ_LIMIT).map_err(|e| fail(e.to_string()))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
    super::parse_incidents(&text)
        .map(|(incidents, _)| Some(incidents))
        .map_err(|why| fail(format!("cannot be read: {why}")))
}

/// The bytes of the regular file at `path` and what it was when opened;
/// `None` when there is none. Its size first: a file past `limit` is
/// refused unread (a sparse gigabyte costs nothing); `take` bounds one
/// that grows meanwhile.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Option<(Vec<u8>, Metadata)>, Unread> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    if meta.len() <= limit {
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(Unread::Io)?;
    }
    if meta.len() > limit || bytes.len() as u64 > limit {
        return Err(Unread::TooLarge(limit));
    }
    Ok(Some((bytes, meta)))
}

/// Opens `path` for reading without blocking (a FIFO put in its place
/// would wait for a writer for ever) and only if it is a regular file, not
/// a link (to `/dev/zero`, or to a file of someone else's); `None` when
/// there is none.
pub(crate) fn open_regular(path: &Path) -> Result<Option<(File, Metadata)>, Unread> {
    // Nor through a symlink: the state directory belongs to the service's
    // user, and `status` or `silence` run as root must not read (and quote
    // in an error) a file of root's that user linked there.
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(Unread::NotRegular);
        }
        Err(e) => return Err(Unread::Io(e)),
    };
    let meta = file.metadata().map_err(Unread::Io)?;
    if !meta.is_file() {
        return Err(Unread::NotRegular);
    }
    Ok(Some((file, meta)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDir;

    /// A directory of this test's own, empty.
    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rtinspect-peek-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_what_the_daemon_saved_without_its_lock_and_moves_nothing() {
        let dir = temp_dir("peek");
        assert!(read_incidents(&dir).unwrap().is_none(), "nothing saved");
        let state = StateDir::open(&dir).unwrap();
        state
            .save_incidents_held(&SavedIncidents::default(), &Default::default())
            .unwrap();
        // The lock is held: the read does not need it.
        assert_eq!(
            read_incidents(&dir).unwrap(),
            Some(SavedIncidents::default())
        );
        for (content, why) in [
            (&b"{\"version\":1,"[..], "cannot be read: cut short"),
            (b"\xff\xfe", "not UTF-8"),
            (b"{\"version\":9,\"incidents\":{}}", "unknown version 9"),
        ] {
            std::fs::write(dir.join(INCIDENTS), content).unwrap();
            let e = read_incidents(&dir).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            // Left where it is for the daemon, which owns it.
            assert_eq!(std::fs::read(dir.join(INCIDENTS)).unwrap(), content);
        }
    }

    #[test]
    fn a_fifo_or_a_device_in_its_place_is_refused_at_once() {
        let dir = temp_dir("peek-fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join(INCIDENTS),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read_incidents(&dir).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file; not read"), "{e}");
        std::fs::remove_file(dir.join(INCIDENTS)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(INCIDENTS)).unwrap();
        let e = read_incidents(&dir).unwrap_err().to_string();
        assert!(e.ends_with("not a regular file; not read"), "{e}");
    }

    #[test]
    fn a_file_past_the_limit_is_refused_unread() {
        let dir = temp_dir("peek-huge");
        let f = std::fs::File::create(dir.join(INCIDENTS)).unwrap();
        // Sparse: no disk is spent on it.
        f.set_len(INCIDENTS_READ_LIMIT + 1).unwrap();
        let e = read_incidents(&dir).unwrap_err().to_string();
        assert!(e.ends_with("larger than 64 MiB; not read"), "{e}");
    }
}
