//! `silences.json`: label mode's silences, in the state directory, as
//! `{"version":1,"silences":[…]}` with one member per silence row (the
//! columns of PostgreSQL's `runtime_silences`, times in RFC 3339).
//!
//! Two kinds of process use it at once: the daemon, which holds the state
//! directory's lock and reads the file each tick, and `rtinspect silence`,
//! run by a deploy script while the daemon runs, which must not take that
//! lock. Every change is therefore a read-modify-write under a lock of its
//! own, an exclusive `flock` on `silences.lock`, so that two scripts adding
//! silences at once both keep theirs; the file is replaced atomically
//! (temporary file, fsync, rename), so the daemon reads it without a lock
//! and finds the old or the new set, never half of one.
//!
//! Run as root (a deploy script often is), the files it makes are given to
//! the directory's owner, so that the daemon's user can read and replace
//! them. Every read is bounded: a file past [`MAX_FILE_BYTES`], or that is
//! not a regular file (a FIFO would block a read for ever), does not parse.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::atomic::{StateError, at, open_lock_file, write_atomic};
use super::peek::{Unread, read_regular};
use crate::silence::{self, MAX_SILENCES, Silence};

/// The file of silences.
pub(crate) const SILENCES: &str = "silences.json";

/// The lock every change of [`SILENCES`] is made under.
const SILENCES_LOCK: &str = "silences.lock";

/// The version of `silences.json` this build writes and reads.
const VERSION: u32 = 1;

/// The largest `silences.json` read or written: 10,000 silences with long
/// comments fit; what does not is no file `silence add` made.
pub(crate) const MAX_FILE_BYTES: u64 = 4 << 20;

/// How long a silence that ended stays in the file, so that `silence end`
/// of one that ran out meanwhile says so rather than "no such silence".
pub(crate) const KEEP_ENDED: Duration = Duration::from_secs(86_400);

/// How long a change waits for another's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct SilencesFile {
    version: u32,
    silences: Vec<SavedSilence>,
}

/// One silence as the file holds it: a row of `runtime_silences`.
#[derive(Serialize, Deserialize)]
struct SavedSilence {
    silence_id: String,
    game_id: Option<String>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

/// Why the silences cannot be read or changed.
#[derive(Debug)]
pub(crate) enum SilencesError {
    /// The file or the directory could not be read or written.
    Io(StateError),
    /// The file is there but is no set of silences (its path, and why).
    Bad(PathBuf, String),
    /// Another change held the lock for [`LOCK_WAIT`].
    Busy(PathBuf),
    /// The change would take the file past a bound (its path, and which).
    Full(PathBuf, String),
}

impl std::fmt::Display for SilencesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SilencesError::Io(e) => e.fmt(f),
            SilencesError::Bad(path, why) => write!(f, "{} does not parse: {why}", path.display()),
            SilencesError::Full(path, why) => write!(f, "{}: {why}", path.display()),
            SilencesError::Busy(path) => write!(
                f,
                "{} is held by another process for {} s: a silence command that hangs?",
                path.display(),
                LOCK_WAIT.as_secs()
            ),
        }
    }
}

impl std::error::Error for SilencesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SilencesError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StateError> for SilencesError {
    fn from(e: StateError) -> Self {
        SilencesError::Io(e)
    }
}

/// What identifies one version of the file: a replaced file is a new inode,
/// an edit in place changes its size or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The silences of `dir/silences.json` with the stamp of the version read;
/// none when there is no file.
pub(crate) fn read(dir: &Path) -> Result<(Vec<Silence>, Option<FileStamp>), SilencesError> {
    let path = dir.join(SILENCES);
    let (bytes, meta) = match read_regular(&path, MAX_FILE_BYTES) {
        Ok(Some(read)) => read,
        Ok(None) => return Ok((Vec::new(), None)),
        Err(Unread::Io(e)) => return Err(at(&path)(e).into()),
        Err(Unread::NotRegular) => {
            return Err(SilencesError::Bad(path, "not a regular file".into()));
        }
        Err(Unread::TooLarge(limit)) => {
            return Err(SilencesError::Bad(
                path,
                format!("larger than {} MiB", limit >> 20),
            ));
        }
    };
    let silences = parse(&bytes).map_err(|why| SilencesError::Bad(path, why))?;
    Ok((silences, Some(FileStamp::of(&meta))))
}

/// The stamp of `dir/silences.json` as it is now (`None`: no file), to
/// tell whether it changed since it was read, without reading it.
pub(crate) fn stamp(dir: &Path) -> Result<Option<FileStamp>, StateError> {
    let path = dir.join(SILENCES);
    match std::fs::metadata(&path) {
        Ok(meta) => Ok(Some(FileStamp::of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(&path)(e)),
    }
}

/// The silences of the bytes of a file; why not, in words.
fn parse(bytes: &[u8]) -> Result<Vec<Silence>, String> {
    let file: SilencesFile =
        serde_json::from_slice(bytes).map_err(|e| super::peek::json_failure(&e))?;
    if file.version != VERSION {
        return Err(format!("unknown version {}", file.version));
    }
    if file.silences.len() > MAX_SILENCES {
        return Err(format!(
            "{} silences, more than {MAX_SILENCES}",
            file.silences.len()
        ));
    }
    file.silences
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let time = |name: &str, text: &str| {
                crate::text::parse_rfc3339(text)
                    .ok_or_else(|| format!("silence {i}: {name} {text:?} is no RFC 3339 time"))
            };
            let id = silence::parse_id(&s.silence_id)
                .ok_or_else(|| format!("silence {i}: silence_id {:?} is no UUID", s.silence_id))?;
            Ok(Silence {
                id,
                game_id: s.game_id,
                starts_at: time("starts_at", &s.starts_at)?,
                ends_at: time("ends_at", &s.ends_at)?,
                created_by: s.created_by,
                comment: s.comment,
            })
        })
        .collect()
}

fn render(silences: &[Silence]) -> Vec<u8> {
    let file = SilencesFile {
        version: VERSION,
        silences: silences
            .iter()
            .map(|s| SavedSilence {
                silence_id: s.id.clone(),
                game_id: s.game_id.clone(),
                starts_at: silence::rfc3339(s.starts_at),
                ends_at: silence::rfc3339(s.ends_at),
                created_by: s.created_by.clone(),
                comment: s.comment.clone(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("silences always serialise");
    bytes.push(b'\n');
    bytes
}

/// Changes the silences of `dir` with `change`, under the lock, at `now`:
/// reads them (a file that does not parse is an error: it is not replaced,
/// so nothing anyone set is lost), lets `change` edit them, drops those
/// ended [`KEEP_ENDED`] ago, and writes them back when `change` says it
/// changed something. `dir` must exist: a missing one is a mistyped path,
/// not one to create.
pub(crate) fn change<T>(
    dir: &Path,
    now: SystemTime,
    change: impl FnOnce(&mut Vec<Silence>) -> Result<(T, bool), SilencesError>,
) -> Result<T, SilencesError> {
    let owner = owner_of(dir)?;
    let _lock = lock(dir, owner)?;
    let (mut silences, _) = read(dir)?;
    let (value, changed) = change(&mut silences)?;
    if changed {
        silences.retain(|s| {
            s.ends_at
                .checked_add(KEEP_ENDED)
                .is_none_or(|kept_until| kept_until > now)
        });
        make_room(&mut silences, now);
        if silences.len() > MAX_SILENCES {
            return Err(SilencesError::Full(
                dir.join(SILENCES),
                format!(
                    "{} silences in force or to come, and at most {MAX_SILENCES} are kept: \
                     end some",
                    silences.len()
                ),
            ));
        }
        let bytes = render(&silences);
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(SilencesError::Full(
                dir.join(SILENCES),
                format!(
                    "the change would take it past {} MiB: end some silences",
                    MAX_FILE_BYTES >> 20
                ),
            ));
        }
        // One process writes under the lock at a time: the pid makes the
        // temporary file's name unique.
        write_atomic(dir, SILENCES, &bytes, 0, |f| give(f, owner))?;
    }
    Ok(value)
}

/// Past [`MAX_SILENCES`], the silences that have ended (kept a day to be
/// listed) go, the longest ended first, until the rest fit: a file the
/// daemon refuses to read would keep every silence added after it unseen.
fn make_room(silences: &mut Vec<Silence>, now: SystemTime) {
    let Some(excess) = silences.len().checked_sub(MAX_SILENCES).filter(|n| *n > 0) else {
        return;
    };
    let mut ended: Vec<SystemTime> = silences
        .iter()
        .filter(|s| s.has_ended(now))
        .map(|s| s.ends_at)
        .collect();
    ended.sort_unstable();
    if let Some(&last_to_go) = ended.get(excess - 1).or(ended.last()) {
        silences.retain(|s| !(s.has_ended(now) && s.ends_at <= last_to_go));
    }
}

/// Who a file made in `dir` should belong to when made as root: the
/// directory's owner, so that the daemon's user can read it (and replace it
/// at the next change); `None` when not root, or the directory is root's.
fn owner_of(dir: &Path) -> Result<Option<(u32, u32)>, StateError> {
    let meta = std::fs::metadata(dir).map_err(at(dir))?;
    if !meta.is_dir() {
        return Err(at(dir)(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    let root = rustix::process::geteuid().is_root();
    Ok((root && (meta.uid(), meta.gid()) != (0, 0)).then_some((meta.uid(), meta.gid())))
}

/// Gives `file` to `owner`, when there is one: only a regular file of one
/// link, so that a hard link the directory's owner made to a file of
/// root's is never given to them (the opens follow no symlink).
fn give(file: &File, owner: Option<(u32, u32)>) -> io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(io::Error::other(
            "not a regular file of one link: not given to the directory's owner",
        ));
    }
    rustix::fs::fchown(
        file,
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    )
    .map_err(io::Error::from)
}

/// Takes the exclusive lock on `silences.lock`, waiting at most
/// [`LOCK_WAIT`] for another change to end. The lock goes with the file.
fn lock(dir: &Path, owner: Option<(u32, u32)>) -> Result<File, SilencesError> {
    let path = dir.join(SILENCES_LOCK);
    let file = open_lock_file(&path)?;
    give(&file, owner).map_err(at(&path))?;
    let started = Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(SilencesError::Busy(path));
                }
                // A change holds it for a few milliseconds.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(at(&path)(e.into()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_rfc3339;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rtinspect-silences-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn t(text: &str) -> SystemTime {
        parse_rfc3339(text).unwrap()
    }

    fn one(id: &str, game: Option<&str>, ends: &str) -> Silence {
        Silence {
            id: id.into(),
            game_id: game.map(str::to_owned),
            starts_at: t("2026-11-26T21:00:00Z"),
            ends_at: t(ends),
            created_by: "ci".into(),
            comment: "deploy \"1.2\" ✓".into(),
        }
    }

    const ID: &str = "0193f000-0000-7000-8000-000000000001";

    #[test]
    fn a_change_is_read_back_and_ended_ones_go_after_a_day() {
        let dir = temp_dir("roundtrip");
        assert_eq!(read(&dir).unwrap().0, Vec::new());
        let now = t("2026-11-26T21:00:00Z");
        let added = vec![
            one(ID, Some("g-1"), "2026-11-26T22:00:00Z"),
            one(ID, None, "2026-11-26T22:00:00.25Z"),
        ];
        change(&dir, now, |s| {
            s.extend(added.clone());
            Ok(((), true))
        })
        .unwrap();
        let (got, stamp) = read(&dir).unwrap();
        assert_eq!(got, added);
        assert!(stamp.is_some());
        assert_eq!(super::stamp(&dir).unwrap(), stamp);
        // A day after they ended, the next change drops them.
        let later = t("2026-11-27T22:00:00.25Z");
        change(&dir, later, |_| Ok(((), true))).unwrap();
        assert_eq!(read(&dir).unwrap().0, Vec::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ended_silences_make_room_for_new_ones_the_longest_ended_first() {
        let dir = temp_dir("room");
        let now = t("2026-11-26T21:00:00Z");
        let ended = |i: usize| Silence {
            ends_at: now - std::time::Duration::from_secs(1 + i as u64),
            ..one(ID, Some("g-old"), "2026-11-26T21:00:00Z")
        };
        let to_come = one(ID, Some("g-new"), "2026-11-26T22:00:00Z");
        change(&dir, now, |s| {
            s.extend((0..5_000).map(ended));
            s.extend(std::iter::repeat_n(to_come.clone(), 5_000));
            Ok(((), true))
        })
        .unwrap();
        // One more: the longest ended goes.
        change(&dir, now, |s| {
            s.push(one(ID, Some("g-one-more"), "2026-11-26T22:00:00Z"));
            Ok(((), true))
        })
        .unwrap();
        let (got, _) = read(&dir).unwrap();
        assert_eq!(got.len(), MAX_SILENCES);
        assert!(
            got.iter()
                .any(|s| s.game_id.as_deref() == Some("g-one-more"))
        );
        assert!(!got.contains(&ended(4_999)), "the longest ended went");
        assert!(got.contains(&ended(0)));
        // With none ended left to go, a change past the bound is refused
        // and the file left as it was.
        let full = change(&dir, now, |s| {
            s.retain(|s| !s.has_ended(now));
            s.extend(std::iter::repeat_n(to_come.clone(), 5_000));
            Ok(((), true))
        });
        assert!(matches!(full, Err(SilencesError::Full(..))), "{full:?}");
        assert_eq!(read(&dir).unwrap().0.len(), MAX_SILENCES);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_file_is_said_and_never_replaced() {
        let dir = temp_dir("bad");
        let path = dir.join(SILENCES);
        let bad: &[(&[u8], &str)] = &[
            (b"garbage", "not JSON at line 1 column 1"),
            (b"\xff\xfe{}", "not JSON at line 1 column 1"),
            // The parser's words would quote the value: not said.
            (
                b"{\"version\":\"hunter2\"}",
                "not the expected fields at line 1",
            ),
            (b"{\"version\":2,\"silences\":[]}", "unknown version 2"),
            (
                b"{\"version\":1,\"silences\":[{\"silence_id\":\"x\",\"game_id\":null,\
                  \"starts_at\":\"2026-11-26T21:00:00Z\",\"ends_at\":\"2026-11-26T21:00:00Z\",\
                  \"created_by\":\"\",\"comment\":\"\"}]}",
                "silence_id \"x\" is no UUID",
            ),
        ];
        for (bytes, want) in bad {
            std::fs::write(&path, bytes).unwrap();
            let got = read(&dir).unwrap_err().to_string();
            assert!(got.contains(want), "{got}");
            assert!(!got.contains("hunter2"), "{got}");
            let refused = change(&dir, t("2026-11-26T21:00:00Z"), |_| Ok(((), true)));
            assert!(refused.is_err());
            assert_eq!(std::fs::read(&path).unwrap(), *bytes, "not replaced");
        }
        // A link in its place, to a file of someone else's, is not followed.
        let other = dir.join("root.json");
        std::fs::write(&other, b"{\"version\":\"hunter2\"}").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&other, &path).unwrap();
        let got = read(&dir).unwrap_err().to_string();
        assert!(
            got.contains("not a regular file") && !got.contains("hunter2"),
            "{got}"
        );
        std::fs::remove_file(&path).unwrap();
        // Past the bound, whatever it holds.
        let big = vec![b' '; (MAX_FILE_BYTES + 1) as usize];
        std::fs::write(&path, &big).unwrap();
        assert!(
            read(&dir)
                .unwrap_err()
                .to_string()
                .contains("larger than 4 MiB")
        );
        // Not a regular file.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(
            read(&dir)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_is_not_there_is_not_made() {
        let dir = temp_dir("missing").join("nope");
        let got = change(&dir, SystemTime::UNIX_EPOCH, |_| Ok(((), true)));
        assert!(got.unwrap_err().to_string().contains("nope"));
        assert!(!dir.exists());
    }
}
