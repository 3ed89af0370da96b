//! `rtinspect silence add|list|end` as a deploy script meets it: in label
//! mode on a state directory (scripts at once, a bad file, one that cannot
//! be written, bad input), and
//! in PostgreSQL mode on the table `migrate` makes (a row a tool inserts
//! with psql, host scoping, an older schema without the table).

use std::process::Output;

use crate::support::{TempDir, TestSchema, bin, live_pg};

/// `rtinspect silence ARGS` in label mode on `dir`, no dockerd to ask.
fn silence(dir: &std::path::Path, args: &[&str]) -> Output {
    bin()
        .arg("silence")
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .args(["--docker-host", "unix:///nonexistent/docker.sock"])
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The rows of `silence list` below its header, as columns.
fn listed(out: &Output) -> Vec<Vec<String>> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let text = stdout(out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ID\tGAMES\tSTARTS\tENDS\tBY\tCOMMENT"));
    lines
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn silences_are_added_listed_and_ended_in_the_state_directory() {
    let dir = TempDir::new("silence-label");
    let out = silence(
        dir.path(),
        &[
            "add",
            "--game",
            "g-1",
            "--game",
            "g-2",
            "--for",
            "30m",
            "--comment",
            "deploy 1.2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 36, "the id alone: {id:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("silence {id}: g-1, g-2 until ")),
        "{err}"
    );
    // dockerd cannot be asked: said, and silenced anyway.
    assert!(
        err.contains("warning: cannot tell whether the games exist"),
        "{err}"
    );

    let all = silence(dir.path(), &["add", "--all", "--for", "2h"]);
    let all_id = stdout(&all).trim().to_owned();
    let rows = listed(&silence(dir.path(), &["list"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], id);
    assert_eq!(rows[0][1], "g-1,g-2");
    assert_eq!(rows[0][5], "deploy 1.2");
    assert_eq!(rows[1][..2], [all_id.clone(), "*".to_owned()]);

    let ended = silence(dir.path(), &["end", &id]);
    assert_eq!(stdout(&ended), format!("ended silence {id}\n"));
    let again = silence(dir.path(), &["end", &id]);
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).starts_with(&format!("silence {id} had already ended at ")));
    let rows = listed(&silence(dir.path(), &["list"]));
    assert_eq!(rows.len(), 1);
    let unknown = silence(dir.path(), &["end", "0193f000-0000-7000-8000-000000000001"]);
    assert_eq!(unknown.status.code(), Some(64));
    assert!(stderr(&unknown).contains("no silence 0193f000-0000-7000-8000-000000000001"));
    let every = silence(dir.path(), &["end", "--all"]);
    assert_eq!(stdout(&every), "ended 1 silences\n");
    assert!(listed(&silence(dir.path(), &["list"])).is_empty());
}

#[test]
fn scripts_adding_silences_at_once_all_keep_theirs() {
    let dir = TempDir::new("silence-race");
    let children: Vec<_> = (0..16)
        .map(|i| {
            bin()
                .args(["silence", "add", "--game", &format!("g-{i}"), "--for", "1h"])
                .arg("--state-dir")
                .arg(dir.path())
                .args(["--docker-host", "unix:///nonexistent/docker.sock"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        ids.push(stdout(&out).trim().to_owned());
    }
    let rows = listed(&silence(dir.path(), &["list"]));
    let mut games: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    games.sort();
    let mut want: Vec<String> = (0..16).map(|i| format!("g-{i}")).collect();
    want.sort();
    assert_eq!(games, want, "none lost");
    for id in ids {
        assert!(rows.iter().any(|r| r[0] == id));
    }
}

#[test]
fn bad_silence_input_exits_64_naming_it() {
    let dir = TempDir::new("silence-bad");
    let path = dir.path().to_str().unwrap();
    let missing = format!("{path}/nope");
    let table: &[(&[&str], &str)] = &[
        (
            &["add", "--game", "g", "--for", "-5m"],
            "invalid --for \"-5m\": expected a positive duration",
        ),
        (
            &["add", "--game", "g", "--for", "0s"],
            "invalid --for \"0s\": must be greater than zero",
        ),
        (
            &["add", "--game", "g", "--for", "366d"],
            "invalid --for \"366d\": must be at most a year",
        ),
        (
            &["add", "--game", "g", "--until", "2020-01-01T00:00:00Z"],
            "invalid --until \"2020-01-01T00:00:00Z\": is not in the future",
        ),
        (
            &["add", "--game", "g", "--until", "soon"],
            "invalid --until \"soon\"",
        ),
        (
            &["add", "--game", "g", "--all", "--for", "5m"],
            "--game or --all, not both",
        ),
        (&["add", "--for", "5m"], "needs --game GAME"),
        (&["end", "x"], "invalid silence id \"x\""),
    ];
    for (args, want) in table {
        let out = silence(dir.path(), args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // A state directory that is not there is named, and not made.
    let out = silence(
        std::path::Path::new(&missing),
        &["add", "--game", "g", "--for", "5m"],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains(&format!("invalid --state-dir \"{missing}\"")));
    assert!(!std::path::Path::new(&missing).exists());
    // Label mode without a state directory.
    let out = bin()
        .args(["silence", "add", "--game", "g", "--for", "5m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("silence needs the daemon's state directory"));
    assert!(
        !dir.path().join("silences.json").exists(),
        "nothing written"
    );
}

#[test]
fn a_silences_file_that_does_not_parse_is_named_and_kept() {
    let dir = TempDir::new("silence-garbage");
    let file = dir.path().join("silences.json");
    for garbage in [
        &b"{\"version\":1,\"silences\":[{"[..],
        b"\xff\xfe\x00garbage",
    ] {
        std::fs::write(&file, garbage).unwrap();
        let out = silence(dir.path(), &["add", "--game", "g", "--for", "5m"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("silences.json does not parse"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&file).unwrap(), garbage, "left as it was");
        assert_eq!(silence(dir.path(), &["list"]).status.code(), Some(1));
    }
}

#[test]
fn a_silence_that_cannot_be_written_is_never_said_silenced() {
    let dir = TempDir::new("silence-unwritable");
    // The lock cannot be opened, as on a read-only mount (root writes
    // through a directory's mode).
    std::fs::create_dir(dir.path().join("silences.lock")).unwrap();
    let out = silence(dir.path(), &["add", "--game", "g-1", "--for", "5m"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("silences.lock"), "{err}");
    assert!(!err.contains("silenced anyway"), "{err}");
    assert!(!dir.path().join("silences.json").exists());
}

#[test]
fn silences_live_in_the_table_migrate_makes() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "silences");
    s.migrate();
    s.insert_record("g-1", "running", "c1");
    let common = s.args();
    let run = |args: &[&str]| {
        bin()
            .arg("silence")
            .args(args)
            .args(&common)
            .output()
            .unwrap()
    };
    let out = run(&["add", "--game", "g-1", "--game", "g-new", "--for", "10m"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let err = stderr(&out);
    assert!(err.contains("warning: unknown game \"g-new\""), "{err}");
    assert!(!err.contains("\"g-1\""), "g-1 has a record: {err}");
    // A deploy tool's row, inserted by psql: every game, defaults filled.
    let table = s.silences();
    s.client
        .batch_execute(&format!(
            "INSERT INTO {table} (silence_id, game_id, ends_at, comment) \
             VALUES ('0193f000-0000-7000-8000-0000000000aa', NULL, now() + interval '1 hour', 'tool')"
        ))
        .unwrap();
    let rows = listed(&run(&["list"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][..2], [id.clone(), "g-1,g-new".to_owned()]);
    assert_eq!(rows[1][0], "0193f000-0000-7000-8000-0000000000aa");
    assert_eq!(rows[1][1], "*");
    assert_eq!(rows[1][5], "tool");

    assert_eq!(stdout(&run(&["end", &id])), format!("ended silence {id}\n"));
    assert!(stdout(&run(&["end", &id])).contains("had already ended at"));
    assert_eq!(
        run(&["end", "0193f000-0000-7000-8000-000000000001"])
            .status
            .code(),
        Some(64)
    );
    assert_eq!(stdout(&run(&["end", "--all"])), "ended 1 silences\n");
    assert!(listed(&run(&["list"])).is_empty());
    let ended: i64 = s
        .client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE ends_at <= now()"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 3, "ended rows are kept a day");
}

#[test]
fn a_table_of_as_many_silences_as_the_daemon_reads_takes_no_more() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "fullsilences");
    s.migrate();
    let table = s.silences();
    s.client
        .batch_execute(&format!(
            "INSERT INTO {table} (silence_id, game_id, ends_at) \
             SELECT gen_random_uuid(), 'g-' || i, now() + interval '1 hour' \
             FROM generate_series(1, 10000) AS i"
        ))
        .unwrap();
    let out = bin()
        .args(["silence", "add", "--game", "one-more", "--for", "5m"])
        .args(s.args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("10000 silences are in force"),
        "{}",
        stderr(&out)
    );
    let rows: i64 = s
        .client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 10_000, "nothing added past what the daemon reads");
}

#[test]
fn a_schema_without_the_silences_table_says_run_migrate() {
    let Some(url) = live_pg() else { return };
    let mut s = TestSchema::new(url, "nosilences");
    s.migrate();
    s.client
        .batch_execute(&format!("DROP TABLE {}", s.silences()))
        .unwrap();
    let out = bin()
        .args(["silence", "add", "--all", "--for", "5m"])
        .args(s.args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("does not exist") && err.contains("rtinspect migrate"),
        "{err}"
    );
}
