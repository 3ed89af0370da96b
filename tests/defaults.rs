//! The packaged defaults file, `/etc/default/rtinspect`, as a new user meets
//! it: every example block (a run of commented assignments), uncommented
//! alone, starts the service. Each block is run with the unit's command line
//! against the real dockerd (and, for the block that names a database, the
//! test PostgreSQL), under a stand-in for systemd's notify socket: started
//! means `READY=1`, then a clean exit at SIGTERM. The site's own paths and
//! addresses (the docker socket, the database, the URL, notify and CA
//! files, the metrics port) are the only values replaced.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::notify::Systemd;
use crate::support::{
    TempDir, TestCa, bin, free_addr, live_docker, live_pg, live_required, send_signal, skipped,
};

/// One block: its variables in order, and the line it starts on.
struct Block {
    line: usize,
    vars: Vec<(String, String)>,
}

/// The runs of commented assignments (`#NAME=value`, `#   NAME=value`) of
/// `text`, each a block.
fn blocks(text: &str) -> Vec<Block> {
    let mut all: Vec<Block> = Vec::new();
    let mut open = false;
    for (n, line) in text.lines().enumerate() {
        let assignment = line.strip_prefix('#').and_then(|rest| {
            let (name, value) = rest.trim_start().split_once('=')?;
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| (name.to_owned(), value.to_owned()))
        });
        match assignment {
            Some(var) if open => all.last_mut().unwrap().vars.push(var),
            Some(var) => {
                all.push(Block {
                    line: n + 1,
                    vars: vec![var],
                });
                open = true;
            }
            None => open = false,
        }
    }
    all
}

/// The unit's command line: `ExecStart=`'s arguments after the program.
fn exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/rtinspect.service"),
    )
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart=");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/rtinspect"), "{line}");
    words.map(str::to_owned).collect()
}

#[test]
fn every_block_of_the_defaults_file_starts_the_service_alone() {
    let Some(live) = live_docker() else { return };
    let Some(database) = live_pg() else { return };
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/rtinspect.default"),
    )
    .unwrap();
    let blocks = blocks(&text);
    assert!(
        blocks.len() >= 20,
        "only {} blocks: is the parser right?",
        blocks.len()
    );
    if Command::new("openssl").arg("version").output().is_err() {
        // A live run must not pass by checking no block at all.
        assert!(!live_required(), "no openssl for the CA file");
        skipped("no openssl for the CA file: no block of the defaults file was checked");
        return;
    }
    let ca = TestCa::new();
    let files = TempDir::new("defaults");
    let url_file = files.path().join("webhook-url");
    std::fs::write(&url_file, "https://discord.com/api/webhooks/123/XXXXXXXX\n").unwrap();
    std::fs::set_permissions(
        &url_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let notify_file = files.path().join("notify");
    std::fs::write(
        &notify_file,
        "# the on-call phone\nntfy://:tk_XXXXXXXX@ntfy.sh/oncall?min=crash_loop\n\
         discord://XXXXXXXX@123\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &notify_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let args = exec_start();
    let mut failed = Vec::new();
    for block in &blocks {
        let state = TempDir::new("defaults-state");
        let systemd = Systemd::new();
        let mut command = bin();
        command
            .args(&args)
            // As systemd starts it: only what the unit and the file set.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("STATE_DIRECTORY", state.path())
            .env("NOTIFY_SOCKET", &systemd.path)
            .env("DOCKER_HOST", live.docker_host())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // In label mode, no game of another test is watched, nor posted about.
        let database_mode = block
            .vars
            .iter()
            .any(|(name, value)| name == "RTINSPECT_DATABASE_URL" && !value.is_empty());
        if !database_mode {
            let label = format!("rtinspect-test.defaults.{}", std::process::id());
            command.env("RTINSPECT_LABEL", label);
        }
        let mut shown = Vec::new();
        for (name, value) in &block.vars {
            // The site's own values; every other is as shipped.
            let value = match name.as_str() {
                "DOCKER_HOST" => live.docker_host(),
                "RTINSPECT_DATABASE_URL" if !value.is_empty() => database.to_owned(),
                "RTINSPECT_WEBHOOK_URL_FILE" if !value.is_empty() => {
                    url_file.to_str().unwrap().to_owned()
                }
                "RTINSPECT_NOTIFY_FILE" if !value.is_empty() => {
                    notify_file.to_str().unwrap().to_owned()
                }
                "RTINSPECT_WEBHOOK_CA_FILE" if !value.is_empty() => {
                    ca.ca().to_str().unwrap().to_owned()
                }
                "RTINSPECT_METRICS_ADDR" if !value.is_empty() => free_addr(),
                "RTINSPECT_STATE_DIR" if !value.is_empty() => {
                    state.path().to_str().unwrap().to_owned()
                }
                _ => value.clone(),
            };
            shown.push(format!("{name}={value}"));
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let ready = systemd.wait_for("READY=1", Duration::from_secs(20));
        send_signal(&child, "-TERM");
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
        if !ready || !status.success() {
            failed.push(format!(
                "line {}: {} -> ready {ready}, {status}: {}",
                block.line,
                shown.join(" "),
                stderr.trim_end()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} blocks:\n{}",
        failed.len(),
        blocks.len(),
        failed.join("\n")
    );
    eprintln!("{} blocks, each started alone", blocks.len());
}

#[test]
fn the_prune_age_is_ignored_with_a_debug_line_by_every_other_command() {
    let engine =
        crate::support::FakeEngine::start(|_| crate::support::Reply::Json(200, "[]".into()));
    for command in ["once", "notify-test"] {
        let out = bin()
            .arg(command)
            .args(["--docker-host", &engine.docker_host()])
            .env("RTINSPECT_PRUNE_OLDER_THAN", "30d")
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command}: {err}");
        assert!(
            err.contains(
                "RTINSPECT_PRUNE_OLDER_THAN \"30d\" is ignored: only prune-events reads it"
            ),
            "{command}: {err}"
        );
    }
}
