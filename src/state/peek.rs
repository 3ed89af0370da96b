//! Reading the state directory without its lock, while the daemon runs: the
//! saved incidents, for `status`. Nothing is written, moved aside or
//! locked. Every file the daemon saves is written atomically (a temporary
//! file renamed over it), so a reader finds the old or the new one whole.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
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

/// The incidents saved in `dir`; `None` when none were ever saved.
pub(crate) fn read_incidents(dir: &Path) -> Result<Option<SavedIncidents>, PeekError> {
    let path = dir.join(INCIDENTS);
    let fail = |why: String| PeekError {
        path: path.clone(),
        why,
    };
    let Some((file, meta)) = open_regular(&path).map_err(|e| fail(e.to_string()))? else {
        return Ok(None);
    };
    // Its size first: a file past the limit is refused unread; `take`
    // bounds one that grows meanwhile.
    let size = meta.len();
    let mut bytes = Vec::new();
    if size <= INCIDENTS_READ_LIMIT {
        file.take(INCIDENTS_READ_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
    }
    if size > INCIDENTS_READ_LIMIT || bytes.len() as u64 > INCIDENTS_READ_LIMIT {
        return Err(fail(format!(
            "larger than {} MiB; not read",
            INCIDENTS_READ_LIMIT >> 20
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
    super::parse_incidents(&text)
        .map(Some)
        .map_err(|why| fail(format!("cannot be read: {why}")))
}

/// Opens `path` for reading without blocking (a FIFO put in its place
/// would wait for a writer for ever) and only if it is a regular file (not
/// `/dev/zero` behind a link); `None` when there is none.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<Option<(File, Metadata)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; not read",
        ));
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
        state.save_incidents(&SavedIncidents::default()).unwrap();
        // The lock is held: the read does not need it.
        assert_eq!(
            read_incidents(&dir).unwrap(),
            Some(SavedIncidents::default())
        );
        for (content, why) in [
            (&b"{\"version\":1,"[..], "cannot be read: EOF"),
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
