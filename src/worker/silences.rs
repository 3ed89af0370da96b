//! The silences, read at every tick for the schedule's hold: label mode's
//! `silences.json` (looked at, and read only when it changed), or the
//! PostgreSQL table through the record source's connection.
//!
//! A read that fails never stops the daemon watching. A `silences.json`
//! that does not parse (garbage, not UTF-8, past 4 MiB, not a regular file)
//! is said in a warning, and the last good set stays in force, so that a
//! file broken in the middle of a maintenance neither pages everyone nor
//! silences anything longer than its silences said; at a start there is no
//! good set, and so no silence. A database that cannot be read keeps the
//! last set too; a schema without the table (older than this version)
//! means no silences, with a warning to run `migrate`. Each warning comes
//! at most once a minute.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::logging::{WarnLimiter, held_back};
use crate::records::{RecordSource, SilencesReadError};
use crate::silence::{Silence, Silences};
use crate::state::silences::{self as file, FileStamp, SilencesError};

/// Where the silences are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SilencesFrom {
    /// Label mode: `silences.json` in this state directory.
    File(PathBuf),
    /// PostgreSQL mode: the record source reads them with the records.
    RecordSource,
}

/// The silences' reader, with the last good set.
#[derive(Debug)]
pub(crate) struct SilenceReader {
    from: SilencesFrom,
    /// The file's version last looked at (`Some(None)`: there was none).
    stamp: Option<Option<FileStamp>>,
    /// The last set read whole.
    last: Option<Vec<Silence>>,
    warnings: WarnLimiter,
}

impl SilenceReader {
    /// A reader of the silences `from` there.
    pub(crate) fn new(from: SilencesFrom) -> SilenceReader {
        SilenceReader {
            from,
            stamp: None,
            last: None,
            warnings: WarnLimiter::new(Duration::from_secs(60)),
        }
    }

    /// The silences at `now`, when they differ from the last set handed
    /// out; `None` when they did not change, or could not be read.
    pub(crate) fn read(
        &mut self,
        source: &mut dyn RecordSource,
        now: SystemTime,
    ) -> Option<Silences> {
        let read =
            match &self.from {
                SilencesFrom::File(dir) => self.read_file(&dir.clone()),
                SilencesFrom::RecordSource => match source.silences()? {
                    Ok(rows) => Some(rows),
                    Err(SilencesReadError::Missing(why)) => {
                        self.warn("missing", &format!(
                        "no silences: their table is not there ({why}); run `rtinspect migrate`"
                    ));
                        Some(Vec::new())
                    }
                    Err(SilencesReadError::Failed(why)) => {
                        self.warn("failed", &format!(
                        "the silences cannot be read ({why}); the last ones read stay in force"
                    ));
                        None
                    }
                },
            }?;
        if self.warnings.clear("failed") | self.warnings.clear("bad") {
            log::info!("the silences can be read again");
        }
        if self.last.as_ref() == Some(&read) {
            return None;
        }
        let silences = Silences::new(&read, now);
        if self.last.is_some() || !read.is_empty() {
            // Silences, not rows: one silence has a row per game it names.
            let count = |keep: &dyn Fn(&Silence) -> bool| {
                read.iter()
                    .filter(|s| keep(s))
                    .map(|s| s.id.as_str())
                    .collect::<HashSet<_>>()
                    .len()
            };
            log::info!(
                "silences read: {} not over, {} in force now",
                count(&|s| !s.has_ended(now)),
                count(&|s| s.is_on(now))
            );
        }
        self.last = Some(read);
        Some(silences)
    }

    /// `silences.json`, when it changed since it was last looked at.
    fn read_file(&mut self, dir: &std::path::Path) -> Option<Vec<Silence>> {
        let stamp = match file::stamp(dir) {
            Ok(stamp) => stamp,
            Err(e) => {
                self.warn(
                    "failed",
                    &format!("cannot look at the silences ({e}); the last ones read stay in force"),
                );
                return None;
            }
        };
        if self.stamp == Some(stamp) {
            return None;
        }
        match file::read(dir) {
            Ok((rows, stamp)) => {
                self.stamp = Some(stamp);
                Some(rows)
            }
            Err(e) => {
                // Said once per version of the file (and a minute apart).
                self.stamp = Some(stamp);
                let kept = match e {
                    SilencesError::Bad(..) => "the last good ones stay in force",
                    _ => "the last ones read stay in force",
                };
                self.warn("bad", &format!("{e}; {kept}"));
                None
            }
        }
    }

    fn warn(&mut self, cause: &str, what: &str) {
        if let Some(held) = self.warnings.allow(cause, Instant::now()) {
            log::warn!("{what}{}", held_back(held));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeRecords;

    #[test]
    fn a_file_that_goes_bad_keeps_the_last_good_set() {
        let dir = std::env::temp_dir().join(format!("rtinspect-reader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut records = FakeRecords::new(Vec::new());
        let mut reader = SilenceReader::new(SilencesFrom::File(dir.clone()));
        let now = SystemTime::now();
        // No file: no silences, said once.
        assert_eq!(reader.read(&mut records, now), Some(Silences::default()));
        assert_eq!(reader.read(&mut records, now), None);
        let silence = Silence {
            id: crate::silence::new_id(now),
            game_id: Some("g".into()),
            starts_at: now,
            ends_at: now + Duration::from_secs(600),
            created_by: "t".into(),
            comment: String::new(),
        };
        file::change(&dir, now, |list| {
            list.push(silence.clone());
            Ok(((), true))
        })
        .unwrap();
        let got = reader.read(&mut records, now).expect("changed");
        assert!(got.covers("g", now));
        // Garbage (a different size, so a different version): kept.
        std::fs::write(dir.join(file::SILENCES), b"\xff garbage").unwrap();
        assert_eq!(reader.read(&mut records, now), None);
        assert_eq!(reader.read(&mut records, now), None);
        // Removed: no silences.
        std::fs::remove_file(dir.join(file::SILENCES)).unwrap();
        let got = reader.read(&mut records, now).expect("changed");
        assert!(!got.covers("g", now));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
