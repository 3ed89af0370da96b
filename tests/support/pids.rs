//! A pids cgroup standing in for the unit's `TasksMax` (there is no
//! systemd here): a test's daemon joins it before it starts, as a unit's
//! process does, and every thread it spawns counts.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::{bin, live_required, skipped};

/// Cgroups made by this test process so far: each gets a name of its own.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A pids cgroup with a limit, removed on drop (once its process is gone).
pub struct PidsCgroup {
    /// Its directory: a process joins it by writing its pid to
    /// `cgroup.procs` there.
    pub dir: PathBuf,
}

impl PidsCgroup {
    /// A new cgroup limited to `max` tasks, or `None` (with a note, or a
    /// failure when live services are demanded) when there is no pids
    /// controller to use.
    pub fn new(max: usize) -> Option<PidsCgroup> {
        let name = format!(
            "rtinspect-test-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, SeqCst)
        );
        let v1 = PathBuf::from("/sys/fs/cgroup/pids");
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let parent = if v1.join("cgroup.procs").exists() {
            Some(v1)
        } else {
            // cgroup v2: pids must be enabled for the children of the root.
            let controllers =
                std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
            (controllers.split_whitespace().any(|c| c == "pids")
                && std::fs::write(v2.join("cgroup.subtree_control"), "+pids").is_ok())
            .then_some(v2)
        };
        let made = parent.and_then(|parent| {
            let dir = parent.join(name);
            std::fs::create_dir(&dir).ok()?;
            let cgroup = PidsCgroup { dir };
            std::fs::write(cgroup.dir.join("pids.max"), max.to_string()).ok()?;
            Some(cgroup)
        });
        if made.is_none() {
            assert!(
                !live_required(),
                "no pids cgroup controller to use (cgroup v1 /sys/fs/cgroup/pids or v2 with pids)"
            );
            skipped("no pids cgroup controller to use: needs root and cgroups");
        }
        made
    }

    /// The binary as [`bin`] gives it, its environment included, started
    /// inside this cgroup: it joins before it runs, so every thread counts.
    /// Arguments added to it go to the binary.
    pub fn bin_inside(&self) -> Command {
        let template = bin();
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.dir)
            .arg(template.get_program());
        for (key, value) in template.get_envs() {
            match value {
                Some(value) => c.env(key, value),
                None => c.env_remove(key),
            };
        }
        c
    }

    /// One of its files (`pids.current`, `pids.events`), `""` when unread.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}
