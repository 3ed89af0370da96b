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
pub(crate) struct StateError {
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

/// `O_NOFOLLOW`: the state directory belongs to the service's user, and a
/// command run as root (`rtinspect silence add` from a deploy script) must
/// not open, write or give away a file that user's symlink points at.
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Opens (creating it, mode 0640) the lock file at `path` for reading and
/// writing, without truncating what its holder wrote; the caller `flock`s it.
/// A symlink in its place is refused, not followed.
pub(crate) fn open_lock_file(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .custom_flags(no_follow())
        .open(path)
        .map_err(at(path))
}

/// Creates the temporary file `temp` afresh (`O_EXCL`, which follows no
/// symlink): a file or link left in its place, by a crash of an earlier
/// process of the same pid or by someone else, is removed (the link
/// itself, never what it points at) and the creation tried once more.
fn create_temp(temp: &Path) -> io::Result<File> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(no_follow())
            .open(temp)
    };
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(temp)?;
            create()
        }
        other => other,
    }
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
    let mut f = create_temp(&temp).map_err(at(&temp))?;
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
    sync_dir(dir)
}

/// Makes a rename in `dir` durable: it is only once the directory is synced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rtinspect-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused_not_followed() {
        let dir = scratch("lock");
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        symlink(&victim, dir.join("x.lock")).unwrap();
        let e = open_lock_file(&dir.join("x.lock")).unwrap_err();
        assert_eq!(
            e.source.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error()),
            "{e}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_in_place_of_the_temporary_file_is_removed_not_written_through() {
        let dir = scratch("temp");
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let temp = dir.join(format!(".x.json.{}.7.tmp", std::process::id()));
        symlink(&victim, &temp).unwrap();
        let mut prepared = None;
        write_atomic(&dir, "x.json", b"new", 7, |f| {
            prepared = Some(f.metadata()?.file_type().is_file());
            Ok(())
        })
        .unwrap();
        assert_eq!(prepared, Some(true), "prepare was handed the new file");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(dir.join("x.json")).unwrap(), b"new");
        assert!(!temp.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
