//! The state directory's ground floor, shared by `state.rs` and the files
//! it holds (`spool`, `rejected`, `silences`, `history`) so that none lives off
//! another's privates: a failure named by its path, a file replaced
//! atomically, and a lock file opened for `flock`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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

/// The [`StateError`] of an I/O failure on `path`.
pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating it, mode 0640) the lock file at `path` for reading and
/// writing, without truncating what its holder wrote; the caller `flock`s it.
pub(crate) fn open_lock_file(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(path)
        .map_err(at(path))
}

/// Writes `bytes` to `dir/name` atomically: a temporary file of a name
/// unique to the process and `unique`, `prepare`d (its owner set, say),
/// written, fsynced, renamed over `name`, and the directory fsynced.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    unique: u64,
    prepare: impl FnOnce(&File) -> io::Result<()>,
) -> Result<(), StateError> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&temp)
        .map_err(at(&temp))?;
    if let Err(e) = prepare(&f)
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all())
    {
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
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
