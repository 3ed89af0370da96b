//! The real dockerd the tests use, a from-scratch busybox image, and the
//! containers one test makes on it (removed on drop).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::*;

/// The real dockerd the tests use.
pub struct LiveDocker {
    pub socket: PathBuf,
}

/// The image every live test runs: static busybox, imported from scratch.
pub const IMAGE: &str = "rtinspect-test/busybox:1";

/// The live dockerd, or `None` (with a note) when none answers and the
/// environment does not demand one.
/// Whether a dockerd answers `/_ping` on `socket` within 5 s.
pub fn docker_answers(socket: &Path) -> bool {
    UnixStream::connect(socket)
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf.starts_with("HTTP/1.") && buf.contains(" 200 "))
        })
        .unwrap_or(false)
}

pub fn live_docker() -> Option<&'static LiveDocker> {
    static LIVE: OnceLock<Option<LiveDocker>> = OnceLock::new();
    let live = LIVE.get_or_init(|| {
        let host = std::env::var("RTINSPECT_TEST_DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let socket = PathBuf::from(host.strip_prefix("unix://").unwrap_or(&host));
        if !docker_answers(&socket) {
            assert!(
                !live_required(),
                "RTINSPECT_TEST_REQUIRE_LIVE is set but no dockerd answers at {}",
                socket.display()
            );
            eprintln!("no dockerd answers at {}", socket.display());
            return None;
        }
        let live = LiveDocker { socket };
        live.ensure_image();
        Some(live)
    });
    if live.is_none() {
        skipped("no dockerd");
    }
    live.as_ref()
}

impl LiveDocker {
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Runs the docker CLI against this daemon; panics on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = succeeded(
            Command::new("docker")
                .arg("-H")
                .arg(self.docker_host())
                .args(args),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn ensure_image(&self) {
        let present = Command::new("docker")
            .args(["-H", &self.docker_host(), "image", "inspect", IMAGE])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return;
        }
        let tar = busybox_rootfs_tar(&["sh", "sleep", "true", "false", "kill"]);
        let mut import = Command::new("docker")
            .args(["-H", &self.docker_host(), "import", "-", IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        import.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(import.wait().unwrap().success(), "docker import failed");
    }
}

/// Containers made by one test, removed (with force) on drop.
pub struct Containers<'a> {
    pub live: &'a LiveDocker,
    /// The label key this test's records carry, unique per test.
    pub label: String,
    ids: Vec<String>,
}

impl<'a> Containers<'a> {
    /// `rtinspect once` over this test's label on the live dockerd, with `extra`.
    pub fn once(&self, extra: &[&str]) -> Output {
        bin()
            .args(["once", "--label", &self.label])
            .args(["--docker-host", &self.live.docker_host()])
            .args(extra)
            .output()
            .unwrap()
    }

    pub fn new(live: &'a LiveDocker, test: &str) -> Self {
        Containers {
            live,
            label: format!("rtinspect-test.{test}.{}", std::process::id()),
            ids: Vec::new(),
        }
    }

    /// `docker run -d --network none` with the game label and `extra` flags,
    /// then the command; returns the full id.
    pub fn run(&mut self, game: &str, extra: &[&str], cmd: &[&str]) -> String {
        let label = format!("{}={game}", self.label);
        let mut args = vec!["run", "-d", "--network", "none", "--label", &label];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        let id = self.live.docker(&args);
        self.ids.push(id.clone());
        id
    }

    /// A game that runs `script` under `sh -c` with `flag` mounted at
    /// `/flag` (for the test to steer it), restarted by dockerd whenever it
    /// exits; returns its full id.
    pub fn run_restarting(&mut self, game: &str, flag: &TempDir, script: &str) -> String {
        let mount = format!("{}:/flag", flag.path().display());
        self.run(
            game,
            &["--restart=always", "-v", &mount],
            &["sh", "-c", script],
        )
    }

    /// A container that ran `true` and has exited; returns its full id.
    pub fn exited(&mut self, game: &str) -> String {
        let id = self.run(game, &[], &["true"]);
        self.wait_exited(&id);
        id
    }

    /// Waits until container `id` has exited.
    pub fn wait_exited(&self, id: &str) {
        wait_until(Duration::from_secs(30), "exited", || {
            self.inspect(id, "{{.State.Status}}") == "exited"
        });
    }

    /// `rtinspect run` over this test's label on the live dockerd, logging
    /// every tick (`RUST_LOG=rtinspect=debug`); add the rest.
    pub fn daemon(&self) -> Command {
        let mut cmd = bin();
        cmd.args(["run", "--label", &self.label])
            .args(["--docker-host", &self.live.docker_host()])
            .env("RUST_LOG", "rtinspect=debug");
        cmd
    }

    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.live.docker(&["inspect", "-f", format, id])
    }

    pub fn remove(&mut self, id: &str) {
        self.live.docker(&["rm", "-f", id]);
        self.ids.retain(|i| i != id);
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut args = vec![
            "-H".to_string(),
            self.live.docker_host(),
            "rm".into(),
            "-f".into(),
        ];
        args.extend(self.ids.iter().cloned());
        let _ = Command::new("docker").args(&args).output();
    }
}

/// Docker flags for a healthcheck that fails at once: `unhealthy` in ~2 s.
pub const UNHEALTHY: &[&str] = &[
    "--health-cmd",
    "false",
    "--health-interval",
    "1s",
    "--health-retries",
    "1",
];

impl Containers<'_> {
    /// As [`Containers::run`], but `None` when docker refuses (a flag this
    /// kernel does not support, say).
    pub fn try_run(&mut self, game: &str, extra: &[&str], cmd: &[&str]) -> Option<String> {
        let label = format!("{}={game}", self.label);
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.live.docker_host())
            .args(["run", "-d", "--network", "none", "--label", &label])
            .args(extra)
            .arg(IMAGE)
            .args(cmd)
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !id.is_empty() {
            self.ids.push(id.clone());
        }
        if !out.status.success() {
            eprintln!(
                "docker run {extra:?} refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(id)
    }
}

impl Containers<'_> {
    /// Three games in trouble: `stopped` exited, `g-sick` unhealthy
    /// (waited for), `g-loop` exiting 1 a second after each start under
    /// `--restart=always`.
    pub fn three_in_trouble(&mut self, stopped: &str) {
        self.exited(stopped);
        let sick = self.run("g-sick", UNHEALTHY, &["sleep", "3600"]);
        self.run(
            "g-loop",
            &["--restart=always"],
            &["sh", "-c", "sleep 1; exit 1"],
        );
        wait_until(Duration::from_secs(30), "g-sick unhealthy", || {
            self.inspect(&sick, "{{.State.Health.Status}}") == "unhealthy"
        });
    }
}

/// Waits until a daemon's stdout `out` has the incidents of
/// [`Containers::three_in_trouble`]: the stopped game's opens once its end
/// is known (a die is waited for a few seconds), the loop's as soon as it
/// loops.
pub fn wait_for_the_three(out: &StderrLines, stopped: &str) {
    wait_until(
        Duration::from_secs(90),
        "the crash loop and the other two",
        || {
            let lines = out.lines();
            let has = |kind: &str, game: &str| {
                let game = format!("\"game_id\":\"{game}\"");
                lines.iter().any(|l| l.contains(kind) && l.contains(&game))
            };
            has("\"incident_escalated\"", "g-loop")
                && has("\"incident_opened\"", stopped)
                && has("\"incident_opened\"", "g-sick")
        },
    );
}

/// A tar of a root filesystem made of Debian's static busybox and a symlink
/// per applet, for `docker import` or `podman import` (no registry here).
pub fn busybox_rootfs_tar(applets: &[&str]) -> Vec<u8> {
    let root = TempDir::new("rootfs");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("static busybox at /bin/busybox (Debian's busybox-static)");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "tar of the busybox root");
    tar.stdout
}

impl LiveDocker {
    /// A dockerd the test started itself at `socket`, with [`IMAGE`]
    /// imported into it.
    pub fn own(socket: PathBuf) -> LiveDocker {
        let live = LiveDocker { socket };
        live.ensure_image();
        live
    }
}
